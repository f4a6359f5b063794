//! The account spec's parts for providers beyond an HMAC signature: a signed token
//! ([`JwtSpec`]), an IP allowlist, confirmation with the provider's status API, and the
//! answer a provider expects.
//!
//! Owns only their JSON shape and defaults, as the admin API and rule files write them;
//! compiling and checking them belongs to `verify`, `confirm` and `account::answer`. It must
//! never do I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

use super::default_tolerance;

/// The networks a sender posts from (CIDR), and the proxies in front of the gateway whose
/// `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IpAllowlistSpec {
    /// The sender's networks, e.g. `196.201.214.0/24` or a single address.
    pub allow: Vec<String>,
    /// Proxies (CIDR) whose `X-Forwarded-For` names the client; empty: the peer is the
    /// client and `X-Forwarded-For` is ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
}

/// How to confirm an event with the provider: a request to its status API built from the
/// extracted fields, and conditions on the answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfirmSpec {
    /// `GET` or `POST`.
    #[serde(default = "get_method")]
    pub method: String,
    /// The status API's URL, a template over the extracted fields (`{{source}}`,
    /// `{{params.NAME}}`, values percent-encoded); its scheme and host are fixed text.
    pub url: String,
    /// Values of this account named in the templates as `{{vars.NAME}}` (PayPal's
    /// webhook id), put in when the account is compiled.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    /// The body to send, a template (values JSON- or XML-escaped, as `format` says);
    /// `{{raw_body}}` stands for the callback's body as received, for an API that checks it
    /// whole (PayPal), and `{{secret.NAME}}` for a value of `secret_vars`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// What the status API speaks: `json` (the default) or `xml` (DPO's API3G): the body's
    /// escaping and content type, and how the answer is read for its conditions (an XML
    /// answer is read as JSON, `$.API3G.Result`; no DTD or entity is accepted).
    #[serde(default, skip_serializing_if = "is_json")]
    pub format: ConfirmFormat,
    /// Credentials the body carries (DPO's company token), write-only like secrets, named
    /// in the body as `{{secret.NAME}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_vars: BTreeMap<String, Secret>,
    /// Further headers, each value a template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Headers that carry credentials (a subscription key), write-only like secrets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_headers: BTreeMap<String, Secret>,
    /// An access token to get first and send as `Authorization: Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthSpec>,
    /// What the answer must say; every condition must hold.
    pub conditions: Vec<ConditionSpec>,
    /// How long to wait for each answer.
    #[serde(default = "ten")]
    pub timeout_secs: u64,
}

/// What a status API speaks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmFormat {
    /// JSON request bodies and answers.
    #[default]
    Json,
    /// XML request bodies and answers.
    Xml,
}

fn is_json(f: &ConfirmFormat) -> bool {
    *f == ConfirmFormat::Json
}

/// XML inside a payload, read into it so paths reach inside: a body that is XML, or fields
/// holding base64 XML (Braintree's `bt_payload`). No DTD or entity is accepted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct XmlSpec {
    /// Accept a body of type `application/xml` or `text/xml` (or `+xml`), or any body that
    /// opens with `<`, read as XML: `<API3G><Result>` is `$.API3G.Result`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub body: bool,
    /// Top-level fields of a form or JSON body that hold base64 XML, each replaced by the
    /// document it holds: `bt_payload`'s `<notification><kind>` is
    /// `$.bt_payload.notification.kind`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub base64_fields: Vec<String>,
}

/// One condition on the status API's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    /// A JSONPath into the answer.
    pub path: String,
    /// The text it must equal, a template (`{{params.status}}` ties it to the callback).
    pub equals: String,
}

/// How an access token is got.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OAuthStyle {
    /// OAuth 2.0 client credentials: HTTP Basic with the client id and secret,
    /// `grant_type=client_credentials` (in the form body for `POST`, the query for `GET`).
    #[default]
    ClientCredentials,
    /// A JSON body `{"consumer_key": id, "consumer_secret": secret}` (Pesapal).
    JsonKeys,
    /// OAuth 2.0 client credentials as a JSON body: `{"client_id": id, "client_secret":
    /// secret, "grant_type": "client_credentials"}` (Airtel Money, Tingg).
    JsonClientCredentials,
}

