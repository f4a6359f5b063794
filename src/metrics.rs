//! Operational counters, exposed as Prometheus text at `GET /metrics` on the admin
//! listener.
//!
//! Owns [`Metrics`]: lock-free counters that the ingest path and the writer bump, and
//! their rendering. It must never hold a label taken from input (account names, paths):
//! every label value comes from a closed set, so a hostile sender cannot grow it.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::event::{Reason, Status};

/// Upper bounds of the write-group time histogram's buckets, in microseconds (the last
/// bucket, `+Inf`, is implicit). A request waits for its group; a group over 2 ms is a
/// stall worth seeing.
const GROUP_BOUNDS_MICROS: [u64; 7] = [500, 1_000, 2_000, 5_000, 10_000, 25_000, 100_000];

/// Where status messages go: the label values of `hookgate_chat_attempts_total{channel}`.
pub const CHAT_CHANNELS: [&str; 5] = [
    "connector",
    "telegram",
    "whatsapp",
    "twilio_sms",
    "twilio_whatsapp",
];

/// What became of a status-message attempt: `hookgate_chat_attempts_total{outcome}`;
/// `waiting` is a message whose connector or channel is not configured.
pub const CHAT_OUTCOMES: [&str; 5] = ["delivered", "no_session", "retrying", "dead", "waiting"];

/// The gateway's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Status-message attempts by [`CHAT_CHANNELS`] and [`CHAT_OUTCOMES`].
    chat_attempts: [[AtomicU64; CHAT_OUTCOMES.len()]; CHAT_CHANNELS.len()],
    accepted: AtomicU64,
    duplicate: AtomicU64,
    handshake: AtomicU64,
    rejected: [AtomicU64; Reason::ALL.len()],
    unavailable: AtomicU64,
    batches: AtomicU64,
    rows: AtomicU64,
    failed_batches: AtomicU64,
    retried_batches: AtomicU64,
    commit_micros: AtomicU64,
    handle_micros: AtomicU64,
    streams_cut: AtomicU64,
    /// Write groups by time taken: one count per bucket of [`GROUP_BOUNDS_MICROS`], then
    /// the groups over the last bound.
    group_micros: [AtomicU64; GROUP_BOUNDS_MICROS.len() + 1],
}

/// The writer's counts, as [`Metrics::writer_health`] reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WriterHealth {
    /// Write groups committed.
    pub groups_committed: u64,
    /// Write groups that failed (their requests were answered 503).
    pub groups_failed: u64,
    /// Rows committed.
    pub rows_committed: u64,
    /// Webhooks answered 503 because their row could not be committed.
    pub unavailable: u64,
}

impl Metrics {
    /// Counts one answered webhook.
    pub fn record(&self, status: Status, reason: Option<Reason>, handle_micros: i64) {
        match (status, reason) {
            (Status::Accepted, _) => self.accepted.fetch_add(1, Ordering::Relaxed),
            (Status::Duplicate, _) => self.duplicate.fetch_add(1, Ordering::Relaxed),
            (Status::Handshake, _) => self.handshake.fetch_add(1, Ordering::Relaxed),
            (Status::Rejected, Some(r)) => {
                let i = Reason::ALL.iter().position(|x| *x == r).unwrap_or(0);
                self.rejected[i].fetch_add(1, Ordering::Relaxed)
            }
            (Status::Rejected, None) => 0,
        };
        self.handle_micros
            .fetch_add(handle_micros.max(0) as u64, Ordering::Relaxed);
    }

    /// Counts a webhook answered 503 because its row could not be committed.
    pub fn record_unavailable(&self) {
        self.unavailable.fetch_add(1, Ordering::Relaxed);
    }

    /// The writer's groups so far, for the console: committed, failed, and webhooks
    /// answered 503 because their row could not be committed.
    pub fn writer_health(&self) -> WriterHealth {
        WriterHealth {
            groups_committed: self.batches.load(Ordering::Relaxed),
            groups_failed: self.failed_batches.load(Ordering::Relaxed),
            rows_committed: self.rows.load(Ordering::Relaxed),
            unavailable: self.unavailable.load(Ordering::Relaxed),
        }
    }

