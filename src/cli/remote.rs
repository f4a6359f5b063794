//! The commands that talk to a running gateway's admin API: `accounts`, `events`,
//! `audit`, `tokens` (and `audit verify --db`, which checks a database file offline).
//!
//! Owns turning each subcommand into admin-API calls at `HOOKGATE_URL` with
//! `HOOKGATE_ADMIN_TOKEN` (or the auditor token) and printing the answers. It must never
//! print a token or secret: answers are printed as the API gave them (masked).

use std::io::Write as _;

use anyhow::{Context, bail};
use hyper::Method;
use serde_json::Value;

use super::client::HttpClient;
use super::{AccountsCommand, AuditCommand, EventsCommand, Remote, TokensCommand};

/// Reads inline JSON or `@file`.
fn json_arg(arg: &str) -> anyhow::Result<Value> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => arg.to_owned(),
    };
    serde_json::from_str(&text).context("the argument is not valid JSON")
}

async fn call(
    remote: &Remote,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<()> {
    let Some(token) = remote.token.as_deref() else {
        bail!(
            "no token: set HOOKGATE_ADMIN_TOKEN (printed by `hookgate serve` on first start) or pass --token"
        );
    };
    let url = format!("{}{path}", remote.url.trim_end_matches('/'));
    let answer = HttpClient::default()
        .admin(method, &url, token, body.as_ref())
        .await?;
    let value = answer.json();
    if answer.status.is_success() {
        super::emit(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
        Ok(())
    } else {
        let detail = value.get("detail").and_then(Value::as_str).unwrap_or("");
        let field = value
            .get("field")
            .and_then(Value::as_str)
            .map(|f| format!(" (field {f})"))
            .unwrap_or_default();
        bail!("{}: {detail}{field}", answer.status)
    }
}

pub(super) async fn accounts(cmd: AccountsCommand) -> anyhow::Result<()> {
    use AccountsCommand as A;
    match cmd {
        A::Create { spec, remote } => {
            call(
                &remote,
                Method::POST,
                "/v1/accounts",
                Some(json_arg(&spec)?),
            )
            .await
        }
        A::List { remote } => call(&remote, Method::GET, "/v1/accounts", None).await,
        A::Show { name, remote } => {
            call(&remote, Method::GET, &format!("/v1/accounts/{name}"), None).await
        }
        A::Update {
            name,
            patch,
            remote,
        } => {
            call(
                &remote,
                Method::PATCH,
                &format!("/v1/accounts/{name}"),
                Some(json_arg(&patch)?),
            )
            .await
        }
        A::Delete { name, remote } => {
            call(
                &remote,
                Method::DELETE,
                &format!("/v1/accounts/{name}"),
                None,
            )
            .await
        }
        A::Activate { name, remote } => {
            call(
                &remote,
                Method::POST,
                &format!("/v1/accounts/{name}/activate"),
                None,
            )
            .await
        }
        A::Deactivate { name, remote } => {
            call(
                &remote,
                Method::POST,
                &format!("/v1/accounts/{name}/deactivate"),
                None,
            )
            .await
        }
        A::Try { name, body, remote } => {
            let request = match body {
                Some(b) => serde_json::json!({"body": json_arg(&b)?}),
                None => serde_json::json!({}),
            };
            call(
                &remote,
                Method::POST,
                &format!("/v1/accounts/{name}/try"),
                Some(request),
            )
            .await
        }
    }
}

pub(super) async fn events(cmd: EventsCommand) -> anyhow::Result<()> {
    match cmd {
        EventsCommand::List { filter, remote } => {
            call(
                &remote,
                Method::GET,
                &format!("/v1/events?{}", filter.query()),
                None,
            )
            .await
        }
        EventsCommand::Show { id, remote } => {
            call(&remote, Method::GET, &format!("/v1/events/{id}"), None).await
        }
        EventsCommand::Redeliver { id, remote } => {
            call(
                &remote,
                Method::POST,
                &format!("/v1/events/{id}/redeliver"),
                None,
            )
            .await
        }
        EventsCommand::Tail {
            account,
            after,
            remote,
        } => {
            let token = token_of(&remote)?;
            let mut q = form_urlencoded::Serializer::new(String::new());
            if let Some(a) = &account {
                q.append_pair("account", a);
            }
            if let Some(a) = after {
                q.append_pair("last_event_id", &a.to_string());
            }
            let url = format!(
                "{}/v1/stream?{}",
                remote.url.trim_end_matches('/'),
                q.finish()
            );
            let mut out = DataLines {
                pending: Vec::new(),
                out: std::io::stdout(),
            };
            let status = HttpClient::default()
                .download(&url, token, &mut out)
                .await?;
            if !status.is_success() {
                bail!("{status}: the stream was refused");
            }
            Ok(())
        }
        EventsCommand::Export {
            format,
            include_body,
            output,
            filter,
            remote,
        } => {
            let token = token_of(&remote)?;
            let url = format!(
                "{}/v1/events/export?format={format}&include_body={include_body}&{}",
                remote.url.trim_end_matches('/'),
                filter.query()
            );
            let mut out: Box<dyn std::io::Write + Send> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            let status = HttpClient::default()
                .download(&url, token, &mut *out)
                .await?;
            out.flush()?;
            if !status.is_success() {
                bail!("{status}: the export was refused (see the answer above)");
            }
            Ok(())
        }
    }
}

/// Prints the `data:` payload of each Server-Sent Event as one line.
struct DataLines {
    pending: Vec<u8>,
    out: std::io::Stdout,
}

impl std::io::Write for DataLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if let Some(data) = line.strip_prefix(b"data: ") {
                let mut out = self.out.lock();
                out.write_all(data)?;
                out.flush()?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn token_of(remote: &Remote) -> anyhow::Result<&str> {
    remote.token.as_deref().ok_or_else(|| {
        anyhow::anyhow!("no token: set HOOKGATE_ADMIN_TOKEN (printed by `hookgate serve` on first start) or pass --token")
    })
}

pub(super) async fn audit(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify {
            db: Some(path),
            expect_head,
            ..
        } => {
            let expected = match &expect_head {
                Some(h) => Some(
                    hex::decode(h.trim())
                        .ok()
                        .and_then(|b| crate::chain::Hash::try_from(b.as_slice()).ok())
                        .context("--expect-head must be 64 hex digits")?,
                ),
                None => None,
            };
            let reports = crate::store::verify_database(&path, expected).await?;
            let ok = reports.iter().all(|r| r.ok);
            super::emit(&format!(
                "{}\n",
                serde_json::to_string_pretty(&serde_json::json!({"ok": ok, "logs": reports}))?
            ))?;
            if !ok {
                bail!(
                    "the audit log of {} does not verify",
                    crate::store::shown(&path)
                );
            }
            Ok(())
        }
        AuditCommand::Verify {
            db: None,
            expect_head,
            remote,
        } => {
            let token = token_of(&remote)?;
            let query = expect_head
                .map(|h| format!("?expect_head={h}"))
                .unwrap_or_default();
            let url = format!(
                "{}/v1/audit/verify{query}",
                remote.url.trim_end_matches('/')
            );
            let answer = HttpClient::default()
                .admin(Method::GET, &url, token, None)
                .await?;
            let value = answer.json();
            super::emit(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
            if !answer.status.is_success() || value["ok"] != true {
                bail!("the audit log does not verify");
            }
            Ok(())
        }
        AuditCommand::Prune { before, remote } => {
            call(
                &remote,
                Method::POST,
                "/v1/audit/prune",
                Some(serde_json::json!({"before": before})),
            )
            .await
        }
    }
}

pub(super) async fn tokens(cmd: TokensCommand) -> anyhow::Result<()> {
    match cmd {
        TokensCommand::Create { name, role, remote } => {
            call(
                &remote,
                Method::POST,
                "/v1/tokens",
                Some(serde_json::json!({"name": name, "role": role})),
            )
            .await
        }
        TokensCommand::List { remote } => call(&remote, Method::GET, "/v1/tokens", None).await,
        TokensCommand::Revoke { name, remote } => {
            call(&remote, Method::DELETE, &format!("/v1/tokens/{name}"), None).await
        }
    }
}
