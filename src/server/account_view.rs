//! What the admin API adds to an account's public JSON for the person reading it: the URL
//! to give the sender (with the place a query token goes), and warnings about settings
//! that save but cannot do what they say.
//!
//! Pure: from a spec and the public base URL. It must never put a secret into its output;
//! a query token is shown as the placeholder `<token>`.

use crate::account::{AccountSpec, AuthSpec};

/// The URL the sender is given: `{public_url}/hooks/{name}`, and for an account whose
/// authenticate key is a query parameter, `?{param}=<token>` where the sender adds it.
pub fn webhook_url(public_url: &str, spec: &AccountSpec) -> String {
    let base = format!("{}/hooks/{}", public_url.trim_end_matches('/'), spec.name);
    match &spec.auth {
        AuthSpec::Query { param, .. } => format!(
            "{base}?{}=<token>",
            form_urlencoded::byte_serialize(param.as_bytes()).collect::<String>()
        ),
        _ => base,
    }
}

/// Settings that are saved but cannot take effect as written, one sentence each.
pub fn warnings(spec: &AccountSpec) -> Vec<String> {
    let mut out = Vec::new();
    let forward = &spec.forward;
    if forward.send_to_user && spec.paths.sender.is_none() {
        out.push(
            "forward.send_to_user is on but paths.sender is not set: no chat can be addressed, so \
             accepted events are streamed only and no message is sent; set paths.sender"
                .to_owned(),
        );
    }
    if forward.send_to_user && forward.template.is_none() && forward.templates.is_empty() {
        out.push(
            "forward.send_to_user is on but forward.template is not set: there is no message to \
             send, so accepted events are streamed only; set forward.template"
                .to_owned(),
        );
    }
    if let Some(channel) = forward.channel.filter(|_| !forward.send_to_user) {
        out.push(format!(
            "forward.channel is {:?} but forward.send_to_user is off: no message is sent; \
             switch forward.send_to_user on",
            channel.name()
        ));
    }
    if forward.send_to_user && forward.template.is_none() && !forward.templates.is_empty() {
        let types: Vec<&String> = forward.templates.keys().collect();
        out.push(format!(
            "forward.template (the default) is not set: only events of the types in \
             forward.templates {types:?} are messaged, the rest are streamed only"
        ));
    }
    out
}

/// Why an accepted event of this account was recorded with forward status `skipped`,
/// judged from the account as it is configured now (the row itself keeps no reason).
pub fn skipped_because(
    spec: &AccountSpec,
    event_type: Option<&str>,
    sender: Option<&str>,
) -> String {
    let forward = &spec.forward;
    let types = &forward.event_types;
    let mut why = Vec::new();
    if !types.is_empty() && !event_type.is_some_and(|t| types.iter().any(|x| x == t)) {
        why.push(format!(
            "its event type {} is not among forward.event_types {types:?}, so it was neither streamed nor messaged",
            event_type.map_or("(none extracted)".to_owned(), |t| format!("{t:?}"))
        ));
    } else {
        if !forward.send_to_user {
            why.push("forward.send_to_user is off".to_owned());
        }
        let own = event_type.is_some_and(|t| forward.templates.contains_key(t));
        if forward.template.is_none() && !own {
            why.push(if forward.templates.is_empty() {
                "forward.template is not set".to_owned()
            } else {
                "forward.templates has none for its event type and forward.template (the \
                 default) is not set"
                    .to_owned()
            });
        }
        if sender.is_none() {
            why.push(if spec.paths.sender.is_none() {
                "paths.sender is not set, so there is no chat to address".to_owned()
            } else {
                "paths.sender matched nothing in this event".to_owned()
            });
        }
        if why.is_empty() {
            return "the account's forwarding settings have changed since; it would be messaged now"
                .to_owned();
        }
        why = vec![format!("streamed, not messaged: {}", why.join("; "))];
    }
    format!(
        "{} (judged from the account's current settings)",
        why.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> AccountSpec {
        AccountSpec::from_json(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_query_token_account_shows_where_the_token_goes_and_no_token() {
        let s = spec(
            json!({"name": "q", "auth": {"type": "query", "param": "key", "value": "s3cret-token"}}),
        );
        let url = webhook_url("http://gw:8080/", &s);
        assert_eq!(url, "http://gw:8080/hooks/q?key=<token>");
        let plain = spec(json!({"name": "p", "auth": {"type": "bearer", "token": "t0ken-t0ken"}}));
        assert_eq!(webhook_url("http://gw", &plain), "http://gw/hooks/p");
    }

    #[test]
    fn a_skipped_forward_is_explained() {
        let s = spec(json!({"name": "k", "allow_unverified": true,
                            "forward": {"send_to_user": true, "template": "hi", "event_types": ["paid"]}}));
        let why = skipped_because(&s, Some("refund"), Some("+1"));
        assert!(
            why.contains("\"refund\" is not among forward.event_types"),
            "{why}"
        );
        let why = skipped_because(&s, Some("paid"), None);
        assert!(why.contains("paths.sender is not set"), "{why}");
    }

    #[test]
    fn send_to_user_without_a_sender_path_or_template_is_warned_about() {
        let s = spec(json!({"name": "w", "allow_unverified": true,
                            "forward": {"send_to_user": true, "template": "hi"}}));
        let w = warnings(&s);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("paths.sender"), "{w:?}");
        let ok = spec(
            json!({"name": "w", "allow_unverified": true, "paths": {"sender": "$.to"},
                             "forward": {"send_to_user": true, "template": "hi"}}),
        );
        assert!(warnings(&ok).is_empty());
    }
}
