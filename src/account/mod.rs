//! Accounts: the admin API's account contract, its validation, and merging of presets.
//!
//! Owns [`AccountSpec`], the JSON shape of the admin API that the studio codes against, the
//! name rule, and the fail-closed checks that refuse an unverifiable account. A spec is
//! turned into the hot-path form by [`compile`]. This module must never do I/O, and must
//! never serialise a secret except through [`AccountSpec::to_stored_json`], which the
//! store alone uses.

pub mod answer;
mod compile;
pub mod dedupe;
mod kinds;

pub use compile::{CompiledAccount, compile};
pub use kinds::{
    AnswerSpec, ConditionSpec, ConfirmFormat, ConfirmSpec, FieldsDigest, IpAllowlistSpec,
    JwtAlgorithm, JwtSpec, NamedFieldsSpec, OAuthSpec, OAuthStyle, RemoteKeysSpec, RemoteKeysStyle,
    SignedFieldsSpec, SnsSpec, XmlSpec,
};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::secret::Secret;

/// The longest account name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// A configured inbound webhook, as the admin API accepts it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    /// Unique name, `^[a-z0-9_]{1,64}$`; the URL is `{public_url}/hooks/{name}`.
    pub name: String,
    /// `custom` or the name of a preset in `rules/`.
    #[serde(default = "default_provider")]
    pub provider: String,
    /// A preset's signing secret; merged into `signature.secrets` before validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// The authenticate key.
    #[serde(default)]
    pub auth: AuthSpec,
    /// The HMAC signature scheme, if the sender signs its requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureSpec>,
    /// A signed token (JWT/JWS) the sender presents, if it signs that way (Vonage,
    /// MessageBird, Netlify): checked like a signature, with a claim over the body's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtSpec>,
    /// AWS SNS's signed messages, checked with the certificate each names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sns: Option<SnsSpec>,
    /// The provider's set-up handshake, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake: Option<HandshakeSpec>,
    /// The URL the provider was given, when it is not `{public_base_url}/hooks/{name}`
    /// (a proxy in front rewrites the path): what `{url}` signs, before the query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Where to find the fields worth keeping.
    #[serde(default)]
    pub paths: PathsSpec,
    /// What a listening account does with accepted events.
    #[serde(default)]
    pub forward: ForwardSpec,
    /// Whether the URL accepts traffic.
    #[serde(default = "yes")]
    pub active: bool,
    /// Keep each request's body in the audit log; `false` keeps only its size and SHA-256
    /// (for payloads the operator may not retain). The signature is checked either way.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub store_body: bool,
    /// Must be set to accept an account with neither an authenticate key nor a signature.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_unverified: bool,
    /// The parts of the dedupe key, when it is not `paths.event_id` alone: paths
    /// (`$.event`, `header:Name`, `query:name`), `body_sha256` or `signed_sha256`. Every
    /// part must be covered by the signature (see [`dedupe`]); the key is stored as the
    /// event's `event_id`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dedupe_key: Vec<String>,
    /// The dedupe key is a single-use token that must not carry other content (Mailgun's
    /// signed token, whose signature does not cover the event data): the same key with
    /// the same body is a retry (`duplicate`); with any other body it is refused
    /// `replayed_token` (401), never accepted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dedupe_single_use: bool,
    /// The answer the provider expects to an accepted (or duplicate) event, when it is not
    /// hookgate's JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<AnswerSpec>,
    /// Confirmation with the provider's own status API before an event is accepted, for
    /// providers that sign nothing (MTN MoMo, Pesapal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<ConfirmSpec>,
    /// The addresses the sender may post from, for providers that sign nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_allowlist: Option<IpAllowlistSpec>,
    /// XML in the payload (a body that is XML, fields holding base64 XML), read into it so
    /// that paths reach inside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xml: Option<XmlSpec>,
    /// The largest body accepted for this account, when it differs from
    /// `limits.max_body_bytes` (GitHub sends up to 25 MB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
}

