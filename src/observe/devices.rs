//! LV device nodes as udev knows them: enumerating them, monitoring their events, and
//! deciding which belong to a managed volume group.
//!
//! libudev values are copied into owned [`LvNode`]s on the thread that owns libudev;
//! the decision ("is this node one of ours?") is [`lv_node_from`], a pure function of
//! the properties, which tests call with properties they build by hand. The same
//! function serves the startup scan, the monitor and the udev RUN hook.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use crate::observe::lvm;

/// The block device node of a top-level LV of some volume group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LvNode {
    /// The node itself, e.g. `/dev/dm-3` (never a `/dev/VG/LV` link).
    pub devnode: PathBuf,
    /// Its device number, checked against the node before labeling.
    pub devnum: u64,
    /// `DM_VG_NAME`.
    pub vg: String,
    /// `DM_LV_NAME`.
    pub lv: String,
    /// The LV uuid from `DM_UUID`, without dashes.
    pub lv_uuid: String,
}

/// Builds an [`LvNode`] from a device's udev properties, if it is the node of a
/// top-level LV whose volume group `managed` accepts.
///
/// Accepted when `DM_UUID` is `LVM-<vg uuid><lv uuid>`, `DM_VG_NAME` and `DM_LV_NAME`
/// are valid names, and lvm2 did not mark it private
/// (`DM_UDEV_DISABLE_OTHER_RULES_FLAG=1`, set for hidden and layered devices).
pub fn lv_node_from(
    property: &dyn Fn(&str) -> Option<String>,
    devnode: Option<PathBuf>,
    devnum: Option<u64>,
    managed: &dyn Fn(&str) -> bool,
) -> Option<LvNode> {
    if property("DM_UDEV_DISABLE_OTHER_RULES_FLAG").as_deref() == Some("1") {
        return None;
    }
    let vg = property("DM_VG_NAME").filter(|v| lvm::is_valid_name(v))?;
    if !managed(&vg) {
        return None;
    }
    let lv = property("DM_LV_NAME").filter(|v| lvm::is_valid_name(v))?;
    let dm_uuid = property("DM_UUID")?;
    let lv_uuid = lvm::lv_uuid_from_dm_uuid(&dm_uuid)?.to_owned();
    let devnode = devnode.filter(|p| {
        p.is_absolute()
            && p.starts_with("/dev")
            && !p.components().any(|c| c == std::path::Component::ParentDir)
    })?;
    Some(LvNode {
        devnode,
        devnum: devnum?,
        vg,
        lv,
        lv_uuid,
    })
}

fn lv_node_of_device(device: &udev::Device, managed: &dyn Fn(&str) -> bool) -> Option<LvNode> {
    let property = |name: &str| {
        device
            .property_value(name)
            .and_then(OsStr::to_str)
            .map(str::to_owned)
    };
    lv_node_from(
        &property,
        device.devnode().map(PathBuf::from),
        device.devnum(),
        managed,
    )
}

/// The LV nodes udev knows of, in volume groups `managed` accepts.
pub fn enumerate(managed: &dyn Fn(&str) -> bool) -> std::io::Result<Vec<LvNode>> {
    let mut enumerator = udev::Enumerator::new()?;
    enumerator.match_subsystem("block")?;
    enumerator.match_is_initialized()?;
    let mut nodes: Vec<LvNode> = enumerator
        .scan_devices()?
        .filter_map(|d| lv_node_of_device(&d, managed))
        .collect();
    nodes.sort_by(|a, b| a.devnode.cmp(&b.devnode));
    Ok(nodes)
}

/// The udev monitor of block devices (udev's own netlink group, where the DM_*
/// properties set by lvm2's rules are visible; the kernel group has none).
pub struct Monitor {
    socket: udev::MonitorSocket,
}
impl Monitor {
    /// Starts listening for block device events.
    pub fn new() -> std::io::Result<Monitor> {
        let socket = udev::MonitorBuilder::new()?
            .match_subsystem("block")?
            .listen()?;
        Ok(Monitor { socket })
    }

    /// The socket to poll on.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Every pending `add`/`change` event of a managed LV node (never blocks).
    pub fn read(&mut self, managed: &dyn Fn(&str) -> bool) -> Vec<LvNode> {
        self.socket
            .iter()
            .filter(|event| {
                matches!(
                    event.event_type(),
                    udev::EventType::Add | udev::EventType::Change
                )
            })
            .filter_map(|event| lv_node_of_device(&event.device(), managed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const DM_UUID: &str = "LVM-wLLW1TNQgF5x9Xj6mfvgffBwiQ7HaG4I3ZVTmG8AySeZt7LsNND852ZTFzTifIKU";

    fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn decide(p: &HashMap<String, String>) -> Option<LvNode> {
        lv_node_from(
            &|k| p.get(k).cloned(),
            Some("/dev/dm-3".into()),
            Some(0xfd03),
            &|vg| vg == "vg0",
        )
    }

    #[test]
    fn an_lv_of_a_managed_vg_is_ours() {
        let p = props(&[
            ("DM_VG_NAME", "vg0"),
            ("DM_LV_NAME", "web"),
            ("DM_UUID", DM_UUID),
        ]);
        let node = decide(&p).unwrap();
        assert_eq!(node.lv_uuid, "3ZVTmG8AySeZt7LsNND852ZTFzTifIKU");
        assert_eq!(node.devnode, PathBuf::from("/dev/dm-3"));
        assert_eq!((node.vg.as_str(), node.lv.as_str()), ("vg0", "web"));
    }

    #[test]
    fn others_are_not() {
        let base = [
            ("DM_VG_NAME", "vg0"),
            ("DM_LV_NAME", "web"),
            ("DM_UUID", DM_UUID),
        ];
        let mut unmanaged = props(&base);
        unmanaged.insert("DM_VG_NAME".into(), "other".into());
        assert_eq!(decide(&unmanaged), None);
        let mut private = props(&base);
        private.insert("DM_UDEV_DISABLE_OTHER_RULES_FLAG".into(), "1".into());
        assert_eq!(decide(&private), None);
        let mut crypt = props(&base);
        crypt.insert("DM_UUID".into(), "CRYPT-LUKS2-abc".into());
        assert_eq!(decide(&crypt), None);
        let mut layer = props(&base);
        layer.insert("DM_UUID".into(), format!("{DM_UUID}-real"));
        assert_eq!(decide(&layer), None);
        let mut no_lv = props(&base);
        no_lv.remove("DM_LV_NAME");
        assert_eq!(decide(&no_lv), None);
        let p = props(&base);
        let outside = lv_node_from(
            &|k| p.get(k).cloned(),
            Some("/dev/../etc/passwd".into()),
            Some(0xfd03),
            &|vg| vg == "vg0",
        );
        assert_eq!(outside, None, "a DEVNAME leaving /dev is refused");
    }
}
