//! Tokens signed with keys the provider publishes, over real HTTP: a local server on port 0
//! behaves like Google's JSON Web Key Set and Plaid's `/webhook_verification_key/get`; the
//! keys are made by `openssl` for each run (none is committed). A genuine Pub/Sub push and a
//! genuine Plaid webhook are accepted; a wrong audience, service account, key, body or age
//! is refused; an unknown `kid` costs at most one fetch; a key server that is down is a 503
//! so the sender retries, never a forgery.

use std::convert::Infallible;
use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::*;

/// A key pair made by `openssl` for this run: the private key as PKCS#8 PEM and the
/// public key as a JWK.
struct KeyPair {
    private_pem: String,
    jwk: Value,
}

fn openssl(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl runs");
    if let Some(bytes) = input
        && let Some(mut stdin) = child.stdin.take()
    {
        stdin.write_all(bytes).expect("openssl stdin");
    }
    let out = child.wait_with_output().expect("openssl finishes");
    assert!(out.status.success(), "openssl {args:?} failed");
    out.stdout
}

fn rsa_pair(kid: &str) -> KeyPair {
    let private = openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ],
        None,
    );
    let modulus = String::from_utf8_lossy(&openssl(&["rsa", "-noout", "-modulus"], Some(&private)))
        .trim()
        .trim_start_matches("Modulus=")
        .to_owned();
    let n = hex::decode(modulus).expect("modulus hex");
    KeyPair {
        private_pem: String::from_utf8_lossy(&private).into_owned(),
        jwk: json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                    "n": URL_SAFE_NO_PAD.encode(n), "e": "AQAB"}),
    }
}

fn ec_pair(kid: &str) -> KeyPair {
    let private = openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ],
        None,
    );
    let spki = openssl(&["pkey", "-pubout", "-outform", "DER"], Some(&private));
    // The SubjectPublicKeyInfo ends with the uncompressed point 04 || x || y.
    let point = &spki[spki.len() - 64..];
    KeyPair {
        private_pem: String::from_utf8_lossy(&private).into_owned(),
        jwk: json!({"kty": "EC", "alg": "ES256", "crv": "P-256", "use": "sig", "kid": kid,
                    "x": URL_SAFE_NO_PAD.encode(&point[..32]),
                    "y": URL_SAFE_NO_PAD.encode(&point[32..]),
                    "created_at": 1_560_466_143, "expired_at": null}),
    }
}

/// What the key server publishes and how it behaves.
#[derive(Default)]
struct Keys {
    /// Google's key set.
    jwks: Vec<Value>,
    /// Plaid's keys by key id.
    plaid: Vec<Value>,
    /// Requests answered.
    fetches: u32,
}

struct KeyServer {
    base: String,
    state: Arc<Mutex<Keys>>,
}

const PLAID_CLIENT: &str = "plaid-client-id";
const PLAID_SECRET: &str = "plaid-api-secret-9f8e";

impl KeyServer {
    async fn start() -> KeyServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind key server");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state: Arc<Mutex<Keys>> = Arc::default();
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
        KeyServer { base, state }
    }

    fn fetches(&self) -> u32 {
        self.state.lock().expect("keys").fetches
    }
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    res
}

/// Google's `GET /oauth2/v3/certs` and Plaid's `POST /webhook_verification_key/get`.
async fn answer(state: &Mutex<Keys>, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut keys = state.lock().expect("keys");
    keys.fetches += 1;
    match path.as_str() {
        "/oauth2/v3/certs" => reply(200, json!({"keys": keys.jwks})),
        "/webhook_verification_key/get" => {
            let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if asked["client_id"] != PLAID_CLIENT || asked["secret"] != PLAID_SECRET {
                return reply(400, json!({"error_code": "INVALID_API_KEYS"}));
            }
            match keys.plaid.iter().find(|k| k["kid"] == asked["key_id"]) {
                Some(k) => reply(200, json!({"key": k, "request_id": "r1"})),
                None => reply(
                    400,
                    json!({"error_code": "INVALID_WEBHOOK_VERIFICATION_KEY_ID"}),
                ),
            }
        }
        _ => reply(404, json!({})),
    }
}

fn sign(alg: Algorithm, pair: &KeyPair, kid: &str, claims: &Value) -> String {
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pair.private_pem.as_bytes()),
        _ => EncodingKey::from_ec_pem(pair.private_pem.as_bytes()),
    }
    .expect("test key");
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).expect("signed")
}

async fn last_row(gw: &TestGateway, account: &str) -> Value {
    gw.events(&format!("account={account}&limit=1"))
        .await
        .first()
        .cloned()
        .unwrap_or(Value::Null)
}

const AUDIENCE: &str = "https://hooks.example.com/hooks/ps";
const SERVICE_ACCOUNT: &str = "push@project-1.iam.gserviceaccount.com";

fn push_claims(now: i64) -> Value {
    json!({"iss": "https://accounts.google.com", "aud": AUDIENCE, "azp": "1234567890",
           "email": SERVICE_ACCOUNT, "email_verified": true, "sub": "1234567890",
           "iat": now, "exp": now + 3600})
}