/// The authenticate key a sender must present.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSpec {
    /// No key; the account must then have a signature or `allow_unverified`.
    #[default]
    None,
    /// A fixed value in a named header.
    ApiKey {
        /// The header name, e.g. `X-Api-Key`.
        header: String,
        /// The expected value.
        value: Secret,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The expected token.
        token: Secret,
    },
    /// `Authorization: Basic base64(username:password)`.
    Basic {
        /// The expected user name.
        username: String,
        /// The expected password.
        password: Secret,
    },
    /// A secret token as the last segment of the URL's path: `/hooks/{account}/{token}`
    /// (for providers that sign nothing: M-Pesa Daraja, MTN MoMo, Pesapal).
    PathToken {
        /// The token, at least 16 characters of A-Z a-z 0-9 - _.
        token: Secret,
    },
    /// A token in a query parameter of the URL.
    Query {
        /// The parameter name, e.g. `token`.
        param: String,
        /// The expected value.
        value: Secret,
    },
}

/// The algorithms a signature may use: HMACs with a shared secret, or a public-key
/// signature checked with the sender's public key.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// HMAC-SHA1 (Twilio, Intercom).
    #[serde(rename = "hmac-sha1")]
    HmacSha1,
    /// HMAC-SHA256, the common choice.
    #[default]
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// HMAC-SHA512 (Paystack).
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
    /// Ed25519 (Discord); the secret is the sender's 32-byte public key.
    #[serde(rename = "ed25519")]
    Ed25519,
    /// ECDSA over P-256 with SHA-256, DER or fixed-size signatures (SendGrid); the secret
    /// is the sender's public key (SubjectPublicKeyInfo DER or a SEC1 point).
    #[serde(rename = "ecdsa-p256-sha256")]
    EcdsaP256Sha256,
}

impl Algorithm {
    /// True for the public-key algorithms, whose "secret" is a public key.
    pub fn is_public_key(self) -> bool {
        matches!(self, Algorithm::Ed25519 | Algorithm::EcdsaP256Sha256)
    }
}

/// How a signature is written in its header.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Lower- or upper-case hexadecimal.
    #[default]
    Hex,
    /// Standard base64 with padding (padding optional on input).
    Base64,
}

/// How the signature header is laid out.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SignatureFormat {
    /// The whole value, after an optional prefix, is one signature.
    #[default]
    Plain,
    /// Several signatures split on `separator`, each starting with `prefix` (Standard
    /// Webhooks: `v1,<b64> v1,<b64>`); entries with another prefix are ignored.
    List,
    /// `key=value` pairs split on `separator` (Stripe: `t=1,v1=ab,v1=cd`): every
    /// `signature_key` entry is a signature, `timestamp_key` is the timestamp.
    Kv,
}

/// How the text of a secret becomes key bytes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SecretEncoding {
    /// The UTF-8 bytes of the text, as typed.
    #[default]
    Text,
    /// Standard base64 (padding optional).
    Base64,
    /// Hexadecimal.
    Hex,
    /// The SHA-1 digest of the text, as typed (Braintree keys its HMAC with the SHA-1 of
    /// the private key).
    Sha1Digest,
}

/// How a sender writes its timestamp; reading accepts all of them, signing uses this one.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimestampFormat {
    /// Unix seconds.
    #[default]
    Unix,
    /// Unix milliseconds.
    UnixMs,
    /// RFC 3339 in UTC, whole seconds.
    Rfc3339,
}

