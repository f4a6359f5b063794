//! The checks that tie the two chains to the audit key and to each other, once both have
//! been verified row by row: the change log holds a signed anchor row; the events log's
//! checkpoint is signed and matches the last prune the change log records; every recorded
//! prune has its checkpoint.
//!
//! Pure: it reads the reports an engine made (`store::audit`) and marks a log that fails
//! as not verified. It never reads storage and never weakens a report that already failed.

use serde_json::Value;

use super::audit::{ChainReport, Mark};
use crate::anchor::{CheckpointClaim, PublicKey};

/// What the checks could do without a key: with `None`, the structure is checked (an
/// anchor row exists, checkpoint and prunes agree) but no signature is.
pub fn check(reports: &mut [ChainReport], key: Option<&PublicKey>) {
    let Some(changes_at) = reports.iter().position(|r| r.log == "changes") else {
        return;
    };
    let marks = reports[changes_at].marks.clone();
    if reports[changes_at].ok
        && let Some(detail) = unanchored(&marks, key)
    {
        fail(&mut reports[changes_at], "unanchored", detail);
    }
    if let Some(events) = reports.iter_mut().find(|r| r.log == "events")
        && events.ok
        && let Some(detail) = checkpoint_problem(events, &marks, key)
    {
        fail(events, "unanchored", detail);
    }
}

fn fail(report: &mut ChainReport, problem: &'static str, detail: String) {
    report.ok = false;
    report.problem = Some(problem);
    report.detail = Some(detail);
}

fn field<'a>(detail: &'a Value, name: &str) -> Option<&'a Value> {
    detail.get(name)
}

/// Why the change log is not anchored, if it is not.
fn unanchored(marks: &[Mark], key: Option<&PublicKey>) -> Option<String> {
    let anchors: Vec<&Mark> = marks
        .iter()
        .filter(|m| m.action == "audit.anchored")
        .collect();
    if anchors.is_empty() {
        return Some(
            "the change log holds no anchor row (`audit.anchored`): its rows were deleted, or it was replaced".into(),
        );
    }
    let key = key?;
    let signed = anchors.iter().any(|m| {
        let detail: Value = serde_json::from_str(&m.detail).unwrap_or(Value::Null);
        let sig = field(&detail, "signature").and_then(Value::as_str);
        let public = field(&detail, "public_key").and_then(Value::as_str);
        public == Some(key.to_hex().as_str()) && sig.is_some_and(|s| key.verifies_anchor(m.at, s))
    });
    (!signed).then(|| {
        format!(
            "no anchor row of the change log is signed by the audit key {}: the change log was replaced",
            key.to_hex()
        )
    })
}

