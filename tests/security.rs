//! The security invariants of DESIGN: never through a symlink, never a hard-linked
//! file, never out of the pool by `..`, and no pool whose path is a symlink. Each is
//! checked on the CLI, the one-shot scan, and the agent, against files outside the
//! pool whose labels must not change.

mod common;

use std::os::unix::fs::symlink;

use common::*;

/// A file outside every pool with a known label that must never change.
struct Outside {
    dir: TempDir,
}

const SECRET: &str = "system_u:object_r:shadow_t:s0";

impl Outside {
    fn new() -> Outside {
        let dir = TempDir::new("/var/lib", "svirt-pool-outside");
        std::fs::write(dir.join("secret"), b"root:x:0:0").unwrap();
        set_label(&dir.join("secret"), SECRET);
        std::fs::create_dir(dir.join("subdir")).unwrap();
        std::fs::write(dir.join("subdir/inner.img"), b"x").unwrap();
        set_label(&dir.join("subdir/inner.img"), SECRET);
        Outside { dir }
    }

    fn assert_untouched(&self) {
        assert_eq!(label(&self.dir.join("secret")).as_deref(), Some(SECRET));
        assert_eq!(
            label(&self.dir.join("subdir/inner.img")).as_deref(),
            Some(SECRET)
        );
    }
}

#[test]
fn symlinks_to_files_and_directories_outside_are_never_followed() {
    let bed = Bed::new();
    let outside = Outside::new();
    let file_link = bed.pool.join("evil.img");
    let dir_link = bed.pool.join("evil-dir");
    symlink(outside.dir.join("secret"), &file_link).unwrap();
    symlink(outside.dir.join("subdir"), &dir_link).unwrap();
    let (uuid, _) = bed.define_guest("attacker");

    for target in [file_link.clone(), dir_link.join("inner.img")] {
        let out = bed.attach(&uuid, &target, "rw");
        assert_eq!(out.status.code(), Some(1), "{}", target.display());
        assert!(String::from_utf8_lossy(&out.stderr).contains("symlink"));
    }
    let json: serde_json::Value = serde_json::from_str(&bed.ok(&["scan", "--json"])).unwrap();
    assert_eq!(json["total"]["skipped"]["symlink"], 2);
    outside.assert_untouched();

    // The agent: a symlink planted while it watches, and files touched behind it.
    let _agent = bed.agent();
    symlink(outside.dir.join("secret"), bed.pool.join("planted.img")).unwrap();
    std::fs::write(outside.dir.join("subdir/inner.img"), b"touched").unwrap();
    bed.file("canary.img");
    assert_label_within_1s(&bed.pool.join("canary.img"), VIRT_IMAGE);
    outside.assert_untouched();
    assert_eq!(
        label(&file_link),
        None,
        "the symlink itself is not labeled either"
    );
}

#[test]
fn a_hard_link_to_a_file_outside_is_never_labeled() {
    let bed = Bed::new();
    let outside = Outside::new();
    let link = bed.pool.join("shadow.img");
    std::fs::hard_link(outside.dir.join("secret"), &link).unwrap();
    let (uuid, _) = bed.define_guest("attacker");
    let out = bed.attach(&uuid, &link, "rw");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hard links"));
    let json: serde_json::Value = serde_json::from_str(&bed.ok(&["scan", "--json"])).unwrap();
    assert_eq!(json["total"]["skipped"]["hard links"], 1);
    let _agent = bed.agent();
    std::fs::hard_link(
        outside.dir.join("subdir/inner.img"),
        bed.pool.join("planted.img"),
    )
    .unwrap();
    bed.file("canary.img");
    assert_label_within_1s(&bed.pool.join("canary.img"), VIRT_IMAGE);
    outside.assert_untouched();
}

#[test]
fn dotdot_in_a_volume_path_is_refused() {
    let bed = Bed::new();
    let outside = Outside::new();
    let (uuid, _) = bed.define_guest("attacker");
    let escape = format!(
        "{}/../../../../{}",
        bed.pool.0.display(),
        outside
            .dir
            .join("secret")
            .display()
            .to_string()
            .trim_start_matches('/')
    );
    for path in [
        escape.as_str(),
        &format!("{}/sub/../x.img", bed.pool.0.display()),
    ] {
        let out = bed.attach(&uuid, path, "rw");
        assert_eq!(out.status.code(), Some(1), "{path}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("'..'"),
            "{path}"
        );
    }
    outside.assert_untouched();
}

#[test]
fn a_pool_path_that_is_a_symlink_is_a_config_error() {
    require_root_and_policy();
    let real = TempDir::new(IMAGES, "svirt-pool-real");
    let link = std::path::Path::new(IMAGES).join(unique("svirt-pool-link"));
    symlink(&real.0, &link).unwrap();
    let state = TempDir::new("/tmp", "svirt-pool-state");
    let config = state.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[[pool]]\nname = \"p\"\ntype = \"dir\"\npath = \"{}\"\n",
            state.0.display(),
            link.display()
        ),
    )
    .unwrap();
    let out = run_cli(&config, &["scan"]);
    std::fs::remove_file(&link).unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pool[0]") && err.contains("symlink"), "{err}");
    assert_eq!(label(&real.0), None, "nothing was labeled");
}

