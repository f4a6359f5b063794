//! Fuzzes the XML reader (XML payloads, base64 XML fields, XML status-API answers).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A document reads to an object with one member (its root), or is refused; one that
    // opens with a document type declaration is always refused.
    let read = hookgate::xml::to_json(data, 1 << 16);
    if let Ok(value) = &read {
        assert!(value.as_object().is_some_and(|m| m.len() == 1));
    }
    if data.trim_ascii_start().starts_with(b"<!DOCTYPE") {
        assert!(read.is_err());
    }
});
