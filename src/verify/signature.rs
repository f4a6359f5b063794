//! The signature check: where the signature is, its grammar and encoding, what it covers,
//! freshness, and several keys at once.
//!
//! Owns the compiled [`SignatureCheck`]. The grammar lives in `grammar`, the key material
//! and the MAC/signature computation in `keys`. It must never compare a signature in
//! variable time, never stop at the first matching key (the time taken must not say which
//! one matched), and never sign anything but the bytes received.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use hyper::header::HeaderName;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::auth::parse_header_name;
use super::grammar::Layout;
use super::keys::{Inputs, Key};
use super::named_fields::NamedFields;
use super::signed_content::{Part, SignedContent};
use super::signed_fields::SignedFields;
use super::{Rejection, RequestView};
use crate::account::{Algorithm, Encoding, SignatureSpec, SpecError, TimestampFormat};
use crate::event::Reason;
use crate::extract::JsonPath;
use crate::secret::ct_eq;

/// Where a value is read from.
#[derive(Debug)]
enum Source {
    /// A request header.
    Header(HeaderName),
    /// A JSONPath into the body.
    Body(JsonPath),
    /// The timestamp entry of a `kv` signature header.
    SignatureHeader,
}

/// A compiled signature scheme.
#[derive(Debug)]
pub struct SignatureCheck {
    algorithm: Algorithm,
    location: Source,
    layout: Layout,
    encoding: Encoding,
    content: SignedContent,
    timestamp: Option<Source>,
    id: Option<Source>,
    tolerance_secs: u64,
    timestamp_format: TimestampFormat,
    keys: Vec<Key>,
    body_digest_param: Option<String>,
    url_port_variants: bool,
    /// More places of the same kind as `location` that may carry signatures.
    alternatives: Vec<Source>,
    /// For a scheme that signs chosen fields of each item (Adyen): the items and fields;
    /// `location` is then a path inside each item.
    fields: Option<SignedFields>,
    /// For a scheme over fields a header names (Selcom): what `{named_fields}` writes.
    named: Option<NamedFields>,
}

