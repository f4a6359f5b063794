//! hookgate's integration tests: one binary, each module a capability, every test against
//! a real gateway on port 0 with a real SQLite file. `tests/pg` runs the modules that
//! reach storage only through the gateway again on PostgreSQL, whose throw-away servers
//! `pg` starts.

/// The engine this binary's gateways run on (read by `support`); `HOOKGATE_TEST_ENGINE=postgres`
/// moves them to PostgreSQL too.
pub const ON_POSTGRES: bool = false;

mod accounts;
mod admission;
mod asana;
mod audit;
mod browser;
mod channels;
mod confirmation;
mod console;
mod console_api;
mod console_auditor;
mod console_cli;
mod console_hostile;
mod crash;
mod dedupe_horizon;
mod destinations;
mod export_csv;
mod faults;
mod fixtures;
mod forward;
mod hardening;
mod hostile;
mod ingest;
mod openapi;
mod operator;
mod payment_confirmation;
mod pg;
mod presets;
mod process;
mod props;
mod provider_needs;
mod remote_keys;
mod replay;
mod roles;
mod secrets;
mod service;
mod single_use;
mod sns;
mod standin;
mod status_api;
mod storage;
mod support;
mod tamper;
