//! [`Outbox`] for [`SqliteRepo`]: every write on the group-commit writer
//! (answered after `COMMIT`, `synchronous = FULL`), the attempt listing on
//! the readers.
//!
//! The single writer runs one job at a time, so a claim's read of the due
//! deliveries and its writing of their leases cannot interleave with another
//! claim: two claims never lease one delivery.

use prets_destinations::delivery::{
    AttemptId, AttemptOutcome, AttemptRecord, AttemptReport, ClaimLimits, Claimed, CompleteOutcome,
    DeliveryAfter, DeliveryKey, EVENT_ID_RETENTION, EVENT_IDS_FORGOTTEN_PER_ENQUEUE,
    EnqueueOutcome, Event, EventId, EventType, ExistingEvent, FailureStreak, Lease, LeaseRequest,
    LeaseToken, Outbox, Payload, PayloadDigest, Target, settle,
};
use prets_destinations::{DestinationId, DestinationRecord, TenantId, Timestamp};
use rusqlite::{Connection, OptionalExtension as _, Row, params};

use super::SqliteRepo;
use super::error::{JobResult, SqliteError};
use super::rows::{COLUMNS, millis, read_records, timestamp, version};

/// A count or limit as SQLite's integer, saturating.
fn sql_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

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

/// A due delivery's raw columns with its event's, decoded outside rusqlite's
/// row callback so that decoding errors keep their own type.
struct DueRow {
    tenant_id: String,
    event_id: String,
    destination_id: String,
    attempt: i64,
    event_type: String,
    created_at: i64,
    payload: String,
}

impl DueRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            tenant_id: row.get(0)?,
            event_id: row.get(1)?,
            destination_id: row.get(2)?,
            attempt: row.get(3)?,
            event_type: row.get(4)?,
            created_at: row.get(5)?,
            payload: row.get(6)?,
        })
    }

    fn decode(self) -> JobResult<(DeliveryKey, Event, u32)> {
        let event_id =
            EventId::try_from(self.event_id).map_err(|_| SqliteError::corrupt("event id"))?;
        let key = DeliveryKey {
            tenant: TenantId::try_from(self.tenant_id)
                .map_err(|_| SqliteError::corrupt("tenant id"))?,
            event_id,
            destination_id: DestinationId::try_from(self.destination_id)
                .map_err(|_| SqliteError::corrupt("destination id"))?,
        };
        let event = Event {
            event_id,
            event_type: EventType::try_from(self.event_type)
                .map_err(|_| SqliteError::corrupt("event type"))?,
            created_at: timestamp(self.created_at, "event created at")?,
            payload: Payload::from_json(self.payload)
                .map_err(|_| SqliteError::corrupt("event payload"))?,
        };
        Ok((key, event, u32_from_sql(self.attempt, "attempt")?))
    }
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
}

const ATTEMPT_COLUMNS: &str = "attempt_id, event_id, destination_id, attempt, started_at_ms, \
     duration_ms, outcome, response_status, error, next_attempt_at_ms";

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
        })
    }
}

/// Whether `lease` is held: its delivery exists under its token. An expired
/// lease not yet claimed again is still held.
fn held(conn: &Connection, lease: &Lease) -> JobResult<bool> {
    let (tenant, event, destination) = key_params(&lease.delivery);
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM deliveries
             WHERE tenant_id = ?1 AND event_id = ?2 AND destination_id = ?3
                 AND lease_token = ?4",
        )?
        .exists(params![
            tenant,
            event,
            destination,
            &lease.token.to_bytes()[..]
        ])?)
}

