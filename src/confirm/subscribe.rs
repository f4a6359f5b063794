//! AWS SNS subscription confirmation: a verified `SubscriptionConfirmation` message names
//! a `SubscribeURL`, and visiting it (a `GET`) confirms the subscription.
//!
//! Owns [`Subscriber`]: which URLs may be visited (https on the same SNS hosts the
//! certificate fetch allows, or the account's own `cert_hosts`; the `ConfirmSubscription`
//! action only) and the visit itself, with a timeout and the outbound client's capped read. `ingest` calls it
//! only after the message's signature and topic verified. It must never visit a URL
//! outside that allowlist, and never read an unbounded answer.

use std::time::Duration;

use hyper::Method;
use serde_json::Value;

use crate::account::SnsSpec;
use crate::cli::client::HttpClient;

/// What visiting a message's `SubscribeURL` came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscribed {
    /// AWS answered 2xx: the subscription is confirmed. The text says so for the row.
    Confirmed(String),
    /// The URL is not one the gateway visits: nothing was sent; the operator decides.
    NotVisited(String),
    /// AWS could not be reached, timed out or refused: the sender should retry.
    Failed(String),
}

/// An SNS account's subscription confirmation.
pub struct Subscriber {
    own_hosts: Vec<String>,
    timeout: Duration,
    client: HttpClient,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber").finish_non_exhaustive()
    }
}

impl Subscriber {
    /// The account's confirmation, or `None` when it leaves confirmation to the operator
    /// (`sns.confirm_subscriptions = false`).
    pub fn compile(spec: &SnsSpec) -> Option<Self> {
        spec.confirm_subscriptions.then(|| Subscriber {
            own_hosts: spec.cert_hosts.clone(),
            timeout: Duration::from_secs(spec.timeout_secs.max(1)),
            client: HttpClient::outbound(),
        })
    }

    /// The `SubscribeURL` of a `SubscriptionConfirmation` message; `None` for any other.
    pub fn subscribe_url(payload: &Value) -> Option<&str> {
        if payload.get("Type").and_then(Value::as_str) != Some("SubscriptionConfirmation") {
            return None;
        }
        payload.get("SubscribeURL").and_then(Value::as_str)
    }

    /// Visits `url` when it is allowed; says what came of it, in text any engine stores
    /// (no NUL).
    pub async fn confirm(&self, url: &str) -> Subscribed {
        let storable = crate::excerpt::storable;
        match self.visit(url).await {
            Subscribed::Confirmed(t) => Subscribed::Confirmed(storable(&t)),
            Subscribed::NotVisited(t) => Subscribed::NotVisited(storable(&t)),
            Subscribed::Failed(t) => Subscribed::Failed(storable(&t)),
        }
    }

    async fn visit(&self, url: &str) -> Subscribed {
        if !subscribe_url_allowed(url, &self.own_hosts) {
            return Subscribed::NotVisited(format!(
                "SubscribeURL {url:?} is not an SNS ConfirmSubscription URL (https://sns.<region>.amazonaws.com/?Action=ConfirmSubscription...); not visited, confirm it by hand if it is genuine"
            ));
        }
        let visit = self.client.send(Method::GET, url, &[], "");
        let answer = match tokio::time::timeout(self.timeout, visit).await {
            Err(_) => {
                return Subscribed::Failed(format!(
                    "SubscribeURL did not answer within {}s",
                    self.timeout.as_secs()
                ));
            }
            Ok(Err(e)) => return Subscribed::Failed(format!("SubscribeURL: {e}")),
            Ok(Ok(answer)) => answer,
        };
        let status = answer.status.as_u16();
        let text = String::from_utf8_lossy(&answer.body);
        if !(200..=299).contains(&status) {
            return Subscribed::Failed(format!(
                "SubscribeURL answered {status}: {}",
                crate::excerpt::of_text(&text, 300)
            ));
        }
        let arn = between(&text, "<SubscriptionArn>", "</SubscriptionArn>")
            .map(|a| format!(" ({a})"))
            .unwrap_or_default();
        Subscribed::Confirmed(format!(
            "subscription confirmed: SubscribeURL answered {status}{arn}"
        ))
    }
}

/// The text between the first `open` and the `close` after it.
fn between<'t>(text: &'t str, open: &str, close: &str) -> Option<&'t str> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(text[start..start + len].trim()).filter(|s| !s.is_empty() && s.len() <= 256)
}

/// Whether a `SubscribeURL` may be visited: https on `sns.<region>.amazonaws.com` (or
/// `.amazonaws.com.cn`), or one of the account's own hosts (http only to a loopback
/// address), with the query asking for `Action=ConfirmSubscription` and nothing after a
/// `#`.
pub fn subscribe_url_allowed(url: &str, own_hosts: &[String]) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let tail = &rest[authority.len()..];
    if authority.contains('@') || tail.contains('#') {
        return false;
    }
    let query = tail.split_once('?').map_or("", |(_, q)| q);
    let confirms = form_urlencoded::parse(query.as_bytes())
        .any(|(k, v)| k == "Action" && v == "ConfirmSubscription");
    if !confirms {
        return false;
    }
    crate::verify::sns_host_allowed(scheme, authority, own_hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sns_confirm_subscription_urls_or_the_accounts_own_hosts_are_visited() {
        let sns = "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:123456789012:MyTopic&Token=2336412f37";
        assert!(subscribe_url_allowed(sns, &[]));
        assert!(subscribe_url_allowed(
            "https://sns.cn-north-1.amazonaws.com.cn/?Action=ConfirmSubscription&Token=x",
            &[]
        ));
        for refused in [
            "http://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=x",
            "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&Token=x",
            "https://sns.us-west-2.amazonaws.com/?Token=x",
            "https://sns.us-west-2.amazonaws.com.evil.example/?Action=ConfirmSubscription",
            "https://evil.example/sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription",
            "https://user@sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription",
            "https://sns..amazonaws.com/?Action=ConfirmSubscription",
            "https://s3.amazonaws.com/?Action=ConfirmSubscription",
            "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription#x",
            "sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription",
        ] {
            assert!(!subscribe_url_allowed(refused, &[]), "{refused}");
        }
        let own = vec!["127.0.0.1:9000".to_owned(), "mirror.example:443".to_owned()];
        assert!(subscribe_url_allowed(
            "http://127.0.0.1:9000/?Action=ConfirmSubscription&Token=x",
            &own
        ));
        assert!(!subscribe_url_allowed(
            "http://mirror.example:443/?Action=ConfirmSubscription",
            &own
        ));
        assert!(subscribe_url_allowed(
            "https://mirror.example:443/?Action=ConfirmSubscription",
            &own
        ));
    }

    #[test]
    fn the_subscription_arn_is_read_from_the_answer() {
        let xml = "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>arn:aws:sns:us-west-2:123456789012:MyTopic:2bcfbf39</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>";
        assert_eq!(
            between(xml, "<SubscriptionArn>", "</SubscriptionArn>"),
            Some("arn:aws:sns:us-west-2:123456789012:MyTopic:2bcfbf39")
        );
        assert_eq!(between("nothing", "<a>", "</a>"), None);
    }
}
