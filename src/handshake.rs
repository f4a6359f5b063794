//! Handshakes: the requests a provider sends while an endpoint is being set up (Meta's
//! `hub.challenge`, Slack's `url_verification`, Zoom's `endpoint.url_validation`, Discord's
//! PING, WooCommerce's creation ping, Asana's `X-Hook-Secret`), and the answers they
//! expect.
//!
//! Owns the compiled [`Handshake`] and the decision "is this request the handshake, and
//! what is the answer". Pure: the ingest path records the row and sends the answer. It must
//! never answer a signed handshake before the request is verified, never let an unsigned
//! handshake through when the request carries a signature, and never compare a verify token
//! in variable time.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;

use crate::account::{HandshakeSpec, SpecError};
use base64::Engine;

use crate::extract::JsonPath;
use crate::secret::Secret;

/// A compiled handshake.
#[derive(Debug)]
pub enum Handshake {
    /// A `GET` with mode, verify token and challenge in the query.
    QueryChallenge {
        /// The mode parameter's name.
        mode_param: String,
        /// The mode value that asks for the challenge.
        mode: String,
        /// The verify token parameter's name.
        token_param: String,
        /// The challenge parameter's name.
        challenge_param: String,
        /// The expected verify token.
        verify_token: Secret,
    },
    /// A `GET` whose challenge is echoed without a token to check (Dropbox, WebSub).
    QueryEcho {
        /// The challenge parameter's name.
        challenge_param: String,
        /// The mode parameter and the modes that ask for the challenge, if any.
        mode: Option<(String, Vec<String>)>,
    },
    /// A `GET` whose token is answered with its HMAC (X's CRC), under `key`.
    QueryHmac {
        /// The token parameter's name.
        param: String,
    },
    /// When `when` equals `equals`, answer the text at `challenge` (Slack), or with
    /// `hmac`, answer it with its HMAC-SHA256 under the first secret (Zoom).
    Echo {
        /// Identifies the handshake.
        when: JsonPath,
        /// The value `when` must have.
        equals: Value,
        /// The challenge to answer.
        challenge: JsonPath,
        /// Answer `{"plainToken", "encryptedToken"}` instead of the text.
        hmac: bool,
    },
    /// A `GET` whose header `header` is answered `{"<reply_key>": value}` (Okta), after
    /// verification.
    HeaderEcho {
        /// The header carrying the challenge.
        header: hyper::header::HeaderName,
        /// The member of the JSON answer.
        reply_key: String,
    },
    /// A `HEAD` answered 200 with no body (Trello's creation check).
    Head,
    /// A request carrying the provider's signing secret in `header` (Asana), answered with
    /// the header echoed once the secret is stored (`server::ingest` decides whether the
    /// account may take it).
    SecretHeader {
        /// The header carrying the secret.
        header: hyper::header::HeaderName,
    },
    /// Answer a fixed JSON text.
    Reply {
        /// Identifies the handshake.
        when: JsonPath,
        /// The value `when` must have; `None` means any.
        equals: Option<Value>,
        /// The JSON answer.
        reply: String,
        /// Whether an unsigned request may be the handshake.
        unsigned: bool,
    },
}

/// The answer to a handshake: a body and its content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// `text/plain; charset=utf-8` or `application/json`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
    /// What the audit row's detail says.
    pub detail: String,
}

/// What a `GET` with query-challenge parameters comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetOutcome {
    /// Not a handshake request (no mode parameter): an ordinary method refusal.
    NotHandshake,
    /// The right mode and token: answer the challenge.
    Answer(Answer),
    /// A handshake with the wrong token or mode: refuse, saying why in the audit row.
    Refused(String),
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

