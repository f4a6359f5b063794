//! Verification: the authenticate key, then the HMAC signature (or a signed JWT), then
//! freshness.
//!
//! Owns the compiled [`Verifier`] of an account and the [`Verified`] proof type: the only
//! way to obtain a `Verified` is [`Verifier::verify`], and extraction accepts nothing else.
//! Pure: the current time is passed in. It must never re-serialise the body, depend on
//! header order or case, or compare secret material in variable time.

mod allowlist;
mod auth;
mod grammar;
mod jwt;
#[cfg(test)]
pub(crate) use jwt::test_keys;
mod keys;
mod named_fields;
mod signature;
mod signed_content;
mod signed_fields;
mod sns;

pub use allowlist::IpAllowlist;
pub use auth::{AuthCheck, generate_path_token};
pub use grammar::Layout;
pub use jwt::{Claims, JwtCheck};
pub use keys::{Inputs, Key, decode_secret, sign};
pub use named_fields::NamedFields;
pub use signature::{
    SignatureCheck, parse_timestamp, sorted_form_params, with_default_port, without_port,
};
pub use signed_content::{Part, SignedContent};
pub use signed_fields::SignedFields;
pub use sns::{SnsCheck, canonical as sns_canonical, cert_url_allowed, sns_host_allowed};

use bytes::Bytes;
use hyper::HeaderMap;

use crate::account::{AccountSpec, SpecError};
use crate::event::Reason;

/// What verification looks at: the request as received.
#[derive(Debug)]
pub struct RequestView<'a> {
    /// The request method, e.g. `POST`.
    pub method: &'a str,
    /// The request headers (case-insensitive by construction).
    pub headers: &'a HeaderMap,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    /// The body bytes exactly as received.
    pub body: &'a Bytes,
    /// The public URL the sender was given, with the query string: what `{url}` signs.
    pub url: &'a str,
    /// Where the request came from, for senders that sign nothing.
    pub origin: Origin<'a>,
}

/// Where a request came from: for providers that sign nothing, the secret token in its
/// path and the address it was sent from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin<'a> {
    /// The path segment after the account's name (`/hooks/{account}/{token}`).
    pub path_token: Option<&'a str>,
    /// The peer address of the connection.
    pub peer: Option<std::net::IpAddr>,
}

/// What was fetched from the provider for one request before it is verified: the key a
/// token names (Google, Plaid), the certificate an SNS message names.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fetched<'a> {
    /// The key for the token's `kid`.
    pub jwt_key: Option<&'a jsonwebtoken::DecodingKey>,
    /// The PEM certificate at the message's SigningCertURL.
    pub certificate: Option<&'a [u8]>,
}

/// Proof that a request passed its account's verifier.
#[derive(Debug)]
pub struct Verified<'a> {
    request: &'a RequestView<'a>,
    claims: Option<Claims>,
}

impl<'a> Verified<'a> {
    /// The verified request.
    pub fn request(&self) -> &'a RequestView<'a> {
        self.request
    }

    /// The claims of the verified token, for an account that checks a JWT.
    pub fn claims(&self) -> Option<&Claims> {
        self.claims.as_ref()
    }
}

/// Why verification failed: the audit reason and a sentence for the auditor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", reason.as_str())]
pub struct Rejection {
    /// The stable reason stored in the audit row.
    pub reason: Reason,
    /// What exactly failed; never sent to the sender.
    pub detail: String,
}

impl Rejection {
    pub(crate) fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}

/// An account's verification, compiled once when the account is loaded.
#[derive(Debug)]
pub struct Verifier {
    allowlist: Option<IpAllowlist>,
    auth: AuthCheck,
    signature: Option<SignatureCheck>,
    jwt: Option<JwtCheck>,
    sns: Option<SnsCheck>,
    /// The account's signing secret comes from its provider's handshake (Asana) and has
    /// not come yet: every request is refused until it has.
    awaiting_secret: bool,
}