impl SignatureCheck {
    /// Compiles a spec, refusing a scheme that could not be checked.
    pub fn compile(spec: &SignatureSpec) -> Result<Self, SpecError> {
        let location = match (&spec.header, &spec.signature_path) {
            (Some(h), None) => Source::Header(parse_header_name("signature.header", h)?),
            (None, Some(p)) => Source::Body(JsonPath::compile("signature.signature_path", p)?),
            (Some(_), Some(_)) => {
                return Err(SpecError::new(
                    "signature.signature_path",
                    "give either a header or a signature_path, not both",
                ));
            }
            (None, None) => {
                return Err(SpecError::new(
                    "signature.header",
                    "name the header that carries the signature (or a signature_path into the body)",
                ));
            }
        };
        let alternatives = spec
            .alternatives
            .iter()
            .map(|alt| match &location {
                Source::Body(_) => {
                    JsonPath::compile("signature.alternatives", alt).map(Source::Body)
                }
                _ => parse_header_name("signature.alternatives", alt).map(Source::Header),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let layout = Layout::compile(spec)?;
        let content = SignedContent::parse(&spec.signed_content)?;
        let fields = spec
            .signed_fields
            .as_ref()
            .map(SignedFields::compile)
            .transpose()?;
        if fields.is_some() {
            if !matches!(location, Source::Body(_)) {
                return Err(SpecError::new(
                    "signature.signature_path",
                    "signed_fields needs the signature's path inside each item (signature_path)",
                ));
            }
            if content.parts() != [Part::Body]
                || spec.timestamp_header.is_some()
                || spec.timestamp_path.is_some()
                || spec.id_header.is_some()
                || spec.id_path.is_some()
            {
                return Err(SpecError::new(
                    "signature.signed_fields",
                    "with signed_fields the fields are what is signed: leave signed_content, \
                     timestamp and id unset",
                ));
            }
        }
        let named = spec
            .named_fields
            .as_ref()
            .map(NamedFields::compile)
            .transpose()?;
        if named.is_some() != content.uses(&Part::NamedFields) {
            return Err(SpecError::new(
                "signature.named_fields",
                "{named_fields} in signed_content and named_fields go together: give both or \
                 neither",
            ));
        }
        if named.is_some() && fields.is_some() {
            return Err(SpecError::new(
                "signature.named_fields",
                "give either signed_fields or named_fields, not both",
            ));
        }
        let timestamp = source(
            "signature.timestamp",
            spec.timestamp_header.as_deref(),
            spec.timestamp_path.as_deref(),
            layout.carries_timestamp(),
        )?;
        let id = source(
            "signature.id",
            spec.id_header.as_deref(),
            spec.id_path.as_deref(),
            false,
        )?;
        if content.uses(&Part::Timestamp) && timestamp.is_none() {
            return Err(SpecError::new(
                "signature.timestamp_header",
                "signed_content uses {timestamp}, so the header (or timestamp_path, or kv \
                 timestamp_key) that carries it must be named",
            ));
        }
        if content.uses(&Part::Id) && id.is_none() {
            return Err(SpecError::new(
                "signature.id_header",
                "signed_content uses {id}, so the header (or id_path) that carries it must be named",
            ));
        }
        if spec.secrets.is_empty() {
            return Err(SpecError::new(
                "signature.secrets",
                "a signature needs at least one secret (for a preset, give \"secret\")",
            ));
        }
        let keys = spec
            .secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Key::compile(
                    spec.algorithm,
                    s,
                    spec.secret_prefix.as_deref(),
                    spec.secret_encoding,
                    i,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SignatureCheck {
            algorithm: spec.algorithm,
            location,
            layout,
            encoding: spec.encoding,
            content,
            timestamp,
            id,
            tolerance_secs: spec.tolerance_secs,
            timestamp_format: spec.timestamp_format,
            keys,
            body_digest_param: spec.body_digest_param.clone().filter(|p| !p.is_empty()),
            url_port_variants: spec.url_port_variants,
            alternatives,
            fields,
            named,
        })
    }

    /// The signature header, for redaction; `None` when the signature is in the body.
    pub fn header_name(&self) -> Option<&str> {
        match &self.location {
            Source::Header(h) => Some(h.as_str()),
            _ => None,
        }
    }

    /// Every header that may carry a signature, for redaction.
    pub fn header_names(&self) -> impl Iterator<Item = &str> {
        self.locations().filter_map(|s| match s {
            Source::Header(h) => Some(h.as_str()),
            _ => None,
        })
    }

    /// True when a request carries anything where this scheme looks for its signature.
    pub fn is_present(&self, req: &RequestView<'_>) -> bool {
        let json = match &self.location {
            Source::Body(_) => body_fields(req),
            _ => None,
        };
        let scopes: Vec<&Value> = match (&self.fields, &json) {
            (Some(f), Some(j)) => f.items(j).unwrap_or_default(),
            (None, Some(j)) => vec![j],
            (_, None) => Vec::new(),
        };
        self.locations().any(|src| match src {
            Source::Header(h) => req.headers.contains_key(h),
            Source::Body(path) => scopes.iter().any(|j| path.value(j).is_some()),
            Source::SignatureHeader => false,
        })
    }

    /// The SHA-256 of the content this scheme signs in `req`, laid out as the template
    /// says, with the URL as received: the same request always hashes the same, and
    /// anything the signature does not cover does not change it.
    pub fn signed_sha256(&self, req: &RequestView<'_>) -> [u8; 32] {
        if let Some(fields) = &self.fields {
            let content = body_fields(req)
                .map(|j| fields.all_content(&j))
                .unwrap_or_default();
            return Sha256::digest(content).into();
        }
        let json = if self.reads_body() {
            body_fields(req)
        } else {
            None
        };
        let timestamp = self.timestamp.as_ref().and_then(|src| {
            let kv = match src {
                Source::SignatureHeader => self
                    .locations()
                    .find_map(|l| self.read(l, req, json.as_ref(), None))
                    .and_then(|raw| self.layout.split(&raw).timestamp.map(<[u8]>::to_vec)),
                _ => None,
            };
            kv.or_else(|| {
                self.read(src, req, json.as_ref(), None)
                    .map(|c| c.into_owned())
            })
        });
        let id = self
            .id
            .as_ref()
            .and_then(|src| self.read(src, req, json.as_ref(), None))
            .map(|c| c.into_owned());
        let form_params = self.form_params(req).unwrap_or_default();
        let named = self
            .named
            .as_ref()
            .and_then(|n| n.content(req.headers, json.as_ref()).ok())
            .unwrap_or_default();
        let inputs = Inputs {
            body: req.body,
            timestamp: timestamp.as_deref().unwrap_or(b""),
            id: id.as_deref().unwrap_or(b""),
            url: req.url.as_bytes(),
            method: req.method.as_bytes(),
            form_params: &form_params,
            named_fields: &named,
        };
        let mut hash = Sha256::new();
        for part in self.content.parts() {
            hash.update(inputs.part(part));
        }
        hash.finalize().into()
    }

    fn locations(&self) -> impl Iterator<Item = &Source> {
        std::iter::once(&self.location).chain(&self.alternatives)
    }

    /// The first key's bytes, for handshakes that answer with an HMAC (Zoom).
    pub fn first_mac_key(&self) -> Option<&[u8]> {
        self.keys.iter().find_map(|k| match k {
            Key::Mac(_, bytes) => Some(bytes.as_slice()),
            _ => None,
        })
    }

    /// Checks the signature against every key, then the timestamp's freshness.
    pub fn check(&self, req: &RequestView<'_>, now_secs: i64) -> Result<(), Rejection> {
        let bad = |detail: String| Rejection::new(Reason::BadSignature, detail);
        let json = if self.reads_body() {
            match body_fields(req) {
                Some(v) => Some(v),
                None => {
                    return Err(bad(
                        "the body is neither JSON nor a form, so the signature inside it cannot \
                         be read"
                            .into(),
                    ));
                }
            }
        } else {
            None
        };
        if let (Some(fields), Some(json)) = (&self.fields, &json) {
            return self.check_items(fields, json);
        }
        let raws: Vec<Cow<'_, [u8]>> = self
            .locations()
            .filter_map(|src| self.read(src, req, json.as_ref(), None))
            .collect();
        if raws.is_empty() {
            return Err(bad(format!(
                "the signature ({}) is missing",
                self.describe(&self.location)
            )));
        }
        let mut presented = super::grammar::Presented::default();
        for raw in &raws {
            let one = self.layout.split(raw);
            presented.timestamp = presented.timestamp.or(one.timestamp);
            presented.signatures.extend(one.signatures);
        }
        if presented.signatures.is_empty() {
            return Err(bad(format!(
                "the signature ({}) holds no signature in the expected form",
                self.describe(&self.location)
            )));
        }
        let decoded: Vec<Vec<u8>> = presented
            .signatures
            .iter()
            .filter_map(|s| self.decode(s))
            .collect();
        if decoded.is_empty() {
            return Err(bad(format!(
                "the signature ({}) is not valid {}",
                self.describe(&self.location),
                match self.encoding {
                    Encoding::Hex => "hex",
                    Encoding::Base64 => "base64",
                }
            )));
        }
        let timestamp = match &self.timestamp {
            Some(src) => match self.read(src, req, json.as_ref(), presented.timestamp) {
                Some(t) => Some(t),
                None if self.content.uses(&Part::Timestamp) => {
                    return Err(bad(format!(
                        "the signed timestamp ({}) is missing",
                        self.describe(src)
                    )));
                }
                None => None,
            },
            None => None,
        };
        let id = match &self.id {
            Some(src) => match self.read(src, req, json.as_ref(), None) {
                Some(v) => v,
                None => {
                    return Err(bad(format!(
                        "the signed id ({}) is missing",
                        self.describe(src)
                    )));
                }
            },
            None => Cow::Borrowed(&b""[..]),
        };
        let form_params = self.form_params(req)?;
        let named = match &self.named {
            Some(n) => n.content(req.headers, json.as_ref()).map_err(bad)?,
            None => Vec::new(),
        };
        let urls = self.urls(req.url);
        let mut matched = false;
        for url in urls.iter().flatten() {
            let inputs = Inputs {
                body: req.body,
                timestamp: timestamp.as_deref().unwrap_or(b""),
                id: &id,
                url: url.as_bytes(),
                method: req.method.as_bytes(),
                form_params: &form_params,
                named_fields: &named,
            };
            for key in &self.keys {
                matched |= key.verify(&self.content, inputs, &decoded);
            }
        }
        if !matched {
            return Err(bad(format!(
                "the signature does not match the {} under any of the account's {}",
                if self.content.uses(&Part::Body) {
                    "body"
                } else {
                    "signed content"
                },
                if self.algorithm.is_public_key() {
                    "public keys"
                } else {
                    "secrets"
                }
            )));
        }
        if let Some(ts) = timestamp {
            self.check_freshness(&ts, now_secs)?;
        }
        Ok(())
    }

    /// Checks a scheme that signs chosen fields of each item: every item must carry a
    /// signature that matches its own fields under one of the keys.
    fn check_items(&self, fields: &SignedFields, json: &Value) -> Result<(), Rejection> {
        let bad = |detail: String| Rejection::new(Reason::BadSignature, detail);
        let Some(items) = fields.items(json) else {
            return Err(bad("the body holds no items to verify".into()));
        };
        for (i, item) in items.into_iter().enumerate() {
            let decoded: Vec<Vec<u8>> = self
                .locations()
                .filter_map(|src| match src {
                    Source::Body(path) => path.text(item),
                    _ => None,
                })
                .flat_map(|raw| {
                    self.layout
                        .split(raw.as_bytes())
                        .signatures
                        .iter()
                        .filter_map(|s| self.decode(s))
                        .collect::<Vec<_>>()
                })
                .collect();
            if decoded.is_empty() {
                return Err(bad(format!(
                    "item {i} carries no signature in the expected form"
                )));
            }
            let content = fields.content(item);
            let mut matched = false;
            for key in &self.keys {
                matched |= match key {
                    Key::Mac(_, secret) if fields.is_digest() => {
                        fields.digest_matches(&content, secret, &decoded)
                    }
                    _ => key.verify(&self.content, Inputs::body(&content), &decoded),
                };
            }
            if !matched {
                return Err(bad(format!(
                    "item {i}'s signature does not match its signed fields under any of the \
                     account's secrets"
                )));
            }
        }
        Ok(())
    }

    /// The field layout, for a scheme that signs chosen fields of each item.
    pub fn signed_fields(&self) -> Option<&SignedFields> {
        self.fields.as_ref()
    }

    fn reads_body(&self) -> bool {
        self.named.is_some()
            || [
                Some(&self.location),
                self.timestamp.as_ref(),
                self.id.as_ref(),
            ]
            .into_iter()
            .flatten()
            .chain(&self.alternatives)
            .any(|s| matches!(s, Source::Body(_)))
    }

    fn read<'r>(
        &self,
        src: &Source,
        req: &RequestView<'r>,
        json: Option<&Value>,
        kv_timestamp: Option<&'r [u8]>,
    ) -> Option<Cow<'r, [u8]>> {
        match src {
            Source::Header(h) => req.headers.get(h).map(|v| Cow::Borrowed(v.as_bytes())),
            Source::Body(path) => json
                .and_then(|j| path.text(j))
                .map(|s| Cow::Owned(s.into_bytes())),
            Source::SignatureHeader => kv_timestamp.map(Cow::Borrowed),
        }
    }

