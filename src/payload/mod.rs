//! Payload decoding: the verified body as a JSON value, whatever form it came in.
//!
//! Owns the mapping from content type to decoder: JSON (also `text/plain`, as AWS SNS
//! sends it), `application/x-www-form-urlencoded`, whose fields become an object (a
//! repeated key keeps every value, as an array; a field holding a JSON object or array,
//! like Slack's `payload=`, becomes that value), and `multipart/form-data` (`multipart`:
//! Mailgun's legacy webhooks, SendGrid Inbound Parse), read the same way. JSON objects may
//! not repeat a key (`strict_json`), in a JSON body, in a body labelled as a form that is
//! JSON, and in a form field holding JSON. It must never be given unverified bytes:
//! it takes a [`Verified`] request.

mod multipart;

use serde_json::{Map, Value};

use crate::account::XmlSpec;
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

/// Decodes a verified body for an account that reads XML (see [`XmlSpec`]): an XML body
/// (when the account accepts one: an XML content type, or a body that opens with `<`) is
/// read as XML, any other as [`decode_keeping`] or
/// [`decode`] read it; then each base64 XML field is replaced by the document it holds.
/// XML that cannot be read (malformed, a DTD, an entity) is a malformed payload.
pub fn decode_with_xml(
    verified: &Verified<'_>,
    content_type: Option<&str>,
    keep: Option<&Keep>,
    xml: &XmlSpec,
) -> Result<Value, PayloadError> {
    let body = verified.request().body;
    // A sender that labels its XML otherwise (text/plain, a form) is still read as XML.
    let looks_xml = body.trim_ascii_start().starts_with(b"<");
    let mut value = if xml.body && (is_xml(content_type) || looks_xml) {
        if body.trim_ascii().is_empty() {
            Value::Null
        } else {
            crate::xml::to_json(body, body.len()).map_err(|e| {
                PayloadError::Malformed(format!("the body is not readable XML: {e}"))
            })?
        }
    } else {
        match keep {
            Some(keep) => decode_keeping(verified, content_type, keep)?,
            None => decode(verified, content_type)?,
        }
    };
    for field in &xml.base64_fields {
        expand_base64_xml(&mut value, field)?;
    }
    Ok(value)
}

/// Whether a content type names XML.
fn is_xml(content_type: Option<&str>) -> bool {
    let essence = content_type
        .and_then(|ct| ct.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/xml" || essence == "text/xml" || essence.ends_with("+xml")
}

/// Replaces the top-level string `field` (base64, line breaks allowed) by the XML document
/// it holds, read as JSON. A payload without the field is left as it is.
fn expand_base64_xml(value: &mut Value, field: &str) -> Result<(), PayloadError> {
    use base64::Engine;
    let Some(slot) = value.as_object_mut().and_then(|m| m.get_mut(field)) else {
        return Ok(());
    };
    let Value::String(text) = slot else {
        return Err(PayloadError::Malformed(format!(
            "the field {field:?} is not base64 XML"
        )));
    };
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|_| PayloadError::Malformed(format!("the field {field:?} is not valid base64")))?;
    let doc = crate::xml::to_json(&bytes, bytes.len()).map_err(|e| {
        PayloadError::Malformed(format!("the field {field:?} is not readable XML: {e}"))
    })?;
    *slot = doc;
    Ok(())
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
        Kind::Multipart(boundary) => multipart::decode(body, &boundary),
        // A form never starts with '{' or '['; a body labelled as a form that does (curl's
        // `-d` default, and many a sender's mistake) is read as the JSON it is, and refused
        // as JSON is when it is not strict JSON: read as a form, a body with a duplicate
        // key would lose its event id while a downstream JSON parser still saw one.
        Kind::Form => {
            let t = body.trim_ascii_start();
            if t.starts_with(b"{") || t.starts_with(b"[") {
                return crate::strict_json::from_slice(body).map_err(malformed);
            }
            decode_form(body)
        }
    }
}

