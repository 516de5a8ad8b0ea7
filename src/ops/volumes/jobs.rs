//! A batch of attach and detach jobs under one hold of the state lock, with one
//! commit: each job's checks and state change, then each job's labels.

use std::os::fd::{AsFd, OwnedFd};

use crate::apply::filecon;
use crate::backend;
use crate::config::Settings;
use crate::decide::context::Context;
use crate::decide::labels::{FileId, Mode};
use crate::decide::plan::{self, VolumeType};
use crate::error::{Error, Refusal, Result};
use crate::fsys::{self, NodeKind, OpenError};
use crate::lock;
use crate::model::Labeled;
use crate::ops::Caller;
use crate::ops::chains::{chain_of, check_chain_readable, label_chain};
use crate::ops::file_of;
use crate::ops::guest_for;
use crate::ops::locate::Volume;
use crate::ops::restore::{list, relabel_released, restore_each};
use crate::ops::settle::Settler;
use crate::reconcile::{Apply, Outcome, Reconciler, SkipReason};
use crate::registry::{Attachment, Registry};

/// Refuses a file that must not be handed to a guest: anything but a regular file
/// with one link, reached without a symlink or mount point, on a filesystem that stores
/// labels. Returns which file it is, so the attachment holds that file and no later one
/// of the same name. (An LV needs no such check: its node is verified when labeled.)
fn check_attachable(rec: &mut Reconciler<'_>, vol: &Volume) -> Result<Option<Attachable>> {
    let Some((pool, rel)) = vol.file() else {
        return Ok(None);
    };
    let settings = rec.settings();
    let (cross_fs, name) = (
        settings.dir_pool(pool).cross_filesystems,
        &settings.pools[pool.index()].name,
    );
    let root = rec
        .root(pool.index())
        .map_err(|e| Error::failed(format!("pool {name}: {e}")))?;
    let refuse = |why: String| Error::refused(format!("cannot attach {}: {why}", vol.shown));
    let opened = fsys::open_beneath(root, rel, cross_fs).map_err(|e| match e {
        OpenError::Symlink => refuse("it is or goes through a symlink".into()),
        e => refuse(e.to_string()),
    })?;
    let node = &opened.node;
    plan::holdable(VolumeType::Files, node.kind).map_err(|why| {
        refuse(match (why, node.kind) {
            (SkipReason::HardLinks, NodeKind::Regular { links }) => {
                format!("it has {links} hard links (one may be a file outside the pool)")
            }
            (SkipReason::Symlink, _) => "it is a symlink".into(),
            _ => "it is not a regular file".into(),
        })
    })?;
    filecon::read(node.fd.as_fd()).map_err(|e| refuse(e.to_string()))?;
    let owner = rustix::fs::fstat(&node.fd)
        .map_err(|e| refuse(e.to_string()))?
        .st_uid;
    Ok(Some(Attachable { owner, opened }))
}

/// A file of a dir pool that may be attached, and whose it is, opened once for its
/// check, its backing chain and its label (which file it is: `opened.node.file`).
struct Attachable {
    owner: u32,
    /// The file and the directory holding it.
    opened: fsys::Opened,
}

/// An attach or a detach, checked as far as it can be without the lock, waiting for
/// its batch (see `batch`).
pub(crate) enum Job {
    /// `attach_and_open`'s request.
    Attach(AttachJob),
    /// `detach`'s request.
    Detach(DetachJob),
}

pub(crate) struct AttachJob {
    pub(super) caller: Caller,
    pub(super) uuid: String,
    pub(super) vol: Volume,
    pub(super) mode: Mode,
    /// The disk's own label from its domain XML (the libvirt hook's calls only).
    pub(super) label: Option<Context>,
    /// The volume as the caller opened it, when it was.
    pub(super) own: Option<OwnedFd>,
}

pub(crate) struct DetachJob {
    pub(super) caller: Caller,
    pub(super) uuid: String,
    pub(super) vol: Volume,
}

/// What a job's caller gets back.
pub(crate) enum Done {
    Attached(Result<(Labeled, Option<OwnedFd>)>),
    Detached(Result<Labeled>),
    /// The batch it was in panicked (the panic is reported by the thread that ran it),
    /// or could not be run (no batch thread could be started).
    Panicked(Error),
}

