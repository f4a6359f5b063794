//! Destinations end to end: real HTTP servers on port 0 as the account's own endpoints,
//! whose answers a test scripts (a status, `Retry-After`, or holding the request open).
//! Signatures are checked with the Standard Webhooks reference library for Python
//! (`standardwebhooks`, installed into a virtual environment under the build directory),
//! not with the gateway's code. Storage-neutral: `tests/pg` runs it on PostgreSQL too.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::support::*;

pub(crate) use crate::standin::{Received, Reply, StandIn as Endpoint};

/// A gateway that may reach loopback, with fast retries.
async fn gateway(tweak: impl FnOnce(&mut hookgate::config::Config)) -> TestGateway {
    spawn_with(|c| {
        c.egress.allow = vec!["127.0.0.0/8".into()];
        c.delivery.retry_base_ms = 20;
        c.delivery.retry_max_ms = 200;
        c.delivery.max_attempts = 4;
        c.delivery.timeout_ms = 3_000;
        tweak(c);
    })
    .await
}

/// An unsigned account whose events carry a type and an id.
async fn account(gw: &TestGateway) {
    gw.create_account(json!({"name": "shop", "allow_unverified": true,
        "paths": {"event_type": "$.type", "event_id": "$.id", "sender": "$.customer",
                  "params": {"amount": "$.amount"}}}))
        .await;
}

async fn add_destination(gw: &TestGateway, spec: Value) -> Value {
    let a = gw
        .admin_call(Method::POST, "/v1/accounts/shop/destinations", Some(spec))
        .await;
    assert_eq!(a.status, 201, "{:?}", a.json());
    a.json()
}

