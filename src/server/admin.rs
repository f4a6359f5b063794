//! The admin listener: bearer-token authentication and the admin API's route table.
//!
//! Owns [`ROUTES`], one line per route: method, path pattern, the role it needs
//! (`server::access`) and its handler. `admin` is needed for everything but reading
//! events (list, show, export, stream), the change log, audit verification, who the
//! caller is and the operations figures, which the `auditor` role may do too; the web
//! console's page and files (`console`) and `GET /v1/openapi.json` (the API's
//! description) are open to anyone: they hold no data. A request is checked against its route's declared access
//! before its handler runs, and a request matching no declared route is refused, so a
//! route cannot be served without a declaration. It must never run a handler before that
//! check, and never echo a token.

use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;

use super::AppState;
use super::access::{self, Access, Ctx, Reply, Route};
use super::http::{Problem, ResBody, read_body};
use super::{
    admin_accounts, admin_console, admin_destinations, admin_events, admin_tokens, console,
};
use crate::store::StoreError;
use crate::tokens::Caller;

use Access::{Admin, Anyone, Auditor};

/// The OpenAPI 3.1 document of the admin API and the webhook endpoint.
pub const OPENAPI: &str = include_str!("../../openapi/hookgate.json");

/// Every route of the admin listener, in match order (a literal segment before a
/// `{parameter}` in the same place). Add a route by adding its line here.
pub const ROUTES: &[Route] = &[
    Route::new(Method::GET, "/v1", Anyone, index),
    Route::new(Method::GET, "/v1/openapi.json", Anyone, openapi),
    Route::new(Method::GET, "/v1/accounts", Admin, accounts_list),
    Route::new(Method::POST, "/v1/accounts", Admin, accounts_create),
    Route::new(Method::GET, "/v1/accounts/{name}", Admin, accounts_show),
    Route::new(Method::PATCH, "/v1/accounts/{name}", Admin, accounts_update),
    Route::new(
        Method::DELETE,
        "/v1/accounts/{name}",
        Admin,
        accounts_delete,
    ),
    Route::new(
        Method::POST,
        "/v1/accounts/{name}/activate",
        Admin,
        accounts_activate,
    ),
    Route::new(
        Method::POST,
        "/v1/accounts/{name}/deactivate",
        Admin,
        accounts_deactivate,
    ),
    Route::new(
        Method::POST,
        "/v1/accounts/{name}/listening",
        Admin,
        accounts_listening,
    ),
    Route::new(
        Method::POST,
        "/v1/accounts/{name}/secrets",
        Admin,
        secrets_add,
    ),
    Route::new(
        Method::DELETE,
        "/v1/accounts/{name}/secrets/{index}",
        Admin,
        secrets_retire,
    ),
    Route::new(
        Method::POST,
        "/v1/accounts/{name}/path_token",
        Admin,
        path_token_rotate,
    ),
    Route::new(Method::POST, "/v1/accounts/{name}/try", Admin, try_out),
    Route::new(
        Method::GET,
        "/v1/accounts/{name}/destinations",
        Admin,
        destinations_list,
    ),
    Route::new(
        Method::POST,
        "/v1/accounts/{name}/destinations",
        Admin,
        destinations_create,
    ),
    Route::new(
        Method::GET,
        "/v1/accounts/{name}/destinations/{dest}",
        Admin,
        destinations_show,
    ),
    Route::new(
        Method::PATCH,
        "/v1/accounts/{name}/destinations/{dest}",
        Admin,
        destinations_update,
    ),
    Route::new(
        Method::DELETE,
        "/v1/accounts/{name}/destinations/{dest}",
        Admin,
        destinations_delete,
    ),
    Route::new(
        Method::POST,
        "/v1/accounts/{name}/destinations/{dest}/rotate-secret",
        Admin,
        destinations_rotate,
    ),
    Route::new(
        Method::POST,
        "/v1/deliveries/redrive",
        Admin,
        deliveries_redrive,
    ),
    Route::new(
        Method::POST,
        "/v1/deliveries/{id}/redeliver",
        Admin,
        deliveries_redeliver,
    ),
    Route::new(Method::GET, "/v1/events", Auditor, events_list),
    Route::new(Method::GET, "/v1/events/export", Auditor, events_export),
    Route::new(Method::GET, "/v1/events/{id}", Auditor, events_show),
    Route::new(
        Method::POST,
        "/v1/events/{id}/redeliver",
        Admin,
        events_redeliver,
    ),
    Route::new(Method::GET, "/v1/audit/verify", Auditor, audit_verify),
    Route::new(Method::GET, "/v1/audit/heads", Auditor, audit_heads),
    Route::new(Method::POST, "/v1/audit/prune", Admin, audit_prune),
    Route::new(Method::GET, "/v1/changes", Auditor, changes),
    Route::new(Method::GET, "/v1/stream", Auditor, stream),
    Route::new(Method::GET, "/v1/tokens", Admin, tokens_list),
    Route::new(Method::POST, "/v1/tokens", Admin, tokens_create),
    Route::new(Method::DELETE, "/v1/tokens/{name}", Admin, tokens_revoke),
    Route::new(Method::GET, "/v1/providers", Admin, providers),
    Route::new(Method::GET, "/v1/providers/{name}", Admin, provider),
    Route::new(Method::GET, "/metrics", Admin, metrics),
    Route::new(Method::GET, "/v1/whoami", Auditor, whoami),
    Route::new(Method::POST, "/v1/paths/suggest", Admin, paths_suggest),
    Route::new(
        Method::POST,
        "/v1/templates/preview",
        Admin,
        template_preview,
    ),
    Route::new(Method::GET, "/v1/stats/accounts", Admin, stats_accounts),
    Route::new(Method::GET, "/v1/stats/activity", Auditor, stats_activity),
    Route::new(Method::GET, "/", Anyone, console_file),
    Route::new(Method::GET, "/index.html", Anyone, console_file),
    Route::new(Method::GET, "/console/{file}", Anyone, console_file),
];

