//! The dedupe key: which parts of a verified request make two deliveries the same event.
//!
//! Owns [`DedupeKey`] (an account's `dedupe_key`, compiled once) and the rule that every
//! part of it is covered by what the signature signs ([`covered`]): a part the signature
//! does not cover could be changed by anyone replaying a captured request, turning one
//! genuine delivery into many "new" events. The key is computed after verification and
//! stored as the event's `event_id`, where the store's per-account dedupe finds it. Pure:
//! it must never read anything but the verified request and its decoded payload.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::account::{AccountSpec, PathsSpec, SignatureSpec, SpecError};
use crate::extract::Extractor;
use crate::verify::{SignatureCheck, Verified};

/// A key longer than this is stored as `sha256:` and the hex SHA-256 of its text, so a
/// batch's list of ids stays a bounded column value.
pub const MAX_KEY_LEN: usize = 200;

/// One part of a dedupe key.
#[derive(Debug)]
enum Part {
    /// A path into the payload or the request (`$.id`, `header:X`, `query:x`).
    Path(Box<Extractor>),
    /// The SHA-256 of the raw body.
    BodySha256,
    /// The SHA-256 of the content the signature covers (the raw body for body-only
    /// schemes; the URL and the sorted form parameters for Twilio).
    SignedSha256,
}

/// An account's compiled dedupe key.
#[derive(Debug)]
pub struct DedupeKey {
    parts: Vec<Part>,
}

impl DedupeKey {
    /// Compiles `spec.dedupe_key`, refusing a part the signature does not cover.
    pub fn compile(spec: &AccountSpec) -> Result<Option<Self>, SpecError> {
        if spec.dedupe_key.is_empty() {
            return Ok(None);
        }
        let mut parts = Vec::with_capacity(spec.dedupe_key.len());
        for (i, text) in spec.dedupe_key.iter().enumerate() {
            let field = format!("dedupe_key[{i}]");
            if let Some(sig) = &spec.signature
                && !covered(sig, text)
            {
                return Err(SpecError::new(
                    field,
                    format!(
                        "{text:?} is not covered by the signature, so a replayed request could \
                         change it and pass as a new event; use signed parts (the body, a \
                         signed header) or signed_sha256"
                    ),
                ));
            }
            let part = match text.trim() {
                "body_sha256" => Part::BodySha256,
                "signed_sha256" => Part::SignedSha256,
                path => {
                    let paths = PathsSpec {
                        event_id: Some(path.to_owned()),
                        ..PathsSpec::default()
                    };
                    let ex = Extractor::compile(&paths)
                        .map_err(|e| SpecError::new(field.clone(), e.message))?;
                    Part::Path(Box::new(ex))
                }
            };
            parts.push(part);
        }
        Ok(Some(DedupeKey { parts }))
    }

    /// Whether a part reads the payload, so the whole payload must be decoded.
    pub fn reads_payload(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Path(_)))
    }

    /// The key of one verified request: one part's text as it is, several parts as a JSON
    /// array of their texts (null for a part that found nothing); `None` when no part found
    /// anything. A long key is stored as its hash.
    pub fn key(
        &self,
        verified: &Verified<'_>,
        payload: &Value,
        signature: Option<&SignatureCheck>,
    ) -> Option<String> {
        let request = verified.request();
        let texts: Vec<Option<String>> = self
            .parts
            .iter()
            .map(|part| match part {
                Part::Path(ex) => ex.extract(verified, payload).event_id,
                Part::BodySha256 => Some(hex::encode(Sha256::digest(request.body))),
                Part::SignedSha256 => Some(hex::encode(match signature {
                    Some(sig) => sig.signed_sha256(request),
                    None => Sha256::digest(request.body).into(),
                })),
            })
            .collect();
        if texts.iter().all(Option::is_none) {
            return None;
        }
        let key = match texts.as_slice() {
            [Some(one)] => one.clone(),
            _ => Value::from(
                texts
                    .into_iter()
                    .map(|t| t.map_or(Value::Null, Value::String))
                    .collect::<Vec<_>>(),
            )
            .to_string(),
        };
        if key.len() > MAX_KEY_LEN {
            return Some(format!("sha256:{}", hex::encode(Sha256::digest(&key))));
        }
        Some(key)
    }
}

