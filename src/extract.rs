//! Extraction: `sender`, `source`, `event_type`, `event_id` and `params` from a verified
//! request, by JSONPath (RFC 9535, `jsonpath-rust`), request header or query parameter.
//!
//! Owns [`FieldPath`] (one configured path, compiled once when the account loads) and
//! [`Extractor`] (all of an account's paths). Pure. It must never compile a path per
//! request, and a path that matches nothing yields null, never an error.

use hyper::header::HeaderName;
use jsonpath_rust::parser::model::JpQuery;
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use serde_json::{Map, Value};

use crate::account::{PathsSpec, SpecError};
use crate::event::Extracted;
use crate::strict_json::{Keep, Step as PlainStep};
use crate::verify::Verified;

/// One compiled path.
#[derive(Debug)]
pub enum FieldPath {
    /// A JSONPath into the payload.
    Json(JsonPath),
    /// `header:Name`: a request header's value.
    Header(HeaderName),
    /// `query:name`: a query parameter's value.
    Query(String),
    /// `a | b`: the first of several paths that selects anything (a provider that renamed
    /// a header: `header:X-Shopify-Topic | header:Shopify-Topic`).
    First(Vec<FieldPath>),
}

/// A compiled JSONPath, with a fast walker for the common singular form `$.a.b[0]`.
#[derive(Debug)]
pub struct JsonPath {
    query: JpQuery,
    /// Set when the path is only member names and non-negative indexes: then it selects
    /// at most one node and can be walked without the general engine.
    simple: Option<Vec<Step>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

impl FieldPath {
    /// Compiles a configured path. `a.b` and `a[0]` mean `$.a.b` and `$.a[0]`;
    /// `header:X-Name` and `query:name` read the request instead of the payload;
    /// `a | b` (spaces around the bar) is the first of them that finds anything.
    pub fn compile(field: &str, text: &str) -> Result<Self, SpecError> {
        let text = text.trim();
        if text.contains(" | ") {
            return text
                .split(" | ")
                .map(|one| FieldPath::compile(field, one))
                .collect::<Result<Vec<_>, _>>()
                .map(FieldPath::First);
        }
        if let Some(name) = text.strip_prefix("header:") {
            let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                SpecError::new(field, format!("{name:?} is not a valid HTTP header name"))
            })?;
            return Ok(FieldPath::Header(name));
        }
        if let Some(name) = text.strip_prefix("query:") {
            if name.is_empty() {
                return Err(SpecError::new(field, "query: needs a parameter name"));
            }
            return Ok(FieldPath::Query(name.to_owned()));
        }
        if text.is_empty() {
            return Err(SpecError::new(field, "a path must not be empty"));
        }
        let normalised = if text.starts_with('$') {
            text.to_owned()
        } else if text.starts_with('[') {
            format!("${text}")
        } else {
            format!("$.{text}")
        };
        let query = parse_json_path(&normalised)
            .map_err(|e| SpecError::new(field, format!("{text:?} is not a valid JSONPath: {e}")))?;
        Ok(FieldPath::Json(JsonPath {
            query,
            simple: simple_steps(&normalised),
        }))
    }

    /// The values this path selects in one request, in document order.
    fn select<'v>(&self, verified: &Verified<'_>, payload: &'v Value) -> Selected<'v> {
        match self {
            FieldPath::Json(path) => path.select(payload),
            FieldPath::Header(name) => {
                let values: Vec<Value> = verified
                    .request()
                    .headers
                    .get_all(name)
                    .iter()
                    .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect();
                Selected::Owned(values)
            }
            FieldPath::Query(param) => {
                let values = verified
                    .request()
                    .query
                    .map(|q| {
                        form_urlencoded::parse(q.as_bytes())
                            .filter(|(k, _)| k == param.as_str())
                            .map(|(_, v)| Value::String(v.into_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                Selected::Owned(values)
            }
            FieldPath::First(paths) => paths
                .iter()
                .map(|p| p.select(verified, payload))
                .find(|s| !s.is_empty())
                .unwrap_or(Selected::Owned(Vec::new())),
        }
    }

    /// The JSON paths within, for what a payload must keep.
    fn json_paths(&self) -> Vec<&JsonPath> {
        match self {
            FieldPath::Json(json) => vec![json],
            FieldPath::First(paths) => paths.iter().flat_map(FieldPath::json_paths).collect(),
            FieldPath::Header(_) | FieldPath::Query(_) => Vec::new(),
        }
    }
}

enum Selected<'v> {
    Borrowed(Vec<&'v Value>),
    Owned(Vec<Value>),
}

impl Selected<'_> {
    fn is_empty(&self) -> bool {
        match self {
            Selected::Borrowed(v) => v.iter().all(|v| v.is_null()),
            Selected::Owned(v) => v.iter().all(Value::is_null),
        }
    }

    /// One value: null for no match, the value for one, an array for several.
    fn into_value(self) -> Value {
        match self {
            Selected::Borrowed(mut v) if v.len() <= 1 => v.pop().cloned().unwrap_or(Value::Null),
            Selected::Borrowed(v) => Value::Array(v.into_iter().cloned().collect()),
            Selected::Owned(mut v) if v.len() <= 1 => v.pop().unwrap_or(Value::Null),
            Selected::Owned(v) => Value::Array(v),
        }
    }

    /// The selection as column text: strings as they are, other scalars and structures as
    /// JSON text, no match as `None`. A string holding a NUL character, which not every
    /// engine's text columns can hold, is written as its JSON text too (`"a\u0000b"`,
    /// quotes included), the same on every engine, so it is recorded and deduplicated
    /// like any other value.
    fn into_text(self) -> Option<String> {
        let one = |v: &Value| match v {
            Value::Null => None,
            Value::String(s) if !s.contains('\0') => Some(s.clone()),
            other => Some(other.to_string()),
        };
        match self {
            Selected::Borrowed(v) if v.len() == 1 => v.first().and_then(|v| one(v)),
            Selected::Owned(v) if v.len() == 1 => v.first().and_then(one),
            other => match other.into_value() {
                Value::Null => None,
                v => Some(v.to_string()),
            },
        }
    }
}

impl JsonPath {
    /// Compiles a JSONPath into a body (`$.a.b`, or `a.b` for short), for code that reads
    /// one value outside the extraction paths (a signature inside the payload).
    pub fn compile(field: &str, text: &str) -> Result<Self, SpecError> {
        match FieldPath::compile(field, text)? {
            FieldPath::Json(path) => Ok(path),
            _ => Err(SpecError::new(
                field,
                "must be a JSONPath into the body, not a header: or query: path",
            )),
        }
    }

    /// The one value this path selects, as column text; `None` for no match or several.
    pub fn text(&self, payload: &Value) -> Option<String> {
        match self.select(payload) {
            Selected::Borrowed(v) if v.len() == 1 => v.first().and_then(|v| match v {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            }),
            _ => None,
        }
    }

    /// The one value this path selects, if exactly one.
    pub fn value<'v>(&self, payload: &'v Value) -> Option<&'v Value> {
        match self.select(payload) {
            Selected::Borrowed(v) if v.len() == 1 => v.first().copied(),
            _ => None,
        }
    }

    fn select<'v>(&self, payload: &'v Value) -> Selected<'v> {
        if let Some(steps) = &self.simple {
            let mut node = payload;
            for step in steps {
                let next = match step {
                    Step::Key(k) => node.as_object().and_then(|o| o.get(k)),
                    Step::Index(i) => node.as_array().and_then(|a| a.get(*i)),
                };
                match next {
                    Some(n) => node = n,
                    None => return Selected::Borrowed(Vec::new()),
                }
            }
            return Selected::Borrowed(vec![node]);
        }
        match js_path_process(&self.query, payload) {
            Ok(refs) => Selected::Borrowed(refs.into_iter().map(|r| r.val()).collect()),
            Err(_) => Selected::Borrowed(Vec::new()),
        }
    }
}

