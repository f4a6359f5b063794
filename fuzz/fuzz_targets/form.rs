//! Fuzzes form decoding (`application/x-www-form-urlencoded`, with embedded JSON fields).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let value = hookgate::payload::decode_form(data);
    assert!(value.is_object());
});
