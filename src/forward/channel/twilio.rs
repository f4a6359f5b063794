//! The Twilio Messages channel, SMS and WhatsApp:
//! `POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json` with a form body
//! (`To`, `From` or `MessagingServiceSid`, `Body`) and HTTP Basic auth, and what its error
//! codes mean for the retry policy.
//!
//! Owns the `[chat.twilio]` settings, the request for one status message and the mapping
//! of an answer to an [`Answer`]. Pure. The auth token goes only into the `Authorization`
//! header.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Outgoing, Unavailable, answer_detail};
use crate::forward::retry::Answer;
use crate::secret::Secret;

/// `[chat.twilio]`: an account, its auth token and the senders to send from.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The account SID, `AC...` (`HOOKGATE_CHAT_TWILIO_ACCOUNT_SID`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_sid: Option<String>,
    /// The auth token (`HOOKGATE_CHAT_TWILIO_AUTH_TOKEN`); without it the channel is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<Secret>,
    /// The SMS sender, a phone number in E.164 form (`HOOKGATE_CHAT_TWILIO_FROM`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The WhatsApp sender's number (`HOOKGATE_CHAT_TWILIO_WHATSAPP_FROM`), with or
    /// without the `whatsapp:` prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whatsapp_from: Option<String>,
    /// A Messaging Service, `MG...`, used instead of a sender number when set
    /// (`HOOKGATE_CHAT_TWILIO_MESSAGING_SERVICE_SID`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messaging_service_sid: Option<String>,
    /// The API's base URL, without a trailing slash.
    pub base_url: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            account_sid: None,
            auth_token: None,
            from: None,
            whatsapp_from: None,
            messaging_service_sid: None,
            base_url: "https://api.twilio.com".to_owned(),
        }
    }
}

/// SMS or WhatsApp through Twilio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    /// A text message to a phone number.
    Sms,
    /// A WhatsApp message; both addresses carry the `whatsapp:` prefix.
    WhatsApp,
}

fn whatsapp_address(number: &str) -> String {
    let n = number.trim();
    if n.starts_with("whatsapp:") {
        n.to_owned()
    } else {
        format!("whatsapp:{n}")
    }
}

/// Builds the `Messages.json` request to `to` (a phone number in E.164 form).
pub fn request(
    s: &Settings,
    medium: Medium,
    to: &str,
    text: &str,
) -> Result<Outgoing, Unavailable> {
    let (Some(sid), Some(token)) = (
        s.account_sid.as_deref().filter(|v| !v.is_empty()),
        s.auth_token.as_ref().filter(|t| !t.is_empty()),
    ) else {
        return Err(Unavailable::NotConfigured {
            what: "the twilio channel",
            setting: "chat.twilio.account_sid and chat.twilio.auth_token \
                      (HOOKGATE_CHAT_TWILIO_ACCOUNT_SID, HOOKGATE_CHAT_TWILIO_AUTH_TOKEN)",
        });
    };
    let service = s.messaging_service_sid.as_deref().filter(|v| !v.is_empty());
    let from = match medium {
        Medium::Sms => s.from.as_deref().map(str::to_owned),
        Medium::WhatsApp => s.whatsapp_from.as_deref().map(whatsapp_address),
    }
    .filter(|v| !v.is_empty());
    let to = match medium {
        Medium::Sms => to.trim().to_owned(),
        Medium::WhatsApp => whatsapp_address(to),
    };
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("To", &to);
    match (service, from) {
        (Some(mg), _) => form.append_pair("MessagingServiceSid", mg),
        (None, Some(from)) => form.append_pair("From", &from),
        (None, None) => {
            return Err(Unavailable::NotConfigured {
                what: "the twilio channel's sender",
                setting: match medium {
                    Medium::Sms => "chat.twilio.from or chat.twilio.messaging_service_sid",
                    Medium::WhatsApp => {
                        "chat.twilio.whatsapp_from or chat.twilio.messaging_service_sid"
                    }
                },
            });
        }
    };
    form.append_pair("Body", text);
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{sid}:{}", token.expose_str()));
    Ok(Outgoing {
        url: format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            s.base_url.trim_end_matches('/'),
            form_urlencoded::byte_serialize(sid.as_bytes()).collect::<String>()
        ),
        headers: vec![
            (
                "content-type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("authorization", format!("Basic {basic}")),
        ],
        body: form.finish(),
        secrets: vec![token.expose_str().to_owned(), basic],
        kind: match medium {
            Medium::Sms => super::Kind::TwilioSms,
            Medium::WhatsApp => super::Kind::TwilioWhatsApp,
        },
    })
}

