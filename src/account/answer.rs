//! The answer a provider expects to a delivered event (Twilio's empty TwiML, Daraja's
//! `{"ResultCode":0}`, Pesapal's acknowledgement naming the order), compiled once.
//!
//! Owns [`ProviderAnswer`]: the status, the content type and the body, which may be a
//! template over the extracted fields (`{{source}}`, `{{params.NAME}}`; values JSON-escaped
//! when the content type is JSON). It must never put an unescaped sender value into a JSON
//! answer.

use crate::account::{AnswerSpec, SpecError};
use crate::event::Extracted;
use crate::render::Template;

/// A compiled answer.
#[derive(Debug)]
pub struct ProviderAnswer {
    /// The status, 200 to 299.
    pub status: u16,
    /// The content type.
    pub content_type: String,
    body: Body,
}

#[derive(Debug)]
enum Body {
    Fixed(String),
    Template(Template),
}

impl ProviderAnswer {
    /// Compiles a spec: a success status, a valid content type, a body that parses.
    pub fn compile(spec: &AnswerSpec) -> Result<Self, SpecError> {
        if !(200..=299).contains(&spec.status) {
            return Err(SpecError::new(
                "answer.status",
                "must be a success status (200 to 299): the provider retries anything else",
            ));
        }
        if hyper::header::HeaderValue::from_str(&spec.content_type).is_err() {
            return Err(SpecError::new(
                "answer.content_type",
                "is not a valid header value",
            ));
        }
        let body = if spec.body.contains("{{") {
            Body::Template(
                Template::parse(&spec.body)
                    .map_err(|e| SpecError::new("answer.body", e.message))?,
            )
        } else {
            Body::Fixed(spec.body.clone())
        };
        Ok(ProviderAnswer {
            status: spec.status,
            content_type: spec.content_type.clone(),
            body,
        })
    }

    /// The body for one event.
    pub fn body(&self, extracted: &Extracted, account: &str) -> String {
        match &self.body {
            Body::Fixed(text) => text.clone(),
            Body::Template(t) => {
                let json = self.content_type.to_ascii_lowercase().contains("json");
                crate::confirm::render_escaped(t, extracted, account, json)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_templated_json_answer_escapes_what_the_sender_sent() {
        let spec: AnswerSpec = serde_json::from_value(json!({
            "content_type": "application/json",
            "body": "{\"orderTrackingId\":\"{{params.tracking_id}}\",\"status\":200}"
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let a = ProviderAnswer::compile(&spec).unwrap_or_else(|e| panic!("{e}"));
        let e = Extracted {
            params: Some(json!({"tracking_id": "a\"b"}).to_string()),
            ..Extracted::default()
        };
        let body = a.body(&e, "acct");
        assert_eq!(body, r#"{"orderTrackingId":"a\"b","status":200}"#);
        assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok());
        let bad: AnswerSpec =
            serde_json::from_value(json!({"status": 500})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ProviderAnswer::compile(&bad).err().map(|e| e.field),
            Some("answer.status".into())
        );
    }
}
