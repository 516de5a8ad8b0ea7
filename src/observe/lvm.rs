//! lvm2, the only module that runs it: `invoke_*` runs a report command (`run::Program`,
//! with a timeout), `parse_*` turns its JSON into the few fields used (tested against
//! real captured output in `tests/fixtures/`).

use std::time::Duration;

use serde::Deserialize;

use crate::run::{Program, RunError};

/// How long an lvm2 command may run before it is killed.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The `lvs` binary (an lvm2 front end; `lvm lvs` does the same).
const LVS: &str = "lvs";
const VGS: &str = "vgs";

/// Why an lvm2 command gave no usable answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LvmError {
    /// The volume group does not exist.
    #[error("volume group {0:?} not found")]
    NoSuchVg(String),
    /// The command could not be run, ran too long or failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The command's output is not the JSON report expected.
    #[error("unexpected output of {what}: {error}")]
    Malformed {
        /// Which command.
        what: &'static str,
        /// What is wrong.
        error: String,
    },
}

/// One logical volume, as `lvs` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LvInfo {
    /// Its volume group.
    pub vg: String,
    /// Its name.
    pub name: String,
    /// Its uuid without dashes (as in `DM_UUID`).
    pub uuid: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its tags.
    pub tags: Vec<String>,
}

/// An LV uuid without its dashes: the 32 characters `DM_UUID` carries.
pub fn normalize_uuid(uuid: &str) -> String {
    uuid.chars().filter(|c| *c != '-').collect()
}

/// The LV uuid inside a device-mapper uuid `LVM-<vg uuid><lv uuid>`, if it is one of a
/// top-level LV (layered devices such as `-real` or `-cow` carry a suffix and are not
/// volumes).
pub fn lv_uuid_from_dm_uuid(dm_uuid: &str) -> Option<&str> {
    let ids = dm_uuid.strip_prefix("LVM-")?;
    (ids.len() == 64 && ids.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| &ids[32..])
}

/// Whether `name` is a valid VG or LV name (lvm2's rule: letters, digits, `+_.-`, not
/// starting with `-`, not `.` or `..`).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 127
        && !name.starts_with('-')
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+_.-".contains(&b))
}

/// Runs `lvs` for one VG and returns its LVs.
pub fn invoke_lvs(vg: &str, extra_args: &[String]) -> Result<Vec<LvInfo>, LvmError> {
    let mut args: Vec<String> = vec![
        "--reportformat".into(),
        "json".into(),
        "--units".into(),
        "b".into(),
        "--nosuffix".into(),
        "-o".into(),
        "vg_name,lv_name,lv_uuid,lv_size,lv_tags".into(),
    ];
    args.extend(extra_args.iter().cloned());
    args.push(vg.into());
    let output = run(LVS, &args, TIMEOUT).map_err(|e| match e {
        LvmError::Run(RunError::Failed { ref stderr, .. }) if stderr.contains("not found") => {
            LvmError::NoSuchVg(vg.into())
        }
        e => e,
    })?;
    parse_lvs(&output)
}

/// Runs `vgs` for one VG and returns its size and free bytes.
pub fn invoke_vg_space(vg: &str, extra_args: &[String]) -> Result<(u64, u64), LvmError> {
    let mut args: Vec<String> = [
        "--reportformat",
        "json",
        "--units",
        "b",
        "--nosuffix",
        "-o",
        "vg_size,vg_free",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra_args.iter().cloned());
    args.push(vg.into());
    parse_vg_space(&run(VGS, &args, TIMEOUT)?)
}

#[derive(Deserialize)]
struct VgSection {
    #[serde(default)]
    vg: Vec<RawVgSpace>,
}

#[derive(Deserialize)]
struct RawVgSpace {
    vg_size: String,
    vg_free: String,
}

/// Parses `vgs --reportformat json --units b --nosuffix -o vg_size,vg_free` for one VG.
pub fn parse_vg_space(json: &str) -> Result<(u64, u64), LvmError> {
    let malformed = |error: String| LvmError::Malformed { what: "vgs", error };
    let report: Report<VgSection> =
        serde_json::from_str(json).map_err(|e| malformed(e.to_string()))?;
    let vg = report
        .report
        .into_iter()
        .flat_map(|s| s.vg)
        .next()
        .ok_or_else(|| malformed("no volume group in the report".into()))?;
    let number = |v: &str| {
        v.parse::<u64>()
            .map_err(|_| malformed(format!("{v:?} is not a number")))
    };
    Ok((number(&vg.vg_size)?, number(&vg.vg_free)?))
}

#[derive(Deserialize)]
struct Report<T> {
    report: Vec<T>,
}

#[derive(Deserialize)]
struct LvSection {
    #[serde(default)]
    lv: Vec<RawLv>,
}

/// lvm2 reports every value as a string.
#[derive(Deserialize)]
struct RawLv {
    vg_name: String,
    lv_name: String,
    lv_uuid: String,
    lv_size: String,
    #[serde(default)]
    lv_tags: String,
}

