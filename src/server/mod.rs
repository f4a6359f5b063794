//! The two HTTP listeners and the gateway's life cycle: open, serve, shut down gracefully.
//!
//! Owns [`Gateway`] (the state built at start: store, registry, tokens) and the accept
//! loop: a connection semaphore is acquired before `accept` (backpressure), a connection
//! from an address over its per-address limit is closed at once (`conn_limit`), each
//! connection gets header-size and header-time limits (a head over the size limit is
//! refused by `route`, or by hyper past twice it), and shutdown goes in phases: stop
//! accepting, let in-flight requests finish (with a deadline), then flush and join the
//! writer. It must never pick a port: callers pass bound listeners, so tests bind port 0.

mod access;
mod account_view;
mod admin;
mod admin_accounts;
mod admin_console;
mod admin_destinations;
mod admin_events;
mod admin_tokens;
mod conn_limit;
mod console;
mod export_limit;
pub mod heads;
pub mod http;
mod ingest;
mod stream;
pub mod supervise;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::Instrument as _;

use crate::account::CompiledAccount;
use crate::account::{AccountSpec, compile};
use crate::clock::now_micros;
use crate::config::Config;
use crate::event::Reason;
use crate::registry::Registry;
use crate::store::{AdminWrite, Change, Store, StoreError};
use crate::tokens::{self, Role, TokenEntry, TokenSet, hash_token};
use http::{Problem, ResBody};

pub use access::Access;
pub use admin::declared as admin_routes;

/// How long in-flight requests get to finish after shutdown begins.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// hyper's read buffer, as a multiple of `limits.max_header_bytes`: a head over the limit
/// but within this is parsed, so that `route` can refuse it with a problem and, on
/// `/hooks`, an audit row; hyper refuses a larger one bare, before there is a request (its
/// buffer can grow past the setting within one read: measured, the cut falls between two
/// and three times the limit).
const HEAD_BUFFER_FACTOR: usize = 2;

/// Everything the handlers share.
pub struct AppState {
    /// The configuration, fixed at start.
    pub config: Config,
    /// The base URL senders are given.
    pub public_url: String,
    /// The database.
    pub store: Store,
    /// Compiled accounts.
    pub registry: Registry,
    /// Valid admin and auditor tokens.
    pub tokens: RwLock<TokenSet>,
    /// Serialises admin read-modify-write changes of accounts.
    pub admin_lock: tokio::sync::Mutex<()>,
    /// Wakes the delivery worker when a delivery (to a destination or a chat message) was
    /// queued or redriven.
    pub deliveries: Arc<tokio::sync::Notify>,
    /// Whether status messages can go out (the connector or a channel is configured);
    /// without it they wait in the outbox and queuing one wakes nobody.
    pub chat_routed: bool,
    /// Flips to true when shutdown begins; long-lived answers (streams) end on it.
    pub stopping: watch::Receiver<bool>,
    /// Per-account token buckets for ingest.
    pub rate_limiter: crate::ratelimit::RateLimiter,
    /// The provider presets in force (shipped and the operator's).
    pub rules: crate::rules::Rules,
    /// The clock the ingest path reads.
    pub clock: crate::clock::Clock,
    /// Per-account outcome counters for `/metrics`.
    pub account_metrics: crate::account_metrics::AccountMetrics,
    /// Compiled destinations by account.
    pub destinations: crate::destination::Registry,
    /// The egress policy destinations are checked against (`[egress] allow`).
    pub egress: Arc<crate::destination::egress::Policy>,
    /// The delivery worker's lanes on this node (breakers, counters).
    pub lanes: crate::forward::worker::Lanes,
}

/// The two bound listeners.
#[derive(Debug)]
pub struct Listeners {
    /// For `/hooks/...`, `/healthz`, `/readyz`.
    pub public: TcpListener,
    /// For the admin API.
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds the configured addresses.
    pub async fn bind(config: &Config) -> std::io::Result<Listeners> {
        Ok(Listeners {
            public: TcpListener::bind(config.listen).await?,
            admin: TcpListener::bind(config.admin_listen).await?,
        })
    }
}

