//! The domain XML that makes the agent the owner of a domain's disk labels: a static
//! `<seclabel>` with the guest's own pair (so libvirt runs QEMU as the process label the
//! agent labels disks for), and `relabel='no'` on each pool disk (so libvirt leaves the
//! agent's labels alone).

use crate::decide::context::Context;

/// The domain-level `<seclabel>` for a guest whose process label is `process`.
///
/// `relabel='yes'` keeps libvirt labeling what the agent does not manage (disks outside
/// pools, its own files); pool disks opt out one by one with [`DISK_NO_RELABEL`].
pub fn domain_seclabel(process: &Context) -> String {
    format!(
        "<seclabel type='static' model='selinux' relabel='yes'>\n  <label>{process}</label>\n</seclabel>\n"
    )
}

/// The per-disk element, inside `<source>`, of each disk in a managed pool.
pub const DISK_NO_RELABEL: &str = "<seclabel model='selinux' relabel='no'/>";

/// What `guest seclabel` prints: both elements, and where each goes.
pub fn snippet(process: &Context) -> String {
    format!(
        "<!-- in <domain>: libvirt runs QEMU as the agent's pair -->\n{}\
         <!-- inside <source> of each disk in a managed pool: the agent labels it -->\n{DISK_NO_RELABEL}\n",
        domain_seclabel(process)
    )
}
