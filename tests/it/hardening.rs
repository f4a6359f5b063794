//! Hardening against a determined sender and a careless operator: duplicate JSON keys in
//! a form, secrets and credentials that must not leak into answers or rows, spreadsheet
//! formulas in exports. Each test fails on the weakness it names and passes once closed.

use serde_json::{Value, json};

use crate::support::*;

fn signed_form_account(name: &str, secret: &str) -> Value {
    json!({
        "name": name,
        "signature": {
            "algorithm": "hmac-sha256",
            "header": "X-Signature",
            "encoding": "hex",
            "prefix": "sha256=",
            "signed_content": "{timestamp}.{body}",
            "timestamp_header": "X-Timestamp",
            "tolerance_secs": 300,
            "secrets": [secret],
        },
        "paths": {"event_id": "$.id"}
    })
}

fn signed_headers(secret: &str, body: &str) -> Vec<(&'static str, String)> {
    let ts = now_secs();
    let sig = format!(
        "sha256={}",
        hmac_sha256_hex(secret.as_bytes(), format!("{ts}.{body}").as_bytes())
    );
    vec![
        (
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        ),
        ("x-timestamp", ts.to_string()),
        ("x-signature", sig),
    ]
}

#[tokio::test]
async fn duplicate_json_keys_are_refused_through_a_form_content_type_too() {
    let gw = spawn_gateway().await;
    gw.create_account(signed_form_account("formdup", "form-secret"))
        .await;
    let before = gw.audit_rows();
    // What `curl -d` sends: JSON labelled as a form. Both keys are signed.
    let dup_body = r#"{"id":"d9","id":"d10"}"#;
    // A form field holding JSON with a repeated key (Slack's `payload=` shape).
    let dup_field = "payload=%7B%22id%22%3A%22d9%22%2C%22id%22%3A%22d10%22%7D";
    for body in [dup_body, dup_field] {
        let headers = signed_headers("form-secret", body);
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let a = gw.post_hook("formdup", &h, body).await;
        assert_eq!(a.status, 400, "{body}: {:?}", a.json());
        assert_eq!(a.json()["code"], "malformed_payload");
        let row = gw.event(a.json()["id"].as_str().unwrap_or("")).await;
        assert_eq!(row["status"], "rejected");
        assert_eq!(row["reason"], "malformed_payload");
        assert_eq!(row["body"], body, "the raw body is kept as sent");
    }
    assert!(
        gw.events("account=formdup&status=accepted")
            .await
            .is_empty(),
        "nothing accepted with a null event id"
    );
    // The same sender's well-formed JSON as a form is accepted with its id.
    let good = r#"{"id":"d11"}"#;
    let headers = signed_headers("form-secret", good);
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = gw.post_hook("formdup", &h, good).await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    let row = gw.event(a.json()["id"].as_str().unwrap_or("")).await;
    assert_eq!(row["event_id"], "d11");
    assert_eq!(gw.audit_rows() - before, 3, "one row per request");
    gw.stop().await;
}

#[tokio::test]
async fn a_secret_that_is_only_a_prefix_or_empty_after_decoding_is_refused() {
    let gw = spawn_gateway().await;
    for (spec, field) in [
        (
            json!({"name": "stripe_a", "provider": "stripe", "secret": "whsec_"}),
            "signature.secrets[0]",
        ),
        (
            json!({"name": "stripe_b", "provider": "stripe", "secret": " whsec_ "}),
            "signature.secrets[0]",
        ),
        (
            json!({"name": "std_a", "signature": {"header": "X-Sig", "secret_prefix": "whsec_",
                   "secret_encoding": "base64", "secrets": ["whsec_"]}}),
            "signature.secrets[0]",
        ),
        (
            json!({"name": "hex_a", "signature": {"header": "X-Sig", "secret_encoding": "hex",
                   "secrets": ["  "]}}),
            "signature.secrets[0]",
        ),
    ] {
        let a = gw
            .admin_call(hyper::Method::POST, "/v1/accounts", Some(spec.clone()))
            .await;
        assert_eq!(a.status, 422, "{spec}: {:?}", a.json());
        assert_eq!(a.json()["field"], field, "{spec}");
    }
    assert_eq!(
        gw.admin_call(hyper::Method::GET, "/v1/accounts", None)
            .await
            .json()
            .as_array()
            .map_or(0, Vec::len),
        0,
        "no account was created"
    );
    // A rotation cannot add an empty key either.
    gw.create_account(json!({"name": "stripe_ok", "provider": "stripe", "secret": "whsec_real1"}))
        .await;
    let a = gw
        .admin_call(
            hyper::Method::POST,
            "/v1/accounts/stripe_ok/secrets",
            Some(json!({"secret": "whsec_"})),
        )
        .await;
    assert_eq!(a.status, 422, "{:?}", a.json());
    gw.stop().await;
}

