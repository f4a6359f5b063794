//! The in-memory registry of compiled accounts that the ingest path reads.
//!
//! Owns the map from account name to [`CompiledAccount`]. The admin API replaces an entry
//! only after the store committed the change, so the registry never runs ahead of the
//! database. It must never be the source of truth: it is rebuilt from the store at start, and
//! again whenever another gateway node sharing the database changed accounts.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::account::CompiledAccount;

/// Compiled accounts by name. Reads are short: a lookup and an `Arc` clone.
#[derive(Debug, Default)]
pub struct Registry {
    accounts: RwLock<HashMap<String, Arc<CompiledAccount>>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The account of that name, if any.
    pub fn get(&self, name: &str) -> Option<Arc<CompiledAccount>> {
        let map = self
            .accounts
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        map.get(name).cloned()
    }

    /// Inserts or replaces an account.
    pub fn put(&self, account: CompiledAccount) -> Arc<CompiledAccount> {
        let account = Arc::new(account);
        let mut map = self
            .accounts
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        map.insert(account.name().to_owned(), Arc::clone(&account));
        account
    }

    /// Removes an account; true when it was there.
    pub fn remove(&self, name: &str) -> bool {
        let mut map = self
            .accounts
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        map.remove(name).is_some()
    }

    /// Replaces every account at once (a reload from the store): a lookup sees either the
    /// old set or the new one, never a mix.
    pub fn replace_all(&self, accounts: Vec<CompiledAccount>) {
        let fresh: HashMap<String, Arc<CompiledAccount>> = accounts
            .into_iter()
            .map(|a| (a.name().to_owned(), Arc::new(a)))
            .collect();
        *self
            .accounts
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = fresh;
    }

    /// Every account, sorted by name.
    pub fn list(&self) -> Vec<Arc<CompiledAccount>> {
        let map = self
            .accounts
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut all: Vec<_> = map.values().cloned().collect();
        all.sort_by(|a, b| a.name().cmp(b.name()));
        all
    }
}