/// A signature scheme: where the signature is, how it is laid out and encoded, what it
/// covers, and with which keys it is checked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SignatureSpec {
    /// The MAC or signature algorithm.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// The header that carries the signature (or give `signature_path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// A JSONPath into the body that holds the signature, for senders that sign inside
    /// the payload (Mailgun); used instead of `header`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_path: Option<String>,
    /// How the header is laid out.
    #[serde(default, skip_serializing_if = "is_default")]
    pub format: SignatureFormat,
    /// The separator of `list` entries (default a space) or `kv` pairs (default `,`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    /// For `kv`: the key of signature entries, e.g. `v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_key: Option<String>,
    /// For `kv`: the key of the timestamp entry, e.g. `t`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_key: Option<String>,
    /// How the signature is encoded.
    #[serde(default)]
    pub encoding: Encoding,
    /// A prefix before the encoded signature, such as `sha256=` (for `list`, before each
    /// entry, such as `v1,`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// What is signed: `{body}`, `{timestamp}`, `{id}`, `{url}`, `{method}` and
    /// `{form_params}` stand for request parts.
    #[serde(default = "default_signed_content")]
    pub signed_content: String,
    /// The header with the signed timestamp, for `{timestamp}` and freshness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// A JSONPath into the body with the timestamp, instead of a header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_path: Option<String>,
    /// How the sender writes the timestamp (used when signing; reading accepts any).
    #[serde(default, skip_serializing_if = "is_default")]
    pub timestamp_format: TimestampFormat,
    /// The header with the delivery id, for `{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_header: Option<String>,
    /// A JSONPath into the body with the id, instead of a header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_path: Option<String>,
    /// How far the timestamp may be from now, either way; 0 turns the check off.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: u64,
    /// A prefix of the secret text that is not key material, such as `whsec_`; removed
    /// when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_prefix: Option<String>,
    /// How the secret text (after its prefix) becomes key bytes.
    #[serde(default, skip_serializing_if = "is_default")]
    pub secret_encoding: SecretEncoding,
    /// A query parameter carrying the hex SHA-256 of the body (Twilio's `bodySHA256`):
    /// when present, it must match the body, and `{form_params}` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_digest_param: Option<String>,
    /// Accept `{url}` with and without the scheme's default port, as some senders' SDKs do.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub url_port_variants: bool,
    /// Other places the signature may be, of the same kind as `header` or
    /// `signature_path`: more header names (Shopify's `Shopify-Hmac-Sha256`) or body paths
    /// (Mailgun's `parent-signature`). Every signature found in any of them is tried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<String>,
    /// For a sender that signs chosen fields of each item rather than the body's bytes
    /// (Adyen): the items and their fields; `signature_path` is then a path inside each
    /// item, and every item must carry a valid signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_fields: Option<SignedFieldsSpec>,
    /// For a sender that lists the fields it signs in a header (Selcom): the header, the
    /// fields it must list, and how `{named_fields}` writes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named_fields: Option<NamedFieldsSpec>,
    /// Every secret currently valid; several at once during a rotation.
    #[serde(default)]
    pub secrets: Vec<Secret>,
}

/// A provider's set-up handshake, answered instead of recording an event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum HandshakeSpec {
    /// A `GET` with a mode, a verify token and a challenge in the query (Meta): the
    /// challenge is echoed when the token matches.
    QueryChallenge {
        /// The parameter naming the mode.
        #[serde(default = "hub_mode")]
        mode_param: String,
        /// The mode that asks for the challenge.
        #[serde(default = "subscribe")]
        mode: String,
        /// The parameter carrying the verify token.
        #[serde(default = "hub_verify_token")]
        token_param: String,
        /// The parameter carrying the challenge.
        #[serde(default = "hub_challenge")]
        challenge_param: String,
        /// The verify token the operator typed at the provider.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verify_token: Option<Secret>,
    },
    /// A `GET` whose challenge parameter is echoed as text, with no verify token to check
    /// (Dropbox's `challenge`; WebSub's `hub.challenge`, when `hub.mode` is one of `modes`).
    QueryEcho {
        /// The parameter carrying the challenge.
        challenge_param: String,
        /// The parameter naming the mode, when there is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode_param: Option<String>,
        /// The modes that ask for the challenge.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        modes: Vec<String>,
    },
    /// A `GET` whose `param` is answered `{"response_token": "sha256=" + base64 of its
    /// HMAC-SHA256 under the first secret}` (X's CRC check).
    QueryHmac {
        /// The parameter carrying the token, e.g. `crc_token`.
        param: String,
    },
    /// A verified request whose `when` path equals `equals` is answered with the text at
    /// `challenge` (Slack's `url_verification`).
    Echo {
        /// The JSONPath that identifies the handshake.
        when: String,
        /// The value it must have.
        equals: Value,
        /// The JSONPath of the challenge to echo.
        challenge: String,
    },
    /// Like `echo`, but the answer is `{"plainToken": t, "encryptedToken": hex HMAC-SHA256
    /// of t under the first secret}` (Zoom's `endpoint.url_validation`).
    HmacEcho {
        /// The JSONPath that identifies the handshake.
        when: String,
        /// The value it must have.
        equals: Value,
        /// The JSONPath of the token to answer.
        challenge: String,
    },
    /// A `GET` carrying the challenge in a header, answered `{"<reply_key>": challenge}`
    /// once the request passes the account's verification (Okta's one-time
    /// `X-Okta-Verification-Challenge`, sent with the authorization header).
    HeaderEcho {
        /// The header carrying the challenge.
        header: String,
        /// The member of the JSON answer that holds it.
        reply_key: String,
    },
    /// A `HEAD` request answered 200 with no body (Trello checks the callback URL this
    /// way when a webhook is created). It carries nothing and is recorded as a handshake.
    Head,
    /// A request carrying the provider's signing secret in `header` (Asana's
    /// `X-Hook-Secret`), answered 200 with the same header echoed. While the account has
    /// no signing secret (created without one, or cleared by the operator) the value
    /// becomes its secret, stored like every secret through the admin write path; once it
    /// has one, a further handshake is refused (403) and recorded, so nobody can replace
    /// an established secret.
    SecretHeader {
        /// The header carrying the secret.
        header: String,
    },
    /// A request whose `when` path equals `equals` (or is present, when `equals` is not
    /// given) is answered with the fixed JSON `reply` (Discord's PING). `unsigned` lets
    /// it through without a signature (WooCommerce's creation ping), but only when the
    /// request carries no signature at all.
    Reply {
        /// The JSONPath that identifies the handshake.
        when: String,
        /// The value it must have; absent means "any value".
        #[serde(default, skip_serializing_if = "Option::is_none")]
        equals: Option<Value>,
        /// The JSON answer; `{"status":"handshake"}` when absent, an empty body when empty.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply: Option<String>,
        /// Whether an unsigned request may be the handshake.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        unsigned: bool,
    },
}

