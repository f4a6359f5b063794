//! Accounts: the admin API's account contract, its validation, and merging of presets.
//!
//! Owns [`AccountSpec`], the JSON shape of DESIGN.md that the studio codes against, the
//! name rule, and the fail-closed checks that refuse an unverifiable account. A spec is
//! turned into the hot-path form by [`compile`]. This module must never do I/O, and must
//! never serialise a secret except through [`AccountSpec::to_stored_json`], which the
//! store alone uses.

mod compile;

pub use compile::{CompiledAccount, compile};

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
    /// A token in a query parameter of the URL.
    Query {
        /// The parameter name, e.g. `token`.
        param: String,
        /// The expected value.
        value: Secret,
    },
}

/// The HMAC algorithms a signature may use.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// HMAC-SHA1 (GitHub's legacy header, Twilio).
    #[serde(rename = "hmac-sha1")]
    HmacSha1,
    /// HMAC-SHA256, the common choice.
    #[default]
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// HMAC-SHA512 (Paystack).
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
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

/// A custom HMAC signature scheme.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SignatureSpec {
    /// The MAC algorithm.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// The header that carries the signature.
    pub header: String,
    /// How the signature is encoded.
    #[serde(default)]
    pub encoding: Encoding,
    /// A prefix before the encoded signature, such as `sha256=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// What is signed: `{body}`, `{timestamp}`, `{id}` and `{url}` stand for request parts.
    #[serde(default = "default_signed_content")]
    pub signed_content: String,
    /// The header with the signed timestamp, for `{timestamp}` and freshness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// The header with the delivery id, for `{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_header: Option<String>,
    /// How far the timestamp may be from now, either way; 0 turns the check off.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: u64,
    /// Every secret currently valid; several at once during a rotation.
    #[serde(default)]
    pub secrets: Vec<Secret>,
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
        serde_json::from_value(value).map_err(|e| SpecError::new("body", e.to_string()))
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
            AuthSpec::Bearer { token } => v["auth"]["token"] = Value::from(token.expose_str()),
            AuthSpec::Basic { password, .. } => {
                v["auth"]["password"] = Value::from(password.expose_str());
            }
        }
        if let Some(sig) = &self.signature {
            let secrets: Vec<Value> = sig
                .secrets
                .iter()
                .map(|s| Value::from(s.expose_str()))
                .collect();
            v["signature"]["secrets"] = Value::from(secrets);
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
            "signature": {"header": "X-Sig", "secrets": ["s1-secret", "s2-secret"]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let stored = spec.to_stored_json();
        assert_eq!(
            AccountSpec::from_json(stored.clone()).ok(),
            Some(spec.clone())
        );
        let public = spec.to_public_json().to_string();
        for secret in ["pw-secret", "s1-secret", "s2-secret"] {
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
