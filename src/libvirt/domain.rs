//! What the agent needs of a libvirt domain's XML (as a qemu hook receives it on
//! stdin): its identity, its SELinux label, and its disks. Pure: no I/O.

use std::path::PathBuf;

use crate::decide::context::{Context, Pair};
use crate::decide::labels::Mode;

/// Largest domain XML accepted on the hook's stdin.
pub const MAX_XML_BYTES: usize = 4 << 20;

/// A domain, as far as labels go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// libvirt's domain UUID, lower case.
    pub uuid: String,
    /// Its name.
    pub name: String,
    /// Its `<seclabel model='selinux'>`, if any.
    pub seclabel: Option<SecLabel>,
    /// Its disks with a local source (file or block device), then the files its
    /// `<os>` boots from (kernel, initrd, device tree, firmware and its variables, ACPI
    /// table), which QEMU opens as it opens disks.
    pub disks: Vec<Disk>,
}

/// A domain's SELinux label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecLabel {
    /// `dynamic`, `static` or `none`.
    pub kind: String,
    /// Whether libvirt relabels disks itself (`relabel='yes'`, the default).
    pub relabel: bool,
    /// The process label (`<label>`), when the XML carries one: always for `static`,
    /// and for `dynamic` once libvirt picked the pair (at `start`).
    pub label: Option<Context>,
}

impl SecLabel {
    /// The MCS pair of the process label, when it has exactly two categories.
    pub fn pair(&self) -> Option<Pair> {
        let cats: Vec<u16> = self.label.as_ref()?.high_categories().iter().collect();
        match cats[..] {
            [a, b] => Pair::new(a, b),
            _ => None,
        }
    }
}

/// One disk of a domain, or one file its `<os>` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// `disk vda`, `disk hdc` (its `<target dev>`), or the `<os>` element (`kernel`,
    /// `initrd`, `dtb`, `loader`, `nvram`, `acpi table`): how messages name it.
    pub target: String,
    /// `<source file>` or `<source dev>`; empty for a volume of a libvirt pool.
    pub source: PathBuf,
    /// `<disk type='volume'>`: the libvirt pool and volume its `<source>` names (the
    /// hook finds the path: `libvirt::pools`).
    pub volume: Option<(String, String)>,
    /// How the guest uses it: `<readonly/>` (and read-only media) `ro`, `<shareable/>`
    /// `shared`, else `rw`. Of `<os>`: what boots it is read (`ro`: libvirt labels
    /// kernel, initrd, dtb and ACPI tables `virt_content_t`), its firmware variables
    /// written (`rw`: the guest's image label, as libvirt gives `<nvram>`), and a
    /// `<loader readonly='no'>` written too.
    pub mode: Mode,
    /// The disk's own SELinux label (`<source><seclabel model='selinux'
    /// relabel='yes'><label>`): libvirt gives the file exactly this label, and so does
    /// the agent. `relabel='no'` on a disk still leaves the labeling to the agent.
    pub label: Option<Context>,
}

/// Why a domain XML was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("domain XML: {0}")]
pub struct XmlError(pub String);

/// Parses a domain XML (`<domain>`, or libvirt's `<domstatus>` with one inside).
pub fn parse(xml: &str) -> Result<Domain, XmlError> {
    if xml.len() > MAX_XML_BYTES {
        return Err(XmlError(format!("larger than {MAX_XML_BYTES} bytes")));
    }
    let doc = roxmltree::Document::parse(xml).map_err(|e| XmlError(e.to_string()))?;
    let root = doc.root_element();
    let domain = if root.has_tag_name("domain") {
        root
    } else {
        child(root, "domain").ok_or_else(|| XmlError("no <domain> element".into()))?
    };
    let text_of = |name: &str| child(domain, name).and_then(|n| n.text()).map(str::trim);
    let uuid = text_of("uuid").ok_or_else(|| XmlError("no <uuid>".into()))?;
    let uuid = uuid::Uuid::try_parse(uuid)
        .map_err(|e| XmlError(format!("<uuid> {uuid:?}: {e}")))?
        .hyphenated()
        .to_string();
    let name = text_of("name")
        .ok_or_else(|| XmlError("no <name>".into()))?
        .to_owned();
    let seclabel = domain
        .children()
        .filter(|n| n.has_tag_name("seclabel"))
        .find(|n| n.attribute("model").is_none_or(|m| m == "selinux"))
        .map(|n| {
            let label = child(n, "label")
                .and_then(|l| l.text())
                .map(|t| {
                    t.trim()
                        .parse::<Context>()
                        .map_err(|e| XmlError(format!("<seclabel><label>: {e}")))
                })
                .transpose()?;
            Ok::<_, XmlError>(SecLabel {
                kind: n.attribute("type").unwrap_or("dynamic").to_owned(),
                relabel: n.attribute("relabel") != Some("no"),
                label,
            })
        })
        .transpose()?;
    let mut disks: Vec<Disk> = child(domain, "devices")
        .map(|devices| {
            devices
                .children()
                .filter(|n| n.has_tag_name("disk"))
                .filter_map(|n| disk(n).transpose())
                .collect::<Result<Vec<Disk>, XmlError>>()
        })
        .transpose()?
        .unwrap_or_default();
    if let Some(os) = child(domain, "os") {
        disks.extend(boot_files(os));
    }
    Ok(Domain {
        uuid,
        name,
        seclabel,
        disks,
    })
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|n| n.has_tag_name(name))
}

