//! The schema: versioned migrations, applied at start under an advisory lock.

use tokio_postgres::Client;

use crate::error::PgError;

/// The schema, one entry per version: entry `n` takes a database from
/// version `n` to `n + 1`. Append only; never edit a released entry.
///
/// Ids are `TEXT COLLATE "C"`: byte order, so `ORDER BY destination_id` is
/// id order whatever the database's default collation. Versions are
/// `BIGINT` holding the `u64`'s bits; times are Unix milliseconds.
///
/// The delivery outbox (migration 3): a destination's failure streak is two
/// nullable columns of its row; `deliveries` and `attempts` reference
/// `destinations (tenant_id, destination_id)` `ON DELETE CASCADE`, so a
/// removed destination takes its pending deliveries and attempts with it;
/// `deliveries` also reference their `events` row, which is deleted with
/// the event's last delivery. Attempts are listed newest first by a
/// backward scan of their primary key `(tenant_id, destination_id,
/// attempt_id)`; claims walk `deliveries_by_due_time`.
const MIGRATIONS: &[&str] = &[
    // 1: destinations and their rotated-out secrets.
    r#"CREATE TABLE destinations (
        tenant_id      TEXT COLLATE "C" NOT NULL,
        destination_id TEXT COLLATE "C" NOT NULL,
        name           TEXT   NOT NULL,
        url            TEXT   NOT NULL,
        created_at_ms  BIGINT NOT NULL,
        updated_at_ms  BIGINT NOT NULL,
        sealed_secret  BYTEA  NOT NULL,
        secret_digest  BYTEA  NOT NULL,
        version        BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, destination_id)
    );
    CREATE INDEX destinations_by_secret_digest ON destinations (secret_digest);
    CREATE TABLE previous_secrets (
        tenant_id      TEXT COLLATE "C" NOT NULL,
        destination_id TEXT COLLATE "C" NOT NULL,
        position       INTEGER NOT NULL,
        sealed_secret  BYTEA   NOT NULL,
        secret_digest  BYTEA   NOT NULL,
        expires_at_ms  BIGINT  NOT NULL,
        PRIMARY KEY (tenant_id, destination_id, position),
        FOREIGN KEY (tenant_id, destination_id)
            REFERENCES destinations (tenant_id, destination_id) ON DELETE CASCADE
    );
    CREATE INDEX previous_secrets_by_secret_digest ON previous_secrets (secret_digest);"#,
    // 2: destinations can be disabled; rows stored before are enabled.
    r#"ALTER TABLE destinations
        ADD COLUMN enabled BOOLEAN NOT NULL DEFAULT true,
        ADD COLUMN disabled_reason TEXT
            CHECK (disabled_reason IN ('manual', 'gone', 'failing'));"#,
    // 3: the delivery outbox (failure streaks, events, deliveries with their
    // leases, attempts) and API tokens.
    r#"ALTER TABLE destinations
        ADD COLUMN failing_since_ms BIGINT,
        ADD COLUMN failing_attempts BIGINT,
        ADD CONSTRAINT destinations_failure_streak
            CHECK ((failing_since_ms IS NULL) = (failing_attempts IS NULL));
    CREATE TABLE events (
        tenant_id     TEXT COLLATE "C" NOT NULL,
        event_id      TEXT COLLATE "C" NOT NULL,
        event_type    TEXT   NOT NULL,
        created_at_ms BIGINT NOT NULL,
        payload       TEXT   NOT NULL,
        PRIMARY KEY (tenant_id, event_id)
    );
    CREATE TABLE deliveries (
        tenant_id           TEXT COLLATE "C" NOT NULL,
        event_id            TEXT COLLATE "C" NOT NULL,
        destination_id      TEXT COLLATE "C" NOT NULL,
        attempt             BIGINT NOT NULL,
        due_at_ms           BIGINT NOT NULL,
        lease_token         BYTEA,
        lease_expires_at_ms BIGINT,
        CHECK ((lease_token IS NULL) = (lease_expires_at_ms IS NULL)),
        PRIMARY KEY (tenant_id, event_id, destination_id),
        FOREIGN KEY (tenant_id, event_id) REFERENCES events (tenant_id, event_id),
        FOREIGN KEY (tenant_id, destination_id)
            REFERENCES destinations (tenant_id, destination_id) ON DELETE CASCADE
    );
    CREATE INDEX deliveries_by_due_time ON deliveries (due_at_ms, lease_expires_at_ms);
    CREATE INDEX deliveries_by_destination ON deliveries (tenant_id, destination_id);
    CREATE TABLE attempts (
        tenant_id          TEXT COLLATE "C" NOT NULL,
        destination_id     TEXT COLLATE "C" NOT NULL,
        attempt_id         TEXT COLLATE "C" NOT NULL,
        event_id           TEXT COLLATE "C" NOT NULL,
        attempt            BIGINT  NOT NULL,
        started_at_ms      BIGINT  NOT NULL,
        duration_ms        BIGINT  NOT NULL,
        outcome            TEXT    NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'refused')),
        response_status    INTEGER,
        error              TEXT,
        next_attempt_at_ms BIGINT,
        PRIMARY KEY (tenant_id, destination_id, attempt_id),
        FOREIGN KEY (tenant_id, destination_id)
            REFERENCES destinations (tenant_id, destination_id) ON DELETE CASCADE
    );
    CREATE TABLE api_tokens (
        token_digest  BYTEA NOT NULL PRIMARY KEY CHECK (length(token_digest) = 32),
        tenant_id     TEXT COLLATE "C" NOT NULL,
        created_at_ms BIGINT NOT NULL
    );"#,
    // 4: the event ids each organization published, kept past their event
    // (see `Outbox::enqueue`): type, payload digest and delivery count, so
    // a publish of the id again is answered as the first one. The events
    // stored already get theirs.
    r#"CREATE TABLE event_ids (
        tenant_id      TEXT COLLATE "C" NOT NULL,
        event_id       TEXT COLLATE "C" NOT NULL,
        created_at_ms  BIGINT NOT NULL,
        event_type     TEXT   NOT NULL,
        payload_sha256 BYTEA  NOT NULL CHECK (length(payload_sha256) = 32),
        destinations   BIGINT NOT NULL CHECK (destinations >= 0),
        PRIMARY KEY (tenant_id, event_id)
    );
    CREATE INDEX event_ids_by_age ON event_ids (tenant_id, created_at_ms);
    INSERT INTO event_ids
        SELECT e.tenant_id, e.event_id, e.created_at_ms, e.event_type,
            sha256(convert_to(e.payload, 'UTF8')),
            (SELECT count(*) FROM deliveries d
             WHERE d.tenant_id = e.tenant_id AND d.event_id = e.event_id)
        FROM events e;"#,
    // 5: what receivers expect. The sealed signing secret (NULL: bearer
    // only) and the one rotated out with each previous secret; the filter,
    // the custom headers and the metadata as parallel text arrays (headers
    // keep their order); the description. `destination_filters` indexes each
    // destination under its filter's keys ('*' for every event): a publish
    // looks up the keys its event type matches instead of reading every
    // destination of the tenant. Existing rows take '*'.
    r#"ALTER TABLE destinations
        ADD COLUMN sealed_signing_secret BYTEA,
        ADD COLUMN filter_types TEXT[] NOT NULL DEFAULT '{}',
        ADD COLUMN header_names TEXT[] NOT NULL DEFAULT '{}',
        ADD COLUMN header_values TEXT[] NOT NULL DEFAULT '{}',
        ADD COLUMN description TEXT NOT NULL DEFAULT '',
        ADD COLUMN metadata_keys TEXT[] NOT NULL DEFAULT '{}',
        ADD COLUMN metadata_values TEXT[] NOT NULL DEFAULT '{}';
    ALTER TABLE previous_secrets ADD COLUMN sealed_signing_secret BYTEA;
    CREATE TABLE destination_filters (
        tenant_id      TEXT COLLATE "C" NOT NULL,
        filter_key     TEXT COLLATE "C" NOT NULL,
        destination_id TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (tenant_id, filter_key, destination_id),
        FOREIGN KEY (tenant_id, destination_id)
            REFERENCES destinations (tenant_id, destination_id) ON DELETE CASCADE
    );
    CREATE INDEX destination_filters_by_destination
        ON destination_filters (tenant_id, destination_id);
    INSERT INTO destination_filters (tenant_id, filter_key, destination_id)
        SELECT tenant_id, '*', destination_id FROM destinations;"#,
];

