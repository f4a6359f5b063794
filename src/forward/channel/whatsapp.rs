//! The WhatsApp Cloud API channel: `POST {base_url}/{api_version}/{phone_number_id}/messages`
//! with a bearer token, sending a text or an approved template, and what its error codes
//! mean for the retry policy.
//!
//! Owns the `[chat.whatsapp]` settings, an account's approved template (parsed once, when
//! the account is saved), the request for one status message and the mapping of an answer
//! to an [`Answer`]. Pure. The access token goes only into the `Authorization` header.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Outgoing, Unavailable, answer_detail};
use crate::account::SpecError;
use crate::forward::retry::Answer;
use crate::render::{Template, Values};
use crate::secret::Secret;

/// `[chat.whatsapp]`: a WhatsApp Business phone number and a token allowed to send from it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// A system-user access token (`HOOKGATE_CHAT_WHATSAPP_TOKEN`); without it the channel
    /// is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// The sending phone number's id (`HOOKGATE_CHAT_WHATSAPP_PHONE_NUMBER_ID`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    /// The Graph API version in the path.
    pub api_version: String,
    /// The Graph API's base URL, without a trailing slash.
    pub base_url: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            token: None,
            phone_number_id: None,
            api_version: "v21.0".to_owned(),
            base_url: "https://graph.facebook.com".to_owned(),
        }
    }
}

/// `forward.whatsapp_template` of an account: the approved template its status message is
/// sent as (outside the 24-hour customer service window only templates are delivered).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    /// The template's name as approved in WhatsApp Manager (`payment_update`).
    pub name: String,
    /// Its language code (`en_US`).
    pub language: String,
    /// The body's parameters `{{1}}`, `{{2}}`, ... in order, each a status template
    /// (`{{params.amount | default: "your payment"}}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
}

/// An approved template with its parameters parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovedTemplate {
    name: String,
    language: String,
    params: Vec<Template>,
}

impl ApprovedTemplate {
    /// Checks the names and parses every parameter; errors name the field
    /// (`forward.whatsapp_template.name`).
    pub fn compile(spec: &TemplateSpec) -> Result<ApprovedTemplate, SpecError> {
        ApprovedTemplate::compile_at(spec, "forward.whatsapp_template")
    }

    /// Like [`ApprovedTemplate::compile`], errors named under `field`.
    pub fn compile_at(spec: &TemplateSpec, field: &str) -> Result<ApprovedTemplate, SpecError> {
        let valid_name = !spec.name.is_empty()
            && spec.name.len() <= 512
            && spec
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_name {
            return Err(SpecError::new(
                format!("{field}.name"),
                "must be the approved template's name: lower-case letters, digits and _",
            ));
        }
        let valid_language = (2..=16).contains(&spec.language.len())
            && spec
                .language
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid_language {
            return Err(SpecError::new(
                format!("{field}.language"),
                "must be a language code such as en or en_US",
            ));
        }
        let params = spec
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| Template::parse_at(p, &format!("{field}.params[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(ApprovedTemplate {
            name: spec.name.clone(),
            language: spec.language.clone(),
            params,
        })
    }

    /// The message for one event: the template's name, language and rendered parameters.
    pub fn message(&self, v: &Values<'_>) -> TemplateMessage {
        TemplateMessage {
            name: self.name.clone(),
            language: self.language.clone(),
            params: self.params.iter().map(|t| t.render(v)).collect(),
        }
    }
}

/// An account's approved templates: one per event type (`forward.whatsapp_templates`)
/// and a default (`forward.whatsapp_template`). An event type with neither is sent as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovedTemplates {
    default: Option<ApprovedTemplate>,
    by_type: BTreeMap<String, ApprovedTemplate>,
}

impl ApprovedTemplates {
    /// Compiles the default and every per-type template; errors name the field.
    pub fn compile(
        default: Option<&TemplateSpec>,
        by_type: &BTreeMap<String, TemplateSpec>,
    ) -> Result<ApprovedTemplates, SpecError> {
        let default = default.map(ApprovedTemplate::compile).transpose()?;
        let by_type = by_type
            .iter()
            .map(|(t, spec)| {
                let field = format!("forward.whatsapp_templates.{t}");
                Ok((t.clone(), ApprovedTemplate::compile_at(spec, &field)?))
            })
            .collect::<Result<_, SpecError>>()?;
        Ok(ApprovedTemplates { default, by_type })
    }

    /// The template for an event of this type: its own, else the default.
    pub fn select(&self, event_type: Option<&str>) -> Option<&ApprovedTemplate> {
        event_type
            .and_then(|t| self.by_type.get(t))
            .or(self.default.as_ref())
    }
}

