//! The schema and the connection settings: migrations, the writer's
//! pragmas (WAL, `synchronous = FULL`) and the readers' (read-only,
//! `query_only`).

use std::path::Path;
use std::sync::Arc;

use rusqlite::config::DbConfig;
use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest as _, Sha256};

use super::error::{ErrorKind, SqliteError};

/// The schema, one entry per version: entry `n` takes a database from
/// `user_version` `n` to `n + 1`. Append only; never edit a released entry.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: destinations and API tokens.
    "CREATE TABLE destinations (
        tenant_id      TEXT    NOT NULL,
        destination_id TEXT    NOT NULL,
        name           TEXT    NOT NULL,
        url            TEXT    NOT NULL,
        created_at_ms  INTEGER NOT NULL,
        updated_at_ms  INTEGER NOT NULL,
        sealed_secret  BLOB    NOT NULL,
        secret_digest  BLOB    NOT NULL,
        PRIMARY KEY (tenant_id, destination_id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX destinations_by_secret_digest ON destinations (secret_digest);
    CREATE TABLE api_tokens (
        token_digest  BLOB    NOT NULL PRIMARY KEY,
        tenant_id     TEXT    NOT NULL,
        created_at_ms INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;",
    // 2: versions and rotated-out secrets.
    "ALTER TABLE destinations ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    CREATE TABLE previous_secrets (
        tenant_id      TEXT    NOT NULL,
        destination_id TEXT    NOT NULL,
        position       INTEGER NOT NULL,
        sealed_secret  BLOB    NOT NULL,
        secret_digest  BLOB    NOT NULL,
        expires_at_ms  INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, destination_id, position),
        FOREIGN KEY (tenant_id, destination_id)
            REFERENCES destinations (tenant_id, destination_id) ON DELETE CASCADE
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX previous_secrets_by_secret_digest ON previous_secrets (secret_digest);",
    // 3: destinations can be disabled; rows stored before are enabled.
    "ALTER TABLE destinations ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1
        CHECK (enabled IN (0, 1));
    ALTER TABLE destinations ADD COLUMN disabled_reason TEXT
        CHECK (disabled_reason IN ('manual', 'gone', 'failing'));",
    // 4: the delivery outbox. A destination's failure streak lives on its
    // row (both columns set, or neither); events, their pending deliveries
    // and the attempts made. Deliveries and attempts go with their
    // destination; an event row goes with its last delivery.
    "ALTER TABLE destinations ADD COLUMN streak_since_ms INTEGER;
    ALTER TABLE destinations ADD COLUMN streak_attempts INTEGER
        CHECK ((streak_attempts IS NULL) = (streak_since_ms IS NULL)
            AND (streak_attempts IS NULL OR streak_attempts BETWEEN 1 AND 4294967295));
    CREATE INDEX destinations_disabled ON destinations (tenant_id, destination_id)
        WHERE enabled = 0;
    CREATE TABLE events (
        tenant_id     TEXT    NOT NULL,
        event_id      TEXT    NOT NULL,
        event_type    TEXT    NOT NULL,
        created_at_ms INTEGER NOT NULL,
        payload       TEXT    NOT NULL,
        PRIMARY KEY (tenant_id, event_id)
    ) STRICT;
    CREATE TABLE deliveries (
        tenant_id        TEXT    NOT NULL,
        event_id         TEXT    NOT NULL,
        destination_id   TEXT    NOT NULL,
        attempt          INTEGER NOT NULL CHECK (attempt BETWEEN 0 AND 4294967295),
        due_at_ms        INTEGER NOT NULL,
        lease_token      BLOB    CHECK (length(lease_token) = 16),
        lease_expires_ms INTEGER,
        CHECK ((lease_token IS NULL) = (lease_expires_ms IS NULL)),
        PRIMARY KEY (tenant_id, event_id, destination_id),
        FOREIGN KEY (tenant_id, destination_id)
            REFERENCES destinations (tenant_id, destination_id) ON DELETE CASCADE,
        FOREIGN KEY (tenant_id, event_id) REFERENCES events (tenant_id, event_id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX deliveries_due ON deliveries
        (due_at_ms, tenant_id, event_id, destination_id, lease_expires_ms);
    CREATE INDEX deliveries_by_destination ON deliveries (tenant_id, destination_id);
    CREATE TRIGGER events_go_with_their_last_delivery AFTER DELETE ON deliveries
        WHEN NOT EXISTS (SELECT 1 FROM deliveries
                         WHERE tenant_id = OLD.tenant_id AND event_id = OLD.event_id)
    BEGIN
        DELETE FROM events WHERE tenant_id = OLD.tenant_id AND event_id = OLD.event_id;
    END;
    CREATE TABLE attempts (
        tenant_id          TEXT    NOT NULL,
        destination_id     TEXT    NOT NULL,
        attempt_id         TEXT    NOT NULL,
        event_id           TEXT    NOT NULL,
        attempt            INTEGER NOT NULL CHECK (attempt BETWEEN 0 AND 4294967295),
        started_at_ms      INTEGER NOT NULL,
        duration_ms        INTEGER NOT NULL,
        outcome            TEXT    NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'refused')),
        response_status    INTEGER CHECK (response_status BETWEEN 0 AND 65535),
        error              TEXT,
        next_attempt_at_ms INTEGER,
        PRIMARY KEY (tenant_id, destination_id, attempt_id),
        FOREIGN KEY (tenant_id, destination_id)
            REFERENCES destinations (tenant_id, destination_id) ON DELETE CASCADE
    ) STRICT, WITHOUT ROWID;",
    // 5: the failure streak's columns take the names PostgreSQL gives them
    // (the CHECK follows the rename).
    "ALTER TABLE destinations RENAME COLUMN streak_since_ms TO failing_since_ms;
    ALTER TABLE destinations RENAME COLUMN streak_attempts TO failing_attempts;",
    // 6: fair claims through indexes (see outbox.rs and claim.rs). A lane
    // is a destination with deliveries: `ready` while it may have one to
    // offer (then in its organization's ring of its kind, by `turn`), else
    // asleep until `wake_ms` (its earliest due time or lease expiry; NULL:
    // nothing pending). `failing` mirrors the destination's failure streak.
    // `rings` holds the organizations that may have ready lanes of a kind,
    // by turn; `turns` counts turns. The global due-order index and the
    // claim's sweep of disabled destinations give way to per-lane indexes.
    "CREATE TABLE lanes (
        tenant_id      TEXT    NOT NULL,
        destination_id TEXT    NOT NULL,
        failing        INTEGER NOT NULL CHECK (failing IN (0, 1)),
        ready          INTEGER NOT NULL CHECK (ready IN (0, 1)),
        wake_ms        INTEGER CHECK (wake_ms IS NULL OR ready = 0),
        turn           INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, destination_id),
        FOREIGN KEY (tenant_id, destination_id)
            REFERENCES destinations (tenant_id, destination_id) ON DELETE CASCADE
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX lanes_ready ON lanes (tenant_id, failing, turn) WHERE ready = 1;
    CREATE INDEX lanes_waking ON lanes (wake_ms) WHERE wake_ms IS NOT NULL;
    CREATE TABLE rings (
        tenant_id TEXT    NOT NULL,
        failing   INTEGER NOT NULL CHECK (failing IN (0, 1)),
        turn      INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, failing)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX rings_by_turn ON rings (failing, turn);
    CREATE TABLE turns (
        id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 0),
        next INTEGER NOT NULL
    ) STRICT;
    INSERT INTO turns (id, next) VALUES (0, 1);
    INSERT INTO lanes (tenant_id, destination_id, failing, ready, wake_ms, turn)
        SELECT d.tenant_id, d.destination_id, s.failing_since_ms IS NOT NULL, 0,
            min(d.due_at_ms), 0
        FROM deliveries d
        JOIN destinations s
            ON s.tenant_id = d.tenant_id AND s.destination_id = d.destination_id
        GROUP BY d.tenant_id, d.destination_id;
    DROP INDEX deliveries_due;
    DROP INDEX deliveries_by_destination;
    DROP INDEX destinations_disabled;
    CREATE INDEX deliveries_by_lane ON deliveries
        (tenant_id, destination_id, due_at_ms, event_id, lease_expires_ms);
    CREATE INDEX deliveries_leased ON deliveries
        (tenant_id, destination_id, lease_expires_ms) WHERE lease_token IS NOT NULL;",
    // 7: the event ids each organization published, kept past their event
    // (see `Outbox::enqueue`): type, payload digest and delivery count, so
    // a publish of the id again is answered as the first one. The events
    // stored already get theirs (`sha256` is registered by `migrate_to`).
    "CREATE TABLE event_ids (
        tenant_id      TEXT    NOT NULL,
        event_id       TEXT    NOT NULL,
        created_at_ms  INTEGER NOT NULL,
        event_type     TEXT    NOT NULL,
        payload_sha256 BLOB    NOT NULL CHECK (length(payload_sha256) = 32),
        destinations   INTEGER NOT NULL CHECK (destinations >= 0),
        PRIMARY KEY (tenant_id, event_id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX event_ids_by_age ON event_ids (tenant_id, created_at_ms);
    INSERT INTO event_ids
        SELECT e.tenant_id, e.event_id, e.created_at_ms, e.event_type, sha256(e.payload),
            (SELECT count(*) FROM deliveries d
             WHERE d.tenant_id = e.tenant_id AND d.event_id = e.event_id)
        FROM events e;",
    // 8: what receivers expect. The sealed signing secret (NULL: bearer
    // only), and the one rotated out with each previous secret; the filter,
    // custom headers, description and metadata as JSON text (rows stored
    // before have none). `destination_filters` indexes each destination
    // under its filter's keys ('*' for every event), so that publishing
    // looks up the destinations an event type matches instead of reading
    // every destination of the tenant; existing rows take '*'.
    "ALTER TABLE destinations ADD COLUMN sealed_signing_secret BLOB;
    ALTER TABLE destinations ADD COLUMN filter_types TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE destinations ADD COLUMN headers TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE destinations ADD COLUMN description TEXT NOT NULL DEFAULT '';
    ALTER TABLE destinations ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE previous_secrets ADD COLUMN sealed_signing_secret BLOB;
    CREATE TABLE destination_filters (
        tenant_id      TEXT NOT NULL,
        filter_key     TEXT NOT NULL,
        destination_id TEXT NOT NULL,
        PRIMARY KEY (tenant_id, filter_key, destination_id),
        FOREIGN KEY (tenant_id, destination_id)
            REFERENCES destinations (tenant_id, destination_id) ON DELETE CASCADE
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX destination_filters_by_destination
        ON destination_filters (tenant_id, destination_id);
    INSERT INTO destination_filters (tenant_id, filter_key, destination_id)
        SELECT tenant_id, '*', destination_id FROM destinations;",
    // 9: the event log (see `EventLog`). Events stay after their last
    // delivery until purged; indexes list them newest first (all, or of
    // one type) and purge the oldest. A delivery and its attempts say
    // whether an operator queued it (`manual`). `dropped_deliveries` keeps
    // each delivery a disable dropped (a trigger: every delete of a
    // disabled destination's delivery is one), until its event is purged.
    "DROP TRIGGER events_go_with_their_last_delivery;
    ALTER TABLE deliveries ADD COLUMN manual INTEGER NOT NULL DEFAULT 0
        CHECK (manual IN (0, 1));
    ALTER TABLE attempts ADD COLUMN manual INTEGER NOT NULL DEFAULT 0
        CHECK (manual IN (0, 1));
    CREATE INDEX events_newest ON events (tenant_id, created_at_ms, event_id);
    CREATE INDEX events_newest_of_type ON events
        (tenant_id, event_type, created_at_ms, event_id);
    CREATE INDEX events_by_age ON events (created_at_ms);
    CREATE INDEX attempts_by_event ON attempts (tenant_id, event_id, destination_id);
    CREATE INDEX attempts_by_age ON attempts (started_at_ms);
    CREATE TABLE dropped_deliveries (
        tenant_id      TEXT NOT NULL,
        event_id       TEXT NOT NULL,
        destination_id TEXT NOT NULL,
        PRIMARY KEY (tenant_id, event_id, destination_id),
        FOREIGN KEY (tenant_id, destination_id)
            REFERENCES destinations (tenant_id, destination_id) ON DELETE CASCADE
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX dropped_deliveries_by_destination
        ON dropped_deliveries (tenant_id, destination_id);
    CREATE TRIGGER deliveries_dropped_by_a_disable AFTER DELETE ON deliveries
        WHEN EXISTS (SELECT 1 FROM destinations
                     WHERE tenant_id = OLD.tenant_id AND destination_id = OLD.destination_id
                         AND enabled = 0)
    BEGIN
        INSERT OR IGNORE INTO dropped_deliveries (tenant_id, event_id, destination_id)
            VALUES (OLD.tenant_id, OLD.event_id, OLD.destination_id);
    END;",
    // 10: each organization's pending deliveries, counted as rows come and
    // go (triggers, in the writes that add and finish them, cascades
    // included), so that the quota check of an enqueue reads one row
    // instead of counting the organization's queue.
    "CREATE TABLE pending_counts (
        tenant_id TEXT    NOT NULL PRIMARY KEY,
        pending   INTEGER NOT NULL CHECK (pending >= 0)
    ) STRICT, WITHOUT ROWID;
    INSERT INTO pending_counts (tenant_id, pending)
        SELECT tenant_id, count(*) FROM deliveries GROUP BY tenant_id;
    CREATE TRIGGER pending_counts_add AFTER INSERT ON deliveries
    BEGIN
        INSERT INTO pending_counts (tenant_id, pending) VALUES (NEW.tenant_id, 1)
            ON CONFLICT (tenant_id) DO UPDATE SET pending = pending + 1;
    END;
    CREATE TRIGGER pending_counts_remove AFTER DELETE ON deliveries
    BEGIN
        UPDATE pending_counts SET pending = pending - 1 WHERE tenant_id = OLD.tenant_id;
    END;",
];

/// The schema version this build writes: the number of migrations.
#[must_use]
pub fn schema_version() -> usize {
    MIGRATIONS.len()
}

/// Settings of the writer's connection.
pub(super) fn configure(conn: &Connection) -> Result<(), SqliteError> {
    // WAL: readers never block the writer; with synchronous = FULL every
    // commit syncs the WAL before it returns, so a 2xx is never sent for a
    // record a power cut could still take back (NORMAL would only sync at
    // checkpoints).
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SqliteError::corrupt("journal mode"));
    }
    // Temporary files (statement journals of savepoints and triggers, sorts)
    // in memory: a file created and deleted per job cost more than the job.
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;
         PRAGMA temp_store = MEMORY;",
    )?;
    cache_plans(conn)?;
    Ok(())
}

