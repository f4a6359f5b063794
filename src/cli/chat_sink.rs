//! `hookgate dev chat-sink`: a stand-in chat platform for trying listeners locally. It
//! prints every status message it receives and answers 200 (or the status it was told).
//!
//! Owns nothing but that loop; for development only. It must never be mistaken for a real
//! connector: it stores nothing and forwards nothing.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// Serves until interrupted, printing one line per message.
pub async fn run(listen: SocketAddr, status: u16) -> anyhow::Result<()> {
    let status = StatusCode::from_u16(status)?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    super::emit(&format!(
        "chat sink listening on http://{}/ (answers {status})\n",
        listener.local_addr()?
    ))?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| async move {
                let key = req
                    .headers()
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned();
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let msg: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let _ = super::emit(&format!(
                    "to {} ({} / {}): {}   [key {key}]\n",
                    msg["to"].as_str().unwrap_or("?"),
                    msg["account"].as_str().unwrap_or("?"),
                    msg["event_type"].as_str().unwrap_or("-"),
                    msg["text"].as_str().unwrap_or("")
                ));
                let mut res = Response::new(Full::new(Bytes::from_static(b"{}")));
                *res.status_mut() = status;
                Ok::<_, Infallible>(res)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