impl Verifier {
    /// Compiles the verification parts of a spec, failing closed on anything incomplete.
    pub fn compile(spec: &AccountSpec) -> Result<Self, SpecError> {
        let auth = AuthCheck::compile(&spec.auth)?;
        // An account whose provider hands it its secret in a handshake may wait for it.
        let awaiting_secret = matches!(
            spec.handshake,
            Some(crate::account::HandshakeSpec::SecretHeader { .. })
        ) && spec
            .signature
            .as_ref()
            .is_some_and(|s| s.secrets.is_empty());
        let signature = match (&spec.signature, awaiting_secret) {
            (Some(sig), true) => {
                // The scheme is checked now, with a stand-in key, and used once the
                // secret has come.
                let mut with_key = sig.clone();
                with_key.secrets = vec![crate::secret::Secret::new("awaiting-the-handshake")];
                SignatureCheck::compile(&with_key)?;
                None
            }
            (sig, _) => sig.as_ref().map(SignatureCheck::compile).transpose()?,
        };
        let jwt = spec.jwt.as_ref().map(JwtCheck::compile).transpose()?;
        let sns = spec.sns.as_ref().map(SnsCheck::compile).transpose()?;
        let allowlist = spec
            .ip_allowlist
            .as_ref()
            .map(IpAllowlist::compile)
            .transpose()?;
        if auth.is_none()
            && signature.is_none()
            && jwt.is_none()
            && sns.is_none()
            && allowlist.is_none()
            && !awaiting_secret
            && spec.confirm.is_none()
            && !spec.allow_unverified
        {
            return Err(SpecError::new(
                "auth",
                "the account has neither an authenticate key nor a signature; anyone could post \
                 to it. Configure one, or set \"allow_unverified\": true to accept that",
            ));
        }
        Ok(Verifier {
            allowlist,
            auth,
            signature,
            jwt,
            sns,
            awaiting_secret,
        })
    }

    /// Whether the account waits for its provider's handshake to bring its secret.
    pub fn awaits_secret(&self) -> bool {
        self.awaiting_secret
    }

    /// Verifies a request at time `now_secs` (Unix seconds).
    pub fn verify<'a>(
        &self,
        request: &'a RequestView<'a>,
        now_secs: i64,
    ) -> Result<Verified<'a>, Rejection> {
        self.verify_with(request, now_secs, Fetched::default())
    }

    /// The SigningCertURL of an SNS message, when the account checks SNS messages: `Ok`
    /// only for a URL on the allowlist.
    pub fn sns_cert_url(&self, request: &RequestView<'_>) -> Option<Result<String, Rejection>> {
        self.sns.as_ref().map(|s| s.cert_url(request))
    }

    /// The `kid` of the request's token, for an account whose token keys are fetched
    /// from the provider.
    pub fn jwt_key_id(&self, request: &RequestView<'_>) -> Option<String> {
        self.jwt.as_ref().and_then(|j| j.key_id(request))
    }

    /// Like [`verify`](Self::verify), with the key fetched from the provider for the
    /// token's `kid` tried besides the account's own.
    pub fn verify_with<'a>(
        &self,
        request: &'a RequestView<'a>,
        now_secs: i64,
        fetched: Fetched<'_>,
    ) -> Result<Verified<'a>, Rejection> {
        if let Some(allowlist) = &self.allowlist {
            allowlist.check(request)?;
        }
        self.auth.check(request)?;
        if self.awaiting_secret {
            return Err(Rejection::new(
                Reason::BadSignature,
                "the account has no signing secret yet: it awaits its provider's handshake",
            ));
        }
        if let Some(sig) = &self.signature {
            sig.check(request, now_secs)?;
        }
        let claims = match &self.jwt {
            Some(jwt) => Some(jwt.check_with(request, now_secs, fetched.jwt_key)?),
            None => None,
        };
        if let Some(sns) = &self.sns {
            let Some(cert) = fetched.certificate else {
                return Err(Rejection::new(
                    Reason::BadSignature,
                    "the message's signing certificate was not fetched",
                ));
            };
            sns.check(request, cert)?;
        }
        Ok(Verified { request, claims })
    }

    /// Header names whose values are credentials or signatures, to redact in the audit row.
    pub fn sensitive_headers(&self) -> Vec<&str> {
        let mut names = Vec::new();
        if let Some(h) = self.auth.header_name() {
            names.push(h);
        }
        if let Some(sig) = &self.signature {
            names.extend(sig.header_names());
        }
        if let Some(jwt) = &self.jwt {
            names.push(jwt.header_name());
        }
        names
    }

    /// The compiled signature scheme, if the account has one.
    pub fn signature(&self) -> Option<&SignatureCheck> {
        self.signature.as_ref()
    }

    /// The query parameter that carries the authenticate key, to redact in the audit row.
    pub fn sensitive_query_param(&self) -> Option<&str> {
        self.auth.query_param()
    }

    /// Whether the account is reached at `/hooks/{account}/{token}`.
    pub fn uses_path_token(&self) -> bool {
        matches!(self.auth, AuthCheck::PathToken(_))
    }
}
