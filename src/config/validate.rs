//! From the raw file to [`Settings`]: defaults filled in, every value checked, each
//! error naming its key. The checks that ask the system are in `probe`.

use std::path::{Path, PathBuf};

use super::probe;
use super::raw::*;
use super::*;
use crate::decide::policy::{self, FileContexts};

/// Validates `text`, which came from `source`, with the given checks: every error
/// names the key (and pool) that is wrong.
pub(super) fn settings(text: &str, source: &Path, checks: Checks) -> Result<Settings> {
    let err = |msg: &dyn std::fmt::Display| Error::Config(format!("{}: {msg}", source.display()));
    let raw: RawConfig = toml::from_str(text).map_err(|e| err(&e))?;
    let selinux = validate_selinux(raw.selinux).map_err(|e| err(&e))?;
    let state_dir = raw
        .state_dir
        .unwrap_or_else(|| PathBuf::from("/var/lib/svirt-pool"));
    if !state_dir.is_absolute() {
        return Err(err(&format!(
            "state_dir: {} is not an absolute path",
            state_dir.display()
        )));
    }
    // Needed only to check the defaults of pools without a resting label (and that a
    // configured file exists and loads): a host whose pools all set one never loads it.
    let needs_defaults =
        selinux.file_contexts.is_some() || raw.pools.iter().any(|p| p.resting_label.is_none());
    let file_contexts = match checks {
        Checks::Full if needs_defaults => Some(
            // The process's shared handle: the scan that follows uses the same one.
            FileContexts::shared(selinux.file_contexts.as_deref())
                .map_err(|e| err(&format!("selinux.file_contexts: {e}")))?,
        ),
        Checks::Full | Checks::Syntax => None,
    };
    let mut pools: Vec<Pool> = Vec::new();
    for (i, raw_pool) in raw.pools.into_iter().enumerate() {
        let pool = validate_pool(raw_pool, checks, file_contexts.as_deref())
            .map_err(|e| err(&format!("pool[{i}]: {e}")))?;
        for other in &pools {
            check_distinct(other, &pool).map_err(|e| err(&format!("pool[{i}]: {e}")))?;
        }
        pools.push(pool);
    }
    if pools.is_empty() {
        return Err(err(&"no [[pool]] is configured"));
    }
    check_state_dir_outside_pools(&state_dir, &pools).map_err(|e| err(&e))?;
    if checks == Checks::Full {
        probe::check_no_overlap_through_mounts(&state_dir, &pools).map_err(|e| err(&e))?;
    }
    let cluster = raw
        .cluster
        .map(validate_cluster)
        .transpose()
        .map_err(|e| err(&e))?;
    if cluster.is_none()
        && let Some(pool) = pools.iter().find(|p| p.shared)
    {
        return Err(err(&format!(
            "pool {:?}: shared = true needs a [cluster] section (the hosts that share it \
             must keep its holders in one place)",
            pool.name
        )));
    }
    let api = validate_api(raw.api, checks).map_err(|e| err(&e))?;
    let unwatched_rescan = match raw.agent.unwatched_rescan_secs {
        Some(0) => {
            return Err(err(&"agent.unwatched_rescan_secs must be greater than 0"));
        }
        Some(s) => std::time::Duration::from_secs(s),
        None => std::time::Duration::from_secs(30),
    };
    let libvirt_status_dir = raw
        .libvirt
        .status_dir
        .unwrap_or_else(|| PathBuf::from("/run/libvirt/qemu"));
    if !libvirt_status_dir.is_absolute() {
        return Err(err(&format!(
            "libvirt.status_dir: {} is not an absolute path",
            libvirt_status_dir.display()
        )));
    }
    Ok(Settings {
        unwatched_rescan,
        libvirt_status_dir,
        qemu_user: match raw.libvirt.qemu_user {
            Some(u) if u.is_empty() || u.contains(char::is_whitespace) => {
                return Err(err(&"libvirt.qemu_user must be a user name or +UID"));
            }
            u => u,
        },
        source: source.to_path_buf(),
        state_dir,
        selinux,
        pools,
        api,
        cluster,
    })
}

/// The key prefix a cluster's keys start with unless `[cluster] prefix` says otherwise.
pub const DEFAULT_CLUSTER_PREFIX: &str = "/svirt-pool";