impl Handshake {
    /// Compiles a spec. `has_mac_key` says whether the account's signature has an HMAC
    /// secret, which an `hmac_echo` answer needs.
    pub fn compile(spec: &HandshakeSpec, has_mac_key: bool) -> Result<Self, SpecError> {
        let path = |field: &str, text: &str| JsonPath::compile(&format!("handshake.{field}"), text);
        Ok(match spec {
            HandshakeSpec::QueryChallenge {
                mode_param,
                mode,
                token_param,
                challenge_param,
                verify_token,
            } => {
                let Some(token) = verify_token.clone().filter(|t| !t.is_empty()) else {
                    return Err(SpecError::new(
                        "handshake.verify_token",
                        "the subscription handshake needs the verify token typed at the \
                         provider (\"handshake\": {\"verify_token\": \"...\"})",
                    ));
                };
                Handshake::QueryChallenge {
                    mode_param: mode_param.clone(),
                    mode: mode.clone(),
                    token_param: token_param.clone(),
                    challenge_param: challenge_param.clone(),
                    verify_token: token,
                }
            }
            HandshakeSpec::QueryEcho {
                challenge_param,
                mode_param,
                modes,
            } => Handshake::QueryEcho {
                challenge_param: challenge_param.clone(),
                mode: mode_param.clone().map(|p| (p, modes.clone())),
            },
            HandshakeSpec::QueryHmac { param } => {
                if !has_mac_key {
                    return Err(SpecError::new(
                        "handshake.type",
                        "query_hmac answers with an HMAC, so the account needs an HMAC secret",
                    ));
                }
                Handshake::QueryHmac {
                    param: param.clone(),
                }
            }
            HandshakeSpec::HeaderEcho { header, reply_key } => Handshake::HeaderEcho {
                header: hyper::header::HeaderName::from_bytes(header.trim().as_bytes()).map_err(
                    |_| SpecError::new("handshake.header", "is not a valid header name"),
                )?,
                reply_key: reply_key.clone(),
            },
            HandshakeSpec::Head => Handshake::Head,
            HandshakeSpec::SecretHeader { header } => Handshake::SecretHeader {
                header: hyper::header::HeaderName::from_bytes(header.trim().as_bytes()).map_err(
                    |_| SpecError::new("handshake.header", "is not a valid header name"),
                )?,
            },
            HandshakeSpec::Echo {
                when,
                equals,
                challenge,
            }
            | HandshakeSpec::HmacEcho {
                when,
                equals,
                challenge,
            } => {
                let hmac = matches!(spec, HandshakeSpec::HmacEcho { .. });
                if hmac && !has_mac_key {
                    return Err(SpecError::new(
                        "handshake.type",
                        "hmac_echo answers with an HMAC of the account's secret, so the \
                         account needs an HMAC signature",
                    ));
                }
                Handshake::Echo {
                    when: path("when", when)?,
                    equals: equals.clone(),
                    challenge: path("challenge", challenge)?,
                    hmac,
                }
            }
            HandshakeSpec::Reply {
                when,
                equals,
                reply,
                unsigned,
            } => {
                let reply = match reply {
                    // An empty reply is an empty body (Xero's intent to receive).
                    Some(text) if text.is_empty() => String::new(),
                    Some(text) => {
                        let v: Value = serde_json::from_str(text).map_err(|e| {
                            SpecError::new("handshake.reply", format!("is not JSON: {e}"))
                        })?;
                        v.to_string()
                    }
                    None => r#"{"status":"handshake"}"#.to_owned(),
                };
                Handshake::Reply {
                    when: path("when", when)?,
                    equals: equals.clone(),
                    reply,
                    unsigned: *unsigned,
                }
            }
        })
    }

    /// The query parameter carrying a verify token, to redact in the audit row.
    pub fn token_param(&self) -> Option<&str> {
        match self {
            Handshake::QueryChallenge { token_param, .. } => Some(token_param),
            _ => None,
        }
    }

    /// The header that carries a secret-setting handshake's secret (Asana's
    /// `X-Hook-Secret`): redacted in every row, and the mark of the handshake.
    pub fn secret_header(&self) -> Option<&hyper::header::HeaderName> {
        match self {
            Handshake::SecretHeader { header } => Some(header),
            _ => None,
        }
    }

    /// The answer to a secret-setting handshake: 200 with an empty body; the caller adds
    /// the header with the secret echoed.
    pub fn secret_answer() -> Answer {
        Answer {
            content_type: TEXT,
            body: String::new(),
            detail: "handshake: the provider's signing secret was received, stored as the \
                     account's secret (sealed, never recorded here) and echoed"
                .into(),
        }
    }

