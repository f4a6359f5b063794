//! Admin routes for destinations: create, list, show, update, delete, rotate the signing
//! secret; and the redrive of deliveries (one, or everything matching a filter).
//!
//! Owns the destination life cycle over HTTP: every change is validated and compiled
//! first (the URL against the egress policy), committed with its change-log row second,
//! and only then published to the destination registry. A signing secret appears in the
//! create and rotate answers only, once; never in a view, the change log or an error.

use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::AppState;
use super::admin::store_problem;
use super::http::{Problem, ResBody};
use crate::account::SpecError;
use crate::clock::{format_micros, now_micros, parse_time};
use crate::destination::sign::{self, Key};
use crate::destination::{self, CHAT, CompiledDestination, DestinationSpec};
use crate::store::{AdminWrite, Change, DestinationWrite, RedriveFilter, StoredDestination};
use crate::tokens::Caller;

fn invalid(e: SpecError) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_destination",
        "Unprocessable Content",
        e.to_string(),
    )
    .with("field", e.field)
}

fn not_found(what: String) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not_found", "Not Found", what)
}

fn no_account(name: &str) -> Problem {
    not_found(format!("there is no account {name:?}"))
}

fn no_destination(account: &str, name: &str) -> Problem {
    not_found(format!("account {account:?} has no destination {name:?}"))
}

fn change(caller: &Caller, action: &str, account: Option<&str>, detail: Value) -> Change {
    Change {
        at: now_micros(),
        actor: format!("{} ({})", caller.name, caller.role.as_str()),
        action: action.to_owned(),
        account: account.map(str::to_owned),
        detail: detail.to_string(),
    }
}

/// The change log's detail of a destination: its name and host, nothing that could carry
/// a credential (a URL's path or query might).
fn change_detail(d: &CompiledDestination) -> Value {
    let host = destination::egress::Target::parse(&d.spec.url)
        .map(|t| t.host)
        .unwrap_or_default();
    json!({"destination": d.name, "host": host, "enabled": d.spec.enabled})
}

/// A destination as the admin API shows it: its spec, signing state and breaker, never a
/// secret.
fn view(state: &AppState, d: &CompiledDestination) -> Value {
    let mut v = serde_json::to_value(&d.spec).unwrap_or_default();
    v["name"] = d.name.clone().into();
    v["account"] = d.account.clone().into();
    let now = now_micros();
    let rotating: Vec<String> = d
        .keys
        .iter()
        .filter_map(|k| k.expires_at.filter(|t| *t > now).map(format_micros))
        .collect();
    v["signing"] = json!({
        "scheme": "standard-webhooks",
        "secrets_live": d.keys.iter().filter(|k| k.expires_at.is_none_or(|t| t > now)).count(),
        "previous_secret_expires_at": rotating.first(),
    });
    v["breaker"] = crate::forward::worker::breaker_view(&state.lanes.breaker(&d.account, &d.name));
    v["created_at"] = format_micros(d.created_at).into();
    v["updated_at"] = format_micros(d.updated_at).into();
    v
}

fn stored(d: &CompiledDestination) -> StoredDestination {
    StoredDestination {
        account: d.account.clone(),
        name: d.name.clone(),
        spec: serde_json::to_string(&d.spec).unwrap_or_default(),
        keys: serde_json::to_string(&d.keys).unwrap_or_default(),
        max_in_flight: d.spec.max_in_flight as i64,
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}

/// `GET /v1/accounts/{name}/destinations`.
pub fn list(state: &AppState, account: &str) -> Result<Response<ResBody>, Problem> {
    state
        .registry
        .get(account)
        .ok_or_else(|| no_account(account))?;
    let all: Vec<Value> = state
        .destinations
        .of(account)
        .iter()
        .map(|d| view(state, d))
        .collect();
    Ok(super::http::json(
        StatusCode::OK,
        &json!({"destinations": all}),
    ))
}

/// `GET /v1/accounts/{name}/destinations/{dest}`.
pub fn show(state: &AppState, account: &str, name: &str) -> Result<Response<ResBody>, Problem> {
    state
        .registry
        .get(account)
        .ok_or_else(|| no_account(account))?;
    let d = state
        .destinations
        .get(account, name)
        .ok_or_else(|| no_destination(account, name))?;
    Ok(super::http::json(StatusCode::OK, &view(state, &d)))
}

/// `POST /v1/accounts/{name}/destinations`: `{"name", "url", ...}`; answers 201 with the
/// signing secret, shown this once.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    account: &str,
    mut body: Value,
) -> Result<Response<ResBody>, Problem> {
    let _guard = state.admin_lock.lock().await;
    state
        .registry
        .get(account)
        .ok_or_else(|| no_account(account))?;
    let name = match body.as_object_mut().and_then(|o| o.remove("name")) {
        Some(Value::String(n)) => n,
        _ => {
            return Err(invalid(SpecError::new(
                "name",
                "a destination needs a name",
            )));
        }
    };
    let spec = DestinationSpec::from_json(body).map_err(invalid)?;
    let now = now_micros();
    let keys = sign::rotate(&[], now, 0);
    let secret = keys.first().map(|k| k.secret.clone()).unwrap_or_default();
    let compiled =
        destination::compile(account, &name, spec, keys, Some(&state.egress), (now, now))
            .map_err(invalid)?;
    let write = AdminWrite::Destination(DestinationWrite::Create {
        row: stored(&compiled),
        change: change(
            caller,
            "destination.created",
            Some(account),
            change_detail(&compiled),
        ),
    });
    state.store.admin(write).await.map_err(store_problem)?;
    let mut v = view(state, &compiled);
    v["secret"] = secret.into();
    state.destinations.put(compiled);
    Ok(super::http::json(StatusCode::CREATED, &v))
}

