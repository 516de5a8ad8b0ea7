//! `svirt-pool verify`: can any guest reach a volume it does not hold?
//!
//! For every guest's process label (`svirt_t` with the pair its volumes carry) and
//! every volume of the pools, the SELinux policy is asked what that process may do to
//! the volume's current label (the loaded policy, else the installed one through
//! libsepol: `decide::policy_query`). What no hold explains is a finding: a guest that
//! may read or write a volume it does not hold; a holder that cannot use its volume in
//! its mode; a label with categories no guest has; a label libvirt keeps for a domain
//! that does not run. Writes nothing.
//!
//! Access a volume's holds make open to every guest is not a finding: a volume held
//! `shared` or `ro` carries a label without categories (sVirt's shared and content
//! labels), which every guest may use by design; it is counted instead. The policy is
//! asked once per distinct label and guest, and once per shape of question
//! (`policy_query::Asker`), so a host of 100,000 volumes and 1,000 guests is quick.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use serde::Serialize;

use super::report::{self, PoolStatus, VolumeStatus};
use crate::backend;
use crate::config::{PoolKind, Settings};
use crate::decide::context::{CategorySet, Context};
use crate::decide::policy_query::{Asker, QueryError, Source};
use crate::error::{Error, Result};
use crate::registry::Guest;

/// What a finding is about.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A guest may read or write a volume it does not hold.
    UnheldAccess,
    /// A guest holds a volume it may not use in its mode.
    HolderDenied,
    /// A label carries categories that are no guest's pair.
    UnknownPair,
    /// libvirt keeps a label (its remember xattrs are set) for a domain that does not
    /// run: it will never restore it.
    StaleLibvirt,
}

/// One thing no state explains.
#[derive(Serialize, Debug, Clone)]
pub struct Finding {
    /// What it is.
    pub kind: Kind,
    /// The pool.
    pub pool: String,
    /// The volume, as `status` names it.
    pub volume: String,
    /// Its file or node.
    pub path: String,
    /// Its label now.
    pub label: String,
    /// The guest concerned, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<String>,
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The accesses concerned (`read`, `write`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<&'static str>,
    /// The finding in one line.
    pub message: String,
}

/// What `verify` looked at and found.
#[derive(Serialize, Debug)]
pub struct Verification {
    /// Who answered: `kernel` (the loaded policy) or `policy file` (offline).
    pub policy: &'static str,
    /// The pools verified.
    pub pools: Vec<String>,
    /// Volumes a guest could open (files, LV nodes) whose label was read.
    pub volumes: usize,
    /// Distinct labels among them.
    pub labels: usize,
    /// Guests (process labels) checked against every label.
    pub guests: usize,
    /// Questions answered (guest × distinct label, and holders' labels).
    pub questions: usize,
    /// How many of them the policy itself computed (the rest had the shape of one it
    /// had answered).
    pub asked_policy: usize,
    /// Held volumes every guest may use because their holds share them (`shared`, `ro`).
    pub open_to_all: usize,
    /// What could not be verified: unreadable pools, volumes without a label.
    pub unchecked: Vec<String>,
    /// Everything no state explains. Empty on a sound host.
    pub findings: Vec<Finding>,
}

/// A guest's read and write access.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Access {
    read: bool,
    write: bool,
}

impl Access {
    const PERMS: [&'static str; 2] = ["read", "write"];

    /// What a holder needs in `mode` (`ro`: read; `rw`, `shared`: read and write).
    fn needed(mode: &str) -> Access {
        Access {
            read: true,
            write: mode != "ro",
        }
    }

    fn minus(self, other: Access) -> Access {
        Access {
            read: self.read && !other.read,
            write: self.write && !other.write,
        }
    }

    fn union(self, other: Access) -> Access {
        Access {
            read: self.read || other.read,
            write: self.write || other.write,
        }
    }

    fn any(self) -> bool {
        self.read || self.write
    }

    fn names(self) -> Vec<&'static str> {
        [(self.read, "read"), (self.write, "write")]
            .into_iter()
            .filter_map(|(yes, name)| yes.then_some(name))
            .collect()
    }
}

/// A domain libvirt runs (its status XML is there), as the caller found it.
#[derive(Clone, Debug)]
pub struct Running {
    /// Its UUID.
    pub uuid: String,
    /// Its name.
    pub name: String,
    /// The process label it runs with, once libvirt chose it.
    pub label: Option<Context>,
}