/// Why the gateway could not start, or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    /// An operator rule file is invalid.
    #[error("rule file {0}")]
    Rules(#[from] crate::rules::RuleError),
    /// A setting is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The running gateway met a fault it cannot recover from by itself.
    #[error("stopped, unable to recover: {0}")]
    Unrecoverable(String),
}

/// A gateway whose state is loaded, ready to serve.
pub struct Gateway {
    state: Arc<AppState>,
    stop: watch::Sender<bool>,
    /// A freshly generated admin token, when there was none: show it once, then it is
    /// gone (only its hash is stored).
    pub generated_admin_token: Option<String>,
}

impl Gateway {
    /// Opens the database, loads accounts and tokens, and generates an admin token when
    /// none exists.
    pub async fn open(config: Config) -> Result<Gateway, ServeError> {
        Gateway::open_with_clock(config, crate::clock::Clock::system()).await
    }

    /// Opens like [`Gateway::open`], with the ingest path reading `clock`.
    pub async fn open_with_clock(
        config: Config,
        clock: crate::clock::Clock,
    ) -> Result<Gateway, ServeError> {
        let rules = crate::rules::Rules::load(config.rules_dir.as_deref())?;
        let store = Store::open(&config.database, &config.storage, config.stream.buffer).await?;
        let registry = Registry::new();
        registry.replace_all(compiled_accounts(&store).await?);
        let egress = Arc::new(
            crate::destination::egress::Policy::new(&config.egress.allow)
                .map_err(ServeError::Config)?,
        );
        let destinations = crate::destination::Registry::default();
        destinations.replace_all(compiled_destinations(&store).await?);
        let mut token_set = token_set(&store, &config).await?;
        let mut generated_admin_token = None;
        if !token_set.has_role(Role::Admin) {
            let token = tokens::generate(Role::Admin);
            let entry = TokenEntry {
                name: "generated:admin".into(),
                role: Role::Admin,
                hash: hash_token(&token),
            };
            store
                .admin(AdminWrite::AddToken {
                    entry: entry.clone(),
                    change: Change {
                        at: now_micros(),
                        actor: "hookgate:start".into(),
                        action: "token.generated".into(),
                        account: None,
                        detail: json!({"name": entry.name, "role": "admin"}).to_string(),
                    },
                })
                .await?;
            token_set.add(entry);
            generated_admin_token = Some(token);
        }
        let (stop, stop_rx) = watch::channel(false);
        let chat_routed = !crate::forward::channel::configured(&config.chat).is_empty();
        let state = AppState {
            rate_limiter: crate::ratelimit::RateLimiter::new(
                config.limits.account_rate_per_sec,
                config.limits.account_burst,
            ),
            public_url: config.public_base_url(),
            config,
            store,
            registry,
            tokens: RwLock::new(token_set),
            admin_lock: tokio::sync::Mutex::new(()),
            deliveries: Arc::new(tokio::sync::Notify::new()),
            chat_routed,
            stopping: stop_rx,
            account_metrics: Default::default(),
            rules,
            clock,
            destinations,
            egress,
            lanes: Default::default(),
        };
        Ok(Gateway {
            state: Arc::new(state),
            stop,
            generated_admin_token,
        })
    }

