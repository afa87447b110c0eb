//! [`Outbox`] for [`PgRepo`]: the delivery queue in the same database as
//! the destinations, claimed with `FOR UPDATE SKIP LOCKED` and leases.
//!
//! Locks are always taken in one order: a destination row, then its
//! delivery rows, then event rows (several in event id order). `complete`,
//! `release`, `remove` and a disabling `replace` lock the destination first
//! (`complete` with `FOR KEY SHARE` when a delivered attempt has no failure
//! streak to clear, which conflicts only with a removal; `release` with
//! `FOR SHARE`, which waits only for a change of the destination); a claim
//! never waits (it skips locked deliveries), and renew locks one delivery
//! only. So no two of these transactions wait for each other in a cycle.
//! `event_ids` rows are locked only by `enqueue`, after its destinations,
//! and its forgetting of old ids skips locked rows.

use std::time::Duration;

use std::collections::{BTreeMap, BTreeSet};

use deadpool_postgres::Transaction;
use prets_destinations::delivery::{
    AttemptId, AttemptOutcome, AttemptRecord, AttemptReport, ClaimLimits, Claimed, CompleteOutcome,
    DeliveryKey, EVENT_ID_RETENTION, EVENT_IDS_FORGOTTEN_PER_ENQUEUE, EnqueueOutcome, Event,
    EventId, EventType, ExistingEvent, FilterTypes, Lease, LeaseRequest, Outbox, Payload,
    PayloadDigest, QueueDepth, Target,
};
use prets_destinations::{DestinationId, TenantId, Timestamp};
use tokio_postgres::Row;

use crate::complete::{LeaseColumns, complete_batch};
use crate::error::PgError;
use crate::repo::{PgRepo, lock_tenant};
use crate::rows::{decode, limit, millis, timestamp};

/// How many lanes of one tenant a claim looks at (from the one after the
/// lane it served last): the bound on a claim's work per tenant whatever
/// the number of its destinations with deliveries.
const LANE_SCAN: i32 = 256;

/// The destinations (columns 0 to 21, as [`select`](crate::rows::select)
/// reads them) and events (22: the event id, 23: the claim's `o_seq`, 24 to
/// 26: type, creation time, payload) of the deliveries a claim leased.
///
/// Each row and event is read through its primary key, whatever the
/// statistics say: `OFFSET 0` keeps each lateral read a plan of its own,
/// keyed by both columns. Joined directly, a planner with statistics of
/// smaller tables (a new database, or one autovacuum has not analysed)
/// reads the events by tenant only and filters them, a cost that grows
/// with the events kept.
const CLAIMED_RECORDS: &str =
    "SELECT d.tenant_id, d.destination_id, d.name, d.url, d.created_at_ms,
         d.updated_at_ms, d.sealed_secret, d.secret_digest, d.version, d.enabled,
         d.disabled_reason, COALESCE(p.sealed, '{}'), COALESCE(p.digests, '{}'),
         COALESCE(p.expires, '{}'), COALESCE(p.signing, '{}'), d.sealed_signing_secret,
         d.filter_types, d.header_names, d.header_values, d.description, d.metadata_keys,
         d.metadata_values, k.event_id, k.seq, e.event_type, e.created_at_ms, e.payload
     FROM UNNEST($1::INTEGER[], $2::TEXT[], $3::TEXT[], $4::TEXT[])
         AS k(seq, tenant_id, event_id, destination_id)
     CROSS JOIN LATERAL (
         SELECT * FROM destinations d
         WHERE d.tenant_id = k.tenant_id AND d.destination_id = k.destination_id
         OFFSET 0
     ) d
     CROSS JOIN LATERAL (
         SELECT e.event_type, e.created_at_ms, e.payload FROM events e
         WHERE e.tenant_id = k.tenant_id AND e.event_id = k.event_id
         OFFSET 0
     ) e
     LEFT JOIN LATERAL (
         SELECT array_agg(s.sealed_secret ORDER BY s.position) AS sealed,
                array_agg(s.secret_digest ORDER BY s.position) AS digests,
                array_agg(s.expires_at_ms ORDER BY s.position) AS expires,
                array_agg(s.sealed_signing_secret ORDER BY s.position) AS signing
         FROM previous_secrets s
         WHERE s.tenant_id = d.tenant_id AND s.destination_id = d.destination_id
     ) p ON true
     ORDER BY k.seq";

