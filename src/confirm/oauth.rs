//! The access token a status API wants: got from its token endpoint with the account's
//! client credentials, kept until shortly before it expires, and got again when the API
//! refuses it.
//!
//! Owns [`TokenCache`]. It must never log or store the client secret or a token, and never
//! hand out a token it knows to be expired.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::Method;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::account::{OAuthSpec, OAuthStyle, SpecError};
use crate::cli::client::HttpClient;
use crate::extract::JsonPath;
use crate::secret::Secret;

/// A token is renewed this long before the provider says it expires.
const MARGIN: Duration = Duration::from_secs(30);
/// The lifetime assumed when the answer gives none.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// A token endpoint and the token it last gave.
pub struct TokenCache {
    method: Method,
    token_url: String,
    style: OAuthStyle,
    client_id: String,
    client_secret: Secret,
    token_path: JsonPath,
    expires_in_path: JsonPath,
    secret_headers: Vec<(String, Secret)>,
    current: Mutex<Option<(Secret, Instant)>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// Compiles the token endpoint's spec.
    pub fn compile(spec: &OAuthSpec) -> Result<Self, SpecError> {
        let method = match spec.method.to_ascii_uppercase().as_str() {
            "GET" => Method::GET,
            "POST" => Method::POST,
            _ => {
                return Err(SpecError::new(
                    "confirm.oauth.method",
                    "must be GET or POST",
                ));
            }
        };
        if !(spec.token_url.starts_with("https://") || spec.token_url.starts_with("http://")) {
            return Err(SpecError::new(
                "confirm.oauth.token_url",
                "must be an http(s) URL",
            ));
        }
        if spec.client_id.is_empty() || spec.client_secret.is_empty() {
            return Err(SpecError::new(
                "confirm.oauth.client_secret",
                "the client id and secret must not be empty",
            ));
        }
        Ok(TokenCache {
            method,
            token_url: spec.token_url.clone(),
            style: spec.style,
            client_id: spec.client_id.clone(),
            client_secret: spec.client_secret.clone(),
            token_path: JsonPath::compile("confirm.oauth.token_path", &spec.token_path)?,
            expires_in_path: JsonPath::compile(
                "confirm.oauth.expires_in_path",
                &spec.expires_in_path,
            )?,
            secret_headers: spec
                .secret_headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            current: Mutex::new(None),
        })
    }

    /// A token that has not expired: the cached one, or a new one when there is none, it
    /// is about to expire, or `renew` says the API refused it.
    pub async fn token(
        &self,
        client: &HttpClient,
        timeout: Duration,
        renew: bool,
    ) -> Result<String, String> {
        let mut current = self.current.lock().await;
        if !renew
            && let Some((token, until)) = current.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.expose_str().to_owned());
        }
        let (token, lifetime) = self.fetch(client, timeout).await?;
        let until = Instant::now() + lifetime.saturating_sub(MARGIN);
        *current = Some((Secret::new(token.clone()), until));
        Ok(token)
    }

    async fn fetch(
        &self,
        client: &HttpClient,
        timeout: Duration,
    ) -> Result<(String, Duration), String> {
        let basic = format!(
            "Basic {}",
            STANDARD.encode(format!(
                "{}:{}",
                self.client_id,
                self.client_secret.expose_str()
            ))
        );
        let (url, body, mut headers) = match (self.style, &self.method) {
            (OAuthStyle::ClientCredentials, &Method::GET) => {
                let sep = if self.token_url.contains('?') { '&' } else { '?' };
                let url = if self.token_url.contains("grant_type=") {
                    self.token_url.clone()
                } else {
                    format!("{}{sep}grant_type=client_credentials", self.token_url)
                };
                (url, String::new(), vec![("authorization", basic.as_str())])
            }
            (OAuthStyle::ClientCredentials, _) => (
                self.token_url.clone(),
                "grant_type=client_credentials".to_owned(),
                vec![
                    ("authorization", basic.as_str()),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
            ),
            (OAuthStyle::JsonClientCredentials, _) => (
                self.token_url.clone(),
                json!({"client_id": self.client_id, "client_secret": self.client_secret.expose_str(),
                       "grant_type": "client_credentials"})
                .to_string(),
                vec![("content-type", "application/json")],
            ),
            (OAuthStyle::JsonKeys, _) => (
                self.token_url.clone(),
                json!({"consumer_key": self.client_id, "consumer_secret": self.client_secret.expose_str()})
                    .to_string(),
                vec![("content-type", "application/json")],
            ),
        };
        headers.push(("accept", "application/json"));
        for (k, v) in &self.secret_headers {
            headers.push((k.as_str(), v.expose_str()));
        }
        let sent = tokio::time::timeout(
            timeout,
            client.send(self.method.clone(), &url, &headers, body),
        )
        .await
        .map_err(|_| {
            format!(
                "the token endpoint did not answer within {}s",
                timeout.as_secs()
            )
        })?
        .map_err(|e| format!("the token endpoint: {e}"))?;
        if !sent.status.is_success() {
            return Err(format!(
                "the token endpoint answered {}",
                sent.status.as_u16()
            ));
        }
        let json: Value = serde_json::from_slice(&sent.body)
            .map_err(|_| "the token endpoint's answer is not JSON".to_owned())?;
        let token = self
            .token_path
            .text(&json)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| "the token endpoint's answer holds no token".to_owned())?;
        let lifetime = self
            .expires_in_path
            .text(&json)
            .and_then(|t| t.trim().parse::<u64>().ok())
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        Ok((token, lifetime))
    }
}
