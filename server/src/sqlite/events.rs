//! [`EventLog`] for [`SqliteRepo`]: reads on the readers (each in one read
//! transaction, so one snapshot), writes on the writer. Every statement
//! reaches its rows through a key or an index (migration 9's); a recover
//! writes at most [`RECOVER_BATCH`] deliveries per writer job, and a purge
//! one `LIMIT`ed delete of attempts and one of events per job.

use prets_destinations::delivery::{
    AttemptOutcome, Event, EventCursor, EventDetail, EventFacts, EventId, EventLog, EventType,
    Payload, PurgeCutoffs, Purged, RECOVER_BATCH, RECOVER_MAX_EVENTS, RecoverOutcome,
    ResendOutcome,
};
use prets_destinations::limits::Quotas;
use prets_destinations::{DestinationId, DestinationRecord, TenantId, Timestamp};
use rusqlite::{Connection, OptionalExtension as _, Row, params};

use super::SqliteRepo;
use super::claim::{schedule, sql_count};
use super::error::{JobResult, SqliteError};
use super::rows::{COLUMNS, millis, pending, read_records, timestamp};

const LIST_NEWEST: &str =
    "SELECT event_id, event_type, created_at_ms, payload FROM events INDEXED BY events_newest
     WHERE tenant_id = ?1
     ORDER BY created_at_ms DESC, event_id DESC LIMIT ?2";

const LIST_AFTER: &str =
    "SELECT event_id, event_type, created_at_ms, payload FROM events INDEXED BY events_newest
     WHERE tenant_id = ?1 AND (created_at_ms, event_id) < (?2, ?3)
     ORDER BY created_at_ms DESC, event_id DESC LIMIT ?4";

const LIST_OF_TYPE: &str = "SELECT event_id, event_type, created_at_ms, payload
     FROM events INDEXED BY events_newest_of_type
     WHERE tenant_id = ?1 AND event_type = ?2
     ORDER BY created_at_ms DESC, event_id DESC LIMIT ?3";

const LIST_OF_TYPE_AFTER: &str = "SELECT event_id, event_type, created_at_ms, payload
     FROM events INDEXED BY events_newest_of_type
     WHERE tenant_id = ?1 AND event_type = ?2
         AND (created_at_ms, event_id) < (?3, ?4)
     ORDER BY created_at_ms DESC, event_id DESC LIMIT ?5";

const GET_EVENT: &str = "SELECT event_id, event_type, created_at_ms, payload FROM events
     WHERE tenant_id = ?1 AND event_id = ?2";

const PENDING_OF_EVENT: &str =
    "SELECT destination_id, due_at_ms, lease_token IS NOT NULL, manual FROM deliveries
     WHERE tenant_id = ?1 AND event_id = ?2";

const ATTEMPTS_OF_EVENT: &str = "SELECT destination_id, started_at_ms, outcome FROM attempts
     INDEXED BY attempts_by_event
     WHERE tenant_id = ?1 AND event_id = ?2";

const DROPPED_OF_EVENT: &str =
    "SELECT destination_id FROM dropped_deliveries WHERE tenant_id = ?1 AND event_id = ?2";

const MAKE_MANUAL: &str = "UPDATE deliveries SET manual = 1,
     due_at_ms = CASE WHEN lease_token IS NULL THEN ?4 ELSE due_at_ms END
     WHERE tenant_id = ?1 AND event_id = ?2 AND destination_id = ?3
     RETURNING lease_token IS NOT NULL";

const INSERT_MANUAL: &str =
    "INSERT INTO deliveries (tenant_id, event_id, destination_id, attempt, due_at_ms, manual)
     VALUES (?1, ?2, ?3, 1, ?4, 1)";

const RECOVER_SCAN: &str =
    "SELECT event_id, event_type, created_at_ms FROM events INDEXED BY events_newest
     WHERE tenant_id = ?1 AND (created_at_ms, event_id) > (?2, ?3)
     ORDER BY created_at_ms, event_id LIMIT ?4";

const PENDING_PAIR: &str =
    "SELECT 1 FROM deliveries WHERE tenant_id = ?1 AND event_id = ?2 AND destination_id = ?3";

