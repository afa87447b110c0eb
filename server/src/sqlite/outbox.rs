//! [`Outbox`] for [`SqliteRepo`]: every write on the group-commit writer
//! (answered after `COMMIT`), the attempt listing on the readers. Enqueues
//! are synced (`synchronous = FULL`) before they are answered; the
//! worker's writes (claims, renewals, releases, completions) are
//! [`Durability::Relaxed`]: a power loss may undo the last of them, which
//! only makes their deliveries be attempted again (at least once), never
//! loses an event.
//!
//! The single writer runs one job at a time, so a claim's read of the due
//! deliveries and its writing of their leases cannot interleave with another
//! claim: two claims never lease one delivery.
//!
//! Claims are fair and indexed ([`claim`](super::claim)): organizations and
//! their destinations (lanes) take turns, each destination within its cap of
//! live leases, failing ones within the claim's failing limit, each
//! statement bounded by `LIMIT` or a key, so a claim's cost follows what it
//! serves (and the lanes at their cap), not the number of deliveries queued.
//! The writes here keep the lanes in step: [`enqueue`], a retry and a
//! release wake the lane by the delivery's due time ([`schedule`]), and a
//! change of the failure streak moves the lane between the healthy and the
//! failing ring. Nothing else is swept: a disabled destination's lease that
//! ran out is dropped when a claim visits its lane.
//!
//! [`Outbox::complete_all`] is one writer job: one savepoint and one commit
//! for the batch, each completion judged as [`Outbox::complete`] judges it.
//! Every statement reaches its rows through a key or an index; `tests`
//! checks their plans (`EXPLAIN QUERY PLAN`) at 10,000 and 100,000 queued
//! deliveries. The one exception is [`Outbox::queue_depth`]'s count of
//! every delivery, for gauges that hosts sample every few seconds.

use prets_destinations::delivery::{
    AttemptId, AttemptOutcome, AttemptRecord, AttemptReport, ClaimLimits, Claimed, CompleteOutcome,
    DeliveryAfter, DeliveryKey, EVENT_ID_RETENTION, EVENT_IDS_FORGOTTEN_PER_ENQUEUE,
    EnqueueOutcome, Event, EventId, EventType, ExistingEvent, FailureStreak, FilterTypes, Lease,
    LeaseRequest, Outbox, PayloadDigest, QueueDepth, Target, settle,
};
use prets_destinations::limits::Quotas;
use prets_destinations::{DestinationId, TenantId, Timestamp};
use rusqlite::{Connection, OptionalExtension as _, Row, params};

use super::SqliteRepo;
use super::claim::{claim, schedule, set_failing, sql_count};
use super::error::{JobResult, SqliteError};
use super::rows::{COLUMNS, millis, pending, read_records, timestamp, version};
use super::writer::Durability;

// The delivery under the lease, with its destination's standing: one
// search of each primary key.
const HELD: &str = "SELECT d.manual, x.enabled, x.failing_since_ms, x.failing_attempts
     FROM deliveries d
     LEFT JOIN destinations x
         ON x.tenant_id = d.tenant_id AND x.destination_id = d.destination_id
     WHERE d.tenant_id = ?1 AND d.event_id = ?2 AND d.destination_id = ?3
         AND d.lease_token = ?4";

// Named indexes: without statistics SQLite would rather walk the
// organization's part of the primary key, every destination of it.
const DROP_UNLEASED: &str = "DELETE FROM deliveries INDEXED BY deliveries_by_lane
     WHERE tenant_id = ?1 AND destination_id = ?2 AND lease_expires_ms IS NULL";

const ENABLED: &str = "SELECT enabled FROM destinations
     WHERE tenant_id = ?1 AND destination_id = ?2";

const INSERT_EVENT: &str =
    "INSERT INTO events (tenant_id, event_id, event_type, created_at_ms, payload)
     VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT (tenant_id, event_id) DO NOTHING";

const INSERT_DELIVERY: &str =
    "INSERT INTO deliveries (tenant_id, event_id, destination_id, attempt, due_at_ms)
     VALUES (?1, ?2, ?3, 1, ?4)
     ON CONFLICT (tenant_id, event_id, destination_id) DO NOTHING";

const RENEW: &str = "UPDATE deliveries SET lease_expires_ms = ?5
     WHERE tenant_id = ?1 AND event_id = ?2 AND destination_id = ?3
         AND lease_token = ?4";

const RELEASE_DISABLED: &str = "DELETE FROM deliveries
     WHERE tenant_id = ?1 AND event_id = ?2 AND destination_id = ?3
         AND lease_token = ?4
         AND EXISTS (SELECT 1 FROM destinations
                     WHERE tenant_id = ?1 AND destination_id = ?3 AND enabled = 0)";

const RELEASE: &str = "UPDATE deliveries SET lease_token = NULL, lease_expires_ms = NULL
     WHERE tenant_id = ?1 AND event_id = ?2 AND destination_id = ?3
         AND lease_token = ?4
     RETURNING due_at_ms";

const FINISH: &str = "DELETE FROM deliveries
     WHERE tenant_id = ?1 AND event_id = ?2 AND destination_id = ?3";

const RETRY: &str = "UPDATE deliveries SET attempt = min(attempt + 1, 4294967295), due_at_ms = ?4,
         lease_token = NULL, lease_expires_ms = NULL
     WHERE tenant_id = ?1 AND event_id = ?2 AND destination_id = ?3";

const WRITE_STREAK: &str = "UPDATE destinations SET failing_since_ms = ?3, failing_attempts = ?4
     WHERE tenant_id = ?1 AND destination_id = ?2";

const INSERT_ATTEMPT: &str =
    "INSERT OR REPLACE INTO attempts (tenant_id, destination_id, attempt_id, event_id,
         attempt, started_at_ms, duration_ms, outcome, response_status, error,
         next_attempt_at_ms, manual)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

const DISABLE: &str = "UPDATE destinations SET enabled = 0, disabled_reason = ?3, version = ?4,
         updated_at_ms = ?5
     WHERE tenant_id = ?1 AND destination_id = ?2";

