//! The ingest path: `POST|PUT /hooks/{account}`.
//!
//! Owns the order of decisions for one webhook: read the body under its limits, find the
//! account, check the method, verify, count against the account's rate limit (verified
//! requests only), decode, extract, then hand one audit row to the
//! writer and answer only after it is committed. Every path through here, accepted or
//! not, appends exactly one row. It must never answer 2xx before the commit, and never
//! tell a sender which verification step failed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::AppState;
use super::http::{BodyError, Problem, ResBody, full, json, read_body};
use crate::account::answer::ProviderAnswer;
use crate::account::{CompiledAccount, validate_name};
use crate::confirm::Outcome;
use crate::confirm::{Subscribed, Subscriber};
use crate::event::{Extracted, Forward, Reason, Status, public_id};
use crate::handshake::{GetOutcome, Handshake};
use crate::payload::{self, PayloadError};
use crate::ratelimit::Decision;
use crate::verify::{Fetched, Origin, RequestView};

mod handshake;
mod record;

pub use record::storage_failed;

/// The longest account label stored for a request to an unknown account.
const MAX_LABEL: usize = 128;

/// Handles one request whose path is `/hooks` or starts with `/hooks/`.
pub async fn handle(
    state: &AppState,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<ResBody> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let mut row = Row::new(state, &parts, peer, started);

    let limits = &state.config.limits;
    // A preset may raise or lower the limit for its provider (GitHub sends up to 25 MB).
    let max_body = row.account.as_ref().map_or(limits.max_body_bytes, |a| {
        a.max_body_bytes(limits.max_body_bytes)
    });
    let body = read_body(body, max_body, state.config.body_timeout()).await;
    let body = match body {
        Ok(body) => body,
        Err(BodyError::TooLarge { prefix, seen }) => {
            let problem = Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "Payload Too Large",
                format!("the body is {seen} bytes; the limit is {max_body} bytes"),
            );
            let mut res = row
                .reject(
                    Reason::TooLarge,
                    problem.detail.clone(),
                    Partial { prefix, size: seen },
                    problem,
                )
                .await;
            res.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return res;
        }
        Err(BodyError::Timeout { prefix }) => {
            let size = prefix.len() as u64;
            let problem = Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "read_timeout",
                "Request Timeout",
                format!(
                    "the body did not arrive within {}s",
                    limits.body_timeout_secs
                ),
            );
            let mut res = row
                .reject(
                    Reason::ReadTimeout,
                    problem.detail.clone(),
                    Partial { prefix, size },
                    problem,
                )
                .await;
            res.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return res;
        }
        Err(BodyError::Broken(e)) => {
            let problem = Problem::new(
                StatusCode::BAD_REQUEST,
                "incomplete_body",
                "Bad Request",
                "the connection broke before the whole body arrived",
            );
            let empty = Partial {
                prefix: Bytes::new(),
                size: 0,
            };
            return row
                .reject(
                    Reason::IncompleteBody,
                    format!("body read failed: {e}"),
                    empty,
                    problem,
                )
                .await;
        }
    };
    row.decide(body).await
}

/// Refuses a request to `/hooks` before its body is read (a head over
/// `limits.max_header_bytes`, a client over its per-address limit) with `problem`,
/// recording one audit row with `reason` like any other refusal.
pub async fn refuse_unread(
    state: &AppState,
    peer: SocketAddr,
    req: Request<Incoming>,
    reason: Reason,
    problem: Problem,
) -> Response<ResBody> {
    let (parts, _body) = req.into_parts();
    let mut row = Row::new(state, &parts, peer, Instant::now());
    let unread = Partial {
        prefix: Bytes::new(),
        size: 0,
    };
    row.reject(reason, problem.detail.clone(), unread, problem)
        .await
}

/// The account segment of the path, as received (lossy, bounded).
fn account_label(path: &str) -> String {
    let rest = path.strip_prefix("/hooks").unwrap_or(path);
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let mut label: String = rest.chars().take(MAX_LABEL).collect();
    if label.len() < rest.len() {
        label.push('…');
    }
    label
}

