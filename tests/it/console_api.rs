//! The console over plain HTTP: its files and their headers, and the admin API it added
//! (whoami, path suggestions, template previews, per-account counts, the dashboard's
//! figures, Try Out and its CLI twin).

use hyper::Method;
use serde_json::json;

use hookgate::clock::Clock;

use crate::support::{
    ADMIN_TOKEN, AUDITOR_TOKEN, hmac_sha256_hex, now_secs, spawn_gateway, spawn_with,
    spawn_with_clock,
};

#[tokio::test]
async fn the_console_is_served_at_the_root_with_a_strict_policy_and_no_token() {
    let gw = spawn_gateway().await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let a = gw
            .client
            .send(Method::GET, &format!("{}{path}", gw.admin), &[], "")
            .await
            .expect("admin listener");
        assert_eq!(a.status, 200, "{path}");
        let h = |name: &str| {
            a.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert!(h("content-type").starts_with(kind), "{path}");
        let csp = h("content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h("x-frame-options"), "DENY");
        assert_eq!(h("x-content-type-options"), "nosniff");
    }
    let index = gw
        .client
        .send(Method::GET, &format!("{}/", gw.admin), &[], "")
        .await
        .expect("index");
    let text = String::from_utf8_lossy(&index.body);
    assert!(
        text.contains("type=\"password\""),
        "the token goes in a password field"
    );
    // Nothing else is public: an unknown file is a 404, and the API still needs a token.
    let missing = gw
        .client
        .send(
            Method::GET,
            &format!("{}/console/../v1/accounts", gw.admin),
            &[],
            "",
        )
        .await
        .expect("answer");
    assert_ne!(missing.status, 200);
    let post = gw
        .client
        .send(Method::POST, &format!("{}/", gw.admin), &[], "x")
        .await
        .expect("answer");
    assert_eq!(
        post.status, 401,
        "only GET is declared for the console's files"
    );
    let api = gw
        .client
        .send(Method::GET, &format!("{}/v1/accounts", gw.admin), &[], "")
        .await
        .expect("answer");
    assert_eq!(api.status, 401);
    // A cross-origin preflight is never approved, so no other origin's script can send the
    // token header.
    let preflight = gw
        .client
        .send(
            Method::OPTIONS,
            &format!("{}/v1/accounts", gw.admin),
            &[
                ("origin", "http://evil.example"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "authorization"),
            ],
            "",
        )
        .await
        .expect("answer");
    assert!(!preflight.status.is_success());
    assert!(
        preflight
            .headers
            .get("access-control-allow-origin")
            .is_none()
    );
    gw.stop().await;
}

#[tokio::test]
async fn whoami_names_the_role_and_suggest_lists_paths_with_values() {
    let gw = spawn_gateway().await;
    let me = gw.admin_call(Method::GET, "/v1/whoami", None).await.json();
    assert_eq!(me["role"], "admin");
    assert!(
        me["reasons"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("bad_signature")))
    );
    let auditor = gw
        .call_as(AUDITOR_TOKEN, Method::GET, "/v1/whoami", None)
        .await
        .json();
    assert_eq!(auditor["role"], "auditor");

    let sample = json!({"id": "ev_1", "type": "paid", "customer": {"phone": "+255"}});
    let a = gw
        .admin_call(
            Method::POST,
            "/v1/paths/suggest",
            Some(json!({"sample": sample, "paths": {"sender": "customer.phone", "source": "$["}})),
        )
        .await;
    assert_eq!(a.status, 200);
    let s = a.json();
    assert!(
        s["candidates"]
            .as_array()
            .is_some_and(|c| c.contains(&json!({"path": "$.customer.phone", "value": "+255"})))
    );
    assert_eq!(s["guesses"]["sender"], "$.customer.phone");
    assert_eq!(s["extracted"]["sender"]["value"], "+255");
    assert!(s["extracted"]["source"]["error"].is_string());
    // A form body pasted as text is read as a form.
    let form = gw
        .admin_call(
            Method::POST,
            "/v1/paths/suggest",
            Some(json!({"sample": "a=1&b=2"})),
        )
        .await
        .json();
    assert_eq!(form["candidates"][0], json!({"path": "$.a", "value": "1"}));
    // Bad input: a clear 400, and nothing was created.
    let bad = gw
        .admin_call(
            Method::POST,
            "/v1/paths/suggest",
            Some(json!({"sample": "{\"a\":1,\"a\":2}"})),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["code"], "bad_sample");
    let none = gw
        .admin_call(Method::POST, "/v1/paths/suggest", Some(json!({})))
        .await;
    assert_eq!(none.status, 400);
    let refused = gw
        .call_as(
            AUDITOR_TOKEN,
            Method::POST,
            "/v1/paths/suggest",
            Some(json!({"sample": {}})),
        )
        .await;
    assert_eq!(refused.status, 403);
    gw.stop().await;
}