/// JSONPath (or `header:`/`query:`) expressions for the fields worth keeping.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct PathsSpec {
    /// Who the event is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// What object or system it comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The kind of event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The sender's event id, used for dedupe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Free "other parameters": name to path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

/// What a listening account forwards (used by the listener; stored with the account).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ForwardSpec {
    /// Send a status message into the sender's chat.
    #[serde(default)]
    pub send_to_user: bool,
    /// The status-message template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Only these event types are forwarded; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_types: Vec<String>,
    /// Status-message templates by event type; an event type without one gets `template`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub templates: BTreeMap<String, String>,
    /// The chat channel the status message goes through; absent: the chat connector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<crate::forward::channel::ChannelKind>,
    /// The approved WhatsApp template the message is sent as (channel `whatsapp` only), for
    /// event types without one in `whatsapp_templates`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp_template: Option<crate::forward::channel::whatsapp::TemplateSpec>,
    /// Approved WhatsApp templates by event type (channel `whatsapp` only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub whatsapp_templates: BTreeMap<String, crate::forward::channel::whatsapp::TemplateSpec>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
fn hub_mode() -> String {
    "hub.mode".to_owned()
}
fn subscribe() -> String {
    "subscribe".to_owned()
}
fn hub_verify_token() -> String {
    "hub.verify_token".to_owned()
}
fn hub_challenge() -> String {
    "hub.challenge".to_owned()
}
fn default_provider() -> String {
    "custom".to_owned()
}
fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
fn default_signed_content() -> String {
    "{body}".to_owned()
}
fn default_tolerance() -> u64 {
    300
}

/// Why an account spec was refused; answered as 422 with the field named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// The offending field, as a dotted path into the JSON (`signature.header`).
    pub field: String,
    /// What is wrong with it, as a sentence.
    pub message: String,
}

impl SpecError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Checks an account name against `^[a-z0-9_]{1,64}$`.
pub fn validate_name(name: &str) -> Result<(), SpecError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(SpecError::new(
            "name",
            format!("must be 1 to {MAX_NAME_LEN} characters long"),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(SpecError::new(
            "name",
            format!(
                "may hold only lowercase letters, digits and underscores; {bad:?} is not allowed"
            ),
        ));
    }
    Ok(())
}

impl AccountSpec {
    /// Parses a spec from JSON, naming the field at fault on error.
    pub fn from_json(value: Value) -> Result<Self, SpecError> {
        // serde repeats a wrongly typed value in its message, and it may be a secret.
        serde_json::from_value(value)
            .map_err(|e| SpecError::new("body", crate::redact::serde_message(&e.to_string())))
    }

