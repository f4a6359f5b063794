//! Signing certificates fetched from the provider (AWS SNS's SigningCertURL): fetched once
//! per URL, kept for a bounded time in one bounded cache for the process, and handed to
//! `verify`.
//!
//! Owns [`CertFetcher`]. It fetches only URLs `verify` has already found on the allowlist,
//! and must never treat "could not fetch" as "forged".

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hyper::Method;
use tokio::sync::Mutex;

use crate::account::SnsSpec;
use crate::cli::client::HttpClient;

/// The most certificates kept.
const MAX_CERTS: usize = 16;
/// The largest certificate accepted.
const MAX_CERT_BYTES: usize = 16 * 1024;

/// Fetched PEM certificates by URL, each with the time it is kept until.
type Cache = HashMap<String, (Arc<Vec<u8>>, Instant)>;

/// Fetched certificates, by URL, for the whole process: they are public, and an account
/// compiled again (an update, another node's change heard) keeps them.
fn shared_cache() -> Arc<Mutex<Cache>> {
    static CACHE: OnceLock<Arc<Mutex<Cache>>> = OnceLock::new();
    CACHE.get_or_init(Default::default).clone()
}

/// An account's way to its messages' certificates.
pub struct CertFetcher {
    keep: Duration,
    timeout: Duration,
    client: HttpClient,
    cache: Arc<Mutex<Cache>>,
}

impl std::fmt::Debug for CertFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertFetcher").finish_non_exhaustive()
    }
}

impl CertFetcher {
    /// A fetcher with the spec's cache time and timeout.
    pub fn compile(spec: &SnsSpec) -> Self {
        CertFetcher {
            keep: Duration::from_secs(spec.cache_secs.max(1)),
            timeout: Duration::from_secs(spec.timeout_secs.max(1)),
            client: HttpClient::outbound(),
            cache: shared_cache(),
        }
    }

    /// The PEM certificate at `url` (already allowed by the caller), from the cache or
    /// fetched; `Err` when it could not be fetched.
    pub async fn get(&self, url: &str) -> Result<Arc<Vec<u8>>, String> {
        let now = Instant::now();
        {
            let mut cache = self.cache.lock().await;
            cache.retain(|_, (_, until)| *until > now);
            if let Some((pem, _)) = cache.get(url) {
                return Ok(pem.clone());
            }
        }
        let answer =
            tokio::time::timeout(self.timeout, self.client.send(Method::GET, url, &[], ""))
                .await
                .map_err(|_| {
                    format!(
                        "the certificate did not arrive within {}s",
                        self.timeout.as_secs()
                    )
                })?
                .map_err(|e| format!("the certificate: {e}"))?;
        let status = answer.status.as_u16();
        if !(200..=299).contains(&status) {
            return Err(format!("the certificate URL answered {status}"));
        }
        if answer.body.len() > MAX_CERT_BYTES {
            return Err("the certificate is implausibly large".into());
        }
        let pem = Arc::new(answer.body.to_vec());
        let mut cache = self.cache.lock().await;
        if cache.len() >= MAX_CERTS {
            cache.clear();
        }
        cache.insert(url.to_owned(), (pem.clone(), now + self.keep));
        Ok(pem)
    }
}