fn validate_cluster(raw: RawCluster) -> Result<ClusterSettings, Invalid> {
    if raw.endpoints.is_empty() {
        return Err(invalid!(
            "cluster.endpoints: at least one etcd URL is needed"
        ));
    }
    for url in &raw.endpoints {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        if rest.is_none_or(|r| r.is_empty() || r.contains(char::is_whitespace)) {
            return Err(invalid!(
                "cluster.endpoints: {url:?} is not an http:// or https:// URL"
            ));
        }
    }
    let host = match raw.host {
        Some(h) => h,
        None => rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(invalid!(
            "cluster.host {host:?} must be letters, digits, '-', '_' or '.'"
        ));
    }
    let prefix = raw.prefix.unwrap_or_else(|| DEFAULT_CLUSTER_PREFIX.into());
    if !prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains(char::is_whitespace) {
        return Err(invalid!(
            "cluster.prefix {prefix:?} must start with '/', not end with one, and have no spaces"
        ));
    }
    let timeout = match raw.timeout_ms {
        Some(0) => return Err(invalid!("cluster.timeout_ms must be greater than 0")),
        Some(ms) => std::time::Duration::from_millis(ms),
        None => std::time::Duration::from_millis(2000),
    };
    let tls = match (raw.ca, raw.cert, raw.key) {
        (None, None, None) => None,
        (Some(ca), Some(cert), Some(key)) => {
            for (name, path) in [("ca", &ca), ("cert", &cert), ("key", &key)] {
                if !path.is_absolute() {
                    return Err(invalid!(
                        "cluster.{name}: {} is not an absolute path",
                        path.display()
                    ));
                }
            }
            Some(ClusterTls { ca, cert, key })
        }
        _ => {
            return Err(invalid!(
                "cluster: ca, cert and key go together (TLS with a client certificate)"
            ));
        }
    };
    let https = raw.endpoints.iter().filter(|u| u.starts_with("https://"));
    if https.count()
        != if tls.is_some() {
            raw.endpoints.len()
        } else {
            0
        }
    {
        return Err(invalid!(
            "cluster.endpoints: with ca, cert and key every URL is https://, without them http://"
        ));
    }
    Ok(ClusterSettings {
        endpoints: raw.endpoints,
        host,
        prefix,
        timeout,
        tls,
    })
}

