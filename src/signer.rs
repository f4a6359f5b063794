//! Signing a request the way a provider would, for `hookgate sign`: so a user can try an
//! account before pointing the real provider at it.
//!
//! Owns [`sign_request`]: from an account spec built from a preset (or a custom scheme),
//! the user's key, a body, a URL and a time, the headers (and, for senders that sign
//! inside the payload, the body) the provider would send. Pure: time and ids are passed
//! in. It must never be used to verify; verification has its own code in `verify`, and
//! tests check each against the other and both against the providers' published vectors.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::account::{
    AccountSpec, Algorithm, AuthSpec, Encoding, JwtAlgorithm, JwtSpec, SignatureSpec,
    TimestampFormat,
};
use crate::verify::{Inputs, Layout, Part, SignedContent, decode_secret, sign, sorted_form_params};

/// What to sign.
#[derive(Debug, Clone, Copy)]
pub struct SignInput<'a> {
    /// The account spec (from a preset with the secret placed).
    pub spec: &'a AccountSpec,
    /// The key as the user typed it: the shared secret, or for a public-key scheme the
    /// private key (Ed25519: the 32-byte seed; P-256: PKCS#8 DER or the 32-byte scalar),
    /// in the scheme's secret encoding.
    pub key: &'a str,
    /// The body.
    pub body: &'a [u8],
    /// The URL the request goes to, with any query.
    pub url: &'a str,
    /// The time to claim, Unix seconds.
    pub now_secs: i64,
    /// The delivery id to claim.
    pub id: &'a str,
}

/// A signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The URL to send to (a body digest may have been added to its query).
    pub url: String,
    /// The headers to send, in order.
    pub headers: Vec<(String, String)>,
    /// The body to send.
    pub body: Vec<u8>,
    /// For a public-key scheme: the public key to configure on the account.
    pub public_key: Option<String>,
}

/// Why a request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SignError(pub String);

/// Signs one request.
pub fn sign_request(input: SignInput<'_>) -> Result<Signed, SignError> {
    let spec = input.spec;
    let mut signed = Signed {
        url: input.url.to_owned(),
        headers: Vec::new(),
        body: input.body.to_vec(),
        public_key: None,
    };
    let looks_json = matches!(input.body.trim_ascii_start().first(), Some(b'{' | b'['));
    // An XML body (DPO's push) is sent as XML.
    let looks_xml = input.body.trim_ascii_start().first() == Some(&b'<');
    signed.headers.push((
        "Content-Type".into(),
        if looks_json || input.body.is_empty() {
            "application/json"
        } else if looks_xml {
            "application/xml"
        } else {
            "application/x-www-form-urlencoded"
        }
        .into(),
    ));
    match &spec.auth {
        AuthSpec::None => {}
        AuthSpec::ApiKey { header, .. } => signed.headers.push((header.clone(), input.key.into())),
        AuthSpec::Bearer { .. } => signed
            .headers
            .push(("Authorization".into(), format!("Bearer {}", input.key))),
        AuthSpec::PathToken { .. } => {
            // The token is the last segment of the path, before any query.
            signed.url = match input.url.split_once('?') {
                Some((base, query)) => {
                    format!("{}/{}?{query}", base.trim_end_matches('/'), input.key)
                }
                None => format!("{}/{}", input.url.trim_end_matches('/'), input.key),
            };
        }
        AuthSpec::Basic { username, .. } => signed.headers.push((
            "Authorization".into(),
            format!(
                "Basic {}",
                STANDARD.encode(format!("{username}:{}", input.key))
            ),
        )),
        AuthSpec::Query { param, .. } => {
            let pair: String = form_urlencoded::Serializer::new(String::new())
                .append_pair(param, input.key)
                .finish();
            let sep = if signed.url.contains('?') { '&' } else { '?' };
            signed.url = format!("{}{sep}{pair}", signed.url);
        }
    }
    if let Some(path) = spec
        .paths
        .event_id
        .as_deref()
        .and_then(|p| p.strip_prefix("header:"))
    {
        signed
            .headers
            .push((path.trim().to_owned(), input.id.to_owned()));
    }
    if spec.sns.is_some() {
        return Err(SignError(
            "AWS SNS signs with Amazon's own key and certificate, which hookgate cannot sign \
             with: publish to the topic (aws sns publish) to try the account"
                .into(),
        ));
    }
    if let Some(sig) = &spec.signature {
        sign_signature(sig, input, looks_json, &mut signed)?;
    }
    if let Some(jwt) = &spec.jwt {
        let token = sign_jwt(jwt, input)?;
        let value = format!("{}{token}", jwt.prefix.as_deref().unwrap_or(""));
        signed.headers.push((jwt.header.clone(), value));
    }
    Ok(signed)
}

