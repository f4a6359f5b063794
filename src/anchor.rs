//! Anchors for the audit chains: an Ed25519 key kept outside the database signs what an
//! auditor checks the database against — each prune's checkpoint, the change log's anchor
//! row, and the heads of both logs published for auditors to keep.
//!
//! Owns the signing key (derived from the gateway's secret key with a domain-separated
//! HMAC, so it is never stored anywhere the database is), the exact bytes each signature
//! covers, and the head file an auditor keeps. Pure: no I/O. It must never put the private
//! key, or the secret it is derived from, anywhere but in memory; only the public key is
//! ever shown.

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};

use crate::chain::Hash;

/// What the signing key is derived for: a secret key used for sealing never signs
/// anything with the same bytes.
const DOMAIN: &[u8] = b"hookgate audit signing key v1";

/// The key that signs checkpoints, anchors and heads.
pub struct AuditKey {
    signing: SigningKey,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey(public {})", self.public_hex())
    }
}

impl AuditKey {
    /// The signing key derived from the gateway's secret key bytes.
    pub fn derive(secret: &[u8]) -> AuditKey {
        let seed: [u8; 32] = match <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret) {
            Ok(mut mac) => {
                mac.update(DOMAIN);
                mac.finalize().into_bytes().into()
            }
            // HMAC takes keys of any length; this arm is never taken.
            Err(_) => [0; 32],
        };
        AuditKey {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// The public key, which checks signatures and cannot make them.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key())
    }

    /// The public key as 64 hex digits.
    pub fn public_hex(&self) -> String {
        self.public().to_hex()
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.signing.sign(message).to_bytes().to_vec()
    }

    /// Signs a prune's checkpoint.
    pub fn sign_checkpoint(&self, c: &CheckpointClaim<'_>) -> Vec<u8> {
        self.sign(&c.message())
    }

    /// Signs the change log's anchor row made at `at` (microseconds).
    pub fn sign_anchor(&self, at: i64) -> Vec<u8> {
        self.sign(&anchor_message(at, &self.public_hex()))
    }

    /// A signed head of one log.
    pub fn sign_head(&self, log: &str, seq: i64, hash: &Hash, at: i64) -> SignedHead {
        let mut head = SignedHead {
            log: log.to_owned(),
            seq,
            hash: hex::encode(hash),
            at,
            signature: String::new(),
        };
        head.signature = hex::encode(self.sign(&head.message()));
        head
    }
}

/// A public key that checks the gateway's signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<PublicKey> {
        let bytes: [u8; 32] = hex::decode(text.trim()).ok()?.try_into().ok()?;
        VerifyingKey::from_bytes(&bytes).ok().map(PublicKey)
    }

    /// The key as 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(raw) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(&raw);
        self.0.verify_strict(message, &sig).is_ok()
    }

    /// Whether `signature` is this key's over the checkpoint.
    pub fn verifies_checkpoint(&self, c: &CheckpointClaim<'_>, signature: &[u8]) -> bool {
        self.verifies(&c.message(), signature)
    }

    /// Whether `signature` (hex) is this key's over an anchor row made at `at`.
    pub fn verifies_anchor(&self, at: i64, signature_hex: &str) -> bool {
        hex::decode(signature_hex)
            .is_ok_and(|sig| self.verifies(&anchor_message(at, &self.to_hex()), &sig))
    }

    /// Whether the head's signature is this key's.
    pub fn verifies_head(&self, head: &SignedHead) -> bool {
        hex::decode(&head.signature).is_ok_and(|sig| self.verifies(&head.message(), &sig))
    }
}

fn anchor_message(at: i64, public_hex: &str) -> Vec<u8> {
    format!("hookgate-anchor v1\n{at}\n{public_hex}").into_bytes()
}

/// What a checkpoint's signature covers: the log, the last pruned seq, how many rows were
/// pruned in all, and the last pruned row's hash.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointClaim<'a> {
    /// The log's name.
    pub log: &'a str,
    /// The last pruned seq.
    pub through: i64,
    /// Rows pruned in all.
    pub pruned: u64,
    /// The last pruned row's hash.
    pub hash: &'a Hash,
}

impl CheckpointClaim<'_> {
    fn message(&self) -> Vec<u8> {
        format!(
            "hookgate-checkpoint v1\n{}\n{}\n{}\n{}",
            self.log,
            self.through,
            self.pruned,
            hex::encode(self.hash)
        )
        .into_bytes()
    }
}

/// One log's head as the gateway signed it: the log passed through row `seq` with `hash`
/// at time `at` (microseconds). An auditor keeps it; a later log that does not pass
/// through it lost rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedHead {
    /// `events` or `changes`.
    pub log: String,
    /// The last row's seq (0: the log is empty).
    pub seq: i64,
    /// The last row's hash, hex.
    pub hash: String,
    /// When it was signed, microseconds since the epoch.
    pub at: i64,
    /// Ed25519 signature, hex.
    pub signature: String,
}

impl SignedHead {
    fn message(&self) -> Vec<u8> {
        format!(
            "hookgate-head v1\n{}\n{}\n{}\n{}",
            self.log, self.seq, self.hash, self.at
        )
        .into_bytes()
    }

