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

use std::time::Duration;

use std::collections::{BTreeMap, BTreeSet};

use prets_destinations::delivery::{
    AttemptId, AttemptOutcome, AttemptRecord, AttemptReport, ClaimLimits, Claimed, CompleteOutcome,
    DeliveryAfter, DeliveryKey, DisabledReason, EnqueueOutcome, Event, EventId, EventType,
    FailureStreak, Lease, LeaseRequest, NextStep, Outbox, Payload, Target, settle,
};
use prets_destinations::{DestinationId, DestinationRepo as _, TenantId, Timestamp};
use tokio_postgres::Row;

use crate::deliveries::{drop_finished_events, drop_unleased};
use crate::error::PgError;
use crate::repo::PgRepo;
use crate::rows::{decode_all, limit, millis, select, timestamp, version};

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

fn outcome_str(o: AttemptOutcome) -> &'static str {
    match o {
        AttemptOutcome::Succeeded => "succeeded",
        AttemptOutcome::Failed => "failed",
        AttemptOutcome::Refused => "refused",
    }
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
    })
}

/// The owned column values of a lease, to move into a task.
struct LeaseColumns {
    tenant: String,
    event: String,
    destination: String,
    token: Vec<u8>,
}

impl LeaseColumns {
    fn of(lease: &Lease) -> Self {
        Self {
            tenant: lease.delivery.tenant.as_str().to_owned(),
            event: lease.delivery.event_id.to_string(),
            destination: lease.delivery.destination_id.to_string(),
            token: lease.token.to_bytes().to_vec(),
        }
    }
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
        let created_at = millis(event.created_at);
        let payload = event.payload.get().to_owned();
        self.run(|pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            // `FOR SHARE`: a destination cannot be removed, or disabled
            // (which drops its deliveries), until this commits; one that
            // was disabled meanwhile is re-checked and left out.
            let ids: Vec<String> = match target {
                Target::AllEnabled => {
                    let stmt = tx
                        .prepare_cached(
                            "SELECT destination_id FROM destinations
                             WHERE tenant_id = $1 AND enabled
                             ORDER BY destination_id FOR SHARE",
                        )
                        .await?;
                    tx.query(&stmt, &[&tenant])
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
            if ids.is_empty() {
                // Nothing to deliver: the event is not stored.
                return Ok(EnqueueOutcome::Enqueued { deliveries: 0 });
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
        .await
    }

    async fn claim(
        &self,
        now: Timestamp,
        limits: ClaimLimits,
        lease: LeaseRequest,
    ) -> Result<Vec<Claimed>, PgError> {
        let limit_to = limits.limit;
        let expires_at = now.saturating_add(lease.duration);
        let (now_ms, expires_ms) = (millis(now), millis(expires_at));
        let limit_to = limit(limit_to);
        let token = lease.token.to_bytes().to_vec();
        let rows = self
            .run(|pool| async move {
                let mut client = pool.get().await?;
                // One statement: pick the due, unleased (or expired) rows,
                // skipping rows another claim or a complete holds, lease
                // them, and read their events with whether their
                // destination is enabled.
                let stmt = client
                    .prepare_cached(
                        "WITH picked AS (
                             SELECT d.tenant_id, d.event_id, d.destination_id, x.enabled,
                                 x.failing_since_ms IS NOT NULL AS failing
                             FROM deliveries d
                             JOIN destinations x ON x.tenant_id = d.tenant_id
                                 AND x.destination_id = d.destination_id
                             WHERE d.due_at_ms <= $1
                               AND (d.lease_expires_at_ms IS NULL OR d.lease_expires_at_ms <= $1)
                             ORDER BY d.due_at_ms, d.tenant_id, d.event_id, d.destination_id
                             LIMIT $2
                             FOR UPDATE OF d SKIP LOCKED
                         ), leased AS (
                             UPDATE deliveries d SET lease_token = $3, lease_expires_at_ms = $4
                             FROM picked p
                             WHERE d.tenant_id = p.tenant_id AND d.event_id = p.event_id
                               AND d.destination_id = p.destination_id
                             RETURNING d.tenant_id, d.event_id, d.destination_id, d.attempt,
                                 d.due_at_ms, p.enabled, p.failing
                         )
                         SELECT l.tenant_id, l.event_id, l.destination_id, l.attempt,
                             e.event_type, e.created_at_ms, e.payload, l.enabled, l.failing
                         FROM leased l
                         JOIN events e ON e.tenant_id = l.tenant_id AND e.event_id = l.event_id
                         ORDER BY l.due_at_ms, l.tenant_id, l.event_id, l.destination_id",
                    )
                    .await?;
                let rows = client
                    .query(&stmt, &[&now_ms, &limit_to, &token, &expires_ms])
                    .await?;
                // A disabled destination's delivery (one whose lease ran out
                // after the disable) is finished, not offered. Rare: only
                // then a second transaction, under the lease just taken.
                let mut off = [Vec::new(), Vec::new(), Vec::new()];
                for row in &rows {
                    if !row.try_get::<_, bool>(7)? {
                        for (column, keys) in off.iter_mut().enumerate() {
                            keys.push(row.try_get::<_, String>(column)?);
                        }
                    }
                }
                if off[0].is_empty() {
                    return Ok((rows, BTreeSet::new()));
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
                let mut by_tenant: BTreeMap<&str, Vec<String>> = BTreeMap::new();
                for (tenant, event, _) in &dropped {
                    by_tenant.entry(tenant).or_default().push(event.clone());
                }
                for (tenant, events) in by_tenant {
                    drop_finished_events(&tx, tenant, events).await?;
                }
                tx.commit().await?;
                Ok((rows, dropped))
            })
            .await?;
        let (rows, dropped) = rows;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let key: (String, String, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            if dropped.contains(&key) {
                continue;
            }
            let (tenant, event, destination) = key;
            let event_id: EventId = event.parse().map_err(|_| PgError::corrupt("event id"))?;
            let destination_id: DestinationId = destination
                .parse()
                .map_err(|_| PgError::corrupt("destination id"))?;
            let tenant = TenantId::try_from(tenant).map_err(|_| PgError::corrupt("tenant id"))?;
            // Removed since the claim: its deliveries went with it.
            let Some(destination) = self.get(&tenant, destination_id).await? else {
                continue;
            };
            claimed.push(Claimed {
                destination,
                failing: row.try_get(8)?,
                lease: Lease {
                    token: lease.token,
                    delivery: DeliveryKey {
                        tenant,
                        event_id,
                        destination_id,
                    },
                    expires_at,
                },
                event: event_from(row, 4, event_id)?,
                attempt: u32_from(row.try_get(3)?, "attempt")?,
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
            if n == 1 {
                drop_finished_events(&tx, &c.tenant, vec![c.event.clone()]).await?;
            }
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
        let c = LeaseColumns::of(lease);
        let delivered = report.next == NextStep::Delivered;
        self.run(|pool| async move {
            let mut client = pool.get().await?;
            // A delivered attempt with no failure streak to clear changes
            // nothing on the destination: it takes `FOR KEY SHARE` (which
            // only keeps the row from being removed), so the completions of
            // one destination, and the publishes reading it `FOR SHARE`, do
            // not queue behind each other. Any other attempt, or a delivered
            // one that finds a streak, takes `FOR NO KEY UPDATE` (in a new
            // transaction: a lock is never upgraded).
            let mut exclusive = !delivered;
            let (tx, dest) = loop {
                let tx = client.transaction().await?;
                // The destination first (see the module's lock order): its
                // failure streak is read, changed and written under this lock.
                let stmt = tx
                    .prepare_cached(if exclusive {
                        "SELECT failing_since_ms, failing_attempts, enabled FROM destinations
                         WHERE tenant_id = $1 AND destination_id = $2 FOR NO KEY UPDATE"
                    } else {
                        "SELECT failing_since_ms, failing_attempts, enabled FROM destinations
                         WHERE tenant_id = $1 AND destination_id = $2 FOR KEY SHARE"
                    })
                    .await?;
                let Some(dest) = tx.query_opt(&stmt, &[&c.tenant, &c.destination]).await? else {
                    // Removed: its deliveries went with it.
                    return Ok(CompleteOutcome::LeaseLost);
                };
                let since: Option<i64> = dest.try_get(0)?;
                if exclusive || since.is_none() {
                    break (tx, dest);
                }
                tx.rollback().await?;
                exclusive = true;
            };
            let stmt = tx
                .prepare_cached(
                    "SELECT attempt FROM deliveries
                     WHERE tenant_id = $1 AND event_id = $2 AND destination_id = $3
                       AND lease_token = $4
                     FOR UPDATE",
                )
                .await?;
            if tx
                .query_opt(&stmt, &[&c.tenant, &c.event, &c.destination, &c.token])
                .await?
                .is_none()
            {
                return Ok(CompleteOutcome::LeaseLost);
            }
            let since: Option<i64> = dest.try_get(0)?;
            let count: Option<i64> = dest.try_get(1)?;
            let enabled: bool = dest.try_get(2)?;
            let streak = match (since, count) {
                (Some(since), Some(attempts)) => Some(FailureStreak {
                    since: timestamp(since, "failing since")?,
                    attempts: u32_from(attempts, "failing attempts")?,
                }),
                _ => None,
            };
            let started_at = report.attempt.started_at;
            let settled = settle(&report, streak, enabled);
            match settled.delivery {
                DeliveryAfter::Finished => {
                    let stmt = tx
                        .prepare_cached(
                            "DELETE FROM deliveries
                             WHERE tenant_id = $1 AND event_id = $2 AND destination_id = $3",
                        )
                        .await?;
                    tx.execute(&stmt, &[&c.tenant, &c.event, &c.destination])
                        .await?;
                    drop_finished_events(&tx, &c.tenant, vec![c.event.clone()]).await?;
                }
                DeliveryAfter::RetryAt(at) => {
                    let stmt = tx
                        .prepare_cached(
                            "UPDATE deliveries SET attempt = LEAST(attempt + 1, 4294967295),
                                 due_at_ms = $4, lease_token = NULL, lease_expires_at_ms = NULL
                             WHERE tenant_id = $1 AND event_id = $2 AND destination_id = $3",
                        )
                        .await?;
                    tx.execute(&stmt, &[&c.tenant, &c.event, &c.destination, &millis(at)])
                        .await?;
                }
            }
            if settled.streak != streak {
                // Only under `FOR NO KEY UPDATE`: with `FOR KEY SHARE` there
                // was no streak and a delivered attempt leaves none.
                let (since, count) = match settled.streak {
                    Some(s) => (Some(millis(s.since)), Some(i64::from(s.attempts))),
                    None => (None, None),
                };
                let stmt = tx
                    .prepare_cached(
                        "UPDATE destinations SET failing_since_ms = $3, failing_attempts = $4
                         WHERE tenant_id = $1 AND destination_id = $2",
                    )
                    .await?;
                tx.execute(&stmt, &[&c.tenant, &c.destination, &since, &count])
                    .await?;
            }
            let a = &settled.attempt;
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO attempts (tenant_id, destination_id, attempt_id, event_id, attempt,
                         started_at_ms, duration_ms, outcome, response_status, error,
                         next_attempt_at_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (tenant_id, destination_id, attempt_id) DO UPDATE SET
                         event_id = EXCLUDED.event_id, attempt = EXCLUDED.attempt,
                         started_at_ms = EXCLUDED.started_at_ms,
                         duration_ms = EXCLUDED.duration_ms, outcome = EXCLUDED.outcome,
                         response_status = EXCLUDED.response_status, error = EXCLUDED.error,
                         next_attempt_at_ms = EXCLUDED.next_attempt_at_ms",
                )
                .await?;
            tx.execute(
                &stmt,
                &[
                    &c.tenant,
                    &c.destination,
                    &a.attempt_id.to_string(),
                    &a.event_id.to_string(),
                    &i64::from(a.attempt),
                    &millis(a.started_at),
                    &i64::try_from(a.duration_ms).unwrap_or(i64::MAX),
                    &outcome_str(a.outcome),
                    &a.response_status.map(i32::from),
                    &a.error,
                    &a.next_attempt_at.map(millis),
                ],
            )
            .await?;
            let mut disabled = None;
            if let Some(reason) = settled.disable {
                // The record as `DestinationRecord::disabled` makes it, from
                // the row this transaction holds `FOR NO KEY UPDATE` (a
                // disabling attempt is never a delivered one).
                let stmt = tx
                    .prepare_cached(&select("d.tenant_id = $1 AND d.destination_id = $2", ""))
                    .await?;
                let rows = tx.query(&stmt, &[&c.tenant, &c.destination]).await?;
                let next = decode_all(&rows)?
                    .into_iter()
                    .next()
                    .and_then(|record| record.disabled(reason, started_at));
                if let Some(next) = next {
                    let stmt = tx
                        .prepare_cached(
                            "UPDATE destinations SET enabled = $3, disabled_reason = $4,
                                 version = $5, updated_at_ms = $6
                             WHERE tenant_id = $1 AND destination_id = $2",
                        )
                        .await?;
                    tx.execute(
                        &stmt,
                        &[
                            &c.tenant,
                            &c.destination,
                            &next.enabled,
                            &next.disabled_reason.map(DisabledReason::as_str),
                            &version(next.version),
                            &millis(next.updated_at),
                        ],
                    )
                    .await?;
                    drop_unleased(&tx, &c.tenant, &c.destination).await?;
                    disabled = Some(reason);
                }
            }
            tx.commit().await?;
            Ok(CompleteOutcome::Recorded { disabled })
        })
        .await
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
                 started_at_ms, duration_ms, outcome, response_status, error, next_attempt_at_ms
                 FROM attempts WHERE tenant_id = $1 AND destination_id = $2";
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
}
