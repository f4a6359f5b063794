//! The payment providers confirmed with their own status APIs, over real HTTP against a
//! local server on port 0 that behaves like them: Airtel Money's Transaction Enquiry (OAuth
//! client credentials as JSON, the market in X-Country / X-Currency), Tingg's query status
//! (OAuth and an apikey; the callback acknowledged as Tingg asks) and DPO's verifyToken (XML
//! both ways, a company token kept out of every row; a push that is not readable XML, and an
//! answer that declares a DTD, are refused without anything being lost).

use serde_json::{Value, json};

use crate::status_api::{DPO_COMPANY_TOKEN, StatusApi, TINGG_API_KEY};
use crate::support::*;

const TOKEN: &str = "pay-path-token-0123456789";

/// The newest audit row of `account`, whole (with its detail and path).
async fn last_row(gw: &TestGateway, account: &str) -> Value {
    let rows = gw.events(&format!("account={account}&limit=1")).await;
    let id = rows.first().and_then(|r| r["id"].as_str()).unwrap_or("");
    gw.event(id).await
}

fn airtel_account(api: &StatusApi) -> Value {
    json!({
        "name": "airtel", "provider": "airtel_money", "secret": TOKEN,
        "confirm": {
            "url": format!("{}/standard/v1/payments/{{{{params.id}}}}", api.base),
            "vars": {"country": "UG", "currency": "UGX"},
            "oauth": {"token_url": format!("{}/auth/oauth2/token", api.base),
                      "client_id": "airtel-client", "client_secret": "airtel-secret"}
        }
    })
}

/// A collection callback as Airtel posts it.
fn airtel_callback(id: &str, status: &str, money_id: &str) -> String {
    json!({"transaction": {"id": id, "message": "Paid UGX 5,000 to TECHNOLOGIES LIMITED",
                           "status_code": status, "airtel_money_id": money_id}})
    .to_string()
}

#[tokio::test]
async fn an_airtel_callback_is_accepted_only_as_the_transaction_enquiry_confirms_it() {
    let api = StatusApi::start().await;
    api.with(|p| {
        for id in ["BBZMiscxy", "BBZMiscxz", "BBZMiscyy"] {
            p.transactions.insert(
                id.into(),
                json!({"id": id, "airtel_money_id": format!("MP210603.1234.{id}"),
                       "message": "success", "status": "TS"}),
            );
        }
    });
    let gw = spawn_gateway().await;
    gw.create_account(airtel_account(&api)).await;
    let target = format!("airtel/{TOKEN}");

    let ok = gw
        .post_hook(
            &target,
            &[("content-type", "application/json")],
            airtel_callback("BBZMiscxy", "TS", "MP210603.1234.BBZMiscxy"),
        )
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());
    let row = last_row(&gw, "airtel").await;
    assert_eq!(row["status"], "accepted");
    assert_eq!(row["event_id"], r#"["BBZMiscxy","TS"]"#);
    assert_eq!(row["event_type"], "TS");
    assert!(
        row["detail"].as_str().unwrap_or("").contains("ESB000010"),
        "the enquiry's answer is kept: {row}"
    );
    assert!(!row.to_string().contains("airtel-secret"));

    // Forged: an id Airtel does not know, a status it does not report, another money id.
    for (id, status, money) in [
        ("BBZ-unknown", "TS", "MP210603.1234.BBZ-unknown"),
        ("BBZMiscxy", "TF", "MP210603.1234.BBZMiscxy"),
        ("BBZMiscxy", "TS", "MP999999.0000.FORGED"),
    ] {
        let forged = gw
            .post_hook(&target, &[], airtel_callback(id, status, money))
            .await;
        assert_eq!(forged.status, 401, "{id} {status} {money}");
        assert_eq!(last_row(&gw, "airtel").await["reason"], "unconfirmed");
    }

    // Airtel's retry of the confirmed callback is a duplicate.
    let retry = gw
        .post_hook(
            &target,
            &[],
            airtel_callback("BBZMiscxy", "TS", "MP210603.1234.BBZMiscxy"),
        )
        .await;
    assert_eq!(retry.json()["status"], "duplicate");

    // The token expires early: the next enquiry is refused, a fresh token is got once.
    assert_eq!(api.read(|p| p.issued), 1, "one token served every enquiry");
    api.with(|p| p.issued += 1);
    let ok = gw
        .post_hook(
            &target,
            &[],
            airtel_callback("BBZMiscxz", "TS", "MP210603.1234.BBZMiscxz"),
        )
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());
    assert_eq!(api.read(|p| p.issued), 3);

    // Airtel down: 503 with Retry-After, recorded, and the retry is confirmed later.
    api.with(|p| p.down = true);
    let down = gw
        .post_hook(
            &target,
            &[],
            airtel_callback("BBZMiscyy", "TS", "MP210603.1234.BBZMiscyy"),
        )
        .await;
    assert_eq!(down.status, 503);
    assert!(down.headers.contains_key("retry-after"));
    assert_eq!(
        last_row(&gw, "airtel").await["reason"],
        "confirmation_unavailable"
    );
    api.with(|p| p.down = false);
    let later = gw
        .post_hook(
            &target,
            &[],
            airtel_callback("BBZMiscyy", "TS", "MP210603.1234.BBZMiscyy"),
        )
        .await;
    assert_eq!(later.json()["status"], "accepted");
    gw.stop().await;
}

