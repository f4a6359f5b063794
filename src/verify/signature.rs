//! The HMAC signature check: algorithm, header, encoding, prefix, template, freshness,
//! and several secrets at once.
//!
//! Owns the compiled [`SignatureCheck`] and [`sign`], the one MAC computation that both
//! verification and `hookgate sign` use. It must never compare a signature in variable
//! time, and never sign anything but the raw bytes received.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use hyper::header::HeaderName;

use super::auth::parse_header_name;
use super::signed_content::{Part, SignedContent};
use super::{Rejection, RequestView};
use crate::account::{Algorithm, Encoding, SignatureSpec, SpecError};
use crate::event::Reason;
use crate::secret::{Secret, ct_eq};

/// A compiled signature scheme.
#[derive(Debug)]
pub struct SignatureCheck {
    algorithm: Algorithm,
    header: HeaderName,
    encoding: Encoding,
    prefix: Option<String>,
    content: SignedContent,
    timestamp_header: Option<HeaderName>,
    id_header: Option<HeaderName>,
    tolerance_secs: u64,
    secrets: Vec<Secret>,
}

/// The values a template's placeholders stand for in one request.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The raw body.
    pub body: &'a [u8],
    /// The timestamp text, as sent.
    pub timestamp: &'a [u8],
    /// The id text, as sent.
    pub id: &'a [u8],
    /// The public URL with query.
    pub url: &'a [u8],
}

/// Computes the MAC of a template's content under one key.
pub fn sign(
    algorithm: Algorithm,
    key: &[u8],
    content: &SignedContent,
    inputs: Inputs<'_>,
) -> Vec<u8> {
    match algorithm {
        Algorithm::HmacSha1 => mac::<Hmac<sha1::Sha1>>(key, content, inputs),
        Algorithm::HmacSha256 => mac::<Hmac<sha2::Sha256>>(key, content, inputs),
        Algorithm::HmacSha512 => mac::<Hmac<sha2::Sha512>>(key, content, inputs),
    }
}

fn mac<M: Mac + KeyInit>(key: &[u8], content: &SignedContent, inputs: Inputs<'_>) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail; an empty MAC never verifies.
    let Ok(mut m) = <M as KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    for part in content.parts() {
        match part {
            Part::Literal(bytes) => m.update(bytes),
            Part::Body => m.update(inputs.body),
            Part::Timestamp => m.update(inputs.timestamp),
            Part::Id => m.update(inputs.id),
            Part::Url => m.update(inputs.url),
        }
    }
    m.finalize().into_bytes().to_vec()
}

impl SignatureCheck {
    /// Compiles a spec, refusing a scheme that could not be checked.
    pub fn compile(spec: &SignatureSpec) -> Result<Self, SpecError> {
        let header = parse_header_name("signature.header", &spec.header)?;
        let content = SignedContent::parse(&spec.signed_content)?;
        let timestamp_header = spec
            .timestamp_header
            .as_deref()
            .map(|h| parse_header_name("signature.timestamp_header", h))
            .transpose()?;
        let id_header = spec
            .id_header
            .as_deref()
            .map(|h| parse_header_name("signature.id_header", h))
            .transpose()?;
        if content.uses(&Part::Timestamp) && timestamp_header.is_none() {
            return Err(SpecError::new(
                "signature.timestamp_header",
                "signed_content uses {timestamp}, so the header that carries it must be named",
            ));
        }
        if content.uses(&Part::Id) && id_header.is_none() {
            return Err(SpecError::new(
                "signature.id_header",
                "signed_content uses {id}, so the header that carries it must be named",
            ));
        }
        if spec.secrets.is_empty() {
            return Err(SpecError::new(
                "signature.secrets",
                "a signature needs at least one secret (for a preset, give \"secret\")",
            ));
        }
        if spec.secrets.iter().any(Secret::is_empty) {
            return Err(SpecError::new(
                "signature.secrets",
                "a secret must not be empty",
            ));
        }
        Ok(SignatureCheck {
            algorithm: spec.algorithm,
            header,
            encoding: spec.encoding,
            prefix: spec.prefix.clone().filter(|p| !p.is_empty()),
            content,
            timestamp_header,
            id_header,
            tolerance_secs: spec.tolerance_secs,
            secrets: spec.secrets.clone(),
        })
    }

    /// The signature header, for redaction.
    pub fn header_name(&self) -> &str {
        self.header.as_str()
    }

