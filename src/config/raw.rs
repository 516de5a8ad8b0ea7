//! The configuration file as serde reads it: every key, nothing checked yet.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) state_dir: Option<PathBuf>,
    #[serde(default)]
    pub(super) selinux: RawSelinux,
    #[serde(default, rename = "pool")]
    pub(super) pools: Vec<RawPool>,
    #[serde(default)]
    pub(super) api: RawApi,
    #[serde(default)]
    pub(super) agent: RawAgent,
    #[serde(default)]
    pub(super) libvirt: RawLibvirt,
    pub(super) cluster: Option<RawCluster>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub(super) endpoints: Vec<String>,
    pub(super) host: Option<String>,
    pub(super) prefix: Option<String>,
    pub(super) timeout_ms: Option<u64>,
    pub(super) ca: Option<PathBuf>,
    pub(super) cert: Option<PathBuf>,
    pub(super) key: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLibvirt {
    pub(super) status_dir: Option<PathBuf>,
    pub(super) qemu_user: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    pub(super) unwatched_rescan_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    pub(super) socket: Option<PathBuf>,
    pub(super) group: Option<String>,
    pub(super) read_only_for_all: Option<bool>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_connections_per_user: Option<usize>,
    pub(super) max_guests_per_user: Option<u32>,
    pub(super) max_request_bytes: Option<usize>,
    pub(super) idle_timeout_secs: Option<u64>,
    pub(super) write_timeout_secs: Option<u64>,
    pub(super) call_timeout_secs: Option<u64>,
    pub(super) max_volumes_per_user: Option<u64>,
    pub(super) max_volume_bytes_per_user: Option<u64>,
    pub(super) reserve_percent: Option<u8>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSelinux {
    pub(super) file_contexts: Option<PathBuf>,
    pub(super) image_label: Option<String>,
    pub(super) content_label: Option<String>,
    pub(super) process_label: Option<String>,
    pub(super) categories: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPool {
    pub(super) name: String,
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) path: Option<PathBuf>,
    pub(super) vg: Option<String>,
    pub(super) resting_label: Option<String>,
    pub(super) cross_filesystems: Option<bool>,
    pub(super) lvm_args: Option<Vec<String>>,
    pub(super) shared: Option<bool>,
}
