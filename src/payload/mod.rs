//! Payload decoding: the verified body as a JSON value, whatever form it came in.
//!
//! Owns the mapping from content type to decoder: JSON (also `text/plain`, as AWS SNS
//! sends it), `application/x-www-form-urlencoded`, whose fields become an object (a
//! repeated key keeps every value, as an array; a field holding a JSON object or array,
//! like Slack's `payload=`, becomes that value), and `multipart/form-data` (`multipart`:
//! Mailgun's legacy webhooks, SendGrid Inbound Parse), read the same way. JSON objects may not repeat a key
//! (`strict_json`). It must never be given unverified bytes:
//! it takes a [`Verified`] request.

mod multipart;

use serde_json::{Map, Value};

use crate::strict_json::Keep;
use crate::verify::Verified;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The content type is not one hookgate extracts from.
    #[error(
        "the content type {0:?} is not supported; send application/json, application/x-www-form-urlencoded, multipart/form-data or JSON as text/plain"
    )]
    Unsupported(String),
    /// The body does not parse as its content type says.
    #[error("{0}")]
    Malformed(String),
}

/// The body kinds hookgate decodes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Json,
    Form,
    /// `multipart/form-data` with its boundary.
    Multipart(String),
}

fn kind_of(content_type: Option<&str>) -> Result<Kind, PayloadError> {
    let Some(ct) = content_type else {
        return Ok(Kind::Json);
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "" | "application/json" | "text/json" | "text/plain" => Ok(Kind::Json),
        "application/x-www-form-urlencoded" => Ok(Kind::Form),
        "multipart/form-data" => multer::parse_boundary(ct)
            .map(Kind::Multipart)
            .map_err(|_| PayloadError::Malformed(format!("{ct:?} names no boundary"))),
        e if e.starts_with("application/") && e.ends_with("+json") => Ok(Kind::Json),
        _ => Err(PayloadError::Unsupported(ct.to_owned())),
    }
}

/// Checks that a content type is decodable before any work is done on the body.
pub fn check_content_type(content_type: Option<&str>) -> Result<(), PayloadError> {
    kind_of(content_type).map(|_| ())
}

/// Decodes a verified body. An empty body is `null`, so a bare ping is still accepted.
pub fn decode(verified: &Verified<'_>, content_type: Option<&str>) -> Result<Value, PayloadError> {
    decode_bytes(verified.request().body, content_type)
}

/// Decodes a verified body as [`decode`] does, but a JSON body keeps only what `keep`
/// names (see [`crate::strict_json::from_slice_keeping`]): the same bodies are refused,
/// with the same errors, and the extractor that gave `keep` finds the same values.
pub fn decode_keeping(
    verified: &Verified<'_>,
    content_type: Option<&str>,
    keep: &Keep,
) -> Result<Value, PayloadError> {
    let body = verified.request().body;
    if kind_of(content_type)? != Kind::Json || body.trim_ascii().is_empty() {
        return decode_bytes(body, content_type);
    }
    crate::strict_json::from_slice_keeping(body, keep).map_err(malformed)
}

fn malformed(e: serde_json::Error) -> PayloadError {
    PayloadError::Malformed(format!("the body is not valid JSON: {e}"))
}

/// Decodes a body that was not verified, only to recognise an unsigned handshake (a
/// creation ping). Nothing decoded here may become an event.
pub fn decode_unverified(body: &[u8], content_type: Option<&str>) -> Result<Value, PayloadError> {
    decode_bytes(body, content_type)
}

fn decode_bytes(body: &[u8], content_type: Option<&str>) -> Result<Value, PayloadError> {
    let kind = kind_of(content_type)?;
    if body.trim_ascii().is_empty() {
        return Ok(Value::Null);
    }
    match kind {
        Kind::Json => crate::strict_json::from_slice(body).map_err(malformed),
        // A form never starts with '{' or '['; a body labelled as a form that is JSON (curl's
        // `-d` default, and many a sender's mistake) is read as the JSON it is.
        Kind::Multipart(boundary) => multipart::decode(body, &boundary),
        Kind::Form => {
            let t = body.trim_ascii_start();
            let json = (t.starts_with(b"{") || t.starts_with(b"["))
                .then(|| crate::strict_json::from_slice(body).ok())
                .flatten();
            Ok(json.unwrap_or_else(|| decode_form(body)))
        }
    }
}

