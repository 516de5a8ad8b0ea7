//! The API's request decoding, end to end: whatever bytes a client sends, the agent's
//! varlink service answers, refuses or closes the connection; it never panics or hangs.
//! Each input is sent over a real socket pair to the real service (`Api`) backed by a
//! temporary pool and state directory.
#![no_main]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use svirt_pool::api::auth::Peer;
use svirt_pool::api::service::Api;
use svirt_pool::config::{Checks, Settings};
use svirt_pool::ops::volumes::Batcher;

struct Bed {
    settings: Arc<Settings>,
    batcher: Arc<Batcher>,
    runtime: tokio::runtime::Runtime,
}

fn bed() -> &'static Bed {
    static BED: OnceLock<Bed> = OnceLock::new();
    BED.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("svirt-fuzz-{}", std::process::id()));
        let pool = dir.join("pool");
        std::fs::create_dir_all(&pool).unwrap();
        std::fs::write(pool.join("disk.img"), b"x").unwrap();
        let text = format!(
            "state_dir = \"{}\"\n[selinux]\nimage_label = \"system_u:object_r:svirt_image_t:s0\"\n\
             content_label = \"system_u:object_r:virt_content_t:s0\"\nprocess_label = \"system_u:system_r:svirt_t:s0\"\n\
             [[pool]]\nname = \"p\"\ntype = \"dir\"\npath = \"{}\"\nresting_label = \"system_u:object_r:virt_image_t:s0\"\n",
            dir.display(),
            pool.display()
        );
        let settings = Settings::parse_with(&text, &dir.join("fuzz.toml"), Checks::Syntax).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Bed {
            settings: Arc::new(settings),
            batcher: Batcher::new(),
            runtime,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let bed = bed();
    // A leading '~' makes the peer unprivileged: both sets of checks are fuzzed.
    let (uid, data) = match data.split_first() {
        Some((b'~', rest)) => (65534, rest),
        _ => (0, data),
    };
    let (mut client, server) = UnixStream::pair().unwrap();
    server.set_nonblocking(true).unwrap();
    client.write_all(data).unwrap();
    client.write_all(b"\0").unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let (events, _) = tokio::sync::broadcast::channel(16);
    let local = tokio::task::LocalSet::new();
    local.block_on(&bed.runtime, async {
        let hangup = server.try_clone().unwrap();
        // SAFETY: the AsyncFd owns this descriptor until it is dropped.
        let hangup = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                std::os::fd::OwnedFd::from(hangup),
                tokio::io::Interest::READABLE,
            )
        }
        .unwrap();
        let api = Api::new(
            bed.settings.clone(),
            bed.batcher.clone(),
            Peer { uid, gid: uid, pid: 1 },
            events,
            Arc::new(std::sync::atomic::AtomicBool::new(false)),
            Arc::new(hangup),
        );
        let stream = tokio::net::UnixStream::from_std(server).unwrap();
        let socket = zlink::tokio::unix::Stream::try_from(stream).unwrap();
        let server = zlink::Server::new(zlink::ReadyListener::new(socket), api);
        // A request must be answered (or the connection closed) promptly.
        let served = tokio::time::timeout(Duration::from_secs(10), server.run()).await;
        assert!(served.is_ok(), "the service hung on {:?}", String::from_utf8_lossy(data));
    });
    let mut reply = Vec::new();
    let _ = client.read_to_end(&mut reply);
});
