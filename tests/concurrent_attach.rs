//! Attach and detach called at the same time from many threads and async tasks of one
//! process, as the agent does (its API's calls are tasks on one runtime thread, the
//! libvirt hook's and `Open`'s are threads): the calls waiting for the state lock run
//! as one batch with one commit (`ops::volumes::batch`). Each caller must still get its
//! own answer, a refused call must change nothing and not spoil the others, two guests
//! asking for one file `rw` at once must not both get it, and every label must be the
//! one the committed state asks. Real xattrs, real file_contexts, real SQLite; the
//! agent itself is not needed.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use svirt_pool::config::Settings;
use svirt_pool::decide::labels::Mode;
use svirt_pool::error::Result;
use svirt_pool::model::Labeled;
use svirt_pool::ops::volumes::Batcher;
use svirt_pool::ops::{Caller, locate, volumes};
use svirt_pool::registry::Holds;
use tokio::sync::Barrier;

const THREADS: usize = 12;
const ROUNDS: usize = 15;

/// How a caller calls: blocking its thread, or as an async task.
#[derive(Clone, Copy, Debug)]
enum Via {
    Thread,
    Task,
}

/// The agent's settings and its queue of attach and detach calls, shared by callers.
type Shared<'a> = (&'a Arc<Settings>, &'a Arc<Batcher>);

/// A disk of the test pool as the API names it.
fn named(settings: &Settings, disk: &Path) -> locate::Named {
    locate::name(settings, disk).expect("a volume of the pool")
}

async fn attach(
    via: Via,
    (settings, batcher): Shared<'_>,
    uuid: &str,
    disk: &Path,
) -> Result<Labeled> {
    match via {
        Via::Thread => volumes::attach_in(batcher, settings, Caller::ROOT, uuid, disk, Mode::Rw),
        Via::Task => {
            volumes::prepare_attach(
                settings,
                Caller::ROOT,
                uuid,
                named(settings, disk),
                Mode::Rw,
            )?
            .run(batcher, settings)
            .await
        }
    }
}

async fn detach(
    via: Via,
    (settings, batcher): Shared<'_>,
    uuid: &str,
    disk: &Path,
) -> Result<Labeled> {
    match via {
        Via::Thread => volumes::detach_in(batcher, settings, Caller::ROOT, uuid, disk),
        Via::Task => {
            volumes::prepare_detach(settings, Caller::ROOT, uuid, named(settings, disk))?
                .run(batcher, settings)
                .await
        }
    }
}

