//! Confirmation with the provider: for providers that sign nothing (MTN MoMo, Pesapal,
//! Airtel Money, Tingg, DPO), the gateway asks the provider's own status API about the
//! transaction a callback names before it accepts the callback. The API may speak JSON or
//! XML (DPO's API3G); an XML answer is read by [`crate::xml`] and judged like JSON.
//!
//! Owns [`Confirmer`] (an account's `confirm`, compiled once: URL, body and header
//! templates over the extracted fields, conditions on the answer, the token cache) and the
//! three outcomes: confirmed (the answer is kept with the audit row), unconfirmed (a forged
//! callback: rejected) and unavailable (the provider could not be asked: the sender gets
//! 503 and retries). The request it builds and the conditions it checks are pure
//! (`request`, `judge`); only [`Confirmer::confirm`] does I/O. It must never let an
//! extracted value choose the host it asks (the scheme and host of the URL are fixed text),
//! never treat "could not ask" as "forged", and never log a credential.

mod certs;
mod keys;
mod oauth;
mod subscribe;

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::Method;
use serde_json::Value;

use crate::account::{ConfirmFormat, ConfirmSpec, SpecError};
use crate::cli::client::HttpClient;
use crate::event::Extracted;
use crate::extract::JsonPath;
use crate::render::{Template, Values};
use crate::secret::Secret;

pub use certs::CertFetcher;
pub use keys::{KeyFetcher, MIN_REFETCH};
pub use oauth::TokenCache;
pub use subscribe::{Subscribed, Subscriber, subscribe_url_allowed};

/// The longest part of the provider's answer kept with the audit row.
pub const MAX_KEPT_ANSWER: usize = 4096;

/// The largest answer read from a status API (the outbound client's cap); a longer one is
/// not read to its end.
pub const MAX_ANSWER_BYTES: usize = crate::cli::client::OUTBOUND_ANSWER_CAP;

/// What the provider's status API said about one callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every condition held; the answer (cut to [`MAX_KEPT_ANSWER`]) is kept.
    Confirmed(String),
    /// The provider answered, and not as the callback claims.
    Unconfirmed(String),
    /// The provider could not be asked, or answered that it could not answer.
    Unavailable(String),
}

/// An account's compiled confirmation.
#[derive(Debug)]
pub struct Confirmer {
    method: Method,
    url: Template,
    format: ConfirmFormat,
    body: Option<Vec<BodyPart>>,
    headers: Vec<(String, Template)>,
    secret_headers: Vec<(String, Secret)>,
    conditions: Vec<(JsonPath, Template, String)>,
    timeout: Duration,
    token: Option<TokenCache>,
    client: HttpClient,
}

/// A piece of the body template: text with placeholders, the callback's raw body, or a
/// credential put in only when the request is sent.
#[derive(Debug)]
enum BodyPart {
    Template(Template),
    RawBody,
    Secret(Secret),
}

/// One condition's failure, said in words.
type Judged = Result<(), String>;

