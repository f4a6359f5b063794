//! The authenticate key: none, an API-key header, a bearer token, basic auth, a query
//! token, or a secret token in the URL's path (`/hooks/{account}/{token}`).
//!
//! Owns the compiled [`AuthCheck`] and its constant-time check. It must never compare a key
//! with `==` or report which part of a credential was wrong to the sender.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::header::{AUTHORIZATION, HeaderName};

use super::{Rejection, RequestView};
use crate::account::{AuthSpec, SpecError};
use crate::event::Reason;
use crate::secret::{Secret, ct_eq};

/// A compiled authenticate-key check.
#[derive(Debug)]
pub enum AuthCheck {
    /// No key is required.
    None,
    /// The named header must hold the value.
    Header {
        /// The header name, parsed once.
        name: HeaderName,
        /// The expected value.
        value: Secret,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// `Authorization: Basic ...`, compared as the decoded `username:password`.
    Basic(Secret),
    /// A query parameter must hold the value.
    Query {
        /// The parameter name.
        param: String,
        /// The expected value.
        value: Secret,
    },
    /// The path segment after the account's name must be the token.
    PathToken(Secret),
}

/// A fresh path token, for an account of the path-token kind created without one: 32
/// random bytes (256 bits) as unpadded base64url, 43 characters of A-Z a-z 0-9 - _.
pub fn generate_path_token() -> String {
    use rand::RngExt;
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The shortest path token accepted: a token in a URL is a bearer secret, and a short one
/// can be guessed.
pub const MIN_PATH_TOKEN_LEN: usize = 16;

impl AuthCheck {
    /// Compiles an auth spec, refusing empty keys and invalid header names.
    pub fn compile(spec: &AuthSpec) -> Result<Self, SpecError> {
        let non_empty = |field: &str, s: &Secret| {
            if s.is_empty() {
                Err(SpecError::new(field, "must not be empty"))
            } else {
                Ok(s.clone())
            }
        };
        Ok(match spec {
            AuthSpec::None => AuthCheck::None,
            AuthSpec::ApiKey { header, value } => AuthCheck::Header {
                name: parse_header_name("auth.header", header)?,
                value: non_empty("auth.value", value)?,
            },
            AuthSpec::Bearer { token } => AuthCheck::Bearer(non_empty("auth.token", token)?),
            AuthSpec::Basic { username, password } => {
                if username.is_empty() || username.contains(':') {
                    return Err(SpecError::new(
                        "auth.username",
                        "must be non-empty and must not contain ':'",
                    ));
                }
                let password = non_empty("auth.password", password)?;
                let joined = format!("{username}:{}", password.expose_str());
                AuthCheck::Basic(Secret::new(joined))
            }
            AuthSpec::PathToken { token } => {
                let ok = token.expose_str().len() >= MIN_PATH_TOKEN_LEN
                    && token
                        .expose_str()
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !ok {
                    return Err(SpecError::new(
                        "auth.token",
                        format!(
                            "must be at least {MIN_PATH_TOKEN_LEN} characters of A-Z a-z 0-9 - _ (it is a path segment and a secret)"
                        ),
                    ));
                }
                AuthCheck::PathToken(token.clone())
            }
            AuthSpec::Query { param, value } => {
                if param.is_empty() {
                    return Err(SpecError::new("auth.param", "must not be empty"));
                }
                AuthCheck::Query {
                    param: param.clone(),
                    value: non_empty("auth.value", value)?,
                }
            }
        })
    }

    /// True when no key is required.
    pub fn is_none(&self) -> bool {
        matches!(self, AuthCheck::None)
    }

    /// The header carrying the key, for redaction.
    pub fn header_name(&self) -> Option<&str> {
        match self {
            AuthCheck::Header { name, .. } => Some(name.as_str()),
            _ => None,
        }
    }

    /// The query parameter carrying the key, for redaction.
    pub fn query_param(&self) -> Option<&str> {
        match self {
            AuthCheck::Query { param, .. } => Some(param),
            _ => None,
        }
    }

    /// Checks the request's key.
    pub fn check(&self, req: &RequestView<'_>) -> Result<(), Rejection> {
        let ok = match self {
            AuthCheck::None => return Ok(()),
            AuthCheck::Header { name, value } => {
                let Some(presented) = req.headers.get(name) else {
                    return Err(missing(&format!("header {name}")));
                };
                value.matches(presented.as_bytes())
            }
            AuthCheck::Bearer(token) => {
                let Some(cred) = authorization(req, "bearer") else {
                    return Err(missing("Authorization: Bearer header"));
                };
                token.matches(cred)
            }
            AuthCheck::Basic(expected) => {
                let Some(cred) = authorization(req, "basic") else {
                    return Err(missing("Authorization: Basic header"));
                };
                match STANDARD.decode(cred) {
                    Ok(decoded) => ct_eq(expected.expose(), &decoded),
                    Err(_) => {
                        return Err(Rejection::new(
                            Reason::BadAuth,
                            "Authorization: Basic credentials are not valid base64",
                        ));
                    }
                }
            }
            AuthCheck::PathToken(token) => {
                let Some(presented) = req.origin.path_token else {
                    return Err(missing("token in the URL's path"));
                };
                token.matches(presented.as_bytes())
            }
            AuthCheck::Query { param, value } => {
                let presented = req.query.and_then(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == param.as_str())
                        .map(|(_, v)| v.into_owned())
                });
                let Some(presented) = presented else {
                    return Err(missing(&format!("query parameter {param}")));
                };
                value.matches(presented.as_bytes())
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Rejection::new(
                Reason::BadAuth,
                "the authenticate key does not match",
            ))
        }
    }
}

