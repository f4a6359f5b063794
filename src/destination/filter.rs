//! The filter language of a destination: a list of conditions that must all hold for an
//! event to be delivered there.
//!
//! A condition is `{"path": P, "op": OP, "value": V}`. `P` is a JSONPath into the decoded
//! payload (`$.data.amount`, or `data.amount` for short), or `event.` followed by a field
//! of the gateway's view of the event (`event.type`, `event.id`, `event.sender`,
//! `event.source`, `event.account`, `event.params.amount`). `OP` is one of `eq`, `ne`,
//! `in` (V is a list), `exists` (V is `true` or `false`), `gt`, `lt` (numbers, or strings
//! compared as text) and `contains` (a string holding V, or a list holding V). A path that
//! selects nothing is "missing": every op but `ne` and `exists: false` is then false.
//! Owns compilation (once, when the destination is saved; errors name the condition) and
//! the pure evaluation. It must never do I/O.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::account::SpecError;
use crate::extract::JsonPath;

/// One condition as written in a destination's spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Where the compared value is.
    pub path: String,
    /// How it is compared.
    pub op: Op,
    /// What it is compared with (unused by `exists` when absent: `true`).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub value: Value,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Equal (JSON equality; a number equals the same number written otherwise).
    Eq,
    /// Not equal (true when missing).
    Ne,
    /// Equal to one of a list.
    In,
    /// Selects something (`value: false`: selects nothing).
    Exists,
    /// Greater than.
    Gt,
    /// Less than.
    Lt,
    /// A string containing a string, or a list containing a value.
    Contains,
}

/// Where a compiled condition reads.
#[derive(Debug)]
enum Source {
    Payload(JsonPath),
    Event(JsonPath),
}

/// A compiled condition.
#[derive(Debug)]
struct Compiled {
    source: Source,
    op: Op,
    value: Value,
}

/// A compiled filter: every condition must hold. An empty filter lets everything through.
#[derive(Debug, Default)]
pub struct Filter {
    conditions: Vec<Compiled>,
}

/// Compiles `event.a.b` or a payload path.
pub(crate) fn compile_path(field: &str, path: &str) -> Result<(bool, JsonPath), SpecError> {
    let path = path.trim();
    if let Some(rest) = path.strip_prefix("event.") {
        return Ok((true, JsonPath::compile(field, rest)?));
    }
    if path.starts_with("header:") || path.starts_with("query:") {
        return Err(SpecError::new(
            field,
            "a filter reads the payload ($.a.b) or the event (event.type); headers and query parameters are not kept for delivery",
        ));
    }
    Ok((false, JsonPath::compile(field, path)?))
}

impl Filter {
    /// Compiles the conditions; `field` names the spec's field in errors (`filter`).
    pub fn compile(field: &str, conditions: &[Condition]) -> Result<Filter, SpecError> {
        let mut out = Vec::with_capacity(conditions.len());
        for (i, c) in conditions.iter().enumerate() {
            let here = format!("{field}[{i}]");
            let (is_event, path) = compile_path(&format!("{here}.path"), &c.path)?;
            match (c.op, &c.value) {
                (Op::In, Value::Array(_)) => {}
                (Op::In, _) => return Err(SpecError::new(&here, "`in` needs a list as its value")),
                (Op::Exists, Value::Null | Value::Bool(_)) => {}
                (Op::Exists, _) => {
                    return Err(SpecError::new(&here, "`exists` takes true or false"));
                }
                (Op::Gt | Op::Lt, Value::Number(_) | Value::String(_)) => {}
                (Op::Gt | Op::Lt, _) => {
                    return Err(SpecError::new(
                        &here,
                        "`gt` and `lt` compare with a number or a string",
                    ));
                }
                (Op::Contains, Value::Null) => {
                    return Err(SpecError::new(&here, "`contains` needs a value"));
                }
                _ => {}
            }
            out.push(Compiled {
                source: if is_event {
                    Source::Event(path)
                } else {
                    Source::Payload(path)
                },
                op: c.op,
                value: c.value.clone(),
            });
        }
        Ok(Filter { conditions: out })
    }

    /// True when some condition reads the payload (the ingest path then decodes it whole).
    pub fn reads_payload(&self) -> bool {
        self.conditions
            .iter()
            .any(|c| matches!(c.source, Source::Payload(_)))
    }

    /// True when every condition holds for this payload and event view.
    pub fn matches(&self, payload: &Value, event: &Value) -> bool {
        self.conditions.iter().all(|c| {
            let found = match &c.source {
                Source::Payload(p) => p.value(payload),
                Source::Event(p) => p.value(event),
            };
            holds(c.op, found, &c.value)
        })
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => number(a) == number(b),
        _ => a == b,
    }
}