fn tingg_account(api: &StatusApi) -> Value {
    json!({
        "name": "tingg", "provider": "tingg", "secret": TOKEN,
        "confirm": {
            "url": format!("{}/v3/checkout-api/query/{{{{params.service_code}}}}/{{{{source}}}}", api.base),
            "secret_headers": {"apikey": TINGG_API_KEY},
            "oauth": {"token_url": format!("{}/v1/oauth/token/request", api.base),
                      "client_id": "tingg-client", "client_secret": "tingg-secret",
                      "secret_headers": {"apikey": TINGG_API_KEY}}
        }
    })
}

fn tingg_request(paid: &str) -> Value {
    json!({"checkout_request_id": 4821, "merchant_transaction_id": "MTX-676",
           "service_code": "JOHNDOEONLINE", "request_amount": "100.00", "amount_paid": paid,
           "request_currency_code": "KES", "request_status_code": 178,
           "request_status_description": "Request fully paid"})
}

fn tingg_callback(paid: &str, status: i64) -> String {
    let mut c = tingg_request(paid);
    c["request_status_code"] = json!(status);
    c["msisdn"] = json!("254700000000");
    c["payments"] = json!([{"payer_transaction_id": "RCT-1", "amount_paid": paid}]);
    c.to_string()
}

#[tokio::test]
async fn a_tingg_callback_is_confirmed_with_query_status_and_acknowledged() {
    let api = StatusApi::start().await;
    api.with(|p| {
        p.transactions
            .insert("MTX-676".into(), tingg_request("100.00"));
    });
    let gw = spawn_gateway().await;
    gw.create_account(tingg_account(&api)).await;
    let target = format!("tingg/{TOKEN}");
    let ok = gw
        .post_hook(&target, &[], tingg_callback("100.00", 178))
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    // Acknowledged as Tingg asks: received, to be accepted or rejected by the merchant.
    assert_eq!(
        ok.json(),
        json!({"checkout_request_id": "4821", "merchant_transaction_id": "MTX-676",
               "status_code": "188", "status_description": "Payment received",
               "receipt_number": "4821"})
    );
    let row = last_row(&gw, "tingg").await;
    assert_eq!(row["event_id"], r#"["MTX-676","178"]"#);
    assert_eq!(row["sender"], "254700000000");
    for (paid, status) in [("9000.00", 178), ("100.00", 176)] {
        let forged = gw
            .post_hook(&target, &[], tingg_callback(paid, status))
            .await;
        assert_eq!(forged.status, 401, "{paid} {status}");
        assert_eq!(last_row(&gw, "tingg").await["reason"], "unconfirmed");
    }
    let mut unknown: Value =
        serde_json::from_str(&tingg_callback("100.00", 178)).unwrap_or_default();
    unknown["merchant_transaction_id"] = json!("MTX-404");
    let unknown = gw.post_hook(&target, &[], unknown.to_string()).await;
    assert_eq!(unknown.status, 401);
    api.with(|p| p.down = true);
    let down = gw
        .post_hook(&target, &[], tingg_callback("100.00", 178))
        .await;
    assert_eq!(down.status, 503);
    gw.stop().await;
}

fn dpo_account(api: &StatusApi) -> Value {
    json!({
        "name": "dpo", "provider": "dpo", "secret": TOKEN,
        "confirm": {
            "url": format!("{}/API/v6/", api.base),
            "secret_vars": {"company_token": DPO_COMPANY_TOKEN}
        }
    })
}

/// A pushPayments notification as DPO posts it (its documented example's fields).
fn dpo_push(token: &str, result: &str, amount: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<API3G>\n<Result>{result}</Result>\n\
         <ResultExplanation>Transaction paid</ResultExplanation>\n\
         <TransactionToken>{token}</TransactionToken>\n<TransactionRef>A123BEWDSD</TransactionRef>\n\
         <CustomerName>John Doe</CustomerName>\n<CustomerCredit>4432</CustomerCredit>\n\
         <TransactionApproval>938204312</TransactionApproval>\n\
         <TransactionCurrency>USD</TransactionCurrency>\n<TransactionAmount>{amount}</TransactionAmount>\n\
         <FraudAlert>000</FraudAlert>\n<FraudExplnation>No Fraud detected</FraudExplnation>\n</API3G>"
    )
}

/// What verifyToken answers for a paid transaction.
fn dpo_verified(amount: &str) -> Value {
    Value::String(format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><API3G><Result>000</Result>\
         <ResultExplanation>Transaction Paid</ResultExplanation><CustomerName>John Doe</CustomerName>\
         <TransactionApproval>938204312</TransactionApproval><TransactionCurrency>USD</TransactionCurrency>\
         <TransactionAmount>{amount}</TransactionAmount><FraudAlert>000</FraudAlert></API3G>"
    ))
}

