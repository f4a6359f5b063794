//! Redaction: what of a request may be written to the audit log.
//!
//! Owns the list of headers that always carry credentials, and the functions that turn a
//! request's headers and query into the stored, redacted form. Pure. It must never let a
//! credential or signature value through: a redacted value is replaced whole.

use hyper::HeaderMap;
use serde_json::{Map, Value};

/// What a redacted value is stored as.
pub const REDACTED: &str = "[redacted]";

/// Headers redacted on every account: they carry credentials by definition.
pub const ALWAYS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

/// The headers as a JSON object (lower-case names; a repeated header keeps every value as
/// an array), with the named headers' values redacted. `sensitive` names are compared
/// case-insensitively.
pub fn headers_json(headers: &HeaderMap, sensitive: &[&str], extra: &[String]) -> String {
    let mut map = Map::new();
    for name in headers.keys() {
        let key = name.as_str();
        let redact = ALWAYS.contains(&key)
            || sensitive.iter().any(|s| s.eq_ignore_ascii_case(key))
            || extra.iter().any(|s| s.eq_ignore_ascii_case(key));
        let mut values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|v| {
                if redact {
                    Value::from(REDACTED)
                } else {
                    Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned())
                }
            })
            .collect();
        let value = if values.len() == 1 {
            values.pop().unwrap_or(Value::Null)
        } else {
            Value::Array(values)
        };
        map.insert(key.to_owned(), value);
    }
    Value::Object(map).to_string()
}

/// The query string with the value of `param` (the authenticate key) redacted.
pub fn query(query: &str, params: &[&str]) -> String {
    if params.is_empty() {
        return query.to_owned();
    }
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if params.contains(&k.as_ref()) {
            out.append_pair(&k, REDACTED);
        } else {
            out.append_pair(&k, &v);
        }
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn credentials_and_signatures_are_replaced_whole() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer sekrit"));
        h.insert("x-signature", HeaderValue::from_static("sha256=abcdef"));
        h.insert("x-custom", HeaderValue::from_static("mine"));
        h.append("x-multi", HeaderValue::from_static("1"));
        h.append("x-multi", HeaderValue::from_static("2"));
        let text = headers_json(&h, &["X-Signature"], &["X-Custom".to_owned()]);
        assert!(!text.contains("sekrit") && !text.contains("abcdef") && !text.contains("mine"));
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(v["x-multi"], serde_json::json!(["1", "2"]));
        assert_eq!(v["authorization"], REDACTED);
    }

    #[test]
    fn query_token_is_redacted() {
        let q = query("a=1&token=abc%20def&b=2", &["token"]);
        assert!(!q.contains("abc"), "{q}");
        assert!(q.starts_with("a=1&token="), "{q}");
        assert_eq!(query("a=1", &[]), "a=1");
    }
}