/// Whether the signature scheme `sig` covers the dedupe key part `part`: the signed content
/// holds the body (a payload path, `body_sha256`), or the part is the signed timestamp or
/// id (`header:` or a body path named by `timestamp_*`/`id_*`), or the signed URL holds it
/// (`query:`), or it is `signed_sha256`.
pub fn covered(sig: &SignatureSpec, part: &str) -> bool {
    let part = part.trim();
    // A scheme over chosen fields (Adyen) covers exactly those fields of each item.
    if sig.signed_fields.is_some() {
        return part == "signed_sha256";
    }
    let content = sig.signed_content.as_str();
    let uses = |placeholder: &str| content.contains(placeholder);
    let body = uses("{body}");
    let form = uses("{form_params}") || sig.body_digest_param.is_some();
    let signed_entry = |header: &Option<String>, path: &Option<String>, value: &str| {
        let by_header = header
            .as_deref()
            .zip(value.strip_prefix("header:"))
            .is_some_and(|(h, v)| h.eq_ignore_ascii_case(v.trim()));
        // Inside a signed body value is signed too (Braintree's bt_payload, read as XML).
        let by_path = path
            .as_deref()
            .is_some_and(|p| same_path(p, value) || inside_path(p, value));
        by_header || by_path
    };
    // A field every request must name in its list of signed fields (Selcom).
    let named = sig
        .named_fields
        .as_ref()
        .is_some_and(|n| uses("{named_fields}") && n.required.iter().any(|r| same_path(r, part)));
    let timestamp =
        uses("{timestamp}") && signed_entry(&sig.timestamp_header, &sig.timestamp_path, part);
    let id = uses("{id}") && signed_entry(&sig.id_header, &sig.id_path, part);
    match part {
        "signed_sha256" => true,
        "body_sha256" => body,
        p if p.starts_with("header:") => timestamp || id,
        p if p.starts_with("query:") => uses("{url}"),
        _ => body || form || timestamp || id || named,
    }
}

