//! Chat channels end to end: local HTTP servers that behave like the Telegram Bot API, the
//! WhatsApp Cloud API and Twilio's Messages API (paths, auth and bodies checked; success,
//! the no-session errors, 429 with a retry delay and 5xx answered from a script), status
//! templates chosen by event type with fallback values, the outcomes shown with the event,
//! refusals at save, a message waiting for a channel that is not configured, and
//! credentials kept out of answers, the change log and the real binary's log.

use std::time::Duration;

use base64::Engine as _;
use hookgate::cli::client::HttpClient;
use hookgate::secret::Secret;
use hyper::Method;
use serde_json::{Value, json};

use crate::process;
use crate::support::*;

const TG_TOKEN: &str = "7000001:AAtelegram-bot-secret";
const WA_TOKEN: &str = "EAAGwhatsapp-access-secret";
const WA_PHONE: &str = "1055501234";
const TW_SID: &str = "AC0123456789abcdef";
const TW_TOKEN: &str = "twilio-auth-secret-42";

use crate::standin::{Reply, StandIn as Platform};

/// A platform's answer: a status and a JSON body.
fn reply(status: u16, body: Value) -> Reply {
    Reply::Json(status, body)
}

fn telegram_ok() -> Reply {
    reply(200, json!({"ok": true, "result": {"message_id": 1}}))
}
fn whatsapp_ok() -> Reply {
    reply(
        200,
        json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.1"}]}),
    )
}
fn twilio_ok() -> Reply {
    reply(201, json!({"sid": "SM1", "status": "queued"}))
}

/// A gateway whose channels point at the stand-ins given (none: not configured).
async fn gateway(
    tg: Option<&Platform>,
    wa: Option<&Platform>,
    tw: Option<&Platform>,
) -> TestGateway {
    let (tg, wa, tw) = (
        tg.map(|p| p.base.clone()),
        wa.map(|p| p.base.clone()),
        tw.map(|p| p.base.clone()),
    );
    spawn_with(move |c| {
        if let Some(base) = tg {
            c.chat.telegram.token = Some(Secret::new(TG_TOKEN));
            c.chat.telegram.base_url = base;
        }
        if let Some(base) = wa {
            c.chat.whatsapp.token = Some(Secret::new(WA_TOKEN));
            c.chat.whatsapp.phone_number_id = Some(WA_PHONE.to_owned());
            c.chat.whatsapp.base_url = base;
        }
        if let Some(base) = tw {
            c.chat.twilio.account_sid = Some(TW_SID.to_owned());
            c.chat.twilio.auth_token = Some(Secret::new(TW_TOKEN));
            c.chat.twilio.from = Some("+15550001111".to_owned());
            c.chat.twilio.whatsapp_from = Some("+15550002222".to_owned());
            c.chat.twilio.base_url = base;
        }
        c.chat.timeout_ms = 2000;
        c.chat.retry_base_ms = 20;
        c.chat.retry_max_ms = 100;
        c.chat.max_attempts = 3;
    })
    .await
}

/// The spec of a listening account sending through `channel` (null: the connector), with
/// a template per payment event type and fallbacks.
fn spec(name: &str, channel: Value, extra: Value) -> Value {
    let mut spec = json!({
        "name": name,
        "auth": {"type": "bearer", "token": "pay-token-1"},
        "paths": {"sender": "$.to", "event_id": "$.id", "event_type": "$.type",
                  "params": {"amount": "$.amount"}},
        "forward": {
            "send_to_user": true,
            "channel": channel,
            "template": "Update on {{params.amount | default: \"your payment\"}}: {{event_type}}",
            "templates": {
                "payment.succeeded": "Received {{params.amount | default: \"your payment\"}}, thank you",
                "payment.failed": "{{params.amount | default: \"Your payment\"}} failed; please try again"
            }
        }
    });
    hookgate::account::merge_patch(&mut spec, &extra);
    spec
}

async fn listening(gw: &TestGateway, spec: Value) {
    let name = spec["name"].as_str().unwrap_or("").to_owned();
    gw.create_account(spec).await;
    let on = gw
        .admin_call(
            Method::POST,
            &format!("/v1/accounts/{name}/listening"),
            Some(json!({"listening": true})),
        )
        .await;
    assert_eq!(on.status, 200, "{:?}", on.json());
}

