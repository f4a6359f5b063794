//! The command line's definition: every subcommand, flag and environment variable of
//! `hookgate`, as clap derives. Completions and the man page are generated from it.
//!
//! Owns the shape of the command line only. It must never perform a command: dispatch is
//! in `cli::run`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// hookgate: a self-hosted receiving-side webhook gateway.
#[derive(Debug, Parser)]
#[command(name = "hookgate", version = super::VERSION, about)]
pub struct Cli {
    /// How the log is written to standard error: `text` (colour only on a terminal) or
    /// `json` (one object per line, for a log shipper).
    #[arg(long, env = "HOOKGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The log's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
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
    /// Manage an account's destinations (its own HTTP endpoints) and redrive deliveries.
    #[command(subcommand)]
    Destinations(DestinationsCommand),
    /// Tools for trying hookgate locally.
    #[command(subcommand)]
    Dev(DevCommand),
    /// The provider presets: what each needs and checks (no gateway needed).
    #[command(subcommand)]
    Providers(ProvidersCommand),
    /// Print the headers (and a ready curl command) a provider would send with a body, so
    /// an account can be tried before the real provider is pointed at it.
    Sign(SignArgs),
    /// The change log: who changed which account, token or retention, and when.
    Changes(ChangesArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `hookgate man > /usr/local/share/man/man1/hookgate.1`.
    Man,
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
    Paths(super::paths::PathsCommand),
}

/// `hookgate changes`.
#[derive(Debug, Args)]
pub struct ChangesArgs {
    /// Only changes to this account.
    #[arg(long)]
    pub account: Option<String>,
    /// Only this action, e.g. account.updated, listening.on, secret.added.
    #[arg(long)]
    pub action: Option<String>,
    /// At or after (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Before (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Page size (1 to 1000).
    #[arg(long)]
    pub limit: Option<u32>,
    /// The next_cursor of a previous page.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Where the admin API is.
    #[command(flatten)]
    pub remote: Remote,
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
    /// The preset, e.g. stripe (or `custom` with `--spec`). Not needed with `--account`,
    /// which reads the account's scheme from the running gateway.
    #[arg(long, required_unless_present = "account")]
    pub provider: Option<String>,
    /// An account on the running gateway (admin token needed): its scheme, custom or
    /// preset, and its real webhook URL are used.
    #[arg(long)]
    pub account: Option<String>,
    /// With `--provider custom`: the account's JSON (as given to `accounts create`),
    /// inline or as @FILE.
    #[arg(long)]
    pub spec: Option<String>,
    /// The secret as pasted into the account; for discord and sendgrid, the private key
    /// (the public key to configure is printed).
    #[arg(long, env = "HOOKGATE_SIGN_SECRET", hide_env_values = true)]
    pub secret: String,
    /// The file with the body to send.
    #[arg(long)]
    pub body: PathBuf,
    /// The URL to send to; by default the account's `webhook_url` with `--account`, else
    /// {HOOKGATE_PUBLIC_URL or http://127.0.0.1:8080}/hooks/{the account's name}.
    #[arg(long)]
    pub url: Option<String>,
    /// With `--account`: the admin API's base URL (`--url` is where the request goes).
    #[arg(long, env = "HOOKGATE_URL", default_value = "http://127.0.0.1:8081")]
    pub admin_url: String,
    /// With `--account`: the admin token.
    #[arg(long, env = "HOOKGATE_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
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
        /// A change-log head hash noted earlier: fail unless the change log still passes
        /// through it.
        #[arg(long)]
        expect_changes_head: Option<String>,
        /// A head file kept earlier (`hookgate audit heads`, `GET /v1/audit/heads`, or the
        /// file the gateway publishes): fail unless both logs still pass through its heads.
        #[arg(long)]
        heads: Option<PathBuf>,
        /// The audit public key (64 hex digits) that checkpoints, the anchor row and heads
        /// must be signed with. Without it: the head file's key, else the key derived from
        /// HOOKGATE_SECRET_KEY or the database's key file.
        #[arg(long)]
        public_key: Option<String>,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Print both logs' heads, signed, with the public key: the file to keep for a later
    /// `audit verify --heads`.
    Heads {
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

/// `hookgate destinations ...`.
#[derive(Debug, Subcommand)]
pub enum DestinationsCommand {
    /// Add a destination; its signing secret (whsec_...) is printed this once.
    Add {
        /// The account.
        account: String,
        /// The destination's name.
        name: String,
        /// Its URL (https://...).
        target: String,
        /// More of the spec as JSON (event_types, filter, mapping, max_in_flight,
        /// rate_per_sec, enabled), inline or @FILE.
        #[arg(long)]
        spec: Option<String>,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// List an account's destinations.
    List {
        /// The account.
        account: String,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one destination with its circuit breaker.
    Show {
        /// The account.
        account: String,
        /// The destination's name.
        name: String,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Change a destination with a JSON merge patch, inline or @FILE.
    Edit {
        /// The account.
        account: String,
        /// The destination's name.
        name: String,
        /// The patch.
        patch: String,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Remove a destination; its waiting deliveries are cancelled.
    Remove {
        /// The account.
        account: String,
        /// The destination's name.
        name: String,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Rotate the signing secret; the new one is printed this once, the old one keeps
    /// signing beside it during the overlap.
    Rotate {
        /// The account.
        account: String,
        /// The destination's name.
        name: String,
        /// Seconds the old secret keeps signing (default: the gateway's
        /// delivery.rotation_overlap_secs).
        #[arg(long)]
        overlap_secs: Option<u64>,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Queue again every delivery of an account matching the filter (dead ones by default).
    Redrive {
        /// The account.
        account: String,
        /// Only this destination (`@chat`: the account's chat status messages).
        #[arg(long)]
        destination: Option<String>,
        /// Statuses to take: dead, no_session, delivered, cancelled (repeatable).
        #[arg(long)]
        status: Vec<String>,
        /// Deliveries queued at or after (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Deliveries queued before (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Queue one delivery again by its id (dlv_N, shown with the event).
    Redeliver {
        /// The delivery's id.
        id: String,
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
    /// The auditor token, used when no admin token is given: it may read events,
    /// exports, the change log and verification.
    #[arg(
        long,
        env = "HOOKGATE_AUDITOR_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub auditor_token: Option<String>,
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
    /// The listener switch: stream the account's accepted events (and, with
    /// `forward.send_to_user`, message the sender), or stop.
    Listen {
        /// The account name.
        name: String,
        /// Switch the listener off instead.
        #[arg(long)]
        off: bool,
        /// Only these event types (repeat the flag); none given keeps the current list.
        #[arg(long = "event-type")]
        event_types: Vec<String>,
        /// Listen to every event type again (clears the list).
        #[arg(long, conflicts_with = "event_types")]
        all_types: bool,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Secret rotation, step one: add a further valid secret. The secret is read from
    /// standard input when not given, so it stays out of the shell's history.
    AddSecret {
        /// The account name.
        name: String,
        /// The new secret (prefer standard input).
        secret: Option<String>,
        /// Where the admin API is.
        #[command(flatten)]
        remote: Remote,
    },
    /// Secret rotation, step two: retire a secret by its 0-based index (as `accounts
    /// show` lists them) once the provider signs with the new one.
    RetireSecret {
        /// The account name.
        name: String,
        /// The secret's index, from 0.
        index: usize,
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
    /// Export every matching event, oldest first, streamed (NDJSON or CSV); `--limit N`
    /// stops after the N oldest.
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
    /// It first replays every streamed event after `--after` (from the start of the log
    /// when not given), then continues live; `--from-now` prints only what arrives after.
    Tail {
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
        /// Resume after this stream id (an event's number: `evt_42` is 42).
        #[arg(long, conflicts_with = "from_now")]
        after: Option<i64>,
        /// Skip the replay: print only events committed after the stream opened.
        #[arg(long)]
        from_now: bool,
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
    /// Page size (1 to 1000); for `export`, at most this many events (any number).
    #[arg(long)]
    pub limit: Option<u32>,
    /// The next_cursor of a previous page.
    #[arg(long)]
    pub cursor: Option<String>,
}

impl EventFilterArgs {
    pub(super) fn query(&self) -> String {
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