#[tokio::test]
async fn a_pubsub_push_is_accepted_only_under_googles_published_key_and_its_claims() {
    let server = KeyServer::start().await;
    let (google, other) = (rsa_pair("k1"), rsa_pair("k1"));
    server.state.lock().expect("keys").jwks = vec![google.jwk.clone()];
    let gw = spawn_gateway().await;
    gw.create_account(
        json!({"name": "ps", "provider": "google_pubsub", "secret": AUDIENCE,
        "jwt": {"claims": {"email": SERVICE_ACCOUNT},
                "remote_keys": {"url": format!("{}/oauth2/v3/certs", server.base)}}}),
    )
    .await;
    let now = now_secs();
    let body = json!({"message": {"attributes": {"eventType": "OBJECT_FINALIZE"},
        "data": "SGVsbG8=", "messageId": "2070443601311540", "publishTime": "2021-02-26T19:13:55.749Z"},
        "subscription": "projects/p/subscriptions/s"})
    .to_string();
    let send = |token: String| {
        let body = body.clone();
        let gw = &gw;
        async move {
            let auth = format!("Bearer {token}");
            gw.post_hook(
                "ps",
                &[
                    ("content-type", "application/json"),
                    ("authorization", &auth),
                ],
                body,
            )
            .await
        }
    };
    let genuine = sign(Algorithm::RS256, &google, "k1", &push_claims(now));
    let ok = send(genuine.clone()).await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());
    let row = last_row(&gw, "ps").await;
    assert_eq!(row["status"], "accepted");
    assert_eq!(row["event_id"], "2070443601311540");
    assert_eq!(row["event_type"], "OBJECT_FINALIZE");
    // Pub/Sub's redelivery of the message is a duplicate; the key was fetched once.
    let again = send(genuine).await;
    assert_eq!(again.json()["status"], "duplicate");
    assert_eq!(server.fetches(), 1, "the key set is cached");

    let mut wrong_aud = push_claims(now);
    wrong_aud["aud"] = json!("https://elsewhere.example.com/push");
    let mut wrong_email = push_claims(now);
    wrong_email["email"] = json!("someone@evil.example.com");
    let mut unverified = push_claims(now);
    unverified["email_verified"] = json!(false);
    let mut wrong_iss = push_claims(now);
    wrong_iss["iss"] = json!("https://evil.example.com");
    let mut expired = push_claims(now - 7300);
    expired["exp"] = json!(now - 3700);
    for (what, token) in [
        (
            "another audience",
            sign(Algorithm::RS256, &google, "k1", &wrong_aud),
        ),
        (
            "another service account",
            sign(Algorithm::RS256, &google, "k1", &wrong_email),
        ),
        (
            "an unverified email",
            sign(Algorithm::RS256, &google, "k1", &unverified),
        ),
        (
            "another issuer",
            sign(Algorithm::RS256, &google, "k1", &wrong_iss),
        ),
        (
            "another key under Google's kid",
            sign(Algorithm::RS256, &other, "k1", &push_claims(now)),
        ),
        (
            "an expired token",
            sign(Algorithm::RS256, &google, "k1", &expired),
        ),
    ] {
        let res = send(token).await;
        assert_eq!(res.status, 401, "{what}");
        let row = last_row(&gw, "ps").await;
        assert_eq!(row["status"], "rejected", "{what}");
    }
    // Unknown kids cost at most one fetch per interval, however many arrive.
    let before = server.fetches();
    for kid in ["k7", "k8", "k9"] {
        let res = send(sign(Algorithm::RS256, &other, kid, &push_claims(now))).await;
        assert_eq!(res.status, 401, "{kid}");
    }
    assert!(
        server.fetches() - before <= 1,
        "unknown kids are not a stream of fetches"
    );

    // Google rotates: a new kid is fetched and accepted (from a key set URL whose last
    // fetch was not a moment ago).
    let rotated = rsa_pair("k2");
    server.state.lock().expect("keys").jwks = vec![google.jwk.clone(), rotated.jwk.clone()];
    gw.create_account(
        json!({"name": "ps2", "provider": "google_pubsub", "secret": AUDIENCE,
        "jwt": {"claims": {"email": SERVICE_ACCOUNT},
                "remote_keys": {"url": format!("{}/oauth2/v3/certs?set=2", server.base)}}}),
    )
    .await;
    let auth = format!(
        "Bearer {}",
        sign(Algorithm::RS256, &rotated, "k2", &push_claims(now))
    );
    let res = gw
        .post_hook(
            "ps2",
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
            body.clone(),
        )
        .await;
    assert_eq!(res.status, 200, "{:?}", res.json());
    gw.stop().await;
}

