//! The schema, one statement list per version (`PRAGMA user_version`).

/// The schema version this build writes (`PRAGMA user_version`).
pub(super) const SCHEMA_VERSION: i64 = 4;

pub(super) const SCHEMA_V1: &str = "
CREATE TABLE guests (
    uuid      TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    cat_low   INTEGER NOT NULL,
    cat_high  INTEGER NOT NULL,
    created   INTEGER NOT NULL DEFAULT (unixepoch()),
    UNIQUE (cat_low, cat_high),
    CHECK (cat_low >= 0 AND cat_low < cat_high AND cat_high <= 1023)
);
CREATE TABLE attachments (
    guest    TEXT NOT NULL REFERENCES guests(uuid),
    pool     TEXT NOT NULL,
    volume   BLOB NOT NULL,
    mode     TEXT NOT NULL CHECK (mode IN ('rw', 'shared', 'ro')),
    created  INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY (guest, pool, volume)
);
CREATE INDEX attachments_by_volume ON attachments (pool, volume);
";

/// Version 2: guests have an owner (the uid that defined them; rows from version 1 are
/// root's), may run under the pair libvirt gave them (`run_low`/`run_high`, while a
/// libvirt domain runs with its own label) and say whether libvirt's hook manages them;
/// attachments record which file they hold (inode and birth time; NULL for LVs and rows
/// from version 1).
pub(super) const SCHEMA_V2: &str = "
ALTER TABLE guests ADD COLUMN owner INTEGER NOT NULL DEFAULT 0;
CREATE INDEX guests_by_owner ON guests (owner);
ALTER TABLE guests ADD COLUMN run_low INTEGER;
ALTER TABLE guests ADD COLUMN run_high INTEGER;
ALTER TABLE guests ADD COLUMN via_libvirt INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX guests_by_run_pair ON guests (run_low, run_high) WHERE run_low IS NOT NULL;
ALTER TABLE attachments ADD COLUMN file_ino INTEGER;
ALTER TABLE attachments ADD COLUMN file_btime INTEGER;
";

/// Version 3: guests read the backing files of the qcow2 overlays they hold. One row per
/// (guest, overlay, backing file): the file rests when the last overlay on it is let go.
pub(super) const SCHEMA_V3: &str = "
CREATE TABLE backing (
    guest      TEXT NOT NULL REFERENCES guests(uuid),
    pool       TEXT NOT NULL,
    overlay    BLOB NOT NULL,
    volume     BLOB NOT NULL,
    file_ino   INTEGER,
    file_btime INTEGER,
    PRIMARY KEY (guest, pool, overlay, volume)
);
CREATE INDEX backing_by_volume ON backing (pool, volume);
";

/// Version 4: an attachment may carry the disk's own label from its domain XML
/// (`<source><seclabel><label>`) instead of the one its mode decides (NULL: the mode's).
pub(super) const SCHEMA_V4: &str = "
ALTER TABLE attachments ADD COLUMN label TEXT;
";

/// Every version's statements, in order: a database at version N runs `STEPS[N..]`.
pub(super) const STEPS: [&str; 4] = [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4];
