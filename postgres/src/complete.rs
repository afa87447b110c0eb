//! Recording attempts: [`complete_batch`], one transaction for any number
//! of `(lease, report)` pairs, each judged as if completed alone and in
//! order, with one statement per kind of write (arrays through `UNNEST`),
//! committed with the WAL's flush, as every write (see [`PgRepo`]).
//!
//! [`PgRepo`]: crate::PgRepo

use std::collections::{BTreeMap, BTreeSet};

use deadpool_postgres::{Pool, Transaction};
use prets_destinations::delivery::{
    AttemptOutcome, AttemptReport, CompleteOutcome, DeliveryAfter, DisabledReason, FailureStreak,
    Lease, NextStep, settle,
};

use crate::deliveries::drop_unleased;
use crate::error::PgError;
use crate::rows::{decode_all, millis, select, timestamp, version};

/// The owned column values of a lease, to move into a task.
pub(crate) struct LeaseColumns {
    pub(crate) tenant: String,
    pub(crate) event: String,
    pub(crate) destination: String,
    pub(crate) token: Vec<u8>,
}

impl LeaseColumns {
    pub(crate) fn of(lease: &Lease) -> Self {
        Self {
            tenant: lease.delivery.tenant.as_str().to_owned(),
            event: lease.delivery.event_id.to_string(),
            destination: lease.delivery.destination_id.to_string(),
            token: lease.token.to_bytes().to_vec(),
        }
    }

    fn key(&self) -> (String, String, String) {
        (
            self.tenant.clone(),
            self.event.clone(),
            self.destination.clone(),
        )
    }
}

fn outcome_str(o: AttemptOutcome) -> &'static str {
    match o {
        AttemptOutcome::Succeeded => "succeeded",
        AttemptOutcome::Failed => "failed",
        AttemptOutcome::Refused => "refused",
    }
}

type Lane = (String, String);

/// A destination as the batch sees it, under its lock.
struct Dest {
    /// The streak stored when locked.
    stored: Option<FailureStreak>,
    /// The streak after the batch's attempts so far.
    streak: Option<FailureStreak>,
    enabled: bool,
}

/// The columns of each kind of write, gathered in batch order.
#[derive(Default)]
struct Writes {
    finished: [Vec<String>; 3],
    retried: [Vec<String>; 3],
    retry_at: Vec<i64>,
    disables: Vec<(Lane, DisabledReason, prets_destinations::Timestamp)>,
}

/// One attempt row's columns after its key.
struct AttemptRow {
    event: String,
    attempt: i64,
    started: i64,
    duration: i64,
    outcome: &'static str,
    status: Option<i32>,
    error: Option<String>,
    next: Option<i64>,
    manual: bool,
}

/// The attempt rows as columns, for `UNNEST`.
#[derive(Default)]
struct Attempts {
    tenant: Vec<String>,
    destination: Vec<String>,
    id: Vec<String>,
    event: Vec<String>,
    attempt: Vec<i64>,
    started: Vec<i64>,
    duration: Vec<i64>,
    outcome: Vec<&'static str>,
    status: Vec<Option<i32>>,
    error: Vec<Option<String>>,
    next: Vec<Option<i64>>,
    manual: Vec<bool>,
}

impl Attempts {
    fn of(rows: BTreeMap<(String, String, String), AttemptRow>) -> Self {
        let mut w = Self::default();
        for ((tenant, destination, id), r) in rows {
            w.tenant.push(tenant);
            w.destination.push(destination);
            w.id.push(id);
            w.event.push(r.event);
            w.attempt.push(r.attempt);
            w.started.push(r.started);
            w.duration.push(r.duration);
            w.outcome.push(r.outcome);
            w.status.push(r.status);
            w.error.push(r.error);
            w.next.push(r.next);
            w.manual.push(r.manual);
        }
        w
    }
}