/// Parses `$.a.b[0]['c']`-free paths made only of shorthand member names and indexes.
fn simple_steps(path: &str) -> Option<Vec<Step>> {
    let mut rest = path.strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let name = &after[..end];
            let mut chars = name.chars();
            let first_ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return None;
            }
            steps.push(Step::Key(name.to_owned()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let digits = &after[..end];
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            if digits.len() > 1 && digits.starts_with('0') {
                return None;
            }
            steps.push(Step::Index(digits.parse().ok()?));
            rest = &after[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

/// All of an account's paths, compiled.
#[derive(Debug, Default)]
pub struct Extractor {
    sender: Option<FieldPath>,
    source: Option<FieldPath>,
    event_type: Option<FieldPath>,
    event_id: Option<FieldPath>,
    params: Vec<(String, FieldPath)>,
    /// What the payload paths reach, when every one of them is plain: then a payload
    /// parsed keeping only that extracts the same as the whole one.
    keep: Option<Keep>,
}

impl Extractor {
    /// Compiles every path of a spec, naming the field at fault on error.
    pub fn compile(paths: &PathsSpec) -> Result<Self, SpecError> {
        let one = |field: &str, p: &Option<String>| {
            p.as_deref()
                .map(|text| FieldPath::compile(&format!("paths.{field}"), text))
                .transpose()
        };
        let params = paths
            .params
            .iter()
            .map(|(name, text)| {
                FieldPath::compile(&format!("paths.params.{name}"), text).map(|p| (name.clone(), p))
            })
            .collect::<Result<_, _>>()?;
        let mut extractor = Extractor {
            sender: one("sender", &paths.sender)?,
            source: one("source", &paths.source)?,
            event_type: one("event_type", &paths.event_type)?,
            event_id: one("event_id", &paths.event_id)?,
            params,
            keep: None,
        };
        extractor.keep = extractor.plain_reach();
        Ok(extractor)
    }

    /// What the payload paths reach, if every one is plain; `None` if any needs the
    /// general engine, which may look anywhere.
    fn plain_reach(&self) -> Option<Keep> {
        let fields = [&self.sender, &self.source, &self.event_type, &self.event_id];
        let all = fields
            .into_iter()
            .flatten()
            .chain(self.params.iter().map(|(_, p)| p));
        let mut keep = Keep::default();
        for json in all.flat_map(FieldPath::json_paths) {
            let steps = json.simple.as_ref()?;
            keep.add(steps.iter().map(|s| match s {
                Step::Key(k) => PlainStep::Key(k),
                Step::Index(n) => PlainStep::Index(*n),
            }));
        }
        Some(keep)
    }

    /// The parts of a payload this extractor reads, when that is known in advance (see
    /// [`crate::strict_json::from_slice_keeping`]); `None` when it may read anything.
    pub fn keep(&self) -> Option<&Keep> {
        self.keep.as_ref()
    }

    /// Extracts every configured field from a verified request's decoded payload.
    pub fn extract(&self, verified: &Verified<'_>, payload: &Value) -> Extracted {
        let text = |p: &Option<FieldPath>| {
            p.as_ref()
                .and_then(|p| p.select(verified, payload).into_text())
        };
        let params = if self.params.is_empty() {
            None
        } else {
            let map: Map<String, Value> = self
                .params
                .iter()
                .map(|(name, p)| (name.clone(), p.select(verified, payload).into_value()))
                .collect();
            Some(Value::Object(map).to_string())
        };
        Extracted {
            sender: text(&self.sender),
            source: text(&self.source),
            event_type: text(&self.event_type),
            event_id: text(&self.event_id),
            params,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::AccountSpec;
    use crate::verify::{RequestView, Verifier};
    use bytes::Bytes;
    use hyper::HeaderMap;
    use serde_json::json;

    fn with_verified<R>(
        headers: &HeaderMap,
        query: Option<&str>,
        f: impl FnOnce(&Verified<'_>) -> R,
    ) -> R {
        let spec = AccountSpec::from_json(json!({"name": "t", "allow_unverified": true}))
            .unwrap_or_else(|e| panic!("{e}"));
        let verifier = Verifier::compile(&spec).unwrap_or_else(|e| panic!("{e}"));
        let body = Bytes::new();
        let view = RequestView {
            method: "POST",
            headers,
            query,
            body: &body,
            url: "u",
            origin: Default::default(),
        };
        let verified = verifier.verify(&view, 0).unwrap_or_else(|e| panic!("{e}"));
        f(&verified)
    }

    fn extract(paths: serde_json::Value, payload: serde_json::Value) -> Extracted {
        let paths: PathsSpec = serde_json::from_value(paths).unwrap_or_else(|e| panic!("{e}"));
        let ex = Extractor::compile(&paths).unwrap_or_else(|e| panic!("{e}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-github-event",
            hyper::header::HeaderValue::from_static("push"),
        );
        with_verified(&headers, Some("ref=main&x=1"), |v| ex.extract(v, &payload))
    }

    #[test]
    fn the_first_alternative_that_finds_anything_wins() {
        let ex = extract(
            json!({"event_type": "header:X-Missing | header:X-GitHub-Event",
                   "source": "$.nope | $.order.id | $.other",
                   "sender": "$.nope | header:X-None"}),
            json!({"order": {"id": 7}, "other": 8}),
        );
        assert_eq!(ex.event_type.as_deref(), Some("push"));
        assert_eq!(ex.source.as_deref(), Some("7"));
        assert_eq!(ex.sender, None);
    }

    #[test]
    fn nested_arrays_dot_notation_headers_and_query() {
        let payload = json!({
            "customer": {"phone": "+255700000001"},
            "order": {"id": 1234, "items": [{"sku": "a"}, {"sku": "b"}]},
            "type": "payment.succeeded",
            "amount": 25000.5
        });
        let ex = extract(
            json!({
                "sender": "$.customer.phone",
                "source": "order.id",
                "event_type": "header:X-GitHub-Event",
                "event_id": "query:ref",
                "params": {"first_sku": "order.items[0].sku", "skus": "$.order.items[*].sku",
                           "amount": "$.amount", "missing": "$.nope"}
            }),
            payload,
        );
        assert_eq!(ex.sender.as_deref(), Some("+255700000001"));
        assert_eq!(ex.source.as_deref(), Some("1234"));
        assert_eq!(ex.event_type.as_deref(), Some("push"));
        assert_eq!(ex.event_id.as_deref(), Some("main"));
        let params: serde_json::Value =
            serde_json::from_str(ex.params.as_deref().unwrap_or("null")).unwrap_or_default();
        assert_eq!(
            params,
            json!({"first_sku": "a", "skus": ["a", "b"], "amount": 25000.5, "missing": null})
        );
    }

    #[test]
    fn plain_paths_tell_what_they_reach_and_an_engine_path_makes_it_anything() {
        let compile = |paths: serde_json::Value| {
            let paths: PathsSpec = serde_json::from_value(paths).unwrap_or_else(|e| panic!("{e}"));
            Extractor::compile(&paths).unwrap_or_else(|e| panic!("{e}"))
        };
        let plain = compile(json!({
            "event_id": "id",
            "sender": "$.customer.phone",
            "event_type": "header:X-GitHub-Event",
            "params": {"first": "$.items[0].sku", "ref": "query:ref"}
        }));
        let payload = json!({
            "id": "e1",
            "customer": {"phone": "+255700000001", "name": "Asha"},
            "items": [{"sku": "a", "qty": 1}, {"sku": "b"}],
            "noise": {"deep": [1, 2, 3]}
        });
        let keep = plain
            .keep()
            .unwrap_or_else(|| panic!("plain paths give a keep"));
        let kept = crate::strict_json::from_slice_keeping(payload.to_string().as_bytes(), keep)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            kept,
            json!({"id": "e1", "customer": {"phone": "+255700000001"}, "items": [{"sku": "a"}]})
        );
        let headers = {
            let mut h = HeaderMap::new();
            h.insert(
                "x-github-event",
                hyper::header::HeaderValue::from_static("push"),
            );
            h
        };
        let (from_kept, from_whole) = with_verified(&headers, Some("ref=main"), |v| {
            (plain.extract(v, &kept), plain.extract(v, &payload))
        });
        assert_eq!(from_kept, from_whole);
        assert_eq!(from_kept.sender.as_deref(), Some("+255700000001"));
        for engine in ["$..sku", "$.items[*].sku", "$.customer['phone']"] {
            let ex = compile(json!({"event_id": "id", "source": engine}));
            assert!(ex.keep().is_none(), "{engine} may look anywhere");
        }
    }

    #[test]
    fn fast_walker_agrees_with_the_engine() {
        let payload = json!({"a": {"b": [10, {"c": "x"}], "d": null}, "_e1": true});
        for path in [
            "$.a.b[1].c",
            "$.a.b[0]",
            "$.a.d",
            "$._e1",
            "$.a.b[5]",
            "$.zz.y",
            "$.a.b[1]",
        ] {
            let simple = simple_steps(path);
            assert!(simple.is_some(), "{path} should take the fast walker");
            let fast = FieldPath::compile("f", path).unwrap_or_else(|e| panic!("{e}"));
            let FieldPath::Json(fast) = fast else {
                panic!("json path")
            };
            let slow = JsonPath {
                query: fast.query.clone(),
                simple: None,
            };
            assert_eq!(
                fast.select(&payload).into_value(),
                slow.select(&payload).into_value(),
                "{path}"
            );
        }
        for path in [
            "$.a['b']",
            "$.a.*",
            "$..c",
            "$.a.b[-1]",
            "$.a.b[01]",
            "$.1a",
        ] {
            assert_eq!(simple_steps(path), None, "{path}");
        }
    }

    #[test]
    fn a_nul_character_in_a_string_is_kept_as_its_json_text() {
        let e = extract(
            json!({"sender": "$.s", "event_id": "$.id", "source": "$.plain"}),
            json!({"s": "+255\u{0}700", "id": "\u{0}", "plain": "ok"}),
        );
        assert_eq!(e.sender.as_deref(), Some(r#""+255\u0000700""#));
        assert_eq!(e.event_id.as_deref(), Some(r#""\u0000""#));
        assert_eq!(e.source.as_deref(), Some("ok"));
    }

    #[test]
    fn invalid_paths_are_refused_with_the_field_named() {
        let err = Extractor::compile(&PathsSpec {
            sender: Some("$.[".into()),
            ..Default::default()
        })
        .err()
        .map(|e| e.field);
        assert_eq!(err.as_deref(), Some("paths.sender"));
    }
}
