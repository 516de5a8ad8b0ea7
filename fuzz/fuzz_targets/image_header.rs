//! The image header parser and backing-name resolution: any bytes give a header or a
//! refusal, never a panic; a backing name it returns is at most 1023 bytes without NUL,
//! and whatever it resolves to stays strictly beneath the pool.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use svirt_pool::observe::{chain, image};

fuzz_target!(|data: &[u8]| {
    let Ok(header) = image::parse(data) else {
        return;
    };
    let Some(name) = header.backing else {
        return;
    };
    assert!(name.len() <= 1023 && !name.contains(&0));
    for from in ["overlay.qcow2", "vm/overlay.qcow2"] {
        if let Ok(rel) = chain::resolve(Path::new("/pool"), Path::new(from), &name) {
            assert!(!rel.as_os_str().is_empty());
            assert!(rel.components().all(|c| matches!(c, Component::Normal(_))), "{rel:?}");
        }
    }
});