const SUCCEEDED_PAIR: &str = "SELECT 1 FROM attempts INDEXED BY attempts_by_event
     WHERE tenant_id = ?1 AND event_id = ?2 AND destination_id = ?3
     AND outcome = 'succeeded'";

const PURGE_ATTEMPTS: &str = "DELETE FROM attempts
     WHERE (tenant_id, destination_id, attempt_id) IN
     (SELECT tenant_id, destination_id, attempt_id FROM attempts
     INDEXED BY attempts_by_age
     WHERE started_at_ms < ?1 ORDER BY started_at_ms LIMIT ?2)";

const PURGE_EVENTS_FIND: &str =
    "SELECT e.tenant_id, e.event_id FROM events e INDEXED BY events_by_age
     WHERE e.created_at_ms < ?1
     AND NOT EXISTS (SELECT 1 FROM deliveries d
     WHERE d.tenant_id = e.tenant_id AND d.event_id = e.event_id)
     ORDER BY e.created_at_ms LIMIT ?2";

/// Every statement of the event log, by name: the plans test reads them.
#[cfg(test)]
pub(super) const STATEMENTS: &[(&str, &str)] = &[
    ("list_newest", LIST_NEWEST),
    ("list_after", LIST_AFTER),
    ("list_of_type", LIST_OF_TYPE),
    ("list_of_type_after", LIST_OF_TYPE_AFTER),
    ("get_event", GET_EVENT),
    ("pending_of_event", PENDING_OF_EVENT),
    ("attempts_of_event", ATTEMPTS_OF_EVENT),
    ("dropped_of_event", DROPPED_OF_EVENT),
    ("make_manual", MAKE_MANUAL),
    ("insert_manual", INSERT_MANUAL),
    ("recover_scan", RECOVER_SCAN),
    ("pending_pair", PENDING_PAIR),
    ("succeeded_pair", SUCCEEDED_PAIR),
    ("purge_attempts", PURGE_ATTEMPTS),
    ("purge_events_find", PURGE_EVENTS_FIND),
];

fn read_event(row: &Row<'_>) -> rusqlite::Result<(String, String, i64, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn decode_event(
    (id, event_type, created_at, payload): (String, String, i64, String),
) -> JobResult<Event> {
    Ok(Event {
        event_id: EventId::try_from(id).map_err(|_| SqliteError::corrupt("event id"))?,
        event_type: EventType::try_from(event_type)
            .map_err(|_| SqliteError::corrupt("event type"))?,
        created_at: timestamp(created_at, "event created at")?,
        payload: Payload::from_json(payload).map_err(|_| SqliteError::corrupt("event payload"))?,
    })
}

fn destination_id(text: String) -> JobResult<DestinationId> {
    DestinationId::try_from(text).map_err(|_| SqliteError::corrupt("destination id"))
}

fn outcome(text: &str) -> JobResult<AttemptOutcome> {
    match text {
        "succeeded" => Ok(AttemptOutcome::Succeeded),
        "failed" => Ok(AttemptOutcome::Failed),
        "refused" => Ok(AttemptOutcome::Refused),
        _ => Err(SqliteError::corrupt("attempt outcome")),
    }
}

fn list_events(
    conn: &Connection,
    tenant: &str,
    event_type: Option<&str>,
    cursor: Option<EventCursor>,
    limit: i64,
) -> JobResult<Vec<Event>> {
    // Row values compare as tuples: `(created_at_ms, event_id) < (?, ?)`
    // is a range of `events_newest` (or `events_newest_of_type`).
    let cursor = cursor.map(|c| (millis(c.created_at), c.event_id.to_string()));
    let rows: Vec<(String, String, i64, String)> = match (event_type, cursor) {
        (None, None) => conn
            .prepare_cached(LIST_NEWEST)?
            .query_map(params![tenant, limit], read_event)?
            .collect::<rusqlite::Result<_>>()?,
        (None, Some((at, id))) => conn
            .prepare_cached(LIST_AFTER)?
            .query_map(params![tenant, at, id, limit], read_event)?
            .collect::<rusqlite::Result<_>>()?,
        (Some(t), None) => conn
            .prepare_cached(LIST_OF_TYPE)?
            .query_map(params![tenant, t, limit], read_event)?
            .collect::<rusqlite::Result<_>>()?,
        (Some(t), Some((at, id))) => conn
            .prepare_cached(LIST_OF_TYPE_AFTER)?
            .query_map(params![tenant, t, at, id, limit], read_event)?
            .collect::<rusqlite::Result<_>>()?,
    };
    rows.into_iter().map(decode_event).collect()
}

