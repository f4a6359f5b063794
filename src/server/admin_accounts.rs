//! Admin routes for accounts: create, list, show, update, delete, activate, listening,
//! and adding or retiring secrets.
//!
//! Owns the account life cycle over HTTP: every change is validated and compiled first,
//! committed with its change-log row second, and only then published to the registry. It
//! must never answer with a secret: account views go through the spec's public JSON.

use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::AppState;
use super::admin::store_problem;
use super::http::{Problem, ResBody};
use crate::account::{AccountSpec, CompiledAccount, SpecError, compile};
use crate::clock::{format_micros, now_micros};
use crate::rules;
use crate::store::{AdminWrite, Change};
use crate::tokens::Caller;

/// The account as the admin API shows it: secrets masked, URL and state added.
fn view(state: &AppState, a: &CompiledAccount) -> Value {
    let mut v = a.spec.to_public_json();
    v["webhook_url"] = super::account_view::webhook_url(&state.public_url, &a.spec).into();
    let warnings = super::account_view::warnings(&a.spec);
    if !warnings.is_empty() {
        v["warnings"] = warnings.into();
    }
    v["listening"] = a.listening.into();
    v["created_at"] = format_micros(a.created_at).into();
    v["updated_at"] = format_micros(a.updated_at).into();
    v
}

fn invalid(e: SpecError) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_account",
        "Unprocessable Content",
        e.to_string(),
    )
    .with("field", e.field)
}

fn not_found(name: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "Not Found",
        format!("there is no account {name:?}"),
    )
}

fn change(caller: &Caller, action: &str, account: &str, detail: Value) -> Change {
    Change {
        at: now_micros(),
        actor: format!("{} ({})", caller.name, caller.role.as_str()),
        action: action.to_owned(),
        account: Some(account.to_owned()),
        detail: detail.to_string(),
    }
}

/// `GET /v1/accounts`.
pub fn list(state: &AppState) -> Response<ResBody> {
    let accounts: Vec<Value> = state
        .registry
        .list()
        .iter()
        .map(|a| view(state, a))
        .collect();
    super::http::json(StatusCode::OK, &json!({"accounts": accounts}))
}

/// `GET /v1/accounts/{name}`.
pub fn show(state: &AppState, name: &str) -> Result<Response<ResBody>, Problem> {
    let account = state.registry.get(name).ok_or_else(|| not_found(name))?;
    Ok(super::http::json(StatusCode::OK, &view(state, &account)))
}

/// `POST /v1/accounts`.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    body: Value,
) -> Result<Response<ResBody>, Problem> {
    let mut prepared = state.rules.prepare(body).map_err(invalid)?;
    // A path-token account created without its token gets one, shown in this answer only.
    let generated = fill_path_token(&mut prepared);
    let spec = AccountSpec::from_json(prepared).map_err(invalid)?;
    let now = now_micros();
    let account = compile(spec, false, now, now).map_err(invalid)?;
    crate::forward::channel::check_account(&state.config.chat, &account.spec).map_err(invalid)?;
    let _guard = state.admin_lock.lock().await;
    let name = account.name().to_owned();
    let mut detail = json!({"provider": account.spec.provider, "active": account.spec.active});
    if let Some(channel) = account.spec.forward.channel {
        detail["channel"] = json!(channel.name());
    }
    state
        .store
        .admin(AdminWrite::CreateAccount {
            name: name.clone(),
            spec: account.spec.to_stored_json().to_string(),
            // Stored with the registry's times, so a conditional write can name them.
            change: Change {
                at: now,
                ..change(caller, "account.created", &name, detail)
            },
        })
        .await
        .map_err(store_problem)?;
    let account = state.registry.put(account);
    let mut answer = view(state, &account);
    if let Some(token) = generated {
        shown_once(&mut answer, &token);
    }
    Ok(super::http::json(StatusCode::CREATED, &answer))
}

/// Puts a generated token into a prepared path-token spec that has none; gives it back.
fn fill_path_token(prepared: &mut Value) -> Option<String> {
    let auth = prepared.get_mut("auth")?.as_object_mut()?;
    if auth.get("type").and_then(Value::as_str) != Some("path_token") {
        return None;
    }
    if auth
        .get("token")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty())
    {
        return None;
    }
    let token = crate::verify::generate_path_token();
    auth.insert("token".into(), Value::String(token.clone()));
    Some(token)
}

