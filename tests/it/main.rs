//! hookgate's integration tests: one binary, each module a capability, every test against
//! a real gateway on port 0 with a real SQLite file. `pg` starts the throw-away PostgreSQL
//! servers the tests use.

mod accounts;
mod audit;
mod browser;
mod console;
mod console_api;
mod console_auditor;
mod console_cli;
mod console_hostile;
mod crash;
mod faults;
mod fixtures;
mod forward;
mod hostile;
mod ingest;
mod pg;
mod presets;
mod process;
mod props;
mod secrets;
mod storage;
mod support;
