//! The one place that decides labels: which label a volume must carry given its
//! attachments, and which new attachments are allowed.
//!
//! Everything here is pure: no syscalls, no database. The reconciler, the CLI and the
//! udev hook all call these functions.

pub use crate::fsys::FileId;
use std::fmt;
use std::str::FromStr;

use crate::decide::context::{Context, Pair};

/// How a guest uses a volume.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Private read/write: the image context with the guest's categories.
    Rw,
    /// Read/write for several guests: the image context at `s0`.
    Shared,
    /// Read-only content: the content context at `s0`.
    Ro,
}

impl Mode {
    /// The name used in the CLI, the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Rw => "rw",
            Mode::Shared => "shared",
            Mode::Ro => "ro",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name that is not `rw`, `ro` or `shared`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("mode {0:?} is not one of rw, ro, shared")]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, UnknownMode> {
        match s {
            "rw" => Ok(Mode::Rw),
            "shared" => Ok(Mode::Shared),
            "ro" => Ok(Mode::Ro),
            other => Err(UnknownMode(other.to_owned())),
        }
    }
}

/// The mode of a backing-file hold: a guest reads the backing files of an overlay it
/// holds, whatever the overlay's mode.
pub const BACKING_MODE: Mode = Mode::Ro;

/// One guest's hold on a volume, as the label decision needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// The guest's UUID.
    pub guest: String,
    /// The guest's MCS pair.
    pub pair: Pair,
    /// How it uses the volume.
    pub mode: Mode,
    /// The file it attached (a dir pool's volume); `None` for LVs and attachments made
    /// before files were recorded.
    pub file: Option<FileId>,
    /// The host it holds the volume on, when that is another host of the cluster
    /// (`None`: this one). A shared pool's volume may be held on several hosts.
    pub host: Option<String>,
    /// The label the domain's XML gives this disk itself (`<source><seclabel
    /// model='selinux' relabel='yes'><label>`), instead of the one its mode decides.
    pub label: Option<Context>,
}

impl Holder {
    /// Whether this attachment is about `file` (the file now at the volume's name).
    pub fn holds(&self, file: Option<FileId>) -> bool {
        match (self.file, file) {
            (Some(held), Some(now)) => held == now,
            // LVs, and attachments recorded before files were: by name.
            (None, _) => true,
            (Some(_), None) => false,
        }
    }
}

/// The base contexts guests' labels are built from (from the policy or the config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestContexts {
    /// Image context (`svirt_image_t`); with a guest's pair for `rw`, at `s0` for `shared`.
    pub image: Context,
    /// Content context (`virt_content_t`) for read-only media, at `s0`.
    pub content: Context,
    /// Process context (`svirt_t`) that QEMU runs as, with the guest's pair.
    pub process: Context,
}

impl GuestContexts {
    /// The label of a guest's private images: the image context with its pair.
    pub fn image_label(&self, pair: Pair) -> Context {
        self.at_level(&self.image, &pair.level())
    }

    /// The label QEMU runs as for this guest: the process context with its pair.
    pub fn process_label(&self, pair: Pair) -> Context {
        self.at_level(&self.process, &pair.level())
    }

    /// The label of volumes shared read/write: the image context at `s0`.
    pub fn shared_label(&self) -> Context {
        self.at_level(&self.image, "s0")
    }

    /// The label of read-only content: the content context at `s0`.
    pub fn content_label(&self) -> Context {
        self.at_level(&self.content, "s0")
    }

    fn at_level(&self, base: &Context, level: &str) -> Context {
        // Both parts were validated: a valid context with a valid level is valid.
        base.with_level(level)
            .expect("a validated context at a valid level")
    }
}

/// What a volume should carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// No guest holds it: the pool's resting label (configured or file_contexts default).
    Resting,
    /// This label.
    Label(Context),
}

/// A set of attachments that cannot be labeled (`rw` together with anything else).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("volume is attached rw to guest {rw_guest} and also to {others} other attachment(s)")]
pub struct Conflict {
    /// The guest holding it `rw`.
    pub rw_guest: String,
    /// How many other attachments there are.
    pub others: usize,
}

