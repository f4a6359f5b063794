//! The command line: `hookgate serve`, `accounts ...`, `events ...`, `providers ...`,
//! `sign`.
//!
//! Owns the clap definitions, dispatch, and `serve`. The commands that talk to a running
//! gateway's admin API live in `remote`; `providers` and `sign` in `providers`; the
//! stand-in chat platform in `chat_sink`. It must never print a token or secret.

mod chat_sink;
pub mod client;
mod paths;
mod providers;
mod remote;

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::server::{Gateway, Listeners};

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
    /// Copy the SQLite database into a new file while the gateway runs (SQLite's online
    /// backup): a consistent, self-contained copy that `audit verify --db` checks.
    Backup {
        /// The database to copy.
        #[arg(long, env = "HOOKGATE_DB", default_value = "hookgate.db")]
        db: PathBuf,
        /// The new file to write; an existing file is never overwritten.
        #[arg(long)]
        to: PathBuf,
    },
    /// Move a SQLite database into an empty PostgreSQL database, every chain intact
    /// (stop the gateway first; both logs are verified after the copy).
    Migrate {
        /// The SQLite database to move.
        #[arg(long)]
        from: PathBuf,
        /// The empty PostgreSQL database: postgres://user:password@host:port/db.
        #[arg(long)]
        to: String,
    },
    /// The JSONPaths of a sample payload's fields, for an account's paths (no gateway
    /// needed).
    #[command(subcommand)]
    Paths(paths::PathsCommand),
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
        /// Verify this database directly, read-only, without a running gateway: a SQLite
        /// file, or a postgres:// URL.
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
    /// Try Out: the gateway signs a test request with the account's own key and sends it
    /// to the account's URL; prints the answer and the audit id.
    Try {
        /// The account name.
        name: String,
        /// The body to send, JSON inline or @FILE (default: a made-up test event).
        #[arg(long)]
        body: Option<String>,
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

/// How many async worker threads to run on a machine with `cores` cores: `requested`
/// (the `TOKIO_WORKER_THREADS` variable) when set, else one fewer than the cores, and at
/// least one. The writer is a thread of its own that every event waits on: a worker per
/// core left it waiting for a core, and the workers woke one another to share tasks. On
/// the 2-core benchmark machine one worker took 4-9 % less CPU per request
/// (BENCHMARKS.md).
pub fn async_workers(requested: Option<&str>, cores: usize) -> Result<usize, String> {
    match requested.map(str::trim) {
        None | Some("") => Ok(cores.saturating_sub(1).max(1)),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "TOKIO_WORKER_THREADS must be a whole number above 0, not {text:?}"
            )),
        },
    }
}

/// Runs a parsed command line; the error is printed by `main`.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => serve(config).await,
        Command::Accounts(cmd) => remote::accounts(cmd).await,
        Command::Events(cmd) => remote::events(*cmd).await,
        Command::Audit(cmd) => remote::audit(cmd).await,
        Command::Tokens(cmd) => remote::tokens(cmd).await,
        Command::Dev(DevCommand::ChatSink { listen, status }) => {
            chat_sink::run(listen, status).await
        }
        Command::Providers(cmd) => providers::run(cmd),
        Command::Sign(args) => providers::sign(args),
        Command::Backup { db, to } => backup(&db, &to),
        Command::Migrate { from, to } => migrate(&from, &to).await,
        Command::Paths(cmd) => emit(&paths::run(cmd)?),
    }
}

async fn migrate(from: &std::path::Path, to: &str) -> anyhow::Result<()> {
    if crate::store::postgres_url(std::path::Path::new(to)).is_none() {
        anyhow::bail!("--to must be a postgres:// URL (the database to move into)");
    }
    let shown = crate::store::shown(std::path::Path::new(to));
    let moved = crate::store::migrate::sqlite_to_postgres(from, to)
        .await
        .with_context(|| format!("moving {} into {shown}", from.display()))?;
    let mut out = format!("moved {} into {shown}:\n", from.display());
    for (table, rows) in &moved.copied {
        out.push_str(&format!("  {table}: {rows} rows\n"));
    }
    for r in &moved.target {
        out.push_str(&format!(
            "  {} log verifies: {} rows, head {}\n",
            r.log, r.rows, r.head
        ));
    }
    let key = crate::seal::key_file_for(from);
    out.push_str(&format!(
        "Every node on the new database needs the key that sealed these accounts:\n  export HOOKGATE_SECRET_KEY=\"$(cat {})\"\n",
        key.display()
    ));
    emit(&out)
}

fn backup(db: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    let pages = crate::store::backup_file(db, to)
        .with_context(|| format!("backing up {} to {}", db.display(), to.display()))?;
    emit(&format!(
        "backed up {} to {} ({pages} pages); check it with: hookgate audit verify --db {}\n",
        db.display(),
        to.display(),
        to.display()
    ))
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
    let db = crate::store::shown(&config.database);
    let token_from_config = config.admin_token.is_some();
    let gateway = Gateway::open(config).await?;
    let mut banner = format!(
        "hookgate {} is running\n  webhooks:  {base}/hooks/{{account}}   (listening on {public})\n  admin API: http://{admin}/v1/\n  console:   http://{admin}/   (sign in with the admin or an auditor token)\n  database:  {db}\n",
        env!("CARGO_PKG_VERSION")
    );
    banner.push_str(&match &gateway.generated_admin_token {
        Some(token) => format!(
            "  admin token (shown once, stored only as a hash; keep it now):\n    export HOOKGATE_ADMIN_TOKEN={token}\n"
        ),
        None if token_from_config => {
            "  admin token: the one set in HOOKGATE_ADMIN_TOKEN or the config file\n".into()
        }
        None => "  admin token: generated on first start and shown then; to replace it, set HOOKGATE_ADMIN_TOKEN and restart\n".into(),
    });
    // The banner is information: a gateway whose standard output is gone keeps serving,
    // and says where it listens in its log too.
    tracing::info!("listening: webhooks on {public}, admin API on {admin}");
    let _ = emit(&banner);
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

/// Writes a command's whole output at once; a reader that went away (`| head`) is not an
/// error, so no command panics on a closed pipe as `println!` would.
fn emit(out: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::async_workers;

    #[test]
    fn one_core_is_left_to_the_writer_unless_told_otherwise() {
        assert_eq!(async_workers(None, 1), Ok(1));
        assert_eq!(async_workers(None, 2), Ok(1));
        assert_eq!(async_workers(None, 8), Ok(7));
        assert_eq!(async_workers(Some(""), 4), Ok(3));
        assert_eq!(async_workers(Some("2"), 2), Ok(2));
        assert_eq!(async_workers(Some(" 16 "), 2), Ok(16));
        for bad in ["0", "-1", "two", "1.5"] {
            let e = async_workers(Some(bad), 2).err().unwrap_or_default();
            assert!(e.contains("TOKIO_WORKER_THREADS"), "{bad}: {e}");
        }
    }
}
