//! The HTTP kind of delivery: one event posted to an account's destination as a Standard
//! Webhook, and its answer read as an [`Outcome`].
//!
//! Owns the delivery client (the egress resolver under it, HTTPS with the Mozilla roots,
//! connect and answer timeouts, a cap on the answer read) and the building of the request
//! from the stored event (the body as received or the destination's mapping, the signed
//! `webhook-*` headers). A delivery's `webhook-id` is fixed by its event and destination,
//! so every retry and every resend after a crash carries the same one. It must never send
//! to an address the egress policy refuses, and never call an answer delivered without a
//! 2xx. The worker (`forward::worker`) takes deliveries and records what this returns.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::retry::{self, Answer};
use crate::clock::now_micros;
use crate::config::Delivery as Settings;
use crate::destination::egress::{self, Resolver};
use crate::destination::{CompiledDestination, event_view, sign};
use crate::event::{Extracted, public_id};
use crate::server::AppState;
use crate::store::DueDelivery;

/// The characters of a destination's answer kept with an attempt.
const EXCERPT_CHARS: usize = 512;

/// The delivery client.
pub type HttpsClient = Client<HttpsConnector<HttpConnector<Resolver>>, Full<Bytes>>;

/// Builds the delivery client: the egress resolver under HTTP, HTTPS with the Mozilla
/// roots (HTTP/1.1).
pub fn client(settings: &Settings, policy: Arc<egress::Policy>) -> HttpsClient {
    let mut http = HttpConnector::new_with_resolver(Resolver::new(policy));
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::aws_lc_rs::default_provider())
        // Fails only for a provider without the default protocol versions; aws-lc-rs has
        // both (the admin client's test builds one the same way).
        .expect("the aws-lc-rs provider supports TLS 1.2 and 1.3")
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(https)
}

/// What came of sending.
pub struct Outcome {
    /// What the answer (or its absence) means for the retry policy.
    pub answer: Answer,
    /// The destination's HTTP status, if it answered.
    pub http_status: Option<u16>,
    /// What happened, with the start of the answer.
    pub detail: String,
    /// Whether the destination itself failed (counts for the breaker); a refusal by the
    /// egress policy or a broken event does not.
    pub destination_failed: bool,
}

/// A header value with anything HTTP does not allow dropped.
fn header_text(s: &str) -> Option<HeaderValue> {
    let clean: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(512)
        .collect();
    HeaderValue::from_str(&clean).ok()
}

