//! Checking request arguments before anything runs: each error names its parameter.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::types::ApiError;
use crate::config::Settings;
use crate::decide::labels::Mode;

/// Checks a UUID parameter here, so the error names the parameter.
pub(super) fn uuid_arg(parameter: &str, value: &str) -> Result<String, ApiError> {
    crate::ops::parse_uuid(value).map_err(|e| ApiError::InvalidArgument {
        parameter: parameter.into(),
        reason: e.to_string(),
    })
}

/// Longest volume path accepted (PATH_MAX).
const MAX_VOLUME_BYTES: usize = 4096;

/// Checks a volume parameter: an absolute path (the agent's working directory means
/// nothing to a client), `base64:` and an absolute path's bytes (names that are not
/// UTF-8), or `VG/LV` of a managed volume group; at most 4096 bytes.
pub(super) fn volume_arg(settings: &Settings, volume: &str) -> Result<PathBuf, ApiError> {
    let invalid = |reason: String| ApiError::InvalidArgument {
        parameter: "volume".into(),
        reason,
    };
    if volume.is_empty() || volume.len() > MAX_VOLUME_BYTES || volume.contains('\0') {
        return Err(invalid(format!(
            "must be 1 to {MAX_VOLUME_BYTES} bytes without NUL"
        )));
    }
    let managed_lv = matches!(
        settings.locate(std::path::Path::new(volume)),
        Some(crate::config::Located::Lv { .. })
    );
    let path =
        crate::ops::locate::volume_from_address(volume).map_err(|e| invalid(e.to_string()))?;
    if !path.is_absolute() && !managed_lv {
        return Err(invalid(format!(
            "{:?} is neither an absolute path nor VG/LV of a managed volume group",
            volume.escape_debug().to_string()
        )));
    }
    if path.as_os_str().len() > MAX_VOLUME_BYTES {
        return Err(invalid(format!(
            "must name at most {MAX_VOLUME_BYTES} bytes"
        )));
    }
    Ok(path)
}

/// A volume parameter ([`volume_arg`]) resolved to its pool once, for the calls that
/// act on a volume of a pool; a path outside every pool is refused as before.
pub(super) fn named_volume(
    settings: &Settings,
    volume: &str,
) -> Result<crate::ops::locate::Named, ApiError> {
    let path = volume_arg(settings, volume)?;
    Ok(crate::ops::locate::name(settings, &path)?)
}

pub(super) fn mode_arg(mode: &str) -> Result<Mode, ApiError> {
    mode.parse().map_err(
        |e: crate::decide::labels::UnknownMode| ApiError::InvalidArgument {
            parameter: "mode".into(),
            reason: e.to_string(),
        },
    )
}

pub(super) fn one_fd(mut fds: Vec<OwnedFd>) -> Result<OwnedFd, ApiError> {
    match fds.len() {
        1 => Ok(fds.remove(0)),
        n => Err(ApiError::InvalidArgument {
            parameter: "fds".into(),
            reason: format!("exactly one file descriptor must be passed, got {n}"),
        }),
    }
}

/// Largest page `ListVolumes` returns (replies over ~256 KiB serialize slowly).
pub const MAX_PAGE: u64 = 500;

/// Largest page `ListGuests` returns. zlink 0.8 grows a connection's write buffer 4 KiB
/// at a time and serializes the whole reply again after each step, so the first large
/// reply on a connection costs time quadratic in its size (500 guests, ~100 KiB: 1.1 s;
/// 100 guests: 0.05 s, debug build): pages stay small.
pub const MAX_GUEST_PAGE: u64 = 100;

/// Checks `ListVolumes`'s filters.
pub(super) fn volume_filter(
    prefix: Option<String>,
    format: Option<String>,
    state: Option<String>,
) -> Result<crate::ops::listing::Filter, ApiError> {
    crate::ops::listing::Filter::new(prefix, format, state).map_err(|e| ApiError::InvalidArgument {
        parameter: e.parameter.into(),
        reason: e.reason,
    })
}

/// Checks `CreateVolume`'s format: `raw` or `qcow2`.
pub(super) fn volume_format(format: &str) -> Result<crate::observe::image::Format, ApiError> {
    crate::ops::lifecycle::creatable_format(format).ok_or_else(|| ApiError::InvalidArgument {
        parameter: "format".into(),
        reason: format!("{format:?}: {}", crate::ops::lifecycle::ONLY_CREATABLE),
    })
}