    fn describe(&self, src: &Source) -> String {
        match src {
            Source::Header(h) => format!("header {h}"),
            Source::Body(_) => "a field of the body".to_owned(),
            Source::SignatureHeader => "in the signature header".to_owned(),
        }
    }

    fn decode(&self, text: &[u8]) -> Option<Vec<u8>> {
        match self.encoding {
            Encoding::Hex => hex::decode(text).ok(),
            Encoding::Base64 => STANDARD
                .decode(text)
                .or_else(|_| STANDARD_NO_PAD.decode(text))
                .or_else(|_| URL_SAFE.decode(text))
                .or_else(|_| URL_SAFE_NO_PAD.decode(text))
                .ok(),
        }
    }

    /// `{form_params}`, after checking the body digest where the scheme has one.
    fn form_params(&self, req: &RequestView<'_>) -> Result<Vec<u8>, Rejection> {
        if let Some(param) = &self.body_digest_param {
            let claimed = req.query.and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == param.as_str())
                    .map(|(_, v)| v.into_owned())
            });
            if let Some(claimed) = claimed {
                let actual = Sha256::digest(req.body);
                let ok = hex::decode(claimed.trim()).is_ok_and(|c| ct_eq(&c, &actual));
                if !ok {
                    return Err(Rejection::new(
                        Reason::BadSignature,
                        format!("the body's SHA-256 does not match the URL's {param}"),
                    ));
                }
                return Ok(Vec::new());
            }
        }
        if !self.content.uses(&Part::FormParams) {
            return Ok(Vec::new());
        }
        Ok(sorted_form_params(req.body))
    }

    /// The URLs to try for `{url}`: as given, or without and with the default port. No
    /// allocation in the common case (one URL, as given).
    fn urls<'u>(&self, url: &'u str) -> [Option<Cow<'u, str>>; 2] {
        if !self.url_port_variants || !self.content.uses(&Part::Url) {
            return [Some(Cow::Borrowed(url)), None];
        }
        let (bare, with_port) = (without_port(url), with_default_port(url));
        if bare == with_port {
            [Some(bare), None]
        } else {
            [Some(bare), Some(with_port)]
        }
    }

    fn check_freshness(&self, ts: &[u8], now_secs: i64) -> Result<(), Rejection> {
        if self.tolerance_secs == 0 {
            return Ok(());
        }
        let stale = |detail: String| Rejection::new(Reason::StaleTimestamp, detail);
        let sent = match self.timestamp_format {
            // Declared milliseconds are milliseconds, however small the number.
            TimestampFormat::UnixMs => std::str::from_utf8(ts)
                .ok()
                .and_then(|t| t.trim().parse::<i64>().ok())
                .map(|ms| ms.div_euclid(1000))
                .or_else(|| parse_timestamp(ts)),
            TimestampFormat::Unix | TimestampFormat::Rfc3339 => parse_timestamp(ts),
        };
        let Some(sent) = sent else {
            return Err(stale(format!(
                "the timestamp {:?} is neither Unix seconds, milliseconds nor RFC 3339",
                String::from_utf8_lossy(ts)
            )));
        };
        let skew = now_secs.saturating_sub(sent);
        if skew.unsigned_abs() > self.tolerance_secs {
            return Err(stale(format!(
                "the timestamp is {}s {} now; the tolerance is {}s",
                skew.unsigned_abs(),
                if skew >= 0 { "before" } else { "after" },
                self.tolerance_secs
            )));
        }
        Ok(())
    }
}