/// A guest as the policy sees it: the process label QEMU runs it with.
struct Subject {
    uuid: String,
    name: String,
    process: String,
}

/// Every guest with the process label its volumes are for (its pair, or the pair it
/// runs with), and every domain libvirt runs with the label its status XML names
/// (also those the agent does not know: started before the hook was installed).
fn subjects(settings: &Settings, guests: &[Guest], running: &[Running]) -> Vec<Subject> {
    let labels: HashMap<&str, &Context> = running
        .iter()
        .filter_map(|d| Some((d.uuid.as_str(), d.label.as_ref()?)))
        .collect();
    let mut subjects: Vec<Subject> = guests
        .iter()
        .map(|g| Subject {
            uuid: g.uuid.clone(),
            name: g.name.clone(),
            process: labels.get(g.uuid.as_str()).map_or_else(
                || {
                    let own = settings.selinux.contexts.process_label(g.effective_pair());
                    own.as_str().to_owned()
                },
                |l| l.as_str().to_owned(),
            ),
        })
        .collect();
    for d in running {
        if let Some(label) = labels.get(d.uuid.as_str())
            && !guests.iter().any(|g| g.uuid == d.uuid)
        {
            subjects.push(Subject {
                uuid: d.uuid.clone(),
                name: d.name.clone(),
                process: label.as_str().to_owned(),
            });
        }
    }
    subjects
}

/// What every subject may do to one label.
struct Answers {
    /// By subject index.
    each: Vec<Access>,
    /// Whether every subject has some access (a label open to all guests).
    all: bool,
}

/// (label, open label, class).
type BeyondKey = (String, Option<String>, &'static str);

/// The policy's answers, asked once per (label, class) for every subject.
struct Reach<'a> {
    asker: Asker,
    subjects: &'a [Subject],
    by_label: HashMap<(String, &'static str), Answers>,
    /// For each (label, open label, class): the access subjects have to the label that
    /// the open label does not give them (before what they hold is counted).
    beyond_open: HashMap<BeyondKey, Rc<Vec<(usize, Access)>>>,
    questions: usize,
    /// Labels the policy does not know.
    unknown: BTreeSet<String>,
}

impl Reach<'_> {
    /// What every subject may do to an object of `class` labeled `label`.
    fn of(&mut self, label: &str, class: &'static str) -> Result<&Answers> {
        let key = (label.to_owned(), class);
        if !self.by_label.contains_key(&key) {
            let mut each = Vec::with_capacity(self.subjects.len());
            for s in self.subjects {
                let answer = match self.asker.allowed(&s.process, label, class, &Access::PERMS) {
                    Ok(answer) => answer,
                    // A label the policy does not know: no process may use it (the
                    // kernel refuses to set it on a host that enforces this policy).
                    Err(QueryError::Unknown(what)) if what.contains(label) => {
                        self.unknown.insert(label.to_owned());
                        vec![false, false]
                    }
                    Err(e) => return Err(Error::failed(format!("verify: {e}"))),
                };
                each.push(Access {
                    read: answer[0],
                    write: answer[1],
                });
            }
            self.questions += self.subjects.len();
            let all = !each.is_empty() && each.iter().all(|a| a.any());
            self.by_label.insert(key.clone(), Answers { each, all });
        }
        Ok(&self.by_label[&key])
    }

    /// The access to `label` beyond what `open` (a label the holds open to every
    /// guest) gives, per subject that has some.
    fn beyond(
        &mut self,
        label: &str,
        open: Option<&str>,
        class: &'static str,
    ) -> Result<Rc<Vec<(usize, Access)>>> {
        let key = (label.to_owned(), open.map(str::to_owned), class);
        if let Some(found) = self.beyond_open.get(&key) {
            return Ok(found.clone());
        }
        let given = match open {
            Some(open) => Some(self.of(open, class)?.each.clone()),
            None => None,
        };
        let beyond: Vec<(usize, Access)> = self
            .of(label, class)?
            .each
            .iter()
            .enumerate()
            .map(|(i, a)| (i, given.as_ref().map_or(*a, |g| a.minus(g[i]))))
            .filter(|(_, a)| a.any())
            .collect();
        let beyond = Rc::new(beyond);
        self.beyond_open.insert(key, beyond.clone());
        Ok(beyond)
    }
}