fn holds(op: Op, found: Option<&Value>, want: &Value) -> bool {
    let found = found.filter(|v| !v.is_null());
    match op {
        Op::Exists => found.is_some() == want.as_bool().unwrap_or(true),
        Op::Ne => found.is_none_or(|f| !same(f, want)),
        _ => {
            let Some(f) = found else { return false };
            match op {
                Op::Eq => same(f, want),
                Op::In => want
                    .as_array()
                    .is_some_and(|list| list.iter().any(|w| same(f, w))),
                Op::Gt | Op::Lt => {
                    let order = match (want, number(f), number(want)) {
                        (Value::Number(_), Some(x), Some(y)) => x.partial_cmp(&y),
                        (Value::String(w), _, _) => f.as_str().map(|s| s.cmp(w.as_str())),
                        _ => None,
                    };
                    matches!(
                        (op, order),
                        (Op::Gt, Some(std::cmp::Ordering::Greater))
                            | (Op::Lt, Some(std::cmp::Ordering::Less))
                    )
                }
                Op::Contains => match (f, want) {
                    (Value::String(s), Value::String(w)) => s.contains(w.as_str()),
                    (Value::Array(items), w) => items.iter().any(|i| same(i, w)),
                    _ => false,
                },
                Op::Ne | Op::Exists => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(v: Value) -> Filter {
        let c: Vec<Condition> = serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"));
        Filter::compile("filter", &c).unwrap_or_else(|e| panic!("{}", e.message))
    }

    fn err(v: Value) -> String {
        let c: Vec<Condition> = serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"));
        match Filter::compile("filter", &c) {
            Ok(_) => panic!("compiled"),
            Err(e) => format!("{}: {}", e.field, e.message),
        }
    }

    #[test]
    fn every_op_on_the_payload_and_the_event() {
        let p = json!({"data": {"amount": 250, "currency": "KES", "tags": ["vip", "new"],
            "note": "first order", "code": "0042"}});
        let e = json!({"type": "payment.succeeded", "params": {"amount": "250"}});
        let yes = [
            json!([{"path": "$.data.currency", "op": "eq", "value": "KES"}]),
            json!([{"path": "data.amount", "op": "eq", "value": 250.0}]),
            json!([{"path": "$.data.currency", "op": "ne", "value": "USD"}]),
            json!([{"path": "$.data.missing", "op": "ne", "value": "USD"}]),
            json!([{"path": "$.data.currency", "op": "in", "value": ["UGX", "KES"]}]),
            json!([{"path": "$.data.amount", "op": "exists"}]),
            json!([{"path": "$.data.nothing", "op": "exists", "value": false}]),
            json!([{"path": "$.data.amount", "op": "gt", "value": 100}]),
            json!([{"path": "event.params.amount", "op": "gt", "value": 100}]),
            json!([{"path": "$.data.amount", "op": "lt", "value": 1000}]),
            json!([{"path": "$.data.code", "op": "lt", "value": "1"}]),
            json!([{"path": "$.data.tags", "op": "contains", "value": "vip"}]),
            json!([{"path": "$.data.note", "op": "contains", "value": "first"}]),
            json!([{"path": "event.type", "op": "eq", "value": "payment.succeeded"},
                   {"path": "$.data.amount", "op": "gt", "value": 200}]),
            json!([]),
        ];
        for f in yes {
            assert!(filter(f.clone()).matches(&p, &e), "{f}");
        }
        let no = [
            json!([{"path": "$.data.currency", "op": "eq", "value": "USD"}]),
            json!([{"path": "$.data.missing", "op": "eq", "value": null}]),
            json!([{"path": "$.data.currency", "op": "in", "value": ["UGX"]}]),
            json!([{"path": "$.data.nothing", "op": "exists"}]),
            json!([{"path": "$.data.amount", "op": "gt", "value": 250}]),
            json!([{"path": "$.data.missing", "op": "lt", "value": 1}]),
            json!([{"path": "$.data.currency", "op": "gt", "value": 1}]),
            json!([{"path": "$.data.tags", "op": "contains", "value": "old"}]),
            json!([{"path": "event.type", "op": "eq", "value": "payment.succeeded"},
                   {"path": "$.data.amount", "op": "gt", "value": 300}]),
        ];
        for f in no {
            assert!(!filter(f.clone()).matches(&p, &e), "{f}");
        }
    }

    #[test]
    fn a_bad_condition_is_named() {
        assert_eq!(
            err(json!([{"path": "$.a", "op": "eq", "value": 1},
                       {"path": "$.b", "op": "in", "value": 1}])),
            "filter[1]: `in` needs a list as its value"
        );
        assert!(err(json!([{"path": "$[", "op": "eq", "value": 1}])).starts_with("filter[0].path"));
        assert!(err(json!([{"path": "header:x", "op": "exists"}])).contains("headers"));
        assert!(err(json!([{"path": "$.a", "op": "gt", "value": [1]}])).contains("`gt`"));
        assert!(
            serde_json::from_value::<Vec<Condition>>(json!([{"path": "$.a", "op": "like"}]))
                .is_err()
        );
    }

    #[test]
    fn what_reads_the_payload() {
        assert!(!filter(json!([{"path": "event.type", "op": "exists"}])).reads_payload());
        assert!(filter(json!([{"path": "$.a", "op": "exists"}])).reads_payload());
    }
}