/// A body that was not read whole.
struct Partial {
    prefix: Bytes,
    size: u64,
}

/// What is known about the request while it is being decided.
struct Row<'a> {
    state: &'a AppState,
    parts: &'a Parts,
    peer: SocketAddr,
    /// When the request arrived: the row's time, as it happened.
    received_at: i64,
    started: Instant,
    account: Option<Arc<CompiledAccount>>,
    label: String,
    /// The secret token after the account's name, for an account reached at
    /// `/hooks/{account}/{token}`; never stored.
    path_token: Option<String>,
}

impl<'a> Row<'a> {
    /// The row of a request that has just begun: its account looked up by the path.
    fn new(state: &'a AppState, parts: &'a Parts, peer: SocketAddr, started: Instant) -> Self {
        let mut label = account_label(parts.uri.path());
        let mut path_token = None;
        let mut account = validate_name(&label)
            .ok()
            .and_then(|()| state.registry.get(&label));
        // `/hooks/{account}/{token}`: only an account that is reached that way takes a
        // segment after its name; for any other the whole rest stays the (unknown) label.
        if account.is_none()
            && let Some((name, token)) = label.split_once('/')
            && let Some(found) = validate_name(name)
                .ok()
                .and_then(|()| state.registry.get(name))
                .filter(|a| a.verifier.uses_path_token())
        {
            path_token = Some(token.to_owned());
            account = Some(found);
            label = name.to_owned();
        }
        Row {
            state,
            parts,
            peer,
            received_at: state.clock.now_micros(),
            started,
            account,
            label,
            path_token,
        }
    }

    async fn decide(&mut self, body: Bytes) -> Response<ResBody> {
        let Some(account) = self.account.clone() else {
            return self
                .reject_whole(
                    Reason::UnknownAccount,
                    "no account of this name",
                    body,
                    not_found(),
                )
                .await;
        };
        if !account.active() {
            return self
                .reject_whole(
                    Reason::InactiveAccount,
                    "the account is deactivated",
                    body,
                    not_found(),
                )
                .await;
        }
        // Trello checks a callback URL with a bare HEAD when a webhook is created.
        if self.parts.method == Method::HEAD
            && account.handshake.as_ref().is_some_and(|h| h.answers_head())
        {
            return self
                .handshake(Handshake::head_answer(), body, Extracted::default())
                .await;
        }
        // A challenge in a header (Okta): answered only once the request passes the
        // account's verification, like any event.
        if self.parts.method == Method::GET
            && let Some(answer) = account
                .handshake
                .as_ref()
                .and_then(|h| h.on_get_headers(&self.parts.headers))
        {
            let url = self.public_url();
            let verdict = account
                .verifier
                .verify(&self.view(&body, &url), self.received_at / 1_000_000)
                .map(|_| ());
            if let Err(rejection) = verdict {
                return self
                    .reject_whole(rejection.reason, rejection.detail, body, unverified())
                    .await;
            }
            return self.handshake(answer, body, Extracted::default()).await;
        }
        if self.parts.method == Method::GET
            && let Some(h) = account.handshake.as_ref().filter(|h| h.is_get())
        {
            let key = account.verifier.signature().and_then(|s| s.first_mac_key());
            match h.on_get(self.parts.uri.query(), key) {
                GetOutcome::Answer(answer) => {
                    return self.handshake(answer, body, Extracted::default()).await;
                }
                GetOutcome::Refused(detail) => {
                    let problem = Problem::new(
                        StatusCode::FORBIDDEN,
                        "handshake_refused",
                        "Forbidden",
                        "the subscription handshake could not be verified; the reason is recorded in the gateway's audit log",
                    );
                    return self
                        .reject_whole(Reason::BadAuth, detail, body, problem)
                        .await;
                }
                GetOutcome::NotHandshake => {}
            }
        }
        if self.parts.method != Method::POST && self.parts.method != Method::PUT {
            let problem = Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method Not Allowed",
                format!(
                    "{} is not accepted here; send POST or PUT",
                    self.parts.method
                ),
            );
            let detail = format!("method {}", self.parts.method);
            let mut res = self
                .reject_whole(Reason::MethodNotAllowed, detail, body, problem)
                .await;
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST, PUT"));
            return res;
        }