impl Done {
    /// The label of an attached or detached volume (an attach's descriptor, if one was
    /// wanted, is closed).
    pub(super) fn labeled(self) -> Result<Labeled> {
        match self {
            Done::Attached(result) => result.map(|(labeled, _)| labeled),
            Done::Detached(result) => result,
            Done::Panicked(e) => Err(e),
        }
    }
}

impl Job {
    /// The answer when the whole batch failed (the lock, the state, the commit).
    fn failed(&self, why: &Error) -> Done {
        let e = Error::failed(why.to_string());
        match self {
            Job::Attach(_) => Done::Attached(Err(e)),
            Job::Detach(_) => Done::Detached(Err(e)),
        }
    }
}

/// A job whose state change is written (not yet committed), with what labeling it needs.
enum Staged {
    Attach(Box<StagedAttach>),
    Detach(StagedDetach),
}

/// Runs a batch of jobs under one hold of the lock: each job's checks and state change
/// in turn (a job refused changes nothing and does not affect the others; a later job
/// sees the earlier ones' changes, as if called one after the other), one commit for
/// all of them, then each job's labels, from the committed state: state first, label
/// second, as for a single call. A batch of one is a single call.
///
/// An attach whose label cannot be written is undone in its own commit, as alone. If
/// another job of the batch held the same volume, the label that job reported was for
/// the state before the undo; the volume itself is relabeled for the state after it.
pub(super) fn run_batch(settings: &Settings, jobs: Vec<Job>) -> Vec<Done> {
    let opened =
        lock::acquire(&settings.state_dir).and_then(|lock| Ok((lock, backend::open(settings)?)));
    let (_lock, mut store) = match opened {
        Ok(held) => held,
        Err(e) => return jobs.iter().map(|job| job.failed(&e)).collect(),
    };
    let mut rec = Reconciler::new(settings, Apply::Write);
    let mut jobs = jobs;
    let mut tries = 0;
    let staged = loop {
        tries += 1;
        match stage_all(settings, &mut *store, &mut rec, jobs) {
            Staging::Committed(staged) => break staged,
            Staging::Answered(answers) => return answers,
            // Another host changed what the batch read (a shared pool's volume):
            // nothing of it was written; staged again from the start.
            Staging::Conflict(again, e) => {
                if tries >= BATCH_TRIES {
                    return again.iter().map(|job| job.failed(&e)).collect();
                }
                tracing::debug!(error = %e, jobs = again.len(), "batch conflicted: trying it again");
                jobs = again;
            }
        }
    };
    // The labels come from the committed holders, read at once (a failure here only
    // means each is read when labeled).
    if let Err(e) = prefetch(
        settings,
        &mut *store,
        staged.iter().map(|(job, _)| job),
        false,
    ) {
        tracing::debug!(error = %e, "cannot read the batch's holders at once");
    }
    let mut settler = Settler::default();
    let done = staged
        .into_iter()
        .map(|(job, staged)| match (job, staged) {
            (Job::Attach(j), Ok(Staged::Attach(s))) => {
                Done::Attached(finish_attach(&mut *store, &mut rec, &mut settler, j, *s))
            }
            (Job::Detach(j), Ok(Staged::Detach(s))) => Done::Detached(finish_detach(
                settings,
                &*store,
                &mut rec,
                &mut settler,
                j,
                s,
            )),
            (Job::Attach(_), Err(e)) => Done::Attached(Err(e)),
            (Job::Detach(_), Err(e)) => Done::Detached(Err(e)),
            _ => unreachable!("a job is staged as what it is"),
        })
        .collect();
    // Shared files other hosts may have labeled meanwhile: checked in one read.
    if let Err(e) = settler.settle(settings, &mut *store, &mut rec) {
        tracing::warn!(error = %e, "cannot check the labels of shared files against their holders: the agents' rescans will");
    }
    done
}

/// An attach whose attachment is written.
struct StagedAttach {
    pool_name: String,
    chain: Vec<crate::observe::chain::Link>,
    att: Attachment,
    holds: Vec<(Vec<u8>, Option<FileId>)>,
    /// The guest's mode before, if it held the volume already.
    previous: Option<Mode>,
    /// Members' read-only holds released for it ([`crate::registry::Holds::release_pins`]).
    released: Vec<crate::registry::Attachment>,
    /// A dir pool's file as checked: labeled through this descriptor.
    found: Option<Attachable>,
}