/// The categories of a label, when it parses.
fn categories(label: &str) -> Option<CategorySet> {
    label.parse::<Context>().ok().map(|c| c.high_categories())
}

/// The pair as a category set.
fn pair_set(pair: crate::decide::context::Pair) -> CategorySet {
    let mut set = CategorySet::default();
    set.insert(pair.low());
    set.insert(pair.high());
    set
}

/// The label libvirt remembered for a file it labeled (`trusted.libvirt.security.selinux`).
fn libvirt_remembered(path: &str) -> Option<String> {
    let mut buf = [0u8; 512];
    let n = rustix::fs::lgetxattr(path, "trusted.libvirt.security.selinux", &mut buf).ok()?;
    Some(
        String::from_utf8_lossy(&buf[..n])
            .trim_end_matches('\0')
            .to_owned(),
    )
}

/// Verifies every pool, or `only` that one, with `running` the domains libvirt runs.
pub fn verify(
    settings: &Settings,
    only: Option<&str>,
    running: &[Running],
) -> Result<Verification> {
    let pools = report::status_of(settings, only)?;
    let guests = backend::open(settings)?.guests()?;
    let subjects = subjects(settings, &guests, running);
    let mut asker = Asker::new().map_err(|e| Error::failed(format!("verify: {e}")))?;
    // A process label the policy does not know cannot run on a host that enforces it.
    let (subjects, unknown): (Vec<Subject>, Vec<Subject>) =
        subjects.into_iter().partition(|s| asker.knows(&s.process));
    let mut v = Verification {
        policy: match asker.source() {
            Source::Kernel => "kernel",
            Source::PolicyFile => "policy file",
        },
        pools: pools.iter().map(|p| p.name.clone()).collect(),
        volumes: 0,
        labels: 0,
        guests: subjects.len(),
        questions: 0,
        asked_policy: 0,
        open_to_all: 0,
        unchecked: unknown
            .iter()
            .map(|s| {
                format!(
                    "guest {} ({}): the policy does not know its process label {}",
                    s.name, s.uuid, s.process
                )
            })
            .collect(),
        findings: Vec::new(),
    };
    let mut reach = Reach {
        asker,
        subjects: &subjects,
        by_label: HashMap::new(),
        beyond_open: HashMap::new(),
        questions: 0,
        unknown: BTreeSet::new(),
    };
    let known = Known::of(&guests, &subjects, running);
    for pool in &pools {
        if !pool.available {
            let why = pool.error.as_deref().unwrap_or("unreadable");
            v.unchecked
                .push(format!("pool {} ({}): {why}", pool.name, pool.location));
            continue;
        }
        let lvm = matches!(
            settings
                .pools
                .iter()
                .find(|p| p.name == pool.name)
                .map(|p| &p.kind),
            Some(PoolKind::Lvm(_))
        );
        for volume in &pool.volumes {
            verify_volume(pool, lvm, volume, &mut reach, &known, &mut v)?;
        }
    }
    v.labels = reach.by_label.len();
    v.unchecked.extend(
        (reach.unknown.iter())
            .map(|l| format!("label {l}: the policy does not know it (no guest may use it)")),
    );
    v.questions = reach.questions;
    v.asked_policy = reach.asker.asked();
    v.findings.sort_by(|a, b| {
        (&a.pool, &a.volume, a.kind, &a.guest).cmp(&(&b.pool, &b.volume, b.kind, &b.guest))
    });
    Ok(v)
}

/// What the state says about pairs and guests.
struct Known<'a> {
    /// Each subject's index by UUID.
    subjects: HashMap<&'a str, usize>,
    /// Every pair a guest has or runs with, and every running domain's categories.
    pairs: HashSet<CategorySet>,
    /// The categories of what runs now: the domains libvirt runs, and the pairs the
    /// hook recorded for the guests it started (until their release).
    running: HashSet<CategorySet>,
}

