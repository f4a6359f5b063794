//! Candidate JSONPaths from a sample payload: every scalar a path can reach, with the value
//! it extracts, and a first guess for each of an account's paths.
//!
//! Owns [`suggest`] (the console's "click a field" list, `POST /v1/paths/suggest` and
//! `hookgate paths suggest`) and [`evaluate`] (what typed paths extract from the sample).
//! Pure: no I/O, bounded output whatever the sample's size. It must never decide anything
//! for an account on its own: guesses are only offered, and every path it prints compiles
//! with `extract::FieldPath::compile` and selects the value shown beside it.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::extract::JsonPath;

/// At most this many candidates are listed, so a huge sample gives a bounded answer.
pub const MAX_CANDIDATES: usize = 500;
/// Nesting deeper than this is not walked.
const MAX_DEPTH: usize = 32;
/// Arrays contribute their first elements only: enough to point at one, without listing
/// a thousand-item array item by item.
const ARRAY_ITEMS: usize = 3;

/// One path and what it extracts from the sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// The JSONPath, in the `$.a.b[0]` form the account's paths take.
    pub path: String,
    /// The value it selects in the sample.
    pub value: Value,
}

/// Every candidate and the guesses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestions {
    /// Paths to scalars, in document order.
    pub candidates: Vec<Candidate>,
    /// A first guess per account path (`sender`, `source`, `event_id`, `event_type`), only
    /// for those a likely field name was found for.
    pub guesses: BTreeMap<String, String>,
    /// Whether the list stopped at [`MAX_CANDIDATES`].
    pub truncated: bool,
}

/// Why a pasted sample could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SampleError(String);

/// Reads a pasted sample as a sender's body would be read: strict JSON when it looks like
/// JSON, a form (`a=1&b=2`) otherwise.
pub fn parse_sample(text: &[u8]) -> Result<Value, SampleError> {
    let trimmed = text.trim_ascii_start();
    if trimmed.starts_with(b"{") || trimmed.starts_with(b"[") {
        return crate::strict_json::from_slice(text)
            .map_err(|e| SampleError(format!("the sample is not valid JSON: {e}")));
    }
    crate::payload::decode_form(text)
        .map_err(|e| SampleError(format!("the sample is not a valid form: {e}")))
}

/// Lists the scalar fields of `sample` with their paths, and guesses the account's paths.
pub fn suggest(sample: &Value) -> Suggestions {
    let mut out = Suggestions {
        candidates: Vec::new(),
        guesses: BTreeMap::new(),
        truncated: false,
    };
    walk(sample, "$".to_owned(), 0, &mut out);
    out.guesses = guess(&out.candidates);
    out
}

/// What each of `paths` (field name to path text) extracts from `sample`: the value, or
/// the reason the path does not compile.
pub fn evaluate(sample: &Value, paths: &BTreeMap<String, String>) -> BTreeMap<String, Value> {
    paths
        .iter()
        .map(|(field, text)| {
            let shown = match JsonPath::compile(field, text) {
                Ok(path) => serde_json::json!({"value": path.value(sample).cloned()}),
                Err(e) => serde_json::json!({"error": e.to_string()}),
            };
            (field.clone(), shown)
        })
        .collect()
}

fn walk(value: &Value, path: String, depth: usize, out: &mut Suggestions) {
    if out.candidates.len() >= MAX_CANDIDATES {
        out.truncated = true;
        return;
    }
    match value {
        Value::Object(map) if depth < MAX_DEPTH => {
            for (key, v) in map {
                walk(v, member(&path, key), depth + 1, out);
            }
        }
        Value::Array(items) if depth < MAX_DEPTH => {
            for (i, v) in items.iter().take(ARRAY_ITEMS).enumerate() {
                walk(v, format!("{path}[{i}]"), depth + 1, out);
            }
        }
        Value::Object(_) | Value::Array(_) => {}
        scalar => out.candidates.push(Candidate {
            path,
            value: scalar.clone(),
        }),
    }
}

/// `$.key` for a plain name, `$['odd key']` (RFC 9535 escapes) otherwise.
fn member(parent: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        return format!("{parent}.{key}");
    }
    let mut quoted = String::with_capacity(key.len() + 2);
    for c in key.chars() {
        match c {
            '\'' => quoted.push_str("\\'"),
            '\\' => quoted.push_str("\\\\"),
            c if (c as u32) < 0x20 => quoted.push_str(&format!("\\u{:04x}", c as u32)),
            c => quoted.push(c),
        }
    }
    format!("{parent}['{quoted}']")
}

/// Field names that usually hold each account path, best first.
const HINTS: [(&str, &[&str]); 4] = [
    (
        "sender",
        &[
            "msisdn",
            "phone",
            "phone_number",
            "mobile",
            "wa_id",
            "from",
            "sender",
            "email",
            "customer",
            "user_id",
        ],
    ),
    (
        "source",
        &[
            "order_id",
            "reference",
            "source",
            "invoice",
            "order",
            "object",
            "repository",
        ],
    ),
    (
        "event_id",
        &[
            "event_id",
            "txn_id",
            "transaction_id",
            "webhook_id",
            "delivery_id",
            "id",
        ],
    ),
    (
        "event_type",
        &["event_type", "type", "event", "topic", "action", "status"],
    ),
];