/// Turns `a=1&b=2&b=3&payload={...}` into `{"a":"1","b":["2","3"],"payload":{...}}`.
pub fn decode_form(body: &[u8]) -> Value {
    // Keys are indexed so that a hostile form with many keys stays linear.
    let mut fields: Vec<(String, Vec<Value>)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (key, value) in form_urlencoded::parse(body) {
        let value = embedded_json(&value).unwrap_or_else(|| Value::String(value.into_owned()));
        match index.get(key.as_ref()) {
            Some(&i) => fields[i].1.push(value),
            None => {
                index.insert(key.clone().into_owned(), fields.len());
                fields.push((key.into_owned(), vec![value]));
            }
        }
    }
    let mut map = Map::new();
    for (key, mut values) in fields {
        let value = if values.len() == 1 {
            values.pop().unwrap_or(Value::Null)
        } else {
            Value::Array(values)
        };
        map.insert(key, value);
    }
    Value::Object(map)
}

fn embedded_json(value: &str) -> Option<Value> {
    let t = value.trim_start();
    if !(t.starts_with('{') || t.starts_with('[')) {
        return None;
    }
    crate::strict_json::from_slice(value.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types() {
        assert_eq!(kind_of(None), Ok(Kind::Json));
        assert_eq!(
            kind_of(Some("application/json; charset=utf-8")),
            Ok(Kind::Json)
        );
        assert_eq!(kind_of(Some("application/vnd.api+json")), Ok(Kind::Json));
        assert_eq!(kind_of(Some("Text/Plain")), Ok(Kind::Json));
        assert_eq!(
            kind_of(Some("application/x-www-form-urlencoded")),
            Ok(Kind::Form)
        );
        assert!(kind_of(Some("application/xml")).is_err());
        assert_eq!(
            kind_of(Some("multipart/form-data; boundary=x")),
            Ok(Kind::Multipart("x".into()))
        );
        assert!(matches!(
            kind_of(Some("multipart/form-data")),
            Err(PayloadError::Malformed(_))
        ));
    }

    #[test]
    fn form_keeps_repeats_and_embedded_json() {
        let v =
            decode_form(b"a=1&b=2&b=3&b=4&payload=%7B%22user%22%3A%7B%22id%22%3A%22U1%22%7D%7D&e=");
        assert_eq!(
            v,
            json!({"a": "1", "b": ["2", "3", "4"], "payload": {"user": {"id": "U1"}}, "e": ""})
        );
    }

    #[test]
    fn json_mislabelled_as_a_form_is_read_as_json() {
        use crate::account::AccountSpec;
        use crate::verify::{RequestView, Verifier};
        let spec = AccountSpec::from_json(json!({"name": "t", "allow_unverified": true}))
            .unwrap_or_else(|e| panic!("{e}"));
        let verifier = Verifier::compile(&spec).unwrap_or_else(|e| panic!("{e}"));
        let headers = hyper::HeaderMap::new();
        for (body, want) in [
            (r#"{"a":1}"#, json!({"a": 1})),
            ("a=1", json!({"a": "1"})),
            ("{broken", json!({"{broken": ""})),
        ] {
            let body = bytes::Bytes::from(body);
            let view = RequestView {
                method: "POST",
                headers: &headers,
                query: None,
                body: &body,
                url: "u",
                origin: Default::default(),
            };
            let verified = verifier.verify(&view, 0).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                decode(&verified, Some("application/x-www-form-urlencoded")),
                Ok(want)
            );
        }
    }

    #[test]
    fn form_repeat_of_an_embedded_array_wraps_it() {
        let v = decode_form(b"x=%5B1%5D&x=2");
        assert_eq!(v, json!({"x": [[1], "2"]}));
    }
}