    /// Checks the signature against every valid secret, then the timestamp's freshness.
    pub fn check(&self, req: &RequestView<'_>, now_secs: i64) -> Result<(), Rejection> {
        let bad = |detail: String| Rejection::new(Reason::BadSignature, detail);
        let Some(value) = req.headers.get(&self.header) else {
            return Err(bad(format!(
                "the signature header {} is missing",
                self.header
            )));
        };
        let presented = value.as_bytes().trim_ascii();
        let presented = match &self.prefix {
            None => presented,
            Some(prefix) => match presented.split_at_checked(prefix.len()) {
                Some((p, rest)) if p.eq_ignore_ascii_case(prefix.as_bytes()) => rest,
                _ => {
                    return Err(bad(format!(
                        "the signature header {} does not start with the prefix {prefix:?}",
                        self.header
                    )));
                }
            },
        };
        let decoded = match self.encoding {
            Encoding::Hex => hex::decode(presented).ok(),
            Encoding::Base64 => STANDARD
                .decode(presented)
                .or_else(|_| STANDARD_NO_PAD.decode(presented))
                .ok(),
        };
        let Some(decoded) = decoded else {
            return Err(bad(format!(
                "the signature in {} is not valid {}",
                self.header,
                match self.encoding {
                    Encoding::Hex => "hex",
                    Encoding::Base64 => "base64",
                }
            )));
        };
        let timestamp = match &self.timestamp_header {
            Some(h) => match req.headers.get(h) {
                Some(v) => Some(v.as_bytes()),
                None if self.content.uses(&Part::Timestamp) => {
                    return Err(bad(format!("the signed timestamp header {h} is missing")));
                }
                None => None,
            },
            None => None,
        };
        let id = match &self.id_header {
            Some(h) => match req.headers.get(h) {
                Some(v) => v.as_bytes(),
                None => return Err(bad(format!("the signed id header {h} is missing"))),
            },
            None => b"",
        };
        let inputs = Inputs {
            body: req.body,
            timestamp: timestamp.unwrap_or(b""),
            id,
            url: req.url.as_bytes(),
        };
        // Every secret is tried, so the time taken does not say which one matched.
        let mut matched = false;
        for secret in &self.secrets {
            let expected = sign(self.algorithm, secret.expose(), &self.content, inputs);
            matched |= ct_eq(&expected, &decoded);
        }
        if !matched {
            return Err(bad(
                "the signature does not match the body under any of the account's secrets".into(),
            ));
        }
        if let Some(ts) = timestamp {
            self.check_freshness(ts, now_secs)?;
        }
        Ok(())
    }

    fn check_freshness(&self, ts: &[u8], now_secs: i64) -> Result<(), Rejection> {
        if self.tolerance_secs == 0 {
            return Ok(());
        }
        let stale = |detail: String| Rejection::new(Reason::StaleTimestamp, detail);
        let Some(sent) = parse_timestamp(ts) else {
            return Err(stale(format!(
                "the timestamp {:?} is neither Unix seconds, milliseconds nor RFC 3339",
                String::from_utf8_lossy(ts)
            )));
        };
        let skew = now_secs.saturating_sub(sent);
        if skew.unsigned_abs() > self.tolerance_secs {
            return Err(stale(format!(
                "the timestamp is {}s {} now; the tolerance is {}s",
                skew.unsigned_abs(),
                if skew >= 0 { "before" } else { "after" },
                self.tolerance_secs
            )));
        }
        Ok(())
    }
}

