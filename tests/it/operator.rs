//! The operator's and auditor's CLI against a running gateway: exit codes and messages of
//! `audit verify`, the auditor token, the listener switch, secret rotation, the change
//! log, exports into a closed pipe and with `--limit`, `events tail --from-now`,
//! `hookgate sign --account`, and the hints for a gateway that is not running.

use std::process::Output;
use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN_TOKEN, AUDITOR_TOKEN, TestGateway, hmac_sha256_hex, spawn_gateway};

const BIN: &str = env!("CARGO_BIN_EXE_hookgate");

/// Runs the CLI with exactly these `HOOKGATE_*` variables (none inherited) and `stdin`.
pub async fn cli(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the CLI");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).await.expect("stdin");
    }
    child.wait_with_output().await.expect("run the CLI")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A URL where nothing listens: a port bound and released.
async fn closed_port() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}")
}

async fn signed_account(gw: &TestGateway, name: &str, extra: Value) {
    let mut spec = json!({"name": name,
        "signature": {"header": "X-Signature", "prefix": "sha256=", "secrets": ["s3cret"]},
        "paths": {"sender": "$.who", "event_id": "$.id", "event_type": "$.type"}});
    hookgate::account::merge_patch(&mut spec, &extra);
    gw.create_account(spec).await;
}