/// Locks the destinations of the batch in key order: `FOR NO KEY UPDATE`
/// those in `exclusive` (an attempt that may write the streak), `FOR KEY
/// SHARE` the others (delivered attempts only: nothing to write unless a
/// streak is found, which only a removal conflicts with, so publishes
/// reading the row `FOR SHARE` do not wait). Returns the rows found, or
/// `None` when a shared one has a streak to clear (the caller retries with
/// it exclusive: a lock is never upgraded).
async fn lock_destinations(
    tx: &Transaction<'_>,
    lanes: &BTreeMap<Lane, bool>,
) -> Result<Result<BTreeMap<Lane, Dest>, Vec<Lane>>, PgError> {
    let mut found = BTreeMap::new();
    let mut upgrade = Vec::new();
    for exclusive in [true, false] {
        let (tenants, ids): (Vec<String>, Vec<String>) = lanes
            .iter()
            .filter(|(_, e)| **e == exclusive)
            .map(|(k, _)| k.clone())
            .unzip();
        if tenants.is_empty() {
            continue;
        }
        let stmt = tx
            .prepare_cached(if exclusive {
                "SELECT x.tenant_id, x.destination_id, x.failing_since_ms, x.failing_attempts,
                     x.enabled
                 FROM destinations x
                 WHERE (x.tenant_id, x.destination_id) IN
                     (SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[]))
                 ORDER BY x.tenant_id, x.destination_id FOR NO KEY UPDATE"
            } else {
                "SELECT x.tenant_id, x.destination_id, x.failing_since_ms, x.failing_attempts,
                     x.enabled
                 FROM destinations x
                 WHERE (x.tenant_id, x.destination_id) IN
                     (SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[]))
                 ORDER BY x.tenant_id, x.destination_id FOR KEY SHARE"
            })
            .await?;
        for row in tx.query(&stmt, &[&tenants, &ids]).await? {
            let since: Option<i64> = row.try_get(2)?;
            let count: Option<i64> = row.try_get(3)?;
            let lane = (row.try_get(0)?, row.try_get(1)?);
            let stored = match (since, count) {
                (Some(since), Some(attempts)) => Some(FailureStreak {
                    since: timestamp(since, "failing since")?,
                    attempts: u32::try_from(attempts)
                        .map_err(|_| PgError::corrupt("failing attempts"))?,
                }),
                _ => None,
            };
            if !exclusive && stored.is_some() {
                upgrade.push(lane);
                continue;
            }
            found.insert(
                lane,
                Dest {
                    stored,
                    streak: stored,
                    enabled: row.try_get(4)?,
                },
            );
        }
    }
    Ok(if upgrade.is_empty() {
        Ok(found)
    } else {
        Err(upgrade)
    })
}