/// The advisory lock every node takes (for the migration transaction only)
/// before it reads the schema version: nodes starting at once migrate one
/// after another, and the later ones find nothing to do.
/// The key is `b"prets-ds"` as a big-endian integer.
const MIGRATION_LOCK: i64 = i64::from_be_bytes(*b"prets-ds");

/// The schema version this build writes: the number of migrations.
#[must_use]
pub fn schema_version() -> usize {
    MIGRATIONS.len()
}

/// Brings the database to [`schema_version`], in one transaction holding
/// [`MIGRATION_LOCK`]; refuses a database whose version is newer.
pub(crate) async fn migrate(client: &mut Client) -> Result<(), PgError> {
    migrate_to(client, MIGRATIONS.len()).await
}

/// [`migrate`], stopping at version `target` (the tests' old schemas).
pub(crate) async fn migrate_to(client: &mut Client, target: usize) -> Result<(), PgError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INTEGER     NOT NULL PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let found: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    let known = MIGRATIONS.len();
    let start = usize::try_from(found)
        .ok()
        .filter(|v| *v <= known)
        .ok_or_else(|| PgError::schema_too_new(found, known))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().take(target).skip(start) {
        tx.batch_execute(sql).await?;
        let version = i32::try_from(index + 1).map_err(|_| PgError::corrupt("schema version"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