/// Posts one payment event; returns its log id.
async fn pay(gw: &TestGateway, account: &str, body: Value) -> String {
    let a = gw
        .post_hook(
            account,
            &[("authorization", "Bearer pay-token-1")],
            body.to_string(),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    a.json()["id"].as_str().unwrap_or("").to_owned()
}

/// Waits until the event's forward_status is `want`.
async fn settled(gw: &TestGateway, id: &str, want: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    loop {
        tick.tick().await;
        let e = gw.event(id).await;
        if e["forward_status"] == want {
            return e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} never became {want}: {e}"
        );
    }
}

fn outcomes(e: &Value) -> Vec<String> {
    e["forward_attempts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["outcome"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts that no channel credential appears in `text`.
fn no_credentials(what: &str, text: &str) {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{TW_SID}:{TW_TOKEN}"));
    for secret in [TG_TOKEN, WA_TOKEN, TW_TOKEN, basic.as_str()] {
        assert!(!text.contains(secret), "{what} shows a credential: {text}");
    }
}

/// What the admin API shows about accounts, events and changes, as one text.
async fn everything_shown(gw: &TestGateway, ids: &[&str]) -> String {
    let mut all = String::new();
    for path in ["/v1/accounts", "/v1/changes", "/v1/events"] {
        all += &String::from_utf8_lossy(&gw.admin_call(Method::GET, path, None).await.body);
    }
    for id in ids {
        all += &gw.event(id).await.to_string();
    }
    all
}

#[tokio::test]
async fn telegram_gets_the_template_of_each_event_type_and_its_errors_are_mapped() {
    let mut tg = Platform::answering(telegram_ok()).await;
    let gw = gateway(Some(&tg), None, None).await;
    listening(&gw, spec("tg", json!("telegram"), json!({}))).await;

    let ok = pay(
        &gw,
        "tg",
        json!({"id": "t1", "type": "payment.succeeded", "to": "4242", "amount": "25,000 TZS"}),
    )
    .await;
    let got = tg.next().await;
    assert_eq!(got.path, format!("/bot{TG_TOKEN}/sendMessage"));
    assert_eq!(
        got.json(),
        json!({"chat_id": 4242, "text": "Received 25,000 TZS, thank you"})
    );
    assert!(got.header("content-type").starts_with("application/json"));
    let e = settled(&gw, &ok, "delivered").await;
    assert_eq!(e["forward_attempts"][0]["http_status"], 200);

    let failed = pay(
        &gw,
        "tg",
        json!({"id": "t2", "type": "payment.failed", "to": "4242"}),
    )
    .await;
    assert_eq!(
        tg.next().await.json()["text"],
        "Your payment failed; please try again",
        "the fallback, never [missing ...]"
    );
    settled(&gw, &failed, "delivered").await;
    let reversed = pay(
        &gw,
        "tg",
        json!({"id": "t3", "type": "payment.reversed", "to": "@shop_news", "amount": 10}),
    )
    .await;
    let got = tg.next().await;
    assert_eq!(
        got.json(),
        json!({"chat_id": "@shop_news", "text": "Update on 10: payment.reversed"}),
        "the default template"
    );
    settled(&gw, &reversed, "delivered").await;

    tg.script(&[reply(403, json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}))]);
    let blocked = pay(
        &gw,
        "tg",
        json!({"id": "t4", "type": "payment.succeeded", "to": "77"}),
    )
    .await;
    assert_eq!(tg.next().await.answered, Some(403));
    let e = settled(&gw, &blocked, "no_session").await;
    assert_eq!(
        e["forward_attempts"][0]["detail"],
        "HTTP 403: Forbidden: bot was blocked by the user"
    );

    tg.script(&[reply(
        400,
        json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
    )]);
    let missing = pay(
        &gw,
        "tg",
        json!({"id": "t5", "type": "payment.succeeded", "to": "78"}),
    )
    .await;
    tg.next().await;
    settled(&gw, &missing, "no_session").await;

    tg.script(&[
        reply(429, json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 0", "parameters": {"retry_after": 0}})),
        reply(502, json!({"ok": false, "error_code": 502, "description": "Bad Gateway"})),
    ]);
    let flooded = pay(
        &gw,
        "tg",
        json!({"id": "t6", "type": "payment.succeeded", "to": "79"}),
    )
    .await;
    let answered: Vec<Option<u16>> = vec![
        tg.next().await.answered,
        tg.next().await.answered,
        tg.next().await.answered,
    ];
    assert_eq!(answered, [Some(429), Some(502), Some(200)]);
    let e = settled(&gw, &flooded, "delivered").await;
    assert_eq!(outcomes(&e), ["retrying", "retrying", "delivered"]);
    tg.nothing_more();

    // The change log names the forwarding fields changed, never their values.
    let patch = json!({"forward": {"templates": {"payment.refunded": "Refunded {{params.amount | default: \"your payment\"}}"}}});
    let a = gw
        .admin_call(Method::PATCH, "/v1/accounts/tg", Some(patch))
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    assert_eq!(
        a.json()["forward"]["templates"]
            .as_object()
            .map(|t| t.len()),
        Some(3)
    );
    let changes = String::from_utf8_lossy(
        &gw.admin_call(Method::GET, "/v1/changes?account=tg", None)
            .await
            .body,
    )
    .into_owned();
    assert!(
        changes.contains("\"forward.templates\"") && changes.contains("\"channel\":\"telegram\""),
        "{changes}"
    );
    assert!(
        !changes.contains("Refunded"),
        "values stay out of the change log: {changes}"
    );

    let metric = |outcome: &str| {
        format!("hookgate_chat_attempts_total{{channel=\"telegram\",outcome=\"{outcome}\"}}")
    };
    assert_eq!(gw.metric(&metric("delivered")).await, 4.0);
    assert_eq!(gw.metric(&metric("no_session")).await, 2.0);
    assert_eq!(gw.metric(&metric("retrying")).await, 2.0);

    let shown = everything_shown(&gw, &[&ok, &blocked, &flooded]).await;
    no_credentials("the admin API", &shown);
    gw.stop().await;
}

#[tokio::test]
async fn whatsapp_sends_text_or_the_approved_template_and_maps_its_error_codes() {
    let mut wa = Platform::answering(whatsapp_ok()).await;
    let gw = gateway(None, Some(&wa), None).await;
    listening(&gw, spec("wa_text", json!("whatsapp"), json!({}))).await;
    let template = json!({"forward": {"whatsapp_template": {"name": "payment_update", "language": "en_US",
        "params": ["{{params.amount | default: \"your payment\"}}", "{{event_type}}"]},
        "whatsapp_templates": {"payment.succeeded": {"name": "payment_received", "language": "sw",
            "params": ["{{params.amount | default: \"malipo yako\"}}"]}}}});
    listening(&gw, spec("wa_tpl", json!("whatsapp"), template)).await;

    let text = pay(
        &gw,
        "wa_text",
        json!({"id": "w1", "type": "payment.succeeded", "to": "+255700000001", "amount": "5 TZS"}),
    )
    .await;
    let got = wa.next().await;
    assert_eq!(got.path, format!("/v21.0/{WA_PHONE}/messages"));
    assert_eq!(got.header("authorization"), format!("Bearer {WA_TOKEN}"));
    let body = got.json();
    assert_eq!(
        (
            body["messaging_product"].as_str(),
            body["type"].as_str(),
            body["to"].as_str()
        ),
        (Some("whatsapp"), Some("text"), Some("+255700000001"))
    );
    assert_eq!(body["text"]["body"], "Received 5 TZS, thank you");
    settled(&gw, &text, "delivered").await;

    let tpl = pay(
        &gw,
        "wa_tpl",
        json!({"id": "w2", "type": "payment.failed", "to": "+255700000002"}),
    )
    .await;
    let body = wa.next().await.json();
    assert_eq!(body["type"], "template");
    assert_eq!(
        body["template"],
        json!({"name": "payment_update", "language": {"code": "en_US"}, "components": [{"type": "body", "parameters": [
            {"type": "text", "text": "your payment"}, {"type": "text", "text": "payment.failed"}]}]})
    );
    let e = settled(&gw, &tpl, "delivered").await;
    assert_eq!(e["forward_attempts"].as_array().map(Vec::len), Some(1));
    let own = pay(
        &gw,
        "wa_tpl",
        json!({"id": "w2b", "type": "payment.succeeded", "to": "+255700000009", "amount": "7 TZS"}),
    )
    .await;
    assert_eq!(
        wa.next().await.json()["template"],
        json!({"name": "payment_received", "language": {"code": "sw"}, "components": [{"type": "body", "parameters": [
            {"type": "text", "text": "7 TZS"}]}]}),
        "the event type's own approved template"
    );
    settled(&gw, &own, "delivered").await;

    let meta_error = |status: u16, code: i64, details: &str| {
        reply(
            status,
            json!({"error": {"message": "(#x) failed", "type": "OAuthException", "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details}, "fbtrace_id": "Az"}}),
        )
    };
    wa.script(&[meta_error(400, 131047, "Message failed to send because more than 24 hours have passed since the customer last replied to this number.")]);
    let window = pay(
        &gw,
        "wa_text",
        json!({"id": "w3", "type": "payment.succeeded", "to": "+255700000003"}),
    )
    .await;
    wa.next().await;
    let e = settled(&gw, &window, "no_session").await;
    let detail = e["forward_attempts"][0]["detail"].as_str().unwrap_or("");
    assert!(
        detail.starts_with("HTTP 400: error 131047: Message failed to send"),
        "{detail}"
    );

    wa.script(&[
        meta_error(400, 130429, "Rate limit hit"),
        meta_error(400, 131056, "Pair rate limit"),
    ]);
    let rate = pay(
        &gw,
        "wa_text",
        json!({"id": "w4", "type": "payment.succeeded", "to": "+255700000004"}),
    )
    .await;
    for _ in 0..3 {
        wa.next().await;
    }
    let e = settled(&gw, &rate, "delivered").await;
    assert_eq!(outcomes(&e), ["retrying", "retrying", "delivered"]);

    wa.script(&[meta_error(401, 190, "Error validating access token")]);
    let bad_token = pay(
        &gw,
        "wa_text",
        json!({"id": "w5", "type": "payment.succeeded", "to": "+255700000005"}),
    )
    .await;
    wa.next().await;
    let e = settled(&gw, &bad_token, "dead").await;
    assert_eq!(outcomes(&e), ["dead"], "a bad token is not retried");
    wa.nothing_more();

    no_credentials(
        "the admin API",
        &everything_shown(&gw, &[&text, &tpl, &bad_token]).await,
    );
    gw.stop().await;
}

#[tokio::test]
async fn twilio_sends_sms_and_whatsapp_forms_with_basic_auth_and_maps_its_error_codes() {
    let mut tw = Platform::answering(twilio_ok()).await;
    let gw = gateway(None, None, Some(&tw)).await;
    listening(&gw, spec("sms", json!("twilio_sms"), json!({}))).await;
    listening(&gw, spec("twa", json!("twilio_whatsapp"), json!({}))).await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{TW_SID}:{TW_TOKEN}"))
    );

    let sms = pay(
        &gw,
        "sms",
        json!({"id": "s1", "type": "payment.succeeded", "to": "+255700000001", "amount": "5 & 6"}),
    )
    .await;
    let got = tw.next().await;
    assert_eq!(
        got.path,
        format!("/2010-04-01/Accounts/{TW_SID}/Messages.json")
    );
    assert_eq!(got.header("authorization"), basic);
    assert_eq!(
        got.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let pairs = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        got.form(),
        pairs(&[
            ("To", "+255700000001"),
            ("From", "+15550001111"),
            ("Body", "Received 5 & 6, thank you")
        ])
    );
    settled(&gw, &sms, "delivered").await;

    let wa = pay(
        &gw,
        "twa",
        json!({"id": "s2", "type": "payment.failed", "to": "+255700000002"}),
    )
    .await;
    let got = tw.next().await;
    assert_eq!(
        got.form(),
        pairs(&[
            ("To", "whatsapp:+255700000002"),
            ("From", "whatsapp:+15550002222"),
            ("Body", "Your payment failed; please try again")
        ])
    );
    settled(&gw, &wa, "delivered").await;

    let twilio_body = |status: u16, code: i64| json!({"code": code, "message": "refused", "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status});
    let twilio_error = |status: u16, code: i64| reply(status, twilio_body(status, code));
    tw.script(&[twilio_error(400, 21610)]);
    let stopped = pay(
        &gw,
        "sms",
        json!({"id": "s3", "type": "payment.succeeded", "to": "+255700000003"}),
    )
    .await;
    tw.next().await;
    let e = settled(&gw, &stopped, "no_session").await;
    assert_eq!(
        e["forward_attempts"][0]["detail"],
        "HTTP 400: error 21610: refused"
    );

    tw.script(&[twilio_error(400, 63016)]);
    let window = pay(
        &gw,
        "twa",
        json!({"id": "s4", "type": "payment.succeeded", "to": "+255700000004"}),
    )
    .await;
    tw.next().await;
    settled(&gw, &window, "no_session").await;

    tw.script(&[
        Reply::JsonRetryAfter(429, twilio_body(429, 20429), "0"),
        twilio_error(503, 20500),
    ]);
    let busy = pay(
        &gw,
        "sms",
        json!({"id": "s5", "type": "payment.succeeded", "to": "+255700000005"}),
    )
    .await;
    let answered = vec![
        tw.next().await.answered,
        tw.next().await.answered,
        tw.next().await.answered,
    ];
    assert_eq!(answered, [Some(429), Some(503), Some(201)]);
    let e = settled(&gw, &busy, "delivered").await;
    assert_eq!(outcomes(&e), ["retrying", "retrying", "delivered"]);
    tw.nothing_more();

    no_credentials(
        "the admin API",
        &everything_shown(&gw, &[&sms, &stopped, &busy]).await,
    );
    gw.stop().await;
}

#[tokio::test]
async fn unconfigured_channels_and_bad_templates_are_refused_and_a_waiting_message_says_why() {
    let mut tg = Platform::answering(telegram_ok()).await;
    let gw = gateway(Some(&tg), None, None).await;
    let refused = |spec: Value| {
        let gw = &gw;
        async move {
            let a = gw
                .admin_call(Method::POST, "/v1/accounts", Some(spec))
                .await;
            assert_eq!(a.status, 422, "{:?}", a.json());
            a.json()
        }
    };
    let p = refused(spec("wa", json!("whatsapp"), json!({}))).await;
    assert_eq!(p["field"], "forward.channel");
    let why = p["detail"].as_str().unwrap_or("");
    assert!(why.contains("HOOKGATE_CHAT_WHATSAPP_TOKEN"), "{why}");
    refused(spec("sig", json!("signal"), json!({}))).await;
    let p = refused(spec(
        "bad",
        json!("telegram"),
        json!({"forward": {"templates": {"payment.failed": "{{params.amount | default: oops}}"}}}),
    ))
    .await;
    assert_eq!(p["field"], "forward.templates.payment.failed");
    let p = refused(spec(
        "bad",
        json!("telegram"),
        json!({"forward": {"whatsapp_template": {"name": "x", "language": "en"}}}),
    ))
    .await;
    assert_eq!(p["field"], "forward.whatsapp_template");
    // Without send_to_user the channel is not needed, and the answer warns that nothing
    // is sent.
    let quiet = spec(
        "quiet",
        json!("whatsapp"),
        json!({"forward": {"send_to_user": false}}),
    );
    let saved = gw.create_account(quiet).await;
    let warned = saved["warnings"].to_string();
    assert!(warned.contains("forward.send_to_user is off"), "{warned}");
    for name in ["wa", "sig", "bad"] {
        let a = gw
            .admin_call(Method::GET, &format!("/v1/accounts/{name}"), None)
            .await;
        assert_eq!(a.status, 404, "{name} was not saved");
    }

    // A listening account on the connector, which this gateway does not have: the message
    // waits in the outbox and the event says why; nothing is counted as an attempt.
    listening(&gw, spec("plain", Value::Null, json!({}))).await;
    let id = pay(
        &gw,
        "plain",
        json!({"id": "p1", "type": "payment.succeeded", "to": "+1"}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let e = loop {
        let e = gw.event(&id).await;
        if e["forward_attempts"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            break e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no waiting note: {e}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(e["forward_status"], "pending");
    let note = &e["forward_attempts"][0];
    assert_eq!(note["outcome"], "pending");
    let detail = note["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("the chat connector is not configured")
            && detail.contains("HOOKGATE_CHAT_URL"),
        "{detail}"
    );
    let waiting = "hookgate_chat_attempts_total{channel=\"connector\",outcome=\"waiting\"}";
    assert!(gw.metric(waiting).await >= 1.0);

    // The template preview knows the fallback syntax.
    let preview = gw
        .admin_call(Method::POST, "/v1/templates/preview", Some(json!({"template": "Paid {{params.amount | default: \"your payment\"}}", "event": {}})))
        .await;
    assert_eq!(preview.json()["text"], "Paid your payment");
    let by_type = |event_type: &str| {
        let gw = &gw;
        let event = json!({"event_type": event_type, "params": {"amount": "5 TZS"}});
        async move {
            let a = gw
                .admin_call(
                    Method::POST,
                    "/v1/templates/preview",
                    Some(json!({"templates": {"payment.failed": "{{params.amount}} failed"}, "event": event})),
                )
                .await;
            assert_eq!(a.status, 200, "{:?}", a.json());
            a.json()["text"].clone()
        }
    };
    assert_eq!(by_type("payment.failed").await, "5 TZS failed");
    assert_eq!(
        by_type("payment.succeeded").await,
        Value::Null,
        "no template applies"
    );
    let broken = gw
        .admin_call(
            Method::POST,
            "/v1/templates/preview",
            Some(json!({"templates": {"a": "{{x}}"}})),
        )
        .await;
    assert_eq!(
        (broken.status.as_u16(), broken.json()["field"].as_str()),
        (422, Some("forward.templates.a"))
    );
    tg.nothing_more();
    gw.stop().await;
}

#[tokio::test]
async fn the_real_binary_never_logs_or_records_a_channel_credential() {
    // A Telegram base URL where nothing listens: the client's error names the URL, which
    // carries the bot token; the recorded detail must mask it.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dead_base = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = if on_postgres() {
        std::path::PathBuf::from(crate::pg::server().fresh_database())
    } else {
        dir.path().join("channels.db")
    };
    let p = process::start(
        &db,
        &[
            ("HOOKGATE_LOG", "debug"),
            ("HOOKGATE_SECRET_KEY", TEST_SECRET_KEY),
            ("HOOKGATE_CHAT_TELEGRAM_TOKEN", TG_TOKEN),
            ("HOOKGATE_CHAT_TELEGRAM_BASE_URL", &dead_base),
            ("HOOKGATE_CHAT_WHATSAPP_TOKEN", WA_TOKEN),
            ("HOOKGATE_CHAT_WHATSAPP_PHONE_NUMBER_ID", WA_PHONE),
            ("HOOKGATE_CHAT_TWILIO_ACCOUNT_SID", TW_SID),
            ("HOOKGATE_CHAT_TWILIO_AUTH_TOKEN", TW_TOKEN),
            ("HOOKGATE_CHAT_TWILIO_FROM", "+15550001111"),
            ("HOOKGATE_CHAT_MAX_ATTEMPTS", "2"),
            ("HOOKGATE_CHAT_RETRY_BASE_MS", "10"),
            ("HOOKGATE_CHAT_RETRY_MAX_MS", "50"),
        ],
    )
    .await;
    let client = HttpClient::default();
    let admin = |method: Method, path: String, body: Option<Value>| {
        let (client, url) = (client.clone(), format!("{}{path}", p.admin));
        async move {
            client
                .admin(method, &url, ADMIN_TOKEN, body.as_ref())
                .await
                .expect("admin API reachable")
        }
    };
    p.create_account(&spec("tg", json!("telegram"), json!({})))
        .await;
    let on = admin(
        Method::POST,
        "/v1/accounts/tg/listening".into(),
        Some(json!({"listening": true})),
    )
    .await;
    assert_eq!(on.status, 200);
    let sent = client
        .send(
            Method::POST,
            &format!("{}/hooks/tg", p.public),
            &[("authorization", "Bearer pay-token-1")],
            json!({"id": "x1", "type": "payment.succeeded", "to": "42"}).to_string(),
        )
        .await
        .expect("public listener reachable");
    assert_eq!(sent.status, 200);
    let id = sent.json()["id"].as_str().unwrap_or("").to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let event = loop {
        let e = admin(Method::GET, format!("/v1/events/{id}"), None)
            .await
            .json();
        if e["forward_status"] == "dead" {
            break e;
        }
        assert!(tokio::time::Instant::now() < deadline, "never dead: {e}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let detail = event["forward_attempts"][0]["detail"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        detail.contains("bot********/sendMessage: connection refused"),
        "the URL is shown masked: {detail}"
    );
    let mut shown = event.to_string();
    for path in ["/v1/accounts", "/v1/changes", "/v1/events"] {
        shown += &String::from_utf8_lossy(&admin(Method::GET, path.into(), None).await.body);
    }
    no_credentials("the admin API", &shown);
    let log = p.term(Duration::from_secs(10)).await;
    let routes = log
        .lines()
        .find(|l| l.contains("status messages are delivered"))
        .unwrap_or_else(|| panic!("the start names what delivers: {log}"));
    for name in ["telegram", "whatsapp", "twilio_sms"] {
        assert!(routes.contains(name), "{routes}");
    }
    assert!(
        !routes.contains("connector"),
        "no connector is configured: {routes}"
    );
    no_credentials("the gateway's log", &log);
}
