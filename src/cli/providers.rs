//! `hookgate providers list|show` and `hookgate sign`: the presets, read from the shipped
//! rule files (and an operator's directory), without a running gateway.
//!
//! Owns printing a preset for a person and turning [`crate::signer::sign_request`]'s
//! result into headers and a ready curl command. It must never print the secret it was
//! given to sign with.

use std::fmt::Write as _;

use anyhow::{Context, bail};
use serde_json::json;

use super::{ProvidersCommand, SignArgs};
use crate::account::AccountSpec;
use crate::rules::{self, Rules};
use crate::signer::{SignInput, sign_request};

/// Appends one line to the output buffer.
macro_rules! say {
    ($out:ident) => {
        let _ = writeln!($out);
    };
    ($out:ident, $($arg:tt)*) => {
        let _ = writeln!($out, $($arg)*);
    };
}

/// Runs `hookgate providers ...`.
pub fn run(cmd: ProvidersCommand) -> anyhow::Result<()> {
    let mut out = String::new();
    match cmd {
        ProvidersCommand::List { rules_dir } => {
            let rules = Rules::load(rules_dir.as_deref())?;
            say!(out, "{:<18} {:<26} checks", "name", "title");
            for rule in rules.all() {
                say!(
                    out,
                    "{:<18} {:<26} {}",
                    rule.name,
                    rule.title,
                    rules::checks(rule).join(", ")
                );
            }
            say!(
                out,
                "\n`hookgate providers show NAME` says what a preset needs."
            );
            super::emit(&out)
        }
        ProvidersCommand::Show { name, rules_dir } => {
            let rules = Rules::load(rules_dir.as_deref())?;
            let Some(rule) = rules.get(&name) else {
                bail!("{}", rules.unknown(&name).message);
            };
            let d = rules::describe(rule);
            say!(out, "{} ({})", rule.title, rule.name);
            if let Some(docs) = &rule.docs {
                say!(out, "  docs:    {docs}");
            }
            say!(out, "  origin:  {}", rule.origin);
            say!(out, "  checks:  {}", rules::checks(rule).join(", "));
            let mut example = json!({"name": "my_account", "provider": rule.name, "secret": "..."});
            say!(out, "  settings:");
            for s in d["settings"].as_array().into_iter().flatten() {
                let field = s["field"].as_str().unwrap_or("");
                say!(
                    out,
                    "    {field:<24} {}{}",
                    s["help"].as_str().unwrap_or(""),
                    if s["required"] == true {
                        " (required)"
                    } else {
                        ""
                    }
                );
            }
            rule.fill_required_settings(&mut example, "...");
            say!(out, "  create request: {example}");
            say!(
                out,
                "  defaults (any field given at creation overrides them):"
            );
            let defaults = toml::to_string(&rule.account).unwrap_or_default();
            for line in defaults.lines() {
                say!(out, "    {line}");
            }
            super::emit(&out)
        }
    }
}

/// The account to sign for: its spec, where it receives, and who sends to it.
struct Target {
    spec: AccountSpec,
    url: String,
    title: String,
}

/// Runs `hookgate sign`.
pub async fn sign(args: SignArgs) -> anyhow::Result<()> {
    let rules = Rules::load(args.rules_dir.as_deref())?;
    let target = match &args.account {
        Some(name) => from_gateway(&args, &rules, name).await?,
        None => offline(&args, &rules)?,
    };
    let body = std::fs::read(&args.body)
        .with_context(|| format!("reading the body from {}", args.body.display()))?;
    let now = crate::clock::now_micros() / 1_000_000;
    let id = format!("msg_{}", crate::tokens::random_hex(12));
    let signed = sign_request(SignInput {
        spec: &target.spec,
        key: &args.secret,
        body: &body,
        url: &target.url,
        now_secs: now,
        id: &id,
    })?;
    let mut out = String::new();
    say!(
        out,
        "# What {} would send (signed now, {}):",
        target.title,
        crate::clock::format_micros(now * 1_000_000)
    );
    for (k, v) in &signed.headers {
        say!(out, "{k}: {v}");
    }
    if let Some(public) = &signed.public_key {
        say!(out, "# The account's secret is the public key: {public}");
    }
    say!(out);
    let mut curl = format!("curl -sS -X POST {}", shell_quote(&signed.url));
    for (k, v) in &signed.headers {
        curl.push_str(&format!(" \\\n  -H {}", shell_quote(&format!("{k}: {v}"))));
    }
    if signed.body == body {
        curl.push_str(&format!(
            " \\\n  --data-binary @{}",
            shell_quote(&args.body.display().to_string())
        ));
    } else {
        // The scheme signs inside the body (a timestamp, a token, the signature itself).
        curl.push_str(&format!(
            " \\\n  --data-binary {}",
            shell_quote(&String::from_utf8_lossy(&signed.body))
        ));
    }
    say!(out, "{curl}");
    super::emit(&out)
}

