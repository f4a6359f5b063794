//! Destinations: an account's own HTTP endpoints that its accepted events are delivered to,
//! signed as Standard Webhooks.
//!
//! Owns the destination contract of the admin API ([`DestinationSpec`]), its compilation
//! ([`CompiledDestination`]: URL checked against the egress policy, filter and mapping
//! compiled once), the in-memory [`Registry`] that the ingest path plans with, and
//! [`plan`], which picks the destinations of one accepted event. The parts live beside it:
//! `filter` (the condition language), `mapping` (the payload template), `sign` (the
//! `whsec_` secrets and signatures), `egress` (which addresses may be reached) and
//! `breaker` (the circuit breaker). The worker that delivers is `forward::worker`. Nothing
//! here does I/O but the egress resolver; secrets never appear in a spec, a view or an
//! error.

pub mod breaker;
pub mod egress;
pub mod filter;
pub mod mapping;
pub mod sign;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::account::SpecError;
use crate::event::Extracted;
use filter::{Condition, Filter};
use mapping::Mapping;
use sign::Key;

/// The most a destination may have in flight at once.
pub const MAX_IN_FLIGHT: usize = 64;

/// The reserved destination an account's chat status messages are delivered to. It fails
/// [`validate_name`], so no destination takes it, and one event has at most one.
pub const CHAT: &str = "@chat";

/// A destination as the admin API takes and shows it (its name is in the URL path, its
/// secrets are never part of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSpec {
    /// `https://...` (or `http://` where the operator allows it).
    pub url: String,
    /// Only these event types are delivered; empty: every type.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Conditions that must all hold (see `filter`).
    #[serde(default)]
    pub filter: Vec<Condition>,
    /// A JSON template for the body; absent: the body as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<Value>,
    /// Off: nothing new is queued for it (queued deliveries still go).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Deliveries to it in flight at once on one node; 1 keeps acceptance order.
    #[serde(default = "one")]
    pub max_in_flight: usize,
    /// Attempts per second at most on one node; absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<u32>,
}

fn yes() -> bool {
    true
}

fn one() -> usize {
    1
}

/// A destination ready to plan and deliver with.
#[derive(Debug)]
pub struct CompiledDestination {
    /// The account it belongs to.
    pub account: String,
    /// Its name within the account.
    pub name: String,
    /// The spec as given.
    pub spec: DestinationSpec,
    /// The compiled filter.
    pub filter: Filter,
    /// The compiled mapping.
    pub mapping: Option<Mapping>,
    /// Its signing keys, current first.
    pub keys: Vec<Key>,
    /// Microseconds since the epoch.
    pub created_at: i64,
    /// Microseconds since the epoch.
    pub updated_at: i64,
}

/// Checks a destination name: like an account name, `^[a-z0-9_]{1,64}$`.
pub fn validate_name(name: &str) -> Result<(), SpecError> {
    crate::account::validate_name(name).map_err(|e| SpecError::new("name", e.message))
}

impl DestinationSpec {
    /// Reads a spec from JSON, naming the field that is wrong.
    pub fn from_json(v: Value) -> Result<DestinationSpec, SpecError> {
        serde_json::from_value(v).map_err(|e| {
            SpecError::new("destination", crate::redact::serde_message(&e.to_string()))
        })
    }
}

/// Compiles a destination. `policy` judges its URL as it is saved (an address literal
/// now); `None` loads a stored one, whose URL is judged at every attempt instead, so a
/// destination saved under an allowlist since narrowed still loads and is refused there.
pub fn compile(
    account: &str,
    name: &str,
    spec: DestinationSpec,
    keys: Vec<Key>,
    policy: Option<&egress::Policy>,
    times: (i64, i64),
) -> Result<CompiledDestination, SpecError> {
    validate_name(name)?;
    match policy {
        Some(p) => p.check_url(&spec.url).map(|_| ()),
        None => egress::Target::parse(&spec.url).map(|_| ()),
    }
    .map_err(|e| SpecError::new("url", e.to_string()))?;
    if spec.max_in_flight == 0 || spec.max_in_flight > MAX_IN_FLIGHT {
        return Err(SpecError::new(
            "max_in_flight",
            format!("must be between 1 and {MAX_IN_FLIGHT}"),
        ));
    }
    if spec.rate_per_sec == Some(0) {
        return Err(SpecError::new(
            "rate_per_sec",
            "must be at least 1 (leave it out for no limit)",
        ));
    }
    let filter = Filter::compile("filter", &spec.filter)?;
    let mapping = spec
        .mapping
        .as_ref()
        .map(|m| Mapping::compile("mapping", m))
        .transpose()?;
    Ok(CompiledDestination {
        account: account.to_owned(),
        name: name.to_owned(),
        spec,
        filter,
        mapping,
        keys,
        created_at: times.0,
        updated_at: times.1,
    })
}

/// The gateway's view of an event that filters and mappings read as `event.*`.
pub fn event_view(
    account: &str,
    e: &Extracted,
    gateway_id: Option<&str>,
    received_at: Option<&str>,
) -> Value {
    let params = e
        .params
        .as_deref()
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .unwrap_or(Value::Null);
    json!({
        "account": account,
        "type": e.event_type,
        "id": e.event_id,
        "sender": e.sender,
        "source": e.source,
        "params": params,
        "gateway_id": gateway_id,
        "received_at": received_at,
    })
}