fn validate_api(raw: RawApi, checks: Checks) -> Result<ApiSettings, Invalid> {
    let socket = raw.socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    if !socket.is_absolute() {
        return Err(invalid!(
            "api.socket: {} is not an absolute path",
            socket.display()
        ));
    }
    let group_name = raw.group.unwrap_or_else(|| "libvirt".into());
    // A missing group is not an error: the host may not run libvirt yet. Only root
    // (and, with read_only_for_all, readers) is served then. The lookup asks NSS, which
    // the udev hook (`Checks::Syntax`, no API) has no use for.
    let group = match checks {
        Checks::Full => crate::users::group_gid(&group_name).map(|gid| (group_name, gid)),
        Checks::Syntax => None,
    };
    // Counts and sizes fit a usize on every target this runs on (64-bit Linux).
    let as_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let positive = |key: &str, v: Option<u64>, default: u64| match v {
        Some(0) => Err(invalid!("api.{key} must be greater than 0")),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    Ok(ApiSettings {
        socket,
        group,
        read_only_for_all: raw.read_only_for_all.unwrap_or(false),
        max_connections: as_usize(positive(
            "max_connections",
            raw.max_connections.map(|v| v as u64),
            256,
        )?),
        max_connections_per_user: as_usize(positive(
            "max_connections_per_user",
            raw.max_connections_per_user.map(|v| v as u64),
            16,
        )?),
        max_guests_per_user: u32::try_from(positive(
            "max_guests_per_user",
            raw.max_guests_per_user.map(u64::from),
            64,
        )?)
        .unwrap_or(u32::MAX),
        max_request_bytes: as_usize(positive(
            "max_request_bytes",
            raw.max_request_bytes.map(|v| v as u64),
            1 << 20,
        )?),
        idle_timeout: std::time::Duration::from_secs(positive(
            "idle_timeout_secs",
            raw.idle_timeout_secs,
            60,
        )?),
        write_timeout: std::time::Duration::from_secs(positive(
            "write_timeout_secs",
            raw.write_timeout_secs,
            10,
        )?),
        call_timeout: std::time::Duration::from_secs(positive(
            "call_timeout_secs",
            raw.call_timeout_secs,
            30,
        )?),
        max_volumes_per_user: positive("max_volumes_per_user", raw.max_volumes_per_user, 256)?,
        max_volume_bytes_per_user: positive(
            "max_volume_bytes_per_user",
            raw.max_volume_bytes_per_user,
            4 << 40,
        )?,
        reserve_percent: match raw.reserve_percent {
            Some(p) if p > 50 => {
                return Err(invalid!("api.reserve_percent must be 0 to 50, not {p}"));
            }
            p => p.unwrap_or(5),
        },
    })
}

fn parse_context(key: &str, value: &str) -> Result<Context, Invalid> {
    value.parse().map_err(|e| invalid!("{key}: {e}"))
}

fn validate_selinux(raw: RawSelinux) -> Result<SelinuxSettings, Invalid> {
    let context = |key: &str, value: Option<String>, file: &str, line: usize| match value {
        Some(v) => parse_context(&format!("selinux.{key}"), &v),
        None => policy::installed_context(file, line)
            .map_err(|e| invalid!("selinux.{key} is not set and the policy gives no default: {e}")),
    };
    let contexts = GuestContexts {
        image: context("image_label", raw.image_label, "virtual_image_context", 0)?,
        content: context(
            "content_label",
            raw.content_label,
            "virtual_image_context",
            1,
        )?,
        process: context(
            "process_label",
            raw.process_label,
            "virtual_domain_context",
            0,
        )?,
    };
    let categories = match raw.categories {
        Some(c) => CategorySet::parse(&c).map_err(|e| invalid!("selinux.categories: {e}"))?,
        None => policy::default_categories(),
    };
    if categories.len() < 2 {
        return Err(Invalid(
            "selinux.categories: at least two categories are needed to form a pair".into(),
        ));
    }
    if let Some(fc) = &raw.file_contexts
        && !fc.is_file()
    {
        return Err(invalid!(
            "selinux.file_contexts: {} is not a readable file",
            fc.display()
        ));
    }
    Ok(SelinuxSettings {
        file_contexts: raw.file_contexts,
        contexts,
        categories,
    })
}

fn validate_pool(
    raw: RawPool,
    checks: Checks,
    file_contexts: Option<&FileContexts>,
) -> Result<Pool, Invalid> {
    let name = raw.name;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(invalid!(
            "name {name:?} must be letters, digits, '-', '_' or '.'"
        ));
    }
    let only = |key: &str, set: bool, kind: &str| {
        if set {
            Err(invalid!(
                "pool {name:?}: {key} is not a key of type {kind:?} pools"
            ))
        } else {
            Ok(())
        }
    };
    let kind = match raw.kind.as_str() {
        "dir" => {
            only("vg", raw.vg.is_some(), "dir")?;
            only("lvm_args", raw.lvm_args.is_some(), "dir")?;
            let path = raw
                .path
                .ok_or_else(|| invalid!("pool {name:?}: path is required for type \"dir\""))?;
            if checks == Checks::Full {
                probe::check_pool_path(&path)
                    .map_err(|e| invalid!("pool {name:?}: path {}: {e}", path.display()))?;
            } else if !path.is_absolute() {
                return Err(invalid!(
                    "pool {name:?}: path {} is not absolute",
                    path.display()
                ));
            }
            PoolKind::Dir(DirPool {
                path,
                cross_filesystems: raw.cross_filesystems.unwrap_or(false),
            })
        }
        "lvm" => {
            only("path", raw.path.is_some(), "lvm")?;
            only("cross_filesystems", raw.cross_filesystems.is_some(), "lvm")?;
            let vg = raw
                .vg
                .ok_or_else(|| invalid!("pool {name:?}: vg is required for type \"lvm\""))?;
            if !lvm::is_valid_name(&vg) {
                return Err(invalid!(
                    "pool {name:?}: vg {vg:?} is not a volume group name"
                ));
            }
            PoolKind::Lvm(LvmPool {
                vg,
                lvm_args: raw.lvm_args.unwrap_or_default(),
            })
        }
        other => {
            return Err(invalid!(
                "pool {name:?}: type {other:?} is not supported (expected \"dir\" or \"lvm\")"
            ));
        }
    };
    let resting_label = match raw.resting_label {
        Some(v) => Some(parse_context(&format!("pool {name:?}: resting_label"), &v)?),
        None => {
            if let Some(fc) = file_contexts {
                probe::check_default_exists(&name, &kind, fc)?;
            }
            None
        }
    };
    Ok(Pool {
        name,
        resting_label,
        shared: raw.shared.unwrap_or(false),
        kind,
        defaults: Default::default(),
    })
}

/// The state database must not be a pool volume: members could then open it.
fn check_state_dir_outside_pools(state_dir: &Path, pools: &[Pool]) -> Result<(), Invalid> {
    for pool in pools {
        if let Some(dir) = pool.dir()
            && state_dir.starts_with(&dir.path)
        {
            return Err(invalid!(
                "state_dir {} is inside pool {:?} ({}): keep the state out of every pool",
                state_dir.display(),
                pool.name,
                dir.path.display()
            ));
        }
    }
    Ok(())
}

fn check_distinct(a: &Pool, b: &Pool) -> Result<(), Invalid> {
    if a.name == b.name {
        return Err(invalid!("pool name {:?} is used twice", b.name));
    }
    let overlap = match (&a.kind, &b.kind) {
        (PoolKind::Dir(x), PoolKind::Dir(y)) => {
            x.path.starts_with(&y.path) || y.path.starts_with(&x.path)
        }
        (PoolKind::Lvm(x), PoolKind::Lvm(y)) => x.vg == y.vg,
        _ => false,
    };
    if overlap {
        return Err(invalid!(
            "pool {:?} ({}) overlaps pool {:?} ({})",
            b.name,
            b.location(),
            a.name,
            a.location()
        ));
    }
    Ok(())
}
