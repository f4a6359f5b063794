//! Fuzzes form decoding (`application/x-www-form-urlencoded`, with embedded JSON fields).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A form decodes to an object, or is refused for a field of non-strict JSON.
    if let Ok(value) = hookgate::payload::decode_form(data) {
        assert!(value.is_object());
    }
});
