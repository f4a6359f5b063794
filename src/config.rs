//! Configuration: one TOML file, every field with a default, each overridable by a
//! `HOOKGATE_*` environment variable.
//!
//! Owns [`Config`] and its pure construction from file text and an environment lookup.
//! Parsing fails fast with the field named (`deny_unknown_fields`). It must never read
//! the process environment or the file system itself; the binary passes both in. Every
//! default is documented in `hookgate.example.toml`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The public listener for `/hooks/...` (`HOOKGATE_LISTEN`).
    pub listen: SocketAddr,
    /// The admin listener (`HOOKGATE_ADMIN_LISTEN`).
    pub admin_listen: SocketAddr,
    /// The database (`HOOKGATE_DB`): a SQLite file, or a `postgres://user:password@host:port/db`
    /// URL that several gateway nodes share.
    pub database: PathBuf,
    /// The base URL senders are given, without a trailing slash (`HOOKGATE_PUBLIC_URL`);
    /// by default `http://{listen}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// An admin token (`HOOKGATE_ADMIN_TOKEN`); without one, a token is generated on
    /// first start, shown once and stored only as a hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<Secret>,
    /// An auditor token (`HOOKGATE_AUDITOR_TOKEN`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auditor_token: Option<Secret>,
    /// A directory of operator rule files (`*.toml`, the format of `rules/README.md`) that
    /// add presets or override shipped ones by name (`HOOKGATE_RULES_DIR`). An invalid
    /// file stops start-up with the file and field named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules_dir: Option<PathBuf>,
    /// Extra header names to redact in the audit log, beyond credentials and signatures.
    pub redact_headers: Vec<String>,
    /// Request limits.
    pub limits: Limits,
    /// Storage tuning.
    pub storage: Storage,
    /// How long the audit log keeps events.
    pub retention: Retention,
    /// Where the signed heads of the audit chains are published.
    pub audit: Audit,
    /// The chat connector that status messages are delivered through.
    pub chat: Chat,
    /// The live stream of accepted events.
    pub stream: Stream,
    /// Which addresses destinations may be reached at.
    pub egress: Egress,
    /// How events are delivered to destinations.
    pub delivery: Delivery,
}

/// Egress safety: destinations on loopback, link-local, private and other special-use
/// addresses are refused unless allowed here.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Egress {
    /// CIDRs (`127.0.0.0/8`), addresses and host names destinations may be reached at
    /// even though they are special-use (`HOOKGATE_EGRESS_ALLOW='["10.0.0.0/8"]'`).
    pub allow: Vec<String>,
}

/// Delivery to destinations: timeouts, retries, the circuit breaker.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    /// Time allowed to connect (and finish TLS), in milliseconds.
    pub connect_timeout_ms: u64,
    /// Time allowed for one attempt, from connecting to the end of the answer read, in
    /// milliseconds.
    pub timeout_ms: u64,
    /// Bytes of a destination's answer read at most; the rest is not read.
    pub max_response_bytes: usize,
    /// Attempts before a delivery is `dead`.
    pub max_attempts: u32,
    /// The first retry delay, doubled each attempt, in milliseconds.
    pub retry_base_ms: u64,
    /// The longest retry delay (and the cap on a `Retry-After`), in milliseconds.
    pub retry_max_ms: u64,
    /// Deliveries in flight at once on one node, over every destination.
    pub concurrency: usize,
    /// Consecutive failed attempts that pause a destination (its circuit breaker opens);
    /// 0 never pauses.
    pub breaker_failures: u32,
    /// Time between probes of a paused destination, in milliseconds.
    pub breaker_probe_ms: u64,
    /// How long a rotated secret keeps signing beside the new one, in seconds.
    pub rotation_overlap_secs: u64,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            connect_timeout_ms: 5_000,
            timeout_ms: 15_000,
            max_response_bytes: 65_536,
            max_attempts: 10,
            retry_base_ms: 5_000,
            retry_max_ms: 3_600_000,
            concurrency: 32,
            breaker_failures: 10,
            breaker_probe_ms: 30_000,
            rotation_overlap_secs: 86_400,
        }
    }
}

