//! The integration suite again, with every test gateway on PostgreSQL: the modules of
//! `tests/it` that reach storage only through the gateway, and `cluster`, where several
//! real `hookgate serve` processes share one database. The throw-away server comes from
//! `pg` (Debian's `postgresql` package). Tests about SQLite's own files stay in `tests/it`.

/// The engine this binary's gateways run on (read by `support`).
pub const ON_POSTGRES: bool = true;

#[path = "../it/accounts.rs"]
mod accounts;
#[path = "../it/asana.rs"]
mod asana;
#[path = "../it/audit.rs"]
mod audit;
#[path = "../it/channels.rs"]
mod channels;
mod cluster;
#[path = "../it/console_api.rs"]
mod console_api;
#[path = "../it/dedupe_horizon.rs"]
mod dedupe_horizon;
#[path = "../it/destinations.rs"]
mod destinations;
#[path = "../it/export_csv.rs"]
mod export_csv;
#[path = "../it/fixtures.rs"]
mod fixtures;
#[path = "../it/forward.rs"]
mod forward;
#[path = "../it/hardening.rs"]
mod hardening;
#[path = "../it/hostile.rs"]
mod hostile;
#[path = "../it/ingest.rs"]
mod ingest;
mod migrate;
#[path = "../it/pg.rs"]
mod pg;
#[path = "../it/presets.rs"]
mod presets;
// This binary starts processes but never with their standard output gone.
#[allow(dead_code)]
#[path = "../it/process.rs"]
mod process;
#[path = "../it/props.rs"]
mod props;
#[path = "../it/remote_keys.rs"]
mod remote_keys;
#[path = "../it/replay.rs"]
mod replay;
#[path = "../it/roles.rs"]
mod roles;
#[path = "../it/secrets.rs"]
mod secrets;
#[path = "../it/single_use.rs"]
mod single_use;
#[path = "../it/sns.rs"]
mod sns;
#[path = "../it/standin.rs"]
mod standin;
#[path = "../it/support.rs"]
mod support;
#[path = "../it/tamper.rs"]
mod tamper;
mod tls;
