//! Test support for the REAL `hookgate` binary: started with `HOOKGATE_*` environment on
//! 127.0.0.1 port 0 (it prints the addresses it bound, which is how a test finds them),
//! killed with SIGKILL or stopped with SIGTERM, and restarted on the same database.
//! It must never pick a fixed port or sleep to synchronise.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::ADMIN_TOKEN;

/// A running `hookgate serve` process.
pub struct Proc {
    /// The child process.
    pub child: Child,
    /// `http://127.0.0.1:PORT` of the public listener.
    pub public: String,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub admin: String,
    stderr: tokio::task::JoinHandle<String>,
}

/// The `hookgate serve` command on `db` with extra `HOOKGATE_*` variables, its output
/// piped.
fn command(db: &Path, extra_env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookgate"));
    cmd.arg("serve");
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOOKGATE_LISTEN", "127.0.0.1:0")
        .env("HOOKGATE_ADMIN_LISTEN", "127.0.0.1:0")
        .env("HOOKGATE_DB", db)
        .env("HOOKGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("HOOKGATE_LOG", "info")
        .envs(extra_env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Starts the binary on `db` with extra `HOOKGATE_*` variables; waits for its banner.
pub async fn start(db: &Path, extra_env: &[(&str, &str)]) -> Proc {
    start_with_stderr(db, extra_env, Stdio::piped()).await
}

/// Starts the binary on `db` with its standard error sent to `stderr` (a closed pipe, a
/// file on a full disk); waits for its banner. The log is read back only when piped.
pub async fn start_with_stderr(db: &Path, extra_env: &[(&str, &str)], stderr: Stdio) -> Proc {
    let mut cmd = command(db, extra_env);
    cmd.stderr(stderr);
    let mut child = cmd.spawn().expect("spawn hookgate");
    let stdout = child.stdout.take().expect("stdout");
    let piped = child.stderr.take();
    let stderr = tokio::spawn(async move {
        let mut all = String::new();
        if let Some(mut piped) = piped {
            let _ = piped.read_to_string(&mut all).await;
        }
        all
    });
    let mut lines = BufReader::new(stdout).lines();
    let (mut public, mut admin) = (None, None);
    let read_banner = async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(rest) = line.split("(listening on ").nth(1) {
                public = Some(format!("http://{}", rest.trim_end_matches(')')));
            }
            if let Some(rest) = line.trim().strip_prefix("admin API: ") {
                admin = Some(
                    rest.trim_end_matches("/v1/")
                        .trim_end_matches('/')
                        .to_owned(),
                );
            }
            if line.trim_start().starts_with("admin token") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_banner)
        .await
        .expect("hookgate printed its banner within 30s");
    // Keep draining stdout so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Proc {
        child,
        public: public.expect("public address printed"),
        admin: admin.expect("admin address printed"),
        stderr,
    }
}

/// Starts the binary on `db` with its standard output already gone (a pipe nobody
/// reads, as a supervisor may leave it); finds its addresses in its log instead.
pub async fn start_with_stdout_gone(db: &Path) -> Proc {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut cmd = command(db, &[]);
    cmd.stdout(Stdio::from(writer));
    let mut child = cmd.spawn().expect("spawn hookgate");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    let find = async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            seen.push_str(&line);
            seen.push('\n');
            if let Some(rest) = line.split("listening: webhooks on ").nth(1)
                && let Some((public, admin)) = rest.split_once(", admin API on ")
            {
                return (
                    format!("http://{public}"),
                    format!("http://{}", admin.trim()),
                );
            }
        }
        panic!("hookgate ended before it logged its addresses:\n{seen}");
    };
    let (public, admin) = tokio::time::timeout(Duration::from_secs(30), find)
        .await
        .expect("hookgate logged its addresses within 30s");
    let stderr = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push_str(&line);
            seen.push('\n');
        }
        seen
    });
    Proc {
        child,
        public,
        admin,
        stderr,
    }
}

impl Proc {
    /// Creates an account through the admin API; asserts 201.
    pub async fn create_account(&self, spec: &serde_json::Value) {
        let a = hookgate::cli::client::HttpClient::default()
            .admin(
                hyper::Method::POST,
                &format!("{}/v1/accounts", self.admin),
                ADMIN_TOKEN,
                Some(spec),
            )
            .await
            .expect("admin reachable");
        assert_eq!(a.status, 201, "{:?}", a.json());
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// SIGKILL, then waits for the exit.
    pub async fn kill9(mut self) -> String {
        self.child.kill().await.expect("SIGKILL");
        self.stderr.await.unwrap_or_default()
    }

    /// Sends SIGTERM without waiting.
    pub fn signal_term(&self) {
        let pid = self.pid().to_string();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        assert!(ok.success());
    }

    /// SIGTERM, then waits up to `deadline` for a clean exit; returns the log output.
    pub async fn term(self, deadline: Duration) -> String {
        self.signal_term();
        self.wait_exit(deadline).await
    }

    /// Waits up to `deadline` for the process to end by itself; returns its exit status
    /// and log output.
    pub async fn wait_end(mut self, deadline: Duration) -> (std::process::ExitStatus, String) {
        let status = tokio::time::timeout(deadline, self.child.wait())
            .await
            .expect("ended within the deadline")
            .expect("wait");
        (status, self.stderr.await.unwrap_or_default())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `deadline` for a clean exit; returns the log output.
    pub async fn wait_exit(mut self, deadline: Duration) -> String {
        let status = tokio::time::timeout(deadline, self.child.wait())
            .await
            .expect("exited within the deadline")
            .expect("wait");
        assert!(status.success(), "clean exit after SIGTERM: {status:?}");
        self.stderr.await.unwrap_or_default()
    }
}