impl Confirmer {
    /// Compiles a spec, naming the field at fault.
    pub fn compile(spec: &ConfirmSpec) -> Result<Self, SpecError> {
        let method = match spec.method.to_ascii_uppercase().as_str() {
            "GET" => Method::GET,
            "POST" => Method::POST,
            _ => return Err(SpecError::new("confirm.method", "must be GET or POST")),
        };
        fixed_host("confirm.url", &spec.url)?;
        let vars = |field: &str, text: &str, escape: Escape| -> Result<String, SpecError> {
            let mut out = text.to_owned();
            while let Some(start) = out.find("{{vars.") {
                let end = out[start..]
                    .find("}}")
                    .map(|e| start + e)
                    .ok_or_else(|| SpecError::new(field, "has a '{{vars.' never closed"))?;
                let name = out[start + 7..end].trim().to_owned();
                let value = spec.vars.get(&name).ok_or_else(|| {
                    SpecError::new(
                        field,
                        format!("names {{{{vars.{name}}}}}, which confirm.vars lacks"),
                    )
                })?;
                out.replace_range(start..end + 2, &escaped(value, escape));
            }
            Ok(out)
        };
        let template_as = |field: &str, text: &str, escape: Escape| {
            Template::parse(&vars(field, text, escape)?)
                .map_err(|e| SpecError::new(field, e.message))
        };
        let template = |field: &str, text: &str| template_as(field, text, Escape::None);
        if spec.conditions.is_empty() {
            return Err(SpecError::new(
                "confirm.conditions",
                "name at least one condition on the answer; without one any answer confirms",
            ));
        }
        let conditions = spec
            .conditions
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let path = JsonPath::compile(&format!("confirm.conditions[{i}].path"), &c.path)?;
                let equals = template(&format!("confirm.conditions[{i}].equals"), &c.equals)?;
                Ok((path, equals, c.path.clone()))
            })
            .collect::<Result<Vec<_>, SpecError>>()?;
        let headers = spec
            .headers
            .iter()
            .map(|(k, v)| Ok((k.clone(), template(&format!("confirm.headers.{k}"), v)?)))
            .collect::<Result<Vec<_>, SpecError>>()?;
        let escape = match spec.format {
            ConfirmFormat::Json => Escape::Json,
            ConfirmFormat::Xml => Escape::Xml,
        };
        let body = spec
            .body
            .as_deref()
            .map(|text| {
                body_parts(text, &spec.secret_vars, |piece| {
                    template_as("confirm.body", piece, escape)
                })
            })
            .transpose()?;
        Ok(Confirmer {
            method,
            url: template_as("confirm.url", &spec.url, Escape::Url)?,
            format: spec.format,
            body,
            headers,
            secret_headers: pairs(&spec.secret_headers),
            conditions,
            timeout: Duration::from_secs(spec.timeout_secs.max(1)),
            token: spec.oauth.as_ref().map(TokenCache::compile).transpose()?,
            client: HttpClient::outbound(),
        })
    }

    /// Asks the provider about one callback. A rejected token is fetched again once.
    pub async fn confirm(&self, extracted: &Extracted, account: &str, raw_body: &[u8]) -> Outcome {
        let (url, _, headers) = self.request(extracted, account, raw_body);
        let sent_body = self.render_body(extracted, account, raw_body, true);
        for attempt in 0..2 {
            let mut all: Vec<(String, String)> = headers.clone();
            if let Some(cache) = &self.token {
                match cache.token(&self.client, self.timeout, attempt > 0).await {
                    Ok(t) => all.push(("authorization".into(), format!("Bearer {t}"))),
                    Err(e) => return Outcome::Unavailable(e),
                }
            }
            let refs: Vec<(&str, &str)> = all
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .chain(
                    self.secret_headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.expose_str())),
                )
                .collect();
            let sent = tokio::time::timeout(
                self.timeout,
                self.client
                    .send(self.method.clone(), &url, &refs, sent_body.clone()),
            )
            .await;
            let answer = match sent {
                Err(_) => {
                    return Outcome::Unavailable(format!(
                        "the status API did not answer within {}s",
                        self.timeout.as_secs()
                    ));
                }
                Ok(Err(e)) => return Outcome::Unavailable(format!("the status API: {e}")),
                Ok(Ok(a)) => a,
            };
            let status = answer.status.as_u16();
            let text = String::from_utf8_lossy(&answer.body).into_owned();
            match status {
                // An expired or revoked token: fetch a new one and ask again, once.
                401 if self.token.is_some() && attempt == 0 => continue,
                200..=299 => return self.judge(&text, extracted, account),
                404 | 400 => {
                    return Outcome::Unconfirmed(format!(
                        "the status API answered {status}: {}",
                        cut(&text)
                    ));
                }
                _ => {
                    return Outcome::Unavailable(format!(
                        "the status API answered {status}: {}",
                        cut(&text)
                    ));
                }
            }
        }
        Outcome::Unavailable("the status API refused a fresh token".into())
    }

    /// The body for one callback; a credential is put in only when `secrets` says so
    /// (the request is being sent), and stands as `[secret]` otherwise.
    fn render_body(
        &self,
        extracted: &Extracted,
        account: &str,
        raw_body: &[u8],
        secrets: bool,
    ) -> String {
        self.body
            .iter()
            .flatten()
            .map(|part| match part {
                BodyPart::Template(t) => render(t, extracted, account, self.escape()),
                BodyPart::RawBody => String::from_utf8_lossy(raw_body).into_owned(),
                BodyPart::Secret(s) if secrets => escaped(s.expose_str(), self.escape()),
                BodyPart::Secret(_) => "[secret]".to_owned(),
            })
            .collect()
    }

    fn escape(&self) -> Escape {
        match self.format {
            ConfirmFormat::Json => Escape::Json,
            ConfirmFormat::Xml => Escape::Xml,
        }
    }

    /// The URL, body and headers for one callback. Values are percent-encoded in the URL
    /// and JSON- or XML-escaped in the body; a credential of the body stands as `[secret]`
    /// (it is put in only by [`confirm`](Self::confirm)).
    pub fn request(
        &self,
        extracted: &Extracted,
        account: &str,
        raw_body: &[u8],
    ) -> (String, String, Vec<(String, String)>) {
        let url = render(&self.url, extracted, account, Escape::Url);
        let body = self.render_body(extracted, account, raw_body, false);
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, t)| (k.clone(), render(t, extracted, account, Escape::None)))
            .collect();
        let media = match self.format {
            ConfirmFormat::Json => "application/json",
            ConfirmFormat::Xml => "application/xml",
        };
        if self.body.is_some() {
            headers.push(("content-type".into(), media.into()));
        }
        headers.push(("accept".into(), media.into()));
        (url, body, headers)
    }

    /// Whether an answer confirms the callback: JSON (or XML, for an XML API), and every
    /// condition holds.
    pub fn judge(&self, answer: &str, extracted: &Extracted, account: &str) -> Outcome {
        let kept = cut(answer);
        let json = match self.format {
            ConfirmFormat::Json => match serde_json::from_str::<Value>(answer) {
                Ok(json) => json,
                Err(_) => {
                    return Outcome::Unavailable(format!(
                        "the status API's answer is not JSON: {kept}"
                    ));
                }
            },
            ConfirmFormat::Xml => match crate::xml::to_json(answer.as_bytes(), MAX_ANSWER_BYTES) {
                Ok(json) => json,
                Err(e) => {
                    return Outcome::Unavailable(format!(
                        "the status API's answer is not readable XML ({e}): {kept}"
                    ));
                }
            },
        };
        let failed: Judged = self.conditions.iter().try_for_each(|(path, equals, text)| {
            let want = render(equals, extracted, account, Escape::None);
            let got = path.text(&json);
            match got {
                Some(g) if g == want => Ok(()),
                other => Err(format!("{text} is {other:?}, not {want:?}")),
            }
        });
        match failed {
            Ok(()) => Outcome::Confirmed(kept),
            Err(why) => Outcome::Unconfirmed(format!("{why}; the answer: {kept}")),
        }
    }
}