/// Every declared route of the admin listener as (method, pattern, access), for
/// documentation and tests.
pub fn declared() -> Vec<(Method, &'static str, Access)> {
    ROUTES
        .iter()
        .map(|r| (r.method.clone(), r.pattern, r.access))
        .collect()
}

/// Handles one admin request: find its route, check the caller against the route's
/// access, then run the handler.
pub async fn handle(state: &AppState, req: Request<Incoming>) -> Response<ResBody> {
    let path = req.uri().path().to_owned();
    let found = access::find(ROUTES, req.method(), &access::split(&path));
    let caller = match authenticate(state, &req) {
        Ok(c) => c,
        // A token that is sent must be valid, even on a route open to anyone.
        Err(p) if req.headers().contains_key(AUTHORIZATION) => return p.response(),
        Err(_) => None,
    };
    let Some((route, params)) = found else {
        // Without a valid token nothing, not even which routes exist, is said.
        if caller.is_none() {
            return access::unauthorized().response();
        }
        return not_found(req.method(), &path).response();
    };
    if let Err(p) = access::permit(route.access, caller.as_ref()) {
        return p.response();
    }
    match (route.handler)(Ctx::new(state, req, caller.as_ref(), params)).await {
        Ok(res) => res,
        Err(p) => p.response(),
    }
}

/// The caller a valid bearer token names; `None` without an `Authorization` header.
fn authenticate(state: &AppState, req: &Request<Incoming>) -> Result<Option<Caller>, Problem> {
    let Some(value) = req.headers().get(AUTHORIZATION) else {
        return Ok(None);
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
    tokens.authenticate(token).map(Some).ok_or_else(|| {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "the token is not valid",
        )
    })
}

fn not_found(method: &Method, path: &str) -> Problem {
    let detail = if path.trim_start_matches('/').starts_with("v1") {
        format!("no route {method} {path}")
    } else {
        "the admin API lives under /v1/".to_owned()
    };
    Problem::new(StatusCode::NOT_FOUND, "not_found", "Not Found", detail)
}

// The handlers of the table: each adapts a route's context to the function that does the
// work. None checks a role: the table's declaration did.

fn accounts_list(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { Ok(admin_accounts::list(cx.state)) })
}

fn accounts_create(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let caller = cx.caller()?;
        let body = json_body(cx.state, cx.req).await?;
        admin_accounts::create(cx.state, caller, body).await
    })
}

fn accounts_show(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { admin_accounts::show(cx.state, &cx.param(0)) })
}

fn accounts_update(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let (caller, name) = (cx.caller()?, cx.param(0));
        let body = json_body(cx.state, cx.req).await?;
        admin_accounts::update(cx.state, caller, &name, body, "account.updated").await
    })
}

fn accounts_delete(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { admin_accounts::delete(cx.state, cx.caller()?, &cx.param(0)).await })
}

