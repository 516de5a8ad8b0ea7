//! The command line: every subcommand and flag, as clap parses them (here), and what
//! each one does (`commands`), and how results are shown to people (`show`).

pub mod commands;
pub mod show;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::decide::labels::Mode;

/// `--version`: the version and the commit it was built from (`build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SVIRT_POOL_COMMIT"),
    ")"
);

/// Keeps the SELinux labels of virtual-machine storage pools right for sVirt.
#[derive(Parser, Debug)]
#[command(name = "svirt-pool", version = VERSION, about)]
pub struct Cli {
    /// Configuration file [default: $SVIRT_POOL_CONFIG, else /etc/svirt-pool/svirt-pool.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Log more (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Print the result as JSON (every command that prints one).
    #[arg(long, global = true)]
    pub json: bool,

    /// No progress line (one is drawn on a terminal while a scan takes long).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Scan every pool, then keep labels right from inotify events until SIGTERM.
    Agent,
    /// Reconcile every pool once and print what was done.
    Scan,
    /// Define, show, list or undefine guests and their MCS pairs.
    #[command(subcommand)]
    Guest(GuestCommand),
    /// Can the emulator reach this file? DAC and SELinux for every component, the first
    /// that blocks and how to fix it (exit 1 when blocked). Changes nothing.
    CheckPath {
        /// The file (absolute, or relative to here).
        path: PathBuf,
        /// Check for this guest (its label, and write access if it holds the file rw).
        #[arg(long)]
        guest: Option<String>,
    },
    /// Create or delete volumes of dir pools.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Give a guest a volume of a pool (labels it before returning).
    Attach {
        /// The guest's UUID.
        #[arg(long, value_name = "UUID")]
        guest: String,
        /// A file inside a dir pool, or `VG/LV` / `/dev/VG/LV` of an lvm pool.
        #[arg(long, value_name = "PATH")]
        volume: PathBuf,
        /// How the guest uses it.
        #[arg(long, value_enum)]
        mode: ModeArg,
    },
    /// Take a volume back from a guest (restores its label before returning).
    Detach {
        /// The guest's UUID.
        #[arg(long, value_name = "UUID")]
        guest: String,
        /// A file inside a dir pool, or `VG/LV` / `/dev/VG/LV` of an lvm pool.
        #[arg(long, value_name = "PATH")]
        volume: PathBuf,
    },
    /// Take every volume back from a guest.
    Release {
        /// The guest's UUID.
        #[arg(long, value_name = "UUID")]
        guest: String,
    },
    /// Copy a file you can read into a dir pool (your open file is passed to the agent).
    Import {
        /// The file, opened with your own rights.
        file: PathBuf,
        /// The dir pool to put it in.
        #[arg(long)]
        pool: String,
        /// Its name in the pool [default: the file's name].
        #[arg(long)]
        name: Option<String>,
    },
    /// udev RUN hook: label the LV node of the event in the environment, always exit 0.
    UdevHook,
    /// libvirt qemu hook (installed as /etc/libvirt/hooks/qemu.d/svirt-pool): domain XML
    /// on stdin; attaches pool disks at prepare/start/reconnect, releases at release.
    /// Exits 1 with one line on stderr when the domain must not start.
    LibvirtHook {
        /// The domain's name.
        name: String,
        /// The operation (`prepare`, `start`, `release`, `reconnect`, ...).
        op: String,
        /// The sub-operation (`begin`, `end`).
        subop: String,
        /// libvirt's extra argument (`-` mostly).
        extra: Option<String>,
    },
    /// Work with libvirt's domains.
    #[command(subcommand)]
    Libvirt(LibvirtCommand),
    /// Hosts sharing storage through etcd ([cluster] in the config): see them, evict a
    /// fenced one, import this host's guests.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Show each pool's volumes, attachments, current and desired labels, and drift.
    Status {
        /// List every volume, not only attached or drifting ones.
        #[arg(long)]
        all: bool,
    },
    /// Ask the SELinux policy, for every guest and every volume, what the guest may do
    /// to it: print each access no hold explains, each holder that cannot use its
    /// volume, each label no state explains (exit 1 on any). Changes nothing.
    Verify {
        /// Only this pool.
        #[arg(long)]
        pool: Option<String>,
    },
}

