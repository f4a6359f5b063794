//! Property tests (proptest) at the trust boundary, on the library's own API: signatures
//! computed independently verify and any tampering fails; strict JSON agrees with
//! serde_json; extraction finds what was put at a random nested path; status templates
//! never panic and their fallbacks stand in for every missing value.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hookgate::account::{AccountSpec, CompiledAccount, compile};
use hookgate::verify::RequestView;
use hyper::HeaderMap;
use hyper::header::HeaderValue;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::support::hmac_sha256;

const NOW: i64 = 1_700_000_000;

fn signed(encoding: &str, secrets: &[String]) -> CompiledAccount {
    let spec = json!({
        "name": "prop",
        "signature": {
            "algorithm": "hmac-sha256", "header": "X-Sig", "encoding": encoding,
            "prefix": "v1=", "signed_content": "{timestamp}.{body}",
            "timestamp_header": "X-Ts", "tolerance_secs": 300, "secrets": secrets,
        },
        "paths": {"event_id": "$.id"}
    });
    let spec = AccountSpec::from_json(spec).expect("spec");
    compile(spec, true, 0, 0).expect("compiles")
}

fn verifies(account: &CompiledAccount, sig: &str, ts: i64, body: &[u8]) -> bool {
    let mut headers = HeaderMap::new();
    headers.insert("x-sig", HeaderValue::from_str(sig).expect("ascii"));
    headers.insert("x-ts", HeaderValue::from(ts));
    let body = Bytes::copy_from_slice(body);
    let view = RequestView {
        method: "POST",
        headers: &headers,
        query: None,
        body: &body,
        url: "http://x/hooks/prop",
        origin: Default::default(),
    };
    account.verifier.verify(&view, NOW).is_ok()
}

fn signature(encoding: &str, secret: &str, ts: i64, body: &[u8]) -> String {
    let mut content = format!("{ts}.").into_bytes();
    content.extend_from_slice(body);
    let mac = hmac_sha256(secret.as_bytes(), &content);
    match encoding {
        "hex" => format!("v1={}", hex::encode(mac)),
        _ => format!("v1={}", STANDARD.encode(mac)),
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e15f64..1e15).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn independently_signed_bodies_verify_and_any_tampering_fails(
        secret in "[!-~][ -~]{0,39}",
        other in "[!-~][ -~]{0,39}",
        body in prop::collection::vec(any::<u8>(), 0..400),
        skew in -299i64..299,
        flip in any::<prop::sample::Index>(),
        hex in any::<bool>(),
    ) {
        let encoding = if hex { "hex" } else { "base64" };
        let account = signed(encoding, std::slice::from_ref(&secret));
        let ts = NOW + skew;
        let sig = signature(encoding, &secret, ts, &body);
        prop_assert!(verifies(&account, &sig, ts, &body));
        // One byte of the body changed.
        if !body.is_empty() {
            let mut tampered = body.clone();
            let i = flip.index(tampered.len());
            tampered[i] ^= 0x01;
            prop_assert!(!verifies(&account, &sig, ts, &tampered));
        }
        // Another timestamp, or a stale one.
        prop_assert!(!verifies(&account, &sig, ts + 1, &body));
        let stale = NOW - 301;
        prop_assert!(!verifies(&account, &signature(encoding, &secret, stale, &body), stale, &body));
        // Another secret.
        if other != secret {
            prop_assert!(!verifies(&account, &signature(encoding, &other, ts, &body), ts, &body));
            // Rotation: either of two configured secrets verifies.
            let rotated = signed(encoding, &[other.clone(), secret.clone()]);
            prop_assert!(verifies(&rotated, &sig, ts, &body));
        }
    }

    #[test]
    fn strict_json_agrees_with_serde_json(value in json_value()) {
        let text = value.to_string();
        let strict = hookgate::strict_json::from_slice(text.as_bytes());
        prop_assert_eq!(strict.ok(), serde_json::from_str::<Value>(&text).ok());
    }

    #[test]
    fn extraction_finds_a_value_at_a_random_nested_path(
        keys in prop::collection::vec("[a-z][a-z0-9_]{0,7}", 1..6),
        index in 0usize..3,
        leaf in "[ -~]{1,20}",
        noise in json_value(),
    ) {
        // Build {k1: {k2: ... [.., leaf, ..] }} with noise beside each step.
        let mut value = Value::Array((0..3).map(|i| if i == index { Value::from(leaf.clone()) } else { noise.clone() }).collect());
        for key in keys.iter().rev() {
            let mut map = serde_json::Map::new();
            map.insert(format!("{key}_noise"), noise.clone());
            map.insert(key.clone(), value);
            value = Value::Object(map);
        }
        let path = format!("$.{}[{index}]", keys.join("."));
        let spec = json!({"name": "prop", "allow_unverified": true, "paths": {"event_id": path}});
        let account = compile(AccountSpec::from_json(spec).expect("spec"), true, 0, 0).expect("compiles");
        let headers = HeaderMap::new();
        let body = Bytes::from(value.to_string());
        let view = RequestView { method: "POST", headers: &headers, query: None, body: &body, url: "http://x", origin: Default::default() };
        let verified = account.verifier.verify(&view, NOW).expect("unverified account");
        let extracted = account.extractor.extract(&verified, &value);
        prop_assert_eq!(extracted.event_id, Some(leaf));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any template text parses or is refused without a panic, and renders against any
    /// params; a placeholder with a fallback never shows `[missing ...]`: it shows the
    /// value when the event has a non-blank one, else the fallback.
    #[test]
    fn status_templates_never_panic_and_fallbacks_hide_missing_values(
        text in "[ -~]{0,60}",
        name in "[a-z_]{1,8}",
        fallback in "[a-zA-Z0-9 ,.!]{0,20}",
        value in prop::option::of("[ -~]{0,12}"),
    ) {
        let params = match &value {
            Some(v) => json!({ name.clone(): v }),
            None => Value::Null,
        };
        let values = hookgate::render::Values {
            account: "shop",
            sender: None,
            source: None,
            event_type: None,
            event_id: None,
            params: &params,
        };
        if let Ok(t) = hookgate::render::Template::parse(&text) {
            let _ = t.render(&values);
        }
        let source = format!("<{{{{params.{name} | default: \"{fallback}\"}}}}>");
        let t = hookgate::render::Template::parse(&source)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let shown = t.render(&values);
        let want = match value.as_deref() {
            Some(v) if !v.trim().is_empty() => v.to_owned(),
            _ => fallback.clone(),
        };
        prop_assert_eq!(shown, format!("<{want}>"));
    }
}