/// The checks of an attach and its state change (the lock is held, the batch open).
fn stage_attach(
    settings: &Settings,
    store: &mut dyn Registry,
    rec: &mut Reconciler<'_>,
    job: &AttachJob,
) -> Result<StagedAttach> {
    let vol = &job.vol;
    let pool_name = settings.pools[vol.pool()].name.clone();
    guest_for(store, &job.uuid, job.caller)?;
    let found = check_attachable(rec, vol)?;
    let file = found.as_ref().map(|f| f.opened.node.file);
    if let (Some(fd), Some(file)) = (&job.own, file)
        && file_of(fd)? != file
    {
        return Err(Refusal::Replaced {
            volume: vol.shown.clone(),
        }
        .into());
    }
    let chain = match (&found, vol.file()) {
        (Some(f), Some(at)) => chain_of(rec, vol, at, &f.opened.node)?,
        _ => Vec::new(),
    };
    if let Some((pool, _)) = vol.file()
        && !job.caller.is_root()
    {
        check_chain_readable(settings, job.caller, (pool, vol), &chain)?;
    }
    let att = Attachment {
        guest: job.uuid.clone(),
        pool: pool_name.clone(),
        volume: vol.key.clone(),
        mode: job.mode,
        file,
        via: None,
        host: None,
        label: job.label.clone(),
    };
    // State first, label second: after a crash in between, a rescan converges. The
    // backing files of an overlay are read by the guest whatever its mode: held `ro`.
    let holds: Vec<(Vec<u8>, Option<FileId>)> = chain
        .iter()
        .map(|l| (l.rel.as_os_str().as_encoded_bytes().to_vec(), Some(l.file)))
        .collect();
    // Read access never pins a file: root and its owner take it rw over members'
    // read-only holds, which are released (docs/api.md).
    let released = match &found {
        Some(f) if job.mode == Mode::Rw && (job.caller.is_root() || job.caller.uid == f.owner) => {
            store.release_pins(&pool_name, &vol.key, f.owner)?
        }
        _ => Vec::new(),
    };
    let previous = store.attach_overlay(&att, &holds)?;
    Ok(StagedAttach {
        pool_name,
        chain,
        att,
        holds,
        previous,
        released,
        found,
    })
}

/// How many times a batch is staged again after another host changed what it read.
const BATCH_TRIES: usize = 8;

/// What staging a batch came to.
enum Staging {
    /// Committed: each job and what its staging did.
    Committed(Vec<(Job, Result<Staged>)>),
    /// Nothing committed, every job answered (the state's transaction failed).
    Answered(Vec<Done>),
    /// Nothing committed: another host changed what the batch read; the jobs, to stage
    /// again.
    Conflict(Vec<Job>, Error),
}

/// Reads at once what the jobs will read (a cluster's shared pools: one round trip);
/// `guests`: their guests too (staging), else only their volumes' holders (labels).
fn prefetch<'j>(
    settings: &Settings,
    store: &mut dyn Registry,
    jobs: impl IntoIterator<Item = &'j Job>,
    guests: bool,
) -> Result<()> {
    let (uuids, volumes): (Vec<&str>, Vec<(&str, &[u8])>) = jobs
        .into_iter()
        .map(|job| {
            let (uuid, vol) = match job {
                Job::Attach(j) => (&j.uuid, &j.vol),
                Job::Detach(j) => (&j.uuid, &j.vol),
            };
            let pool = settings.pools[vol.pool()].name.as_str();
            (uuid.as_str(), (pool, vol.key.as_slice()))
        })
        .unzip();
    store.prefetch(if guests { &uuids } else { &[] }, &volumes)
}

