//! The schema: versioned migrations, applied at start under an advisory lock.

use deadpool_postgres::Client;

use crate::error::PgError;

/// The schema, one entry per version: entry `n` takes a database from
/// version `n` to `n + 1`. Append only; never edit a released entry.
///
/// Ids are `TEXT COLLATE "C"`: byte order, so `ORDER BY destination_id` is
/// id order whatever the database's default collation. Versions are
/// `BIGINT` holding the `u64`'s bits; times are Unix milliseconds.
///
/// Room for the delivery outbox: a later migration adds the destination's
/// `enabled`, `disabled_reason` and failure-streak columns (with defaults,
/// so existing rows load as enabled) and the events, deliveries and
/// attempts tables, whose rows reference `destinations (tenant_id,
/// destination_id)` `ON DELETE CASCADE` as `previous_secrets` does here.
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
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(start) {
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
