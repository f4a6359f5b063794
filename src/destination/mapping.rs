//! A destination's payload mapping: a JSON template over the event.
//!
//! The template is any JSON value. A string that is exactly `{{P}}` becomes the JSON value
//! that `P` selects (`null` when it selects nothing), so numbers, objects and lists keep
//! their type; `{{P}}` inside a longer string becomes its text (empty when missing). `P`
//! reads like a filter path: `$` or `$.a.b` into the decoded payload, or `event.type`,
//! `event.id`, `event.account`, `event.sender`, `event.source`, `event.params.x`,
//! `event.gateway_id`, `event.received_at`. Object keys are copied as they are.
//! Owns compilation (once, at save; errors name the template's place) and the pure
//! rendering. It must never do I/O.

use serde_json::{Map, Value};

use super::filter::compile_path;
use crate::account::SpecError;
use crate::extract::JsonPath;

/// A compiled template.
#[derive(Debug)]
pub struct Mapping {
    root: Node,
}

#[derive(Debug)]
enum Node {
    Literal(Value),
    Whole(bool, JsonPath),
    Text(Vec<Piece>),
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
}

#[derive(Debug)]
enum Piece {
    Lit(String),
    Path(bool, JsonPath),
}

/// Splits a string into literal text and `{{path}}` pieces.
fn pieces(field: &str, s: &str) -> Result<Vec<Piece>, SpecError> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            return Err(SpecError::new(field, "a `{{` without its `}}`"));
        };
        if start > 0 {
            out.push(Piece::Lit(rest[..start].to_owned()));
        }
        let (is_event, path) = compile_path(field, &rest[start + 2..start + 2 + len])?;
        out.push(Piece::Path(is_event, path));
        rest = &rest[start + 2 + len + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Lit(rest.to_owned()));
    }
    Ok(out)
}

fn compile_node(field: &str, v: &Value) -> Result<Node, SpecError> {
    Ok(match v {
        Value::String(s) => {
            let mut p = pieces(field, s)?;
            match (p.len(), p.first()) {
                (0, _) | (1, Some(Piece::Lit(_))) => Node::Literal(v.clone()),
                (1, Some(Piece::Path(..))) => match p.pop() {
                    Some(Piece::Path(e, path)) => Node::Whole(e, path),
                    _ => Node::Literal(v.clone()),
                },
                _ => Node::Text(p),
            }
        }
        Value::Object(o) => Node::Object(
            o.iter()
                .map(|(k, v)| Ok((k.clone(), compile_node(&format!("{field}.{k}"), v)?)))
                .collect::<Result<_, SpecError>>()?,
        ),
        Value::Array(a) => Node::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| compile_node(&format!("{field}[{i}]"), v))
                .collect::<Result<_, _>>()?,
        ),
        other => Node::Literal(other.clone()),
    })
}

impl Mapping {
    /// Compiles a template; `field` names it in errors (`mapping`).
    pub fn compile(field: &str, template: &Value) -> Result<Mapping, SpecError> {
        Ok(Mapping {
            root: compile_node(field, template)?,
        })
    }

    /// Renders the template over a payload and the gateway's view of the event.
    pub fn render(&self, payload: &Value, event: &Value) -> Value {
        render(&self.root, payload, event)
    }
}

fn select<'v>(
    is_event: bool,
    path: &JsonPath,
    payload: &'v Value,
    event: &'v Value,
) -> Option<&'v Value> {
    path.value(if is_event { event } else { payload })
}

fn render(node: &Node, payload: &Value, event: &Value) -> Value {
    match node {
        Node::Literal(v) => v.clone(),
        Node::Whole(e, path) => select(*e, path, payload, event)
            .cloned()
            .unwrap_or(Value::Null),
        Node::Text(pieces) => {
            let mut s = String::new();
            for p in pieces {
                match p {
                    Piece::Lit(t) => s.push_str(t),
                    Piece::Path(e, path) => match select(*e, path, payload, event) {
                        None | Some(Value::Null) => {}
                        Some(Value::String(t)) => s.push_str(t),
                        Some(other) => s.push_str(&other.to_string()),
                    },
                }
            }
            Value::String(s)
        }
        Node::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, n)| (k.clone(), render(n, payload, event)))
                .collect::<Map<_, _>>(),
        ),
        Node::Array(items) => {
            Value::Array(items.iter().map(|n| render(n, payload, event)).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_keep_their_type_and_text_is_interpolated() {
        let t = json!({
            "kind": "{{event.type}}",
            "amount": "{{$.data.amount}}",
            "whole": "{{$}}",
            "line": "Paid {{$.data.amount}} {{$.data.currency}} for {{event.params.order}}{{$.nope}}.",
            "list": ["{{$.data.tags}}", 1, true],
            "missing": "{{$.data.nope}}",
            "plain": "no braces"
        });
        let m = Mapping::compile("mapping", &t).unwrap_or_else(|e| panic!("{}", e.message));
        let p = json!({"data": {"amount": 250, "currency": "KES", "tags": ["a"]}});
        let e = json!({"type": "payment.succeeded", "params": {"order": "A-7"}});
        assert_eq!(
            m.render(&p, &e),
            json!({
                "kind": "payment.succeeded",
                "amount": 250,
                "whole": p,
                "line": "Paid 250 KES for A-7.",
                "list": [["a"], 1, true],
                "missing": null,
                "plain": "no braces"
            })
        );
    }

    #[test]
    fn a_bad_template_is_named() {
        let e = Mapping::compile("mapping", &json!({"a": ["x", "{{$.b"]}))
            .err()
            .map(|e| format!("{}: {}", e.field, e.message));
        assert_eq!(e.as_deref(), Some("mapping.a[1]: a `{{` without its `}}`"));
        let e = Mapping::compile("mapping", &json!({"a": "{{$[}}"})).err();
        assert_eq!(e.map(|e| e.field), Some("mapping.a".to_owned()));
    }
}