impl<'a> Known<'a> {
    fn of(guests: &[Guest], subjects: &'a [Subject], running: &[Running]) -> Known<'a> {
        let domain_cats: Vec<CategorySet> = running
            .iter()
            .filter_map(|d| Some(d.label.as_ref()?.high_categories()))
            .collect();
        let run_pairs = guests.iter().filter_map(|g| g.run_pair).map(pair_set);
        Known {
            subjects: subjects
                .iter()
                .enumerate()
                .map(|(i, s)| (s.uuid.as_str(), i))
                .collect(),
            pairs: guests
                .iter()
                .map(|g| pair_set(g.pair))
                .chain(run_pairs.clone())
                .chain(domain_cats.iter().cloned())
                .collect(),
            running: run_pairs.chain(domain_cats).collect(),
        }
    }
}

fn verify_volume(
    pool: &PoolStatus,
    lvm: bool,
    volume: &VolumeStatus,
    reach: &mut Reach<'_>,
    known: &Known<'_>,
    v: &mut Verification,
) -> Result<()> {
    let Some(class) = volume.opened.class else {
        return Ok(());
    };
    let Some(label) = volume.current.as_deref() else {
        v.unchecked
            .push(format!("{}: it has no label", volume.path));
        return Ok(());
    };
    v.volumes += 1;
    let finding = |kind, guest: Option<&Subject>, access: Access, message: String| Finding {
        kind,
        pool: pool.name.clone(),
        volume: volume.volume.clone(),
        path: volume.path.clone(),
        label: label.to_owned(),
        guest: guest.map(|g| g.uuid.clone()),
        name: guest.map(|g| g.name.clone()),
        access: access.names(),
        message,
    };
    // A finding about one guest, in one line naming the volume, the guest, what it may
    // or may not do, and the label.
    let about = |kind, guest: &Subject, access: Access, what: &str| {
        let message = format!(
            "{}: guest {} ({}) {what} (label {label})",
            volume.path, guest.name, guest.uuid
        );
        finding(kind, Some(guest), access, message)
    };
    // What each holder's mode gives it. An LV node is this host's: another host's
    // holders use their own node of the shared VG.
    let mut granted: HashMap<&str, Access> = HashMap::new();
    for h in &volume.attachments {
        if lvm && h.host.is_some() {
            continue;
        }
        let g = granted.entry(h.guest.as_str()).or_default();
        *g = g.union(Access::needed(&h.mode));
    }
    // What the holds open to every guest: a desired label without categories (shared
    // or content) is sVirt's label for every guest; a resting label opens what the
    // policy lets guests do to resting images (nothing, in refpolicy).
    let open_label = volume
        .desired
        .as_deref()
        .filter(|d| categories(d).is_some_and(|c| c.is_empty()));
    if reach.of(label, class)?.all && open_label.is_some() && !granted.is_empty() {
        v.open_to_all += 1;
    }
    for &(i, access) in reach.beyond(label, open_label, class)?.iter() {
        let guest = &reach.subjects[i];
        let held = granted
            .get(guest.uuid.as_str())
            .copied()
            .unwrap_or_default();
        let excess = access.minus(held);
        if excess.any() {
            let what = format!("may {} it without holding it", excess.names().join(" and "));
            v.findings
                .push(about(Kind::UnheldAccess, guest, excess, &what));
        }
    }
    let mut holders: BTreeSet<(&str, &str)> = BTreeSet::new();
    for h in &volume.attachments {
        if !(lvm && h.host.is_some()) {
            holders.insert((h.guest.as_str(), h.mode.as_str()));
        }
    }
    for (uuid, mode) in holders {
        let Some(&i) = known.subjects.get(uuid) else {
            continue;
        };
        let missing = Access::needed(mode).minus(reach.of(label, class)?.each[i]);
        let guest = &reach.subjects[i];
        if missing.any() {
            let what = format!(
                "holds it {mode} but may not {} it",
                missing.names().join(" or ")
            );
            v.findings
                .push(about(Kind::HolderDenied, guest, missing, &what));
        }
    }
    let Some(cats) = categories(label).filter(|c| !c.is_empty()) else {
        return Ok(());
    };
    if volume.opened.by_libvirt && !known.running.contains(&cats) {
        let remembered = libvirt_remembered(&volume.path).unwrap_or_else(|| "?".into());
        let message = format!(
            "{}: libvirt keeps label {label} for a domain that does not run \
             (it would restore {remembered})",
            volume.path
        );
        v.findings.push(finding(
            Kind::StaleLibvirt,
            None,
            Access::default(),
            message,
        ));
    } else if !known.pairs.contains(&cats) {
        let message = format!(
            "{}: label {label} carries categories {cats} that no guest has",
            volume.path
        );
        v.findings
            .push(finding(Kind::UnknownPair, None, Access::default(), message));
    }
    Ok(())
}