/// The chat platform's endpoint and the delivery policy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Chat {
    /// The connector's URL (`HOOKGATE_CHAT_URL`); without it, messages wait in the outbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Sent as `Authorization: Bearer` (`HOOKGATE_CHAT_TOKEN`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// Time allowed for one delivery attempt, in milliseconds.
    pub timeout_ms: u64,
    /// Attempts before a message is `dead`.
    pub max_attempts: u32,
    /// The first retry delay, doubled each attempt, in milliseconds.
    pub retry_base_ms: u64,
    /// The longest retry delay (and the cap on a `Retry-After`), in milliseconds.
    pub retry_max_ms: u64,
    /// Status messages in flight at once on a node, and of one account across the nodes.
    pub concurrency: usize,
    /// Consecutive failed attempts (429, 5xx, timeouts, refused connections) that pause an
    /// account's status messages on a node (its chat circuit breaker opens); 0 never
    /// pauses.
    pub breaker_failures: u32,
    /// Time between probes of a paused account's chat, in milliseconds.
    pub breaker_probe_ms: u64,
    /// The Telegram Bot API channel.
    pub telegram: crate::forward::channel::telegram::Settings,
    /// The WhatsApp Cloud API channel.
    pub whatsapp: crate::forward::channel::whatsapp::Settings,
    /// The Twilio Messages channel (SMS and WhatsApp).
    pub twilio: crate::forward::channel::twilio::Settings,
}

impl Default for Chat {
    fn default() -> Self {
        Chat {
            url: None,
            token: None,
            timeout_ms: 10_000,
            max_attempts: 8,
            retry_base_ms: 2_000,
            retry_max_ms: 600_000,
            concurrency: 16,
            breaker_failures: 10,
            breaker_probe_ms: 30_000,
            telegram: Default::default(),
            whatsapp: Default::default(),
            twilio: Default::default(),
        }
    }
}

/// The live stream (Server-Sent Events).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Stream {
    /// Seconds between heartbeat comments on an idle stream.
    pub heartbeat_secs: u64,
    /// Events a slow consumer may fall behind before it is cut off (it then resumes from
    /// the durable log with `Last-Event-ID`).
    pub buffer: usize,
}

impl Default for Stream {
    fn default() -> Self {
        Stream {
            heartbeat_secs: 15,
            buffer: 1024,
        }
    }
}

/// Retention of the events log. Pruning removes the oldest events and leaves a checkpoint,
/// so the rest of the hash chain still verifies; the change log is kept whole.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Events older than this many days are pruned in the background; 0 keeps them forever.
    pub max_age_days: u64,
    /// How often the background pruning runs, in seconds.
    pub interval_secs: u64,
    /// How many days an accepted event id stays a duplicate after its event was pruned,
    /// counted from the event's arrival: the replay horizon. 0 remembers every id forever;
    /// otherwise at least `max_age_days`.
    pub dedupe_days: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age_days: 0,
            interval_secs: 3600,
            dedupe_days: 0,
        }
    }
}

/// The signed heads of both audit chains, published for auditors to keep
/// (`GET /v1/audit/heads`, the log, and a file).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Audit {
    /// The file the signed heads are written to (replaced whole each time). Unset: the
    /// database's path with `.heads.json` added on SQLite; no file on PostgreSQL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heads_file: Option<PathBuf>,
    /// Seconds between two publications of the signed heads.
    pub heads_interval_secs: u64,
}

impl Default for Audit {
    fn default() -> Self {
        Audit {
            heads_file: None,
            heads_interval_secs: 300,
        }
    }
}

/// Limits that keep hostile or broken clients from holding resources.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The largest accepted body (`HOOKGATE_MAX_BODY_BYTES`), 1 MiB by default.
    pub max_body_bytes: usize,
    /// The largest request head, request line and headers together; at least 8192.
    pub max_header_bytes: usize,
    /// Time allowed to send the request head, in seconds.
    pub header_timeout_secs: u64,
    /// Time allowed to send the body, in seconds.
    pub body_timeout_secs: u64,
    /// Open connections per listener; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Open connections per client IP address and listener; more are closed at once, so
    /// one address cannot hold every slot of `max_connections`. 0 turns the limit off.
    /// A connection from a `trusted_proxies` address is not counted; each of its requests
    /// is counted, while it runs, against the client address its `X-Forwarded-For` names.
    pub max_connections_per_ip: usize,
    /// Load balancers and proxies in front of hookgate, as CIDRs (`10.0.0.0/8`,
    /// `192.0.2.7/32`), whose `X-Forwarded-For` names the client for the per-address
    /// limit. Nobody else's `X-Forwarded-For` is believed. Empty by default.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How much of a rejected body the audit row keeps (its size and hash are always kept).
    pub rejected_body_bytes: usize,
    /// Requests per second one account may receive, sustained; 0 turns the limit off.
    pub account_rate_per_sec: u32,
    /// Requests one account may receive at once before the sustained rate applies.
    pub account_burst: u32,
}