fn guess(candidates: &[Candidate]) -> BTreeMap<String, String> {
    let mut guesses = BTreeMap::new();
    for (field, names) in HINTS {
        // The shallowest match of the best name wins; a name matches the last member of a
        // path, or the member just before a trailing `.id` (`$.order.id` is the order).
        let found = names.iter().find_map(|name| {
            candidates
                .iter()
                .filter(|c| matches_name(&c.path, name))
                .min_by_key(|c| c.path.matches(['.', '[']).count())
        });
        if let Some(c) = found {
            guesses.insert(field.to_owned(), c.path.clone());
        }
    }
    guesses
}

fn matches_name(path: &str, name: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    let mut members = lower
        .split(['.', '['])
        .map(|m| m.trim_end_matches(']').trim_matches('\''));
    let Some(last) = members.next_back() else {
        return false;
    };
    if last == name {
        return true;
    }
    last == "id" && name != "id" && members.next_back() == Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::FieldPath;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "id": "ev_1",
            "type": "payment.succeeded",
            "customer": {"phone": "+255700000001", "name": "Asha"},
            "order": {"id": 77},
            "items": [{"sku": "a"}, {"sku": "b"}],
            "odd key": true,
            "quote'd": null
        })
    }

    #[test]
    fn every_scalar_is_listed_with_the_value_its_path_extracts() {
        let s = suggest(&sample());
        let paths: Vec<&str> = s.candidates.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "$.customer.name",
                "$.customer.phone",
                "$.id",
                "$.items[0].sku",
                "$.items[1].sku",
                "$['odd key']",
                "$.order.id",
                "$['quote\\'d']",
                "$.type",
            ]
        );
        for c in &s.candidates {
            let compiled = JsonPath::compile("p", &c.path).expect("every path compiles");
            assert_eq!(compiled.value(&sample()), Some(&c.value), "{}", c.path);
            assert!(matches!(
                FieldPath::compile("p", &c.path),
                Ok(FieldPath::Json(_))
            ));
        }
        assert!(!s.truncated);
    }

    #[test]
    fn guesses_take_the_likely_field_names() {
        let s = suggest(&sample());
        assert_eq!(s.guesses["sender"], "$.customer.phone");
        assert_eq!(s.guesses["source"], "$.order.id");
        assert_eq!(s.guesses["event_id"], "$.id");
        assert_eq!(s.guesses["event_type"], "$.type");
    }

    #[test]
    fn no_guess_is_made_without_a_likely_name() {
        let s = suggest(&json!({"a": 1, "b": {"c": "x"}}));
        assert!(s.guesses.is_empty());
        assert_eq!(s.candidates.len(), 2);
    }

    #[test]
    fn a_huge_or_deep_sample_gives_a_bounded_answer() {
        let wide: serde_json::Map<String, Value> =
            (0..2000).map(|i| (format!("k{i}"), json!(i))).collect();
        let s = suggest(&Value::Object(wide));
        assert_eq!(s.candidates.len(), MAX_CANDIDATES);
        assert!(s.truncated);

        let mut deep = json!("leaf");
        for _ in 0..100 {
            deep = json!({ "a": deep });
        }
        let s = suggest(&deep);
        assert!(
            s.candidates.is_empty(),
            "nesting past the limit is not walked"
        );

        let long = json!({"list": (0..1000).collect::<Vec<_>>()});
        assert_eq!(suggest(&long).candidates.len(), ARRAY_ITEMS);
    }

    #[test]
    fn samples_are_read_as_json_or_as_a_form() {
        assert_eq!(parse_sample(b" {\"a\": 1}"), Ok(json!({"a": 1})));
        assert_eq!(
            parse_sample(b"a=1&b=x%20y"),
            Ok(json!({"a": "1", "b": "x y"}))
        );
        let err = parse_sample(b"{\"a\": 1, \"a\": 2}").expect_err("a repeated key");
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        assert!(parse_sample(b"[1,").is_err());
    }

    #[test]
    fn a_scalar_sample_is_its_own_root() {
        let s = suggest(&json!(5));
        assert_eq!(
            s.candidates,
            [Candidate {
                path: "$".into(),
                value: json!(5)
            }]
        );
    }

    #[test]
    fn evaluate_shows_values_and_the_reason_a_path_is_refused() {
        let paths: BTreeMap<String, String> = [
            ("sender".to_owned(), "$.customer.phone".to_owned()),
            ("source".to_owned(), "order.id".to_owned()),
            ("event_id".to_owned(), "$.missing".to_owned()),
            ("event_type".to_owned(), "$[".to_owned()),
        ]
        .into();
        let shown = evaluate(&sample(), &paths);
        assert_eq!(shown["sender"], json!({"value": "+255700000001"}));
        assert_eq!(shown["source"], json!({"value": 77}));
        assert_eq!(shown["event_id"], json!({"value": null}));
        let err = shown["event_type"]["error"].as_str().expect("an error");
        assert!(err.contains("event_type"), "{err}");
    }
}
