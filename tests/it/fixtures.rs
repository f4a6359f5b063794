//! Every provider fixture in `fixtures/<preset>/<case>.toml` through the real HTTP path of
//! a running gateway: the account is made from the preset, the secret and the fixture's
//! extra fields alone; the gateway's clock is set to the time the request claims; the
//! answer, the audit row and the extracted fields must be what the fixture says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hookgate::clock::Clock;
use hookgate::rules::Rules;
use hyper::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::*;

/// One fixture file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    description: String,
    source: String,
    /// What the user pastes into the preset.
    pub secret: String,
    /// The gateway's clock for the request, Unix seconds.
    pub now: i64,
    #[serde(default)]
    method: Option<String>,
    /// The URL the provider called, with its query.
    #[serde(default)]
    pub url: Option<String>,
    /// The secret token after the account's name in the path, for presets reached at
    /// `/hooks/{account}/{token}`.
    #[serde(default)]
    path: Option<String>,
    /// The exact body.
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    account: Option<toml::Table>,
    /// The request headers that matter.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    expect: Expect,
}

impl Fixture {
    /// Reads `fixtures/<preset>/<case>.toml`.
    pub fn load(preset: &str, case: &str) -> Fixture {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(preset)
            .join(format!("{case}.toml"));
        let text = std::fs::read_to_string(&path).expect("fixture readable");
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The create request of an account `name` for `preset`, as the fixture walk makes it:
    /// the secret, the fixture's extra fields, and the fixture's URL (without its query) as
    /// the public URL.
    pub fn spec(&self, preset: &str, name: &str) -> Value {
        let mut spec = json!({"name": name, "provider": preset, "secret": self.secret});
        if let Some(extra) = &self.account {
            hookgate::account::merge_patch(
                &mut spec,
                &serde_json::to_value(extra).unwrap_or_default(),
            );
        }
        if let Some(url) = &self.url {
            spec["public_url"] = json!(split_url(url).0);
        }
        spec
    }

    /// The path and query to send to for account `name`.
    pub fn target(&self, name: &str) -> String {
        let path = match &self.path {
            Some(token) => format!("{name}/{token}"),
            None => name.to_owned(),
        };
        match self.url.as_deref().and_then(|u| split_url(u).1) {
            Some(q) => format!("{path}?{q}"),
            None => path,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    status: u16,
    verdict: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    response: Option<String>,
    #[serde(default)]
    fields: Option<BTreeMap<String, String>>,
}

fn fixture_files() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixtures/ exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let preset = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("fixture dir readable")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        out.extend(files.into_iter().map(|f| (preset.clone(), f)));
    }
    out
}

/// Splits a URL into the account's public URL (no query) and the query.
fn split_url(url: &str) -> (&str, Option<&str>) {
    match url.split_once('?') {
        Some((base, q)) => (base, Some(q)),
        None => (url, None),
    }
}

#[tokio::test]
async fn every_fixture_gets_its_verdict_row_and_fields_over_real_http() {
    let files = fixture_files();
    let clock = Clock::fixed(0);
    let gw = spawn_with_clock(clock.clone()).await;
    let mut failures = Vec::new();
    let mut seen: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, (preset, path)) in files.iter().enumerate() {
        let label = format!("{}", path.display());
        let text = std::fs::read_to_string(path).expect("fixture readable");
        let f: Fixture = toml::from_str(&text).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(
            !f.description.is_empty() && !f.source.is_empty(),
            "{label}: say what the case shows and where its signature came from"
        );
        let name = format!("fx{i}");
        let mut spec = json!({"name": name, "provider": preset, "secret": f.secret});
        if let Some(extra) = &f.account {
            hookgate::account::merge_patch(
                &mut spec,
                &serde_json::to_value(extra).unwrap_or_default(),
            );
        }
        if let Some(url) = &f.url {
            spec["public_url"] = json!(split_url(url).0);
        }
        let created = gw
            .admin_call(Method::POST, "/v1/accounts", Some(spec.clone()))
            .await;
        if created.status != 201 {
            failures.push(format!(
                "{label}: account not created: {:?}",
                created.json()
            ));
            continue;
        }
        clock.set(f.now * 1_000_000);
        let method = f
            .method
            .as_deref()
            .unwrap_or("POST")
            .parse::<Method>()
            .expect("method");
        let headers: Vec<(&str, &str)> = f
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let target = f.target(&name);
        let before = gw.audit_rows();
        let answer = gw
            .send_hook(method, &target, &headers, f.body.clone().into_bytes())
            .await;
        let rows = gw.events(&format!("account={name}&limit=5")).await;
        let mut problems = Vec::new();
        if answer.status.as_u16() != f.expect.status {
            problems.push(format!(
                "status {} (expected {}): {}",
                answer.status,
                f.expect.status,
                String::from_utf8_lossy(&answer.body)
            ));
        }
        if gw.audit_rows() != before + 1 || rows.len() != 1 {
            problems.push(format!(
                "expected exactly one audit row, found {}",
                rows.len()
            ));
        }
        let row = rows.first().cloned().unwrap_or(Value::Null);
        if row["status"] != f.expect.verdict.as_str() {
            problems.push(format!(
                "verdict {} (expected {}), detail {}",
                row["status"], f.expect.verdict, row["detail"]
            ));
        }
        if row["reason"].as_str() != f.expect.reason.as_deref() {
            problems.push(format!(
                "reason {} (expected {:?})",
                row["reason"], f.expect.reason
            ));
        }
        if let Some(expected) = &f.expect.response
            && String::from_utf8_lossy(&answer.body) != expected.as_str()
        {
            problems.push(format!(
                "response {:?} (expected {expected:?})",
                String::from_utf8_lossy(&answer.body)
            ));
        }
        if let Some(fields) = &f.expect.fields {
            for key in ["event_id", "event_type", "sender", "source"] {
                let got = row[key].as_str();
                let want = fields.get(key).map(String::as_str);
                if got != want {
                    problems.push(format!("{key} {got:?} (expected {want:?})"));
                }
            }
        }
        let counts = seen.entry(preset.clone()).or_default();
        match f.expect.verdict.as_str() {
            "rejected" => counts.1 += 1,
            _ => counts.0 += 1,
        }
        if !problems.is_empty() {
            failures.push(format!("{label}: {}", problems.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for rule in Rules::shipped().all() {
        // A preset that confirms with the provider's status API is proven against local
        // servers that behave like those APIs, in `confirmation`.
        if rule.account.contains_key("confirm") {
            continue;
        }
        // AWS SNS is proven against a local certificate host in `sns`.
        if rule.account.contains_key("sns") {
            continue;
        }
        // A token whose keys the provider publishes (Google, Plaid) is proven against a
        // local key server in `remote_keys`.
        if rule
            .account
            .get("jwt")
            .and_then(|j| j.get("remote_keys"))
            .is_some()
        {
            continue;
        }
        let (good, bad) = seen.get(&rule.name).copied().unwrap_or_default();
        assert!(
            good >= 1 && bad >= 3,
            "preset {} needs at least one genuine request and three negative cases in fixtures/{}/ (has {good} and {bad})",
            rule.name,
            rule.name
        );
    }
    gw.stop().await;
}
