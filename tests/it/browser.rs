//! Browser support for the console tests: a WebDriver server (ChromeDriver or geckodriver)
//! started on a free port, one headless Chromium or Firefox session with a fresh profile
//! and download directory, and waits for the page to reach a state (polled with a
//! deadline, never slept on).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// How long any wait for the page lasts before the test fails.
const DEADLINE: Duration = Duration::from_secs(15);

/// Which browser a test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Debian's `chromium`, through `chromium-driver`.
    Chromium,
    /// Debian's `firefox-esr`, through geckodriver (`cargo install geckodriver`).
    Firefox,
}

/// A headless browser driven through its WebDriver server; both end when it is dropped.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    /// Which browser it is.
    pub kind: Kind,
    /// Where downloads land.
    pub downloads: PathBuf,
    driver: Child,
    _profile: tempfile::TempDir,
    _downloads: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts ChromeDriver and a Chromium session.
pub async fn launch() -> Browser {
    launch_in(Kind::Chromium).await
}

/// Starts the WebDriver server of `kind` and a session in it.
pub async fn launch_in(kind: Kind) -> Browser {
    let port = free_port();
    let driver = match kind {
        Kind::Chromium => Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver runs (Debian package chromium-driver; .ci/run installs it)"),
        Kind::Firefox => Command::new(geckodriver())
            .args(["--port", &port.to_string(), "--log", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect(
                "geckodriver runs (`cargo install --locked geckodriver`, with Debian's \
                 firefox-esr; .ci/run installs both)",
            ),
    };
    // The driver listens once it is ready: wait for its port to accept.
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < DEADLINE,
            "{kind:?}'s WebDriver never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let profile = tempfile::tempdir().expect("profile dir");
    let downloads = tempfile::tempdir().expect("downloads dir");
    let mut caps = serde_json::Map::new();
    match kind {
        Kind::Chromium => {
            let args = [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--window-size=1100,760",
                &format!("--user-data-dir={}", profile.path().display()),
            ];
            caps.insert(
                "goog:chromeOptions".into(),
                json!({
                    "args": args,
                    "prefs": {
                        "download.default_directory": downloads.path(),
                        "download.prompt_for_download": false,
                    },
                }),
            );
        }
        Kind::Firefox => {
            let mut options = json!({
                "args": ["-headless", "--width=1100", "--height=760"],
                "prefs": {
                    "browser.download.folderList": 2,
                    "browser.download.dir": downloads.path(),
                    "browser.download.useDownloadDir": true,
                    "browser.download.always_ask_before_handling_new_types": false,
                    "browser.helperApps.neverAsk.saveToDisk":
                        "text/csv,application/x-ndjson,application/json,text/plain",
                },
            });
            if let Some(bin) = ["/usr/bin/firefox-esr", "/usr/bin/firefox"]
                .iter()
                .find(|p| std::path::Path::new(p).exists())
            {
                options["binary"] = json!(bin);
            }
            caps.insert("moz:firefoxOptions".into(), options);
        }
    }
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("a {kind:?} session: {e}"));
    Browser {
        client,
        kind,
        downloads: downloads.path().to_path_buf(),
        driver,
        _profile: profile,
        _downloads: downloads,
    }
}

/// geckodriver: `$GECKODRIVER`, else the one `cargo install` puts in `~/.cargo/bin`, else
/// the PATH's.
fn geckodriver() -> PathBuf {
    if let Some(p) = std::env::var_os("GECKODRIVER") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    home.map(|h| h.join("bin/geckodriver"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("geckodriver"))
}

impl Browser {
    /// Ends the session (Chromium exits) and ChromeDriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }

    /// Opens the console and signs in with `token`; waits until the role is shown.
    pub async fn sign_in(&self, base: &str, token: &str, role: &str) {
        self.client.goto(&format!("{base}/")).await.expect("goto");
        self.find("#token")
            .await
            .send_keys(token)
            .await
            .expect("type");
        self.find("#signin-form button[type=submit]")
            .await
            .click()
            .await
            .expect("submit");
        self.wait_text("#who", &format!("({role})")).await;
    }

    /// Goes to a console route (`#/events`) and waits until it is drawn.
    pub async fn route(&self, hash: &str) {
        let view = hash.trim_start_matches("#/");
        let view = view.split(['/', '?']).next().unwrap_or("");
        self.js(
            "document.body.dataset.view = ''; \
             if (location.hash === arguments[0]) window.dispatchEvent(new HashChangeEvent('hashchange')); \
             else location.hash = arguments[0];",
            vec![json!(hash)],
        )
        .await;
        self.wait_js(
            "return document.body.dataset.view === arguments[0]",
            vec![json!(view)],
        )
        .await;
    }

    /// Runs a script in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .expect("script runs")
    }

    /// Waits until a script returns true.
    pub async fn wait_js(&self, script: &str, args: Vec<Value>) {
        let start = Instant::now();
        loop {
            if self.js(script, args.clone()).await == Value::Bool(true) {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "the page never reached: {script} {args:?}\nnotice: {:?}",
                self.js(
                    "return document.getElementById('notice').textContent + ' | ' + document.getElementById('view').textContent.slice(0, 600)",
                    vec![]
                )
                .await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for an element.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(DEADLINE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Waits until an element's text contains `text`; returns the whole text.
    pub async fn wait_text(&self, css: &str, text: &str) -> String {
        self.wait_js(
            "const e = document.querySelector(arguments[0]); return !!e && e.textContent.includes(arguments[1])",
            vec![json!(css), json!(text)],
        )
        .await;
        self.text(css).await
    }

    /// An element's text content.
    pub async fn text(&self, css: &str) -> String {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null",
            vec![json!(css)],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Clicks an element once it exists.
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("click");
    }

    /// Replaces an input's value by typing it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.expect("clear");
        e.send_keys(text).await.expect("type");
    }

    /// Sets a field's value directly (for long text such as a pasted payload) and tells
    /// the page it changed.
    pub async fn paste(&self, css: &str, text: &str) {
        self.find(css).await;
        self.js(
            "const e = document.querySelector(arguments[0]); e.value = arguments[1]; \
             e.dispatchEvent(new Event('input', {bubbles: true}));",
            vec![json!(css), json!(text)],
        )
        .await;
    }

    /// Takes a screenshot of the page and checks that it is a PNG. Chromium's is saved as
    /// `{name}.png` under `target/screenshots/`, or under `docs/console/` when
    /// `HOOKGATE_SCREENSHOTS=docs` asks to refresh the documentation's pictures.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        if self.kind != Kind::Chromium {
            return;
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = if std::env::var("HOOKGATE_SCREENSHOTS").as_deref() == Ok("docs") {
            root.join("docs/console")
        } else {
            root.join("target/screenshots")
        };
        std::fs::create_dir_all(&dir).expect("the screenshots' directory");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// Waits for a finished download whose name ends with `suffix`; returns its bytes.
    /// Finished means no partial file is left beside it: Chromium writes to
    /// `*.crdownload` and renames it; Firefox creates the name empty at once and writes to
    /// `*.part` until it moves that over it. Every export has at least a line, so an empty
    /// file is not finished either.
    pub async fn downloaded(&self, suffix: &str) -> Vec<u8> {
        let start = Instant::now();
        loop {
            let files: Vec<PathBuf> = std::fs::read_dir(&self.downloads)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect();
            let partial = files.iter().any(|p| {
                let name = p.to_string_lossy();
                name.ends_with(".part") || name.ends_with(".crdownload")
            });
            let found = files.iter().find(|p| p.to_string_lossy().ends_with(suffix));
            // An export is never empty, so an empty file is one still being written.
            let complete =
                |p: &&PathBuf| !partial && std::fs::metadata(p).is_ok_and(|m| m.len() > 0);
            if let Some(path) = found.filter(complete) {
                return std::fs::read(path).expect("read download");
            }
            assert!(start.elapsed() < DEADLINE, "no download *{suffix}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
