//! The API of a running agent, driven through its real socket: every method with the
//! Python client (a real client in another language), non-root peers (run with
//! setpriv as nobody), abusive clients beside well-behaved ones, Monitor, and the Rust
//! client that the CLI uses when an agent runs.

mod common;

use std::process::{Command, Output};

use common::*;
use svirt_pool::registry::{Guests, Holds};

/// The API settings of these tests: `nogroup` is the API group (a peer whose gid is
/// nogroup is a member), everyone may list, idle connections close after 2 s.
const API: &str = "group = \"nogroup\"\nread_only_for_all = true\nidle_timeout_secs = 2\n";
const NOGROUP: &str = "65534";
const NOBODY: &str = "65534";

/// Runs a scenario of tests/support/api_scenarios.py, as root or as `--reuid/--regid`.
///
/// The script, the client and the interface file are copied to a directory anyone may
/// read first: the checkout may be in a directory only root can enter (CI's is).
fn scenario(ids: Option<(&str, &str)>, args: &[&str]) -> Output {
    let root = env!("CARGO_MANIFEST_DIR");
    let copy = TempDir::new("/tmp", "svirt-pool-scenarios");
    for (from, name) in [
        ("tests/support/api_scenarios.py", "api_scenarios.py"),
        ("clients/python/svirtpool.py", "svirtpool.py"),
        ("api/io.svirtpool.varlink", "io.svirtpool.varlink"),
    ] {
        std::fs::copy(format!("{root}/{from}"), copy.join(name)).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&copy.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = match ids {
        None => Command::new("/usr/bin/python3"),
        Some((uid, gid)) => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--clear-groups",
                "/usr/bin/python3",
            ]);
            c
        }
    };
    cmd.arg(copy.join("api_scenarios.py"))
        .args(args)
        .current_dir("/")
        .env("PYTHONPATH", &copy.0)
        .env("SVIRT_POOL_IDL", copy.join("io.svirtpool.varlink"))
        .env_remove("SVIRT_POOL_SOCKET")
        .output()
        .expect("python3 and setpriv (util-linux) are needed")
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs scenario `name` as the member `nobody` (group nogroup) against `socket` with
/// `args` after it; it must succeed. Returns what it printed (printed here too).
fn member_scenario(name: &str, socket: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec![name, socket.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = scenario(Some((NOBODY, NOGROUP)), &all);
    assert_ok(&out, name);
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{printed}");
    printed
}

/// Runs scenario `name` as root against `bed`'s agent and pool; it must succeed.
fn pool_scenario(bed: &Bed, name: &str) {
    let out = scenario(
        None,
        &[
            name,
            bed.socket().to_str().unwrap(),
            bed.pool.0.to_str().unwrap(),
        ],
    );
    assert_ok(&out, name);
}

#[test]
fn every_method_through_the_python_client() {
    let bed = Bed::with_api_and_extra(API, "");
    let _agent = bed.agent();
    pool_scenario(&bed, "every-method");
}

#[test]
fn non_root_peers_get_what_their_group_allows() {
    let bed = Bed::with_api_and_extra(API, "");
    let _agent = bed.agent();
    let sock = bed.socket();
    // The socket's mode and group are set by the agent, not left to the umask.
    let meta = std::fs::metadata(&sock).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o666,
        "read_only_for_all opens the socket to all"
    );
    assert_eq!(meta.gid(), 65534);

    // A file only nobody can read, in a directory only nobody can enter.
    let private = TempDir::new("/tmp", "svirt-pool-nobody");
    std::fs::write(private.join("mine.iso"), b"only nobody can read this").unwrap();
    for p in [private.0.clone(), private.join("mine.iso")] {
        rustix::fs::chown(
            &p,
            Some(rustix::fs::Uid::from_raw(65534)),
            Some(rustix::fs::Gid::from_raw(65534)),
        )
        .unwrap();
        std::fs::set_permissions(
            &p,
            std::fs::Permissions::from_mode(if p.is_dir() { 0o700 } else { 0o600 }),
        )
        .unwrap();
    }
    let pool = bed.pool.0.to_str().unwrap();
    let own = private.join("mine.iso");
    member_scenario("member", &sock, &[pool, own.to_str().unwrap()]);
    let imported = bed.pool.join("users.iso");
    assert_eq!(
        std::fs::read(&imported).unwrap(),
        b"only nobody can read this"
    );
    assert_eq!(
        label(&imported).as_deref(),
        Some(VIRT_CONTENT),
        "attached ro by the member"
    );

    // The user daemon (uid 1, group daemon) is not in the API group: listing only.
    let out = scenario(
        Some(("1", "1")),
        &["outsider", sock.to_str().unwrap(), pool],
    );
    assert_ok(&out, "outsider");
    assert_eq!(
        label(&imported).as_deref(),
        Some(VIRT_CONTENT),
        "the outsider changed nothing"
    );
}

