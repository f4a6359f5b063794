//! The operator's service around the gateway: the version, completions and man page, the
//! log (one line per request, no colour off a terminal, JSON on request), the admin API's
//! answers that guide the studio (query-token URLs, warnings, provider names, a Paystack
//! public key refused, a skipped forward explained), per-account counters, and key files
//! kept out of git.

use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};

use crate::operator::cli;
use crate::support::spawn_gateway;

#[tokio::test]
async fn version_completions_and_man_page_come_from_the_cli_definition() {
    let out = cli(&["--version"], &[], "").await;
    let v = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        v.starts_with("hookgate 0.") && v.contains("(commit "),
        "{v}"
    );
    let out = cli(&["completions", "bash"], &[], "").await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("_hookgate") && text.contains("add-secret"),
        "{text}"
    );
    let out = cli(&["man"], &[], "").await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains(".TH hookgate"),
        "{text}"
    );
}

#[tokio::test]
async fn the_log_has_one_line_per_request_without_colour_and_as_json_when_asked() {
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("hookgate.db");
        let p = crate::process::start(&db, &[("HOOKGATE_LOG_FORMAT", format)]).await;
        p.create_account(
            &json!({"name": "logged", "allow_unverified": true, "paths": {"event_id": "$.id"}}),
        )
        .await;
        let client = hookgate::cli::client::HttpClient::default();
        let a = client
            .send(
                Method::POST,
                &format!("{}/hooks/logged", p.public),
                &[],
                r#"{"id":"l1"}"#,
            )
            .await
            .expect("answer");
        let id = a.json()["id"].as_str().unwrap_or_default().to_owned();
        let index = client
            .send(Method::GET, &format!("{}/v1/", p.admin), &[], "")
            .await
            .expect("index");
        assert_eq!(index.status, 200, "the banner's admin URL answers");
        assert_eq!(index.json()["openapi"], "/v1/openapi.json");
        let log = p.term(Duration::from_secs(20)).await;
        assert!(
            !log.contains('\u{1b}'),
            "no colour codes in a log that is not a terminal: {log}"
        );
        let answered: Vec<&str> = log.lines().filter(|l| l.contains("answered")).collect();
        // The account's creation, the webhook and the index: one line each.
        assert_eq!(answered.len(), 3, "{log}");
        let hook = answered
            .iter()
            .find(|l| l.contains(&id))
            .copied()
            .unwrap_or_default();
        assert!(
            hook.contains("logged") && hook.contains("accepted"),
            "{hook}"
        );
        if format == "json" {
            for line in log.lines() {
                let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
                assert!(v["level"].is_string(), "{line}");
            }
            let v: Value = serde_json::from_str(hook).unwrap_or_default();
            assert_eq!(v["span"]["audit_id"], id.as_str(), "{hook}");
            assert_eq!(v["span"]["outcome"], "accepted");
            assert_eq!(v["span"]["account"], "logged");
        }
    }
}

#[tokio::test]
async fn account_answers_guide_the_studio_and_counters_are_per_account() {
    let gw = spawn_gateway().await;
    // A query-token account's URL shows where the token goes, and never the token.
    let q = gw
        .create_account(
            json!({"name": "qt", "auth": {"type": "query", "param": "key", "value": "tok-123456"}}),
        )
        .await;
    assert_eq!(
        q["webhook_url"],
        format!("{}/hooks/qt?key=<token>", gw.public)
    );
    // send_to_user without a sender path is saved, with a warning.
    let w = gw
        .create_account(
            json!({"name": "warned", "allow_unverified": true, "paths": {"event_id": "$.id"},
                               "forward": {"send_to_user": true, "template": "paid"}}),
        )
        .await;
    let warnings = w["warnings"].to_string();
    assert!(warnings.contains("paths.sender"), "{warnings}");
    // Provider names ignore case; a typo gets a suggestion; a Paystack public key is refused.
    let s = gw
        .admin_call(
            Method::POST,
            "/v1/accounts",
            Some(json!({"name": "st", "provider": "Stripe", "secret": "whsec_dGVzdA=="})),
        )
        .await;
    assert_eq!(s.status, 201, "{:?}", s.json());
    assert_eq!(s.json()["provider"], "stripe");
    let typo = gw
        .admin_call(
            Method::POST,
            "/v1/accounts",
            Some(json!({"name": "st2", "provider": "strpe", "secret": "x"})),
        )
        .await;
    assert_eq!(typo.status, 422);
    assert!(
        typo.json()["detail"]
            .as_str()
            .unwrap_or("")
            .contains("did you mean \"stripe\"?")
    );
    let pk = gw
        .admin_call(
            Method::POST,
            "/v1/accounts",
            Some(json!({"name": "ps", "provider": "paystack", "secret": "pk_test_abc"})),
        )
        .await;
    assert_eq!(pk.status, 422);
    assert_eq!(pk.json()["field"], "secret");
    assert!(
        pk.json()["detail"]
            .as_str()
            .unwrap_or("")
            .contains("sk_live_"),
        "{:?}",
        pk.json()
    );
    assert_eq!(
        gw.events("").await.len(),
        0,
        "nothing was recorded for refused accounts"
    );

    // A skipped forward says why.
    gw.admin_call(
        Method::POST,
        "/v1/accounts/warned/listening",
        Some(json!({"listening": true, "event_types": ["paid"]})),
    )
    .await;
    let id = gw
        .post_hook("warned", &[], r#"{"id":"k1","type":"refund"}"#)
        .await
        .json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let shown = gw.event(&id).await;
    assert_eq!(shown["forward_status"], "skipped");
    let note = shown["forward_note"].as_str().unwrap_or_default();
    assert!(note.contains("forward.event_types"), "{note}");

    // Per-account counters, only for configured accounts.
    gw.post_hook("warned", &[], r#"{"id":"k1"}"#).await;
    gw.post_hook("no_such_account", &[], "{}").await;
    let metrics = gw.admin_call(Method::GET, "/metrics", None).await;
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(
        text.contains("hookgate_account_events_total{account=\"warned\",outcome=\"accepted\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("hookgate_account_events_total{account=\"warned\",outcome=\"duplicate\"} 1"),
        "{text}"
    );
    assert!(
        !text.contains("no_such_account"),
        "unknown accounts make no label"
    );
    gw.stop().await;
}

#[test]
fn database_key_files_are_ignored_by_git() {
    let ignore = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.gitignore"))
        .unwrap_or_default();
    assert!(ignore.lines().any(|l| l.trim() == "*.key"), "{ignore}");
}
