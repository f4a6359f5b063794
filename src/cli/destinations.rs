//! `hookgate destinations ...`: an account's destinations and the redrive of deliveries,
//! through the admin API.
//!
//! Owns turning each subcommand into one admin-API call and printing the answer. It must
//! never print a secret except the one the create and rotate answers carry, which the
//! API shows once and which is printed once.

use anyhow::{Context, bail};
use hyper::Method;
use serde_json::{Value, json};

use super::DestinationsCommand as D;
use super::remote::{fetch, json_arg};

/// Encodes one path segment.
fn seg(name: &str) -> String {
    form_urlencoded::byte_serialize(name.as_bytes()).collect()
}

fn path(account: &str, name: Option<&str>) -> String {
    let base = format!("/v1/accounts/{}/destinations", seg(account));
    match name {
        Some(n) => format!("{base}/{}", seg(n)),
        None => base,
    }
}

/// Runs one subcommand.
pub(super) async fn run(cmd: D) -> anyhow::Result<()> {
    let (remote, method, at, body) = match cmd {
        D::Add {
            account,
            name,
            target,
            spec,
            remote,
        } => {
            let mut body = match spec {
                Some(s) => json_arg(&s)?,
                None => json!({}),
            };
            let Some(o) = body.as_object_mut() else {
                bail!("--spec must be a JSON object");
            };
            o.insert("name".into(), name.into());
            o.insert("url".into(), target.into());
            (remote, Method::POST, path(&account, None), Some(body))
        }
        D::List { account, remote } => (remote, Method::GET, path(&account, None), None),
        D::Show {
            account,
            name,
            remote,
        } => (remote, Method::GET, path(&account, Some(&name)), None),
        D::Edit {
            account,
            name,
            patch,
            remote,
        } => (
            remote,
            Method::PATCH,
            path(&account, Some(&name)),
            Some(json_arg(&patch)?),
        ),
        D::Remove {
            account,
            name,
            remote,
        } => (remote, Method::DELETE, path(&account, Some(&name)), None),
        D::Rotate {
            account,
            name,
            overlap_secs,
            remote,
        } => (
            remote,
            Method::POST,
            format!("{}/rotate-secret", path(&account, Some(&name))),
            Some(json!({"overlap_secs": overlap_secs})),
        ),
        D::Redrive {
            account,
            destination,
            status,
            since,
            until,
            remote,
        } => {
            let mut body = json!({"account": account, "destination": destination,
                "since": since, "until": until});
            if !status.is_empty() {
                body["status"] = status.into();
            }
            (
                remote,
                Method::POST,
                "/v1/deliveries/redrive".into(),
                Some(body),
            )
        }
        D::Redeliver { id, remote } => (
            remote,
            Method::POST,
            format!("/v1/deliveries/{}/redeliver", seg(&id)),
            None,
        ),
    };
    let value: Value = fetch(&remote, method, &at, body).await?;
    let text = serde_json::to_string_pretty(&value).context("printing the answer")?;
    super::emit(&format!("{text}\n"))?;
    if value.get("secret").is_some() {
        eprintln!("The signing secret above is shown this once: store it with the receiver now.");
    }
    Ok(())
}
