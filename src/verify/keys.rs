//! Keys: turning the text a user pasted into key material once, and checking one
//! presented signature with it.
//!
//! Owns [`Key`] (an HMAC secret's bytes, an Ed25519 public key, a P-256 public key), the
//! secret decoding rules (`whsec_` prefixes, base64, hex) and [`Key::verify`]. It must never
//! format key material, and never compare a MAC in variable time.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use p256::pkcs8::DecodePublicKey;

use super::signed_content::{Part, SignedContent};
use crate::account::{Algorithm, SecretEncoding, SpecError};
use crate::secret::{Secret, ct_eq};

/// One compiled key.
pub enum Key {
    /// An HMAC secret's bytes.
    Mac(Algorithm, Vec<u8>),
    /// An Ed25519 public key.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// A P-256 ECDSA public key.
    P256(p256::ecdsa::VerifyingKey),
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Key::Mac(..) => "Key::Mac([redacted])",
            Key::Ed25519(_) => "Key::Ed25519",
            Key::P256(_) => "Key::P256",
        })
    }
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
    /// The request method.
    pub method: &'a [u8],
    /// The sorted form parameters, names and values run together.
    pub form_params: &'a [u8],
    /// The fields a header names, as `{named_fields}` writes them.
    pub named_fields: &'a [u8],
}

impl<'a> Inputs<'a> {
    /// Inputs with only a body, the rest empty.
    pub fn body(body: &'a [u8]) -> Self {
        Inputs {
            body,
            timestamp: b"",
            id: b"",
            url: b"",
            method: b"",
            form_params: b"",
            named_fields: b"",
        }
    }

    /// The bytes one placeholder stands for.
    pub fn part(&self, part: &'a Part) -> &'a [u8] {
        match part {
            Part::Literal(bytes) => bytes,
            Part::Body => self.body,
            Part::Timestamp => self.timestamp,
            Part::Id => self.id,
            Part::Url => self.url,
            Part::Method => self.method,
            Part::FormParams => self.form_params,
            Part::NamedFields => self.named_fields,
        }
    }

    /// The signed bytes in one buffer, for the public-key algorithms.
    pub fn concat(&self, content: &'a SignedContent) -> Vec<u8> {
        let mut out = Vec::new();
        for part in content.parts() {
            out.extend_from_slice(self.part(part));
        }
        out
    }
}

/// Computes an HMAC of a template's content under one key; public-key algorithms have no
/// MAC and give an empty result, which never verifies.
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
        Algorithm::Ed25519 | Algorithm::EcdsaP256Sha256 => Vec::new(),
    }
}

fn mac<M: Mac + KeyInit>(key: &[u8], content: &SignedContent, inputs: Inputs<'_>) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail; an empty MAC never verifies.
    let Ok(mut m) = <M as KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    for part in content.parts() {
        m.update(inputs.part(part));
    }
    m.finalize().into_bytes().to_vec()
}

/// Prefixes that providers put before a key; a secret that is one of them alone is empty.
const KEY_PREFIXES: &[&str] = &["", "whsec_"];

/// Decodes the text of a secret into bytes: the prefix (when present) is removed, then the
/// encoding applied.
pub fn decode_secret(
    secret: &str,
    prefix: Option<&str>,
    encoding: SecretEncoding,
) -> Result<Vec<u8>, String> {
    let text = match prefix {
        Some(p) if !p.is_empty() => secret.strip_prefix(p).unwrap_or(secret),
        _ => secret,
    };
    match encoding {
        SecretEncoding::Text => Ok(text.as_bytes().to_vec()),
        SecretEncoding::Base64 => STANDARD
            .decode(text)
            .or_else(|_| STANDARD_NO_PAD.decode(text))
            .map_err(|_| "is not valid base64 (after its prefix)".to_owned()),
        SecretEncoding::Hex => {
            hex::decode(text.trim()).map_err(|_| "is not valid hexadecimal".to_owned())
        }
        SecretEncoding::Sha1Digest => {
            use sha1::Digest;
            Ok(sha1::Sha1::digest(text.as_bytes()).to_vec())
        }
    }
}