/// `PATCH /v1/accounts/{name}/destinations/{dest}`: a JSON merge patch of the spec.
pub async fn update(
    state: &AppState,
    caller: &Caller,
    account: &str,
    name: &str,
    patch: Value,
) -> Result<Response<ResBody>, Problem> {
    let _guard = state.admin_lock.lock().await;
    let current = state
        .destinations
        .get(account, name)
        .ok_or_else(|| no_destination(account, name))?;
    if patch.get("name").is_some_and(|n| n != name) {
        return Err(invalid(SpecError::new(
            "name",
            "a destination cannot be renamed; create one under the new name",
        )));
    }
    let mut merged = serde_json::to_value(&current.spec).unwrap_or_default();
    let mut patch = patch;
    if let Some(o) = patch.as_object_mut() {
        o.remove("name");
    }
    crate::account::merge_patch(&mut merged, &patch);
    let spec = DestinationSpec::from_json(merged).map_err(invalid)?;
    let now = now_micros();
    let compiled = destination::compile(
        account,
        name,
        spec,
        current.keys.clone(),
        Some(&state.egress),
        (current.created_at, now),
    )
    .map_err(invalid)?;
    let write = AdminWrite::Destination(DestinationWrite::Update {
        row: stored(&compiled),
        change: change(
            caller,
            "destination.updated",
            Some(account),
            change_detail(&compiled),
        ),
    });
    state.store.admin(write).await.map_err(store_problem)?;
    let v = view(state, &compiled);
    state.destinations.put(compiled);
    Ok(super::http::json(StatusCode::OK, &v))
}

/// `DELETE /v1/accounts/{name}/destinations/{dest}`: its waiting deliveries are cancelled.
pub async fn delete(
    state: &AppState,
    caller: &Caller,
    account: &str,
    name: &str,
) -> Result<Response<ResBody>, Problem> {
    let _guard = state.admin_lock.lock().await;
    state
        .destinations
        .get(account, name)
        .ok_or_else(|| no_destination(account, name))?;
    let write = AdminWrite::Destination(DestinationWrite::Delete {
        account: account.to_owned(),
        name: name.to_owned(),
        change: change(
            caller,
            "destination.deleted",
            Some(account),
            json!({"destination": name}),
        ),
    });
    state.store.admin(write).await.map_err(store_problem)?;
    state.destinations.remove(account, name);
    Ok(super::http::json(StatusCode::OK, &json!({"deleted": name})))
}

