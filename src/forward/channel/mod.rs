//! Where a status message goes: the generic chat connector (`[chat] url`) or one of the
//! chat channels (Telegram, WhatsApp Cloud, Twilio SMS and WhatsApp), chosen per account.
//!
//! Owns the channel kinds an account may name (`forward.channel`), the pure building of
//! the one request that delivers a message ([`build`]), and the classification of its
//! answer as the retry policy's [`Answer`] ([`Outgoing::classify`]). [`prepare`] is the
//! thin edge that reads the account (and, for a WhatsApp template, the event's values).
//! It must never log a request's URL or headers (a Telegram bot token is in the URL's
//! path) and never put a credential into a detail: [`Outgoing::redact`] masks them.
//!
//! The connector receives an `Idempotency-Key`; the channels' APIs take none, so a message
//! sent just before a crash, whose attempt was not recorded, is sent again after the
//! restart: delivery through a channel is at least once.

pub mod telegram;
pub mod twilio;
pub mod whatsapp;

use hyper::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::account::{AccountSpec, SpecError};
use crate::cli::client::ClientError;
use crate::config::Chat;
use crate::forward::retry::{self, Answer};
use crate::render::Values;
use crate::secret::MASK;
use crate::server::AppState;
use crate::store::Delivery;

/// A chat channel an account's status messages go through (`forward.channel`); without
/// one, they go to the generic connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// The Telegram Bot API; the sender is a chat id.
    Telegram,
    /// The WhatsApp Cloud API; the sender is a phone number.
    Whatsapp,
    /// SMS through Twilio; the sender is a phone number.
    TwilioSms,
    /// WhatsApp through Twilio; the sender is a phone number.
    TwilioWhatsapp,
}

impl ChannelKind {
    /// The name an account uses for it.
    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::Telegram => "telegram",
            ChannelKind::Whatsapp => "whatsapp",
            ChannelKind::TwilioSms => "twilio_sms",
            ChannelKind::TwilioWhatsapp => "twilio_whatsapp",
        }
    }
}

/// What an [`Outgoing`] request goes to, which decides how its answer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The generic connector.
    Connector,
    /// Telegram.
    Telegram,
    /// WhatsApp Cloud.
    WhatsApp,
    /// Twilio SMS.
    TwilioSms,
    /// Twilio WhatsApp.
    TwilioWhatsApp,
}

/// One request that delivers a status message, ready to send.
pub struct Outgoing {
    /// Where it goes. May hold a credential (Telegram): never log it.
    pub url: String,
    /// Its headers. May hold a credential: never log them.
    pub headers: Vec<(&'static str, String)>,
    /// Its body.
    pub body: String,
    /// The credentials in the request, masked in every detail recorded about it.
    secrets: Vec<String>,
    /// What it goes to.
    kind: Kind,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Why a message cannot be sent now; it stays in the outbox and is tried again later.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// The account's channel (or the connector) is not configured on this gateway.
    #[error("{what} is not configured on this gateway (set {setting}); the message waits")]
    NotConfigured {
        /// The channel.
        what: &'static str,
        /// The settings that configure it.
        setting: &'static str,
    },
    /// The event's values for a WhatsApp template could not be read.
    #[error("the event's values could not be read ({0}); the message waits")]
    EventUnreadable(String),
}

impl Outgoing {
    /// Its channel's name as `/metrics` labels it (`connector`, `telegram`, ...).
    pub fn label(&self) -> &'static str {
        match self.kind {
            Kind::Connector => "connector",
            Kind::Telegram => ChannelKind::Telegram.name(),
            Kind::WhatsApp => ChannelKind::Whatsapp.name(),
            Kind::TwilioSms => ChannelKind::TwilioSms.name(),
            Kind::TwilioWhatsApp => ChannelKind::TwilioWhatsapp.name(),
        }
    }

