//! The JWT/JWS check: a signed token in a header (Vonage, MessageBird, Netlify), whose
//! claims say when it was made and, in a named claim, the SHA-256 of the body.
//!
//! Owns the compiled [`JwtCheck`]. The token's signature is checked by `jsonwebtoken` with
//! exactly one algorithm (the token's own `alg` cannot choose another), against every key;
//! times are checked here against the `now` passed in, never the system clock; the body
//! claim is compared in constant time. It must never accept a token whose body claim is
//! missing when the scheme names one, nor read a claim of a token that did not verify.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::header::HeaderName;
use jsonwebtoken::{Algorithm as JwtAlg, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::auth::parse_header_name;
use super::{Rejection, RequestView};
use crate::account::{JwtAlgorithm, JwtSpec, SpecError};
use crate::event::Reason;
use crate::secret::ct_eq;

/// A verified token's claims.
pub type Claims = Map<String, Value>;

/// A compiled JWT scheme.
pub struct JwtCheck {
    header: HeaderName,
    prefix: Option<String>,
    algorithm: JwtAlg,
    keys: Vec<DecodingKey>,
    body_hash_claim: Option<String>,
    /// The accepted issuers; empty: any.
    issuers: Vec<String>,
    audience: Option<String>,
    claims: Vec<(String, String)>,
    tolerance_secs: u64,
    iat_tolerance_secs: u64,
}

impl std::fmt::Debug for JwtCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtCheck")
            .field("header", &self.header)
            .field("algorithm", &self.algorithm)
            .field("keys", &format_args!("[{} redacted]", self.keys.len()))
            .field("body_hash_claim", &self.body_hash_claim)
            .finish()
    }
}

