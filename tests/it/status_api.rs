//! A local HTTP server on port 0 that behaves like providers' status APIs, for the
//! confirmation tests: MTN MoMo's token endpoint (Basic credentials and a subscription key)
//! and requesttopay, Pesapal's RequestToken and GetTransactionStatus, Mollie's payments
//! (a static bearer key). A test scripts what it knows (transactions), whether it is down,
//! and expires its token; it counts tokens issued and status requests answered.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// The subscription key MoMo's routes want.
pub const SUBSCRIPTION_KEY: &str = "sub-key-abc";

/// What the status API knows and how it behaves; a test changes it between requests.
#[derive(Default)]
pub struct Provider {
    /// Transactions by reference id.
    pub transactions: HashMap<String, Value>,
    /// Answer every status request with 503.
    pub down: bool,
    /// Tokens issued so far; only the last one is accepted.
    pub issued: u32,
    /// Status requests answered.
    pub asked: u32,
}

/// The running server.
pub struct StatusApi {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    state: Arc<Mutex<Provider>>,
}

impl StatusApi {
    /// Binds port 0 and serves until the test ends.
    pub async fn start() -> StatusApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind status api");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state: Arc<Mutex<Provider>> = Arc::default();
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(answer(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        StatusApi { base, state }
    }

    /// Changes what the provider knows or how it behaves.
    pub fn with(&self, f: impl FnOnce(&mut Provider)) {
        f(&mut self.state.lock().expect("provider"));
    }

    /// Reads its counters.
    pub fn read<R>(&self, f: impl FnOnce(&Provider) -> R) -> R {
        f(&self.state.lock().expect("provider"))
    }
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    res
}

/// The status API's routes, as MTN MoMo and Pesapal answer them.
async fn answer(
    state: &Mutex<Provider>,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (auth, sub_key) = (header("authorization"), header("ocp-apim-subscription-key"));
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut p = state.lock().expect("provider");
    let current = format!("Bearer tok-{}", p.issued);
    match path.as_str() {
        "/collection/token/" => {
            let basic = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("api-user:api-key")
            );
            if auth != basic || sub_key != SUBSCRIPTION_KEY {
                return reply(401, json!({"error": "login_failed"}));
            }
            p.issued += 1;
            reply(
                200,
                json!({"access_token": format!("tok-{}", p.issued), "token_type": "access_token", "expires_in": 3600}),
            )
        }
        "/v1/oauth2/token" => {
            let basic = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("pp-client:pp-secret")
            );
            if auth != basic || &body[..] != b"grant_type=client_credentials" {
                return reply(401, json!({"error": "invalid_client"}));
            }
            p.issued += 1;
            reply(
                200,
                json!({"access_token": format!("tok-{}", p.issued), "token_type": "Bearer", "expires_in": 32400}),
            )
        }
        "/api/Auth/RequestToken" => {
            let creds: Value = serde_json::from_slice(&body).unwrap_or_default();
            if creds != json!({"consumer_key": "ck", "consumer_secret": "cs"}) {
                return reply(
                    200,
                    json!({"error": {"code": "invalid_consumer_key_or_secret_provided"}, "status": "500"}),
                );
            }
            p.issued += 1;
            reply(
                200,
                json!({"token": format!("tok-{}", p.issued), "expiryDate": "2030-01-01T00:00:00Z", "status": "200"}),
            )
        }
        other if auth != current && !other.starts_with("/v2/payments/") => {
            reply(401, json!({"code": "invalid token"}))
        }
        _ if p.down => reply(503, json!({"error": "maintenance"})),
        momo if momo.starts_with("/collection/v1_0/requesttopay/") => {
            if sub_key != SUBSCRIPTION_KEY {
                return reply(401, json!({"code": "subscription key"}));
            }
            p.asked += 1;
            let reference = momo.trim_start_matches("/collection/v1_0/requesttopay/");
            match p.transactions.get(reference) {
                Some(t) => reply(200, t.clone()),
                None => reply(
                    404,
                    json!({"code": "RESOURCE_NOT_FOUND", "message": "Requested resource was not found."}),
                ),
            }
        }
        mollie if mollie.starts_with("/v2/payments/") => {
            // Mollie's API key is a static bearer token.
            if auth != "Bearer test_mollie_key" {
                return reply(401, json!({"status": 401, "title": "Unauthorized Request"}));
            }
            p.asked += 1;
            let id = mollie.trim_start_matches("/v2/payments/");
            match p.transactions.get(id) {
                Some(t) => reply(200, t.clone()),
                None => reply(
                    404,
                    json!({"status": 404, "title": "Not Found", "detail": "No payment exists with token"}),
                ),
            }
        }
        "/v1/notifications/verify-webhook-signature" => {
            // PayPal checks the transmission's signature over the event it is sent; here a
            // known event with the genuine signature and the account's webhook id.
            p.asked += 1;
            let asked: Value = serde_json::from_slice(&body).unwrap_or_default();
            let genuine = asked["webhook_id"] == "WH-ID-1"
                && asked["transmission_sig"] == "genuine-sig"
                && asked["webhook_event"]["id"]
                    .as_str()
                    .is_some_and(|id| p.transactions.contains_key(id));
            let status = if genuine { "SUCCESS" } else { "FAILURE" };
            reply(200, json!({"verification_status": status}))
        }
        "/api/Transactions/GetTransactionStatus" => {
            p.asked += 1;
            let id = query.strip_prefix("orderTrackingId=").unwrap_or("");
            match p.transactions.get(id) {
                Some(t) => reply(200, t.clone()),
                // Pesapal answers an unknown id with 200 and an error object.
                None => reply(
                    200,
                    json!({"error": {"code": "invalid_order_tracking_id"}, "status": "500"}),
                ),
            }
        }
        _ => reply(404, json!({})),
    }
}