/// A template message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateMessage {
    /// The approved template's name.
    pub name: String,
    /// Its language code.
    pub language: String,
    /// The body parameters, rendered.
    pub params: Vec<String>,
}

/// Builds the `/messages` request to `to` (a phone number in international form): `text`
/// as a text message, or `template` when the account sends an approved template.
pub fn request(
    s: &Settings,
    to: &str,
    text: &str,
    template: Option<&TemplateMessage>,
) -> Result<Outgoing, Unavailable> {
    let (Some(token), Some(phone)) = (
        s.token.as_ref().filter(|t| !t.is_empty()),
        s.phone_number_id.as_deref().filter(|p| !p.is_empty()),
    ) else {
        return Err(Unavailable::NotConfigured {
            what: "the whatsapp channel",
            setting: "chat.whatsapp.token and chat.whatsapp.phone_number_id \
                      (HOOKGATE_CHAT_WHATSAPP_TOKEN, HOOKGATE_CHAT_WHATSAPP_PHONE_NUMBER_ID)",
        });
    };
    let to = to.trim().trim_start_matches("whatsapp:");
    let body = match template {
        None => json!({
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
            "type": "text", "text": {"preview_url": false, "body": text},
        }),
        Some(t) => {
            let parameters: Vec<Value> = t
                .params
                .iter()
                .map(|p| json!({"type": "text", "text": p}))
                .collect();
            let components = if parameters.is_empty() {
                json!([])
            } else {
                json!([{"type": "body", "parameters": parameters}])
            };
            json!({
                "messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
                "type": "template",
                "template": {"name": t.name, "language": {"code": t.language}, "components": components},
            })
        }
    };
    Ok(Outgoing {
        url: format!(
            "{}/{}/{}/messages",
            s.base_url.trim_end_matches('/'),
            s.api_version.trim_matches('/'),
            phone
        ),
        headers: vec![
            ("content-type", "application/json".to_owned()),
            ("authorization", format!("Bearer {}", token.expose_str())),
        ],
        body: body.to_string(),
        secrets: vec![token.expose_str().to_owned()],
        kind: super::Kind::WhatsApp,
    })
}

/// Error codes that mean this contact cannot be messaged now: outside the 24-hour window
/// (131047), undeliverable (131026), not a WhatsApp user or not allowed in test mode
/// (131030), or the user stopped marketing messages (131050).
const NO_SESSION: &[i64] = &[131047, 131026, 131030, 131050];

/// Error codes worth trying again later: rate and spam limits (4, 80007, 130429, 131048,
/// 131056) and Meta's temporary failures (1, 2, 131000, 131016, 133004).
const RETRYABLE: &[i64] = &[
    1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131056, 133004,
];