/// Reads a timestamp as Unix seconds, Unix milliseconds (13 digits or more) or RFC 3339.
fn parse_timestamp(ts: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(ts).ok()?.trim();
    if let Ok(n) = text.parse::<i64>() {
        return Some(if n.unsigned_abs() >= 100_000_000_000 {
            n / 1000
        } else {
            n
        });
    }
    crate::clock::parse_time(text).map(|micros| micros / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use hyper::HeaderMap;

    fn spec(content: &str, secrets: &[&str]) -> SignatureSpec {
        SignatureSpec {
            algorithm: Algorithm::HmacSha256,
            header: "X-Sig".into(),
            encoding: Encoding::Hex,
            prefix: Some("sha256=".into()),
            signed_content: content.into(),
            timestamp_header: Some("X-Ts".into()),
            id_header: None,
            tolerance_secs: 300,
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
        }
    }

    fn run(
        check: &SignatureCheck,
        sig: &str,
        ts: &str,
        body: &'static str,
        now: i64,
    ) -> Result<(), Rejection> {
        let mut headers = HeaderMap::new();
        if let Ok(v) = sig.parse() {
            headers.insert("x-sig", v);
        }
        if !ts.is_empty()
            && let Ok(v) = ts.parse()
        {
            headers.insert("x-ts", v);
        }
        let body = Bytes::from_static(body.as_bytes());
        check.check(
            &RequestView {
                headers: &headers,
                query: None,
                body: &body,
                url: "u",
            },
            now,
        )
    }

    fn hex_sig(key: &str, content: &str) -> String {
        let c = SignedContent::parse("{body}").unwrap_or_else(|e| panic!("{e}"));
        let inputs = Inputs {
            body: content.as_bytes(),
            timestamp: b"",
            id: b"",
            url: b"",
        };
        format!(
            "sha256={}",
            hex::encode(sign(Algorithm::HmacSha256, key.as_bytes(), &c, inputs))
        )
    }

    #[test]
    fn rfc4231_test_case_2() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        let c = SignedContent::parse("{body}").unwrap_or_else(|e| panic!("{e}"));
        let inputs = Inputs {
            body: b"what do ya want for nothing?",
            timestamp: b"",
            id: b"",
            url: b"",
        };
        assert_eq!(
            hex::encode(sign(Algorithm::HmacSha256, b"Jefe", &c, inputs)),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn timestamped_signature_accepts_rotation_and_rejects_tampering_and_staleness() {
        let check = SignatureCheck::compile(&spec("{timestamp}.{body}", &["old", "new"]))
            .unwrap_or_else(|e| panic!("{e}"));
        let now = 1_700_000_000;
        let sig_old = hex_sig("old", "1700000000.{}");
        let sig_new = hex_sig("new", "1700000000.{}");
        assert_eq!(run(&check, &sig_old, "1700000000", "{}", now), Ok(()));
        assert_eq!(run(&check, &sig_new, "1700000000", "{}", now), Ok(()));
        let tampered = run(&check, &sig_new, "1700000000", "{ }", now);
        assert_eq!(tampered.map_err(|r| r.reason), Err(Reason::BadSignature));
        let stale = run(&check, &sig_new, "1700000000", "{}", now + 301);
        assert_eq!(stale.map_err(|r| r.reason), Err(Reason::StaleTimestamp));
        let future = run(&check, &sig_new, "1700000000", "{}", now - 301);
        assert_eq!(future.map_err(|r| r.reason), Err(Reason::StaleTimestamp));
        let wrong = run(
            &check,
            &hex_sig("other", "1700000000.{}"),
            "1700000000",
            "{}",
            now,
        );
        assert_eq!(wrong.map_err(|r| r.reason), Err(Reason::BadSignature));
    }

    #[test]
    fn prefix_encoding_and_missing_parts_are_rejected_clearly() {
        let check =
            SignatureCheck::compile(&spec("{body}", &["k"])).unwrap_or_else(|e| panic!("{e}"));
        let good = hex_sig("k", "x");
        assert!(
            run(&check, &good, "", "x", 0).is_ok(),
            "no timestamp header: no freshness check"
        );
        assert!(
            run(&check, &good.to_uppercase(), "", "x", 0).is_ok(),
            "prefix and hex are case-insensitive"
        );
        assert!(run(&check, &good.replace("sha256=", ""), "", "x", 0).is_err());
        assert!(run(&check, "sha256=zz", "", "x", 0).is_err());
        assert!(run(&check, "", "", "x", 0).is_err());
    }

    #[test]
    fn compile_fails_closed() {
        assert!(SignatureCheck::compile(&spec("{body}", &[])).is_err());
        assert!(SignatureCheck::compile(&spec("{body}", &[""])).is_err());
        let mut s = spec("{id}.{body}", &["k"]);
        assert!(SignatureCheck::compile(&s).is_err());
        s.id_header = Some("X-Id".into());
        assert!(SignatureCheck::compile(&s).is_ok());
    }

    #[test]
    fn timestamps_in_seconds_millis_and_rfc3339() {
        assert_eq!(parse_timestamp(b"1700000000"), Some(1_700_000_000));
        assert_eq!(parse_timestamp(b"1700000000123"), Some(1_700_000_000));
        assert_eq!(
            parse_timestamp(b"2023-11-14T22:13:20Z"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_timestamp(b"soon"), None);
    }
}