async fn post_signed(gw: &TestGateway, name: &str, body: &str) -> Value {
    let sig = format!("sha256={}", hmac_sha256_hex(b"s3cret", body.as_bytes()));
    let a = gw
        .post_hook(
            name,
            &[("content-type", "application/json"), ("x-signature", &sig)],
            body.to_owned(),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    a.json()
}

#[tokio::test]
async fn audit_verify_exits_0_1_or_2_and_never_calls_a_failed_check_a_broken_log() {
    let gw = spawn_gateway().await;
    signed_account(&gw, "shop", json!({})).await;
    post_signed(&gw, "shop", r#"{"id":"a1","type":"t","who":"x"}"#).await;
    let admin = [
        ("HOOKGATE_URL", gw.admin.as_str()),
        ("HOOKGATE_ADMIN_TOKEN", ADMIN_TOKEN),
    ];

    let ok = cli(&["audit", "verify"], &admin, "").await;
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let report: Value = serde_json::from_slice(&ok.stdout).unwrap_or_default();
    let head = report["logs"][0]["head"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(head.len(), 64);

    // The auditor's token alone is enough, and a URL without its scheme is accepted.
    let bare = gw.admin.trim_start_matches("http://").to_owned();
    let auditor = [
        ("HOOKGATE_URL", bare.as_str()),
        ("HOOKGATE_AUDITOR_TOKEN", AUDITOR_TOKEN),
    ];
    let out = cli(&["audit", "verify", "--expect-head", &head], &auditor, "").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // A head the chain does not pass through: the log does not verify (1).
    let other = "ab".repeat(32);
    let out = cli(&["audit", "verify", "--expect-head", &other], &auditor, "").await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not verify"), "{}", stderr(&out));

    // Signed heads kept with `audit heads`, then checked online against the gateway.
    let out = cli(&["audit", "heads"], &auditor, "").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let kept = tempfile::tempdir().expect("dir");
    let heads = kept.path().join("heads.json");
    std::fs::write(&heads, &out.stdout).expect("keep the heads");
    let heads_arg = heads.display().to_string();
    let out = cli(&["audit", "verify", "--heads", &heads_arg], &auditor, "").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A gateway that signs with another key than the one trusted does not verify.
    let stranger = hookgate::anchor::AuditKey::derive(b"someone else").public_hex();
    let out = cli(
        &["audit", "verify", "--public-key", &stranger],
        &auditor,
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("another key") || stderr(&out).contains("not the key"),
        "{}",
        stderr(&out)
    );

    // Checks that could not run: 2, and never "does not verify".
    let wrong = [
        ("HOOKGATE_URL", gw.admin.as_str()),
        ("HOOKGATE_AUDITOR_TOKEN", "not-a-token"),
    ];
    let closed = closed_port().await;
    let refused = [
        ("HOOKGATE_URL", closed.as_str()),
        ("HOOKGATE_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (&["audit", "verify"], &wrong, "401"),
        (
            &["audit", "verify", "--expect-head", "xyz"],
            &admin,
            "is not a head hash",
        ),
        (&["audit", "verify"], &refused, "Is the gateway running?"),
        (
            &["audit", "verify", "--db", "/nonexistent/hookgate.db"],
            &[],
            "could not check",
        ),
    ];
    for (args, env, says) in cases {
        let out = cli(args, env, "").await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("could not check") && err.contains(says),
            "{args:?}: {err}"
        );
        assert!(!err.contains("does not verify"), "{args:?}: {err}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn the_cli_switches_the_listener_rotates_a_secret_and_shows_the_change_log() {
    let gw = spawn_gateway().await;
    signed_account(&gw, "pay", json!({})).await;
    let env = [
        ("HOOKGATE_URL", gw.admin.as_str()),
        ("HOOKGATE_ADMIN_TOKEN", ADMIN_TOKEN),
    ];

    // The merge patch refuses `listening` and says where the switch is.
    let out = cli(
        &["accounts", "update", "pay", r#"{"listening":true}"#],
        &env,
        "",
    )
    .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("hookgate accounts listen pay"),
        "{}",
        stderr(&out)
    );

    let out = cli(
        &[
            "accounts",
            "listen",
            "pay",
            "--event-type",
            "payment.succeeded",
        ],
        &env,
        "",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(shown["listening"], true);
    assert_eq!(
        shown["forward"]["event_types"],
        json!(["payment.succeeded"])
    );

    // Rotation: the new secret read from standard input, never echoed.
    let out = cli(&["accounts", "add-secret", "pay"], &env, "n3w-secret-77\n").await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("n3w-secret-77"));
    let body = r#"{"id":"r1","type":"t","who":"x"}"#;
    let sig = format!(
        "sha256={}",
        hmac_sha256_hex(b"n3w-secret-77", body.as_bytes())
    );
    let a = gw.post_hook("pay", &[("x-signature", &sig)], body).await;
    assert_eq!(a.status, 200, "the added secret verifies: {:?}", a.json());
    let out = cli(&["accounts", "retire-secret", "pay", "0"], &env, "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    post_signed_refused(&gw, "pay").await;

    let out = cli(&["accounts", "listen", "pay", "--off"], &env, "").await;
    assert!(out.status.success(), "{}", stderr(&out));

    // The change log, read with the auditor's token.
    let auditor = [
        ("HOOKGATE_URL", gw.admin.as_str()),
        ("HOOKGATE_AUDITOR_TOKEN", AUDITOR_TOKEN),
    ];
    let out = cli(&["changes", "--account", "pay"], &auditor, "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    let changes: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let actions: Vec<&str> = changes["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["action"].as_str())
        .collect();
    for a in [
        "account.created",
        "listening.on",
        "secret.added",
        "secret.retired",
        "listening.off",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    // The auditor may not switch anything, and is told so.
    let out = cli(&["accounts", "listen", "pay"], &auditor, "").await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("403"), "{}", stderr(&out));
    gw.stop().await;
}

async fn post_signed_refused(gw: &TestGateway, name: &str) {
    let body = r#"{"id":"old","type":"t","who":"x"}"#;
    let sig = format!("sha256={}", hmac_sha256_hex(b"s3cret", body.as_bytes()));
    let a = gw.post_hook(name, &[("x-signature", &sig)], body).await;
    assert_eq!(a.status, 401, "the retired secret no longer verifies");
}

#[tokio::test]
async fn events_export_honours_limit_and_ends_quietly_when_its_reader_has_gone() {
    let gw = spawn_gateway().await;
    signed_account(&gw, "ex", json!({})).await;
    for i in 0..40 {
        post_signed(
            &gw,
            "ex",
            &format!(r#"{{"id":"e{i}","type":"t","who":"line\nbreak"}}"#),
        )
        .await;
    }
    let env = [
        ("HOOKGATE_URL", gw.admin.as_str()),
        ("HOOKGATE_AUDITOR_TOKEN", AUDITOR_TOKEN),
    ];
    let out = cli(&["events", "export", "--limit", "3"], &env, "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_default())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["event_id"], "e0", "the oldest first");
    assert_eq!(lines[2]["event_id"], "e2");
    let out = cli(
        &[
            "events",
            "export",
            "--format",
            "csv",
            "--include-body",
            "--limit",
            "2",
        ],
        &env,
        "",
    )
    .await;
    let mut csv = csv::Reader::from_reader(out.stdout.as_slice());
    assert_eq!(csv.records().count(), 2, "two records after the header");

    // `hookgate events export | head -1`: exit 0, nothing on stderr.
    let script = format!("set -o pipefail; '{BIN}' events export --include-body | head -1");
    let out = tokio::process::Command::new("bash")
        .args(["-c", &script])
        .env("HOOKGATE_URL", &gw.admin)
        .env("HOOKGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .await
        .expect("bash");
    assert!(out.status.success(), "{:?} {}", out.status, stderr(&out));
    assert_eq!(stderr(&out), "");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    // The same with the reader gone before the first byte.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = tokio::process::Command::new(BIN)
        .args(["events", "export", "--include-body"])
        .env("HOOKGATE_URL", &gw.admin)
        .env("HOOKGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start")
        .wait_with_output()
        .await
        .expect("run");
    assert!(out.status.success(), "{:?} {}", out.status, stderr(&out));
    gw.stop().await;
}

#[tokio::test]
async fn events_tail_from_now_skips_the_replay_and_prints_what_arrives() {
    let gw = spawn_gateway().await;
    signed_account(&gw, "live", json!({})).await;
    gw.admin_call(
        Method::POST,
        "/v1/accounts/live/listening",
        Some(json!({"listening": true})),
    )
    .await;
    post_signed(&gw, "live", r#"{"id":"before","type":"t","who":"x"}"#).await;
    let mut tail = tokio::process::Command::new(BIN)
        .args(["events", "tail", "--account", "live", "--from-now"])
        .env("HOOKGATE_URL", &gw.admin)
        .env("HOOKGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run events tail");
    let stdout = tail.stdout.take().expect("stdout");
    let stderr = tail.stderr.take().expect("stderr");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut notes = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
    // The CLI says on stderr when the replay is over and the stream is live.
    let note = tokio::time::timeout(Duration::from_secs(10), notes.next_line())
        .await
        .expect("live within 10s")
        .expect("read")
        .unwrap_or_default();
    assert!(note.contains("live"), "{note}");
    post_signed(&gw, "live", r#"{"id":"after","type":"t","who":"x"}"#).await;
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("a line within 10s")
        .expect("read")
        .unwrap_or_default();
    let printed: Value = serde_json::from_str(&line).unwrap_or_default();
    assert_eq!(
        printed["event_id"], "after",
        "the replayed event is not printed"
    );
    let _ = tail.kill().await;
    gw.stop().await;
}

#[tokio::test]
async fn sign_for_an_account_uses_its_scheme_and_real_url_custom_or_preset() {
    let gw = spawn_gateway().await;
    signed_account(&gw, "custom_acct", json!({})).await;
    gw.create_account(
        json!({"name": "stripe_acct", "provider": "Stripe", "secret": "whsec_dGVzdHNlY3JldA=="}),
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let body_file = dir.path().join("event.json");
    std::fs::write(&body_file, r#"{"id":"evt_s1","type":"charge.succeeded"}"#).expect("write");
    let env = [
        ("HOOKGATE_URL", gw.admin.as_str()),
        ("HOOKGATE_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    for (account, secret) in [
        ("custom_acct", "s3cret"),
        ("stripe_acct", "whsec_dGVzdHNlY3JldA=="),
    ] {
        let body = body_file.display().to_string();
        let out = cli(
            &[
                "sign",
                "--account",
                account,
                "--secret",
                secret,
                "--body",
                &body,
            ],
            &env,
            "",
        )
        .await;
        assert!(out.status.success(), "{account}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.contains(&format!("{}/hooks/{account}'", gw.public)),
            "{text}"
        );
        let headers: Vec<(String, String)> = text
            .lines()
            .take_while(|l| !l.is_empty())
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let a = gw
            .post_hook(
                account,
                &refs,
                std::fs::read(&body_file).unwrap_or_default(),
            )
            .await;
        assert_eq!(a.status, 200, "{account}: {:?}", a.json());
    }
    // Without an account or a URL there is nowhere sensible to send: it says so.
    let body = body_file.display().to_string();
    let out = cli(
        &[
            "sign",
            "--provider",
            "stripe",
            "--secret",
            "whsec_x",
            "--body",
            &body,
        ],
        &[],
        "",
    )
    .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--account NAME"), "{}", stderr(&out));
    // A mistyped provider gets a suggestion.
    let out = cli(&["providers", "show", "Strpe"], &[], "").await;
    assert!(
        stderr(&out).contains("did you mean \"stripe\""),
        "{}",
        stderr(&out)
    );
    let out = cli(&["providers", "show", "STRIPE"], &[], "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    gw.stop().await;
}

#[tokio::test]
async fn a_cli_call_to_a_gateway_that_is_not_running_says_so() {
    let closed = closed_port().await;
    let bare = closed.trim_start_matches("http://").to_owned();
    let out = cli(
        &["accounts", "list"],
        &[("HOOKGATE_URL", &bare), ("HOOKGATE_ADMIN_TOKEN", "t")],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("Is the gateway running?") && err.contains("hookgate serve"),
        "{err}"
    );
    assert!(
        !err.contains("invalid format") && !err.contains("client error (Connect)"),
        "{err}"
    );
    let out = cli(&["accounts", "list"], &[("HOOKGATE_URL", &closed)], "").await;
    assert!(
        stderr(&out).contains("HOOKGATE_AUDITOR_TOKEN"),
        "{}",
        stderr(&out)
    );
}
