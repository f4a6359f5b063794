//! The signature header's grammar: one signature, a list of versioned signatures, or
//! `key=value` pairs with a timestamp among them.
//!
//! Owns [`Layout`] and [`Layout::split`], which turns a header value into the encoded
//! signatures it presents and the timestamp it carries. Pure and allocation-light. It must
//! never decode or compare signatures, and never reject a value for holding entries it
//! does not know (senders add schemes over time: Stripe's `v0`, Standard Webhooks' `v1a`).

use crate::account::{SignatureFormat, SignatureSpec, SpecError};

/// A compiled header layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// The whole value, after `prefix`, is one signature.
    Plain {
        /// Removed from the start, compared without regard to ASCII case.
        prefix: Option<String>,
    },
    /// Entries split on `separator`; those starting with `prefix` are signatures.
    List {
        /// Between entries.
        separator: String,
        /// Marks an entry of the accepted version, e.g. `v1,`.
        prefix: String,
    },
    /// `key=value` pairs split on `separator`.
    Kv {
        /// Between pairs.
        separator: String,
        /// The key of signature entries.
        signature_key: String,
        /// The key of the timestamp entry.
        timestamp_key: Option<String>,
    },
}

/// What one header value presents.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Presented<'a> {
    /// The encoded signatures, trimmed, in order.
    pub signatures: Vec<&'a [u8]>,
    /// The timestamp entry of a `kv` header.
    pub timestamp: Option<&'a [u8]>,
}

impl Layout {
    /// Compiles the layout fields of a spec.
    pub fn compile(spec: &SignatureSpec) -> Result<Self, SpecError> {
        let non_empty =
            |field: &str, v: &Option<String>, default: &str| -> Result<String, SpecError> {
                let v = v.clone().unwrap_or_else(|| default.to_owned());
                if v.is_empty() {
                    return Err(SpecError::new(field, "must not be empty"));
                }
                Ok(v)
            };
        Ok(match spec.format {
            SignatureFormat::Plain => Layout::Plain {
                prefix: spec.prefix.clone().filter(|p| !p.is_empty()),
            },
            SignatureFormat::List => Layout::List {
                separator: non_empty("signature.separator", &spec.separator, " ")?,
                prefix: spec.prefix.clone().unwrap_or_default(),
            },
            SignatureFormat::Kv => {
                let Some(signature_key) = spec.signature_key.clone().filter(|k| !k.is_empty())
                else {
                    return Err(SpecError::new(
                        "signature.signature_key",
                        "the kv format needs the key of the signature entries, e.g. \"v1\"",
                    ));
                };
                Layout::Kv {
                    separator: non_empty("signature.separator", &spec.separator, ",")?,
                    signature_key,
                    timestamp_key: spec.timestamp_key.clone().filter(|k| !k.is_empty()),
                }
            }
        })
    }

    /// True when the timestamp comes from the signature header itself.
    pub fn carries_timestamp(&self) -> bool {
        matches!(
            self,
            Layout::Kv {
                timestamp_key: Some(_),
                ..
            }
        )
    }