impl JwtCheck {
    /// Compiles a spec, refusing one that could not be checked.
    pub fn compile(spec: &JwtSpec) -> Result<Self, SpecError> {
        let header = parse_header_name("jwt.header", &spec.header)?;
        if spec.secrets.is_empty() && spec.remote_keys.is_none() {
            return Err(SpecError::new(
                "jwt.secrets",
                "a JWT scheme needs at least one secret or public key (for a preset, give \"secret\")",
            ));
        }
        let algorithm = match spec.algorithm {
            JwtAlgorithm::Hs256 => JwtAlg::HS256,
            JwtAlgorithm::Es256 => JwtAlg::ES256,
            JwtAlgorithm::Rs256 => JwtAlg::RS256,
        };
        let keys = spec
            .secrets
            .iter()
            .enumerate()
            .map(|(i, s)| key(spec.algorithm, s.expose_str(), i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(JwtCheck {
            header,
            prefix: spec.prefix.clone().filter(|p| !p.is_empty()),
            algorithm,
            keys,
            body_hash_claim: spec.body_hash_claim.clone().filter(|c| !c.is_empty()),
            issuers: spec
                .issuer
                .iter()
                .chain(&spec.other_issuers)
                .cloned()
                .collect(),
            audience: spec.audience.clone().filter(|a| !a.is_empty()),
            claims: spec
                .claims
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            tolerance_secs: spec.tolerance_secs,
            iat_tolerance_secs: spec.iat_tolerance_secs.unwrap_or(spec.tolerance_secs),
        })
    }

    /// The header carrying the token, for redaction.
    pub fn header_name(&self) -> &str {
        self.header.as_str()
    }

    /// The token's text, after the prefix.
    fn token(&self, req: &RequestView<'_>) -> Result<String, Rejection> {
        let bad = |detail: String| Rejection::new(Reason::BadSignature, detail);
        let Some(raw) = req.headers.get(&self.header) else {
            return Err(bad(format!(
                "the token (header {}) is missing",
                self.header
            )));
        };
        let text = String::from_utf8_lossy(raw.as_bytes());
        match &self.prefix {
            Some(p) => match text.get(..p.len()) {
                Some(head) if head.eq_ignore_ascii_case(p) => Ok(text[p.len()..].trim().to_owned()),
                _ => Err(bad(format!("the token does not start with {p:?}"))),
            },
            None => Ok(text.trim().to_owned()),
        }
    }

    /// The `kid` in the token's (unverified) header, to look its key up with the provider;
    /// `None` when there is no token or no `kid`.
    pub fn key_id(&self, req: &RequestView<'_>) -> Option<String> {
        let token = self.token(req).ok()?;
        jsonwebtoken::decode_header(&token).ok()?.kid
    }

    /// Checks the token against every key, then its issuer, times and body claim; gives
    /// the verified claims.
    pub fn check(&self, req: &RequestView<'_>, now_secs: i64) -> Result<Claims, Rejection> {
        self.check_with(req, now_secs, None)
    }

    /// Like [`check`](Self::check), with one more key: the one fetched from the provider
    /// for the token's `kid`.
    pub fn check_with(
        &self,
        req: &RequestView<'_>,
        now_secs: i64,
        fetched: Option<&DecodingKey>,
    ) -> Result<Claims, Rejection> {
        let bad = |detail: String| Rejection::new(Reason::BadSignature, detail);
        let token = self.token(req)?;
        let token = token.as_str();
        let mut validation = Validation::new(self.algorithm);
        // Times are checked below against the gateway's clock, not the system's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let mut claims = None;
        // Every key is tried, so the time taken does not say which one matched.
        for key in self.keys.iter().chain(fetched) {
            if let Ok(data) = jsonwebtoken::decode::<Claims>(token, key, &validation)
                && claims.is_none()
            {
                claims = Some(data.claims);
            }
        }
        let Some(claims) = claims else {
            return Err(bad(
                "the token is not a JWT signed with the expected algorithm by any of the \
                 account's keys"
                    .into(),
            ));
        };
        if !self.issuers.is_empty() {
            let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
            if !self.issuers.iter().any(|i| i == iss) {
                return Err(bad(format!("the token's issuer is not {:?}", self.issuers)));
            }
        }
        if let Some(aud) = &self.audience {
            let ok = match claims.get("aud") {
                Some(Value::String(a)) => a == aud,
                Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(aud)),
                _ => false,
            };
            if !ok {
                return Err(bad(format!("the token's audience is not {aud:?}")));
            }
        }
        for (name, want) in &self.claims {
            let got = match claims.get(name) {
                Some(Value::String(v)) => Some(v.clone()),
                Some(Value::Null) | None => None,
                Some(other) => Some(other.to_string()),
            };
            if got.as_deref() != Some(want.as_str()) {
                return Err(bad(format!("the token's {name} claim is not {want:?}")));
            }
        }
        if let Some(claim) = &self.body_hash_claim {
            let claimed = claims.get(claim).and_then(Value::as_str).unwrap_or("");
            let actual = Sha256::digest(req.body);
            if !hex::decode(claimed.trim()).is_ok_and(|c| ct_eq(&c, &actual)) {
                return Err(bad(format!(
                    "the token's {claim} claim is not the body's SHA-256"
                )));
            }
        }
        self.check_times(&claims, now_secs)?;
        Ok(claims)
    }

    fn check_times(&self, claims: &Claims, now_secs: i64) -> Result<(), Rejection> {
        if self.tolerance_secs == 0 {
            return Ok(());
        }
        let tol = i64::try_from(self.tolerance_secs).unwrap_or(i64::MAX);
        let stale = |detail: String| Rejection::new(Reason::StaleTimestamp, detail);
        let at = |name: &str| claims.get(name).and_then(Value::as_i64);
        let iat_tol = i64::try_from(self.iat_tolerance_secs).unwrap_or(i64::MAX);
        if let Some(iat) = at("iat")
            && now_secs.saturating_sub(iat).abs() > iat_tol
        {
            return Err(stale(format!(
                "the token was issued {}s from now; the tolerance is {iat_tol}s",
                now_secs.saturating_sub(iat).abs()
            )));
        }
        if let Some(exp) = at("exp")
            && now_secs > exp.saturating_add(tol)
        {
            return Err(stale(format!("the token expired {}s ago", now_secs - exp)));
        }
        if let Some(nbf) = at("nbf")
            && now_secs < nbf.saturating_sub(tol)
        {
            return Err(stale(format!(
                "the token is valid only in {}s",
                nbf - now_secs
            )));
        }
        Ok(())
    }
}

/// One key: an HS256 secret as typed, or a public key as PEM or base64 DER.
fn key(algorithm: JwtAlgorithm, text: &str, i: usize) -> Result<DecodingKey, SpecError> {
    let field = format!("jwt.secrets[{i}]");
    if text.is_empty() {
        return Err(SpecError::new(field, "must not be empty"));
    }
    let pem = text.trim_start().starts_with("-----BEGIN");
    let der = || {
        STANDARD
            .decode(text.trim())
            .map_err(|_| SpecError::new(&field, "is neither PEM nor base64 DER"))
    };
    match algorithm {
        JwtAlgorithm::Hs256 => Ok(DecodingKey::from_secret(text.as_bytes())),
        JwtAlgorithm::Es256 if pem => DecodingKey::from_ec_pem(text.as_bytes())
            .map_err(|e| SpecError::new(&field, format!("is not a P-256 public key: {e}"))),
        JwtAlgorithm::Es256 => Ok(DecodingKey::from_ec_der(&der()?)),
        JwtAlgorithm::Rs256 if pem => DecodingKey::from_rsa_pem(text.as_bytes())
            .map_err(|e| SpecError::new(&field, format!("is not an RSA public key: {e}"))),
        JwtAlgorithm::Rs256 => Ok(DecodingKey::from_rsa_der(&der()?)),
    }
}

/// Key pairs made for the tests alone (P-256 and RSA-2048), shared with `signer`'s tests.
#[cfg(test)]
pub(crate) mod test_keys {
    // Test keys made for these tests alone (P-256 and RSA-2048).
    pub(crate) const EC_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgv/7BBMDn8L5iuPxO
VS3v2fMQro4jKD+crT1/XjjYyPShRANCAARlBIEB0awnJ/RGyAZCNLKsdXANp4Wk
/XwyLTQF7zCs3MAlyKw57LnELcOMbadnl/xsEIWghm27n+p8f3wsWf97
-----END PRIVATE KEY-----
";
    pub(crate) const EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZQSBAdGsJyf0RsgGQjSyrHVwDaeF
pP18Mi00Be8wrNzAJcisOey5xC3DjG2nZ5f8bBCFoIZtu5/qfH98LFn/ew==
-----END PUBLIC KEY-----
";
    pub(crate) const RSA_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCeLR1f5oRkll1i
qEdyzr81X7n4Aeljzep7aKV7hIHIVcKgcYnbJ8hgRH5Lg7UF/7249mY8sJTrCmtv
QphC/FzQayP2X3lc7Khaq7WTB5Si7pJofx0YAMbxEEPOdJxJZT9Jdle16o4DTENX
AeZWHIdV9UPfV6fiY2Znb/Ios9+M+DLGASUd9738YYvmzeRUFL04S31kPh1oadsP
ikL4HpBugq72+v2l0UxDoAuv6rkO9+Tkr6DtaBW0nTlSD+vOTmCz7WCgA6KRbYfc
ZmJA4V2bBOdIgWYj2VraaAQfgORQ3w8k/1xA40CRy01zK0wAoqpZajqX0QrsijeZ
jpqfTfi/AgMBAAECggEAP5eLs76Ng5MgQEW/U9zi6qZtsdOy7TkgCDVuMlZ3hv9T
nAWJkt5PpMRksh9la+ABepc1SzkC5evufXCcnnGvLuukLaz8setDVBCsk0v86fRY
UEKqg7fsQ4ZyfFJNcwSNiQ9W/AAs0A6dFCHjZMNbdaeBfg1TpaSoyvUqukp2mcmd
MssIXAgjJj5cdHBi1LdH0/TMdLzP+zx3Cr+U17aNszTVGhLtjfJbXneXC/Eq8X7J
3LMWctLVcdK29DUlAJ7J5gzEswUcUrjByvnStrlawCklMO8xeYtg0MICdjEmW1jk
gUFRWUhgH/COvrH5ek100jKo29KGLmb9ZDmwkr5ZgQKBgQDUsIRA3N6scz3+LM5e
WYGcuIpuf/UbXppd2oBvxe/9+HoZLCXsgyhvmLAOJw31ExHzVbyrF8UmzniREhmc
Ihc5bWLL5UJyli3eXjIP+RVxbrY6hzVuj2tOkvEzWvpLmn+mp8trYGhYceerC7sC
0HBwcYJzlDVwnOQSkNR4x/Hr8QKBgQC+YtNpfZriNu0KGrk5hZJ/9R5eHxMih0ym
N4AN90TxvVM9npqyOE7W1H5f+5aMYcivVqASG/f3SY6OJLecc6GAOmPEfvar2BDd
Q1QYma7qVOvyL4M1e9IF8WQNMy0z+JDsQeq74R/Bh3TOSgzUg7npEjvZrwt5WFff
qzB3dJOfrwKBgFJ1HNEI0EuLYj1ooZlymg1ofkLY2O4Df1VjoOe0lZag/rVDqHBJ
aSPazmauPXsGKa9tTfgG/yhMY/HaUpN1pAtfnS3vdBN4pc/QNRh8ORQBGCUYxl5W
vAN6dIi0fNVS0KqL4xF+DvY7MtXddmNg7DaryyeEDjPan5GTFMy+t8wBAoGAMykF
XKSnGUDfQ8bYnU96ha4Nwgchsjafb08ctyQKP9e7ZaSYN2oQLYSejRZjZ0fjkNJ7
Y0JmyOnYR/Qv7vfXn0iRhL0FdjoylfLAx3eM3GWDneoMnTOvxW8PjsiAziVudD5m
YKRnTy8iQUj+16CqNapzsNRsBeiqfG1ZMdB+1vsCgYBFY0Abx0683FbTSWKE13jc
F6oejYf5p6pdJF8xr2r8NjoZiJkXsfcAGXrnBzT9+n5Vd7ZLhls4KXEe1Qa+8Rlp
508d/tuJbsyGdXAro7a7a36QMDeHhPOhFF7Q0QXB24nuDrPPJKMnVYf7mt4FTW6e
mt0izY6PXIifn9nc7eZm8A==
-----END PRIVATE KEY-----
";
    pub(crate) const RSA_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAni0dX+aEZJZdYqhHcs6/
NV+5+AHpY83qe2ile4SByFXCoHGJ2yfIYER+S4O1Bf+9uPZmPLCU6wprb0KYQvxc
0Gsj9l95XOyoWqu1kweUou6SaH8dGADG8RBDznScSWU/SXZXteqOA0xDVwHmVhyH
VfVD31en4mNmZ2/yKLPfjPgyxgElHfe9/GGL5s3kVBS9OEt9ZD4daGnbD4pC+B6Q
boKu9vr9pdFMQ6ALr+q5Dvfk5K+g7WgVtJ05Ug/rzk5gs+1goAOikW2H3GZiQOFd
mwTnSIFmI9la2mgEH4DkUN8PJP9cQONAkctNcytMAKKqWWo6l9EK7Io3mY6an034
vwIDAQAB
-----END PUBLIC KEY-----
";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use bytes::Bytes;
    use hyper::HeaderMap;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::test_keys::*;

    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"status":"delivered"}"#;

