//! The cluster registry against a real etcd: a 3-member cluster on loopback ports,
//! started by each test (Debian's `etcd-server`) and stopped when it ends.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{EtcdGuests, Kv};
use crate::config::ClusterSettings;
use crate::decide::context::CategorySet;
use crate::registry::Guests;

/// A running etcd cluster of real `etcd` processes, killed on drop.
pub(crate) struct Etcd {
    members: Vec<Child>,
    /// Each member's client URL.
    pub(crate) endpoints: Vec<String>,
    _dir: tempfile::TempDir,
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl Etcd {
    /// Starts `n` members and waits until the cluster answers (at most 30 s).
    pub(crate) fn start(n: usize) -> Etcd {
        let dir = tempfile::tempdir().expect("a directory for etcd's data");
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let peers = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        let mut endpoints = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let data: PathBuf = dir.path().join(format!("m{i}"));
            let log = std::fs::File::create(dir.path().join(format!("m{i}.log"))).unwrap();
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let child = Command::new("etcd")
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(&data)
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &peers])
                .args(["--initial-cluster-token", "svirt-pool-test"])
                .args(["--initial-cluster-state", "new"])
                .args(["--logger", "zap", "--log-outputs", "stderr"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("run etcd (the etcd-server package)");
            members.push(child);
            endpoints.push(client_url);
        }
        let etcd = Etcd {
            members,
            endpoints,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let settings = etcd.settings("host", "/ready");
        loop {
            if let Ok(kv) = Kv::connect(&settings)
                && kv.count(b"/ready").is_ok()
            {
                return etcd;
            }
            assert!(Instant::now() < deadline, "etcd did not answer within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// How host `host` reaches this cluster, below `prefix` (all members).
    pub(crate) fn settings(&self, host: &str, prefix: &str) -> ClusterSettings {
        ClusterSettings {
            endpoints: self.endpoints.clone(),
            host: host.to_owned(),
            prefix: prefix.to_owned(),
            timeout: Duration::from_secs(5),
            tls: None,
        }
    }

    /// Kills member `i` at once (SIGKILL).
    pub(crate) fn kill(&mut self, i: usize) {
        let _ = self.members[i].kill();
        let _ = self.members[i].wait();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
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
