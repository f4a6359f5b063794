//! Accounts over the admin API and the CLI: validation, fail-closed creation, masking of
//! secrets, updates, deletion, roles and the change log.

use hyper::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn names_are_validated_and_unique() {
    let gw = spawn_gateway().await;
    for bad in ["Shop", "a-b", "", "café", &"x".repeat(65)] {
        let a = gw
            .admin_call(
                Method::POST,
                "/v1/accounts",
                Some(json!({"name": bad, "allow_unverified": true})),
            )
            .await;
        assert_eq!(a.status, 422, "{bad}: {:?}", a.json());
        assert_eq!(a.json()["field"], "name");
        assert_eq!(a.headers["content-type"], "application/problem+json");
    }
    let created = gw
        .create_account(json!({"name": "shop_1", "allow_unverified": true}))
        .await;
    assert_eq!(
        created["webhook_url"],
        format!("{}/hooks/shop_1", gw.public)
    );
    let again = gw
        .admin_call(
            Method::POST,
            "/v1/accounts",
            Some(json!({"name": "shop_1", "allow_unverified": true})),
        )
        .await;
    assert_eq!(again.status, 409);
    gw.stop().await;
}

#[tokio::test]
async fn creation_fails_closed_with_the_field_named() {
    let gw = spawn_gateway().await;
    let cases = [
        (json!({"name": "a"}), "auth"),
        (json!({"name": "a", "provider": "nope"}), "provider"),
        (
            json!({"name": "a", "signature": {"header": "X-Sig", "secrets": []}}),
            "signature.secrets",
        ),
        (
            json!({"name": "a", "signature": {"header": "X-Sig", "secrets": ["s"], "signed_content": "{nope}"}}),
            "signature.signed_content",
        ),
        (
            json!({"name": "a", "signature": {"header": "X-Sig", "secrets": ["s"], "signed_content": "{timestamp}.{body}"}}),
            "signature.timestamp_header",
        ),
        (
            json!({"name": "a", "auth": {"type": "bearer", "token": ""}}),
            "auth.token",
        ),
        (
            json!({"name": "a", "allow_unverified": true, "paths": {"sender": "$["}}),
            "paths.sender",
        ),
        (json!({"name": "a", "secret": "s"}), "secret"),
    ];
    for (spec, field) in cases {
        let a = gw
            .admin_call(Method::POST, "/v1/accounts", Some(spec.clone()))
            .await;
        assert_eq!(a.status, 422, "{spec}: {:?}", a.json());
        assert_eq!(a.json()["field"], field, "{spec}");
    }
    let a = gw
        .admin_call(
            Method::POST,
            "/v1/accounts",
            Some(json!({"name": "a", "allow_unverified": true, "typo_field": 1})),
        )
        .await;
    assert_eq!(a.status, 422);
    assert!(
        a.json()["detail"]
            .as_str()
            .unwrap_or("")
            .contains("typo_field")
    );
    assert_eq!(
        gw.admin_call(Method::GET, "/v1/accounts", None)
            .await
            .json()["accounts"],
        json!([])
    );
    gw.stop().await;
}