/// One caller's part: everyone asks for the contested file rw at once (one may have
/// it), then attaches and detaches its own disk, round after round. Returns the
/// contested file's label if this caller got it.
async fn contend(
    via: Via,
    shared: Shared<'_>,
    start: &Barrier,
    i: usize,
    (uuid, cats): &(String, String),
    disk: &Path,
    contested: &Path,
) -> Option<(usize, Option<String>)> {
    start.wait().await;
    let won = attach(via, shared, uuid, contested).await;
    for round in 0..ROUNDS {
        let attached = attach(via, shared, uuid, disk)
            .await
            .unwrap_or_else(|e| panic!("vm{i} ({via:?}) round {round}: {e}"));
        assert_eq!(attached.label, Some(image_label(cats)), "vm{i}");
        assert_eq!(label(disk), Some(image_label(cats)), "vm{i} round {round}");
        let detached = detach(via, shared, uuid, disk)
            .await
            .unwrap_or_else(|e| panic!("vm{i} ({via:?}) round {round}: {e}"));
        assert_eq!(detached.label.as_deref(), Some(VIRT_IMAGE), "vm{i}");
        // A second detach is refused, and refuses nothing else.
        let again = detach(via, shared, uuid, disk).await;
        assert!(again.is_err(), "vm{i}: detached twice");
    }
    won.ok().map(|l| (i, l.label))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Runs `THREADS` callers at once, the first `threads` of them on threads of their own
/// and the others as tasks of one runtime thread, beside a caller whose every call is
/// refused; then checks the labels and the committed state.
fn contest(threads: usize) {
    let bed = Bed::new();
    let settings = Arc::new(Settings::load(&bed.config).unwrap());
    let batcher = Batcher::new();
    let shared = (&settings, &batcher);
    let guests: Vec<(String, String)> = (0..THREADS)
        .map(|i| bed.define_guest(&format!("vm{i}")))
        .collect();
    let disks: Vec<PathBuf> = (0..THREADS)
        .map(|i| bed.file(&format!("disk{i}.img")))
        .collect();
    let contested = bed.file("contested.img");
    let stranger = new_uuid(); // never defined
    let start = Barrier::new(THREADS + 1);
    let contend_via =
        |via: Via, i: usize| contend(via, shared, &start, i, &guests[i], &disks[i], &contested);

    let contested_wins: Vec<(usize, Option<String>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|i| s.spawn(move || runtime().block_on(contend_via(Via::Thread, i))))
            .collect();
        let tasks = s.spawn(|| {
            runtime().block_on(futures_util::future::join_all(
                (threads..THREADS).map(|i| contend_via(Via::Task, i)),
            ))
        });
        // Beside them, calls that must be refused.
        let refuser = s.spawn(|| {
            runtime().block_on(async {
                start.wait().await;
                for round in 0..ROUNDS {
                    let via = if round % 2 == 0 {
                        Via::Thread
                    } else {
                        Via::Task
                    };
                    let e = attach(via, shared, &stranger, &disks[0])
                        .await
                        .expect_err("an undefined guest");
                    assert!(e.to_string().contains("not defined"), "round {round}: {e}");
                }
            })
        });
        refuser.join().unwrap();
        let mut wins: Vec<_> = workers
            .into_iter()
            .filter_map(|w| w.join().unwrap())
            .collect();
        wins.extend(tasks.join().unwrap().into_iter().flatten());
        wins
    });

    assert_eq!(
        contested_wins.len(),
        1,
        "two guests got one file rw: {contested_wins:?}"
    );
    let (winner, won_label) = &contested_wins[0];
    assert_eq!(won_label.as_ref(), Some(&image_label(&guests[*winner].1)));
    assert_eq!(label(&contested), Some(image_label(&guests[*winner].1)));
    for disk in &disks {
        assert_eq!(
            label(disk).as_deref(),
            Some(VIRT_IMAGE),
            "{}",
            disk.display()
        );
    }
    // The committed state agrees: only the winner holds anything.
    let store = svirt_pool::state::Store::open(&settings.state_dir).unwrap();
    for (i, (uuid, _)) in guests.iter().enumerate() {
        let held = store.attachments(Some(uuid)).unwrap();
        let expected: Vec<&Path> = if i == *winner {
            vec![Path::new("contested.img")]
        } else {
            vec![]
        };
        let held: Vec<PathBuf> = held
            .iter()
            .map(|a| PathBuf::from(String::from_utf8(a.volume.clone()).unwrap()))
            .collect();
        assert_eq!(held, expected, "vm{i}");
    }
}

#[test]
fn concurrent_attaches_and_detaches_each_get_their_own_answer() {
    contest(THREADS);
}

#[test]
fn calls_from_async_tasks_get_their_own_answers_too() {
    // All of them tasks of one runtime thread, as the API's calls are: the batches are
    // led by the batch thread alone.
    contest(0);
}

#[test]
fn threads_and_tasks_share_batches() {
    // Half and half: a batch led by a thread answers tasks, and one led by the batch
    // thread answers threads.
    contest(THREADS / 2);
}

