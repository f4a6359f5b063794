//! Redaction: what of a request may be written to the audit log.
//!
//! Owns the list of headers that always carry credentials, what makes a header look like
//! one, and the functions that turn a request's headers and query into the stored,
//! redacted form: for a request that matched no account, every query value and every
//! credential-looking header is redacted. Also takes input values out of serde's error
//! messages. Pure. It must never let a
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

/// Parts of a header name that mark it as carrying a credential or a signature. A request
/// that matches no account is stored with every such header redacted: it may be a genuine
/// sender's key sent to a slightly wrong URL.
const CREDENTIAL_WORDS: &[&str] = &[
    "auth",
    "token",
    "key",
    "secret",
    "sig",
    "hmac",
    "pass",
    "credential",
    "session",
    "cookie",
    "jwt",
    "bearer",
    "nonce",
];

/// Whether a header name looks like it carries a credential or a signature (any case).
pub fn looks_like_credential(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    CREDENTIAL_WORDS.iter().any(|w| name.contains(w))
}

/// The headers of a request that matched no account, as [`headers_json`] stores them, with
/// every credential-looking header redacted too.
pub fn headers_json_unmatched(headers: &HeaderMap, extra: &[String]) -> String {
    let suspicious: Vec<&str> = headers
        .keys()
        .map(|n| n.as_str())
        .filter(|n| looks_like_credential(n))
        .collect();
    headers_json(headers, &suspicious, extra)
}

/// The query string of a request that matched no account: every value redacted (a
/// parameter without `=` is redacted whole), since any of them may be a credential.
pub fn query_unmatched(query: &str) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for piece in query.split('&').filter(|p| !p.is_empty()) {
        match piece.split_once('=') {
            Some((key, _)) => {
                let key: String = form_urlencoded::parse(key.as_bytes())
                    .map(|(k, _)| k.into_owned())
                    .collect();
                out.append_pair(&key, REDACTED);
            }
            None => {
                out.append_key_only(REDACTED);
            }
        }
    }
    out.finish()
}

/// A serde error message with the input's values taken out: `string "..."` becomes
/// `a string`, and characters, integers and floating-point numbers lose their values the
/// same way. The message still names the field, the expected type and the position, but
/// never repeats a value sent, which may be a secret in the wrong place. An unknown
/// variant's name stays: it is a choice among fixed names (an encoding, an algorithm),
/// where a secret does not go, and naming it is what makes the message useful.
pub fn serde_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let next = [
            ("string \"", '"', "a string"),
            ("character `", '`', "a character"),
            ("integer `", '`', "an integer"),
            ("floating point `", '`', "a number"),
        ]
        .into_iter()
        .filter_map(|(open, close, word)| rest.find(open).map(|at| (at, open, close, word)))
        .min_by_key(|(at, ..)| *at);
        let Some((at, open, close, word)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        out.push_str(word);
        rest = skip_quoted(&rest[at + open.len()..], close);
    }
}

/// What follows a quoted value that ends at the first `close` not escaped by a backslash
/// (serde quotes strings as Rust's `Debug` does); nothing when it never ends.
fn skip_quoted(text: &str, close: char) -> &str {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == close => return &text[i + c.len_utf8()..],
            _ => {}
        }
    }
    ""
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
    fn serde_messages_keep_their_shape_but_not_the_values_sent() {
        let wrong: Result<Vec<String>, _> = serde_json::from_str(r#""s3cr\"et, expected""#);
        let text = wrong
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(text.contains("s3cr"), "serde repeats the value: {text}");
        let clean = serde_message(&text);
        assert!(
            !clean.contains("s3cr") && !clean.contains("et, expected\""),
            "{clean}"
        );
        assert!(
            clean.starts_with("invalid type: a string, expected a sequence"),
            "{clean}"
        );
        assert_eq!(
            serde_message("unknown variant `base32`, expected `hex` or `base64`"),
            "unknown variant `base32`, expected `hex` or `base64`"
        );
        assert_eq!(
            serde_message(r#"invalid value: character `x`, then string "a\\" and string "b""#),
            "invalid value: a character, then a string and a string"
        );
        assert_eq!(
            serde_message(r#"broken string "never ends"#),
            "broken a string"
        );
        assert_eq!(
            serde_message("invalid type: integer `123456`, expected a string"),
            "invalid type: an integer, expected a string"
        );
        assert_eq!(
            serde_message("invalid type: floating point `1.5`, expected a string"),
            "invalid type: a number, expected a string"
        );
        assert_eq!(
            serde_message("missing field `name`"),
            "missing field `name`"
        );
    }

    #[test]
    fn a_request_matching_no_account_keeps_no_value_of_its_query_or_credential_headers() {
        let q = query_unmatched("token=abc%20def&x=1&sk_live_bare&&a%20b=c");
        assert!(
            !q.contains("abc") && !q.contains("sk_live") && !q.contains("=1"),
            "{q}"
        );
        assert_eq!(
            q,
            "token=%5Bredacted%5D&x=%5Bredacted%5D&%5Bredacted%5D&a+b=%5Bredacted%5D"
        );
        assert_eq!(query_unmatched(""), "");
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("x-shop-key", "k-123"),
            ("x-webhook-token", "t-456"),
            ("stripe-signature", "t=1,v1=ab"),
            ("x-shopify-hmac-sha256", "h-789"),
            ("x-my-password", "pw"),
            ("authorization", "Bearer b"),
            ("user-agent", "Stripe/1.0"),
        ] {
            h.insert(name, HeaderValue::from_static(value));
        }
        let text = headers_json_unmatched(&h, &[]);
        for secret in ["k-123", "t-456", "v1=ab", "h-789", "\"pw\"", "Bearer b"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.contains("Stripe/1.0"),
            "ordinary headers are kept: {text}"
        );
    }

    #[test]
    fn query_token_is_redacted() {
        let q = query("a=1&token=abc%20def&b=2", &["token"]);
        assert!(!q.contains("abc"), "{q}");
        assert!(q.starts_with("a=1&token="), "{q}");
        assert_eq!(query("a=1", &[]), "a=1");
    }
}