/// Renders a template with every extracted value JSON-escaped (`json`) or as it is, for
/// answers built from an event.
pub fn render_escaped(t: &Template, e: &Extracted, account: &str, json: bool) -> String {
    render(
        t,
        e,
        account,
        if json { Escape::Json } else { Escape::None },
    )
}

#[derive(Clone, Copy)]
enum Escape {
    None,
    Url,
    Json,
    Xml,
}

/// Splits a body template at `{{raw_body}}` and `{{secret.NAME}}`; the text between is
/// templated by `template`.
fn body_parts(
    text: &str,
    secrets: &BTreeMap<String, Secret>,
    template: impl Fn(&str) -> Result<Template, SpecError>,
) -> Result<Vec<BodyPart>, SpecError> {
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        let next = [rest.find("{{raw_body}}"), rest.find("{{secret.")]
            .into_iter()
            .flatten()
            .min();
        let Some(at) = next else { break };
        if at > 0 {
            parts.push(BodyPart::Template(template(&rest[..at])?));
        }
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("{{raw_body}}") {
            parts.push(BodyPart::RawBody);
            rest = after;
            continue;
        }
        let end = tail
            .find("}}")
            .ok_or_else(|| SpecError::new("confirm.body", "has a '{{secret.' never closed"))?;
        let name = tail[9..end].trim();
        let secret = secrets.get(name).ok_or_else(|| {
            SpecError::new(
                "confirm.body",
                format!("names {{{{secret.{name}}}}}, which confirm.secret_vars lacks"),
            )
        })?;
        if secret.expose_str().is_empty() {
            return Err(SpecError::new(
                format!("confirm.secret_vars.{name}"),
                "must not be empty",
            ));
        }
        parts.push(BodyPart::Secret(secret.clone()));
        rest = &tail[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(BodyPart::Template(template(rest)?));
    }
    Ok(parts)
}

/// A value escaped for where it goes.
fn escaped(v: &str, escape: Escape) -> String {
    match escape {
        Escape::None => v.to_owned(),
        Escape::Url => form_urlencoded::byte_serialize(v.as_bytes()).collect(),
        Escape::Json => {
            let quoted = Value::String(v.to_owned()).to_string();
            quoted[1..quoted.len() - 1].to_owned()
        }
        Escape::Xml => {
            let mut out = String::with_capacity(v.len());
            for c in v.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '"' => out.push_str("&quot;"),
                    '\'' => out.push_str("&apos;"),
                    // A control character cannot be written in XML 1.0; it is dropped.
                    c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
                    c => out.push(c),
                }
            }
            out
        }
    }
}

