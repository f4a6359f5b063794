//! Standard Webhooks signing for destinations: the `whsec_` secrets and the three headers.
//!
//! Owns secret generation, the secret list with its rotation overlap (a rotated secret
//! keeps signing until it expires, so a receiver can switch without dropping a delivery),
//! and the `webhook-signature` value: `v1,` + base64 HMAC-SHA256 over `id.timestamp.body`
//! with the key base64-decoded from after `whsec_`, one per live secret, space-separated,
//! newest first. Pure, time passed in. Secrets must never leave it except through the
//! create and rotate answers (shown once) and the sealed column.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt as _;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// One signing secret, `whsec_` + base64 of 24 random bytes, with when it stops signing.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Key {
    /// The secret as shown once: `whsec_...`.
    pub secret: String,
    /// Microseconds since the epoch after which it no longer signs; `None`: current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A fresh secret.
pub fn generate() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// The keys after a rotation at `now`: a fresh current key first, the old current key
/// expiring after `overlap_micros`, older keys kept only while unexpired.
pub fn rotate(keys: &[Key], now: i64, overlap_micros: i64) -> Vec<Key> {
    let mut out = vec![Key {
        secret: generate(),
        expires_at: None,
    }];
    for k in keys {
        let expires_at = k.expires_at.unwrap_or(now.saturating_add(overlap_micros));
        if expires_at > now {
            out.push(Key {
                secret: k.secret.clone(),
                expires_at: Some(expires_at),
            });
        }
    }
    out
}

/// The `webhook-signature` value for a message, signed with every key live at `now`.
pub fn signature(keys: &[Key], id: &str, timestamp_secs: i64, body: &[u8], now: i64) -> String {
    keys.iter()
        .filter(|k| k.expires_at.is_none_or(|t| t > now))
        .filter_map(|k| {
            let raw = STANDARD.decode(k.secret.strip_prefix("whsec_")?).ok()?;
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&raw).ok()?;
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp_secs.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            Some(format!(
                "v1,{}",
                STANDARD.encode(mac.finalize().into_bytes())
            ))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_webhooks_example_vector() {
        // The example from the Standard Webhooks specification's reference libraries.
        let keys = [Key {
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            expires_at: None,
        }];
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&keys, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, 0),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_rotation_keeps_the_old_secret_signing_until_it_expires() {
        let first = rotate(&[], 0, 10);
        assert_eq!(first.len(), 1);
        assert!(first[0].secret.starts_with("whsec_"));
        let second = rotate(&first, 100, 50);
        assert_eq!(second.len(), 2);
        assert_eq!(second[1].secret, first[0].secret);
        assert_eq!(second[1].expires_at, Some(150));
        let sig = signature(&second, "m", 1, b"{}", 120);
        assert_eq!(sig.split(' ').count(), 2);
        assert!(sig.split(' ').all(|s| s.starts_with("v1,")));
        assert_eq!(signature(&second, "m", 1, b"{}", 150).split(' ').count(), 1);
        // A third rotation after the overlap drops the expired key.
        assert_eq!(rotate(&second, 200, 50).len(), 2);
        assert!(!format!("{:?}", second[0]).contains("whsec_"));
    }
}
