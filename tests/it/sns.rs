//! AWS SNS over real HTTP: a local server on port 0 plays Amazon's certificate host, with a
//! key and self-signed certificate made by `openssl` for each run (none is committed), and
//! messages are signed by `openssl dgst` over the canonical string as AWS's documentation
//! lays it out (written here, not taken from hookgate). Version 1 and 2 signatures are
//! accepted for the account's topic; a changed message, another topic, a certificate URL
//! off the allowlist or another key are refused; a certificate host that is down is a 503;
//! the certificate is fetched once; a subscription confirmation is a recorded handshake.

use std::convert::Infallible;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::support::*;

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:orders";

fn openssl(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl runs");
    if let Some(bytes) = input
        && let Some(mut stdin) = child.stdin.take()
    {
        stdin.write_all(bytes).expect("openssl stdin");
    }
    let out = child.wait_with_output().expect("openssl finishes");
    assert!(out.status.success(), "openssl {args:?} failed");
    out.stdout
}

/// A key and its self-signed certificate, in files of a temporary directory.
struct Signer {
    key: String,
    cert_pem: Vec<u8>,
}

fn signer(dir: &Path, name: &str) -> Signer {
    let key = dir.join(format!("{name}.key"));
    let key = key.to_string_lossy().into_owned();
    std::fs::write(
        &key,
        openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
            None,
        ),
    )
    .expect("key written");
    let cert_pem = openssl(
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &key,
            "-subj",
            "/CN=sns.amazonaws.com",
            "-days",
            "2",
        ],
        None,
    );
    Signer { key, cert_pem }
}

/// The string AWS signs, from its documentation: each signed field's name and value on
/// lines of their own, in this order, Subject only when present.
fn string_to_sign(m: &Value) -> String {
    let names: &[&str] = if m["Type"] == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let mut out = String::new();
    for n in names {
        if let Some(v) = m[*n].as_str() {
            out.push_str(&format!("{n}\n{v}\n"));
        }
    }
    out
}

fn signed(s: &Signer, mut m: Value, version: &str) -> String {
    m["SignatureVersion"] = json!(version);
    let digest = if version == "1" { "-sha1" } else { "-sha256" };
    let sig = openssl(
        &["dgst", digest, "-sign", &s.key],
        Some(string_to_sign(&m).as_bytes()),
    );
    m["Signature"] = json!(STANDARD.encode(sig));
    m.to_string()
}

/// The certificates served, by path, and the requests answered.
type Served = Arc<Mutex<(Vec<(String, Vec<u8>)>, u32)>>;

/// Serves certificates by path; counts requests; a path it does not hold is a 500.
struct CertHost {
    authority: String,
    certs: Served,
}

impl CertHost {
    async fn start() -> CertHost {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind cert host");
        let authority = listener.local_addr().expect("addr").to_string();
        let certs: Served = Arc::default();
        let shared = Arc::clone(&certs);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let certs = Arc::clone(&shared);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let certs = Arc::clone(&certs);
                        async move {
                            let mut held = certs.lock().expect("certs");
                            held.1 += 1;
                            let found = held
                                .0
                                .iter()
                                .find(|(p, _)| p == req.uri().path())
                                .map(|(_, c)| c.clone());
                            let mut res = Response::new(Full::new(Bytes::from(
                                found.clone().unwrap_or_default(),
                            )));
                            if found.is_none() {
                                *res.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
                            }
                            Ok::<_, Infallible>(res)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        CertHost { authority, certs }
    }

    fn serve(&self, path: &str, pem: &[u8]) {
        self.certs
            .lock()
            .expect("certs")
            .0
            .push((path.to_owned(), pem.to_vec()));
    }

    fn fetches(&self) -> u32 {
        self.certs.lock().expect("certs").1
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.authority)
    }
}

