//! Every command that prints a result prints it as JSON with `--json` (before or after
//! the subcommand), and a scan draws no progress line when stderr is not a terminal.

mod common;

use common::*;

fn json(bed: &Bed, args: &[&str]) -> serde_json::Value {
    let mut with = vec!["--json"];
    with.extend_from_slice(args);
    let out = bed.ok(&with);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

#[test]
fn every_command_that_prints_prints_json_with_json() {
    let bed = Bed::new();
    let disk = bed.file("web.img");
    let outside = TempDir::new("/tmp", "svirt-pool-json-import");
    let iso = outside.join("media.iso");
    std::fs::write(&iso, b"iso").unwrap();
    let uuid = new_uuid();
    let d = disk.to_str().unwrap();

    let scan = json(&bed, &["scan"]);
    assert_eq!(scan["total"]["entries"], 1, "{scan}");
    let g = json(&bed, &["guest", "define", "--uuid", &uuid, "--name", "web"]);
    assert_eq!(g["uuid"], uuid.as_str());
    let a = json(
        &bed,
        &["attach", "--guest", &uuid, "--volume", d, "--mode", "rw"],
    );
    assert_eq!(
        (a["guest"].as_str(), a["mode"].as_str()),
        (Some(uuid.as_str()), Some("rw"))
    );
    assert!(
        a["result"]["label"]
            .as_str()
            .unwrap()
            .contains("svirt_image_t"),
        "{a}"
    );
    assert!(json(&bed, &["guest", "show", &uuid])["attachments"].is_array());
    assert!(json(&bed, &["guest", "list"]).is_array());
    assert!(
        json(&bed, &["guest", "seclabel", &uuid])["seclabel"]
            .as_str()
            .unwrap()
            .contains("<seclabel")
    );
    // --json after the subcommand too.
    let status = bed.ok(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["pools"][0]["name"], "test");
    assert_eq!(json(&bed, &["verify"])["findings"], serde_json::json!([]));
    // check-path exits 1 when the emulator is blocked (here: a 0700 test pool), and
    // says so in JSON.
    let check = bed.cli(&["check-path", d, "--json"]);
    let check: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert!(check["steps"].is_array(), "{check}");
    let volumes = json(&bed, &["volume", "list", "--pool", "test"]);
    assert!(volumes["volumes"].is_array(), "{volumes}");
    let imported = json(&bed, &["import", iso.to_str().unwrap(), "--pool", "test"]);
    assert_eq!(imported["pool"], "test");
    let created = json(
        &bed,
        &[
            "volume",
            "create",
            "--pool",
            "test",
            "new.qcow2",
            "--capacity",
            "1M",
        ],
    );
    assert_eq!(created["pool"], "test", "{created}");
    assert_eq!(
        json(&bed, &["volume", "delete", "--pool", "test", "new.qcow2"])["deleted"],
        "new.qcow2"
    );
    let d2 = json(&bed, &["detach", "--guest", &uuid, "--volume", d]);
    assert!(
        d2["result"]["label"]
            .as_str()
            .unwrap()
            .contains("virt_image_t"),
        "{d2}"
    );
    json(
        &bed,
        &["attach", "--guest", &uuid, "--volume", d, "--mode", "ro"],
    );
    assert_eq!(json(&bed, &["release", "--guest", &uuid])["released"], 1);
    assert_eq!(json(&bed, &["guest", "undefine", &uuid])["released"], 0);
}

#[test]
fn a_scan_draws_no_progress_line_off_a_terminal() {
    let bed = Bed::new();
    for i in 0..2000 {
        bed.file(&format!("d{}/f{i}.img", i % 20));
    }
    for args in [&["scan"][..], &["scan", "--quiet"], &["-q", "scan"]] {
        let out = bed.cli(args);
        assert!(out.status.success(), "{out:?}");
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
