//! The Telegram Bot API channel: `POST {base_url}/bot{token}/sendMessage` with
//! `{chat_id, text}`, and what its answers mean for the retry policy.
//!
//! Owns the `[chat.telegram]` settings, the request for one status message and the mapping
//! of an answer to an [`Answer`]. Pure. The bot token travels in the URL's path, so the URL
//! must never be logged or recorded; the caller redacts the token from any error text.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Outgoing, Unavailable, answer_detail};
use crate::forward::retry::Answer;
use crate::secret::Secret;

/// `[chat.telegram]`: a bot's token, and where the Bot API is reached.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The bot token from @BotFather (`HOOKGATE_CHAT_TELEGRAM_TOKEN`); without it the
    /// channel is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// The Bot API's base URL, without a trailing slash.
    pub base_url: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            token: None,
            base_url: "https://api.telegram.org".to_owned(),
        }
    }
}

/// Builds the `sendMessage` request to chat `to` (a numeric chat id or `@channelname`).
pub fn request(s: &Settings, to: &str, text: &str) -> Result<Outgoing, Unavailable> {
    let Some(token) = s.token.as_ref().filter(|t| !t.is_empty()) else {
        return Err(Unavailable::NotConfigured {
            what: "the telegram channel",
            setting: "chat.telegram.token (HOOKGATE_CHAT_TELEGRAM_TOKEN)",
        });
    };
    let chat_id = match to.trim().parse::<i64>() {
        Ok(n) => json!(n),
        Err(_) => json!(to.trim()),
    };
    Ok(Outgoing {
        url: format!(
            "{}/bot{}/sendMessage",
            s.base_url.trim_end_matches('/'),
            token.expose_str()
        ),
        headers: vec![("content-type", "application/json".to_owned())],
        body: json!({"chat_id": chat_id, "text": text}).to_string(),
        secrets: vec![token.expose_str().to_owned()],
        kind: super::Kind::Telegram,
    })
}

/// What an answer of the Bot API means: `ok:true` is delivered; a blocked bot, a user who
/// never started it or a chat that does not exist is `no_session`; 429 waits the
/// `parameters.retry_after` it names; 5xx is retried; anything else (a bad token answers
/// 401 or 404, a malformed message 400) is refused.
pub fn answer(status: u16, retry_after_ms: Option<u64>, body: &Value) -> (Answer, String) {
    let description = body
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("");
    let detail = answer_detail(status, description);
    let lower = description.to_ascii_lowercase();
    let answer = match status {
        200..=299 if body.get("ok") != Some(&Value::Bool(false)) => Answer::Delivered,
        403 => Answer::NoSession,
        400 if [
            "chat not found",
            "user not found",
            "peer_id_invalid",
            "user is deactivated",
        ]
        .iter()
        .any(|m| lower.contains(m)) =>
        {
            Answer::NoSession
        }
        429 | 500..=599 => Answer::Retryable {
            retry_after_ms: body
                .pointer("/parameters/retry_after")
                .and_then(Value::as_u64)
                .map(|s| s.saturating_mul(1000))
                .or(retry_after_ms),
        },
        _ => Answer::Refused,
    };
    (answer, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured() -> Settings {
        Settings {
            token: Some(Secret::new("123456:ABC-secret")),
            base_url: "http://127.0.0.1:9/".to_owned(),
        }
    }

    #[test]
    fn the_request_carries_the_chat_and_the_text_and_names_its_secret() {
        let out = request(&configured(), "  42 ", "Paid").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            out.url,
            "http://127.0.0.1:9/bot123456:ABC-secret/sendMessage"
        );
        let body: Value = serde_json::from_str(&out.body).unwrap_or(Value::Null);
        assert_eq!(body, json!({"chat_id": 42, "text": "Paid"}));
        assert_eq!(
            out.redact(&format!("cannot reach {}", out.url)),
            "cannot reach http://127.0.0.1:9/bot********/sendMessage"
        );
        let by_name = request(&configured(), "@shop_news", "x").unwrap_or_else(|e| panic!("{e}"));
        assert!(by_name.body.contains("\"chat_id\":\"@shop_news\""));
        let off = request(&Settings::default(), "42", "x")
            .err()
            .map(|e| e.to_string());
        assert!(
            off.unwrap_or_default()
                .contains("HOOKGATE_CHAT_TELEGRAM_TOKEN")
        );
    }

    #[test]
    fn answers_map_to_the_retry_policy() {
        let ok = json!({"ok": true, "result": {"message_id": 1}});
        assert_eq!(answer(200, None, &ok).0, Answer::Delivered);
        let blocked = json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"});
        let (a, detail) = answer(403, None, &blocked);
        assert_eq!(a, Answer::NoSession);
        assert_eq!(detail, "HTTP 403: Forbidden: bot was blocked by the user");
        let missing =
            json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"});
        assert_eq!(answer(400, None, &missing).0, Answer::NoSession);
        let too_long = json!({"ok": false, "error_code": 400, "description": "Bad Request: message is too long"});
        assert_eq!(answer(400, None, &too_long).0, Answer::Refused);
        let flood = json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7", "parameters": {"retry_after": 7}});
        assert_eq!(
            answer(429, Some(1000), &flood).0,
            Answer::Retryable {
                retry_after_ms: Some(7000)
            }
        );
        assert_eq!(
            answer(502, None, &Value::Null).0,
            Answer::Retryable {
                retry_after_ms: None
            }
        );
        let bad_token = json!({"ok": false, "error_code": 401, "description": "Unauthorized"});
        assert_eq!(answer(401, None, &bad_token).0, Answer::Refused);
        assert_eq!(
            answer(404, None, &Value::Null).0,
            Answer::Refused,
            "a wrong token's 404 is no session problem"
        );
        assert_eq!(answer(200, None, &json!({"ok": false})).0, Answer::Refused);
    }
}