/// Renders a template with every extracted value escaped for where it goes.
fn render(t: &Template, e: &Extracted, account: &str, escape: Escape) -> String {
    let esc = |v: &str| escaped(v, escape);
    let params: Value = e
        .params
        .as_deref()
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .map(|v| match v {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| {
                        let text = match v {
                            Value::String(s) => s,
                            Value::Null => return (k, Value::Null),
                            other => other.to_string(),
                        };
                        (k, Value::String(esc(&text)))
                    })
                    .collect(),
            ),
            other => other,
        })
        .unwrap_or(Value::Null);
    let field = |f: &Option<String>| f.as_deref().map(esc);
    let (sender, source, event_type, event_id) = (
        field(&e.sender),
        field(&e.source),
        field(&e.event_type),
        field(&e.event_id),
    );
    t.render(&Values {
        account,
        sender: sender.as_deref(),
        source: source.as_deref(),
        event_type: event_type.as_deref(),
        event_id: event_id.as_deref(),
        params: &params,
    })
}

/// Refuses a URL whose scheme and host are not fixed text before the first placeholder.
fn fixed_host(field: &str, url: &str) -> Result<(), SpecError> {
    let head = url.split("{{").next().unwrap_or("");
    let after_scheme = head
        .strip_prefix("https://")
        .or_else(|| head.strip_prefix("http://"));
    match after_scheme {
        Some(rest) if rest.contains('/') && !rest.starts_with('/') => Ok(()),
        _ => Err(SpecError::new(
            field,
            "must start with http:// or https://, a host and a '/' before any {{placeholder}}, \
             so that a callback cannot choose whom the gateway asks",
        )),
    }
}

