//! Bad configurations: each is refused with exit 2 and a message naming the key or
//! path, before anything is labeled. The shipped example config must load.

mod common;

use common::*;

/// Writes `body` (with `{pool}` and `{state}` filled in) and runs `scan` on it.
fn scan_with(body: &str) -> (Option<i32>, String, TempDir) {
    require_root_and_policy();
    let pool = TempDir::new(IMAGES, "svirt-pool-cfg");
    let state = TempDir::new("/tmp", "svirt-pool-state");
    let config = state.join("c.toml");
    let body = body
        .replace("{pool}", pool.0.to_str().unwrap())
        .replace("{state}", state.0.to_str().unwrap());
    std::fs::write(&config, body).unwrap();
    std::fs::write(pool.join("f.img"), b"x").unwrap();
    let out = run_cli(&config, &["scan"]);
    assert_eq!(
        label(&pool.join("f.img")),
        None,
        "a refused config labels nothing"
    );
    drop(state);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        pool,
    )
}

fn assert_config_error(body: &str, mentions: &[&str]) {
    let (code, err, _pool) = scan_with(body);
    assert_eq!(code, Some(2), "exit code for:\n{body}\n{err}");
    for m in mentions {
        assert!(err.contains(m), "error does not mention {m:?}: {err}");
    }
}

const POOL: &str = "[[pool]]\nname = \"p\"\ntype = \"dir\"\npath = \"{pool}\"\n";

#[test]
fn unknown_keys_are_refused() {
    assert_config_error(
        &format!("state_dir = \"{{state}}\"\nstate_dri = 1\n{POOL}"),
        &["state_dri"],
    );
    assert_config_error(
        &format!("state_dir = \"{{state}}\"\n{POOL}colour = \"red\"\n"),
        &["colour"],
    );
    assert_config_error(
        &format!("state_dir = \"{{state}}\"\n[selinux]\nimage = \"x\"\n{POOL}"),
        &["image"],
    );
}

#[test]
fn bad_contexts_are_refused_with_their_key() {
    assert_config_error(
        &format!(
            "state_dir = \"{{state}}\"\n[selinux]\nimage_label = \"system_u:object_r\"\n{POOL}"
        ),
        &["selinux.image_label"],
    );
    assert_config_error(
        &format!(
            "state_dir = \"{{state}}\"\n[selinux]\ncontent_label = \"system_u:object_r:virt_content_t:s0:c2000\"\n{POOL}"
        ),
        &["selinux.content_label", "c2000"],
    );
    assert_config_error(
        &format!("state_dir = \"{{state}}\"\n{POOL}resting_label = \"virt_image_t\"\n"),
        &["resting_label"],
    );
    assert_config_error(
        &format!("state_dir = \"{{state}}\"\n[selinux]\ncategories = \"c10.c5\"\n{POOL}"),
        &["selinux.categories"],
    );
}

#[test]
fn missing_paths_and_wrong_types_are_refused() {
    assert_config_error(
        "state_dir = \"{state}\"\n[[pool]]\nname = \"p\"\ntype = \"dir\"\npath = \"{pool}/nope\"\n",
        &["pool[0]", "nope", "does not exist"],
    );
    assert_config_error(
        "state_dir = \"{state}\"\n[[pool]]\nname = \"p\"\ntype = \"dir\"\npath = \"relative/dir\"\n",
        &["pool[0]", "not absolute"],
    );
    assert_config_error(
        "state_dir = \"{state}\"\n[[pool]]\nname = \"p\"\ntype = \"nfs\"\npath = \"{pool}\"\n",
        &["pool[0]", "nfs"],
    );
    assert_config_error("state_dir = \"{state}\"\n", &["no [[pool]]"]);
    assert_config_error(
        &format!(
            "state_dir = \"{{state}}\"\n[selinux]\nfile_contexts = \"/nonexistent/fc\"\n{POOL}"
        ),
        &["selinux.file_contexts", "/nonexistent/fc"],
    );
}

#[test]
fn overlapping_and_duplicate_pools_are_refused() {
    assert_config_error(
        &format!(
            "state_dir = \"{{state}}\"\n{POOL}[[pool]]\nname = \"q\"\ntype = \"dir\"\npath = \"{{pool}}\"\n"
        ),
        &["pool[1]", "overlaps"],
    );
    assert_config_error(
        &format!("state_dir = \"{{state}}\"\n{POOL}{POOL}"),
        &["pool[1]", "used twice"],
    );
}