#[test]
fn abusive_clients_do_not_stop_the_others() {
    let bed = Bed::with_api_and_extra(API, "");
    let agent = bed.agent();
    let out = scenario(None, &["abuse", bed.socket().to_str().unwrap(), "2"]);
    assert_ok(&out, "abuse");
    // And the agent still labels files after all that.
    let f = bed.file("after-abuse.img");
    assert_label_within_1s(&f, VIRT_IMAGE);
    assert!(agent.stop().success());
}

#[test]
fn monitor_streams_an_event_when_a_file_appears() {
    let bed = Bed::with_api_and_extra(API, "");
    let _agent = bed.agent();
    pool_scenario(&bed, "monitor");
}

#[test]
fn the_cli_goes_through_the_agent_and_imports_by_descriptor() {
    let bed = Bed::with_api_and_extra(API, "");
    let agent = bed.agent();
    let (uuid, cats) = bed.define_guest("via-api");
    let src = TempDir::new("/tmp", "svirt-pool-src");
    std::fs::write(src.join("debian.iso"), b"iso bytes").unwrap();
    let out = bed.ok(&[
        "import",
        src.join("debian.iso").to_str().unwrap(),
        "--pool",
        "test",
    ]);
    assert!(out.contains("debian.iso"), "{out}");
    let iso = bed.pool.join("debian.iso");
    assert_eq!(std::fs::read(&iso).unwrap(), b"iso bytes");
    assert_eq!(label(&iso).as_deref(), Some(VIRT_IMAGE));
    let out = bed.cli(&[
        "import",
        src.join("debian.iso").to_str().unwrap(),
        "--pool",
        "test",
    ]);
    assert_eq!(out.status.code(), Some(1), "an existing name is refused");

    // A relative volume path is taken from the caller's directory, not the agent's.
    let out = Command::new(env!("CARGO_BIN_EXE_svirt-pool"))
        .current_dir(&bed.pool.0)
        .args([
            "--config",
            bed.config.to_str().unwrap(),
            "attach",
            "--guest",
            &uuid,
            "--volume",
            "debian.iso",
            "--mode",
            "rw",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(label(&iso).unwrap(), image_label(&cats));
    // The same errors and exit codes as without an agent.
    let out = bed.attach(&new_uuid(), &iso, "ro");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not defined"));
    bed.ok(&["release", "--guest", &uuid]);
    assert_eq!(label(&iso).unwrap(), VIRT_IMAGE);
    assert!(agent.stop().success());
    assert!(
        !bed.socket().exists(),
        "the agent removes its socket on exit"
    );

    // Without the agent the CLI does the same work itself.
    bed.attach_ok(&uuid, &iso, "ro");
    assert_eq!(label(&iso).as_deref(), Some(VIRT_CONTENT));
}

/// One varlink call over a fresh connection; returns the reply text.
fn raw_call(sock: &std::path::Path, method: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock)
        .unwrap_or_else(|e| panic!("connect {}: {e}", sock.display()));
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(format!("{{\"method\":\"{method}\",\"parameters\":{{}}}}\0").as_bytes())
        .unwrap();
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while s.read(&mut byte).unwrap() == 1 && byte[0] != 0 {
        reply.push(byte[0]);
    }
    String::from_utf8(reply).unwrap()
}

#[test]
fn an_agent_started_after_a_crash_replaces_the_old_socket_and_serves() {
    let bed = Bed::with_api_and_extra(API, "");
    let sock = bed.socket();
    bed.agent().kill();
    assert!(
        sock.exists(),
        "SIGKILL leaves the socket file behind (the case under test)"
    );
    // Twice: a second crash and restart must work as well as the first.
    for _ in 0..2 {
        let agent = bed.agent();
        let reply = raw_call(&sock, "io.svirtpool.ListPools");
        assert!(reply.contains("\"pools\""), "not served: {reply}");
        agent.kill();
    }
    // A socket someone still serves is never taken over.
    let _first = bed.agent();
    let second = Command::new(env!("CARGO_BIN_EXE_svirt-pool"))
        .args(["--config", bed.config.to_str().unwrap(), "agent"])
        .output()
        .unwrap();
    assert!(
        !second.status.success(),
        "a second agent took over the socket"
    );
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another agent serves"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(raw_call(&sock, "io.svirtpool.ListPools").contains("\"pools\""));
}