        let url = self.public_url();
        let view = self.view(&body, &url);
        // A provider that hands the account its signing secret (Asana's X-Hook-Secret), on
        // a request that carries no signature: anything signed is verified as usual.
        if self.parts.method == Method::POST
            && let Some(header) = account.handshake.as_ref().and_then(|h| h.secret_header())
            && let Some(value) = self.parts.headers.get(header).cloned()
            && !account
                .verifier
                .signature()
                .is_some_and(|s| s.is_present(&view))
        {
            let name = account.name().to_owned();
            return self
                .secret_handshake(&name, header.clone(), value, body.clone())
                .await;
        }
        // An unsigned handshake (a creation ping) is let through only when the request
        // carries no signature at all; anything signed is verified as usual.
        if let Some(h) = account.handshake.as_ref().filter(|h| h.is_unsigned())
            && !account
                .verifier
                .signature()
                .is_some_and(|s| s.is_present(&view))
            && let Ok(payload) = payload::decode_unverified(&body, self.content_type().as_deref())
            && let Some(answer) = h.on_payload(&payload, None)
        {
            return self
                .handshake(answer, body.clone(), Extracted::default())
                .await;
        }
        // A token whose key the provider publishes (Google, Plaid): the key is fetched by
        // the token's kid first; a provider that cannot be asked is a 503, never a forgery.
        let fetched = match (&account.remote_keys, account.verifier.jwt_key_id(&view)) {
            (Some(keys), Some(kid)) => match keys.key(&kid).await {
                Ok(key) => key,
                Err(detail) => {
                    return self
                        .provider_unavailable(
                            "the provider's signing keys could not be fetched now",
                            format!("the provider's keys could not be fetched: {detail}"),
                            body.clone(),
                        )
                        .await;
                }
            },
            _ => None,
        };
        // An SNS message names its signing certificate: fetched (cached) only from an
        // allowlisted host; an off-list URL is a forgery, an unreachable host a 503.
        let certificate = match (&account.sns_certs, account.verifier.sns_cert_url(&view)) {
            (Some(certs), Some(Ok(url))) => match certs.get(&url).await {
                Ok(pem) => Some(pem),
                Err(detail) => {
                    return self
                        .provider_unavailable(
                            "the provider's signing certificate could not be fetched now",
                            format!("the signing certificate could not be fetched: {detail}"),
                            body.clone(),
                        )
                        .await;
                }
            },
            _ => None,
        };
        let fetched_parts = Fetched {
            jwt_key: fetched.as_deref(),
            certificate: certificate.as_deref().map(|c| c.as_slice()),
        };
        let verified =
            match account
                .verifier
                .verify_with(&view, self.received_at / 1_000_000, fetched_parts)
            {
                Ok(v) => v,
                Err(rejection) => {
                    return self
                        .reject_whole(
                            rejection.reason,
                            rejection.detail,
                            body.clone(),
                            unverified(),
                        )
                        .await;
                }
            };
        // Only a verified request counts against the account's rate: forged traffic is
        // refused (and recorded) without using up the sender's budget.
        if let Decision::Deny { retry_after_secs } = self
            .state
            .rate_limiter
            .check(account.name(), Instant::now())
        {
            let problem = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too Many Requests",
                format!("this account's rate limit is reached; retry in {retry_after_secs}s"),
            );
            let detail = format!("rate limit; retry after {retry_after_secs}s");
            let mut res = self
                .reject_whole(Reason::RateLimited, detail, body.clone(), problem)
                .await;
            if res.status() == StatusCode::TOO_MANY_REQUESTS {
                res.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            return res;
        }
        let content_type = self.content_type();
        // A handshake may look anywhere in the payload; extraction alone, with plain
        // paths, only where they lead.
        let keep = match (&account.handshake, &account.dedupe) {
            (Some(_), _) => None,
            // A destination's filter may read anywhere in the payload.
            _ if self.state.destinations.reads_payload(account.name()) => None,
            (None, Some(d)) if d.reads_payload() => None,
            (None, _) => account.extractor.keep(),
        };
        let decoded = match (&account.spec.xml, keep) {
            // A base64 field is kept whole: what a path keeps lies inside its XML.
            (Some(xml), keep) => {
                let keep = keep.filter(|_| xml.base64_fields.is_empty());
                payload::decode_with_xml(&verified, content_type.as_deref(), keep, xml)
            }
            (None, Some(keep)) => payload::decode_keeping(&verified, content_type.as_deref(), keep),
            (None, None) => payload::decode(&verified, content_type.as_deref()),
        };
        let payload = match decoded {
            Ok(p) => p,
            Err(e) => {
                let (reason, problem) = match &e {
                    PayloadError::Unsupported(_) => (
                        Reason::UnsupportedMediaType,
                        Problem::new(
                            StatusCode::UNSUPPORTED_MEDIA_TYPE,
                            "unsupported_media_type",
                            "Unsupported Media Type",
                            e.to_string(),
                        ),
                    ),
                    PayloadError::Malformed(_) => (
                        Reason::MalformedPayload,
                        Problem::new(
                            StatusCode::BAD_REQUEST,
                            "malformed_payload",
                            "Bad Request",
                            e.to_string(),
                        ),
                    ),
                };
                return self
                    .reject_whole(reason, e.to_string(), body.clone(), problem)
                    .await;
            }
        };
        let mut extracted = account.extractor.extract(&verified, &payload);
        // The dedupe key, covered by the signature, is what the store dedupes on.
        if let Some(dedupe) = &account.dedupe {
            extracted.event_id = dedupe.key(&verified, &payload, account.verifier.signature());
        }
        // A signed handshake (Slack, Zoom, Discord). An unsigned one (a creation ping) is
        // only ever recognised above, on a request that carries no signature: a verified
        // request of that shape is an event.
        if let Some(h) = account.handshake.as_ref().filter(|h| !h.is_unsigned()) {
            let key = account.verifier.signature().and_then(|s| s.first_mac_key());
            if let Some(mut answer) = h.on_payload(&payload, key) {
                // AWS SNS: a verified subscription is confirmed by visiting its URL.
                if let Some(subscriber) = &account.sns_subscriber
                    && let Some(url) = Subscriber::subscribe_url(&payload)
                {
                    match subscriber.confirm(url).await {
                        Subscribed::Confirmed(done) => {
                            answer.detail = format!("{}; {done}", answer.detail);
                        }
                        Subscribed::NotVisited(why) => {
                            answer.detail = format!("{}; not confirmed: {why}", answer.detail);
                        }
                        Subscribed::Failed(why) => {
                            return self
                                .provider_unavailable(
                                    "the subscription could not be confirmed with AWS now",
                                    format!("the subscription could not be confirmed: {why}"),
                                    body.clone(),
                                )
                                .await;
                        }
                    }
                }
                return self.handshake(answer, body.clone(), extracted).await;
            }
        }
        // A provider that signs nothing is asked about the transaction before anything is
        // accepted; its answer is kept with the row.
        let mut confirmed = None;
        if let Some(confirmer) = &account.confirm {
            match confirmer.confirm(&extracted, account.name(), &body).await {
                Outcome::Confirmed(answer) => confirmed = Some(answer),
                Outcome::Unconfirmed(detail) => {
                    let detail = format!("unconfirmed by the provider: {detail}");
                    return self
                        .reject_whole(Reason::Unconfirmed, detail, body.clone(), unverified())
                        .await;
                }
                Outcome::Unavailable(detail) => {
                    return self
                        .provider_unavailable(
                            "the event could not be confirmed with its provider now",
                            format!("the provider could not be asked: {detail}"),
                            body.clone(),
                        )
                        .await;
                }
            }
        }
        let size = body.len() as u64;
        let forward = crate::forward::plan(&account, &extracted);
        let deliver = matches!(forward, Forward::Deliver { .. });
        // Storage has no column for the provider's confirmation yet: it rides in the
        // accepted row's detail, which is otherwise empty.
        let detail = confirmed.map(|answer| format!("confirmed by the provider: {answer}"));
        let answered = extracted.clone();
        let mut record = self.record(Status::Accepted, None, detail, extracted, body, size, true);
        record.forward = forward;
        record.destinations = crate::destination::plan(
            &self.state.destinations.of(account.name()),
            account.name(),
            &record.extracted,
            &payload,
        );
        // A single-use key may come back only with the body it was first accepted with.
        if account.spec.dedupe_single_use {
            record.dedupe_content = record.body_sha256;
        }
        let to_destinations = !record.destinations.is_empty();
        match self.commit(record).await {
            Ok(c) if c.status == Status::Rejected => {
                // The writer refused a single-use key that came back with other content,
                // answered as any request that could not be verified: the reason is the
                // audit row's, not the sender's to learn.
                unverified().with("id", public_id(c.seq)).response()
            }
            Ok(c) => {
                // A status message with nothing to send it through only waits.
                let goes = (deliver && self.state.chat_routed) || to_destinations;
                if goes && c.status == Status::Accepted {
                    self.state.deliveries.notify_one();
                }
                if let Some(own) = &account.answer {
                    return provider_answer(own, own.body(&answered, account.name()));
                }
                let mut answer = json!({"status": c.status.as_str(), "id": public_id(c.seq)});
                if let Some(original) = c.original_seq {
                    answer["original_id"] = public_id(original).into();
                }
                json(StatusCode::OK, &answer)
            }
            Err(unavailable) => unavailable,
        }
    }

    /// The request as the verifiers read it: `url` is [`Row::public_url`].
    fn view<'v>(&'v self, body: &'v Bytes, url: &'v str) -> RequestView<'v> {
        RequestView {
            method: self.parts.method.as_str(),
            headers: &self.parts.headers,
            query: self.parts.uri.query(),
            body,
            url,
            origin: Origin {
                path_token: self.path_token.as_deref(),
                peer: Some(self.peer.ip()),
            },
        }
    }

    /// The URL the sender was given, for `{url}` in signed content: the account's own
    /// `public_url` when a proxy rewrites paths, else the base URL and this path; then the
    /// query as received.
    fn public_url(&self) -> String {
        let url = match self
            .account
            .as_ref()
            .and_then(|a| a.spec.public_url.as_deref())
        {
            Some(own) => own.to_owned(),
            None => format!("{}{}", self.state.public_url, self.parts.uri.path()),
        };
        match self.parts.uri.query() {
            Some(q) => format!("{url}?{q}"),
            None => url,
        }
    }
}

/// The answer a provider expects to a delivered event (Twilio: empty TwiML), as its
/// preset declares it; the account was compiled only with a success status and a valid
/// content type.
fn provider_answer(own: &ProviderAnswer, body: String) -> Response<ResBody> {
    let mut res = Response::new(full(body));
    *res.status_mut() = StatusCode::from_u16(own.status).unwrap_or(StatusCode::OK);
    if let Ok(ct) = HeaderValue::from_str(&own.content_type) {
        res.headers_mut().insert(CONTENT_TYPE, ct);
    }
    res
}

/// The answer to a request that failed verification; which step failed is only in the
/// audit row, never told to the sender.
fn unverified() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Unauthorized",
        "the request could not be verified; the reason is recorded in the gateway's audit log",
    )
}

fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "unknown_account",
        "Not Found",
        "there is no active webhook account at this URL",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_labels() {
        assert_eq!(account_label("/hooks/shop"), "shop");
        assert_eq!(account_label("/hooks"), "");
        assert_eq!(account_label("/hooks/a/b"), "a/b");
        let long = format!("/hooks/{}", "x".repeat(500));
        assert_eq!(account_label(&long).chars().count(), MAX_LABEL + 1);
    }
}