#[test]
fn a_task_waiting_behind_a_thread_is_led_when_the_thread_steps_down() {
    // A thread leads a batch (held up here by the state lock); a task's call arrives
    // meanwhile and waits. When the thread's batch ends nobody else calls: the batch
    // thread must be woken to lead the task's job, or the task waits forever.
    let bed = Bed::new();
    let settings = Arc::new(Settings::load(&bed.config).unwrap());
    let batcher = Batcher::new();
    let (uuid, cats) = bed.define_guest("vm");
    let (first, second) = (bed.file("first.img"), bed.file("second.img"));
    // A task call first, so the batch thread exists and sleeps.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let call = |disk: &Path| {
        volumes::prepare_detach(&settings, Caller::ROOT, &uuid, named(&settings, disk))
            .expect("prepared")
    };
    assert!(
        rt.block_on(call(&first).run(&batcher, &settings)).is_err(),
        "nothing attached yet"
    );
    let held = svirt_pool::lock::acquire(&settings.state_dir).unwrap();
    std::thread::scope(|s| {
        let thread = s.spawn(|| {
            volumes::attach_in(&batcher, &settings, Caller::ROOT, &uuid, &first, Mode::Rw)
        });
        // The thread now leads, its batch waiting for the lock.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let answer = rt.block_on(async {
            let task = {
                let (settings, batcher) = (settings.clone(), batcher.clone());
                let call = volumes::prepare_attach(
                    &settings,
                    Caller::ROOT,
                    &uuid,
                    named(&settings, &second),
                    Mode::Ro,
                )
                .expect("prepared");
                tokio::spawn(async move { call.run(&batcher, &settings).await })
            };
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            drop(held);
            tokio::time::timeout(std::time::Duration::from_secs(20), task).await
        });
        let answer = answer.expect("the task's call was never led").unwrap();
        assert_eq!(answer.unwrap().label.as_deref(), Some(VIRT_CONTENT));
        assert_eq!(label(&second).as_deref(), Some(VIRT_CONTENT));
        assert_eq!(
            thread.join().unwrap().unwrap().label,
            Some(image_label(&cats))
        );
    });
}

#[test]
fn a_batch_that_cannot_commit_records_and_labels_nothing_it_reported_failed() {
    // The state on a small tmpfs, filled while a dozen attaches run at once: whatever
    // each is told, the state and the labels must agree with it.
    require_root_and_policy();
    let pool = TempDir::new(IMAGES, "svirt-pool-batchfull");
    let state_mnt = TempDir::new("/tmp", "svirt-pool-batchfs");
    let fs = Mount::new("tmpfs", "size=512k", &state_mnt.0);
    let config = pool.0.with_extension("toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[[pool]]\nname = \"p\"\ntype = \"dir\"\npath = \"{}\"\n",
            fs.0.display(),
            pool.0.display()
        ),
    )
    .unwrap();
    let settings = Settings::load(&config).unwrap();
    let batcher = Batcher::default();
    let guests: Vec<(String, String)> = (0..THREADS)
        .map(|_| {
            let uuid = new_uuid();
            let out = run_cli(&config, &["guest", "define", "--uuid", &uuid]);
            assert!(out.status.success(), "{out:?}");
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            (uuid, json["categories"].as_str().unwrap().to_owned())
        })
        .collect();
    let disks: Vec<PathBuf> = (0..THREADS)
        .map(|i| {
            let disk = pool.join(&format!("disk{i}.img"));
            std::fs::write(&disk, b"x").unwrap();
            set_label(&disk, VIRT_IMAGE);
            disk
        })
        .collect();
    // Fill the state filesystem.
    let filler = fs.0.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 1 << 20]);
    let start = std::sync::Barrier::new(THREADS);
    let results: Vec<bool> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|i| {
                let (settings, batcher, start) = (&settings, &batcher, &start);
                let ((uuid, _), disk) = (&guests[i], &disks[i]);
                s.spawn(move || {
                    start.wait();
                    volumes::attach_in(batcher, settings, Caller::ROOT, uuid, disk, Mode::Rw)
                        .is_ok()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    std::fs::remove_file(&filler).unwrap();
    let store = svirt_pool::state::Store::open(&fs.0).unwrap();
    store.integrity_check().unwrap();
    for (i, ok) in results.iter().enumerate() {
        let (uuid, cats) = &guests[i];
        let held = store.attachments(Some(uuid)).unwrap().len();
        let expected_label = if *ok {
            image_label(cats)
        } else {
            VIRT_IMAGE.to_owned()
        };
        assert_eq!(
            held,
            usize::from(*ok),
            "vm{i}: told {ok}, state says {held}"
        );
        assert_eq!(label(&disks[i]), Some(expected_label), "vm{i}: told {ok}");
    }
    assert!(
        results.iter().any(|ok| !ok),
        "the state filesystem was not full"
    );
    drop(store);
    let _ = std::fs::remove_file(&config);
}