#[test]
fn a_member_cannot_use_the_agent_as_its_deputy() {
    let bed = Bed::with_api_and_extra(API, "");
    use std::os::unix::fs::PermissionsExt;
    // A file only root may read, root's guest holding a disk rw, and a public ISO.
    let secret = bed.file("root-only.img");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let disk = bed.file("victim.img");
    std::fs::set_permissions(&disk, std::fs::Permissions::from_mode(0o644)).unwrap();
    let public = bed.pool.join("public.iso");
    std::fs::write(&public, b"public").unwrap();
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
    // A world-readable overlay whose backing file is the secret.
    let overlay = bed.pool.join("on-secret.qcow2");
    common::images::qcow2_sized(&overlay, "1M", Some(("root-only.img", "raw")));
    std::fs::set_permissions(&overlay, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (root_guest, pair) = bed.define_guest("root's");
    bed.attach_ok(&root_guest, &disk, "rw");
    let disk_label = format!("{SVIRT_IMAGE}:{pair}");
    assert_eq!(label(&disk).as_deref(), Some(disk_label.as_str()));
    let _agent = bed.agent();
    let secret_label = label(&secret);
    member_scenario(
        "deputy",
        &bed.socket(),
        &[bed.pool.0.to_str().unwrap(), &root_guest],
    );
    assert_eq!(label(&secret), secret_label, "root-only file relabeled");
    assert!(secret.exists(), "the member deleted root's file");
    assert_eq!(
        label(&disk).as_deref(),
        Some(disk_label.as_str()),
        "the other guest's disk changed hands"
    );
    let held = bed.ok(&["guest", "show", &root_guest]);
    assert!(held.contains("victim.img"), "{held}");
    let guests = bed.ok(&["guest", "list"]);
    assert!(
        guests.contains("root's"),
        "the member renamed root's guest: {guests}"
    );
    assert_eq!(label(&public).as_deref(), Some(VIRT_CONTENT));
}

#[test]
fn no_client_stops_the_agent_serving_others() {
    // A small per-user limit, so one user's connections run out quickly.
    let api = format!("{API}max_connections_per_user = 4\n");
    let bed = Bed::with_api_and_extra(&api, "");
    let _agent = bed.agent();
    let sock = bed.socket();
    let sock = sock.to_str().unwrap();
    let out = scenario(None, &["hogs", sock, "4"]);
    assert_ok(&out, "hogs");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    let out = scenario(None, &["endless-pipe", sock, "2"]);
    assert_ok(&out, "endless-pipe");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(!bed.pool.join("endless.iso").exists());
    // 1,200 guests: every list is paged, every input bounded.
    {
        let mut store = svirt_pool::state::Store::open(&bed.state.0).unwrap();
        let cats = svirt_pool::decide::context::CategorySet::full();
        for i in 0..1200 {
            let uuid = format!("00000000-0000-4000-8000-{i:012}");
            store.define_guest(&uuid, None, &cats, 0, u32::MAX).unwrap();
        }
    }
    let out = scenario(
        None,
        &["bounds", sock, bed.pool.0.to_str().unwrap(), "1200"],
    );
    assert_ok(&out, "bounds");
    println!("{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn a_listing_shows_what_the_directory_holds_now() {
    // The agent reuses a sorted directory listing between pages (src/ops/listing/
    // recent.rs); a file created or renamed after it was kept is still seen at once.
    let bed = Bed::with_api_and_extra(API, "");
    bed.file("settled/a.img");
    let _agent = bed.agent();
    pool_scenario(&bed, "listing-is-current");
}

#[test]
fn a_whole_listing_streams_in_one_call_and_a_stalled_one_is_cut() {
    // Enough volumes that one-volume pages fill the socket of a client that reads none.
    let bed = Bed::with_api_and_extra(&format!("{API}write_timeout_secs = 2\n"), "");
    for i in 0..400 {
        bed.file(&format!("d{}/v{i:03}.img", i % 3));
    }
    let _agent = bed.agent();
    let sock = bed.socket();
    let out = scenario(
        None,
        &[
            "streamed-listing",
            sock.to_str().unwrap(),
            bed.pool.0.to_str().unwrap(),
            "2",
        ],
    );
    assert_ok(&out, "streamed-listing");
}

#[test]
fn names_that_are_not_utf8_are_addressed_exactly() {
    use std::os::unix::ffi::OsStrExt;
    let bed = Bed::with_api_and_extra(API, "");
    let odd = bed
        .pool
        .0
        .join(std::ffi::OsStr::from_bytes(b"\xff\xfe-odd.img"));
    std::fs::write(&odd, b"x").unwrap();
    let _agent = bed.agent();
    pool_scenario(&bed, "odd-names");
    assert_eq!(label(&odd).as_deref(), Some(VIRT_CONTENT));
    // The CLI passes such a path to the agent by its address too.
    let (uuid, cats) = bed.define_guest("cli");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_svirt-pool"))
        .arg("--config")
        .arg(&bed.config)
        .args([
            "detach",
            "--guest",
            "6f7a1c2e-0f4b-4d1e-9a57-3c1d2b8e9f01",
            "--volume",
        ])
        .arg(&odd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_svirt-pool"))
        .arg("--config")
        .arg(&bed.config)
        .args(["attach", "--guest", &uuid, "--mode", "rw", "--volume"])
        .arg(&odd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(label(&odd), Some(image_label(&cats)));
}

/// A member that holds its connection open keeps no right it has lost: membership of the
/// API group is asked on every call, not once per connection.
#[test]
fn a_member_taken_out_of_the_group_is_refused_on_its_open_connection() {
    let name = format!("svirttest{}", std::process::id() % 100_000);
    let run = |args: &[&str]| {
        let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
        assert_ok(&out, &args.join(" "));
    };
    run(&["groupadd", &name]);
    run(&[
        "useradd",
        "--no-create-home",
        "--user-group",
        "--shell",
        "/usr/sbin/nologin",
        &format!("{name}u"),
    ]);
    let user = format!("{name}u");
    // Removed again whatever the test's outcome.
    struct Gone(String, String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = Command::new("userdel").arg(&self.1).output();
            let _ = Command::new("groupdel").arg(&self.0).output();
        }
    }
    let _gone = Gone(name.clone(), user.clone());
    run(&["gpasswd", "--add", &user, &name]);
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, &user]).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (uid, gid) = (id("-u"), id("-g"));
    let api = format!("group = \"{name}\"\nread_only_for_all = true\nidle_timeout_secs = 30\n");
    let bed = Bed::with_api_and_extra(&api, "");
    let _agent = bed.agent();
    let sock = bed.socket();
    let flags = TempDir::new("/tmp", "svirt-pool-revoked");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&flags.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (ready, go) = (flags.join("ready"), flags.join("go"));
    let (ready_s, go_s, sock_s) = (
        ready.to_str().unwrap().to_owned(),
        go.to_str().unwrap().to_owned(),
        sock.to_str().unwrap().to_owned(),
    );
    let (uid2, gid2) = (uid.clone(), gid.clone());
    let member = std::thread::spawn(move || {
        scenario(Some((&uid2, &gid2)), &["revoked", &sock_s, &ready_s, &go_s])
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ready.exists() {
        if member.is_finished() {
            assert_ok(
                &member.join().unwrap(),
                "revoked, before the user left the group",
            );
            panic!("the scenario ended before it was told the user left the group");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the member never got in"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    run(&["gpasswd", "--delete", &user, &name]);
    std::fs::write(&go, b"").unwrap();
    assert_ok(&member.join().unwrap(), "revoked");
}

#[test]
fn an_agent_stopped_amid_attaches_leaves_state_and_labels_agreeing() {
    // The API's attaches and detaches run on the agent's batch thread; SIGTERM must let
    // a batch finish (state committed, labels written) before the process exits. The
    // labels are read before any agent starts again (its first scan would mend them).
    const CLIENTS: usize = 6;
    let bed = Bed::with_api_and_extra(API, "");
    let sock = bed.socket();
    let guests: Vec<(String, String)> = (0..CLIENTS)
        .map(|i| bed.define_guest(&format!("vm{i}")))
        .collect();
    let disks: Vec<std::path::PathBuf> = (0..CLIENTS)
        .map(|i| bed.file(&format!("disk{i}.img")))
        .collect();
    for round in 0..5 {
        let agent = bed.agent();
        let calls = std::thread::scope(|s| {
            let clients: Vec<_> = (0..CLIENTS)
                .map(|i| {
                    let (sock, uuid, disk) = (&sock, &guests[i].0, &disks[i]);
                    s.spawn(move || storm(sock, uuid, disk))
                })
                .collect();
            std::thread::sleep(std::time::Duration::from_millis(400));
            assert!(agent.stop().success(), "round {round}: the agent failed");
            clients
                .into_iter()
                .map(|c| c.join().unwrap())
                .sum::<usize>()
        });
        assert!(calls > 0, "round {round}: no call was answered");
        let store = svirt_pool::state::Store::open(&bed.state.0).unwrap();
        for (i, ((uuid, cats), disk)) in guests.iter().zip(&disks).enumerate() {
            let held = !store.attachments(Some(uuid)).unwrap().is_empty();
            let expected = if held {
                image_label(cats)
            } else {
                VIRT_IMAGE.to_owned()
            };
            assert_eq!(
                label(disk),
                Some(expected),
                "round {round}, vm{i}: attached in the state: {held}"
            );
        }
    }
}

#[test]
fn sigterm_lets_an_attach_already_queued_finish() {
    // An Attach queued for the batch thread when SIGTERM comes is carried out before
    // the agent exits: its batch waits here for the state lock, held by this test until
    // after the signal. Without the wait, the agent exits and the attach is lost.
    let bed = Bed::with_api_and_extra(API, "");
    let (uuid, cats) = bed.define_guest("vm");
    let disk = bed.file("disk.img");
    let agent = bed.agent();
    // The echoes of the first scan's labels are handled first: the engine takes the
    // lock for them, and blocked on it, would hold up the stop by itself.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let held = svirt_pool::lock::acquire(&bed.state.0).unwrap();
    let sock = bed.socket();
    let client = std::thread::spawn({
        let (uuid, disk) = (uuid.clone(), disk.to_str().unwrap().to_owned());
        move || {
            use std::io::{Read, Write};
            let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
            s.write_all(format!(
                "{{\"method\":\"io.svirtpool.Attach\",\"parameters\":{{\"guest\":\"{uuid}\",\"volume\":\"{disk}\",\"mode\":\"rw\"}}}}\0"
            ).as_bytes())
            .unwrap();
            // Answered or cut off by the stop: either is fine.
            let _ = s.read(&mut [0u8; 4096]);
        }
    });
    // The call is queued (its batch waits for the lock) before the signal.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let stopping = std::thread::spawn(move || agent.stop());
    std::thread::sleep(std::time::Duration::from_millis(500));
    drop(held);
    assert!(stopping.join().unwrap().success(), "the agent failed");
    client.join().unwrap();
    let store = svirt_pool::state::Store::open(&bed.state.0).unwrap();
    assert_eq!(
        store.attachments(Some(&uuid)).unwrap().len(),
        1,
        "the queued attach was lost"
    );
    assert_eq!(label(&disk), Some(image_label(&cats)));
}

/// Attaches and detaches `disk` for `uuid` over one connection until the agent goes
/// away; returns how many calls were answered.
fn storm(sock: &std::path::Path, uuid: &str, disk: &std::path::Path) -> usize {
    use std::io::{BufRead, Write};
    let Ok(conn) = std::os::unix::net::UnixStream::connect(sock) else {
        return 0;
    };
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
    let mut writer = conn;
    let disk = disk.to_str().unwrap();
    let attach = format!(
        "{{\"method\":\"io.svirtpool.Attach\",\"parameters\":{{\"guest\":\"{uuid}\",\"volume\":\"{disk}\",\"mode\":\"rw\"}}}}\0"
    );
    let detach = format!(
        "{{\"method\":\"io.svirtpool.Detach\",\"parameters\":{{\"guest\":\"{uuid}\",\"volume\":\"{disk}\"}}}}\0"
    );
    for (answered, call) in [&attach, &detach].into_iter().cycle().enumerate() {
        let mut reply = Vec::new();
        let sent = writer.write_all(call.as_bytes());
        if sent.is_err() || reader.read_until(0, &mut reply).unwrap_or(0) == 0 {
            return answered;
        }
        assert!(
            !String::from_utf8_lossy(&reply).contains("\"error\""),
            "{}",
            String::from_utf8_lossy(&reply)
        );
    }
    unreachable!("the cycle ends only when the agent goes away")
}

#[test]
fn a_call_into_a_filesystem_that_never_answers_pins_only_its_user_s_share() {
    let bed = Bed::with_api_and_extra(
        &format!("{API}call_timeout_secs = 2\nmax_connections_per_user = 3\n"),
        "",
    );
    let dir = bed.pool.join("hungdir");
    std::fs::create_dir(&dir).unwrap();
    let hung = HungFuse::mount(&dir);
    let agent = bed.agent();
    let target = dir.join("x.img");
    member_scenario("hung-path", &bed.socket(), &[target.to_str().unwrap(), "3"]);
    // Root is served beside the member's three stuck threads.
    let started = std::time::Instant::now();
    bed.ok(&["guest", "define", "--uuid", &new_uuid()]);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // SIGTERM: the agent exits though those threads are still stuck in the mount.
    let started = std::time::Instant::now();
    let status = agent.stop();
    let took = started.elapsed();
    println!("agent exit with 3 threads stuck in a hung FUSE mount: {took:?}");
    assert!(status.success(), "{status:?}");
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    drop(hung);
}

#[test]
fn a_member_lists_only_what_it_could_list_itself() {
    let bed = Bed::with_api_and_extra(API, "");
    use std::os::unix::fs::PermissionsExt;
    bed.file("open.img");
    // Root's directories: one nobody may not enter, one it may enter but not read.
    for (dir, mode) in [("private", 0o700), ("searchable", 0o711)] {
        bed.file(&format!("{dir}/secret-name.img"));
        std::fs::set_permissions(bed.pool.join(dir), std::fs::Permissions::from_mode(mode))
            .unwrap();
    }
    let _agent = bed.agent();
    let sock = bed.socket();
    member_scenario("hidden", &sock, &[bed.pool.0.to_str().unwrap()]);
    // Root sees all.
    let page: serde_json::Value =
        serde_json::from_str(&bed.ok(&["volume", "list", "--pool", "test", "--json"])).unwrap();
    assert_eq!(page["volumes"].as_array().unwrap().len(), 3, "{page}");
}

#[test]
fn check_path_answers_only_for_what_the_member_reached() {
    let bed = Bed::with_api_and_extra(API, "");
    // A directory the emulator (libvirt-qemu) may search and nobody may not, holding a
    // file; and a directory of the member's own, where it swaps names.
    let secret = TempDir::new("/var/tmp", "svirt-pool-secret");
    std::fs::write(secret.join("exists.img"), b"x").unwrap();
    let (qemu_uid, qemu_gid) = svirt_pool::users::user_ids("libvirt-qemu")
        .expect("libvirt-qemu (libvirt-daemon-system) is needed");
    std::os::unix::fs::chown(&secret.0, Some(qemu_uid), Some(qemu_gid)).unwrap();
    std::os::unix::fs::chown(secret.join("exists.img"), Some(qemu_uid), Some(qemu_gid)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    let att = TempDir::new("/var/tmp", "svirt-pool-att");
    std::os::unix::fs::chown(&att.0, Some(65534), Some(65534)).unwrap();
    let _agent = bed.agent();
    member_scenario(
        "oracle",
        &bed.socket(),
        &[att.0.to_str().unwrap(), secret.0.to_str().unwrap(), "400"],
    );
}

#[test]
fn list_pools_again_and_again_walks_the_pool_once() {
    let bed = Bed::with_api_and_extra(API, "");
    for i in 0..5_000 {
        std::fs::write(bed.pool.join(&format!("f{i}.img")), b"x").unwrap();
    }
    let agent = bed.agent();
    let sock = bed.socket();
    // What one walk costs the agent: the first ListPools.
    let before = agent.cpu();
    member_scenario("pools-again", &sock, &[bed.pool.0.to_str().unwrap(), "0"]);
    let one = agent.cpu() - before;
    // A member asking 100 times in a row.
    let before = agent.cpu();
    member_scenario("pools-again", &sock, &[bed.pool.0.to_str().unwrap(), "100"]);
    let hundred = agent.cpu() - before;
    println!(
        "ListPools on 5,000 files: agent CPU {one:?} for a first call (and a create), {hundred:?} for 100 more (and a create)"
    );
    assert!(
        hundred < one * 4,
        "100 calls cost {hundred:?}, one cost {one:?}: each call walks the pool"
    );
}

#[test]
fn a_member_s_volumes_are_counted_and_sized_and_it_leaves_root_a_reserve() {
    let bed = Bed::with_api_and_extra(
        &format!("{API}max_volumes_per_user = 3\nmax_volume_bytes_per_user = 4194304\n"),
        "",
    );
    use std::os::unix::fs::PermissionsExt;
    // The member creates at the pool's root: let it write there.
    std::fs::set_permissions(&bed.pool.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let agent = bed.agent();
    let sock = bed.socket();
    member_scenario("quotas", &sock, &[bed.pool.0.to_str().unwrap()]);
    // Root is not limited.
    let out = bed.cli(&[
        "volume",
        "create",
        "--pool",
        "test",
        "--format",
        "raw",
        "--capacity",
        "8M",
        "root.img",
    ]);
    assert!(out.status.success(), "{out:?}");
    drop(agent);

    // A pool on an 8 MiB filesystem that root has filled to 97 %.
    let top = TempDir::new(IMAGES, "svirt-pool-small");
    let small = Mount::new("tmpfs", "size=8m,mode=1777", &top.join("pool"));
    std::fs::write(
        small.0.join("roots.img"),
        vec![1u8; 8 * 1024 * 1024 * 97 / 100],
    )
    .unwrap();
    let bed = Bed::with_api_and_extra(API, "");
    let config = std::fs::read_to_string(&bed.config).unwrap().replace(
        &bed.pool.0.display().to_string(),
        &small.0.display().to_string(),
    );
    std::fs::write(&bed.config, config).unwrap();
    let _agent = bed.agent();
    member_scenario("reserve", &bed.socket(), &[small.0.to_str().unwrap()]);
}

#[test]
fn read_access_never_pins_a_file_its_owner_or_root_wants() {
    let bed = Bed::with_api_and_extra(API, "");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bed.pool.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
    // Root's files, readable by everyone.
    let shared = bed.file("shared.img");
    let base = bed.pool.join("base.qcow2");
    common::images::qemu_img(&["create", "-q", "-f", "qcow2", base.to_str().unwrap(), "1M"]);
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _agent = bed.agent();
    member_scenario("pin", &bed.socket(), &[bed.pool.0.to_str().unwrap()]);
    let member_guest = "6f7a1c2e-0f4b-4d1e-9a57-3c1d2b8e9f0a";
    let over = bed.pool.join("over.qcow2");
    assert_eq!(label(&shared).as_deref(), Some(VIRT_CONTENT));
    assert_eq!(label(&base).as_deref(), Some(VIRT_CONTENT));

    // Root takes its file rw: the member's read-only hold is released, not in the way.
    let (root_guest, cats) = bed.define_guest("root's");
    bed.attach_ok(&root_guest, &shared, "rw");
    assert_eq!(label(&shared), Some(image_label(&cats)));
    let shown = bed.ok(&["guest", "show", member_guest]);
    assert!(!shown.contains("shared.img"), "{shown}");
    // Root deletes the base: the member's overlay on it is released and rests.
    bed.ok(&["volume", "delete", "--pool", "test", "base.qcow2"]);
    assert!(!base.exists());
    let shown = bed.ok(&["guest", "show", member_guest]);
    assert!(!shown.contains("over.qcow2"), "{shown}");
    assert_eq!(label(&over).as_deref(), Some(VIRT_IMAGE));
}