    fn spec(algorithm: JwtAlgorithm, key: &str) -> JwtSpec {
        JwtSpec {
            header: "Authorization".into(),
            prefix: Some("Bearer ".into()),
            algorithm,
            body_hash_claim: Some("payload_hash".into()),
            issuer: Some("Sender".into()),
            other_issuers: Vec::new(),
            audience: None,
            claims: Default::default(),
            remote_keys: None,
            iat_tolerance_secs: None,
            tolerance_secs: 300,
            secrets: vec![Secret::new(key)],
        }
    }

    fn token(alg: JwtAlg, key: &EncodingKey, claims: Value) -> String {
        jsonwebtoken::encode(&Header::new(alg), &claims, key).unwrap_or_else(|e| panic!("{e}"))
    }

    fn good_claims(body: &[u8]) -> Value {
        json!({"iss": "Sender", "iat": NOW, "jti": "j-1",
               "payload_hash": hex::encode(Sha256::digest(body))})
    }

    fn run(
        check: &JwtCheck,
        bearer: &str,
        body: &'static [u8],
        now: i64,
    ) -> Result<Claims, Rejection> {
        let mut headers = HeaderMap::new();
        if let Ok(v) = format!("Bearer {bearer}").parse() {
            headers.insert("authorization", v);
        }
        let body = Bytes::from_static(body);
        check.check(
            &RequestView {
                method: "POST",
                headers: &headers,
                query: None,
                body: &body,
                url: "u",
                origin: Default::default(),
            },
            now,
        )
    }