/// `cluster` subcommands.
#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Hosts with their liveness and holds, guests and pairs in use.
    Status,
    /// Remove every hold of HOST, whose agent is not alive, once you have fenced it
    /// (powered off, or cut from the shared storage); relabels the shared files it held.
    Evict {
        /// The host's name in the cluster.
        host: String,
    },
    /// Bring this host's guests (with their pairs) and its holds of pools now marked
    /// `shared` into the cluster; refused before any change when a pair or UUID
    /// collides, naming each.
    Import,
}

/// `libvirt` subcommands.
#[derive(Subcommand, Debug)]
pub enum LibvirtCommand {
    /// Let the agent own a defined domain's pool disk labels: define its guest, give the
    /// domain a static <seclabel> with the guest's pair and relabel='no' on each pool
    /// disk. Prints the diff; changes the domain only with --apply (virsh define).
    Adopt {
        /// The domain's name (as virsh knows it).
        name: String,
        /// Define the edited XML in libvirt.
        #[arg(long)]
        apply: bool,
        /// Print the whole edited XML instead of the diff.
        #[arg(long)]
        xml: bool,
    },
}

/// `volume` subcommands.
#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// List a pool's volumes a page at a time, in name order, with their facts.
    List {
        /// The pool.
        #[arg(long)]
        pool: String,
        /// Start after this volume (the `next` of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// Volumes per page.
        #[arg(long, default_value_t = 500)]
        limit: usize,
        /// Only names starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Only this format (raw, qcow2, iso, vmdk, vdi, vhdx).
        #[arg(long)]
        format: Option<String>,
        /// Only this state (free, attached, rw, ro, shared, drift).
        #[arg(long)]
        state: Option<String>,
    },
    /// Create a volume at the root of a dir pool, owned by you, with its resting label.
    Create {
        /// The dir pool.
        #[arg(long)]
        pool: String,
        /// Its file name.
        name: String,
        /// `raw` (sparse) or `qcow2`.
        #[arg(long, default_value = "qcow2")]
        format: String,
        /// Its size: bytes, or with a K, M, G or T suffix (powers of 1024) [default with
        /// --backing: the backing file's].
        #[arg(long, value_parser = parse_size)]
        capacity: Option<u64>,
        /// A qcow2 overlay's backing file: a volume of the same pool.
        #[arg(long)]
        backing: Option<String>,
    },
    /// Delete a volume of a dir pool (refused while it, or an overlay on it, is held).
    Delete {
        /// The dir pool.
        #[arg(long)]
        pool: String,
        /// Its path below the pool root.
        name: String,
    },
}

/// A size that is not a positive number of bytes (with an optional suffix).
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a size (bytes, or a number with K, M, G or T)")]
pub struct BadSize(String);

/// A size in bytes, with an optional K, M, G or T suffix (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, BadSize> {
    let (digits, shift) = match text.char_indices().last() {
        Some((i, 'K' | 'k')) => (&text[..i], 10),
        Some((i, 'M' | 'm')) => (&text[..i], 20),
        Some((i, 'G' | 'g')) => (&text[..i], 30),
        Some((i, 'T' | 't')) => (&text[..i], 40),
        _ => (text, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|n| *n > 0)
        .ok_or_else(|| BadSize(text.to_owned()))
}

/// `guest` subcommands.
#[derive(Subcommand, Debug)]
pub enum GuestCommand {
    /// Define a guest (idempotent for the same UUID) and print it as JSON.
    Define {
        /// libvirt's domain UUID.
        #[arg(long, value_name = "UUID")]
        uuid: String,
        /// A name for people (default: the UUID).
        #[arg(long)]
        name: Option<String>,
    },
    /// Print one guest as JSON.
    Show {
        /// The guest's UUID.
        uuid: String,
    },
    /// Print every guest as JSON.
    List,
    /// Print the libvirt <seclabel> elements that let the agent own this guest's disk
    /// labels: the domain's static label with the guest's pair, and relabel='no' for
    /// each pool disk (docs/libvirt.md).
    Seclabel {
        /// The guest's UUID.
        uuid: String,
    },
    /// Forget a guest and free its pair.
    Undefine {
        /// The guest's UUID.
        uuid: String,
        /// Release its attachments first instead of refusing.
        #[arg(long)]
        force: bool,
    },
}

/// `--mode` values.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    /// Private read/write.
    Rw,
    /// Read-only content.
    Ro,
    /// Read/write shared by several guests.
    Shared,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Rw => Mode::Rw,
            ModeArg::Ro => Mode::Ro,
            ModeArg::Shared => Mode::Shared,
        }
    }
}
