//! [`DestinationRepo`] for [`SqliteRepo`]: writes on the writer, reads on
//! the readers.

use prets_destinations::delivery::DisabledReason;
use prets_destinations::{
    DestinationId, DestinationRecord, DestinationRepo, InsertOutcome, RemoveOutcome,
    ReplaceOutcome, SecretDigest, TenantId,
};
use rusqlite::{Connection, OptionalExtension as _, params};

use super::SqliteRepo;
use super::claim::{sql_count, sync_failing};
use super::error::{JobResult, SqliteError};
use super::outbox::drop_unleased;
use super::rows::{COLUMNS, millis, read_records, receiver_columns, version};

/// Whether the tenant has `max` destinations or more and none with
/// `record`'s id (which is a duplicate, whatever the count): counted over
/// the primary key, at most `max` rows, in the insert's transaction (the one
/// writer: no insert of the tenant comes between).
fn at_quota(
    conn: &Connection,
    tenant: &str,
    record: &DestinationRecord,
    max: usize,
) -> JobResult<bool> {
    let count: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM destinations WHERE tenant_id = ?1 LIMIT ?2)",
        )?
        .query_row(params![tenant, sql_count(max)], |r| r.get(0))?;
    if usize::try_from(count).unwrap_or(usize::MAX) < max {
        return Ok(false);
    }
    let exists = conn
        .prepare_cached("SELECT 1 FROM destinations WHERE tenant_id = ?1 AND destination_id = ?2")?
        .query_row(params![tenant, record.destination_id.to_string()], |_| {
            Ok(())
        })
        .optional()?
        .is_some();
    Ok(!exists)
}

/// Stores `record`'s previous secrets, replacing those stored for it unless
/// `fresh` (a row just inserted has none: a removed destination's went with
/// it).
fn write_previous_secrets(
    conn: &Connection,
    tenant: &str,
    record: &DestinationRecord,
    fresh: bool,
) -> JobResult<()> {
    if fresh && record.previous_secrets.is_empty() {
        return Ok(());
    }
    let id = record.destination_id.to_string();
    conn.prepare_cached(
        "DELETE FROM previous_secrets WHERE tenant_id = ?1 AND destination_id = ?2",
    )?
    .execute(params![tenant, id])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO previous_secrets (tenant_id, destination_id, position, sealed_secret,
             secret_digest, expires_at_ms, sealed_signing_secret)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (position, previous) in record.previous_secrets.iter().enumerate() {
        let position = i64::try_from(position).map_err(|_| SqliteError::corrupt("position"))?;
        insert.execute(params![
            tenant,
            id,
            position,
            &previous.sealed_secret.to_bytes()[..],
            &previous.secret_digest.as_bytes()[..],
            millis(previous.expires_at),
            previous
                .sealed_signing_secret
                .as_ref()
                .map(|s| s.to_bytes().to_vec()),
        ])?;
    }
    Ok(())
}

/// Indexes `record` under its filter's keys
/// ([`FilterTypes::index_keys`](prets_destinations::delivery::FilterTypes::index_keys)),
/// replacing what was indexed for it unless `fresh` (a row just inserted).
fn write_filter_keys(
    conn: &Connection,
    tenant: &str,
    record: &DestinationRecord,
    fresh: bool,
) -> JobResult<()> {
    let id = record.destination_id.to_string();
    if !fresh {
        conn.prepare_cached(
            "DELETE FROM destination_filters WHERE tenant_id = ?1 AND destination_id = ?2",
        )?
        .execute(params![tenant, id])?;
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO destination_filters (tenant_id, filter_key, destination_id)
         VALUES (?1, ?2, ?3)",
    )?;
    for key in record.filter_types.index_keys() {
        insert.execute(params![tenant, key, id])?;
    }
    Ok(())
}

/// The records alone, for queries of one tenant.
fn records(rows: Vec<(String, DestinationRecord)>) -> Vec<DestinationRecord> {
    rows.into_iter().map(|(_, record)| record).collect()
}