/// Every statement of the outbox's writes but claims, by name: the plans
/// test reads them.
#[cfg(test)]
pub(super) const STATEMENTS: &[(&str, &str)] = &[
    ("held", HELD),
    ("drop_unleased", DROP_UNLEASED),
    ("matching_destinations", MATCHING_DESTINATIONS),
    ("enabled", ENABLED),
    ("insert_event", INSERT_EVENT),
    ("insert_delivery", INSERT_DELIVERY),
    ("renew", RENEW),
    ("release_disabled", RELEASE_DISABLED),
    ("release", RELEASE),
    ("finish", FINISH),
    ("retry", RETRY),
    ("write_streak", WRITE_STREAK),
    ("insert_attempt", INSERT_ATTEMPT),
    ("disable", DISABLE),
];

/// A `u64` as SQLite's signed integer: the same 64 bits (see
/// [`version`]), so every value round-trips.
fn sql_u64(n: u64) -> i64 {
    version(n)
}

fn u64_from_sql(n: i64) -> u64 {
    u64::from_be_bytes(n.to_be_bytes())
}

fn u32_from_sql(n: i64, column: &'static str) -> JobResult<u32> {
    u32::try_from(n).map_err(|_| SqliteError::corrupt(column))
}

const fn outcome_str(outcome: AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Succeeded => "succeeded",
        AttemptOutcome::Failed => "failed",
        AttemptOutcome::Refused => "refused",
    }
}

fn outcome_from_sql(s: &str) -> JobResult<AttemptOutcome> {
    match s {
        "succeeded" => Ok(AttemptOutcome::Succeeded),
        "failed" => Ok(AttemptOutcome::Failed),
        "refused" => Ok(AttemptOutcome::Refused),
        _ => Err(SqliteError::corrupt("attempt outcome")),
    }
}

/// The key columns of a delivery, as stored.
fn key_params(key: &DeliveryKey) -> (String, String, String) {
    (
        key.tenant.as_str().to_owned(),
        key.event_id.to_string(),
        key.destination_id.to_string(),
    )
}

/// An attempt's raw columns (the [`ATTEMPT_COLUMNS`]).
struct AttemptRow {
    attempt_id: String,
    event_id: String,
    destination_id: String,
    attempt: i64,
    started_at: i64,
    duration_ms: i64,
    outcome: String,
    response_status: Option<i64>,
    error: Option<String>,
    next_attempt_at: Option<i64>,
    manual: bool,
}

const ATTEMPT_COLUMNS: &str = "attempt_id, event_id, destination_id, attempt, started_at_ms, \
     duration_ms, outcome, response_status, error, next_attempt_at_ms, manual";

impl AttemptRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            attempt_id: row.get(0)?,
            event_id: row.get(1)?,
            destination_id: row.get(2)?,
            attempt: row.get(3)?,
            started_at: row.get(4)?,
            duration_ms: row.get(5)?,
            outcome: row.get(6)?,
            response_status: row.get(7)?,
            error: row.get(8)?,
            next_attempt_at: row.get(9)?,
            manual: row.get(10)?,
        })
    }

    fn decode(self) -> JobResult<AttemptRecord> {
        Ok(AttemptRecord {
            attempt_id: AttemptId::try_from(self.attempt_id)
                .map_err(|_| SqliteError::corrupt("attempt id"))?,
            event_id: EventId::try_from(self.event_id)
                .map_err(|_| SqliteError::corrupt("event id"))?,
            destination_id: DestinationId::try_from(self.destination_id)
                .map_err(|_| SqliteError::corrupt("destination id"))?,
            attempt: u32_from_sql(self.attempt, "attempt")?,
            started_at: timestamp(self.started_at, "attempt started at")?,
            duration_ms: u64_from_sql(self.duration_ms),
            outcome: outcome_from_sql(&self.outcome)?,
            response_status: self
                .response_status
                .map(|s| u16::try_from(s).map_err(|_| SqliteError::corrupt("response status")))
                .transpose()?,
            error: self.error,
            next_attempt_at: self
                .next_attempt_at
                .map(|t| timestamp(t, "next attempt at"))
                .transpose()?,
            manual: self.manual,
        })
    }
}

