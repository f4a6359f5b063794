//! Fuzzes strict JSON body parsing: it must agree with serde_json except for duplicate keys.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(strict) = hookgate::strict_json::from_slice(data) {
        let loose: serde_json::Value = serde_json::from_slice(data).expect("serde_json agrees");
        assert_eq!(strict, loose);
    }
});
