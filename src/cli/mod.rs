//! The command line: `hookgate serve`, `accounts ...`, `events ...`, `providers ...`,
//! `sign`.
//!
//! Owns the clap definitions and what each command does. Everything but `serve`,
//! `providers`, `sign` and `dev` talks to a running gateway's admin API at `HOOKGATE_URL` with `HOOKGATE_ADMIN_TOKEN`. It must
//! never print a token or secret: answers are printed as the API gave them (masked).

mod chat_sink;
pub mod client;
mod providers;

use std::path::PathBuf;

use std::io::Write as _;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use hyper::Method;
use serde_json::Value;

use crate::config::Config;
use crate::server::{Gateway, Listeners};
use client::HttpClient;

/// hookgate: a self-hosted receiving-side webhook gateway.
#[derive(Debug, Parser)]
#[command(name = "hookgate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (public and admin listeners) on the configured SQLite file.
    Serve {
        /// A TOML config file (see hookgate.example.toml); environment variables override it.
        #[arg(long, env = "HOOKGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Manage accounts through the admin API.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Search and show the audit log through the admin API.
    #[command(subcommand)]
    Events(Box<EventsCommand>),
    /// Check the audit log's hash chains, or prune old events.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage named admin and auditor tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Tools for trying hookgate locally.
    #[command(subcommand)]
    Dev(DevCommand),
    /// The provider presets: what each needs and checks (no gateway needed).
    #[command(subcommand)]
    Providers(ProvidersCommand),
    /// Print the headers (and a ready curl command) a provider would send with a body, so
    /// an account can be tried before the real provider is pointed at it.
    Sign(SignArgs),
}

/// `hookgate providers ...`.
#[derive(Debug, Subcommand)]
pub enum ProvidersCommand {
    /// List the presets.
    List {
        /// Also load the operator rule files in this directory.
        #[arg(long, env = "HOOKGATE_RULES_DIR")]
        rules_dir: Option<PathBuf>,
    },
    /// Show one preset: what to paste, further settings, headers checked, default paths.
    Show {
        /// The preset's name, e.g. stripe.
        name: String,
        /// Also load the operator rule files in this directory.
        #[arg(long, env = "HOOKGATE_RULES_DIR")]
        rules_dir: Option<PathBuf>,
    },
}

/// `hookgate sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The preset, e.g. stripe.
    #[arg(long)]
    pub provider: String,
    /// The secret as pasted into the account; for discord and sendgrid, the private key
    /// (the public key to configure is printed).
    #[arg(long, env = "HOOKGATE_SIGN_SECRET", hide_env_values = true)]
    pub secret: String,
    /// The file with the body to send.
    #[arg(long)]
    pub body: PathBuf,
    /// The URL to send to; by default {HOOKGATE_PUBLIC_URL or http://127.0.0.1:8080}/hooks/{provider}.
    #[arg(long)]
    pub url: Option<String>,
    /// Also load the operator rule files in this directory.
    #[arg(long, env = "HOOKGATE_RULES_DIR")]
    pub rules_dir: Option<PathBuf>,
}

/// `hookgate dev ...`.
#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// A stand-in chat platform that prints every status message it receives.
    ChatSink {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: std::net::SocketAddr,
        /// The status to answer (try 404 for no_session, 503 for retries).
        #[arg(long, default_value_t = 200)]
        status: u16,
    },
}