#[tokio::test]
async fn secrets_are_write_only_everywhere() {
    let gw = spawn_gateway().await;
    let secrets = ["sig-secret-AAAA", "sig-secret-BBBB", "auth-secret-CCCC"];
    let created = gw
        .create_account(json!({
            "name": "masked",
            "auth": {"type": "api_key", "header": "X-Api-Key", "value": secrets[2]},
            "signature": {"header": "X-Sig", "secrets": [secrets[0], secrets[1]]}
        }))
        .await;
    let body = "{}";
    let sig = hmac_sha256_hex(secrets[0].as_bytes(), body.as_bytes());
    let a = gw
        .post_hook(
            "masked",
            &[("x-api-key", secrets[2]), ("x-sig", &sig)],
            body,
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    let shown = gw
        .admin_call(Method::GET, "/v1/accounts/masked", None)
        .await;
    let listed = gw.admin_call(Method::GET, "/v1/accounts", None).await;
    let events = gw.admin_call(Method::GET, "/v1/events", None).await;
    let event = gw
        .admin_call(
            Method::GET,
            &format!("/v1/events/{}", a.json()["id"].as_str().unwrap_or("")),
            None,
        )
        .await;
    let changes = gw.admin_call(Method::GET, "/v1/changes", None).await;
    for text in [
        created.to_string(),
        shown.json().to_string(),
        listed.json().to_string(),
        String::from_utf8_lossy(&events.body).into_owned(),
        String::from_utf8_lossy(&event.body).into_owned(),
        String::from_utf8_lossy(&changes.body).into_owned(),
    ] {
        for s in secrets.iter().copied().chain([sig.as_str()]) {
            assert!(!text.contains(s), "{s} leaked in {text}");
        }
    }
    assert_eq!(
        shown.json()["signature"]["secrets"],
        json!(["********", "********"])
    );
    assert_eq!(shown.json()["auth"]["value"], "********");
    gw.stop().await;
}

#[tokio::test]
async fn update_rotate_deactivate_delete_and_the_change_log() {
    let gw = spawn_gateway().await;
    gw.create_account(
        json!({"name": "life", "signature": {"header": "X-Sig", "secrets": ["first-secret"]},
                             "paths": {"sender": "$.a"}}),
    )
    .await;
    let sign = |secret: &str, body: &str| hmac_sha256_hex(secret.as_bytes(), body.as_bytes());

    // Merge-patch a path; the secrets stay.
    let a = gw
        .admin_call(
            Method::PATCH,
            "/v1/accounts/life",
            Some(json!({"paths": {"sender": "$.b"}})),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    let r = gw
        .post_hook(
            "life",
            &[("x-sig", &sign("first-secret", r#"{"b":"B"}"#))],
            r#"{"b":"B"}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        gw.event(r.json()["id"].as_str().unwrap_or("")).await["sender"],
        "B"
    );

    // Rotation: add the new secret, both work; retire the old one, only the new works.
    let a = gw
        .admin_call(
            Method::POST,
            "/v1/accounts/life/secrets",
            Some(json!({"secret": "second-secret"})),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    for s in ["first-secret", "second-secret"] {
        assert_eq!(
            gw.post_hook("life", &[("x-sig", &sign(s, "{}"))], "{}")
                .await
                .status,
            200,
            "{s}"
        );
    }
    let a = gw
        .admin_call(Method::DELETE, "/v1/accounts/life/secrets/0", None)
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    assert_eq!(
        gw.post_hook("life", &[("x-sig", &sign("first-secret", "{}"))], "{}")
            .await
            .status,
        401
    );
    assert_eq!(
        gw.post_hook("life", &[("x-sig", &sign("second-secret", "{}"))], "{}")
            .await
            .status,
        200
    );
    let a = gw
        .admin_call(Method::DELETE, "/v1/accounts/life/secrets/0", None)
        .await;
    assert_eq!(a.status, 422, "the last secret stays");

    // An invalid patch changes nothing.
    let a = gw
        .admin_call(
            Method::PATCH,
            "/v1/accounts/life",
            Some(json!({"paths": {"sender": "$["}})),
        )
        .await;
    assert_eq!(a.status, 422);
    assert_eq!(
        gw.admin_call(Method::GET, "/v1/accounts/life", None)
            .await
            .json()["paths"]["sender"],
        "$.b"
    );

    // Deactivate and activate.
    assert_eq!(
        gw.admin_call(Method::POST, "/v1/accounts/life/deactivate", None)
            .await
            .status,
        200
    );
    assert_eq!(
        gw.post_hook("life", &[("x-sig", &sign("second-secret", "{}"))], "{}")
            .await
            .status,
        404
    );
    assert_eq!(
        gw.admin_call(Method::POST, "/v1/accounts/life/activate", None)
            .await
            .status,
        200
    );
    assert_eq!(
        gw.post_hook("life", &[("x-sig", &sign("second-secret", "{}"))], "{}")
            .await
            .status,
        200
    );

    // Listening on, recorded.
    let a = gw
        .admin_call(
            Method::POST,
            "/v1/accounts/life/listening",
            Some(json!({"listening": true})),
        )
        .await;
    assert_eq!(a.json()["listening"], true);

    // Delete: the URL goes, the audit rows stay.
    let rows_before = gw.events("account=life").await.len();
    assert_eq!(
        gw.admin_call(Method::DELETE, "/v1/accounts/life", None)
            .await
            .status,
        200
    );
    assert_eq!(gw.post_hook("life", &[], "{}").await.status, 404);
    assert_eq!(gw.events("account=life").await.len(), rows_before + 1);

    let changes = gw
        .admin_call(Method::GET, "/v1/changes?account=life", None)
        .await
        .json();
    let actions: Vec<&str> = changes["changes"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["action"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        actions,
        [
            "account.deleted",
            "listening.on",
            "account.activated",
            "account.deactivated",
            "secret.retired",
            "secret.added",
            "account.updated",
            "account.created"
        ]
    );
    assert!(
        changes["changes"][0]["actor"]
            .as_str()
            .unwrap_or("")
            .contains("admin")
    );
    gw.stop().await;
}

#[tokio::test]
async fn tokens_and_roles_guard_the_admin_api() {
    let gw = spawn_gateway().await;
    let no_token = gw
        .client
        .send(Method::GET, &format!("{}/v1/events", gw.admin), &[], "")
        .await
        .expect("reach");
    assert_eq!(no_token.status, 401);
    assert_eq!(
        gw.call_as("wrong-token", Method::GET, "/v1/events", None)
            .await
            .status,
        401
    );
    assert_eq!(
        gw.call_as(AUDITOR_TOKEN, Method::GET, "/v1/events", None)
            .await
            .status,
        200
    );
    assert_eq!(
        gw.call_as(AUDITOR_TOKEN, Method::GET, "/v1/changes", None)
            .await
            .status,
        200
    );
    let write = gw
        .call_as(
            AUDITOR_TOKEN,
            Method::POST,
            "/v1/accounts",
            Some(json!({"name": "x", "allow_unverified": true})),
        )
        .await;
    assert_eq!(write.status, 403);
    assert_eq!(
        gw.call_as(AUDITOR_TOKEN, Method::GET, "/v1/accounts", None)
            .await
            .status,
        403
    );
    // The admin API is not on the public listener, and hooks are not on the admin one.
    let public = gw
        .client
        .send(
            Method::GET,
            &format!("{}/v1/events", gw.public),
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
            "",
        )
        .await
        .expect("reach");
    assert_eq!(public.status, 404);
    gw.stop().await;
}

#[tokio::test]
async fn events_paginate_with_cursors_and_filter() {
    let gw = spawn_gateway().await;
    gw.create_account(
        json!({"name": "pg", "auth": {"type": "bearer", "token": "pg-token-1"},
                             "paths": {"event_type": "$.t"}}),
    )
    .await;
    for i in 0..25 {
        let t = if i % 2 == 0 { "even" } else { "odd" };
        gw.post_hook(
            "pg",
            &[("authorization", "Bearer pg-token-1")],
            format!("{{\"t\":\"{t}\"}}"),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = gw
            .admin_call(
                Method::GET,
                &format!("/v1/events?account=pg&limit=10{cursor}"),
                None,
            )
            .await
            .json();
        for e in page["events"].as_array().cloned().unwrap_or_default() {
            seen.push(e["id"].as_str().unwrap_or("").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
        // New events arriving between pages land before the first page: no skip, no repeat.
        gw.post_hook(
            "pg",
            &[("authorization", "Bearer pg-token-1")],
            "{\"t\":\"late\"}",
        )
        .await;
    }
    assert_eq!(seen.len(), 25);
    let mut dedup = seen.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), 25);
    assert_eq!(
        gw.events("account=pg&event_type=odd&limit=100").await.len(),
        12
    );
    let bad = gw
        .admin_call(Method::GET, "/v1/events?status=great", None)
        .await;
    assert_eq!(bad.status, 400);
    let bad = gw
        .admin_call(Method::GET, "/v1/events?since=yesterday", None)
        .await;
    assert_eq!(bad.status, 400);
    let none = gw.events("since=2999-01-01T00:00:00Z").await;
    assert!(none.is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn the_cli_manages_accounts_and_reads_events() {
    let gw = spawn_gateway().await;
    let bin = env!("CARGO_BIN_EXE_hookgate");
    let run = |args: Vec<String>| {
        let admin = gw.admin.clone();
        async move {
            tokio::process::Command::new(bin)
                .args(&args)
                .env("HOOKGATE_URL", admin)
                .env("HOOKGATE_ADMIN_TOKEN", ADMIN_TOKEN)
                .output()
                .await
                .expect("run the CLI")
        }
    };
    let spec = json!({"name": "cli_acct", "auth": {"type": "bearer", "token": "cli-secret-token"}, "paths": {"sender": "$.who"}});
    let out = run(vec!["accounts".into(), "create".into(), spec.to_string()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("/hooks/cli_acct") && !stdout.contains("cli-secret-token"),
        "{stdout}"
    );

    let out = run(vec![
        "accounts".into(),
        "create".into(),
        json!({"name": "Bad"}).to_string(),
    ])
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("422"));

    let out = run(vec!["accounts".into(), "list".into()]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("cli_acct"));
    let out = run(vec![
        "accounts".into(),
        "update".into(),
        "cli_acct".into(),
        r#"{"paths":{"sender":"$.name"}}"#.into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let a = gw
        .post_hook(
            "cli_acct",
            &[("authorization", "Bearer cli-secret-token")],
            r#"{"name":"amina"}"#,
        )
        .await;
    let id = a.json()["id"].as_str().unwrap_or("").to_owned();
    let out = run(vec![
        "events".into(),
        "list".into(),
        "--sender".into(),
        "amina".into(),
    ])
    .await;
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(listed["events"][0]["id"], id.as_str());
    let out = run(vec!["events".into(), "show".into(), id.clone()]).await;
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(shown["headers"]["authorization"], "[redacted]");

    let out = run(vec!["accounts".into(), "delete".into(), "cli_acct".into()]).await;
    assert!(out.status.success());
    let out = run(vec!["accounts".into(), "show".into(), "cli_acct".into()]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    gw.stop().await;
}

#[tokio::test]
async fn cli_commands_exit_cleanly_when_their_reader_has_gone() {
    let gw = spawn_gateway().await;
    gw.create_account(
        json!({"name": "piped", "auth": {"type": "bearer", "token": "piped-token-1"}}),
    )
    .await;
    let db = gw.db.display().to_string();
    let bin = env!("CARGO_BIN_EXE_hookgate");
    let commands: [&[&str]; 6] = [
        &["accounts", "list"],
        &["events", "list"],
        &["events", "export"],
        &["audit", "verify"],
        &["audit", "verify", "--db", &db],
        &["providers", "list"],
    ];
    for args in commands {
        // Like `hookgate ... | head` after head has exited: the pipe has no reader.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = tokio::process::Command::new(bin)
            .args(args)
            .env("HOOKGATE_URL", &gw.admin)
            .env("HOOKGATE_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the CLI")
            // Not `output()`, which would capture stdout into a pipe of its own.
            .wait_with_output()
            .await
            .expect("run the CLI");
        assert!(out.stdout.is_empty(), "stdout went to the closed pipe");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
    }
    gw.stop().await;
}

#[tokio::test]
async fn metrics_count_outcomes_and_write_groups() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "m", "auth": {"type": "bearer", "token": "m-token-1"}, "paths": {"event_id": "$.id"}})).await;
    let h = [("authorization", "Bearer m-token-1")];
    gw.post_hook("m", &h, r#"{"id":"1"}"#).await;
    gw.post_hook("m", &h, r#"{"id":"1"}"#).await;
    gw.post_hook("m", &[], "{}").await;
    let text = String::from_utf8_lossy(&gw.admin_call(Method::GET, "/metrics", None).await.body)
        .into_owned();
    for line in [
        "hookgate_webhooks_total{status=\"accepted\"} 1",
        "hookgate_webhooks_total{status=\"duplicate\"} 1",
        "hookgate_rejections_total{reason=\"bad_auth\"} 1",
        "hookgate_ready 1",
        "hookgate_accounts 1",
        "hookgate_writer_queue_depth 0",
        "hookgate_writer_queue_capacity 8192",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    let rows: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("hookgate_writer_rows_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(
        rows >= 4.0,
        "three webhooks and the account creation were written: {rows}"
    );
    assert_eq!(
        gw.call_as(AUDITOR_TOKEN, Method::GET, "/metrics", None)
            .await
            .status,
        403
    );
    let unauthenticated = gw
        .client
        .send(Method::GET, &format!("{}/metrics", gw.admin), &[], "")
        .await
        .expect("reach");
    assert_eq!(unauthenticated.status, 401);
    gw.stop().await;
}

#[tokio::test]
async fn time_range_and_outcome_filters_are_exact() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "tf", "auth": {"type": "bearer", "token": "tf-token-1"}, "paths": {"event_id": "$.id"}})).await;
    for i in 0..30 {
        let auth = if i % 7 == 0 {
            "Bearer wrong"
        } else {
            "Bearer tf-token-1"
        };
        let id = if i % 5 == 0 { 0 } else { i };
        gw.post_hook(
            "tf",
            &[("authorization", auth)],
            format!("{{\"id\":\"{id}\"}}"),
        )
        .await;
    }
    let all = gw.events("account=tf&limit=1000").await;
    assert_eq!(all.len(), 30);
    let times: Vec<String> = all
        .iter()
        .map(|e| e["received_at"].as_str().unwrap_or("").to_owned())
        .collect();
    let (since, until) = (times[20].clone(), times[5].clone());
    let ids = |rows: &[serde_json::Value]| rows.iter().map(|e| e["id"].clone()).collect::<Vec<_>>();
    let expected: Vec<serde_json::Value> = all
        .iter()
        .filter(|e| {
            e["received_at"]
                .as_str()
                .is_some_and(|t| t >= since.as_str() && t < until.as_str())
        })
        .map(|e| e["id"].clone())
        .collect();
    let q = |s: &str| s.replace(':', "%3A").replace('+', "%2B");
    let got = gw
        .events(&format!(
            "account=tf&since={}&until={}&limit=1000",
            q(&since),
            q(&until)
        ))
        .await;
    assert_eq!(ids(&got), expected);
    assert!(!expected.is_empty());

    let rejected: Vec<_> = all
        .iter()
        .filter(|e| e["status"] == "rejected")
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(
        ids(&gw.events("status=rejected&limit=1000").await),
        rejected
    );
    assert_eq!(
        ids(&gw.events("account=tf&reason=bad_auth&limit=1000").await),
        rejected
    );
    let duplicates: Vec<_> = all
        .iter()
        .filter(|e| e["status"] == "duplicate")
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(
        ids(&gw.events("account=tf&status=duplicate&limit=1000").await),
        duplicates
    );
    assert!(!duplicates.is_empty() && rejected.len() == 5);
    gw.stop().await;
}

#[tokio::test]
async fn a_path_token_made_by_the_gateway_is_shown_once_works_and_rotates() {
    let gw = spawn_gateway().await;
    let f = crate::fixtures::Fixture::load("africas_talking", "delivery_report");
    let headers: Vec<(&str, &str)> = f
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let created = gw
        .create_account(json!({"name": "at", "provider": "africas_talking"}))
        .await;
    let token = created["path_token"]
        .as_str()
        .expect("a generated token in the create answer")
        .to_owned();
    assert!(
        token.len() >= 43
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{token}"
    );
    assert!(
        created["webhook_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/hooks/at/{token}"))),
        "{created}"
    );
    // Never shown again: not by the account, the list or the change log.
    for path in ["/v1/accounts/at", "/v1/accounts", "/v1/changes?account=at"] {
        let shown = gw.admin_call(Method::GET, path, None).await;
        assert_eq!(shown.status, 200, "{path}");
        assert!(
            !String::from_utf8_lossy(&shown.body).contains(&token),
            "{path} shows the token"
        );
    }
    let hook = |t: &str| format!("at/{t}");
    let ok = gw.post_hook(&hook(&token), &headers, f.body.clone()).await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());
    let wrong = gw
        .post_hook(
            &hook("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            &headers,
            f.body.clone(),
        )
        .await;
    assert_eq!(wrong.status, 401);

    let rotated = gw
        .admin_call(Method::POST, "/v1/accounts/at/path_token", None)
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.json());
    let fresh = rotated.json()["path_token"]
        .as_str()
        .expect("the new token in the rotate answer")
        .to_owned();
    assert_ne!(fresh, token);
    let old = gw.post_hook(&hook(&token), &headers, f.body.clone()).await;
    assert_eq!(old.status, 401, "the old token no longer works");
    let new = gw.post_hook(&hook(&fresh), &headers, f.body.clone()).await;
    assert_eq!(new.status, 200, "{:?}", new.json());
    let shown = gw.admin_call(Method::GET, "/v1/accounts/at", None).await;
    assert!(!String::from_utf8_lossy(&shown.body).contains(&fresh));
    // A token given at creation is the user's, and is not echoed back.
    let given = gw
        .create_account(json!({"name": "at2", "provider": "africas_talking",
                               "secret": "a-token-of-my-own-choosing"}))
        .await;
    assert!(given.get("path_token").is_none(), "{given}");
    // Only a path-token account has one to rotate.
    gw.create_account(json!({"name": "signed", "provider": "github", "secret": "s"}))
        .await;
    let refused = gw
        .admin_call(Method::POST, "/v1/accounts/signed/path_token", None)
        .await;
    assert_eq!(refused.status, 422);
    assert_eq!(refused.json()["field"], "auth");
    gw.stop().await;
}