fn accounts_activate(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(set_active(cx, true))
}

fn accounts_deactivate(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(set_active(cx, false))
}

async fn set_active(cx: Ctx<'_>, active: bool) -> Result<Response<ResBody>, Problem> {
    let patch = serde_json::json!({ "active": active });
    let action = if active {
        "account.activated"
    } else {
        "account.deactivated"
    };
    admin_accounts::update(cx.state, cx.caller()?, &cx.param(0), patch, action).await
}

fn accounts_listening(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let (caller, name) = (cx.caller()?, cx.param(0));
        let body = json_body(cx.state, cx.req).await?;
        admin_accounts::listening(cx.state, caller, &name, body).await
    })
}

fn secrets_add(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let (caller, name) = (cx.caller()?, cx.param(0));
        let body = json_body(cx.state, cx.req).await?;
        admin_accounts::add_secret(cx.state, caller, &name, body).await
    })
}

fn path_token_rotate(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let name = cx.param(0);
        admin_accounts::rotate_path_token(cx.state, cx.caller()?, &name).await
    })
}

fn secrets_retire(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let (name, index) = (cx.param(0), cx.param(1));
        admin_accounts::retire_secret(cx.state, cx.caller()?, &name, &index).await
    })
}

fn destinations_list(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { admin_destinations::list(cx.state, &cx.param(0)) })
}

fn destinations_create(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let (caller, name) = (cx.caller()?, cx.param(0));
        let body = json_body(cx.state, cx.req).await?;
        admin_destinations::create(cx.state, caller, &name, body).await
    })
}

fn destinations_show(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { admin_destinations::show(cx.state, &cx.param(0), &cx.param(1)) })
}

fn destinations_update(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let (caller, name, dest) = (cx.caller()?, cx.param(0), cx.param(1));
        let body = json_body(cx.state, cx.req).await?;
        admin_destinations::update(cx.state, caller, &name, &dest, body).await
    })
}

fn destinations_delete(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let (name, dest) = (cx.param(0), cx.param(1));
        admin_destinations::delete(cx.state, cx.caller()?, &name, &dest).await
    })
}

fn destinations_rotate(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let (caller, name, dest) = (cx.caller()?, cx.param(0), cx.param(1));
        let body = optional_json_body(cx.state, cx.req).await?;
        admin_destinations::rotate(cx.state, caller, &name, &dest, body).await
    })
}

fn deliveries_redrive(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let caller = cx.caller()?;
        let body = json_body(cx.state, cx.req).await?;
        admin_destinations::redrive(cx.state, caller, body).await
    })
}

fn deliveries_redeliver(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(
        async move { admin_destinations::redeliver(cx.state, cx.caller()?, &cx.param(0)).await },
    )
}

fn events_list(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { admin_events::list(cx.state, &cx.query()).await })
}

fn events_export(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { admin_events::export(cx.state, &cx.query()).await })
}

fn events_show(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { admin_events::show(cx.state, &cx.param(0)).await })
}

fn events_redeliver(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { admin_events::redeliver(cx.state, cx.caller()?, &cx.param(0)).await })
}

fn audit_verify(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { admin_events::verify(cx.state, &cx.query()).await })
}

fn audit_heads(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { admin_events::heads(cx.state).await })
}

fn audit_prune(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let caller = cx.caller()?;
        let body = json_body(cx.state, cx.req).await?;
        admin_events::prune(cx.state, caller, body).await
    })
}

fn changes(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { admin_events::changes(cx.state, &cx.query()).await })
}

fn stream(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { super::stream::open(cx.state, &cx.req, &cx.query()).await })
}

fn tokens_list(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { Ok(admin_tokens::list(cx.state)) })
}

fn tokens_create(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let caller = cx.caller()?;
        let body = json_body(cx.state, cx.req).await?;
        admin_tokens::create(cx.state, caller, body).await
    })
}

fn tokens_revoke(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { admin_tokens::revoke(cx.state, cx.caller()?, &cx.param(0)).await })
}

fn providers(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { Ok(admin_accounts::providers(cx.state)) })
}

fn provider(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { admin_accounts::provider(cx.state, &cx.param(0)) })
}

/// `GET /v1`: what this listener serves and where its description is.
fn index(_cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let routes: Vec<String> = ROUTES
            .iter()
            .map(|r| format!("{} {}", r.method, r.pattern))
            .collect();
        Ok(super::http::json(
            StatusCode::OK,
            &serde_json::json!({
                "service": "hookgate admin API",
                "version": env!("CARGO_PKG_VERSION"),
                "openapi": "/v1/openapi.json",
                "authentication": "Authorization: Bearer <admin or auditor token>",
                "routes": routes,
            }),
        ))
    })
}