/// Stages every job in one batch of the registry and commits it.
fn stage_all(
    settings: &Settings,
    store: &mut dyn Registry,
    rec: &mut Reconciler<'_>,
    jobs: Vec<Job>,
) -> Staging {
    if let Err(e) = store
        .begin_batch()
        .and_then(|()| prefetch(settings, store, &jobs, true))
    {
        store.rollback_batch();
        return Staging::Answered(jobs.iter().map(|job| job.failed(&e)).collect());
    }
    let mut staged: Vec<(Job, Result<Staged>)> = Vec::with_capacity(jobs.len());
    let mut jobs = jobs.into_iter();
    while let Some(job) = jobs.next() {
        let result = match &job {
            Job::Attach(j) => {
                stage_attach(settings, store, rec, j).map(|s| Staged::Attach(Box::new(s)))
            }
            Job::Detach(j) => stage_detach(settings, store, j).map(Staged::Detach),
        };
        if let Err(Error::Conflict(why)) = &result {
            let why = Error::Conflict(why.clone());
            store.rollback_batch();
            let all = staged.into_iter().map(|(job, _)| job).chain([job]);
            return Staging::Conflict(all.chain(jobs).collect(), why);
        }
        // SQLite rolls the whole transaction back on some errors (a full disk): the
        // jobs staged before are undone too, and none after may write outside it.
        if !store.in_batch() {
            let why = match &result {
                Err(e) => Error::failed(e.to_string()),
                Ok(_) => Error::failed("the state transaction was rolled back"),
            };
            let all = staged.iter().map(|(job, _)| job).chain([&job]);
            let answers = all.map(|job| job.failed(&why)).collect::<Vec<_>>();
            return Staging::Answered(
                answers
                    .into_iter()
                    .chain(jobs.map(|job| job.failed(&why)))
                    .collect(),
            );
        }
        staged.push((job, result));
    }
    match store.commit_batch() {
        Ok(()) => Staging::Committed(staged),
        Err(e @ Error::Conflict(_)) => {
            Staging::Conflict(staged.into_iter().map(|(job, _)| job).collect(), e)
        }
        Err(e) => Staging::Answered(staged.iter().map(|(job, _)| job.failed(&e)).collect()),
    }
}

/// Labels an attached volume and its backing files (the batch is committed); on a
/// failure, puts the state back as it was, and the label with it.
fn finish_attach(
    store: &mut dyn Registry,
    rec: &mut Reconciler<'_>,
    settler: &mut Settler,
    job: AttachJob,
    staged: StagedAttach,
) -> Result<(Labeled, Option<OwnedFd>)> {
    let AttachJob {
        caller,
        uuid,
        vol,
        mode,
        own,
        ..
    } = job;
    relabel_released(store, rec, vol.pool(), &vol.key, &staged.released);
    let settings = rec.settings();
    let ex = settler.label(settings, store, vol.pool(), &vol.key, &mut |holders| {
        reconcile_attached(rec, &vol, staged.found.as_ref(), holders)
    })?;
    let result = match (&ex.outcome, vol.file().is_none()) {
        // An inactive LV keeps its attachment; the node is labeled when it appears.
        (Outcome::Missing, true) => Ok(None),
        // libvirt labeled it for a running domain: recorded, labeled once libvirt lets go.
        (Outcome::Skipped(SkipReason::HeldByLibvirt), _) => Ok(None),
        _ => match ex.labeled() {
            Ok(label) => label_chain(rec, store, vol.pool(), &staged.chain)?
                .map(|()| Some(label))
                .map_err(|e| e.to_string()),
            Err(why) => Err(why.to_string()),
        },
    };
    match result {
        Ok(label) => {
            tracing::info!(guest = %uuid, volume = %vol.shown.escape_debug(), %mode,
                uid = caller.uid, label = ?label, "attached");
            let note = match (&ex.outcome, label.is_none()) {
                (Outcome::Skipped(SkipReason::HeldByLibvirt), _) => Some(
                    "held by libvirt for a running domain: labeled when libvirt restores it"
                        .to_string(),
                ),
                (_, true) => {
                    Some("inactive: its node is labeled when the LV is activated".to_string())
                }
                (_, false) => None,
            };
            Ok((
                Labeled {
                    volume: vol.shown,
                    label,
                    note,
                },
                own,
            ))
        }
        Err(why) => {
            // Put the state back as it was (its own commit), and the label with it; say
            // if that failed too.
            let restored = match staged.previous {
                Some(old) => store
                    .attach_overlay(
                        &Attachment {
                            mode: old,
                            ..staged.att
                        },
                        &staged.holds,
                    )
                    .map(drop),
                None => store.detach(&uuid, &staged.pool_name, &vol.key).map(drop),
            }
            .and_then(|()| store.holders(&staged.pool_name, &vol.key))
            .map(|holders| reconcile_attached(rec, &vol, staged.found.as_ref(), &holders))
            .and_then(|ex| {
                let chain = label_chain(rec, store, vol.pool(), &staged.chain)?;
                Ok(ex
                    .labeled()
                    .map_err(|e| e.to_string())
                    .and(chain.map_err(|e| e.to_string())))
            });
            let rollback = match restored {
                Ok(Ok(_)) => String::new(),
                Ok(Err(e)) => format!("; restoring its label failed too: {e}"),
                Err(e) => format!("; putting the state back failed too: {e}"),
            };
            Err(Error::failed(format!(
                "cannot label {}: {why}; the attachment was not recorded{rollback}",
                vol.shown
            )))
        }
    }
}

