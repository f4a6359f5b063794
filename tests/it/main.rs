//! hookgate's integration tests: one binary, each module a capability, every test against
//! a real gateway on port 0 with a real SQLite file. `pg` starts the throw-away PostgreSQL
//! servers the tests use.

mod accounts;
mod audit;
mod crash;
mod faults;
mod fixtures;
mod forward;
mod hostile;
mod ingest;
mod openapi;
mod operator;
#[cfg(feature = "otlp")]
mod otlp;
mod pg;
mod presets;
mod process;
mod props;
mod secrets;
mod service;
mod storage;
mod support;
