//! With the `otlp` feature, the real binary exports its request spans over OTLP/HTTP to
//! the collector named in `OTEL_EXPORTER_OTLP_ENDPOINT`: here a stand-in collector on
//! port 0 that records what it receives.

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::sync::mpsc;

/// A collector that answers 200 to everything and passes on (path, content type, body).
async fn collector() -> (String, mpsc::Receiver<(String, String, Vec<u8>)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let ct = req
                            .headers()
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes().to_vec())
                            .unwrap_or_default();
                        let _ = tx.send((path, ct, body)).await;
                        Ok::<_, Infallible>(Response::new(Full::new(bytes::Bytes::new())))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn request_spans_reach_the_collector_named_in_the_environment() {
    let (url, mut received) = collector().await;
    let dir = tempfile::tempdir().expect("dir");
    let p = crate::process::start(
        &dir.path().join("hookgate.db"),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str())],
    )
    .await;
    p.create_account(
        &json!({"name": "traced", "allow_unverified": true, "paths": {"event_id": "$.id"}}),
    )
    .await;
    let a = hookgate::cli::client::HttpClient::default()
        .send(
            hyper::Method::POST,
            &format!("{}/hooks/traced", p.public),
            &[],
            r#"{"id":"o1"}"#,
        )
        .await
        .expect("answer");
    assert_eq!(a.status, 200);
    // Stopping flushes the batch.
    p.term(Duration::from_secs(20)).await;
    let mut spans = Vec::new();
    while let Ok(Some((path, ct, body))) =
        tokio::time::timeout(Duration::from_secs(10), received.recv()).await
    {
        assert_eq!(path, "/v1/traces");
        assert_eq!(ct, "application/x-protobuf");
        spans.extend(body);
        let has = |needle: &[u8]| spans.windows(needle.len()).any(|w| w == needle);
        if has(b"hookgate") && has(b"request") && has(b"traced") && has(b"accepted") {
            return;
        }
    }
    panic!("no request span with the service name, account and outcome reached the collector");
}
