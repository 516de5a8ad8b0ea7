//! The security-context and MCS parsers: never panic, and what parses prints back to
//! something that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svirt_pool::decide::context::{CategorySet, Context, Pair};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ctx) = text.parse::<Context>() {
        let again: Context = ctx.as_str().parse().expect("a parsed context reparses");
        assert_eq!(again, ctx);
        let _ = ctx.with_level("s0:c1,c2").expect("a valid context at a valid level");
        let _ = ctx.high_categories();
    }
    if let Ok(set) = CategorySet::parse(text) {
        let printed = set.to_string();
        if !set.is_empty() {
            assert_eq!(CategorySet::parse(&printed).expect("canonical form parses"), set);
        }
    }
    if let Ok(pair) = text.parse::<Pair>() {
        assert!(pair.low() < pair.high());
        assert_eq!(pair.to_string().parse::<Pair>().unwrap(), pair);
    }
});
