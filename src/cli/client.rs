//! A small HTTP/1 client, plain or over TLS: the CLI's admin calls, the gateway's outbound
//! calls (providers' status APIs, the chat connector), and the integration tests' requests.
//!
//! Owns one request function over hyper's client. `https://` URLs are checked against the
//! Mozilla root certificates compiled into the binary (no system store is needed, none is
//! trusted beyond them). It must never print a token; callers pass it in and it goes only
//! into the Authorization header.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A response read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Why a request failed before any answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL or a header was not valid.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Nothing listens at the address: the gateway is not running there.
    #[error(
        "cannot connect to {url}: nothing is listening there. Is the gateway running? Start it with `hookgate serve`, or point HOOKGATE_URL (or --url) at the admin listener it printed"
    )]
    NotRunning {
        /// Where.
        url: String,
    },
    /// The gateway could not be reached or the connection broke.
    #[error("cannot reach {url}: {message}")]
    Unreachable {
        /// Where.
        url: String,
        /// What happened.
        message: String,
    },
}

/// A reusable client (keeps connections alive).
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Whether a refused connection means "the gateway is not running" (the CLI's calls to
    /// the admin API) or is just a refused connection (the gateway's own outbound calls).
    to_gateway: bool,
    /// The most of an answer's body read; a longer answer is an error. `None` for the CLI,
    /// whose answers come from its own gateway (exports can be large).
    answer_cap: Option<usize>,
}

/// The most of an answer the gateway reads from a party it calls (a status API, a key or
/// certificate server, a chat platform): far above any answer they give, far below what
/// would strain the gateway's memory.
pub const OUTBOUND_ANSWER_CAP: usize = 1024 * 1024;

impl Default for HttpClient {
    fn default() -> Self {
        let connector = HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::aws_lc_rs::default_provider())
            // Fails only for a provider without the default protocol versions; aws-lc-rs has
            // both, and `the_client_speaks_tls` below builds one.
            .expect("the aws-lc-rs provider supports TLS 1.2 and 1.3")
            .https_or_http()
            .enable_http1()
            .build();
        HttpClient {
            inner: Client::builder(TokioExecutor::new()).build(connector),
            to_gateway: true,
            answer_cap: None,
        }
    }
}

/// Builds a request, refusing invalid URLs and headers with a clear error.
fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Request<Full<Bytes>>, ClientError> {
    let mut req = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(body))
        .map_err(|e| ClientError::Invalid(format!("{url:?} is not a usable URL ({e})")))?;
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let value =
            HeaderValue::from_str(v).map_err(|e| ClientError::Invalid(format!("{k}: {e}")))?;
        req.headers_mut().append(name, value);
    }
    Ok(req)
}

/// The admin API's base URL as given (`HOOKGATE_URL`, `--url`), with `http://` added when
/// it names no scheme (`127.0.0.1:8081`) and without a trailing slash.
pub fn base_url(given: &str) -> String {
    let given = given.trim().trim_end_matches('/');
    if given.contains("://") {
        given.to_owned()
    } else {
        format!("http://{given}")
    }
}

/// Describes a failed request with every cause, not just hyper's outermost "client error".
fn failed(url: &str, e: &hyper_util::client::legacy::Error, to_gateway: bool) -> ClientError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let mut message = e.to_string();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            if !to_gateway {
                return unreachable(url, "connection refused".to_owned());
            }
            return ClientError::NotRunning {
                url: url.to_owned(),
            };
        }
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    unreachable(url, message)
}

fn unreachable(url: &str, message: String) -> ClientError {
    ClientError::Unreachable {
        url: url.to_owned(),
        message,
    }
}

impl HttpClient {
    /// A client for the gateway's own outbound calls (providers' status APIs, the chat
    /// connector): a refused connection is reported as such, without the CLI's hint, and
    /// an answer longer than [`OUTBOUND_ANSWER_CAP`] is refused unread.
    pub fn outbound() -> HttpClient {
        HttpClient {
            to_gateway: false,
            answer_cap: Some(OUTBOUND_ANSWER_CAP),
            ..HttpClient::default()
        }
    }

