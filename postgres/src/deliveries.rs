//! Deleting delivery rows, which both the repo and the outbox do: a
//! destination's pending deliveries when it is removed or disabled, and
//! then the event rows left without a delivery.

use deadpool_postgres::Transaction;

use crate::error::PgError;

/// Deletes the events among `event_ids` (of `tenant`) that have no delivery
/// left. Each event row is locked first (in id order), so of two
/// transactions finishing an event's last two deliveries at once, the
/// second to get the lock sees the first's deletion and removes the event.
pub(crate) async fn drop_finished_events(
    tx: &Transaction<'_>,
    tenant: &str,
    mut event_ids: Vec<String>,
) -> Result<(), PgError> {
    if event_ids.is_empty() {
        return Ok(());
    }
    event_ids.sort_unstable();
    event_ids.dedup();
    let lock = tx
        .prepare_cached(
            "SELECT 1 FROM events WHERE tenant_id = $1 AND event_id = ANY($2)
             ORDER BY event_id FOR UPDATE",
        )
        .await?;
    tx.execute(&lock, &[&tenant, &event_ids]).await?;
    let delete = tx
        .prepare_cached(
            "DELETE FROM events e WHERE e.tenant_id = $1 AND e.event_id = ANY($2)
             AND NOT EXISTS (SELECT 1 FROM deliveries d
                             WHERE d.tenant_id = e.tenant_id AND d.event_id = e.event_id)",
        )
        .await?;
    tx.execute(&delete, &[&tenant, &event_ids]).await?;
    Ok(())
}

/// Deletes every pending delivery of a destination, leased or not (it is
/// being removed), and the events left without one. The caller has locked
/// the destination's row in `tx`.
pub(crate) async fn drop_all(
    tx: &Transaction<'_>,
    tenant: &str,
    destination: &str,
) -> Result<(), PgError> {
    let stmt = tx
        .prepare_cached(
            "DELETE FROM deliveries WHERE tenant_id = $1 AND destination_id = $2
             RETURNING event_id",
        )
        .await?;
    drop_returned(tx, tenant, &stmt, destination).await
}

/// Deletes the pending deliveries of a destination that are not under a
/// lease, and the events left without one: what disabling it does (the
/// leased ones are attempts in flight; see `Outbox`'s "Disabling"). The
/// caller has locked or written the destination's row in `tx`.
pub(crate) async fn drop_unleased(
    tx: &Transaction<'_>,
    tenant: &str,
    destination: &str,
) -> Result<(), PgError> {
    let stmt = tx
        .prepare_cached(
            "DELETE FROM deliveries WHERE tenant_id = $1 AND destination_id = $2
                 AND lease_token IS NULL
             RETURNING event_id",
        )
        .await?;
    drop_returned(tx, tenant, &stmt, destination).await
}

/// Runs `delete` (returning the event ids of the deliveries it deleted)
/// and drops the events left without a delivery.
async fn drop_returned(
    tx: &Transaction<'_>,
    tenant: &str,
    delete: &tokio_postgres::Statement,
    destination: &str,
) -> Result<(), PgError> {
    let rows = tx.query(delete, &[&tenant, &destination]).await?;
    let events = rows
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<Vec<_>, _>>()?;
    drop_finished_events(tx, tenant, events).await
}
