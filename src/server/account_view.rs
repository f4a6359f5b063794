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
    if forward.send_to_user && forward.template.is_none() {
        out.push(
            "forward.send_to_user is on but forward.template is not set: there is no message to \
             send, so accepted events are streamed only; set forward.template"
                .to_owned(),
        );
    }
    out
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
