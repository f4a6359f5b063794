//! The admin listener: bearer-token authentication, roles, and routing to the account and
//! event handlers.
//!
//! Owns the route table of the admin API and the role each route needs: `admin` for
//! everything; `auditor` only for reading events (list, show, export), the change log and
//! audit verification; no token only for `GET /` and `GET /v1/openapi.json`, which
//! describe the API and hold no data. It must never serve any other route before the token
//! is checked, and never echo a token.

use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;

use super::AppState;
use super::http::{Problem, ResBody, read_body};
use super::{admin_accounts, admin_events, admin_tokens};
use crate::store::StoreError;
use crate::tokens::{Caller, Role};

/// The OpenAPI 3.1 document of the admin API and the webhook endpoint.
pub const OPENAPI: &str = include_str!("../../openapi/hookgate.json");

/// Handles one admin request.
pub async fn handle(state: &AppState, req: Request<Incoming>) -> Response<ResBody> {
    // The only routes open without a token: they describe the API and hold no data.
    if req.method() == Method::GET {
        match req.uri().path() {
            "/" | "/v1" | "/v1/" => return index(),
            "/v1/openapi.json" => return openapi(),
            _ => {}
        }
    }
    let caller = match authenticate(state, &req) {
        Ok(c) => c,
        Err(p) => return p.response(),
    };
    match route(state, &caller, req).await {
        Ok(res) => res,
        Err(p) => p.response(),
    }
}