/// Whether payload path `b` lies inside the value at path `a` (`$.a.b` inside `$.a`).
fn inside_path(a: &str, b: &str) -> bool {
    let norm = |p: &str| {
        let p = p.trim();
        if p.starts_with('$') {
            p.to_owned()
        } else {
            format!("$.{p}")
        }
    };
    if b.starts_with("header:") || b.starts_with("query:") {
        return false;
    }
    let (a, b) = (norm(a), norm(b));
    b.strip_prefix(&a)
        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// Whether two payload paths are written the same, allowing the `$.` shorthand.
fn same_path(a: &str, b: &str) -> bool {
    let norm = |p: &str| {
        let p = p.trim();
        if p.starts_with('$') {
            p.to_owned()
        } else {
            format!("$.{p}")
        }
    };
    !b.starts_with("header:") && !b.starts_with("query:") && norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sig(v: Value) -> SignatureSpec {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn body_schemes_cover_payload_paths_but_not_unsigned_headers() {
        let s = sig(json!({"header": "X-Sig", "signed_content": "{body}"}));
        assert!(covered(&s, "$.data.id"));
        assert!(covered(&s, "body_sha256"));
        assert!(covered(&s, "signed_sha256"));
        assert!(!covered(&s, "header:X-Delivery"));
        assert!(!covered(&s, "query:id"));
    }

    #[test]
    fn signed_headers_and_body_entries_are_covered_by_name() {
        let s = sig(
            json!({"header": "X-Sig", "signed_content": "{id}.{timestamp}.{body}",
                           "id_header": "webhook-id", "timestamp_header": "webhook-timestamp"}),
        );
        assert!(covered(&s, "header:Webhook-Id"));
        assert!(covered(&s, "header:webhook-timestamp"));
        assert!(!covered(&s, "header:X-Other"));
        let mailgun = sig(json!({"signature_path": "$.signature.signature",
                                 "timestamp_path": "$.signature.timestamp",
                                 "id_path": "$.signature.token",
                                 "signed_content": "{timestamp}{id}"}));
        assert!(covered(&mailgun, "$.signature.token"));
        assert!(!covered(&mailgun, "$['event-data'].id"));
        assert!(!covered(&mailgun, "body_sha256"));
        let twilio = sig(json!({"header": "X-Twilio-Signature",
                                "signed_content": "{url}{form_params}"}));
        assert!(covered(&twilio, "$.MessageSid"));
        assert!(covered(&twilio, "query:x"));
        assert!(
            !covered(&twilio, "body_sha256"),
            "form parameters may be reordered"
        );
    }

    #[test]
    fn every_shipped_preset_dedupes_on_a_key_its_signature_covers() {
        let rules = crate::rules::Rules::shipped();
        let mut problems = Vec::new();
        for rule in rules.all() {
            let mut request = json!({"name": "k", "provider": rule.name, "secret": "c2VjcmV0"});
            rule.fill_required_settings(&mut request, "x");
            let Ok(spec) = rules.prepare(request).map(AccountSpec::from_json) else {
                problems.push(format!("{}: does not prepare", rule.name));
                continue;
            };
            let Ok(spec) = spec else {
                problems.push(format!("{}: not a spec", rule.name));
                continue;
            };
            let parts: Vec<String> = if spec.dedupe_key.is_empty() {
                spec.paths.event_id.iter().cloned().collect()
            } else {
                spec.dedupe_key.clone()
            };
            // A preset that confirms each call with the provider may go without a key (Mollie
            // calls with the same id at every status change; only the answer says which).
            if parts.is_empty() && spec.confirm.is_none() {
                problems.push(format!(
                    "{}: no dedupe key, so retries are not deduplicated",
                    rule.name
                ));
            }
            if let Some(sig) = &spec.signature {
                for part in parts.iter().filter(|p| !covered(sig, p)) {
                    problems.push(format!(
                        "{}: {part} is not covered by the signature",
                        rule.name
                    ));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn a_field_list_scheme_covers_its_required_fields_and_a_signed_field_covers_its_inside() {
        let selcom = sig(
            json!({"header": "Digest", "signed_content": "timestamp={timestamp}{named_fields}",
                                "timestamp_header": "Timestamp",
                                "named_fields": {"header": "Signed-Fields", "required": ["transid", "order_id"]}}),
        );
        assert!(covered(&selcom, "$.transid"));
        assert!(covered(&selcom, "order_id"));
        assert!(covered(&selcom, "header:Timestamp"));
        assert!(
            !covered(&selcom, "$.amount"),
            "a field a callback may leave unsigned"
        );
        assert!(!covered(&selcom, "header:Signed-Fields"));
        let braintree = sig(
            json!({"signature_path": "$.bt_signature", "signed_content": "{id}",
                                   "id_path": "$.bt_payload"}),
        );
        assert!(covered(&braintree, "$.bt_payload.notification.kind"));
        assert!(covered(&braintree, "$.bt_payload"));
        assert!(!covered(&braintree, "$.bt_payload_other"));
        assert!(!covered(&braintree, "$.bt_signature"));
    }

    #[test]
    fn an_uncovered_part_is_refused_at_compile_time_by_field() {
        let spec = AccountSpec::from_json(json!({
            "name": "a",
            "signature": {"header": "X-Sig", "secrets": ["k"]},
            "dedupe_key": ["$.id", "header:X-Delivery"]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let err = DedupeKey::compile(&spec).err().map(|e| e.field);
        assert_eq!(err.as_deref(), Some("dedupe_key[1]"));
        let unsigned = AccountSpec::from_json(json!({
            "name": "a",
            "auth": {"type": "bearer", "token": "t"},
            "dedupe_key": ["header:X-Delivery"]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            DedupeKey::compile(&unsigned).is_ok(),
            "nothing is signed: a token covers no part, and none is refused"
        );
    }
}