/// Keeps each prepared statement's plan whatever its parameters: the
/// statement cache, and the query planner's stability guarantee. Without
/// it, SQLite prepares a statement again whenever a parameter its plan
/// looked at changes (every `LIMIT ?`): a claim's statements were parsed
/// and planned again at most runs. The plans are the ones the plan tests
/// check, chosen without the parameters' values.
fn cache_plans(conn: &Connection) -> Result<(), SqliteError> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// Prepared statements each connection keeps (`prepare_cached`): more than
/// the writer's distinct statements (a claim alone has 18), so none is
/// parsed and planned again. rusqlite keeps 16 by default.
pub(super) const STATEMENT_CACHE: usize = 256;

/// A reader's connection to the (already migrated, WAL) database at
/// `path`: opened read-only and `query_only`, so no statement on it can
/// write.
pub(super) fn open_reader(path: &Path) -> Result<Connection, SqliteError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch(
        "PRAGMA query_only = ON;
         PRAGMA busy_timeout = 5000;
         PRAGMA temp_store = MEMORY;",
    )?;
    cache_plans(&conn)?;
    Ok(conn)
}

/// Applies the migrations the database lacks, each in its own transaction.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), SqliteError> {
    migrate_to(conn, MIGRATIONS.len())
}

/// [`migrate`], stopping at version `target` (the tests' old schemas).
pub(super) fn migrate_to(conn: &mut Connection, target: usize) -> Result<(), SqliteError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len();
    let start = usize::try_from(found)
        .ok()
        .filter(|v| *v <= known)
        .ok_or(SqliteError(Arc::new(ErrorKind::SchemaTooNew {
            found,
            known,
        })))?;
    // Migration 6 digests the stored payloads as `Payload::digest` does.
    conn.create_scalar_function(
        "sha256",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| Ok(Sha256::digest(ctx.get_raw(0).as_bytes()?).to_vec()),
    )?;
    for (version, sql) in MIGRATIONS.iter().enumerate().take(target).skip(start) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        // `user_version` takes no bound parameter; the value is our own count.
        tx.execute_batch(&format!("PRAGMA user_version = {}", version + 1))?;
        tx.commit()?;
    }
    Ok(())
}
