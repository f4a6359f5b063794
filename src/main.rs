//! The `hookgate` binary: parse the command line, set up logging, run, map to an exit code.
//! All behaviour lives in the library; this file must stay thin.

use std::io::IsTerminal as _;

use clap::Parser;
use hookgate::cli::LogFormat;

/// jemalloc instead of the C library's allocator: a request's buffers are allocated on a
/// tokio worker and freed on the writer's thread, and glibc's malloc spent about 15 % of
/// the front's time in its arenas. Measured: 13 % less CPU per request (BENCHMARKS.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = hookgate::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOOKGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Log lines are written by a thread of their own: a request never waits on a slow or
    // full standard error (a stalled journal, a pipe nobody reads); past its buffer a line
    // is dropped rather than a request held. The guard flushes what is left at exit.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let (writer, _flush_at_exit) = tracing_appender::non_blocking(std::io::stderr());
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match cli.log_format {
        // Colour only for a person at a terminal: a file or a journal gets plain text.
        LogFormat::Text => logger.with_ansi(ansi).init(),
        LogFormat::Json => logger.json().with_current_span(true).init(),
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let requested = std::env::var("TOKIO_WORKER_THREADS").ok();
    let workers = match hookgate::cli::async_workers(requested.as_deref(), cores) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(hookgate::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(hookgate::cli::exit_code(&e))
        }
    }
}
