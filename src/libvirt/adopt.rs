//! `svirt-pool libvirt adopt NAME`: edit a defined domain so the agent owns the labels
//! of its pool disks (docs/libvirt.md, way 1): a static `<seclabel>` with the guest's
//! pair, and `relabel='no'` inside the `<source>` of each disk in a managed pool. The
//! XML is edited as text at the byte ranges the parser reports, so everything else in
//! it stays exactly as libvirt wrote it.

use std::path::Path;

use super::{domain, seclabel, virsh};
use crate::config::Settings;
use crate::decide::context::Context;
use crate::error::{Error, Result};
use crate::ops::{Caller, guests, locate};
use crate::run::Program;

/// The domain XML `xml` edited for the process label `process`; `is_pool_disk` tells
/// which disk sources the agent manages. Pure.
pub fn edit(xml: &str, process: &Context, is_pool_disk: &dyn Fn(&Path) -> bool) -> Result<String> {
    let doc =
        roxmltree::Document::parse(xml).map_err(|e| Error::Usage(format!("domain XML: {e}")))?;
    let dom = doc.root_element();
    if !dom.has_tag_name("domain") {
        return Err(Error::Usage("domain XML: the root is not <domain>".into()));
    }
    let selinux = |n: &roxmltree::Node<'_, '_>| {
        n.has_tag_name("seclabel") && n.attribute("model").is_none_or(|m| m == "selinux")
    };
    // (start, end, replacement) edits, applied from the last to the first. An existing
    // element is replaced where it stands (so adopting twice changes nothing more).
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let label_block = seclabel::domain_seclabel(process);
    let mut old_labels = dom.children().filter(|n| selinux(n));
    match old_labels.next() {
        Some(first) => {
            let at = first.range();
            edits.push((
                at.start,
                at.end,
                indent_block(&label_block, indentation(xml, at.start)),
            ));
            for extra in old_labels {
                let (start, end) = whole_lines(xml, extra.range());
                edits.push((start, end, String::new()));
            }
        }
        None => {
            let close = dom.range().end - "</domain>".len();
            if !xml[close..].starts_with("</domain>") {
                return Err(Error::Usage("domain XML: <domain> is empty".into()));
            }
            let block = indent_block(&label_block, "  ");
            edits.push((close, close, format!("  {block}\n")));
        }
    }
    let devices = dom.children().find(|n| n.has_tag_name("devices"));
    for disk in devices
        .iter()
        .flat_map(|d| d.children())
        .filter(|n| n.has_tag_name("disk"))
    {
        let Some(source) = disk.children().find(|n| n.has_tag_name("source")) else {
            continue;
        };
        let path = source.attribute("file").or_else(|| source.attribute("dev"));
        if !path.is_some_and(|p| is_pool_disk(Path::new(p))) {
            continue;
        }
        let mut old_labels = source.children().filter(|n| selinux(n));
        if let Some(first) = old_labels.next() {
            edits.push((
                first.range().start,
                first.range().end,
                seclabel::DISK_NO_RELABEL.into(),
            ));
            for extra in old_labels {
                let (start, end) = whole_lines(xml, extra.range());
                edits.push((start, end, String::new()));
            }
            continue;
        }
        let range = source.range();
        if xml[range.clone()].ends_with("/>") {
            // <source file='x'/> becomes <source file='x'>SECLABEL</source>
            let open_end = xml[..range.end - 2].trim_end().len();
            edits.push((
                open_end,
                range.end,
                format!(">{}</source>", seclabel::DISK_NO_RELABEL),
            ));
        } else {
            let close = range.end - "</source>".len();
            edits.push((close, close, seclabel::DISK_NO_RELABEL.to_string()));
        }
    }
    edits.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));
    let mut out = xml.to_owned();
    for (start, end, with) in edits {
        out.replace_range(start..end, &with);
    }
    Ok(out)
}

/// The white space that starts the line `pos` is on, up to `pos`.
fn indentation(xml: &str, pos: usize) -> &str {
    let line_start = xml[..pos].rfind('\n').map_or(0, |i| i + 1);
    let lead = &xml[line_start..pos];
    if lead.chars().all(char::is_whitespace) {
        lead
    } else {
        ""
    }
}

/// `text`'s lines, the ones after the first indented by `indent` (no final newline).
fn indent_block(text: &str, indent: &str) -> String {
    text.trim_end()
        .lines()
        .collect::<Vec<_>>()
        .join(&format!("\n{indent}"))
}

/// `range` widened to the white space before it on its line and the line break before
/// that, so removing it leaves no blank line.
fn whole_lines(xml: &str, range: std::ops::Range<usize>) -> (usize, usize) {
    let mut start = range.start;
    while start > 0 && matches!(xml.as_bytes()[start - 1], b' ' | b'\t') {
        start -= 1;
    }
    if start > 0 && xml.as_bytes()[start - 1] == b'\n' {
        start -= 1;
    }
    (start, range.end)
}

