//! The web console in a real headless Chromium against a real gateway: signing in as each
//! role, the account wizard, events, rejections, the listener switch, audit, export, the
//! dashboard, and hostile data that must stay inert. Saves the screenshots that
//! `docs/console.md` shows.

use hyper::Method;
use serde_json::{Value, json};

use crate::browser::{Browser, launch};
use crate::support::{ADMIN_TOKEN, AUDITOR_TOKEN, TestGateway, hmac_sha256_hex, spawn_gateway};

const SAMPLE: &str = r#"{"id":"ev_1","type":"payment.succeeded","customer":{"phone":"+255700000001"},"order":{"id":77},"amount":25000,"currency":"TZS"}"#;

/// Sends a body signed the way GitHub signs, with `secret`.
async fn send_github(gw: &TestGateway, account: &str, secret: &str, body: &str) -> Value {
    let sig = format!(
        "sha256={}",
        hmac_sha256_hex(secret.as_bytes(), body.as_bytes())
    );
    let a = gw
        .post_hook(
            account,
            &[
                ("content-type", "application/json"),
                ("x-hub-signature-256", &sig),
            ],
            body.to_owned(),
        )
        .await;
    a.json()
}

async fn wizard_creates_shop(b: &Browser, gw: &TestGateway) {
    b.route("#/accounts/new").await;
    b.type_into("#account-name", "shop").await;
    b.find("#provider")
        .await
        .select_by_value("github")
        .await
        .expect("pick github");
    b.wait_text("#provider-help", "Secret").await;
    b.type_into("#secret", "s3cret").await;
    b.paste("#sample", SAMPLE).await;
    b.click("#read-sample").await;
    b.find("[data-pick='$.order.id']").await;
    // Guesses fill the sender and event id; clicking fields sets the rest.
    b.wait_js(
        "return document.querySelector('[data-path=sender]').value === '$.customer.phone'",
        vec![],
    )
    .await;
    b.click("#target-source").await;
    b.click("[data-pick='$.order.id']").await;
    b.click("#target-param").await;
    b.click("[data-pick='$.amount']").await;
    b.wait_text("[data-extracted=source]", "= 77").await;
    b.wait_text("[data-extracted='params.amount']", "= 25000")
        .await;
    b.wait_text("[data-extracted=sender]", "+255700000001")
        .await;
    b.screenshot("wizard").await;
    b.click("#create-account").await;
    b.wait_text("#view h1", "shop").await;
    let url = b
        .js(
            "return document.getElementById('webhook-url').value",
            vec![],
        )
        .await;
    assert_eq!(url, json!(format!("{}/hooks/shop", gw.public)));
    let made = gw
        .admin_call(Method::GET, "/v1/accounts/shop", None)
        .await
        .json();
    assert_eq!(made["paths"]["source"], "$.order.id");
    assert_eq!(made["paths"]["sender"], "$.customer.phone");
    assert_eq!(made["paths"]["params"]["amount"], "$.amount");
    assert_eq!(made["provider"], "github");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_builds_an_account_in_the_wizard_and_follows_its_events() {
    let gw = spawn_gateway().await;
    let b = launch().await;
    b.client
        .goto(&format!("{}/", gw.admin))
        .await
        .expect("goto");
    b.find("#token").await;
    b.screenshot("sign-in").await;
    b.sign_in(&gw.admin, ADMIN_TOKEN, "admin").await;
    wizard_creates_shop(&b, &gw).await;
    b.screenshot("account").await;

    // Try Out: a correctly signed request through the public listener, and its audit row.
    b.click("#try-out").await;
    let tried = b.wait_text("#try-result", "Audit row").await;
    assert!(tried.contains("HTTP 200"), "{tried}");
    assert!(tried.contains("accepted"), "{tried}");

    // A webhook signed outside the gateway is found in the events view.
    let ok = send_github(&gw, "shop", "s3cret", SAMPLE).await;
    assert_eq!(ok["status"], "accepted", "{ok}");
    let id = ok["id"].as_str().expect("an id").to_owned();
    b.route("#/events?account=shop").await;
    b.wait_text("#events-table", &id).await;
    let rows = b.text("#events-table").await;
    assert!(rows.contains("+255700000001"), "{rows}");
    b.click(&format!("a[href='#/events/{id}']")).await;
    b.wait_text("#view h1", &id).await;
    assert!(
        b.text("#event-body")
            .await
            .contains("\"currency\": \"TZS\"")
    );
    b.screenshot("event").await;

    // A forged one: rejected, with its reason in words.
    let forged = send_github(&gw, "shop", "wrong", r#"{"id":"ev_2"}"#).await;
    let forged_id = forged["id"].as_str().expect("an id").to_owned();
    b.route("#/events").await;
    b.find("#event-filters").await;
    b.find("#event-filters select[name=status]")
        .await
        .select_by_value("rejected")
        .await
        .expect("status");
    b.click("#event-filters button[type=submit]").await;
    b.wait_text("#events-table", &forged_id).await;
    let rejected = b.text("#events-table").await;
    assert!(rejected.contains("bad_signature"), "{rejected}");
    assert!(
        !rejected.contains(&id),
        "the accepted event is filtered out"
    );
    b.screenshot("events").await;
    b.route(&format!("#/events/{forged_id}")).await;
    b.wait_text(
        ".verdict",
        "The signature was missing or did not match the body.",
    )
    .await;

    // Export the current search as CSV: a download with the rejected row only.
    b.route("#/events?status=rejected").await;
    b.click("#export-csv").await;
    let csv = String::from_utf8(b.downloaded(".csv").await).expect("utf-8");
    assert!(csv.contains(&forged_id), "{csv}");
    assert!(!csv.contains(&format!("{id},")), "{csv}");

    // The listener switch.
    b.route("#/accounts/shop").await;
    b.click("#listening").await;
    b.wait_text("#notice", "Listener on").await;
    let shown = gw
        .admin_call(Method::GET, "/v1/accounts/shop", None)
        .await
        .json();
    assert_eq!(shown["listening"], true);

    // The accounts list with its counts.
    b.route("#/accounts").await;
    let list = b.wait_text("#accounts-table", "shop").await;
    assert!(list.contains("listening"), "{list}");
    b.screenshot("accounts").await;

    // Verify the chain; the head shown is the one the API gives.
    b.route("#/audit").await;
    b.click("#verify").await;
    b.wait_text("#verify-verdict", "Both chains verify").await;
    let api = gw
        .admin_call(Method::GET, "/v1/audit/verify", None)
        .await
        .json();
    let head = api["logs"][0]["head"].as_str().expect("a head");
    assert!(b.text("#verify-table").await.contains(head));
    b.wait_text("#changes-table", "account.created").await;
    b.screenshot("audit").await;

    // The dashboard draws this hour's outcomes and the rejection reason.
    b.route("#/ops").await;
    b.find("#minute-chart rect.bar.accepted").await;
    b.find("#minute-chart rect.bar.rejected").await;
    b.wait_text("#reason-chart", "bad_signature").await;
    b.screenshot("operations").await;

    // Delete, with confirmation.
    b.route("#/accounts/shop").await;
    b.click("#delete-account").await;
    b.type_into("#confirm-delete", "shop").await;
    b.click("#confirm-delete-button").await;
    b.wait_text("#notice", "deleted").await;
    let gone = gw.admin_call(Method::GET, "/v1/accounts/shop", None).await;
    assert_eq!(gone.status, 404);
    b.close().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_reads_and_verifies_but_sees_no_write_controls() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "shop", "provider": "github", "secret": "s3cret"}))
        .await;
    let ok = send_github(&gw, "shop", "s3cret", SAMPLE).await;
    let id = ok["id"].as_str().expect("an id").to_owned();
    let b = launch().await;

    // A wrong token is refused and nothing is shown.
    b.client
        .goto(&format!("{}/", gw.admin))
        .await
        .expect("goto");
    b.type_into("#token", "not-a-token").await;
    b.click("#signin-form button[type=submit]").await;
    b.wait_text("#signin-error", "not valid").await;
    assert_eq!(
        b.js("return document.getElementById('nav').hidden", vec![])
            .await,
        json!(true)
    );

    b.sign_in(&gw.admin, AUDITOR_TOKEN, "auditor").await;
    // The token is in this tab's session storage, never in the address.
    let url = b.client.current_url().await.expect("url");
    assert!(!url.as_str().contains(AUDITOR_TOKEN));
    b.wait_text("#events-table", &id).await;
    let nav = b
        .js("return [...document.querySelectorAll('#nav a')].filter(a => !a.hidden).map(a => a.textContent)", vec![])
        .await;
    assert_eq!(nav, json!(["Events", "Live tail", "Audit", "Operations"]));
    b.route(&format!("#/events/{id}")).await;
    b.wait_text("#view h1", &id).await;
    b.route("#/audit").await;
    b.click("#verify").await;
    b.wait_text("#verify-verdict", "Both chains verify").await;
    b.route("#/ops").await;
    b.find("#minute-chart").await;
    for write in [
        "#create-account",
        "#toggle-active",
        "#delete-account",
        "#try-out",
        "#redeliver",
        "#listening",
    ] {
        assert_eq!(
            b.js(
                "return document.querySelector(arguments[0]) === null",
                vec![json!(write)]
            )
            .await,
            json!(true),
            "{write} is shown to an auditor"
        );
    }
    // The accounts page draws nothing but the refusal: the server says no regardless.
    b.route("#/accounts").await;
    b.wait_text("#view .error", "admin role").await;
    let refused = b
        .client
        .execute_async(
            "const done = arguments[0]; fetch('/v1/accounts', {method: 'POST', headers: \
             {Authorization: 'Bearer ' + sessionStorage.getItem('hookgate.token')}, \
             body: JSON.stringify({name: 'evil', allow_unverified: true})}).then(r => done(r.status))",
            vec![],
        )
        .await
        .expect("fetch");
    assert_eq!(refused, json!(403));
    assert_eq!(
        gw.admin_call(Method::GET, "/v1/accounts/evil", None)
            .await
            .status,
        404
    );

    // Signing out forgets the token.
    b.click("#signout").await;
    b.find("#signin-form").await;
    assert_eq!(
        b.js("return sessionStorage.getItem('hookgate.token')", vec![])
            .await,
        Value::Null
    );
    b.close().await;
    gw.stop().await;
}

