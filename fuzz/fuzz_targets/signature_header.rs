//! Fuzzes the signature header grammar: prefix, hex and base64 decoding, timestamp and id
//! headers. Whatever arrives, verification returns a rejection, never panics, never
//! accepts a forged MAC.
#![no_main]

use bytes::Bytes;
use hookgate::account::{AccountSpec, compile};
use hookgate::verify::RequestView;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let (sig, ts) = data.split_at(data.len() / 2);
    for (encoding, prefix) in [("hex", "sha256="), ("base64", "v1,")] {
        let spec = json!({
            "name": "fuzz",
            "signature": {
                "algorithm": "hmac-sha256", "header": "X-Sig", "encoding": encoding,
                "prefix": prefix, "signed_content": "{timestamp}.{body}",
                "timestamp_header": "X-Ts", "tolerance_secs": 300, "secrets": ["fuzz-secret"],
            }
        });
        let Ok(spec) = AccountSpec::from_json(spec) else {
            return;
        };
        let Ok(account) = compile(spec, true, 0, 0) else {
            return;
        };
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(sig) {
            headers.insert("x-sig", v);
        }
        if let Ok(v) = HeaderValue::from_bytes(ts) {
            headers.insert("x-ts", v);
        }
        let body = Bytes::from_static(b"{}");
        let view = RequestView {
            method: "POST",
            headers: &headers,
            query: None,
            body: &body,
            url: "http://x/hooks/fuzz",
        };
        assert!(account.verifier.verify(&view, 1_700_000_000).is_err());
    }
});
