//! A scripted HTTP server on port 0 standing in for what the gateway sends to: an
//! account's own endpoint, the chat connector, a chat platform's API. It answers each
//! request with the next reply of its script, then with its default, and reports every
//! request as it arrives (one it holds open too, before it hangs).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::mpsc;

/// How the stand-in answers one request.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// This status, with the body `answer {status}`.
    Status(u16),
    /// This status with a `Retry-After` header.
    RetryAfter(u16, &'static str),
    /// Holds the request open and never answers.
    Hang,
    /// 200 with a body of this many bytes.
    Big(usize),
    /// This status with a body holding a NUL byte.
    Nul(u16),
    /// This status with a JSON body.
    Json(u16, Value),
    /// This status with a JSON body and a `Retry-After` header.
    JsonRetryAfter(u16, Value, &'static str),
}

impl Reply {
    /// The status answered; none for a request held open.
    fn status(&self) -> Option<u16> {
        match self {
            Reply::Status(c)
            | Reply::RetryAfter(c, _)
            | Reply::Nul(c)
            | Reply::Json(c, _)
            | Reply::JsonRetryAfter(c, _, _) => Some(*c),
            Reply::Big(_) => Some(200),
            Reply::Hang => None,
        }
    }

    fn response(&self, status: u16) -> Response<Full<Bytes>> {
        let (body, content_type) = match self {
            Reply::Big(n) => ("x".repeat(*n), None),
            Reply::Nul(_) => ("refused\0here".to_owned(), None),
            Reply::Json(_, v) | Reply::JsonRetryAfter(_, v, _) => {
                (v.to_string(), Some("application/json"))
            }
            _ => (format!("answer {status}"), None),
        };
        let mut res = Response::new(Full::new(Bytes::from(body)));
        *res.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
        if let Some(ct) = content_type {
            res.headers_mut()
                .insert("content-type", ct.parse().expect("header"));
        }
        if let Reply::RetryAfter(_, after) | Reply::JsonRetryAfter(_, _, after) = self {
            res.headers_mut()
                .insert("retry-after", after.parse().expect("header"));
        }
        res
    }
}

/// A request the stand-in received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) path: String,
    headers: HashMap<String, String>,
    pub(crate) body: Bytes,
    pub(crate) at: Instant,
    /// The status it was answered with; none while it is held open.
    pub(crate) answered: Option<u16>,
}

impl Received {
    /// A header's value (names in lower case), or "".
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as `application/x-www-form-urlencoded` pairs.
    pub(crate) fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

/// The running stand-in.
pub(crate) struct StandIn {
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    /// `{base}/in`: where a test points a destination or the connector.
    pub(crate) url: String,
    pub(crate) port: u16,
    received: mpsc::UnboundedReceiver<Received>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    default: Arc<Mutex<Reply>>,
}

impl StandIn {
    /// Starts one that answers `Status(200)` until told otherwise.
    pub(crate) async fn start() -> StandIn {
        StandIn::answering(Reply::Status(200)).await
    }

    /// Starts one whose default answer is `default`.
    pub(crate) async fn answering(default: Reply) -> StandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the stand-in");
        let port = listener.local_addr().expect("addr").port();
        let base = format!("http://127.0.0.1:{port}");
        let (tx, received) = mpsc::unbounded_channel();
        let script: Arc<Mutex<VecDeque<Reply>>> = Arc::default();
        let default = Arc::new(Mutex::new(default));
        let (s, d) = (Arc::clone(&script), Arc::clone(&default));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (tx, s, d) = (tx.clone(), Arc::clone(&s), Arc::clone(&d));
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (tx, s, d) = (tx.clone(), Arc::clone(&s), Arc::clone(&d));
                        async move {
                            let path = req.uri().path().to_owned();
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                                })
                                .collect();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let reply = s
                                .lock()
                                .expect("script")
                                .pop_front()
                                .unwrap_or_else(|| d.lock().expect("default").clone());
                            let answered = reply.status();
                            let _ = tx.send(Received {
                                path,
                                headers,
                                body,
                                at: Instant::now(),
                                answered,
                            });
                            let Some(status) = answered else {
                                std::future::pending::<()>().await;
                                unreachable!("a held request is never answered")
                            };
                            Ok::<_, Infallible>(reply.response(status))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        StandIn {
            url: format!("{base}/in"),
            base,
            port,
            received,
            script,
            default,
        }
    }

    /// Queues answers for the next requests, in order.
    pub(crate) fn script(&self, replies: &[Reply]) {
        self.script
            .lock()
            .expect("script")
            .extend(replies.iter().cloned());
    }

    /// Answers every request after the script with `reply`.
    pub(crate) fn answer_with(&self, reply: Reply) {
        *self.default.lock().expect("default") = reply;
    }

    /// The next request, within 20 s.
    pub(crate) async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(20), self.received.recv())
            .await
            .expect("the stand-in received a request in time")
            .expect("the stand-in runs")
    }

    /// Asserts that no request arrives within `wait`.
    pub(crate) async fn nothing_within(&mut self, wait: Duration) {
        if let Ok(Some(r)) = tokio::time::timeout(wait, self.received.recv()).await {
            panic!("the stand-in received a request it should not have: {r:?}");
        }
    }

    /// Asserts that no request has arrived beyond those already taken.
    pub(crate) fn nothing_more(&mut self) {
        if let Ok(r) = self.received.try_recv() {
            panic!("the stand-in received a further request: {r:?}");
        }
    }
}