    /// The spec as stored in the accounts table: like the API form, but with secrets in
    /// clear, because the gateway must compute MACs with them. Only the store calls this.
    pub fn to_stored_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(s) = &self.secret {
            v["secret"] = Value::from(s.expose_str());
        }
        match &self.auth {
            AuthSpec::None => {}
            AuthSpec::ApiKey { value, .. } | AuthSpec::Query { value, .. } => {
                v["auth"]["value"] = Value::from(value.expose_str());
            }
            AuthSpec::Bearer { token } | AuthSpec::PathToken { token } => {
                v["auth"]["token"] = Value::from(token.expose_str());
            }
            AuthSpec::Basic { password, .. } => {
                v["auth"]["password"] = Value::from(password.expose_str());
            }
        }
        if let Some(confirm) = &self.confirm {
            for (name, value) in &confirm.secret_headers {
                v["confirm"]["secret_headers"][name] = Value::from(value.expose_str());
            }
            for (name, value) in &confirm.secret_vars {
                v["confirm"]["secret_vars"][name] = Value::from(value.expose_str());
            }
            if let Some(oauth) = &confirm.oauth {
                v["confirm"]["oauth"]["client_secret"] =
                    Value::from(oauth.client_secret.expose_str());
                for (name, value) in &oauth.secret_headers {
                    v["confirm"]["oauth"]["secret_headers"][name] = Value::from(value.expose_str());
                }
            }
        }
        if let Some(secret) = self
            .jwt
            .as_ref()
            .and_then(|j| j.remote_keys.as_ref())
            .and_then(|r| r.secret.as_ref())
        {
            v["jwt"]["remote_keys"]["secret"] = Value::from(secret.expose_str());
        }
        if let Some(jwt) = &self.jwt {
            let secrets: Vec<Value> = jwt
                .secrets
                .iter()
                .map(|s| Value::from(s.expose_str()))
                .collect();
            v["jwt"]["secrets"] = Value::from(secrets);
        }
        if let Some(sig) = &self.signature {
            let secrets: Vec<Value> = sig
                .secrets
                .iter()
                .map(|s| Value::from(s.expose_str()))
                .collect();
            v["signature"]["secrets"] = Value::from(secrets);
        }
        if let Some(HandshakeSpec::QueryChallenge {
            verify_token: Some(t),
            ..
        }) = &self.handshake
        {
            v["handshake"]["verify_token"] = Value::from(t.expose_str());
        }
        v
    }

    /// The secret-free view for the admin API (secrets become the mask).
    pub fn to_public_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Merges `patch` into `target` as RFC 7396 JSON Merge Patch does: objects merge key by
/// key, `null` removes a key, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(target_map) = target {
        for (key, value) in patch_map {
            if value.is_null() {
                target_map.remove(key);
            } else {
                merge_patch(target_map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_the_rule() {
        assert!(validate_name("shop_payments_2").is_ok());
        assert!(validate_name(&"a".repeat(64)).is_ok());
        for bad in ["", "Shop", "a-b", "a.b", "..", "é", "a b", &"a".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn stored_json_round_trips_with_secrets_and_public_json_hides_them() {
        let spec = AccountSpec::from_json(json!({
            "name": "shop",
            "auth": {"type": "basic", "username": "u", "password": "pw-secret"},
            "signature": {"header": "X-Sig", "secrets": ["s1-secret", "s2-secret"]},
            "handshake": {"type": "query_challenge", "verify_token": "vt-secret"}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let stored = spec.to_stored_json();
        assert_eq!(
            AccountSpec::from_json(stored.clone()).ok(),
            Some(spec.clone())
        );
        let public = spec.to_public_json().to_string();
        for secret in ["pw-secret", "s1-secret", "s2-secret", "vt-secret"] {
            assert!(stored.to_string().contains(secret));
            assert!(!public.contains(secret), "{public}");
        }
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let err = AccountSpec::from_json(json!({"name": "a", "singature": {}}))
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        assert!(err.contains("singature"), "{err}");
    }

    #[test]
    fn merge_patch_follows_rfc7396() {
        let mut target = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge_patch(&mut target, &json!({"a": {"b": null, "e": 3}, "d": [2]}));
        assert_eq!(target, json!({"a": {"c": 2, "e": 3}, "d": [2]}));
    }
}
