//! A local HTTP server on port 0 that behaves like providers' status APIs, for the
//! confirmation tests: MTN MoMo's token endpoint (Basic credentials and a subscription key)
//! and requesttopay, Pesapal's RequestToken and GetTransactionStatus, Mollie's payments
//! (a static bearer key), Airtel Money's token endpoint (JSON client credentials) and
//! Transaction Enquiry, Tingg's token endpoint (JSON client credentials and an apikey) and
//! query status, DPO's API3G verifyToken (XML in, XML out, a company token). A test scripts
//! what it knows (transactions), whether it is down, and expires its token; it counts tokens
//! issued and status requests answered.

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
/// The apikey Tingg's routes want.
pub const TINGG_API_KEY: &str = "tingg-apikey-1";
/// The company token DPO's API wants.
pub const DPO_COMPANY_TOKEN: &str = "9F416C11-127B-4DE2-AC7F-D5710E4C5E0A";

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
    /// The last request body a status route was sent (DPO's XML).
    pub last_body: String,
    /// An answer DPO's route gives instead of its own (a hostile document).
    pub dpo_answer: Option<String>,
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

fn xml_reply(body: &str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_owned())));
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    res
}

/// The status API's routes, as MTN MoMo, Pesapal, Mollie, PayPal, Airtel, Tingg and DPO
/// answer them.
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
    let (country, currency, apikey) = (header("x-country"), header("x-currency"), header("apikey"));
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
        "/auth/oauth2/token" => {
            // Airtel Money: client credentials as a JSON body.
            let creds: Value = serde_json::from_slice(&body).unwrap_or_default();
            if creds
                != json!({"client_id": "airtel-client", "client_secret": "airtel-secret",
                          "grant_type": "client_credentials"})
            {
                return reply(401, json!({"error": "invalid_client"}));
            }
            p.issued += 1;
            reply(
                200,
                json!({"access_token": format!("tok-{}", p.issued), "expires_in": "180", "token_type": "bearer"}),
            )
        }
        "/v1/oauth/token/request" => {
            // Tingg: client credentials as a JSON body, and the apikey header.
            let creds: Value = serde_json::from_slice(&body).unwrap_or_default();
            if apikey != TINGG_API_KEY
                || creds
                    != json!({"client_id": "tingg-client", "client_secret": "tingg-secret",
                              "grant_type": "client_credentials"})
            {
                return reply(401, json!({"error": "invalid_client"}));
            }
            p.issued += 1;
            reply(
                200,
                json!({"access_token": format!("tok-{}", p.issued), "expires_in": 3600, "token_type": "Bearer"}),
            )
        }
        "/API/v6/" => {
            // DPO: no bearer; the company token is inside the XML request.
            if p.down {
                return reply(503, json!({"error": "maintenance"}));
            }
            p.asked += 1;
            let asked = String::from_utf8_lossy(&body).into_owned();
            p.last_body = asked.clone();
            if let Some(raw) = &p.dpo_answer {
                return xml_reply(raw);
            }
            let tag = |name: &str| {
                asked
                    .split(&format!("<{name}>"))
                    .nth(1)
                    .and_then(|rest| rest.split(&format!("</{name}>")).next())
                    .unwrap_or("")
                    .to_owned()
            };
            if tag("CompanyToken") != DPO_COMPANY_TOKEN || tag("Request") != "verifyToken" {
                return xml_reply(
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?><API3G><Result>801</Result>\
                     <ResultExplanation>Request missing company token</ResultExplanation></API3G>",
                );
            }
            match p.transactions.get(&tag("TransactionToken")) {
                Some(Value::String(xml)) => xml_reply(xml),
                _ => xml_reply(
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?><API3G><Result>950</Result>\
                     <ResultExplanation>Request missing mandatory fields</ResultExplanation></API3G>",
                ),
            }
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
        airtel if airtel.starts_with("/standard/v1/payments/") => {
            if country != "UG" || currency != "UGX" {
                return reply(400, json!({"status": {"code": "400", "success": false}}));
            }
            p.asked += 1;
            let id = airtel.trim_start_matches("/standard/v1/payments/");
            match p.transactions.get(id) {
                Some(t) => reply(
                    200,
                    json!({"data": {"transaction": t},
                           "status": {"code": "200", "message": "SUCCESS", "result_code": "ESB000010",
                                      "response_code": "DP00800001006", "success": true}}),
                ),
                // Airtel answers an unknown id with 200 and an unsuccessful status.
                None => reply(
                    200,
                    json!({"data": {}, "status": {"code": "200", "message": "Transaction not found",
                           "result_code": "ESB000014", "success": false}}),
                ),
            }
        }
        tingg if tingg.starts_with("/v3/checkout-api/query/") => {
            if apikey != TINGG_API_KEY {
                return reply(401, json!({"status": {"status_code": 401}}));
            }
            p.asked += 1;
            let mut parts = tingg
                .trim_start_matches("/v3/checkout-api/query/")
                .split('/');
            let (service, id) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            match p.transactions.get(id) {
                Some(t) if t["service_code"] == service => reply(
                    200,
                    json!({"status": {"status_code": 200, "status_description": "Successfully processed request"},
                           "results": t}),
                ),
                _ => reply(
                    200,
                    json!({"status": {"status_code": 1001, "status_description": "No request found."}}),
                ),
            }
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