/// The destinations one accepted event goes to: enabled, of a listed type (or any), and
/// whose filter holds.
pub fn plan(
    dests: &[Arc<CompiledDestination>],
    account: &str,
    e: &Extracted,
    payload: &Value,
) -> Vec<String> {
    if dests.is_empty() {
        return Vec::new();
    }
    let view = event_view(account, e, None, None);
    dests
        .iter()
        .filter(|d| d.spec.enabled)
        .filter(|d| {
            d.spec.event_types.is_empty()
                || e.event_type
                    .as_ref()
                    .is_some_and(|t| d.spec.event_types.contains(t))
        })
        .filter(|d| d.filter.matches(payload, &view))
        .map(|d| d.name.clone())
        .collect()
}

/// Compiled destinations by account, for the ingest path and the worker. Like the account
/// registry it is never the source of truth: rebuilt from the store at start and after
/// another node's change, updated by the admin API after each commit.
#[derive(Debug, Default)]
pub struct Registry {
    by_account: RwLock<HashMap<String, Vec<Arc<CompiledDestination>>>>,
}

impl Registry {
    /// An account's destinations, sorted by name.
    pub fn of(&self, account: &str) -> Vec<Arc<CompiledDestination>> {
        let map = self.by_account.read().unwrap_or_else(|p| p.into_inner());
        map.get(account).cloned().unwrap_or_default()
    }

    /// One destination.
    pub fn get(&self, account: &str, name: &str) -> Option<Arc<CompiledDestination>> {
        self.of(account).into_iter().find(|d| d.name == name)
    }

    /// True when some destination of the account filters on the payload.
    pub fn reads_payload(&self, account: &str) -> bool {
        self.of(account)
            .iter()
            .any(|d| d.spec.enabled && d.filter.reads_payload())
    }

    /// Inserts or replaces one destination.
    pub fn put(&self, d: CompiledDestination) {
        let mut map = self.by_account.write().unwrap_or_else(|p| p.into_inner());
        let list = map.entry(d.account.clone()).or_default();
        list.retain(|x| x.name != d.name);
        list.push(Arc::new(d));
        list.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Removes one destination.
    pub fn remove(&self, account: &str, name: &str) {
        let mut map = self.by_account.write().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = map.get_mut(account) {
            list.retain(|x| x.name != name);
        }
    }

    /// Removes every destination of an account (the account was deleted).
    pub fn remove_account(&self, account: &str) {
        self.by_account
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(account);
    }

    /// Replaces every destination at once.
    pub fn replace_all(&self, all: Vec<CompiledDestination>) {
        let mut fresh: HashMap<String, Vec<Arc<CompiledDestination>>> = HashMap::new();
        for d in all {
            fresh
                .entry(d.account.clone())
                .or_default()
                .push(Arc::new(d));
        }
        for list in fresh.values_mut() {
            list.sort_by(|a, b| a.name.cmp(&b.name));
        }
        *self.by_account.write().unwrap_or_else(|p| p.into_inner()) = fresh;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(name: &str, spec: Value) -> Arc<CompiledDestination> {
        let spec = DestinationSpec::from_json(spec).unwrap_or_else(|e| panic!("{}", e.message));
        Arc::new(
            compile(
                "shop",
                name,
                spec,
                Vec::new(),
                Some(&egress::Policy::default()),
                (0, 0),
            )
            .unwrap_or_else(|e| panic!("{}", e.message)),
        )
    }

    #[test]
    fn the_chat_destination_is_a_name_no_destination_can_take() {
        assert!(validate_name(CHAT).is_err());
        assert!(validate_name("chat").is_ok());
    }

    #[test]
    fn plan_keeps_enabled_listed_and_matching_destinations() {
        let dests = vec![
            dest("all", json!({"url": "https://a.example/"})),
            dest(
                "paid",
                json!({"url": "https://a.example/", "event_types": ["paid"]}),
            ),
            dest(
                "big",
                json!({"url": "https://a.example/",
                "filter": [{"path": "$.amount", "op": "gt", "value": 100}]}),
            ),
            dest(
                "off",
                json!({"url": "https://a.example/", "enabled": false}),
            ),
        ];
        let e = Extracted {
            event_type: Some("paid".into()),
            ..Extracted::default()
        };
        assert_eq!(
            plan(&dests, "shop", &e, &json!({"amount": 500})),
            ["all", "paid", "big"]
        );
        assert_eq!(
            plan(&dests, "shop", &e, &json!({"amount": 5})),
            ["all", "paid"]
        );
        let other = Extracted::default();
        assert_eq!(plan(&dests, "shop", &other, &json!({})), ["all"]);
    }

    #[test]
    fn compile_names_the_bad_field() {
        let spec = |v| DestinationSpec::from_json(v).unwrap_or_else(|e| panic!("{}", e.message));
        let p = egress::Policy::default();
        let e = compile(
            "shop",
            "x",
            spec(json!({"url": "http://10.0.0.1/"})),
            vec![],
            Some(&p),
            (0, 0),
        )
        .err();
        assert_eq!(e.map(|e| e.field), Some("url".into()));
        let e = compile(
            "shop",
            "x",
            spec(json!({"url": "https://a.example/", "max_in_flight": 0})),
            vec![],
            Some(&p),
            (0, 0),
        )
        .err();
        assert_eq!(e.map(|e| e.field), Some("max_in_flight".into()));
        let e = compile(
            "shop",
            "Bad Name",
            spec(json!({"url": "https://a.example/"})),
            vec![],
            Some(&p),
            (0, 0),
        )
        .err();
        assert_eq!(e.map(|e| e.field), Some("name".into()));
        assert!(
            DestinationSpec::from_json(json!({"url": "https://a.example/", "secret": "x"}))
                .is_err()
        );
    }
}
