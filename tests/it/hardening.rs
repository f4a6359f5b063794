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
