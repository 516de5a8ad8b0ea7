//! Hosts of a cluster on one machine: a real 3-member etcd, one shared dir pool (a
//! local directory under [`IMAGES`] stands in for the cluster filesystem: every host
//! sees it at the same path), and per host its own config, state, API socket, libvirt
//! status directory and `host` name.

use std::path::{Path, PathBuf};

use super::etcd::Etcd;
use super::{Configured, IMAGES, TempDir, require_root_and_policy};

/// One host of a [`ClusterBed`].
pub struct Host {
    /// Its `[cluster] host`.
    pub name: String,
    /// Its state directory (config, database, socket).
    pub state: TempDir,
    /// Its libvirt status directory (a domain "runs" here while its XML is there).
    pub status: TempDir,
    /// Its config file.
    pub config: PathBuf,
}

impl Configured for Host {
    fn config_path(&self) -> &Path {
        &self.config
    }
}

impl Host {
    /// Its API socket.
    pub fn socket(&self) -> PathBuf {
        self.state.join("api.sock")
    }
}

/// Hosts sharing a pool through a real etcd.
pub struct ClusterBed {
    /// The etcd cluster.
    pub etcd: Etcd,
    /// The shared pool (named `shared`).
    pub pool: TempDir,
    /// The hosts `a`, `b`, `c`… in order.
    pub hosts: Vec<Host>,
}

impl ClusterBed {
    /// `n` hosts named `a`, `b`, … on a fresh 3-member etcd; `extra` TOML is added to
    /// each host's config (after its `[cluster]` table: keys of that table, or tables).
    pub fn new(n: usize, extra: &str) -> ClusterBed {
        require_root_and_policy();
        let etcd = Etcd::start(3);
        let pool = TempDir::new(IMAGES, "svirt-pool-shared");
        let hosts = (0..n)
            .map(|i| {
                let name = char::from(b'a' + u8::try_from(i).unwrap()).to_string();
                host(&etcd, &pool, &name, extra)
            })
            .collect();
        ClusterBed { etcd, pool, hosts }
    }

    /// Creates a file in the shared pool; returns its path.
    pub fn file(&self, rel: &str) -> PathBuf {
        let path = self.pool.join(rel);
        std::fs::write(&path, b"disk image").unwrap();
        path
    }
}

fn host(etcd: &Etcd, pool: &TempDir, name: &str, extra: &str) -> Host {
    let state = TempDir::new("/tmp", &format!("svirt-pool-host-{name}"));
    let status = TempDir::new("/tmp", &format!("svirt-pool-status-{name}"));
    let config = state.join("svirt-pool.toml");
    let endpoints = etcd
        .endpoints
        .iter()
        .map(|e| format!("{e:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{state}\"\n\n[api]\nsocket = \"{state}/api.sock\"\n\n\
             [libvirt]\nstatus_dir = \"{status}\"\n\n\
             [[pool]]\nname = \"shared\"\ntype = \"dir\"\npath = \"{pool}\"\nshared = true\n\n\
             [cluster]\nendpoints = [{endpoints}]\nhost = \"{name}\"\ntimeout_ms = 2000\n{extra}",
            state = state.0.display(),
            status = status.0.display(),
            pool = pool.0.display(),
        ),
    )
    .unwrap();
    Host {
        name: name.to_owned(),
        state,
        status,
        config,
    }
}
