//! The lvm2 JSON report parser: any bytes give LVs or a Malformed error, never a panic;
//! every LV it returns is well formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svirt_pool::observe::lvm::{self, LvmError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match lvm::parse_lvs(text) {
        Ok(lvs) => {
            for lv in lvs {
                assert_eq!(lv.uuid.len(), 32);
                assert!(lvm::is_valid_name(&lv.vg) && lvm::is_valid_name(&lv.name));
            }
        }
        Err(LvmError::Malformed { .. }) => {}
        Err(e) => panic!("parse_lvs returned a non-parse error: {e}"),
    }
    let _ = lvm::lv_uuid_from_dm_uuid(text);
});