/// Adds a generated path token to an answer: the only time it is shown.
fn shown_once(answer: &mut Value, token: &str) {
    answer["path_token"] = token.into();
    if let Some(url) = answer["webhook_url"].as_str() {
        answer["webhook_url"] = format!("{}/{token}", url.trim_end_matches('/')).into();
    }
    answer["path_token_note"] =
        "the generated path token is shown this once; it is stored like any secret and never shown again (rotate it to get a new one)"
            .into();
}

/// `POST /v1/accounts/{name}/path_token`: a new generated path token replaces the
/// account's, and is shown in this answer only.
pub async fn rotate_path_token(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<Response<ResBody>, Problem> {
    let _guard = state.admin_lock.lock().await;
    let current = state.registry.get(name).ok_or_else(|| not_found(name))?;
    let mut spec = current.spec.clone();
    let crate::account::AuthSpec::PathToken { token } = &mut spec.auth else {
        return Err(invalid(SpecError::new(
            "auth",
            "the account is not reached with a path token (auth.type path_token)",
        )));
    };
    let fresh = crate::verify::generate_path_token();
    *token = crate::secret::Secret::new(&fresh);
    let account = commit(
        state,
        caller,
        &current,
        spec,
        current.listening,
        "path_token.rotated",
        json!({}),
    )
    .await?;
    let mut answer = view(state, &account);
    shown_once(&mut answer, &fresh);
    Ok(super::http::json(StatusCode::OK, &answer))
}

/// `PATCH /v1/accounts/{name}` (JSON Merge Patch), and activate/deactivate.
pub async fn update(
    state: &AppState,
    caller: &Caller,
    name: &str,
    patch: Value,
    action: &str,
) -> Result<Response<ResBody>, Problem> {
    let _guard = state.admin_lock.lock().await;
    let current = state.registry.get(name).ok_or_else(|| not_found(name))?;
    if patch.get("listening").is_some() {
        return Err(invalid(SpecError::new(
            "listening",
            format!(
                "the listener is switched on its own route: POST /v1/accounts/{name}/listening {{\"listening\": true}} (CLI: hookgate accounts listen {name}; --off to stop)"
            ),
        )));
    }
    if let Some(given) = patch.get("name")
        && given.as_str() != Some(name)
    {
        return Err(invalid(SpecError::new(
            "name",
            "an account cannot be renamed; create a new one",
        )));
    }
    let stored = current.spec.to_stored_json();
    let prepared = state
        .rules
        .prepare_update(stored, &patch)
        .map_err(invalid)?;
    let spec = AccountSpec::from_json(prepared).map_err(invalid)?;
    // The fields changed, never their values; forwarding settings by name
    // (`forward.channel`, `forward.templates`), as they change the messages customers get.
    let fields: Vec<String> = patch
        .as_object()
        .map(|o| {
            o.iter()
                .flat_map(|(k, v)| match (k.as_str(), v.as_object()) {
                    ("forward", Some(f)) if !f.is_empty() => {
                        f.keys().map(|sub| format!("forward.{sub}")).collect()
                    }
                    _ => vec![k.clone()],
                })
                .collect()
        })
        .unwrap_or_default();
    let detail = json!({"fields": fields});
    commit_update(
        state,
        caller,
        &current,
        spec,
        current.listening,
        action,
        detail,
    )
    .await
}

async fn commit_update(
    state: &AppState,
    caller: &Caller,
    current: &CompiledAccount,
    spec: AccountSpec,
    listening: bool,
    action: &str,
    detail: Value,
) -> Result<Response<ResBody>, Problem> {
    let account = commit(state, caller, current, spec, listening, action, detail).await?;
    Ok(super::http::json(StatusCode::OK, &view(state, &account)))
}

async fn commit(
    state: &AppState,
    caller: &Caller,
    current: &CompiledAccount,
    spec: AccountSpec,
    listening: bool,
    action: &str,
    detail: Value,
) -> Result<std::sync::Arc<CompiledAccount>, Problem> {
    let name = current.name().to_owned();
    // The account's `updated_at` is its change row's time, as the table stores it, so a
    // later conditional write (`unchanged_since`) can name it.
    let change = change(caller, action, &name, detail);
    let account = compile(spec, listening, current.created_at, change.at).map_err(invalid)?;
    // Forwarding settings are checked against this gateway's channels when they change, so
    // an unrelated edit is not refused for a channel the configuration has since lost.
    if account.spec.forward != current.spec.forward {
        crate::forward::channel::check_account(&state.config.chat, &account.spec)
            .map_err(invalid)?;
    }
    state
        .store
        .admin(AdminWrite::UpdateAccount {
            name: name.clone(),
            spec: account.spec.to_stored_json().to_string(),
            listening,
            unchanged_since: None,
            change,
        })
        .await
        .map_err(store_problem)?;
    Ok(state.registry.put(account))
}

/// Why a provider's handshake could not set an account's signing secret.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeSecretError {
    /// The account has its secret (or another node stored one first): it is never
    /// replaced by a handshake.
    #[error("the account's signing secret is established; a handshake cannot replace it")]
    Established,
    /// The account is gone, or its spec no longer takes a handshake's secret.
    #[error("the account does not take a secret from a handshake")]
    NotAwaiting,
    /// The secret could not be committed.
    #[error("the secret could not be stored: {0}")]
    Store(crate::store::StoreError),
}

