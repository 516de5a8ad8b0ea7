//! Labeling files in directories that others can write (the second audit, issue 23 §1).
//!
//! The agent used to move such a file's name into a staging directory for the write.
//! That freed the name for an instant (a sticky directory's name hijacked, the victim's
//! file coming back under another name), let anyone who can write the pool root block
//! every such write by creating the staging directory first, and made honest users'
//! `write tmp; rename tmp name` fail with ENOENT. The protocol now never moves, hides or
//! renames a user's name (src/apply/sole_link.rs). Each attack runs against the real
//! binary with a real user (`nobody`, by setpriv) on real ext4, then on a filesystem
//! where the protocol cannot prove anything (overlayfs): there it refuses to label.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const NAME_RACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/name_race.py");
const NOBODY: u32 = 65534;

/// Runs tests/support/name_race.py as `nobody` and returns what it printed. The script
/// is copied to a directory anyone may read first: the checkout may be in a directory
/// only root can enter (CI's is).
fn as_nobody(args: &[&str]) -> serde_json::Value {
    let copy = TempDir::new("/tmp", "svirt-pool-name-race");
    std::fs::set_permissions(&copy.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = copy.join("name_race.py");
    std::fs::copy(NAME_RACE, &script).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg("/usr/bin/python3")
        .arg(&script)
        .args(args)
        .current_dir("/")
        .output()
        .expect("python3 and setpriv (util-linux) are needed");
    assert!(
        out.status.success(),
        "name_race.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A directory of the pool that anyone may write, sticky as /tmp (mode 1777).
fn sticky_dir(bed: &Bed, rel: &str) -> PathBuf {
    let dir = bed.pool.join(rel);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// What the staging protocol left behind: a `.svirt-pool` directory in the pool root or
/// a `NAME.svirt-pool-INODE-RANDOM` name anywhere in the pool.
fn leftovers(pool: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![pool.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.contains(".svirt-pool-") || (dir == pool && name == ".svirt-pool") {
                found.push(entry.path());
            } else if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    found
}

/// Attaches `file` read-only and detaches it until `seconds` pass: each call writes its
/// label (content, then resting). Returns the number of cycles.
fn relabel_loop(bed: &Bed, uuid: &str, file: &Path, seconds: u64) -> usize {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut cycles = 0;
    while Instant::now() < deadline {
        bed.attach_ok(uuid, file, "ro");
        assert_eq!(label(file).as_deref(), Some(VIRT_CONTENT));
        bed.ok(&[
            "detach",
            "--guest",
            uuid,
            "--volume",
            file.to_str().unwrap(),
        ]);
        assert_eq!(label(file).as_deref(), Some(VIRT_IMAGE));
        cycles += 1;
    }
    cycles
}

#[test]
fn a_name_in_a_sticky_directory_is_never_free_while_its_file_is_labeled() {
    let bed = Bed::new();
    let (uuid, _) = bed.define_guest("reader");
    let tmp = sticky_dir(&bed, "tmp");
    // Another user's world-readable file, and one whose name is too long to be put
    // back beside a taken name (the staging protocol left it in its 0700 directory).
    for name in ["victim.iso".to_owned(), format!("{}.iso", "v".repeat(220))] {
        let file = tmp.join(&name);
        std::fs::write(&file, b"the victim's media").unwrap();
        std::os::unix::fs::chown(&file, Some(4242), Some(4242)).unwrap();
        let ino = std::fs::metadata(&file).unwrap().ino();
        let (cycles, squat) = std::thread::scope(|s| {
            let squatter = s.spawn(|| as_nobody(&["squat", tmp.to_str().unwrap(), &name, "4"]));
            // Let the squatter start before the relabels do.
            std::thread::sleep(Duration::from_millis(300));
            let cycles = relabel_loop(&bed, &uuid, &file, 3);
            (cycles, squatter.join().unwrap())
        });
        println!(
            "hijack race ({} bytes): {cycles} attach+detach cycles, squatter {squat}",
            name.len()
        );
        assert!(cycles >= 10, "the race barely ran: {cycles} cycles");
        assert!(squat["tries"].as_u64().unwrap() > 1000, "{squat}");
        assert_eq!(
            squat["won"], 0,
            "the victim's name was free at some instant"
        );
        let now = std::fs::metadata(&file).unwrap();
        assert_eq!(now.ino(), ino, "another file sits at the victim's name");
        assert_eq!(now.uid(), 4242);
        assert_eq!(leftovers(&bed.pool.0), Vec::<PathBuf>::new());
    }
}

#[test]
fn a_user_s_dot_svirt_pool_in_the_pool_root_blocks_nothing() {
    let bed = Bed::new();
    let (uuid, cats) = bed.define_guest("web");
    // Anyone may write the pool root: a user takes the name the staging directory had,
    // as a directory of its own and, in a subdirectory, as a symlink to the outside.
    std::fs::set_permissions(&bed.pool.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let squat = bed.pool.join(".svirt-pool");
    let status = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["mkdir", "-m", "0700", squat.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let up = sticky_dir(&bed, "up");
    std::os::unix::fs::symlink("/etc", up.join(".svirt-pool")).unwrap();
    let disk = up.join("disk.img");
    std::fs::write(&disk, b"img").unwrap();

    // Root's attach of a file in an unsealed directory works, and so does a scan.
    bed.attach_ok(&uuid, &disk, "rw");
    assert_eq!(label(&disk), Some(image_label(&cats)));
    let other = up.join("other.img");
    std::fs::write(&other, b"img").unwrap();
    set_label(&other, "system_u:object_r:tmp_t:s0");
    bed.ok(&["scan"]);
    assert_eq!(label(&other).as_deref(), Some(VIRT_IMAGE));
    // The user's directory is the user's: untouched, and an ordinary part of the pool.
    let st = std::fs::symlink_metadata(&squat).unwrap();
    assert!(st.is_dir());
    assert_eq!((st.uid(), st.mode() & 0o7777), (NOBODY, 0o700));
    assert_eq!(std::fs::read_dir(&squat).unwrap().count(), 0);
    assert!(
        std::fs::symlink_metadata(up.join(".svirt-pool"))
            .unwrap()
            .is_symlink()
    );
}

#[test]
fn honest_write_then_rename_never_fails_while_the_agent_labels() {
    let bed = Bed::new();
    // The user's own pool directory (not root's: unsealed).
    let mine = bed.pool.join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::os::unix::fs::chown(&mine, Some(NOBODY), Some(NOBODY)).unwrap();
    let _agent = bed.agent();
    let gaps = ["0", "100", "200", "300", "400", "500"];
    let mut args = vec!["rename", mine.to_str().unwrap(), "2000"];
    args.extend(gaps);
    let result = as_nobody(&args);
    println!("write-then-rename beside the agent: {result}");
    assert_eq!(result["renames"], 12_000);
    for gap in gaps {
        assert_eq!(
            result["failed"][gap], 0,
            "renames failed at a gap of {gap} us: {}",
            result["errors"]
        );
    }
    // And every file ends up labeled under the name the user gave it.
    let last = mine.join("f-500-1999.img");
    assert_label_within_1s(&last, VIRT_IMAGE);
    assert!(
        wait_for(Duration::from_secs(30), || {
            std::fs::read_dir(&mine)
                .unwrap()
                .all(|e| label(&e.unwrap().path()).as_deref() == Some(VIRT_IMAGE))
        }),
        "files left unlabeled"
    );
    assert_eq!(std::fs::read_dir(&mine).unwrap().count(), 12_000);
    assert_eq!(leftovers(&bed.pool.0), Vec::<PathBuf>::new());
}

#[test]
fn an_agent_killed_while_it_labels_an_unsealed_directory_loses_no_name() {
    let bed = Bed::new();
    let up = sticky_dir(&bed, "up");
    let mut made = Vec::new();
    for round in 0..5 {
        let agent = bed.agent();
        // Files arrive while the agent labels them; it dies in the middle.
        for i in 0..300 {
            let file = up.join(format!("r{round}-{i}.img"));
            std::fs::write(&file, b"img").unwrap();
            made.push(file);
        }
        std::thread::sleep(Duration::from_millis(5 * round));
        agent.kill();
        for file in &made {
            assert!(file.exists(), "{} is gone after a crash", file.display());
        }
        assert_eq!(leftovers(&bed.pool.0), Vec::<PathBuf>::new());
    }
    assert_eq!(std::fs::read_dir(&up).unwrap().count(), made.len());
    // A scan afterwards converges.
    bed.ok(&["scan"]);
    for file in &made {
        assert_eq!(
            label(file).as_deref(),
            Some(VIRT_IMAGE),
            "{}",
            file.display()
        );
    }
}

/// An overlayfs: a name changed in its upper directory directly changes the merged view
/// without a VFS operation on the overlay, so the watched check proves nothing there.
struct Overlay {
    merged: Mount,
    _layers: TempDir,
}

impl Overlay {
    fn at(merged: &Path) -> Overlay {
        let layers = TempDir::new("/var/tmp", "svirt-pool-overlay");
        for d in ["lower", "upper", "work"] {
            std::fs::create_dir(layers.join(d)).unwrap();
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            layers.join("lower").display(),
            layers.join("upper").display(),
            layers.join("work").display()
        );
        Overlay {
            merged: Mount::new("overlay", &options, merged),
            _layers: layers,
        }
    }
}

#[test]
fn where_nothing_can_be_proven_an_unsealed_file_is_refused_and_counted() {
    require_root_and_policy();
    let top = TempDir::new(IMAGES, "svirt-pool-overlay");
    let overlay = Overlay::at(&top.join("pool"));
    let pool = &overlay.merged.0;
    std::fs::set_permissions(pool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = TempDir::new("/tmp", "svirt-pool-state");
    let config = state.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[api]\nsocket = \"{}/api.sock\"\n\
             [[pool]]\nname = \"ovl\"\ntype = \"dir\"\npath = \"{}\"\n",
            state.0.display(),
            state.0.display(),
            pool.display()
        ),
    )
    .unwrap();
    // Root's sealed directory: labeled. A root directory unsealed only by an ACL that
    // lets nobody write it, and a 1777 directory: refused, named, counted.
    let sealed = pool.join("sealed.img");
    std::fs::write(&sealed, b"x").unwrap();
    let acl_dir = pool.join("acl");
    std::fs::create_dir(&acl_dir).unwrap();
    let ok = Command::new("setfacl")
        .args(["-m", "u:nobody:rwx", acl_dir.to_str().unwrap()])
        .status()
        .expect("setfacl (acl) is needed")
        .success();
    assert!(ok, "setfacl failed");
    let by_acl = acl_dir.join("disk.img");
    std::fs::write(&by_acl, b"x").unwrap();
    let open = pool.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let in_open = open.join("disk.img");
    std::fs::write(&in_open, b"x").unwrap();

    let out = run_cli(&config, &["scan", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["pools"]["ovl"]["skipped"]["unprovable sole link"], 2,
        "{json}"
    );
    assert_eq!(label(&sealed).as_deref(), Some(VIRT_IMAGE));
    assert_eq!(label(&by_acl), None, "the ACL was not seen");
    assert_eq!(label(&in_open), None);
    let status = String::from_utf8(run_cli(&config, &["status"]).stdout).unwrap();
    assert!(
        status.contains("unprovable"),
        "status does not say why: {status}"
    );

    // Root's attach of such a file is refused, naming the file and what to do.
    let uuid = new_uuid();
    let out = run_cli(
        &config,
        &["guest", "define", "--uuid", &uuid, "--name", "g"],
    );
    assert!(out.status.success());
    let out = run_attach(&config, &uuid, &in_open, "rw");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("disk.img") && err.contains("root's"), "{err}");
    assert_eq!(label(&in_open), None);
}
