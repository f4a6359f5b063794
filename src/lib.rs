//! hookgate: a self-hosted, receiving-side webhook gateway.
//!
//! Third parties POST events to `/hooks/{account}`; hookgate proves each request genuine
//! ([`verify`]), pulls fields out of the payload ([`extract`]), records every attempt in
//! a durable audit log ([`store`]) and answers only after the commit.
//!
//! The crate is a library with a thin binary (`src/main.rs`). [`server::Gateway::run`] takes
//! already-bound listeners so that tests can bind port 0. This root owns nothing but the
//! module list; it must never hold logic of its own.
#![forbid(unsafe_code)]

pub mod account;
pub mod account_metrics;
pub mod anchor;
pub mod chain;
pub mod cli;
pub mod clock;
pub mod config;
pub mod confirm;
pub mod csv_cell;
pub mod destination;
pub mod event;
pub mod excerpt;
pub mod extract;
pub mod forward;
pub mod handshake;
pub mod metrics;
pub mod path_suggest;
pub mod payload;
pub mod ratelimit;
pub mod redact;
pub mod registry;
pub mod render;
pub mod restart;
pub mod rules;
pub mod seal;
pub mod secret;
pub mod server;
pub mod signer;
pub mod status_templates;
pub mod store;
pub mod strict_json;
pub mod telemetry;
pub mod tokens;
pub mod verify;
pub mod xml;
