//! The crate's module graph has no cycle and every use goes down its layers
//! (`scripts/modules.py`, which reads the sources): a change that makes `fsys` use
//! `decide`, or two modules use each other, fails here with the uses named.

use std::process::Command;

#[test]
fn modules_have_no_cycle_and_use_only_lower_layers() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .arg(format!("{root}/scripts/modules.py"))
        .arg(format!("{root}/src"))
        .output()
        .expect("run python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("no cycle, every use downward"), "{text}");
}
