//! `hookgate audit verify` and `audit prune`, and the exit codes an auditor's script reads:
//! 0 the log verifies, 1 it does not, 2 it could not be checked (usage, connection,
//! authorisation, a missing file).
//!
//! Owns telling "the log was tampered with" apart from "the check did not run". It must
//! never report a failed request as a log that does not verify.

use anyhow::Context as _;
use hyper::Method;
use serde_json::Value;

use super::client::{HttpClient, base_url};
use super::remote::{problem_text, token_of};
use super::{AuditCommand, Remote};
use crate::anchor::{HeadFile, PublicKey};
use crate::chain::Hash;
use crate::store::audit::{Expected, KeptHead};

/// Why `audit verify` did not end in "verified".
#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    /// The chains were checked and something is wrong with them (exit code 1).
    #[error("the audit log does not verify: {0}")]
    DoesNotVerify(String),
    /// The chains could not be checked at all (exit code 2); the log may be fine.
    #[error("could not check the audit log (nothing was concluded about it): {0:#}")]
    CouldNotCheck(anyhow::Error),
}

/// The process exit code for a command's error: 1, or for `audit verify` 1 when the log
/// does not verify and 2 when it could not be checked.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<VerifyFailure>() {
        Some(VerifyFailure::CouldNotCheck(_)) => 2,
        _ => 1,
    }
}

/// What an auditor brought to a verification: kept heads and the key to trust.
struct Brought {
    expected: Expected,
    trusted: Option<PublicKey>,
}

/// Reads `--expect-head`, `--expect-changes-head`, `--heads` and `--public-key`; any of them
/// unusable means nothing can be concluded (exit code 2).
fn brought(
    expect_head: Option<&str>,
    expect_changes_head: Option<&str>,
    heads: Option<&std::path::Path>,
    public_key: Option<&str>,
) -> anyhow::Result<Brought> {
    let mut trusted = match public_key {
        Some(k) => Some(PublicKey::from_hex(k).with_context(|| {
            format!("--public-key {k:?} is not an audit public key: give the 64 hex digits of `public_key` from `hookgate audit heads`")
        })?),
        None => None,
    };
    let kept = |text: Option<&str>| -> anyhow::Result<Option<KeptHead>> {
        Ok(match text {
            Some(t) => Some(KeptHead {
                seq: None,
                hash: parse_head(t)?,
            }),
            None => None,
        })
    };
    let mut expected = Expected {
        events: kept(expect_head)?,
        changes: kept(expect_changes_head)?,
    };
    if let Some(path) = heads {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the head file {}", path.display()))?;
        let (key, file) = HeadFile::parse(&text, trusted)
            .with_context(|| format!("the head file {}", path.display()))?;
        trusted = Some(key);
        let head = |log: &str| {
            file.head(log).and_then(|h| {
                h.hash().map(|hash| KeptHead {
                    seq: Some(h.seq),
                    hash,
                })
            })
        };
        expected.events = expected.events.or(head("events"));
        expected.changes = expected.changes.or(head("changes"));
    }
    Ok(Brought { expected, trusted })
}

/// Runs `hookgate audit ...`.
pub(super) async fn audit(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify {
            db,
            expect_head,
            expect_changes_head,
            heads,
            public_key,
            remote,
        } => {
            let brought = match brought(
                expect_head.as_deref(),
                expect_changes_head.as_deref(),
                heads.as_deref(),
                public_key.as_deref(),
            ) {
                Ok(b) => b,
                Err(e) => return Err(VerifyFailure::CouldNotCheck(e).into()),
            };
            let answer = match db {
                Some(path) => offline(&path, brought).await,
                None => online(&remote, brought).await,
            };
            let value = answer.map_err(VerifyFailure::CouldNotCheck)?;
            super::emit(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
            if value["ok"] == true {
                return Ok(());
            }
            Err(VerifyFailure::DoesNotVerify(first_problem(&value)).into())
        }
        AuditCommand::Heads { remote } => {
            let value = super::remote::fetch(&remote, Method::GET, "/v1/audit/heads", None).await?;
            super::emit(&format!("{}\n", serde_json::to_string_pretty(&value)?))
        }
        AuditCommand::Prune { before, remote } => {
            let body = serde_json::json!({"before": before});
            let value =
                super::remote::fetch(&remote, Method::POST, "/v1/audit/prune", Some(body)).await?;
            super::emit(&format!("{}\n", serde_json::to_string_pretty(&value)?))
        }
    }
}

/// Parses `--expect-head`: 64 hex digits, the `head` an earlier verification printed.
fn parse_head(text: &str) -> anyhow::Result<Hash> {
    hex::decode(text.trim())
        .ok()
        .and_then(|b| Hash::try_from(b.as_slice()).ok())
        .with_context(|| {
            format!(
                "--expect-head {text:?} is not a head hash: give the 64 hex digits of a `head` an earlier `hookgate audit verify` printed"
            )
        })
}

