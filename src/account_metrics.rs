//! Per-account counters for `/metrics`: accepted, duplicate, handshake, and rejected by
//! reason, labelled with the account's name.
//!
//! Owns the counters and their Prometheus text. Label sets stay bounded: a count is kept
//! only for a request that named a configured account (an unknown path is counted in the
//! totals only), reasons come from the closed `Reason` list, and only accounts configured
//! now are rendered. It must never take a label from anything a sender controls beyond a
//! configured account's name.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::event::{Reason, Status};

/// One account's counts: accepted, duplicate, handshake, then one per reason.
type Counts = [AtomicU64; 3 + Reason::ALL.len()];

/// The counters of every account seen since start.
#[derive(Debug, Default)]
pub struct AccountMetrics {
    by_account: RwLock<HashMap<String, Arc<Counts>>>,
}

impl AccountMetrics {
    /// Counts one committed row of a configured account.
    pub fn record(&self, account: &str, status: Status, reason: Option<Reason>) {
        let index = match (status, reason) {
            (Status::Accepted, _) => 0,
            (Status::Duplicate, _) => 1,
            (Status::Handshake, _) => 2,
            (Status::Rejected, Some(r)) => {
                3 + Reason::ALL.iter().position(|x| *x == r).unwrap_or(0)
            }
            (Status::Rejected, None) => return,
        };
        self.counts(account)[index].fetch_add(1, Ordering::Relaxed);
    }

    fn counts(&self, account: &str) -> Arc<Counts> {
        let read = self.by_account.read().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = read.get(account) {
            return Arc::clone(c);
        }
        drop(read);
        let mut write = self.by_account.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            write
                .entry(account.to_owned())
                .or_insert_with(|| Arc::new(std::array::from_fn(|_| AtomicU64::new(0)))),
        )
    }

    /// Appends the counters of the accounts in `configured` as Prometheus text.
    pub fn render(&self, out: &mut String, configured: &[&str]) {
        let read = self.by_account.read().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(
            out,
            "# HELP hookgate_account_events_total Committed webhook rows per configured account, by outcome.\n# TYPE hookgate_account_events_total counter"
        );
        for name in configured {
            let Some(c) = read.get(*name) else { continue };
            for (i, outcome) in ["accepted", "duplicate", "handshake"].iter().enumerate() {
                let _ = writeln!(
                    out,
                    "hookgate_account_events_total{{account=\"{name}\",outcome=\"{outcome}\"}} {}",
                    c[i].load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP hookgate_account_rejected_total Rejected webhook rows per configured account, by reason.\n# TYPE hookgate_account_rejected_total counter"
        );
        for name in configured {
            let Some(c) = read.get(*name) else { continue };
            for (i, reason) in Reason::ALL.iter().enumerate() {
                let n = c[3 + i].load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "hookgate_account_rejected_total{{account=\"{name}\",reason=\"{}\"}} {n}",
                        reason.as_str()
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_per_account_and_only_configured_accounts_are_rendered() {
        let m = AccountMetrics::default();
        m.record("shop", Status::Accepted, None);
        m.record("shop", Status::Accepted, None);
        m.record("shop", Status::Duplicate, None);
        m.record("shop", Status::Rejected, Some(Reason::BadSignature));
        m.record("gone", Status::Accepted, None);
        let mut out = String::new();
        m.render(&mut out, &["shop", "never_seen"]);
        assert!(
            out.contains("hookgate_account_events_total{account=\"shop\",outcome=\"accepted\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("hookgate_account_events_total{account=\"shop\",outcome=\"duplicate\"} 1")
        );
        assert!(out.contains(
            "hookgate_account_rejected_total{account=\"shop\",reason=\"bad_signature\"} 1"
        ));
        assert!(
            !out.contains("gone") && !out.contains("never_seen"),
            "{out}"
        );
    }
}
