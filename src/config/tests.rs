//! The pure checks (`Checks::Syntax`: no paths probed, no file_contexts loaded), so they
//! run without root and without a policy. The full checks run against the real system
//! in `tests/config_errors.rs`.

use super::*;

/// Labels given explicitly, so no test reads the installed policy.
const SELINUX: &str = r#"
[selinux]
image_label = "system_u:object_r:svirt_image_t:s0"
content_label = "system_u:object_r:virt_content_t:s0"
process_label = "system_u:system_r:svirt_t:s0"
categories = "c0.c1023"
"#;

fn parse(body: &str) -> Result<Settings> {
    // The [selinux] table last: top-level keys in `body` stay top-level.
    let text = format!("{body}\n{SELINUX}");
    Settings::parse_with(&text, Path::new("/etc/test.toml"), Checks::Syntax)
}

fn refusal(body: &str) -> String {
    match parse(body) {
        Ok(_) => panic!("accepted:\n{body}"),
        Err(e) => e.to_string(),
    }
}

const DIR_POOL: &str = r#"
[[pool]]
name = "images"
type = "dir"
path = "/srv/images"
"#;

#[test]
fn a_minimal_config_gets_the_documented_defaults() {
    let s = parse(DIR_POOL).unwrap();
    assert_eq!(s.state_dir, Path::new("/var/lib/svirt-pool"));
    assert_eq!(s.api.socket, Path::new(DEFAULT_SOCKET));
    assert_eq!(s.api.max_connections, 256);
    assert_eq!(s.api.max_connections_per_user, 16);
    assert_eq!(s.api.max_guests_per_user, 64);
    assert_eq!(s.api.max_request_bytes, 1 << 20);
    assert_eq!(s.unwatched_rescan, std::time::Duration::from_secs(30));
    assert_eq!(s.libvirt_status_dir, Path::new("/run/libvirt/qemu"));
    assert!(!s.api.read_only_for_all);
    let dir = s.pools[0].dir().unwrap();
    assert!(!dir.cross_filesystems);
    assert_eq!(s.pools[0].resting_label, None);
}

#[test]
fn errors_name_the_file_and_the_key() {
    let e = refusal(&format!("{DIR_POOL}\nstate_dir = 'relative'"));
    // TOML puts a key after a table into that table: still named.
    assert!(e.contains("/etc/test.toml"), "{e}");
    let e = refusal(&format!("state_dir = 'var/lib'\n{DIR_POOL}"));
    assert!(e.contains("state_dir") && e.contains("absolute"), "{e}");
    let e = refusal(&format!("{DIR_POOL}colour = 'red'\n"));
    assert!(e.contains("colour"), "{e}");
    let e = refusal(&format!("[api]\nmax_connections = 0\n{DIR_POOL}"));
    assert!(
        e.contains("api.max_connections must be greater than 0"),
        "{e}"
    );
    let e = refusal(&format!("[agent]\nunwatched_rescan_secs = 0\n{DIR_POOL}"));
    assert!(e.contains("agent.unwatched_rescan_secs"), "{e}");
    let e = refusal(&format!("[api]\nsocket = 'x.sock'\n{DIR_POOL}"));
    assert!(e.contains("api.socket"), "{e}");
}

#[test]
fn a_config_without_pools_is_refused() {
    assert!(refusal("").contains("no [[pool]] is configured"));
}

#[test]
fn pool_keys_are_checked_per_type() {
    let e = refusal("[[pool]]\nname = 'a b'\ntype = 'dir'\npath = '/srv/x'\n");
    assert!(e.contains("pool[0]") && e.contains("\"a b\""), "{e}");
    let e = refusal("[[pool]]\nname = 'x'\ntype = 'nfs'\n");
    assert!(e.contains("type \"nfs\" is not supported"), "{e}");
    let e = refusal("[[pool]]\nname = 'x'\ntype = 'dir'\npath = '/srv/x'\nvg = 'vg0'\n");
    assert!(e.contains("vg is not a key of type \"dir\""), "{e}");
    let e = refusal("[[pool]]\nname = 'x'\ntype = 'lvm'\n");
    assert!(e.contains("vg is required"), "{e}");
    let e = refusal("[[pool]]\nname = 'x'\ntype = 'lvm'\nvg = 'a/b'\n");
    assert!(e.contains("is not a volume group name"), "{e}");
    let e = refusal("[[pool]]\nname = 'x'\ntype = 'dir'\npath = 'rel'\n");
    assert!(e.contains("is not absolute"), "{e}");
    let e = refusal(&format!("{DIR_POOL}resting_label = 'not a label'\n"));
    assert!(e.contains("resting_label"), "{e}");
}

