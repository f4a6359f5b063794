//! How a decided request becomes its one audit row: the row built from the request
//! (credentials redacted, a rejected body cut to its limit), committed, and the answer
//! given only after the commit.
//!
//! Owns the row's fields and the rejection answers. It must never answer 2xx when the
//! row was not committed, nor keep anything in the row that could be a credential.

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use sha2::{Digest, Sha256};

use super::{Partial, Row};
use crate::event::{Committed, EventRecord, Extracted, Forward, Reason, Status, public_id};
use crate::redact;
use crate::server::http::{Problem, ResBody};
use crate::store::StoreError;

impl Row<'_> {
    /// Notes a committed row on the request's span and in the account's counters (only
    /// for a configured account, so the label set stays bounded).
    pub(super) fn committed(&self, c: &Committed, reason: Option<Reason>) {
        let span = tracing::Span::current();
        span.record("audit_id", public_id(c.seq).as_str());
        match reason {
            Some(r) => span.record("outcome", format!("rejected:{}", r.as_str()).as_str()),
            None => span.record("outcome", c.status.as_str()),
        };
        if let Some(account) = &self.account {
            self.state
                .account_metrics
                .record(account.name(), c.status, reason);
        }
    }

    pub(super) fn content_type(&self) -> Option<String> {
        self.parts
            .headers
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The provider could not be asked (its status API, its keys, its certificate): a
    /// recorded 503 with `Retry-After`, so the sender comes back; never read as a forgery.
    /// `what` says what failed, in the answer; `detail` goes into the row.
    pub(super) async fn provider_unavailable(
        &mut self,
        what: &str,
        detail: String,
        body: Bytes,
    ) -> Response<ResBody> {
        let problem = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "confirmation_unavailable",
            "Service Unavailable",
            format!("{what}; nothing was accepted, please retry"),
        );
        let mut res = self
            .reject_whole(Reason::ConfirmationUnavailable, detail, body, problem)
            .await;
        if res.status() == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("30"));
        }
        res
    }

    /// Rejects a request whose whole body was read.
    pub(super) async fn reject_whole(
        &mut self,
        reason: Reason,
        detail: impl Into<String>,
        body: Bytes,
        problem: Problem,
    ) -> Response<ResBody> {
        let size = body.len() as u64;
        let keep = self.state.config.limits.rejected_body_bytes;
        let record = self.record(
            Status::Rejected,
            Some(reason),
            Some(detail.into()),
            Extracted::default(),
            body,
            size,
            true,
        );
        let record = truncate(record, keep);
        self.commit_rejection(record, problem).await
    }

    /// Rejects a request whose body was not read whole.
    pub(super) async fn reject(
        &mut self,
        reason: Reason,
        detail: String,
        partial: Partial,
        problem: Problem,
    ) -> Response<ResBody> {
        let keep = self.state.config.limits.rejected_body_bytes;
        let mut record = self.record(
            Status::Rejected,
            Some(reason),
            Some(detail),
            Extracted::default(),
            partial.prefix,
            partial.size,
            false,
        );
        record.body_truncated = true;
        let record = truncate(record, keep);
        self.commit_rejection(record, problem).await
    }

    pub(super) async fn commit_rejection(
        &mut self,
        record: EventRecord,
        problem: Problem,
    ) -> Response<ResBody> {
        match self.commit(record).await {
            Ok(c) => problem.with("id", public_id(c.seq)).response(),
            Err(unavailable) => unavailable,
        }
    }

    /// Hands the row to the writer and counts what was committed (by the committed row's
    /// outcome and reason); when it was not, the 503 to answer instead.
    pub(super) async fn commit(
        &mut self,
        record: EventRecord,
    ) -> Result<Committed, Response<ResBody>> {
        let handled = record.handle_micros;
        let metrics = self.state.store.metrics();
        match self.state.store.append(record).await {
            Ok(c) => {
                metrics.record(c.status, c.reason, handled);
                self.committed(&c, c.reason);
                Ok(c)
            }
            Err(e) => {
                metrics.record_unavailable();
                Err(storage_failed(&e))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn record(
        &self,
        status: Status,
        reason: Option<Reason>,
        detail: Option<String>,
        extracted: Extracted,
        body: Bytes,
        body_size: u64,
        whole: bool,
    ) -> EventRecord {
        let raw_query = self.parts.uri.query().unwrap_or("");
        let extra = &self.state.config.redact_headers;
        // A request that matched no account may carry a genuine sender's credentials sent
        // to a slightly wrong URL: nothing that could be one is kept.
        let (query, headers) = match &self.account {
            Some(a) => (
                redact::query(raw_query, &a.sensitive_query_params()),
                redact::headers_json(&self.parts.headers, &a.sensitive_headers(), extra),
            ),
            None => (
                redact::query_unmatched(raw_query),
                redact::headers_json_unmatched(&self.parts.headers, extra),
            ),
        };
        let body_sha256 = whole.then(|| Sha256::digest(&body).into());
        // An account may keep only the body's size and hash.
        let (body, hash_only) = match &self.account {
            Some(a) if !a.spec.store_body => (Bytes::new(), true),
            _ => (body, false),
        };
        EventRecord {
            received_at: self.received_at,
            account: self.label.clone(),
            status,
            reason,
            detail,
            extracted,
            method: self.parts.method.to_string(),
            // A path token is a secret: the row keeps where it was, never what it was.
            path: match &self.path_token {
                Some(_) => format!("/hooks/{}/[redacted]", self.label),
                None => self.parts.uri.path().to_owned(),
            },
            query,
            remote_addr: self.peer.to_string(),
            headers,
            content_type: self.content_type(),
            body,
            body_size,
            body_sha256,
            body_truncated: hash_only,
            handle_micros: self.started.elapsed().as_micros() as i64,
            forward: Forward::None,
            destinations: Vec::new(),
            dedupe_content: None,
        }
    }
}

/// Keeps at most `keep` bytes of a rejected body; its size and hash stay as they were.
fn truncate(mut record: EventRecord, keep: usize) -> EventRecord {
    if record.body.len() > keep {
        record.body = record.body.slice(..keep);
        record.body_truncated = true;
    }
    record
}

/// The answer when the audit row could not be committed: never 2xx.
pub fn storage_failed(e: &StoreError) -> Response<ResBody> {
    tracing::warn!(error = %e, "answering 503: the audit row was not committed");
    let mut res = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        "Service Unavailable",
        "the event could not be recorded; nothing was accepted, please retry",
    )
    .response();
    res.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    res
}
