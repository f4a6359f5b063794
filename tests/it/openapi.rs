//! The OpenAPI document against the running gateway: it is served without a token, every
//! documented operation is routed, every answer a walk of requests gets is documented for
//! its operation with its content type, and every documented answer is seen in the walk
//! (but 503, which needs a storage fault: the `faults` tests stage those).

use std::collections::BTreeSet;

use hyper::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN_TOKEN, AUDITOR_TOKEN, hmac_sha256_hex, spawn_with};

/// One request of the walk: the documented operation it exercises, and how to send it.
struct Call {
    op: (&'static str, &'static str),
    method: Method,
    path: String,
    token: Option<&'static str>,
    body: Option<String>,
    headers: Vec<(&'static str, String)>,
}

fn call(op: (&'static str, &'static str), path: &str, token: Option<&'static str>) -> Call {
    let method = Method::from_bytes(op.0.to_uppercase().as_bytes()).unwrap_or(Method::GET);
    Call {
        op,
        method,
        path: path.to_owned(),
        token,
        body: None,
        headers: Vec::new(),
    }
}

fn with_body(mut c: Call, body: Value) -> Call {
    c.body = Some(body.to_string());
    c
}

const A: Option<&str> = Some(ADMIN_TOKEN);
const R: Option<&str> = Some(AUDITOR_TOKEN);
const BAD: Option<&str> = Some("not-a-token");

#[tokio::test]
async fn every_route_and_documented_answer_holds_against_the_running_gateway() {
    let gw = spawn_with(|c| {
        c.limits.body_timeout_secs = 1;
        c.limits.max_body_bytes = 4096;
        c.limits.account_rate_per_sec = 1;
        c.limits.account_burst = 4;
        // A chat connector nobody answers, tried once: the delivery is dead at once.
        c.chat.url = Some(closed_url());
        c.chat.max_attempts = 1;
    })
    .await;
    let served = gw
        .client
        .send(
            Method::GET,
            &format!("{}/v1/openapi.json", gw.admin),
            &[],
            "",
        )
        .await
        .expect("served");
    assert_eq!(served.status, 200);
    let doc = served.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let sig = |b: &str| format!("sha256={}", hmac_sha256_hex(b"s3cret", b.as_bytes()));
    gw.create_account(json!({"name": "shop", "signature": {"header": "X-Signature", "prefix": "sha256=", "secrets": ["s3cret"]},
        "paths": {"event_id": "$.id"}})).await;
    // Try Out's own account, so its test request leaves shop's rate budget alone, and one
    // whose key it cannot sign with.
    gw.create_account(json!({"name": "trial", "signature": {"header": "X-Signature", "prefix": "sha256=", "secrets": ["s3cret"]}})).await;
    // Try Out cannot sign for a public-key account (it holds no private key): its 422.
    gw.create_account(json!({"name": "public_key_acct", "provider": "discord",
        "secret": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"}))
        .await;
    gw.create_account(json!({"name": "meta_acct", "provider": "meta", "secret": "app-secret", "handshake": {"verify_token": "vt-123"}})).await;
    let ok_body = r#"{"id":"x1"}"#;
    gw.post_hook("shop", &[("x-signature", &sig(ok_body))], ok_body)
        .await;
    // A dead delivery to redeliver: a listening account that messages its sender.
    gw.create_account(json!({"name": "talk", "allow_unverified": true, "paths": {"sender": "$.to", "event_id": "$.id"},
        "forward": {"send_to_user": true, "template": "hi"}})).await;
    gw.admin_call(
        Method::POST,
        "/v1/accounts/talk/listening",
        Some(json!({"listening": true})),
    )
    .await;
    let dead = gw
        .post_hook("talk", &[], r#"{"id":"d1","to":"+255700000001"}"#)
        .await
        .json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while gw.event(&dead).await["forward_status"] != "dead" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the delivery never died"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let mut not_json = Vec::new();
    // Bodies that are not JSON: 400, before anything is looked up.
    for (op, path) in [
        (
            ("post", "/v1/accounts/{name}/destinations"),
            "/v1/accounts/shop/destinations",
        ),
        (
            ("patch", "/v1/accounts/{name}/destinations/{dest}"),
            "/v1/accounts/shop/destinations/backend",
        ),
        (
            (
                "post",
                "/v1/accounts/{name}/destinations/{dest}/rotate-secret",
            ),
            "/v1/accounts/shop/destinations/backend/rotate-secret",
        ),
        (("post", "/v1/deliveries/redrive"), "/v1/deliveries/redrive"),
    ] {
        let mut c = call(op, path, A);
        c.body = Some("not json".into());
        not_json.push(c);
    }
    let acc = ("get", "/v1/accounts");
    let dest_url = json!({"name": "backend", "url": "https://hooks.example.com/in"});
    let mut walk = vec![
        with_body(
            call(
                ("post", "/v1/accounts/{name}/destinations"),
                "/v1/accounts/shop/destinations",
                A,
            ),
            dest_url.clone(),
        ),
        with_body(
            call(
                ("post", "/v1/accounts/{name}/destinations"),
                "/v1/accounts/shop/destinations",
                A,
            ),
            dest_url.clone(),
        ),
        with_body(
            call(
                ("post", "/v1/accounts/{name}/destinations"),
                "/v1/accounts/shop/destinations",
                A,
            ),
            json!({"name": "inside", "url": "http://169.254.169.254/latest"}),
        ),
        with_body(
            call(
                ("post", "/v1/accounts/{name}/destinations"),
                "/v1/accounts/nobody/destinations",
                A,
            ),
            dest_url.clone(),
        ),
        with_body(
            call(
                ("post", "/v1/accounts/{name}/destinations"),
                "/v1/accounts/shop/destinations",
                None,
            ),
            dest_url,
        ),
        call(
            ("get", "/v1/accounts/{name}/destinations"),
            "/v1/accounts/shop/destinations",
            A,
        ),
        call(
            ("get", "/v1/accounts/{name}/destinations"),
            "/v1/accounts/nobody/destinations",
            A,
        ),
        call(
            ("get", "/v1/accounts/{name}/destinations"),
            "/v1/accounts/shop/destinations",
            None,
        ),
        call(
            ("get", "/v1/accounts/{name}/destinations/{dest}"),
            "/v1/accounts/shop/destinations/backend",
            A,
        ),
        call(
            ("get", "/v1/accounts/{name}/destinations/{dest}"),
            "/v1/accounts/shop/destinations/nothing",
            A,
        ),
        call(
            ("get", "/v1/accounts/{name}/destinations/{dest}"),
            "/v1/accounts/shop/destinations/backend",
            None,
        ),
        with_body(
            call(
                ("patch", "/v1/accounts/{name}/destinations/{dest}"),
                "/v1/accounts/shop/destinations/backend",
                A,
            ),
            json!({"event_types": ["paid"]}),
        ),
        with_body(
            call(
                ("patch", "/v1/accounts/{name}/destinations/{dest}"),
                "/v1/accounts/shop/destinations/nothing",
                A,
            ),
            json!({}),
        ),
        with_body(
            call(
                ("patch", "/v1/accounts/{name}/destinations/{dest}"),
                "/v1/accounts/shop/destinations/backend",
                A,
            ),
            json!({"filter": [{"path": "$.a", "op": "in", "value": 1}]}),
        ),
        with_body(
            call(
                ("patch", "/v1/accounts/{name}/destinations/{dest}"),
                "/v1/accounts/shop/destinations/backend",
                None,
            ),
            json!({}),
        ),
        call(
            (
                "post",
                "/v1/accounts/{name}/destinations/{dest}/rotate-secret",
            ),
            "/v1/accounts/shop/destinations/backend/rotate-secret",
            A,
        ),
        call(
            (
                "post",
                "/v1/accounts/{name}/destinations/{dest}/rotate-secret",
            ),
            "/v1/accounts/shop/destinations/nothing/rotate-secret",
            A,
        ),
        with_body(
            call(
                (
                    "post",
                    "/v1/accounts/{name}/destinations/{dest}/rotate-secret",
                ),
                "/v1/accounts/shop/destinations/backend/rotate-secret",
                A,
            ),
            json!({"overlap_secs": "soon"}),
        ),
        call(
            (
                "post",
                "/v1/accounts/{name}/destinations/{dest}/rotate-secret",
            ),
            "/v1/accounts/shop/destinations/backend/rotate-secret",
            None,
        ),
        with_body(
            call(
                ("post", "/v1/deliveries/redrive"),
                "/v1/deliveries/redrive",
                A,
            ),
            json!({"account": "shop"}),
        ),
        with_body(
            call(
                ("post", "/v1/deliveries/redrive"),
                "/v1/deliveries/redrive",
                A,
            ),
            json!({"account": "nobody"}),
        ),
        with_body(
            call(
                ("post", "/v1/deliveries/redrive"),
                "/v1/deliveries/redrive",
                A,
            ),
            json!({"account": "shop", "status": ["pending"]}),
        ),
        with_body(
            call(
                ("post", "/v1/deliveries/redrive"),
                "/v1/deliveries/redrive",
                None,
            ),
            json!({}),
        ),
        call(
            ("post", "/v1/deliveries/{id}/redeliver"),
            "/v1/deliveries/dlv_1/redeliver",
            A,
        ),
        call(
            ("post", "/v1/deliveries/{id}/redeliver"),
            "/v1/deliveries/dlv_1/redeliver",
            None,
        ),
        call(
            ("post", "/v1/deliveries/{id}/redeliver"),
            "/v1/deliveries/0/redeliver",
            A,
        ),
        call(
            ("delete", "/v1/accounts/{name}/destinations/{dest}"),
            "/v1/accounts/shop/destinations/backend",
            A,
        ),
        call(
            ("delete", "/v1/accounts/{name}/destinations/{dest}"),
            "/v1/accounts/shop/destinations/backend",
            A,
        ),
        call(
            ("delete", "/v1/accounts/{name}/destinations/{dest}"),
            "/v1/accounts/shop/destinations/backend",
            None,
        ),
        call(("get", "/v1"), "/v1", None),
        call(("get", "/v1/openapi.json"), "/v1/openapi.json", None),
        call(("get", "/v1"), "/v1", BAD),
        call(("get", "/"), "/", None),
        call(("get", "/"), "/", BAD),
        call(("get", "/index.html"), "/index.html", None),
        call(("get", "/console/{file}"), "/console/app.js", None),
        call(("get", "/console/{file}"), "/console/nothing.js", None),
        call(("get", "/v1/whoami"), "/v1/whoami", R),
        call(("get", "/v1/whoami"), "/v1/whoami", None),
        with_body(
            call(("post", "/v1/paths/suggest"), "/v1/paths/suggest", A),
            json!({"sample": {"id": "e1", "customer": {"phone": "+255"}}, "paths": {"sender": "$.customer.phone"}}),
        ),
        with_body(
            call(("post", "/v1/paths/suggest"), "/v1/paths/suggest", A),
            json!({}),
        ),
        with_body(
            call(("post", "/v1/paths/suggest"), "/v1/paths/suggest", None),
            json!({}),
        ),
        with_body(
            call(("post", "/v1/paths/suggest"), "/v1/paths/suggest", R),
            json!({}),
        ),
        with_body(
            call(
                ("post", "/v1/templates/preview"),
                "/v1/templates/preview",
                A,
            ),
            json!({"template": "Paid {{params.amount}}", "event": {"params": {"amount": 5}}}),
        ),
        with_body(
            call(
                ("post", "/v1/templates/preview"),
                "/v1/templates/preview",
                A,
            ),
            json!({}),
        ),
        with_body(
            call(
                ("post", "/v1/templates/preview"),
                "/v1/templates/preview",
                A,
            ),
            json!({"template": "Paid {{"}),
        ),
        with_body(
            call(
                ("post", "/v1/templates/preview"),
                "/v1/templates/preview",
                None,
            ),
            json!({}),
        ),
        with_body(
            call(
                ("post", "/v1/templates/preview"),
                "/v1/templates/preview",
                R,
            ),
            json!({}),
        ),
        call(("get", "/v1/stats/accounts"), "/v1/stats/accounts", A),
        call(("get", "/v1/stats/accounts"), "/v1/stats/accounts", None),
        call(("get", "/v1/stats/accounts"), "/v1/stats/accounts", R),
        call(("get", "/v1/stats/activity"), "/v1/stats/activity", R),
        call(("get", "/v1/stats/activity"), "/v1/stats/activity", None),
        with_body(
            call(
                ("post", "/v1/accounts/{name}/try"),
                "/v1/accounts/trial/try",
                A,
            ),
            json!({}),
        ),
        with_body(
            call(
                ("post", "/v1/accounts/{name}/try"),
                "/v1/accounts/nobody/try",
                A,
            ),
            json!({}),
        ),
        with_body(
            call(
                ("post", "/v1/accounts/{name}/try"),
                "/v1/accounts/trial/try",
                A,
            ),
            json!([null]),
        ),
        with_body(
            call(
                ("post", "/v1/accounts/{name}/try"),
                "/v1/accounts/public_key_acct/try",
                A,
            ),
            json!({}),
        ),
        with_body(
            call(
                ("post", "/v1/accounts/{name}/try"),
                "/v1/accounts/trial/try",
                None,
            ),
            json!({}),
        ),
        with_body(
            call(
                ("post", "/v1/accounts/{name}/try"),
                "/v1/accounts/trial/try",
                R,
            ),
            json!({}),
        ),
        call(("get", "/v1/openapi.json"), "/v1/openapi.json", BAD),
        call(("get", "/healthz"), "/healthz", None),
        call(("get", "/readyz"), "/readyz", None),
        call(("get", "/metrics"), "/metrics", A),
        call(("get", "/metrics"), "/metrics", None),
        call(("get", "/metrics"), "/metrics", R),
        call(acc, "/v1/accounts", A),
        call(acc, "/v1/accounts", BAD),
        call(acc, "/v1/accounts", R),
        with_body(
            call(("post", "/v1/accounts"), "/v1/accounts", A),
            json!({"name": "made", "allow_unverified": true}),
        ),
        with_body(
            call(("post", "/v1/accounts"), "/v1/accounts", A),
            json!({"name": "made", "allow_unverified": true}),
        ),
        with_body(
            call(("post", "/v1/accounts"), "/v1/accounts", A),
            json!({"name": "Bad"}),
        ),
        with_body(
            call(("post", "/v1/accounts"), "/v1/accounts", A),
            json!([1]),
        ),
        call(("post", "/v1/accounts"), "/v1/accounts", None),
        with_body(call(("post", "/v1/accounts"), "/v1/accounts", R), json!({})),
    ];
    walk.append(&mut not_json);
    let name_ops: [(&str, &str, Option<Value>); 9] = [
        ("get", "/v1/accounts/{name}", None),
        (
            "patch",
            "/v1/accounts/{name}",
            Some(json!({"active": true})),
        ),
        ("post", "/v1/accounts/{name}/activate", None),
        ("post", "/v1/accounts/{name}/deactivate", None),
        (
            "post",
            "/v1/accounts/{name}/listening",
            Some(json!({"listening": false})),
        ),
        (
            "post",
            "/v1/accounts/{name}/secrets",
            Some(json!({"secret": "second"})),
        ),
        ("delete", "/v1/accounts/{name}/secrets/{index}", None),
        ("get", "/v1/providers/{name}", None),
        ("delete", "/v1/accounts/{name}", None),
    ];
    for (m, p, body) in name_ops {
        let real = if p.starts_with("/v1/providers") {
            "stripe"
        } else {
            "made"
        };
        let concrete = |name: &str| p.replace("{name}", name).replace("{index}", "0");
        let ops = [(real, A), ("nope", A), (real, None), (real, R)];
        for (name, token) in ops {
            let mut c = call((m, p), &concrete(name), token);
            if let Some(b) = &body {
                c.body = Some(b.to_string());
            }
            if m == "delete" && p == "/v1/accounts/{name}" && name == real && token == A {
                continue; // deleted last, below
            }
            walk.push(c);
        }
        if body.is_some() {
            walk.push(with_body(
                call((m, p), &concrete("made"), A),
                json!({"name": "other", "listening": "yes", "secret": ""}),
            ));
            let mut c = call((m, p), &concrete("made"), A);
            c.body = Some("not json".into());
            walk.push(c);
        }
    }
    walk.push(with_body(
        call(
            ("post", "/v1/accounts/{name}/secrets"),
            "/v1/accounts/shop/secrets",
            A,
        ),
        json!({"secret": "s3cret-2"}),
    ));
    walk.push(call(
        ("delete", "/v1/accounts/{name}/secrets/{index}"),
        "/v1/accounts/shop/secrets/1",
        A,
    ));
    // The last secret cannot be retired.
    walk.push(call(
        ("delete", "/v1/accounts/{name}/secrets/{index}"),
        "/v1/accounts/shop/secrets/0",
        A,
    ));
    // A generated path token, rotated: on a path-token account, on none, without a token,
    // as the auditor, and on an account that has no path token.
    gw.create_account(json!({"name": "by_path", "provider": "africas_talking"}))
        .await;
    let rotate = ("post", "/v1/accounts/{name}/path_token");
    for (name, token) in [
        ("by_path", A),
        ("nope", A),
        ("by_path", None),
        ("by_path", R),
        ("shop", A),
    ] {
        walk.push(call(
            rotate,
            &format!("/v1/accounts/{name}/path_token"),
            token,
        ));
    }
    walk.push(call(
        ("delete", "/v1/accounts/{name}"),
        "/v1/accounts/made",
        A,
    ));
    for (p, q) in [
        ("/v1/events", "status=accepted"),
        ("/v1/events/export", "format=csv&limit=1"),
        ("/v1/changes", "account=shop"),
        ("/v1/audit/verify", ""),
    ] {
        let op = ("get", p);
        walk.push(call(op, &format!("{p}?{q}"), R));
        walk.push(call(op, &format!("{p}?since=yesterday"), A));
        walk.push(call(op, p, None));
    }
    walk.push(call(
        ("get", "/v1/audit/verify"),
        "/v1/audit/verify?expect_head=zz",
        A,
    ));
    walk.push(call(("get", "/v1/audit/heads"), "/v1/audit/heads", R));
    walk.push(call(("get", "/v1/audit/heads"), "/v1/audit/heads", None));
    walk.push(call(("get", "/v1/stream"), "/v1/stream?nope=1", A));
    walk.push(call(("get", "/v1/stream"), "/v1/stream", None));
    walk.push(call(("get", "/v1/events/{id}"), "/v1/events/evt_1", R));
    walk.push(call(("get", "/v1/events/{id}"), "/v1/events/evt_999999", R));
    walk.push(call(("get", "/v1/events/{id}"), "/v1/events/evt_1", None));
    let redeliver = ("post", "/v1/events/{id}/redeliver");
    walk.push(call(redeliver, &format!("/v1/events/{dead}/redeliver"), A));
    walk.push(call(redeliver, "/v1/events/evt_1/redeliver", A));
    walk.push(call(redeliver, "/v1/events/evt_999999/redeliver", A));
    walk.push(call(redeliver, "/v1/events/evt_1/redeliver", None));
    walk.push(call(redeliver, "/v1/events/evt_1/redeliver", R));
    let prune = ("post", "/v1/audit/prune");
    walk.push(with_body(
        call(prune, "/v1/audit/prune", A),
        json!({"before": "2000-01-01T00:00:00Z"}),
    ));
    walk.push(with_body(
        call(prune, "/v1/audit/prune", A),
        json!({"before": "soon"}),
    ));
    walk.push(call(prune, "/v1/audit/prune", None));
    walk.push(with_body(
        call(prune, "/v1/audit/prune", R),
        json!({"before": "2000-01-01T00:00:00Z"}),
    ));
    let tokens = ("post", "/v1/tokens");
    for (body, token) in [
        (json!({"name": "juma", "role": "auditor"}), A),
        (json!({"name": "juma", "role": "auditor"}), A),
        (json!({"name": "x", "role": "king"}), A),
        (json!([]), A),
        (json!({}), None),
        (json!({}), R),
    ] {
        walk.push(with_body(call(tokens, "/v1/tokens", token), body));
    }
    for token in [A, None, R] {
        walk.push(call(("get", "/v1/tokens"), "/v1/tokens", token));
        walk.push(call(("get", "/v1/providers"), "/v1/providers", token));
        walk.push(call(
            ("delete", "/v1/tokens/{name}"),
            "/v1/tokens/juma",
            token,
        ));
    }
    walk.push(call(("delete", "/v1/tokens/{name}"), "/v1/tokens/juma", A));

    let mut seen: BTreeSet<(String, String, String)> = BTreeSet::new();
    for c in &walk {
        let mut headers: Vec<(&str, String)> = c.headers.clone();
        if let Some(t) = c.token {
            headers.push(("authorization", format!("Bearer {t}")));
        }
        let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let url = format!("{}{}", gw.admin, c.path);
        let a = gw
            .client
            .send(
                c.method.clone(),
                &url,
                &refs,
                c.body.clone().unwrap_or_default(),
            )
            .await
            .expect("answer");
        check(&doc, c.op, a.status.as_u16(), &a.headers, &a.body, &c.path);
        seen.insert((c.op.0.into(), c.op.1.into(), a.status.as_u16().to_string()));
    }

    // The webhook endpoint, on the public listener.
    let hook = |m: &'static str| (m, "/hooks/{account}");
    let big = "x".repeat(5000);
    let stale = r#"{"id":"x2"}"#;
    type Hook<'a> = (&'a str, &'a str, Vec<(&'a str, String)>, String);
    let hooks: Vec<Hook> = vec![
        (
            "post",
            "shop",
            vec![("x-signature", sig(ok_body))],
            ok_body.into(),
        ),
        ("post", "shop", vec![("x-signature", sig("{"))], "{".into()),
        (
            "post",
            "shop",
            vec![("x-signature", "sha256=00".into())],
            stale.into(),
        ),
        ("post", "nobody", vec![], "{}".into()),
        ("post", "shop", vec![], big.clone()),
        (
            "post",
            "shop",
            vec![
                ("content-type", "image/png".into()),
                ("x-signature", sig("PNG-bytes")),
            ],
            "PNG-bytes".into(),
        ),
        (
            "post",
            "shop",
            vec![("x-signature", sig(ok_body))],
            ok_body.into(),
        ),
        (
            "get",
            "meta_acct?hub.mode=subscribe&hub.verify_token=vt-123&hub.challenge=42",
            vec![],
            String::new(),
        ),
        (
            "get",
            "meta_acct?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=42",
            vec![],
            String::new(),
        ),
        ("get", "nobody", vec![], String::new()),
        ("get", "shop", vec![], String::new()),
    ];
    for (m, target, headers, body) in hooks {
        let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap_or(Method::GET);
        let a = gw.send_hook(method, target, &refs, body).await;
        check(
            &doc,
            hook(m),
            a.status.as_u16(),
            &a.headers,
            &a.body,
            target,
        );
        seen.insert((
            m.into(),
            "/hooks/{account}".into(),
            a.status.as_u16().to_string(),
        ));
    }
    // The stream's head (its body stays open).
    {
        use tokio::io::AsyncWriteExt as _;
        let mut s = gw.raw_connection_admin().await;
        s.write_all(format!("GET /v1/stream HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {AUDITOR_TOKEN}\r\n\r\n").as_bytes()).await.expect("write");
        let mut buf = vec![0u8; 1024];
        let n = tokio::io::AsyncReadExt::read(&mut s, &mut buf)
            .await
            .expect("read");
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            head.starts_with("HTTP/1.1 200") && head.contains("text/event-stream"),
            "{head}"
        );
        seen.insert(("get".into(), "/v1/stream".into(), "200".into()));
    }
    // A body that never finishes: 408.
    {
        use tokio::io::AsyncWriteExt as _;
        let mut s = gw.raw_connection().await;
        s.write_all(b"POST /hooks/shop HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
            .await
            .expect("write");
        let mut buf = vec![0u8; 1024];
        let n = tokio::io::AsyncReadExt::read(&mut s, &mut buf)
            .await
            .expect("read");
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        let status = head.split(' ').nth(1).unwrap_or("").to_owned();
        assert_eq!(status, "408", "{head}");
        seen.insert(("post".into(), "/hooks/{account}".into(), status));
    }

    // Every route the admin listener declares is documented, with its access.
    for (method, pattern, access) in hookgate::server::admin_routes() {
        let op = &doc["paths"][pattern][method.as_str().to_lowercase()];
        assert!(
            op.is_object(),
            "{method} {pattern} is routed but not documented"
        );
        let open = op["security"].as_array().is_some_and(|s| s.is_empty());
        assert_eq!(
            open,
            access == hookgate::server::Access::Anyone,
            "{method} {pattern}: the document and the route table disagree on whether a token is needed"
        );
    }

    // Every documented answer was seen, but 503 (a storage fault; see `faults`).
    let mut missing = Vec::new();
    for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
        for (m, op) in ops.as_object().into_iter().flatten() {
            if m == "servers" || m == "parameters" {
                continue;
            }
            for status in op["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(s, _)| s)
            {
                if status != "503" && !seen.contains(&(m.clone(), path.clone(), status.clone())) {
                    missing.push(format!("{} {path} {status}", m.to_uppercase()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "documented but never answered in the walk: {missing:#?}"
    );
    gw.stop().await;
}

/// A URL where nothing listens: a port bound and released.
fn closed_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    format!("http://{addr}/messages")
}

/// Asserts that `status` is documented for the operation, with its content type, and that
/// a JSON body has the shape its schema documents.
fn check(
    doc: &Value,
    (m, p): (&str, &str),
    status: u16,
    headers: &hyper::HeaderMap,
    body: &[u8],
    sent: &str,
) {
    let op = &doc["paths"][p][m];
    assert!(op.is_object(), "{m} {p} is not documented");
    let documented = &op["responses"][status.to_string()];
    assert!(
        documented.is_object(),
        "{} {sent}: answered {status}, which is not documented for {m} {p}",
        m.to_uppercase()
    );
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let base = ct.split(';').next().unwrap_or("").trim();
    if let Some(content) = documented["content"].as_object() {
        assert!(
            content.contains_key(base),
            "{m} {sent} {status}: content type {ct:?} is not among {:?}",
            content.keys().collect::<Vec<_>>()
        );
        if base.ends_with("json") {
            let value: Value = serde_json::from_slice(body)
                .unwrap_or_else(|e| panic!("{m} {sent} {status}: not JSON: {e}"));
            if let Err(e) = conforms(doc, &content[base]["schema"], &value, "$") {
                panic!("{m} {sent} {status}: {e}");
            }
        }
    }
}

/// Checks `value` against the subset of JSON Schema the document uses: `$ref`, `allOf`,
/// `type` (one or several), `required`, `properties`, `items`, `enum`.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return conforms(doc, &doc["components"]["schemas"][name], value, at);
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        conforms(doc, part, value, at)?;
    }
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let fits = types.is_empty()
        || types.contains(&kind)
        || (kind == "integer" && types.contains(&"number"));
    if !fits {
        return Err(format!("{at} is {kind}, documented as {types:?}"));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at} = {value} is not among {allowed:?}"));
    }
    for key in schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if value.get(key).is_none() {
            return Err(format!("{at}.{key} is required and missing"));
        }
    }
    if let (Some(props), Some(obj)) = (schema["properties"].as_object(), value.as_object()) {
        for (key, sub) in props {
            if let Some(v) = obj.get(key) {
                conforms(doc, sub, v, &format!("{at}.{key}"))?;
            }
        }
    }
    if let Some(items) = value.as_array() {
        for (i, v) in items.iter().enumerate() {
            conforms(doc, &schema["items"], v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}