/// A `<disk>` with a local file or block source; `None` for network disks and empty
/// drives; an error for a label of its own that is not a valid context.
fn disk(node: roxmltree::Node<'_, '_>) -> Result<Option<Disk>, XmlError> {
    let Some(source) = child(node, "source") else {
        return Ok(None);
    };
    let named = match node.attribute("type").unwrap_or("file") {
        "file" => source.attribute("file").map(|f| (f, None)),
        "block" => source.attribute("dev").map(|d| (d, None)),
        "volume" => source
            .attribute("pool")
            .zip(source.attribute("volume"))
            .map(|(p, v)| ("", Some((p.to_owned(), v.to_owned())))),
        _ => None,
    };
    let Some((path, volume)) = named else {
        return Ok(None);
    };
    let device = node.attribute("device").unwrap_or("disk");
    let readonly = child(node, "readonly").is_some() || device == "cdrom";
    let mode = if readonly {
        Mode::Ro
    } else if child(node, "shareable").is_some() {
        Mode::Shared
    } else {
        Mode::Rw
    };
    let target = format!(
        "disk {}",
        child(node, "target")
            .and_then(|t| t.attribute("dev"))
            .unwrap_or(device)
    );
    let label = own_label(source).map_err(|e| XmlError(format!("{target}: {e}")))?;
    Ok(Some(Disk {
        target,
        source: PathBuf::from(path),
        volume,
        mode,
        label,
    }))
}

/// The label a disk's `<source>` gives it: `<seclabel model='selinux'>` (the model may
/// be left out) with `relabel` not `no` and a `<label>`.
fn own_label(source: roxmltree::Node<'_, '_>) -> Result<Option<Context>, String> {
    let seclabel = source
        .children()
        .filter(|n| n.has_tag_name("seclabel"))
        .find(|n| {
            n.attribute("model").is_none_or(|m| m == "selinux")
                && n.attribute("relabel") != Some("no")
        });
    seclabel
        .and_then(|s| child(s, "label"))
        .and_then(|l| l.text())
        .map(|t| {
            t.trim()
                .parse::<Context>()
                .map_err(|e| format!("<seclabel><label>: {e}"))
        })
        .transpose()
}