/// Parses `lvs --reportformat json --units b --nosuffix -o vg_name,lv_name,lv_uuid,lv_size,lv_tags`.
pub fn parse_lvs(json: &str) -> Result<Vec<LvInfo>, LvmError> {
    let malformed = |error: String| LvmError::Malformed { what: "lvs", error };
    let report: Report<LvSection> =
        serde_json::from_str(json).map_err(|e| malformed(e.to_string()))?;
    let mut lvs = Vec::new();
    for raw in report.report.into_iter().flat_map(|s| s.lv) {
        let size = raw.lv_size.parse().map_err(|_| {
            malformed(format!(
                "lv_size {:?} of {} is not a number",
                raw.lv_size, raw.lv_name
            ))
        })?;
        let uuid = normalize_uuid(&raw.lv_uuid);
        if uuid.len() != 32 || !is_valid_name(&raw.vg_name) || !is_valid_name(&raw.lv_name) {
            return Err(malformed(format!(
                "LV {}/{} with uuid {:?} is not well formed",
                raw.vg_name, raw.lv_name, raw.lv_uuid
            )));
        }
        let tags = raw
            .lv_tags
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        lvs.push(LvInfo {
            vg: raw.vg_name,
            name: raw.lv_name,
            uuid,
            size,
            tags,
        });
    }
    Ok(lvs)
}

/// Runs `program args` with `LVM_SUPPRESS_FD_WARNINGS=1`, killing it after `timeout`.
/// Returns stdout; a non-zero exit is an error carrying argv, status and stderr (without
/// lvm2's warning that activation is disabled, which says nothing about the failure).
pub fn run(program: &str, args: &[String], timeout: Duration) -> Result<String, LvmError> {
    let stdout = Program::new(program, args, timeout)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .stdout()
        .map_err(|e| match e {
            RunError::Failed {
                argv,
                status,
                stderr,
            } => RunError::Failed {
                argv,
                status,
                stderr: stderr
                    .split("; ")
                    .filter(|l| !l.starts_with("WARNING: Activation disabled"))
                    .collect::<Vec<_>>()
                    .join("; "),
            },
            e => e,
        })?;
    String::from_utf8(stdout).map_err(|_| LvmError::Malformed {
        what: "lvm2",
        error: "output is not UTF-8".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_LVS: &str = include_str!("../../tests/fixtures/lvs-two-lvs.json");

    #[test]
    fn parses_a_real_lvs_report() {
        let lvs = parse_lvs(TWO_LVS).unwrap();
        assert_eq!(lvs.len(), 2);
        assert_eq!(lvs[0].name, "lv1");
        assert_eq!(lvs[0].vg, "svtestvg");
        assert_eq!(lvs[0].uuid, "3ZVTmG8AySeZt7LsNND852ZTFzTifIKU");
        assert_eq!(lvs[0].size, 8 * 1024 * 1024);
        assert!(lvs[0].tags.is_empty());
        assert_eq!(lvs[1].tags, vec!["vm_web".to_string()]);
    }

    #[test]
    fn malformed_reports_are_errors_not_panics() {
        for bad in [
            "",
            "not json",
            r#"{"report": 5}"#,
            r#"{"report":[{"lv":[{"vg_name":"v","lv_name":"l","lv_uuid":"short","lv_size":"1"}]}]}"#,
            r#"{"report":[{"lv":[{"vg_name":"v","lv_name":"l","lv_uuid":"3ZVTmG-8AyS-eZt7-LsNN-D852-ZTFz-TifIKU","lv_size":"8m"}]}]}"#,
            r#"{"report":[{"lv":[{"vg_name":"-v","lv_name":"l","lv_uuid":"3ZVTmG-8AyS-eZt7-LsNN-D852-ZTFz-TifIKU","lv_size":"1"}]}]}"#,
        ] {
            assert!(
                matches!(parse_lvs(bad), Err(LvmError::Malformed { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(parse_lvs(r#"{"report":[{"lv":[]}]}"#).unwrap(), vec![]);
    }

    #[test]
    fn dm_uuids_carry_the_lv_uuid() {
        let vg = "wLLW1TNQgF5x9Xj6mfvgffBwiQ7HaG4I";
        let lv = "3ZVTmG8AySeZt7LsNND852ZTFzTifIKU";
        assert_eq!(lv_uuid_from_dm_uuid(&format!("LVM-{vg}{lv}")), Some(lv));
        assert_eq!(lv_uuid_from_dm_uuid(&format!("LVM-{vg}{lv}-real")), None);
        assert_eq!(lv_uuid_from_dm_uuid(&format!("CRYPT-{vg}{lv}")), None);
        assert_eq!(lv_uuid_from_dm_uuid("LVM-"), None);
    }

    #[test]
    fn a_hanging_command_is_killed_at_the_timeout() {
        let started = std::time::Instant::now();
        let err = run("sleep", &["30".into()], Duration::from_millis(200)).unwrap_err();
        assert!(
            matches!(err, LvmError::Run(RunError::Timeout { .. })),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let err = run("false", &[], TIMEOUT).unwrap_err();
        assert!(
            matches!(err, LvmError::Run(RunError::Failed { .. })),
            "{err}"
        );
        let err = run("/nonexistent/lvs", &[], TIMEOUT).unwrap_err();
        assert!(
            matches!(err, LvmError::Run(RunError::Spawn { .. })),
            "{err}"
        );
    }
}