    /// Serves both listeners until `shutdown` completes, then shuts down in phases. The
    /// long-running tasks are supervised (`supervise`): one that fails is started again.
    /// When the gateway cannot recover — storage that cannot be written again (the
    /// database file gone or corrupt), a listener lost, a task that keeps failing — it
    /// shuts down the same way and returns [`ServeError::Unrecoverable`], so the process
    /// exits non-zero and its supervisor starts it afresh: it never lingers half-alive.
    pub async fn run(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let stop_tx = self.stop;
        let stop_rx = stop_tx.subscribe();
        let (fatal_tx, mut fatal_rx) = tokio::sync::mpsc::channel::<String>(4);
        let mut public = tokio::spawn(accept_loop(
            listeners.public,
            Arc::clone(&self.state),
            Side::Public,
            stop_rx.clone(),
        ));
        let mut admin = tokio::spawn(accept_loop(
            listeners.admin,
            Arc::clone(&self.state),
            Side::Admin,
            stop_rx.clone(),
        ));
        let task = |name: &'static str, run: fn(Arc<AppState>, watch::Receiver<bool>) -> Task| {
            let state = Arc::clone(&self.state);
            tokio::spawn(supervise::supervise(
                name,
                stop_rx.clone(),
                fatal_tx.clone(),
                move |stop| run(Arc::clone(&state), stop),
            ))
        };
        let retention = task("retention", |s, stop| Box::pin(retention_loop(s, stop)));
        let follower = task("node follower", |s, stop| {
            Box::pin(follow_other_nodes(s, stop))
        });
        let heads = task("heads publisher", |s, stop| {
            Box::pin(heads::publish(s, stop))
        });
        let forwarder = task("delivery", |s, stop| {
            Box::pin(crate::forward::worker::run(s, stop))
        });
        let mut storage = self.state.store.unrecoverable();
        let mut public_done = None;
        let mut admin_done = None;
        let unrecoverable = tokio::select! {
            () = shutdown => None,
            Some(reason) = fatal_rx.recv() => Some(reason),
            reason = storage.wait_for(Option::is_some) => {
                Some(reason.map_or_else(|_| "storage stopped".into(), |r| r.clone().unwrap_or_default()))
            }
            done = &mut public => { public_done = Some(done); Some("the public listener stopped".into()) }
            done = &mut admin => { admin_done = Some(done); Some("the admin listener stopped".into()) }
        };
        match &unrecoverable {
            None => {
                tracing::info!("shutting down: no new connections; finishing in-flight requests")
            }
            Some(reason) => tracing::error!(
                reason = %reason,
                "hookgate cannot recover by itself and stops, to be restarted by its supervisor: {reason}"
            ),
        }
        let _ = stop_tx.send(true);
        let public = match public_done {
            Some(done) => done,
            None => public.await,
        };
        let admin = match admin_done {
            Some(done) => done,
            None => admin.await,
        };
        for loop_task in [public, admin] {
            if let Ok(graceful) = loop_task
                && tokio::time::timeout(DRAIN_DEADLINE, graceful.shutdown())
                    .await
                    .is_err()
            {
                tracing::warn!(
                    "in-flight requests did not finish within {DRAIN_DEADLINE:?}; closing them"
                );
            }
        }
        let _ = retention.await;
        let _ = follower.await;
        let _ = heads.await;
        // Deliveries in flight get a moment to finish and be recorded before the writer
        // closes; the rest stay due in the outbox.
        let _ = forwarder.await;
        self.state.store.close().await;
        match unrecoverable {
            None => {
                tracing::info!("stopped; every acknowledged event is committed");
                Ok(())
            }
            Some(reason) => Err(ServeError::Unrecoverable(reason)),
        }
    }
}

/// A supervised task's future.
type Task = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Every stored account that compiles; one that no longer does is logged and not served.
async fn compiled_accounts(store: &Store) -> Result<Vec<CompiledAccount>, StoreError> {
    let mut out = Vec::new();
    for stored in store.accounts().await? {
        let parsed = serde_json::from_str(&stored.spec)
            .map_err(|e| e.to_string())
            .and_then(|v| AccountSpec::from_json(v).map_err(|e| e.to_string()))
            .and_then(|spec| {
                compile(spec, stored.listening, stored.created_at, stored.updated_at)
                    .map_err(|e| e.to_string())
            });
        match parsed {
            Ok(account) => out.push(account),
            Err(e) => {
                tracing::error!(account = %stored.name, error = %e, "a stored account no longer compiles; it is not served")
            }
        }
    }
    Ok(out)
}

/// Every stored destination that compiles; one that no longer does is logged and not
/// served (its deliveries wait). Its URL is judged at connect time, so one saved under an
/// allowlist since narrowed still loads, and is refused there.
pub(crate) async fn compiled_destinations(
    store: &Store,
) -> Result<Vec<crate::destination::CompiledDestination>, StoreError> {
    let mut out = Vec::new();
    for stored in store.destinations().await? {
        let parsed = serde_json::from_str(&stored.spec)
            .map_err(|e| e.to_string())
            .and_then(|v| crate::destination::DestinationSpec::from_json(v).map_err(|e| e.message))
            .and_then(|spec| {
                let keys = serde_json::from_str(&stored.keys).map_err(|e| e.to_string())?;
                crate::destination::compile(
                    &stored.account,
                    &stored.name,
                    spec,
                    keys,
                    None,
                    (stored.created_at, stored.updated_at),
                )
                .map_err(|e| e.message)
            });
        match parsed {
            Ok(d) => out.push(d),
            Err(e) => {
                tracing::error!(account = %stored.account, destination = %stored.name, error = %e, "a stored destination no longer compiles; it is not served")
            }
        }
    }
    Ok(out)
}

