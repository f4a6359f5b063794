//! Admin routes the console needs beyond the rest of the API: who the caller is, path
//! suggestions from a sample payload, per-account counts, the operations figures, and
//! Try Out (a correctly signed test request to an account).
//!
//! Owns these handlers' parsing and answers; the figures come from `store::stats`, the
//! suggestions from `path_suggest`, the signing from `signer`. It must never answer with a
//! secret: Try Out signs on the server with the account's own key and shows only the
//! gateway's answer and the audit id.

use std::collections::BTreeMap;

use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::AppState;
use super::admin::store_problem;
use super::http::{Problem, ResBody};
use crate::account::AuthSpec;
use crate::clock::format_micros;
use crate::event::Reason;
use crate::path_suggest;
use crate::signer::{SignInput, sign_request};
use crate::tokens::Caller;

const HOUR: i64 = 3_600_000_000;

fn bad(code: &'static str, detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, code, "Bad Request", detail)
}

/// `GET /v1/whoami`: the caller's token name and role, so the console shows only what
/// the role may do, and the rejection reasons a search can filter on.
pub fn whoami(caller: &Caller) -> Response<ResBody> {
    let reasons: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    super::http::json(
        StatusCode::OK,
        &json!({"name": caller.name, "role": caller.role.as_str(), "reasons": reasons}),
    )
}

/// `POST /v1/paths/suggest {"sample", "paths"?}`: every scalar of the sample with its
/// path and value, guesses for the account's paths, and what any given paths extract.
/// A sample given as a string is read as the body a sender would send (JSON, or a form).
/// Members come back in name order.
pub fn suggest(body: &Value) -> Result<Response<ResBody>, Problem> {
    let sample = match body.get("sample") {
        None => return Err(bad("bad_sample", "give {\"sample\": <payload>}")),
        Some(Value::String(text)) => path_suggest::parse_sample(text.as_bytes())
            .map_err(|e| bad("bad_sample", e.to_string()))?,
        Some(v) => v.clone(),
    };
    let mut answer = serde_json::to_value(path_suggest::suggest(&sample)).unwrap_or(Value::Null);
    if let Some(paths) = body.get("paths") {
        let paths: BTreeMap<String, String> = serde_json::from_value(paths.clone())
            .map_err(|_| bad("bad_paths", "paths must map field names to path strings"))?;
        answer["extracted"] = json!(path_suggest::evaluate(&sample, &paths));
    }
    Ok(super::http::json(StatusCode::OK, &answer))
}

/// `POST /v1/templates/preview {"template", "templates", "event"}`: the status message
/// an account with these templates (the default `template`, `templates` by event type)
/// sends for an event (`account`, `sender`, `source`, `event_type`, `event_id`, `params`),
/// exactly as a listener would; `text` is null when no template applies to the event's
/// type. A template that would be refused when saved is refused here the same way (422,
/// with its field).
pub fn preview(body: &Value) -> Result<Response<ResBody>, Problem> {
    let usage = || {
        bad(
            "bad_template",
            "give {\"template\": \"...\", \"event\": {...}}, or \"templates\" by event type",
        )
    };
    let template = match body.get("template") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(usage()),
    };
    let templates: BTreeMap<String, String> = match body.get("templates") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(t) => serde_json::from_value(t.clone()).map_err(|_| usage())?,
    };
    if template.is_none() && templates.is_empty() {
        return Err(usage());
    }
    let forward = crate::account::ForwardSpec {
        template,
        templates,
        ..Default::default()
    };
    let compiled = crate::status_templates::StatusTemplates::compile(&forward).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_account",
            "Unprocessable Content",
            e.to_string(),
        )
        .with("field", e.field)
    })?;
    let event = body.get("event").cloned().unwrap_or(Value::Null);
    let text_of = |k: &str| event.get(k).and_then(Value::as_str);
    let params = event.get("params").cloned().unwrap_or(Value::Null);
    let values = crate::render::Values {
        account: text_of("account").unwrap_or(""),
        sender: text_of("sender"),
        source: text_of("source"),
        event_type: text_of("event_type"),
        event_id: text_of("event_id"),
        params: &params,
    };
    let text = compiled
        .select(values.event_type)
        .map(|t| t.render(&values));
    Ok(super::http::json(StatusCode::OK, &json!({"text": text})))
}

/// `GET /v1/stats/accounts?hours=24`: per-account counts over the last hours and each
/// account's newest event. Windows end at the gateway's clock, the one rows are timed by.
pub async fn account_counts(state: &AppState, query: &str) -> Result<Response<ResBody>, Problem> {
    let hours = number(query, "hours", 24, 1..=24 * 90)?;
    let since = state.clock.now_micros() - i64::from(hours) * HOUR;
    let names = state
        .registry
        .list()
        .iter()
        .map(|a| a.name().to_owned())
        .collect();
    let counts = state
        .store
        .account_counts(names, since)
        .await
        .map_err(store_problem)?;
    let accounts: BTreeMap<String, Value> = counts
        .into_iter()
        .map(|(name, c)| {
            let last = c.last_event_at.map(format_micros);
            (
                name,
                json!({"accepted": c.accepted, "duplicate": c.duplicate,
                       "rejected": c.rejected, "last_event_at": last}),
            )
        })
        .collect();
    Ok(super::http::json(
        StatusCode::OK,
        &json!({"since": format_micros(since), "hours": hours, "accounts": accounts}),
    ))
}