fn missing(what: &str) -> Rejection {
    Rejection::new(Reason::BadAuth, format!("the {what} is missing"))
}

/// The credentials after `scheme` in the Authorization header (scheme case-insensitive).
fn authorization<'a>(req: &'a RequestView<'_>, scheme: &str) -> Option<&'a [u8]> {
    let value = req.headers.get(AUTHORIZATION)?.as_bytes();
    let (given, rest) = value.split_at_checked(scheme.len())?;
    if !given.eq_ignore_ascii_case(scheme.as_bytes()) || rest.first() != Some(&b' ') {
        return None;
    }
    Some(rest.trim_ascii())
}

/// Parses a configured header name, naming the field on error.
pub(crate) fn parse_header_name(field: &str, name: &str) -> Result<HeaderName, SpecError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| SpecError::new(field, format!("{name:?} is not a valid HTTP header name")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use hyper::HeaderMap;

    fn view<'a>(
        headers: &'a HeaderMap,
        query: Option<&'a str>,
        body: &'a Bytes,
    ) -> RequestView<'a> {
        RequestView {
            method: "POST",
            headers,
            query,
            body,
            url: "http://h/hooks/a",
            origin: Default::default(),
        }
    }

    fn check(
        spec: AuthSpec,
        headers: &[(&str, &str)],
        query: Option<&str>,
    ) -> Result<(), Rejection> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), v.parse()) {
                map.append(k, v);
            }
        }
        let body = Bytes::new();
        let compiled = AuthCheck::compile(&spec)
            .map_err(|e| Rejection::new(Reason::BadAuth, e.to_string()))?;
        compiled.check(&view(&map, query, &body))
    }

    #[test]
    fn api_key_header_is_case_insensitive_in_name_only() {
        let spec = || AuthSpec::ApiKey {
            header: "X-Api-Key".into(),
            value: Secret::new("k1"),
        };
        assert!(check(spec(), &[("x-api-key", "k1")], None).is_ok());
        assert!(check(spec(), &[("X-API-KEY", "K1")], None).is_err());
        assert!(check(spec(), &[], None).is_err());
    }

    #[test]
    fn bearer_and_basic() {
        let bearer = || AuthSpec::Bearer {
            token: Secret::new("tok"),
        };
        assert!(check(bearer(), &[("authorization", "Bearer tok")], None).is_ok());
        assert!(check(bearer(), &[("authorization", "bearer tok")], None).is_ok());
        assert!(check(bearer(), &[("authorization", "Bearer tok2")], None).is_err());
        assert!(check(bearer(), &[("authorization", "Basic tok")], None).is_err());
        let basic = || AuthSpec::Basic {
            username: "u".into(),
            password: Secret::new("p"),
        };
        let good = format!("Basic {}", STANDARD.encode("u:p"));
        let bad = format!("Basic {}", STANDARD.encode("u:q"));
        assert!(check(basic(), &[("authorization", &good)], None).is_ok());
        assert!(check(basic(), &[("authorization", &bad)], None).is_err());
        assert!(check(basic(), &[("authorization", "Basic !!!")], None).is_err());
    }

    #[test]
    fn query_token_is_percent_decoded() {
        let spec = || AuthSpec::Query {
            param: "token".into(),
            value: Secret::new("a b&c"),
        };
        assert!(check(spec(), &[], Some("x=1&token=a%20b%26c")).is_ok());
        assert!(check(spec(), &[], Some("token=a")).is_err());
        assert!(check(spec(), &[], None).is_err());
    }

    #[test]
    fn empty_keys_are_refused_at_compile() {
        assert!(
            AuthCheck::compile(&AuthSpec::Bearer {
                token: Secret::new("")
            })
            .is_err()
        );
        assert!(
            AuthCheck::compile(&AuthSpec::ApiKey {
                header: "bad header".into(),
                value: Secret::new("x")
            })
            .is_err()
        );
    }
}