/// The body's fields, for a signature, timestamp or id inside it: JSON, or a form
/// (urlencoded or multipart) as its content type says; `None` when it is none of them.
fn body_fields(req: &RequestView<'_>) -> Option<Value> {
    let content_type = req
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    crate::payload::decode_unverified(req.body, content_type)
        .ok()
        .filter(|v| !v.is_null())
}

fn source(
    field: &str,
    header: Option<&str>,
    path: Option<&str>,
    from_signature_header: bool,
) -> Result<Option<Source>, SpecError> {
    match (header, path) {
        (Some(_), Some(_)) => Err(SpecError::new(
            format!("{field}_path"),
            "give either a header or a path into the body, not both",
        )),
        (Some(h), None) => Ok(Some(Source::Header(parse_header_name(
            &format!("{field}_header"),
            h,
        )?))),
        (None, Some(p)) => Ok(Some(Source::Body(JsonPath::compile(
            &format!("{field}_path"),
            p,
        )?))),
        (None, None) => Ok(from_signature_header.then_some(Source::SignatureHeader)),
    }
}

/// Every form parameter's name followed by its value, sorted by name then value.
/// A value repeated under one name counts once, as Twilio's SDKs sign it (they sign each
/// name's set of values).
pub fn sorted_form_params(body: &[u8]) -> Vec<u8> {
    let mut pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> = form_urlencoded::parse(body).collect();
    pairs.sort();
    pairs.dedup();
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// Splits `scheme://authority` from the rest; `None` when the URL has no authority.
fn authority(url: &str) -> Option<(&str, &str, &str)> {
    let scheme_end = url.find("://")?;
    let start = scheme_end + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    Some((&url[..scheme_end], &url[start..end], &url[end..]))
}

/// The authority's host and its explicit port, if any.
fn host_port(authority: &str) -> (&str, Option<&str>) {
    match authority.rfind(':') {
        Some(i)
            if !authority[i + 1..].is_empty()
                && authority[i + 1..].bytes().all(|b| b.is_ascii_digit())
                && !authority[i..].contains(']') =>
        {
            (&authority[..i], Some(&authority[i + 1..]))
        }
        _ => (authority, None),
    }
}

/// The URL without an explicit port.
pub fn without_port(url: &str) -> Cow<'_, str> {
    match authority(url) {
        Some((scheme, auth, rest)) => match host_port(auth) {
            (host, Some(_)) => Cow::Owned(format!("{scheme}://{host}{rest}")),
            _ => Cow::Borrowed(url),
        },
        None => Cow::Borrowed(url),
    }
}

