//! Publishing the signed heads of both audit chains, at start, every
//! `audit.heads_interval_secs` and at stop:
//! one log line with the whole head file, and the file itself (`audit.heads_file`, or
//! `<database>.heads.json` on SQLite), replaced whole by a rename so a reader never sees
//! half of it.
//!
//! Owns the loop and the file. It must never stop the gateway: a head that cannot be read
//! or a file that cannot be written is logged and tried again at the next tick.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::AppState;
use crate::config::Config;

/// Where the head file goes: the configured path, else beside a SQLite database.
pub fn file_for(config: &Config) -> Option<PathBuf> {
    if let Some(p) = &config.audit.heads_file {
        return Some(p.clone());
    }
    if crate::store::postgres_url(&config.database).is_some() {
        return None;
    }
    let mut name = config.database.as_os_str().to_owned();
    name.push(".heads.json");
    Some(PathBuf::from(name))
}

/// Signs and publishes the heads at start, then every interval, and once more when the
/// gateway stops (the heads it leaves the database with).
pub async fn publish(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let file = file_for(&state.config);
    let every = Duration::from_secs(state.config.audit.heads_interval_secs);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        publish_once(&state, file.as_deref()).await;
        if stopping {
            return;
        }
    }
}

async fn publish_once(state: &AppState, file: Option<&Path>) {
    let heads = match state.store.signed_heads().await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the audit heads to sign; trying again later");
            return;
        }
    };
    let text = match serde_json::to_string_pretty(&heads) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode the signed audit heads");
            return;
        }
    };
    tracing::info!(heads = %text.replace(['\n', ' '], ""), "signed audit heads");
    if let Some(path) = file
        && let Err(e) = replace_whole(path, &text)
    {
        tracing::warn!(file = %path.display(), error = %e, "cannot write the signed audit heads file; trying again later");
    }
}

/// Writes `text` to a temporary file beside `path`, syncs it, and renames it over `path`.
fn replace_whole(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_sits_beside_a_sqlite_database_and_nowhere_by_default_on_postgres() {
        let mut c = Config {
            database: PathBuf::from("/var/lib/hookgate/h.db"),
            ..Config::default()
        };
        assert_eq!(
            file_for(&c),
            Some(PathBuf::from("/var/lib/hookgate/h.db.heads.json"))
        );
        c.database = PathBuf::from("postgres://u@db/hookgate");
        assert_eq!(file_for(&c), None);
        c.audit.heads_file = Some(PathBuf::from("/srv/heads.json"));
        assert_eq!(file_for(&c), Some(PathBuf::from("/srv/heads.json")));
    }

    #[test]
    fn a_file_is_replaced_whole() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("heads.json");
        replace_whole(&path, "{\"a\":1}").expect("write");
        replace_whole(&path, "{\"b\":2}").expect("replace");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap_or_default(),
            "{\"b\":2}\n"
        );
    }
}
