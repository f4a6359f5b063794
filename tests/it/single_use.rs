//! A single-use dedupe key (`dedupe_single_use`: Mailgun's signed token) over real HTTP:
//! the same token with the same body is the provider's retry (`duplicate`); the same token
//! with another body is event data forged under a captured signature block, refused
//! `replayed_token` with its audit row and delivered nowhere. Storage-neutral: `tests/pg`
//! runs it on PostgreSQL too, where the decision is made inside the locked chain head.

use hookgate::clock::Clock;
use hyper::Method;
use serde_json::{Value, json};

use crate::destinations::Endpoint;
use crate::fixtures::Fixture;
use crate::support::*;

fn pairs(f: &Fixture) -> Vec<(&str, &str)> {
    f.headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// A gateway on a fixed clock that may deliver to loopback, with a Mailgun account `mg`
/// made from the published vector's fixture.
async fn mailgun_gateway() -> (TestGateway, Fixture) {
    let genuine = Fixture::load("mailgun", "published_vector");
    let clock = Clock::fixed(genuine.now * 1_000_000);
    let gw = spawn_with_clock_and(clock, |c| {
        c.egress.allow = vec!["127.0.0.0/8".into()];
        c.delivery.retry_base_ms = 20;
        c.delivery.retry_max_ms = 200;
    })
    .await;
    gw.create_account(genuine.spec("mailgun", "mg")).await;
    (gw, genuine)
}

#[tokio::test]
async fn an_honest_mailgun_retry_is_a_duplicate_of_its_first_delivery() {
    let (gw, genuine) = mailgun_gateway().await;
    let first = gw
        .post_hook("mg", &pairs(&genuine), genuine.body.clone())
        .await;
    assert_eq!(first.status, 200, "{:?}", first.json());
    assert_eq!(first.json()["status"], "accepted");
    let retry = gw
        .post_hook("mg", &pairs(&genuine), genuine.body.clone())
        .await;
    assert_eq!(retry.status, 200, "{:?}", retry.json());
    assert_eq!(retry.json()["status"], "duplicate");
    assert_eq!(retry.json()["original_id"], first.json()["id"]);
    assert_eq!(gw.events("account=mg&status=accepted").await.len(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_reused_mailgun_token_with_other_event_data_is_refused_recorded_and_not_delivered() {
    let (gw, genuine) = mailgun_gateway().await;
    let mut endpoint = Endpoint::start().await;
    let made = gw
        .admin_call(
            Method::POST,
            "/v1/accounts/mg/destinations",
            Some(json!({"name": "backend", "url": endpoint.url})),
        )
        .await;
    assert_eq!(made.status, 201, "{:?}", made.json());
    let first = gw
        .post_hook("mg", &pairs(&genuine), genuine.body.clone())
        .await;
    assert_eq!(first.json()["status"], "accepted", "{:?}", first.json());
    let delivered = endpoint.next().await;
    assert!(
        !delivered.header("webhook-id").is_empty(),
        "the genuine event went onward"
    );
    // The same signature block around other event data (one character of the recipient
    // changed; the subaccount form with a parent-signature): each verifies, since Mailgun
    // signs only timestamp and token, and each is refused.
    for case in ["unsigned_event_data_changed", "parent_signature"] {
        let forged = Fixture::load("mailgun", case);
        assert_ne!(forged.body, genuine.body);
        let before = gw.audit_rows();
        let answer = gw
            .post_hook("mg", &pairs(&forged), forged.body.clone())
            .await;
        assert_eq!(answer.status, 401, "{case}: {:?}", answer.json());
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        assert!(
            !text.contains("replayed") && !text.contains(&first.json()["id"].to_string()),
            "{case}: the reason is the audit row's, not the sender's: {text}"
        );
        assert_eq!(gw.audit_rows(), before + 1, "{case}: one audit row");
        let id = answer.json()["id"]
            .as_str()
            .expect("the row's id")
            .to_owned();
        let row = gw.event(&id).await;
        assert_eq!(row["status"], "rejected", "{case}: {row}");
        assert_eq!(row["reason"], "replayed_token", "{case}: {row}");
        assert_eq!(
            row["event_id"],
            json!("5egbgr1vjgqxtrnp65xfznchgdccwh5d6i09vijqi3whgowmn6"),
            "{case}: the row names the token"
        );
        assert!(
            row["deliveries"].as_array().is_none_or(Vec::is_empty),
            "{case}: nothing goes onward: {row}"
        );
        // The refused row keeps the forged body for the auditor.
        assert_eq!(
            row["body"].as_str().map(str::len),
            Some(forged.body.len()),
            "{case}: {row}"
        );
    }
    // The genuine retry is still a duplicate after the refusals: the key is unchanged.
    let retry = gw
        .post_hook("mg", &pairs(&genuine), genuine.body.clone())
        .await;
    assert_eq!(retry.json()["status"], "duplicate", "{:?}", retry.json());
    let accepted = gw.events("account=mg&status=accepted").await;
    assert_eq!(accepted.len(), 1, "only the genuine request is an event");
    let refused = gw.events("account=mg&reason=replayed_token").await;
    assert_eq!(refused.len(), 2, "{refused:?}");
    endpoint
        .nothing_within(std::time::Duration::from_millis(300))
        .await;
    gw.stop().await;
}

#[tokio::test]
async fn the_legacy_form_webhook_refuses_a_reused_token_too() {
    let genuine = Fixture::load("mailgun_legacy", "published_vector_urlencoded");
    let clock = Clock::fixed(genuine.now * 1_000_000);
    let gw = spawn_with_clock(clock).await;
    gw.create_account(genuine.spec("mailgun_legacy", "mgl"))
        .await;
    let first = gw
        .post_hook("mgl", &pairs(&genuine), genuine.body.clone())
        .await;
    assert_eq!(first.json()["status"], "accepted", "{:?}", first.json());
    let retry = gw
        .post_hook("mgl", &pairs(&genuine), genuine.body.clone())
        .await;
    assert_eq!(retry.json()["status"], "duplicate", "{:?}", retry.json());
    let forged = format!("{}&recipient=mallory%40example.com", genuine.body);
    let answer = gw.post_hook("mgl", &pairs(&genuine), forged).await;
    assert_eq!(answer.status, 401, "{:?}", answer.json());
    let row = gw.event(answer.json()["id"].as_str().expect("id")).await;
    assert_eq!(row["reason"], "replayed_token", "{row}");
    gw.stop().await;
}

#[tokio::test]
async fn a_genuine_and_a_forged_request_racing_with_one_token_make_one_event() {
    let (gw, genuine) = mailgun_gateway().await;
    let forged = Fixture::load("mailgun", "unsigned_event_data_changed");
    // Sent at once, many times over, so copies share the writer's groups: whichever
    // committed first is the event, every other body with the token is refused, and a
    // copy of the first body is a duplicate.
    let sends = (0..8).map(|i| {
        let (f, gw) = (if i % 2 == 0 { &genuine } else { &forged }, &gw);
        async move {
            let a = gw.post_hook("mg", &pairs(f), f.body.clone()).await;
            (i % 2, a.status.as_u16(), a.json())
        }
    });
    let answers = futures_util::future::join_all(sends).await;
    let accepted: Vec<&(usize, u16, Value)> = answers
        .iter()
        .filter(|(_, s, a)| *s == 200 && a["status"] == "accepted")
        .collect();
    assert_eq!(accepted.len(), 1, "{answers:?}");
    let winner = accepted[0].0;
    for (body, status, answer) in &answers {
        match (*body == winner, *status) {
            (true, 200) => assert!(
                answer["status"] == "accepted" || answer["status"] == "duplicate",
                "{answer}"
            ),
            (false, 401) => {}
            other => panic!("unexpected {other:?}: {answer}"),
        }
    }
    assert_eq!(
        gw.events("account=mg&reason=replayed_token").await.len(),
        4,
        "every copy of the other body refused"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_single_use_key_needs_a_key() {
    let gw = spawn_gateway().await;
    let a = gw
        .admin_call(
            Method::POST,
            "/v1/accounts",
            Some(json!({"name": "bare", "dedupe_single_use": true,
                "signature": {"header": "X-Sig", "secrets": ["s3cret-s3cret"]}})),
        )
        .await;
    assert_eq!(a.status, 422, "{:?}", a.json());
    assert!(
        a.json().to_string().contains("dedupe_single_use"),
        "{:?}",
        a.json()
    );
    gw.stop().await;
}