/// Reads the account's scheme and URL from the running gateway (secrets are masked there;
/// the key given on the command line signs).
async fn from_gateway(args: &SignArgs, rules: &Rules, name: &str) -> anyhow::Result<Target> {
    let path = format!(
        "/v1/accounts/{}",
        form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
    );
    let remote = super::Remote {
        url: args.admin_url.clone(),
        token: args.token.clone(),
        auditor_token: None,
    };
    let mut view = super::remote::fetch(&remote, hyper::Method::GET, &path, None).await?;
    let webhook_url = view["webhook_url"].as_str().unwrap_or("").to_owned();
    // The view adds what the gateway knows about the account; the spec is the rest.
    if let Some(obj) = view.as_object_mut() {
        for key in [
            "webhook_url",
            "listening",
            "created_at",
            "updated_at",
            "warnings",
        ] {
            obj.remove(key);
        }
    }
    let spec = AccountSpec::from_json(view).map_err(|e| anyhow::anyhow!("{e}"))?;
    let title = rules
        .get(&spec.provider)
        .map_or_else(|| "the sender".to_owned(), |r| r.title.clone());
    let url = match &args.url {
        Some(u) => u.clone(),
        // The sign-up URL of a query-token account shows where the token goes; signing
        // sends to the account's path.
        None => webhook_url.split('?').next().unwrap_or_default().to_owned(),
    };
    Ok(Target { spec, url, title })
}

/// Builds the account from a preset (or `custom` with `--spec`) without a gateway.
fn offline(args: &SignArgs, rules: &Rules) -> anyhow::Result<Target> {
    let provider = args.provider.as_deref().unwrap_or("custom");
    let (mut request, title) = if provider.eq_ignore_ascii_case("custom") {
        let Some(spec) = &args.spec else {
            bail!(
                "--provider custom needs --spec (the account's JSON, inline or @FILE), or use --account NAME to read it from the gateway"
            );
        };
        (super::remote::json_arg(spec)?, "the sender".to_owned())
    } else {
        let Some(rule) = rules.get(provider) else {
            bail!("{}", rules.unknown(provider).message);
        };
        let mut request = json!({"provider": rule.name});
        rule.fill_required_settings(&mut request, "unused-when-signing");
        (request, rule.title.clone())
    };
    if request.get("name").is_none() {
        request["name"] = "sign".into();
    }
    let has_secrets = request["signature"]["secrets"]
        .as_array()
        .is_some_and(|s| !s.is_empty());
    if request.get("signature").is_some() && !has_secrets || request.get("provider").is_some() {
        request["secret"] = args.secret.clone().into();
    }
    let name = request["name"].as_str().unwrap_or("sign").to_owned();
    let prepared = rules.prepare(request).map_err(|e| anyhow::anyhow!("{e}"))?;
    let spec = AccountSpec::from_json(prepared).map_err(|e| anyhow::anyhow!("{e}"))?;
    let url = match (&args.url, &args.spec) {
        (Some(u), _) => u.clone(),
        (None, Some(_)) => {
            let base = std::env::var("HOOKGATE_PUBLIC_URL")
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "http://127.0.0.1:8080".into());
            format!("{}/hooks/{name}", super::client::base_url(&base))
        }
        (None, None) => bail!(
            "say where the request goes: --account NAME (the account's URL, read from the gateway) or --url http://HOST/hooks/NAME"
        ),
    };
    Ok(Target { spec, url, title })
}

/// Quotes for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