#[tokio::test]
async fn a_wrongly_typed_secret_is_not_repeated_in_the_422() {
    let gw = spawn_gateway().await;
    let secret = "sekrit-WRONGTYPE-4711";
    for spec in [
        json!({"name": "t1", "signature": {"header": "X-Sig", "secrets": secret}}),
        json!({"name": "t2", "signature": {"header": "X-Sig", "secrets": [4711081542u64]}}),
        json!({"name": "t3", "auth": {"type": "bearer", "token": [secret]}, "secret": 4711081542u64}),
        json!({"name": "t5", "provider": "stripe", "secret": {"key": secret}}),
    ] {
        let a = gw
            .admin_call(hyper::Method::POST, "/v1/accounts", Some(spec.clone()))
            .await;
        assert_eq!(a.status, 422, "{spec}: {:?}", a.json());
        let text = String::from_utf8_lossy(&a.body).into_owned();
        assert!(
            !text.contains(secret) && !text.contains("4711081542"),
            "{spec}: {text}"
        );
        assert!(!a.json()["detail"].as_str().unwrap_or("").is_empty());
    }
    gw.stop().await;
}

#[tokio::test]
async fn credentials_sent_to_a_slightly_wrong_url_are_not_stored_in_the_404_row() {
    // On SQLite by name: the test reads the database file itself.
    let gw = spawn_sqlite_with(|_| {}).await;
    gw.create_account(json!({"name": "acct",
        "auth": {"type": "api_key", "header": "X-Acct-Key", "value": "acct-key-SECRET-1"}}))
        .await;
    gw.create_account(
        json!({"name": "tok", "auth": {"type": "query", "param": "token",
        "value": "tok-SECRET-2"}}),
    )
    .await;
    let leaked = [
        "acct-key-SECRET-1",
        "tok-SECRET-2",
        "bare-SECRET-3",
        "sig-SECRET-4",
    ];
    let mut ids = Vec::new();
    for (path, headers) in [
        // A trailing slash: no account matches "tok/".
        ("tok/?token=tok-SECRET-2&x=1", vec![]),
        ("tok/?bare-SECRET-3", vec![]),
        // An account's API-key header, sent to an account that does not exist.
        (
            "acct2",
            vec![
                ("x-acct-key", leaked[0]),
                ("x-hub-signature-256", leaked[3]),
            ],
        ),
    ] {
        let a = gw.post_hook(path, &headers, "{}").await;
        assert_eq!(a.status, 404, "{path}");
        ids.push(a.json()["id"].as_str().unwrap_or("").to_owned());
    }
    let mut seen = String::new();
    for id in &ids {
        let row = gw.event(id).await;
        assert_eq!(row["reason"], "unknown_account");
        seen.push_str(&row.to_string());
    }
    let row = gw.event(&ids[0]).await;
    assert!(
        row.to_string().contains("token="),
        "the names are kept: {row}"
    );
    let export = gw
        .admin_call(hyper::Method::GET, "/v1/events/export?format=csv", None)
        .await;
    seen.push_str(&String::from_utf8_lossy(&export.body));
    let db = gw.db.clone();
    let _dir = gw.stop().await;
    let mut file = Vec::new();
    for suffix in ["", "-wal"] {
        file.extend(std::fs::read(format!("{}{suffix}", db.display())).unwrap_or_default());
    }
    for value in leaked {
        assert!(!seen.contains(value), "{value} in an answer: {seen}");
        // The account's own key is sealed in the accounts table; nothing else holds it.
        assert!(
            !file.windows(value.len()).any(|w| w == value.as_bytes()),
            "{value} in the database file"
        );
    }
}