    /// Sends a request and waits for the answer's head.
    async fn answer(
        &self,
        url: &str,
        req: Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        self.inner
            .request(req)
            .await
            .map_err(|e| failed(url, &e, self.to_gateway))
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Answer, ClientError> {
        let req = request(method, url, headers, body.into())?;
        let (parts, body) = self.answer(url, req).await?.into_parts();
        let body = match self.answer_cap {
            None => body
                .collect()
                .await
                .map_err(|e| unreachable(url, e.to_string()))?
                .to_bytes(),
            Some(cap) => Limited::new(body, cap)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<LengthLimitError>() {
                        unreachable(url, format!("the answer is longer than {cap} bytes"))
                    } else {
                        unreachable(url, e.to_string())
                    }
                })?
                .to_bytes(),
        };
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Sends a GET with a bearer token and writes the answer's body to `out` as it arrives,
    /// in flat memory. Returns the status; a body that breaks off is an error. A reader
    /// that went away (`| head -1`) ends the download quietly: it has what it wanted.
    pub async fn download(
        &self,
        url: &str,
        token: &str,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<StatusCode, ClientError> {
        let auth = format!("Bearer {token}");
        let req = request(Method::GET, url, &[("authorization", &auth)], Bytes::new())?;
        let res = self.answer(url, req).await?;
        let status = res.status();
        let mut body = res.into_body();
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| unreachable(url, format!("the answer broke off: {e}")))?;
            if let Ok(data) = frame.into_data() {
                match out.write_all(&data) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(status),
                    Err(e) => return Err(unreachable(url, format!("writing the output: {e}"))),
                }
            }
        }
        Ok(status)
    }

    /// Sends a JSON admin request with a bearer token.
    pub async fn admin(
        &self,
        method: Method,
        url: &str,
        token: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, ClientError> {
        let auth = format!("Bearer {token}");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.send(
            method,
            url,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers every connection with a plain HTTP response.
    async fn plain_server() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_refused_connection_hints_at_the_gateway_only_for_admin_calls() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let url = format!("http://127.0.0.1:{port}/");
        let admin = HttpClient::default()
            .send(Method::GET, &url, &[], "")
            .await
            .expect_err("nothing listens");
        assert!(matches!(admin, ClientError::NotRunning { .. }), "{admin}");
        let outbound = HttpClient::outbound()
            .send(Method::GET, &url, &[], "")
            .await
            .expect_err("nothing listens");
        let text = outbound.to_string();
        assert!(text.ends_with("connection refused"), "{text}");
        assert!(!text.contains("hookgate serve"), "{text}");
    }

    #[tokio::test]
    async fn the_client_speaks_plain_http_and_tls() {
        let addr = plain_server().await;
        let client = HttpClient::default();
        let plain = client
            .send(Method::GET, &format!("http://{addr}/"), &[], "")
            .await
            .expect("plain http");
        assert_eq!(plain.status, StatusCode::OK);
        assert_eq!(&plain.body[..], b"ok");
        // The same server under https: the client opens a TLS handshake, which a server
        // answering in plain text cannot complete.
        let tls = client
            .send(Method::GET, &format!("https://{addr}/"), &[], "")
            .await
            .expect_err("no TLS server there");
        let message = tls.to_string();
        assert!(
            matches!(tls, ClientError::Unreachable { .. }) && message.contains("corrupt message"),
            "{message}"
        );
    }

    /// A server that answers with a chunked body of `size` bytes, `x` after `x`.
    async fn long_answer_server(size: usize) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                    .await;
                let chunk = vec![b'x'; 64 * 1024];
                let mut left = size;
                while left > 0 {
                    let n = left.min(chunk.len());
                    let head = format!("{n:x}\r\n");
                    if s.write_all(head.as_bytes()).await.is_err()
                        || s.write_all(&chunk[..n]).await.is_err()
                        || s.write_all(b"\r\n").await.is_err()
                    {
                        break;
                    }
                    left -= n;
                }
                let _ = s.write_all(b"0\r\n\r\n").await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn an_outbound_answer_is_read_up_to_the_cap_and_refused_beyond_it() {
        let at_cap = long_answer_server(OUTBOUND_ANSWER_CAP).await;
        let whole = HttpClient::outbound()
            .send(Method::GET, &format!("http://{at_cap}/"), &[], "")
            .await
            .expect("an answer of exactly the cap is read");
        assert_eq!(whole.body.len(), OUTBOUND_ANSWER_CAP);
        let beyond = long_answer_server(OUTBOUND_ANSWER_CAP + 1).await;
        let url = format!("http://{beyond}/");
        let refused = HttpClient::outbound()
            .send(Method::GET, &url, &[], "")
            .await
            .expect_err("one byte more is refused");
        let text = refused.to_string();
        assert!(text.contains("longer than 1048576 bytes"), "{text}");
        // The CLI reads its own gateway's answers whole (exports are large).
        let cli = HttpClient::default()
            .send(Method::GET, &url, &[], "")
            .await
            .expect("the CLI reads it all");
        assert_eq!(cli.body.len(), OUTBOUND_ANSWER_CAP + 1);
    }
}
