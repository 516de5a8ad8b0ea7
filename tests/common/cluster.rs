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
    /// Its own (not shared) dir pool, named `local`.
    pub local: TempDir,
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

    /// A config of this host alone (no `[cluster]`, the pool not shared), on the same
    /// state: as it was before it joined the cluster.
    pub fn alone_config(&self) -> PathBuf {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let start = text.find("[cluster]").unwrap();
        let rest = &text[start..];
        // The [cluster] table ends at the next table (the test's extra), if any.
        let end = rest[1..].find("\n[").map_or(rest.len(), |i| i + 2);
        let alone = format!("{}{}", &text[..start], &rest[end..]).replace("shared = true\n", "");
        let path = self.state.join("alone.toml");
        std::fs::write(&path, alone).unwrap();
        path
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
        ClusterBed::on(Etcd::start(3), n, extra)
    }

    /// The same on a given etcd.
    pub fn on(etcd: Etcd, n: usize, extra: &str) -> ClusterBed {
        require_root_and_policy();
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
    let local = TempDir::new(IMAGES, &format!("svirt-pool-local-{name}"));
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
             [[pool]]\nname = \"local\"\ntype = \"dir\"\npath = \"{local}\"\n\n\
             [cluster]\nendpoints = [{endpoints}]\nhost = \"{name}\"\ntimeout_ms = 2000\n{extra}",
            state = state.0.display(),
            status = status.0.display(),
            pool = pool.0.display(),
            local = local.0.display(),
        ),
    )
    .unwrap();
    Host {
        name: name.to_owned(),
        state,
        status,
        local,
        config,
    }
}