    /// Splits a header value. An empty `signatures` means the value held none this
    /// layout accepts; the caller says so.
    pub fn split<'a>(&self, value: &'a [u8]) -> Presented<'a> {
        let value = value.trim_ascii();
        match self {
            Layout::Plain { prefix } => {
                let rest = match prefix {
                    None => Some(value),
                    Some(p) => match value.split_at_checked(p.len()) {
                        Some((head, rest)) if head.eq_ignore_ascii_case(p.as_bytes()) => Some(rest),
                        _ => None,
                    },
                };
                Presented {
                    signatures: rest
                        .map(<[u8]>::trim_ascii)
                        .filter(|r| !r.is_empty())
                        .into_iter()
                        .collect(),
                    timestamp: None,
                }
            }
            Layout::List { separator, prefix } => Presented {
                signatures: split_on(value, separator.as_bytes())
                    .into_iter()
                    .filter_map(|entry| entry.strip_prefix(prefix.as_bytes()))
                    .map(<[u8]>::trim_ascii)
                    .filter(|s| !s.is_empty())
                    .collect(),
                timestamp: None,
            },
            Layout::Kv {
                separator,
                signature_key,
                timestamp_key,
            } => {
                let mut presented = Presented::default();
                for pair in split_on(value, separator.as_bytes()) {
                    let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                        continue;
                    };
                    let (key, val) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii());
                    if key == signature_key.as_bytes() && !val.is_empty() {
                        presented.signatures.push(val);
                    } else if timestamp_key.as_ref().is_some_and(|t| key == t.as_bytes())
                        && presented.timestamp.is_none()
                    {
                        presented.timestamp = Some(val);
                    }
                }
                presented
            }
        }
    }

    /// Writes the header value a sender would send: the inverse of [`Layout::split`].
    pub fn join(&self, signatures: &[String], timestamp: &str) -> String {
        match self {
            Layout::Plain { prefix } => format!(
                "{}{}",
                prefix.as_deref().unwrap_or(""),
                signatures.first().map(String::as_str).unwrap_or("")
            ),
            Layout::List { separator, prefix } => signatures
                .iter()
                .map(|s| format!("{prefix}{s}"))
                .collect::<Vec<_>>()
                .join(separator),
            Layout::Kv {
                separator,
                signature_key,
                timestamp_key,
            } => {
                let mut pairs = Vec::new();
                if let Some(t) = timestamp_key {
                    pairs.push(format!("{t}={timestamp}"));
                }
                pairs.extend(signatures.iter().map(|s| format!("{signature_key}={s}")));
                pairs.join(separator)
            }
        }
    }
}

/// Splits on a non-empty separator, trimming pieces and skipping empty ones.
fn split_on<'a>(value: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = value;
    loop {
        let (piece, next) = match rest.windows(sep.len().max(1)).position(|w| w == sep) {
            Some(i) => (&rest[..i], Some(&rest[i + sep.len()..])),
            None => (rest, None),
        };
        let piece = piece.trim_ascii();
        if !piece.is_empty() {
            pieces.push(piece);
        }
        match next {
            Some(n) => rest = n,
            None => return pieces,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv() -> Layout {
        Layout::Kv {
            separator: ",".into(),
            signature_key: "v1".into(),
            timestamp_key: Some("t".into()),
        }
    }

    #[test]
    fn stripe_header_keeps_every_v1_and_ignores_other_schemes() {
        let p = kv().split(b"t=12345, v1=aa ,v0=zz,v1=bb,junk,=x");
        assert_eq!(p.signatures, vec![&b"aa"[..], &b"bb"[..]]);
        assert_eq!(p.timestamp, Some(&b"12345"[..]));
        let paddle = Layout::Kv {
            separator: ";".into(),
            signature_key: "h1".into(),
            timestamp_key: Some("ts".into()),
        };
        let p = paddle.split(b"ts=1671552777;h1=eb4d0d");
        assert_eq!(p.signatures, vec![&b"eb4d0d"[..]]);
        assert_eq!(p.timestamp, Some(&b"1671552777"[..]));
    }

    #[test]
    fn standard_webhooks_list_keeps_v1_entries_only() {
        let list = Layout::List {
            separator: " ".into(),
            prefix: "v1,".into(),
        };
        let p = list.split(b"v1,AAA=  v1a,BBB== v2,CCC v1,DDD");
        assert_eq!(p.signatures, vec![&b"AAA="[..], &b"DDD"[..]]);
        assert!(list.split(b"v1a,only").signatures.is_empty());
    }

    #[test]
    fn plain_prefix_is_case_insensitive_and_required() {
        let plain = Layout::Plain {
            prefix: Some("sha256=".into()),
        };
        assert_eq!(plain.split(b" SHA256=ab ").signatures, vec![&b"ab"[..]]);
        assert!(plain.split(b"ab").signatures.is_empty());
        assert!(plain.split(b"sha256=").signatures.is_empty());
    }

    #[test]
    fn join_is_the_inverse_of_split() {
        let sigs = vec!["aa".to_owned(), "bb".to_owned()];
        let header = kv().join(&sigs, "99");
        assert_eq!(header, "t=99,v1=aa,v1=bb");
        let p = kv().split(header.as_bytes());
        assert_eq!(p.signatures.len(), 2);
        assert_eq!(p.timestamp, Some(&b"99"[..]));
    }
}