/// Why the events log's checkpoint and the prunes recorded in the change log disagree.
fn checkpoint_problem(
    events: &ChainReport,
    marks: &[Mark],
    key: Option<&PublicKey>,
) -> Option<String> {
    let c = &events.checkpoint;
    let prunes: Vec<(i64, Value)> = marks
        .iter()
        .filter(|m| m.action == "audit.pruned")
        .map(|m| {
            (
                m.seq,
                serde_json::from_str(&m.detail).unwrap_or(Value::Null),
            )
        })
        .filter(|(_, d)| field(d, "log").and_then(Value::as_str).unwrap_or("events") == "events")
        .collect();
    let last = prunes.last();
    if c.through == 0 {
        return last.map(|(seq, _)| {
            format!(
                "change row {seq} records a prune of the events log, but the log has no checkpoint: its checkpoint was removed"
            )
        });
    }
    let Some((seq, detail)) = last else {
        return Some(format!(
            "the events log starts after a checkpoint at seq {}, but the change log records no prune: rows were removed without one",
            c.through
        ));
    };
    let through = field(detail, "through_seq").and_then(Value::as_i64);
    if through != Some(c.through) {
        return Some(format!(
            "the events log's checkpoint is at seq {}, but the last prune recorded (change row {seq}) ends at seq {}: the checkpoint was replaced",
            c.through,
            through.map_or("?".into(), |t| t.to_string())
        ));
    }
    if let Some(hash) = field(detail, "checkpoint_hash").and_then(Value::as_str)
        && hash != hex::encode(c.hash)
    {
        return Some(format!(
            "the events log's checkpoint hash is not the one its prune recorded (change row {seq}): the checkpoint was replaced"
        ));
    }
    let key = key?;
    let claim = CheckpointClaim {
        log: "events",
        through: c.through,
        pruned: c.pruned,
        hash: &c.hash,
    };
    let signed = c
        .signature
        .as_deref()
        .is_some_and(|sig| key.verifies_checkpoint(&claim, sig));
    (!signed).then(|| {
        format!(
            "the events log's checkpoint at seq {} is not signed by the audit key {}: rows were removed and the checkpoint forged",
            c.through,
            key.to_hex()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anchor::AuditKey;
    use crate::store::audit::Checkpoint;

    fn report(log: &'static str) -> ChainReport {
        ChainReport {
            log,
            ok: true,
            rows: 1,
            pruned: 0,
            head: String::new(),
            broken_at: None,
            problem: None,
            detail: None,
            expected_head_found: None,
            checkpoint: Checkpoint::default(),
            marks: Vec::new(),
        }
    }

    fn anchor(key: &AuditKey, at: i64) -> Mark {
        Mark {
            seq: 1,
            at,
            action: "audit.anchored".into(),
            detail: serde_json::json!({"public_key": key.public_hex(),
                "signature": hex::encode(key.sign_anchor(at))})
            .to_string(),
        }
    }

    fn prune(seq: i64, through: i64, hash: &[u8; 32]) -> Mark {
        Mark {
            seq,
            at: 5,
            action: "audit.pruned".into(),
            detail: serde_json::json!({"log": "events", "through_seq": through,
                "checkpoint_hash": hex::encode(hash)})
            .to_string(),
        }
    }

    fn logs(key: &AuditKey, marks: Vec<Mark>, checkpoint: Checkpoint) -> Vec<ChainReport> {
        let mut events = report("events");
        events.checkpoint = checkpoint;
        let mut changes = report("changes");
        changes.marks = std::iter::once(anchor(key, 3)).chain(marks).collect();
        vec![events, changes]
    }

    fn signed(key: &AuditKey, through: i64, hash: [u8; 32]) -> Checkpoint {
        let claim = CheckpointClaim {
            log: "events",
            through,
            pruned: through as u64,
            hash: &hash,
        };
        Checkpoint {
            through,
            pruned: through as u64,
            hash,
            signature: Some(key.sign_checkpoint(&claim)),
        }
    }

    #[test]
    fn a_signed_checkpoint_with_its_prune_row_passes_and_each_gap_fails() {
        let key = AuditKey::derive(&[1; 32]);
        let public = key.public();
        let mut ok = logs(&key, vec![prune(2, 4, &[9; 32])], signed(&key, 4, [9; 32]));
        check(&mut ok, Some(&public));
        assert!(ok.iter().all(|r| r.ok), "{ok:?}");

        // A forged checkpoint with a matching (forged) prune row: the signature fails.
        let forger = AuditKey::derive(&[2; 32]);
        let mut forged = logs(
            &key,
            vec![prune(2, 6, &[8; 32])],
            signed(&forger, 6, [8; 32]),
        );
        check(&mut forged, Some(&public));
        assert!(!forged[0].ok);
        // Without a key the structure still agrees, so only the key finds this one.
        let mut unkeyed = logs(
            &key,
            vec![prune(2, 6, &[8; 32])],
            signed(&forger, 6, [8; 32]),
        );
        check(&mut unkeyed, None);
        assert!(unkeyed[0].ok);

        // A checkpoint with no prune recorded, and a prune with no checkpoint.
        for (marks, checkpoint) in [
            (vec![], signed(&key, 4, [9; 32])),
            (vec![prune(2, 4, &[9; 32])], Checkpoint::default()),
            (vec![prune(2, 3, &[9; 32])], signed(&key, 4, [9; 32])),
            (vec![prune(2, 4, &[7; 32])], signed(&key, 4, [9; 32])),
        ] {
            let mut r = logs(&key, marks, checkpoint);
            check(&mut r, None);
            assert!(!r[0].ok, "{r:?}");
            assert_eq!(r[0].problem, Some("unanchored"));
        }
    }

    #[test]
    fn a_change_log_without_a_signed_anchor_fails() {
        let key = AuditKey::derive(&[1; 32]);
        let mut none = vec![report("events"), report("changes")];
        check(&mut none, None);
        assert!(!none[1].ok);
        let other = AuditKey::derive(&[3; 32]);
        let mut replaced = logs(&other, vec![], Checkpoint::default());
        check(&mut replaced, Some(&key.public()));
        assert!(!replaced[1].ok);
        let mut good = logs(&key, vec![], Checkpoint::default());
        check(&mut good, Some(&key.public()));
        assert!(good[1].ok);
    }
}