/// Labels an attached volume for `holders`: a dir pool's file through the descriptor
/// its check opened, an LV through its node.
fn reconcile_attached(
    rec: &mut Reconciler<'_>,
    vol: &Volume,
    found: Option<&Attachable>,
    holders: &[crate::decide::labels::Holder],
) -> crate::reconcile::Examined {
    match (found, vol.file()) {
        // Labeled through the descriptor the check opened: the file the attachment
        // records, never another one put under the name since (a label write checks
        // the name still leads to it; `sole_link`).
        (Some(f), Some((_, rel))) => {
            let at = crate::reconcile::Found {
                dir: f.opened.dir.as_fd(),
                name: &f.opened.name,
                node: &f.opened.node,
            };
            rec.reconcile_found(vol.pool(), rel, at, holders)
        }
        _ => rec.reconcile_volume(vol.pool(), &vol.key, holders),
    }
}

/// A detach whose attachment is removed.
struct StagedDetach {
    /// The backing-file holds removed with it.
    backing: Vec<Attachment>,
}

/// A detach's check and state change (the lock is held, the batch open).
fn stage_detach(
    settings: &Settings,
    store: &mut dyn Registry,
    job: &DetachJob,
) -> Result<StagedDetach> {
    let vol = &job.vol;
    guest_for(store, &job.uuid, job.caller)?;
    let (mode, backing) = store.detach(&job.uuid, &settings.pools[vol.pool()].name, &vol.key)?;
    if mode.is_none() {
        return Err(Refusal::NotHeld {
            guest: job.uuid.clone(),
            volume: vol.shown.clone(),
        }
        .into());
    }
    Ok(StagedDetach { backing })
}

/// Restores the labels a detached volume and its backing files must now carry (the
/// batch is committed).
fn finish_detach(
    settings: &Settings,
    store: &dyn Registry,
    rec: &mut Reconciler<'_>,
    settler: &mut Settler,
    job: DetachJob,
    staged: StagedDetach,
) -> Result<Labeled> {
    let DetachJob { uuid, vol, .. } = job;
    let ex = settler.label(settings, store, vol.pool(), &vol.key, &mut |holders| {
        rec.reconcile_volume(vol.pool(), &vol.key, holders)
    })?;
    tracing::info!(guest = %uuid, volume = %vol.shown.escape_debug(), "detached");
    // The backing files it read go back to rest unless another overlay still uses them.
    let unrestored = restore_each(settings, store, &staged.backing)?;
    if !unrestored.is_empty() {
        return Err(Error::failed(format!(
            "detached {} from guest {uuid}, but backing files could not be restored: {}",
            vol.shown,
            list(&unrestored)
        )));
    }
    match (&ex.outcome, ex.labeled()) {
        (Outcome::Missing, _) => Ok(Labeled {
            volume: vol.shown,
            label: None,
            note: Some("it has no file or node now".into()),
        }),
        (_, Ok(label)) => Ok(Labeled {
            volume: vol.shown,
            label: Some(label),
            note: None,
        }),
        (_, Err(why)) => Err(Error::failed(format!(
            "detached {} from guest {uuid}, but its label could not be restored: {why}",
            vol.shown
        ))),
    }
}
