//! Fuzzes the admin API's account contract: any JSON into `AccountSpec`, preset merge,
//! and compile (which must fail closed, never panic).
#![no_main]

use std::sync::OnceLock;

use hookgate::account::{AccountSpec, compile};
use hookgate::rules::Rules;
use libfuzzer_sys::fuzz_target;

static RULES: OnceLock<Rules> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(value) = RULES.get_or_init(Rules::shipped).prepare(value) else {
        return;
    };
    let Ok(spec) = AccountSpec::from_json(value) else {
        return;
    };
    let _ = compile(spec, true, 0, 0);
});
