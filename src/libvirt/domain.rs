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
    /// Its disks with a local source (file or block device).
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

/// One disk of a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// `<target dev>` (`vda`, `hdc`), to name it in messages.
    pub target: String,
    /// `<source file>` or `<source dev>`.
    pub source: PathBuf,
    /// How the guest uses it: `<readonly/>` (and read-only media) `ro`, `<shareable/>`
    /// `shared`, else `rw`.
    pub mode: Mode,
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
    let disks = child(domain, "devices")
        .map(|devices| {
            devices
                .children()
                .filter(|n| n.has_tag_name("disk"))
                .filter_map(disk)
                .collect()
        })
        .unwrap_or_default();
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
/// drives.
fn disk(node: roxmltree::Node<'_, '_>) -> Option<Disk> {
    let source = child(node, "source")?;
    let path = match node.attribute("type").unwrap_or("file") {
        "file" => source.attribute("file")?,
        "block" => source.attribute("dev")?,
        _ => return None,
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
    let target = child(node, "target")
        .and_then(|t| t.attribute("dev"))
        .unwrap_or(device)
        .to_owned();
    Some(Disk {
        target,
        source: PathBuf::from(path),
        mode,
    })
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
                ("vda", Mode::Rw),
                ("hdc", Mode::Ro),
                ("vdb", Mode::Shared),
                ("vdc", Mode::Ro)
            ]
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
}