    /// True for a handshake that arrives as `GET`.
    pub fn is_get(&self) -> bool {
        matches!(
            self,
            Handshake::QueryChallenge { .. }
                | Handshake::QueryEcho { .. }
                | Handshake::QueryHmac { .. }
        )
    }

    /// True for a handshake that is a `HEAD` request (Trello).
    pub fn answers_head(&self) -> bool {
        matches!(self, Handshake::Head)
    }

    /// The answer to a `HEAD` handshake: 200, no body.
    pub fn head_answer() -> Answer {
        Answer {
            content_type: TEXT,
            body: String::new(),
            detail: "handshake: HEAD answered (the callback URL check)".into(),
        }
    }

    /// Whether a `GET` with these headers is a header-challenge handshake (Okta), and its
    /// answer; the caller verifies the request before sending it.
    pub fn on_get_headers(&self, headers: &hyper::HeaderMap) -> Option<Answer> {
        let Handshake::HeaderEcho { header, reply_key } = self else {
            return None;
        };
        let value = headers.get(header)?;
        let challenge = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let mut body = serde_json::Map::new();
        body.insert(reply_key.clone(), Value::String(challenge));
        Some(Answer {
            content_type: JSON,
            body: Value::Object(body).to_string(),
            detail: format!("handshake: {header} echoed"),
        })
    }

    /// True for a handshake that may arrive unsigned.
    pub fn is_unsigned(&self) -> bool {
        matches!(self, Handshake::Reply { unsigned: true, .. })
    }

    /// Decides a `GET` by its query string; `mac_key` is the account's first HMAC secret.
    pub fn on_get(&self, query: Option<&str>, mac_key: Option<&[u8]>) -> GetOutcome {
        let param = |name: &str| {
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        match self {
            Handshake::QueryEcho {
                challenge_param,
                mode,
            } => {
                let Some(challenge) = param(challenge_param) else {
                    return GetOutcome::NotHandshake;
                };
                if let Some((mode_param, modes)) = mode
                    && !param(mode_param).is_some_and(|m| modes.contains(&m))
                {
                    return GetOutcome::Refused(format!(
                        "handshake: {mode_param} is not one of {modes:?}"
                    ));
                }
                return GetOutcome::Answer(Answer {
                    content_type: TEXT,
                    body: challenge,
                    detail: format!("handshake: {challenge_param} echoed"),
                });
            }
            Handshake::QueryHmac { param: name } => {
                let (Some(token), Some(key)) = (param(name), mac_key) else {
                    return GetOutcome::NotHandshake;
                };
                let Ok(mut mac) = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key) else {
                    return GetOutcome::NotHandshake;
                };
                mac.update(token.as_bytes());
                let tag =
                    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
                return GetOutcome::Answer(Answer {
                    content_type: JSON,
                    body: serde_json::json!({"response_token": format!("sha256={tag}")})
                        .to_string(),
                    detail: format!("handshake: {name} answered with its HMAC"),
                });
            }
            _ => {}
        }
        let Handshake::QueryChallenge {
            mode_param,
            mode,
            token_param,
            challenge_param,
            verify_token,
        } = self
        else {
            return GetOutcome::NotHandshake;
        };
        let (mut got_mode, mut got_token, mut got_challenge) = (None, None, None);
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if k == mode_param.as_str() {
                got_mode = Some(v.into_owned());
            } else if k == token_param.as_str() {
                got_token = Some(v.into_owned());
            } else if k == challenge_param.as_str() {
                got_challenge = Some(v.into_owned());
            }
        }
        let Some(got_mode) = got_mode else {
            return GetOutcome::NotHandshake;
        };
        if got_mode != *mode {
            return GetOutcome::Refused(format!(
                "handshake: {mode_param} is {got_mode:?}, expected {mode:?}"
            ));
        }
        if !got_token.is_some_and(|t| verify_token.matches(t.as_bytes())) {
            return GetOutcome::Refused(format!(
                "handshake: {token_param} is missing or is not the account's verify token"
            ));
        }
        match got_challenge {
            Some(c) => GetOutcome::Answer(Answer {
                content_type: TEXT,
                body: c,
                detail: format!("handshake: {challenge_param} echoed"),
            }),
            None => GetOutcome::Refused(format!("handshake: {challenge_param} is missing")),
        }
    }

    /// Decides a verified request (or, for an unsigned handshake, an unsigned one) by its
    /// decoded payload. `mac_key` is the account's first HMAC secret.
    pub fn on_payload(&self, payload: &Value, mac_key: Option<&[u8]>) -> Option<Answer> {
        match self {
            Handshake::QueryChallenge { .. }
            | Handshake::QueryEcho { .. }
            | Handshake::QueryHmac { .. }
            | Handshake::HeaderEcho { .. }
            | Handshake::SecretHeader { .. }
            | Handshake::Head => None,
            Handshake::Echo {
                when,
                equals,
                challenge,
                hmac: false,
            } => {
                let c = challenge_when(when, equals, challenge, payload)?;
                Some(Answer {
                    content_type: TEXT,
                    body: c,
                    detail: "handshake: challenge echoed".into(),
                })
            }
            Handshake::Echo {
                when,
                equals,
                challenge,
                hmac: true,
            } => {
                let token = challenge_when(when, equals, challenge, payload)?;
                let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(mac_key?).ok()?;
                mac.update(token.as_bytes());
                let encrypted = hex::encode(mac.finalize().into_bytes());
                // In the order of the provider's documentation: plainToken, encryptedToken.
                let body = format!(
                    r#"{{"plainToken":{},"encryptedToken":{}}}"#,
                    Value::String(token),
                    Value::String(encrypted)
                );
                Some(Answer {
                    content_type: JSON,
                    body,
                    detail: "handshake: token answered with its HMAC".into(),
                })
            }
            Handshake::Reply {
                when,
                equals,
                reply,
                ..
            } => {
                let v = when.value(payload)?;
                if equals.as_ref().is_some_and(|e| e != v) {
                    return None;
                }
                Some(Answer {
                    content_type: JSON,
                    body: reply.clone(),
                    detail: "handshake: answered".into(),
                })
            }
        }
    }
}

