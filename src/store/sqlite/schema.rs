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
    // 5: scratch space for the storage health probe (`health`); always empty.
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
    // 7: the sender and source indexes become runs of 32768 seqs written a run at a time;
    // the complete runs are backfilled from the old indexes, in order. (Migration 12
    // returns to plain indexes.)
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
    // 8: dedupe ids are written a run at a time too. The table so far holds every
    // accepted id, so each complete run counts as written.
    "
    CREATE TABLE dedupe_runs (
        run INTEGER PRIMARY KEY
    );
    INSERT INTO dedupe_runs (run) SELECT run FROM key_runs;
    ",
    // 9: the index by time goes (migration 12 brings it back).
    "
    DROP INDEX events_by_received;
    ",
    // 10: the account and event-type indexes become runs as well (kinds 2 and 3): the
    // runs already written get their entries from the log, in order.
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
    // 11: a table recording from which seq on row times were held to a tight bound
    // (dropped by migration 12: every row keeps the time its request arrived).
    "
    CREATE TABLE timeline_bound (from_seq INTEGER NOT NULL);
    INSERT INTO timeline_bound SELECT coalesce(max(seq), 0) + 1 FROM events;
    ",
    // 12: plain indexes. The runs of keys and of dedupe ids and the time bound go; every
    // accepted id is in the dedupe table (the ids of the run being written were held in
    // memory only), and each search key and the arrival time get an ordinary index.
    "
    DROP TABLE run_keys;
    DROP TABLE key_runs;
    DROP TABLE dedupe_runs;
    DROP TABLE timeline_bound;
    INSERT OR IGNORE INTO dedupe (account, event_id, seq)
        SELECT account, event_id, seq FROM events
        WHERE status = 'accepted' AND event_id IS NOT NULL
        ORDER BY seq;
    CREATE INDEX events_by_account ON events(account, seq);
    CREATE INDEX events_by_sender ON events(sender, seq) WHERE sender IS NOT NULL;
    CREATE INDEX events_by_source ON events(source, seq) WHERE source IS NOT NULL;
    CREATE INDEX events_by_type ON events(event_type, seq) WHERE event_type IS NOT NULL;
    CREATE INDEX events_by_received ON events(received_at);
    ",
    // 13: destinations: an account's own HTTP endpoints (spec without secrets, signing keys
    // sealed), one delivery row per (event, destination) written with the event, and
    // every attempt.
    "
    CREATE TABLE destinations (
        account       TEXT NOT NULL,
        name          TEXT NOT NULL,
        spec          TEXT NOT NULL,
        keys          TEXT NOT NULL,
        max_in_flight INTEGER NOT NULL,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        PRIMARY KEY (account, name)
    ) WITHOUT ROWID;
    CREATE TABLE deliveries (
        id              INTEGER PRIMARY KEY,
        seq             INTEGER NOT NULL,
        account         TEXT NOT NULL,
        destination     TEXT NOT NULL,
        status          TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        last_error      TEXT,
        UNIQUE (seq, destination)
    );
    CREATE INDEX deliveries_due ON deliveries(account, destination, seq)
        WHERE status IN ('pending', 'retrying');
    CREATE INDEX deliveries_by_destination ON deliveries(account, destination, created_at);
    CREATE TABLE delivery_attempts (
        delivery_id INTEGER NOT NULL,
        attempt     INTEGER NOT NULL,
        at          INTEGER NOT NULL,
        outcome     TEXT NOT NULL,
        http_status INTEGER,
        latency_ms  INTEGER NOT NULL,
        detail      TEXT,
        PRIMARY KEY (delivery_id, attempt)
    ) WITHOUT ROWID;
    ",
    // 14: a checkpoint carries the audit key's signature; a dedupe id outlives its pruned
    // event, stamped with the event's arrival time (NULL while the event is kept), and is
    // forgotten past the replay horizon.
    "
    ALTER TABLE chain_checkpoints ADD COLUMN signature BLOB;
    ALTER TABLE dedupe ADD COLUMN received_at INTEGER;
    CREATE INDEX dedupe_expiry ON dedupe(received_at) WHERE received_at IS NOT NULL;
    ",
    // 15: one outbox. A chat status message is a delivery to the reserved destination
    // `@chat` (a name no destination can take), carrying its recipient and rendered text;
    // the chat outbox's rows (every status, attempts, next time, last error) and their
    // attempts move over, queued at their event's arrival, and its tables go.
    "
    ALTER TABLE deliveries ADD COLUMN recipient TEXT;
    ALTER TABLE deliveries ADD COLUMN text TEXT;
    INSERT INTO deliveries (seq, account, destination, status, attempts, next_attempt_at,
            created_at, last_error, recipient, text)
        SELECT o.seq, o.account, '@chat', o.status, o.attempts, o.next_attempt_at,
            coalesce(e.received_at, o.next_attempt_at), o.last_error, o.recipient, o.text
        FROM outbox o LEFT JOIN events e ON e.seq = o.seq
        ORDER BY o.seq;
    INSERT INTO delivery_attempts (delivery_id, attempt, at, outcome, http_status, latency_ms,
            detail)
        SELECT d.id, f.attempt, f.at, f.outcome, f.http_status, 0, f.detail
        FROM forward_attempts f JOIN deliveries d ON d.seq = f.seq AND d.destination = '@chat';
    DROP TABLE forward_attempts;
    DROP TABLE outbox;
    ",
    // 16: a single-use dedupe key keeps the SHA-256 of the content it was first accepted
    // with, so the same key with other content is refused (NULL for any other key).
    "
    ALTER TABLE dedupe ADD COLUMN content_sha256 BLOB;
    ",
    // 17: the index by arrival time also holds each row's account, outcome and reason, so
    // the console's counts over a window read the index alone, never the rows' bodies.
    "
    DROP INDEX events_by_received;
    CREATE INDEX events_by_received ON events(received_at, account, status, reason);
    ",
];