/// `POST /v1/accounts/{name}/destinations/{dest}/rotate-secret`: `{"overlap_secs"}`
/// optional; answers the new secret, shown this once. The old one keeps signing beside it
/// until the overlap ends.
pub async fn rotate(
    state: &AppState,
    caller: &Caller,
    account: &str,
    name: &str,
    body: Value,
) -> Result<Response<ResBody>, Problem> {
    let _guard = state.admin_lock.lock().await;
    let current = state
        .destinations
        .get(account, name)
        .ok_or_else(|| no_destination(account, name))?;
    let overlap_secs = match body.get("overlap_secs") {
        None | Some(Value::Null) => state.config.delivery.rotation_overlap_secs,
        Some(v) => v.as_u64().ok_or_else(|| {
            invalid(SpecError::new(
                "overlap_secs",
                "must be a whole number of seconds",
            ))
        })?,
    };
    let now = now_micros();
    let overlap = i64::try_from(overlap_secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
    let keys: Vec<Key> = sign::rotate(&current.keys, now, overlap);
    let secret = keys.first().map(|k| k.secret.clone()).unwrap_or_default();
    let compiled = destination::compile(
        account,
        name,
        current.spec.clone(),
        keys,
        // The URL was judged when it was saved; a rotation does not move it.
        None,
        (current.created_at, now),
    )
    .map_err(invalid)?;
    let expires = (overlap_secs > 0).then(|| format_micros(now.saturating_add(overlap)));
    let write = AdminWrite::Destination(DestinationWrite::Update {
        row: stored(&compiled),
        change: change(
            caller,
            "destination.secret_rotated",
            Some(account),
            json!({"destination": name, "previous_secret_expires_at": expires}),
        ),
    });
    state.store.admin(write).await.map_err(store_problem)?;
    let mut v = view(state, &compiled);
    v["secret"] = secret.into();
    state.destinations.put(compiled);
    Ok(super::http::json(StatusCode::OK, &v))
}

fn bad(field: &str, message: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_redrive",
        "Unprocessable Content",
        message.into(),
    )
    .with("field", field.to_owned())
}

/// `POST /v1/deliveries/redrive`: `{"account", "destination", "status": [..], "since",
/// "until"}`, every field optional but at least the account; queues every matching
/// delivery again with a fresh attempt budget, in one write, and answers how many and the
/// backlog left (both kinds). `destination: "@chat"` takes the account's chat messages.
/// Their progress shows on each event and in `/metrics` (the backlogs).
pub async fn redrive(
    state: &AppState,
    caller: &Caller,
    body: Value,
) -> Result<Response<ResBody>, Problem> {
    let text = |f: &str| -> Result<Option<String>, Problem> {
        match body.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(f, format!("{f} must be a string"))),
        }
    };
    let time = |f: &str| -> Result<Option<i64>, Problem> {
        text(f)?
            .map(|t| parse_time(&t).ok_or_else(|| bad(f, format!("{f} must be an RFC 3339 time"))))
            .transpose()
    };
    let account = text("account")?.ok_or_else(|| bad("account", "a redrive names its account"))?;
    state
        .registry
        .get(&account)
        .ok_or_else(|| no_account(&account))?;
    // `@chat`, the reserved destination, names the account's chat status messages.
    let destination = text("destination")?;
    if let Some(d) = &destination
        && d != CHAT
        && state.destinations.get(&account, d).is_none()
    {
        return Err(no_destination(&account, d));
    }
    let statuses = match body.get("status") {
        None | Some(Value::Null) => vec!["dead".to_owned()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|s| match s.as_str() {
                Some(s @ ("dead" | "no_session" | "delivered" | "cancelled")) => Ok(s.to_owned()),
                _ => Err(bad(
                    "status",
                    "status lists dead, no_session, delivered or cancelled",
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("status", "status is a list")),
    };
    let filter = RedriveFilter {
        account: Some(account.clone()),
        destination,
        id: None,
        seq: None,
        statuses,
        since: time("since")?,
        until: time("until")?,
    };
    requeue(state, caller, filter).await
}

/// `POST /v1/deliveries/{id}/redeliver`: one dead (or no_session, delivered, cancelled)
/// delivery again, of either kind.
pub async fn redeliver(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Response<ResBody>, Problem> {
    let n = id
        .strip_prefix("dlv_")
        .and_then(|n| n.parse::<i64>().ok())
        .ok_or_else(|| not_found(format!("there is no delivery {id:?}")))?;
    let filter = RedriveFilter {
        id: Some(n),
        statuses: ["dead", "no_session", "delivered", "cancelled"]
            .map(String::from)
            .to_vec(),
        ..RedriveFilter::default()
    };
    requeue(state, caller, filter).await
}

async fn requeue(
    state: &AppState,
    caller: &Caller,
    filter: RedriveFilter,
) -> Result<Response<ResBody>, Problem> {
    let detail = serde_json::to_value(&filter).unwrap_or_default();
    let write = AdminWrite::Destination(DestinationWrite::Redrive {
        change: change(
            caller,
            "deliveries.redriven",
            filter.account.as_deref(),
            detail,
        ),
        filter,
    });
    let n = state.store.admin(write).await.map_err(store_problem)?;
    state.deliveries.notify_one();
    let backlog = state
        .store
        .outbox_stats()
        .await
        .map(|s| s.backlog + s.chat_backlog)
        .ok();
    Ok(super::http::json(
        StatusCode::ACCEPTED,
        &json!({"requeued": n, "backlog": backlog}),
    ))
}