#[tokio::test]
async fn counts_and_activity_follow_what_arrived_and_try_out_signs_as_the_provider() {
    let gw = spawn_gateway().await;
    gw.create_account(
        json!({"name": "shop", "provider": "github", "secret": "s3cret",
                             "paths": {"event_id": "$.id"}}),
    )
    .await;
    gw.create_account(json!({"name": "quiet", "allow_unverified": true}))
        .await;
    for (i, secret) in ["s3cret", "s3cret", "wrong"].iter().enumerate() {
        let body = format!(r#"{{"id":"ev_{i}"}}"#);
        let sig = format!(
            "sha256={}",
            hmac_sha256_hex(secret.as_bytes(), body.as_bytes())
        );
        gw.post_hook(
            "shop",
            &[
                ("content-type", "application/json"),
                ("x-hub-signature-256", &sig),
            ],
            body,
        )
        .await;
    }
    let body = r#"{"id":"ev_0"}"#;
    let sig = format!("sha256={}", hmac_sha256_hex(b"s3cret", body.as_bytes()));
    let dup = gw
        .post_hook(
            "shop",
            &[
                ("content-type", "application/json"),
                ("x-hub-signature-256", &sig),
            ],
            body,
        )
        .await;
    assert_eq!(dup.json()["status"], "duplicate");

    let counts = gw
        .admin_call(Method::GET, "/v1/stats/accounts", None)
        .await
        .json();
    assert_eq!(counts["accounts"]["shop"]["accepted"], 2);
    assert_eq!(counts["accounts"]["shop"]["rejected"], 1);
    assert_eq!(counts["accounts"]["shop"]["duplicate"], 1);
    assert!(counts["accounts"]["shop"]["last_event_at"].is_string());
    assert_eq!(counts["accounts"]["quiet"]["accepted"], 0);
    assert!(counts["accounts"]["quiet"]["last_event_at"].is_null());
    let bad = gw
        .admin_call(Method::GET, "/v1/stats/accounts?hours=0", None)
        .await;
    assert_eq!(bad.status, 400);

    let act = gw
        .call_as(
            AUDITOR_TOKEN,
            Method::GET,
            "/v1/stats/activity?minutes=60",
            None,
        )
        .await;
    assert_eq!(act.status, 200);
    let act = act.json();
    let minutes = act["minutes"].as_array().expect("minutes");
    assert_eq!(minutes.len(), 60);
    let sum = |k: &str| {
        minutes
            .iter()
            .map(|m| m[k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!(
        (sum("accepted"), sum("duplicate"), sum("rejected")),
        (2, 1, 1)
    );
    assert_eq!(
        act["rejections"],
        json!([{"reason": "bad_signature", "count": 1}])
    );
    assert_eq!(act["ready"], true);
    assert_eq!(act["writer"]["healthy"], true);
    assert!(
        act["outbox_oldest_due"].is_null(),
        "nothing waits in the outbox"
    );

    // Try Out: signed with the account's own secret, accepted, with its audit row.
    let tried = gw
        .admin_call(
            Method::POST,
            "/v1/accounts/shop/try",
            Some(json!({"body": {"id": "try_1"}})),
        )
        .await;
    assert_eq!(tried.status, 200, "{:?}", tried.json());
    let tried = tried.json();
    assert_eq!(tried["status"], 200);
    assert_eq!(tried["answer"]["status"], "accepted");
    let row = gw.event(tried["id"].as_str().expect("id")).await;
    assert_eq!(row["event_id"], "try_1");
    assert!(
        !tried.to_string().contains("s3cret"),
        "no secret in the answer"
    );
    // A public-key account cannot be signed for: a clear 422, nothing sent.
    gw.create_account(json!({"name": "bot", "provider": "discord",
        "secret": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"}))
        .await;
    let before = gw.audit_rows();
    let pk = gw
        .admin_call(Method::POST, "/v1/accounts/bot/try", Some(json!({})))
        .await;
    assert_eq!(pk.status, 422);
    assert_eq!(pk.json()["code"], "cannot_try");
    assert_eq!(gw.audit_rows(), before);
    let none = gw
        .admin_call(Method::POST, "/v1/accounts/nope/try", Some(json!({})))
        .await;
    assert_eq!(none.status, 404);
    let auditor = gw
        .call_as(
            AUDITOR_TOKEN,
            Method::POST,
            "/v1/accounts/shop/try",
            Some(json!({})),
        )
        .await;
    assert_eq!(auditor.status, 403);
    // The CLI twin.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["accounts", "try", "shop", "--body", r#"{"id":"from_cli"}"#])
        .env("HOOKGATE_URL", &gw.admin)
        .env("HOOKGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .await
        .expect("run");
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(printed["answer"]["status"], "accepted", "{printed}");
    let row = gw.event(printed["id"].as_str().expect("id")).await;
    assert_eq!(row["event_id"], "from_cli");
    gw.stop().await;
}

#[tokio::test]
async fn a_template_preview_renders_as_a_listener_would_and_refuses_a_broken_one() {
    let gw = spawn_gateway().await;
    let event = json!({"account": "pay", "sender": "+255", "params": {"amount": 25000}});
    let ok = gw
        .admin_call(
            Method::POST,
            "/v1/templates/preview",
            Some(json!({"template": "{{sender}}: {{params.amount}} {{params.currency}} ({{account}})", "event": event})),
        )
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.json()["text"],
        "+255: 25000 [missing params.currency] (pay)"
    );
    let broken = gw
        .admin_call(
            Method::POST,
            "/v1/templates/preview",
            Some(json!({"template": "{{sender", "event": event})),
        )
        .await;
    assert_eq!(broken.status, 422);
    assert_eq!(broken.json()["field"], "forward.template");
    let auditor = gw
        .call_as(
            AUDITOR_TOKEN,
            Method::POST,
            "/v1/templates/preview",
            Some(json!({"template": "x"})),
        )
        .await;
    assert_eq!(auditor.status, 403);
    gw.stop().await;
}

#[tokio::test]
async fn the_windows_count_only_what_arrived_within_them() {
    let start = now_secs() * 1_000_000;
    let clock = Clock::fixed(start - 2 * 3_600_000_000);
    let gw = spawn_with_clock(clock.clone()).await;
    gw.create_account(json!({"name": "open", "allow_unverified": true,
                             "paths": {"event_id": "$.id"}}))
        .await;
    let send = |id: &'static str| {
        gw.post_hook(
            "open",
            &[("content-type", "application/json")],
            format!(r#"{{"id":"{id}"}}"#),
        )
    };
    assert_eq!(send("early").await.json()["status"], "accepted");
    clock.set(start);
    assert_eq!(send("now").await.json()["status"], "accepted");
    assert_eq!(gw.post_hook("nobody", &[], "{}").await.status, 404);

    let day = gw
        .admin_call(Method::GET, "/v1/stats/accounts", None)
        .await
        .json();
    assert_eq!(day["accounts"]["open"]["accepted"], 2);
    let hour = gw
        .admin_call(Method::GET, "/v1/stats/accounts?hours=1", None)
        .await
        .json();
    assert_eq!(hour["accounts"]["open"]["accepted"], 1);
    assert!(
        hour["accounts"].get("nobody").is_none(),
        "only accounts are listed"
    );
    let act = gw
        .admin_call(Method::GET, "/v1/stats/activity?minutes=60", None)
        .await
        .json();
    let minutes = act["minutes"].as_array().expect("minutes");
    let accepted: Vec<u64> = minutes
        .iter()
        .map(|m| m["accepted"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(
        accepted.iter().sum::<u64>(),
        1,
        "the early one is outside the hour"
    );
    assert_eq!(
        accepted.last(),
        Some(&1),
        "the newest minute is the current one"
    );
    assert_eq!(
        act["rejections"],
        json!([{"reason": "unknown_account", "count": 1}])
    );
    let bad = gw
        .admin_call(Method::GET, "/v1/stats/activity?minutes=abc", None)
        .await;
    assert_eq!(bad.status, 400);

    // Try Out claims the gateway's time, so a timestamped scheme verifies whatever the
    // clock says.
    gw.create_account(json!({"name": "st", "provider": "stripe", "secret": "whsec_test123"}))
        .await;
    clock.set(start - 24 * 3_600_000_000);
    let tried = gw
        .admin_call(Method::POST, "/v1/accounts/st/try", Some(json!({})))
        .await
        .json();
    assert_eq!(tried["answer"]["status"], "accepted", "{tried}");
    gw.stop().await;
}

#[tokio::test]
async fn the_dashboard_shows_when_a_waiting_delivery_is_due() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port");
    let gw = spawn_with(move |c| {
        c.chat.url = Some(format!("http://{closed}/messages"));
        c.chat.max_attempts = 5;
        c.chat.retry_base_ms = 600_000;
        c.chat.retry_max_ms = 600_000;
    })
    .await;
    gw.create_account(json!({"name": "pay", "allow_unverified": true,
        "paths": {"sender": "$.to", "event_id": "$.id"},
        "forward": {"send_to_user": true, "template": "Paid"}}))
        .await;
    gw.admin_call(
        Method::POST,
        "/v1/accounts/pay/listening",
        Some(json!({"listening": true})),
    )
    .await;
    let idle = gw
        .admin_call(Method::GET, "/v1/stats/activity", None)
        .await
        .json();
    assert!(idle["outbox_oldest_due"].is_null());
    let a = gw
        .post_hook(
            "pay",
            &[("content-type", "application/json")],
            r#"{"id":"p1","to":"+255"}"#,
        )
        .await;
    let id = a.json()["id"].as_str().expect("id").to_owned();
    // The first attempt fails (nobody listens) and the next is minutes away.
    let start = std::time::Instant::now();
    while gw.event(&id).await["forward_status"] != "retrying" {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "never retried"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let act = gw
        .admin_call(Method::GET, "/v1/stats/activity", None)
        .await
        .json();
    let due = act["outbox_oldest_due"]
        .as_str()
        .expect("a waiting delivery");
    let due = hookgate::clock::parse_time(due).expect("a time");
    assert!(due > now_secs() * 1_000_000, "due later, after its backoff");
    gw.stop().await;
}

#[tokio::test]
async fn counts_are_exact_past_a_thousand_events() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "busy", "allow_unverified": true,
                             "paths": {"event_id": "$.id"}}))
        .await;
    const SENT: usize = 1_100;
    for chunk in (0..SENT).collect::<Vec<_>>().chunks(50) {
        let answers = futures_util::future::join_all(chunk.iter().map(|i| {
            gw.post_hook(
                "busy",
                &[("content-type", "application/json")],
                format!(r#"{{"id":"ev_{i}"}}"#),
            )
        }))
        .await;
        assert!(answers.iter().all(|a| a.status == 200));
    }
    let counts = gw
        .admin_call(Method::GET, "/v1/stats/accounts", None)
        .await
        .json();
    assert_eq!(counts["accounts"]["busy"]["accepted"], SENT);
    let act = gw
        .admin_call(Method::GET, "/v1/stats/activity?minutes=60", None)
        .await
        .json();
    let accepted: u64 = act["minutes"]
        .as_array()
        .expect("minutes")
        .iter()
        .map(|m| m["accepted"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(accepted, SENT as u64);
    gw.stop().await;
}