/// Builds the request from the stored event and sends it.
pub async fn send(
    state: &AppState,
    client: &HttpsClient,
    dest: &CompiledDestination,
    settings: &Settings,
    d: &DueDelivery,
) -> Outcome {
    let broken = |detail: String| Outcome {
        answer: Answer::Refused,
        http_status: None,
        detail,
        destination_failed: false,
    };
    let event = match state.store.event(d.seq).await {
        Ok(Some(e)) => e,
        Ok(None) => return broken(format!("{} is no longer in the log", public_id(d.seq))),
        Err(e) => {
            return Outcome {
                answer: Answer::Retryable {
                    retry_after_ms: None,
                },
                http_status: None,
                detail: format!("the event could not be read: {e}"),
                destination_failed: false,
            };
        }
    };
    let body: Vec<u8> = if event.body_encoding == "base64" {
        STANDARD.decode(&event.body).unwrap_or_default()
    } else {
        event.body.clone().into_bytes()
    };
    let s = &event.summary;
    let extracted = Extracted {
        sender: s.sender.clone(),
        source: s.source.clone(),
        event_type: s.event_type.clone(),
        event_id: s.event_id.clone(),
        params: (!s.params.is_null()).then(|| s.params.to_string()),
    };
    if event.body_truncated && dest.mapping.is_none() {
        return broken(
            "the account keeps no whole body (store_body is off): give the destination a mapping of event fields"
                .into(),
        );
    }
    let gateway_id = public_id(d.seq);
    let (payload_bytes, content_type) = match &dest.mapping {
        None => (
            body,
            event
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
        ),
        Some(mapping) => {
            let payload = if event.body_truncated {
                Value::Null
            } else {
                crate::payload::decode_unverified(&body, event.content_type.as_deref())
                    .unwrap_or(Value::Null)
            };
            let view = event_view(
                &d.account,
                &extracted,
                Some(&gateway_id),
                Some(&s.received_at),
            );
            let rendered = mapping.render(&payload, &view);
            (rendered.to_string().into_bytes(), "application/json".into())
        }
    };
    let now = now_micros();
    let timestamp = now / 1_000_000;
    let msg_id = format!("{gateway_id}_{}", d.destination);
    let signature = sign::signature(&dest.keys, &msg_id, timestamp, &payload_bytes, now);
    // An address literal is judged here, against the policy in force now.
    let target = match egress::Target::parse(&dest.spec.url) {
        Ok(t) => t,
        Err(e) => return broken(e.to_string()),
    };
    if let Some(ip) = target.literal()
        && let Err(e) = state.egress.check(&target.host, ip)
    {
        return broken(format!("egress refused: {e}"));
    }
    let mut req = match Request::builder()
        .method(Method::POST)
        .uri(&dest.spec.url)
        .body(Full::new(Bytes::from(payload_bytes)))
    {
        Ok(r) => r,
        Err(e) => return broken(format!("the URL cannot be used: {e}")),
    };
    let timestamp_text = timestamp.to_string();
    let headers = [
        ("content-type", content_type.as_str()),
        (
            "user-agent",
            concat!("hookgate/", env!("CARGO_PKG_VERSION")),
        ),
        ("webhook-id", msg_id.as_str()),
        ("webhook-timestamp", timestamp_text.as_str()),
        ("webhook-signature", signature.as_str()),
        ("hookgate-event-id", gateway_id.as_str()),
        ("hookgate-account", d.account.as_str()),
        ("hookgate-destination", d.destination.as_str()),
        ("hookgate-received-at", s.received_at.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k, Some(v.to_owned())))
    .chain([
        ("webhook-event-type", s.event_type.clone()),
        ("hookgate-source-event-id", s.event_id.clone()),
        ("hookgate-sender", s.sender.clone()),
        ("hookgate-source", s.source.clone()),
    ]);
    for (k, v) in headers {
        if let (Some(v), Ok(name)) = (
            v.as_deref().and_then(header_text),
            HeaderName::from_bytes(k.as_bytes()),
        ) {
            req.headers_mut().insert(name, v);
        }
    }
    let timeout = Duration::from_millis(settings.timeout_ms);
    let cap = settings.max_response_bytes;
    let sent = tokio::time::timeout(timeout, async {
        let res = client.request(req).await?;
        let status = res.status().as_u16();
        let retry_after = res
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = res.into_body();
        let mut read = Vec::new();
        while read.len() < cap {
            match body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        read.extend_from_slice(&data[..data.len().min(cap - read.len())]);
                    }
                }
                // What was read is enough to judge the answer by its status.
                Some(Err(_)) | None => break,
            }
        }
        Ok::<_, hyper_util::client::legacy::Error>((status, retry_after, read))
    })
    .await;
    match sent {
        Err(_) => Outcome {
            answer: Answer::Retryable {
                retry_after_ms: None,
            },
            http_status: None,
            detail: format!("no answer within {}ms", timeout.as_millis()),
            destination_failed: true,
        },
        Ok(Err(e)) => {
            let message = describe(&e);
            if message.contains("egress refused") {
                return broken(message);
            }
            Outcome {
                answer: Answer::Retryable {
                    retry_after_ms: None,
                },
                http_status: None,
                detail: message,
                destination_failed: true,
            }
        }
        Ok(Ok((code, retry_after, read))) => {
            let excerpt: String = String::from_utf8_lossy(&read)
                .chars()
                .take(EXCERPT_CHARS)
                .collect();
            let detail = if excerpt.is_empty() {
                format!("HTTP {code}")
            } else {
                format!("HTTP {code}: {excerpt}")
            };
            let answer = if (200..300).contains(&code) {
                Answer::Delivered
            } else {
                Answer::Retryable {
                    retry_after_ms: retry_after
                        .and_then(|v| retry::parse_retry_after(&v, now_micros())),
                }
            };
            Outcome {
                destination_failed: !matches!(answer, Answer::Delivered),
                answer,
                http_status: Some(code),
                detail,
            }
        }
    }
}

/// A client error with every cause.
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    message
}
