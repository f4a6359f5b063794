//! The `otlp` feature's test on its own: built only with `--features otlp`, so that CI
//! compiles this small crate with the feature rather than the whole integration suite.
//! The real binary exports its request spans to a stand-in collector.

/// The engine this binary's gateways run on (read by `support`).
pub const ON_POSTGRES: bool = false;

#[allow(dead_code)]
#[path = "../it/pg.rs"]
mod pg;
#[allow(dead_code)]
#[path = "../it/process.rs"]
mod process;
mod spans;
#[path = "../it/support.rs"]
mod support;
