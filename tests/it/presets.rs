//! Provider presets over real HTTP: an account made from name, provider and secret alone
//! verifies a body signed the way the provider documents, and rejects a wrong signature.

use hyper::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn paystack_preset_verifies_sha512_hex_and_extracts_event_fields() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "ps", "provider": "paystack", "secret": "sk_test_abc"}))
        .await;
    let body = r#"{"event":"charge.success","data":{"id":302961,"amount":5000}}"#;
    let sig = hex::encode(hmac_sha512(b"sk_test_abc", body.as_bytes()));
    let before = gw.audit_rows();
    let ok = gw
        .post_hook("ps", &[("x-paystack-signature", &sig)], body)
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());
    let e = gw.event(ok.json()["id"].as_str().unwrap_or("")).await;
    assert_eq!(e["event_type"], "charge.success");
    // The dedupe key: the event type with the resource id, both signed.
    assert_eq!(e["event_id"], r#"["charge.success","302961"]"#);
    let bad = hex::encode(hmac_sha512(b"sk_test_other", body.as_bytes()));
    let no = gw
        .post_hook("ps", &[("x-paystack-signature", &bad)], body)
        .await;
    assert_eq!(no.status, 401, "{:?}", no.json());
    assert_eq!(gw.audit_rows(), before + 2);
    gw.stop().await;
}

