//! API-token storage: the digests of the tokens, with their organizations.

use prets_destinations::{TenantId, Timestamp};
use rusqlite::params;

use super::SqliteRepo;
use super::error::SqliteError;
use super::rows::millis;

impl SqliteRepo {
    /// Every API token digest stored in the database, with its organization.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn api_tokens(&self) -> Result<Vec<([u8; 32], TenantId)>, SqliteError> {
        self.readers
            .call(|conn| {
                let mut stmt =
                    conn.prepare_cached("SELECT token_digest, tenant_id FROM api_tokens")?;
                let rows = stmt.query_map([], |row| {
                    Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, String>(1)?))
                })?;
                let mut out = Vec::new();
                for row in rows {
                    let (digest, tenant) = row?;
                    let digest: [u8; 32] = digest
                        .try_into()
                        .map_err(|_| SqliteError::corrupt("token digest"))?;
                    let tenant = TenantId::try_from(tenant)
                        .map_err(|_| SqliteError::corrupt("tenant id"))?;
                    out.push((digest, tenant));
                }
                Ok(out)
            })
            .await
    }

    /// Stores an API token digest for `tenant`.
    ///
    /// # Errors
    /// On a storage failure, or if the digest is already stored.
    pub async fn add_api_token(
        &self,
        digest: [u8; 32],
        tenant: &TenantId,
        now: Timestamp,
    ) -> Result<(), SqliteError> {
        let tenant = tenant.as_str().to_owned();
        let now = millis(now);
        self.writer
            .call(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO api_tokens (token_digest, tenant_id, created_at_ms) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![&digest[..], tenant, now])?;
                Ok(())
            })
            .await
    }
}
