//! Decoding rows into records, and the conversions between the core's
//! values and SQLite's columns.

use std::collections::HashMap;

use prets_destinations::delivery::DisabledReason;
use prets_destinations::secret::SealedSigningSecret;
use prets_destinations::{
    DestinationId, DestinationName, DestinationRecord, DestinationUrl, PreviousSecret,
    SealedSecret, SecretDigest, Timestamp,
};
use rusqlite::{Connection, OptionalExtension as _, Row, params};
use serde::de::DeserializeOwned;

use super::error::{JobResult, SqliteError};

/// [`COLUMNS`] as a literal, for statements written with `concat!`.
macro_rules! record_columns {
    () => {
        "tenant_id, destination_id, name, url, created_at_ms, \
         updated_at_ms, sealed_secret, secret_digest, version, enabled, disabled_reason, \
         sealed_signing_secret, filter_types, headers, description, metadata"
    };
}

/// The columns [`read_records`] expects, in order.
pub(super) const COLUMNS: &str = record_columns!();

/// The destinations of the (tenant id, destination id) pairs of the JSON
/// array `?1` ([`keys_json`]), through the key.
pub(super) const RECORDS_OF_KEYS: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM destinations
     WHERE (tenant_id, destination_id) IN
         (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1))"
);

/// (tenant id, destination id) pairs as one JSON array of pairs, bound as
/// a single parameter.
fn keys_json<'a>(keys: impl Iterator<Item = (&'a str, &'a str)>) -> JobResult<String> {
    let keys: Vec<[&str; 2]> = keys.map(|(t, d)| [t, d]).collect();
    serde_json::to_string(&keys).map_err(|_| SqliteError::corrupt("destination id"))
}

/// The records of the destinations `keys` names (those that exist, each
/// once), by (tenant id, destination id): two queries for the lot.
pub(super) fn records_of<'a>(
    conn: &Connection,
    keys: impl Iterator<Item = (&'a str, &'a str)>,
) -> JobResult<HashMap<(String, String), DestinationRecord>> {
    let keys = keys_json(keys)?;
    let mut stmt = conn.prepare_cached(RECORDS_OF_KEYS)?;
    Ok(read_records(conn, &mut stmt, [keys])?
        .into_iter()
        .map(|(tenant, record)| ((tenant, record.destination_id.to_string()), record))
        .collect())
}

/// The receiver columns of `record` as stored: the sealed signing secret's
/// bytes, then the filter, headers and metadata as JSON text.
pub(super) fn receiver_columns(
    record: &DestinationRecord,
) -> JobResult<(Option<Vec<u8>>, String, String, String)> {
    let json = |r: serde_json::Result<String>| r.map_err(|_| SqliteError::corrupt("receiver"));
    Ok((
        record
            .signing_secret
            .as_ref()
            .map(|s| s.to_bytes().to_vec()),
        json(serde_json::to_string(&record.filter_types))?,
        json(serde_json::to_string(&record.headers))?,
        json(serde_json::to_string(&record.metadata))?,
    ))
}

fn from_json<T: DeserializeOwned>(text: &str, column: &'static str) -> JobResult<T> {
    serde_json::from_str(text).map_err(|_| SqliteError::corrupt(column))
}

fn signing_secret(
    bytes: Option<Vec<u8>>,
    column: &'static str,
) -> JobResult<Option<SealedSigningSecret>> {
    bytes
        .map(|b| SealedSigningSecret::from_bytes(&b).map_err(|_| SqliteError::corrupt(column)))
        .transpose()
}

pub(super) fn millis(t: Timestamp) -> i64 {
    // Timestamps end in year 9999, far below i64::MAX milliseconds.
    i64::try_from(t.unix_millis()).unwrap_or(i64::MAX)
}

pub(super) fn timestamp(ms: i64, column: &'static str) -> JobResult<Timestamp> {
    u64::try_from(ms)
        .ok()
        .and_then(Timestamp::from_unix_millis)
        .ok_or(SqliteError::corrupt(column))
}

/// A version as SQLite's signed 64-bit integer: the same 64 bits, so every
/// `u64` round-trips and compares for equality (versions are never ordered
/// in SQL).
pub(super) fn version(v: u64) -> i64 {
    i64::from_be_bytes(v.to_be_bytes())
}

fn version_from_sql(v: i64) -> u64 {
    u64::from_be_bytes(v.to_be_bytes())
}

fn digest(bytes: Vec<u8>) -> JobResult<SecretDigest> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| SqliteError::corrupt("secret digest"))?;
    Ok(SecretDigest::from_bytes(bytes))
}

/// The raw columns of one row, decoded into a record outside rusqlite's
/// row callback so that decoding errors keep their own type.
struct RawRow {
    tenant_id: String,
    destination_id: String,
    name: String,
    url: String,
    created_at: i64,
    updated_at: i64,
    sealed_secret: Vec<u8>,
    secret_digest: Vec<u8>,
    version: i64,
    enabled: bool,
    disabled_reason: Option<String>,
    sealed_signing_secret: Option<Vec<u8>>,
    filter_types: String,
    headers: String,
    description: String,
    metadata: String,
}

