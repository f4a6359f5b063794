//! Verification keys fetched from the provider: Google's JSON Web Key Set, Plaid's
//! verification-key API. A token names its key by `kid`; the key is fetched once, kept for
//! a bounded time in a bounded cache, and handed to `verify`, which stays pure.
//!
//! Owns [`KeyFetcher`]. It must never fetch from a URL a request chose (the URL is the
//! account's, https unless it is a loopback address), never let a stream of unknown `kid`s
//! turn into a stream of fetches (one fetch per [`MIN_REFETCH`] at most for keys it does
//! not know), never treat "could not fetch" as "forged", and never log the API secret.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hyper::Method;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::account::{RemoteKeysSpec, RemoteKeysStyle, SpecError};
use crate::cli::client::HttpClient;
use crate::secret::Secret;

/// The fewest seconds between two fetches for a `kid` the cache does not hold.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);
/// The most keys kept for one account.
const MAX_KEYS: usize = 32;

/// One account's source of keys and the keys it gave.
pub struct KeyFetcher {
    style: RemoteKeysStyle,
    url: String,
    client_id: String,
    secret: Option<Secret>,
    keep: Duration,
    timeout: Duration,
    client: HttpClient,
    cache: Arc<Mutex<Cache>>,
}

/// The caches of every key source in the process, by style, URL and client: an account
/// compiled again (an update, another node's change heard) keeps the keys it had.
fn shared_cache(source: String) -> Arc<Mutex<Cache>> {
    static CACHES: OnceLock<std::sync::Mutex<HashMap<String, Arc<Mutex<Cache>>>>> = OnceLock::new();
    let caches = CACHES.get_or_init(Default::default);
    let mut map = caches.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= MAX_SOURCES && !map.contains_key(&source) {
        map.clear();
    }
    map.entry(source).or_default().clone()
}

/// The most key sources whose caches are kept.
const MAX_SOURCES: usize = 1024;

#[derive(Default)]
struct Cache {
    keys: HashMap<String, (Arc<DecodingKey>, Instant)>,
    last_fetch: Option<Instant>,
}

impl std::fmt::Debug for KeyFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFetcher")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl KeyFetcher {
    /// Compiles the spec, naming the field at fault.
    pub fn compile(spec: &RemoteKeysSpec) -> Result<Self, SpecError> {
        allowed_url(&spec.url)?;
        let client_id = spec.client_id.clone().unwrap_or_default();
        let source = format!("{:?} {} {client_id}", spec.style, spec.url);
        if spec.style == RemoteKeysStyle::Plaid
            && (client_id.is_empty() || spec.secret.as_ref().is_none_or(Secret::is_empty))
        {
            return Err(SpecError::new(
                "jwt.remote_keys.secret",
                "Plaid's verification-key API needs the client_id and secret",
            ));
        }
        Ok(KeyFetcher {
            style: spec.style,
            url: spec.url.clone(),
            client_id,
            secret: spec.secret.clone(),
            keep: Duration::from_secs(spec.cache_secs.max(1)),
            timeout: Duration::from_secs(spec.timeout_secs.max(1)),
            client: HttpClient::outbound(),
            cache: shared_cache(source),
        })
    }

    /// The key named `kid`: `Ok(None)` when the provider does not know it (or was asked
    /// too recently to ask again), `Err` when the provider could not be asked.
    pub async fn key(&self, kid: &str) -> Result<Option<Arc<DecodingKey>>, String> {
        let now = Instant::now();
        let mut cache = self.cache.lock().await;
        cache.keys.retain(|_, (_, until)| *until > now);
        if let Some((key, _)) = cache.keys.get(kid) {
            return Ok(Some(key.clone()));
        }
        if cache
            .last_fetch
            .is_some_and(|at| now.duration_since(at) < MIN_REFETCH)
        {
            return Ok(None);
        }
        cache.last_fetch = Some(now);
        let fetched = tokio::time::timeout(self.timeout, self.fetch(kid))
            .await
            .map_err(|_| {
                format!(
                    "the provider's keys did not arrive within {}s",
                    self.timeout.as_secs()
                )
            })??;
        if cache.keys.len() + fetched.len() > MAX_KEYS {
            cache.keys.clear();
        }
        let until = now + self.keep;
        for (id, key) in fetched.into_iter().take(MAX_KEYS) {
            cache.keys.insert(id, (Arc::new(key), until));
        }
        Ok(cache.keys.get(kid).map(|(k, _)| k.clone()))
    }

    async fn fetch(&self, kid: &str) -> Result<Vec<(String, DecodingKey)>, String> {
        let answer = match self.style {
            RemoteKeysStyle::Jwks => self.client.send(Method::GET, &self.url, &[], "").await,
            RemoteKeysStyle::Plaid => {
                let body = json!({
                    "client_id": self.client_id,
                    "secret": self.secret.as_ref().map(Secret::expose_str).unwrap_or(""),
                    "key_id": kid,
                });
                self.client
                    .send(
                        Method::POST,
                        &self.url,
                        &[("content-type", "application/json")],
                        body.to_string(),
                    )
                    .await
            }
        }
        .map_err(|e| format!("the provider's keys: {e}"))?;
        let status = answer.status.as_u16();
        match (self.style, status) {
            (_, 200..=299) => {}
            // Plaid answers 400 for a key id it never issued: the token is not Plaid's.
            (RemoteKeysStyle::Plaid, 400 | 404) => return Ok(Vec::new()),
            _ => return Err(format!("the provider's keys answered {status}")),
        }
        let body: Value = serde_json::from_slice(&answer.body)
            .map_err(|_| "the provider's keys are not JSON".to_owned())?;
        Ok(match self.style {
            RemoteKeysStyle::Jwks => parse_jwks(body)?,
            RemoteKeysStyle::Plaid => parse_plaid(body, kid)?,
        })
    }
}

