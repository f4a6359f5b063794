//! `hookgate providers list|show` and `hookgate sign`: the presets, read from the shipped
//! rule files (and an operator's directory), without a running gateway.
//!
//! Owns printing a preset for a person and turning [`crate::signer::sign_request`]'s
//! result into headers and a ready curl command. It must never print the secret it was
//! given to sign with.

use std::fmt::Write as _;

use anyhow::{Context, bail};
use serde_json::{Value, json};

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
                bail!(
                    "there is no provider preset named {name:?}; `hookgate providers list` shows them"
                );
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

/// Runs `hookgate sign`.
pub fn sign(args: SignArgs) -> anyhow::Result<()> {
    let rules = Rules::load(args.rules_dir.as_deref())?;
    let fields: Value = match &args.spec {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the account fields from {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| {
                format!("{} is not a JSON object of account fields", path.display())
            })?
        }
        None if args.provider == "custom" => {
            bail!(
                "a custom account is signed with its scheme: give --spec FILE with its fields (signature, auth, jwt)"
            )
        }
        None => json!({}),
    };
    if args.provider == "custom" {
        return sign_with(&rules, "custom", "Your sender", fields, &args);
    }
    let Some(rule) = rules.get(&args.provider) else {
        bail!(
            "there is no provider preset named {:?}; `hookgate providers list` shows them",
            args.provider
        );
    };
    let mut request = json!({"name": "sign", "provider": rule.name, "secret": args.secret});
    rule.fill_required_settings(&mut request, "unused-when-signing");
    crate::account::merge_patch(&mut request, &fields);
    sign_with(&rules, &rule.name, &rule.title, request, &args)
}

/// Signs `args.body` for the account `request` describes and prints the headers and a curl.
fn sign_with(
    rules: &Rules,
    name: &str,
    title: &str,
    mut request: Value,
    args: &SignArgs,
) -> anyhow::Result<()> {
    let mut out = String::new();
    if name == "custom" {
        request["name"] = json!("sign");
        request["provider"] = json!("custom");
        if request.get("secret").is_none()
            && request.pointer("/signature/secrets").is_none()
            && request.get("signature").is_some()
        {
            request["secret"] = json!(args.secret);
        }
    }
    let body = std::fs::read(&args.body)
        .with_context(|| format!("reading the body from {}", args.body.display()))?;
    let url = args.url.clone().unwrap_or_else(|| {
        let base = std::env::var("HOOKGATE_PUBLIC_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "http://127.0.0.1:8080".into());
        format!("{}/hooks/{}", base.trim_end_matches('/'), name)
    });
    let prepared = rules.prepare(request).map_err(|e| anyhow::anyhow!("{e}"))?;
    let spec = AccountSpec::from_json(prepared).map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = crate::clock::now_micros() / 1_000_000;
    let id = format!("msg_{}", crate::tokens::random_hex(12));
    let signed = sign_request(SignInput {
        spec: &spec,
        key: &args.secret,
        body: &body,
        url: &url,
        now_secs: now,
        id: &id,
    })?;
    say!(
        out,
        "# What {} would send (signed now, {}):",
        title,
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

/// Quotes for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