/// The token endpoint of a status API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OAuthSpec {
    /// The token endpoint.
    pub token_url: String,
    /// `GET` (Daraja) or `POST`.
    #[serde(default = "post_method")]
    pub method: String,
    /// How the credentials are sent.
    #[serde(default)]
    pub style: OAuthStyle,
    /// The client id (API user, consumer key).
    pub client_id: String,
    /// The client secret (API key, consumer secret).
    pub client_secret: Secret,
    /// Where the token is in the answer.
    #[serde(default = "access_token_path")]
    pub token_path: String,
    /// Where its lifetime in seconds is (a number or a numeric string); absent: 5 minutes.
    #[serde(default = "expires_in_path")]
    pub expires_in_path: String,
    /// Headers sent with the token request too (a subscription key).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_headers: BTreeMap<String, Secret>,
}

/// The answer a provider expects to an event it delivered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AnswerSpec {
    /// The status code, 200 to 299.
    #[serde(default = "ok_status")]
    pub status: u16,
    /// The content type of `body`.
    #[serde(default = "text_plain")]
    pub content_type: String,
    /// The body, as sent; empty for none. It may name extracted fields (`{{source}}`,
    /// `{{params.NAME}}`), JSON-escaped when the content type is JSON (Pesapal's answer
    /// names the order).
    #[serde(default)]
    pub body: String,
}

/// The algorithms a JWT may be signed with.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret.
    #[default]
    #[serde(rename = "HS256")]
    Hs256,
    /// ECDSA P-256 with SHA-256; the secret is the sender's public key (PEM, or base64 DER).
    #[serde(rename = "ES256")]
    Es256,
    /// RSA PKCS#1 v1.5 with SHA-256; the secret is the sender's public key (PEM, or base64
    /// DER PKCS#1).
    #[serde(rename = "RS256")]
    Rs256,
}

/// A JWT/JWS the sender presents in a header, with a claim over the body's SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtSpec {
    /// The header carrying the token.
    #[serde(default = "authorization")]
    pub header: String,
    /// A prefix before the token, such as `Bearer ` (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The only algorithm accepted (the token's own `alg` must equal it).
    #[serde(default)]
    pub algorithm: JwtAlgorithm,
    /// The claim holding the hex SHA-256 of the raw body (`payload_hash`, `sha256`); without
    /// it the token does not cover the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_hash_claim: Option<String>,
    /// The `iss` the token must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// How far `iat` may be from now, and how far past `exp` or before `nbf` a token may
    /// be, in seconds; 0 turns the time checks off.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: u64,
    /// How far `iat` may be from now, when a sender reuses a token for its whole lifetime
    /// (Google's push tokens live an hour); absent: `tolerance_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_tolerance_secs: Option<u64>,
    /// Further issuers accepted besides `issuer` (Google writes `accounts.google.com` with
    /// and without `https://`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_issuers: Vec<String>,
    /// The `aud` the token must carry (a string, or one of a list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Claims that must equal the given text (Google Pub/Sub's `email`: the push
    /// subscription's service account).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
    /// Keys fetched from the provider by the token's `kid` instead of (or besides)
    /// `secrets`: Google's JWKS, Plaid's verification-key API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_keys: Option<RemoteKeysSpec>,
    /// Every secret (HS256) or public key (ES256, RS256) currently valid.
    #[serde(default)]
    pub secrets: Vec<Secret>,
}

/// How a provider publishes the keys its tokens are signed with.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RemoteKeysStyle {
    /// A JSON Web Key Set at `url` (`GET`), every key with its `kid` (Google).
    #[default]
    Jwks,
    /// `POST url` with `{"client_id", "secret", "key_id"}` answering `{"key": JWK}`; a key
    /// with a non-null `expired_at` is not used (Plaid's `/webhook_verification_key/get`).
    Plaid,
}