#[tokio::test]
async fn a_key_server_that_is_down_is_a_503_and_nothing_is_accepted() {
    let google = rsa_pair("k1");
    let gw = spawn_gateway().await;
    gw.create_account(
        json!({"name": "ps_down", "provider": "google_pubsub", "secret": AUDIENCE,
        "jwt": {"claims": {"email": SERVICE_ACCOUNT},
                "remote_keys": {"url": "http://127.0.0.1:9/oauth2/v3/certs", "timeout_secs": 2}}}),
    )
    .await;
    let token = sign(Algorithm::RS256, &google, "k1", &push_claims(now_secs()));
    let auth = format!("Bearer {token}");
    let res = gw
        .post_hook(
            "ps_down",
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
            r#"{"message":{"messageId":"1"}}"#,
        )
        .await;
    assert_eq!(res.status, 503);
    assert!(res.headers.get("retry-after").is_some());
    let row = last_row(&gw, "ps_down").await;
    assert_eq!(row["status"], "rejected");
    assert_eq!(row["reason"], "confirmation_unavailable");
    gw.stop().await;
}

#[tokio::test]
async fn a_plaid_webhook_is_accepted_under_plaids_key_for_its_body_while_fresh() {
    let server = KeyServer::start().await;
    let plaid = ec_pair("6c5516e1-92dc-479e-a8ff-5a51992e0001");
    let old = ec_pair("6c5516e1-92dc-479e-a8ff-5a51992e0000");
    let mut expired = old.jwk.clone();
    expired["expired_at"] = json!(1_700_000_000);
    server.state.lock().expect("keys").plaid = vec![plaid.jwk.clone(), expired];
    let gw = spawn_gateway().await;
    gw.create_account(
        json!({"name": "pl", "provider": "plaid", "secret": PLAID_SECRET,
        "jwt": {"remote_keys": {"client_id": PLAID_CLIENT,
                                "url": format!("{}/webhook_verification_key/get", server.base)}}}),
    )
    .await;
    let body = json!({"webhook_type": "TRANSACTIONS", "webhook_code": "SYNC_UPDATES_AVAILABLE",
        "item_id": "wz666MBjYWTp2PDzzggYhM6oWWmBb", "initial_update_complete": true,
        "historical_update_complete": false, "environment": "production"})
    .to_string();
    let now = now_secs();
    let claims = |body: &str, iat: i64| json!({"iat": iat, "request_body_sha256": hex::encode(Sha256::digest(body.as_bytes()))});
    let send = |token: String, body: String| {
        let gw = &gw;
        async move {
            gw.post_hook(
                "pl",
                &[
                    ("content-type", "application/json"),
                    ("plaid-verification", &token),
                ],
                body,
            )
            .await
        }
    };
    let kid = "6c5516e1-92dc-479e-a8ff-5a51992e0001";
    let genuine = sign(Algorithm::ES256, &plaid, kid, &claims(&body, now));
    let ok = send(genuine.clone(), body.clone()).await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());
    let row = last_row(&gw, "pl").await;
    assert_eq!(row["status"], "accepted");
    assert_eq!(row["event_type"], "SYNC_UPDATES_AVAILABLE");
    assert_eq!(
        row["event_id"],
        hex::encode(Sha256::digest(body.as_bytes()))
    );
    assert_eq!(
        send(genuine.clone(), body.clone()).await.json()["status"],
        "duplicate"
    );
    assert_eq!(server.fetches(), 1, "Plaid's key is cached by kid");

    let tampered = body.replace("SYNC_UPDATES_AVAILABLE", "SYNC_UPDATES_AVAILABLF");
    let res = send(genuine, tampered).await;
    assert_eq!(res.status, 401, "the token signs the body's hash");
    let stale = sign(Algorithm::ES256, &plaid, kid, &claims(&body, now - 301));
    assert_eq!(
        send(stale, body.clone()).await.status,
        401,
        "iat older than 5 minutes"
    );
    assert_eq!(last_row(&gw, "pl").await["reason"], "stale_timestamp");
    let forged = sign(Algorithm::ES256, &old, kid, &claims(&body, now));
    assert_eq!(
        send(forged, body.clone()).await.status,
        401,
        "another key under Plaid's kid"
    );
    // A key Plaid reports expired is not used (asked at a URL of its own, whose first
    // fetch this is).
    let before = server.fetches();
    gw.create_account(
        json!({"name": "pl2", "provider": "plaid", "secret": PLAID_SECRET,
        "jwt": {"remote_keys": {"client_id": PLAID_CLIENT,
                                "url": format!("{}/webhook_verification_key/get?n=2", server.base)}}}),
    )
    .await;
    let old_kid = "6c5516e1-92dc-479e-a8ff-5a51992e0000";
    let by_expired = sign(Algorithm::ES256, &old, old_kid, &claims(&body, now));
    let res = gw
        .post_hook(
            "pl2",
            &[
                ("content-type", "application/json"),
                ("plaid-verification", &by_expired),
            ],
            body.clone(),
        )
        .await;
    assert_eq!(res.status, 401, "an expired key is not used");
    assert_eq!(server.fetches(), before + 1, "Plaid was asked for the key");
    gw.stop().await;
}