/// Stores `secret`, received in the provider's set-up handshake (Asana's
/// `X-Hook-Secret`), as the signing secret of account `name`, which must have none yet:
/// through the same write as an operator's change, with a change-log row that names the
/// handshake and never the value. The write applies only while the stored account is the
/// one this node decided on, so of two handshakes on two nodes at once one is stored and
/// the other is `Established`.
pub async fn accept_handshake_secret(
    state: &AppState,
    name: &str,
    secret: &str,
) -> Result<(), HandshakeSecretError> {
    let _guard = state.admin_lock.lock().await;
    let current = state
        .registry
        .get(name)
        .ok_or(HandshakeSecretError::NotAwaiting)?;
    if !current.verifier.awaits_secret() {
        return Err(HandshakeSecretError::Established);
    }
    let mut spec = current.spec.clone();
    let Some(sig) = spec.signature.as_mut() else {
        return Err(HandshakeSecretError::NotAwaiting);
    };
    sig.secrets = vec![crate::secret::Secret::new(secret)];
    let change = Change {
        at: now_micros(),
        actor: "handshake (provider)".to_owned(),
        action: "secret.handshake".to_owned(),
        account: Some(name.to_owned()),
        detail: json!({"secrets": 1, "from": "the provider's set-up handshake"}).to_string(),
    };
    let account = compile(spec, current.listening, current.created_at, change.at)
        .map_err(|_| HandshakeSecretError::NotAwaiting)?;
    let written = state
        .store
        .admin(AdminWrite::UpdateAccount {
            name: name.to_owned(),
            spec: account.spec.to_stored_json().to_string(),
            listening: current.listening,
            unchanged_since: Some(current.updated_at),
            change,
        })
        .await;
    match written {
        Ok(_) => {
            state.registry.put(account);
            Ok(())
        }
        Err(crate::store::StoreError::Conflict(_) | crate::store::StoreError::NotFound(_)) => {
            Err(HandshakeSecretError::Established)
        }
        Err(e) => Err(HandshakeSecretError::Store(e)),
    }
}