/// The key to check signatures with offline: the one the auditor brought, else the one
/// derived from the secret key the database is used with (configured, or its key file).
fn offline_key(
    path: &std::path::Path,
    trusted: Option<PublicKey>,
) -> anyhow::Result<Option<PublicKey>> {
    if trusted.is_some() {
        return Ok(trusted);
    }
    let configured = std::env::var("HOOKGATE_SECRET_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .map(crate::secret::Secret::new);
    let local = if crate::store::postgres_url(path).is_some() && configured.is_none() {
        None
    } else {
        crate::seal::SealKey::existing_audit_key(path, configured.as_ref())?
    };
    Ok(local.map(|k| k.public()))
}

async fn offline(path: &std::path::Path, brought: Brought) -> anyhow::Result<Value> {
    let key = offline_key(path, brought.trusted)?;
    let mut reports = crate::store::verify_database(path, brought.expected)
        .await
        .with_context(|| format!("reading {}", crate::store::shown(path)))?;
    crate::store::anchoring::check(&mut reports, key.as_ref());
    if key.is_none() {
        eprintln_lossy(
            "warning: no audit public key (give --public-key or --heads, or set HOOKGATE_SECRET_KEY): \
             the chains and anchors were checked, the signatures were not",
        );
    }
    let ok = reports.iter().all(|r| r.ok);
    Ok(serde_json::json!({
        "ok": ok,
        "logs": reports,
        "public_key": key.map(|k| k.to_hex()),
        "signatures_checked": key.is_some(),
    }))
}

/// A warning on standard error; a closed standard error loses it, never the command.
fn eprintln_lossy(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{text}");
}

async fn online(remote: &Remote, brought: Brought) -> anyhow::Result<Value> {
    let token = token_of(remote)?;
    let mut query = Vec::new();
    for (name, kept) in [
        ("expect_head", brought.expected.events),
        ("expect_changes_head", brought.expected.changes),
    ] {
        if let Some(k) = kept {
            query.push(format!("{name}={}", hex::encode(k.hash)));
            if let Some(seq) = k.seq {
                query.push(format!("{name}_seq={seq}"));
            }
        }
    }
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    let client = HttpClient::default();
    if let Some(trusted) = brought.trusted {
        // The gateway checks with its own key: it must be the key the auditor trusts.
        let url = format!("{}/v1/audit/heads", base_url(&remote.url));
        let answer = client.admin(Method::GET, &url, token, None).await?;
        let value = answer.json();
        if !answer.status.is_success() {
            anyhow::bail!("{}", problem_text(answer.status, &value));
        }
        let theirs = value["public_key"].as_str().unwrap_or("");
        if theirs != trusted.to_hex() {
            return Ok(
                serde_json::json!({"ok": false, "logs": [], "public_key": theirs,
                "detail": format!("the gateway signs with public key {theirs}, not the key trusted ({})", trusted.to_hex())}),
            );
        }
    }
    let url = format!("{}/v1/audit/verify{query}", base_url(&remote.url));
    let answer = client.admin(Method::GET, &url, token, None).await?;
    let value = answer.json();
    if !answer.status.is_success() || !value["ok"].is_boolean() {
        anyhow::bail!("{}", problem_text(answer.status, &value));
    }
    Ok(value)
}

/// The first broken log in words, for the one-line error.
fn first_problem(value: &Value) -> String {
    let logs = value["logs"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let Some(log) = logs.iter().find(|l| l["ok"] != true) else {
        return value["detail"]
            .as_str()
            .unwrap_or("see the report above")
            .to_owned();
    };
    let name = log["log"].as_str().unwrap_or("a");
    if log["expected_head_found"] == false {
        return format!(
            "the {name} log no longer passes through the expected head (rows after it were removed or rewritten)"
        );
    }
    let problem = log["problem"].as_str().unwrap_or("broken");
    match (log["broken_at"].as_i64(), log["detail"].as_str()) {
        (Some(seq), _) => format!("the {name} log is {problem} at row {seq}"),
        (None, Some(detail)) => format!("the {name} log is {problem}: {detail}"),
        (None, None) => format!("the {name} log is {problem}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_check_and_a_broken_log_have_different_exit_codes() {
        let broken: anyhow::Error = VerifyFailure::DoesNotVerify("x".into()).into();
        let unchecked: anyhow::Error =
            VerifyFailure::CouldNotCheck(anyhow::anyhow!("refused")).into();
        assert_eq!(exit_code(&broken), 1);
        assert_eq!(exit_code(&unchecked), 2);
        assert_eq!(exit_code(&anyhow::anyhow!("other")), 1);
    }

    #[test]
    fn a_malformed_head_is_named_as_such() {
        for bad in ["", "abc", "zz", &"0".repeat(63)] {
            let e = parse_head(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("is not a head hash"), "{bad}: {e}");
        }
        assert!(parse_head(&"ab".repeat(32)).is_ok());
    }

    #[test]
    fn the_first_broken_log_is_described() {
        let v = serde_json::json!({"ok": false, "logs": [
            {"log": "events", "ok": true},
            {"log": "changes", "ok": false, "problem": "edited", "broken_at": 7}]});
        assert_eq!(first_problem(&v), "the changes log is edited at row 7");
    }
}
