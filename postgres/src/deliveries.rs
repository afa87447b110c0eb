//! Deleting delivery rows, which both the repo and the outbox do (a
//! destination's pending deliveries when it is removed or disabled). The
//! events stay (the event log); a disabled destination's deliveries are
//! remembered as dropped by the trigger of schema migration 8.

use deadpool_postgres::Transaction;

use crate::error::PgError;

/// Deletes every pending delivery of a destination, leased or not (it is
/// being removed). The caller has locked the destination's row in `tx`.
pub(crate) async fn drop_all(
    tx: &Transaction<'_>,
    tenant: &str,
    destination: &str,
) -> Result<(), PgError> {
    let stmt = tx
        .prepare_cached("DELETE FROM deliveries WHERE tenant_id = $1 AND destination_id = $2")
        .await?;
    tx.execute(&stmt, &[&tenant, &destination]).await?;
    Ok(())
}

/// Deletes the pending deliveries of a destination that are not under a
/// lease: what disabling it does (the leased ones are attempts in flight;
/// see `Outbox`'s "Disabling"). The caller has locked or written the
/// destination's row in `tx`.
pub(crate) async fn drop_unleased(
    tx: &Transaction<'_>,
    tenant: &str,
    destination: &str,
) -> Result<(), PgError> {
    let stmt = tx
        .prepare_cached(
            "DELETE FROM deliveries WHERE tenant_id = $1 AND destination_id = $2
                 AND lease_token IS NULL",
        )
        .await?;
    tx.execute(&stmt, &[&tenant, &destination]).await?;
    Ok(())
}
