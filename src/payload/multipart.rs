//! `multipart/form-data` bodies (Mailgun's legacy webhooks, SendGrid Inbound Parse) as
//! a JSON object, read with `multer` over the body already in memory.
//!
//! Owns turning the parts into fields the way a urlencoded form is read: a text part is a
//! string (a part holding a JSON object or array becomes that value), a repeated name keeps
//! every value as an array, and a file part becomes `{"filename", "content_type", "size"}`
//! (its bytes stay in the stored body, never in the extracted fields). It must never wait:
//! the whole body is in memory, so every step of the reader is ready when asked.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{PayloadError, embedded_json};

/// Decodes a multipart body whose parts are separated by `boundary`.
pub fn decode(body: &[u8], boundary: &str) -> Result<Value, PayloadError> {
    let body = Bytes::copy_from_slice(body);
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut reader = multer::Multipart::new(stream, boundary);
    let mut fields: Vec<(String, Vec<Value>)> = Vec::new();
    loop {
        let field = ready(reader.next_field())?.map_err(malformed)?;
        let Some(field) = field else { break };
        let name = field.name().unwrap_or("").to_owned();
        let file = field
            .file_name()
            .map(|f| (f.to_owned(), field.content_type().map(|m| m.to_string())));
        let bytes = ready(field.bytes())?.map_err(malformed)?;
        let value = match file {
            Some((filename, content_type)) => {
                json!({"filename": filename, "content_type": content_type, "size": bytes.len()})
            }
            None => {
                let text = String::from_utf8_lossy(&bytes);
                match embedded_json(&text) {
                    Ok(Some(json)) => json,
                    Ok(None) => Value::String(text.into_owned()),
                    Err(e) => {
                        return Err(PayloadError::Malformed(format!(
                            "the multipart field {name:?} holds JSON that is not valid: {e}"
                        )));
                    }
                }
            }
        };
        match fields.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => fields.push((name, vec![value])),
        }
    }
    let mut map = Map::new();
    for (name, mut values) in fields {
        let value = if values.len() == 1 {
            values.pop().unwrap_or(Value::Null)
        } else {
            Value::Array(values)
        };
        map.insert(name, value);
    }
    Ok(Value::Object(map))
}

/// Runs a future that cannot wait (its stream is one ready chunk) to its end.
fn ready<F: Future>(future: F) -> Result<F::Output, PayloadError> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => Ok(out),
        Poll::Pending => Err(PayloadError::Malformed(
            "the multipart body could not be read in one pass".into(),
        )),
    }
}

fn malformed(e: multer::Error) -> PayloadError {
    PayloadError::Malformed(format!("the multipart body is not valid: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "--XyZ\r\n\
        Content-Disposition: form-data; name=\"event\"\r\n\r\n\
        delivered\r\n\
        --XyZ\r\n\
        Content-Disposition: form-data; name=\"to\"\r\n\r\n\
        a@example.com\r\n\
        --XyZ\r\n\
        Content-Disposition: form-data; name=\"to\"\r\n\r\n\
        b@example.com\r\n\
        --XyZ\r\n\
        Content-Disposition: form-data; name=\"envelope\"\r\n\r\n\
        {\"from\":\"c@example.com\"}\r\n\
        --XyZ\r\n\
        Content-Disposition: form-data; name=\"attachment1\"; filename=\"a.txt\"\r\n\
        Content-Type: text/plain\r\n\r\n\
        hello\r\n\
        --XyZ--\r\n";

    #[test]
    fn text_parts_repeats_embedded_json_and_files() {
        let v = decode(BODY.as_bytes(), "XyZ").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            v,
            json!({
                "event": "delivered",
                "to": ["a@example.com", "b@example.com"],
                "envelope": {"from": "c@example.com"},
                "attachment1": {"filename": "a.txt", "content_type": "text/plain", "size": 5}
            })
        );
    }

    #[test]
    fn a_truncated_or_foreign_body_is_malformed_not_empty() {
        let cut = &BODY.as_bytes()[..BODY.len() - 12];
        assert!(matches!(
            decode(cut, "XyZ"),
            Err(PayloadError::Malformed(_))
        ));
        assert!(matches!(
            decode(b"not multipart at all", "XyZ"),
            Err(PayloadError::Malformed(_))
        ));
    }
}
