//! Fuzzes the signature header grammars (plain with a prefix, a `v1,` list, `t=,v1=`
//! pairs, Twilio's URL form): hex and base64 decoding, timestamp and id headers. Whatever arrives, verification returns a rejection, never panics, never
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
    let schemes = [
        json!({"header": "X-Sig", "encoding": "hex", "prefix": "sha256=",
               "signed_content": "{timestamp}.{body}", "timestamp_header": "X-Ts"}),
        json!({"header": "X-Sig", "encoding": "base64", "format": "list", "prefix": "v1,",
               "signed_content": "{id}.{timestamp}.{body}", "timestamp_header": "X-Ts",
               "id_header": "X-Ts", "secret_prefix": "whsec_", "secret_encoding": "base64"}),
        json!({"header": "X-Sig", "encoding": "hex", "format": "kv", "signature_key": "v1",
               "timestamp_key": "t", "signed_content": "{timestamp}.{body}"}),
        json!({"header": "X-Sig", "encoding": "base64", "signed_content": "{url}{form_params}",
               "body_digest_param": "bodySHA256", "url_port_variants": true}),
    ];
    for scheme in schemes {
        let mut signature = scheme;
        signature["algorithm"] = json!("hmac-sha256");
        signature["tolerance_secs"] = json!(300);
        signature["secrets"] = json!(["whsec_ZnV6ei1zZWNyZXQ="]);
        let spec = json!({"name": "fuzz", "signature": signature});
        // The schemes are fixed, not input: one that does not compile is a bug here.
        let Ok(spec) = AccountSpec::from_json(spec) else {
            panic!("the fuzz scheme does not parse");
        };
        let Ok(account) = compile(spec, true, 0, 0) else {
            panic!("the fuzz scheme does not compile");
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
            query: Some("bodySHA256=00"),
            body: &body,
            url: "http://x/hooks/fuzz?bodySHA256=00",
            origin: Default::default(),
        };
        assert!(account.verifier.verify(&view, 1_700_000_000).is_err());
    }
});
