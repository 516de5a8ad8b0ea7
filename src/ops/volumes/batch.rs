//! Group commit for attach and detach: calls that arrive while another batch holds the
//! state lock wait together, and the next batch runs them all (one hold of the lock,
//! one durable commit; see `jobs::run_batch`).
//!
//! A commit waits for an `fsync`, which on these disks is most of an attach. With one
//! caller at a time every batch is that call alone, exactly as without batching; with
//! several, they share the `fsync` instead of queueing for the lock one by one.
//!
//! Two kinds of caller share one queue:
//! - a thread (the CLI, the libvirt hook, `Open`) waits for its answer, and leads a
//!   batch itself when none is running: it runs every job waiting (its own among them),
//!   hands each caller its answer and steps down;
//! - a task of the API's runtime (`Attach`, `Detach`) does not wait on a thread: its
//!   job is led by the queue's runner thread, and the answer comes back on a one-shot
//!   channel. Each call on a blocking thread of its own, waiting for a batch on a
//!   condition variable, cost two thread hand-offs more than the batch's work (a third
//!   of the agent's time under 8 clients).
//!
//! When a batch steps down, whoever owns the oldest job still waiting leads the next:
//! its thread, or the runner. The queue is a [`Batcher`]: the agent owns one, shared by
//! every API connection; a call alone (the CLI, the libvirt hook) makes its own.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::jobs::{Done, Job, run_batch};
use crate::config::Settings;
use crate::error::Error;

/// At most this many jobs in one batch (one transaction).
const MAX_BATCH: usize = 64;

/// Where a job's answer goes.
enum Reply {
    /// A thread waiting in [`run`]: the answer waits in `Queue::done`.
    Thread,
    /// A task waiting in [`submit`].
    Task(oneshot::Sender<Done>),
}

/// The attach and detach calls of one process waiting for their batch, and who leads.
/// Every call given to one `Batcher` must come with the same `Settings`.
#[derive(Default)]
pub struct Batcher {
    queue: Mutex<Queue>,
    /// Woken when a batch steps down with no job waiting ([`Batcher::settle`]).
    idle: Condvar,
}

/// The waiting jobs and their callers.
#[derive(Default)]
struct Queue {
    /// Jobs waiting for a batch, oldest first, with their ids.
    waiting: Vec<(u64, Job, Reply)>,
    /// Answers not yet picked up by their threads.
    done: HashMap<u64, Done>,
    /// What each thread waiting for its answer sleeps on, by its job's id: a batch
    /// wakes its own callers and the one that leads next, not every caller waiting
    /// (with 8 clients, 43 % of the wake-ups found nothing to do).
    sleepers: HashMap<u64, Arc<Condvar>>,
    /// What the runner sleeps on, once a task has started it.
    runner: Option<Arc<Condvar>>,
    /// Whether a batch is running.
    leading: bool,
    next_id: u64,
}

