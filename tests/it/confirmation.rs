//! Providers that sign nothing, over real HTTP: callbacks confirmed with a local server on
//! port 0 that behaves like the providers' status APIs (MTN MoMo's requesttopay with an
//! OAuth token and a subscription key; Pesapal's GetTransactionStatus with a bearer token
//! from RequestToken), the path token kept out of the audit row, and the IP allowlist.

use serde_json::{Value, json};

use crate::status_api::{SUBSCRIPTION_KEY, StatusApi};
use crate::support::*;

const TOKEN: &str = "momo-path-token-0123456789";

fn momo_account(api: &StatusApi) -> Value {
    json!({
        "name": "momo", "provider": "mtn_momo", "secret": TOKEN,
        "confirm": {
            "url": format!("{}/collection/v1_0/requesttopay/{{{{params.reference}}}}", api.base),
            "secret_headers": {"Ocp-Apim-Subscription-Key": SUBSCRIPTION_KEY},
            "oauth": {"token_url": format!("{}/collection/token/", api.base),
                      "client_id": "api-user", "client_secret": "api-key",
                      "secret_headers": {"Ocp-Apim-Subscription-Key": SUBSCRIPTION_KEY}}
        }
    })
}

fn momo_callback(status: &str, amount: &str) -> String {
    json!({"financialTransactionId": "1234567", "externalId": "order-77", "amount": amount,
           "currency": "EUR", "payer": {"partyIdType": "MSISDN", "partyId": "46733123453"},
           "payerMessage": "Thanks", "payeeNote": "Order 77", "status": status})
    .to_string()
}

fn momo_transaction() -> Value {
    json!({"financialTransactionId": "1234567", "externalId": "order-77", "amount": "100",
           "currency": "EUR", "payer": {"partyIdType": "MSISDN", "partyId": "46733123453"},
           "status": "SUCCESSFUL"})
}

/// The newest audit row of `account`, whole (with its detail and path).
async fn last_row(gw: &TestGateway, account: &str) -> Value {
    let rows = gw.events(&format!("account={account}&limit=1")).await;
    let id = rows.first().and_then(|r| r["id"].as_str()).unwrap_or("");
    gw.event(id).await
}