/// A token as the provider makes it: issued now, valid five minutes, the delivery id as
/// `jti`, and the body's hex SHA-256 in the scheme's claim. The key is the shared secret
/// (HS256) or the private key as PEM (ES256: PKCS#8; RS256: PKCS#1 or PKCS#8).
fn sign_jwt(jwt: &JwtSpec, input: SignInput<'_>) -> Result<String, SignError> {
    use jsonwebtoken::{EncodingKey, Header};
    let mut claims = serde_json::Map::new();
    claims.insert("iat".into(), input.now_secs.into());
    claims.insert("exp".into(), (input.now_secs + 300).into());
    claims.insert("jti".into(), input.id.into());
    if let Some(claim) = &jwt.body_hash_claim {
        claims.insert(
            claim.clone(),
            hex::encode(Sha256::digest(input.body)).into(),
        );
    }
    if let Some(iss) = &jwt.issuer {
        claims.insert("iss".into(), iss.clone().into());
    }
    if let Some(aud) = &jwt.audience {
        claims.insert("aud".into(), aud.clone().into());
    }
    for (name, value) in &jwt.claims {
        // "true" is written as the boolean providers send (Google's email_verified).
        let v = match value.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(value.clone()),
        };
        claims.insert(name.clone(), v);
    }
    let bad_key = |e: jsonwebtoken::errors::Error| SignError(format!("the key cannot sign: {e}"));
    let (alg, key) = match jwt.algorithm {
        JwtAlgorithm::Hs256 => (
            jsonwebtoken::Algorithm::HS256,
            EncodingKey::from_secret(input.key.as_bytes()),
        ),
        JwtAlgorithm::Es256 => (
            jsonwebtoken::Algorithm::ES256,
            EncodingKey::from_ec_pem(input.key.as_bytes()).map_err(bad_key)?,
        ),
        JwtAlgorithm::Rs256 => (
            jsonwebtoken::Algorithm::RS256,
            EncodingKey::from_rsa_pem(input.key.as_bytes()).map_err(bad_key)?,
        ),
    };
    jsonwebtoken::encode(&Header::new(alg), &claims, &key).map_err(bad_key)
}

