//! AWS SNS's message signature: the canonical string of a message's fields (by its Type:
//! Notification, SubscriptionConfirmation, UnsubscribeConfirmation), signed SHA1withRSA
//! (SignatureVersion 1) or SHA256withRSA (2) with the key of the certificate at
//! SigningCertURL, which must be one of Amazon's SNS hosts.
//!
//! Owns [`SnsCheck`]: which certificate URL a message may name, and the check of one
//! message against a certificate the caller fetched. Pure; the fetch and its cache are in
//! `confirm`. It must never accept a certificate URL off the allowlist (https
//! `sns.<region>.amazonaws.com`, or the account's own hosts), never accept a topic the
//! account did not name (anyone can sign a message from a topic of their own), and never
//! sign anything but the fields AWS signs, in AWS's order.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1v15::Pkcs1v15Sign;
use rsa::pkcs8::DecodePublicKey;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Map, Value};
use sha2::Digest;

use super::{Rejection, RequestView};
use crate::account::{SnsSpec, SpecError};
use crate::event::Reason;

/// DER DigestInfo prefixes of PKCS#1 v1.5 signatures (RFC 8017, section 9.2, note 1).
const SHA1_PREFIX: &[u8] = &[
    0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
];
const SHA256_PREFIX: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// A compiled SNS check.
#[derive(Debug)]
pub struct SnsCheck {
    topic_arns: Vec<String>,
    cert_hosts: Vec<String>,
}

fn bad(detail: impl Into<String>) -> Rejection {
    Rejection::new(Reason::BadSignature, detail)
}

impl SnsCheck {
    /// Compiles a spec: at least one topic.
    pub fn compile(spec: &SnsSpec) -> Result<Self, SpecError> {
        let topic_arns: Vec<String> = spec
            .topic_arns
            .iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        if topic_arns.is_empty() {
            return Err(SpecError::new(
                "sns.topic_arns",
                "name the topic(s) this endpoint is subscribed to: any AWS account can sign \
                 messages from a topic of its own",
            ));
        }
        Ok(SnsCheck {
            topic_arns,
            cert_hosts: spec.cert_hosts.clone(),
        })
    }

    /// The message's SigningCertURL, when it is one this account may fetch.
    pub fn cert_url(&self, req: &RequestView<'_>) -> Result<String, Rejection> {
        let msg = message(req)?;
        let url = field(&msg, "SigningCertURL")?;
        if !cert_url_allowed(url, &self.cert_hosts) {
            return Err(bad(format!(
                "SigningCertURL {url:?} is not an SNS certificate URL (https://sns.<region>.amazonaws.com/...pem)"
            )));
        }
        Ok(url.to_owned())
    }

    /// Checks a message against the PEM certificate fetched from its SigningCertURL.
    pub fn check(&self, req: &RequestView<'_>, cert_pem: &[u8]) -> Result<(), Rejection> {
        let msg = message(req)?;
        let topic = field(&msg, "TopicArn")?;
        if !self.topic_arns.iter().any(|t| t == topic) {
            return Err(bad(format!(
                "the message's TopicArn {topic:?} is not one of the account's topics"
            )));
        }
        let (prefix, digest): (&[u8], Vec<u8>) = {
            let text = canonical(&msg).map_err(bad)?;
            match msg.get("SignatureVersion").and_then(Value::as_str) {
                Some("1") => (SHA1_PREFIX, sha1::Sha1::digest(&text).to_vec()),
                Some("2") => (SHA256_PREFIX, sha2::Sha256::digest(&text).to_vec()),
                other => {
                    return Err(bad(format!(
                        "SignatureVersion {other:?} is neither \"1\" nor \"2\""
                    )));
                }
            }
        };
        let signature = STANDARD
            .decode(field(&msg, "Signature")?.trim())
            .map_err(|_| bad("Signature is not base64"))?;
        let key = public_key(cert_pem).map_err(bad)?;
        let scheme = Pkcs1v15Sign {
            hash_len: Some(digest.len()),
            prefix: prefix.into(),
        };
        key.verify(scheme, &digest, &signature).map_err(|_| {
            bad("the Signature does not match the message under the certificate's key")
        })
    }
}

/// The RSA public key of a PEM certificate.
fn public_key(pem: &[u8]) -> Result<rsa::RsaPublicKey, String> {
    let der = CertificateDer::from_pem_slice(pem)
        .map_err(|_| "the signing certificate is not a PEM certificate".to_owned())?;
    let cert = webpki::EndEntityCert::try_from(&der)
        .map_err(|e| format!("the signing certificate cannot be read: {e}"))?;
    let spki = cert.subject_public_key_info();
    rsa::RsaPublicKey::from_public_key_der(spki.as_ref())
        .map_err(|_| "the signing certificate's key is not RSA".to_owned())
}

fn message(req: &RequestView<'_>) -> Result<Map<String, Value>, Rejection> {
    match crate::strict_json::from_slice(req.body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(bad("the body is not an SNS message (a JSON object)")),
    }
}