/// `GET /`: what this listener serves and where its description is.
fn index() -> Response<ResBody> {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap_or(Value::Null);
    let mut routes = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, ops) in paths {
            for method in ops.as_object().into_iter().flat_map(|o| o.keys()) {
                if method != "parameters" && !path.starts_with("/hooks") {
                    routes.push(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
    }
    super::http::json(
        StatusCode::OK,
        &serde_json::json!({
            "service": "hookgate admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "openapi": "/v1/openapi.json",
            "authentication": "Authorization: Bearer <admin or auditor token>",
            "routes": routes,
        }),
    )
}

/// `GET /v1/openapi.json`.
fn openapi() -> Response<ResBody> {
    let mut res = Response::new(super::http::full(OPENAPI));
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    res
}

fn authenticate(state: &AppState, req: &Request<Incoming>) -> Result<Caller, Problem> {
    let unauthorized = |detail: &str| {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    };
    let Some(value) = req.headers().get(AUTHORIZATION) else {
        return Err(unauthorized(
            "send the admin or auditor token as Authorization: Bearer <token>",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or("");
    let tokens = state.tokens.read().unwrap_or_else(|p| p.into_inner());
    tokens
        .authenticate(token)
        .ok_or_else(|| unauthorized("the token is not valid"))
}

/// Refuses a caller without the admin role.
pub fn require_admin(caller: &Caller) -> Result<(), Problem> {
    if caller.role == Role::Admin {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            "this route needs the admin role; the auditor role may only read",
        ))
    }
}

async fn route(
    state: &AppState,
    caller: &Caller,
    req: Request<Incoming>,
) -> Result<Response<ResBody>, Problem> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["v1", "accounts"]) => {
            require_admin(caller)?;
            Ok(admin_accounts::list(state))
        }
        (&Method::POST, ["v1", "accounts"]) => {
            require_admin(caller)?;
            let body = json_body(state, req).await?;
            admin_accounts::create(state, caller, body).await
        }
        (&Method::GET, ["v1", "accounts", name]) => {
            require_admin(caller)?;
            admin_accounts::show(state, name)
        }
        (&Method::PATCH, ["v1", "accounts", name]) => {
            require_admin(caller)?;
            let name = name.to_string();
            let body = json_body(state, req).await?;
            admin_accounts::update(state, caller, &name, body, "account.updated").await
        }
        (&Method::DELETE, ["v1", "accounts", name]) => {
            require_admin(caller)?;
            admin_accounts::delete(state, caller, name).await
        }
        (&Method::POST, ["v1", "accounts", name, action @ ("activate" | "deactivate")]) => {
            require_admin(caller)?;
            let patch = serde_json::json!({"active": *action == "activate"});
            let action = if *action == "activate" {
                "account.activated"
            } else {
                "account.deactivated"
            };
            admin_accounts::update(state, caller, name, patch, action).await
        }
        (&Method::POST, ["v1", "accounts", name, "listening"]) => {
            require_admin(caller)?;
            let name = name.to_string();
            let body = json_body(state, req).await?;
            admin_accounts::listening(state, caller, &name, body).await
        }
        (&Method::POST, ["v1", "accounts", name, "secrets"]) => {
            require_admin(caller)?;
            let name = name.to_string();
            let body = json_body(state, req).await?;
            admin_accounts::add_secret(state, caller, &name, body).await
        }
        (&Method::DELETE, ["v1", "accounts", name, "secrets", index]) => {
            require_admin(caller)?;
            admin_accounts::retire_secret(state, caller, name, index).await
        }
        (&Method::GET, ["v1", "events"]) => admin_events::list(state, &query).await,
        (&Method::GET, ["v1", "events", "export"]) => admin_events::export(state, &query).await,
        (&Method::GET, ["v1", "audit", "verify"]) => admin_events::verify(state, &query).await,
        (&Method::POST, ["v1", "audit", "prune"]) => {
            require_admin(caller)?;
            let body = json_body(state, req).await?;
            admin_events::prune(state, caller, body).await
        }
        (&Method::GET, ["v1", "tokens"]) => {
            require_admin(caller)?;
            Ok(admin_tokens::list(state))
        }
        (&Method::POST, ["v1", "tokens"]) => {
            require_admin(caller)?;
            let body = json_body(state, req).await?;
            admin_tokens::create(state, caller, body).await
        }
        (&Method::DELETE, ["v1", "tokens", name]) => {
            require_admin(caller)?;
            admin_tokens::revoke(state, caller, name).await
        }
        (&Method::GET, ["v1", "events", id]) => admin_events::show(state, id).await,
        (&Method::POST, ["v1", "events", id, "redeliver"]) => {
            require_admin(caller)?;
            admin_events::redeliver(state, caller, id).await
        }
        (&Method::GET, ["v1", "stream"]) => super::stream::open(state, &req, &query).await,
        (&Method::GET, ["v1", "changes"]) => admin_events::changes(state, &query).await,
        (&Method::GET, ["v1", "providers"]) => {
            require_admin(caller)?;
            Ok(admin_accounts::providers(state))
        }
        (&Method::GET, ["v1", "providers", name]) => {
            require_admin(caller)?;
            admin_accounts::provider(state, name)
        }
        (&Method::GET, ["metrics"]) => {
            require_admin(caller)?;
            let accounts = state.registry.list();
            let mut text = state
                .store
                .metrics()
                .render(state.store.is_healthy(), accounts.len());
            let names: Vec<&str> = accounts.iter().map(|a| a.name()).collect();
            state.account_metrics.render(&mut text, &names);
            let mut res = Response::new(super::http::full(text));
            res.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            Ok(res)
        }
        (_, ["v1", ..]) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not Found",
            format!("no route {method} {path}"),
        )),
        _ => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not Found",
            "the admin API lives under /v1/",
        )),
    }
}

/// Reads a JSON object body under the body limit.
async fn json_body(state: &AppState, req: Request<Incoming>) -> Result<Value, Problem> {
    let limit = state.config.limits.max_body_bytes;
    let bytes = read_body(req.into_body(), limit, state.config.body_timeout())
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                "Bad Request",
                format!(
                    "the body could not be read whole within {limit} bytes and the read timeout"
                ),
            )
        })?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "Bad Request",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "Bad Request",
            "the body must be a JSON object",
        ));
    }
    Ok(value)
}

/// Maps a storage error on an admin route.
pub fn store_problem(e: StoreError) -> Problem {
    match e {
        StoreError::Conflict(what) => Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            "Conflict",
            format!("{what} already exists"),
        ),
        StoreError::NotFound(what) => Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not Found",
            format!("{what} does not exist"),
        ),
        other => {
            tracing::warn!(error = %other, "admin request failed on storage");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "Service Unavailable",
                "the database could not be reached; nothing was changed",
            )
        }
    }
}
