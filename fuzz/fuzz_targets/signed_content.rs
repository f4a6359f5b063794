//! Fuzzes the signed-content template (`{timestamp}.{body}` and friends), then signs with
//! whatever parsed.
#![no_main]

use hookgate::account::Algorithm;
use hookgate::verify::{Inputs, SignedContent, sign};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(content) = SignedContent::parse(text) {
        let inputs = Inputs {
            body: b"{}",
            timestamp: b"1",
            id: b"i",
            url: b"http://x",
            method: b"POST",
            form_params: b"a1",
            named_fields: b"n=1",
        };
        let mac = sign(Algorithm::HmacSha256, b"k", &content, inputs);
        assert_eq!(mac.len(), 32);
    }
});