#[test]
fn a_pool_with_no_resting_label_and_no_default_is_refused() {
    require_root_and_policy();
    // /tmp has `<<none>>` in refpolicy's file_contexts.
    let pool = TempDir::new("/tmp", "svirt-pool-nodefault");
    let state = TempDir::new("/tmp", "svirt-pool-state");
    let config = state.join("c.toml");
    let body = format!(
        "state_dir = \"{}\"\n[[pool]]\nname = \"tmp\"\ntype = \"dir\"\npath = \"{}\"\n",
        state.0.display(),
        pool.0.display()
    );
    std::fs::write(&config, &body).unwrap();
    let out = run_cli(&config, &["scan"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("resting_label") && err.contains("no default"),
        "{err}"
    );

    // With a resting label the same pool is fine.
    std::fs::write(&config, format!("{body}resting_label = \"{VIRT_IMAGE}\"\n")).unwrap();
    std::fs::write(pool.join("a.img"), b"x").unwrap();
    let out = run_cli(&config, &["scan"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(label(&pool.join("a.img")).as_deref(), Some(VIRT_IMAGE));
}

#[test]
fn a_missing_config_file_is_named() {
    let out = run_cli(
        std::path::Path::new("/nonexistent/svirt-pool.toml"),
        &["status"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/svirt-pool.toml"));
}

#[test]
fn the_shipped_example_config_loads() {
    require_root_and_policy();
    std::fs::create_dir_all(IMAGES).unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/svirt-pool.toml");
    let text = std::fs::read_to_string(example).unwrap();
    let settings = svirt_pool::config::Settings::parse(&text, std::path::Path::new(example))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        settings.pools[0].dir().unwrap().path,
        std::path::Path::new(IMAGES)
    );
    assert_eq!(settings.selinux.contexts.image.as_str(), SVIRT_IMAGE);
    assert_eq!(settings.selinux.contexts.content.as_str(), VIRT_CONTENT);
    assert_eq!(settings.selinux.categories.len(), 1024);
}

#[test]
fn pools_overlapping_through_a_bind_mount_and_state_in_a_pool_are_refused() {
    require_root_and_policy();
    let top = TempDir::new(IMAGES, "svirt-pool-bind");
    let (real, alias) = (top.join("real"), top.join("alias"));
    std::fs::create_dir_all(real.join("sub")).unwrap();
    std::fs::create_dir_all(&alias).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["--bind", real.to_str().unwrap(), alias.to_str().unwrap()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "mount --bind");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(alias.clone());
    // And a pool that is a bind mount of another pool's subdirectory: `..` from it
    // leads to the mount point's parent, never to the other pool.
    let sub_alias = top.join("sub-alias");
    std::fs::create_dir_all(&sub_alias).unwrap();
    let ok = std::process::Command::new("mount")
        .args([
            "--bind",
            real.join("sub").to_str().unwrap(),
            sub_alias.to_str().unwrap(),
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok, "mount --bind");
    let _unmount_sub = Unmount(sub_alias.clone());
    let state = TempDir::new("/tmp", "svirt-pool-state");
    let config = state.join("c.toml");
    let run = |body: String| {
        std::fs::write(&config, body).unwrap();
        run_cli(&config, &["scan"])
    };
    let pool = |name: &str, path: &std::path::Path| {
        format!(
            "[[pool]]\nname = \"{name}\"\ntype = \"dir\"\npath = \"{}\"\n",
            path.display()
        )
    };
    // The same tree under two names, and one pool inside the other's alias.
    for (second, what) in [
        (alias.clone(), "same tree"),
        (alias.join("sub"), "nested"),
        (sub_alias.clone(), "a subdirectory mounted elsewhere"),
    ] {
        let out = run(format!(
            "state_dir = \"{}\"\n{}{}",
            state.0.display(),
            pool("a", &real),
            pool("b", &second)
        ));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(
            err.contains("overlaps pool") && err.contains("through a mount"),
            "{what}: {err}"
        );
    }
    // The state directory inside a pool: by path, and through the alias.
    for state_dir in [real.join("state"), alias.join("state")] {
        let out = run(format!(
            "state_dir = \"{}\"\n{}",
            state_dir.display(),
            pool("a", &real)
        ));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("state_dir") && err.contains("inside pool"),
            "{err}"
        );
        assert!(
            !state_dir.exists(),
            "a refused config created the state dir"
        );
    }
}
