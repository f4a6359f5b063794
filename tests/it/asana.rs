//! Asana's handshake over real HTTP: the first request carries `X-Hook-Secret` and is
//! answered with it echoed; the gateway stores it as the account's signing secret (sealed,
//! through the admin write path, never shown or recorded), verifies later events with it,
//! and refuses (and records) any later handshake, so an established secret is never
//! replaced. Storage-neutral: `tests/pg` runs it on PostgreSQL too.

use hyper::Method;
use serde_json::{Value, json};

use crate::support::*;

const SECRET: &str = "6f1c0d9e8b7a4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d";
const OTHER: &str = "attacker-chosen-secret-0123456789abcdef";

fn event() -> String {
    json!({"events": [{"user": {"gid": "1201"}, "action": "changed",
                       "resource": {"gid": "1209", "resource_type": "task"}}]})
    .to_string()
}

async fn signed(gw: &TestGateway, key: &str, body: &str) -> hookgate::cli::client::Answer {
    let sig = hmac_sha256_hex(key.as_bytes(), body.as_bytes());
    gw.post_hook(
        "asana",
        &[
            ("content-type", "application/json"),
            ("x-hook-signature", &sig),
        ],
        body.to_owned(),
    )
    .await
}

async fn handshake(gw: &TestGateway, secret: &str) -> hookgate::cli::client::Answer {
    gw.post_hook("asana", &[("x-hook-secret", secret)], String::new())
        .await
}

async fn last_row(gw: &TestGateway) -> Value {
    gw.events("account=asana&limit=1")
        .await
        .first()
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn the_handshake_sets_the_secret_once_and_signed_events_verify_with_it() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "asana", "provider": "asana"}))
        .await;
    // Before the handshake nothing verifies.
    let early = signed(&gw, SECRET, &event()).await;
    assert_eq!(early.status, 401, "{:?}", early.json());
    assert_eq!(last_row(&gw).await["reason"], "bad_signature");

    let answer = handshake(&gw, SECRET).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json());
    assert_eq!(
        answer.headers.get("x-hook-secret").map(|v| v.as_bytes()),
        Some(SECRET.as_bytes()),
        "the secret is echoed as Asana expects"
    );
    let row = last_row(&gw).await;
    assert_eq!(row["status"], "handshake", "{row}");
    let full = gw.event(row["id"].as_str().expect("id")).await;
    assert!(
        !full.to_string().contains(SECRET),
        "the row never holds the secret: {full}"
    );

    // The secret is write-only: not in the account, not in the change log.
    let account = gw.admin_call(Method::GET, "/v1/accounts/asana", None).await;
    assert_eq!(account.status, 200);
    assert!(!String::from_utf8_lossy(&account.body).contains(SECRET));
    let changes = gw
        .admin_call(Method::GET, "/v1/changes?account=asana", None)
        .await;
    let text = String::from_utf8_lossy(&changes.body).into_owned();
    assert!(text.contains("secret.handshake"), "{text}");
    assert!(!text.contains(SECRET), "{text}");

    // Events signed with it are accepted; others are refused.
    let ok = signed(&gw, SECRET, &event()).await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());
    assert_eq!(ok.json()["status"], "accepted");
    let row = last_row(&gw).await;
    assert_eq!(row["event_type"], "changed");
    let forged = signed(&gw, OTHER, &event().replace("1209", "1208")).await;
    assert_eq!(forged.status, 401);
    assert_eq!(last_row(&gw).await["reason"], "bad_signature");

    // A second handshake cannot replace the established secret; it is recorded.
    let again = handshake(&gw, OTHER).await;
    assert_eq!(again.status, 403, "{:?}", again.json());
    assert!(again.headers.get("x-hook-secret").is_none());
    let row = last_row(&gw).await;
    assert_eq!(row["status"], "rejected", "{row}");
    assert_eq!(row["reason"], "bad_auth", "{row}");
    let full = gw.event(row["id"].as_str().expect("id")).await;
    assert!(
        full["detail"]
            .as_str()
            .is_some_and(|d| d.contains("established")),
        "{full}"
    );
    assert!(!full.to_string().contains(OTHER), "{full}");
    let still = signed(&gw, SECRET, &event().replace("1209", "1207")).await;
    assert_eq!(still.json()["status"], "accepted", "{:?}", still.json());
    let not_theirs = signed(&gw, OTHER, &event().replace("1209", "1206")).await;
    assert_eq!(not_theirs.status, 401);
    // A signed request that also carries X-Hook-Secret is an event, verified as usual.
    let body = event().replace("1209", "1205");
    let sig = hmac_sha256_hex(SECRET.as_bytes(), body.as_bytes());
    let both = gw
        .post_hook(
            "asana",
            &[
                ("content-type", "application/json"),
                ("x-hook-signature", &sig),
                ("x-hook-secret", OTHER),
            ],
            body,
        )
        .await;
    assert_eq!(both.json()["status"], "accepted", "{:?}", both.json());
    assert!(both.headers.get("x-hook-secret").is_none());
    gw.stop().await;
}

#[tokio::test]
async fn an_operator_who_clears_the_secret_opens_the_account_to_a_new_handshake() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "asana", "provider": "asana", "secret": SECRET}))
        .await;
    // Created with a secret: no handshake may set one.
    assert_eq!(handshake(&gw, OTHER).await.status, 403);
    let cleared = gw
        .admin_call(
            Method::PATCH,
            "/v1/accounts/asana",
            Some(json!({"signature": {"secrets": []}})),
        )
        .await;
    assert_eq!(cleared.status, 200, "{:?}", cleared.json());
    assert_eq!(signed(&gw, SECRET, &event()).await.status, 401);
    let answer = handshake(&gw, OTHER).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json());
    let ok = signed(&gw, OTHER, &event()).await;
    assert_eq!(ok.json()["status"], "accepted", "{:?}", ok.json());
    gw.stop().await;
}

#[tokio::test]
async fn a_handshake_secret_that_is_not_usable_text_is_refused_and_nothing_is_stored() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "asana", "provider": "asana"}))
        .await;
    let short = handshake(&gw, "short").await;
    assert_eq!(short.status, 403, "{:?}", short.json());
    assert_eq!(last_row(&gw).await["reason"], "bad_auth");
    // Still awaiting: the genuine handshake that follows is taken.
    assert_eq!(handshake(&gw, SECRET).await.status, 200);
    assert_eq!(
        signed(&gw, SECRET, &event()).await.json()["status"],
        "accepted"
    );
    gw.stop().await;
}