    /// The head's hash, when it is 64 hex digits.
    pub fn hash(&self) -> Option<Hash> {
        hex::decode(&self.hash)
            .ok()
            .and_then(|b| Hash::try_from(b.as_slice()).ok())
    }
}

/// What the gateway publishes and an auditor keeps: the public key and the signed heads of
/// both logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadFile {
    /// The public key the heads are signed with, hex.
    pub public_key: String,
    /// One signed head per log.
    pub heads: Vec<SignedHead>,
}

/// Why a kept head file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadFileError {
    /// Not the JSON of a head file.
    #[error("not a hookgate head file: {0}")]
    Format(String),
    /// The file's key is not the key the auditor trusts.
    #[error("the head file was signed by public key {found}, not the key given ({trusted})")]
    OtherKey {
        /// The key in the file.
        found: String,
        /// The key the auditor gave.
        trusted: String,
    },
    /// A head's signature does not check.
    #[error("the {0} head's signature does not check: the head file was altered")]
    BadSignature(String),
}

impl HeadFile {
    /// Reads a kept head file and checks every signature, with `trusted` when the auditor
    /// gave a key, else with the key in the file. Returns the key used and the file.
    pub fn parse(
        text: &str,
        trusted: Option<PublicKey>,
    ) -> Result<(PublicKey, HeadFile), HeadFileError> {
        let file: HeadFile =
            serde_json::from_str(text).map_err(|e| HeadFileError::Format(e.to_string()))?;
        let found = PublicKey::from_hex(&file.public_key)
            .ok_or_else(|| HeadFileError::Format("public_key is not an Ed25519 key".into()))?;
        let key = match trusted {
            Some(t) if t != found => {
                return Err(HeadFileError::OtherKey {
                    found: found.to_hex(),
                    trusted: t.to_hex(),
                });
            }
            Some(t) => t,
            None => found,
        };
        for head in &file.heads {
            if head.hash().is_none() || !key.verifies_head(head) {
                return Err(HeadFileError::BadSignature(head.log.clone()));
            }
        }
        Ok((key, file))
    }

    /// The kept head of `log`, if the file has one.
    pub fn head(&self, log: &str) -> Option<&SignedHead> {
        self.heads.iter().find(|h| h.log == log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AuditKey {
        AuditKey::derive(&[7; 32])
    }

    #[test]
    fn the_key_is_derived_the_same_every_time_and_differs_per_secret() {
        assert_eq!(key().public_hex(), key().public_hex());
        assert_ne!(key().public_hex(), AuditKey::derive(&[8; 32]).public_hex());
        assert!(!format!("{:?}", key()).contains("signing"));
    }

    #[test]
    fn a_checkpoint_signature_covers_every_field() {
        let k = key();
        let hash = [3u8; 32];
        let claim = CheckpointClaim {
            log: "events",
            through: 12,
            pruned: 12,
            hash: &hash,
        };
        let sig = k.sign_checkpoint(&claim);
        let public = k.public();
        assert!(public.verifies_checkpoint(&claim, &sig));
        let other = [4u8; 32];
        for changed in [
            CheckpointClaim {
                through: 13,
                ..claim
            },
            CheckpointClaim {
                pruned: 11,
                ..claim
            },
            CheckpointClaim {
                log: "changes",
                ..claim
            },
            CheckpointClaim {
                hash: &other,
                ..claim
            },
        ] {
            assert!(!public.verifies_checkpoint(&changed, &sig), "{changed:?}");
        }
        assert!(
            !AuditKey::derive(&[8; 32])
                .public()
                .verifies_checkpoint(&claim, &sig)
        );
        assert!(!public.verifies_checkpoint(&claim, &sig[..63]));
    }

    #[test]
    fn a_head_file_checks_with_its_own_key_or_the_trusted_one_and_any_edit_fails() {
        let k = key();
        let file = HeadFile {
            public_key: k.public_hex(),
            heads: vec![
                k.sign_head("events", 5, &[1; 32], 1_000),
                k.sign_head("changes", 2, &[2; 32], 1_000),
            ],
        };
        let text = serde_json::to_string(&file).unwrap_or_default();
        let (used, parsed) = HeadFile::parse(&text, None).expect("parses");
        assert_eq!(used, k.public());
        assert_eq!(parsed.head("changes").map(|h| h.seq), Some(2));
        assert!(HeadFile::parse(&text, Some(k.public())).is_ok());
        let stranger = AuditKey::derive(&[9; 32]).public();
        assert!(matches!(
            HeadFile::parse(&text, Some(stranger)),
            Err(HeadFileError::OtherKey { .. })
        ));
        let edited = text.replace("\"seq\":5", "\"seq\":4");
        assert_eq!(
            HeadFile::parse(&edited, None),
            Err(HeadFileError::BadSignature("events".into()))
        );
        assert!(matches!(
            HeadFile::parse("{}", None),
            Err(HeadFileError::Format(_))
        ));
    }

    #[test]
    fn an_anchor_signature_is_bound_to_its_time_and_key() {
        let k = key();
        let sig = hex::encode(k.sign_anchor(42));
        assert!(k.public().verifies_anchor(42, &sig));
        assert!(!k.public().verifies_anchor(43, &sig));
        assert!(
            !AuditKey::derive(&[1; 32])
                .public()
                .verifies_anchor(42, &sig)
        );
        assert!(!k.public().verifies_anchor(42, "zz"));
    }
}
