//! Observe: what is in a pool and what changed. The walk of a dir pool (`walk`),
//! inotify (`watch`), udev (`devices`) and lvm2 (`lvm`). Nothing here writes a label.

pub mod devices;
pub mod lvm;
pub mod walk;
pub mod watch;