#[tokio::test]
async fn a_momo_callback_is_accepted_only_as_momo_confirms_it() {
    let api = StatusApi::start().await;
    api.with(|p| {
        p.transactions.insert("ref-1".into(), momo_transaction());
    });
    let gw = spawn_gateway().await;
    gw.create_account(momo_account(&api)).await;
    let target = format!("momo/{TOKEN}?reference=ref-1");

    // Genuine: the status API confirms status, amount and externalId; its answer is kept.
    let ok = gw
        .send_hook(
            hyper::Method::PUT,
            &target,
            &[("content-type", "application/json")],
            momo_callback("SUCCESSFUL", "100"),
        )
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());
    let row = last_row(&gw, "momo").await;
    assert_eq!(row["status"], "accepted");
    assert!(
        row["detail"]
            .as_str()
            .unwrap_or("")
            .contains("\"status\":\"SUCCESSFUL\""),
        "{row}"
    );
    assert_eq!(row["event_id"], r#"["ref-1","SUCCESSFUL"]"#);
    assert_eq!(
        row["path"], "/hooks/momo/[redacted]",
        "the token never reaches the row"
    );
    assert!(!row.to_string().contains(TOKEN));

    // Forged: a reference MoMo does not know, and a known one with another amount.
    let unknown = gw
        .post_hook(
            &format!("momo/{TOKEN}?reference=ref-404"),
            &[],
            momo_callback("SUCCESSFUL", "100"),
        )
        .await;
    assert_eq!(unknown.status, 401, "{:?}", unknown.json());
    assert_eq!(last_row(&gw, "momo").await["reason"], "unconfirmed");
    let more = gw
        .post_hook(&target, &[], momo_callback("SUCCESSFUL", "9000"))
        .await;
    assert_eq!(more.status, 401);
    let row = last_row(&gw, "momo").await;
    assert_eq!(row["reason"], "unconfirmed");
    assert!(
        row["detail"].as_str().unwrap_or("").contains("$.amount"),
        "{row}"
    );

    // Without the path token nothing is asked.
    let asked = api.read(|p| p.asked);
    let no_token = gw
        .post_hook(
            "momo?reference=ref-1",
            &[],
            momo_callback("SUCCESSFUL", "100"),
        )
        .await;
    assert_eq!(no_token.status, 401);
    assert_eq!(last_row(&gw, "momo").await["reason"], "bad_auth");
    let wrong = gw
        .post_hook(
            "momo/another-token-0123456789?reference=ref-1",
            &[],
            momo_callback("SUCCESSFUL", "100"),
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(
        last_row(&gw, "momo").await["path"],
        "/hooks/momo/[redacted]"
    );
    assert_eq!(
        api.read(|p| p.asked),
        asked,
        "an unauthenticated callback costs no status request"
    );

    // MoMo's retry of the confirmed callback is a duplicate.
    let retry = gw
        .send_hook(
            hyper::Method::PUT,
            &target,
            &[],
            momo_callback("SUCCESSFUL", "100"),
        )
        .await;
    assert_eq!(retry.json()["status"], "duplicate");
    gw.stop().await;
}

#[tokio::test]
async fn a_provider_that_is_down_gets_503_and_the_retry_is_confirmed_later() {
    let api = StatusApi::start().await;
    api.with(|p| {
        p.transactions.insert("ref-1".into(), momo_transaction());
        p.down = true;
    });
    let gw = spawn_gateway().await;
    gw.create_account(momo_account(&api)).await;
    let target = format!("momo/{TOKEN}?reference=ref-1");
    let down = gw
        .post_hook(&target, &[], momo_callback("SUCCESSFUL", "100"))
        .await;
    assert_eq!(down.status, 503, "{:?}", down.json());
    assert!(down.headers.contains_key("retry-after"));
    let row = last_row(&gw, "momo").await;
    assert_eq!(
        (row["status"].as_str(), row["reason"].as_str()),
        (Some("rejected"), Some("confirmation_unavailable"))
    );
    api.with(|p| p.down = false);
    let later = gw
        .post_hook(&target, &[], momo_callback("SUCCESSFUL", "100"))
        .await;
    assert_eq!(later.status, 200, "{:?}", later.json());
    assert_eq!(later.json()["status"], "accepted");

    // A status API that cannot be reached at all is "down", not "forged".
    let mut gone = momo_account(&api);
    gone["name"] = json!("gone");
    gone["confirm"]["url"] =
        json!("http://127.0.0.1:9/collection/v1_0/requesttopay/{{params.reference}}");
    gone["confirm"]["oauth"]["token_url"] = json!("http://127.0.0.1:9/collection/token/");
    gw.create_account(gone).await;
    let unreachable = gw
        .post_hook(
            &format!("gone/{TOKEN}?reference=ref-1"),
            &[],
            momo_callback("SUCCESSFUL", "100"),
        )
        .await;
    assert_eq!(unreachable.status, 503);
    assert_eq!(
        last_row(&gw, "gone").await["reason"],
        "confirmation_unavailable"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_expired_token_is_fetched_again_once_and_cached_otherwise() {
    let api = StatusApi::start().await;
    api.with(|p| {
        for r in ["ref-1", "ref-2", "ref-3"] {
            p.transactions.insert(r.into(), momo_transaction());
        }
    });
    let gw = spawn_gateway().await;
    gw.create_account(momo_account(&api)).await;
    for r in ["ref-1", "ref-2"] {
        let ok = gw
            .post_hook(
                &format!("momo/{TOKEN}?reference={r}"),
                &[],
                momo_callback("SUCCESSFUL", "100"),
            )
            .await;
        assert_eq!(ok.status, 200, "{:?}", ok.json());
    }
    assert_eq!(api.read(|p| p.issued), 1, "one token serves both callbacks");
    // The provider expires the token early: its next answer is 401, and a fresh token is
    // fetched and used once.
    api.with(|p| p.issued += 1);
    let ok = gw
        .post_hook(
            &format!("momo/{TOKEN}?reference=ref-3"),
            &[],
            momo_callback("SUCCESSFUL", "100"),
        )
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());
    assert_eq!(api.read(|p| p.issued), 3);
    gw.stop().await;
}

#[tokio::test]
async fn a_pesapal_ipn_is_confirmed_with_get_transaction_status() {
    let api = StatusApi::start().await;
    api.with(|p| {
        p.transactions.insert(
            "b945e4af-80a5-4ec1-8706-e03f8332fb04".into(),
            json!({"payment_method": "Visa", "amount": 100, "payment_status_description": "Completed",
                   "status_code": 1, "merchant_reference": "TEST1515111119", "currency": "KES",
                   "status": "200"}),
        );
    });
    let gw = spawn_gateway().await;
    gw.create_account(json!({
        "name": "pp", "provider": "pesapal", "secret": TOKEN,
        "confirm": {
            "url": format!("{}/api/Transactions/GetTransactionStatus?orderTrackingId={{{{params.tracking_id}}}}", api.base),
            "oauth": {"token_url": format!("{}/api/Auth/RequestToken", api.base),
                      "client_id": "ck", "client_secret": "cs"}
        }
    }))
    .await;
    let ipn = |tracking: &str, reference: &str| {
        json!({"OrderNotificationType": "IPNCHANGE", "OrderTrackingId": tracking,
               "OrderMerchantReference": reference})
        .to_string()
    };
    let target = format!("pp/{TOKEN}");
    let ok = gw
        .post_hook(
            &target,
            &[],
            ipn("b945e4af-80a5-4ec1-8706-e03f8332fb04", "TEST1515111119"),
        )
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());
    // Acknowledged as Pesapal asks, naming the order.
    assert_eq!(
        ok.json(),
        json!({"orderNotificationType": "IPNCHANGE",
               "orderTrackingId": "b945e4af-80a5-4ec1-8706-e03f8332fb04",
               "orderMerchantReference": "TEST1515111119", "status": 200})
    );
    let row = last_row(&gw, "pp").await;
    assert!(
        row["detail"].as_str().unwrap_or("").contains("Completed"),
        "{row}"
    );
    for (tracking, reference) in [
        ("00000000-0000-0000-0000-000000000000", "TEST1515111119"),
        ("b945e4af-80a5-4ec1-8706-e03f8332fb04", "SOMEONE-ELSES"),
    ] {
        let forged = gw.post_hook(&target, &[], ipn(tracking, reference)).await;
        assert_eq!(forged.status, 401, "{tracking} {reference}");
        assert_eq!(last_row(&gw, "pp").await["reason"], "unconfirmed");
    }
    gw.stop().await;
}

#[tokio::test]
async fn an_allowlist_takes_the_peer_and_believes_forwarded_for_only_from_trusted_proxies() {
    let gw = spawn_gateway().await;
    let mk = |name: &str, allow: &[&str], proxies: &[&str]| {
        json!({"name": name, "auth": {"type": "path_token", "token": TOKEN},
               "ip_allowlist": {"allow": allow, "trusted_proxies": proxies}})
    };
    gw.create_account(mk("loop", &["127.0.0.0/8"], &[])).await;
    gw.create_account(mk("far", &["196.201.214.0/24"], &[]))
        .await;
    gw.create_account(mk("proxied", &["196.201.214.0/24"], &["127.0.0.1/32"]))
        .await;
    let send = |name: &'static str, xff: Option<&'static str>| {
        let gw = &gw;
        async move {
            let headers: Vec<(&str, &str)> = xff
                .map(|x| vec![("x-forwarded-for", x)])
                .unwrap_or_default();
            gw.post_hook(&format!("{name}/{TOKEN}"), &headers, r#"{"a":1}"#)
                .await
                .status
        }
    };
    assert_eq!(send("loop", None).await, 200);
    assert_eq!(send("far", None).await, 401);
    assert_eq!(
        send("far", Some("196.201.214.200")).await,
        401,
        "X-Forwarded-For from an untrusted peer is ignored"
    );
    assert_eq!(send("proxied", Some("196.201.214.200")).await, 200);
    assert_eq!(
        send("proxied", Some("196.201.214.200, 203.0.113.7")).await,
        401
    );
    let row = last_row(&gw, "proxied").await;
    assert_eq!(row["reason"], "bad_auth");
    assert!(
        row["detail"].as_str().unwrap_or("").contains("203.0.113.7"),
        "{row}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_mollie_call_is_confirmed_by_fetching_the_payment_and_every_status_change_is_kept() {
    let api = StatusApi::start().await;
    api.with(|p| {
        p.transactions.insert(
            "tr_WDqYK6vllg".into(),
            json!({"resource": "payment", "id": "tr_WDqYK6vllg", "status": "open"}),
        );
    });
    let gw = spawn_gateway().await;
    gw.create_account(json!({
        "name": "mollie", "provider": "mollie", "secret": TOKEN,
        "confirm": {"url": format!("{}/v2/payments/{{{{source}}}}", api.base),
                    "secret_headers": {"Authorization": "Bearer test_mollie_key"}}
    }))
    .await;
    let target = format!("mollie/{TOKEN}");
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let open = gw.post_hook(&target, &form, "id=tr_WDqYK6vllg").await;
    assert_eq!(open.status, 200, "{:?}", open.json());
    assert!(
        last_row(&gw, "mollie").await["detail"]
            .as_str()
            .unwrap_or("")
            .contains("\"open\"")
    );
    // The same id again after the payment was paid: a new event with the new status.
    api.with(|p| {
        p.transactions.insert(
            "tr_WDqYK6vllg".into(),
            json!({"resource": "payment", "id": "tr_WDqYK6vllg", "status": "paid"}),
        );
    });
    let paid = gw.post_hook(&target, &form, "id=tr_WDqYK6vllg").await;
    assert_eq!(paid.json()["status"], "accepted");
    assert!(
        last_row(&gw, "mollie").await["detail"]
            .as_str()
            .unwrap_or("")
            .contains("\"paid\"")
    );
    let forged = gw.post_hook(&target, &form, "id=tr_forged000").await;
    assert_eq!(forged.status, 401);
    assert_eq!(last_row(&gw, "mollie").await["reason"], "unconfirmed");
    let no_token = gw.post_hook("mollie", &form, "id=tr_WDqYK6vllg").await;
    assert_eq!(no_token.status, 401);
    assert_eq!(last_row(&gw, "mollie").await["reason"], "bad_auth");
    gw.stop().await;
}

#[tokio::test]
async fn a_paypal_webhook_is_accepted_only_when_paypal_verifies_its_signature() {
    let api = StatusApi::start().await;
    api.with(|p| {
        p.transactions
            .insert("WH-2WR32451HC0233532-67976317FL4543714".into(), json!({}));
    });
    let gw = spawn_gateway().await;
    gw.create_account(json!({
        "name": "pp", "provider": "paypal", "secret": "pp-secret",
        "confirm": {"url": format!("{}/v1/notifications/verify-webhook-signature", api.base),
                    "vars": {"webhook_id": "WH-ID-1"},
                    "oauth": {"token_url": format!("{}/v1/oauth2/token", api.base), "client_id": "pp-client"}}
    }))
    .await;
    let event = json!({"id": "WH-2WR32451HC0233532-67976317FL4543714", "event_type": "PAYMENT.CAPTURE.COMPLETED",
                       "resource": {"id": "42311647XV020574X", "amount": {"value": "10.00"}}})
    .to_string();
    let headers = |sig: &'static str| {
        vec![
            ("PAYPAL-AUTH-ALGO", "SHA256withRSA"),
            (
                "PAYPAL-CERT-URL",
                "https://api-m.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77",
            ),
            (
                "PAYPAL-TRANSMISSION-ID",
                "dfb3be50-fd74-11e4-8bf3-77339302725b",
            ),
            ("PAYPAL-TRANSMISSION-SIG", sig),
            ("PAYPAL-TRANSMISSION-TIME", "2023-11-14T22:13:20Z"),
        ]
    };
    let ok = gw
        .post_hook("pp", &headers("genuine-sig"), event.clone())
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());
    let row = last_row(&gw, "pp").await;
    assert_eq!(row["event_id"], "WH-2WR32451HC0233532-67976317FL4543714");
    assert!(
        row["detail"].as_str().unwrap_or("").contains("SUCCESS"),
        "{row}"
    );
    let forged = gw
        .post_hook("pp", &headers("forged-sig"), event.clone())
        .await;
    assert_eq!(forged.status, 401);
    assert_eq!(last_row(&gw, "pp").await["reason"], "unconfirmed");
    let retry = gw.post_hook("pp", &headers("genuine-sig"), event).await;
    assert_eq!(retry.json()["status"], "duplicate");
    gw.stop().await;
}

#[test]
fn every_preset_that_confirms_is_proven_here() {
    // Airtel Money, Tingg and DPO are proven in payment_confirmation.rs.
    let tested = [
        "mtn_momo",
        "pesapal",
        "mollie",
        "paypal",
        "airtel_money",
        "tingg",
        "dpo",
    ];
    for rule in hookgate::rules::Rules::shipped().all() {
        if rule.account.contains_key("confirm") {
            assert!(
                tested.contains(&rule.name.as_str()),
                "{} needs a test against a local status API",
                rule.name
            );
        }
    }
}
