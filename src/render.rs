//! Status-message templates: `Payment of {{params.amount | default: "your payment"}} received`.
//!
//! Owns parsing a template once, when the account is saved (so a broken template is a 422,
//! never a failure at delivery time), and rendering it against one event. Pure. It must
//! never panic on a missing value: a value the event does not have (absent, null or empty)
//! renders as the placeholder's fallback (`| default: "..."`) when it has one, and
//! otherwise visibly as `[missing params.amount]`, so the user sees what was wrong instead
//! of a silent blank.

use serde_json::Value;

use crate::account::SpecError;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// A placeholder and the text it falls back to when the event lacks the value.
    Var(Var, Option<String>),
}

/// What a placeholder may name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Var {
    Sender,
    Source,
    EventType,
    EventId,
    Account,
    Param(String),
}

/// The values a template is rendered against.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    /// The account name.
    pub account: &'a str,
    /// Extracted sender.
    pub sender: Option<&'a str>,
    /// Extracted source.
    pub source: Option<&'a str>,
    /// Extracted event type.
    pub event_type: Option<&'a str>,
    /// Extracted event id.
    pub event_id: Option<&'a str>,
    /// Extracted params (a JSON object, or null).
    pub params: &'a Value,
}

impl Template {
    /// Parses `text`; placeholders are `{{sender}}`, `{{source}}`, `{{event_type}}`,
    /// `{{event_id}}`, `{{account}}` and `{{params.NAME}}`, each optionally with a
    /// fallback: `{{params.amount | default: "your payment"}}`. Errors name
    /// `forward.template`.
    pub fn parse(text: &str) -> Result<Template, SpecError> {
        Template::parse_at(text, "forward.template")
    }

    /// Parses `text` like [`Template::parse`]; errors name `field` (the template's path in
    /// the account, `forward.templates.payment.failed`).
    pub fn parse_at(text: &str, field: &str) -> Result<Template, SpecError> {
        let err = |m: String| SpecError::new(field, m);
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                return Err(err("has a '{{' that is never closed with '}}'".into()));
            };
            let (name, fallback) = match after[..end].split_once('|') {
                None => (after[..end].trim(), None),
                Some((name, filter)) => (name.trim(), Some(fallback(filter).map_err(err)?)),
            };
            let var = match name {
                "sender" => Var::Sender,
                "source" => Var::Source,
                "event_type" => Var::EventType,
                "event_id" => Var::EventId,
                "account" => Var::Account,
                p if p.starts_with("params.") && p.len() > "params.".len() => {
                    Var::Param(p["params.".len()..].to_owned())
                }
                other => {
                    return Err(err(format!(
                        "names {{{{{other}}}}}; use sender, source, event_type, event_id, account or params.NAME"
                    )));
                }
            };
            parts.push(Part::Var(var, fallback));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        if parts.is_empty() {
            return Err(err("is empty".into()));
        }
        Ok(Template { parts })
    }

    /// Renders the template for one event.
    pub fn render(&self, v: &Values<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(var, fallback) => {
                    let (name, value): (String, Option<String>) = match var {
                        Var::Sender => ("sender".into(), v.sender.map(str::to_owned)),
                        Var::Source => ("source".into(), v.source.map(str::to_owned)),
                        Var::EventType => ("event_type".into(), v.event_type.map(str::to_owned)),
                        Var::EventId => ("event_id".into(), v.event_id.map(str::to_owned)),
                        Var::Account => ("account".into(), Some(v.account.to_owned())),
                        Var::Param(p) => (
                            format!("params.{p}"),
                            match v.params.get(p) {
                                None | Some(Value::Null) => None,
                                Some(Value::String(s)) if s.trim().is_empty() => None,
                                Some(Value::String(s)) => Some(s.clone()),
                                Some(other) => Some(other.to_string()),
                            },
                        ),
                    };
                    match (value.filter(|t| !t.trim().is_empty()), fallback) {
                        (Some(text), _) => out.push_str(&text),
                        (None, Some(text)) => out.push_str(text),
                        (None, None) => {
                            out.push_str("[missing ");
                            out.push_str(&name);
                            out.push(']');
                        }
                    }
                }
            }
        }
        out
    }
}

/// Reads the filter after a placeholder's `|`: `default: "text"`, the text in double
/// quotes (`\"` and `\\` escape a quote and a backslash).
fn fallback(filter: &str) -> Result<String, String> {
    let usage = "a placeholder's filter must be default: \"text\" (in double quotes)";
    let Some(rest) = filter.trim().strip_prefix("default") else {
        return Err(format!(
            "has an unknown filter {:?}; {usage}",
            filter.trim()
        ));
    };
    let Some(quoted) = rest.trim_start().strip_prefix(':') else {
        return Err(usage.to_owned());
    };
    let quoted = quoted.trim();
    let inner = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .filter(|_| quoted.len() >= 2)
        .ok_or_else(|| usage.to_owned())?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('"' | '\\')) => out.push(e),
                _ => return Err(format!("{usage}; only \\\" and \\\\ are escapes")),
            },
            '"' => return Err(format!("{usage}; write a quote inside the text as \\\"")),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(params: &Value) -> Values<'_> {
        Values {
            account: "shop",
            sender: Some("+255700000001"),
            source: None,
            event_type: Some("payment.succeeded"),
            event_id: Some("ev1"),
            params,
        }
    }

    #[test]
    fn renders_params_and_fields() {
        let t = Template::parse("Payment of {{params.amount}} {{ params.currency }} is {{params.status}} ({{event_type}})")
            .unwrap_or_else(|e| panic!("{e}"));
        let params = json!({"amount": 25000, "currency": "TZS", "status": "received"});
        assert_eq!(
            t.render(&values(&params)),
            "Payment of 25000 TZS is received (payment.succeeded)"
        );
    }

    #[test]
    fn missing_values_render_visibly() {
        let t =
            Template::parse("{{params.amount}} from {{source}}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.render(&values(&Value::Null)),
            "[missing params.amount] from [missing source]"
        );
    }

    #[test]
    fn fallbacks_stand_in_for_missing_null_or_empty_values() {
        let t = Template::parse(
            r#"Payment of {{params.amount | default: "your payment"}} {{ params.currency|default:"" }} from {{source | default: "the \"shop\""}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.render(&values(&Value::Null)),
            r#"Payment of your payment  from the "shop""#
        );
        let params = json!({"amount": "", "currency": null});
        assert_eq!(
            t.render(&values(&params)),
            r#"Payment of your payment  from the "shop""#
        );
        let params = json!({"amount": 5, "currency": "TZS"});
        assert_eq!(
            t.render(&values(&params)),
            r#"Payment of 5 TZS from the "shop""#
        );
    }

    #[test]
    fn bad_filters_name_the_field() {
        for bad in [
            "{{params.a | upper}}",
            "{{params.a | default}}",
            "{{params.a | default: text}}",
            r#"{{params.a | default: "a"b"}}"#,
            r#"{{params.a | default: "a\n"}}"#,
            r#"{{params.a | default: "}}"#,
        ] {
            let e = Template::parse_at(bad, "forward.templates.payment.failed")
                .err()
                .map(|e| e.field);
            assert_eq!(
                e.as_deref(),
                Some("forward.templates.payment.failed"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn errors_are_caught_at_parse() {
        for bad in ["", "{{nope}}", "{{params.}}", "Hi {{sender"] {
            let e = Template::parse(bad).err().map(|e| e.field);
            assert_eq!(e.as_deref(), Some("forward.template"), "{bad:?}");
        }
        assert!(Template::parse("no placeholders").is_ok());
    }
}