/// What [`complete`] needs of a lease: `None` unless it is held (its
/// delivery exists under its token; an expired lease not yet claimed again
/// is still held) and its destination exists; otherwise whether the
/// delivery is manual, whether the destination is enabled, and its stored
/// failure streak.
fn held(conn: &Connection, lease: &Lease) -> JobResult<Option<Held>> {
    let (tenant, event, destination) = key_params(&lease.delivery);
    type Raw = (bool, Option<bool>, Option<i64>, Option<i64>);
    let row: Option<Raw> = conn
        .prepare_cached(HELD)?
        .query_row(
            params![tenant, event, destination, &lease.token.to_bytes()[..]],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((manual, Some(enabled), since, attempts)) = row else {
        return Ok(None);
    };
    let streak = match (since, attempts) {
        (Some(since), Some(attempts)) => Some(FailureStreak {
            since: timestamp(since, "failure streak start")?,
            attempts: u32_from_sql(attempts, "failure streak attempts")?,
        }),
        _ => None,
    };
    Ok(Some(Held {
        manual,
        enabled,
        streak,
    }))
}

/// A held lease's delivery and destination, as [`held`] reads them.
struct Held {
    manual: bool,
    enabled: bool,
    streak: Option<FailureStreak>,
}

/// Drops the destination's pending deliveries that are not under a lease:
/// what disabling it does (the leased ones are attempts in flight; see
/// [`Outbox`]'s "Disabling"). Each is kept in `dropped_deliveries` (a
/// trigger).
pub(super) fn drop_unleased(conn: &Connection, tenant: &str, destination: &str) -> JobResult<()> {
    conn.prepare_cached(DROP_UNLEASED)?
        .execute(params![tenant, destination])?;
    Ok(())
}

/// The enabled destinations of tenant `?1` indexed under one of the filter
/// keys of the JSON array `?2`, once per matching key, in no order.
pub(super) const MATCHING_DESTINATIONS: &str = "SELECT f.destination_id
     FROM destination_filters f
     JOIN destinations d
         ON d.tenant_id = f.tenant_id AND d.destination_id = f.destination_id
     WHERE f.tenant_id = ?1
         AND f.filter_key IN (SELECT value FROM json_each(?2))
         AND d.enabled = 1";

/// Remembers the tenant's event id, or gives what is remembered of it; then
/// forgets up to [`EVENT_IDS_FORGOTTEN_PER_ENQUEUE`] of the tenant's ids
/// past [`EVENT_ID_RETENTION`] whose event is no longer stored (the oldest
/// first, through `event_ids_by_age`).
fn remember(
    conn: &Connection,
    tenant: &str,
    event_id: &str,
    event: &Event,
    destinations: usize,
) -> JobResult<Option<ExistingEvent>> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO event_ids (tenant_id, event_id, created_at_ms, event_type,
                 payload_sha256, destinations)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (tenant_id, event_id) DO NOTHING",
        )?
        .execute(params![
            tenant,
            event_id,
            millis(event.created_at),
            event.event_type.as_str(),
            &event.payload.digest().to_bytes()[..],
            sql_count(destinations),
        ])?;
    if inserted == 0 {
        let row: (i64, String, Vec<u8>, i64) = conn
            .prepare_cached(
                "SELECT created_at_ms, event_type, payload_sha256, destinations FROM event_ids
                 WHERE tenant_id = ?1 AND event_id = ?2",
            )?
            .query_row(params![tenant, event_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
        let (created_at, event_type, digest, destinations) = row;
        return Ok(Some(ExistingEvent {
            created_at: timestamp(created_at, "event id created at")?,
            event_type: EventType::try_from(event_type)
                .map_err(|_| SqliteError::corrupt("event id type"))?,
            payload: PayloadDigest::from_bytes(
                digest
                    .try_into()
                    .map_err(|_| SqliteError::corrupt("event id payload digest"))?,
            ),
            destinations: usize::try_from(destinations)
                .map_err(|_| SqliteError::corrupt("event id destinations"))?,
        }));
    }
    let retention = i64::try_from(EVENT_ID_RETENTION.as_millis()).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "DELETE FROM event_ids
         WHERE tenant_id = ?1
             AND event_id IN (SELECT event_id FROM event_ids
                              WHERE tenant_id = ?1 AND created_at_ms < ?2
                              ORDER BY created_at_ms LIMIT ?3)
             AND NOT EXISTS (SELECT 1 FROM events e
                             WHERE e.tenant_id = ?1 AND e.event_id = event_ids.event_id)",
    )?
    .execute(params![
        tenant,
        millis(event.created_at).saturating_sub(retention),
        sql_count(EVENT_IDS_FORGOTTEN_PER_ENQUEUE),
    ])?;
    Ok(None)
}

/// Whether the tenant already has an event of this id.
fn known_id(conn: &Connection, tenant: &str, event_id: &str) -> JobResult<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM event_ids WHERE tenant_id = ?1 AND event_id = ?2")?
        .query_row(params![tenant, event_id], |_| Ok(()))
        .optional()?
        .is_some())
}

