//! The web console in a real headless Chromium against a real gateway: signing in as each
//! role, the account wizard, Try Out, rotation, events with paging, rejections, the
//! listener switch and template, redelivery, audit, export and the dashboard, as an admin.
//! Saves the screenshots that `docs/console.md` shows. The auditor: `console_auditor`;
//! hostile data: `console_hostile`.

use hyper::Method;
use serde_json::{Value, json};

use crate::browser::{Browser, Kind, launch_in};
use crate::support::{ADMIN_TOKEN, TestGateway, hmac_sha256_hex, spawn_with};

/// A payment event, as the tests send it.
pub const SAMPLE: &str = r#"{"id":"ev_1","type":"payment.succeeded","customer":{"phone":"+255700000001"},"order":{"id":77},"amount":25000,"currency":"TZS"}"#;

/// Sends a body signed the way GitHub signs, with `secret`.
pub async fn send_github(gw: &TestGateway, account: &str, secret: &str, body: &str) -> Value {
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

/// A gateway whose chat connector refuses every connection, so a message is `dead` after
/// its one attempt.
pub async fn gateway_with_a_dead_chat() -> TestGateway {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port");
    spawn_with(move |c| {
        c.chat.url = Some(format!("http://{closed}/messages"));
        c.chat.max_attempts = 1;
        c.chat.retry_base_ms = 10;
        c.chat.retry_max_ms = 10;
    })
    .await
}

/// Waits until an event's forward status is `want`.
pub async fn forward_settles(gw: &TestGateway, id: &str, want: &str) {
    let start = std::time::Instant::now();
    loop {
        if gw.event(id).await["forward_status"] == want {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "{id} never became {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Every visible form control has a label.
async fn assert_labelled(b: &Browser, page: &str) {
    let unlabelled = b
        .js(
            "return [...document.querySelectorAll('input, select, textarea')]\
             .filter(e => e.type !== 'hidden' && !e.labels.length && !e.getAttribute('aria-label'))\
             .map(e => e.outerHTML.slice(0, 80))",
            vec![],
        )
        .await;
    assert_eq!(unlabelled, json!([]), "{page}");
}

async fn wizard_creates_shop(b: &Browser, gw: &TestGateway) {
    // At phone width the wizard fits the screen.
    b.client
        .set_window_size(390, 844)
        .await
        .expect("phone size");
    b.route("#/accounts/new").await;
    b.find("#provider").await;
    assert_eq!(
        b.js(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            vec![]
        )
        .await,
        json!(true)
    );
    b.client
        .set_window_size(1100, 760)
        .await
        .expect("laptop size");

    // A name the API refuses: the reason and the field are shown, and nothing is made.
    b.route("#/accounts/new").await;
    b.type_into("#account-name", "Not A Name").await;
    b.click("#create-account").await;
    b.wait_text("#create-result", "(name)").await;
    let listed = gw
        .admin_call(Method::GET, "/v1/accounts", None)
        .await
        .json();
    assert_eq!(listed["accounts"], json!([]));

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
    assert_labelled(b, "wizard").await;
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
    an_admin_builds_an_account_in_the_wizard_and_follows_its_events_in(Kind::Chromium).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_builds_an_account_in_the_wizard_and_follows_its_events_in_firefox() {
    an_admin_builds_an_account_in_the_wizard_and_follows_its_events_in(Kind::Firefox).await;
}

async fn an_admin_builds_an_account_in_the_wizard_and_follows_its_events_in(kind: Kind) {
    let gw = gateway_with_a_dead_chat().await;
    let b = launch_in(kind).await;
    b.client
        .goto(&format!("{}/", gw.admin))
        .await
        .expect("goto");
    b.find("#token").await;
    b.screenshot("sign-in").await;
    b.sign_in(&gw.admin, ADMIN_TOKEN, "admin").await;
    wizard_creates_shop(&b, &gw).await;
    assert_labelled(&b, "account").await;
    b.screenshot("account").await;

    // Deactivate and activate again.
    b.click("#toggle-active").await;
    b.wait_text("#toggle-active", "Activate").await;
    let off = gw
        .admin_call(Method::GET, "/v1/accounts/shop", None)
        .await
        .json();
    assert_eq!(off["active"], false);
    b.click("#toggle-active").await;
    b.wait_text("#toggle-active", "Deactivate").await;

    // Rotation: add a second secret, retire the first; from then on the new one signs.
    b.type_into("#new-secret", "n3w-secret").await;
    b.click("#add-secret").await;
    b.find("[aria-label='Retire secret 1']").await;
    b.click("[aria-label='Retire secret 0']").await;
    b.wait_text("#notice", "Secret retired").await;
    b.wait_js(
        "return document.querySelector(\"[aria-label='Retire secret 1']\") === null",
        vec![],
    )
    .await;
    let old = send_github(&gw, "shop", "s3cret", r#"{"id":"old"}"#).await;
    assert_eq!(old["code"], "unauthorized", "{old}");
    let old_id = old["id"].as_str().expect("an id").to_owned();

    // A destination: added with its URL checked, its secret shown this once, removed.
    b.type_into("#dest-name", "backend").await;
    b.type_into("#dest-url", "http://10.0.0.1/in").await;
    b.click("#add-destination").await;
    b.wait_text("#notice", "[egress] allow").await;
    b.type_into("#dest-url", "https://hooks.example.com/in")
        .await;
    b.click("#add-destination").await;
    b.wait_text("#notice", "Destination backend added").await;
    let secret = b
        .js(
            "return document.getElementById('dest-secret-value').value",
            vec![],
        )
        .await;
    assert!(
        secret.as_str().unwrap_or("").starts_with("whsec_"),
        "{secret}"
    );
    b.wait_text("#destinations", "breaker closed").await;
    b.click("[aria-label='Remove destination backend']").await;
    b.wait_text("#notice", "Destination backend removed").await;
    let none = gw
        .admin_call(Method::GET, "/v1/accounts/shop/destinations", None)
        .await
        .json();
    assert_eq!(none["destinations"], json!([]));

    // Edit a path.
    b.type_into("[data-edit=event_type]", "$.kind").await;
    b.click("#save-paths").await;
    b.wait_text("#notice", "Paths saved").await;
    let edited = gw
        .admin_call(Method::GET, "/v1/accounts/shop", None)
        .await
        .json();
    assert_eq!(edited["paths"]["event_type"], "$.kind");
    assert_eq!(edited["paths"]["params"]["amount"], "$.amount");

    // Try Out: a correctly signed request through the public listener, and its audit row.
    b.click("#try-out").await;
    let tried = b.wait_text("#try-result", "Audit row").await;
    assert!(tried.contains("HTTP 200"), "{tried}");
    assert!(tried.contains("accepted"), "{tried}");

    // A custom account: the full form, then Try Out signs with its scheme.
    b.route("#/accounts/new").await;
    b.type_into("#account-name", "custom_api").await;
    b.find("#provider")
        .await
        .select_by_value("custom")
        .await
        .expect("pick custom");
    b.type_into("#secret", "k3y").await;
    b.type_into("#custom-sig-header", "X-Signature").await;
    b.type_into("section.wizard input[placeholder='sha256=']", "sha256=")
        .await;
    b.click("#create-account").await;
    b.wait_text("#view h1", "custom_api").await;
    let custom = gw
        .admin_call(Method::GET, "/v1/accounts/custom_api", None)
        .await
        .json();
    assert_eq!(custom["signature"]["header"], "X-Signature");
    assert_eq!(custom["signature"]["prefix"], "sha256=");
    b.click("#try-out").await;
    let tried = b.wait_text("#try-result", "Audit row").await;
    assert!(
        tried.contains("HTTP 200") && tried.contains("accepted"),
        "{tried}"
    );
    let body = r#"{"id":"c1"}"#;
    let sig = format!("sha256={}", hmac_sha256_hex(b"k3y", body.as_bytes()));
    let direct = gw
        .post_hook(
            "custom_api",
            &[("content-type", "application/json"), ("x-signature", &sig)],
            body,
        )
        .await;
    assert_eq!(direct.json()["status"], "accepted");

    // A preset with a further setting: Meta asks for its verify token too.
    b.route("#/accounts/new").await;
    b.type_into("#account-name", "wa").await;
    b.find("#provider")
        .await
        .select_by_value("meta")
        .await
        .expect("pick meta");
    b.wait_text("#provider-help", "App Secret").await;
    b.type_into("#secret", "app-s3cret").await;
    b.type_into("[data-setting='handshake.verify_token']", "vt-123")
        .await;
    b.click("#create-account").await;
    b.wait_text("#view h1", "wa").await;
    let challenge = gw
        .send_hook(
            Method::GET,
            "wa?hub.mode=subscribe&hub.verify_token=vt-123&hub.challenge=42",
            &[],
            "",
        )
        .await;
    assert_eq!(challenge.status, 200);
    assert_eq!(&challenge.body[..], b"42");

    // A webhook signed outside the gateway is found in the events view.
    let ok = send_github(&gw, "shop", "n3w-secret", SAMPLE).await;
    assert_eq!(ok["status"], "accepted", "{ok}");
    let id = ok["id"].as_str().expect("an id").to_owned();
    b.route("#/events?account=shop").await;
    b.wait_text("#events-table", &id).await;
    let rows = b.text("#events-table").await;
    assert!(rows.contains("+255700000001"), "{rows}");
    // Paging, one event a page: newest first, older twice, then back.
    let newest: Vec<String> = gw
        .events("account=shop&limit=3")
        .await
        .iter()
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(newest.len(), 3);
    assert_eq!((&newest[0], &newest[2]), (&id, &old_id));
    b.route("#/events?account=shop&limit=1").await;
    b.wait_text("#events-table", &newest[0]).await;
    for page in &newest[1..] {
        b.click("#older").await;
        b.wait_text("#events-table tbody", page).await;
    }
    assert_eq!(
        b.js(
            "return document.querySelectorAll('#events-table tbody tr').length",
            vec![]
        )
        .await,
        json!(1)
    );
    b.click("#newer").await;
    b.wait_text("#events-table tbody", &newest[1]).await;
    // The sender filter, typed into the search form.
    b.route("#/events").await;
    b.type_into("#event-filters input[name=sender]", "+255700000001")
        .await;
    b.click("#event-filters button[type=submit]").await;
    b.wait_js(
        "const t = document.getElementById('events-table'); return location.hash.includes('sender=') \
         && !!t && t.querySelectorAll('tbody tr').length === 1 && t.textContent.includes(arguments[0])",
        vec![json!(id)],
    )
    .await;
    b.route("#/events?account=shop").await;
    b.wait_text("#events-table", &id).await;
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
    b.click("#export-ndjson").await;
    let ndjson = String::from_utf8(b.downloaded(".ndjson").await).expect("utf-8");
    let ids: Vec<String> = ndjson
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        ids,
        [old_id.clone(), forged_id.clone()],
        "oldest first, rejected only"
    );

    // The listener switch.
    b.route("#/accounts/shop").await;
    b.click("#listening").await;
    b.wait_text("#notice", "Listener on").await;
    let shown = gw
        .admin_call(Method::GET, "/v1/accounts/shop", None)
        .await
        .json();
    assert_eq!(shown["listening"], true);

    // The status message: a live preview, saved with send-to-user; an event whose chat
    // delivery dies can be redelivered from its page.
    b.paste("#template", "Paid {{params.amount}} for {{source}}")
        .await;
    b.wait_text("#template-preview", "Paid 25000 for 77").await;
    b.click("#send-to-user").await;
    b.click("#save-template").await;
    b.wait_text("#notice", "Template saved").await;
    let third = send_github(&gw, "shop", "n3w-secret", &SAMPLE.replace("ev_1", "ev_3")).await;
    let third_id = third["id"].as_str().expect("an id").to_owned();
    forward_settles(&gw, &third_id, "dead").await;
    b.route(&format!("#/events/{third_id}")).await;
    b.click("#redeliver").await;
    b.wait_text("#notice", "Queued again").await;

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
    b.type_into("#change-filters input[name=action]", "secret.retired")
        .await;
    b.click("#change-filters button[type=submit]").await;
    b.wait_js(
        "const t = document.getElementById('changes-table'); \
         return !!t && t.querySelectorAll('tbody tr').length === 1",
        vec![],
    )
    .await;
    assert!(b.text("#changes-table").await.contains("shop"));
    b.type_into("#change-filters input[name=action]", "").await;
    b.click("#change-filters button[type=submit]").await;
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
