//! Admin routes for named API tokens: create (shown once), list (names and roles only),
//! revoke.
//!
//! Owns the token life cycle over HTTP. A token is returned exactly once, in the answer
//! that creates it; only its SHA-256 is stored. It must never list or log a token or its
//! hash. Tokens from the configuration are listed but cannot be revoked here.

use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::AppState;
use super::admin::store_problem;
use super::http::{Problem, ResBody};
use crate::clock::now_micros;
use crate::store::{AdminWrite, Change};
use crate::tokens::{self, Caller, Role, TokenEntry, hash_token};

fn invalid(field: &str, message: &str) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_token",
        "Unprocessable Content",
        format!("{field}: {message}"),
    )
    .with("field", field)
}

fn change(caller: &Caller, action: &str, detail: Value) -> Change {
    Change {
        at: now_micros(),
        actor: format!("{} ({})", caller.name, caller.role.as_str()),
        action: action.to_owned(),
        account: None,
        detail: detail.to_string(),
    }
}

/// `GET /v1/tokens`: names and roles.
pub fn list(state: &AppState) -> Response<ResBody> {
    let tokens = state.tokens.read().unwrap_or_else(|p| p.into_inner());
    let list: Vec<Value> = tokens
        .entries()
        .iter()
        .map(|e| json!({"name": e.name, "role": e.role.as_str()}))
        .collect();
    super::http::json(StatusCode::OK, &json!({"tokens": list}))
}

/// `POST /v1/tokens {"name", "role"}`: a new token, returned once.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    body: Value,
) -> Result<Response<ResBody>, Problem> {
    let name = body.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return Err(invalid("name", "1 to 64 letters, digits, '_', '-' or '.'"));
    }
    if name.starts_with("config:") || name.starts_with("generated:") {
        return Err(invalid(
            "name",
            "the prefixes config: and generated: are reserved",
        ));
    }
    let role = body
        .get("role")
        .and_then(Value::as_str)
        .and_then(Role::parse)
        .ok_or_else(|| invalid("role", "admin or auditor"))?;
    let _guard = state.admin_lock.lock().await;
    if state
        .tokens
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .entries()
        .iter()
        .any(|e| e.name == name)
    {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            "Conflict",
            format!("a token named {name:?} exists; revoke it first"),
        ));
    }
    let token = tokens::generate(role);
    let entry = TokenEntry {
        name: name.to_owned(),
        role,
        hash: hash_token(&token),
    };
    state
        .store
        .admin(AdminWrite::AddToken {
            entry: entry.clone(),
            change: change(
                caller,
                "token.created",
                json!({"name": name, "role": role.as_str()}),
            ),
        })
        .await
        .map_err(store_problem)?;
    state
        .tokens
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .add(entry);
    Ok(super::http::json(
        StatusCode::CREATED,
        &json!({"name": name, "role": role.as_str(), "token": token,
                "note": "shown once; only its hash is stored"}),
    ))
}

/// `DELETE /v1/tokens/{name}`.
pub async fn revoke(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<Response<ResBody>, Problem> {
    if name.starts_with("config:") {
        return Err(invalid(
            "name",
            "this token comes from the configuration; remove it there",
        ));
    }
    let _guard = state.admin_lock.lock().await;
    state
        .store
        .admin(AdminWrite::RevokeToken {
            name: name.to_owned(),
            change: change(caller, "token.revoked", json!({"name": name})),
        })
        .await
        .map_err(store_problem)?;
    state
        .tokens
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .remove(name);
    Ok(super::http::json(StatusCode::OK, &json!({"revoked": name})))
}