/// Whether anything hostile ran or was built in the page.
async fn assert_inert(b: &Browser, where_: &str) {
    let state = b
        .js(
            "return {pwned: window.__pwned === undefined ? null : window.__pwned, \
             imgs: document.querySelectorAll('img, iframe, object, embed, svg image').length, \
             scripts: [...document.scripts].map(s => s.getAttribute('src')), \
             js_links: document.querySelectorAll('a[href^=\"javascript\" i]').length, \
             handlers: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length}",
            vec![],
        )
        .await;
    assert_eq!(
        state,
        json!({"pwned": null, "imgs": 0, "scripts": ["/console/app.js"], "js_links": 0, "handlers": 0}),
        "{where_}"
    );
}

/// Posts to `/hooks/{label}` with the label's bytes as they are (no client would send
/// them unescaped); returns the audit id of the `unknown_account` row.
async fn unknown_account_label(gw: &TestGateway, label: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = gw.raw_connection().await;
    let request = format!(
        "POST /hooks/{label} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}"
    );
    s.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let problem: Value = serde_json::from_str(body).expect("problem json");
    let id = problem["id"].as_str().expect("an audit id").to_owned();
    assert_eq!(
        gw.event(&id).await["account"],
        label,
        "the label is stored as sent"
    );
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_headers_senders_and_labels_stay_inert() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({
        "name": "open", "allow_unverified": true,
        "paths": {"sender": "$.sender", "source": "$.source", "event_type": "$.type",
                  "event_id": "$.id", "params": {"note": "$.note"}}
    }))
    .await;
    gw.admin_call(
        Method::POST,
        "/v1/accounts/open/listening",
        Some(json!({"listening": true})),
    )
    .await;
    let script = "<script>window.__pwned = 1</script>";
    let img = "<img src=x onerror=\"window.__pwned = 2\">";
    let link = "<a href=\"javascript:window.__pwned = 3\">click</a>";
    let body = json!({"id": "h1", "sender": script, "source": img, "type": link,
                      "note": format!("{script}{img}{link}")})
    .to_string();
    let a = gw
        .post_hook(
            "open",
            &[
                ("content-type", "application/json"),
                ("x-evil", img),
                ("x-link", link),
            ],
            body,
        )
        .await;
    assert_eq!(a.json()["status"], "accepted");
    let hostile_id = a.json()["id"].as_str().expect("id").to_owned();
    // HTTP parsers refuse `<`, `>` and `"` in a request line; what gets through is stored as
    // sent, and must stay text too.
    let label_id = unknown_account_label(
        &gw,
        "javascript:window.__pwned=4;'onerror='window.__pwned=5'",
    )
    .await;

    let b = launch().await;
    b.sign_in(&gw.admin, ADMIN_TOKEN, "admin").await;
    b.route("#/tail").await;
    b.wait_text("#tail-list", &hostile_id).await;
    assert!(b.text("#tail-list").await.contains(script));
    assert_inert(&b, "live tail").await;
    b.route("#/events").await;
    b.wait_text("#events-table", &label_id).await;
    let rows = b.text("#events-table").await;
    assert!(rows.contains(script), "the sender is shown as text: {rows}");
    assert!(
        rows.contains("javascript:window.__pwned=4"),
        "the label is shown as text: {rows}"
    );
    assert_inert(&b, "events list").await;
    b.route(&format!("#/events/{hostile_id}")).await;
    b.wait_text("#event-headers", "x-evil").await;
    assert!(b.text("#event-headers").await.contains(img));
    let shown = b.text("#event-body").await;
    assert!(
        shown.contains("<a href=") && shown.contains("javascript:window.__pwned = 3"),
        "{shown}"
    );
    assert_inert(&b, "event page").await;
    b.route(&format!("#/events/{label_id}")).await;
    b.wait_text("#event-account", "javascript:window.__pwned=4;'onerror=")
        .await;
    assert_inert(&b, "unknown account's event").await;
    b.route("#/accounts/open").await;
    b.wait_text("#template-preview", "").await;
    b.paste("#template", "{{sender}} {{params.note}}").await;
    b.wait_text("#template-preview", script).await;
    assert_inert(&b, "template preview").await;
    b.route("#/ops").await;
    b.wait_text("#reason-chart", "unknown_account").await;
    assert_inert(&b, "dashboard").await;
    b.close().await;
    gw.stop().await;
}