/// The label a volume must carry given everyone who holds it.
///
/// - none → resting label;
/// - a holder's own label (a disk's `<seclabel>` in its domain XML) → that label
///   (every holder has the same one: [`check_attach`]);
/// - exactly one `rw` → that guest's image label;
/// - any `shared`, no `rw` → the shared image label;
/// - only `ro` → the content label;
/// - `rw` with anything else → a conflict (it is refused at attach time, so it only
///   appears in a state edited by hand; the volume is then left as it is).
///
/// One guest holding a volume on two hosts (while it migrates) is one holder.
pub fn desired_label(holders: &[Holder], contexts: &GuestContexts) -> Result<Target, Conflict> {
    if let Some(rw) = holders.iter().find(|h| h.mode == Mode::Rw) {
        let others = holders.iter().filter(|h| h.guest != rw.guest).count();
        if others > 0 {
            return Err(Conflict {
                rw_guest: rw.guest.clone(),
                others,
            });
        }
        return Ok(Target::Label(
            rw.label
                .clone()
                .unwrap_or_else(|| contexts.image_label(rw.pair)),
        ));
    }
    if let Some(own) = holders.iter().find_map(|h| h.label.clone()) {
        return Ok(Target::Label(own));
    }
    if holders.iter().any(|h| h.mode == Mode::Shared) {
        return Ok(Target::Label(contexts.shared_label()));
    }
    if holders.is_empty() {
        return Ok(Target::Resting);
    }
    Ok(Target::Label(contexts.content_label()))
}

/// Why a volume cannot be attached: the guest that blocks it (the message completes
/// "volume X ...").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttachRefusal {
    /// Another guest holds it rw.
    #[error("is attached rw to guest {guest}{}", on_host(host))]
    HeldRw {
        /// The holder.
        guest: String,
        /// The host it holds it on, when another host of the cluster.
        host: Option<String>,
    },
    /// rw was asked while another guest holds it in `mode`.
    #[error(
        "is attached {mode} to guest {guest}{}; rw needs sole use",
        on_host(host)
    )]
    NotSole {
        /// The other holder.
        guest: String,
        /// Its mode.
        mode: Mode,
        /// The host it holds it on, when another host of the cluster.
        host: Option<String>,
    },
    /// Another guest uses it with another label than the one asked (a disk's own
    /// label is one label for every guest that uses the file).
    #[error(
        "is used by guest {guest}{} with {}; one file has one label",
        on_host(host),
        label_shown(label)
    )]
    OtherLabel {
        /// The other holder.
        guest: String,
        /// Its own label, when it has one.
        label: Option<String>,
        /// The host it holds it on, when another host of the cluster.
        host: Option<String>,
    },
}

/// What a label is, in a refusal: the label, or "the label its mode decides".
fn label_shown(label: &Option<String>) -> String {
    label.as_ref().map_or_else(
        || "the label its mode decides".into(),
        |l| format!("label {l}"),
    )
}

/// " on host NAME" for a holder on another host, else nothing.
fn on_host(host: &Option<String>) -> String {
    host.as_ref()
        .map(|h| format!(" on host {h}"))
        .unwrap_or_default()
}

/// Whether `guest` may hold a volume in `mode` given the other holders.
///
/// The guest's own previous attachment does not count: attaching again changes its mode.
/// `label`: the disk's own label, when its domain XML gives one; every guest of a file
/// must then ask the same (and none may ask one while others use the file without).
pub fn check_attach(
    existing: &[Holder],
    guest: &str,
    mode: Mode,
    label: Option<&Context>,
) -> Result<(), AttachRefusal> {
    let others = existing.iter().filter(|h| h.guest != guest);
    for other in others {
        if other.label.as_ref() != label && other.mode != Mode::Rw && mode != Mode::Rw {
            return Err(AttachRefusal::OtherLabel {
                guest: other.guest.clone(),
                label: other.label.as_ref().map(|l| l.as_str().to_owned()),
                host: other.host.clone(),
            });
        }
        if other.mode == Mode::Rw {
            return Err(AttachRefusal::HeldRw {
                guest: other.guest.clone(),
                host: other.host.clone(),
            });
        }
        if mode == Mode::Rw {
            return Err(AttachRefusal::NotSole {
                guest: other.guest.clone(),
                mode: other.mode,
                host: other.host.clone(),
            });
        }
    }
    Ok(())
}

