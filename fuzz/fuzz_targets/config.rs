//! Fuzzes the configuration file parser and its validation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = hookgate::config::Config::load(Some(text), |_| None);
});