/// The lease a worker should ask for by default: 60 s, four times the
/// reference server's default delivery timeout (15 s).
///
/// A worker renews its lease (for example every [`DEFAULT_LEASE`] / 3)
/// while an attempt runs, so a slow receiver never makes a live delivery
/// look abandoned; if the worker's node dies, its deliveries are offered to
/// another node at most this long after its last renewal. A lease shorter
/// than the delivery timeout plus the time to write the attempt would let
/// two nodes deliver the same event at once when renewals are late.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

fn u32_from(v: i64, column: &'static str) -> Result<u32, PgError> {
    u32::try_from(v).map_err(|_| PgError::corrupt(column))
}

fn event_from(row: &Row, first: usize, event_id: EventId) -> Result<Event, PgError> {
    let event_type: String = row.try_get(first)?;
    let created_at: i64 = row.try_get(first + 1)?;
    let payload: String = row.try_get(first + 2)?;
    Ok(Event {
        event_id,
        event_type: EventType::try_from(event_type).map_err(|_| PgError::corrupt("event type"))?,
        created_at: timestamp(created_at, "event created at")?,
        payload: Payload::from_json(payload).map_err(|_| PgError::corrupt("payload"))?,
    })
}

/// What `event_ids` remembers of an event: the columns `created_at_ms`,
/// `event_type`, `payload_sha256`, `destinations`.
fn existing_from(row: &Row) -> Result<ExistingEvent, PgError> {
    let created_at: i64 = row.try_get(0)?;
    let event_type: String = row.try_get(1)?;
    let digest: Vec<u8> = row.try_get(2)?;
    let destinations: i64 = row.try_get(3)?;
    Ok(ExistingEvent {
        created_at: timestamp(created_at, "event id created at")?,
        event_type: EventType::try_from(event_type)
            .map_err(|_| PgError::corrupt("event id type"))?,
        payload: PayloadDigest::from_bytes(
            digest
                .try_into()
                .map_err(|_| PgError::corrupt("event id payload digest"))?,
        ),
        destinations: usize::try_from(destinations)
            .map_err(|_| PgError::corrupt("event id destinations"))?,
    })
}

fn outcome_from(s: &str) -> Result<AttemptOutcome, PgError> {
    match s {
        "succeeded" => Ok(AttemptOutcome::Succeeded),
        "failed" => Ok(AttemptOutcome::Failed),
        "refused" => Ok(AttemptOutcome::Refused),
        _ => Err(PgError::corrupt("attempt outcome")),
    }
}

fn attempt_from(row: &Row) -> Result<AttemptRecord, PgError> {
    let id: &str = row.try_get(0)?;
    let event: &str = row.try_get(1)?;
    let destination: &str = row.try_get(2)?;
    let status: Option<i32> = row.try_get(7)?;
    let next: Option<i64> = row.try_get(9)?;
    Ok(AttemptRecord {
        attempt_id: id.parse().map_err(|_| PgError::corrupt("attempt id"))?,
        event_id: event.parse().map_err(|_| PgError::corrupt("event id"))?,
        destination_id: destination
            .parse()
            .map_err(|_| PgError::corrupt("destination id"))?,
        attempt: u32_from(row.try_get(3)?, "attempt")?,
        started_at: timestamp(row.try_get(4)?, "attempt started at")?,
        duration_ms: u64::try_from(row.try_get::<_, i64>(5)?)
            .map_err(|_| PgError::corrupt("attempt duration"))?,
        outcome: outcome_from(row.try_get(6)?)?,
        response_status: status
            .map(|s| u16::try_from(s).map_err(|_| PgError::corrupt("response status")))
            .transpose()?,
        error: row.try_get(8)?,
        next_attempt_at: next.map(|t| timestamp(t, "next attempt at")).transpose()?,
        manual: row.try_get(10)?,
    })
}

