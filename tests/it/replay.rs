//! Replays and retries as real senders and attackers make them, over real HTTP: a captured
//! request sent again with a fresh unsigned id is a duplicate (a reused Mailgun token:
//! `single_use`), a lifecycle of events about one resource is all accepted, a batch
//! is deduplicated on every item, and Zoom and Calendly retries are duplicates.

use base64::Engine;
use hookgate::clock::Clock;
use serde_json::{Value, json};

use crate::fixtures::Fixture;
use crate::support::*;

/// Sends `body` with `headers` to account `name` and returns the audit row it made.
async fn send(gw: &TestGateway, target: &str, headers: &[(&str, &str)], body: &str) -> Value {
    let answer = gw.post_hook(target, headers, body.to_owned()).await;
    assert_eq!(
        answer.status,
        200,
        "{target}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    let name = target.split('?').next().unwrap_or(target);
    let rows = gw.events(&format!("account={name}&limit=1")).await;
    rows.first().cloned().unwrap_or(Value::Null)
}

fn pairs(f: &Fixture) -> Vec<(&str, &str)> {
    f.headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[tokio::test]
async fn a_captured_request_with_a_fresh_unsigned_id_is_a_duplicate() {
    let clock = Clock::fixed(0);
    let gw = spawn_with_clock(clock.clone()).await;
    for (i, (preset, case, id_header)) in [
        ("razorpay", "hmac_signed", "X-Razorpay-Event-Id"),
        ("woocommerce", "hmac_signed", "X-WC-Webhook-Delivery-ID"),
        ("shopify", "hmac_signed", "X-Shopify-Webhook-Id"),
        ("github", "hmac_signed", "X-GitHub-Delivery"),
        ("bitbucket", "hmac_signed", "X-Request-UUID"),
        ("twilio", "sdk_signed", "I-Twilio-Idempotency-Token"),
    ]
    .into_iter()
    .enumerate()
    {
        let f = Fixture::load(preset, case);
        let name = format!("rp{i}");
        gw.create_account(f.spec(preset, &name)).await;
        clock.set(f.now * 1_000_000);
        let target = f.target(&name);
        let first = send(&gw, &target, &pairs(&f), &f.body).await;
        assert_eq!(first["status"], "accepted", "{preset}: {first}");
        let mut replayed = pairs(&f);
        for (k, v) in &mut replayed {
            if k.eq_ignore_ascii_case(id_header) {
                *v = "a-fresh-id-chosen-by-an-attacker";
            }
        }
        assert_ne!(
            replayed,
            pairs(&f),
            "{preset}: the id header is in the fixture"
        );
        let again = send(&gw, &target, &replayed, &f.body).await;
        assert_eq!(again["status"], "duplicate", "{preset}: {again}");
        assert_eq!(again["event_id"], first["event_id"], "{preset}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_reordered_twilio_form_is_the_same_event_and_is_answered_with_twiml() {
    let clock = Clock::fixed(0);
    let gw = spawn_with_clock(clock.clone()).await;
    let f = Fixture::load("twilio", "sdk_signed");
    gw.create_account(f.spec("twilio", "tw")).await;
    clock.set(f.now * 1_000_000);
    let target = f.target("tw");
    let first = gw.post_hook(&target, &pairs(&f), f.body.clone()).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"text/xml"[..])
    );
    assert!(String::from_utf8_lossy(&first.body).contains("<Response></Response>"));
    // The signature covers the sorted parameters, so a reordered form still verifies; its
    // key is the signed content's hash, so it is the same event.
    let mut params: Vec<&str> = f.body.split('&').collect();
    params.reverse();
    let reordered = params.join("&");
    assert_ne!(reordered, f.body);
    let again = send(&gw, &target, &pairs(&f), &reordered).await;
    assert_eq!(again["status"], "duplicate", "{again}");
    gw.stop().await;
}

#[tokio::test]
async fn a_lifecycle_of_paystack_events_about_one_resource_is_all_accepted() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "ps", "provider": "paystack", "secret": "sk_test_abc"}))
        .await;
    let event = |kind: &str, id: u64, status: &str| {
        format!(r#"{{"event":"{kind}","data":{{"id":{id},"status":"{status}","amount":5000}}}}"#)
    };
    let lifecycle = [
        event(
            "charge.dispute.create",
            358950,
            "awaiting-merchant-feedback",
        ),
        event("charge.dispute.resolve", 358950, "resolved"),
        event("transfer.success", 77001, "success"),
        event("transfer.reversed", 77001, "reversed"),
    ];
    for body in &lifecycle {
        let sig = hex::encode(hmac_sha512(b"sk_test_abc", body.as_bytes()));
        let row = send(&gw, "ps", &[("x-paystack-signature", &sig)], body).await;
        assert_eq!(row["status"], "accepted", "{body}: {row}");
    }
    // Paystack's retry of the first event is a duplicate of it.
    let sig = hex::encode(hmac_sha512(b"sk_test_abc", lifecycle[0].as_bytes()));
    let retry = send(&gw, "ps", &[("x-paystack-signature", &sig)], &lifecycle[0]).await;
    assert_eq!(retry["status"], "duplicate", "{retry}");
    assert_eq!(retry["event_id"], r#"["charge.dispute.create","358950"]"#);
    gw.stop().await;
}

#[tokio::test]
async fn a_batch_is_deduplicated_on_every_item_not_its_first() {
    let clock = Clock::fixed(1_700_000_000 * 1_000_000);
    let gw = spawn_with_clock(clock.clone()).await;
    let url = "https://hooks.example.com/hooks/hs";
    gw.create_account(
        json!({"name": "hs", "provider": "hubspot", "secret": "client-secret",
                             "public_url": url}),
    )
    .await;
    let batch = |ids: &[u64]| {
        let items: Vec<Value> = ids
            .iter()
            .map(|id| json!({"eventId": id, "subscriptionType": "contact.creation", "objectId": 1}))
            .collect();
        Value::from(items).to_string()
    };
    let sign = |body: &str, ts: &str| {
        let content = format!("POST{url}{body}{ts}");
        base64::engine::general_purpose::STANDARD
            .encode(hmac_sha256(b"client-secret", content.as_bytes()))
    };
    let ts = "1700000000000";
    let mut rows = Vec::new();
    for ids in [&[1, 2][..], &[1, 3][..]] {
        let body = batch(ids);
        let sig = sign(&body, ts);
        let headers = [
            ("X-HubSpot-Signature-v3", sig.as_str()),
            ("X-HubSpot-Request-Timestamp", ts),
        ];
        rows.push(send(&gw, "hs", &headers, &body).await);
    }
    assert_eq!(rows[0]["status"], "accepted");
    assert_eq!(
        rows[1]["status"], "accepted",
        "same first item, another batch"
    );
    // HubSpot's retry of the first batch, signed anew a minute later, is a duplicate.
    clock.set(1_700_000_060 * 1_000_000);
    let (body, ts) = (batch(&[1, 2]), "1700000060000");
    let sig = sign(&body, ts);
    let headers = [
        ("X-HubSpot-Signature-v3", sig.as_str()),
        ("X-HubSpot-Request-Timestamp", ts),
    ];
    let retry = send(&gw, "hs", &headers, &body).await;
    assert_eq!(retry["status"], "duplicate", "{retry}");
    assert_eq!(retry["event_id"], "[1,2]");
    gw.stop().await;
}

#[tokio::test]
async fn zoom_and_calendly_retries_are_duplicates() {
    let clock = Clock::fixed(0);
    let gw = spawn_with_clock(clock.clone()).await;
    for preset in ["zoom", "calendly"] {
        let f = Fixture::load(preset, "hmac_signed");
        gw.create_account(f.spec(preset, preset)).await;
        clock.set(f.now * 1_000_000);
        let first = send(&gw, preset, &pairs(&f), &f.body).await;
        assert_eq!(first["status"], "accepted", "{preset}: {first}");
        // The retry comes two minutes later, signed again with its own timestamp.
        let later = f.now + 120;
        clock.set(later * 1_000_000);
        let ts = later.to_string();
        let (sig_header, sig) = match preset {
            "zoom" => {
                let content = format!("v0:{ts}:{}", f.body);
                let mac = hmac_sha256_hex(f.secret.as_bytes(), content.as_bytes());
                ("x-zm-signature", format!("v0={mac}"))
            }
            _ => {
                let content = format!("{ts}.{}", f.body);
                let mac = hmac_sha256_hex(f.secret.as_bytes(), content.as_bytes());
                ("Calendly-Webhook-Signature", format!("t={ts},v1={mac}"))
            }
        };
        let mut headers: Vec<(&str, &str)> = pairs(&f)
            .into_iter()
            .filter(|(k, _)| {
                !k.eq_ignore_ascii_case(sig_header)
                    && !k.eq_ignore_ascii_case("x-zm-request-timestamp")
            })
            .collect();
        headers.push((sig_header, &sig));
        if preset == "zoom" {
            headers.push(("x-zm-request-timestamp", &ts));
        }
        let retry = send(&gw, preset, &headers, &f.body).await;
        assert_eq!(retry["status"], "duplicate", "{preset}: {retry}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn an_adyen_batch_resent_is_a_duplicate_and_an_edited_unsigned_field_changes_nothing() {
    let clock = Clock::fixed(0);
    let gw = spawn_with_clock(clock.clone()).await;
    let genuine = Fixture::load("adyen", "published_vector");
    let edited = Fixture::load("adyen", "unsigned_field_changed");
    let batch = Fixture::load("adyen", "two_item_batch");
    gw.create_account(genuine.spec("adyen", "ad")).await;
    clock.set(genuine.now * 1_000_000);
    let first = send(&gw, "ad", &pairs(&genuine), &genuine.body).await;
    assert_eq!(first["status"], "accepted", "{first}");
    // Adyen's retry resends the same batch.
    let retry = send(&gw, "ad", &pairs(&genuine), &genuine.body).await;
    assert_eq!(retry["status"], "duplicate", "{retry}");
    // A copy with an unsigned field edited is not a new event.
    let copy = send(&gw, "ad", &pairs(&edited), &edited.body).await;
    assert_eq!(copy["status"], "duplicate", "{copy}");
    assert_eq!(copy["event_id"], first["event_id"]);
    // A batch that adds an event about the same payment (a CAPTURE) is new.
    let more = send(&gw, "ad", &pairs(&batch), &batch.body).await;
    assert_eq!(more["status"], "accepted", "{more}");
    assert_ne!(more["event_id"], first["event_id"]);
    gw.stop().await;
}

#[tokio::test]
async fn a_selcom_callback_resent_with_its_fields_reordered_or_an_unsigned_field_added_is_a_duplicate()
 {
    let clock = Clock::fixed(0);
    let gw = spawn_with_clock(clock.clone()).await;
    let genuine = Fixture::load("selcom", "callback");
    let reordered = Fixture::load("selcom", "callback_reordered_fields");
    gw.create_account(genuine.spec("selcom", "sc")).await;
    clock.set(genuine.now * 1_000_000);
    let first = send(&gw, "sc", &pairs(&genuine), &genuine.body).await;
    assert_eq!(first["status"], "accepted", "{first}");
    let again = send(&gw, "sc", &pairs(&reordered), &reordered.body).await;
    assert_eq!(again["status"], "duplicate", "{again}");
    // A field Signed-Fields does not list is not signed: adding one to a captured callback
    // still verifies, and is still the same event.
    let mut body: Value = serde_json::from_str(&genuine.body).unwrap_or_default();
    body["channel"] = json!("ATTACKER");
    let padded = send(&gw, "sc", &pairs(&genuine), &body.to_string()).await;
    assert_eq!(padded["status"], "duplicate", "{padded}");
    assert_eq!(padded["event_id"], first["event_id"]);
    gw.stop().await;
}

/// A Braintree form signed as Braintree signs it (the hex HMAC-SHA1 of bt_payload keyed
/// with the SHA-1 of the private key), around any payload.
fn braintree_form(public: &str, private: &str, xml: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    use sha1::Digest;
    let payload = base64::engine::general_purpose::STANDARD.encode(xml);
    let key = sha1::Sha1::digest(private.as_bytes());
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).unwrap_or_else(|e| panic!("{e}"));
    mac.update(payload.as_bytes());
    let sig = format!("{public}|{}", hex::encode(mac.finalize().into_bytes()));
    form_urlencoded::Serializer::new(String::new())
        .append_pair("bt_signature", &sig)
        .append_pair("bt_payload", &payload)
        .finish()
}

#[tokio::test]
async fn braintree_notifications_are_told_apart_by_kind_and_a_payload_that_is_not_xml_is_refused() {
    let gw = spawn_gateway().await;
    gw.create_account(
        json!({"name": "bt", "provider": "braintree", "secret": "bt-private",
                             "signature": {"prefix": "bt-public|"}}),
    )
    .await;
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let notification = |kind: &str| {
        format!(
            "<notification><timestamp type=\"datetime\">2026-01-02T03:04:05Z</timestamp>\
             <kind>{kind}</kind><subject><dispute><id>dp_77</id><status>open</status></dispute>\
             </subject></notification>"
        )
    };
    let opened = send(
        &gw,
        "bt",
        &form,
        &braintree_form("bt-public", "bt-private", &notification("dispute_opened")),
    )
    .await;
    assert_eq!(opened["status"], "accepted", "{opened}");
    assert_eq!(opened["event_type"], "dispute_opened");
    assert_eq!(opened["source"], "dp_77");
    let won = send(
        &gw,
        "bt",
        &form,
        &braintree_form("bt-public", "bt-private", &notification("dispute_won")),
    )
    .await;
    assert_eq!(
        won["status"], "accepted",
        "a lifecycle of one dispute: {won}"
    );
    let retry = send(
        &gw,
        "bt",
        &form,
        &braintree_form("bt-public", "bt-private", &notification("dispute_won")),
    )
    .await;
    assert_eq!(retry["status"], "duplicate", "{retry}");

    // Genuinely signed, but not XML hookgate reads (a DTD, an unclosed element): refused as
    // malformed, with the body kept in the row.
    for xml in [
        "<!DOCTYPE notification [<!ENTITY k \"check\">]><notification><kind>&k;</kind></notification>",
        "<notification><kind>check</kind>",
    ] {
        let body = braintree_form("bt-public", "bt-private", xml);
        let refused = gw.post_hook("bt", &form, body.clone()).await;
        assert_eq!(refused.status, 400, "{xml}");
        let rows = gw.events("account=bt&limit=1").await;
        let row = gw
            .event(rows.first().and_then(|r| r["id"].as_str()).unwrap_or(""))
            .await;
        assert_eq!(row["reason"], "malformed_payload", "{row}");
        assert_eq!(row["body"], body, "the refused body is kept");
    }
    gw.stop().await;
}