/// Storage tuning.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// Writes waiting for the writer thread before ingest answers 503.
    pub queue_capacity: usize,
    /// The most writes committed in one transaction.
    pub max_batch: usize,
    /// How long a write waits for a locked database before failing, in milliseconds.
    pub busy_timeout_ms: u64,
    /// How long ingest waits for a place in the writer's queue, in milliseconds.
    pub enqueue_timeout_ms: u64,
    /// Bytes per page of a database this start creates: a power of two from 512 to 65536.
    /// An existing database keeps the page size it was made with. Audit rows carry whole
    /// bodies, and a page holds only whole rows: with 1 KiB bodies (rows of about 1.4 KB)
    /// a 4 KiB page holds two and leaves a third of itself empty.
    pub page_size: u32,
    /// SQLite: WAL pages after which the writer copies the WAL into the database file
    /// (SQLite's automatic checkpoint) as part of a commit.
    pub wal_autocheckpoint_pages: u32,
    /// PostgreSQL only: connections this node keeps to the database at most.
    pub pool_size: usize,
    /// PostgreSQL only: seconds a node's claim on an outbox delivery lasts; a node that
    /// dies mid-delivery leaves it to another node after this long.
    pub claim_lease_secs: u64,
    /// The key sealing account secrets at rest, base64 of 32 bytes
    /// (`HOOKGATE_SECRET_KEY`); by default a key file `<database>.key` (mode 0600),
    /// created on first start.
    pub secret_key: Option<Secret>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            database: PathBuf::from("hookgate.db"),
            public_url: None,
            admin_token: None,
            auditor_token: None,
            rules_dir: None,
            redact_headers: Vec::new(),
            limits: Limits::default(),
            storage: Storage::default(),
            retention: Retention::default(),
            audit: Audit::default(),
            chat: Chat::default(),
            stream: Stream::default(),
            egress: Egress::default(),
            delivery: Delivery::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_header_bytes: 16 * 1024,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            max_connections: 1024,
            max_connections_per_ip: 128,
            trusted_proxies: Vec::new(),
            rejected_body_bytes: 64 * 1024,
            account_rate_per_sec: 0,
            account_burst: 100,
        }
    }
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            queue_capacity: 8192,
            max_batch: 1024,
            busy_timeout_ms: 5000,
            enqueue_timeout_ms: 2000,
            page_size: 8192,
            wal_autocheckpoint_pages: 1000,
            pool_size: 16,
            claim_lease_secs: 30,
            secret_key: None,
        }
    }
}

/// The short environment names (`HOOKGATE_DB`, ...) and the field each sets.
const ALIASES: &[(&str, &str)] = &[
    ("HOOKGATE_DB", "database"),
    ("HOOKGATE_LISTEN", "listen"),
    ("HOOKGATE_ADMIN_LISTEN", "admin_listen"),
    ("HOOKGATE_PUBLIC_URL", "public_url"),
    ("HOOKGATE_ADMIN_TOKEN", "admin_token"),
    ("HOOKGATE_AUDITOR_TOKEN", "auditor_token"),
    ("HOOKGATE_MAX_BODY_BYTES", "limits.max_body_bytes"),
    ("HOOKGATE_CHAT_URL", "chat.url"),
    ("HOOKGATE_CHAT_TOKEN", "chat.token"),
    ("HOOKGATE_SECRET_KEY", "storage.secret_key"),
    ("HOOKGATE_RULES_DIR", "rules_dir"),
    ("HOOKGATE_CHAT_TELEGRAM_TOKEN", "chat.telegram.token"),
    ("HOOKGATE_CHAT_WHATSAPP_TOKEN", "chat.whatsapp.token"),
    (
        "HOOKGATE_CHAT_WHATSAPP_PHONE_NUMBER_ID",
        "chat.whatsapp.phone_number_id",
    ),
    (
        "HOOKGATE_CHAT_TWILIO_ACCOUNT_SID",
        "chat.twilio.account_sid",
    ),
    ("HOOKGATE_CHAT_TWILIO_AUTH_TOKEN", "chat.twilio.auth_token"),
    ("HOOKGATE_CHAT_TWILIO_FROM", "chat.twilio.from"),
    (
        "HOOKGATE_CHAT_TWILIO_WHATSAPP_FROM",
        "chat.twilio.whatsapp_from",
    ),
    (
        "HOOKGATE_CHAT_TWILIO_MESSAGING_SERVICE_SID",
        "chat.twilio.messaging_service_sid",
    ),
];