impl Key {
    /// Compiles one configured secret (or public key) for `algorithm`.
    pub fn compile(
        algorithm: Algorithm,
        secret: &Secret,
        prefix: Option<&str>,
        encoding: SecretEncoding,
        index: usize,
    ) -> Result<Key, SpecError> {
        let field = format!("signature.secrets[{index}]");
        // A secret that is only a prefix (Stripe's and Standard Webhooks' `whsec_`, or the
        // scheme's own) holds no key, even where the prefix is part of the key's bytes.
        let text = secret.expose_str().trim();
        if text.is_empty() {
            return Err(SpecError::new(field, "a secret must not be empty or blank"));
        }
        if KEY_PREFIXES.contains(&text) || prefix.is_some_and(|p| p == text) {
            return Err(SpecError::new(
                field,
                "holds only a prefix; the key after it is empty",
            ));
        }
        let bytes = decode_secret(secret.expose_str(), prefix, encoding)
            .map_err(|e| SpecError::new(&field, e))?;
        if bytes.is_empty() {
            return Err(SpecError::new(field, "a secret must not be empty"));
        }
        match algorithm {
            Algorithm::HmacSha1 | Algorithm::HmacSha256 | Algorithm::HmacSha512 => {
                Ok(Key::Mac(algorithm, bytes))
            }
            Algorithm::Ed25519 => {
                let raw: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    SpecError::new(
                        &field,
                        format!(
                            "an Ed25519 public key is 32 bytes; this one is {}",
                            bytes.len()
                        ),
                    )
                })?;
                ed25519_dalek::VerifyingKey::from_bytes(&raw)
                    .map(Key::Ed25519)
                    .map_err(|_| SpecError::new(field, "is not a valid Ed25519 public key"))
            }
            Algorithm::EcdsaP256Sha256 => p256::ecdsa::VerifyingKey::from_public_key_der(&bytes)
                .or_else(|_| p256::ecdsa::VerifyingKey::from_sec1_bytes(&bytes))
                .map(Key::P256)
                .map_err(|_| {
                    SpecError::new(
                        field,
                        "is not a P-256 public key (SubjectPublicKeyInfo DER or a SEC1 point)",
                    )
                }),
        }
    }

    /// Checks decoded signatures against the content. For an HMAC the MAC is computed
    /// once and compared with each in constant time; every signature is always looked at.
    pub fn verify(
        &self,
        content: &SignedContent,
        inputs: Inputs<'_>,
        presented: &[Vec<u8>],
    ) -> bool {
        let mut matched = false;
        match self {
            Key::Mac(algorithm, key) => {
                let expected = sign(*algorithm, key, content, inputs);
                for sig in presented {
                    matched |= ct_eq(&expected, sig);
                }
            }
            Key::Ed25519(key) => {
                let message = inputs.concat(content);
                for sig in presented {
                    if let Ok(raw) = <[u8; 64]>::try_from(sig.as_slice()) {
                        let sig = ed25519_dalek::Signature::from_bytes(&raw);
                        matched |= key.verify_strict(&message, &sig).is_ok();
                    }
                }
            }
            Key::P256(key) => {
                use p256::ecdsa::signature::Verifier;
                let message = inputs.concat(content);
                for sig in presented {
                    let parsed = p256::ecdsa::Signature::from_der(sig)
                        .or_else(|_| p256::ecdsa::Signature::from_slice(sig));
                    if let Ok(sig) = parsed {
                        matched |= key.verify(&message, &sig).is_ok();
                    }
                }
            }
        }
        matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_test_case_2() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        let c = SignedContent::parse("{body}").unwrap_or_else(|e| panic!("{e}"));
        let inputs = Inputs::body(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(sign(Algorithm::HmacSha256, b"Jefe", &c, inputs)),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn secrets_decode_by_prefix_and_encoding() {
        // Standard Webhooks: the key is the base64 after "whsec_" (24 bytes here).
        let key = decode_secret(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            Some("whsec_"),
            SecretEncoding::Base64,
        );
        assert_eq!(key.map(|k| k.len()), Ok(24));
        // Stripe's whsec_ secret is the key as typed.
        assert_eq!(
            decode_secret("whsec_x", None, SecretEncoding::Text),
            Ok(b"whsec_x".to_vec())
        );
        assert!(decode_secret("whsec_!!", Some("whsec_"), SecretEncoding::Base64).is_err());
        assert!(decode_secret("zz", None, SecretEncoding::Hex).is_err());
    }

    #[test]
    fn public_keys_are_checked_when_compiled() {
        let compile = |alg, text: &str, enc| Key::compile(alg, &Secret::new(text), None, enc, 0);
        // RFC 8032 section 7.1, TEST 1 public key.
        let rfc = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        assert!(compile(Algorithm::Ed25519, rfc, SecretEncoding::Hex).is_ok());
        let short = compile(Algorithm::Ed25519, "d75a98", SecretEncoding::Hex);
        assert!(short.err().is_some_and(|e| e.message.contains("32 bytes")));
        assert!(compile(Algorithm::EcdsaP256Sha256, "AAAA", SecretEncoding::Base64).is_err());
    }
}