fn sign_signature(
    sig: &SignatureSpec,
    input: SignInput<'_>,
    looks_json: bool,
    signed: &mut Signed,
) -> Result<(), SignError> {
    let content =
        SignedContent::parse(&sig.signed_content).map_err(|e| SignError(e.to_string()))?;
    if let Some(fields) = &sig.signed_fields {
        return sign_items(sig, fields, &content, input, signed);
    }
    let timestamp = match sig.timestamp_format {
        TimestampFormat::Unix => input.now_secs.to_string(),
        TimestampFormat::UnixMs => (input.now_secs * 1000).to_string(),
        TimestampFormat::Rfc3339 => {
            let micros = input.now_secs.saturating_mul(1_000_000);
            let text = crate::clock::format_micros(micros);
            // Whole seconds, as senders write them: 2026-11-21T10:00:00Z.
            match text.split_once('.') {
                Some((head, _)) => format!("{head}Z"),
                None => text,
            }
        }
    };
    // Twilio's JSON variant: the body's digest goes into the URL, and no form parameters.
    let mut form_params = Vec::new();
    match &sig.body_digest_param {
        Some(param) if looks_json => {
            let digest = hex::encode(Sha256::digest(input.body));
            let sep = if signed.url.contains('?') { '&' } else { '?' };
            signed.url = format!("{}{sep}{param}={digest}", signed.url);
        }
        _ if content.uses(&Part::FormParams) => form_params = sorted_form_params(input.body),
        _ => {}
    }
    // Senders that sign inside the payload: the timestamp and id go into the body first.
    let mut body_json: Option<Value> = None;
    if sig.timestamp_path.is_some() || sig.id_path.is_some() || sig.signature_path.is_some() {
        let mut v: Value = serde_json::from_slice(input.body).map_err(|e| {
            SignError(format!(
                "this scheme signs inside a JSON body, and the body is not JSON: {e}"
            ))
        })?;
        if let Some(p) = &sig.timestamp_path {
            // Numbers stay numbers (Linear's webhookTimestamp), as senders write them.
            let ts = timestamp
                .parse::<i64>()
                .map_or_else(|_| Value::String(timestamp.clone()), Value::from);
            set_path(&mut v, p, ts)?;
        }
        if let Some(p) = &sig.id_path {
            set_path(&mut v, p, Value::String(input.id.to_owned()))?;
        }
        body_json = Some(v);
    }
    let body_for_mac = match (&body_json, &sig.signature_path) {
        // The signature will be written into the body, so the body cannot be signed.
        (Some(v), None) => serde_json::to_vec(v).map_err(|e| SignError(e.to_string()))?,
        _ => input.body.to_vec(),
    };
    // Selcom's SDKs sign every field of the body and list them in a header.
    let named = match &sig.named_fields {
        Some(spec) => {
            let (list, text) = named_fields(spec, input.body)?;
            signed.headers.push((spec.header.clone(), list));
            text
        }
        None => Vec::new(),
    };
    let url = signed.url.clone();
    let inputs = Inputs {
        body: &body_for_mac,
        timestamp: timestamp.as_bytes(),
        id: input.id.as_bytes(),
        url: url.as_bytes(),
        method: b"POST",
        form_params: &form_params,
        named_fields: &named,
    };
    let raw = mac_or_signature(sig, input.key, &content, inputs, signed)?;
    let encoded = match sig.encoding {
        Encoding::Hex => hex::encode(raw),
        Encoding::Base64 => STANDARD.encode(raw),
    };
    let layout = Layout::compile(sig).map_err(|e| SignError(e.to_string()))?;
    let value = layout.join(&[encoded], &timestamp);
    match (&sig.header, &sig.signature_path) {
        (Some(h), _) => signed.headers.push((h.clone(), value)),
        (None, Some(p)) => {
            let v = body_json.get_or_insert(Value::Null);
            set_path(v, p, Value::String(value))?;
        }
        (None, None) => return Err(SignError("the scheme names no signature header".into())),
    }
    if let Some(h) = &sig.timestamp_header {
        signed.headers.push((h.clone(), timestamp));
    }
    if let Some(h) = &sig.id_header {
        signed.headers.push((h.clone(), input.id.to_owned()));
    }
    signed.body = match body_json {
        Some(v) => serde_json::to_vec(&v).map_err(|e| SignError(e.to_string()))?,
        None => body_for_mac,
    };
    Ok(())
}