/// The stored tokens and those of the configuration.
async fn token_set(store: &Store, config: &Config) -> Result<TokenSet, StoreError> {
    let mut set = TokenSet::default();
    for entry in store.tokens().await? {
        set.add(entry);
    }
    for (name, role, token) in [
        ("config:admin", Role::Admin, &config.admin_token),
        ("config:auditor", Role::Auditor, &config.auditor_token),
    ] {
        if let Some(t) = token {
            set.add(TokenEntry {
                name: name.into(),
                role,
                hash: hash_token(t.expose_str()),
            });
        }
    }
    Ok(set)
}

/// Reloads accounts and tokens whenever another node sharing the database changed them.
async fn follow_other_nodes(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let mut changed = state.store.changes_by_others();
    let mut failed = false;
    loop {
        // After a failed reload, try again a second later without waiting for a change.
        let retry = tokio::time::sleep(if failed { RELOAD_RETRY } else { Duration::MAX });
        tokio::select! {
            c = changed.changed() => if c.is_err() {
                // The store no longer reports changes (it is closing): wait for the stop.
                let _ = stop.changed().await;
                return;
            },
            _ = retry => {}
            _ = stop.changed() => return,
        }
        // Taken like an admin write, so a reload never interleaves with one of ours.
        let _guard = state.admin_lock.lock().await;
        failed = match (
            compiled_accounts(&state.store).await,
            token_set(&state.store, &state.config).await,
            compiled_destinations(&state.store).await,
        ) {
            (Ok(accounts), Ok(tokens), Ok(destinations)) => {
                state.registry.replace_all(accounts);
                state.destinations.replace_all(destinations);
                *state.tokens.write().unwrap_or_else(|p| p.into_inner()) = tokens;
                tracing::info!("accounts and tokens reloaded after a change on another node");
                false
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                tracing::warn!(error = %e, "cannot reload accounts and tokens changed on another node; retrying");
                true
            }
        };
    }
}

/// How soon a failed reload of accounts and tokens is tried again.
const RELOAD_RETRY: Duration = Duration::from_secs(1);

/// Prunes events older than the configured age, at start and then every interval.
async fn retention_loop(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let days = state.config.retention.max_age_days;
    if days == 0 {
        // Nothing to prune; the task stays until the gateway stops.
        let _ = stop.changed().await;
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(state.config.retention.interval_secs));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let age = i64::try_from(days.saturating_mul(86_400_000_000)).unwrap_or(i64::MAX);
        let before = now_micros().saturating_sub(age);
        match admin_events::prune_before(&state, "hookgate:retention", before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "retention pruned old events"),
            Err(e) => tracing::warn!(error = %e, "retention could not prune; will retry"),
        }
    }
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Public,
    Admin,
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<AppState>,
    side: Side,
    mut stop: watch::Receiver<bool>,
) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    let limits = state.config.limits.clone();
    let capacity =
        conn_limit::listener_capacity(limits.max_connections, conn_limit::open_files_limit());
    if capacity < limits.max_connections {
        tracing::warn!(
            configured = limits.max_connections,
            capacity,
            "the process may not open enough files for limits.max_connections; \
             this listener holds fewer connections (raise the open-files limit)"
        );
    }
    let permits = Arc::new(Semaphore::new(capacity));
    let per_ip = conn_limit::PerIp::new(limits.max_connections_per_ip);
    let proxies = Arc::new(conn_limit::Proxies::new(&limits.trusted_proxies));
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors or similar: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // A trusted proxy carries many clients: its requests are counted one by one
        // against the client each names (`route`), not its connections.
        let from_proxy = proxies.trusts(peer.ip());
        let slot = if from_proxy {
            None
        } else {
            let Some(slot) = per_ip.acquire(peer.ip()) else {
                // This address holds its share of the slots already: close at once.
                tracing::debug!(%peer, "connection refused: per-address limit reached");
                continue;
            };
            Some(slot)
        };
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            side,
            peer,
            proxied: from_proxy.then(|| (Arc::clone(&per_ip), Arc::clone(&proxies))),
        };
        let state = Arc::clone(&state);
        let service = service_fn(move |req| {
            let state = Arc::clone(&state);
            let conn = conn.clone();
            async move { Ok::<_, Infallible>(route(&state, &conn, req).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(limits.header_timeout_secs))
            .max_buf_size(limits.max_header_bytes.saturating_mul(HEAD_BUFFER_FACTOR))
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
            drop(slot);
        });
    }
    graceful
}

