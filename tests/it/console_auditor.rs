//! The web console as an auditor, in a real headless Chromium: a wrong token is refused,
//! signing in by keyboard, reading events, verifying the chains and the dashboard, no
//! control that writes (and the server refusing a write from the page regardless), a
//! phone's width, and signing out.

use hyper::Method;
use serde_json::{Value, json};

use crate::browser::{Kind, launch_in};
use crate::console::{SAMPLE, forward_settles, gateway_with_a_dead_chat, send_github};
use crate::support::AUDITOR_TOKEN;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_reads_and_verifies_but_sees_no_write_controls() {
    an_auditor_reads_and_verifies_but_sees_no_write_controls_in(Kind::Chromium).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_reads_and_verifies_but_sees_no_write_controls_in_firefox() {
    an_auditor_reads_and_verifies_but_sees_no_write_controls_in(Kind::Firefox).await;
}

async fn an_auditor_reads_and_verifies_but_sees_no_write_controls_in(kind: Kind) {
    let gw = gateway_with_a_dead_chat().await;
    gw.create_account(
        json!({"name": "shop", "provider": "github", "secret": "s3cret",
        "paths": {"event_id": "$.id", "sender": "$.customer.phone"},
        "forward": {"send_to_user": true, "template": "Paid"}}),
    )
    .await;
    gw.admin_call(
        Method::POST,
        "/v1/accounts/shop/listening",
        Some(json!({"listening": true})),
    )
    .await;
    let ok = send_github(&gw, "shop", "s3cret", SAMPLE).await;
    let id = ok["id"].as_str().expect("an id").to_owned();
    // A dead delivery, which an admin could redeliver.
    forward_settles(&gw, &id, "dead").await;
    let b = launch_in(kind).await;

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

    // Signing in by keyboard alone: type the token, press Enter (WebDriver's Enter key).
    let enter = char::from(fantoccini::key::Key::Enter);
    b.type_into("#token", &format!("{AUDITOR_TOKEN}{enter}"))
        .await;
    b.wait_text("#who", "(auditor)").await;
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
    b.wait_text("#view", "Forwarding: dead").await;
    assert_eq!(
        b.js(
            "return document.getElementById('redeliver') === null",
            vec![]
        )
        .await,
        json!(true),
        "no redeliver for an auditor"
    );
    // Readable at phone width: nothing wider than the screen but the tables' own scroll.
    b.client
        .set_window_size(390, 844)
        .await
        .expect("phone size");
    b.route("#/events").await;
    b.find("#events-table").await;
    assert_eq!(
        b.js(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            vec![]
        )
        .await,
        json!(true)
    );
    b.screenshot("phone-events").await;
    b.client
        .set_window_size(1100, 760)
        .await
        .expect("laptop size");
    // The sections are links: reached and followed from the keyboard.
    b.find("#nav a[href='#/audit']")
        .await
        .send_keys("\u{E007}")
        .await
        .expect("press Enter");
    b.wait_js("return document.body.dataset.view === 'audit'", vec![])
        .await;
    b.wait_js(
        "return document.activeElement === document.getElementById('view')",
        vec![],
    )
    .await;
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
