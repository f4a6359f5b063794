//! Fuzzes rule (provider preset) files: TOML into `rules::Rule`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = toml::from_str::<hookgate::rules::Rule>(text);
});
