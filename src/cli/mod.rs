//! The command line: `hookgate serve`, `accounts ...`, `events ...`, `audit ...`,
//! `changes`, `providers ...`, `sign`, `completions`, `man`.
//!
//! Owns dispatch and `serve`. The clap definitions live in `args`; the commands that talk
//! to a running gateway's admin API in `remote`, `audit` in `verify` (with its exit
//! codes); `providers` and `sign` in `providers`; the stand-in chat platform in
//! `chat_sink`. It must never print a token or secret.

mod args;
mod chat_sink;
pub mod client;
mod destinations;
mod paths;
mod providers;
mod remote;
mod verify;

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::CommandFactory as _;

use crate::config::Config;
use crate::server::{Gateway, Listeners};

pub use args::*;
pub use verify::{VerifyFailure, exit_code};

/// The version `--version` prints: the package's, and the commit it was built from when
/// the build could ask git.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("HOOKGATE_COMMIT"),
    ")"
);

/// How many async worker threads to run on a machine with `cores` cores: `requested`
/// (the `TOKIO_WORKER_THREADS` variable) when set, else one fewer than the cores, and at
/// least one. The writer is a thread of its own that every event waits on: a worker per
/// core left it waiting for a core, and the workers woke one another to share tasks
/// (BENCHMARKS.md has the measurement).
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
        Command::Audit(cmd) => verify::audit(cmd).await,
        Command::Changes(args) => remote::changes(args).await,
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "hookgate", &mut out);
            emit(&String::from_utf8_lossy(&out))
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            emit(&String::from_utf8_lossy(&out))
        }
        Command::Tokens(cmd) => remote::tokens(cmd).await,
        Command::Destinations(cmd) => destinations::run(cmd).await,
        Command::Dev(DevCommand::ChatSink { listen, status }) => {
            chat_sink::run(listen, status).await
        }
        Command::Providers(cmd) => providers::run(cmd),
        Command::Sign(args) => providers::sign(args).await,
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
    if crate::store::postgres_url(db).is_some() {
        anyhow::bail!(
            "{} is a PostgreSQL database: back it up with PostgreSQL's own tools (pg_dump, or continuous archiving); `hookgate backup` copies a SQLite file",
            crate::store::shown(db)
        );
    }
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
    // Caught from before the banner: a supervisor may stop the gateway as soon as it says
    // it runs, and a signal must then stop it cleanly, never by its default action.
    let shutdown = shutdown_signal().context("installing the SIGTERM and SIGINT handlers")?;
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
    gateway.run(listeners, shutdown).await?;
    Ok(())
}

/// Installs the handlers for SIGTERM and SIGINT (Ctrl-C) now, and returns what completes
/// on the first of them.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

/// Returns what completes on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
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

    /// A SIGTERM sent after the handlers are made but before anything waits on them is
    /// held for them; were they installed only at the first wait, it would end this test
    /// process by the signal's default action.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_sigterm_is_caught_from_the_moment_the_handlers_are_made() {
        let stop = super::shutdown_signal().expect("handlers");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        tokio::time::timeout(std::time::Duration::from_secs(10), stop)
            .await
            .expect("the SIGTERM sent before the first wait completes it");
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }

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