    /// The headers as the HTTP client takes them.
    pub fn header_pairs(&self) -> Vec<(&str, &str)> {
        self.headers.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    /// `text` with every credential of this request masked.
    pub fn redact(&self, text: &str) -> String {
        self.secrets
            .iter()
            .filter(|s| !s.is_empty())
            .fold(text.to_owned(), |t, s| t.replace(s.as_str(), MASK))
    }

    /// A detail to record for a request that got no answer (redacted): a refused
    /// connection in plain words, not the CLI's hint about a gateway that is not running.
    pub fn failure(&self, e: &ClientError) -> String {
        let text = match e {
            ClientError::NotRunning { url } => {
                format!("cannot connect to {url}: connection refused")
            }
            other => other.to_string(),
        };
        self.redact(&text)
    }

    /// What an answer means for the retry policy, and a detail to record (redacted).
    pub fn classify(
        &self,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
    ) -> (Answer, String) {
        let retry_after_ms = headers
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, now));
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let (answer, detail) = match self.kind {
            Kind::Connector => connector_answer(status, retry_after_ms),
            Kind::Telegram => telegram::answer(status, retry_after_ms, &json),
            Kind::WhatsApp => whatsapp::answer(status, retry_after_ms, &json),
            Kind::TwilioSms | Kind::TwilioWhatsApp => twilio::answer(status, retry_after_ms, &json),
        };
        (answer, self.redact(&detail))
    }
}

/// A recorded detail: the status, and the platform's own words when it gave some (cut to
/// 200 characters).
pub(crate) fn answer_detail(status: u16, message: &str) -> String {
    let message = message.trim();
    if message.is_empty() {
        return format!("HTTP {status}");
    }
    let cut = crate::excerpt::of_text(message, 200);
    format!("HTTP {status}: {cut}")
}

/// The connector: 2xx delivered, 404 or 410 no session, 429 and 5xx retried honouring
/// `Retry-After`, anything else refused.
fn connector_answer(status: u16, retry_after_ms: Option<u64>) -> (Answer, String) {
    let answer = match status {
        200..=299 => Answer::Delivered,
        404 | 410 => Answer::NoSession,
        429 | 500..=599 => Answer::Retryable { retry_after_ms },
        _ => Answer::Refused,
    };
    (answer, format!("HTTP {status}"))
}

/// The generic connector's request: the message as JSON, an idempotency key stable across
/// attempts, and the connector's bearer token.
fn connector_request(chat: &Chat, d: &Delivery) -> Result<Outgoing, Unavailable> {
    let Some(url) = chat.url.as_deref().filter(|u| !u.is_empty()) else {
        return Err(Unavailable::NotConfigured {
            what: "the chat connector",
            setting: "chat.url (HOOKGATE_CHAT_URL), or forward.channel on the account",
        });
    };
    let body = json!({
        "account": d.account, "to": d.recipient, "text": d.text,
        "event_id": d.event_id, "event_type": d.event_type,
        "id": crate::event::public_id(d.seq),
    })
    .to_string();
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        (
            "idempotency-key",
            format!("hookgate-{}-{}", d.account, d.seq),
        ),
    ];
    let mut secrets = Vec::new();
    if let Some(t) = &chat.token {
        headers.push(("authorization", format!("Bearer {}", t.expose_str())));
        secrets.push(t.expose_str().to_owned());
    }
    Ok(Outgoing {
        url: url.to_owned(),
        headers,
        body,
        secrets,
        kind: Kind::Connector,
    })
}

/// Builds the request that delivers `d` through `channel` (the connector when `None`);
/// `template` is the WhatsApp approved template's message, when the account sends one.
pub fn build(
    chat: &Chat,
    channel: Option<ChannelKind>,
    d: &Delivery,
    template: Option<&whatsapp::TemplateMessage>,
) -> Result<Outgoing, Unavailable> {
    match channel {
        None => connector_request(chat, d),
        Some(ChannelKind::Telegram) => telegram::request(&chat.telegram, &d.recipient, &d.text),
        Some(ChannelKind::Whatsapp) => {
            whatsapp::request(&chat.whatsapp, &d.recipient, &d.text, template)
        }
        Some(ChannelKind::TwilioSms) => {
            twilio::request(&chat.twilio, twilio::Medium::Sms, &d.recipient, &d.text)
        }
        Some(ChannelKind::TwilioWhatsapp) => twilio::request(
            &chat.twilio,
            twilio::Medium::WhatsApp,
            &d.recipient,
            &d.text,
        ),
    }
}

