//! Test support: a real gateway on port 0, an HTTP client, and signing helpers computed
//! independently of the gateway's own code.
//!
//! The storage engine every test gateway runs on is chosen here and nowhere else: a
//! temporary SQLite file, or, with `HOOKGATE_TEST_ENGINE=postgres`, a fresh database on the
//! throw-away PostgreSQL server of `pg`. Tests reach storage only through the gateway,
//! except those about one engine's files, which ask for that engine by name
//! (`spawn_sqlite_with`).

#![allow(dead_code)]

use std::path::PathBuf;

use hmac::{Hmac, KeyInit, Mac};
use hookgate::cli::client::{Answer, HttpClient};
use hookgate::clock::Clock;
use hookgate::config::Config;
use hookgate::secret::Secret;
use hookgate::server::{Gateway, Listeners};
use hyper::Method;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The admin token every test gateway accepts.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// The auditor token every test gateway accepts.
pub const AUDITOR_TOKEN: &str = "test-auditor-token-0123456789";

/// A running gateway and what a test needs to talk to it.
pub struct TestGateway {
    /// `http://127.0.0.1:PORT` of the public listener.
    pub public: String,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub admin: String,
    /// The database file.
    pub db: PathBuf,
    /// The configuration it runs with.
    pub config: Config,
    /// A client with keep-alive.
    pub client: HttpClient,
    dir: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Starts a gateway with the default test configuration.
pub async fn spawn_gateway() -> TestGateway {
    spawn_with(|_| {}).await
}

/// Starts a gateway after `tweak` adjusts the test configuration.
pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestGateway {
    spawn_with_clock_and(Clock::system(), tweak).await
}

/// Starts a gateway with the default test configuration whose ingest path reads `clock`.
pub async fn spawn_with_clock(clock: Clock) -> TestGateway {
    spawn_with_clock_and(clock, |_| {}).await
}

/// Starts a gateway whose ingest path reads `clock`, after `tweak` adjusts the test
/// configuration.
pub async fn spawn_with_clock_and(clock: Clock, tweak: impl FnOnce(&mut Config)) -> TestGateway {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(&dir);
    if on_postgres() {
        config.database = PathBuf::from(crate::pg::server().fresh_database());
        config.storage.secret_key = Some(Secret::new(TEST_SECRET_KEY));
    }
    tweak(&mut config);
    start(config, Some(dir), clock).await
}

/// Starts a gateway on a SQLite file whatever engine the suite runs on, for tests of that
/// engine's files (locks, copies, backups, the file edited behind the gateway's back).
pub async fn spawn_sqlite_with(tweak: impl FnOnce(&mut Config)) -> TestGateway {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(&dir);
    tweak(&mut config);
    start(config, Some(dir), Clock::system()).await
}

/// The sealing key test gateways on PostgreSQL share (base64 of 32 bytes).
pub const TEST_SECRET_KEY: &str = "aG9va2dhdGUtdGVzdC1zZWFsLWtleS0zMi1ieXRlcyE=";

/// True when this test binary runs its gateways on PostgreSQL: `tests/pg` always does,
/// `tests/it` with `HOOKGATE_TEST_ENGINE=postgres`.
pub fn on_postgres() -> bool {
    crate::ON_POSTGRES
        || std::env::var("HOOKGATE_TEST_ENGINE").is_ok_and(|e| e.eq_ignore_ascii_case("postgres"))
}

fn test_config(dir: &tempfile::TempDir) -> Config {
    Config {
        database: dir.path().join("hookgate.db"),
        admin_token: Some(Secret::new(ADMIN_TOKEN)),
        auditor_token: Some(Secret::new(AUDITOR_TOKEN)),
        ..Config::default()
    }
}

async fn start(mut config: Config, dir: Option<tempfile::TempDir>, clock: Clock) -> TestGateway {
    let public = TcpListener::bind("127.0.0.1:0").await.expect("bind public");
    let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
    let public_addr = public.local_addr().expect("addr");
    let admin_addr = admin.local_addr().expect("addr");
    config.listen = public_addr;
    config.admin_listen = admin_addr;
    if config.public_url.is_none() {
        config.public_url = Some(format!("http://{public_addr}"));
    }
    let gateway = Gateway::open_with_clock(config.clone(), clock)
        .await
        .expect("gateway opens");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        gateway
            .run(Listeners { public, admin }, shutdown)
            .await
            .expect("gateway runs");
    });
    TestGateway {
        public: format!("http://{public_addr}"),
        admin: format!("http://{admin_addr}"),
        db: config.database.clone(),
        config,
        client: HttpClient::default(),
        dir,
        stop: Some(stop),
        task: Some(task),
    }
}