/// The text at `challenge` when `when` holds `equals`.
fn challenge_when(
    when: &JsonPath,
    equals: &Value,
    challenge: &JsonPath,
    payload: &Value,
) -> Option<String> {
    (when.value(payload) == Some(equals))
        .then(|| challenge.text(payload))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(v: Value) -> Handshake {
        let spec: HandshakeSpec = serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"));
        Handshake::compile(&spec, true).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn header_echo_answers_the_header_as_json_and_head_has_no_body() {
        let okta = compile(json!({"type": "header_echo",
            "header": "X-Okta-Verification-Challenge", "reply_key": "verification"}));
        assert!(!okta.is_get() && !okta.answers_head());
        let mut headers = hyper::HeaderMap::new();
        assert_eq!(okta.on_get_headers(&headers), None);
        headers.insert(
            "x-okta-verification-challenge",
            hyper::header::HeaderValue::from_static("c\"q"),
        );
        let answer = okta.on_get_headers(&headers).map(|a| a.body);
        assert_eq!(answer.as_deref(), Some(r#"{"verification":"c\"q"}"#));
        let trello = compile(json!({"type": "head"}));
        assert!(trello.answers_head());
        assert_eq!(trello.on_get_headers(&headers), None);
        assert_eq!(Handshake::head_answer().body, "");
        let bad: HandshakeSpec = serde_json::from_value(
            json!({"type": "header_echo", "header": "bad header", "reply_key": "v"}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(Handshake::compile(&bad, false).is_err());
    }

    #[test]
    fn query_echo_and_query_hmac_answer_gets_without_a_token() {
        let dropbox = compile(json!({"type": "query_echo", "challenge_param": "challenge"}));
        assert!(dropbox.is_get());
        let ok = dropbox.on_get(Some("challenge=abc%20def"), None);
        assert!(
            matches!(ok, GetOutcome::Answer(ref a) if a.body == "abc def" && a.content_type == TEXT)
        );
        assert_eq!(dropbox.on_get(Some("x=1"), None), GetOutcome::NotHandshake);
        let websub = compile(
            json!({"type": "query_echo", "challenge_param": "hub.challenge",
                                    "mode_param": "hub.mode", "modes": ["subscribe", "unsubscribe"]}),
        );
        let sub = websub.on_get(
            Some("hub.mode=subscribe&hub.topic=t&hub.challenge=42"),
            None,
        );
        assert!(matches!(sub, GetOutcome::Answer(ref a) if a.body == "42"));
        let odd = websub.on_get(Some("hub.mode=denied&hub.challenge=42"), None);
        assert!(matches!(odd, GetOutcome::Refused(_)));
        let x = compile(json!({"type": "query_hmac", "param": "crc_token"}));
        let answer = x.on_get(Some("crc_token=challenge_string"), Some(b"consumer_secret"));
        // HMAC-SHA256("consumer_secret", "challenge_string"), base64, computed with Python hmac.
        let want = r#"{"response_token":"sha256=v1WdiCVwy17uGTMWveHGlqQXN/qW1bQraNXXByRO2YA="}"#;
        assert!(
            matches!(answer, GetOutcome::Answer(ref a) if a.body == want),
            "{answer:?}"
        );
        assert_eq!(
            x.on_get(Some("crc_token=t"), None),
            GetOutcome::NotHandshake
        );
    }

    #[test]
    fn query_challenge_echoes_only_with_the_right_token() {
        let h = compile(json!({"type": "query_challenge", "verify_token": "vt"}));
        let ok = h.on_get(
            Some("hub.mode=subscribe&hub.verify_token=vt&hub.challenge=1158201444"),
            None,
        );
        assert!(matches!(ok, GetOutcome::Answer(ref a) if a.body == "1158201444"));
        let wrong = h.on_get(
            Some("hub.mode=subscribe&hub.verify_token=no&hub.challenge=1"),
            None,
        );
        assert!(matches!(wrong, GetOutcome::Refused(_)));
        let no_token = h.on_get(Some("hub.mode=subscribe&hub.challenge=1"), None);
        assert!(matches!(no_token, GetOutcome::Refused(_)));
        assert_eq!(h.on_get(None, None), GetOutcome::NotHandshake);
        let unsubscribe = h.on_get(Some("hub.mode=unsubscribe&hub.verify_token=vt"), None);
        assert!(matches!(unsubscribe, GetOutcome::Refused(_)));
    }

    #[test]
    fn query_challenge_needs_its_token() {
        let spec: HandshakeSpec = serde_json::from_value(json!({"type": "query_challenge"}))
            .unwrap_or_else(|e| panic!("{e}"));
        let err = Handshake::compile(&spec, true).err().map(|e| e.field);
        assert_eq!(err.as_deref(), Some("handshake.verify_token"));
    }

    #[test]
    fn echo_and_hmac_echo_and_reply() {
        let slack = compile(json!({"type": "echo", "when": "$.type",
            "equals": "url_verification", "challenge": "$.challenge"}));
        let hs = json!({"type": "url_verification", "challenge": "3eZbrw1a"});
        assert_eq!(
            slack.on_payload(&hs, None).map(|a| a.body),
            Some("3eZbrw1a".into())
        );
        assert_eq!(
            slack.on_payload(&json!({"type": "event_callback"}), None),
            None
        );

        let zoom = compile(json!({"type": "hmac_echo", "when": "$.event",
            "equals": "endpoint.url_validation", "challenge": "$.payload.plainToken"}));
        let hs = json!({"event": "endpoint.url_validation", "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}});
        let answer = zoom
            .on_payload(&hs, Some(b"secret"))
            .map(|a| a.body)
            .unwrap_or_default();
        let v: Value = serde_json::from_str(&answer).unwrap_or_default();
        assert_eq!(v["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
        assert_eq!(v["encryptedToken"].as_str().map(str::len), Some(64));

        let discord = compile(
            json!({"type": "reply", "when": "$.type", "equals": 1, "reply": "{\"type\": 1}"}),
        );
        assert_eq!(
            discord
                .on_payload(&json!({"type": 1}), None)
                .map(|a| a.body),
            Some(r#"{"type":1}"#.into())
        );
        assert_eq!(discord.on_payload(&json!({"type": 2}), None), None);

        let woo = compile(json!({"type": "reply", "when": "$.webhook_id", "unsigned": true}));
        assert!(woo.is_unsigned());
        assert!(woo.on_payload(&json!({"webhook_id": "12"}), None).is_some());
        assert!(woo.on_payload(&json!({"id": 12}), None).is_none());
    }
}