fn enqueue(
    conn: &Connection,
    tenant: &str,
    event: &Event,
    target: Target,
    quotas: Quotas,
) -> JobResult<EnqueueOutcome> {
    let ids: Vec<String> = match target {
        Target::AllEnabled => {
            // The destinations indexed under a key the event's type matches
            // (its type, `*`, each prefix and `*`): one primary-key search of
            // `destination_filters` per key, never a read of every
            // destination. Sorted and deduplicated here (a destination may
            // match by several keys): asking SQLite for that makes it walk
            // the tenant's whole filter index instead.
            let keys = serde_json::to_string(&FilterTypes::keys_matching(&event.event_type))
                .map_err(|_| SqliteError::corrupt("event type"))?;
            let mut ids: Vec<String> = conn
                .prepare_cached(MATCHING_DESTINATIONS)?
                .query_map(params![tenant, keys], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            ids.sort_unstable();
            ids.dedup();
            ids
        }
        Target::Only(id) => {
            let id = id.to_string();
            let enabled: Option<bool> = conn
                .prepare_cached(ENABLED)?
                .query_row(params![tenant, id], |r| r.get(0))
                .optional()?;
            match enabled {
                None => return Ok(EnqueueOutcome::NotFound),
                Some(false) => return Ok(EnqueueOutcome::Disabled),
                Some(true) => vec![id],
            }
        }
    };
    let event_id = event.event_id.to_string();
    // Refused before anything is written; a known id answers `Exists` below.
    if !ids.is_empty()
        && quotas.caps_pending_deliveries()
        && !quotas.allows_deliveries(pending(conn, tenant)?, ids.len())
        && !known_id(conn, tenant, &event_id)?
    {
        return Ok(EnqueueOutcome::QueueFull);
    }
    if let Some(existing) = remember(conn, tenant, &event_id, event, ids.len())? {
        return Ok(EnqueueOutcome::Exists(existing));
    }
    // The id was new, so no event of it is stored (the ids of events
    // stored before `event_ids` were added with it). Stored even with no
    // delivery: the event log keeps it.
    conn.prepare_cached(INSERT_EVENT)?.execute(params![
        tenant,
        event_id,
        event.event_type.as_str(),
        millis(event.created_at),
        event.payload.get(),
    ])?;
    let mut insert = conn.prepare_cached(INSERT_DELIVERY)?;
    for id in &ids {
        insert.execute(params![tenant, event_id, id, millis(event.created_at)])?;
        schedule(conn, tenant, id, millis(event.created_at))?;
    }
    Ok(EnqueueOutcome::Enqueued {
        deliveries: ids.len(),
    })
}

fn renew(conn: &Connection, lease: &Lease, until: Timestamp) -> JobResult<bool> {
    let (tenant, event, destination) = key_params(&lease.delivery);
    let changed = conn.prepare_cached(RENEW)?.execute(params![
        tenant,
        event,
        destination,
        &lease.token.to_bytes()[..],
        millis(until),
    ])?;
    Ok(changed == 1)
}

fn release(conn: &Connection, lease: &Lease) -> JobResult<bool> {
    let (tenant, event, destination) = key_params(&lease.delivery);
    // A disabled destination's delivery is dropped, not given back.
    let dropped = conn.prepare_cached(RELEASE_DISABLED)?.execute(params![
        tenant,
        event,
        destination,
        &lease.token.to_bytes()[..]
    ])?;
    if dropped == 1 {
        return Ok(true);
    }
    let due: Option<i64> = conn
        .prepare_cached(RELEASE)?
        .query_row(
            params![tenant, event, destination, &lease.token.to_bytes()[..]],
            |r| r.get(0),
        )
        .optional()?;
    let Some(due) = due else {
        return Ok(false);
    };
    schedule(conn, &tenant, &destination, due)?;
    Ok(true)
}

fn complete(
    conn: &Connection,
    lease: &Lease,
    report: &AttemptReport,
) -> JobResult<CompleteOutcome> {
    let Some(Held {
        manual,
        enabled,
        streak,
    }) = held(conn, lease)?
    else {
        return Ok(CompleteOutcome::LeaseLost);
    };
    let (tenant, event, destination) = key_params(&lease.delivery);
    let settled = settle(report, streak, enabled);
    match settled.delivery {
        // The event row stays (the event log).
        DeliveryAfter::Finished => {
            conn.prepare_cached(FINISH)?
                .execute(params![tenant, event, destination])?
        }
        DeliveryAfter::RetryAt(at) => {
            let changed = conn.prepare_cached(RETRY)?.execute(params![
                tenant,
                event,
                destination,
                millis(at)
            ])?;
            schedule(conn, &tenant, &destination, millis(at))?;
            changed
        }
    };
    // The streak as stored already (a delivery to a destination that was
    // not failing): the destination's row and its lane stay as they are.
    if settled.streak != streak {
        conn.prepare_cached(WRITE_STREAK)?.execute(params![
            tenant,
            destination,
            settled.streak.map(|s| millis(s.since)),
            settled.streak.map(|s| s.attempts),
        ])?;
        set_failing(conn, &tenant, &destination, settled.streak.is_some())?;
    }
    let a = &settled.attempt;
    // Stored under the leased delivery's destination; an attempt id written
    // again replaces the earlier row.
    conn.prepare_cached(INSERT_ATTEMPT)?.execute(params![
        tenant,
        destination,
        a.attempt_id.to_string(),
        a.event_id.to_string(),
        a.attempt,
        millis(a.started_at),
        sql_u64(a.duration_ms),
        outcome_str(a.outcome),
        a.response_status,
        a.error,
        a.next_attempt_at.map(millis),
        manual,
    ])?;
    let mut disabled = None;
    if let Some(reason) = settled.disable {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM destinations WHERE tenant_id = ?1 AND destination_id = ?2"
        ))?;
        let found = read_records(conn, &mut stmt, params![tenant, destination])?;
        let next = found
            .into_iter()
            .next()
            .and_then(|(_, record)| record.disabled(reason, report.attempt.started_at));
        if let Some(next) = next {
            conn.prepare_cached(DISABLE)?.execute(params![
                tenant,
                destination,
                reason.as_str(),
                version(next.version),
                millis(next.updated_at),
            ])?;
            drop_unleased(conn, &tenant, &destination)?;
            disabled = Some(reason);
        }
    }
    Ok(CompleteOutcome::Recorded {
        disabled,
        retry_at: settled.delivery.retry_at(),
    })
}

/// Records each `(lease, report)` in order, as [`complete`] one by one.
fn complete_all(
    conn: &Connection,
    batch: &[(Lease, AttemptReport)],
) -> JobResult<Vec<CompleteOutcome>> {
    batch
        .iter()
        .map(|(lease, report)| complete(conn, lease, report))
        .collect()
}

impl Outbox for SqliteRepo {
    async fn enqueue(
        &self,
        tenant: &TenantId,
        event: &Event,
        target: Target,
    ) -> Result<EnqueueOutcome, SqliteError> {
        let tenant = tenant.as_str().to_owned();
        let event = event.clone();
        let quotas = self.quotas;
        self.writer
            .call(move |conn| enqueue(conn, &tenant, &event, target, quotas))
            .await
    }

    async fn claim(
        &self,
        now: Timestamp,
        limits: ClaimLimits,
        lease: LeaseRequest,
    ) -> Result<Vec<Claimed>, SqliteError> {
        self.writer
            .call_with(Durability::Relaxed, move |conn| {
                claim(conn, now, limits, lease)
            })
            .await
    }

    async fn complete_all(
        &self,
        batch: Vec<(Lease, AttemptReport)>,
    ) -> Result<Vec<CompleteOutcome>, SqliteError> {
        // One job: one savepoint of one transaction, so one commit for the
        // batch (and on `Err`, none of it written).
        self.writer
            .call_with(Durability::Relaxed, move |conn| complete_all(conn, &batch))
            .await
    }

    async fn renew(&self, lease: &Lease, until: Timestamp) -> Result<bool, SqliteError> {
        let lease = lease.clone();
        self.writer
            .call_with(Durability::Relaxed, move |conn| renew(conn, &lease, until))
            .await
    }

    async fn release(&self, lease: &Lease) -> Result<bool, SqliteError> {
        let lease = lease.clone();
        self.writer
            .call_with(Durability::Relaxed, move |conn| release(conn, &lease))
            .await
    }

    async fn complete(
        &self,
        lease: &Lease,
        report: AttemptReport,
    ) -> Result<CompleteOutcome, SqliteError> {
        let lease = lease.clone();
        self.writer
            .call_with(Durability::Relaxed, move |conn| {
                complete(conn, &lease, &report)
            })
            .await
    }