impl Queue {
    fn busy(&self) -> bool {
        self.leading || !self.waiting.is_empty()
    }
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Without the queue's lock: it may be held by whoever formats this.
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl Batcher {
    /// A queue with nothing waiting.
    pub fn new() -> Arc<Batcher> {
        Arc::new(Batcher::default())
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Every change to the queue is a push, a take or a flag, and batches run
        // unlocked and with their panics caught: a panic cannot leave it half-changed.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `job` in the next batch and returns its answer (blocks).
    pub(super) fn run(&self, settings: &Settings, job: Job) -> Done {
        let mut done = self.run_all(settings, vec![job]);
        done.pop().expect("one answer per job")
    }

    /// Runs `jobs` in the next batch (several, past [`MAX_BATCH`]) and returns their
    /// answers in order (blocks): a domain's disks in one commit.
    pub(super) fn run_all(&self, settings: &Settings, jobs: Vec<Job>) -> Vec<Done> {
        let mut queue = self.lock();
        let mut ids = Vec::with_capacity(jobs.len());
        for job in jobs {
            let id = queue.next_id;
            queue.next_id += 1;
            queue.waiting.push((id, job, Reply::Thread));
            ids.push(id);
        }
        let wake = Arc::new(Condvar::new());
        loop {
            if ids.iter().all(|id| queue.done.contains_key(id)) {
                return ids
                    .iter()
                    .map(|id| {
                        queue.sleepers.remove(id);
                        queue.done.remove(id).expect("checked above")
                    })
                    .collect();
            }
            if queue.leading {
                for id in &ids {
                    queue.sleepers.insert(*id, wake.clone());
                }
                queue = wake.wait(queue).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            for id in &ids {
                queue.sleepers.remove(id);
            }
            // Lead a batch of the oldest jobs: these among them, unless MAX_BATCH
            // older ones wait (then it leads again).
            queue = self.lead(settings, queue);
        }
    }

    /// Runs `job` in the next batch, led by the runner thread, and returns its answer
    /// (does not block).
    pub(super) async fn submit(self: &Arc<Self>, settings: &Arc<Settings>, job: Job) -> Done {
        let (tx, rx) = oneshot::channel();
        {
            let mut queue = self.lock();
            let id = queue.next_id;
            queue.next_id += 1;
            // The runner exists before the job waits: a batch stepping down with this
            // job the oldest wakes it.
            let wake = match self.runner(settings, &mut queue) {
                Ok(wake) => wake,
                Err(e) => {
                    return Done::Panicked(Error::failed(format!(
                        "cannot start the batch runner thread: {e}"
                    )));
                }
            };
            queue.waiting.push((id, job, Reply::Task(tx)));
            if !queue.leading {
                wake.notify_one();
            }
        }
        rx.await.unwrap_or_else(|_| {
            Done::Panicked(Error::failed(
                "internal error: the batch runner dropped the call",
            ))
        })
    }

    /// The runner, started on first use: a thread that leads a batch whenever jobs
    /// wait and none is running, for as long as the process lives.
    fn runner(
        self: &Arc<Self>,
        settings: &Arc<Settings>,
        queue: &mut Queue,
    ) -> std::io::Result<Arc<Condvar>> {
        if let Some(wake) = &queue.runner {
            return Ok(wake.clone());
        }
        let wake = Arc::new(Condvar::new());
        let (this, settings, sleep) = (self.clone(), settings.clone(), wake.clone());
        std::thread::Builder::new()
            .name("batch".into())
            .spawn(move || {
                let mut queue = this.lock();
                loop {
                    if queue.leading || queue.waiting.is_empty() {
                        queue = sleep.wait(queue).unwrap_or_else(PoisonError::into_inner);
                    } else {
                        queue = this.lead(&settings, queue);
                    }
                }
            })?;
        queue.runner = Some(wake.clone());
        Ok(wake)
    }

    /// Runs one batch of the oldest waiting jobs (no batch may be running), hands each
    /// caller its answer and steps down, waking the owner of the oldest job still
    /// waiting (or, with none, whoever waits in [`Batcher::settle`]).
    fn lead<'q>(
        &'q self,
        settings: &Settings,
        mut queue: MutexGuard<'q, Queue>,
    ) -> MutexGuard<'q, Queue> {
        queue.leading = true;
        let n = queue.waiting.len().min(MAX_BATCH);
        let (mut ids, mut jobs, mut replies) = (Vec::new(), Vec::new(), Vec::new());
        for (id, job, reply) in queue.waiting.drain(..n) {
            ids.push(id);
            jobs.push(job);
            replies.push(reply);
        }
        drop(queue);
        // A panic (reported on stderr by the panic hook) answers the batch's callers
        // with an error instead of leaving them waiting, and the leader goes on.
        let answers =
            catch_unwind(AssertUnwindSafe(|| run_batch(settings, jobs))).unwrap_or_default();
        let mut answers = answers.into_iter();
        let mut queue = self.lock();
        for (id, reply) in ids.into_iter().zip(replies) {
            let done = answers.next().unwrap_or_else(|| {
                Done::Panicked(Error::failed(
                    "internal error: the batch it was in panicked",
                ))
            });
            match reply {
                Reply::Thread => {
                    queue.done.insert(id, done);
                    if let Some(sleeper) = queue.sleepers.get(&id) {
                        sleeper.notify_one();
                    }
                }
                // A task that went away (its client hung up) has nothing to be told:
                // what it asked for is done, as when a client hangs up after the reply.
                Reply::Task(tx) => drop(tx.send(done)),
            }
        }
        queue.leading = false;
        match queue.waiting.first() {
            Some((id, _, Reply::Thread)) => {
                // Not yet asleep: it finds no batch running before it sleeps.
                if let Some(sleeper) = queue.sleepers.get(id) {
                    sleeper.notify_one();
                }
            }
            Some((_, _, Reply::Task(_))) => {
                if let Some(runner) = &queue.runner {
                    runner.notify_one();
                }
            }
            None => self.idle.notify_all(),
        }
        queue
    }

    /// Waits until no batch runs or waits: the agent, stopping, lets the batch thread
    /// finish what the API handed it (whether or not its client is still there to be
    /// told), as the runtime waits for its blocking threads.
    pub fn settle(&self) {
        let mut queue = self.lock();
        while queue.busy() {
            queue = self
                .idle
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}