/// The tenant's pending deliveries, for a write that may add some: its
/// changes since the last count folded into its `pending_counts` row. Taken
/// under the tenant's advisory lock when `limited` (its quota is finite), so
/// that the tenant's writes that add deliveries run one after another, on
/// every node, and each sees every one that held the lock before.
pub(crate) async fn pending_count(
    tx: &Transaction<'_>,
    tenant: &str,
    limited: bool,
) -> Result<usize, PgError> {
    if limited {
        lock_tenant(tx, "pending", tenant).await?;
    }
    let stmt = tx
        .prepare_cached(
            "WITH gone AS (DELETE FROM pending_changes WHERE tenant_id = $1
                           RETURNING delta)
             INSERT INTO pending_counts AS c (tenant_id, pending)
             VALUES ($1, (SELECT COALESCE(sum(delta), 0)::BIGINT FROM gone))
             ON CONFLICT (tenant_id) DO UPDATE SET pending = c.pending + excluded.pending
             RETURNING pending",
        )
        .await?;
    let pending: i64 = tx.query_one(&stmt, &[&tenant]).await?.try_get(0)?;
    Ok(usize::try_from(pending).unwrap_or(0))
}

impl Outbox for PgRepo {
    async fn enqueue(
        &self,
        tenant: &TenantId,
        event: &Event,
        target: Target,
    ) -> Result<EnqueueOutcome, PgError> {
        let tenant = tenant.as_str().to_owned();
        let event_id = event.event_id.to_string();
        let event_type = event.event_type.as_str().to_owned();
        let keys = FilterTypes::keys_matching(&event.event_type);
        let created_at = millis(event.created_at);
        let payload = event.payload.get().to_owned();
        let digest = event.payload.digest().to_bytes().to_vec();
        let retention = i64::try_from(EVENT_ID_RETENTION.as_millis()).unwrap_or(i64::MAX);
        let forget_before = created_at.saturating_sub(retention);
        let quotas = self.quotas;
        let limited = quotas.caps_pending_deliveries();
        let outcome = self.run(|pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            // `FOR SHARE`: a destination cannot be removed, or disabled
            // (which drops its deliveries), until this commits; one that
            // was disabled meanwhile is re-checked and left out.
            let ids: Vec<String> = match target {
                Target::AllEnabled => {
                    // Only the destinations indexed under a key the event's
                    // type matches (its type, `*`, each prefix and `*`):
                    // index lookups on `destination_filters`, never a read
                    // of every destination of the tenant.
                    let stmt = tx
                        .prepare_cached(
                            "SELECT d.destination_id FROM destinations d
                             WHERE d.tenant_id = $1 AND d.enabled
                                 AND d.destination_id IN (
                                     SELECT f.destination_id FROM destination_filters f
                                     WHERE f.tenant_id = $1 AND f.filter_key = ANY($2))
                             ORDER BY d.destination_id FOR SHARE",
                        )
                        .await?;
                    tx.query(&stmt, &[&tenant, &keys])
                        .await?
                        .iter()
                        .map(|r| r.try_get(0))
                        .collect::<Result<_, _>>()?
                }
                Target::Only(id) => {
                    let id = id.to_string();
                    let stmt = tx
                        .prepare_cached(
                            "SELECT enabled FROM destinations
                             WHERE tenant_id = $1 AND destination_id = $2 FOR SHARE",
                        )
                        .await?;
                    match tx.query_opt(&stmt, &[&tenant, &id]).await? {
                        None => return Ok(EnqueueOutcome::NotFound),
                        Some(row) if !row.try_get::<_, bool>(0)? => {
                            return Ok(EnqueueOutcome::Disabled);
                        }
                        Some(_) => vec![id],
                    }
                }
            };
            // The id first: of racing enqueues of it (on any node), the
            // others wait for this insert's commit, then find the row.
            let count = i64::try_from(ids.len()).unwrap_or(i64::MAX);
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO event_ids (tenant_id, event_id, created_at_ms, event_type,
                         payload_sha256, destinations)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, event_id) DO NOTHING",
                )
                .await?;
            let inserted = tx
                .execute(
                    &stmt,
                    &[&tenant, &event_id, &created_at, &event_type, &digest, &count],
                )
                .await?;
            if inserted == 0 {
                let stmt = tx
                    .prepare_cached(
                        "SELECT created_at_ms, event_type, payload_sha256, destinations
                         FROM event_ids WHERE tenant_id = $1 AND event_id = $2",
                    )
                    .await?;
                let row = tx.query_one(&stmt, &[&tenant, &event_id]).await?;
                return Ok(EnqueueOutcome::Exists(existing_from(&row)?));
            }
            // Forget a few of the tenant's expired ids whose event is gone;
            // rows another enqueue is forgetting are skipped, not waited for.
            let stmt = tx
                .prepare_cached(
                    "DELETE FROM event_ids i
                     WHERE i.tenant_id = $1
                         AND i.event_id IN (SELECT event_id FROM event_ids
                                            WHERE tenant_id = $1 AND created_at_ms < $2
                                            ORDER BY created_at_ms LIMIT $3
                                            FOR UPDATE SKIP LOCKED)
                         AND NOT EXISTS (SELECT 1 FROM events e
                                         WHERE e.tenant_id = $1 AND e.event_id = i.event_id)",
                )
                .await?;
            let forget = i64::try_from(EVENT_IDS_FORGOTTEN_PER_ENQUEUE).unwrap_or(i64::MAX);
            tx.execute(&stmt, &[&tenant, &forget_before, &forget])
                .await?;
            // Stored even with no destination (the event log keeps it);
            // with some, within the tenant's pending-delivery quota.
            if !ids.is_empty() {
                let pending = pending_count(&tx, &tenant, limited).await?;
                if !quotas.allows_deliveries(pending, ids.len()) {
                    // Dropping the transaction rolls back the id too.
                    return Ok(EnqueueOutcome::QueueFull);
                }
            }
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO events (tenant_id, event_id, event_type, created_at_ms, payload)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, event_id) DO NOTHING",
                )
                .await?;
            tx.execute(
                &stmt,
                &[&tenant, &event_id, &event_type, &created_at, &payload],
            )
            .await?;
            if ids.is_empty() {
                tx.commit().await?;
                return Ok(EnqueueOutcome::Enqueued { deliveries: 0 });
            }
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO deliveries (tenant_id, event_id, destination_id, attempt, due_at_ms)
                     SELECT $1, $2, u.id, 1, $4 FROM UNNEST($3::TEXT[]) AS u(id)
                     ON CONFLICT (tenant_id, event_id, destination_id) DO NOTHING",
                )
                .await?;
            tx.execute(&stmt, &[&tenant, &event_id, &ids, &created_at])
                .await?;
            tx.commit().await?;
            Ok(EnqueueOutcome::Enqueued {
                deliveries: ids.len(),
            })
        })
        .await?;
        if matches!(outcome, EnqueueOutcome::Enqueued { deliveries } if deliveries > 0) {
            // Every node's worker, this one's too (see `PgRepo::listen`).
            self.notify_published();
            // Its fold deleted the tenant's pending changes.
            self.churned(1);
        }
        Ok(outcome)
    }

    async fn claim(
        &self,
        now: Timestamp,
        limits: ClaimLimits,
        lease: LeaseRequest,
    ) -> Result<Vec<Claimed>, PgError> {
        let expires_at = now.saturating_add(lease.duration);
        let (now_ms, expires_ms) = (millis(now), millis(expires_at));
        let int = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        let caps = [
            int(limits.limit),
            int(limits.per_destination),
            int(limits.failing_limit),
            int(limits.per_failing_destination),
        ];
        let token = lease.token.to_bytes().to_vec();
        let after = self.claim_after();
        let (picked, next_after, records, dropped) = self
            .run(|pool| async move {
                let mut client = pool.get().await?;
                // One statement leases them: `prets_claim` (schema
                // migration 11) takes tenants in turn, their lanes in turn,
                // one delivery per lane per turn (`FOR UPDATE SKIP LOCKED`,
                // through indexes only).
                let stmt = client
                    .prepare_cached(
                        "SELECT o_seq, o_tenant, o_event, o_destination, o_attempt, o_failing,
                             o_next_after
                         FROM prets_claim($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .await?;
                let [limit_to, per_destination, failing_limit, per_failing] = caps;
                let mut picked = client
                    .query(
                        &stmt,
                        &[
                            &now_ms,
                            &limit_to,
                            &per_destination,
                            &failing_limit,
                            &per_failing,
                            &token,
                            &expires_ms,
                            &after,
                            &LANE_SCAN,
                        ],
                    )
                    .await?;
                // The last row (`o_seq` 0) is the tenant the next claim
                // starts after; the others are the deliveries leased.
                let next_after = match picked.pop() {
                    Some(row) => row.try_get::<_, Option<String>>(6)?,
                    None => None,
                };
                if picked.is_empty() {
                    return Ok((picked, next_after, Vec::new(), BTreeSet::new()));
                }
                let mut keys: [Vec<String>; 3] = [Vec::new(), Vec::new(), Vec::new()];
                let mut seqs: Vec<i32> = Vec::with_capacity(picked.len());
                for row in &picked {
                    seqs.push(row.try_get(0)?);
                    for (column, keys) in keys.iter_mut().enumerate() {
                        keys.push(row.try_get(column + 1)?);
                    }
                }
                // Then, in a new snapshot (one that sees every row the
                // claim leased), their destinations and events: one join,
                // not a read per delivery.
                let stmt = client.prepare_cached(CLAIMED_RECORDS).await?;
                let [tenants, events, destinations] = &keys;
                let records = client
                    .query(&stmt, &[&seqs, tenants, events, destinations])
                    .await?;
                // A disabled destination's delivery (one whose lease ran out
                // after the disable) is finished, not offered. Rare: only
                // then a transaction, under the lease just taken.
                let mut off = [Vec::new(), Vec::new(), Vec::new()];
                for row in &records {
                    if !row.try_get::<_, bool>(9)? {
                        off[0].push(row.try_get::<_, String>(0)?);
                        off[1].push(row.try_get::<_, String>(22)?);
                        off[2].push(row.try_get::<_, String>(1)?);
                    }
                }
                if off[0].is_empty() {
                    return Ok((picked, next_after, records, BTreeSet::new()));
                }
                let tx = client.transaction().await?;
                // Only those still disabled: one enabled again meanwhile is
                // an ordinary delivery, and this claim offers it.
                let stmt = tx
                    .prepare_cached(
                        "DELETE FROM deliveries d
                         USING UNNEST($2::TEXT[], $3::TEXT[], $4::TEXT[])
                                 AS k(tenant_id, event_id, destination_id),
                             destinations x
                         WHERE d.tenant_id = k.tenant_id AND d.event_id = k.event_id
                           AND d.destination_id = k.destination_id AND d.lease_token = $1
                           AND x.tenant_id = d.tenant_id AND x.destination_id = d.destination_id
                           AND NOT x.enabled
                         RETURNING d.tenant_id, d.event_id, d.destination_id",
                    )
                    .await?;
                let [tenants, events, destinations] = &off;
                let dropped = tx
                    .query(&stmt, &[&token, tenants, events, destinations])
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                    .collect::<Result<BTreeSet<(String, String, String)>, PgError>>()?;
                tx.commit().await?;
                Ok((picked, next_after, records, dropped))
            })
            .await?;
        if let Some(after) = next_after {
            self.set_claim_after(after);
        }
        self.churned(picked.len());
        self.vacuum_in_background();
        let mut by_seq: BTreeMap<i32, &Row> = BTreeMap::new();
        for row in &records {
            by_seq.insert(row.try_get(23)?, row);
        }
        let mut claimed = Vec::with_capacity(picked.len());
        for row in &picked {
            // Removed since the claim: its deliveries went with it.
            let Some(record) = by_seq.get(&row.try_get::<_, i32>(0)?) else {
                continue;
            };
            let key: (String, String, String) = (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
            if dropped.contains(&key) {
                continue;
            }
            let (tenant, event, _) = key;
            let (_, destination) = decode(record)?;
            let event_id: EventId = event.parse().map_err(|_| PgError::corrupt("event id"))?;
            let tenant = TenantId::try_from(tenant).map_err(|_| PgError::corrupt("tenant id"))?;
            claimed.push(Claimed {
                failing: row.try_get(5)?,
                lease: Lease {
                    token: lease.token,
                    delivery: DeliveryKey {
                        tenant,
                        event_id,
                        destination_id: destination.destination_id,
                    },
                    expires_at,
                },
                event: event_from(record, 24, event_id)?,
                attempt: u32_from(row.try_get(4)?, "attempt")?,
                destination,
            });
        }
        Ok(claimed)
    }

    /// The database's clock: measured at connect against this process's
    /// monotonic clock and again every few seconds (see
    /// [`PgRepo::clock_offset_ms`]), so answering takes no round trip.
    async fn now(&self) -> Result<Timestamp, PgError> {
        Ok(self.db_now())
    }

    async fn renew(&self, lease: &Lease, until: Timestamp) -> Result<bool, PgError> {
        let c = LeaseColumns::of(lease);
        let until = millis(until);
        self.run(|pool| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "UPDATE deliveries SET lease_expires_at_ms = $5
                     WHERE tenant_id = $1 AND event_id = $2 AND destination_id = $3
                       AND lease_token = $4",
                )
                .await?;
            let n = client
                .execute(
                    &stmt,
                    &[&c.tenant, &c.event, &c.destination, &c.token, &until],
                )
                .await?;
            Ok(n == 1)
        })
        .await
    }

    async fn release(&self, lease: &Lease) -> Result<bool, PgError> {
        let c = LeaseColumns::of(lease);
        self.run(|pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            // The destination first (see the module's lock order), `FOR
            // SHARE`: its state cannot change until this commits.
            let stmt = tx
                .prepare_cached(
                    "SELECT enabled FROM destinations
                     WHERE tenant_id = $1 AND destination_id = $2 FOR SHARE",
                )
                .await?;
            let Some(dest) = tx.query_opt(&stmt, &[&c.tenant, &c.destination]).await? else {
                // Removed: its deliveries went with it.
                return Ok(false);
            };
            if dest.try_get(0)? {
                let stmt = tx
                    .prepare_cached(
                        "UPDATE deliveries SET lease_token = NULL, lease_expires_at_ms = NULL
                         WHERE tenant_id = $1 AND event_id = $2 AND destination_id = $3
                           AND lease_token = $4",
                    )
                    .await?;
                let n = tx
                    .execute(&stmt, &[&c.tenant, &c.event, &c.destination, &c.token])
                    .await?;
                tx.commit().await?;
                return Ok(n == 1);
            }
            // Disabled: the delivery is dropped, not given back.
            let stmt = tx
                .prepare_cached(
                    "DELETE FROM deliveries
                     WHERE tenant_id = $1 AND event_id = $2 AND destination_id = $3
                       AND lease_token = $4",
                )
                .await?;
            let n = tx
                .execute(&stmt, &[&c.tenant, &c.event, &c.destination, &c.token])
                .await?;
            tx.commit().await?;
            Ok(n == 1)
        })
        .await
    }

    async fn complete(
        &self,
        lease: &Lease,
        report: AttemptReport,
    ) -> Result<CompleteOutcome, PgError> {
        let batch = vec![(LeaseColumns::of(lease), report)];
        let outcomes = self
            .run(|pool| async move { complete_batch(pool, batch).await })
            .await?;
        self.churned(1);
        outcomes
            .into_iter()
            .next()
            .ok_or(PgError::corrupt("completion"))
    }

    /// One transaction for the whole batch (see the module's lock order).
    async fn complete_all(
        &self,
        batch: Vec<(Lease, AttemptReport)>,
    ) -> Result<Vec<CompleteOutcome>, PgError> {
        let batch: Vec<_> = batch
            .into_iter()
            .map(|(lease, report)| (LeaseColumns::of(&lease), report))
            .collect();
        let n = batch.len();
        let outcomes = self
            .run(|pool| async move { complete_batch(pool, batch).await })
            .await?;
        self.churned(n);
        Ok(outcomes)
    }

    async fn list_attempts(
        &self,
        tenant: &TenantId,
        destination: DestinationId,
        before: Option<AttemptId>,
        limit_to: usize,
    ) -> Result<Vec<AttemptRecord>, PgError> {
        let tenant = tenant.as_str().to_owned();
        let destination = destination.to_string();
        let before = before.map(|b| b.to_string());
        let limit_to = limit(limit_to);
        self.run(|pool| async move {
            let client = pool.get().await?;
            const COLUMNS: &str = "SELECT attempt_id, event_id, destination_id, attempt,
                 started_at_ms, duration_ms, outcome, response_status, error, next_attempt_at_ms,
                 manual FROM attempts WHERE tenant_id = $1 AND destination_id = $2";
            let rows = match before {
                Some(before) => {
                    let stmt = client
                        .prepare_cached(&format!(
                            "{COLUMNS} AND attempt_id < $3 ORDER BY attempt_id DESC LIMIT $4"
                        ))
                        .await?;
                    client
                        .query(&stmt, &[&tenant, &destination, &before, &limit_to])
                        .await?
                }
                None => {
                    let stmt = client
                        .prepare_cached(&format!("{COLUMNS} ORDER BY attempt_id DESC LIMIT $3"))
                        .await?;
                    client
                        .query(&stmt, &[&tenant, &destination, &limit_to])
                        .await?
                }
            };
            rows.iter().map(attempt_from).collect()
        })
        .await
    }

    /// Two counts in one snapshot: the leased ones over the partial index
    /// `deliveries_leased` (as many rows as attempts in flight), all of
    /// them over the table (its cost grows with the queue: hosts sample
    /// it).
    async fn queue_depth(&self) -> Result<QueueDepth, PgError> {
        self.run(|pool| async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT (SELECT count(*) FROM deliveries)::BIGINT,
                            (SELECT count(*) FROM deliveries
                             WHERE lease_token IS NOT NULL)::BIGINT",
                )
                .await?;
            let row = client.query_one(&stmt, &[]).await?;
            let total: i64 = row.try_get(0)?;
            let leased: i64 = row.try_get(1)?;
            let total = u64::try_from(total).map_err(|_| PgError::corrupt("count"))?;
            let leased = u64::try_from(leased).map_err(|_| PgError::corrupt("count"))?;
            Ok(QueueDepth {
                waiting: total.saturating_sub(leased),
                leased,
            })
        })
        .await
    }
}
