//! The configuration parser: any text gives settings or an error naming what is wrong,
//! never a panic. Syntax checks only, so nothing outside the process is touched.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svirt_pool::config::{Checks, Settings};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Settings::parse_with(text, std::path::Path::new("fuzz.toml"), Checks::Syntax) {
        assert!(e.to_string().starts_with("fuzz.toml: "), "{e}");
        assert_eq!(e.exit_code(), 2);
    }
});
