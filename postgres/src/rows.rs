//! Rows and values as stored: times as Unix milliseconds, versions as the
//! `u64`'s bits in a `BIGINT`, and the destination record read back with its
//! previous secrets in one statement.

use prets_destinations::delivery::{DisabledReason, FilterTypes};
use prets_destinations::description::Description;
use prets_destinations::headers::CustomHeaders;
use prets_destinations::metadata::Metadata;
use prets_destinations::secret::SealedSigningSecret;
use prets_destinations::{
    DestinationId, DestinationName, DestinationRecord, DestinationUrl, PreviousSecret,
    SealedSecret, SecretDigest, Timestamp,
};
use tokio_postgres::Row;

use crate::error::PgError;

/// The record columns, with the previous secrets as three arrays in
/// position order, from one statement: the page and its previous secrets
/// are one snapshot and one round trip, never one query per record.
/// `{filter}` selects rows of `destinations d`; `{limit}` bounds them.
pub(crate) fn select(filter: &str, limit: &str) -> String {
    format!(
        "SELECT d.tenant_id, d.destination_id, d.name, d.url, d.created_at_ms, d.updated_at_ms,
             d.sealed_secret, d.secret_digest, d.version, d.enabled, d.disabled_reason,
             COALESCE(p.sealed, '{{}}'), COALESCE(p.digests, '{{}}'), COALESCE(p.expires, '{{}}'),
             COALESCE(p.signing, '{{}}'), d.sealed_signing_secret, d.filter_types,
             d.header_names, d.header_values, d.description, d.metadata_keys, d.metadata_values
         FROM (SELECT * FROM destinations d WHERE {filter}
               ORDER BY d.tenant_id, d.destination_id {limit}) d
         LEFT JOIN LATERAL (
             SELECT array_agg(s.sealed_secret ORDER BY s.position) AS sealed,
                    array_agg(s.secret_digest ORDER BY s.position) AS digests,
                    array_agg(s.expires_at_ms ORDER BY s.position) AS expires,
                    array_agg(s.sealed_signing_secret ORDER BY s.position) AS signing
             FROM previous_secrets s
             WHERE s.tenant_id = d.tenant_id AND s.destination_id = d.destination_id
         ) p ON true
         ORDER BY d.tenant_id, d.destination_id"
    )
}

pub(crate) fn millis(t: Timestamp) -> i64 {
    // Timestamps end in year 9999, far below i64::MAX milliseconds.
    i64::try_from(t.unix_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn timestamp(ms: i64, column: &'static str) -> Result<Timestamp, PgError> {
    u64::try_from(ms)
        .ok()
        .and_then(Timestamp::from_unix_millis)
        .ok_or(PgError::corrupt(column))
}

/// A version as PostgreSQL's signed `BIGINT`: the same 64 bits, so every
/// `u64` round-trips and compares for equality (versions are never ordered
/// in SQL).
pub(crate) fn version(v: u64) -> i64 {
    i64::from_be_bytes(v.to_be_bytes())
}

fn version_from_sql(v: i64) -> u64 {
    u64::from_be_bytes(v.to_be_bytes())
}

fn digest(bytes: &[u8], column: &'static str) -> Result<SecretDigest, PgError> {
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| PgError::corrupt(column))?;
    Ok(SecretDigest::from_bytes(bytes))
}

fn signing_secret(
    bytes: Option<&[u8]>,
    column: &'static str,
) -> Result<Option<SealedSigningSecret>, PgError> {
    bytes
        .map(|b| SealedSigningSecret::from_bytes(b).map_err(|_| PgError::corrupt(column)))
        .transpose()
}

pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One row of [`select`]: the tenant and its record.
pub(crate) fn decode(row: &Row) -> Result<(String, DestinationRecord), PgError> {
    let tenant: String = row.try_get(0)?;
    let sealed: Vec<Vec<u8>> = row.try_get(11)?;
    let digests: Vec<Vec<u8>> = row.try_get(12)?;
    let expires: Vec<i64> = row.try_get(13)?;
    let signing: Vec<Option<Vec<u8>>> = row.try_get(14)?;
    if sealed.len() != digests.len()
        || sealed.len() != expires.len()
        || sealed.len() != signing.len()
    {
        return Err(PgError::corrupt("previous secrets"));
    }
    let previous_secrets = sealed
        .iter()
        .zip(&digests)
        .zip(&expires)
        .zip(signing)
        .map(|(((sealed, d), expires_at), signing)| {
            Ok(PreviousSecret {
                sealed_secret: SealedSecret::from_bytes(sealed)
                    .map_err(|_| PgError::corrupt("previous sealed secret"))?,
                secret_digest: digest(d, "previous secret digest")?,
                expires_at: timestamp(*expires_at, "previous secret expiry")?,
                sealed_signing_secret: signing_secret(
                    signing.as_deref(),
                    "previous signing secret",
                )?,
            })
        })
        .collect::<Result<Vec<_>, PgError>>()?;
    let pairs = |names: usize, values: usize, column: &'static str| {
        let names: Vec<String> = row.try_get(names)?;
        let values: Vec<String> = row.try_get(values)?;
        if names.len() == values.len() {
            Ok(names.into_iter().zip(values).collect::<Vec<_>>())
        } else {
            Err(PgError::corrupt(column))
        }
    };
    let record = DestinationRecord {
        destination_id: DestinationId::try_from(row.try_get::<_, &str>(1)?)
            .map_err(|_| PgError::corrupt("destination id"))?,
        name: DestinationName::try_from(row.try_get::<_, String>(2)?)
            .map_err(|_| PgError::corrupt("name"))?,
        // Not re-judged by today's host policy: see `from_stored`.
        url: DestinationUrl::from_stored(row.try_get::<_, String>(3)?)
            .map_err(|_| PgError::corrupt("url"))?,
        created_at: timestamp(row.try_get(4)?, "created at")?,
        updated_at: timestamp(row.try_get(5)?, "updated at")?,
        sealed_secret: SealedSecret::from_bytes(row.try_get::<_, &[u8]>(6)?)
            .map_err(|_| PgError::corrupt("sealed secret"))?,
        secret_digest: digest(row.try_get::<_, &[u8]>(7)?, "secret digest")?,
        version: version_from_sql(row.try_get(8)?),
        previous_secrets,
        enabled: row.try_get(9)?,
        disabled_reason: row
            .try_get::<_, Option<&str>>(10)?
            .map(|r| DisabledReason::from_wire(r).ok_or(PgError::corrupt("disabled reason")))
            .transpose()?,
        signing_secret: signing_secret(row.try_get(15)?, "signing secret")?,
        filter_types: FilterTypes::new(row.try_get::<_, Vec<String>>(16)?)
            .map_err(|_| PgError::corrupt("filter types"))?,
        headers: CustomHeaders::new(pairs(17, 18, "headers")?)
            .map_err(|_| PgError::corrupt("headers"))?,
        description: Description::try_from(row.try_get::<_, String>(19)?)
            .map_err(|_| PgError::corrupt("description"))?,
        metadata: Metadata::new(pairs(20, 21, "metadata")?)
            .map_err(|_| PgError::corrupt("metadata"))?,
    };
    Ok((tenant, record))
}

pub(crate) fn decode_all(rows: &[Row]) -> Result<Vec<DestinationRecord>, PgError> {
    rows.iter().map(|r| decode(r).map(|(_, rec)| rec)).collect()
}