/// Every key of a JSON Web Key Set that has a `kid` and can be used.
pub fn parse_jwks(body: Value) -> Result<Vec<(String, DecodingKey)>, String> {
    let set: JwkSet =
        serde_json::from_value(body).map_err(|e| format!("not a JSON Web Key Set: {e}"))?;
    Ok(set
        .keys
        .iter()
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            DecodingKey::from_jwk(jwk).ok().map(|k| (kid, k))
        })
        .collect())
}

/// Plaid's `{"key": JWK}`; a key with a non-null `expired_at` is not used.
pub fn parse_plaid(body: Value, kid: &str) -> Result<Vec<(String, DecodingKey)>, String> {
    let Some(key) = body.get("key") else {
        return Err("Plaid's answer holds no key".into());
    };
    if key.get("expired_at").is_some_and(|e| !e.is_null()) {
        return Ok(Vec::new());
    }
    let jwk: Jwk = serde_json::from_value(key.clone()).map_err(|e| format!("not a JWK: {e}"))?;
    let id = jwk.common.key_id.clone().unwrap_or_else(|| kid.to_owned());
    if id != kid {
        return Ok(Vec::new());
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable JWK: {e}"))?;
    Ok(vec![(id, key)])
}

/// A keys URL must be https, or http to a loopback address (a local mirror, the tests).
fn allowed_url(url: &str) -> Result<(), SpecError> {
    let bad = || {
        SpecError::new(
            "jwt.remote_keys.url",
            "must be an https:// URL (http:// only to a loopback address)",
        )
    };
    if let Some(rest) = url.strip_prefix("https://") {
        return if rest.is_empty() { Err(bad()) } else { Ok(()) };
    }
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    };
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback { Ok(()) } else { Err(bad()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_urls_are_allowed() {
        for ok in [
            "https://www.googleapis.com/oauth2/v3/certs",
            "http://127.0.0.1:8080/certs",
            "http://localhost/certs",
            "http://[::1]:9/x",
        ] {
            assert!(allowed_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://www.googleapis.com/oauth2/v3/certs",
            "http://10.0.0.1/certs",
            "ftp://x",
            "https://",
            "http://127.0.0.1.evil.example/x",
        ] {
            assert!(allowed_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_plaid_key_with_an_expiry_or_another_id_is_not_used() {
        let jwk = json!({"alg": "ES256", "crv": "P-256", "kid": "k1", "kty": "EC", "use": "sig",
            "x": "hKXLGIjWvCBv-cP5euCTxl8g9GLG9zHo_3pO5NN1DwQ",
            "y": "shhexqPB7YffGn6fR6h2UhTSuCtPmfzQJ6ENVIoO4Ys",
            "created_at": 1560466143, "expired_at": null});
        let live = parse_plaid(json!({"key": jwk.clone()}), "k1").unwrap_or_default();
        assert_eq!(live.len(), 1);
        let mut old = jwk.clone();
        old["expired_at"] = json!(1600000000);
        assert!(
            parse_plaid(json!({"key": old}), "k1")
                .unwrap_or_default()
                .is_empty()
        );
        assert!(
            parse_plaid(json!({"key": jwk}), "k2")
                .unwrap_or_default()
                .is_empty()
        );
        assert!(parse_plaid(json!({}), "k1").is_err());
    }
}