/// What can deliver on this gateway: `connector` and the channels configured, by name
/// (never a credential); empty when nothing can.
pub fn configured(chat: &Chat) -> Vec<&'static str> {
    let probe = Delivery {
        seq: 0,
        account: String::new(),
        recipient: "0".to_owned(),
        text: String::new(),
        event_id: None,
        event_type: None,
        attempts: 0,
    };
    [
        None,
        Some(ChannelKind::Telegram),
        Some(ChannelKind::Whatsapp),
        Some(ChannelKind::TwilioSms),
        Some(ChannelKind::TwilioWhatsapp),
    ]
    .into_iter()
    .filter_map(|c| {
        build(chat, c, &probe, None)
            .ok()
            .map(|_| c.map_or("connector", ChannelKind::name))
    })
    .collect()
}

/// Refuses (422) an account that sends status messages through a channel this gateway
/// has not configured, naming the settings to add; and a WhatsApp template on an account
/// whose channel is not `whatsapp`.
pub fn check_account(chat: &Chat, spec: &AccountSpec) -> Result<(), SpecError> {
    let forward = &spec.forward;
    if forward.channel != Some(ChannelKind::Whatsapp) {
        let field = if forward.whatsapp_template.is_some() {
            Some("forward.whatsapp_template")
        } else if !forward.whatsapp_templates.is_empty() {
            Some("forward.whatsapp_templates")
        } else {
            None
        };
        if let Some(field) = field {
            return Err(SpecError::new(
                field,
                "is sent only through forward.channel \"whatsapp\"",
            ));
        }
    }
    let Some(channel) = forward.channel else {
        return Ok(());
    };
    if !forward.send_to_user {
        return Ok(());
    }
    let probe = Delivery {
        seq: 0,
        account: spec.name.clone(),
        recipient: "0".to_owned(),
        text: String::new(),
        event_id: None,
        event_type: None,
        attempts: 0,
    };
    match build(chat, Some(channel), &probe, None) {
        Ok(_) => Ok(()),
        Err(e) => Err(SpecError::new(
            "forward.channel",
            format!("{:?} cannot send: {e}", channel.name()).replace("; the message waits", ""),
        )),
    }
}

/// The `/metrics` label of the account's connector or channel.
pub fn label_of(state: &AppState, account: &str) -> &'static str {
    state
        .registry
        .get(account)
        .and_then(|a| a.spec.forward.channel)
        .map_or("connector", ChannelKind::name)
}

