//! API-token storage for the server: the SHA-256 digests of the tokens,
//! with their organizations (never the tokens themselves).

use prets_destinations::{TenantId, Timestamp};

use crate::error::PgError;
use crate::repo::PgRepo;
use crate::rows::millis;

impl PgRepo {
    /// Every API token digest stored in the database, with its organization.
    ///
    /// # Errors
    /// On a storage failure, or a stored row that does not decode.
    pub async fn api_tokens(&self) -> Result<Vec<([u8; 32], TenantId)>, PgError> {
        let rows = self
            .run(|pool| async move {
                let client = pool.get().await?;
                let stmt = client
                    .prepare_cached(
                        "SELECT token_digest, tenant_id FROM api_tokens ORDER BY token_digest",
                    )
                    .await?;
                Ok(client.query(&stmt, &[]).await?)
            })
            .await?;
        rows.iter()
            .map(|row| {
                let digest: [u8; 32] = row
                    .try_get::<_, &[u8]>(0)?
                    .try_into()
                    .map_err(|_| PgError::corrupt("token digest"))?;
                let tenant = TenantId::try_from(row.try_get::<_, String>(1)?)
                    .map_err(|_| PgError::corrupt("tenant id"))?;
                Ok((digest, tenant))
            })
            .collect()
    }

    /// Stores an API token digest for `tenant`, durable on `Ok`.
    ///
    /// # Errors
    /// On a storage failure, or if the digest is already stored.
    pub async fn add_api_token(
        &self,
        digest: [u8; 32],
        tenant: &TenantId,
        now: Timestamp,
    ) -> Result<(), PgError> {
        let tenant = tenant.as_str().to_owned();
        let now = millis(now);
        self.run(|pool| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "INSERT INTO api_tokens (token_digest, tenant_id, created_at_ms)
                     VALUES ($1, $2, $3)",
                )
                .await?;
            client
                .execute(&stmt, &[&&digest[..], &tenant, &now])
                .await?;
            Ok(())
        })
        .await
    }

    /// Stores an API token digest for `tenant` only if the database holds
    /// no API token yet, and says whether it did: the first start of a
    /// cluster creates the demo organization's token. The check and the
    /// insert are one transaction holding a lock on the tokens table that
    /// conflicts with itself, so of nodes starting at once exactly one
    /// stores its token; the others find it and store none. Durable on `Ok`.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn add_first_api_token(
        &self,
        digest: [u8; 32],
        tenant: &TenantId,
        now: Timestamp,
    ) -> Result<bool, PgError> {
        let tenant = tenant.as_str().to_owned();
        let now = millis(now);
        self.run(|pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            // Readers are not blocked; a second writer waits for the first
            // to commit, then sees its token.
            tx.batch_execute("LOCK TABLE api_tokens IN SHARE ROW EXCLUSIVE MODE")
                .await?;
            let any = tx
                .query_opt("SELECT 1 FROM api_tokens LIMIT 1", &[])
                .await?
                .is_some();
            if any {
                tx.rollback().await?;
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO api_tokens (token_digest, tenant_id, created_at_ms)
                 VALUES ($1, $2, $3)",
                &[&&digest[..], &tenant, &now],
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }
}