/// The list of signed fields and their signed text, as Selcom's SDKs write them: every
/// top-level field of the JSON body, then any required field it lacks (signed empty), each
/// as `{separator}name=value`.
fn named_fields(
    spec: &crate::account::NamedFieldsSpec,
    body: &[u8],
) -> Result<(String, Vec<u8>), SignError> {
    let json: Value = serde_json::from_slice(body).map_err(|e| {
        SignError(format!(
            "this scheme signs fields of a JSON body, and the body is not JSON: {e}"
        ))
    })?;
    let Value::Object(map) = json else {
        return Err(SignError(
            "this scheme signs fields of a JSON object, and the body is not one".into(),
        ));
    };
    let mut names: Vec<String> = map.keys().cloned().collect();
    for r in &spec.required {
        if !names.contains(r) {
            names.push(r.clone());
        }
    }
    let mut text = Vec::new();
    for name in &names {
        text.extend_from_slice(spec.separator.as_bytes());
        text.extend_from_slice(name.as_bytes());
        text.push(b'=');
        match map.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::String(v)) => text.extend_from_slice(v.as_bytes()),
            Some(other) => text.extend_from_slice(other.to_string().as_bytes()),
        }
    }
    Ok((names.join(","), text))
}

/// A scheme over chosen fields of each item (Adyen): every item gets its own signature,
/// written at the signature's path inside it.
fn sign_items(
    sig: &SignatureSpec,
    spec: &crate::account::SignedFieldsSpec,
    content: &SignedContent,
    input: SignInput<'_>,
    signed: &mut Signed,
) -> Result<(), SignError> {
    let fields =
        crate::verify::SignedFields::compile(spec).map_err(|e| SignError(e.to_string()))?;
    let Some(path) = &sig.signature_path else {
        return Err(SignError("the scheme names no signature path".into()));
    };
    let mut body: Value = serde_json::from_slice(input.body).map_err(|e| {
        SignError(format!(
            "this scheme signs fields of a JSON body, and the body is not JSON: {e}"
        ))
    })?;
    let mut values = Vec::new();
    let count = fields.items(&body).map_or(0, |items| items.len());
    if count == 0 {
        return Err(SignError(
            "the body holds no items to sign (the scheme's items path finds no array)".into(),
        ));
    }
    for item in fields.items(&body).unwrap_or_default() {
        let text = fields.content(item);
        let raw = if fields.is_digest() {
            let key = decode_secret(input.key, sig.secret_prefix.as_deref(), sig.secret_encoding)
                .map_err(|e| SignError(format!("the key {e}")))?;
            fields.digest(&text, &key)
        } else {
            mac_or_signature(sig, input.key, content, Inputs::body(&text), signed)?
        };
        values.push(match sig.encoding {
            Encoding::Hex => hex::encode(raw),
            Encoding::Base64 => STANDARD.encode(raw),
        });
    }
    let items_path = spec.items.as_deref();
    let mut targets: Vec<&mut Value> = match items_path {
        None => vec![&mut body],
        Some(p) => {
            let steps = simple_keys(p).ok_or_else(|| {
                SignError(format!(
                    "cannot write into the items at {p}: only member paths"
                ))
            })?;
            let mut node = &mut body;
            for key in &steps {
                node = node
                    .get_mut(key)
                    .ok_or_else(|| SignError(format!("{p} names no member")))?;
            }
            match node {
                Value::Array(list) => list.iter_mut().collect(),
                _ => return Err(SignError(format!("{p} is not an array"))),
            }
        }
    };
    for (target, value) in targets.iter_mut().zip(values) {
        set_path(target, path, Value::String(value))?;
    }
    signed.body = serde_json::to_vec(&body).map_err(|e| SignError(e.to_string()))?;
    Ok(())
}