impl RawRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            tenant_id: row.get(0)?,
            destination_id: row.get(1)?,
            name: row.get(2)?,
            url: row.get(3)?,
            created_at: row.get(4)?,
            updated_at: row.get(5)?,
            sealed_secret: row.get(6)?,
            secret_digest: row.get(7)?,
            version: row.get(8)?,
            enabled: row.get(9)?,
            disabled_reason: row.get(10)?,
            sealed_signing_secret: row.get(11)?,
            filter_types: row.get(12)?,
            headers: row.get(13)?,
            description: row.get(14)?,
            metadata: row.get(15)?,
        })
    }

    /// The record, with its `previous_secrets`.
    fn decode(self, previous_secrets: Vec<PreviousSecret>) -> JobResult<DestinationRecord> {
        Ok(DestinationRecord {
            destination_id: DestinationId::try_from(self.destination_id)
                .map_err(|_| SqliteError::corrupt("destination id"))?,
            name: DestinationName::try_from(self.name).map_err(|_| SqliteError::corrupt("name"))?,
            // Not re-judged by today's host policy: see `from_stored`.
            url: DestinationUrl::from_stored(self.url).map_err(|_| SqliteError::corrupt("url"))?,
            created_at: timestamp(self.created_at, "created at")?,
            updated_at: timestamp(self.updated_at, "updated at")?,
            sealed_secret: SealedSecret::from_bytes(&self.sealed_secret)
                .map_err(|_| SqliteError::corrupt("sealed secret"))?,
            secret_digest: digest(self.secret_digest)?,
            version: version_from_sql(self.version),
            previous_secrets,
            enabled: self.enabled,
            disabled_reason: self
                .disabled_reason
                .as_deref()
                .map(|r| {
                    DisabledReason::from_wire(r).ok_or(SqliteError::corrupt("disabled reason"))
                })
                .transpose()?,
            signing_secret: signing_secret(self.sealed_signing_secret, "sealed signing secret")?,
            filter_types: from_json(&self.filter_types, "filter types")?,
            headers: from_json(&self.headers, "headers")?,
            description: self
                .description
                .try_into()
                .map_err(|_| SqliteError::corrupt("description"))?,
            metadata: from_json(&self.metadata, "metadata")?,
        })
    }
}

/// The records of a statement's rows (the [`COLUMNS`]), each with its
/// tenant's id as stored, in the statement's order. Their previous secrets
/// come from one more query for all of them, in the same transaction.
pub(super) fn read_records(
    conn: &Connection,
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> JobResult<Vec<(String, DestinationRecord)>> {
    let raw: Vec<RawRow> = stmt
        .query_map(params, RawRow::read)?
        .collect::<rusqlite::Result<_>>()?;
    let mut previous = previous_secrets(conn, &raw)?;
    raw.into_iter()
        .map(|row| {
            let secrets = previous
                .remove(&(row.tenant_id.clone(), row.destination_id.clone()))
                .unwrap_or_default();
            let tenant = row.tenant_id.clone();
            Ok((tenant, row.decode(secrets)?))
        })
        .collect()
}

/// The previous secrets of every row in `rows`, by (tenant id,
/// destination id), each destination's newest first (as stored): one query
/// for the lot.
fn previous_secrets(
    conn: &Connection,
    rows: &[RawRow],
) -> JobResult<HashMap<(String, String), Vec<PreviousSecret>>> {
    let mut out: HashMap<(String, String), Vec<PreviousSecret>> = HashMap::new();
    if rows.is_empty() {
        return Ok(out);
    }
    let keys = keys_json(
        rows.iter()
            .map(|r| (r.tenant_id.as_str(), r.destination_id.as_str())),
    )?;
    let mut stmt = conn.prepare_cached(
        "SELECT tenant_id, destination_id, sealed_secret, secret_digest, expires_at_ms,
             sealed_signing_secret
         FROM previous_secrets
         WHERE (tenant_id, destination_id) IN
             (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1))
         ORDER BY tenant_id, destination_id, position",
    )?;
    let found = stmt.query_map(params![keys], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, Vec<u8>>(2)?,
            row.get::<_, Vec<u8>>(3)?,
            row.get::<_, i64>(4)?,
            row.get::<_, Option<Vec<u8>>>(5)?,
        ))
    })?;
    for row in found {
        let (tenant, id, sealed, secret_digest, expires_at, signing) = row?;
        out.entry((tenant, id)).or_default().push(PreviousSecret {
            sealed_secret: SealedSecret::from_bytes(&sealed)
                .map_err(|_| SqliteError::corrupt("previous sealed secret"))?,
            secret_digest: digest(secret_digest)?,
            expires_at: timestamp(expires_at, "previous secret expiry")?,
            sealed_signing_secret: signing_secret(signing, "previous sealed signing secret")?,
        });
    }
    Ok(out)
}

/// The tenant's pending deliveries, as the `deliveries` triggers count them.
pub(super) fn pending(conn: &Connection, tenant: &str) -> JobResult<usize> {
    let n: Option<i64> = conn
        .prepare_cached("SELECT pending FROM pending_counts WHERE tenant_id = ?1")?
        .query_row(params![tenant], |r| r.get(0))
        .optional()?;
    usize::try_from(n.unwrap_or(0)).map_err(|_| SqliteError::corrupt("pending count"))
}