/// The local files `<os>` names: `<kernel>`, `<initrd>`, `<dtb>` and the ACPI
/// `<table>`s are read; `<loader>` is read unless `readonly='no'`; `<nvram>` (a path,
/// or `<source file>`/`<source dev>` in libvirt's newer form) is written.
fn boot_files(os: roxmltree::Node<'_, '_>) -> Vec<Disk> {
    let file = |n: roxmltree::Node<'_, '_>| {
        n.text()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .or_else(|| {
                child(n, "source")
                    .and_then(|s| s.attribute("file").or_else(|| s.attribute("dev")))
                    .map(str::to_owned)
            })
    };
    let mut files = Vec::new();
    for n in os.children().filter(roxmltree::Node::is_element) {
        let (what, mode) = match n.tag_name().name() {
            "kernel" => ("kernel", Mode::Ro),
            "initrd" => ("initrd", Mode::Ro),
            "dtb" => ("dtb", Mode::Ro),
            "loader" if n.attribute("readonly") == Some("no") => ("loader", Mode::Rw),
            "loader" => ("loader", Mode::Ro),
            "nvram" => ("nvram", Mode::Rw),
            "acpi" => {
                for table in n.children().filter(|t| t.has_tag_name("table")) {
                    if let Some(path) = file(table) {
                        files.push(Disk {
                            target: "acpi table".into(),
                            source: PathBuf::from(path),
                            volume: None,
                            mode: Mode::Ro,
                            label: None,
                        });
                    }
                }
                continue;
            }
            _ => continue,
        };
        // A network nvram has no local file (a loader's type is rom or pflash).
        if what == "nvram" && n.attribute("type") == Some("network") {
            continue;
        }
        if let Some(path) = file(n) {
            files.push(Disk {
                target: what.into(),
                source: PathBuf::from(path),
                volume: None,
                mode,
                label: None,
            });
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r"<domain type='qemu' id='1'>
  <name>web</name>
  <uuid>EE04AAE6-66cd-4bc2-bbba-00278db37e25</uuid>
  <devices>
    <disk type='file' device='disk'>
      <source file='/var/lib/libvirt/images/web.qcow2' index='2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <source file='/iso/debian.iso'/>
      <target dev='hdc' bus='ide'/>
    </disk>
    <disk type='block' device='disk'>
      <source dev='/dev/vg0/data'/>
      <target dev='vdb'/>
      <shareable/>
    </disk>
    <disk type='file' device='disk'>
      <source file='/var/lib/libvirt/images/base.img'/>
      <target dev='vdc'/>
      <readonly/>
    </disk>
    <disk type='network' device='disk'>
      <source protocol='nbd' name='x'/>
      <target dev='vdd'/>
    </disk>
    <disk type='volume' device='disk'>
      <source pool='default' volume='db.qcow2'/>
      <target dev='vde'/>
    </disk>
    <disk type='file' device='cdrom'><target dev='hdd'/></disk>
  </devices>
  <seclabel type='dynamic' model='dac' relabel='yes'/>
  <seclabel type='dynamic' model='selinux' relabel='yes'>
    <label>system_u:system_r:svirt_t:s0:c123,c456</label>
    <imagelabel>system_u:object_r:svirt_image_t:s0:c123,c456</imagelabel>
  </seclabel>
</domain>";

    #[test]
    fn a_running_domain_s_disks_and_label() {
        let d = parse(XML).unwrap();
        assert_eq!(d.uuid, "ee04aae6-66cd-4bc2-bbba-00278db37e25");
        assert_eq!(d.name, "web");
        let modes: Vec<(&str, Mode)> = d
            .disks
            .iter()
            .map(|d| (d.target.as_str(), d.mode))
            .collect();
        assert_eq!(
            modes,
            [
                ("disk vda", Mode::Rw),
                ("disk hdc", Mode::Ro),
                ("disk vdb", Mode::Shared),
                ("disk vdc", Mode::Ro),
                ("disk vde", Mode::Rw)
            ]
        );
        assert_eq!(
            d.disks[4].volume,
            Some(("default".to_owned(), "db.qcow2".to_owned()))
        );
        assert_eq!(d.disks[2].source, PathBuf::from("/dev/vg0/data"));
        let sec = d.seclabel.unwrap();
        assert_eq!(sec.kind, "dynamic");
        assert_eq!(sec.pair(), Pair::new(123, 456));
    }

    #[test]
    fn status_files_wrap_the_domain_and_bad_xml_is_an_error() {
        let status = format!("<domstatus state='running' pid='42'>{XML}</domstatus>");
        assert_eq!(parse(&status).unwrap().name, "web");
        assert!(parse("<domain><name>x</name></domain>").is_err(), "no uuid");
        assert!(parse("<domain").is_err());
        let bad_label = XML.replace("s0:c123,c456</label>", "s0:c999999</label>");
        assert!(parse(&bad_label).is_err());
        let no_selinux = XML.replace("model='selinux'", "model='apparmor'");
        assert_eq!(parse(&no_selinux).unwrap().seclabel, None);
    }

    #[test]
    fn what_os_boots_from_is_read_and_its_variables_written() {
        // libvirt's own case (tests/securityselinuxlabeldata/kernel.xml), with the
        // firmware, its variables, a device tree and an ACPI table added.
        let xml = r"<domain type='kvm'>
  <name>vm1</name>
  <uuid>c7b3edbd-edaf-9455-926a-d65c16db1800</uuid>
  <os>
    <type arch='x86_64' machine='pc-1.0'>hvm</type>
    <loader readonly='yes' type='pflash'>/pool/OVMF_CODE.fd</loader>
    <nvram>/pool/vm1_VARS.fd</nvram>
    <kernel>/vmlinuz.raw</kernel>
    <initrd>/initrd.raw</initrd>
    <dtb>/pool/board.dtb</dtb>
    <acpi><table type='slic'>/pool/slic.dat</table></acpi>
  </os>
  <seclabel model='selinux' type='dynamic' relabel='yes'>
    <label>system_u:system_r:svirt_t:s0:c41,c264</label>
  </seclabel>
</domain>";
        let d = parse(xml).unwrap();
        let files: Vec<(&str, &str, Mode)> = d
            .disks
            .iter()
            .map(|f| (f.target.as_str(), f.source.to_str().unwrap(), f.mode))
            .collect();
        assert_eq!(
            files,
            [
                ("loader", "/pool/OVMF_CODE.fd", Mode::Ro),
                ("nvram", "/pool/vm1_VARS.fd", Mode::Rw),
                ("kernel", "/vmlinuz.raw", Mode::Ro),
                ("initrd", "/initrd.raw", Mode::Ro),
                ("dtb", "/pool/board.dtb", Mode::Ro),
                ("acpi table", "/pool/slic.dat", Mode::Ro),
            ]
        );
        // libvirt's newer nvram form, a writable loader, a network nvram.
        let newer = xml
            .replace(
                "<nvram>/pool/vm1_VARS.fd</nvram>",
                "<nvram type='file'><source file='/pool/new_VARS.fd'/></nvram>",
            )
            .replace("readonly='yes'", "readonly='no'");
        let d = parse(&newer).unwrap();
        assert_eq!(d.disks[0].mode, Mode::Rw);
        assert_eq!(d.disks[1].source, PathBuf::from("/pool/new_VARS.fd"));
        let network = xml.replace(
            "<nvram>/pool/vm1_VARS.fd</nvram>",
            "<nvram type='network'><source protocol='iscsi' name='x'/></nvram>",
        );
        assert!(
            parse(&network)
                .unwrap()
                .disks
                .iter()
                .all(|f| f.target != "nvram")
        );
    }
}