    fn reason(r: Result<Claims, Rejection>) -> Option<Reason> {
        r.err().map(|e| e.reason)
    }

    #[test]
    fn hs256_es256_and_rs256_tokens_verify_with_their_claims() {
        let cases = [
            (
                JwtAlgorithm::Hs256,
                "shared",
                JwtAlg::HS256,
                EncodingKey::from_secret(b"shared"),
            ),
            (
                JwtAlgorithm::Es256,
                EC_PUBLIC,
                JwtAlg::ES256,
                EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap_or_else(|e| panic!("{e}")),
            ),
            (
                JwtAlgorithm::Rs256,
                RSA_PUBLIC,
                JwtAlg::RS256,
                EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap_or_else(|e| panic!("{e}")),
            ),
        ];
        for (algorithm, public, alg, private) in cases {
            let check =
                JwtCheck::compile(&spec(algorithm, public)).unwrap_or_else(|e| panic!("{e}"));
            let t = token(alg, &private, good_claims(BODY));
            let claims =
                run(&check, &t, BODY, NOW).unwrap_or_else(|e| panic!("{algorithm:?}: {e}"));
            assert_eq!(claims.get("jti"), Some(&json!("j-1")));
            assert_eq!(
                reason(run(&check, &t, br#"{"status":"deliveres"}"#, NOW)),
                Some(Reason::BadSignature),
                "{algorithm:?}: the body claim covers the body"
            );
            assert_eq!(
                reason(run(&check, &t, BODY, NOW + 301)),
                Some(Reason::StaleTimestamp),
                "{algorithm:?}: iat is checked against the gateway's clock"
            );
        }
    }

    #[test]
    fn wrong_keys_other_algorithms_issuers_and_missing_claims_are_refused() {
        let check = JwtCheck::compile(&spec(JwtAlgorithm::Rs256, RSA_PUBLIC))
            .unwrap_or_else(|e| panic!("{e}"));
        // The classic confusion: an HS256 token keyed with the RSA public key's text.
        let confused = token(
            JwtAlg::HS256,
            &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
            good_claims(BODY),
        );
        assert_eq!(
            reason(run(&check, &confused, BODY, NOW)),
            Some(Reason::BadSignature)
        );
        let unsigned = format!(
            "{}.{}.",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(good_claims(BODY).to_string())
        );
        assert_eq!(
            reason(run(&check, &unsigned, BODY, NOW)),
            Some(Reason::BadSignature)
        );

        let hs = JwtCheck::compile(&spec(JwtAlgorithm::Hs256, "shared"))
            .unwrap_or_else(|e| panic!("{e}"));
        let key = EncodingKey::from_secret(b"shared");
        let other = token(
            JwtAlg::HS256,
            &EncodingKey::from_secret(b"other"),
            good_claims(BODY),
        );
        assert_eq!(
            reason(run(&hs, &other, BODY, NOW)),
            Some(Reason::BadSignature)
        );
        let mut claims = good_claims(BODY);
        claims["iss"] = json!("Someone");
        let wrong_iss = token(JwtAlg::HS256, &key, claims);
        assert_eq!(
            reason(run(&hs, &wrong_iss, BODY, NOW)),
            Some(Reason::BadSignature)
        );
        let mut claims = good_claims(BODY);
        claims.as_object_mut().map(|o| o.remove("payload_hash"));
        let no_hash = token(JwtAlg::HS256, &key, claims);
        assert_eq!(
            reason(run(&hs, &no_hash, BODY, NOW)),
            Some(Reason::BadSignature)
        );
        let mut claims = good_claims(BODY);
        claims["exp"] = json!(NOW - 301);
        claims["iat"] = json!(NOW - 200);
        let expired = token(JwtAlg::HS256, &key, claims);
        assert_eq!(
            reason(run(&hs, &expired, BODY, NOW)),
            Some(Reason::StaleTimestamp)
        );
        assert_eq!(
            reason(run(&hs, "not.a.token", BODY, NOW)),
            Some(Reason::BadSignature)
        );
    }

    #[test]
    fn compile_fails_closed_naming_the_field() {
        let mut s = spec(JwtAlgorithm::Hs256, "k");
        s.secrets.clear();
        assert_eq!(
            JwtCheck::compile(&s).err().map(|e| e.field),
            Some("jwt.secrets".into())
        );
        let bad = spec(
            JwtAlgorithm::Rs256,
            "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n",
        );
        assert_eq!(
            JwtCheck::compile(&bad).err().map(|e| e.field),
            Some("jwt.secrets[0]".into())
        );
    }
}