/// Every field of the default configuration as (`HOOKGATE_...` name, TOML path).
pub fn env_names() -> Vec<(String, Vec<String>)> {
    fn walk(prefix: &[String], table: &toml::Table, out: &mut Vec<(String, Vec<String>)>) {
        for (key, value) in table {
            let mut path = prefix.to_vec();
            path.push(key.clone());
            match value {
                toml::Value::Table(t) => walk(&path, t, out),
                _ => out.push((format!("HOOKGATE_{}", path.join("_").to_uppercase()), path)),
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(toml::Value::Table(t)) = toml::Value::try_from(Config::default()) {
        walk(&[], &t, &mut out);
    }
    out
}

/// An environment value as TOML when it parses as a TOML value, else as a string.
fn env_value(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = table;
    for p in parents {
        let entry = current
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        match entry {
            toml::Value::Table(t) => current = t,
            _ => return,
        }
    }
    current.insert(last.clone(), value);
}

/// A configuration that cannot be used, with the setting named.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file does not parse or names an unknown field.
    #[error("config file: {0}")]
    File(#[from] toml::de::Error),
    /// An environment variable holds an unusable value (the value is not repeated: it
    /// may be a secret).
    #[error("{name}: {message}")]
    Env {
        /// The variable.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A value is out of its range.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Builds the configuration from an optional file's text and an environment lookup.
    ///
    /// Every field can be set from the environment: `HOOKGATE_` + its TOML path in upper
    /// case with `_` between parts (`HOOKGATE_LIMITS_MAX_BODY_BYTES`,
    /// `HOOKGATE_STORAGE_BUSY_TIMEOUT_MS`); values are read as TOML (`["a", "b"]` for a
    /// list) or else as a string. The short names (`ALIASES`) are aliases:
    /// `HOOKGATE_DB`, `HOOKGATE_LISTEN`, `HOOKGATE_ADMIN_LISTEN`, `HOOKGATE_PUBLIC_URL`,
    /// `HOOKGATE_ADMIN_TOKEN`, `HOOKGATE_AUDITOR_TOKEN`, `HOOKGATE_MAX_BODY_BYTES`.
    pub fn load(
        file_text: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = match file_text {
            Some(text) => toml::from_str(text)?,
            None => toml::Table::new(),
        };
        // Fail on unknown fields in the file before the environment adds anything.
        let _: Config = table.clone().try_into()?;
        let generic = env_names().into_iter();
        let aliases = ALIASES.iter().map(|(name, path)| {
            (
                name.to_string(),
                path.split('.').map(str::to_owned).collect(),
            )
        });
        for (name, path) in generic.chain(aliases) {
            let Some(value) = env(&name).filter(|v| !v.is_empty()) else {
                continue;
            };
            // Paths, URLs and tokens are always text; everything else is read as TOML.
            let textual = matches!(
                path.last().map(String::as_str),
                Some(
                    "database"
                        | "rules_dir"
                        | "public_url"
                        | "admin_token"
                        | "auditor_token"
                        | "url"
                        | "token"
                        | "secret_key"
                        | "base_url"
                        | "api_version"
                        | "phone_number_id"
                        | "account_sid"
                        | "auth_token"
                        | "from"
                        | "whatsapp_from"
                        | "messaging_service_sid"
                )
            );
            let value = if textual {
                toml::Value::String(value)
            } else {
                env_value(&value)
            };
            set_path(&mut table, &path, value);
            if let Err(e) = table.clone().try_into::<Config>() {
                return Err(ConfigError::Env {
                    name,
                    message: e.message().to_owned(),
                });
            }
        }
        let config: Config = table.try_into()?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.limits.max_header_bytes < 8192 {
            return invalid("limits.max_header_bytes must be at least 8192");
        }
        if self.limits.max_body_bytes == 0 {
            return invalid("limits.max_body_bytes must be positive");
        }
        if self.limits.max_connections == 0 {
            return invalid("limits.max_connections must be positive");
        }
        if self.chat.max_attempts == 0 || self.chat.concurrency == 0 || self.stream.buffer == 0 {
            return invalid(
                "chat.max_attempts, chat.concurrency and stream.buffer must be positive",
            );
        }
        for (field, url) in [
            ("chat.telegram.base_url", &self.chat.telegram.base_url),
            ("chat.whatsapp.base_url", &self.chat.whatsapp.base_url),
            ("chat.twilio.base_url", &self.chat.twilio.base_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.contains(['?', '#'])
            {
                return invalid(&format!(
                    "{field} must be an http:// or https:// URL without a query or fragment"
                ));
            }
        }
        if self.stream.heartbeat_secs == 0 {
            return invalid("stream.heartbeat_secs must be positive");
        }
        if self.retention.interval_secs == 0 {
            return invalid("retention.interval_secs must be positive");
        }
        let r = &self.retention;
        if r.dedupe_days != 0 && r.max_age_days != 0 && r.dedupe_days < r.max_age_days {
            return invalid(&format!(
                "retention.dedupe_days ({}) is shorter than retention.max_age_days ({}): an event id must stay a duplicate at least as long as its event is kept (0 keeps ids forever)",
                r.dedupe_days, r.max_age_days
            ));
        }
        if self.audit.heads_interval_secs == 0 {
            return invalid("audit.heads_interval_secs must be positive");
        }
        if self.storage.queue_capacity == 0 || self.storage.max_batch == 0 {
            return invalid("storage.queue_capacity and storage.max_batch must be positive");
        }
        let page = self.storage.page_size;
        if !(512..=65536).contains(&page) || !page.is_power_of_two() {
            return invalid(&format!(
                "storage.page_size must be a power of two from 512 to 65536, not {page}"
            ));
        }
        if let Some(t) = &self.admin_token
            && t.expose().len() < 16
        {
            return invalid("the admin token must be at least 16 characters long");
        }
        Ok(())
    }

    /// The base URL shown to users, without a trailing slash.
    pub fn public_base_url(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// The header timeout as a duration.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.header_timeout_secs)
    }

    /// The body timeout as a duration.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.body_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_without_anything() {
        let c = Config::load(None, no_env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.admin_listen.to_string(), "127.0.0.1:8081");
        assert_eq!(c.database, PathBuf::from("hookgate.db"));
        assert_eq!(c.public_base_url(), "http://127.0.0.1:8080");
        assert_eq!(c.limits.max_body_bytes, 1 << 20);
    }

    #[test]
    fn file_then_env_override() {
        let file = "listen = \"127.0.0.1:9000\"\npublic_url = \"https://hooks.example/\"\n[limits]\nmax_body_bytes = 10\n";
        let env = |k: &str| (k == "HOOKGATE_LISTEN").then(|| "0.0.0.0:9100".to_owned());
        let c = Config::load(Some(file), env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.listen.to_string(), "0.0.0.0:9100");
        assert_eq!(c.public_base_url(), "https://hooks.example");
        assert_eq!(c.limits.max_body_bytes, 10);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let err = Config::load(Some("lisen = \"x\""), no_env)
            .err()
            .map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("lisen"));
        let env = |k: &str| (k == "HOOKGATE_LISTEN").then(|| "nope".to_owned());
        let err = Config::load(None, env).err().map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("HOOKGATE_LISTEN"));
        let err = Config::load(Some("[limits]\nmax_header_bytes = 100"), no_env).err();
        assert!(err.is_some());
        for page in ["256", "1000", "131072", "0"] {
            let err = Config::load(Some(&format!("[storage]\npage_size = {page}")), no_env)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains("storage.page_size") && err.contains(page),
                "{page}: {err}"
            );
        }
        for page in [512, 4096, 65536] {
            let c = Config::load(Some(&format!("[storage]\npage_size = {page}")), no_env)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(c.storage.page_size, page);
        }
    }

    #[test]
    fn a_replay_horizon_shorter_than_retention_is_refused() {
        let load = |text: &str| Config::load(Some(text), no_env).map(|c| c.retention.dedupe_days);
        let err = load("[retention]\nmax_age_days = 30\ndedupe_days = 7")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("retention.dedupe_days") && err.contains("30"),
            "{err}"
        );
        assert_eq!(
            load("[retention]\nmax_age_days = 30\ndedupe_days = 30").ok(),
            Some(30)
        );
        assert_eq!(load("[retention]\nmax_age_days = 30").ok(), Some(0));
        assert_eq!(load("[retention]\ndedupe_days = 1").ok(), Some(1));
    }

    #[test]
    fn every_field_has_an_environment_name() {
        let names: Vec<String> = env_names().into_iter().map(|(n, _)| n).collect();
        for expected in [
            "HOOKGATE_LISTEN",
            "HOOKGATE_LIMITS_MAX_BODY_BYTES",
            "HOOKGATE_STORAGE_BUSY_TIMEOUT_MS",
            "HOOKGATE_REDACT_HEADERS",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing from {names:?}"
            );
        }
        let env = |k: &str| match k {
            "HOOKGATE_STORAGE_BUSY_TIMEOUT_MS" => Some("250".to_owned()),
            "HOOKGATE_REDACT_HEADERS" => Some("[\"x-a\", \"x-b\"]".to_owned()),
            "HOOKGATE_DB" => Some("/tmp/x.db".to_owned()),
            "HOOKGATE_ADMIN_TOKEN" => Some("123456789012345678".to_owned()),
            _ => None,
        };
        let c = Config::load(Some("[storage]\nbusy_timeout_ms = 9"), env)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.storage.busy_timeout_ms, 250);
        assert_eq!(c.redact_headers, ["x-a", "x-b"]);
        assert_eq!(c.database, PathBuf::from("/tmp/x.db"));
        assert!(
            c.admin_token
                .is_some_and(|t| t.expose() == b"123456789012345678")
        );
        let bad = |k: &str| (k == "HOOKGATE_LIMITS_MAX_CONNECTIONS").then(|| "many".to_owned());
        let err = Config::load(None, bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("HOOKGATE_LIMITS_MAX_CONNECTIONS"), "{err}");
    }

    #[test]
    fn the_example_file_is_the_defaults() {
        let text = include_str!("../hookgate.example.toml");
        let c = Config::load(Some(text), no_env).unwrap_or_else(|e| panic!("{e}"));
        let d = Config::default();
        assert_eq!(format!("{c:?}"), format!("{d:?}"));
    }

    #[test]
    fn chat_channels_come_from_the_file_or_the_environment_and_never_print() {
        let file = "[chat.telegram]\ntoken = \"123:tg-file\"\nbase_url = \"http://127.0.0.1:1\"\n";
        let env = |k: &str| match k {
            "HOOKGATE_CHAT_WHATSAPP_TOKEN" => Some("wa-secret".to_owned()),
            "HOOKGATE_CHAT_WHATSAPP_PHONE_NUMBER_ID" => Some("105512345".to_owned()),
            "HOOKGATE_CHAT_TWILIO_ACCOUNT_SID" => Some("AC1".to_owned()),
            "HOOKGATE_CHAT_TWILIO_AUTH_TOKEN" => Some("tw-secret".to_owned()),
            "HOOKGATE_CHAT_TWILIO_FROM" => Some("+15550001111".to_owned()),
            "HOOKGATE_CHAT_TWILIO_BASE_URL" => Some("http://127.0.0.1:2".to_owned()),
            _ => None,
        };
        let c = Config::load(Some(file), env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.chat.telegram.base_url, "http://127.0.0.1:1");
        assert_eq!(
            c.chat.whatsapp.phone_number_id.as_deref(),
            Some("105512345")
        );
        assert_eq!(c.chat.twilio.from.as_deref(), Some("+15550001111"));
        assert_eq!(c.chat.twilio.base_url, "http://127.0.0.1:2");
        assert!(
            c.chat
                .twilio
                .auth_token
                .as_ref()
                .is_some_and(|t| t.expose() == b"tw-secret")
        );
        let shown = format!("{c:?}");
        for secret in ["tg-file", "wa-secret", "tw-secret"] {
            assert!(!shown.contains(secret), "{secret} printed");
        }
        let err = Config::load(Some("[chat.telegram]\ntokn = \"x\"\n"), no_env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("tokn"), "{err}");
        let err = Config::load(
            Some("[chat.twilio]\nbase_url = \"api.twilio.com\"\n"),
            no_env,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("chat.twilio.base_url"), "{err}");
    }

    #[test]
    fn trusted_proxies_are_cidrs_from_the_file_or_the_environment() {
        let text = "[limits]\ntrusted_proxies = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n";
        let c = Config::load(Some(text), no_env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.limits.trusted_proxies.len(), 2);
        let env = |k: &str| {
            (k == "HOOKGATE_LIMITS_TRUSTED_PROXIES").then(|| r#"["192.0.2.7/32"]"#.to_owned())
        };
        let c = Config::load(None, env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.limits.trusted_proxies[0].to_string(), "192.0.2.7/32");
        let bad = Config::load(
            Some("[limits]\ntrusted_proxies = [\"10.0.0.300/8\"]\n"),
            no_env,
        );
        assert!(bad.is_err_and(|e| e.to_string().contains("trusted_proxies")));
        assert!(Config::default().limits.trusted_proxies.is_empty());
        assert!(Config::default().limits.max_connections_per_ip > 0);
    }
}
