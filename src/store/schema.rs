//! The database schema as numbered migrations, applied in order at open.
//!
//! Owns every `CREATE` statement. A migration, once released, is never edited: changes
//! are new entries at the end. `PRAGMA user_version` records how many were applied.

use rusqlite::Connection;

/// Each entry is one migration; its index + 1 is the schema version it produces.
const MIGRATIONS: &[&str] = &[
    // 1: the audit log, dedupe, accounts, the change log and admin tokens.
    "
    CREATE TABLE events (
        seq            INTEGER PRIMARY KEY,
        received_at    INTEGER NOT NULL,
        account        TEXT NOT NULL,
        status         TEXT NOT NULL,
        reason         TEXT,
        detail         TEXT,
        event_id       TEXT,
        event_type     TEXT,
        sender         TEXT,
        source         TEXT,
        params         TEXT,
        forward_status TEXT,
        method         TEXT NOT NULL,
        path           TEXT NOT NULL,
        query          TEXT NOT NULL,
        remote_addr    TEXT NOT NULL,
        headers        TEXT NOT NULL,
        content_type   TEXT,
        body           BLOB NOT NULL,
        body_size      INTEGER NOT NULL,
        body_sha256    BLOB,
        body_truncated INTEGER NOT NULL,
        handle_micros  INTEGER NOT NULL
    );
    CREATE INDEX events_by_account ON events(account, seq);
    CREATE INDEX events_by_sender ON events(sender, seq) WHERE sender IS NOT NULL;
    CREATE INDEX events_by_source ON events(source, seq) WHERE source IS NOT NULL;
    CREATE TABLE dedupe (
        account  TEXT NOT NULL,
        event_id TEXT NOT NULL,
        seq      INTEGER NOT NULL,
        PRIMARY KEY (account, event_id)
    ) WITHOUT ROWID;
    CREATE TABLE accounts (
        name       TEXT PRIMARY KEY,
        spec       TEXT NOT NULL,
        listening  INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE changes (
        seq     INTEGER PRIMARY KEY,
        at      INTEGER NOT NULL,
        actor   TEXT NOT NULL,
        action  TEXT NOT NULL,
        account TEXT,
        detail  TEXT NOT NULL
    );
    CREATE INDEX changes_by_account ON changes(account, seq);
    CREATE TABLE tokens (
        name       TEXT PRIMARY KEY,
        role       TEXT NOT NULL,
        hash       BLOB NOT NULL,
        created_at INTEGER NOT NULL
    );
    ",
    // 2: indexes for the filters that are not cheap to scan for. Each is chosen to stay
    // off the hot path: received_at and event types grow at the right edge (few insertion
    // points); the outcome indexes hold only the rare non-accepted rows.
    "
    CREATE INDEX events_by_received ON events(received_at);
    CREATE INDEX events_by_type ON events(event_type, seq) WHERE event_type IS NOT NULL;
    CREATE INDEX events_rejected ON events(seq) WHERE status = 'rejected';
    CREATE INDEX events_by_reason ON events(reason, seq) WHERE reason IS NOT NULL;
    CREATE INDEX events_duplicate ON events(seq) WHERE status = 'duplicate';
    CREATE INDEX changes_by_action ON changes(action, seq);
    ",
    // 3: the hash chain (see `chain`), and the checkpoints retention leaves behind.
    "
    ALTER TABLE events ADD COLUMN hash BLOB;
    ALTER TABLE changes ADD COLUMN hash BLOB;
    CREATE TABLE chain_checkpoints (
        log        TEXT PRIMARY KEY,
        through    INTEGER NOT NULL,
        pruned     INTEGER NOT NULL,
        hash       BLOB NOT NULL,
        at         INTEGER NOT NULL
    );
    ",
    // 4: listeners: the durable outbox, every delivery attempt, and which events were
    // streamed (for resuming the live stream from the log).
    "
    ALTER TABLE events ADD COLUMN streamed INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX events_streamed ON events(seq) WHERE streamed = 1;
    CREATE INDEX events_streamed_by_account ON events(account, seq) WHERE streamed = 1;
    CREATE TABLE outbox (
        seq             INTEGER PRIMARY KEY,
        account         TEXT NOT NULL,
        recipient       TEXT NOT NULL,
        text            TEXT NOT NULL,
        event_id        TEXT,
        event_type      TEXT,
        status          TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error      TEXT
    );
    CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE status IN ('pending', 'retrying');
    CREATE TABLE forward_attempts (
        seq         INTEGER NOT NULL,
        attempt     INTEGER NOT NULL,
        at          INTEGER NOT NULL,
        outcome     TEXT NOT NULL,
        http_status INTEGER,
        detail      TEXT,
        PRIMARY KEY (seq, attempt)
    ) WITHOUT ROWID;
    ",
    // 5: scratch space for the storage health probe (`store::health`); always empty.
    "
    CREATE TABLE health_probe (
        id  INTEGER PRIMARY KEY,
        pad BLOB NOT NULL
    );
    ",
    // 6: provider handshakes are recorded with status 'handshake'; like the other rare
    // outcomes, they get a partial index so `status=handshake` does not scan the log.
    "
    CREATE INDEX events_handshake ON events(seq) WHERE status = 'handshake';
    ",
    // 7: the sender and source indexes become runs of 32768 seqs written a run at a time
    // (`store::keys`): the complete runs are backfilled from the old indexes, in order;
    // the open run is rebuilt in memory at every open.
    "
    CREATE TABLE key_runs (
        run INTEGER PRIMARY KEY
    );
    CREATE TABLE run_keys (
        run  INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        key  TEXT NOT NULL,
        seq  INTEGER NOT NULL,
        PRIMARY KEY (run, kind, key, seq)
    ) WITHOUT ROWID;
    INSERT INTO run_keys (run, kind, key, seq)
        SELECT (seq - 1) / 32768 + 1, 0, sender, seq FROM events
        WHERE sender IS NOT NULL
          AND seq <= (SELECT coalesce(max(seq), 0) / 32768 * 32768 FROM events)
        UNION ALL
        SELECT (seq - 1) / 32768 + 1, 1, source, seq FROM events
        WHERE source IS NOT NULL
          AND seq <= (SELECT coalesce(max(seq), 0) / 32768 * 32768 FROM events)
        ORDER BY 1, 2, 3, 4;
    WITH RECURSIVE r(n) AS (
        SELECT 1 WHERE (SELECT coalesce(max(seq), 0) FROM events) >= 32768
        UNION ALL
        SELECT n + 1 FROM r WHERE n < (SELECT coalesce(max(seq), 0) FROM events) / 32768
    )
    INSERT INTO key_runs (run) SELECT n FROM r;
    DROP INDEX events_by_sender;
    DROP INDEX events_by_source;
    ",
    // 8: dedupe ids are written a run at a time too (`store::dedupe`). The table so far
    // holds every accepted id, so each complete run counts as written; the open run is
    // rebuilt in memory at every open.
    "
    CREATE TABLE dedupe_runs (
        run INTEGER PRIMARY KEY
    );
    INSERT INTO dedupe_runs (run) SELECT run FROM key_runs;
    ",
    // 9: searches by time and retention find where a time falls by a binary search over
    // the seqs (`store::timeline`), so no row needs an entry in an index by time.
    "
    DROP INDEX events_by_received;
    ",
    // 10: the account and event-type indexes become runs as well (`store::keys`, kinds 2
    // and 3): the runs already written get their entries from the log, in order; the run
    // being written gets them from memory, after its sender and source entries.
    "
    INSERT INTO run_keys (run, kind, key, seq)
        SELECT (seq - 1) / 32768 + 1, 2, account, seq FROM events
        WHERE seq <= (SELECT coalesce(max(run), 0) * 32768 FROM key_runs)
        UNION ALL
        SELECT (seq - 1) / 32768 + 1, 3, event_type, seq FROM events
        WHERE event_type IS NOT NULL
          AND seq <= (SELECT coalesce(max(run), 0) * 32768 FROM key_runs)
        ORDER BY 1, 2, 3, 4;
    DROP INDEX events_by_account;
    DROP INDEX events_by_type;
    ",
    // 11: from the next seq on, the writer holds every row's time within `timeline::TIGHT`
    // of the times before it; the rows before keep the enqueue timeout's bound.
    "
    CREATE TABLE timeline_bound (from_seq INTEGER NOT NULL);
    INSERT INTO timeline_bound SELECT coalesce(max(seq), 0) + 1 FROM events;
    ",
];

/// Applies every migration the database has not seen yet, each in its own transaction.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies the first `version` migrations only, as a database of that version was left.
    fn as_left_by(conn: &mut Connection, version: usize) {
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap_or_else(|e| panic!("{e}"));
        }
        conn.pragma_update(None, "user_version", version as i64)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Inserts events with seqs and times 1..=`rows` into a database of any version, each
    /// accepted for an account, with `columns` (name, SQL of `i`, the seq) set as given.
    fn fill(conn: &Connection, rows: i64, columns: &[(&str, &str)]) {
        let names: String = columns.iter().map(|c| format!(", {}", c.0)).collect();
        let values: String = columns.iter().map(|c| format!(", {}", c.1)).collect();
        conn.execute(
            &format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
                 INSERT INTO events (seq, received_at, status, method, path, query,
                     remote_addr, headers, body, body_size, body_truncated, handle_micros{names})
                 SELECT i, i, 'accepted', 'POST', '/hooks/shop', '', '127.0.0.1:1', '{{}}',
                     x'', 0, 0, 0{values} FROM n"
            ),
            [rows],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The seqs of the rows whose `column` is `key`, newest first, read from the table.
    fn seqs_where(c: &Connection, column: &str, key: &str) -> Vec<i64> {
        c.prepare(&format!(
            "SELECT seq FROM events WHERE {column} = ?1 ORDER BY seq DESC"
        ))
        .and_then(|mut s| {
            s.query_map([key], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_tight_time_bound_begins_after_the_last_row_a_log_has_at_its_upgrade() {
        let bound = |c: &Connection| {
            super::super::timeline::Bound::load(c, std::time::Duration::from_secs(2))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let mut fresh = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        migrate(&mut fresh).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bound(&fresh).from_seq, 1);

        let mut old = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        as_left_by(&mut old, 10);
        fill(&old, 1_000, &[("account", "'shop'")]);
        migrate(&mut old).unwrap_or_else(|e| panic!("{e}"));
        let b = bound(&old);
        assert_eq!((b.from_seq, b.tight, b.loose), (1_001, 100_000, 7_000_000));
        // Opening again does not move it.
        migrate(&mut old).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bound(&old).from_seq, 1_001);
    }

    #[test]
    fn migrations_apply_once_and_are_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        migrate(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        migrate(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap_or_default();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }

    #[test]
    fn the_key_runs_migration_cuts_runs_as_the_writer_does() {
        assert!(MIGRATIONS[6].contains(&format!("/ {}", super::super::keys::RUN_ROWS)));
    }

    #[test]
    fn a_log_indexed_the_old_way_moves_to_runs_and_every_search_finds_the_same_rows() {
        use super::super::keys::{Keys, RUN_ROWS};
        use super::super::reader::{EventFilter, events};
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut conn =
            Connection::open(dir.path().join("old.db")).unwrap_or_else(|e| panic!("{e}"));
        // A database as version 6 left it, with two runs and a half of rows.
        as_left_by(&mut conn, 6);
        let rows = 2 * RUN_ROWS + RUN_ROWS / 2;
        fill(
            &conn,
            rows,
            &[
                ("account", "'shop'"),
                ("sender", "'p' || (i % 97)"),
                (
                    "source",
                    "CASE WHEN i % 3 = 0 THEN NULL ELSE 'o' || (i % 89) END",
                ),
            ],
        );
        let before = seqs_where;
        let old: Vec<Vec<i64>> = ["p0", "p96", "p13"]
            .iter()
            .map(|k| before(&conn, "sender", k))
            .chain(["o0", "o88"].iter().map(|k| before(&conn, "source", k)))
            .collect();

        migrate(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        let runs: Vec<i64> = conn
            .prepare("SELECT run FROM key_runs ORDER BY run")
            .and_then(|mut s| {
                s.query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(runs, [1, 2], "the complete runs are written");
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name IN ('events_by_sender', 'events_by_source')",
                [],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(indexes, 0);
        let keys = Keys::load(&conn, RUN_ROWS).unwrap_or_else(|e| panic!("{e}"));
        let search = |sender: Option<&str>, source: Option<&str>| -> Vec<i64> {
            let filter = EventFilter {
                sender: sender.map(Into::into),
                source: source.map(Into::into),
                limit: 100_000,
                ..Default::default()
            };
            events(&conn, &filter, &keys, super::super::timeline::Bound::EXACT)
                .unwrap_or_else(|e| panic!("{e}"))
                .items
                .iter()
                .map(|e| e.seq)
                .collect()
        };
        let new: Vec<Vec<i64>> = ["p0", "p96", "p13"]
            .iter()
            .map(|k| search(Some(k), None))
            .chain(["o0", "o88"].iter().map(|k| search(None, Some(k))))
            .collect();
        assert_eq!(new, old);
        assert!(old.iter().all(|seqs| seqs.len() > 500));
    }

    #[test]
    fn account_and_type_indexes_move_to_runs_and_every_search_finds_the_same_rows() {
        use super::super::keys::{Keys, RUN_ROWS};
        use super::super::reader::{EventFilter, events};
        let mut conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        // A database as version 9 left it: two runs written, a third being written (its
        // sender keys half done), and half a run more.
        as_left_by(&mut conn, 9);
        let rows = 3 * RUN_ROWS + RUN_ROWS / 2;
        fill(
            &conn,
            rows,
            &[
                ("account", "'shop' || (i % 3)"),
                (
                    "event_type",
                    "CASE WHEN i % 4 = 0 THEN NULL ELSE 'type' || (i % 5) END",
                ),
                ("sender", "'p' || (i % 7)"),
            ],
        );
        conn.execute_batch(&format!(
            "INSERT INTO run_keys (run, kind, key, seq)
                 SELECT (seq - 1) / {RUN_ROWS} + 1, 0, sender, seq FROM events
                 WHERE seq <= 2 * {RUN_ROWS} OR (seq <= 3 * {RUN_ROWS} AND sender < 'p3');
             INSERT INTO key_runs (run) VALUES (1), (2);"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let by = seqs_where;
        let asked = [
            ("account", "shop0"),
            ("account", "shop2"),
            ("event_type", "type1"),
            ("event_type", "type4"),
        ];
        let old: Vec<Vec<i64>> = asked.iter().map(|(c, k)| by(&conn, c, k)).collect();

        migrate(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema
                 WHERE name IN ('events_by_account', 'events_by_type', 'events_by_received')",
                [],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(indexes, 0);
        // The written runs hold every row's account and every type, and nothing past them.
        let entries = |kind: i64| -> (i64, i64) {
            conn.query_row(
                "SELECT count(*), coalesce(max(seq), 0) FROM run_keys WHERE kind = ?1",
                [kind],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(entries(2), (2 * RUN_ROWS, 2 * RUN_ROWS));
        assert_eq!(entries(3), (2 * RUN_ROWS * 3 / 4, 2 * RUN_ROWS - 1));
        let keys = Keys::load(&conn, RUN_ROWS).unwrap_or_else(|e| panic!("{e}"));
        let search = |column: &str, key: &str| -> Vec<i64> {
            let mut filter = EventFilter {
                limit: 100_000,
                ..Default::default()
            };
            match column {
                "account" => filter.account = Some(key.into()),
                _ => filter.event_type = Some(key.into()),
            }
            events(&conn, &filter, &keys, super::super::timeline::Bound::EXACT)
                .unwrap_or_else(|e| panic!("{e}"))
                .items
                .iter()
                .map(|e| e.seq)
                .collect()
        };
        let new: Vec<Vec<i64>> = asked.iter().map(|(c, k)| search(c, k)).collect();
        assert_eq!(new, old);
        assert!(old.iter().all(|seqs| seqs.len() > 15_000));
    }

    #[test]
    fn a_dedupe_table_written_a_row_at_a_time_counts_its_complete_runs_as_written() {
        use super::super::dedupe::{Dedupe, Pending};
        use super::super::keys::RUN_ROWS;
        let mut conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        // A database as version 7 left it: every accepted id in `dedupe`, two runs and a
        // half of rows.
        as_left_by(&mut conn, 7);
        let rows = 2 * RUN_ROWS + RUN_ROWS / 2;
        fill(
            &conn,
            rows,
            &[("account", "'shop'"), ("event_id", "'evt-' || i")],
        );
        conn.execute_batch(
            "INSERT INTO dedupe (account, event_id, seq) SELECT account, event_id, seq FROM events;
             INSERT INTO key_runs (run) VALUES (1), (2);",
        )
        .unwrap_or_else(|e| panic!("{e}"));

        migrate(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        let runs: Vec<i64> = conn
            .prepare("SELECT run FROM dedupe_runs ORDER BY run")
            .and_then(|mut s| {
                s.query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(runs, [1, 2]);
        let dedupe = Dedupe::load(&conn, RUN_ROWS).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            dedupe.held() as i64,
            RUN_ROWS / 2,
            "the open run, from the log"
        );
        let tx = conn.transaction().unwrap_or_else(|e| panic!("{e}"));
        let mut pending = Pending::default();
        for (id, seq) in [
            ("evt-1", Some(1)),
            (&format!("evt-{rows}"), Some(rows)),
            ("evt-0", None),
        ] {
            let found = pending
                .original(&dedupe, &tx, "shop", id)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(found, seq, "{id}");
        }
    }
}