fn field<'m>(msg: &'m Map<String, Value>, name: &str) -> Result<&'m str, Rejection> {
    msg.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("the message has no {name}")))
}

/// The string SNS signs: `Name\nvalue\n` for each signed field of the message's Type, in
/// AWS's order; Subject only when the Notification has one.
pub fn canonical(msg: &Map<String, Value>) -> Result<Vec<u8>, String> {
    let kind = msg
        .get("Type")
        .and_then(Value::as_str)
        .ok_or("the message has no Type")?;
    let names: &[&str] = match kind {
        "Notification" => &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ],
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ],
        other => return Err(format!("Type {other:?} is not an SNS message type")),
    };
    let mut out = Vec::new();
    for name in names {
        match msg.get(*name) {
            Some(Value::String(v)) => {
                out.extend_from_slice(name.as_bytes());
                out.push(b'\n');
                out.extend_from_slice(v.as_bytes());
                out.push(b'\n');
            }
            None | Some(Value::Null) if *name == "Subject" => {}
            _ => return Err(format!("the message's {name} is missing")),
        }
    }
    Ok(out)
}

/// Whether a SigningCertURL may be fetched: https on `sns.<region>.amazonaws.com` (or
/// `.amazonaws.com.cn`) for a `.pem`, or one of the account's own hosts (`host:port`; http
/// only when that host is a loopback address).
pub fn cert_url_allowed(url: &str, own_hosts: &[String]) -> bool {
    let (scheme, rest) = match url.split_once("://") {
        Some(p) => p,
        None => return false,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let path = &rest[authority.len()..];
    if authority.contains('@') || !path.ends_with(".pem") || path.contains(['?', '#']) {
        return false;
    }
    sns_host_allowed(scheme, authority, own_hosts)
}

/// Whether SNS may be reached at `authority` over `scheme`: https on
/// `sns.<region>.amazonaws.com` (or `.amazonaws.com.cn`), or one of the account's own
/// hosts (`host:port`; http only when that host is a loopback address).
pub fn sns_host_allowed(scheme: &str, authority: &str, own_hosts: &[String]) -> bool {
    if own_hosts.iter().any(|h| h == authority) {
        let host = authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .trim_matches(['[', ']']);
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        return scheme == "https" || (scheme == "http" && loopback);
    }
    if scheme != "https" {
        return false;
    }
    let host = authority.to_ascii_lowercase();
    let region = host
        .strip_prefix("sns.")
        .and_then(|h| {
            h.strip_suffix(".amazonaws.com")
                .or_else(|| h.strip_suffix(".amazonaws.com.cn"))
        })
        .unwrap_or("");
    !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_canonical_string_follows_the_type() {
        let n = json!({"Type": "Notification", "MessageId": "m1", "TopicArn": "arn:t",
            "Message": "hi", "Timestamp": "2023-11-14T22:13:19.000Z", "Subject": "s",
            "SignatureVersion": "1", "UnsubscribeURL": "https://x"});
        let text = canonical(n.as_object().unwrap_or(&Map::new())).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&text),
            "Message\nhi\nMessageId\nm1\nSubject\ns\nTimestamp\n2023-11-14T22:13:19.000Z\nTopicArn\narn:t\nType\nNotification\n"
        );
        let mut no_subject = n.clone();
        no_subject.as_object_mut().map(|o| o.remove("Subject"));
        let text = canonical(no_subject.as_object().unwrap_or(&Map::new())).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&text).contains("Subject"));
        let c = json!({"Type": "SubscriptionConfirmation", "MessageId": "m", "Token": "t",
            "TopicArn": "a", "Message": "m", "SubscribeURL": "u", "Timestamp": "ts"});
        let text = canonical(c.as_object().unwrap_or(&Map::new())).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&text),
            "Message\nm\nMessageId\nm\nSubscribeURL\nu\nTimestamp\nts\nToken\nt\nTopicArn\na\nType\nSubscriptionConfirmation\n"
        );
        let mut missing = c;
        missing.as_object_mut().map(|o| o.remove("Token"));
        assert!(canonical(missing.as_object().unwrap_or(&Map::new())).is_err());
    }

    #[test]
    fn only_sns_hosts_or_the_accounts_own_serve_certificates() {
        let none: Vec<String> = Vec::new();
        for ok in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
        ] {
            assert!(cert_url_allowed(ok, &none), "{ok}");
        }
        for bad in [
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
            "https://sns..amazonaws.com/x.pem",
            "https://s3.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com/x.txt",
            "https://user@sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com/x.pem?y",
        ] {
            assert!(!cert_url_allowed(bad, &none), "{bad}");
        }
        let own = vec!["127.0.0.1:8443".to_owned(), "certs.example.com".to_owned()];
        assert!(cert_url_allowed("http://127.0.0.1:8443/c.pem", &own));
        assert!(cert_url_allowed("https://certs.example.com/c.pem", &own));
        assert!(!cert_url_allowed("http://certs.example.com/c.pem", &own));
        assert!(!cert_url_allowed("http://127.0.0.1:9/c.pem", &own));
    }
}
