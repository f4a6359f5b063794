//! What presets declare for their provider, over real HTTP: GitHub's larger body limit,
//! multipart bodies decoded (and a broken one refused with its row kept), and a dedupe key
//! the signature does not cover refused when the account is made.

use hyper::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// Sends a head declaring `length` body bytes and no body; returns the answer's text.
async fn declare_length(gw: &TestGateway, account: &str, length: usize) -> String {
    let mut s = gw.raw_connection().await;
    let head = format!(
        "POST /hooks/{account} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        s.read_to_end(&mut response),
    )
    .await
    .expect("answered within 10s")
    .expect("read");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn github_takes_bodies_past_the_default_limit_up_to_its_25_mb() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "gh", "provider": "github", "secret": "s3cret"}))
        .await;
    gw.create_account(json!({"name": "plain", "signature": {"header": "X-Sig", "prefix": "sha256=", "secrets": ["s3cret"]}}))
        .await;
    // A push of 2 MiB: over the gateway's 1 MiB default, well under GitHub's 25 MB.
    let body = format!(
        r#"{{"ref":"refs/heads/main","pad":"{}"}}"#,
        "x".repeat(2 << 20)
    );
    let sig = format!("sha256={}", hmac_sha256_hex(b"s3cret", body.as_bytes()));
    let ok = gw
        .post_hook(
            "gh",
            &[("X-Hub-Signature-256", &sig), ("X-GitHub-Event", "push")],
            body.clone(),
        )
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());
    assert_eq!(ok.json()["status"], "accepted");
    // The same body to an account without the preset's limit is refused.
    let refused = gw.post_hook("plain", &[("X-Sig", &sig)], body).await;
    assert_eq!(refused.status, 413);
    // Past 25 MB even GitHub's account refuses, before reading a byte, naming its limit.
    let text = declare_length(&gw, "gh", 26_214_401).await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("26214400"), "{text}");
    let rows = gw.events("account=gh&reason=too_large").await;
    assert_eq!(rows.len(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn multipart_bodies_are_fields_and_a_broken_one_is_refused_with_its_row() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({
        "name": "inbound",
        "auth": {"type": "bearer", "token": "parse-token"},
        "paths": {"sender": "$.from", "event_type": "$.subject"}
    }))
    .await;
    let ct = "multipart/form-data; boundary=zzz";
    let body = "--zzz\r\nContent-Disposition: form-data; name=\"from\"\r\n\r\nada@example.com\r\n\
                --zzz\r\nContent-Disposition: form-data; name=\"subject\"\r\n\r\nHello\r\n\
                --zzz\r\nContent-Disposition: form-data; name=\"attachment1\"; filename=\"a.txt\"\r\n\
                Content-Type: text/plain\r\n\r\nhi\r\n--zzz--\r\n";
    let auth = [
        ("Authorization", "Bearer parse-token"),
        ("Content-Type", ct),
    ];
    let ok = gw.post_hook("inbound", &auth, body).await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());
    let row = gw.event(ok.json()["id"].as_str().unwrap_or("")).await;
    assert_eq!(row["sender"], "ada@example.com");
    assert_eq!(row["event_type"], "Hello");
    let before = gw.audit_rows();
    let broken = &body[..body.len() - 20];
    let bad = gw.post_hook("inbound", &auth, broken).await;
    assert_eq!(bad.status, 400, "{:?}", bad.json());
    assert!(
        bad.json()["detail"]
            .as_str()
            .unwrap_or("")
            .contains("multipart")
    );
    assert_eq!(gw.audit_rows(), before + 1, "the refusal is recorded");
    let rows = gw.events("account=inbound&reason=malformed_payload").await;
    assert_eq!(rows.len(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_dedupe_key_the_signature_does_not_cover_is_refused_by_field() {
    let gw = spawn_gateway().await;
    let refused = gw
        .admin_call(
            Method::POST,
            "/v1/accounts",
            Some(json!({"name": "rz", "provider": "razorpay", "secret": "k",
                        "dedupe_key": ["header:X-Razorpay-Event-Id"]})),
        )
        .await;
    assert_eq!(refused.status, 422, "{:?}", refused.json());
    let text = refused.json().to_string();
    assert!(text.contains("dedupe_key[0]"), "{text}");
    assert!(text.contains("not covered by the signature"), "{text}");
    // The preset's own key, the signed body, is accepted.
    let ok = gw
        .admin_call(
            Method::POST,
            "/v1/accounts",
            Some(json!({"name": "rz", "provider": "razorpay", "secret": "k"})),
        )
        .await;
    assert_eq!(ok.status, 201, "{:?}", ok.json());
    gw.stop().await;
}

#[tokio::test]
async fn hookgate_sign_signs_for_a_custom_account_from_its_fields() {
    let gw = spawn_gateway().await;
    let fields = json!({"signature": {"header": "X-Acme-Signature", "prefix": "sha256=",
                                      "signed_content": "{timestamp}.{body}",
                                      "timestamp_header": "X-Acme-Timestamp"}});
    let mut account = fields.clone();
    account["name"] = json!("acme");
    account["signature"]["secrets"] = json!(["acme-secret"]);
    gw.create_account(account).await;
    let dir = tempfile::tempdir().expect("dir");
    let (body_file, spec_file) = (dir.path().join("b.json"), dir.path().join("acme.json"));
    let body = r#"{"id":"a-1"}"#;
    std::fs::write(&body_file, body).expect("write body");
    std::fs::write(&spec_file, fields.to_string()).expect("write spec");
    let run = |with_spec: bool| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"));
        cmd.args([
            "sign",
            "--provider",
            "custom",
            "--secret",
            "acme-secret",
            "--body",
        ])
        .arg(&body_file)
        .arg("--url")
        .arg(format!("{}/hooks/acme", gw.public))
        .env_remove("HOOKGATE_RULES_DIR");
        if with_spec {
            cmd.arg("--spec").arg(format!("@{}", spec_file.display()));
        }
        cmd.output()
    };
    let without = run(false).await.expect("run hookgate sign");
    assert!(!without.status.success());
    assert!(String::from_utf8_lossy(&without.stderr).contains("--spec"));
    let out = run(true).await.expect("run hookgate sign");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("acme-secret"), "the secret is never printed");
    let headers: Vec<(String, String)> = text
        .lines()
        .take_while(|l| !l.is_empty())
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let ok = gw.post_hook("acme", &refs, body).await;
    assert_eq!(ok.status, 200, "{text} {:?}", ok.json());
    gw.stop().await;
}
