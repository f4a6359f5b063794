//! No secret in clear anywhere: a scenario on the REAL binary with known signing secrets,
//! authenticate keys and admin/auditor tokens, then every API answer, every CLI output,
//! the gateway's log output and every file beside the database (SQLite file, WAL, shm)
//! are searched for each of them. Signing secrets are sealed at rest (`store::seal`), so
//! the database file holds them only encrypted; the key file is the one exception, by
//! design, and is checked to be mode 0600.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hookgate::cli::client::{Answer, HttpClient};
use hyper::Method;
use serde_json::json;

use crate::process;
use crate::support::*;

const AUDITOR: &str = "secret-auditor-token-Zq81x";
const SIGN_1: &str = "whsec_SIGN1_q8Zr4Lmx";
const SIGN_2: &str = "whsec_SIGN2_p3Lk9Wvb";
const API_KEY: &str = "apikey_Q7w2E9r4Tt";
const BEARER: &str = "bearer_T0k3n_zz91Aa";
const PASSWORD: &str = "basicPa55_w0rd77Bb";
const QUERY_TOKEN: &str = "qtok_M9n8B7v6Cc";
/// The signing secret Asana hands over in its handshake: echoed in that answer only.
const ASANA: &str = "asana_handshake_S3cr3t_77Kq2Wd0";

fn all_secrets() -> [&'static str; 8] {
    [
        ADMIN_TOKEN,
        AUDITOR,
        SIGN_1,
        SIGN_2,
        API_KEY,
        BEARER,
        PASSWORD,
        QUERY_TOKEN,
    ]
}

fn answer_text(a: &Answer) -> String {
    let mut out = format!("{}\n", a.status);
    for (k, v) in &a.headers {
        out.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
    }
    out.push_str(&String::from_utf8_lossy(&a.body));
    out
}