/// `hookgate audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify both hash chains: through the admin API, or offline on a database file.
    Verify {
        /// Verify this SQLite file directly, read-only, without a running gateway.
        #[arg(long)]
        db: Option<PathBuf>,
        /// A head hash noted earlier: fail unless the events chain still passes through it.
        #[arg(long)]
        expect_head: Option<String>,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Prune events received before a time (RFC 3339), leaving a chain checkpoint.
    Prune {
        /// e.g. 2026-01-01T00:00:00Z
        #[arg(long)]
        before: String,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
}

/// `hookgate tokens ...`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a named token; it is printed once and stored only as a hash.
    Create {
        /// A name for the change log.
        #[arg(long)]
        name: String,
        /// admin or auditor.
        #[arg(long)]
        role: String,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// List token names and roles.
    List {
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Revoke a named token.
    Revoke {
        /// The token's name.
        name: String,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
}

/// Where the admin API is and how to authenticate.
#[derive(Debug, Args, Clone)]
pub struct Remote {
    /// The admin API's base URL.
    #[arg(
        long,
        env = "HOOKGATE_URL",
        default_value = "http://127.0.0.1:8081",
        global = true
    )]
    pub url: String,
    /// The admin (or auditor) token.
    #[arg(
        long,
        env = "HOOKGATE_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
}

/// `hookgate accounts ...`.
#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Create an account from JSON (the admin API's contract), given inline or as @FILE.
    Create {
        /// JSON text, or @path/to/file.json.
        spec: String,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// List accounts.
    List {
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one account (secrets masked).
    Show {
        /// The account name.
        name: String,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Change an account with a JSON merge patch, inline or as @FILE.
    Update {
        /// The account name.
        name: String,
        /// JSON text, or @path/to/file.json.
        patch: String,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete an account (its audit rows stay).
    Delete {
        /// The account name.
        name: String,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Let an account's URL accept traffic again.
    Activate {
        /// The account name.
        name: String,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Make an account's URL refuse traffic (requests are still audited).
    Deactivate {
        /// The account name.
        name: String,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
}

/// `hookgate events ...`.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List events, newest first.
    List {
        /// The search filters.
        #[command(flatten)]
        filter: EventFilterArgs,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Export every matching event, oldest first, streamed (NDJSON or CSV).
    Export {
        /// ndjson or csv.
        #[arg(long, default_value = "ndjson")]
        format: String,
        /// Include each event's stored body.
        #[arg(long)]
        include_body: bool,
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
        /// The search filters.
        #[command(flatten)]
        filter: EventFilterArgs,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Queue a dead or no-session delivery of an event again.
    Redeliver {
        /// The event id (`evt_...`).
        id: String,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Follow the live stream of accepted events of listening accounts (one JSON per line).
    Tail {
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
        /// Resume after this stream id.
        #[arg(long)]
        after: Option<i64>,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one event with its (redacted) headers and body.
    Show {
        /// The event id (`evt_...`).
        id: String,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
}

/// Filters of `hookgate events list`.
#[derive(Debug, Args, Clone)]
pub struct EventFilterArgs {
    /// Account name.
    #[arg(long)]
    pub account: Option<String>,
    /// accepted, duplicate, rejected or handshake.
    #[arg(long)]
    pub status: Option<String>,
    /// Rejection reason, e.g. bad_signature.
    #[arg(long)]
    pub reason: Option<String>,
    /// Extracted sender.
    #[arg(long)]
    pub sender: Option<String>,
    /// Extracted source.
    #[arg(long)]
    pub source: Option<String>,
    /// Extracted event type.
    #[arg(long)]
    pub event_type: Option<String>,
    /// Received at or after (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Received before (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Page size (1 to 1000).
    #[arg(long)]
    pub limit: Option<u32>,
    /// The next_cursor of a previous page.
    #[arg(long)]
    pub cursor: Option<String>,
}

impl EventFilterArgs {
    fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        let limit = self.limit.map(|l| l.to_string());
        let pairs = [
            ("account", &self.account),
            ("status", &self.status),
            ("reason", &self.reason),
            ("sender", &self.sender),
            ("source", &self.source),
            ("event_type", &self.event_type),
            ("since", &self.since),
            ("until", &self.until),
            ("limit", &limit),
            ("cursor", &self.cursor),
        ];
        for (k, v) in pairs {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        q.finish()
    }
}

/// Runs a parsed command line; the error is printed by `main`.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => serve(config).await,
        Command::Accounts(cmd) => accounts(cmd).await,
        Command::Events(cmd) => events(*cmd).await,
        Command::Audit(cmd) => audit(cmd).await,
        Command::Tokens(cmd) => tokens(cmd).await,
        Command::Dev(DevCommand::ChatSink { listen, status }) => {
            chat_sink::run(listen, status).await
        }
        Command::Providers(cmd) => providers::run(cmd),
        Command::Sign(args) => providers::sign(args),
    }
}

async fn serve(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let text = match &config_path {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
        }
        None => None,
    };
    let config = Config::load(text.as_deref(), |k| std::env::var(k).ok())?;
    let listeners = Listeners::bind(&config)
        .await
        .with_context(|| format!("binding {} and {}", config.listen, config.admin_listen))?;
    let public = listeners.public.local_addr()?;
    let admin = listeners.admin.local_addr()?;
    let base = config.public_base_url();
    let db = config.database.display().to_string();
    let token_from_config = config.admin_token.is_some();
    let gateway = Gateway::open(config).await?;
    println!("hookgate {} is running", env!("CARGO_PKG_VERSION"));
    println!("  webhooks:  {base}/hooks/{{account}}   (listening on {public})");
    println!("  admin API: http://{admin}/v1/");
    println!("  database:  {db}");
    match &gateway.generated_admin_token {
        Some(token) => {
            println!("  admin token (shown once, stored only as a hash; keep it now):");
            println!("    export HOOKGATE_ADMIN_TOKEN={token}");
        }
        None if token_from_config => {
            println!("  admin token: the one set in HOOKGATE_ADMIN_TOKEN or the config file")
        }
        None => println!(
            "  admin token: generated on first start and shown then; to replace it, set HOOKGATE_ADMIN_TOKEN and restart"
        ),
    }
    gateway.run(listeners, shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Reads inline JSON or `@file`.
fn json_arg(arg: &str) -> anyhow::Result<Value> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => arg.to_owned(),
    };
    serde_json::from_str(&text).context("the argument is not valid JSON")
}

async fn call(
    remote: &Remote,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<()> {
    let Some(token) = remote.token.as_deref() else {
        bail!(
            "no token: set HOOKGATE_ADMIN_TOKEN (printed by `hookgate serve` on first start) or pass --token"
        );
    };
    let url = format!("{}{path}", remote.url.trim_end_matches('/'));
    let answer = HttpClient::default()
        .admin(method, &url, token, body.as_ref())
        .await?;
    let value = answer.json();
    if answer.status.is_success() {
        println!("{}", serde_json::to_string_pretty(&value)?);
        Ok(())
    } else {
        let detail = value.get("detail").and_then(Value::as_str).unwrap_or("");
        let field = value
            .get("field")
            .and_then(Value::as_str)
            .map(|f| format!(" (field {f})"))
            .unwrap_or_default();
        bail!("{}: {detail}{field}", answer.status)
    }
}

async fn accounts(cmd: AccountsCommand) -> anyhow::Result<()> {
    use AccountsCommand as A;
    match cmd {
        A::Create { spec, remote } => {
            call(
                &remote,
                Method::POST,
                "/v1/accounts",
                Some(json_arg(&spec)?),
            )
            .await
        }
        A::List { remote } => call(&remote, Method::GET, "/v1/accounts", None).await,
        A::Show { name, remote } => {
            call(&remote, Method::GET, &format!("/v1/accounts/{name}"), None).await
        }
        A::Update {
            name,
            patch,
            remote,
        } => {
            call(
                &remote,
                Method::PATCH,
                &format!("/v1/accounts/{name}"),
                Some(json_arg(&patch)?),
            )
            .await
        }
        A::Delete { name, remote } => {
            call(
                &remote,
                Method::DELETE,
                &format!("/v1/accounts/{name}"),
                None,
            )
            .await
        }
        A::Activate { name, remote } => {
            call(
                &remote,
                Method::POST,
                &format!("/v1/accounts/{name}/activate"),
                None,
            )
            .await
        }
        A::Deactivate { name, remote } => {
            call(
                &remote,
                Method::POST,
                &format!("/v1/accounts/{name}/deactivate"),
                None,
            )
            .await
        }
    }
}

async fn events(cmd: EventsCommand) -> anyhow::Result<()> {
    match cmd {
        EventsCommand::List { filter, remote } => {
            call(
                &remote,
                Method::GET,
                &format!("/v1/events?{}", filter.query()),
                None,
            )
            .await
        }
        EventsCommand::Show { id, remote } => {
            call(&remote, Method::GET, &format!("/v1/events/{id}"), None).await
        }
        EventsCommand::Redeliver { id, remote } => {
            call(
                &remote,
                Method::POST,
                &format!("/v1/events/{id}/redeliver"),
                None,
            )
            .await
        }
        EventsCommand::Tail {
            account,
            after,
            remote,
        } => {
            let token = token_of(&remote)?;
            let mut q = form_urlencoded::Serializer::new(String::new());
            if let Some(a) = &account {
                q.append_pair("account", a);
            }
            if let Some(a) = after {
                q.append_pair("last_event_id", &a.to_string());
            }
            let url = format!(
                "{}/v1/stream?{}",
                remote.url.trim_end_matches('/'),
                q.finish()
            );
            let mut out = DataLines {
                pending: Vec::new(),
                out: std::io::stdout(),
            };
            let status = HttpClient::default()
                .download(&url, token, &mut out)
                .await?;
            if !status.is_success() {
                bail!("{status}: the stream was refused");
            }
            Ok(())
        }
        EventsCommand::Export {
            format,
            include_body,
            output,
            filter,
            remote,
        } => {
            let token = token_of(&remote)?;
            let url = format!(
                "{}/v1/events/export?format={format}&include_body={include_body}&{}",
                remote.url.trim_end_matches('/'),
                filter.query()
            );
            let mut out: Box<dyn std::io::Write + Send> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            let status = HttpClient::default()
                .download(&url, token, &mut *out)
                .await?;
            out.flush()?;
            if !status.is_success() {
                bail!("{status}: the export was refused (see the answer above)");
            }
            Ok(())
        }
    }
}

/// Prints the `data:` payload of each Server-Sent Event as one line.
struct DataLines {
    pending: Vec<u8>,
    out: std::io::Stdout,
}

impl std::io::Write for DataLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if let Some(data) = line.strip_prefix(b"data: ") {
                let mut out = self.out.lock();
                out.write_all(data)?;
                out.flush()?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn token_of(remote: &Remote) -> anyhow::Result<&str> {
    remote.token.as_deref().ok_or_else(|| {
        anyhow::anyhow!("no token: set HOOKGATE_ADMIN_TOKEN (printed by `hookgate serve` on first start) or pass --token")
    })
}

async fn audit(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify {
            db: Some(path),
            expect_head,
            ..
        } => {
            let expected = match &expect_head {
                Some(h) => Some(
                    hex::decode(h.trim())
                        .ok()
                        .and_then(|b| crate::chain::Hash::try_from(b.as_slice()).ok())
                        .context("--expect-head must be 64 hex digits")?,
                ),
                None => None,
            };
            let reports = crate::store::verify_file(&path, expected)?;
            let ok = reports.iter().all(|r| r.ok);
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"ok": ok, "logs": reports}))?
            );
            if !ok {
                bail!("the audit log of {} does not verify", path.display());
            }
            Ok(())
        }
        AuditCommand::Verify {
            db: None,
            expect_head,
            remote,
        } => {
            let token = token_of(&remote)?;
            let query = expect_head
                .map(|h| format!("?expect_head={h}"))
                .unwrap_or_default();
            let url = format!(
                "{}/v1/audit/verify{query}",
                remote.url.trim_end_matches('/')
            );
            let answer = HttpClient::default()
                .admin(Method::GET, &url, token, None)
                .await?;
            let value = answer.json();
            println!("{}", serde_json::to_string_pretty(&value)?);
            if !answer.status.is_success() || value["ok"] != true {
                bail!("the audit log does not verify");
            }
            Ok(())
        }
        AuditCommand::Prune { before, remote } => {
            call(
                &remote,
                Method::POST,
                "/v1/audit/prune",
                Some(serde_json::json!({"before": before})),
            )
            .await
        }
    }
}

async fn tokens(cmd: TokensCommand) -> anyhow::Result<()> {
    match cmd {
        TokensCommand::Create { name, role, remote } => {
            call(
                &remote,
                Method::POST,
                "/v1/tokens",
                Some(serde_json::json!({"name": name, "role": role})),
            )
            .await
        }
        TokensCommand::List { remote } => call(&remote, Method::GET, "/v1/tokens", None).await,
        TokensCommand::Revoke { name, remote } => {
            call(&remote, Method::DELETE, &format!("/v1/tokens/{name}"), None).await
        }
    }
}