impl DestinationRepo for SqliteRepo {
    type Error = SqliteError;

    async fn insert(
        &self,
        tenant: &TenantId,
        record: &DestinationRecord,
    ) -> Result<InsertOutcome, SqliteError> {
        let tenant = tenant.as_str().to_owned();
        let r = record.clone();
        let max = self.quotas.max_destinations;
        self.writer
            .call(move |conn| {
                if max != usize::MAX && at_quota(conn, &tenant, &r, max)? {
                    return Ok(InsertOutcome::QuotaExceeded);
                }
                let (signing, filter_types, headers, metadata) = receiver_columns(&r)?;
                let changed = conn
                    .prepare_cached(
                        "INSERT INTO destinations (tenant_id, destination_id, name, url,
                             created_at_ms, updated_at_ms, sealed_secret, secret_digest, version,
                             enabled, disabled_reason, sealed_signing_secret, filter_types,
                             headers, description, metadata)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,
                             ?15, ?16)
                         ON CONFLICT (tenant_id, destination_id) DO NOTHING",
                    )?
                    .execute(params![
                        tenant,
                        r.destination_id.to_string(),
                        r.name.as_str(),
                        r.url.as_str(),
                        millis(r.created_at),
                        millis(r.updated_at),
                        &r.sealed_secret.to_bytes()[..],
                        &r.secret_digest.as_bytes()[..],
                        version(r.version),
                        r.enabled,
                        r.disabled_reason.map(DisabledReason::as_str),
                        signing,
                        filter_types,
                        headers,
                        r.description.as_str(),
                        metadata,
                    ])?;
                if changed != 1 {
                    return Ok(InsertOutcome::Duplicate);
                }
                write_previous_secrets(conn, &tenant, &r, true)?;
                write_filter_keys(conn, &tenant, &r, true)?;
                Ok(InsertOutcome::Inserted)
            })
            .await
    }

    async fn get(
        &self,
        tenant: &TenantId,
        id: DestinationId,
    ) -> Result<Option<DestinationRecord>, SqliteError> {
        let tenant = tenant.as_str().to_owned();
        self.readers
            .call(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM destinations
                     WHERE tenant_id = ?1 AND destination_id = ?2"
                ))?;
                let found = read_records(conn, &mut stmt, params![tenant, id.to_string()])?;
                Ok(found.into_iter().next().map(|(_, record)| record))
            })
            .await
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<DestinationRecord>, SqliteError> {
        let tenant = tenant.as_str().to_owned();
        self.readers
            .call(move |conn| {
                // Ids are fixed-length Crockford base32, whose alphabet is in
                // ASCII order: text order is id order.
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM destinations WHERE tenant_id = ?1 ORDER BY destination_id"
                ))?;
                read_records(conn, &mut stmt, params![tenant]).map(records)
            })
            .await
    }

    async fn find_by_digest(
        &self,
        digest: &SecretDigest,
    ) -> Result<Vec<(TenantId, DestinationRecord)>, SqliteError> {
        let digest = *digest.as_bytes();
        self.readers
            .call(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM destinations
                     WHERE (tenant_id, destination_id) IN (
                         SELECT tenant_id, destination_id FROM destinations
                         WHERE secret_digest = ?1
                         UNION
                         SELECT tenant_id, destination_id FROM previous_secrets
                         WHERE secret_digest = ?1)
                     ORDER BY tenant_id, destination_id"
                ))?;
                read_records(conn, &mut stmt, params![&digest[..]])?
                    .into_iter()
                    .map(|(tenant, record)| {
                        let tenant = TenantId::try_from(tenant)
                            .map_err(|_| SqliteError::corrupt("tenant id"))?;
                        Ok((tenant, record))
                    })
                    .collect()
            })
            .await
    }

    async fn list_page(
        &self,
        tenant: &TenantId,
        after: Option<DestinationId>,
        limit: usize,
    ) -> Result<Vec<DestinationRecord>, SqliteError> {
        let tenant = tenant.as_str().to_owned();
        // Every id is greater than the empty string.
        let after = after.map(|id| id.to_string()).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.readers
            .call(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM destinations
                     WHERE tenant_id = ?1 AND destination_id > ?2
                     ORDER BY destination_id LIMIT ?3"
                ))?;
                read_records(conn, &mut stmt, params![tenant, after, limit]).map(records)
            })
            .await
    }

    async fn replace(
        &self,
        tenant: &TenantId,
        expected_version: u64,
        record: &DestinationRecord,
    ) -> Result<ReplaceOutcome, SqliteError> {
        let tenant = tenant.as_str().to_owned();
        let r = record.clone();
        self.writer
            .call(move |conn| {
                let id = r.destination_id.to_string();
                let (signing, filter_types, headers, metadata) = receiver_columns(&r)?;
                // The version check and the write are one statement.
                let changed = conn
                    .prepare_cached(
                        "UPDATE destinations SET name = ?3, url = ?4, created_at_ms = ?5,
                             updated_at_ms = ?6, sealed_secret = ?7, secret_digest = ?8,
                             version = ?9, enabled = ?11, disabled_reason = ?12,
                             failing_since_ms = CASE WHEN ?11 AND NOT enabled THEN NULL
                                                     ELSE failing_since_ms END,
                             failing_attempts = CASE WHEN ?11 AND NOT enabled THEN NULL
                                                     ELSE failing_attempts END,
                             sealed_signing_secret = ?13, filter_types = ?14, headers = ?15,
                             description = ?16, metadata = ?17
                         WHERE tenant_id = ?1 AND destination_id = ?2 AND version = ?10",
                    )?
                    .execute(params![
                        tenant,
                        id,
                        r.name.as_str(),
                        r.url.as_str(),
                        millis(r.created_at),
                        millis(r.updated_at),
                        &r.sealed_secret.to_bytes()[..],
                        &r.secret_digest.as_bytes()[..],
                        version(r.version),
                        version(expected_version),
                        r.enabled,
                        r.disabled_reason.map(DisabledReason::as_str),
                        signing,
                        filter_types,
                        headers,
                        r.description.as_str(),
                        metadata,
                    ])?;
                if changed == 1 {
                    write_previous_secrets(conn, &tenant, &r, false)?;
                    write_filter_keys(conn, &tenant, &r, false)?;
                    if r.enabled {
                        // Enabling a disabled destination cleared its
                        // failure streak (in the statement): its lane is
                        // healthy again.
                        sync_failing(conn, &tenant, &id)?;
                    } else {
                        // In the same write: see `Outbox`'s "Disabling".
                        drop_unleased(conn, &tenant, &id)?;
                    }
                    return Ok(ReplaceOutcome::Replaced);
                }
                let exists = conn
                    .prepare_cached(
                        "SELECT 1 FROM destinations WHERE tenant_id = ?1 AND destination_id = ?2",
                    )?
                    .exists(params![tenant, id])?;
                Ok(if exists {
                    ReplaceOutcome::VersionMismatch
                } else {
                    ReplaceOutcome::NotFound
                })
            })
            .await
    }

    async fn remove(
        &self,
        tenant: &TenantId,
        id: DestinationId,
    ) -> Result<RemoveOutcome, SqliteError> {
        let tenant = tenant.as_str().to_owned();
        self.writer
            .call(move |conn| {
                // Previous secrets go with the row (ON DELETE CASCADE).
                let removed = conn
                    .prepare_cached(
                        "DELETE FROM destinations WHERE tenant_id = ?1 AND destination_id = ?2",
                    )?
                    .execute(params![tenant, id.to_string()])?;
                Ok(if removed == 1 {
                    RemoveOutcome::Removed
                } else {
                    RemoveOutcome::NotFound
                })
            })
            .await
    }
}
