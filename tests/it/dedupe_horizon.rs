//! Dedupe outlives retention: an accepted event id stays a duplicate after its event row is
//! pruned, until the replay horizon (`retention.dedupe_days`, counted from the event's
//! arrival) has passed, so a captured webhook cannot be replayed once its row is gone.
//! Time is the gateway's clock, fixed and moved by the test; prunes go through the admin
//! API and are awaited by their answer.

use hookgate::clock::{Clock, format_micros, now_micros};
use hyper::Method;
use serde_json::json;

use crate::support::*;

const DAY: i64 = 86_400_000_000;

async fn post(gw: &TestGateway, id: &str) -> serde_json::Value {
    let a = gw
        .post_hook(
            "hz",
            &[("authorization", "Bearer hz-token-1")],
            format!("{{\"id\":\"{id}\"}}"),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    a.json()
}

async fn prune_before(gw: &TestGateway, before: i64) -> u64 {
    let a = gw
        .admin_call(
            Method::POST,
            "/v1/audit/prune",
            Some(json!({"before": format_micros(before)})),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    a.json()["pruned"].as_u64().unwrap_or(u64::MAX)
}

#[tokio::test]
async fn a_pruned_events_id_stays_a_duplicate_until_the_replay_horizon_has_passed() {
    let t0 = now_micros();
    let clock = Clock::fixed(t0);
    let gw = spawn_with_clock_and(clock.clone(), |c| c.retention.dedupe_days = 2).await;
    gw.create_account(
        json!({"name": "hz", "auth": {"type": "bearer", "token": "hz-token-1"},
        "paths": {"event_id": "$.id"}}),
    )
    .await;
    assert_eq!(post(&gw, "captured").await["status"], "accepted");
    assert_eq!(prune_before(&gw, t0 + 1).await, 1);
    assert!(
        gw.events("limit=10").await.is_empty(),
        "the event row is gone"
    );

    // Replayed after its row was pruned: still a duplicate.
    assert_eq!(post(&gw, "captured").await["status"], "duplicate");
    // A day later, inside the two-day horizon, a prune forgets nothing.
    clock.set(t0 + DAY);
    prune_before(&gw, t0 + 1).await;
    assert_eq!(post(&gw, "captured").await["status"], "duplicate");

    // Past the horizon the id is forgotten by the next prune, which records it.
    clock.set(t0 + 3 * DAY);
    prune_before(&gw, t0 + 1).await;
    let changes = gw
        .admin_call(Method::GET, "/v1/changes?action=audit.pruned", None)
        .await
        .json();
    assert_eq!(
        changes["changes"][0]["detail"]["dedupe_expired"], 1,
        "{changes}"
    );
    assert_eq!(post(&gw, "captured").await["status"], "accepted");
    let report = gw
        .admin_call(Method::GET, "/v1/audit/verify", None)
        .await
        .json();
    assert_eq!(report["ok"], true, "{report}");
    gw.stop().await;
}

#[tokio::test]
async fn by_default_a_pruned_events_id_is_a_duplicate_for_ever() {
    let t0 = now_micros();
    let clock = Clock::fixed(t0);
    let gw = spawn_with_clock(clock.clone()).await;
    gw.create_account(
        json!({"name": "hz", "auth": {"type": "bearer", "token": "hz-token-1"},
        "paths": {"event_id": "$.id"}}),
    )
    .await;
    assert_eq!(post(&gw, "kept").await["status"], "accepted");
    assert_eq!(prune_before(&gw, t0 + 1).await, 1);
    clock.set(t0 + 3650 * DAY);
    prune_before(&gw, t0 + 1).await;
    assert_eq!(post(&gw, "kept").await["status"], "duplicate");
    gw.stop().await;
}