#[tokio::test]
async fn meta_get_challenge_is_answered_and_audited_and_a_wrong_token_is_refused() {
    let gw = spawn_gateway().await;
    gw.create_account(
        json!({"name": "wa", "provider": "meta", "secret": "app-secret",
                             "handshake": {"verify_token": "my-verify-token"}}),
    )
    .await;
    let before = gw.audit_rows();
    let ok = gw
        .send_hook(
            Method::GET,
            "wa?hub.mode=subscribe&hub.verify_token=my-verify-token&hub.challenge=1158201444",
            &[],
            "",
        )
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(&ok.body[..], b"1158201444");
    let wrong = gw
        .send_hook(
            Method::GET,
            "wa?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1",
            &[],
            "",
        )
        .await;
    assert_eq!(wrong.status, 403, "{:?}", wrong.json());
    assert!(!String::from_utf8_lossy(&wrong.body).contains("guess"));
    // A GET that is not the handshake is still refused as a method.
    let plain = gw.send_hook(Method::GET, "wa", &[], "").await;
    assert_eq!(plain.status, 405);
    assert_eq!(gw.audit_rows(), before + 3);
    let mut rows = gw.events("account=wa").await;
    rows.reverse();
    let statuses: Vec<(&str, Option<&str>)> = rows
        .iter()
        .map(|r| (r["status"].as_str().unwrap_or(""), r["reason"].as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("handshake", None),
            ("rejected", Some("bad_auth")),
            ("rejected", Some("method_not_allowed"))
        ]
    );
    // The verify token is a secret: write-only like the others, and redacted in the rows
    // (a wrong guess too: it may be a near miss).
    let shown = gw.admin_call(Method::GET, "/v1/accounts/wa", None).await;
    assert!(!shown.json().to_string().contains("my-verify-token"));
    for row in &rows {
        let full = gw.event(row["id"].as_str().unwrap_or("")).await.to_string();
        assert!(
            !full.contains("my-verify-token") && !full.contains("guess"),
            "{full}"
        );
        assert!(
            full.contains("1158201444") || row["status"] != "handshake",
            "{full}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn slack_url_verification_is_answered_only_when_signed() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "sl", "provider": "slack", "secret": "slack-signing"}))
        .await;
    let body = r#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let ts = now_secs().to_string();
    let sig = format!(
        "v0={}",
        hmac_sha256_hex(b"slack-signing", format!("v0:{ts}:{body}").as_bytes())
    );
    let headers = [
        ("x-slack-signature", sig.as_str()),
        ("x-slack-request-timestamp", ts.as_str()),
        ("content-type", "application/json"),
    ];
    let ok = gw.post_hook("sl", &headers, body).await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        &ok.body[..],
        b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    let forged = gw
        .post_hook(
            "sl",
            &[
                ("x-slack-request-timestamp", ts.as_str()),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await;
    assert_eq!(forged.status, 401, "an unsigned challenge is not answered");
    let mut rows = gw.events("account=sl").await;
    rows.reverse();
    assert_eq!(rows[0]["status"], "handshake");
    assert_eq!(rows[1]["reason"], "bad_signature");
    gw.stop().await;
}

#[tokio::test]
async fn woocommerce_ping_passes_unsigned_but_a_bad_signature_never_does() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "woo", "provider": "woocommerce", "secret": "wc-secret"}))
        .await;
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let ping = gw.post_hook("woo", &form, "webhook_id=42").await;
    assert_eq!(ping.status, 200, "{:?}", ping.json());
    assert_eq!(ping.json()["status"], "handshake");
    // With a signature header present, the ping shape earns nothing: it is verified.
    let signed_wrong = gw
        .post_hook(
            "woo",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("x-wc-webhook-signature", "bm90IGEgc2lnbmF0dXJl"),
            ],
            "webhook_id=42",
        )
        .await;
    assert_eq!(signed_wrong.status, 401);
    // A signed request of the ping's shape is an event, not a handshake.
    let sig = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .encode(hmac_sha256(b"wc-secret", b"webhook_id=43"))
    };
    let signed = gw
        .post_hook(
            "woo",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("x-wc-webhook-signature", sig.as_str()),
            ],
            "webhook_id=43",
        )
        .await;
    assert_eq!(signed.json()["status"], "accepted", "{:?}", signed.json());
    // An unsigned order is not a ping.
    let order = gw
        .post_hook(
            "woo",
            &[("content-type", "application/json")],
            r#"{"id":7}"#,
        )
        .await;
    assert_eq!(order.status, 401);
    let mut rows = gw.events("account=woo").await;
    rows.reverse();
    let statuses: Vec<&str> = rows
        .iter()
        .map(|r| r["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(statuses, ["handshake", "rejected", "accepted", "rejected"]);
    let handshakes = gw.events("status=handshake").await;
    assert_eq!(
        handshakes.len(),
        1,
        "the status filter finds handshakes (partial index)"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_invalid_operator_rule_file_stops_start_up_naming_file_and_field() {
    let rules = tempfile::tempdir().expect("dir");
    std::fs::write(
        rules.path().join("acme.toml"),
        "name = \"acme\"\ntitle = \"Acme\"\n[account.signature]\nheader = \"X-Acme\"\nencoding = \"base32\"\n",
    )
    .expect("write");
    let db = tempfile::tempdir().expect("dir");
    let config = hookgate::config::Config {
        database: db.path().join("h.db"),
        rules_dir: Some(rules.path().to_path_buf()),
        ..hookgate::config::Config::default()
    };
    let err = hookgate::server::Gateway::open(config)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("acme.toml"), "{err}");
    assert!(err.contains("account") && err.contains("base32"), "{err}");
    // A valid one adds a preset that accounts can use.
    std::fs::write(
        rules.path().join("acme.toml"),
        "name = \"acme\"\ntitle = \"Acme\"\n[account.signature]\nheader = \"X-Acme\"\n",
    )
    .expect("write");
    let dir = rules.path().to_path_buf();
    let gw = spawn_with(move |c| c.rules_dir = Some(dir)).await;
    gw.create_account(json!({"name": "a1", "provider": "acme", "secret": "acme-secret"}))
        .await;
    let sig = hmac_sha256_hex(b"acme-secret", b"{}");
    let ok = gw.post_hook("a1", &[("x-acme", &sig)], "{}").await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());
    let listed = gw.admin_call(Method::GET, "/v1/providers/acme", None).await;
    assert_eq!(listed.status, 200);
    assert!(
        listed.json()["origin"]
            .as_str()
            .unwrap_or("")
            .ends_with("acme.toml")
    );
    gw.stop().await;
}

#[tokio::test]
async fn what_hookgate_sign_prints_is_accepted_by_a_running_gateway() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "stripe", "provider": "stripe", "secret": "whsec_try_me"}))
        .await;
    let dir = tempfile::tempdir().expect("dir");
    let body_file = dir.path().join("event.json");
    let body = r#"{"id":"evt_42","type":"payment_intent.succeeded","data":{"object":{"id":"pi_9","customer":"cus_7"}}}"#;
    std::fs::write(&body_file, body).expect("write body");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args([
            "sign",
            "--provider",
            "stripe",
            "--secret",
            "whsec_try_me",
            "--body",
        ])
        .arg(&body_file)
        .arg("--url")
        .arg(format!("{}/hooks/stripe", gw.public))
        .env_remove("HOOKGATE_RULES_DIR")
        .output()
        .await
        .expect("run hookgate sign");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("curl -sS -X POST"), "{text}");
    assert!(
        !text.contains("whsec_try_me"),
        "the secret is never printed"
    );
    let headers: Vec<(String, String)> = text
        .lines()
        .take_while(|l| !l.is_empty())
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(
        headers.iter().any(|(k, _)| k == "Stripe-Signature"),
        "{text}"
    );
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let ok = gw.post_hook("stripe", &refs, body).await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());
    let e = gw.event(ok.json()["id"].as_str().unwrap_or("")).await;
    assert_eq!(e["event_id"], "evt_42");
    assert_eq!(e["sender"], "cus_7");
    gw.stop().await;
}