/// Whether the destination is enabled, and its stored failure streak;
/// `None` if the row is gone.
fn standing(
    conn: &Connection,
    tenant: &str,
    destination: &str,
) -> JobResult<Option<(bool, Option<FailureStreak>)>> {
    let row: Option<(bool, Option<i64>, Option<i64>)> = conn
        .prepare_cached(
            "SELECT enabled, failing_since_ms, failing_attempts FROM destinations
             WHERE tenant_id = ?1 AND destination_id = ?2",
        )?
        .query_row(params![tenant, destination], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((enabled, since, attempts)) = row else {
        return Ok(None);
    };
    let streak = match (since, attempts) {
        (Some(since), Some(attempts)) => Some(FailureStreak {
            since: timestamp(since, "failure streak start")?,
            attempts: u32_from_sql(attempts, "failure streak attempts")?,
        }),
        _ => None,
    };
    Ok(Some((enabled, streak)))
}

/// Drops the destination's pending deliveries that are not under a lease:
/// what disabling it does (the leased ones are attempts in flight; see
/// [`Outbox`]'s "Disabling"). An event row goes with its last delivery (a
/// trigger).
pub(super) fn drop_unleased(conn: &Connection, tenant: &str, destination: &str) -> JobResult<()> {
    conn.prepare_cached(
        "DELETE FROM deliveries
         WHERE tenant_id = ?1 AND destination_id = ?2 AND lease_token IS NULL",
    )?
    .execute(params![tenant, destination])?;
    Ok(())
}

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

fn enqueue(
    conn: &Connection,
    tenant: &str,
    event: &Event,
    target: Target,
) -> JobResult<EnqueueOutcome> {
    let ids: Vec<String> = match target {
        Target::AllEnabled => conn
            .prepare_cached(
                "SELECT destination_id FROM destinations
                 WHERE tenant_id = ?1 AND enabled = 1 ORDER BY destination_id",
            )?
            .query_map(params![tenant], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?,
        Target::Only(id) => {
            let id = id.to_string();
            let enabled: Option<bool> = conn
                .prepare_cached(
                    "SELECT enabled FROM destinations
                     WHERE tenant_id = ?1 AND destination_id = ?2",
                )?
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
    if let Some(existing) = remember(conn, tenant, &event_id, event, ids.len())? {
        return Ok(EnqueueOutcome::Exists(existing));
    }
    if ids.is_empty() {
        // Nothing to deliver: only the id is stored.
        return Ok(EnqueueOutcome::Enqueued { deliveries: 0 });
    }
    // The id was new, so no event of it is stored (the ids of events
    // stored before `event_ids` were added with it).
    conn.prepare_cached(
        "INSERT INTO events (tenant_id, event_id, event_type, created_at_ms, payload)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (tenant_id, event_id) DO NOTHING",
    )?
    .execute(params![
        tenant,
        event_id,
        event.event_type.as_str(),
        millis(event.created_at),
        event.payload.get(),
    ])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO deliveries (tenant_id, event_id, destination_id, attempt, due_at_ms)
         VALUES (?1, ?2, ?3, 1, ?4)
         ON CONFLICT (tenant_id, event_id, destination_id) DO NOTHING",
    )?;
    for id in &ids {
        insert.execute(params![tenant, event_id, id, millis(event.created_at)])?;
    }
    Ok(EnqueueOutcome::Enqueued {
        deliveries: ids.len(),
    })
}

fn claim(
    conn: &Connection,
    now: Timestamp,
    limits: ClaimLimits,
    lease: LeaseRequest,
) -> JobResult<Vec<Claimed>> {
    let limit = limits.limit;
    let now_ms = millis(now);
    // A delivery of a disabled destination without a live lease (its holder
    // vanished after the disable, or an earlier build, which dropped them
    // only here, left it) is finished, not offered; those of removed
    // destinations went with them.
    conn.prepare_cached(
        "DELETE FROM deliveries
         WHERE (tenant_id, destination_id) IN
                 (SELECT tenant_id, destination_id FROM destinations WHERE enabled = 0)
             AND (lease_expires_ms IS NULL OR lease_expires_ms <= ?1)",
    )?
    .execute(params![now_ms])?;
    let due: Vec<DueRow> = conn
        .prepare_cached(
            "SELECT d.tenant_id, d.event_id, d.destination_id, d.attempt,
                 e.event_type, e.created_at_ms, e.payload
             FROM deliveries d
             JOIN events e ON e.tenant_id = d.tenant_id AND e.event_id = d.event_id
             WHERE d.due_at_ms <= ?1
                 AND (d.lease_expires_ms IS NULL OR d.lease_expires_ms <= ?1)
             ORDER BY d.due_at_ms, d.tenant_id, d.event_id, d.destination_id
             LIMIT ?2",
        )?
        .query_map(params![now_ms, sql_count(limit)], DueRow::read)?
        .collect::<rusqlite::Result<_>>()?;
    let expires_at = now.saturating_add(lease.duration);
    let token = lease.token.to_bytes();
    let mut take = conn.prepare_cached(
        "UPDATE deliveries SET lease_token = ?4, lease_expires_ms = ?5
         WHERE tenant_id = ?1 AND event_id = ?2 AND destination_id = ?3",
    )?;
    let mut claimed = Vec::with_capacity(due.len());
    for row in due {
        // The stored text, not re-encoded: the key columns match exactly.
        take.execute(params![
            row.tenant_id,
            row.event_id,
            row.destination_id,
            &token[..],
            millis(expires_at),
        ])?;
        let (delivery, event, attempt) = row.decode()?;
        let (destination, failing) = claimed_destination(conn, &delivery)?;
        claimed.push(Claimed {
            destination,
            failing,
            lease: Lease {
                token: LeaseToken::from_bytes(token),
                delivery,
                expires_at,
            },
            event,
            attempt,
        });
    }
    Ok(claimed)
}

/// The destination of a claimed delivery, as stored, and whether it is
/// failing (its failure streak is not empty).
fn claimed_destination(
    conn: &Connection,
    key: &DeliveryKey,
) -> JobResult<(DestinationRecord, bool)> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM destinations WHERE tenant_id = ?1 AND destination_id = ?2"
    ))?;
    let tenant = key.tenant.as_str();
    let id = key.destination_id.to_string();
    let (_, record) = read_records(conn, &mut stmt, params![tenant, id])?
        .into_iter()
        .next()
        .ok_or_else(|| SqliteError::corrupt("delivery destination"))?;
    let failing = conn
        .prepare_cached(
            "SELECT failing_since_ms IS NOT NULL FROM destinations
             WHERE tenant_id = ?1 AND destination_id = ?2",
        )?
        .query_row(params![tenant, id], |row| row.get::<_, bool>(0))?;
    Ok((record, failing))
}