fn mac_or_signature(
    sig: &SignatureSpec,
    key_text: &str,
    content: &SignedContent,
    inputs: Inputs<'_>,
    signed: &mut Signed,
) -> Result<Vec<u8>, SignError> {
    let key = decode_secret(key_text, sig.secret_prefix.as_deref(), sig.secret_encoding)
        .map_err(|e| SignError(format!("the key {e}")))?;
    let reencode = |bytes: &[u8]| match sig.secret_encoding {
        crate::account::SecretEncoding::Hex => hex::encode(bytes),
        _ => STANDARD.encode(bytes),
    };
    match sig.algorithm {
        Algorithm::HmacSha1 | Algorithm::HmacSha256 | Algorithm::HmacSha512 => {
            Ok(sign(sig.algorithm, &key, content, inputs))
        }
        Algorithm::Ed25519 => {
            let seed: [u8; 32] = key
                .as_slice()
                .try_into()
                .map_err(|_| SignError("an Ed25519 private key (seed) is 32 bytes".into()))?;
            let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
            signed.public_key = Some(reencode(sk.verifying_key().as_bytes()));
            use ed25519_dalek::Signer;
            Ok(sk.sign(&inputs.concat(content)).to_bytes().to_vec())
        }
        Algorithm::EcdsaP256Sha256 => {
            use p256::pkcs8::{DecodePrivateKey, EncodePublicKey};
            let sk = p256::ecdsa::SigningKey::from_pkcs8_der(&key)
                .or_else(|_| p256::ecdsa::SigningKey::from_slice(&key))
                .map_err(|_| {
                    SignError("a P-256 private key is PKCS#8 DER or a 32-byte scalar".into())
                })?;
            let public = sk
                .verifying_key()
                .to_public_key_der()
                .map_err(|e| SignError(e.to_string()))?;
            signed.public_key = Some(reencode(public.as_bytes()));
            use p256::ecdsa::signature::Signer;
            let s: p256::ecdsa::Signature = sk.sign(&inputs.concat(content));
            Ok(s.to_der().as_bytes().to_vec())
        }
    }
}

/// Sets a value at a simple path (`$.a.b` or `$['a-b'].c`), creating objects on the way.
fn set_path(root: &mut Value, path: &str, value: Value) -> Result<(), SignError> {
    let steps = simple_keys(path).ok_or_else(|| {
        SignError(format!(
            "cannot write into the body at {path}: only member paths like $.a.b are supported"
        ))
    })?;
    let mut node = root;
    for (i, key) in steps.iter().enumerate() {
        if !node.is_object() {
            *node = Value::Object(serde_json::Map::new());
        }
        let Value::Object(map) = node else {
            return Err(SignError("unreachable: not an object".into()));
        };
        if i + 1 == steps.len() {
            map.insert(key.clone(), value);
            return Ok(());
        }
        node = map.entry(key.clone()).or_insert(Value::Null);
    }
    Err(SignError(format!("{path} names no member")))
}

