//! Apply: the label xattr itself. `filecon` reads and writes it through a descriptor
//! (libselinux); `sole_link` is the only writer of a pool file's label (it writes only
//! while the file's one link is in a name only root can change).

pub mod filecon;
pub mod legacy_staging;
pub mod sole_link;