/// Records each `(lease, report)` as [`Outbox::complete`] would, in order,
/// in one transaction: destinations locked in key order, then the leased
/// deliveries in key order, then one statement per kind of write.
///
/// [`Outbox::complete`]: prets_destinations::delivery::Outbox::complete
pub(crate) async fn complete_batch(
    pool: Pool,
    batch: Vec<(LeaseColumns, AttemptReport)>,
) -> Result<Vec<CompleteOutcome>, PgError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let mut client = pool.get().await?;
    let mut lanes: BTreeMap<Lane, bool> = BTreeMap::new();
    for (c, report) in &batch {
        let exclusive = lanes
            .entry((c.tenant.clone(), c.destination.clone()))
            .or_default();
        *exclusive |= report.next != NextStep::Delivered;
    }
    let (tx, mut dests) = loop {
        let tx = client.transaction().await?;
        match lock_destinations(&tx, &lanes).await? {
            Ok(dests) => break (tx, dests),
            Err(upgrade) => {
                tx.rollback().await?;
                for lane in upgrade {
                    lanes.insert(lane, true);
                }
            }
        }
    };
    // The deliveries still leased by the batch's tokens.
    let mut keys: [Vec<String>; 3] = Default::default();
    let mut tokens: Vec<Vec<u8>> = Vec::with_capacity(batch.len());
    for (c, _) in &batch {
        keys[0].push(c.tenant.clone());
        keys[1].push(c.event.clone());
        keys[2].push(c.destination.clone());
        tokens.push(c.token.clone());
    }
    let stmt = tx
        .prepare_cached(
            "SELECT d.tenant_id, d.event_id, d.destination_id, d.lease_token, d.manual
             FROM deliveries d
             JOIN UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BYTEA[])
                 AS k(tenant_id, event_id, destination_id, token)
               ON d.tenant_id = k.tenant_id AND d.event_id = k.event_id
              AND d.destination_id = k.destination_id AND d.lease_token = k.token
             ORDER BY d.tenant_id, d.event_id, d.destination_id
             FOR UPDATE OF d",
        )
        .await?;
    let [tenants, events, destinations] = &keys;
    // Each held delivery, and whether it is manual.
    let mut held: BTreeMap<(String, String, String, Vec<u8>), bool> = BTreeMap::new();
    for row in tx
        .query(&stmt, &[tenants, events, destinations, &tokens])
        .await?
    {
        held.insert(
            (
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
            ),
            row.try_get(4)?,
        );
    }

    let mut outcomes = Vec::with_capacity(batch.len());
    let mut done: BTreeSet<(String, String, String)> = BTreeSet::new();
    let mut writes = Writes::default();
    let mut attempts: BTreeMap<(String, String, String), AttemptRow> = BTreeMap::new();
    for (c, report) in &batch {
        let key = c.key();
        let lane = (c.tenant.clone(), c.destination.clone());
        let manual = held
            .get(&(
                c.tenant.clone(),
                c.event.clone(),
                c.destination.clone(),
                c.token.clone(),
            ))
            .copied();
        let Some((dest, manual)) = dests
            .get_mut(&lane)
            .zip(manual)
            .filter(|_| !done.contains(&key))
        else {
            // Removed (its deliveries went with it), or the lease is not
            // held, or an earlier entry of the batch finished with it.
            outcomes.push(CompleteOutcome::LeaseLost);
            continue;
        };
        let started_at = report.attempt.started_at;
        let settled = settle(report, dest.streak, dest.enabled);
        dest.streak = settled.streak;
        done.insert(key.clone());
        let (tenant, event, destination) = key.clone();
        match settled.delivery {
            DeliveryAfter::Finished => {
                writes.finished[0].push(tenant);
                writes.finished[1].push(event);
                writes.finished[2].push(destination);
            }
            DeliveryAfter::RetryAt(at) => {
                writes.retried[0].push(tenant);
                writes.retried[1].push(event);
                writes.retried[2].push(destination);
                writes.retry_at.push(millis(at));
            }
        }
        let a = &settled.attempt;
        // One row per attempt id: a later entry for the same id wins, as a
        // second `complete` would overwrite the first.
        let id = (
            c.tenant.clone(),
            c.destination.clone(),
            a.attempt_id.to_string(),
        );
        let row = AttemptRow {
            event: a.event_id.to_string(),
            attempt: i64::from(a.attempt),
            started: millis(a.started_at),
            duration: i64::try_from(a.duration_ms).unwrap_or(i64::MAX),
            outcome: outcome_str(a.outcome),
            status: a.response_status.map(i32::from),
            error: a.error.clone(),
            next: a.next_attempt_at.map(millis),
            manual,
        };
        attempts.insert(id, row);
        let mut disabled = None;
        if let Some(reason) = settled.disable {
            dest.enabled = false;
            writes.disables.push((lane, reason, started_at));
            disabled = Some(reason);
        }
        outcomes.push(CompleteOutcome::Recorded {
            disabled,
            retry_at: settled.delivery.retry_at(),
        });
    }

    if !writes.finished[0].is_empty() {
        let stmt = tx
            .prepare_cached(
                "DELETE FROM deliveries d
                 USING UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[])
                     AS k(tenant_id, event_id, destination_id)
                 WHERE d.tenant_id = k.tenant_id AND d.event_id = k.event_id
                   AND d.destination_id = k.destination_id",
            )
            .await?;
        let [t, e, d] = &writes.finished;
        tx.execute(&stmt, &[t, e, d]).await?;
    }
    if !writes.retried[0].is_empty() {
        let stmt = tx
            .prepare_cached(
                "UPDATE deliveries d SET attempt = LEAST(d.attempt + 1, 4294967295),
                     due_at_ms = k.due_at_ms, lease_token = NULL, lease_expires_at_ms = NULL
                 FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[])
                     AS k(tenant_id, event_id, destination_id, due_at_ms)
                 WHERE d.tenant_id = k.tenant_id AND d.event_id = k.event_id
                   AND d.destination_id = k.destination_id",
            )
            .await?;
        let [t, e, d] = &writes.retried;
        tx.execute(&stmt, &[t, e, d, &writes.retry_at]).await?;
    }
    let w = Attempts::of(attempts);
    if !w.id.is_empty() {
        let stmt = tx
            .prepare_cached(
                "INSERT INTO attempts (tenant_id, destination_id, attempt_id, event_id, attempt,
                     started_at_ms, duration_ms, outcome, response_status, error,
                     next_attempt_at_ms, manual)
                 SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[],
                     $5::BIGINT[], $6::BIGINT[], $7::BIGINT[], $8::TEXT[], $9::INTEGER[],
                     $10::TEXT[], $11::BIGINT[], $12::BOOLEAN[])
                 ON CONFLICT (tenant_id, destination_id, attempt_id) DO UPDATE SET
                     event_id = EXCLUDED.event_id, attempt = EXCLUDED.attempt,
                     started_at_ms = EXCLUDED.started_at_ms,
                     duration_ms = EXCLUDED.duration_ms, outcome = EXCLUDED.outcome,
                     response_status = EXCLUDED.response_status, error = EXCLUDED.error,
                     next_attempt_at_ms = EXCLUDED.next_attempt_at_ms,
                     manual = EXCLUDED.manual",
            )
            .await?;
        tx.execute(
            &stmt,
            &[
                &w.tenant,
                &w.destination,
                &w.id,
                &w.event,
                &w.attempt,
                &w.started,
                &w.duration,
                &w.outcome,
                &w.status,
                &w.error,
                &w.next,
                &w.manual,
            ],
        )
        .await?;
    }
    // Streaks that changed: only on rows locked `FOR NO KEY UPDATE` (a row
    // locked `FOR KEY SHARE` had no streak and saw only delivered attempts).
    let mut streaks: [Vec<String>; 2] = Default::default();
    let (mut since, mut count): (Vec<Option<i64>>, Vec<Option<i64>>) = (Vec::new(), Vec::new());
    for ((tenant, destination), d) in &dests {
        if d.streak != d.stored {
            streaks[0].push(tenant.clone());
            streaks[1].push(destination.clone());
            since.push(d.streak.map(|s| millis(s.since)));
            count.push(d.streak.map(|s| i64::from(s.attempts)));
        }
    }
    if !streaks[0].is_empty() {
        let stmt = tx
            .prepare_cached(
                "UPDATE destinations x SET failing_since_ms = k.since,
                     failing_attempts = k.attempts
                 FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[])
                     AS k(tenant_id, destination_id, since, attempts)
                 WHERE x.tenant_id = k.tenant_id AND x.destination_id = k.destination_id",
            )
            .await?;
        let [t, d] = &streaks;
        tx.execute(&stmt, &[t, d, &since, &count]).await?;
    }
    for ((tenant, destination), reason, at) in &writes.disables {
        // The record as `DestinationRecord::disabled` makes it, from the
        // row this transaction holds `FOR NO KEY UPDATE` (a disabling
        // attempt is never a delivered one).
        let stmt = tx
            .prepare_cached(&select("d.tenant_id = $1 AND d.destination_id = $2", ""))
            .await?;
        let rows = tx.query(&stmt, &[tenant, destination]).await?;
        let next = decode_all(&rows)?
            .into_iter()
            .next()
            .and_then(|record| record.disabled(*reason, *at));
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
                    tenant,
                    destination,
                    &next.enabled,
                    &next.disabled_reason.map(DisabledReason::as_str),
                    &version(next.version),
                    &millis(next.updated_at),
                ],
            )
            .await?;
            drop_unleased(&tx, tenant, destination).await?;
        }
    }
    tx.commit().await?;
    Ok(outcomes)
}