/// Where a token's verification keys come from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemoteKeysSpec {
    /// How the keys are published.
    #[serde(default)]
    pub style: RemoteKeysStyle,
    /// The keys' URL; its scheme and host are fixed by the account, never by a request.
    pub url: String,
    /// The API client id (Plaid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The API secret (Plaid), write-only like every secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// How long a fetched key is kept, in seconds.
    #[serde(default = "hour")]
    pub cache_secs: u64,
    /// How long to wait for the provider's answer.
    #[serde(default = "ten")]
    pub timeout_secs: u64,
}

/// AWS SNS's signed messages: the topics this endpoint is subscribed to, and where the
/// signing certificate may come from besides Amazon's SNS hosts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SnsSpec {
    /// The TopicArns whose messages are accepted.
    #[serde(default)]
    pub topic_arns: Vec<String>,
    /// Further certificate hosts (`host:port`) besides `sns.<region>.amazonaws.com`: a
    /// local mirror, the tests; http only to a loopback address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cert_hosts: Vec<String>,
    /// How long a fetched certificate is kept, in seconds.
    #[serde(default = "hour")]
    pub cache_secs: u64,
    /// How long to wait for the certificate (and for the `SubscribeURL`).
    #[serde(default = "ten")]
    pub timeout_secs: u64,
    /// Confirm a verified subscription by visiting its `SubscribeURL` (on the same hosts
    /// the certificate may come from); `false` leaves it to the operator, who finds the URL
    /// in the recorded handshake's body.
    #[serde(default = "yes")]
    pub confirm_subscriptions: bool,
}

fn yes() -> bool {
    true
}

fn hour() -> u64 {
    3600
}

/// A signature over chosen fields of the payload instead of its bytes (Adyen): each item
/// of a batch is signed on its own, over its fields' values joined by `separator`; the
/// signature's `signature_path` is then a path inside each item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SignedFieldsSpec {
    /// A JSONPath to the array of items, each signed on its own (Adyen's
    /// `$.notificationItems`); absent: the body is one item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<String>,
    /// JSONPaths inside an item, in the order the provider signs them; a missing value is
    /// signed as the empty text.
    pub fields: Vec<String>,
    /// What joins the values.
    #[serde(default = "colon")]
    pub separator: String,
    /// Instead of an HMAC: the signature is a plain digest of the joined values with the
    /// secret appended (Ozow: `sha512_lowercase`, the hex SHA-512 of that text lower-cased).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<FieldsDigest>,
}

/// A signature over fields the request names in a header (Selcom's `Signed-Fields`):
/// `{named_fields}` in `signed_content` stands for `{separator}name=value` for each named
/// field of the body, in the header's order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NamedFieldsSpec {
    /// The header that lists the signed fields, comma-separated.
    pub header: String,
    /// Fields every request must list (at least the ones the account extracts), so that a
    /// request cannot sign nothing, or leave what matters unsigned.
    pub required: Vec<String>,
    /// What precedes each `name=value`.
    #[serde(default = "ampersand")]
    pub separator: String,
}

fn ampersand() -> String {
    "&".to_owned()
}

/// A plain digest over signed fields and the secret, for senders that do not use an HMAC.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FieldsDigest {
    /// SHA-512 of the values joined, then the secret, the whole text lower-cased (Ozow).
    Sha512Lowercase,
}

fn colon() -> String {
    ":".to_owned()
}
fn get_method() -> String {
    "GET".to_owned()
}
fn post_method() -> String {
    "POST".to_owned()
}
fn ten() -> u64 {
    10
}
fn access_token_path() -> String {
    "$.access_token".to_owned()
}
fn expires_in_path() -> String {
    "$.expires_in".to_owned()
}
fn authorization() -> String {
    "Authorization".to_owned()
}
fn ok_status() -> u16 {
    200
}
fn text_plain() -> String {
    "text/plain; charset=utf-8".to_owned()
}
