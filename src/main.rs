//! The `hookgate` binary: parse the command line, set up logging, run, map to an exit code.
//! All behaviour lives in the library; this file must stay thin.

use clap::Parser;

/// jemalloc instead of the C library's allocator: a request's buffers are allocated on a
/// tokio worker and freed on the writer's thread, where glibc's malloc spends much of
/// the front's time in its arenas (BENCHMARKS.md has the measurement).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = hookgate::cli::Cli::parse();
    let _telemetry = hookgate::telemetry::init(cli.log_format);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let requested = std::env::var("TOKIO_WORKER_THREADS").ok();
    let workers = match hookgate::cli::async_workers(requested.as_deref(), cores) {
        Ok(n) => n,
        Err(e) => {
            say(&format!("error: {e}"));
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
            say(&format!("error: cannot start the async runtime: {e}"));
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(hookgate::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("error: {e:#}"));
            std::process::ExitCode::from(hookgate::cli::exit_code(&e))
        }
    }
}

/// Writes a line to standard error; a standard error that is gone (a closed pipe) loses
/// the line, never the exit code (`eprintln!` would panic and exit 101).
fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}