/// How many migrations this build knows: the version of a current database.
pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// Applies every migration the database has not seen yet, each in its own transaction.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    migrate_to(conn, MIGRATIONS.len())
}

/// Applies the migrations the database has not seen yet up to version `version`.
pub fn migrate_to(conn: &mut Connection, version: usize) -> rusqlite::Result<()> {
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let upto = version.min(MIGRATIONS.len());
    for (i, sql) in MIGRATIONS[..upto]
        .iter()
        .enumerate()
        .skip(applied.max(0) as usize)
    {
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
    use crate::store::stats::{CountBy, count_sql};

    /// Applies the first `version` migrations only, as a database of that version was left.
    fn as_left_by(conn: &mut Connection, version: usize) {
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap_or_else(|e| panic!("{e}"));
        }
        conn.pragma_update(None, "user_version", version as i64)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Inserts events with seqs and times 1..=`rows`, each accepted for account `shop`
    /// with event id `ev_{i}`, sender `s{i % 7}` and source `o{i % 5}`.
    fn fill(conn: &Connection, rows: i64) {
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO events (seq, received_at, account, status, event_id, sender, source,
                 event_type, method, path, query, remote_addr, headers, body, body_size,
                 body_truncated, handle_micros)
             SELECT i, i, 'shop', 'accepted', 'ev_' || i, 's' || (i % 7), 'o' || (i % 5),
                 'paid', 'POST', '/hooks/shop', '', '127.0.0.1:1', '{}', x'', 0, 0, 0 FROM n",
            [rows],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    fn count(c: &Connection, sql: &str) -> i64 {
        c.query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The plan SQLite chooses for `sql`, as one line.
    fn plan(c: &Connection, sql: &str) -> String {
        let mut stmt = c
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap_or_else(|e| panic!("{e}"));
        rows.map(|r| r.unwrap_or_default())
            .collect::<Vec<_>>()
            .join("; ")
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
    fn the_chat_outbox_moves_into_deliveries_with_every_state_and_attempt() {
        let mut conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        as_left_by(&mut conn, 14);
        fill(&conn, 6);
        conn.execute_batch(
            "INSERT INTO outbox (seq, account, recipient, text, event_id, event_type, status,
                 attempts, next_attempt_at, last_error) VALUES
                 (1, 'shop', '+1', 'paid 1', 'ev_1', 'paid', 'pending', 0, 10, NULL),
                 (2, 'shop', '+2', 'paid 2', 'ev_2', 'paid', 'retrying', 2, 20, 'HTTP 503'),
                 (3, 'shop', '+3', 'paid 3', 'ev_3', 'paid', 'dead', 5, 30, 'HTTP 500'),
                 (4, 'shop', '+4', 'paid 4', 'ev_4', 'paid', 'delivered', 1, 40, NULL),
                 (5, 'shop', '+5', 'paid 5', 'ev_5', 'paid', 'no_session', 1, 50, 'HTTP 404');
             INSERT INTO forward_attempts (seq, attempt, at, outcome, http_status, detail) VALUES
                 (2, 1, 11, 'retrying', 503, 'HTTP 503'),
                 (2, 2, 12, 'retrying', 503, 'HTTP 503'),
                 (4, 1, 41, 'delivered', 200, 'HTTP 200'),
                 (5, 1, 51, 'no_session', 404, 'HTTP 404');
             INSERT INTO deliveries (seq, account, destination, status, next_attempt_at,
                 created_at) VALUES (6, 'shop', 'backend', 'pending', 60, 6);",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        migrate(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        let gone = count(
            &conn,
            "SELECT count(*) FROM sqlite_master WHERE name IN ('outbox', 'forward_attempts')",
        );
        assert_eq!(gone, 0);
        let mut stmt = conn
            .prepare(
                "SELECT seq, destination, status, attempts, next_attempt_at, created_at,
                     last_error, recipient, text FROM deliveries ORDER BY seq",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        type Row = (
            i64,
            String,
            String,
            i64,
            i64,
            i64,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let chat = |seq: i64, status: &str, attempts, next, error: Option<&str>| -> Row {
            (
                seq,
                "@chat".into(),
                status.into(),
                attempts,
                next,
                seq,
                error.map(String::from),
                Some(format!("+{seq}")),
                Some(format!("paid {seq}")),
            )
        };
        assert_eq!(
            rows,
            vec![
                chat(1, "pending", 0, 10, None),
                chat(2, "retrying", 2, 20, Some("HTTP 503")),
                chat(3, "dead", 5, 30, Some("HTTP 500")),
                chat(4, "delivered", 1, 40, None),
                chat(5, "no_session", 1, 50, Some("HTTP 404")),
                (
                    6,
                    "backend".into(),
                    "pending".into(),
                    0,
                    60,
                    6,
                    None,
                    None,
                    None
                ),
            ]
        );
        let attempts = count(
            &conn,
            "SELECT count(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.destination = '@chat'",
        );
        assert_eq!(attempts, 4);
        let second = count(
            &conn,
            "SELECT a.at FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.seq = 2 AND a.attempt = 2",
        );
        assert_eq!(second, 12);
    }

    #[test]
    fn a_log_kept_in_runs_moves_to_plain_indexes_with_every_accepted_id_in_dedupe() {
        let mut conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        as_left_by(&mut conn, 11);
        fill(&conn, 1_000);
        // The runs written so far held the first 600 ids; the rest were in memory only.
        conn.execute(
            "INSERT INTO dedupe (account, event_id, seq)
             SELECT account, event_id, seq FROM events WHERE seq <= 600",
            [],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        migrate(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(count(&conn, "SELECT count(*) FROM dedupe"), 1_000);
        let leftovers = count(
            &conn,
            "SELECT count(*) FROM sqlite_master WHERE name IN
             ('run_keys', 'key_runs', 'dedupe_runs', 'timeline_bound')",
        );
        assert_eq!(leftovers, 0);
        for (column, index) in [
            ("sender = 's3'", "events_by_sender"),
            ("source = 'o2'", "events_by_source"),
            ("account = 'shop'", "events_by_account"),
            ("event_type = 'paid'", "events_by_type"),
        ] {
            let sql = format!("SELECT seq FROM events WHERE {column} ORDER BY seq DESC LIMIT 5");
            assert!(
                plan(&conn, &sql).contains(index),
                "{sql}: {}",
                plan(&conn, &sql)
            );
        }
        let by_time = "SELECT seq FROM events WHERE received_at >= 10 AND received_at < 20";
        assert!(plan(&conn, by_time).contains("events_by_received"));
        assert_eq!(
            count(&conn, "SELECT count(*) FROM events WHERE sender = 's3'"),
            (1..=1_000).filter(|i| i % 7 == 3).count() as i64
        );
    }

    #[test]
    fn the_consoles_counts_read_the_time_index_alone_and_count_every_row() {
        let mut conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        as_left_by(&mut conn, 16);
        fill(&conn, 1_000);
        migrate(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        for by in [CountBy::Account, CountBy::Minute] {
            let sql = count_sql(by, '?').replace("?1", "100").replace("?2", "900");
            let plan = plan(&conn, &sql);
            assert!(
                plan.contains("COVERING INDEX events_by_received"),
                "{by:?}: {plan}"
            );
        }
        let counted: i64 = conn
            .query_row(
                &count_sql(CountBy::Account, '?'),
                rusqlite::params![100, 900],
                |r| r.get(3),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(counted, 800);
    }
}