/// Error codes that mean this contact cannot be messaged: unsubscribed with STOP (21610),
/// an invalid or non-mobile `To` (21211, 21614), and WhatsApp outside the 24-hour session
/// window (63016).
const NO_SESSION: &[i64] = &[21610, 21211, 21614, 63016];

/// What an answer of the Messages API means: 2xx (201 Created) is delivered to Twilio;
/// the codes above are `no_session`; 429, code 20429 (too many requests) and 5xx are
/// retried, honouring `Retry-After`; anything else (20003: bad credentials) is refused.
pub fn answer(status: u16, retry_after_ms: Option<u64>, body: &Value) -> (Answer, String) {
    let code = body.get("code").and_then(Value::as_i64);
    let message = body.get("message").and_then(Value::as_str).unwrap_or("");
    let detail = match code {
        Some(c) => answer_detail(status, &format!("error {c}: {message}")),
        None => answer_detail(status, message),
    };
    let answer = match (status, code) {
        (200..=299, _) => Answer::Delivered,
        (_, Some(c)) if NO_SESSION.contains(&c) => Answer::NoSession,
        (429 | 500..=599, _) | (_, Some(20429)) => Answer::Retryable { retry_after_ms },
        _ => Answer::Refused,
    };
    (answer, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn configured() -> Settings {
        Settings {
            account_sid: Some("AC123".to_owned()),
            auth_token: Some(Secret::new("twilio-secret")),
            from: Some("+15550001111".to_owned()),
            whatsapp_from: Some("+15550002222".to_owned()),
            ..Settings::default()
        }
    }

    fn form(out: &Outgoing) -> Vec<(String, String)> {
        form_urlencoded::parse(out.body.as_bytes())
            .into_owned()
            .collect()
    }

    #[test]
    fn sms_and_whatsapp_requests() {
        let out = request(&configured(), Medium::Sms, "+255700000001", "Paid 5 & more")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            out.url,
            "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json"
        );
        assert_eq!(
            form(&out),
            [
                ("To", "+255700000001"),
                ("From", "+15550001111"),
                ("Body", "Paid 5 & more")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("AC123:twilio-secret");
        assert!(
            out.headers
                .contains(&("authorization", format!("Basic {basic}")))
        );
        assert_eq!(
            out.redact(&format!("x {basic} twilio-secret")),
            "x ******** ********"
        );
        let wa = request(&configured(), Medium::WhatsApp, "+2557", "Hi")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(form(&wa)[0], ("To".to_owned(), "whatsapp:+2557".to_owned()));
        assert_eq!(
            form(&wa)[1],
            ("From".to_owned(), "whatsapp:+15550002222".to_owned())
        );
        let service = Settings {
            messaging_service_sid: Some("MG9".into()),
            ..configured()
        };
        let out = request(&service, Medium::Sms, "+1", "x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            form(&out)[1],
            ("MessagingServiceSid".to_owned(), "MG9".to_owned())
        );
        let no_sender = Settings {
            from: None,
            ..configured()
        };
        assert!(request(&no_sender, Medium::Sms, "+1", "x").is_err());
        assert!(request(&Settings::default(), Medium::Sms, "+1", "x").is_err());
    }

    #[test]
    fn error_codes_map_to_the_retry_policy() {
        let err = |status: u16, code: i64| json!({"code": code, "message": "m", "more_info": "https://www.twilio.com/docs/errors/x", "status": status});
        for code in [21610, 21211, 63016] {
            assert_eq!(
                answer(400, None, &err(400, code)).0,
                Answer::NoSession,
                "{code}"
            );
        }
        let (a, detail) = answer(429, Some(2000), &err(429, 20429));
        assert_eq!(
            a,
            Answer::Retryable {
                retry_after_ms: Some(2000)
            }
        );
        assert_eq!(detail, "HTTP 429: error 20429: m");
        assert_eq!(
            answer(503, None, &Value::Null).0,
            Answer::Retryable {
                retry_after_ms: None
            }
        );
        assert_eq!(answer(401, None, &err(401, 20003)).0, Answer::Refused);
        assert_eq!(
            answer(201, None, &json!({"sid": "SM1", "status": "queued"})).0,
            Answer::Delivered
        );
    }
}