fn simple_keys(path: &str) -> Option<Vec<String>> {
    let mut rest = path.strip_prefix('$')?;
    let mut keys = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("['") {
            let end = after.find("']")?;
            keys.push(after[..end].to_owned());
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return None;
            }
            keys.push(after[..end].to_owned());
            rest = &after[end..];
        } else {
            return None;
        }
    }
    (!keys.is_empty()).then_some(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Rules;
    use crate::verify::RequestView;
    use bytes::Bytes;
    use hyper::HeaderMap;
    use hyper::header::{HeaderName, HeaderValue};
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    /// A private key and the public key (in the preset's encoding) to configure.
    fn keys_for(rule: &crate::rules::Rule) -> (String, Option<String>) {
        let sig = rule.account.get("signature");
        let setting = |key: &str| sig.and_then(|s| s.get(key)).and_then(|v| v.as_str());
        if rule.secret_target == crate::rules::SecretTarget::AuthToken {
            return ("a-path-token-0123456789".into(), None);
        }
        if setting("secret_encoding") == Some("base64") {
            let prefix = setting("secret_prefix").unwrap_or("");
            return (format!("{prefix}MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), None);
        }
        match rule.name.as_str() {
            // RFC 8032 section 7.1 TEST 1.
            "discord" => (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60".into(),
                Some("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a".into()),
            ),
            "sendgrid" => (STANDARD.encode([7u8; 32]), None),
            "adyen" => (hex::encode([9u8; 32]).to_uppercase(), None),
            "plaid" => (crate::verify::test_keys::EC_PRIVATE.into(), None),
            "google_pubsub" => (crate::verify::test_keys::RSA_PRIVATE.into(), None),
            _ => ("a-shared-secret".into(), None),
        }
    }

    fn body_for(rule: &str) -> &'static [u8] {
        match rule {
            "twilio" | "twilio_shared_key" => b"From=%2B14155550100&To=%2B14155550199&Body=Hi",
            "mandrill" => b"mandrill_events=%5B%7B%22_id%22%3A%22e1%22%7D%5D",
            "mailgun" => br#"{"event-data":{"id":"ev1","event":"delivered"}}"#,
            "hubspot" | "sendgrid" => br#"[{"eventId":1}]"#,
            "adyen" => br#"{"live":"false","notificationItems":[{"NotificationRequestItem":{"pspReference":"p1","eventCode":"AUTHORISATION","amount":{"value":100,"currency":"EUR"},"success":"true"}},{"NotificationRequestItem":{"pspReference":"p2","eventCode":"CAPTURE","success":"true"}}]}"#,
            _ => br#"{"id":"evt_1","type":"t"}"#,
        }
    }

    #[test]
    fn sns_cannot_be_signed_and_says_why() {
        let rules = Rules::shipped();
        let prepared = rules
            .prepare(json!({"name": "acct", "provider": "aws_sns",
                            "secret": "arn:aws:sns:us-east-1:1:t"}))
            .unwrap_or_else(|e| panic!("{e}"));
        let spec = AccountSpec::from_json(prepared).unwrap_or_else(|e| panic!("{e}"));
        let err = sign_request(SignInput {
            spec: &spec,
            key: "k",
            body: b"{}",
            url: "https://h/hooks/acct",
            now_secs: NOW,
            id: "m",
        })
        .err()
        .map(|e| e.0)
        .unwrap_or_default();
        assert!(err.contains("Amazon's own key"), "{err}");
    }

    #[test]
    fn what_sign_writes_verifies_for_every_shipped_preset() {
        let rules = Rules::shipped();
        for rule in rules.all() {
            // SNS is signed with Amazon's key; sign_request says so (checked below), and the
            // SNS tests sign with a certificate of their own.
            if rule.name == "aws_sns" {
                continue;
            }
            let (private, expected_public) = keys_for(rule);
            let url = "https://hooks.example.com/hooks/acct?x=1";
            // Where the pasted secret is not the signing key (Plaid's API secret, Google's
            // audience), the key is the test key and the secret a value of its own.
            let pasted = match rule.secret_target {
                crate::rules::SecretTarget::RemoteKeysSecret
                | crate::rules::SecretTarget::JwtAudience => "a-pasted-value".to_owned(),
                _ => private.clone(),
            };
            let mut request = json!({"name": "acct", "provider": rule.name, "secret": pasted});
            rule.fill_required_settings(&mut request, "a-required-setting");
            let prepared = rules
                .prepare(request)
                .unwrap_or_else(|e| panic!("{}: {e}", rule.name));
            let spec = AccountSpec::from_json(prepared.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", rule.name));
            let signed = sign_request(SignInput {
                spec: &spec,
                key: &private,
                body: body_for(&rule.name),
                url,
                now_secs: NOW,
                id: "msg_1",
            })
            .unwrap_or_else(|e| panic!("{}: {e}", rule.name));
            // The account is configured with the public key for public-key schemes.
            let mut stored = prepared;
            if let Some(public) = &signed.public_key {
                if let Some(e) = &expected_public {
                    assert_eq!(public, e, "{}", rule.name);
                }
                stored["signature"]["secrets"] = json!([public]);
            }
            // A token whose keys the provider publishes is tried here with the test key's
            // public half configured instead.
            match rule.name.as_str() {
                "plaid" => stored["jwt"]["secrets"] = json!([crate::verify::test_keys::EC_PUBLIC]),
                "google_pubsub" => {
                    stored["jwt"]["secrets"] = json!([crate::verify::test_keys::RSA_PUBLIC]);
                }
                _ => {}
            }
            stored["public_url"] = json!("https://hooks.example.com/hooks/acct");
            let spec =
                AccountSpec::from_json(stored).unwrap_or_else(|e| panic!("{}: {e}", rule.name));
            let account = crate::account::compile(spec, false, 0, 0)
                .unwrap_or_else(|e| panic!("{}: {e}", rule.name));
            let mut headers = HeaderMap::new();
            for (k, v) in &signed.headers {
                let (Ok(k), Ok(v)) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(v),
                ) else {
                    panic!("{}: header {k}: {v}", rule.name);
                };
                headers.append(k, v);
            }
            let body = Bytes::from(signed.body.clone());
            let query = signed.url.split_once('?').map(|(_, q)| q);
            // A path token is the URL's last segment; an allowlisted sender posts from the
            // first address of its list.
            let path_token = signed
                .url
                .split('?')
                .next()
                .and_then(|u| u.rsplit('/').next())
                .filter(|_| account.verifier.uses_path_token());
            let peer = account
                .spec
                .ip_allowlist
                .as_ref()
                .and_then(|l| l.allow.first())
                .and_then(|a| a.parse().ok());
            let verify = |body: &Bytes, now: i64| {
                account
                    .verifier
                    .verify(
                        &RequestView {
                            method: "POST",
                            headers: &headers,
                            query,
                            body,
                            url: &signed.url,
                            origin: crate::verify::Origin { path_token, peer },
                        },
                        now,
                    )
                    .map(|_| ())
            };
            assert_eq!(verify(&body, NOW), Ok(()), "{}: {:?}", rule.name, signed);
            let signs_body =
                account.spec.signature.as_ref().is_some_and(|s| {
                    s.signed_content.contains("{body}") && s.signed_fields.is_none()
                });
            if !signs_body {
                continue;
            }
            let mut tampered = signed.body.clone();
            if let Some(last) = tampered.iter().rposition(|b| b.is_ascii_alphanumeric()) {
                tampered[last] ^= 0x01;
            }
            assert!(
                verify(&Bytes::from(tampered), NOW).is_err(),
                "{}: tampered body verified",
                rule.name
            );
        }
    }

    #[test]
    fn an_xml_body_is_sent_as_xml_with_the_path_token_in_the_url() {
        let rules = Rules::shipped();
        let mut request =
            json!({"name": "acct", "provider": "dpo", "secret": "a-path-token-0123456789"});
        if let Some(rule) = rules.get("dpo") {
            rule.fill_required_settings(&mut request, "a-required-setting");
        }
        let prepared = rules.prepare(request).unwrap_or_else(|e| panic!("{e}"));
        let spec = AccountSpec::from_json(prepared).unwrap_or_else(|e| panic!("{e}"));
        let signed = sign_request(SignInput {
            spec: &spec,
            key: "a-path-token-0123456789",
            body: b"<API3G><Result>000</Result></API3G>",
            url: "https://h/hooks/acct",
            now_secs: NOW,
            id: "m",
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(signed.url, "https://h/hooks/acct/a-path-token-0123456789");
        assert!(
            signed
                .headers
                .contains(&("Content-Type".into(), "application/xml".into()))
        );
    }

    #[test]
    fn set_path_writes_members() {
        let mut v = json!({"a": 1});
        set_path(&mut v, "$.signature.token", json!("t")).unwrap_or_else(|e| panic!("{e}"));
        set_path(&mut v, "$['event-data'].id", json!("x")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            v,
            json!({"a": 1, "signature": {"token": "t"}, "event-data": {"id": "x"}})
        );
        assert!(set_path(&mut v, "$.a[0]", json!(1)).is_err());
    }
}