#[test]
fn overlapping_pools_and_a_state_dir_inside_a_pool_are_refused() {
    let nested = "[[pool]]\nname = 'inner'\ntype = 'dir'\npath = '/srv/images/iso'\n";
    let e = refusal(&format!("{DIR_POOL}{nested}"));
    assert!(
        e.contains("pool[1]") && e.contains("overlaps pool \"images\""),
        "{e}"
    );
    let twice = "[[pool]]\nname = 'images'\ntype = 'dir'\npath = '/srv/other'\n";
    assert!(refusal(&format!("{DIR_POOL}{twice}")).contains("used twice"));
    let vg = |name: &str| format!("[[pool]]\nname = '{name}'\ntype = 'lvm'\nvg = 'vg0'\n");
    let e = refusal(&format!("{}{}", vg("a"), vg("b")));
    assert!(e.contains("overlaps"), "{e}");
    let e = refusal(&format!("state_dir = '/srv/images/.state'\n{DIR_POOL}"));
    assert!(e.contains("state_dir") && e.contains("inside pool"), "{e}");
}

#[test]
fn a_single_category_cannot_form_a_pair() {
    let text = SELINUX.replace("c0.c1023", "c5");
    let e = Settings::parse_with(
        &format!("{DIR_POOL}{text}"),
        Path::new("/t"),
        Checks::Syntax,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("selinux.categories"), "{e}");
}

#[test]
fn locate_answers_which_pool_a_name_is_in() {
    let s = parse(&format!(
        "{DIR_POOL}[[pool]]\nname = 'lvs'\ntype = 'lvm'\nvg = 'vg0'\n"
    ))
    .unwrap();
    assert_eq!(
        s.locate(Path::new("/srv/images/a/disk.img")),
        Some(Located::File {
            pool: s.dir_pool_id(0).unwrap(),
            rel: Path::new("a/disk.img")
        })
    );
    let lv = Some(Located::Lv {
        pool: s.lvm_pool_of("vg0").unwrap(),
        vg: "vg0",
        lv: "root",
    });
    assert_eq!(s.locate(Path::new("vg0/root")), lv);
    assert_eq!(s.locate(Path::new("/dev/vg0/root")), lv);
    // The root itself is not a volume; neighbours and other VGs are in no pool.
    assert_eq!(s.locate(Path::new("/srv/images")), None);
    assert_eq!(s.locate(Path::new("/srv/images2/x.img")), None);
    assert_eq!(s.locate(Path::new("vg1/root")), None);
    assert_eq!(s.lvm_pool_of("vg0").map(|p| p.index()), Some(1));
    assert_eq!(s.dir_pool_id(1), None, "pool 1 is an lvm pool");
    assert_eq!(
        s.dir_pool(s.dir_pool_id(0).unwrap()).path,
        Path::new("/srv/images")
    );
}

#[test]
fn a_cluster_section_gets_its_defaults_and_shared_pools_need_it() {
    let s = parse(DIR_POOL).unwrap();
    assert!(s.cluster.is_none() && !s.pools[0].shared);
    let shared = format!("{DIR_POOL}shared = true\n");
    let e = refusal(&shared);
    assert!(e.contains("\"images\"") && e.contains("[cluster]"), "{e}");

    let cluster = "[cluster]\nendpoints = ['http://127.0.0.1:2379']\n";
    let s = parse(&format!("{shared}{cluster}")).unwrap();
    let c = s.cluster.unwrap();
    assert!(s.pools[0].shared);
    assert_eq!(c.prefix, "/svirt-pool");
    assert_eq!(c.timeout, std::time::Duration::from_millis(2000));
    let hostname = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    assert_eq!(c.host, hostname);
    assert!(c.tls.is_none());
}

#[test]
fn bad_cluster_keys_are_named() {
    let with = |keys: &str| refusal(&format!("{DIR_POOL}[cluster]\n{keys}\n"));
    let e = with("endpoints = []");
    assert!(e.contains("cluster.endpoints"), "{e}");
    let e = with("endpoints = ['127.0.0.1:2379']");
    assert!(
        e.contains("cluster.endpoints") && e.contains("127.0.0.1:2379"),
        "{e}"
    );
    let e = with("endpoints = ['http://a:1']\nhost = 'a/b'");
    assert!(e.contains("cluster.host") && e.contains("a/b"), "{e}");
    let e = with("endpoints = ['http://a:1']\nprefix = 'x'");
    assert!(e.contains("cluster.prefix"), "{e}");
    let e = with("endpoints = ['http://a:1']\ntimeout_ms = 0");
    assert!(e.contains("cluster.timeout_ms"), "{e}");
    let e = with("endpoints = ['https://a:1']\nca = '/ca.pem'");
    assert!(e.contains("ca, cert and key go together"), "{e}");
    let e = with("endpoints = ['http://a:1']\nca = '/ca'\ncert = '/c'\nkey = '/k'");
    assert!(e.contains("https://"), "{e}");
    let e = with("endpoints = ['http://a:1']\nlease = 5");
    assert!(e.contains("lease"), "{e}");
}
