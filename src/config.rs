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

use serde::Deserialize;

use crate::secret::Secret;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The public listener for `/hooks/...` (`HOOKGATE_LISTEN`).
    pub listen: SocketAddr,
    /// The admin listener (`HOOKGATE_ADMIN_LISTEN`).
    pub admin_listen: SocketAddr,
    /// The SQLite database file (`HOOKGATE_DB`).
    pub database: PathBuf,
    /// The base URL senders are given, without a trailing slash (`HOOKGATE_PUBLIC_URL`);
    /// by default `http://{listen}`.
    pub public_url: Option<String>,
    /// An admin token (`HOOKGATE_ADMIN_TOKEN`); without one, a token is generated on
    /// first start, shown once and stored only as a hash.
    pub admin_token: Option<Secret>,
    /// An auditor token (`HOOKGATE_AUDITOR_TOKEN`).
    pub auditor_token: Option<Secret>,
    /// Extra header names to redact in the audit log, beyond credentials and signatures.
    pub redact_headers: Vec<String>,
    /// Request limits.
    pub limits: Limits,
    /// Storage tuning.
    pub storage: Storage,
}

/// Limits that keep hostile or broken clients from holding resources.
#[derive(Debug, Clone, Deserialize)]
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
    /// Open connections per client IP address and listener; more are closed at once.
    /// 0 turns the limit off (the default: behind a proxy every client has its address).
    pub max_connections_per_ip: usize,
    /// How much of a rejected body the audit row keeps (its size and hash are always kept).
    pub rejected_body_bytes: usize,
    /// Requests per second one account may receive, sustained; 0 turns the limit off.
    pub account_rate_per_sec: u32,
    /// Requests one account may receive at once before the sustained rate applies.
    pub account_burst: u32,
}

/// Storage tuning.
#[derive(Debug, Clone, Deserialize)]
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
            redact_headers: Vec::new(),
            limits: Limits::default(),
            storage: Storage::default(),
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
            max_connections_per_ip: 0,
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
            secret_key: None,
        }
    }
}

/// A configuration that cannot be used, with the setting named.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file does not parse or names an unknown field.
    #[error("config file: {0}")]
    File(#[from] toml::de::Error),
    /// An environment variable holds an unusable value.
    #[error("{name}={value:?}: {message}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Its value (never a secret: secret variables are not parsed).
        value: String,
        /// What is wrong.
        message: String,
    },
    /// A value is out of its range.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Builds the configuration from an optional file's text and an environment lookup.
    pub fn load(
        file_text: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config: Config = match file_text {
            Some(text) => toml::from_str(text)?,
            None => Config::default(),
        };
        fn parsed<T: std::str::FromStr>(name: &'static str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env {
                name,
                message: e.to_string(),
                value,
            })
        }
        if let Some(v) = env("HOOKGATE_LISTEN") {
            config.listen = parsed("HOOKGATE_LISTEN", v)?;
        }
        if let Some(v) = env("HOOKGATE_ADMIN_LISTEN") {
            config.admin_listen = parsed("HOOKGATE_ADMIN_LISTEN", v)?;
        }
        if let Some(v) = env("HOOKGATE_DB") {
            config.database = PathBuf::from(v);
        }
        if let Some(v) = env("HOOKGATE_PUBLIC_URL") {
            config.public_url = Some(v);
        }
        if let Some(v) = env("HOOKGATE_ADMIN_TOKEN").filter(|v| !v.is_empty()) {
            config.admin_token = Some(Secret::new(v));
        }
        if let Some(v) = env("HOOKGATE_AUDITOR_TOKEN").filter(|v| !v.is_empty()) {
            config.auditor_token = Some(Secret::new(v));
        }
        if let Some(v) = env("HOOKGATE_SECRET_KEY").filter(|v| !v.is_empty()) {
            config.storage.secret_key = Some(Secret::new(v));
        }
        if let Some(v) = env("HOOKGATE_MAX_BODY_BYTES") {
            config.limits.max_body_bytes = parsed("HOOKGATE_MAX_BODY_BYTES", v)?;
        }
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
        if self.storage.queue_capacity == 0 || self.storage.max_batch == 0 {
            return invalid("storage.queue_capacity and storage.max_batch must be positive");
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
    }

    #[test]
    fn the_example_file_is_the_defaults() {
        let text = include_str!("../hookgate.example.toml");
        let c = Config::load(Some(text), no_env).unwrap_or_else(|e| panic!("{e}"));
        let d = Config::default();
        assert_eq!(format!("{c:?}"), format!("{d:?}"));
    }
}