/// The edge: reads the account's channel from the registry (and, for a WhatsApp template,
/// the event's values from the store), then builds the request.
pub async fn prepare(state: &AppState, d: &Delivery) -> Result<Outgoing, Unavailable> {
    let account = state.registry.get(&d.account);
    let channel = account.as_ref().and_then(|a| a.spec.forward.channel);
    let approved = account
        .as_ref()
        .and_then(|a| a.whatsapp_templates.select(d.event_type.as_deref()))
        .filter(|_| channel == Some(ChannelKind::Whatsapp));
    let message = match approved {
        None => None,
        Some(t) => {
            let event = state
                .store
                .event(d.seq)
                .await
                .map_err(|e| Unavailable::EventUnreadable(e.to_string()))?;
            let s = event.map(|e| e.summary);
            let params = s.as_ref().map_or(Value::Null, |s| s.params.clone());
            Some(t.message(&Values {
                account: &d.account,
                sender: Some(d.recipient.as_str()),
                source: s.as_ref().and_then(|s| s.source.as_deref()),
                event_type: d.event_type.as_deref(),
                event_id: d.event_id.as_deref(),
                params: &params,
            }))
        }
    };
    build(&state.config.chat, channel, d, message.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn delivery() -> Delivery {
        Delivery {
            seq: 7,
            account: "shop".into(),
            recipient: "+2557".into(),
            text: "Paid".into(),
            event_id: Some("e1".into()),
            event_type: Some("payment.succeeded".into()),
            attempts: 0,
        }
    }

    #[test]
    fn the_connector_keeps_its_request_and_its_answers() {
        let mut chat = Chat::default();
        assert!(build(&chat, None, &delivery(), None).is_err());
        assert!(configured(&chat).is_empty());
        chat.url = Some("http://127.0.0.1:9/messages".into());
        chat.token = Some(Secret::new("conn-secret"));
        assert_eq!(configured(&chat), ["connector"]);
        let out = build(&chat, None, &delivery(), None).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.headers
                .contains(&("idempotency-key", "hookgate-shop-7".to_owned()))
        );
        let body: Value = serde_json::from_str(&out.body).unwrap_or(Value::Null);
        assert_eq!(body["id"], "evt_7");
        assert_eq!(body["text"], "Paid");
        let none = HeaderMap::new();
        assert_eq!(out.classify(404, &none, b"", 0).0, Answer::NoSession);
        assert_eq!(
            out.classify(201, &none, b"", 0),
            (Answer::Delivered, "HTTP 201".into())
        );
        let mut later = HeaderMap::new();
        later.insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("3"),
        );
        assert_eq!(
            out.classify(503, &later, b"", 0).0,
            Answer::Retryable {
                retry_after_ms: Some(3000)
            }
        );
        assert_eq!(out.classify(400, &none, b"", 0).0, Answer::Refused);
        assert_eq!(out.redact("Bearer conn-secret"), "Bearer ********");
        let refused = ClientError::NotRunning {
            url: out.url.clone(),
        };
        assert_eq!(
            out.failure(&refused),
            "cannot connect to http://127.0.0.1:9/messages: connection refused"
        );
    }

    #[test]
    fn each_channel_is_chosen_by_name_and_needs_its_settings() {
        let mut chat = Chat::default();
        for c in ["telegram", "whatsapp", "twilio_sms", "twilio_whatsapp"] {
            let kind: ChannelKind =
                serde_json::from_value(json!(c)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(kind.name(), c);
            assert!(build(&chat, Some(kind), &delivery(), None).is_err(), "{c}");
        }
        chat.telegram.token = Some(Secret::new("1:tg"));
        assert_eq!(configured(&chat), ["telegram"]);
        let out = build(&chat, Some(ChannelKind::Telegram), &delivery(), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let detail = out.classify(
            403,
            &HeaderMap::new(),
            br#"{"ok":false,"description":"Forbidden: bot was blocked by the user"}"#,
            0,
        );
        assert_eq!(detail.0, Answer::NoSession);
        assert!(!out.redact(&out.url).contains("1:tg"));
    }

    #[test]
    fn an_account_naming_an_unconfigured_channel_is_refused_with_the_settings_named() {
        let mut spec: AccountSpec = serde_json::from_value(json!({
            "name": "shop", "auth": {"type": "none"},
            "forward": {"send_to_user": true, "template": "x", "channel": "twilio_sms"}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let chat = Chat::default();
        let e = check_account(&chat, &spec)
            .err()
            .unwrap_or_else(|| panic!("refused"));
        assert_eq!(e.field, "forward.channel");
        assert!(
            e.message.contains("HOOKGATE_CHAT_TWILIO_AUTH_TOKEN"),
            "{}",
            e.message
        );
        spec.forward.send_to_user = false;
        assert!(check_account(&chat, &spec).is_ok());
        spec.forward.whatsapp_template = Some(whatsapp::TemplateSpec::default());
        let e = check_account(&chat, &spec).err().map(|e| e.field);
        assert_eq!(e.as_deref(), Some("forward.whatsapp_template"));
        spec.forward.whatsapp_template = None;
        spec.forward
            .whatsapp_templates
            .insert("a".into(), whatsapp::TemplateSpec::default());
        let e = check_account(&chat, &spec).err().map(|e| e.field);
        assert_eq!(e.as_deref(), Some("forward.whatsapp_templates"));
        let bad: Result<ChannelKind, _> = serde_json::from_value(json!("signal"));
        assert!(bad.is_err());
    }
}