#[tokio::test]
async fn hookgate_providers_lists_every_preset_and_shows_what_one_needs() {
    let run = |args: &'static [&'static str]| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .args(args)
            .env_remove("HOOKGATE_RULES_DIR")
            .output()
            .await
            .expect("run hookgate providers")
    };
    let list = run(&["providers", "list"]).await;
    assert!(list.status.success());
    let text = String::from_utf8_lossy(&list.stdout).into_owned();
    for rule in hookgate::rules::Rules::shipped().all() {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{} ", rule.name))),
            "{} missing from:\n{text}",
            rule.name
        );
    }
    let show = run(&["providers", "show", "meta"]).await;
    assert!(show.status.success());
    let text = String::from_utf8_lossy(&show.stdout).into_owned();
    for needed in [
        "App Secret",
        "handshake.verify_token",
        "(required)",
        "X-Hub-Signature-256",
        "phone_number_id",
        "https://developers.facebook.com/",
    ] {
        assert!(text.contains(needed), "{needed:?} missing from:\n{text}");
    }
    let unknown = run(&["providers", "show", "nope"]).await;
    assert!(!unknown.status.success());
    let err = String::from_utf8_lossy(&unknown.stderr).into_owned();
    assert!(err.contains("\"nope\" is not a known provider"), "{err}");
}

#[test]
fn the_readme_lists_every_preset_with_its_dedupe_key() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md readable");
    let table = readme
        .split("<!-- presets:start")
        .nth(1)
        .and_then(|rest| rest.split("<!-- presets:end -->").next())
        .expect("the README has the presets table between its markers");
    let mut missing = Vec::new();
    for rule in hookgate::rules::Rules::shipped().all() {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", rule.name)));
        let account = &rule.account;
        let key: Vec<String> = match account.get("dedupe_key").and_then(|k| k.as_array()) {
            Some(parts) => parts
                .iter()
                .filter_map(|p| p.as_str())
                .map(|p| format!("`{p}`"))
                .collect(),
            None => account
                .get("paths")
                .and_then(|p| p.get("event_id"))
                .and_then(|p| p.as_str())
                .map(|p| vec![format!("`{p}`")])
                .unwrap_or_else(|| vec!["| none |".to_owned()]),
        };
        match row {
            Some(row)
                if !key.is_empty()
                    && key
                        .iter()
                        .all(|k| row.replace("\\|", "|").contains(k.as_str())) => {}
            _ => missing.push(rule.name.clone()),
        }
    }
    assert!(
        missing.is_empty(),
        "README's preset table lacks (or has a stale dedupe key for) {missing:?}: run python3 fixtures/readme_table.py"
    );
}
