//! Provider presets: rule files that fill in an account's verification and default paths,
//! so that a user picks "github" and pastes one secret.
//!
//! Owns the shipped rule files (compiled in from `rules/*.toml`), their format, and
//! [`prepare`], which merges a preset under the fields a user gave and moves the preset
//! `secret` into `signature.secrets`. A preset is data: this module must never hold a
//! provider's logic in code, only the merging.

use serde::Deserialize;
use serde_json::Value;

use crate::account::{SpecError, merge_patch};

/// A rule file as shipped in `rules/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The preset name users type, snake_case.
    pub name: String,
    /// The provider's display name.
    pub title: String,
    /// What the user pastes, in words.
    #[serde(default)]
    pub secret_help: Option<String>,
    /// The account fields the preset fills in (`signature`, `paths`, `auth`), as they
    /// would be written in a create request, without secrets.
    pub account: toml::Table,
}

const SHIPPED: &[(&str, &str)] = &[
    ("github", include_str!("../rules/github.toml")),
    ("shopify", include_str!("../rules/shopify.toml")),
    ("paystack", include_str!("../rules/paystack.toml")),
    ("razorpay", include_str!("../rules/razorpay.toml")),
    ("woocommerce", include_str!("../rules/woocommerce.toml")),
    ("bitbucket", include_str!("../rules/bitbucket.toml")),
    ("linear", include_str!("../rules/linear.toml")),
];

/// The shipped presets, parsed. A shipped file that does not parse is a build defect,
/// caught by the unit test below; at run time it is skipped rather than crash the gateway.
pub fn shipped() -> &'static [Rule] {
    static PARSED: std::sync::OnceLock<Vec<Rule>> = std::sync::OnceLock::new();
    PARSED.get_or_init(|| {
        SHIPPED
            .iter()
            .filter_map(|(_, text)| toml::from_str::<Rule>(text).ok())
            .collect()
    })
}

/// True for `custom` and every preset name.
pub fn is_known(provider: &str) -> bool {
    provider == "custom" || shipped().iter().any(|r| r.name == provider)
}

/// Turns a create request into a full account spec: for a preset, its defaults with the
/// request's fields merged over them; for any account, `secret` becomes the first of
/// `signature.secrets`.
pub fn prepare(mut request: Value) -> Result<Value, SpecError> {
    let provider = request
        .get("provider")
        .and_then(Value::as_str)
        .unwrap_or("custom")
        .to_owned();
    if provider != "custom" {
        let Some(rule) = shipped().iter().find(|r| r.name == provider) else {
            return Err(SpecError::new(
                "provider",
                format!("{provider:?} is not a known provider; see GET /v1/providers"),
            ));
        };
        let mut merged = serde_json::to_value(&rule.account).unwrap_or(Value::Null);
        merge_patch(&mut merged, &request);
        request = merged;
    }
    if let Some(obj) = request.as_object_mut()
        && let Some(secret) = obj.remove("secret")
    {
        let Some(sig) = obj.get_mut("signature").and_then(Value::as_object_mut) else {
            return Err(SpecError::new(
                "secret",
                "a secret needs a signature scheme: choose a provider preset or give \"signature\"",
            ));
        };
        let secrets = sig
            .entry("secrets")
            .or_insert_with(|| Value::Array(Vec::new()));
        match secrets.as_array_mut() {
            Some(list) => list.insert(0, secret),
            None => {
                return Err(SpecError::new(
                    "signature.secrets",
                    "must be a list of strings",
                ));
            }
        }
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_shipped_rule_parses_and_is_named_like_its_file() {
        for (file, text) in SHIPPED {
            let rule: Rule =
                toml::from_str(text).unwrap_or_else(|e| panic!("rules/{file}.toml: {e}"));
            assert_eq!(&rule.name, file);
        }
    }

    #[test]
    fn preset_with_secret_becomes_a_full_spec_and_explicit_fields_win() {
        let v = prepare(json!({"name": "gh", "provider": "github", "secret": "s3",
                               "paths": {"sender": "$.sender.login"}}))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["signature"]["secrets"], json!(["s3"]));
        assert_eq!(v["signature"]["header"], json!("X-Hub-Signature-256"));
        assert_eq!(v["paths"]["sender"], json!("$.sender.login"));
        assert_eq!(v["paths"]["event_type"], json!("header:X-GitHub-Event"));
        assert!(v.get("secret").is_none());
    }

    #[test]
    fn every_shipped_preset_compiles_from_name_provider_and_secret_alone() {
        for rule in shipped() {
            let request = json!({"name": "acct", "provider": rule.name, "secret": "s3cret"});
            let prepared = prepare(request).unwrap_or_else(|e| panic!("{}: {e}", rule.name));
            let spec = crate::account::AccountSpec::from_json(prepared)
                .unwrap_or_else(|e| panic!("{}: {e}", rule.name));
            crate::account::compile(spec, false, 0, 0)
                .unwrap_or_else(|e| panic!("{}: {e}", rule.name));
        }
        assert_eq!(shipped().len(), SHIPPED.len());
    }

    #[test]
    fn unknown_provider_and_secret_without_scheme_are_refused() {
        assert!(prepare(json!({"name": "a", "provider": "nope"})).is_err());
        assert!(prepare(json!({"name": "a", "secret": "s"})).is_err());
    }
}