    async fn list_attempts(
        &self,
        tenant: &TenantId,
        destination: DestinationId,
        before: Option<AttemptId>,
        limit: usize,
    ) -> Result<Vec<AttemptRecord>, SqliteError> {
        let tenant = tenant.as_str().to_owned();
        let destination = destination.to_string();
        let limit = sql_count(limit);
        self.readers
            .call(move |conn| {
                // Attempt ids are `att_` and a canonical ULID, whose text
                // order is id order.
                let rows: Vec<AttemptRow> = match before {
                    Some(before) => conn
                        .prepare_cached(&format!(
                            "SELECT {ATTEMPT_COLUMNS} FROM attempts
                             WHERE tenant_id = ?1 AND destination_id = ?2 AND attempt_id < ?3
                             ORDER BY attempt_id DESC LIMIT ?4"
                        ))?
                        .query_map(
                            params![tenant, destination, before.to_string(), limit],
                            AttemptRow::read,
                        )?
                        .collect::<rusqlite::Result<_>>()?,
                    None => conn
                        .prepare_cached(&format!(
                            "SELECT {ATTEMPT_COLUMNS} FROM attempts
                             WHERE tenant_id = ?1 AND destination_id = ?2
                             ORDER BY attempt_id DESC LIMIT ?3"
                        ))?
                        .query_map(params![tenant, destination, limit], AttemptRow::read)?
                        .collect::<rusqlite::Result<_>>()?,
                };
                rows.into_iter().map(AttemptRow::decode).collect()
            })
            .await
    }

