//! Secret material: signing secrets, authenticate keys and admin tokens.
//!
//! Owns the [`Secret`] type, whose `Debug` and `Display` never print the value, and the one
//! constant-time comparison used for secret material. It must never offer a way to format a
//! secret for output; the only way to read the bytes is [`Secret::expose`], for computing a
//! MAC or comparing.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;

/// A secret value that is write-only from the outside: it can be set and used, not shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// What every API answer and log line shows in place of a secret.
pub const MASK: &str = "********";

impl Secret {
    /// Wraps a value; the caller gives up the right to print it.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The raw bytes, for computing a MAC or comparing. Never format the result.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The value as text, for storing it in the accounts table. Never log the result.
    pub fn expose_str(&self) -> &str {
        &self.0
    }

    /// True when the secret is the empty string (refused at account creation).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time equality against presented bytes.
    pub fn matches(&self, presented: &[u8]) -> bool {
        ct_eq(self.0.as_bytes(), presented)
    }
}

/// Compares two byte strings in time that depends only on their lengths.
///
/// Lengths are not secret here: every caller compares fixed-size digests or values whose
/// length an attacker can learn anyway.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Serialising a secret writes the mask, never the value, so a secret cannot leak through
/// an API answer by accident. The accounts table stores secrets through
/// [`Secret::expose_str`] explicitly.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_serialize_never_show_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert!(!format!("{s:?}").contains("hunter2"));
        let json = serde_json::to_string(&s).unwrap_or_default();
        assert_eq!(json, format!("\"{MASK}\""));
    }

    #[test]
    fn matches_is_exact() {
        let s = Secret::new("abc");
        assert!(s.matches(b"abc"));
        assert!(!s.matches(b"abd"));
        assert!(!s.matches(b"ab"));
        assert!(!s.matches(b"abcd"));
    }
}