#[test]
fn fifos_and_device_nodes_in_a_pool_are_left_alone() {
    let bed = Bed::new();
    let fifo = bed.pool.join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let null = bed.pool.join("null");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &null,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&bed.ok(&["scan", "--json"])).unwrap();
    assert_eq!(json["total"]["skipped"]["not a regular file"], 2);
    assert_eq!(label(&fifo), None);
    assert_eq!(label(&null), None);
}

/// A bind mount that is unmounted (lazily) when dropped, even when the test fails.
struct BindMount(std::path::PathBuf);

impl BindMount {
    fn new(from: &std::path::Path, onto: &std::path::Path) -> BindMount {
        let ok = std::process::Command::new("mount")
            .args(["--bind"])
            .arg(from)
            .arg(onto)
            .status()
            .expect("mount (util-linux) is needed")
            .success();
        assert!(ok, "mount --bind {} {}", from.display(), onto.display());
        BindMount(onto.to_path_buf())
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn mounts_below_a_pool_are_never_entered() {
    let bed = Bed::new();
    let outside = Outside::new();
    let (uuid, _) = bed.define_guest("attacker");
    // A file bind-mounted onto a pool name (same filesystem, so st_dev cannot tell),
    // and a directory mounted on a pool subdirectory.
    let file = bed.file("bound.img");
    let mnt = bed.pool.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let _file_mount = BindMount::new(&outside.dir.join("secret"), &file);
    let _dir_mount = BindMount::new(&outside.dir.join("subdir"), &mnt);

    let json: serde_json::Value = serde_json::from_str(&bed.ok(&["scan", "--json"])).unwrap();
    assert_eq!(
        json["total"]["skipped"]["other filesystem"], 2,
        "both mount points are reported: {json}"
    );
    outside.assert_untouched();
    for target in [file.clone(), mnt.join("inner.img")] {
        let out = bed.attach(&uuid, &target, "rw");
        assert_eq!(out.status.code(), Some(1), "{}", target.display());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("another filesystem"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    outside.assert_untouched();
    // The agent's first scan leaves them alone too, while it labels the rest.
    let other = bed.file("other.img");
    set_label(&other, "system_u:object_r:tmp_t:s0");
    let _agent = bed.agent();
    assert_label_within_1s(&other, VIRT_IMAGE);
    outside.assert_untouched();
}

/// Runs the CLI and fails the test if it does not finish within `secs`.
fn cli_within(config: &std::path::Path, args: &[&str], secs: u64) -> std::process::Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_svirt-pool"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("svirt-pool {args:?} hung on the FUSE mount for {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_fuse_mount_that_never_answers_stalls_nothing() {
    let bed = Bed::new();
    let (uuid, _) = bed.define_guest("victim");
    let file = bed.file("hung.img");
    let dir = bed.pool.join("hungdir");
    std::fs::create_dir(&dir).unwrap();
    let ok = bed.file("ok.img");
    set_label(&ok, "system_u:object_r:tmp_t:s0");
    let _on_file = HungFuse::mount(&file);
    let _on_dir = HungFuse::mount(&dir);
    // And on the name older agents' staging directory had (anyone may create it in a
    // pool root others can write): the scan's recovery and the walk look, never enter.
    let staging = bed.pool.join(".svirt-pool");
    std::fs::create_dir(&staging).unwrap();
    let _on_staging = HungFuse::mount(&staging);

    let out = cli_within(&bed.config, &["scan", "--json"], 10);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["total"]["skipped"]["other filesystem"], 3, "{json}");
    assert_eq!(label(&ok).as_deref(), Some(VIRT_IMAGE));
    // The picker's listing opens each volume once by name: the mounted one is passed by.
    let out = cli_within(
        &bed.config,
        &["volume", "list", "--pool", "test", "--json"],
        10,
    );
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = page["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"ok.img"), "{page}");
    for target in [file.clone(), dir.join("x.img")] {
        let out = cli_within(
            &bed.config,
            &[
                "attach",
                "--guest",
                &uuid,
                "--volume",
                target.to_str().unwrap(),
                "--mode",
                "rw",
            ],
            10,
        );
        assert_eq!(out.status.code(), Some(1), "{}", target.display());
    }
    // The agent starts (its first scan passes the mounts by) and serves.
    let _agent = bed.agent();
    set_label(&ok, "system_u:object_r:tmp_t:s0");
    assert_label_within_1s(&ok, VIRT_IMAGE);
    cli_within(&bed.config, &["status"], 10);
}
