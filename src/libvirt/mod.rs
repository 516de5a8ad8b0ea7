//! Cooperating with libvirt (docs/libvirt.md): its qemu hook, the domain XML it passes,
//! and the `<seclabel>` that lets the agent own a domain's disk labels.

pub mod adopt;
pub mod domain;
pub mod hook;
pub mod pools;
pub mod seclabel;
pub mod virsh;