fn renew(conn: &Connection, lease: &Lease, until: Timestamp) -> JobResult<bool> {
    let (tenant, event, destination) = key_params(&lease.delivery);
    let changed = conn
        .prepare_cached(
            "UPDATE deliveries SET lease_expires_ms = ?5
             WHERE tenant_id = ?1 AND event_id = ?2 AND destination_id = ?3
                 AND lease_token = ?4",
        )?
        .execute(params![
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
    let dropped = conn
        .prepare_cached(
            "DELETE FROM deliveries
             WHERE tenant_id = ?1 AND event_id = ?2 AND destination_id = ?3
                 AND lease_token = ?4
                 AND EXISTS (SELECT 1 FROM destinations
                             WHERE tenant_id = ?1 AND destination_id = ?3 AND enabled = 0)",
        )?
        .execute(params![
            tenant,
            event,
            destination,
            &lease.token.to_bytes()[..]
        ])?;
    if dropped == 1 {
        return Ok(true);
    }
    let changed = conn
        .prepare_cached(
            "UPDATE deliveries SET lease_token = NULL, lease_expires_ms = NULL
             WHERE tenant_id = ?1 AND event_id = ?2 AND destination_id = ?3
                 AND lease_token = ?4",
        )?
        .execute(params![
            tenant,
            event,
            destination,
            &lease.token.to_bytes()[..]
        ])?;
    Ok(changed == 1)
}

fn complete(
    conn: &Connection,
    lease: &Lease,
    report: &AttemptReport,
) -> JobResult<CompleteOutcome> {
    if !held(conn, lease)? {
        return Ok(CompleteOutcome::LeaseLost);
    }
    let (tenant, event, destination) = key_params(&lease.delivery);
    let Some((enabled, streak)) = standing(conn, &tenant, &destination)? else {
        return Ok(CompleteOutcome::LeaseLost);
    };
    let settled = settle(report, streak, enabled);
    match settled.delivery {
        // The event row goes with its last delivery (a trigger).
        DeliveryAfter::Finished => conn
            .prepare_cached(
                "DELETE FROM deliveries
                 WHERE tenant_id = ?1 AND event_id = ?2 AND destination_id = ?3",
            )?
            .execute(params![tenant, event, destination])?,
        DeliveryAfter::RetryAt(at) => conn
            .prepare_cached(
                "UPDATE deliveries SET attempt = min(attempt + 1, 4294967295), due_at_ms = ?4,
                     lease_token = NULL, lease_expires_ms = NULL
                 WHERE tenant_id = ?1 AND event_id = ?2 AND destination_id = ?3",
            )?
            .execute(params![tenant, event, destination, millis(at)])?,
    };
    conn.prepare_cached(
        "UPDATE destinations SET failing_since_ms = ?3, failing_attempts = ?4
         WHERE tenant_id = ?1 AND destination_id = ?2",
    )?
    .execute(params![
        tenant,
        destination,
        settled.streak.map(|s| millis(s.since)),
        settled.streak.map(|s| s.attempts),
    ])?;
    let a = &settled.attempt;
    // Stored under the leased delivery's destination; an attempt id written
    // again replaces the earlier row.
    conn.prepare_cached(
        "INSERT OR REPLACE INTO attempts (tenant_id, destination_id, attempt_id, event_id,
             attempt, started_at_ms, duration_ms, outcome, response_status, error,
             next_attempt_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
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
            conn.prepare_cached(
                "UPDATE destinations SET enabled = 0, disabled_reason = ?3, version = ?4,
                     updated_at_ms = ?5
                 WHERE tenant_id = ?1 AND destination_id = ?2",
            )?
            .execute(params![
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
    Ok(CompleteOutcome::Recorded { disabled })
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
        self.writer
            .call(move |conn| enqueue(conn, &tenant, &event, target))
            .await
    }

    async fn claim(
        &self,
        now: Timestamp,
        limits: ClaimLimits,
        lease: LeaseRequest,
    ) -> Result<Vec<Claimed>, SqliteError> {
        self.writer
            .call(move |conn| claim(conn, now, limits, lease))
            .await
    }

    async fn renew(&self, lease: &Lease, until: Timestamp) -> Result<bool, SqliteError> {
        let lease = lease.clone();
        self.writer
            .call(move |conn| renew(conn, &lease, until))
            .await
    }

    async fn release(&self, lease: &Lease) -> Result<bool, SqliteError> {
        let lease = lease.clone();
        self.writer.call(move |conn| release(conn, &lease)).await
    }

    async fn complete(
        &self,
        lease: &Lease,
        report: AttemptReport,
    ) -> Result<CompleteOutcome, SqliteError> {
        let lease = lease.clone();
        self.writer
            .call(move |conn| complete(conn, &lease, &report))
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
}
