//! The status templates of one account: one per event type (`forward.templates`) and a
//! default (`forward.template`).
//!
//! Owns compiling them once, when the account is saved (a broken one is a 422 naming its
//! path, `forward.templates.payment.failed`), and choosing the one an event's type asks
//! for: its own template, else the default, else none (the event is streamed only). Pure.

use std::collections::BTreeMap;

use crate::account::{ForwardSpec, SpecError};
use crate::render::Template;

/// The most event types one account may give templates of their own.
const MAX_TEMPLATES: usize = 64;

/// An account's status templates, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusTemplates {
    default: Option<Template>,
    by_type: BTreeMap<String, Template>,
}

impl StatusTemplates {
    /// Parses the default template and every per-type one.
    pub fn compile(forward: &ForwardSpec) -> Result<StatusTemplates, SpecError> {
        let default = forward
            .template
            .as_deref()
            .map(Template::parse)
            .transpose()?;
        if forward.templates.len() > MAX_TEMPLATES {
            return Err(SpecError::new(
                "forward.templates",
                format!("may name at most {MAX_TEMPLATES} event types"),
            ));
        }
        let mut by_type = BTreeMap::new();
        for (event_type, text) in &forward.templates {
            let field = format!("forward.templates.{event_type}");
            if event_type.trim().is_empty() || event_type.len() > 256 {
                return Err(SpecError::new(
                    field,
                    "an event type must be 1 to 256 characters, not blank",
                ));
            }
            by_type.insert(event_type.clone(), Template::parse_at(text, &field)?);
        }
        Ok(StatusTemplates { default, by_type })
    }

    /// The template for an event of this type: its own, else the default.
    pub fn select(&self, event_type: Option<&str>) -> Option<&Template> {
        event_type
            .and_then(|t| self.by_type.get(t))
            .or(self.default.as_ref())
    }

    /// True when there is no template at all.
    pub fn is_empty(&self) -> bool {
        self.default.is_none() && self.by_type.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Values;
    use serde_json::{Value, json};

    fn forward(v: Value) -> ForwardSpec {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn render(t: Option<&Template>, event_type: Option<&str>, params: &Value) -> Option<String> {
        t.map(|t| {
            t.render(&Values {
                account: "shop",
                sender: Some("+1"),
                source: None,
                event_type,
                event_id: None,
                params,
            })
        })
    }

    #[test]
    fn the_event_type_picks_its_template_else_the_default_else_none() {
        let f = forward(json!({
            "template": "Update on {{params.amount | default: \"your payment\"}}",
            "templates": {
                "payment.succeeded": "Received {{params.amount | default: \"your payment\"}}, thank you",
                "payment.failed": "{{params.amount | default: \"Your payment\"}} failed"
            }
        }));
        let t = StatusTemplates::compile(&f).unwrap_or_else(|e| panic!("{e}"));
        let p = json!({"amount": "5 TZS"});
        let ok = Some("payment.succeeded");
        assert_eq!(
            render(t.select(ok), ok, &p).as_deref(),
            Some("Received 5 TZS, thank you")
        );
        let failed = Some("payment.failed");
        assert_eq!(
            render(t.select(failed), failed, &Value::Null).as_deref(),
            Some("Your payment failed")
        );
        let other = Some("payment.reversed");
        assert_eq!(
            render(t.select(other), other, &Value::Null).as_deref(),
            Some("Update on your payment")
        );
        assert_eq!(
            render(t.select(None), None, &p).as_deref(),
            Some("Update on 5 TZS")
        );

        let only = StatusTemplates::compile(&forward(json!({"templates": {"a": "A"}})))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(only.select(Some("b")).is_none());
        assert!(only.select(None).is_none());
        assert!(!only.is_empty());
        assert!(StatusTemplates::compile(&forward(json!({}))).is_ok_and(|t| t.is_empty()));
    }

    #[test]
    fn errors_name_the_template_they_are_in() {
        let f =
            forward(json!({"templates": {"payment.failed": "{{params.amount | fallback: 1}}"}}));
        let e = StatusTemplates::compile(&f).err().map(|e| e.field);
        assert_eq!(e.as_deref(), Some("forward.templates.payment.failed"));
        let f = forward(json!({"template": "{{nope}}", "templates": {"a": "A"}}));
        let e = StatusTemplates::compile(&f).err().map(|e| e.field);
        assert_eq!(e.as_deref(), Some("forward.template"));
        let f = forward(json!({"templates": {" ": "A"}}));
        assert!(StatusTemplates::compile(&f).is_err());
    }
}
