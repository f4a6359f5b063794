//! Secrets at rest: account specs are sealed (XChaCha20-Poly1305) before they reach the
//! accounts table, and opened when read back.
//!
//! Owns [`SealKey`]: where the key comes from (`storage.secret_key` /
//! `HOOKGATE_SECRET_KEY`, else a key file beside the database, created with mode 0600 on
//! first start) and the sealed text format `sealed:v1:<base64(nonce ‖ ciphertext)>`. The
//! spec's row name is bound as associated data, so a sealed spec cannot be moved to
//! another account's row. A spec stored in clear by an older version is still read (and
//! sealed at its next change). It must never write the key or a clear spec anywhere but
//! the key file, and never print either.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngExt;

use crate::anchor::AuditKey;
use crate::secret::Secret;
use crate::store::StoreError;

const PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 24;

/// The key that seals account specs.
pub struct SealKey {
    cipher: XChaCha20Poly1305,
    audit: std::sync::Arc<AuditKey>,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(***)")
    }
}

/// The key file used when no key is configured: `<database>.key`.
pub fn key_file_for(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

impl SealKey {
    /// The configured key (base64 of 32 bytes), else the key file beside the database,
    /// created on first use.
    pub fn load(database: &Path, configured: Option<&Secret>) -> Result<SealKey, StoreError> {
        match configured {
            Some(k) => SealKey::from_configured(k),
            None => SealKey::from_text(&read_or_create(&key_file_for(database))?),
        }
    }

    /// The configured key (base64 of 32 bytes).
    pub fn from_configured(key: &Secret) -> Result<SealKey, StoreError> {
        SealKey::from_text(key.expose_str())
    }

    fn from_text(text: &str) -> Result<SealKey, StoreError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| StoreError::Unavailable("the secret key is not valid base64".into()))?;
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| {
            StoreError::Unavailable("the secret key must be 32 bytes (base64)".into())
        })?;
        Ok(SealKey {
            cipher,
            audit: std::sync::Arc::new(AuditKey::derive(&bytes)),
        })
    }

    /// The audit signing key derived from this key (`anchor`).
    pub fn audit_key(&self) -> std::sync::Arc<AuditKey> {
        std::sync::Arc::clone(&self.audit)
    }

    /// The audit signing key of the secret key a database already has — the configured
    /// one, else its key file when that exists — without creating a key file.
    pub fn existing_audit_key(
        database: &Path,
        configured: Option<&Secret>,
    ) -> Result<Option<std::sync::Arc<AuditKey>>, StoreError> {
        if let Some(k) = configured {
            return Ok(Some(SealKey::from_configured(k)?.audit_key()));
        }
        let path = key_file_for(database);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(SealKey::from_text(&text)?.audit_key())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Unavailable(format!(
                "secret key file {}: {e}",
                path.display()
            ))),
        }
    }

    /// Seals a spec for the row `name`.
    pub fn seal(&self, name: &str, spec: &str) -> Result<String, StoreError> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::rng().random();
        let nonce = XNonce::from(nonce_bytes);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: spec.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Unavailable("sealing an account spec failed".into()))?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    /// Opens what `seal` made for `name`; text without the prefix is a legacy clear spec.
    pub fn open(&self, name: &str, stored: &str) -> Result<String, StoreError> {
        let Some(b64) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let wrong = || {
            StoreError::Unavailable(format!(
                "the spec of account {name:?} cannot be opened with this secret key: it was sealed with another (every node needs the same HOOKGATE_SECRET_KEY; a single node keeps its key in the file <database>.key)"
            ))
        };
        let raw = STANDARD.decode(b64).map_err(|_| wrong())?;
        if raw.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| wrong())?;
        let clear = self
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| wrong())?;
        String::from_utf8(clear).map_err(|_| wrong())
    }
}

fn read_or_create(path: &Path) -> Result<String, StoreError> {
    let unavailable = |e: std::io::Error| {
        StoreError::Unavailable(format!("secret key file {}: {e}", path.display()))
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            return Ok(text);
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(unavailable(e)),
        Err(_) => {}
    }
    let key: [u8; 32] = rand::rng().random();
    let text = STANDARD.encode(key);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(unavailable)?;
    file.write_all(text.as_bytes()).map_err(unavailable)?;
    file.sync_all().map_err(unavailable)?;
    tracing::info!(path = %path.display(), "created the secret key file; back it up with the database");
    Ok(text)
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the secret key file is readable by others; chmod 600 it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_bound_to_the_name_and_key() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = dir.path().join("x.db");
        let key = SealKey::load(&db, None).unwrap_or_else(|e| panic!("{e}"));
        let spec = r#"{"secret":"whsec_abc"}"#;
        let sealed = key.seal("shop", spec).unwrap_or_else(|e| panic!("{e}"));
        assert!(sealed.starts_with(PREFIX));
        assert!(!sealed.contains("whsec_abc"));
        assert_ne!(
            sealed,
            key.seal("shop", spec).unwrap_or_default(),
            "fresh nonce"
        );
        assert_eq!(key.open("shop", &sealed).ok().as_deref(), Some(spec));
        assert!(
            key.open("other", &sealed).is_err(),
            "bound to the row's name"
        );
        // The same key file is found again; another key cannot open it.
        let again = SealKey::load(&db, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.open("shop", &sealed).ok().as_deref(), Some(spec));
        let other = SealKey::load(&dir.path().join("y.db"), None).unwrap_or_else(|e| panic!("{e}"));
        assert!(other.open("shop", &sealed).is_err());
        // Legacy clear specs are still read.
        assert_eq!(key.open("shop", spec).ok().as_deref(), Some(spec));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key_file_for(&db)).map(|m| m.permissions().mode());
            assert_eq!(mode.unwrap_or(0) & 0o777, 0o600);
        }
    }

    #[test]
    fn a_configured_key_must_be_32_bytes_of_base64() {
        let db = Path::new("/nonexistent/x.db");
        assert!(SealKey::load(db, Some(&Secret::new("short"))).is_err());
        let k = Secret::new(STANDARD.encode([7u8; 32]));
        assert!(SealKey::load(db, Some(&k)).is_ok());
        assert!(!key_file_for(db).exists());
    }
}
