//! The cluster registry against a real etcd: a 3-member cluster on loopback ports,
//! started by each test (Debian's `etcd-server`) and stopped when it ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{EtcdGuests, Kv};
use crate::config::ClusterSettings;
use crate::decide::context::CategorySet;
use crate::registry::Guests;

// The integration tests use more of it than these.
#[allow(dead_code)]
#[path = "../../tests/common/etcd.rs"]
mod etcd;

pub(crate) use etcd::Etcd;

impl Etcd {
    /// Settings for host `host` of this cluster, its keys below `prefix`.
    pub(crate) fn settings(&self, host: &str, prefix: &str) -> ClusterSettings {
        ClusterSettings {
            endpoints: self.endpoints.clone(),
            host: host.to_owned(),
            prefix: prefix.to_owned(),
            timeout: Duration::from_secs(5),
            tls: None,
        }
    }
}

/// A fresh `Guests` on a cluster of its own.
fn fresh() -> (Etcd, Box<dyn Guests>) {
    let etcd = Etcd::start(3);
    let kv = Kv::connect(&etcd.settings("a", "/svirt-pool")).unwrap();
    (etcd, Box::new(EtcdGuests::new(Arc::new(kv))))
}

/// The contract every backend of guests keeps (`registry/contract.rs`).
mod contract {
    crate::registry::contract::guest_contract_tests!(super::fresh);
}

#[test]
fn three_hosts_defining_at_once_never_share_a_pair() {
    // 2,016 pairs, 1,200 guests: random draws collide often, and only etcd's
    // create-if-absent keeps two hosts from taking one pair.
    let etcd = Etcd::start(3);
    let cats = CategorySet::parse("c0.c63").unwrap();
    let per_thread = 100;
    let hosts = ["a", "b", "c"];
    let defined: Vec<(String, (u16, u16))> = std::thread::scope(|s| {
        let workers: Vec<_> = hosts
            .iter()
            .enumerate()
            .flat_map(|(h, host)| (0..4).map(move |t| (h, *host, t)))
            .map(|(h, host, t)| {
                // Each host talks to its own member, as hosts near their etcd would.
                let mut settings = etcd.settings(host, "/svirt-pool");
                settings.endpoints = vec![etcd.endpoints[h].clone()];
                let cats = &cats;
                s.spawn(move || {
                    let mut guests = EtcdGuests::new(Arc::new(Kv::connect(&settings).unwrap()));
                    (0..per_thread)
                        .map(|i| {
                            let uuid = format!("{host}-{t}-{i:04}");
                            let (g, created) =
                                guests.define_guest(&uuid, None, cats, 0, u32::MAX).unwrap();
                            assert!(created);
                            (uuid, (g.pair.low(), g.pair.high()))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(defined.len(), 3 * 4 * per_thread);
    let mut pairs: Vec<_> = defined.iter().map(|(_, p)| *p).collect();
    pairs.sort();
    pairs.dedup();
    assert_eq!(pairs.len(), defined.len(), "two guests got one pair");
    // Every host reads the same guests with the same pairs.
    let reader = EtcdGuests::new(Arc::new(
        Kv::connect(&etcd.settings("c", "/svirt-pool")).unwrap(),
    ));
    let listed = reader.guests().unwrap();
    assert_eq!(listed.len(), defined.len());
    for (uuid, pair) in &defined {
        let g = reader.guest(uuid).unwrap().unwrap();
        assert_eq!((g.pair.low(), g.pair.high()), *pair, "{uuid}");
    }
}

#[test]
fn a_define_that_cannot_reach_etcd_fails_within_the_timeout_naming_it() {
    let mut etcd = Etcd::start(3);
    let mut settings = etcd.settings("a", "/svirt-pool");
    settings.timeout = Duration::from_millis(500);
    let mut guests = EtcdGuests::new(Arc::new(Kv::connect(&settings).unwrap()));
    guests
        .define_guest("before", None, &CategorySet::full(), 0, u32::MAX)
        .unwrap();
    // Two of three members gone: no quorum, so no write can commit.
    etcd.kill(1);
    etcd.kill(2);
    let started = Instant::now();
    let err = guests
        .define_guest("after", None, &CategorySet::full(), 0, u32::MAX)
        .unwrap_err();
    let elapsed = started.elapsed();
    let text = err.to_string();
    assert!(text.starts_with("etcd (http://127.0.0.1:"), "{text}");
    // Each call is bounded; a define makes a few (read the guest, draw a pair, commit).
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}: {text}");
}