/// What an answer of the Cloud API means, by its `error.code`; a bad or expired token
/// (190), a missing permission (10, 200–299) or a malformed message (100, 132xxx) is
/// refused. Without a known code, 429 and 5xx are retried and other errors refused.
pub fn answer(status: u16, retry_after_ms: Option<u64>, body: &Value) -> (Answer, String) {
    let error = body.get("error");
    let code = error.and_then(|e| e.get("code")).and_then(Value::as_i64);
    let message = error
        .and_then(|e| {
            e.pointer("/error_data/details")
                .or_else(|| e.get("message"))
        })
        .and_then(Value::as_str)
        .unwrap_or("");
    let detail = match code {
        Some(c) => answer_detail(status, &format!("error {c}: {message}")),
        None => answer_detail(status, message),
    };
    let retry = Answer::Retryable { retry_after_ms };
    let answer = match (status, code) {
        (200..=299, _) => Answer::Delivered,
        (_, Some(c)) if NO_SESSION.contains(&c) => Answer::NoSession,
        (_, Some(c)) if RETRYABLE.contains(&c) => retry,
        (_, Some(_)) => Answer::Refused,
        (429 | 500..=599, None) => retry,
        _ => Answer::Refused,
    };
    (answer, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured() -> Settings {
        Settings {
            token: Some(Secret::new("EAAG-secret")),
            phone_number_id: Some("1055".to_owned()),
            ..Settings::default()
        }
    }

    fn body(out: &Outgoing) -> Value {
        serde_json::from_str(&out.body).unwrap_or(Value::Null)
    }

    #[test]
    fn a_text_message_and_an_approved_template() {
        let out =
            request(&configured(), "+255700000001", "Paid", None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.url, "https://graph.facebook.com/v21.0/1055/messages");
        assert!(
            out.headers
                .contains(&("authorization", "Bearer EAAG-secret".to_owned()))
        );
        assert_eq!(body(&out)["text"]["body"], "Paid");
        assert_eq!(body(&out)["to"], "+255700000001");
        let spec = TemplateSpec {
            name: "payment_update".into(),
            language: "en_US".into(),
            params: vec![
                "{{params.amount | default: \"your payment\"}}".into(),
                "{{event_type}}".into(),
            ],
        };
        let t = ApprovedTemplate::compile(&spec).unwrap_or_else(|e| panic!("{e}"));
        let params = json!({});
        let m = t.message(&Values {
            account: "shop",
            sender: None,
            source: None,
            event_type: Some("payment.failed"),
            event_id: None,
            params: &params,
        });
        let out =
            request(&configured(), "+1555", "Paid", Some(&m)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            body(&out)["template"],
            json!({"name": "payment_update", "language": {"code": "en_US"}, "components": [
                {"type": "body", "parameters": [
                    {"type": "text", "text": "your payment"}, {"type": "text", "text": "payment.failed"}]}]})
        );
        assert_eq!(body(&out)["type"], "template");
        let half = Settings {
            phone_number_id: None,
            ..configured()
        };
        assert!(request(&half, "+1", "x", None).is_err());
    }

    #[test]
    fn templates_are_checked_with_the_field_named() {
        let bad = |name: &str, language: &str, params: &[&str]| {
            ApprovedTemplate::compile(&TemplateSpec {
                name: name.into(),
                language: language.into(),
                params: params.iter().map(|p| (*p).to_owned()).collect(),
            })
            .err()
            .map(|e| e.field)
            .unwrap_or_default()
        };
        assert_eq!(
            bad("Payment Update", "en", &[]),
            "forward.whatsapp_template.name"
        );
        assert_eq!(bad("ok", "", &[]), "forward.whatsapp_template.language");
        assert_eq!(
            bad("ok", "en", &["x", "{{nope}}"]),
            "forward.whatsapp_template.params[1]"
        );
        let spec = |name: &str| TemplateSpec {
            name: name.into(),
            language: "en".into(),
            params: vec![],
        };
        let by_type = BTreeMap::from([("payment.failed".to_owned(), spec("payment_failed"))]);
        let all = ApprovedTemplates::compile(Some(&spec("payment_update")), &by_type)
            .unwrap_or_else(|e| panic!("{e}"));
        let name = |t: Option<&str>| all.select(t).map(|a| a.name.clone());
        assert_eq!(
            name(Some("payment.failed")).as_deref(),
            Some("payment_failed")
        );
        assert_eq!(
            name(Some("payment.reversed")).as_deref(),
            Some("payment_update")
        );
        let only = ApprovedTemplates::compile(None, &by_type).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            only.select(Some("payment.reversed")).is_none(),
            "sent as text"
        );
        let broken = BTreeMap::from([("payment.failed".to_owned(), spec("Bad Name"))]);
        let e = ApprovedTemplates::compile(None, &broken)
            .err()
            .map(|e| e.field);
        assert_eq!(
            e.as_deref(),
            Some("forward.whatsapp_templates.payment.failed.name")
        );
    }

    #[test]
    fn error_codes_map_to_the_retry_policy() {
        let err = |code: i64| json!({"error": {"message": "(#x) y", "type": "OAuthException", "code": code, "error_data": {"messaging_product": "whatsapp", "details": "Message failed to send because more than 24 hours have passed"}, "fbtrace_id": "A"}});
        let (a, detail) = answer(400, None, &err(131047));
        assert_eq!(a, Answer::NoSession);
        assert_eq!(
            detail,
            "HTTP 400: error 131047: Message failed to send because more than 24 hours have passed"
        );
        assert_eq!(answer(400, None, &err(131026)).0, Answer::NoSession);
        for rate in [130429, 131056, 80007] {
            assert_eq!(
                answer(400, Some(5000), &err(rate)).0,
                Answer::Retryable {
                    retry_after_ms: Some(5000)
                }
            );
        }
        assert_eq!(answer(401, None, &err(190)).0, Answer::Refused);
        assert_eq!(answer(400, None, &err(132001)).0, Answer::Refused);
        assert_eq!(
            answer(503, None, &Value::Null).0,
            Answer::Retryable {
                retry_after_ms: None
            }
        );
        assert_eq!(answer(400, None, &Value::Null).0, Answer::Refused);
        assert_eq!(
            answer(200, None, &json!({"messages": [{"id": "wamid.1"}]})).0,
            Answer::Delivered
        );
    }
}