/// The refpolicy's sVirt contexts, for unit tests.
#[cfg(test)]
pub(crate) fn test_contexts() -> GuestContexts {
    GuestContexts {
        image: "system_u:object_r:svirt_image_t:s0".parse().unwrap(),
        content: "system_u:object_r:virt_content_t:s0".parse().unwrap(),
        process: "system_u:system_r:svirt_t:s0".parse().unwrap(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contexts() -> GuestContexts {
        test_contexts()
    }

    fn holder(guest: &str, a: u16, b: u16, mode: Mode) -> Holder {
        Holder {
            guest: guest.into(),
            pair: Pair::new(a, b).unwrap(),
            mode,
            file: None,
            host: None,
            label: None,
        }
    }

    fn label(t: Result<Target, Conflict>) -> String {
        match t.unwrap() {
            Target::Label(c) => c.to_string(),
            Target::Resting => "resting".into(),
        }
    }

    #[test]
    fn no_attachment_rests() {
        assert_eq!(label(desired_label(&[], &contexts())), "resting");
    }

    #[test]
    fn rw_gets_the_guests_pair() {
        let h = [holder("g1", 3, 870, Mode::Rw)];
        assert_eq!(
            label(desired_label(&h, &contexts())),
            "system_u:object_r:svirt_image_t:s0:c3,c870"
        );
    }

    #[test]
    fn shared_wins_over_ro_and_has_no_categories() {
        let h = [
            holder("g1", 1, 2, Mode::Ro),
            holder("g2", 3, 4, Mode::Shared),
        ];
        assert_eq!(
            label(desired_label(&h, &contexts())),
            "system_u:object_r:svirt_image_t:s0"
        );
    }

    #[test]
    fn only_ro_is_content() {
        let h = [holder("g1", 1, 2, Mode::Ro), holder("g2", 3, 4, Mode::Ro)];
        assert_eq!(
            label(desired_label(&h, &contexts())),
            "system_u:object_r:virt_content_t:s0"
        );
    }

    #[test]
    fn rw_with_another_holder_is_a_conflict() {
        let h = [holder("g1", 1, 2, Mode::Rw), holder("g2", 3, 4, Mode::Ro)];
        let err = desired_label(&h, &contexts()).unwrap_err();
        assert_eq!(err.rw_guest, "g1");
    }

    #[test]
    fn attach_rules() {
        let ro = [holder("g1", 1, 2, Mode::Ro)];
        assert!(check_attach(&ro, "g2", Mode::Ro, None).is_ok());
        assert!(check_attach(&ro, "g2", Mode::Shared, None).is_ok());
        assert_eq!(
            check_attach(&ro, "g2", Mode::Rw, None),
            Err(AttachRefusal::NotSole {
                guest: "g1".into(),
                mode: Mode::Ro,
                host: None,
            })
        );
        // The holder itself may change its mode.
        assert!(check_attach(&ro, "g1", Mode::Rw, None).is_ok());
        let rw = [holder("g1", 1, 2, Mode::Rw)];
        assert_eq!(
            check_attach(&rw, "g2", Mode::Ro, None)
                .unwrap_err()
                .to_string(),
            "is attached rw to guest g1"
        );
        let mut elsewhere = holder("g1", 1, 2, Mode::Rw);
        elsewhere.host = Some("b".into());
        assert_eq!(
            check_attach(&[elsewhere.clone()], "g2", Mode::Ro, None)
                .unwrap_err()
                .to_string(),
            "is attached rw to guest g1 on host b"
        );
        // The same guest on another host (a migration) is the guest itself.
        assert!(check_attach(&[elsewhere], "g1", Mode::Rw, None).is_ok());
    }

    #[test]
    fn a_disks_own_label_is_its_label_in_every_mode() {
        let c = contexts();
        let custom: Context = "system_u:object_r:svirt_image_custom_t:s0:c41,c264"
            .parse()
            .unwrap();
        for mode in [Mode::Rw, Mode::Shared, Mode::Ro] {
            let own = Holder {
                label: Some(custom.clone()),
                ..holder("g1", 1, 2, mode)
            };
            assert_eq!(
                desired_label(std::slice::from_ref(&own), &c),
                Ok(Target::Label(custom.clone()))
            );
            // Beside a backing-file hold (which has no label of its own).
            if mode != Mode::Rw {
                let backing = holder("g2", 3, 4, Mode::Ro);
                assert_eq!(
                    desired_label(&[backing, own], &c),
                    Ok(Target::Label(custom.clone()))
                );
            }
        }
        let shared = Holder {
            label: Some(custom.clone()),
            ..holder("g1", 1, 2, Mode::Shared)
        };
        assert!(
            check_attach(
                std::slice::from_ref(&shared),
                "g2",
                Mode::Shared,
                Some(&custom)
            )
            .is_ok()
        );
        assert!(matches!(
            check_attach(&[shared], "g2", Mode::Shared, None),
            Err(AttachRefusal::OtherLabel { .. })
        ));
        // rw keeps its own refusal.
        assert!(matches!(
            check_attach(
                &[holder("g1", 1, 2, Mode::Rw)],
                "g2",
                Mode::Ro,
                Some(&custom)
            ),
            Err(AttachRefusal::HeldRw { .. })
        ));
    }

    #[test]
    fn one_guest_on_two_hosts_is_one_holder() {
        let here = holder("g1", 1, 2, Mode::Rw);
        let mut there = here.clone();
        there.host = Some("b".into());
        assert_eq!(
            label(desired_label(&[here, there], &contexts())),
            "system_u:object_r:svirt_image_t:s0:c1,c2"
        );
    }
}