/// Turns `a=1&b=2&b=3&payload={...}` into `{"a":"1","b":["2","3"],"payload":{...}}`.
/// A field that is JSON but not strict JSON (a duplicate key) refuses the whole form.
pub fn decode_form(body: &[u8]) -> Result<Value, PayloadError> {
    // Keys are indexed so that a hostile form with many keys stays linear.
    let mut fields: Vec<(String, Vec<Value>)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (key, value) in form_urlencoded::parse(body) {
        let value = field_value(&key, value)?;
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
    Ok(Value::Object(map))
}

/// A form field's value: the JSON it holds when it is a JSON object or array, else its
/// text; refused when it is JSON that strict parsing refuses.
fn field_value(key: &str, value: std::borrow::Cow<'_, str>) -> Result<Value, PayloadError> {
    match embedded_json(&value) {
        Ok(Some(json)) => Ok(json),
        Ok(None) => Ok(Value::String(value.into_owned())),
        Err(e) => Err(PayloadError::Malformed(format!(
            "the form field {key:?} holds JSON that is not accepted: {e}"
        ))),
    }
}

/// A form field's value as JSON when it is a JSON object or array; `None` when it is text
/// (`[draft] notes` stays a string); an error when it is JSON that strict parsing refuses
/// (a duplicate key, or nesting past the recursion limit), which a downstream parser
/// could still read as JSON.
fn embedded_json(value: &str) -> Result<Option<Value>, serde_json::Error> {
    let t = value.trim_start();
    if !(t.starts_with('{') || t.starts_with('[')) {
        return Ok(None);
    }
    match crate::strict_json::from_slice(value.as_bytes()) {
        Ok(json) => Ok(Some(json)),
        Err(strict) => match serde_json::from_str::<serde::de::IgnoredAny>(value) {
            Ok(_) => Err(strict),
            Err(e) if e.to_string().starts_with("recursion limit exceeded") => Err(strict),
            Err(_) => Ok(None),
        },
    }
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
            Ok(json!({"a": "1", "b": ["2", "3", "4"], "payload": {"user": {"id": "U1"}}, "e": ""}))
        );
    }

    #[test]
    fn json_mislabelled_as_a_form_is_read_as_strict_json() {
        use crate::account::AccountSpec;
        use crate::verify::{RequestView, Verifier};
        let spec = AccountSpec::from_json(json!({"name": "t", "allow_unverified": true}))
            .unwrap_or_else(|e| panic!("{e}"));
        let verifier = Verifier::compile(&spec).unwrap_or_else(|e| panic!("{e}"));
        let headers = hyper::HeaderMap::new();
        for (body, want) in [
            (r#"{"a":1}"#, Ok(json!({"a": 1}))),
            ("a=1", Ok(json!({"a": "1"}))),
            (r#"{"id":"d9","id":"d10"}"#, Err("appears twice")),
            (" [1,{\"k\":1,\"k\":2}]", Err("appears twice")),
            ("{broken", Err("not valid JSON")),
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
            let got = decode(&verified, Some("application/x-www-form-urlencoded"));
            match (got, want) {
                (Ok(v), Ok(w)) => assert_eq!(v, w),
                (Err(PayloadError::Malformed(m)), Err(w)) => assert!(m.contains(w), "{m}"),
                (got, want) => panic!("{got:?} for {want:?}"),
            }
        }
    }

    #[test]
    fn form_repeat_of_an_embedded_array_wraps_it() {
        let v = decode_form(b"x=%5B1%5D&x=2");
        assert_eq!(v, Ok(json!({"x": [[1], "2"]})));
    }

    #[test]
    fn a_form_field_of_json_with_duplicate_keys_is_refused_and_text_stays_text() {
        let dup = decode_form(b"payload=%7B%22id%22%3A%22d9%22%2C%22id%22%3A%22d10%22%7D");
        assert!(
            matches!(&dup, Err(PayloadError::Malformed(m)) if m.contains("payload") && m.contains("appears twice")),
            "{dup:?}"
        );
        let deep = format!("x={}", "%5B".repeat(200));
        assert_eq!(
            decode_form(deep.as_bytes()),
            Ok(json!({"x": "[".repeat(200)})),
            "not JSON at all: text"
        );
        let deep_json = format!("x={}{}", "%5B".repeat(200), "%5D".repeat(200));
        assert!(
            decode_form(deep_json.as_bytes()).is_err(),
            "JSON nested past the limit is refused, not kept as text"
        );
        assert_eq!(
            decode_form(b"subject=%5Bdraft%5D+notes&n=%7Bx"),
            Ok(json!({"subject": "[draft] notes", "n": "{x"}))
        );
    }

    #[test]
    fn a_base64_xml_field_is_read_in_place_and_bad_ones_are_malformed() {
        use base64::Engine;
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        let xml = "<notification><kind>check</kind></notification>";
        let mut v = serde_json::json!({"bt_payload": format!("{}\n", b64(xml)), "x": "1"});
        assert_eq!(expand_base64_xml(&mut v, "bt_payload"), Ok(()));
        assert_eq!(v["bt_payload"]["notification"]["kind"], "check");
        let mut absent = serde_json::json!({"x": "1"});
        assert_eq!(expand_base64_xml(&mut absent, "bt_payload"), Ok(()));
        for bad in [
            serde_json::json!({"bt_payload": "%%%"}),
            serde_json::json!({"bt_payload": b64("<a>")}),
            serde_json::json!({"bt_payload": b64("<!DOCTYPE a><a/>")}),
            serde_json::json!({"bt_payload": 7}),
        ] {
            let mut bad = bad;
            assert!(
                matches!(
                    expand_base64_xml(&mut bad, "bt_payload"),
                    Err(PayloadError::Malformed(_))
                ),
                "{bad}"
            );
        }
        assert!(is_xml(Some("text/xml; charset=utf-8")));
        assert!(is_xml(Some("application/soap+xml")));
        assert!(!is_xml(Some("application/json")));
    }
}