/// What `route` knows of the connection a request came on.
#[derive(Clone)]
struct Conn {
    side: Side,
    peer: SocketAddr,
    /// For a connection from a trusted proxy: the listener's per-address counts and the
    /// proxies, to count each request against the client it names.
    proxied: Option<(Arc<conn_limit::PerIp>, Arc<conn_limit::Proxies>)>,
}

/// Answers one request inside its span (method, path, and for a webhook the account, the
/// audit id and the outcome, which `ingest` records), and logs one line at `info` when
/// the answer is ready.
async fn route(state: &AppState, conn: &Conn, req: Request<Incoming>) -> Response<ResBody> {
    let started = std::time::Instant::now();
    let path = req.uri().path();
    // Borrowed, bounded slices: a request whose span is filtered out allocates nothing.
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = first_chars(path, 128),
        account = path
            .strip_prefix("/hooks/")
            .filter(|_| conn.side == Side::Public)
            .map(|a| first_chars(a, 64)),
        audit_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    let res = route_inner(state, conn, req).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = res.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
            peer = %conn.peer,
            "answered"
        );
    });
    res
}

/// The first `n` characters of `s`.
fn first_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

async fn route_inner(state: &AppState, conn: &Conn, req: Request<Incoming>) -> Response<ResBody> {
    let (side, peer) = (conn.side, conn.peer);
    let path = req.uri().path();
    let hooks = side == Side::Public && (path == "/hooks" || path.starts_with("/hooks/"));
    // Held until the answer is made: a proxied client's share of the per-address limit.
    let _client_slot = match &conn.proxied {
        None => None,
        Some((per_ip, proxies)) => {
            let client = proxies.client(peer.ip(), req.headers());
            match per_ip.acquire(client) {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(%peer, %client, "request refused: per-address limit reached");
                    let problem = http::too_many_connections(client);
                    let mut res = if hooks {
                        ingest::refuse_unread(state, peer, req, Reason::TooManyConnections, problem)
                            .await
                    } else {
                        problem.response()
                    };
                    res.headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                    return res;
                }
            }
        }
    };
    // hyper refuses a head far over the limit itself, before there is a request
    // (`HEAD_BUFFER_FACTOR`); one nearer is refused here, with its audit row on `/hooks`.
    let limit = state.config.limits.max_header_bytes;
    let head = http::head_size(&req);
    if head > limit {
        let problem = http::head_too_large(head, limit);
        let mut res = if hooks {
            ingest::refuse_unread(state, peer, req, Reason::HeadersTooLarge, problem).await
        } else {
            problem.response()
        };
        res.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        return res;
    }
    match (side, path) {
        (_, "/healthz") => http::json(StatusCode::OK, &json!({"status": "ok"})),
        (_, "/readyz") => readyz(state).await,
        (Side::Public, _) if hooks => ingest::handle(state, peer, req).await,
        (Side::Admin, _) => admin::handle(state, req).await,
        (Side::Public, _) => Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not Found",
            "webhooks are received at /hooks/{account}",
        )
        .response(),
    }
}

/// Ready while the last write committed; when it did not, a probe write through the
/// writer decides, so readiness comes back by itself once the fault clears.
async fn readyz(state: &AppState) -> Response<ResBody> {
    if state.store.is_healthy() || state.store.probe().await.is_ok() {
        http::json(StatusCode::OK, &json!({"status": "ready"}))
    } else {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "Service Unavailable",
            "the last write to the database failed",
        )
        .response()
    }
}
