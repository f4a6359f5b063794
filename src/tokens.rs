//! Admin API tokens and their roles.
//!
//! Owns [`Role`], [`TokenSet`] (every valid token, kept only as a SHA-256 hash) and token
//! generation. It must never keep or print a token in clear after it was first shown, and
//! never compare in variable time.

use rand::RngExt;
use sha2::{Digest, Sha256};

use crate::secret::ct_eq;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    Admin,
    /// Read events, changes and audit only.
    Auditor,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
}

/// One valid token: its name (shown in the change log), role and hash.
#[derive(Debug, Clone)]
pub struct TokenEntry {
    /// A name for the change log, e.g. `env:admin` or `generated:admin`.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// SHA-256 of the token.
    pub hash: [u8; 32],
}

/// Who presented a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name.
    pub name: String,
    /// The token's role.
    pub role: Role,
}

/// Every valid token.
#[derive(Debug, Clone, Default)]
pub struct TokenSet {
    entries: Vec<TokenEntry>,
}

/// SHA-256 of a token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// `n` random bytes as hex, for ids that must not repeat.
pub fn random_hex(n: usize) -> String {
    let mut rng = rand::rng();
    let bytes: Vec<u8> = (0..n).map(|_| rng.random::<u8>()).collect();
    hex::encode(bytes)
}

/// A fresh random token with a recognisable prefix (`hg_admin_...`).
pub fn generate(role: Role) -> String {
    let bytes: [u8; 24] = rand::rng().random();
    format!("hg_{}_{}", role.as_str(), hex::encode(bytes))
}

impl TokenSet {
    /// Adds a token by its hash.
    pub fn add(&mut self, entry: TokenEntry) {
        self.entries.push(entry);
    }

    /// Every entry (names, roles and hashes; callers must not show the hashes).
    pub fn entries(&self) -> &[TokenEntry] {
        &self.entries
    }

    /// Removes the entry of that name; true when it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.name != name);
        self.entries.len() != before
    }

    /// True when some token has this role.
    pub fn has_role(&self, role: Role) -> bool {
        self.entries.iter().any(|e| e.role == role)
    }

    /// The caller a presented token belongs to. Every entry is compared, in constant time.
    pub fn authenticate(&self, presented: &str) -> Option<Caller> {
        let hash = hash_token(presented);
        let mut found = None;
        for e in &self.entries {
            if ct_eq(&e.hash, &hash) && found.is_none() {
                found = Some(Caller {
                    name: e.name.clone(),
                    role: e.role,
                });
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_by_hash_only() {
        let admin = generate(Role::Admin);
        assert!(admin.starts_with("hg_admin_") && admin.len() > 50);
        let mut set = TokenSet::default();
        set.add(TokenEntry {
            name: "a".into(),
            role: Role::Admin,
            hash: hash_token(&admin),
        });
        set.add(TokenEntry {
            name: "b".into(),
            role: Role::Auditor,
            hash: hash_token("aud"),
        });
        assert_eq!(set.authenticate(&admin).map(|c| c.role), Some(Role::Admin));
        assert_eq!(set.authenticate("aud").map(|c| c.name), Some("b".into()));
        assert_eq!(set.authenticate("nope"), None);
        assert!(!format!("{set:?}").contains(&admin));
    }
}