    /// Two counts on a reader, in one snapshot: the leased ones over the
    /// partial index `deliveries_leased` (as many rows as attempts in
    /// flight), all of them over the table (its cost grows with the queue:
    /// hosts sample it).
    async fn queue_depth(&self) -> Result<QueueDepth, SqliteError> {
        self.readers
            .call(|conn| {
                let total: i64 = conn
                    .prepare_cached("SELECT count(*) FROM deliveries")?
                    .query_row([], |r| r.get(0))?;
                let leased: i64 = conn
                    .prepare_cached(
                        "SELECT count(*) FROM deliveries INDEXED BY deliveries_leased
                         WHERE lease_token IS NOT NULL",
                    )?
                    .query_row([], |r| r.get(0))?;
                let total = u64::try_from(total).map_err(|_| SqliteError::corrupt("count"))?;
                let leased = u64::try_from(leased).map_err(|_| SqliteError::corrupt("count"))?;
                Ok(QueueDepth {
                    waiting: total.saturating_sub(leased),
                    leased,
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::super::migrations::{configure, migrate_to, schema_version};
    use prets_destinations::{os_rng, rand_core::Rng as _};

    fn remove_db(path: &std::path::Path) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.to_path_buf().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }

    /// Stores destination `id` of `tenant`, created at `at_ms`, with a
    /// fresh secret sealed under `key`.
    fn insert_destination(
        conn: &Connection,
        key: &prets_destinations::SealingKey,
        tenant: &prets_destinations::TenantId,
        id: prets_destinations::DestinationId,
        at_ms: i64,
    ) {
        let secret = prets_destinations::BearerSecret::from_rng(&mut os_rng());
        conn.execute(
            "INSERT INTO destinations (tenant_id, destination_id, name, url,
                 created_at_ms, updated_at_ms, sealed_secret, secret_digest)
             VALUES (?1, ?2, 'n', 'https://example.com/hook', ?3, ?3, ?4, ?5)",
            rusqlite::params![
                tenant.as_str(),
                id.to_string(),
                at_ms,
                &key.seal(tenant, id, &secret, &mut os_rng()).to_bytes()[..],
                &secret.digest().as_bytes()[..],
            ],
        )
        .unwrap();
    }

    /// The report of an attempt of `claimed` started at `at`, classified
    /// `class`, with `next` as its next step.
    fn report(
        claimed: &prets_destinations::delivery::Claimed,
        at: prets_destinations::Timestamp,
        class: &prets_destinations::delivery::Classification,
        next: prets_destinations::delivery::NextStep,
    ) -> prets_destinations::delivery::AttemptReport {
        use prets_destinations::delivery::{
            AttemptId, AttemptMeta, AttemptRecord, AttemptReport, DisablePolicy,
        };
        let meta = AttemptMeta {
            attempt_id: AttemptId::generate(at, &mut os_rng()),
            event_id: claimed.event.event_id,
            destination_id: claimed.lease.delivery.destination_id,
            attempt: claimed.attempt,
            started_at: at,
            duration_ms: 1,
        };
        AttemptReport {
            attempt: AttemptRecord::new(meta, class, &next),
            next,
            disable: DisablePolicy::default(),
        }
    }

    /// The plans of every claim, outbox write and event-log statement at
    /// 10,000 and 100,000
    /// queued deliveries: each reaches its rows through an index (no full
    /// scan of a table or an index, no sort of the candidates), and the
    /// plan does not change with the depth. Run with `--nocapture` to see
    /// them.
    #[test]
    #[allow(clippy::print_stdout, reason = "the plans, shown with --nocapture")]
    fn claim_and_complete_plans_use_indexes_at_any_depth() {
        let path = std::env::temp_dir().join(format!(
            "prets-sqlite-plans-{}-{:x}.sqlite3",
            std::process::id(),
            os_rng().next_u64()
        ));
        let mut conn = Connection::open(&path).unwrap();
        configure(&conn).unwrap();
        migrate_to(&mut conn, schema_version()).unwrap();
        let statements: Vec<(&str, &str)> = super::super::claim::STATEMENTS
            .iter()
            .chain(super::STATEMENTS)
            .chain(super::super::events::STATEMENTS)
            .copied()
            .collect();
        let mut plans_at = Vec::new();
        for queued in [10_000_i64, 100_000] {
            fill(&conn, queued);
            let mut plans = Vec::new();
            for (name, sql) in &statements {
                let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
                let unbound = std::iter::repeat_n(rusqlite::types::Null, stmt.parameter_count());
                let plan: Vec<String> = stmt
                    .query_map(rusqlite::params_from_iter(unbound), |r| {
                        r.get::<_, String>(3)
                    })
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap();
                for step in &plan {
                    let full_scan = step.starts_with("SCAN ")
                        && !step.starts_with("SCAN json_each")
                        && !step.starts_with("SCAN (subquery")
                        && !step.starts_with("SCAN CONSTANT ROW");
                    // The organization's part of a deliveries key: all of
                    // its destinations.
                    let whole_org =
                        step.starts_with("SEARCH deliveries") && step.ends_with("(tenant_id=?)");
                    assert!(
                        !full_scan && !whole_org && !step.contains("TEMP B-TREE"),
                        "{name} at {queued} queued: {step}\n{plan:#?}"
                    );
                }
                println!("{name} ({queued} queued):\n  {}", plan.join("\n  "));
                plans.push(plan);
            }
            plans_at.push(plans);
        }
        assert_eq!(plans_at[0], plans_at[1]);
        drop(conn);
        remove_db(&path);
    }

    /// Brings the outbox's tables to `queued` deliveries over 100
    /// destinations of 10 organizations (lanes and rings to match), with
    /// foreign keys off: only the row counts matter to the plans.
    fn fill(conn: &Connection, queued: i64) {
        conn.execute_batch(
            "PRAGMA foreign_keys = OFF;
             DELETE FROM deliveries; DELETE FROM events; DELETE FROM lanes;
             DELETE FROM rings; DELETE FROM destinations;",
        )
        .unwrap();
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99)
             INSERT INTO destinations (tenant_id, destination_id, name, url, created_at_ms,
                 updated_at_ms, sealed_secret, secret_digest)
             SELECT 'org_' || (i % 10), 'whk_' || printf('%026d', i), 'n', 'https://x.test',
                 0, 0, x'00', randomblob(32)
             FROM n",
            [],
        )
        .unwrap();
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1)
             INSERT INTO events (tenant_id, event_id, event_type, created_at_ms, payload)
             SELECT 'org_' || (i % 10), 'evt_' || printf('%026d', i), 't', i, '{}' FROM n",
            [queued],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO deliveries (tenant_id, event_id, destination_id, attempt, due_at_ms,
                 lease_token, lease_expires_ms)
             SELECT tenant_id, event_id,
                 'whk_' || printf('%026d', (created_at_ms % 100)), 1, created_at_ms,
                 CASE WHEN created_at_ms % 50 = 0 THEN randomblob(16) END,
                 CASE WHEN created_at_ms % 50 = 0 THEN created_at_ms + 30000 END
             FROM events",
            [],
        )
        .unwrap();
        conn.execute_batch(
            "INSERT INTO lanes (tenant_id, destination_id, failing, ready, wake_ms, turn)
                 SELECT tenant_id, destination_id, 0, destination_id < 'whk_0000000000000000000000005',
                     CASE WHEN destination_id < 'whk_0000000000000000000000005' THEN NULL ELSE 0 END,
                     0
                 FROM destinations;
             INSERT INTO rings (tenant_id, failing, turn)
                 SELECT DISTINCT tenant_id, 0, 0 FROM destinations;
             PRAGMA foreign_keys = ON;",
        )
        .unwrap();
    }

    /// What the SQLite virtual machine did for one claim and the
    /// completions of what it returned, summed over every statement of the
    /// claim and the outbox's writes: VM steps, and full-scan steps, sorts
    /// and automatic indexes (none allowed).
    #[derive(Debug, Default, PartialEq, Eq)]
    struct Work {
        steps: i64,
        full_scan_steps: i64,
        sorts: i64,
        auto_indexes: i64,
    }

    fn take_work(conn: &Connection) -> Work {
        use rusqlite::StatementStatus;
        let mut work = Work::default();
        for (_, sql) in super::super::claim::STATEMENTS
            .iter()
            .chain(super::STATEMENTS)
        {
            let stmt = conn.prepare_cached(sql).unwrap();
            work.steps += i64::from(stmt.reset_status(StatementStatus::VmStep));
            work.full_scan_steps += i64::from(stmt.reset_status(StatementStatus::FullscanStep));
            work.sorts += i64::from(stmt.reset_status(StatementStatus::Sort));
            work.auto_indexes += i64::from(stmt.reset_status(StatementStatus::AutoIndex));
        }
        work
    }

    /// A hostile organization with `queued` deliveries over 10 destinations
    /// (due one millisecond apart), a quiet one with a single delivery due
    /// after all of them; then a claim of 64 with a cap of 4 per
    /// destination, every delivery it returned completed, and a second
    /// claim. The work (VM steps, counted by SQLite per statement) is the
    /// same at 10,000 and 100,000 queued, with no full scan, no sort and no
    /// automatic index; the quiet organization is served by the first
    /// claim.
    #[test]
    fn claims_and_completions_do_the_same_work_at_any_depth() {
        use std::time::Duration;

        use prets_destinations::delivery::{
            ClaimLimits, Classification, CompleteOutcome, LeaseRequest, LeaseToken, NextStep,
        };
        use prets_destinations::{DestinationId, KeyId, SealingKey, TenantId, Timestamp};
        use rusqlite::params;

        let t0 = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
        let t0_ms = i64::try_from(t0.unix_millis()).unwrap();
        let key = SealingKey::from_rng(KeyId::new(3), &mut os_rng());
        let (hostile, quiet): (TenantId, TenantId) =
            ("org_hostile".parse().unwrap(), "org_quiet".parse().unwrap());
        let limits = ClaimLimits {
            limit: 64,
            per_destination: 4,
            failing_limit: 1,
            per_failing_destination: 1,
        };
        let mut runs = Vec::new();
        for queued in [10_000_i64, 100_000] {
            let path = std::env::temp_dir().join(format!(
                "prets-sqlite-work-{queued}-{}-{:x}.sqlite3",
                std::process::id(),
                os_rng().next_u64()
            ));
            let mut conn = Connection::open(&path).unwrap();
            configure(&conn).unwrap();
            migrate_to(&mut conn, schema_version()).unwrap();
            conn.execute_batch("BEGIN").unwrap();
            let lanes: Vec<(&TenantId, DestinationId)> = (0..11_u32)
                .map(|n| {
                    let tenant = if n < 10 { &hostile } else { &quiet };
                    (tenant, DestinationId::from_parts(t0, u128::from(n)))
                })
                .collect();
            for (n, (tenant, id)) in lanes.iter().enumerate() {
                insert_destination(&conn, &key, tenant, *id, t0_ms);
                // Event ids: `evt_` and 26 digits (valid Crockford base32,
                // in due order); the quiet one's is due last.
                let (first, count) = if n < 10 { (0, queued) } else { (queued, 1) };
                let lane = i64::try_from(n).unwrap();
                conn.execute(
                    "WITH RECURSIVE k(i) AS (SELECT ?3 UNION ALL SELECT i + 1 FROM k
                                             WHERE i + 1 < ?3 + ?4)
                     INSERT INTO events (tenant_id, event_id, event_type, created_at_ms, payload)
                     SELECT ?1, 'evt_' || printf('%026d', i), 'order.created', ?5 + i, '{}'
                     FROM k WHERE ?6 = 10 OR i % 10 = ?6",
                    params![tenant.as_str(), id.to_string(), first, count, t0_ms, lane],
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO deliveries (tenant_id, event_id, destination_id, attempt,
                         due_at_ms)
                     SELECT tenant_id, event_id, ?2, 1, created_at_ms FROM events
                     WHERE tenant_id = ?1 AND (?3 = 10 OR (created_at_ms - ?4) % 10 = ?3)",
                    params![tenant.as_str(), id.to_string(), lane, t0_ms],
                )
                .unwrap();
                super::schedule(&conn, tenant.as_str(), id.as_ref(), t0_ms).unwrap();
            }
            let stored: i64 = conn
                .query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
                .unwrap();
            assert_eq!(stored, queued + 1);
            let _ = take_work(&conn);

            let now = t0.checked_add(Duration::from_secs(1_000)).unwrap();
            let lease = || LeaseRequest {
                token: LeaseToken::generate(&mut os_rng()),
                duration: Duration::from_secs(60),
            };
            let lane_reads = || {
                conn.prepare_cached(super::super::claim::STANDING_AND_LEASES)
                    .unwrap()
                    .reset_status(rusqlite::StatementStatus::Run)
            };
            let _ = lane_reads();
            let first = super::claim(&conn, now, limits, lease()).unwrap();
            assert_eq!(first.len(), 41, "4 for each of 10 destinations, 1 quiet");
            assert!(first.iter().any(|c| c.lease.delivery.tenant == quiet));
            // Each lane is read once: a lane left at its cap is not read
            // again by the same claim.
            assert_eq!(lane_reads(), 11, "{queued} queued");
            for c in &first {
                let delivered = Classification::Delivered { status: 200 };
                let report = report(c, now, &delivered, NextStep::Delivered);
                assert_eq!(
                    super::complete(&conn, &c.lease, &report).unwrap(),
                    CompleteOutcome::Recorded {
                        disabled: None,
                        retry_at: None
                    }
                );
            }
            let second = super::claim(&conn, now, limits, lease()).unwrap();
            assert_eq!(second.len(), 40);
            let work = take_work(&conn);
            conn.execute_batch("COMMIT").unwrap();
            drop(conn);
            remove_db(&path);
            assert_eq!(
                (work.full_scan_steps, work.sorts, work.auto_indexes),
                (0, 0, 0),
                "{queued} queued: {work:?}"
            );
            runs.push(work.steps);
        }
        // The same statements over the same few rows: B-trees ten times
        // larger cost no more virtual-machine steps.
        assert!(
            runs[1] <= runs[0] + runs[0] / 20,
            "VM steps at 10,000 and 100,000 queued: {runs:?}"
        );
    }

    /// A database in memory with one destination and `n` deliveries to it,
    /// all claimed: the connection, the claim's time and what it leased.
    fn claimed_of_one_destination(
        n: i64,
    ) -> (
        Connection,
        prets_destinations::Timestamp,
        Vec<prets_destinations::delivery::Claimed>,
    ) {
        use std::time::Duration;

        use prets_destinations::delivery::{ClaimLimits, LeaseRequest, LeaseToken};
        use prets_destinations::{DestinationId, KeyId, SealingKey, TenantId, Timestamp};
        use rusqlite::params;

        let t0 = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
        let t0_ms = i64::try_from(t0.unix_millis()).unwrap();
        let key = SealingKey::from_rng(KeyId::new(3), &mut os_rng());
        let tenant: TenantId = "org_one".parse().unwrap();
        let id = DestinationId::from_parts(t0, 7);
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, schema_version()).unwrap();
        insert_destination(&conn, &key, &tenant, id, t0_ms);
        conn.execute(
            "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < ?3 - 1)
             INSERT INTO events (tenant_id, event_id, event_type, created_at_ms, payload)
             SELECT ?1, 'evt_' || printf('%026d', i), 'order.created', ?2 + i, '{}' FROM k",
            params![tenant.as_str(), t0_ms, n],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO deliveries (tenant_id, event_id, destination_id, attempt, due_at_ms)
             SELECT tenant_id, event_id, ?2, 1, created_at_ms FROM events WHERE tenant_id = ?1",
            params![tenant.as_str(), id.to_string()],
        )
        .unwrap();
        super::schedule(&conn, tenant.as_str(), id.as_ref(), t0_ms).unwrap();
        let now = t0.checked_add(Duration::from_secs(10)).unwrap();
        let limits = ClaimLimits {
            limit: usize::try_from(n).unwrap(),
            per_destination: usize::MAX,
            failing_limit: 1,
            per_failing_destination: 1,
        };
        let lease = LeaseRequest {
            token: LeaseToken::generate(&mut os_rng()),
            duration: Duration::from_secs(60),
        };
        let claimed = super::claim(&conn, now, limits, lease).unwrap();
        assert_eq!(claimed.len(), usize::try_from(n).unwrap());
        (conn, now, claimed)
    }

    /// A batch of completions writes as completions one by one: a lease
    /// completed twice in the batch is lost the second time (one attempt
    /// row), and a delivery finished before a `410` in the same batch
    /// disables its destination is finished, not dropped by the disable.
    #[test]
    fn a_batch_of_completions_writes_as_completions_one_by_one() {
        use prets_destinations::delivery::{
            Classification, CompleteOutcome, DisabledReason, NextStep,
        };

        let (conn, now, claimed) = claimed_of_one_destination(3);
        let delivered = Classification::Delivered { status: 200 };
        let batch = vec![
            (
                claimed[0].lease.clone(),
                report(&claimed[0], now, &delivered, NextStep::Delivered),
            ),
            (
                claimed[0].lease.clone(),
                report(&claimed[0], now, &delivered, NextStep::Delivered),
            ),
            (
                claimed[1].lease.clone(),
                report(
                    &claimed[1],
                    now,
                    &Classification::Gone,
                    NextStep::Disable(DisabledReason::Gone),
                ),
            ),
        ];
        let outcomes = super::complete_all(&conn, &batch).unwrap();
        assert_eq!(
            outcomes,
            [
                CompleteOutcome::Recorded {
                    disabled: None,
                    retry_at: None
                },
                CompleteOutcome::LeaseLost,
                CompleteOutcome::Recorded {
                    disabled: Some(DisabledReason::Gone),
                    retry_at: None
                },
            ]
        );
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT count(*) FROM attempts"), 2);
        // The third delivery is still leased (its attempt has not ended),
        // so it stays; the first two are gone, and neither was dropped by
        // the disable.
        assert_eq!(count("SELECT count(*) FROM deliveries"), 1);
        assert_eq!(count("SELECT count(*) FROM dropped_deliveries"), 0);
        let first: i64 = conn
            .query_row(
                "SELECT count(*) FROM attempts WHERE event_id = ?1 AND outcome = 'succeeded'",
                [claimed[0].event.event_id.to_string()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(first, 1);
    }

    /// A completion writes the destination's row and its lane only when
    /// the failure streak changes: a delivery to a destination that was not
    /// failing writes neither, the first failure starts the streak (both
    /// written), and the delivery after it ends it (both written again).
    #[test]
    fn completions_write_the_destination_only_when_its_streak_changes() {
        use std::time::Duration;

        use prets_destinations::delivery::{
            Classification, CompleteOutcome, Failure, FailureCause, NextStep,
        };

        let (conn, now, claimed) = claimed_of_one_destination(3);
        conn.execute_batch(
            "CREATE TEMP TABLE writes (tbl TEXT NOT NULL);
             CREATE TEMP TRIGGER destination_written AFTER UPDATE ON main.destinations
             BEGIN INSERT INTO writes VALUES ('destinations'); END;
             CREATE TEMP TRIGGER lane_written AFTER UPDATE ON main.lanes
             BEGIN INSERT INTO writes VALUES ('lanes'); END;",
        )
        .unwrap();
        let failed = Classification::Failed(Failure {
            cause: FailureCause::Status(500),
            retry_after: None,
        });
        let retry = NextStep::RetryAt(now.checked_add(Duration::from_secs(5)).unwrap());
        let delivered = Classification::Delivered { status: 204 };
        let steps = [
            (&delivered, NextStep::Delivered, 0, None),
            (&failed, retry, 1, Some(1)),
            (&delivered, NextStep::Delivered, 1, None),
        ];
        for (c, (class, next, destination_writes, attempts)) in claimed.iter().zip(steps) {
            conn.execute("DELETE FROM writes", []).unwrap();
            let report = report(c, now, class, next);
            assert_eq!(
                super::complete(&conn, &c.lease, &report).unwrap(),
                CompleteOutcome::Recorded {
                    disabled: None,
                    retry_at: match next {
                        NextStep::RetryAt(at) => Some(at),
                        _ => None,
                    }
                }
            );
            let count = |tbl: &str| -> i64 {
                conn.query_row("SELECT count(*) FROM writes WHERE tbl = ?1", [tbl], |r| {
                    r.get(0)
                })
                .unwrap()
            };
            let (stored, failing): (Option<i64>, bool) = conn
                .query_row(
                    "SELECT d.failing_attempts, l.failing FROM destinations d
                     JOIN lanes l USING (tenant_id, destination_id)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!(
                (count("destinations"), stored, failing),
                (destination_writes, attempts, attempts.is_some()),
                "after a {next:?}"
            );
            if destination_writes == 0 {
                assert_eq!(count("lanes"), 0, "after a {next:?}");
            }
        }
    }

    /// Publishing finds the destinations an event type matches by primary
    /// key searches of `destination_filters` (one per key), then of
    /// `destinations`: it never scans a table nor walks a tenant's whole
    /// filter index, however many destinations the tenant has.
    #[test]
    fn enqueue_searches_the_filter_index_by_key_and_scans_nothing() {
        // In memory: no WAL, so not `configure`d; the schema is what counts.
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, schema_version()).unwrap();
        let tx = conn.transaction().unwrap();
        for tenant in ["t0", "t1"] {
            for i in 0..500 {
                let id = format!("whk_{i:026}");
                tx.execute(
                    "INSERT INTO destinations (tenant_id, destination_id, name, url,
                         created_at_ms, updated_at_ms, sealed_secret, secret_digest)
                     VALUES (?1, ?2, 'n', 'https://example.com/', 0, 0, x'00', x'00')",
                    rusqlite::params![tenant, id],
                )
                .unwrap();
                tx.execute(
                    "INSERT INTO destination_filters VALUES (?1, ?2, ?3)",
                    rusqlite::params![tenant, format!("type{i}.*"), id],
                )
                .unwrap();
            }
        }
        tx.commit().unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN {}",
                super::MATCHING_DESTINATIONS
            ))
            .unwrap()
            .query_map(
                rusqlite::params!["t1", r#"["*","type5*","type5.*","type5.x"]"#],
                |r| r.get(3),
            )
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|p| p == "SEARCH f USING PRIMARY KEY (tenant_id=? AND filter_key=?)"),
            "{plan:?}"
        );
        assert!(
            plan.iter()
                .any(|p| p == "SEARCH d USING PRIMARY KEY (tenant_id=? AND destination_id=?)"),
            "{plan:?}"
        );
        assert!(
            plan.iter()
                .all(|p| !p.starts_with("SCAN") || p.contains("json_each")),
            "{plan:?}"
        );
    }
}