fn notification(id: &str, cert_url: &str, subject: Option<&str>) -> Value {
    let mut m = json!({"Type": "Notification", "MessageId": id, "TopicArn": TOPIC,
        "Message": "{\"order\":\"1001\",\"status\":\"paid\"}",
        "Timestamp": "2023-11-14T22:13:19.000Z", "SigningCertURL": cert_url,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x"});
    if let Some(s) = subject {
        m["Subject"] = json!(s);
    }
    m
}

async fn last_row(gw: &TestGateway) -> Value {
    gw.events("account=sns&limit=1")
        .await
        .first()
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn sns_messages_are_accepted_only_for_the_topic_under_an_allowlisted_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (aws, stranger) = (signer(dir.path(), "aws"), signer(dir.path(), "other"));
    let host = CertHost::start().await;
    host.serve("/SimpleNotificationService-1.pem", &aws.cert_pem);
    host.serve("/SimpleNotificationService-other.pem", &stranger.cert_pem);
    let cert = host.url("/SimpleNotificationService-1.pem");
    let gw = spawn_gateway().await;
    gw.create_account(
        json!({"name": "sns", "provider": "aws_sns", "secret": TOPIC,
        "sns": {"cert_hosts": [host.authority], "confirm_subscriptions": false}}),
    )
    .await;
    let headers = [
        ("content-type", "text/plain; charset=UTF-8"),
        ("x-amz-sns-message-type", "Notification"),
    ];
    let send = |body: String| {
        let gw = &gw;
        async move { gw.post_hook("sns", &headers, body).await }
    };

    let v1 = signed(&aws, notification("m-1", &cert, Some("Order paid")), "1");
    let ok = send(v1.clone()).await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());
    let row = last_row(&gw).await;
    assert_eq!(row["status"], "accepted");
    assert_eq!(row["event_id"], "m-1");
    assert_eq!(row["source"], TOPIC);
    assert_eq!(send(v1).await.json()["status"], "duplicate", "SNS's retry");
    let v2 = signed(&aws, notification("m-2", &cert, None), "2");
    assert_eq!(send(v2.clone()).await.status, 200, "SignatureVersion 2");
    assert_eq!(host.fetches(), 1, "the certificate is cached");

    let tampered = v2.replace("paid", "PAID");
    let mut other_topic = notification("m-3", &cert, None);
    other_topic["TopicArn"] = json!("arn:aws:sns:us-east-1:999999999999:orders");
    let off_list = signed(
        &aws,
        notification(
            "m-4",
            "https://evil.example/SimpleNotificationService-1.pem",
            None,
        ),
        "2",
    );
    let other_key = signed(
        &stranger,
        notification(
            "m-5",
            &host.url("/SimpleNotificationService-other.pem"),
            None,
        ),
        "2",
    );
    let under_aws_cert = signed(&stranger, notification("m-6", &cert, None), "1");
    let mut unknown_version = notification("m-7", &cert, None);
    unknown_version["SignatureVersion"] = json!("3");
    for (what, body) in [
        ("a changed Message", tampered),
        (
            "another AWS account's topic",
            signed(&aws, other_topic, "2"),
        ),
        ("a certificate URL off the allowlist", off_list),
        (
            "a stranger's key under Amazon's certificate",
            under_aws_cert,
        ),
        ("SignatureVersion 3", unknown_version.to_string()),
    ] {
        let res = send(body).await;
        assert_eq!(res.status, 401, "{what}");
        assert_eq!(last_row(&gw).await["reason"], "bad_signature", "{what}");
    }
    // A certificate served by an allowed host is trusted as Amazon's: a message signed with
    // its key for the account's topic is accepted (the host allowlist is the trust).
    let res = send(other_key).await;
    assert_eq!(
        res.status, 200,
        "an allowed certificate host vouches for its certificates"
    );

    let down = signed(
        &aws,
        notification(
            "m-8",
            &host.url("/SimpleNotificationService-gone.pem"),
            None,
        ),
        "2",
    );
    let res = send(down).await;
    assert_eq!(res.status, 503);
    assert_eq!(last_row(&gw).await["reason"], "confirmation_unavailable");

    let confirm = json!({"Type": "SubscriptionConfirmation", "MessageId": "c-1",
        "Token": "2336412f37fb687f5d51e6e2425f004aed", "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe to the topic. To confirm, visit the SubscribeURL.",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=2336412f",
        "Timestamp": "2023-11-14T22:13:19.000Z", "SigningCertURL": cert});
    let res = send(signed(&aws, confirm.clone(), "1")).await;
    assert_eq!(res.status, 200);
    let row = last_row(&gw).await;
    assert_eq!(row["status"], "handshake");
    let stored = gw.event(row["id"].as_str().unwrap_or("")).await;
    assert!(
        stored.to_string().contains("ConfirmSubscription"),
        "the SubscribeURL is kept for the operator: {stored}"
    );
    assert_eq!(host.fetches(), 3, "a manual account visits nothing");
    let mut forged = confirm;
    forged["SubscribeURL"] = json!("https://evil.example/confirm");
    forged["SignatureVersion"] = json!("1");
    forged["Signature"] = json!(STANDARD.encode([0u8; 256]));
    assert_eq!(send(forged.to_string()).await.status, 401);
    gw.stop().await;
}

#[tokio::test]
async fn a_verified_subscription_is_confirmed_by_visiting_its_subscribe_url_on_an_allowed_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let aws = signer(dir.path(), "aws");
    let host = CertHost::start().await;
    host.serve("/SimpleNotificationService-1.pem", &aws.cert_pem);
    // The stand-in for sns.<region>.amazonaws.com answers ConfirmSubscription as AWS does.
    host.serve(
        "/confirm",
        b"<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>arn:aws:sns:us-east-1:123456789012:orders:2bcfbf39</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>",
    );
    let cert = host.url("/SimpleNotificationService-1.pem");
    // A host that takes the connection and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_at = silent.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let gw = spawn_gateway().await;
    gw.create_account(
        json!({"name": "sns", "provider": "aws_sns", "secret": TOPIC,
        "sns": {"cert_hosts": [host.authority, silent_at], "timeout_secs": 1}}),
    )
    .await;
    let headers = [
        ("content-type", "text/plain; charset=UTF-8"),
        ("x-amz-sns-message-type", "SubscriptionConfirmation"),
    ];
    let confirmation = |url: &str, id: &str| {
        json!({"Type": "SubscriptionConfirmation", "MessageId": id,
            "Token": "2336412f37fb687f5d51e6e2425f004aed", "TopicArn": TOPIC,
            "Message": "You have chosen to subscribe to the topic. To confirm, visit the SubscribeURL.",
            "SubscribeURL": url, "Timestamp": "2023-11-14T22:13:19.000Z", "SigningCertURL": cert})
    };
    let good = host.url("/confirm?Action=ConfirmSubscription&TopicArn=x&Token=2336412f");

    let res = gw
        .post_hook(
            "sns",
            &headers,
            signed(&aws, confirmation(&good, "c-1"), "1"),
        )
        .await;
    assert_eq!(res.status, 200, "{:?}", res.json());
    assert_eq!(host.fetches(), 2, "the certificate, then the SubscribeURL");
    let row = last_row(&gw).await;
    assert_eq!(row["status"], "handshake", "{row}");
    let detail = gw.event(row["id"].as_str().unwrap_or("")).await["detail"].clone();
    assert!(
        detail
            .as_str()
            .is_some_and(|d| d.contains("subscription confirmed")
                && d.contains("arn:aws:sns:us-east-1:123456789012:orders:2bcfbf39")),
        "{detail}"
    );

    // A forged confirmation is refused before anything is visited.
    let mut forged = confirmation(&good, "c-2");
    forged["SignatureVersion"] = json!("1");
    forged["Signature"] = json!(STANDARD.encode([0u8; 256]));
    assert_eq!(
        gw.post_hook("sns", &headers, forged.to_string())
            .await
            .status,
        401
    );
    assert_eq!(host.fetches(), 2, "nothing visited for a forgery");

    // A SubscribeURL off the allowlist (or not ConfirmSubscription) is never visited: the
    // handshake is recorded with why, for the operator.
    for (id, url) in [
        (
            "c-3",
            "https://evil.example/?Action=ConfirmSubscription&Token=x".to_owned(),
        ),
        ("c-4", host.url("/confirm?Action=Unsubscribe&Token=x")),
    ] {
        let res = gw
            .post_hook("sns", &headers, signed(&aws, confirmation(&url, id), "1"))
            .await;
        assert_eq!(res.status, 200, "{id}");
        let row = last_row(&gw).await;
        let detail = gw.event(row["id"].as_str().unwrap_or("")).await["detail"].clone();
        assert!(
            detail.as_str().is_some_and(|d| d.contains("not confirmed")),
            "{id}: {detail}"
        );
    }
    assert_eq!(host.fetches(), 2, "off-list URLs are not visited");

    // AWS failing: 503 with the reason on the row, so SNS sends the confirmation again.
    let failing = host.url("/gone?Action=ConfirmSubscription&Token=x");
    let res = gw
        .post_hook(
            "sns",
            &headers,
            signed(&aws, confirmation(&failing, "c-5"), "1"),
        )
        .await;
    assert_eq!(res.status, 503, "{:?}", res.json());
    assert!(res.headers.get("retry-after").is_some());
    let row = last_row(&gw).await;
    assert_eq!(row["reason"], "confirmation_unavailable", "{row}");
    let detail = gw.event(row["id"].as_str().unwrap_or("")).await["detail"].clone();
    assert!(
        detail.as_str().is_some_and(|d| d.contains("answered 500")),
        "{detail}"
    );
    let hanging = format!("http://{silent_at}/?Action=ConfirmSubscription&Token=x");
    let res = gw
        .post_hook(
            "sns",
            &headers,
            signed(&aws, confirmation(&hanging, "c-6"), "1"),
        )
        .await;
    assert_eq!(res.status, 503, "{:?}", res.json());
    let row = last_row(&gw).await;
    let detail = gw.event(row["id"].as_str().unwrap_or("")).await["detail"].clone();
    assert!(
        detail.as_str().is_some_and(|d| d.contains("within 1s")),
        "{detail}"
    );
    gw.stop().await;
}