/// `DELETE /v1/accounts/{name}`: the account goes, its audit rows stay.
pub async fn delete(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<Response<ResBody>, Problem> {
    let _guard = state.admin_lock.lock().await;
    if state.registry.get(name).is_none() {
        return Err(not_found(name));
    }
    state
        .store
        .admin(AdminWrite::DeleteAccount {
            name: name.to_owned(),
            change: change(caller, "account.deleted", name, json!({})),
        })
        .await
        .map_err(store_problem)?;
    state.registry.remove(name);
    state.destinations.remove_account(name);
    Ok(super::http::json(StatusCode::OK, &json!({"deleted": name})))
}

/// `POST /v1/accounts/{name}/listening` with `{"listening": bool, "event_types": [...]}`.
pub async fn listening(
    state: &AppState,
    caller: &Caller,
    name: &str,
    body: Value,
) -> Result<Response<ResBody>, Problem> {
    let Some(on) = body.get("listening").and_then(Value::as_bool) else {
        return Err(invalid(SpecError::new(
            "listening",
            "must be true or false",
        )));
    };
    let _guard = state.admin_lock.lock().await;
    let current = state.registry.get(name).ok_or_else(|| not_found(name))?;
    let mut spec = current.spec.clone();
    if let Some(types) = body.get("event_types") {
        spec.forward.event_types = serde_json::from_value(types.clone())
            .map_err(|_| invalid(SpecError::new("event_types", "must be a list of strings")))?;
    }
    let action = if on { "listening.on" } else { "listening.off" };
    let detail = json!({"event_types": spec.forward.event_types});
    commit_update(state, caller, &current, spec, on, action, detail).await
}

/// `POST /v1/accounts/{name}/secrets` with `{"secret": "..."}`: one more valid secret.
pub async fn add_secret(
    state: &AppState,
    caller: &Caller,
    name: &str,
    body: Value,
) -> Result<Response<ResBody>, Problem> {
    let Some(secret) = body
        .get("secret")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return Err(invalid(SpecError::new(
            "secret",
            "must be a non-empty string",
        )));
    };
    let _guard = state.admin_lock.lock().await;
    let current = state.registry.get(name).ok_or_else(|| not_found(name))?;
    let mut spec = current.spec.clone();
    let Some(sig) = spec.signature.as_mut() else {
        return Err(invalid(SpecError::new(
            "signature",
            "the account has no signature scheme to add a secret to",
        )));
    };
    sig.secrets.push(crate::secret::Secret::new(secret));
    let detail = json!({"secrets": sig.secrets.len()});
    commit_update(
        state,
        caller,
        &current,
        spec,
        current.listening,
        "secret.added",
        detail,
    )
    .await
}

/// `DELETE /v1/accounts/{name}/secrets/{index}`: retires one secret (0-based, as listed).
pub async fn retire_secret(
    state: &AppState,
    caller: &Caller,
    name: &str,
    index: &str,
) -> Result<Response<ResBody>, Problem> {
    let _guard = state.admin_lock.lock().await;
    let current = state.registry.get(name).ok_or_else(|| not_found(name))?;
    let mut spec = current.spec.clone();
    let Some(sig) = spec.signature.as_mut() else {
        return Err(not_found(&format!("{name}/secrets/{index}")));
    };
    let Some(i) = index
        .parse::<usize>()
        .ok()
        .filter(|i| *i < sig.secrets.len())
    else {
        return Err(not_found(&format!("{name}/secrets/{index}")));
    };
    if sig.secrets.len() == 1 {
        return Err(invalid(SpecError::new(
            "signature.secrets",
            "the last secret cannot be retired; add its successor first",
        )));
    }
    sig.secrets.remove(i);
    let detail = json!({"retired_index": i, "secrets": sig.secrets.len()});
    commit_update(
        state,
        caller,
        &current,
        spec,
        current.listening,
        "secret.retired",
        detail,
    )
    .await
}

/// `GET /v1/providers`: the presets and what each needs.
pub fn providers(state: &AppState) -> Response<ResBody> {
    let mut list = vec![json!({
        "name": "custom",
        "title": "Custom",
        "needs": "auth and/or signature, filled in by you",
    })];
    list.extend(state.rules.all().iter().map(rules::describe));
    super::http::json(StatusCode::OK, &json!({"providers": list}))
}

/// `GET /v1/providers/{name}`: one preset.
pub fn provider(state: &AppState, name: &str) -> Result<Response<ResBody>, Problem> {
    let rule = state.rules.get(name).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "unknown_provider",
            "Not Found",
            state.rules.unknown(name).message,
        )
    })?;
    Ok(super::http::json(StatusCode::OK, &rules::describe(rule)))
}
