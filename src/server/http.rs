//! HTTP plumbing shared by both listeners: the response body type, JSON and problem+json
//! (RFC 9457) answers, reading a request body under a size limit and a deadline, and
//! measuring a request's head against its limit.
//!
//! Owns the one mapping from errors to HTTP answers ([`Problem`]). It must never put
//! internal error text (SQL, file paths) into an answer to a webhook sender.

use std::convert::Infallible;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};

/// The body of every response. A streamed body may fail part way (an export whose
/// database read failed): hyper then aborts the response instead of ending it cleanly, so
/// a client never mistakes a cut-off stream for a complete one.
pub type ResBody = BoxBody<Bytes, std::io::Error>;

/// A full response body.
pub fn full(bytes: impl Into<Bytes>) -> ResBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// A body fed by a bounded channel; an `Err` item ends it with an error.
pub fn channel_body(rx: tokio::sync::mpsc::Receiver<Result<Bytes, String>>) -> ResBody {
    ChannelBody { rx }.boxed()
}

struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, String>>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.rx.poll_recv(cx).map(|item| {
            item.map(|r| {
                r.map(hyper::body::Frame::data)
                    .map_err(std::io::Error::other)
            })
        })
    }
}

/// A JSON answer.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<ResBody> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// A problem+json answer (RFC 9457).
#[derive(Debug, Clone)]
pub struct Problem {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code (snake_case).
    pub code: &'static str,
    /// A short, human-readable summary.
    pub title: &'static str,
    /// What happened in this case, in words.
    pub detail: String,
    /// Extra members (the audit id, the field at fault).
    pub extra: Vec<(&'static str, Value)>,
}

impl Problem {
    /// A problem with no extra members.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            code,
            title,
            detail: detail.into(),
            extra: Vec::new(),
        }
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &'static str, value: impl Into<Value>) -> Self {
        self.extra.push((key, value.into()));
        self
    }

    /// The response.
    pub fn response(&self) -> Response<ResBody> {
        let mut body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        for (k, v) in &self.extra {
            body[*k] = v.clone();
        }
        let mut res = json(self.status, &body);
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        res
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// More than the limit was sent; the prefix read so far and the total size seen.
    TooLarge {
        /// What was read before giving up.
        prefix: Bytes,
        /// The size seen (declared or counted).
        seen: u64,
    },
    /// The body did not arrive within the deadline.
    Timeout {
        /// What was read before the deadline.
        prefix: Bytes,
    },
    /// The connection failed while reading.
    Broken(String),
}

/// Reads a whole body, refusing more than `limit` bytes and giving up after `deadline`.
/// A declared `Content-Length` over the limit is refused before reading anything.
pub async fn read_body(
    body: Incoming,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, BodyError> {
    if let Some(declared) = body.size_hint().exact()
        && declared > limit as u64
    {
        return Err(BodyError::TooLarge {
            prefix: Bytes::new(),
            seen: declared,
        });
    }
    let mut buf = BytesMut::with_capacity(body.size_hint().lower().min(limit as u64) as usize);
    let mut body = body;
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    let seen = (buf.len() + data.len()) as u64;
                    return Err(BodyError::TooLarge {
                        prefix: std::mem::take(&mut buf).freeze(),
                        seen,
                    });
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(deadline, read).await {
        Ok(Ok(())) => Ok(buf.freeze()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(BodyError::Timeout {
            prefix: buf.freeze(),
        }),
    }
}

/// The size of a request's head as it came on the wire, give or take the spaces around
/// each header's colon: request line, headers, the blank line.
pub fn head_size<B>(req: &hyper::Request<B>) -> usize {
    let target = req.uri().path_and_query().map_or(1, |pq| pq.as_str().len());
    let line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + ": ".len() + value.len() + 2)
        .sum();
    line + headers + 2
}

/// The answer to a head over `limit` bytes (431), which closes the connection.
pub fn head_too_large(size: usize, limit: usize) -> Problem {
    Problem::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
        "Request Header Fields Too Large",
        format!("the request head is {size} bytes; the limit is {limit} bytes"),
    )
}

/// The answer to a request from a client (named by a trusted proxy) that already has
/// `limits.max_connections_per_ip` requests in flight (429).
pub fn too_many_connections(client: std::net::IpAddr) -> Problem {
    Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_connections",
        "Too Many Requests",
        format!("{client} has as many requests in flight as one address may have"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_measured_as_it_comes_on_the_wire() {
        let wire = "POST /hooks/shop?x=1 HTTP/1.1\r\nhost: gw\r\nx-signature: sha256=ab\r\n\r\n";
        let req = hyper::Request::post("/hooks/shop?x=1")
            .header("host", "gw")
            .header("x-signature", "sha256=ab")
            .body(())
            .expect("request");
        assert_eq!(head_size(&req), wire.len());
        let bare = hyper::Request::get("/").body(()).expect("request");
        assert_eq!(head_size(&bare), "GET / HTTP/1.1\r\n\r\n".len());
    }
}
