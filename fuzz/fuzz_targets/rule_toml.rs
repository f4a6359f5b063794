//! Fuzzes rule (provider preset) files as an operator's directory is loaded: TOML into
//! `rules::Rule`, the name check, and compiling an account from the rule. Whatever the
//! file holds, the answer is a rule or an error naming a field, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = hookgate::rules::parse("fuzz.toml", "fuzz", text) {
        assert!(!e.field.is_empty());
    }
});