/// A counter's value from Prometheus text (0 when absent).
pub fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

impl TestGateway {
    /// Shuts down gracefully and waits until the writer is joined.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("gateway task");
        }
        self.dir.take()
    }

    /// Stops and starts again on the same database and configuration (new ports).
    pub async fn restart(self) -> TestGateway {
        let config = self.config.clone();
        let dir = self.stop().await;
        let mut config = config;
        config.public_url = None;
        start(config, dir, Clock::system()).await
    }

    /// A plain TCP connection to the public listener, for requests a client library would
    /// not send (a body that trickles in, a head too large).
    pub async fn raw_connection(&self) -> tokio::net::TcpStream {
        tokio::net::TcpStream::connect(self.public.trim_start_matches("http://"))
            .await
            .expect("connect to the public listener")
    }

    /// A raw TCP connection to the admin listener.
    pub async fn raw_connection_admin(&self) -> tokio::net::TcpStream {
        tokio::net::TcpStream::connect(self.admin.trim_start_matches("http://"))
            .await
            .expect("connect to the admin listener")
    }

    /// A counter's value from the gateway's `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.admin_call(Method::GET, "/metrics", None).await.body;
        counter(&String::from_utf8_lossy(&text), name)
    }

    /// An admin-API call with the admin token.
    pub async fn admin_call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_as(ADMIN_TOKEN, method, path, body).await
    }

    /// An admin-API call with a given token.
    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        self.client
            .admin(
                method,
                &format!("{}{path}", self.admin),
                token,
                body.as_ref(),
            )
            .await
            .expect("admin API reachable")
    }

    /// Creates an account and asserts it was created.
    pub async fn create_account(&self, spec: Value) -> Value {
        let answer = self
            .admin_call(Method::POST, "/v1/accounts", Some(spec))
            .await;
        assert_eq!(
            answer.status,
            201,
            "account creation failed: {:?}",
            answer.json()
        );
        answer.json()
    }

    /// POSTs a webhook to `/hooks/{path_and_query}`.
    pub async fn post_hook(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: impl Into<bytes::Bytes>,
    ) -> Answer {
        self.send_hook(Method::POST, path_and_query, headers, body)
            .await
    }

    /// Sends any method to `/hooks/{path_and_query}`.
    pub async fn send_hook(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: impl Into<bytes::Bytes>,
    ) -> Answer {
        self.client
            .send(
                method,
                &format!("{}/hooks/{path_and_query}", self.public),
                headers,
                body,
            )
            .await
            .expect("public listener reachable")
    }

    /// Lists events with a query string (`account=x&status=y`); asserts 200.
    pub async fn events(&self, query: &str) -> Vec<Value> {
        let answer = self
            .admin_call(Method::GET, &format!("/v1/events?{query}"), None)
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.json());
        answer.json()["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// One event in full; asserts 200.
    pub async fn event(&self, id: &str) -> Value {
        let answer = self
            .admin_call(Method::GET, &format!("/v1/events/{id}"), None)
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.json());
        answer.json()
    }

    /// The number of audit rows, read from the database directly (by SQLite's library, or
    /// by `psql`), not through the gateway.
    pub fn audit_rows(&self) -> i64 {
        match self.db.to_str().filter(|d| d.starts_with("postgres://")) {
            Some(url) => crate::pg::psql(url, "SELECT count(*) FROM events")
                .unwrap_or_else(|e| panic!("count the rows: {e}"))
                .trim()
                .parse()
                .expect("a count"),
            None => {
                let conn = rusqlite::Connection::open(&self.db).expect("open db");
                conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
                    .expect("count")
            }
        }
    }

    /// A path for a scratch file of this test, in its temporary directory.
    pub fn scratch(&self, name: &str) -> PathBuf {
        match &self.dir {
            Some(dir) => dir.path().join(name),
            None => std::env::temp_dir().join(name),
        }
    }
}

/// HMAC-SHA256 of `data` under `key`, hex.
pub fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> String {
    let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("hmac key");
    m.update(data);
    hex::encode(m.finalize().into_bytes())
}

/// HMAC-SHA1 of `data` under `key`, raw bytes.
pub fn hmac_sha1(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key).expect("hmac key");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// HMAC-SHA512 of `data` under `key`, raw bytes.
pub fn hmac_sha512(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<sha2::Sha512> as KeyInit>::new_from_slice(key).expect("hmac key");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// HMAC-SHA256 of `data` under `key`, raw bytes.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("hmac key");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// The current Unix time in seconds.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