/// `GET /v1/stats/activity?minutes=60`: outcomes per minute, rejections by reason, the
/// writer's health, readiness and when the oldest waiting delivery is due.
pub async fn activity(state: &AppState, query: &str) -> Result<Response<ResBody>, Problem> {
    let minutes = number(query, "minutes", 60, 1..=24 * 60)?;
    let activity = state
        .store
        .activity(state.clock.now_micros(), minutes)
        .await
        .map_err(store_problem)?;
    let ready = state.store.is_healthy() || state.store.probe().await.is_ok();
    let per_minute: Vec<Value> = activity
        .minutes
        .iter()
        .map(|m| {
            json!({"at": format_micros(m.at), "accepted": m.accepted,
                   "duplicate": m.duplicate, "rejected": m.rejected})
        })
        .collect();
    let reasons: Vec<Value> = activity
        .rejections
        .iter()
        .map(|(reason, count)| json!({"reason": reason, "count": count}))
        .collect();
    Ok(super::http::json(
        StatusCode::OK,
        &json!({
            "minutes": per_minute,
            "rejections": reasons,
            "outbox_oldest_due": activity.outbox_oldest_due.map(format_micros),
            "ready": ready,
            "writer": {
                "healthy": state.store.is_healthy(),
                "counts": state.store.metrics().writer_health(),
            },
        }),
    ))
}

fn number(
    query: &str,
    name: &str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, Problem> {
    let Some((_, v)) = form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name) else {
        return Ok(default);
    };
    v.parse().ok().filter(|n| range.contains(n)).ok_or_else(|| {
        bad(
            "bad_query",
            format!(
                "{name} must be a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        )
    })
}

/// `POST /v1/accounts/{name}/try {"body"?}`: signs a test request with the account's own
/// key, as its provider would, sends it to this gateway's public listener, and answers
/// the outcome: the HTTP status, the gateway's answer and the audit id.
pub async fn try_out(
    state: &AppState,
    name: &str,
    body: &Value,
) -> Result<Response<ResBody>, Problem> {
    let account = state.registry.get(name).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not Found",
            format!("there is no account {name:?}"),
        )
    })?;
    let payload = match body.get("body") {
        Some(Value::String(text)) => text.clone().into_bytes(),
        Some(v) => serde_json::to_vec(v).unwrap_or_default(),
        None => {
            let id = format!("try_{}", crate::tokens::random_hex(8));
            serde_json::to_vec(&json!({"id": id, "type": "console.try_out"})).unwrap_or_default()
        }
    };
    let spec = &account.spec;
    let cannot = |why: &str| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot_try",
            "Unprocessable Content",
            why.to_owned(),
        )
    };
    let key = match (&spec.signature, &spec.auth) {
        (Some(sig), _) if sig.algorithm.is_public_key() => {
            return Err(cannot(
                "this account holds the provider's public key; only the provider's private \
                 key can sign for it (use `hookgate sign` with a key pair to try one)",
            ));
        }
        (Some(sig), _) => sig.secrets.first().map(|s| s.expose_str().to_owned()),
        (None, AuthSpec::ApiKey { value, .. }) => Some(value.expose_str().to_owned()),
        (None, AuthSpec::Bearer { token }) => Some(token.expose_str().to_owned()),
        (None, _) => Some(String::new()),
    }
    .ok_or_else(|| cannot("the account has no secret to sign with"))?;
    let public = spec
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{}/hooks/{}", state.public_url, name));
    let now_secs = state.clock.now_micros() / 1_000_000;
    let id = format!("msg_{}", crate::tokens::random_hex(8));
    let signed = sign_request(SignInput {
        spec,
        key: &key,
        body: &payload,
        url: &public,
        now_secs,
        id: &id,
    })
    .map_err(|e| cannot(&e.0))?;
    let query = signed
        .url
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    let mut local = state.config.listen;
    if local.ip().is_unspecified() {
        local.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{local}/hooks/{name}{query}");
    let headers: Vec<(&str, &str)> = signed
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let answer = crate::cli::client::HttpClient::default()
        .send(Method::POST, &url, &headers, signed.body.clone())
        .await
        .map_err(|e| {
            Problem::new(
                StatusCode::BAD_GATEWAY,
                "try_unreachable",
                "Bad Gateway",
                format!("the public listener did not answer: {e}"),
            )
        })?;
    let gateway_answer: Value = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&answer.body).into_owned()));
    let audit_id = gateway_answer.get("id").cloned().unwrap_or(Value::Null);
    Ok(super::http::json(
        StatusCode::OK,
        &json!({
            "status": answer.status.as_u16(),
            "answer": gateway_answer,
            "id": audit_id,
            "body": String::from_utf8_lossy(&signed.body),
        }),
    ))
}