/// The URL with the scheme's default port made explicit (443 for https, 80 for http).
pub fn with_default_port(url: &str) -> Cow<'_, str> {
    let Some((scheme, auth, rest)) = authority(url) else {
        return Cow::Borrowed(url);
    };
    if host_port(auth).1.is_some() {
        return Cow::Borrowed(url);
    }
    let port = match scheme.to_ascii_lowercase().as_str() {
        "https" => 443,
        "http" => 80,
        _ => return Cow::Borrowed(url),
    };
    Cow::Owned(format!("{scheme}://{auth}:{port}{rest}"))
}

/// Reads a timestamp as Unix seconds, Unix milliseconds (13 digits or more) or RFC 3339.
pub fn parse_timestamp(ts: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(ts).ok()?.trim();
    if let Ok(n) = text.parse::<i64>() {
        return Some(if n.unsigned_abs() >= 100_000_000_000 {
            n / 1000
        } else {
            n
        });
    }
    // An ISO 8601 time without an offset (Orb's X-Orb-Timestamp) is UTC.
    crate::clock::parse_time(text)
        .or_else(|| crate::clock::parse_time(&format!("{text}Z")))
        .map(|micros| micros / 1_000_000)
}

#[cfg(test)]
#[path = "signature_tests.rs"]
mod tests;