fn get_event(conn: &Connection, tenant: &str, event_id: &str) -> JobResult<Option<EventDetail>> {
    let row = conn
        .prepare_cached(GET_EVENT)?
        .query_row(params![tenant, event_id], read_event)
        .optional()?;
    let Some(row) = row else {
        return Ok(None);
    };
    let event = decode_event(row)?;
    let mut facts = EventFacts::default();
    let pending: Vec<(String, i64, bool, bool)> = conn
        .prepare_cached(PENDING_OF_EVENT)?
        .query_map(params![tenant, event_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (dest, due, leased, manual) in pending {
        facts.pending.push((
            destination_id(dest)?,
            timestamp(due, "delivery due at")?,
            leased,
            manual,
        ));
    }
    let attempts: Vec<(String, i64, String)> = conn
        .prepare_cached(ATTEMPTS_OF_EVENT)?
        .query_map(params![tenant, event_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (dest, started, result) in attempts {
        facts.attempts.push((
            destination_id(dest)?,
            timestamp(started, "attempt started at")?,
            outcome(&result)?,
        ));
    }
    let dropped: Vec<String> = conn
        .prepare_cached(DROPPED_OF_EVENT)?
        .query_map(params![tenant, event_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for dest in dropped {
        facts.dropped.push(destination_id(dest)?);
    }
    let mut enabled = conn.prepare_cached(
        "SELECT enabled FROM destinations WHERE tenant_id = ?1 AND destination_id = ?2",
    )?;
    let named: std::collections::BTreeSet<DestinationId> = facts
        .pending
        .iter()
        .map(|p| p.0)
        .chain(facts.attempts.iter().map(|a| a.0))
        .chain(facts.dropped.iter().copied())
        .collect();
    for dest in named {
        let on: Option<bool> = enabled
            .query_row(params![tenant, dest.to_string()], |r| r.get(0))
            .optional()?;
        if on == Some(false) {
            facts.disabled.push(dest);
        }
    }
    Ok(Some(EventDetail {
        event,
        deliveries: facts.derive(),
    }))
}

/// The destination as stored, or `None`.
fn destination(
    conn: &Connection,
    tenant: &str,
    destination: &str,
) -> JobResult<Option<DestinationRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM destinations WHERE tenant_id = ?1 AND destination_id = ?2"
    ))?;
    Ok(read_records(conn, &mut stmt, params![tenant, destination])?
        .into_iter()
        .next()
        .map(|(_, record)| record))
}

/// What [`queue_manual`] did.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Manual {
    /// A delivery of the pair was pending: made manual (and due now unless
    /// leased).
    Pending,
    /// A new manual delivery was queued.
    Queued,
    /// A new one would pass the organization's pending-delivery quota:
    /// nothing written.
    QueueFull,
}

/// Queues a manual delivery of the pair due `now_ms`, within `quotas`; a
/// pending one is made manual (and due now unless leased) whatever the
/// quota.
fn queue_manual(
    conn: &Connection,
    tenant: &str,
    event_id: &str,
    dest: &str,
    now_ms: i64,
    quotas: Quotas,
) -> JobResult<Manual> {
    let leased: Option<bool> = conn
        .prepare_cached(MAKE_MANUAL)?
        .query_row(params![tenant, event_id, dest, now_ms], |r| r.get(0))
        .optional()?;
    match leased {
        Some(true) => return Ok(Manual::Pending),
        Some(false) => {
            schedule(conn, tenant, dest, now_ms)?;
            return Ok(Manual::Pending);
        }
        None => {}
    }
    if quotas.caps_pending_deliveries() && !quotas.allows_deliveries(pending(conn, tenant)?, 1) {
        return Ok(Manual::QueueFull);
    }
    conn.prepare_cached(INSERT_MANUAL)?
        .execute(params![tenant, event_id, dest, now_ms])?;
    schedule(conn, tenant, dest, now_ms)?;
    Ok(Manual::Queued)
}

fn resend(
    conn: &Connection,
    tenant: &str,
    event_id: &str,
    dest: &str,
    now: Timestamp,
    quotas: Quotas,
) -> JobResult<ResendOutcome> {
    let known = conn
        .prepare_cached("SELECT 1 FROM events WHERE tenant_id = ?1 AND event_id = ?2")?
        .exists(params![tenant, event_id])?;
    if !known {
        return Ok(ResendOutcome::EventNotFound);
    }
    let enabled: Option<bool> = conn
        .prepare_cached(
            "SELECT enabled FROM destinations WHERE tenant_id = ?1 AND destination_id = ?2",
        )?
        .query_row(params![tenant, dest], |r| r.get(0))
        .optional()?;
    match enabled {
        None => Ok(ResendOutcome::DestinationNotFound),
        Some(false) => Ok(ResendOutcome::Disabled),
        Some(true) => Ok(
            match queue_manual(conn, tenant, event_id, dest, millis(now), quotas)? {
                Manual::Pending => ResendOutcome::AlreadyPending,
                Manual::Queued => ResendOutcome::Queued,
                Manual::QueueFull => ResendOutcome::QueueFull,
            },
        ),
    }
}

/// Where a recover goes on from: the last event it looked at.
type RecoverFrom = (i64, String);

/// What one batch of a recover did.
struct RecoverStep {
    /// Events queued.
    queued: usize,
    /// Where the next batch starts (`None`: no more events, or the quota
    /// is reached).
    next: Option<RecoverFrom>,
    /// The organization's pending-delivery quota stopped it.
    queue_full: bool,
}

/// One batch of a recover: looks at up to [`RECOVER_BATCH`] events after
/// `from` (oldest first) and queues up to `room` of them, within `quotas`.
/// `None` if the destination is gone or disabled.
fn recover_batch(
    conn: &Connection,
    tenant: &str,
    dest: &str,
    from: RecoverFrom,
    room: usize,
    now_ms: i64,
    quotas: Quotas,
) -> JobResult<Option<RecoverStep>> {
    let Some(record) = destination(conn, tenant, dest)?.filter(|r| r.enabled) else {
        return Ok(None);
    };
    let rows: Vec<(String, String, i64)> = conn
        .prepare_cached(RECOVER_SCAN)?
        .query_map(
            params![tenant, from.0, from.1, sql_count(RECOVER_BATCH)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let full = rows.len() == RECOVER_BATCH;
    let mut queued = 0;
    let mut last = None;
    let mut pending = conn.prepare_cached(PENDING_PAIR)?;
    let mut succeeded = conn.prepare_cached(SUCCEEDED_PAIR)?;
    for (event_id, event_type, created_at) in rows {
        if queued == room {
            return Ok(Some(RecoverStep {
                queued,
                next: last,
                queue_full: false,
            }));
        }
        let event_type =
            EventType::try_from(event_type).map_err(|_| SqliteError::corrupt("event type"))?;
        if record.filter_types.matches(&event_type)
            && !pending.exists(params![tenant, event_id, dest])?
            && !succeeded.exists(params![tenant, event_id, dest])?
        {
            if queue_manual(conn, tenant, &event_id, dest, now_ms, quotas)? == Manual::QueueFull {
                return Ok(Some(RecoverStep {
                    queued,
                    next: None,
                    queue_full: true,
                }));
            }
            queued += 1;
        }
        last = Some((created_at, event_id));
    }
    Ok(Some(RecoverStep {
        queued,
        next: if full { last } else { None },
        queue_full: false,
    }))
}

fn purge_attempts(conn: &Connection, before: Timestamp, batch: i64) -> JobResult<usize> {
    Ok(conn
        .prepare_cached(PURGE_ATTEMPTS)?
        .execute(params![millis(before), batch])?)
}

fn purge_events(conn: &Connection, before: Timestamp, batch: i64) -> JobResult<usize> {
    let done: Vec<(String, String)> = conn
        .prepare_cached(PURGE_EVENTS_FIND)?
        .query_map(params![millis(before), batch], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut event =
        conn.prepare_cached("DELETE FROM events WHERE tenant_id = ?1 AND event_id = ?2")?;
    let mut marks = conn
        .prepare_cached("DELETE FROM dropped_deliveries WHERE tenant_id = ?1 AND event_id = ?2")?;
    for (tenant, id) in &done {
        marks.execute(params![tenant, id])?;
        event.execute(params![tenant, id])?;
    }
    Ok(done.len())
}

impl EventLog for SqliteRepo {
    async fn list_events(
        &self,
        tenant: &TenantId,
        event_type: Option<&EventType>,
        cursor: Option<EventCursor>,
        limit: usize,
    ) -> Result<Vec<Event>, SqliteError> {
        let tenant = tenant.as_str().to_owned();
        let event_type = event_type.map(|t| t.as_str().to_owned());
        let limit = sql_count(limit);
        self.readers
            .call(move |conn| list_events(conn, &tenant, event_type.as_deref(), cursor, limit))
            .await
    }

    async fn get_event(
        &self,
        tenant: &TenantId,
        event_id: EventId,
    ) -> Result<Option<EventDetail>, SqliteError> {
        let tenant = tenant.as_str().to_owned();
        let event_id = event_id.to_string();
        self.readers
            .call(move |conn| get_event(conn, &tenant, &event_id))
            .await
    }

    async fn resend(
        &self,
        tenant: &TenantId,
        event_id: EventId,
        destination_id: DestinationId,
        now: Timestamp,
    ) -> Result<ResendOutcome, SqliteError> {
        let tenant = tenant.as_str().to_owned();
        let (event_id, dest) = (event_id.to_string(), destination_id.to_string());
        let quotas = self.quotas;
        self.writer
            .call(move |conn| resend(conn, &tenant, &event_id, &dest, now, quotas))
            .await
    }

    async fn recover(
        &self,
        tenant: &TenantId,
        destination_id: DestinationId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<RecoverOutcome, SqliteError> {
        let tenant = tenant.as_str().to_owned();
        let dest = destination_id.to_string();
        let start = {
            let (tenant, dest) = (tenant.clone(), dest.clone());
            self.writer
                .call(move |conn| destination(conn, &tenant, &dest))
                .await?
        };
        let record = match start {
            None => return Ok(RecoverOutcome::NotFound),
            Some(r) if !r.enabled => return Ok(RecoverOutcome::Disabled),
            Some(r) => r,
        };
        // Just before the first event to look at: no id sorts above the
        // largest, so the first batch starts at the time itself.
        let mut from: RecoverFrom = (
            millis(since.max(record.created_at)) - 1,
            EventId::MAX.to_string(),
        );
        let mut queued = 0;
        let quotas = self.quotas;
        while queued < RECOVER_MAX_EVENTS {
            let (tenant, dest, at) = (tenant.clone(), dest.clone(), from.clone());
            let room = RECOVER_MAX_EVENTS - queued;
            let batch = self
                .writer
                .call(move |conn| {
                    recover_batch(conn, &tenant, &dest, at, room, millis(now), quotas)
                })
                .await?;
            // Disabled or removed since the last batch: what is queued stays.
            let Some(step) = batch else { break };
            queued += step.queued;
            if step.queue_full {
                return Ok(RecoverOutcome::QueueFull(queued));
            }
            match step.next {
                Some(next) => from = next,
                None => break,
            }
        }
        Ok(RecoverOutcome::Queued(queued))
    }

    async fn purge(&self, cutoffs: PurgeCutoffs, batch: usize) -> Result<Purged, SqliteError> {
        let batch = sql_count(batch);
        let attempts = self
            .writer
            .call(move |conn| purge_attempts(conn, cutoffs.attempts_before, batch))
            .await?;
        let events = self
            .writer
            .call(move |conn| purge_events(conn, cutoffs.events_before, batch))
            .await?;
        Ok(Purged { attempts, events })
    }
}
