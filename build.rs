//! Names the commit the binary was built from, for `svirt-pool --version`: from
//! `$SVIRT_POOL_COMMIT` when set (a build from a source tarball), else `git`, else
//! "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SVIRT_POOL_COMMIT");
    // Run again when a commit, checkout or `git add` happens: HEAD's log and the index
    // (where git keeps them: a worktree's `.git` is a file).
    for file in ["logs/HEAD", "index"] {
        let path = Command::new("git")
            .args(["rev-parse", "--git-path", file])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok());
        if let Some(path) = path {
            println!("cargo:rerun-if-changed={}", path.trim());
        }
    }
    let commit = std::env::var("SVIRT_POOL_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            let hash = String::from_utf8(out.stdout).ok()?.trim().to_owned();
            if !out.status.success() || hash.is_empty() {
                return None;
            }
            // A build from a tree with changes not committed says so.
            let dirty = Command::new("git")
                .args(["diff", "--quiet", "HEAD", "--"])
                .status()
                .is_ok_and(|s| s.code() == Some(1));
            Some(if dirty { format!("{hash}-dirty") } else { hash })
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SVIRT_POOL_COMMIT={commit}");
}
