//! The commands that talk to a running gateway's admin API: `accounts`, `events`,
//! `audit prune`, `tokens` and `changes`.
//!
//! Owns turning each subcommand into admin-API calls at `HOOKGATE_URL` with
//! `HOOKGATE_ADMIN_TOKEN` (or `HOOKGATE_AUDITOR_TOKEN`) and printing the answers. It must
//! never print a token or secret: answers are printed as the API gave them (masked).

use std::io::Write as _;

use anyhow::{Context, bail};
use hyper::Method;
use serde_json::Value;

use super::client::{HttpClient, base_url};
use super::{AccountsCommand, ChangesArgs, EventsCommand, Remote, TokensCommand};

/// Reads inline JSON or `@file`.
pub(super) fn json_arg(arg: &str) -> anyhow::Result<Value> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => arg.to_owned(),
    };
    serde_json::from_str(&text).context("the argument is not valid JSON")
}

/// Calls the admin API and returns the JSON answer of a 2xx; any other answer is an error
/// carrying the status and the problem's detail.
pub(super) async fn fetch(
    remote: &Remote,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let token = token_of(remote)?;
    let url = format!("{}{path}", base_url(&remote.url));
    let answer = HttpClient::default()
        .admin(method, &url, token, body.as_ref())
        .await?;
    let value = answer.json();
    if answer.status.is_success() {
        return Ok(value);
    }
    bail!("{}", problem_text(answer.status, &value))
}

/// A refused answer in one line: the status, the problem's detail and field.
pub(super) fn problem_text(status: hyper::StatusCode, value: &Value) -> String {
    let detail = value.get("detail").and_then(Value::as_str).unwrap_or("");
    let field = value
        .get("field")
        .and_then(Value::as_str)
        .map(|f| format!(" (field {f})"))
        .unwrap_or_default();
    let hint = match status.as_u16() {
        401 => ": check HOOKGATE_ADMIN_TOKEN / HOOKGATE_AUDITOR_TOKEN (or --token)",
        403 => ": this needs an admin token",
        _ => "",
    };
    format!("{status}: {detail}{field}{hint}")
}

/// Calls the admin API and prints the answer.
async fn call(
    remote: &Remote,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<()> {
    let value = fetch(remote, method, path, body).await?;
    super::emit(&format!("{}\n", serde_json::to_string_pretty(&value)?))
}

/// Encodes one path segment (an account or token name typed by a person).
fn seg(name: &str) -> String {
    form_urlencoded::byte_serialize(name.as_bytes()).collect()
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
        A::Listen {
            name,
            off,
            event_types,
            all_types,
            remote,
        } => {
            let mut body = serde_json::json!({"listening": !off});
            if all_types || !event_types.is_empty() {
                body["event_types"] = event_types.into();
            }
            let path = format!("/v1/accounts/{}/listening", seg(&name));
            call(&remote, Method::POST, &path, Some(body)).await
        }
        A::AddSecret {
            name,
            secret,
            remote,
        } => {
            let secret = match secret {
                Some(s) => s,
                None => read_secret_from_stdin()?,
            };
            let path = format!("/v1/accounts/{}/secrets", seg(&name));
            let body = serde_json::json!({"secret": secret});
            call(&remote, Method::POST, &path, Some(body)).await
        }
        A::RetireSecret {
            name,
            index,
            remote,
        } => {
            let path = format!("/v1/accounts/{}/secrets/{index}", seg(&name));
            call(&remote, Method::DELETE, &path, None).await
        }
    }
}

/// Reads a secret from standard input: the first line, without its line ending.
fn read_secret_from_stdin() -> anyhow::Result<String> {
    use std::io::IsTerminal as _;
    if std::io::stdin().is_terminal() {
        eprintln!("paste the new secret and press Enter:");
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the secret from standard input")?;
    let secret = line.trim_end_matches(['\r', '\n']).to_owned();
    if secret.is_empty() {
        bail!(
            "no secret given: pass it on standard input (echo \"$SECRET\" | hookgate accounts add-secret NAME)"
        );
    }
    Ok(secret)
}

/// `hookgate changes`.
pub(super) async fn changes(args: ChangesArgs) -> anyhow::Result<()> {
    let mut q = form_urlencoded::Serializer::new(String::new());
    let limit = args.limit.map(|l| l.to_string());
    for (k, v) in [
        ("account", &args.account),
        ("action", &args.action),
        ("since", &args.since),
        ("until", &args.until),
        ("limit", &limit),
        ("cursor", &args.cursor),
    ] {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let path = format!("/v1/changes?{}", q.finish());
    call(&args.remote, Method::GET, &path, None).await
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
            from_now,
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
            let url = format!("{}/v1/stream?{}", base_url(&remote.url), q.finish());
            let mut out = DataLines {
                pending: Vec::new(),
                out: std::io::stdout(),
                live: !from_now,
            };
            let status = HttpClient::default()
                .download(&url, token, &mut out)
                .await?;
            if !status.is_success() {
                bail!(
                    "{}: the stream was refused",
                    problem_text(status, &Value::Null)
                );
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
                base_url(&remote.url),
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
            match out.flush() {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
                _ => {}
            }
            if !status.is_success() {
                bail!(
                    "{}: the export was refused (see the answer above)",
                    problem_text(status, &Value::Null)
                );
            }
            Ok(())
        }
    }
}

/// Prints the `data:` payload of each Server-Sent Event as one line.
struct DataLines {
    pending: Vec<u8>,
    out: std::io::Stdout,
    /// Whether the replay is over or wanted: until the stream's `: live` comment, which
    /// ends the replay from the log, `--from-now` prints nothing.
    live: bool,
}

impl std::io::Write for DataLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if line.starts_with(b": live") && !self.live {
                self.live = true;
                eprintln!(
                    "# live: printing events as they arrive (earlier ones: `hookgate events list`)"
                );
            }
            if !self.live {
                continue;
            }
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

/// The token to send: the admin token when given, else the auditor token.
pub(super) fn token_of(remote: &Remote) -> anyhow::Result<&str> {
    fn given(t: &Option<String>) -> Option<&str> {
        t.as_deref().filter(|t| !t.trim().is_empty())
    }
    given(&remote.token)
        .or_else(|| given(&remote.auditor_token))
        .ok_or_else(|| {
            anyhow::anyhow!("no token: set HOOKGATE_ADMIN_TOKEN (printed by `hookgate serve` on first start) or HOOKGATE_AUDITOR_TOKEN, or pass --token")
        })
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