/// How long `diff` may take on two domain XMLs.
const DIFF_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A unified diff of `before` and `after` (`diff -u`), for people to read first.
pub fn diff(settings: &Settings, before: &str, after: &str) -> Result<String> {
    let a = tempfile_in_state(settings, "current", before)?;
    let b = tempfile_in_state(settings, "adopted", after)?;
    let a_path = a.to_string_lossy().into_owned();
    let b_path = b.to_string_lossy().into_owned();
    let args = [
        "-u", "--label", "current", "--label", "adopted", &a_path, &b_path,
    ];
    // diff exits 1 when the files differ: any status is an answer.
    let out = Program::new("diff", &args, DIFF_TIMEOUT).finish();
    let _ = std::fs::remove_file(&a);
    let _ = std::fs::remove_file(&b);
    let out = out.map_err(|e| Error::failed(format!("{e} (diffutils)")))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What `adopt` did or would do.
pub struct Adoption {
    /// The domain XML now.
    pub before: String,
    /// The domain XML as adopted.
    pub after: String,
    /// Whether it was defined in libvirt.
    pub applied: bool,
}

/// Defines the domain's guest and edits its inactive XML; with `apply`, defines the
/// edited XML in libvirt (`virsh define`).
pub fn adopt(settings: &Settings, name: &str, apply: bool) -> Result<Adoption> {
    let before = virsh::run(&["dumpxml", "--inactive", "--security-info", name])?;
    let d = domain::parse(&before).map_err(|e| Error::failed(e.to_string()))?;
    let guest = guests::define(settings, Caller::current(), &d.uuid, Some(&d.name))?;
    let process: Context = guest.process_label.parse().map_err(Error::failed)?;
    let after = edit(&before, &process, &|p| locate::is_managed(settings, p))?;
    if apply && after != before {
        let file = tempfile_in_state(settings, "define", &after)?;
        let defined = virsh::run(&["define", &file.to_string_lossy()]);
        let _ = std::fs::remove_file(&file);
        defined?;
    }
    Ok(Adoption {
        applied: apply && after != before,
        before,
        after,
    })
}

/// Writes `text` to a private file in the state directory; returns its path.
fn tempfile_in_state(settings: &Settings, what: &str, text: &str) -> Result<std::path::PathBuf> {
    crate::lock::ensure_state_dir(&settings.state_dir)?;
    let path = settings
        .state_dir
        .join(format!("adopt-{what}-{}.xml", std::process::id()));
    std::fs::write(&path, text).map_err(|e| Error::failed(format!("{}: {e}", path.display())))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = "<domain type='kvm'>
  <name>web</name>
  <uuid>ee04aae6-66cd-4bc2-bbba-00278db37e25</uuid>
  <devices>
    <disk type='file' device='disk'>
      <source file='/pool/web.qcow2'/>
      <target dev='vda'/>
    </disk>
    <disk type='file' device='disk'>
      <source file='/home/u/elsewhere.img'/>
      <target dev='vdb'/>
    </disk>
    <disk type='file' device='cdrom'>
      <source file='/pool/x.iso'>
        <seclabel model='selinux' relabel='yes'/>
      </source>
      <target dev='hdc'/>
    </disk>
  </devices>
  <seclabel type='dynamic' model='selinux' relabel='yes'/>
  <seclabel type='dynamic' model='dac' relabel='yes'/>
</domain>
";

    #[test]
    fn pool_disks_opt_out_and_the_domain_gets_the_guest_s_label() {
        let label: Context = "system_u:system_r:svirt_t:s0:c1,c2".parse().unwrap();
        let out = edit(XML, &label, &|p| p.starts_with("/pool")).unwrap();
        let d = domain::parse(&out).unwrap();
        let sec = d.seclabel.unwrap();
        assert_eq!(
            (sec.kind.as_str(), sec.label),
            ("static", Some(label.clone()))
        );
        assert_eq!(out.matches("model='selinux'").count(), 3, "{out}");
        assert!(
            out.contains(
                "<source file='/pool/web.qcow2'><seclabel model='selinux' relabel='no'/></source>"
            ),
            "{out}"
        );
        assert!(
            out.contains("<source file='/home/u/elsewhere.img'/>"),
            "{out}"
        );
        assert!(
            out.contains("<source file='/pool/x.iso'>\n        <seclabel model='selinux' relabel='no'/>\n      </source>"),
            "the old per-disk label is replaced where it stood: {out}"
        );
        assert!(out.contains("model='dac'"), "other models are kept");
        // Adopting twice changes nothing more.
        assert_eq!(
            edit(&out, &label, &|p| p.starts_with("/pool")).unwrap(),
            out
        );
    }

    #[test]
    fn a_domain_without_an_selinux_label_gets_one_before_its_end() {
        let label: Context = "system_u:system_r:svirt_t:s0:c1,c2".parse().unwrap();
        let xml = XML.replace(
            "  <seclabel type='dynamic' model='selinux' relabel='yes'/>\n",
            "",
        );
        let out = edit(&xml, &label, &|_| false).unwrap();
        assert!(
            out.ends_with("  <seclabel type='static' model='selinux' relabel='yes'>\n    <label>system_u:system_r:svirt_t:s0:c1,c2</label>\n  </seclabel>\n</domain>\n"),
            "{out}"
        );
        assert_eq!(edit(&out, &label, &|_| false).unwrap(), out);
        assert!(edit("<network/>", &label, &|_| false).is_err());
    }
}
