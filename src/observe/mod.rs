//! Observe: what is in a pool and what changed. The walk of a dir pool (`walk`),
//! inotify (`watch`), udev (`devices`), lvm2 (`lvm`), image headers (`image`) and
//! backing chains (`chain`). Nothing here writes a label.

pub mod chain;
pub mod devices;
pub mod image;
pub mod lvm;
pub mod walk;
pub mod watch;
