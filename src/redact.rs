//! Redaction: what of a request may be written to the audit log.
//!
//! Owns the list of headers that always carry credentials, and the functions that turn a
//! request's headers and query into the stored, redacted form. Pure. It must never let a
//! credential or signature value through: a redacted value is replaced whole.

use hyper::HeaderMap;
#[cfg(test)]
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

/// The headers as a JSON object (lower-case names in byte order; a repeated header keeps
/// every value as an array), with the named headers' values redacted. `sensitive` names are
/// compared case-insensitively. Written directly, not through a `serde_json::Value`: this
/// runs for every request.
pub fn headers_json(headers: &HeaderMap, sensitive: &[&str], extra: &[String]) -> String {
    let mut names: Vec<&str> = headers.keys().map(|n| n.as_str()).collect();
    names.sort_unstable();
    let mut out: Vec<u8> = Vec::with_capacity(64 * names.len() + 2);
    out.push(b'{');
    for (i, key) in names.into_iter().enumerate() {
        let redact = ALWAYS.contains(&key)
            || sensitive.iter().any(|s| s.eq_ignore_ascii_case(key))
            || extra.iter().any(|s| s.eq_ignore_ascii_case(key));
        if i > 0 {
            out.push(b',');
        }
        push_json_str(&mut out, key);
        out.push(b':');
        let values = headers.get_all(key);
        let many = values.iter().nth(1).is_some();
        if many {
            out.push(b'[');
        }
        for (j, v) in values.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            if redact {
                push_json_str(&mut out, REDACTED);
            } else {
                push_json_str(&mut out, &String::from_utf8_lossy(v.as_bytes()));
            }
        }
        if many {
            out.push(b']');
        }
    }
    out.push(b'}');
    // Only JSON text from `&str`s went in: always UTF-8.
    String::from_utf8(out).unwrap_or_else(|_| "{}".to_owned())
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it, without an allocation
/// of its own.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a `&str` into a `Vec` cannot fail; the fallback keeps the output valid JSON.
    let mark = out.len();
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.truncate(mark);
        out.extend_from_slice(b"\"\"");
    }
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

    /// The stored text is what serialising a sorted JSON object gives, byte for byte, so
    /// rows written before and after agree on form.
    #[test]
    fn the_text_is_serde_json_of_the_sorted_object() {
        let mut h = HeaderMap::new();
        h.insert("x-z", HeaderValue::from_static("last"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("x-quote", HeaderValue::from_static("a \"q\" \\ b"));
        h.insert(
            "x-bytes",
            HeaderValue::from_bytes(b"caf\xc3\xa9 \xff").unwrap_or(HeaderValue::from_static("?")),
        );
        h.append("x-multi", HeaderValue::from_static("1"));
        h.append("x-multi", HeaderValue::from_static("2"));
        h.insert("x-api-key", HeaderValue::from_static("k"));
        let mut map = Map::new();
        for name in h.keys() {
            let values: Vec<Value> = h
                .get_all(name)
                .iter()
                .map(|v| match name.as_str() {
                    "x-api-key" => Value::from(REDACTED),
                    _ => Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned()),
                })
                .collect();
            let value = match <[Value; 1]>::try_from(values) {
                Ok([one]) => one,
                Err(many) => Value::Array(many),
            };
            map.insert(name.as_str().to_owned(), value);
        }
        assert_eq!(headers_json(&h, &[], &[]), Value::Object(map).to_string());
        assert_eq!(headers_json(&HeaderMap::new(), &[], &[]), "{}");
    }

    #[test]
    fn query_token_is_redacted() {
        let q = query("a=1&token=abc%20def&b=2", &["token"]);
        assert!(!q.contains("abc"), "{q}");
        assert!(q.starts_with("a=1&token="), "{q}");
        assert_eq!(query("a=1", &[]), "a=1");
    }
}
