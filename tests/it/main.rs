//! hookgate's integration tests: one binary, each module a capability, every test against
//! a real gateway on port 0 with a real SQLite file.

mod accounts;
mod ingest;
mod presets;
mod support;
