//! Deleting delivery rows, which both the repo and the outbox do (a
//! destination's pending deliveries when it is removed or disabled), and
//! the sweep that deletes the event rows left without a delivery.

use deadpool_postgres::Transaction;

use crate::error::PgError;

/// Notes that the deliveries of `events` (pairs of `tenants` and `events`)
/// just finished in `tx` may have been their last: [`sweep`] deletes those
/// events once no delivery is left. Writes only `finished_events` (a row per
/// event finishing deliveries in `tx`, never a shared one), so completions
/// of one event's deliveries never wait for each other, and a batch that
/// finishes several deliveries of one event gives the sweep one row.
pub(crate) async fn mark_finished(
    tx: &Transaction<'_>,
    tenants: &[String],
    events: &[String],
) -> Result<(), PgError> {
    if events.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO finished_events (tenant_id, event_id)
             SELECT DISTINCT * FROM UNNEST($1::TEXT[], $2::TEXT[])",
        )
        .await?;
    tx.execute(&stmt, &[&tenants, &events]).await?;
    Ok(())
}

/// How many `finished_events` rows one [`sweep`] statement takes.
pub(crate) const SWEEP_BATCH: i64 = 1000;

/// Takes up to [`SWEEP_BATCH`] rows of `finished_events` (skipping rows
/// another sweep holds) and deletes their events that have no delivery
/// left, in one statement; returns how many rows it looked at. An event
/// whose last delivery finishes in a transaction this statement cannot see
/// yet has a row of its own, which a later sweep takes. Event rows are
/// locked in key order, skipping one another transaction holds (its mark
/// stays for a later sweep).
pub(crate) async fn sweep(client: &deadpool_postgres::Client) -> Result<i64, PgError> {
    let stmt = client
        .prepare_cached(
            "WITH quick AS (
                 -- No flush to wait for: a sweep lost in a crash is redone.
                 SELECT set_config('synchronous_commit', 'off', true)
             ), batch AS (
                 SELECT id, tenant_id, event_id FROM finished_events ORDER BY id LIMIT $1
                 FOR UPDATE SKIP LOCKED
             ), orphans AS (
                 SELECT DISTINCT e.tenant_id, e.event_id
                 FROM batch b
                 JOIN events e ON e.tenant_id = b.tenant_id AND e.event_id = b.event_id
                 WHERE NOT EXISTS (SELECT 1 FROM deliveries d
                                   WHERE d.tenant_id = e.tenant_id AND d.event_id = e.event_id)
             ), doomed AS (
                 SELECT e.tenant_id, e.event_id FROM events e
                 WHERE (e.tenant_id, e.event_id) IN (SELECT tenant_id, event_id FROM orphans)
                 ORDER BY e.tenant_id, e.event_id
                 FOR UPDATE OF e SKIP LOCKED
             ), gone AS (
                 DELETE FROM events e USING doomed x
                 WHERE e.tenant_id = x.tenant_id AND e.event_id = x.event_id
                 RETURNING e.tenant_id, e.event_id
             ), kept AS (
                 -- Skipped: another transaction holds the row. The mark
                 -- stays for a later sweep; every other one is done with
                 -- (the event is gone, or has deliveries whose completions
                 -- mark it again).
                 SELECT tenant_id, event_id FROM orphans
                 EXCEPT SELECT tenant_id, event_id FROM gone
             ), taken AS (
                 DELETE FROM finished_events f USING batch b
                 WHERE f.id = b.id
                   AND NOT EXISTS (SELECT 1 FROM kept k
                                   WHERE k.tenant_id = b.tenant_id AND k.event_id = b.event_id)
                 RETURNING 1
             )
             SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM gone),
                 (SELECT count(*) FROM quick)",
        )
        .await?;
    let row = client.query_one(&stmt, &[&SWEEP_BATCH]).await?;
    Ok(row.try_get(0)?)
}

/// Deletes every pending delivery of a destination, leased or not (it is
/// being removed), marking their events for the sweep. The caller has locked
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
/// lease, marking their events for the sweep: what disabling it does (the
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
/// and marks their events for the sweep.
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
    let tenants = vec![tenant.to_owned(); events.len()];
    mark_finished(tx, &tenants, &events).await
}