/// `GET /v1/openapi.json`.
fn openapi(_cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let mut res = Response::new(super::http::full(OPENAPI));
        res.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        Ok(res)
    })
}

fn metrics(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let state = cx.state;
        let accounts = state.registry.list();
        let mut text = state
            .store
            .metrics()
            .render(state.store.is_healthy(), accounts.len());
        let (failed, dropped) = crate::telemetry::lost_lines();
        text.push_str(&format!(
            "# HELP hookgate_log_lines_lost_total Log lines lost: writes that failed (standard error closed or its disk full), or dropped behind a slow standard error.\n\
             # TYPE hookgate_log_lines_lost_total counter\n\
             hookgate_log_lines_lost_total{{cause=\"write_failed\"}} {failed}\n\
             hookgate_log_lines_lost_total{{cause=\"dropped\"}} {dropped}\n"
        ));
        let (waiting, capacity) = state.store.queue_depth();
        text.push_str(&format!(
            "# HELP hookgate_writer_queue_depth Writes waiting for the writer (a full queue answers 503).\n\
             # TYPE hookgate_writer_queue_depth gauge\nhookgate_writer_queue_depth {waiting}\n\
             # HELP hookgate_writer_queue_capacity Writes that may wait for the writer (storage.queue_capacity).\n\
             # TYPE hookgate_writer_queue_capacity gauge\nhookgate_writer_queue_capacity {capacity}\n"
        ));
        let names: Vec<&str> = accounts.iter().map(|a| a.name()).collect();
        state.account_metrics.render(&mut text, &names);
        if let Ok(outbox) = state.store.outbox_stats().await {
            let age = outbox.oldest_queued.map_or(0.0, |t| {
                (crate::clock::now_micros() - t).max(0) as f64 / 1e6
            });
            text.push_str(&format!(
                "# HELP hookgate_destination_backlog Deliveries to destinations pending or retrying.\n\
                 # TYPE hookgate_destination_backlog gauge\nhookgate_destination_backlog {}\n\
                 # HELP hookgate_destination_oldest_pending_seconds Age of the oldest delivery to a destination still pending or retrying.\n\
                 # TYPE hookgate_destination_oldest_pending_seconds gauge\nhookgate_destination_oldest_pending_seconds {age}\n",
                outbox.backlog
            ));
            let chat_age = outbox.chat_oldest_queued.map_or(0.0, |t| {
                (crate::clock::now_micros() - t).max(0) as f64 / 1e6
            });
            text.push_str(&format!(
                "# HELP hookgate_chat_backlog Chat status messages (deliveries to @chat) pending or retrying.\n\
                 # TYPE hookgate_chat_backlog gauge\nhookgate_chat_backlog {}\n\
                 # HELP hookgate_chat_oldest_pending_seconds Age of the oldest status message still pending or retrying.\n\
                 # TYPE hookgate_chat_oldest_pending_seconds gauge\nhookgate_chat_oldest_pending_seconds {chat_age}\n",
                outbox.chat_backlog
            ));
        }
        state.lanes.render_metrics(&mut text);
        let mut res = Response::new(super::http::full(text));
        res.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        Ok(res)
    })
}

fn try_out(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let name = cx.param(0);
        let body = json_body(cx.state, cx.req).await?;
        admin_console::try_out(cx.state, &name, &body).await
    })
}

fn whoami(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { Ok(admin_console::whoami(cx.caller()?)) })
}

fn paths_suggest(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let body = json_body(cx.state, cx.req).await?;
        admin_console::suggest(&body)
    })
}

fn template_preview(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let body = json_body(cx.state, cx.req).await?;
        admin_console::preview(&body)
    })
}

fn stats_accounts(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { admin_console::account_counts(cx.state, &cx.query()).await })
}

fn stats_activity(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { admin_console::activity(cx.state, &cx.query()).await })
}

fn console_file(cx: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move { Ok(console::serve(cx.req.uri().path())) })
}

/// Reads a JSON object body, or no body as `{}`.
async fn optional_json_body(state: &AppState, req: Request<Incoming>) -> Result<Value, Problem> {
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
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "Bad Request",
            "the body must be a JSON object, or empty",
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