#[tokio::test]
async fn a_dpo_push_is_confirmed_with_verify_token_in_xml() {
    let api = StatusApi::start().await;
    let paid = "68B90B5E-25F6-4146-8AB1-05B3A0C41A9E";
    api.with(|p| {
        p.transactions.insert(paid.into(), dpo_verified("950.00"));
    });
    let gw = spawn_gateway().await;
    let shown = gw.create_account(dpo_account(&api)).await;
    assert!(
        !shown.to_string().contains(DPO_COMPANY_TOKEN),
        "the company token is write-only: {shown}"
    );
    let target = format!("dpo/{TOKEN}");
    let xml = [("content-type", "text/xml; charset=utf-8")];
    let ok = gw
        .post_hook(&target, &xml, dpo_push(paid, "000", "950.00"))
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(&ok.body[..], b"OK", "DPO expects OK");
    let asked = api.read(|p| p.last_body.clone());
    assert!(
        asked.contains(&format!("<CompanyToken>{DPO_COMPANY_TOKEN}</CompanyToken>"))
            && asked.contains(&format!("<TransactionToken>{paid}</TransactionToken>"))
            && asked.contains("<Request>verifyToken</Request>"),
        "{asked}"
    );
    let row = last_row(&gw, "dpo").await;
    assert_eq!(row["status"], "accepted");
    assert_eq!(row["event_id"], format!(r#"["{paid}","000"]"#));
    assert_eq!(row["event_type"], "Transaction paid");
    assert_eq!(row["source"], "A123BEWDSD");
    assert!(
        row["detail"]
            .as_str()
            .unwrap_or("")
            .contains("<Result>000</Result>"),
        "{row}"
    );
    assert!(!row.to_string().contains(DPO_COMPANY_TOKEN));
    // The same push labelled as something else is still read as XML: a retry, a duplicate.
    let retry = gw
        .post_hook(
            &target,
            &[("content-type", "application/x-www-form-urlencoded")],
            dpo_push(paid, "000", "950.00"),
        )
        .await;
    assert_eq!(retry.status, 200);
    assert_eq!(last_row(&gw, "dpo").await["status"], "duplicate");

    // Forged: another amount, a token DPO does not know. A token that would break out of
    // its element is escaped, so it is only ever an unknown token.
    for (token, amount) in [
        (paid, "9500.00"),
        ("00000000-0000-0000-0000-000000000000", "950.00"),
        ("x&lt;/TransactionToken&gt;&lt;Request&gt;", "950.00"),
    ] {
        let forged = gw
            .post_hook(&target, &xml, dpo_push(token, "000", amount))
            .await;
        assert_eq!(forged.status, 401, "{token} {amount}");
        assert_eq!(last_row(&gw, "dpo").await["reason"], "unconfirmed");
    }
    let asked = api.read(|p| p.last_body.clone());
    assert!(
        asked.contains(
            "<TransactionToken>x&lt;/TransactionToken&gt;&lt;Request&gt;</TransactionToken>"
        ),
        "{asked}"
    );

    // A push that is not readable XML, or declares a DTD, is refused as malformed and kept.
    let asked_before = api.read(|p| p.asked);
    for bad in [
        "<API3G><Result>000</Result>".to_owned(),
        "<?xml version=\"1.0\"?><!DOCTYPE API3G [<!ENTITY t SYSTEM \"file:///etc/passwd\">]>\
         <API3G><TransactionToken>&t;</TransactionToken></API3G>"
            .to_owned(),
    ] {
        let refused = gw.post_hook(&target, &xml, bad.clone()).await;
        assert_eq!(refused.status, 400, "{bad}");
        let row = last_row(&gw, "dpo").await;
        assert_eq!(row["reason"], "malformed_payload");
        assert_eq!(row["body"], bad, "the refused body is kept");
    }
    assert_eq!(
        api.read(|p| p.asked),
        asked_before,
        "nothing unreadable is asked about"
    );

    // An answer that declares a DTD is not read: the push is not confirmed, and DPO retries.
    api.with(|p| {
        p.dpo_answer = Some(
            "<?xml version=\"1.0\"?><!DOCTYPE API3G [<!ENTITY r \"000\">]>\
             <API3G><Result>&r;</Result></API3G>"
                .into(),
        );
    });
    let hostile = gw
        .post_hook(&target, &xml, dpo_push(paid, "000", "950.00"))
        .await;
    assert_eq!(hostile.status, 503);
    let row = last_row(&gw, "dpo").await;
    assert_eq!(row["reason"], "confirmation_unavailable");
    assert!(
        row["detail"].as_str().unwrap_or("").contains("DTD"),
        "{row}"
    );
    api.with(|p| {
        p.dpo_answer = None;
        p.down = true;
    });
    let down = gw
        .post_hook(&target, &xml, dpo_push(paid, "000", "950.00"))
        .await;
    assert_eq!(down.status, 503);
    gw.stop().await;
}
