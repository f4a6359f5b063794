//! Hostile data in the web console, in a real headless Chromium: bodies, headers, senders
//! and unknown-account labels holding `<script>`, `<img onerror=…>` and `javascript:`
//! links go through every view that shows them, and nothing runs or is built from them.

use hyper::Method;
use serde_json::{Value, json};

use crate::browser::{Browser, Kind, launch_in};
use crate::support::{ADMIN_TOKEN, TestGateway, spawn_gateway};

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
    hostile_bodies_headers_senders_and_labels_stay_inert_in(Kind::Chromium).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_headers_senders_and_labels_stay_inert_in_firefox() {
    hostile_bodies_headers_senders_and_labels_stay_inert_in(Kind::Firefox).await;
}

async fn hostile_bodies_headers_senders_and_labels_stay_inert_in(kind: Kind) {
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

    let b = launch_in(kind).await;
    b.sign_in(&gw.admin, ADMIN_TOKEN, "admin").await;
    b.route("#/tail").await;
    b.wait_text("#tail-list", &hostile_id).await;
    assert!(b.text("#tail-list").await.contains(script));
    assert_inert(&b, "live tail").await;
    // Pause, an event arrives, resume: it is shown once, and nothing is shown twice.
    b.click("#tail-toggle").await;
    b.wait_text("#tail-state", "paused").await;
    let later = gw
        .post_hook(
            "open",
            &[("content-type", "application/json")],
            json!({"id": "h2", "sender": img}).to_string(),
        )
        .await;
    let later_id = later.json()["id"].as_str().expect("id").to_owned();
    b.click("#tail-toggle").await;
    b.wait_text("#tail-list", &later_id).await;
    // One more after resuming: once it is shown, everything before it has arrived, so a
    // stream left open while paused would have shown some twice by now.
    let last = gw
        .post_hook(
            "open",
            &[("content-type", "application/json")],
            json!({"id": "h3", "sender": link}).to_string(),
        )
        .await;
    let last_id = last.json()["id"].as_str().expect("id").to_owned();
    b.wait_text("#tail-list", &last_id).await;
    assert_eq!(
        b.js(
            "return document.querySelectorAll('#tail-list li').length",
            vec![]
        )
        .await,
        json!(3)
    );
    assert_inert(&b, "live tail after resuming").await;
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
    // The preview is filled from the latest accepted event, whose sender is markup.
    b.wait_text("#template-preview", link).await;
    assert_inert(&b, "template preview").await;
    b.route("#/ops").await;
    b.wait_text("#reason-chart", "unknown_account").await;
    assert_inert(&b, "dashboard").await;
    b.close().await;
    gw.stop().await;
}
