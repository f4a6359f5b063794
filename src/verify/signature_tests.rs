//! Tests of `verify::signature`: layouts, timestamps, several keys, URL variants, forms.

use super::*;
use crate::account::{SecretEncoding, SignatureFormat};
use crate::secret::Secret;
use crate::verify::sign;
use bytes::Bytes;
use hyper::HeaderMap;

fn spec(content: &str, secrets: &[&str]) -> SignatureSpec {
    SignatureSpec {
        algorithm: Algorithm::HmacSha256,
        header: Some("X-Sig".into()),
        signature_path: None,
        format: SignatureFormat::Plain,
        separator: None,
        signature_key: None,
        timestamp_key: None,
        encoding: Encoding::Hex,
        prefix: Some("sha256=".into()),
        signed_content: content.into(),
        timestamp_header: Some("X-Ts".into()),
        timestamp_path: None,
        timestamp_format: TimestampFormat::Unix,
        id_header: None,
        id_path: None,
        tolerance_secs: 300,
        secret_prefix: None,
        secret_encoding: SecretEncoding::Text,
        body_digest_param: None,
        url_port_variants: false,
        alternatives: Vec::new(),
        signed_fields: None,
        named_fields: None,
        secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
    }
}

fn run(
    check: &SignatureCheck,
    sig: &str,
    ts: &str,
    body: &'static str,
    now: i64,
) -> Result<(), Rejection> {
    let mut headers = HeaderMap::new();
    if let Ok(v) = sig.parse() {
        headers.insert("x-sig", v);
    }
    if !ts.is_empty()
        && let Ok(v) = ts.parse()
    {
        headers.insert("x-ts", v);
    }
    let body = Bytes::from_static(body.as_bytes());
    check.check(
        &RequestView {
            method: "POST",
            headers: &headers,
            query: None,
            body: &body,
            url: "u",
            origin: Default::default(),
        },
        now,
    )
}

fn hex_sig(key: &str, content: &str) -> String {
    let c = SignedContent::parse("{body}").unwrap_or_else(|e| panic!("{e}"));
    format!(
        "sha256={}",
        hex::encode(sign(
            Algorithm::HmacSha256,
            key.as_bytes(),
            &c,
            Inputs::body(content.as_bytes())
        ))
    )
}

#[test]
fn timestamped_signature_accepts_rotation_and_rejects_tampering_and_staleness() {
    let check = SignatureCheck::compile(&spec("{timestamp}.{body}", &["old", "new"]))
        .unwrap_or_else(|e| panic!("{e}"));
    let now = 1_700_000_000;
    let sig_old = hex_sig("old", "1700000000.{}");
    let sig_new = hex_sig("new", "1700000000.{}");
    assert_eq!(run(&check, &sig_old, "1700000000", "{}", now), Ok(()));
    assert_eq!(run(&check, &sig_new, "1700000000", "{}", now), Ok(()));
    let tampered = run(&check, &sig_new, "1700000000", "{ }", now);
    assert_eq!(tampered.map_err(|r| r.reason), Err(Reason::BadSignature));
    let stale = run(&check, &sig_new, "1700000000", "{}", now + 301);
    assert_eq!(stale.map_err(|r| r.reason), Err(Reason::StaleTimestamp));
    let future = run(&check, &sig_new, "1700000000", "{}", now - 301);
    assert_eq!(future.map_err(|r| r.reason), Err(Reason::StaleTimestamp));
    let wrong = run(
        &check,
        &hex_sig("other", "1700000000.{}"),
        "1700000000",
        "{}",
        now,
    );
    assert_eq!(wrong.map_err(|r| r.reason), Err(Reason::BadSignature));
}

#[test]
fn prefix_encoding_and_missing_parts_are_rejected_clearly() {
    let check = SignatureCheck::compile(&spec("{body}", &["k"])).unwrap_or_else(|e| panic!("{e}"));
    let good = hex_sig("k", "x");
    assert!(
        run(&check, &good, "", "x", 0).is_ok(),
        "no timestamp header: no freshness check"
    );
    assert!(
        run(&check, &good.to_uppercase(), "", "x", 0).is_ok(),
        "prefix and hex are case-insensitive"
    );
    assert!(run(&check, &good.replace("sha256=", ""), "", "x", 0).is_err());
    assert!(run(&check, "sha256=zz", "", "x", 0).is_err());
    let empty = run(&check, "", "", "x", 0).err().map(|r| r.detail);
    assert!(empty.is_some_and(|d| d.contains("holds no signature")));
    let missing = run(&check, "not a header value\n", "", "x", 0)
        .err()
        .map(|r| r.detail);
    assert!(missing.is_some_and(|d| d.contains("is missing")));
}

#[test]
fn compile_fails_closed() {
    assert!(SignatureCheck::compile(&spec("{body}", &[])).is_err());
    assert!(SignatureCheck::compile(&spec("{body}", &[""])).is_err());
    let mut s = spec("{id}.{body}", &["k"]);
    assert!(SignatureCheck::compile(&s).is_err());
    s.id_header = Some("X-Id".into());
    assert!(SignatureCheck::compile(&s).is_ok());
    s.signature_path = Some("$.sig".into());
    assert!(SignatureCheck::compile(&s).is_err(), "header and path both");
    s.header = None;
    s.signature_path = None;
    assert!(SignatureCheck::compile(&s).is_err(), "neither");
    let mut kv = spec("{timestamp}.{body}", &["k"]);
    kv.format = SignatureFormat::Kv;
    kv.timestamp_header = None;
    assert!(
        SignatureCheck::compile(&kv).is_err(),
        "kv needs signature_key"
    );
    kv.signature_key = Some("v1".into());
    assert!(SignatureCheck::compile(&kv).is_err(), "no timestamp source");
    kv.timestamp_key = Some("t".into());
    assert!(SignatureCheck::compile(&kv).is_ok());
}

#[test]
fn timestamps_in_seconds_millis_and_rfc3339() {
    assert_eq!(parse_timestamp(b"1700000000"), Some(1_700_000_000));
    assert_eq!(parse_timestamp(b"1700000000123"), Some(1_700_000_000));
    assert_eq!(
        parse_timestamp(b"2023-11-14T22:13:20Z"),
        Some(1_700_000_000)
    );
    assert_eq!(
        parse_timestamp(b"2023-11-14T22:13:20.000000"),
        Some(1_700_000_000),
        "no offset: UTC"
    );
    assert_eq!(parse_timestamp(b"soon"), None);
}

#[test]
fn url_port_variants() {
    let u = "https://mycompany.com/myapp.php?foo=1&bar=2";
    assert_eq!(
        with_default_port(u),
        "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    );
    assert_eq!(
        without_port("https://mycompany.com:443/a"),
        "https://mycompany.com/a"
    );
    assert_eq!(with_default_port("http://h"), "http://h:80");
    assert_eq!(with_default_port("http://h:8080/x"), "http://h:8080/x");
    assert_eq!(without_port("http://[::1]/x"), "http://[::1]/x");
    assert_eq!(without_port("http://[::1]:9/x"), "http://[::1]/x");
}

#[test]
fn form_params_sort_by_name_then_value() {
    assert_eq!(
        sorted_form_params(b"b=2&a=y&a=x&c=%2B1"),
        b"axayb2c+1".to_vec()
    );
    assert_eq!(
        sorted_form_params(b"a=x&b=2&a=x&a=y"),
        b"axayb2".to_vec(),
        "a repeated value is signed once"
    );
}