fn pairs(map: &BTreeMap<String, Secret>) -> Vec<(String, Secret)> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// At most [`MAX_KEPT_ANSWER`] bytes of `text`, cut at a character boundary.
fn cut(text: &str) -> String {
    let text = crate::excerpt::storable(text);
    if text.len() <= MAX_KEPT_ANSWER {
        return text;
    }
    let mut end = MAX_KEPT_ANSWER;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn confirmer(spec: Value) -> Confirmer {
        let spec: ConfirmSpec = serde_json::from_value(spec).unwrap_or_else(|e| panic!("{e}"));
        Confirmer::compile(&spec).unwrap_or_else(|e| panic!("{e}"))
    }

    fn extracted() -> Extracted {
        Extracted {
            source: Some("ref 1/2".into()),
            params: Some(json!({"status": "SUCCESSFUL", "amount": 100}).to_string()),
            ..Extracted::default()
        }
    }

    #[test]
    fn requests_escape_values_for_where_they_go() {
        let c = confirmer(json!({
            "method": "POST",
            "url": "http://127.0.0.1:1/status/{{source}}?x={{params.status}}",
            "body": "{\"ref\":\"{{source}}\"}",
            "headers": {"X-Env": "sandbox"},
            "conditions": [{"path": "$.status", "equals": "{{params.status}}"}]
        }));
        let (url, body, headers) = c.request(&extracted(), "acct", b"");
        assert_eq!(url, "http://127.0.0.1:1/status/ref+1%2F2?x=SUCCESSFUL");
        assert_eq!(body, r#"{"ref":"ref 1/2"}"#);
        assert!(headers.contains(&("X-Env".into(), "sandbox".into())));
    }

    #[test]
    fn account_vars_and_the_raw_body_go_into_the_request() {
        let c = confirmer(json!({
            "method": "POST",
            "url": "http://127.0.0.1:1/verify/{{vars.site}}",
            "vars": {"site": "a b", "hook": "WH-\"1"},
            "body": "{\"webhook_id\":\"{{vars.hook}}\",\"event\":{{raw_body}}}",
            "conditions": [{"path": "$.ok", "equals": "true"}]
        }));
        let (url, body, _) = c.request(&extracted(), "acct", br#"{"id":"WH-9"}"#);
        assert_eq!(url, "http://127.0.0.1:1/verify/a+b");
        assert_eq!(body, r#"{"webhook_id":"WH-\"1","event":{"id":"WH-9"}}"#);
        let spec: ConfirmSpec = serde_json::from_value(json!({
            "url": "http://h/{{vars.missing}}", "conditions": [{"path": "$.a", "equals": "b"}]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let err = Confirmer::compile(&spec).err().map(|e| e.message);
        assert!(err.is_some_and(|m| m.contains("vars.missing")));
    }

    #[test]
    fn every_condition_must_hold_and_the_answer_is_kept() {
        let c = confirmer(json!({
            "url": "http://127.0.0.1:1/s/{{source}}",
            "conditions": [{"path": "$.status", "equals": "{{params.status}}"},
                           {"path": "$.amount", "equals": "{{params.amount}}"}]
        }));
        let ok = c.judge(
            r#"{"status":"SUCCESSFUL","amount":"100"}"#,
            &extracted(),
            "a",
        );
        assert!(matches!(ok, Outcome::Confirmed(a) if a.contains("SUCCESSFUL")));
        let forged = c.judge(r#"{"status":"FAILED","amount":"100"}"#, &extracted(), "a");
        assert!(matches!(forged, Outcome::Unconfirmed(d) if d.contains("FAILED")));
        let garbled = c.judge("<html>", &extracted(), "a");
        assert!(matches!(garbled, Outcome::Unavailable(_)));
    }

    #[test]
    fn an_xml_api_gets_escaped_values_and_its_credential_only_when_sent() {
        let c = confirmer(json!({
            "method": "POST", "format": "xml",
            "url": "http://127.0.0.1:1/API/v6/",
            "secret_vars": {"company_token": "CT&1"},
            "body": "<API3G><CompanyToken>{{secret.company_token}}</CompanyToken><TransactionToken>{{source}}</TransactionToken></API3G>",
            "conditions": [{"path": "$.API3G.Result", "equals": "000"}]
        }));
        let e = Extracted {
            source: Some("a</TransactionToken><Request>x".into()),
            ..Extracted::default()
        };
        let (_, shown, headers) = c.request(&e, "acct", b"");
        assert_eq!(
            shown,
            "<API3G><CompanyToken>[secret]</CompanyToken><TransactionToken>a&lt;/TransactionToken&gt;&lt;Request&gt;x</TransactionToken></API3G>"
        );
        assert!(headers.contains(&("content-type".into(), "application/xml".into())));
        let sent = c.render_body(&e, "acct", b"", true);
        assert!(
            sent.contains("<CompanyToken>CT&amp;1</CompanyToken>"),
            "{sent}"
        );
        assert!(
            !format!("{c:?}").contains("CT&1"),
            "the credential stays out of Debug"
        );

        let paid = "<?xml version=\"1.0\"?><API3G><Result>000</Result></API3G>";
        assert!(matches!(c.judge(paid, &e, "a"), Outcome::Confirmed(_)));
        let unpaid = "<API3G><Result>900</Result></API3G>";
        assert!(matches!(c.judge(unpaid, &e, "a"), Outcome::Unconfirmed(_)));
        let dtd = "<!DOCTYPE API3G [<!ENTITY r \"000\">]><API3G><Result>&r;</Result></API3G>";
        assert!(matches!(c.judge(dtd, &e, "a"), Outcome::Unavailable(d) if d.contains("DTD")));
        assert!(matches!(
            c.judge(r#"{"API3G":{"Result":"000"}}"#, &e, "a"),
            Outcome::Unavailable(_)
        ));
    }

    #[test]
    fn a_body_naming_a_credential_the_account_lacks_is_refused() {
        for (body, vars) in [
            ("<a>{{secret.nope}}</a>", json!({})),
            ("<a>{{secret.t</a>", json!({"t": "x"})),
            ("<a>{{secret.t}}</a>", json!({"t": ""})),
        ] {
            let spec: ConfirmSpec = serde_json::from_value(json!({
                "url": "http://h/x", "format": "xml", "body": body, "secret_vars": vars,
                "conditions": [{"path": "$.a", "equals": "b"}]
            }))
            .unwrap_or_else(|e| panic!("{e}"));
            assert!(Confirmer::compile(&spec).is_err(), "{body}");
        }
    }

    #[test]
    fn a_url_whose_host_a_callback_could_choose_is_refused() {
        for url in [
            "{{params.host}}/x",
            "https://{{source}}/x",
            "ftp://h/x",
            "https://h{{source}}",
        ] {
            let spec: ConfirmSpec = serde_json::from_value(json!({
                "url": url, "conditions": [{"path": "$.a", "equals": "b"}]
            }))
            .unwrap_or_else(|e| panic!("{e}"));
            let err = Confirmer::compile(&spec).err().map(|e| e.field);
            assert_eq!(err.as_deref(), Some("confirm.url"), "{url}");
        }
        let none: ConfirmSpec =
            serde_json::from_value(json!({"url": "https://h/x", "conditions": []}))
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(Confirmer::compile(&none).is_err());
    }
}