/// Runs the CLI binary against the admin API; returns stdout and stderr together.
fn cli(admin: &str, token: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(args)
        .env_clear()
        .env("HOOKGATE_URL", admin)
        .env("HOOKGATE_ADMIN_TOKEN", token)
        .output()
        .expect("run the CLI");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_secret(what: &str, haystack: &[u8]) {
    for s in all_secrets() {
        let found = haystack.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(!found, "{what} contains the secret {s:?} in clear");
    }
}

#[tokio::test]
async fn no_secret_or_token_appears_in_clear_in_answers_cli_logs_or_the_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("secrets.db");
    let p = process::start(
        &db,
        &[
            ("HOOKGATE_AUDITOR_TOKEN", AUDITOR),
            ("HOOKGATE_LOG", "debug"),
        ],
    )
    .await;
    let client = HttpClient::default();
    let mut seen = String::new();
    let admin = |method: Method, path: &str, token: &str, body: Option<serde_json::Value>| {
        let client = client.clone();
        let url = format!("{}{path}", p.admin);
        let token = token.to_owned();
        async move {
            client
                .admin(method, &url, &token, body.as_ref())
                .await
                .expect("admin API reachable")
        }
    };

    // Accounts of every credential kind, through the API and through the CLI.
    let signed = json!({"name": "signed", "signature": {"algorithm": "hmac-sha256",
        "header": "X-Sig", "encoding": "hex", "prefix": "sha256=",
        "signed_content": "{timestamp}.{body}", "timestamp_header": "X-Ts",
        "tolerance_secs": 300, "secrets": [SIGN_1, SIGN_2]}});
    let a = admin(Method::POST, "/v1/accounts", ADMIN_TOKEN, Some(signed)).await;
    assert_eq!(a.status, 201);
    seen += &answer_text(&a);
    for spec in [
        json!({"name": "keyed", "auth": {"type": "api_key", "header": "X-Key", "value": API_KEY}}),
        json!({"name": "bearer", "auth": {"type": "bearer", "token": BEARER}}),
        json!({"name": "basic", "auth": {"type": "basic", "username": "u", "password": PASSWORD}}),
    ] {
        seen += &cli(
            &p.admin,
            ADMIN_TOKEN,
            &["accounts", "create", &spec.to_string()],
        );
    }
    let q =
        json!({"name": "query", "auth": {"type": "query", "param": "token", "value": QUERY_TOKEN}});
    seen += &answer_text(&admin(Method::POST, "/v1/accounts", ADMIN_TOKEN, Some(q)).await);

    // A destination: its signing secret is generated and shown once, in this answer only.
    let made = admin(
        Method::POST,
        "/v1/accounts/signed/destinations",
        ADMIN_TOKEN,
        Some(json!({"name": "backend", "url": "https://hooks.example.com/in"})),
    )
    .await;
    assert_eq!(made.status, 201, "{:?}", made.json());
    let whsec = made.json()["secret"]
        .as_str()
        .expect("the secret, shown once")
        .to_owned();
    let whsec_key = whsec.trim_start_matches("whsec_").to_owned();
    assert!(whsec_key.len() >= 32);

    // Traffic: good and bad credentials, every account.
    let body = r#"{"id":"s1"}"#;
    let ts = now_secs().to_string();
    let sig = format!(
        "sha256={}",
        hmac_sha256_hex(SIGN_2.as_bytes(), format!("{ts}.{body}").as_bytes())
    );
    let basic = format!("Basic {}", STANDARD.encode(format!("u:{PASSWORD}")));
    let bearer = format!("Bearer {BEARER}");
    let hook = |path: &str| format!("{}/hooks/{path}", p.public);
    let sends: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            hook("signed"),
            vec![("x-sig", sig.as_str()), ("x-ts", ts.as_str())],
        ),
        (
            hook("signed"),
            vec![("x-sig", "sha256=00"), ("x-ts", ts.as_str())],
        ),
        (hook("keyed"), vec![("x-key", API_KEY)]),
        (hook("keyed"), vec![("x-key", "wrong")]),
        (hook("bearer"), vec![("authorization", bearer.as_str())]),
        (hook("basic"), vec![("authorization", basic.as_str())]),
        (format!("{}?token={QUERY_TOKEN}&x=1", hook("query")), vec![]),
    ];
    for (url, headers) in &sends {
        let a = client
            .send(Method::POST, url, headers, body)
            .await
            .expect("public");
        seen += &answer_text(&a);
    }

    // Asana's handshake hands the gateway a secret: echoed in that answer (the protocol),
    // then never shown, logged or stored in clear.
    let made = admin(
        Method::POST,
        "/v1/accounts",
        ADMIN_TOKEN,
        Some(json!({"name": "asana", "provider": "asana"})),
    )
    .await;
    assert_eq!(made.status, 201, "{:?}", made.json());
    let shake = client
        .send(
            Method::POST,
            &hook("asana"),
            &[("x-hook-secret", ASANA)],
            "",
        )
        .await
        .expect("public");
    assert_eq!(shake.status, 200);
    assert_eq!(
        shake.headers.get("x-hook-secret").map(|v| v.as_bytes()),
        Some(ASANA.as_bytes())
    );
    let shake_id = format!("/v1/events/evt_{}", sends.len() + 1);

    // Everything an admin or auditor can read back, through the API and the CLI.
    for token in [ADMIN_TOKEN, AUDITOR] {
        for path in [
            "/v1/accounts",
            "/v1/accounts/signed",
            "/v1/accounts/basic",
            "/v1/accounts/query",
            "/v1/accounts/keyed",
            "/v1/accounts/bearer",
            "/v1/events?limit=100",
            "/v1/changes",
            "/v1/providers",
            "/v1/accounts/signed/destinations",
            "/v1/accounts/signed/destinations/backend",
            "/v1/accounts/asana",
            shake_id.as_str(),
        ] {
            seen += &answer_text(&admin(Method::GET, path, token, None).await);
        }
        for n in 1..=sends.len() {
            seen += &answer_text(
                &admin(Method::GET, &format!("/v1/events/evt_{n}"), token, None).await,
            );
        }
        if token == ADMIN_TOKEN {
            seen += &cli(&p.admin, token, &["accounts", "list"]);
            seen += &cli(&p.admin, token, &["accounts", "show", "signed"]);
        }
        seen += &cli(&p.admin, token, &["events", "list"]);
        seen += &cli(&p.admin, token, &["events", "show", "evt_7"]);
    }
    // The reads really showed the accounts and the stored requests.
    assert!(
        seen.contains("\"signed\"") && seen.contains("x-sig"),
        "{seen}"
    );
    assert_no_secret("API answers and CLI output", seen.as_bytes());
    assert!(seen.contains("secret.handshake"), "the change is recorded");
    assert!(!seen.contains(ASANA), "the handshake's secret shown again");
    seen += &cli(&p.admin, ADMIN_TOKEN, &["destinations", "list", "signed"]);
    assert!(seen.contains("hooks.example.com"), "{seen}");
    assert!(
        !seen.contains(&whsec_key),
        "the destination's secret was shown again"
    );

    // While running (the WAL holds recent writes) and after a clean stop.
    assert_files_hold_no_secret(dir.path());
    assert_files_lack(dir.path(), &whsec_key);
    assert_files_lack(dir.path(), ASANA);
    let log = p.term(Duration::from_secs(15)).await;
    assert!(
        log.contains("INFO") || log.contains("info"),
        "log output captured: {log}"
    );
    assert_no_secret("the gateway's log output", log.as_bytes());
    assert!(
        !log.contains(&whsec_key),
        "the destination's secret in the log"
    );
    assert!(!log.contains(ASANA), "the handshake's secret in the log");
    assert_files_hold_no_secret(dir.path());
    assert_files_lack(dir.path(), &whsec_key);
    assert_files_lack(dir.path(), ASANA);
}

/// Asserts that no file of `dir` but the key file holds `text`.
fn assert_files_lack(dir: &Path, text: &str) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "key") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read file");
        assert!(
            !bytes.windows(text.len()).any(|w| w == text.as_bytes()),
            "{} holds a destination's secret in clear",
            path.display()
        );
    }
}

fn assert_files_hold_no_secret(dir: &Path) {
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".key") {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "the key file is private");
            }
            continue;
        }
        let bytes = std::fs::read(&path).expect("read file");
        assert_no_secret(&name, &bytes);
        checked += 1;
    }
    assert!(checked >= 1, "the database file was searched");
}
