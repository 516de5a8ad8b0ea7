//! `svirt-pool guest define|show|list|undefine`.

use super::{Caller, parse_uuid, volumes};
use crate::backend;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::lock;
use crate::model::{Attachment, Guest};
use crate::registry::{self, Registry};

/// How a stored guest is shown.
fn guest_json(settings: &Settings, g: &registry::Guest) -> Guest {
    let contexts = &settings.selinux.contexts;
    Guest {
        uuid: g.uuid.clone(),
        name: g.name.clone(),
        categories: g.pair.to_string(),
        process_label: contexts.process_label(g.pair).to_string(),
        image_label: contexts.image_label(g.pair).to_string(),
    }
}

/// Longest guest name accepted, in bytes (libvirt's names are far shorter; a bound
/// keeps every reply that lists guests small).
pub const MAX_NAME_BYTES: usize = 256;

/// Checks a guest name: 1 to 256 bytes, no control characters.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        let shown: String = name.chars().take(64).collect();
        return Err(Error::Usage(format!(
            "guest name {shown:?}{} must be 1 to {MAX_NAME_BYTES} bytes without control characters",
            if shown.len() < name.len() { "..." } else { "" }
        )));
    }
    Ok(())
}

/// Defines a guest owned by `caller` (or returns the existing one, if `caller` owns it
/// or is root).
pub fn define(
    settings: &Settings,
    caller: Caller,
    uuid: &str,
    name: Option<&str>,
) -> Result<Guest> {
    let uuid = parse_uuid(uuid)?;
    if let Some(n) = name {
        check_name(n)?;
    }
    let _lock = lock::acquire(&settings.state_dir)?;
    let mut store = backend::open(settings)?;
    let (guest, created) = store.define_guest(
        &uuid,
        name,
        &settings.selinux.categories,
        caller.uid,
        settings.api.max_guests_per_user,
    )?;
    if created {
        tracing::info!(uuid = %guest.uuid, pair = %guest.pair, owner = guest.owner, "guest defined");
    }
    Ok(guest_json(settings, &guest))
}

/// Makes the guest of a libvirt domain's UUID root's if a member defined it first
/// ([`crate::registry::Guests::take_over_guest`]), and releases what the member attached to it (labels
/// restored). Returns the uid it was taken from.
pub fn take_over_for_domain(settings: &Settings, uuid: &str) -> Result<Option<u32>> {
    let uuid = parse_uuid(uuid)?;
    let from = {
        let _lock = lock::acquire(&settings.state_dir)?;
        let mut store = backend::open(settings)?;
        store.take_over_guest(&uuid, &settings.selinux.categories)?
    };
    if let Some(uid) = from {
        // Root's now: the member can no longer act for it, so nothing is attached anew
        // between the two locks.
        let released = volumes::release(settings, Caller::ROOT, &uuid)?;
        tracing::warn!(guest = %uuid, from_uid = uid, released,
            "a member had defined the UUID of a libvirt domain: taken over for the domain, its attachments released");
    }
    Ok(from)
}

fn known_guest(store: &dyn Registry, uuid: &str) -> Result<registry::Guest> {
    store
        .guest(uuid)?
        .ok_or_else(|| Error::NoSuchGuest(uuid.to_owned()))
}

/// One guest with its attachments.
pub fn show(settings: &Settings, uuid: &str) -> Result<(Guest, Vec<Attachment>)> {
    let uuid = parse_uuid(uuid)?;
    lock::ensure_state_dir(&settings.state_dir)?;
    let store = backend::open(settings)?;
    let guest = known_guest(&*store, &uuid)?;
    let attachments = store
        .attachments(Some(&uuid))?
        .into_iter()
        .map(|a| Attachment {
            pool: a.pool,
            volume: String::from_utf8_lossy(&a.volume).into_owned(),
            mode: a.mode.as_str().to_owned(),
        })
        .collect();
    Ok((guest_json(settings, &guest), attachments))
}

/// Every guest.
pub fn list(settings: &Settings) -> Result<Vec<Guest>> {
    lock::ensure_state_dir(&settings.state_dir)?;
    let store = backend::open(settings)?;
    Ok(store
        .guests()?
        .iter()
        .map(|g| guest_json(settings, g))
        .collect())
}

/// A page of guests in UUID order after UUID `after`, and the cursor of the next page.
pub fn page(
    settings: &Settings,
    after: Option<&str>,
    limit: u32,
) -> Result<(Vec<Guest>, Option<String>)> {
    lock::ensure_state_dir(&settings.state_dir)?;
    let store = backend::open(settings)?;
    // One more than asked tells whether there is a next page.
    let mut guests = store.guests_page(after, limit.saturating_add(1))?;
    let more = guests.len() > limit as usize;
    guests.truncate(limit as usize);
    let next = more
        .then(|| guests.last().map(|g| g.uuid.clone()))
        .flatten();
    Ok((
        guests.iter().map(|g| guest_json(settings, g)).collect(),
        next,
    ))
}

/// Forgets a guest; with `force`, releases its volumes first. Returns how many volumes
/// were released.
///
/// The guest (and so its pair) goes only once every released volume has its label
/// restored: a pair is free only when no volume carries it. When a label cannot be
/// restored the guest stays defined, holding nothing, and the error names the volumes.
pub fn undefine(settings: &Settings, uuid: &str, force: bool) -> Result<usize> {
    let uuid = parse_uuid(uuid)?;
    let _lock = lock::acquire(&settings.state_dir)?;
    let mut store = backend::open(settings)?;
    let held = store.attachments(Some(&uuid))?;
    if store.guest(&uuid)?.is_none() {
        return Err(Error::NoSuchGuest(uuid));
    }
    if !held.is_empty() && !force {
        return Err(Error::refused(format!(
            "guest {uuid} still has {} attachment(s); detach them, or use --force to release them",
            held.len()
        )));
    }
    let released = store.release(&uuid)?;
    let unrestored = super::restore::restore_each(settings, &*store, &released)?;
    if !unrestored.is_empty() {
        // Those volumes still carry the guest's pair: the guest keeps holding them (so a
        // later undefine tries again) and stays defined, so the pair is not handed out.
        for u in &unrestored {
            store.attach(u.attachment)?;
        }
        return Err(Error::failed(format!(
            "labels could not be restored: {}; guest {uuid} stays defined, still holding \
             those volumes, so that its pair is not given to another guest while a volume \
             carries it: fix them and undefine it again with --force",
            super::restore::list(&unrestored)
        )));
    }
    store.forget_guest(&uuid)?;
    let attached = released.iter().filter(|a| a.via.is_none()).count();
    tracing::info!(uuid, released = attached, "guest undefined");
    Ok(attached)
}
