//! Fuzzes compiling a user-supplied extraction path (JSONPath, `header:`, `query:`) and
//! applying it to a payload.
#![no_main]

use bytes::Bytes;
use hookgate::account::{AccountSpec, compile};
use hookgate::verify::RequestView;
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let _ = hookgate::extract::FieldPath::compile("event_id", path);
    let spec = json!({"name": "fuzz", "allow_unverified": true, "paths": {"event_id": path}});
    let Ok(spec) = AccountSpec::from_json(spec) else {
        return;
    };
    let Ok(account) = compile(spec, true, 0, 0) else {
        return;
    };
    let headers = HeaderMap::new();
    let body = Bytes::from_static(br#"{"a":{"b":[1,{"c":"d"}]},"id":"x"}"#);
    let view = RequestView {
        method: "POST",
        headers: &headers,
        query: Some("t=1"),
        body: &body,
        url: "http://x",
        origin: Default::default(),
    };
    if let Ok(verified) = account.verifier.verify(&view, 0) {
        let payload = json!({"a": {"b": [1, {"c": "d"}]}, "id": "x"});
        let _ = account.extractor.extract(&verified, &payload);
    }
});