async fn post(gw: &TestGateway, body: Value) -> String {
    let a = gw
        .post_hook(
            "shop",
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    a.json()["id"].as_str().expect("id").to_owned()
}

/// Polls the event until its delivery to `dest` has `status`.
async fn delivery_becomes(gw: &TestGateway, id: &str, dest: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let e = gw.event(id).await;
        if let Some(d) = e["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["destination"] == dest)
            && d["status"] == status
        {
            return d.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the delivery to {dest} never became {status}: {}",
            e["deliveries"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The Python interpreter of a virtual environment holding the Standard Webhooks
/// reference library; made once per build directory.
fn standard_webhooks_python() -> std::path::PathBuf {
    static MADE: Mutex<bool> = Mutex::new(false);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("standardwebhooks-venv");
    let python = dir.join("bin").join("python");
    let mut made = MADE.lock().unwrap_or_else(|p| p.into_inner());
    if !*made {
        let ok = std::process::Command::new(&python)
            .args(["-c", "import standardwebhooks"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let status = std::process::Command::new("python3")
                .args(["-m", "venv"])
                .arg(&dir)
                .status()
                .expect("python3 -m venv");
            assert!(status.success(), "cannot make a virtual environment");
            let status = std::process::Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "standardwebhooks"])
                .status()
                .expect("pip");
            assert!(status.success(), "cannot install standardwebhooks");
        }
        *made = true;
    }
    python
}

/// Verifies a received delivery with the reference library; returns its error, if any.
fn verify_with_reference(secret: &str, r: &Received) -> Result<(), String> {
    let python = standard_webhooks_python();
    let headers = json!({
        "webhook-id": r.header("webhook-id"),
        "webhook-timestamp": r.header("webhook-timestamp"),
        "webhook-signature": r.header("webhook-signature"),
    });
    let script = "import sys, json\nfrom standardwebhooks.webhooks import Webhook\n\
                  body = sys.stdin.buffer.read()\n\
                  Webhook(sys.argv[1]).verify(body, json.loads(sys.argv[2]))\n";
    let mut child = std::process::Command::new(python)
        .args(["-c", script, secret, &headers.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&r.body).expect("write body");
    }
    let out = child.wait_with_output().expect("python ran");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn deliveries_verify_with_the_reference_library_and_a_rotation_overlaps() {
    let mut ep = Endpoint::start().await;
    let gw = gateway(|_| {}).await;
    account(&gw).await;
    let created = add_destination(&gw, json!({"name": "backend", "url": ep.url})).await;
    let secret = created["secret"]
        .as_str()
        .expect("secret shown once")
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    // Never again: not in the view, the list or the change log.
    let shown = gw
        .admin_call(Method::GET, "/v1/accounts/shop/destinations/backend", None)
        .await;
    assert!(!String::from_utf8_lossy(&shown.body).contains(&secret[6..]));
    assert_eq!(shown.json()["breaker"]["state"], "closed");
    let changes = gw.admin_call(Method::GET, "/v1/changes", None).await;
    assert!(!String::from_utf8_lossy(&changes.body).contains(&secret[6..]));
    assert!(String::from_utf8_lossy(&changes.body).contains("destination.created"));

    let body = json!({"type": "paid", "id": "p-1", "customer": "+255700", "amount": 250});
    let id = post(&gw, body.clone()).await;
    let r = ep.next().await;
    // The body as received, the fields in headers.
    assert_eq!(r.json(), body);
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("webhook-id"), format!("{id}_backend"));
    assert_eq!(r.header("webhook-event-type"), "paid");
    assert_eq!(r.header("hookgate-event-id"), id);
    assert_eq!(r.header("hookgate-source-event-id"), "p-1");
    assert_eq!(r.header("hookgate-sender"), "+255700");
    verify_with_reference(&secret, &r).expect("the reference library verifies it");
    assert!(verify_with_reference("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &r).is_err());
    let d = delivery_becomes(&gw, &id, "backend", "delivered").await;
    assert_eq!(d["history"][0]["http_status"], 200);
    assert_eq!(d["history"][0]["detail"], "HTTP 200: answer 200");

    // Rotation: the answer shows the new secret once; both sign during the overlap.
    let rotated = gw
        .admin_call(
            Method::POST,
            "/v1/accounts/shop/destinations/backend/rotate-secret",
            Some(json!({"overlap_secs": 3600})),
        )
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.json());
    let new_secret = rotated.json()["secret"].as_str().expect("new").to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!(rotated.json()["signing"]["secrets_live"], 2);
    post(&gw, json!({"type": "paid", "id": "p-2"})).await;
    let r = ep.next().await;
    assert_eq!(r.header("webhook-signature").split(' ').count(), 2);
    verify_with_reference(&new_secret, &r).expect("the new secret verifies");
    verify_with_reference(&secret, &r).expect("the old secret still verifies");
    gw.stop().await;
}

#[tokio::test]
async fn failures_retry_then_die_and_a_bulk_redrive_delivers_with_the_same_id() {
    let mut ep = Endpoint::start().await;
    ep.answer_with(Reply::Status(500));
    let gw = gateway(|c| c.delivery.max_attempts = 3).await;
    account(&gw).await;
    add_destination(&gw, json!({"name": "backend", "url": ep.url})).await;
    let a = post(&gw, json!({"type": "paid", "id": "a"})).await;
    let b = post(&gw, json!({"type": "paid", "id": "b"})).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(ep.next().await.header("webhook-id").to_owned());
    }
    let dead_a = delivery_becomes(&gw, &a, "backend", "dead").await;
    delivery_becomes(&gw, &b, "backend", "dead").await;
    assert_eq!(dead_a["attempts"], 3);
    let outcomes: Vec<&str> = dead_a["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["outcome"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(outcomes, ["retrying", "retrying", "dead"]);
    assert_eq!(dead_a["history"][2]["detail"], "HTTP 500: answer 500");
    assert_eq!(
        ids.iter().filter(|i| **i == format!("{a}_backend")).count(),
        3
    );

    // Bulk redrive of everything dead for the destination.
    ep.answer_with(Reply::Status(204));
    let r = gw
        .admin_call(
            Method::POST,
            "/v1/deliveries/redrive",
            Some(json!({"account": "shop", "destination": "backend", "status": ["dead"]})),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.json());
    assert_eq!(r.json()["requeued"], 2);
    let mut again = vec![
        ep.next().await.header("webhook-id").to_owned(),
        ep.next().await.header("webhook-id").to_owned(),
    ];
    again.sort();
    let mut want = vec![format!("{a}_backend"), format!("{b}_backend")];
    want.sort();
    assert_eq!(again, want, "the same webhook-id as before");
    let d = delivery_becomes(&gw, &a, "backend", "delivered").await;
    assert_eq!(d["history"].as_array().map(Vec::len), Some(4));
    // A redrive of a time range with nothing in it changes nothing.
    let r = gw
        .admin_call(
            Method::POST,
            "/v1/deliveries/redrive",
            Some(json!({"account": "shop", "until": "2000-01-01T00:00:00Z", "status": ["delivered"]})),
        )
        .await;
    assert_eq!(r.json()["requeued"], 0);
    // One delivery again, by its id.
    let one = gw
        .admin_call(
            Method::POST,
            &format!(
                "/v1/deliveries/{}/redeliver",
                d["id"].as_str().unwrap_or("")
            ),
            None,
        )
        .await;
    assert_eq!(one.json()["requeued"], 1);
    assert_eq!(ep.next().await.header("webhook-id"), format!("{a}_backend"));
    let changes = gw
        .admin_call(Method::GET, "/v1/changes?action=deliveries.redriven", None)
        .await;
    assert_eq!(changes.json()["changes"].as_array().map(Vec::len), Some(3));
    assert!(
        gw.metric(
            "hookgate_destination_attempts_total{destination=\"shop/backend\",outcome=\"dead\"}"
        )
        .await
            >= 2.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_answer_holding_a_nul_is_recorded_with_the_attempt_on_every_engine() {
    let mut ep = Endpoint::start().await;
    ep.answer_with(Reply::Nul(500));
    let gw = gateway(|c| c.delivery.max_attempts = 2).await;
    account(&gw).await;
    add_destination(&gw, json!({"name": "backend", "url": ep.url})).await;
    let id = post(&gw, json!({"type": "paid", "id": "nul"})).await;
    ep.next().await;
    ep.next().await;
    let dead = delivery_becomes(&gw, &id, "backend", "dead").await;
    let details: Vec<&str> = dead["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["detail"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(details, ["HTTP 500: refused\u{FFFD}here"; 2]);
    gw.stop().await;
}

#[tokio::test]
async fn an_attempt_ending_after_its_destination_was_removed_leaves_the_delivery_cancelled() {
    let mut ep = Endpoint::start().await;
    ep.answer_with(Reply::Hang);
    let gw = gateway(|c| c.delivery.timeout_ms = 1_000).await;
    account(&gw).await;
    add_destination(&gw, json!({"name": "backend", "url": ep.url})).await;
    let id = post(&gw, json!({"type": "paid", "id": "late"})).await;
    ep.next().await;
    let gone = gw
        .admin_call(
            Method::DELETE,
            "/v1/accounts/shop/destinations/backend",
            None,
        )
        .await;
    assert!(gone.status.is_success(), "{:?}", gone.json());
    delivery_becomes(&gw, &id, "backend", "cancelled").await;
    // The held attempt times out after the removal: it is recorded, and changes nothing.
    let deadline = Instant::now() + Duration::from_secs(20);
    let d = loop {
        let e = gw.event(&id).await;
        let d = e["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["destination"] == "backend")
            .cloned()
            .expect("the delivery stays listed");
        if d["history"].as_array().is_some_and(|h| !h.is_empty()) {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "the attempt was never recorded: {d}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(d["status"], "cancelled", "{d}");
    ep.nothing_within(Duration::from_millis(1_500)).await;
    gw.stop().await;
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let mut ep = Endpoint::start().await;
    ep.script(&[Reply::RetryAfter(503, "1")]);
    let gw = gateway(|c| c.delivery.retry_max_ms = 5_000).await;
    account(&gw).await;
    add_destination(&gw, json!({"name": "backend", "url": ep.url})).await;
    post(&gw, json!({"type": "paid", "id": "r"})).await;
    let first = ep.next().await;
    let second = ep.next().await;
    let waited = second.at - first.at;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}, not after the 1 s Retry-After"
    );
    gw.stop().await;
}

#[tokio::test]
async fn event_types_filters_and_mappings_choose_and_shape_what_is_sent() {
    let mut big = Endpoint::start().await;
    let mut mapped = Endpoint::start().await;
    let gw = gateway(|_| {}).await;
    account(&gw).await;
    add_destination(
        &gw,
        json!({"name": "big", "url": big.url, "event_types": ["paid"],
               "filter": [{"path": "$.amount", "op": "gt", "value": 100},
                          {"path": "event.sender", "op": "exists"}]}),
    )
    .await;
    add_destination(
        &gw,
        json!({"name": "mapped", "url": mapped.url,
               "mapping": {"kind": "{{event.type}}", "amount": "{{$.amount}}",
                           "text": "Paid {{event.params.amount}} by {{event.sender}}",
                           "ref": "{{event.gateway_id}}"}}),
    )
    .await;
    let small = post(
        &gw,
        json!({"type": "paid", "id": "1", "customer": "c", "amount": 5}),
    )
    .await;
    let refund = post(
        &gw,
        json!({"type": "refund", "id": "2", "customer": "c", "amount": 500}),
    )
    .await;
    let large = post(
        &gw,
        json!({"type": "paid", "id": "3", "customer": "c", "amount": 500}),
    )
    .await;
    // Only the large payment passes the filter.
    let r = big.next().await;
    assert_eq!(r.header("hookgate-event-id"), large);
    big.nothing_within(Duration::from_millis(300)).await;
    assert_eq!(
        gw.event(&small).await["deliveries"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // The mapping shapes every event's body.
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let r = mapped.next().await;
        assert_eq!(r.header("content-type"), "application/json");
        bodies.push(r.json());
    }
    bodies.sort_by_key(|b| b["ref"].as_str().unwrap_or("").to_owned());
    assert!(bodies.contains(
        &json!({"kind": "refund", "amount": 500, "text": "Paid 500 by c", "ref": refund})
    ));
    assert!(
        bodies.contains(&json!({"kind": "paid", "amount": 5, "text": "Paid 5 by c", "ref": small}))
    );
    // A bad filter is refused with its place named; nothing changed.
    let bad = gw
        .admin_call(
            Method::PATCH,
            "/v1/accounts/shop/destinations/big",
            Some(json!({"filter": [{"path": "$.amount", "op": "gt", "value": [1]}]})),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json()["field"], "filter[0]");
    let kept = gw
        .admin_call(Method::GET, "/v1/accounts/shop/destinations/big", None)
        .await;
    assert_eq!(kept.json()["filter"][0]["value"], 100);
    gw.stop().await;
}

#[tokio::test]
async fn egress_is_refused_at_save_and_at_connect() {
    let mut ep = Endpoint::start().await;
    let gw = spawn_with(|c| {
        c.delivery.retry_base_ms = 20;
        c.delivery.max_attempts = 2;
    })
    .await;
    account(&gw).await;
    // An address literal in a special-use range: refused when saved.
    for url in [
        ep.url.clone(),
        "http://169.254.169.254/latest/meta-data".into(),
        "http://10.0.0.8/".into(),
        "http://[::1]/".into(),
    ] {
        let a = gw
            .admin_call(
                Method::POST,
                "/v1/accounts/shop/destinations",
                Some(json!({"name": "inside", "url": url})),
            )
            .await;
        assert_eq!(a.status, 422, "{url}: {:?}", a.json());
        assert_eq!(a.json()["field"], "url");
        assert!(
            a.json()["detail"]
                .as_str()
                .unwrap_or("")
                .contains("[egress] allow")
        );
    }
    let listed = gw
        .admin_call(Method::GET, "/v1/accounts/shop/destinations", None)
        .await;
    assert_eq!(listed.json()["destinations"], json!([]));
    // A host name is judged when connecting: localhost resolves to loopback.
    add_destination(
        &gw,
        json!({"name": "named", "url": format!("http://localhost:{}/in", ep.port)}),
    )
    .await;
    let id = post(&gw, json!({"type": "paid", "id": "x"})).await;
    let d = delivery_becomes(&gw, &id, "named", "dead").await;
    let detail = d["history"][0]["detail"].as_str().unwrap_or("").to_owned();
    assert!(detail.contains("egress refused"), "{detail}");
    assert_eq!(d["attempts"], 1, "a refusal is final: {d}");
    ep.nothing_within(Duration::from_millis(200)).await;
    gw.stop().await;

    // Saved under an allowlist that is then removed: refused at connect.
    let gw = spawn_with(|c| c.egress.allow = vec!["127.0.0.0/8".into()]).await;
    account(&gw).await;
    add_destination(&gw, json!({"name": "literal", "url": ep.url})).await;
    let mut gw = gw;
    gw.config.egress.allow = Vec::new();
    let gw = gw.restart().await;
    let id = post(&gw, json!({"type": "paid", "id": "y"})).await;
    let d = delivery_becomes(&gw, &id, "literal", "dead").await;
    assert!(
        d["history"][0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("egress refused"),
        "{d}"
    );
    ep.nothing_within(Duration::from_millis(200)).await;
    gw.stop().await;
}

/// A destination answering 502 to a gateway whose breaker opens after `failures` in a
/// row and probes every `probe_ms`, retrying every 10 ms meanwhile.
async fn failing_destination(failures: u32, probe_ms: u64) -> (Endpoint, TestGateway) {
    let ep = Endpoint::start().await;
    ep.answer_with(Reply::Status(502));
    let gw = gateway(|c| {
        c.delivery.breaker_failures = failures;
        c.delivery.breaker_probe_ms = probe_ms;
        c.delivery.max_attempts = 100;
        c.delivery.retry_base_ms = 10;
        c.delivery.retry_max_ms = 10;
    })
    .await;
    account(&gw).await;
    add_destination(&gw, json!({"name": "backend", "url": ep.url})).await;
    (ep, gw)
}

#[tokio::test]
async fn a_failing_destination_is_paused_probed_and_resumed() {
    let (mut ep, gw) = failing_destination(3, 300).await;
    let id = post(&gw, json!({"type": "paid", "id": "b1"})).await;
    ep.next().await;
    ep.next().await;
    let third = ep.next().await;
    // Open: nothing goes until the probe interval has passed since the third failure.
    let view = gw
        .admin_call(Method::GET, "/v1/accounts/shop/destinations/backend", None)
        .await;
    assert_ne!(
        view.json()["breaker"]["state"],
        "closed",
        "{:?}",
        view.json()
    );
    let probe = ep.next().await;
    assert!(
        probe.at - third.at >= Duration::from_millis(300),
        "probed {:?} after opening, before the interval",
        probe.at - third.at
    );
    // The probe failed: open again; then the destination recovers and a probe closes it.
    ep.answer_with(Reply::Status(200));
    ep.next().await;
    delivery_becomes(&gw, &id, "backend", "delivered").await;
    let view = gw
        .admin_call(Method::GET, "/v1/accounts/shop/destinations/backend", None)
        .await;
    assert_eq!(view.json()["breaker"]["state"], "closed");
    // The waiting deliveries kept their budget: far fewer attempts than while it failed.
    let e = gw.event(&id).await;
    assert!(
        e["deliveries"][0]["attempts"].as_i64().unwrap_or(99) <= 6,
        "{e}"
    );
    gw.stop().await;
}

/// The outbox reads the worker makes while `watch` runs, which must take a second or more.
async fn reads_during(gw: &TestGateway, watch: impl std::future::Future<Output = ()>) -> f64 {
    let before = gw.metric("hookgate_outbox_reads_total").await;
    assert!(
        before >= 1.0,
        "the worker read the outbox for the first attempt"
    );
    watch.await;
    gw.metric("hookgate_outbox_reads_total").await - before
}

#[tokio::test]
async fn an_open_breaker_is_waited_out_and_probed_when_it_reopens_without_polling() {
    let (mut ep, gw) = failing_destination(1, 1_500).await;
    post(&gw, json!({"type": "paid", "id": "w1"})).await;
    let failed = ep.next().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw
        .admin_call(Method::GET, "/v1/accounts/shop/destinations/backend", None)
        .await
        .json()["breaker"]["state"]
        != "open"
    {
        assert!(Instant::now() < deadline, "the breaker never opened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let paused = |kind: &str| format!("hookgate_paused_lanes{{kind=\"{kind}\"}}");
    assert_eq!(gw.metric(&paused("destination")).await, 1.0);
    assert_eq!(gw.metric(&paused("chat")).await, 0.0);
    // The delivery is due again within 10 ms, but its lane is paused: nothing goes, and
    // the worker does not read the outbox over and over while it waits.
    let reads = reads_during(&gw, ep.nothing_within(Duration::from_secs(1))).await;
    assert!(
        reads <= 3.0,
        "{reads} reads of the outbox while the breaker was open"
    );
    // It wakes when the breaker lets a probe through, not at its longest idle wait.
    let probe = ep.next().await;
    let after = probe.at - failed.at;
    assert!(
        after >= Duration::from_millis(1_500) && after < Duration::from_millis(2_500),
        "probed {after:?} after the failure that opened the breaker"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_attempt_in_flight_is_waited_for_without_polling_the_outbox() {
    let mut ep = Endpoint::start().await;
    ep.answer_with(Reply::Hang);
    let gw = gateway(|c| c.delivery.timeout_ms = 10_000).await;
    account(&gw).await;
    add_destination(&gw, json!({"name": "backend", "url": ep.url})).await;
    post(&gw, json!({"type": "paid", "id": "h1"})).await;
    post(&gw, json!({"type": "paid", "id": "h2"})).await;
    ep.next().await;
    // One in flight per destination: the second waits for the first attempt to end.
    let reads = reads_during(&gw, ep.nothing_within(Duration::from_secs(1))).await;
    assert!(
        reads <= 3.0,
        "{reads} reads of the outbox while one attempt was in flight"
    );
    gw.stop().await;
}

#[tokio::test]
async fn one_in_flight_keeps_acceptance_order_per_destination() {
    let mut ep = Endpoint::start().await;
    let gw = gateway(|_| {}).await;
    account(&gw).await;
    add_destination(&gw, json!({"name": "backend", "url": ep.url})).await;
    let mut sent = Vec::new();
    for i in 0..8 {
        sent.push(post(&gw, json!({"type": "paid", "id": format!("o{i}")})).await);
    }
    let mut got = Vec::new();
    for _ in 0..8 {
        got.push(ep.next().await.header("hookgate-event-id").to_owned());
    }
    assert_eq!(got, sent);
    gw.stop().await;
}

#[tokio::test]
async fn a_delivery_held_open_at_a_restart_goes_again_with_the_same_id() {
    let mut ep = Endpoint::start().await;
    ep.script(&[Reply::Hang]);
    let gw = gateway(|_| {}).await;
    account(&gw).await;
    add_destination(&gw, json!({"name": "backend", "url": ep.url})).await;
    let id = post(&gw, json!({"type": "paid", "id": "h"})).await;
    let first = ep.next().await;
    let gw = gw.restart().await;
    let again = ep.next().await;
    assert_eq!(first.header("webhook-id"), again.header("webhook-id"));
    assert_eq!(again.header("webhook-id"), format!("{id}_backend"));
    delivery_becomes(&gw, &id, "backend", "delivered").await;
    gw.stop().await;
}

#[tokio::test]
async fn destinations_are_managed_and_bad_input_is_named() {
    let gw = gateway(|_| {}).await;
    account(&gw).await;
    let ep = Endpoint::start().await;
    add_destination(&gw, json!({"name": "backend", "url": ep.url})).await;
    let dup = gw
        .admin_call(
            Method::POST,
            "/v1/accounts/shop/destinations",
            Some(json!({"name": "backend", "url": ep.url})),
        )
        .await;
    assert_eq!(dup.status, 409);
    for (spec, field) in [
        (json!({"url": ep.url}), "name"),
        (json!({"name": "x", "url": "ftp://a.example/"}), "url"),
        (
            json!({"name": "x", "url": ep.url, "max_in_flight": 0}),
            "max_in_flight",
        ),
        (
            json!({"name": "x", "url": ep.url, "mapping": {"a": "{{$.b"}}),
            "mapping.a",
        ),
        (
            json!({"name": "x", "url": ep.url, "secret": "mine"}),
            "destination",
        ),
    ] {
        let a = gw
            .admin_call(
                Method::POST,
                "/v1/accounts/shop/destinations",
                Some(spec.clone()),
            )
            .await;
        assert_eq!(a.status, 422, "{spec}");
        assert_eq!(a.json()["field"], field, "{spec}: {:?}", a.json());
    }
    let patched = gw
        .admin_call(
            Method::PATCH,
            "/v1/accounts/shop/destinations/backend",
            Some(json!({"enabled": false, "rate_per_sec": 5})),
        )
        .await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.json()["enabled"], false);
    assert!(patched.json().get("secret").is_none());
    // Disabled: nothing new is queued for it.
    let id = post(&gw, json!({"type": "paid", "id": "d"})).await;
    assert_eq!(gw.event(&id).await["deliveries"], json!([]));
    let gone = gw
        .admin_call(
            Method::DELETE,
            "/v1/accounts/shop/destinations/backend",
            None,
        )
        .await;
    assert_eq!(gone.status, 200);
    let actions: Vec<String> = gw
        .admin_call(Method::GET, "/v1/changes?account=shop", None)
        .await
        .json()["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["action"].as_str().unwrap_or("").to_owned())
        .collect();
    for a in [
        "destination.created",
        "destination.updated",
        "destination.deleted",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
    // A restart loads what is stored.
    add_destination(&gw, json!({"name": "again", "url": ep.url})).await;
    let gw = gw.restart().await;
    let listed = gw
        .admin_call(Method::GET, "/v1/accounts/shop/destinations", None)
        .await;
    assert_eq!(listed.json()["destinations"][0]["name"], "again");
    // Deleting the account deletes its destinations: a new account of that name has none.
    let gone = gw
        .admin_call(Method::DELETE, "/v1/accounts/shop", None)
        .await;
    assert_eq!(gone.status, 200);
    account(&gw).await;
    let listed = gw
        .admin_call(Method::GET, "/v1/accounts/shop/destinations", None)
        .await;
    assert_eq!(listed.json()["destinations"], json!([]));
    let gw = gw.restart().await;
    let listed = gw
        .admin_call(Method::GET, "/v1/accounts/shop/destinations", None)
        .await;
    assert_eq!(listed.json()["destinations"], json!([]));
    gw.stop().await;
}

#[tokio::test]
async fn an_account_that_keeps_no_body_delivers_only_through_a_mapping() {
    let mut ep = Endpoint::start().await;
    let gw = gateway(|c| c.delivery.max_attempts = 1).await;
    gw.create_account(
        json!({"name": "shop", "allow_unverified": true, "store_body": false,
        "paths": {"event_type": "$.type", "event_id": "$.id"}}),
    )
    .await;
    add_destination(&gw, json!({"name": "raw", "url": ep.url})).await;
    add_destination(
        &gw,
        json!({"name": "fields", "url": ep.url,
        "mapping": {"type": "{{event.type}}", "id": "{{event.id}}", "amount": "{{$.amount}}"}}),
    )
    .await;
    let id = post(&gw, json!({"type": "paid", "id": "nb", "amount": 3})).await;
    let r = ep.next().await;
    assert_eq!(
        r.json(),
        json!({"type": "paid", "id": "nb", "amount": null})
    );
    let d = delivery_becomes(&gw, &id, "raw", "dead").await;
    assert!(
        d["history"][0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("store_body"),
        "{d}"
    );
    ep.nothing_within(Duration::from_millis(200)).await;
    gw.stop().await;
}

/// Runs the real CLI against the gateway's admin API.
async fn cli(gw: &TestGateway, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOOKGATE_URL", &gw.admin)
        .env("HOOKGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .await
        .expect("run the CLI")
}

#[tokio::test]
async fn the_cli_adds_lists_edits_rotates_redrives_and_removes() {
    let gw = gateway(|_| {}).await;
    account(&gw).await;
    let ep = Endpoint::start().await;
    let out = cli(
        &gw,
        &[
            "destinations",
            "add",
            "shop",
            "backend",
            &ep.url,
            "--spec",
            r#"{"event_types": ["paid"]}"#,
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(added["secret"].as_str().unwrap_or("").starts_with("whsec_"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown this once"));
    let out = cli(&gw, &["destinations", "list", "shop"]).await;
    let listed: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(listed["destinations"][0]["event_types"], json!(["paid"]));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("whsec_"));
    let out = cli(
        &gw,
        &[
            "destinations",
            "edit",
            "shop",
            "backend",
            r#"{"max_in_flight": 4}"#,
        ],
    )
    .await;
    assert!(out.status.success());
    let out = cli(&gw, &["destinations", "show", "shop", "backend"]).await;
    let shown: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(shown["max_in_flight"], 4);
    let out = cli(
        &gw,
        &[
            "destinations",
            "rotate",
            "shop",
            "backend",
            "--overlap-secs",
            "60",
        ],
    )
    .await;
    let rotated: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_ne!(rotated["secret"], added["secret"]);
    let out = cli(
        &gw,
        &[
            "destinations",
            "redrive",
            "shop",
            "--status",
            "dead",
            "--status",
            "delivered",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let redriven: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(redriven["requeued"], 0);
    // A refusal names the field and exits non-zero.
    let out = cli(
        &gw,
        &["destinations", "add", "shop", "inside", "http://10.1.1.1/"],
    )
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("(field url)"));
    let out = cli(&gw, &["destinations", "remove", "shop", "backend"]).await;
    assert!(out.status.success());
    let out = cli(&gw, &["destinations", "list", "shop"]).await;
    let listed: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(listed["destinations"], json!([]));
    gw.stop().await;
}

#[tokio::test]
async fn an_https_destination_is_reached_over_tls() {
    use tokio::io::AsyncReadExt as _;
    // A listener that records the first bytes a client sends: a TLS ClientHello begins
    // with a handshake record (0x16, then the version's major byte 0x03).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut first = [0u8; 3];
            if s.read_exact(&mut first).await.is_ok() {
                let _ = tx.send(first);
            }
        }
    });
    let gw = gateway(|c| c.delivery.max_attempts = 1).await;
    account(&gw).await;
    add_destination(
        &gw,
        json!({"name": "secure", "url": format!("https://127.0.0.1:{port}/in")}),
    )
    .await;
    let id = post(&gw, json!({"type": "paid", "id": "tls"})).await;
    let hello = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("the gateway connected")
        .expect("bytes");
    assert_eq!(
        &hello[..2],
        &[0x16, 0x03],
        "a TLS handshake, not plain HTTP"
    );
    // The listener speaks no TLS: the attempt fails and is recorded, nothing delivered.
    let d = delivery_becomes(&gw, &id, "secure", "dead").await;
    assert_eq!(d["history"][0]["http_status"], Value::Null);
    gw.stop().await;
}

#[tokio::test]
async fn a_rate_limit_spaces_attempts_and_a_long_answer_is_read_only_up_to_the_cap() {
    let mut ep = Endpoint::start().await;
    ep.answer_with(Reply::Big(4 * 1024 * 1024));
    let gw = gateway(|c| c.delivery.max_response_bytes = 1024).await;
    account(&gw).await;
    add_destination(
        &gw,
        json!({"name": "backend", "url": ep.url, "max_in_flight": 4, "rate_per_sec": 5}),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(post(&gw, json!({"type": "paid", "id": format!("rl{i}")})).await);
    }
    let mut times = Vec::new();
    for _ in 0..4 {
        times.push(ep.next().await.at);
    }
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(100),
            "attempts {:?} apart at 5 a second",
            pair[1] - pair[0]
        );
    }
    // A 4 MiB answer: judged by its status, and only its start kept.
    let d = delivery_becomes(&gw, &ids[0], "backend", "delivered").await;
    let detail = d["history"][0]["detail"].as_str().unwrap_or("");
    assert!(detail.starts_with("HTTP 200: xxx"), "{detail}");
    assert!(detail.len() < 600, "{} characters kept", detail.len());
    gw.stop().await;
}

#[tokio::test]
async fn metrics_show_the_backlog_and_its_oldest_age() {
    let mut ep = Endpoint::start().await;
    ep.answer_with(Reply::Hang);
    let gw = gateway(|_| {}).await;
    account(&gw).await;
    add_destination(&gw, json!({"name": "backend", "url": ep.url})).await;
    assert_eq!(gw.metric("hookgate_destination_backlog").await, 0.0);
    for i in 0..3 {
        post(&gw, json!({"type": "paid", "id": format!("m{i}")})).await;
    }
    ep.next().await;
    assert_eq!(gw.metric("hookgate_destination_backlog").await, 3.0);
    assert!(
        gw.metric("hookgate_destination_oldest_pending_seconds")
            .await
            >= 0.0
    );
    gw.stop().await;
}

/// Rows of a table, read from the database directly (SQLite's library, or `psql`).
fn rows_in(gw: &TestGateway, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {table}");
    match gw.db.to_str().filter(|d| d.starts_with("postgres://")) {
        Some(url) => crate::pg::psql(url, &sql)
            .unwrap_or_else(|e| panic!("count: {e}"))
            .trim()
            .parse()
            .expect("a count"),
        None => rusqlite::Connection::open(&gw.db)
            .expect("open db")
            .query_row(&sql, [], |r| r.get(0))
            .expect("count"),
    }
}

#[tokio::test]
async fn pruning_takes_finished_deliveries_with_their_events_and_leaves_waiting_ones() {
    let mut ep = Endpoint::start().await;
    let gw = gateway(|_| {}).await;
    account(&gw).await;
    add_destination(&gw, json!({"name": "backend", "url": ep.url})).await;
    let done = post(&gw, json!({"type": "paid", "id": "p1"})).await;
    ep.next().await;
    delivery_becomes(&gw, &done, "backend", "delivered").await;
    ep.answer_with(Reply::Hang);
    let waiting = post(&gw, json!({"type": "paid", "id": "p2"})).await;
    ep.next().await;
    assert_eq!(rows_in(&gw, "deliveries"), 2);
    assert_eq!(rows_in(&gw, "delivery_attempts"), 1);
    let later = gw.event(&waiting).await["received_at"].clone();
    let pruned = gw
        .admin_call(
            Method::POST,
            "/v1/audit/prune",
            Some(json!({"before": later})),
        )
        .await;
    assert!(pruned.status.is_success(), "{:?}", pruned.json());
    assert_eq!(
        rows_in(&gw, "deliveries"),
        1,
        "the finished one went with its event"
    );
    assert_eq!(rows_in(&gw, "delivery_attempts"), 0);
    gw.stop().await;
}
