//! The PostgreSQL schema as numbered migrations, applied once at open.
//!
//! Owns every `CREATE` statement of this engine. Several nodes may start at the same
//! moment: migrations run under a session advisory lock, so one node applies them and the
//! others find them applied. A migration, once released, is never edited: changes are new
//! entries at the end. The table `schema_version` records how many were applied.

use tokio_postgres::Client;

use crate::store::StoreError;

/// The advisory lock key migrations hold (any constant, fixed for ever).
const MIGRATION_LOCK: i64 = 0x686f_6f6b_6761_7465;

/// Each entry is one migration; its index + 1 is the schema version it produces.
const MIGRATIONS: &[&str] = &[
    // 1: the audit log, dedupe, accounts, the change log, tokens, the chains' heads and
    // checkpoints, the outbox with its claims, delivery attempts and the probe's table.
    // Integers the hash chain covers are BIGINT, as SQLite's INTEGER, so a row hashes the
    // same in either engine.
    "
    CREATE TABLE events (
        seq            BIGINT PRIMARY KEY,
        received_at    BIGINT NOT NULL,
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
        body           BYTEA NOT NULL,
        body_size      BIGINT NOT NULL,
        body_sha256    BYTEA,
        body_truncated BIGINT NOT NULL,
        handle_micros  BIGINT NOT NULL,
        hash           BYTEA,
        streamed       BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX events_by_account ON events (account, seq);
    CREATE INDEX events_by_sender ON events (sender, seq) WHERE sender IS NOT NULL;
    CREATE INDEX events_by_source ON events (source, seq) WHERE source IS NOT NULL;
    CREATE INDEX events_by_type ON events (event_type, seq) WHERE event_type IS NOT NULL;
    CREATE INDEX events_by_received ON events (received_at);
    CREATE INDEX events_rejected ON events (seq) WHERE status = 'rejected';
    CREATE INDEX events_duplicate ON events (seq) WHERE status = 'duplicate';
    CREATE INDEX events_handshake ON events (seq) WHERE status = 'handshake';
    CREATE INDEX events_by_reason ON events (reason, seq) WHERE reason IS NOT NULL;
    CREATE INDEX events_streamed ON events (seq) WHERE streamed = 1;
    CREATE INDEX events_streamed_by_account ON events (account, seq) WHERE streamed = 1;
    CREATE TABLE dedupe (
        account  TEXT NOT NULL,
        event_id TEXT NOT NULL,
        seq      BIGINT NOT NULL,
        PRIMARY KEY (account, event_id)
    );
    CREATE TABLE accounts (
        name       TEXT PRIMARY KEY,
        spec       TEXT NOT NULL,
        listening  BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE changes (
        seq     BIGINT PRIMARY KEY,
        at      BIGINT NOT NULL,
        actor   TEXT NOT NULL,
        action  TEXT NOT NULL,
        account TEXT,
        detail  TEXT NOT NULL,
        hash    BYTEA
    );
    CREATE INDEX changes_by_account ON changes (account, seq);
    CREATE INDEX changes_by_action ON changes (action, seq);
    CREATE TABLE tokens (
        name       TEXT PRIMARY KEY,
        role       TEXT NOT NULL,
        hash       BYTEA NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE chain_heads (
        log  TEXT PRIMARY KEY,
        seq  BIGINT NOT NULL,
        hash BYTEA NOT NULL
    );
    INSERT INTO chain_heads (log, seq, hash) VALUES
        ('events', 0, '\\x0000000000000000000000000000000000000000000000000000000000000000'),
        ('changes', 0, '\\x0000000000000000000000000000000000000000000000000000000000000000');
    CREATE TABLE chain_checkpoints (
        log     TEXT PRIMARY KEY,
        through BIGINT NOT NULL,
        pruned  BIGINT NOT NULL,
        hash    BYTEA NOT NULL,
        at      BIGINT NOT NULL
    );
    CREATE TABLE outbox (
        seq             BIGINT PRIMARY KEY,
        account         TEXT NOT NULL,
        recipient       TEXT NOT NULL,
        text            TEXT NOT NULL,
        event_id        TEXT,
        event_type      TEXT,
        status          TEXT NOT NULL,
        attempts        BIGINT NOT NULL DEFAULT 0,
        next_attempt_at BIGINT NOT NULL,
        last_error      TEXT,
        claimed_by      TEXT,
        claimed_until   BIGINT
    );
    CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status IN ('pending', 'retrying');
    CREATE TABLE forward_attempts (
        seq         BIGINT NOT NULL,
        attempt     BIGINT NOT NULL,
        at          BIGINT NOT NULL,
        outcome     TEXT NOT NULL,
        http_status BIGINT,
        detail      TEXT,
        PRIMARY KEY (seq, attempt)
    );
    CREATE TABLE health_probe (
        id  BIGSERIAL PRIMARY KEY,
        pad BYTEA NOT NULL
    );
    ",
    // Destinations: an account's own HTTP endpoints (spec without secrets, signing keys
    // sealed), one delivery row per (event, destination) written with the event, claimed
    // by one node at a time, and every attempt.
    "
    CREATE TABLE destinations (
        account       TEXT NOT NULL,
        name          TEXT NOT NULL,
        spec          TEXT NOT NULL,
        keys          TEXT NOT NULL,
        max_in_flight BIGINT NOT NULL,
        created_at    BIGINT NOT NULL,
        updated_at    BIGINT NOT NULL,
        PRIMARY KEY (account, name)
    );
    CREATE TABLE deliveries (
        id              BIGSERIAL PRIMARY KEY,
        seq             BIGINT NOT NULL,
        account         TEXT NOT NULL,
        destination     TEXT NOT NULL,
        status          TEXT NOT NULL,
        attempts        BIGINT NOT NULL DEFAULT 0,
        next_attempt_at BIGINT NOT NULL,
        created_at      BIGINT NOT NULL,
        last_error      TEXT,
        claimed_by      TEXT,
        claimed_until   BIGINT,
        UNIQUE (seq, destination)
    );
    CREATE INDEX deliveries_due ON deliveries (account, destination, seq)
        WHERE status IN ('pending', 'retrying');
    CREATE INDEX deliveries_by_destination ON deliveries (account, destination, created_at);
    CREATE TABLE delivery_attempts (
        delivery_id BIGINT NOT NULL,
        attempt     BIGINT NOT NULL,
        at          BIGINT NOT NULL,
        outcome     TEXT NOT NULL,
        http_status BIGINT,
        latency_ms  BIGINT NOT NULL,
        detail      TEXT,
        PRIMARY KEY (delivery_id, attempt)
    );
    ",
    // 3: a checkpoint carries the audit key's signature; a dedupe id outlives its pruned
    // event, stamped with the event's arrival time (NULL while the event is kept), and is
    // forgotten past the replay horizon.
    "
    ALTER TABLE chain_checkpoints ADD COLUMN signature BYTEA;
    ALTER TABLE dedupe ADD COLUMN received_at BIGINT;
    CREATE INDEX dedupe_expiry ON dedupe (received_at) WHERE received_at IS NOT NULL;
    ",
    // 4: one outbox. A chat status message is a delivery to the reserved destination
    // `@chat` (a name no destination can take), carrying its recipient and rendered text;
    // the chat outbox's rows (every status, attempts, next time, last error, claims) and
    // their attempts move over, queued at their event's arrival, and its tables go.
    "
    ALTER TABLE deliveries ADD COLUMN recipient TEXT;
    ALTER TABLE deliveries ADD COLUMN text TEXT;
    INSERT INTO deliveries (seq, account, destination, status, attempts, next_attempt_at,
            created_at, last_error, claimed_by, claimed_until, recipient, text)
        SELECT o.seq, o.account, '@chat', o.status, o.attempts, o.next_attempt_at,
            coalesce(e.received_at, o.next_attempt_at), o.last_error, o.claimed_by,
            o.claimed_until, o.recipient, o.text
        FROM outbox o LEFT JOIN events e ON e.seq = o.seq
        ORDER BY o.seq;
    INSERT INTO delivery_attempts (delivery_id, attempt, at, outcome, http_status, latency_ms,
            detail)
        SELECT d.id, f.attempt, f.at, f.outcome, f.http_status, 0, f.detail
        FROM forward_attempts f JOIN deliveries d ON d.seq = f.seq AND d.destination = '@chat';
    DROP TABLE forward_attempts;
    DROP TABLE outbox;
    ",
];

/// Applies every migration the database has not seen yet, under the migration lock, each
/// in its own transaction.
pub(super) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    migrate_to(client, MIGRATIONS.len()).await
}

/// Applies the migrations the database has not seen yet up to version `version`, under
/// the migration lock.
pub(super) async fn migrate_to(client: &mut Client, version: usize) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = apply(client, version.min(MIGRATIONS.len())).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    if let Err(newer) = result? {
        return Err(StoreError::Unavailable(format!(
            "the database's schema is at version {newer}, newer than this hookgate knows ({}); run the newer hookgate",
            latest()
        )));
    }
    unlocked?;
    Ok(())
}

/// Applies what is missing; a database at a newer version than this build knows is its
/// version, as the inner error.
async fn apply(client: &mut Client, upto: usize) -> Result<Result<(), i32>, tokio_postgres::Error> {
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .await?;
    let applied: i32 = client
        .query_opt("SELECT version FROM schema_version", &[])
        .await?
        .map_or(0, |r| r.get(0));
    if applied > latest() {
        // A newer hookgate migrated this database: this one would misread it.
        return Ok(Err(applied));
    }
    for (i, sql) in MIGRATIONS[..upto]
        .iter()
        .enumerate()
        .skip(applied.max(0) as usize)
    {
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        let version = (i + 1) as i32;
        tx.execute("DELETE FROM schema_version", &[]).await?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        tx.commit().await?;
    }
    Ok(Ok(()))
}

/// How many migrations this build knows.
pub(super) fn latest() -> i32 {
    MIGRATIONS.len() as i32
}