    /// Counts one committed (or failed) write group.
    pub fn record_batch(&self, rows: usize, commit_micros: u64, ok: bool) {
        if ok {
            self.batches.fetch_add(1, Ordering::Relaxed);
            self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        } else {
            self.failed_batches.fetch_add(1, Ordering::Relaxed);
        }
        self.commit_micros
            .fetch_add(commit_micros, Ordering::Relaxed);
        let bucket = GROUP_BOUNDS_MICROS.partition_point(|bound| *bound < commit_micros);
        self.group_micros[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a group made again with a savepoint per event, after an event failed in
    /// its first attempt.
    pub fn record_retried_group(&self) {
        self.retried_batches.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one status-message attempt; a channel or outcome outside the closed sets is
    /// not counted.
    pub fn record_chat_attempt(&self, channel: &str, outcome: &str) {
        let c = CHAT_CHANNELS.iter().position(|x| *x == channel);
        let o = CHAT_OUTCOMES.iter().position(|x| *x == outcome);
        if let (Some(c), Some(o)) = (c, o) {
            self.chat_attempts[c][o].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a live-stream consumer cut off for falling behind.
    pub fn record_stream_cut(&self) {
        self.streams_cut.fetch_add(1, Ordering::Relaxed);
    }

    /// Rows and groups committed so far.
    pub fn batches(&self) -> (u64, u64) {
        (
            self.rows.load(Ordering::Relaxed),
            self.batches.load(Ordering::Relaxed),
        )
    }

    /// The Prometheus text exposition.
    pub fn render(&self, ready: bool, accounts: usize) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::with_capacity(2048);
        let _ = writeln!(
            out,
            "# HELP hookgate_webhooks_total Webhooks answered, by outcome."
        );
        let _ = writeln!(out, "# TYPE hookgate_webhooks_total counter");
        let _ = writeln!(
            out,
            "hookgate_webhooks_total{{status=\"accepted\"}} {}",
            get(&self.accepted)
        );
        let _ = writeln!(
            out,
            "hookgate_webhooks_total{{status=\"duplicate\"}} {}",
            get(&self.duplicate)
        );
        let _ = writeln!(
            out,
            "hookgate_webhooks_total{{status=\"handshake\"}} {}",
            get(&self.handshake)
        );
        let rejected: u64 = self.rejected.iter().map(get).sum();
        let _ = writeln!(
            out,
            "hookgate_webhooks_total{{status=\"rejected\"}} {rejected}"
        );
        let _ = writeln!(
            out,
            "hookgate_webhooks_total{{status=\"unavailable\"}} {}",
            get(&self.unavailable)
        );
        let _ = writeln!(
            out,
            "# HELP hookgate_rejections_total Rejected webhooks, by reason."
        );
        let _ = writeln!(out, "# TYPE hookgate_rejections_total counter");
        for (r, n) in Reason::ALL.iter().zip(&self.rejected) {
            let _ = writeln!(
                out,
                "hookgate_rejections_total{{reason=\"{}\"}} {}",
                r.as_str(),
                get(n)
            );
        }
        // Single-value families: (name, type, help, value). Counts print as integers
        // (an f64 up to 2^53 is exact and `Display` shows no fraction for it).
        let families: [(&str, &str, &str, f64); 7] = [
            (
                "hookgate_handle_seconds_total",
                "counter",
                "Time from request line to hand-off to the writer, summed.",
                get(&self.handle_micros) as f64 / 1e6,
            ),
            (
                "hookgate_writer_groups_total",
                "counter",
                "Write groups committed (one fsync each).",
                get(&self.batches) as f64,
            ),
            (
                "hookgate_writer_rows_total",
                "counter",
                "Rows committed by the writer.",
                get(&self.rows) as f64,
            ),
            (
                "hookgate_writer_failed_groups_total",
                "counter",
                "Write groups that failed (answered 503).",
                get(&self.failed_batches) as f64,
            ),
            (
                "hookgate_writer_retried_groups_total",
                "counter",
                "Write groups made a second time, each event in a savepoint, after one of them failed.",
                get(&self.retried_batches) as f64,
            ),
            (
                "hookgate_stream_consumers_cut_total",
                "counter",
                "Live-stream consumers cut off for falling behind; each resumes from the log with Last-Event-ID.",
                get(&self.streams_cut) as f64,
            ),
            (
                "hookgate_writer_seconds_total",
                "counter",
                "Time the writer spent executing and committing groups.",
                get(&self.commit_micros) as f64 / 1e6,
            ),
        ];
        for (name, kind, help, value) in families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
        let name = "hookgate_writer_group_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time each write group took to execute and commit (committed or failed)."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut count = 0;
        for (i, n) in self.group_micros.iter().enumerate() {
            count += get(n);
            let le = GROUP_BOUNDS_MICROS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| (*b as f64 / 1e6).to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_sum {}", get(&self.commit_micros) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
        let name = "hookgate_chat_attempts_total";
        let _ = writeln!(
            out,
            "# HELP {name} Status-message attempts, by connector or channel and outcome."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for (channel, row) in CHAT_CHANNELS.iter().zip(&self.chat_attempts) {
            for (outcome, n) in CHAT_OUTCOMES.iter().zip(row) {
                let _ = writeln!(
                    out,
                    "{name}{{channel=\"{channel}\",outcome=\"{outcome}\"}} {}",
                    get(n)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP hookgate_ready 1 when the last write group committed."
        );
        let _ = writeln!(out, "# TYPE hookgate_ready gauge");
        let _ = writeln!(out, "hookgate_ready {}", u8::from(ready));
        let _ = writeln!(out, "# HELP hookgate_accounts Configured accounts.");
        let _ = writeln!(out, "# TYPE hookgate_accounts gauge");
        let _ = writeln!(out, "hookgate_accounts {accounts}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_closed_label_sets() {
        let m = Metrics::default();
        m.record(Status::Accepted, None, 10);
        m.record(Status::Rejected, Some(Reason::BadSignature), 5);
        m.record_batch(2, 300, true);
        let text = m.render(true, 3);
        assert!(text.contains("hookgate_webhooks_total{status=\"accepted\"} 1"));
        assert!(text.contains("hookgate_rejections_total{reason=\"bad_signature\"} 1"));
        assert!(text.contains("hookgate_writer_rows_total 2"));
        assert!(text.contains("hookgate_accounts 3"));
        assert_eq!(m.batches(), (2, 1));
    }

    #[test]
    fn group_times_render_as_a_cumulative_histogram() {
        let m = Metrics::default();
        // 300 µs, exactly 2 ms, just over 2 ms, 30 ms, and 2 s (past the last bound).
        for (micros, ok) in [
            (300, true),
            (2_000, true),
            (2_001, false),
            (30_000, true),
            (2_000_000, true),
        ] {
            m.record_batch(1, micros, ok);
        }
        let text = m.render(true, 0);
        for line in [
            "# TYPE hookgate_writer_group_seconds histogram",
            "hookgate_writer_group_seconds_bucket{le=\"0.0005\"} 1",
            "hookgate_writer_group_seconds_bucket{le=\"0.001\"} 1",
            "hookgate_writer_group_seconds_bucket{le=\"0.002\"} 2",
            "hookgate_writer_group_seconds_bucket{le=\"0.005\"} 3",
            "hookgate_writer_group_seconds_bucket{le=\"0.025\"} 3",
            "hookgate_writer_group_seconds_bucket{le=\"0.1\"} 4",
            "hookgate_writer_group_seconds_bucket{le=\"+Inf\"} 5",
            "hookgate_writer_group_seconds_sum 2.034301",
            "hookgate_writer_group_seconds_count 5",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
    }
}
