//! Handshakes on the ingest path: a provider's proof that the URL is live (a challenge
//! echoed, a HEAD answered) and the handshake that brings an account's signing secret.
//!
//! Owns how a handshake is recorded and answered. Each is one audit row like any request,
//! committed before the answer; it must never store a secret for an account whose secret
//! is established.

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

use super::{Row, storage_failed};
use crate::event::{Extracted, Reason, Status};
use crate::handshake::{Answer, Handshake};
use crate::server::admin_accounts::HandshakeSecretError;
use crate::server::http::{Problem, ResBody, full};

impl Row<'_> {
    /// A handshake that brings the account's signing secret: stored while the account
    /// awaits one, then recorded (the header redacted) and answered 200 with the header
    /// echoed; refused (403, recorded) when the account's secret is established.
    pub(super) async fn secret_handshake(
        &mut self,
        name: &str,
        header: hyper::header::HeaderName,
        value: HeaderValue,
        body: Bytes,
    ) -> Response<ResBody> {
        let refused = |detail: &str| {
            Problem::new(
                StatusCode::FORBIDDEN,
                "handshake_refused",
                "Forbidden",
                detail.to_owned(),
            )
        };
        let secret = value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|s| (16..=512).contains(&s.len()));
        let Some(secret) = secret else {
            let problem = refused("the handshake's secret is not 16 to 512 characters of text");
            let detail = format!("handshake: {header} is not a usable secret");
            return self
                .reject_whole(Reason::BadAuth, detail, body, problem)
                .await;
        };
        match crate::server::admin_accounts::accept_handshake_secret(self.state, name, secret).await
        {
            Ok(()) => {
                let mut res = self
                    .handshake(Handshake::secret_answer(), body, Extracted::default())
                    .await;
                if res.status() == StatusCode::OK {
                    res.headers_mut().insert(header, value);
                }
                res
            }
            Err(e @ (HandshakeSecretError::Established | HandshakeSecretError::NotAwaiting)) => {
                let problem = refused(
                    "this account's signing secret is established; a handshake cannot replace it",
                );
                let detail = format!(
                    "handshake refused: {e}; the operator clears the account's secret to take a new one"
                );
                self.reject_whole(Reason::BadAuth, detail, body, problem)
                    .await
            }
            Err(HandshakeSecretError::Store(e)) => storage_failed(&e),
        }
    }

    /// Records a handshake and answers it as the provider expects.
    pub(super) async fn handshake(
        &mut self,
        answer: Answer,
        body: Bytes,
        extracted: Extracted,
    ) -> Response<ResBody> {
        let size = body.len() as u64;
        let record = self.record(
            Status::Handshake,
            None,
            Some(answer.detail),
            extracted,
            body,
            size,
            true,
        );
        match self.commit(record).await {
            Ok(_) => {
                let mut res = Response::new(full(answer.body));
                res.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static(answer.content_type));
                // An echoed challenge is the sender's text: never to be sniffed as markup.
                res.headers_mut().insert(
                    hyper::header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                res
            }
            Err(unavailable) => unavailable,
        }
    }
}
