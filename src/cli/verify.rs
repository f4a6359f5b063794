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
use crate::chain::Hash;

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

/// Runs `hookgate audit ...`.
pub(super) async fn audit(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify {
            db,
            expect_head,
            remote,
        } => {
            let expected = match expect_head.as_deref().map(parse_head).transpose() {
                Ok(h) => h,
                Err(e) => return Err(VerifyFailure::CouldNotCheck(e).into()),
            };
            let answer = match db {
                Some(path) => offline(&path, expected).await,
                None => online(&remote, expected).await,
            };
            let value = answer.map_err(VerifyFailure::CouldNotCheck)?;
            super::emit(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
            if value["ok"] == true {
                return Ok(());
            }
            Err(VerifyFailure::DoesNotVerify(first_problem(&value)).into())
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

async fn offline(path: &std::path::Path, expected: Option<Hash>) -> anyhow::Result<Value> {
    let reports = crate::store::verify_database(path, expected)
        .await
        .with_context(|| format!("reading {}", crate::store::shown(path)))?;
    let ok = reports.iter().all(|r| r.ok);
    Ok(serde_json::json!({"ok": ok, "logs": reports}))
}

async fn online(remote: &Remote, expected: Option<Hash>) -> anyhow::Result<Value> {
    let token = token_of(remote)?;
    let query = expected
        .map(|h| format!("?expect_head={}", hex::encode(h)))
        .unwrap_or_default();
    let url = format!("{}/v1/audit/verify{query}", base_url(&remote.url));
    let answer = HttpClient::default()
        .admin(Method::GET, &url, token, None)
        .await?;
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
        return "see the report above".into();
    };
    let name = log["log"].as_str().unwrap_or("a");
    if log["expected_head_found"] == false {
        return format!(
            "the {name} log no longer passes through the expected head (rows after it were removed or rewritten)"
        );
    }
    let problem = log["problem"].as_str().unwrap_or("broken");
    match log["broken_at"].as_i64() {
        Some(seq) => format!("the {name} log is {problem} at row {seq}"),
        None => format!("the {name} log is {problem}"),
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
