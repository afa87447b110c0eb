//! [`EventLog`] for [`PgRepo`]. Every statement reaches its rows through a
//! key or an index (schema migration 8's); a recover writes at most
//! [`RECOVER_BATCH`] deliveries per transaction, and a purge locks the rows
//! it deletes `FOR UPDATE SKIP LOCKED`, so nodes purging at once take
//! different rows and never wait for one another.
//!
//! Locks follow the outbox's order (a destination row, then delivery rows,
//! then event rows): a resend or recover locks the destination `FOR SHARE`
//! (a disable or removal waits for it), then each event `FOR KEY SHARE`
//! (a purge skips it), then writes the delivery.

use std::collections::BTreeSet;

use prets_destinations::delivery::{
    AttemptOutcome, Event, EventCursor, EventDetail, EventFacts, EventId, EventLog, EventType,
    FilterTypes, Payload, PurgeCutoffs, Purged, RECOVER_BATCH, RECOVER_MAX_EVENTS, RecoverOutcome,
    ResendOutcome,
};
use prets_destinations::{DestinationId, TenantId, Timestamp};
use tokio_postgres::Row;

use crate::error::PgError;
use crate::outbox::pending_count;
use crate::repo::PgRepo;
use crate::rows::{limit, millis, timestamp};

/// Run before a list or a recover scan, in its transaction: with an
/// incremental sort the planner may rather walk `events_by_age` (already
/// in time order) and filter out the other organizations' events, whose
/// cost grows with theirs; without, it takes the organization's range of
/// `events_newest` (the plans test checks it).
const WALK_THE_TENANTS_INDEX: &str = "SET LOCAL enable_incremental_sort = off";

const LIST_NEWEST: &str = "SELECT event_id, event_type, created_at_ms, payload FROM events
     WHERE tenant_id = $1
     ORDER BY created_at_ms DESC, event_id DESC LIMIT $2";

const LIST_AFTER: &str = "SELECT event_id, event_type, created_at_ms, payload FROM events
     WHERE tenant_id = $1 AND (created_at_ms, event_id) < ($2, $3)
     ORDER BY created_at_ms DESC, event_id DESC LIMIT $4";

const LIST_OF_TYPE: &str = "SELECT event_id, event_type, created_at_ms, payload FROM events
     WHERE tenant_id = $1 AND event_type = $2
     ORDER BY created_at_ms DESC, event_id DESC LIMIT $3";

const LIST_OF_TYPE_AFTER: &str = "SELECT event_id, event_type, created_at_ms, payload FROM events
     WHERE tenant_id = $1 AND event_type = $2 AND (created_at_ms, event_id) < ($3, $4)
     ORDER BY created_at_ms DESC, event_id DESC LIMIT $5";

const GET_EVENT: &str = "SELECT event_id, event_type, created_at_ms, payload FROM events
     WHERE tenant_id = $1 AND event_id = $2";

const PENDING_OF_EVENT: &str =
    "SELECT destination_id, due_at_ms, lease_token IS NOT NULL, manual FROM deliveries
     WHERE tenant_id = $1 AND event_id = $2";

const ATTEMPTS_OF_EVENT: &str = "SELECT destination_id, started_at_ms, outcome FROM attempts
     WHERE tenant_id = $1 AND event_id = $2";

const DROPPED_OF_EVENT: &str =
    "SELECT destination_id FROM dropped_deliveries WHERE tenant_id = $1 AND event_id = $2";

const DISABLED_OF: &str = "SELECT destination_id FROM destinations
     WHERE tenant_id = $1 AND destination_id = ANY($2) AND NOT enabled";

const LOCK_DESTINATION: &str = "SELECT enabled, filter_types, created_at_ms FROM destinations
     WHERE tenant_id = $1 AND destination_id = $2 FOR SHARE";

const LOCK_EVENT: &str = "SELECT 1 FROM events WHERE tenant_id = $1 AND event_id = $2
     FOR KEY SHARE";

/// A new manual delivery due `$4`, or the pending one made manual (and due
/// `$4` unless leased); `inserted` tells which.
const QUEUE_MANUAL: &str =
    "INSERT INTO deliveries (tenant_id, event_id, destination_id, attempt, due_at_ms, manual)
     VALUES ($1, $2, $3, 1, $4, true)
     ON CONFLICT (tenant_id, event_id, destination_id) DO UPDATE SET manual = true,
         due_at_ms = CASE WHEN deliveries.lease_token IS NULL THEN EXCLUDED.due_at_ms
                          ELSE deliveries.due_at_ms END
     RETURNING xmax = 0";

/// The pending delivery of the pair made manual (and due `$4` unless
/// leased), as [`QUEUE_MANUAL`] does when it finds one.
const MAKE_MANUAL: &str = "UPDATE deliveries SET manual = true,
         due_at_ms = CASE WHEN lease_token IS NULL THEN $4 ELSE due_at_ms END
     WHERE tenant_id = $1 AND event_id = $2 AND destination_id = $3";

const RECOVER_SCAN: &str = "SELECT event_id, event_type, created_at_ms FROM events
     WHERE tenant_id = $1 AND (created_at_ms, event_id) > ($2, $3)
     ORDER BY created_at_ms, event_id LIMIT $4";

/// Of the events `$2` (in order), those with no pending delivery to the
/// destination and no succeeded attempt to it, locked `FOR KEY SHARE`
/// (gone ones, purged meanwhile, are left out); then queued, up to `$4`.
/// Answers how many were queued and how many were wanted.
const RECOVER_QUEUE: &str = "WITH wanted AS (
         SELECT u.event_id, u.n FROM UNNEST($2::TEXT[]) WITH ORDINALITY AS u(event_id, n)
         WHERE NOT EXISTS (SELECT 1 FROM deliveries d
                           WHERE d.tenant_id = $1 AND d.event_id = u.event_id
                             AND d.destination_id = $3)
           AND NOT EXISTS (SELECT 1 FROM attempts a
                           WHERE a.tenant_id = $1 AND a.event_id = u.event_id
                             AND a.destination_id = $3 AND a.outcome = 'succeeded')
     ), kept AS (
         SELECT e.event_id, w.n FROM events e JOIN wanted w ON w.event_id = e.event_id
         WHERE e.tenant_id = $1
         ORDER BY w.n LIMIT $4
         FOR KEY SHARE OF e
     ), queued AS (
         INSERT INTO deliveries (tenant_id, event_id, destination_id, attempt, due_at_ms, manual)
         SELECT $1, k.event_id, $3, 1, $5, true FROM kept k ORDER BY k.n
         ON CONFLICT (tenant_id, event_id, destination_id) DO NOTHING
         RETURNING 1
     )
     SELECT (SELECT count(*) FROM queued), (SELECT count(*) FROM wanted)";

const PURGE_ATTEMPTS: &str = "DELETE FROM attempts
     WHERE (tenant_id, destination_id, attempt_id) IN
     (SELECT tenant_id, destination_id, attempt_id FROM attempts
      WHERE started_at_ms < $1 ORDER BY started_at_ms LIMIT $2
      FOR UPDATE SKIP LOCKED)";

/// The oldest events with no pending delivery, locked: one another node's
/// purge holds, or a resend is queueing a delivery of (`FOR KEY SHARE`),
/// is skipped.
const PURGE_EVENTS_LOCK: &str = "SELECT e.tenant_id, e.event_id FROM events e
     WHERE e.created_at_ms < $1
       AND NOT EXISTS (SELECT 1 FROM deliveries d
                       WHERE d.tenant_id = e.tenant_id AND d.event_id = e.event_id)
     ORDER BY e.created_at_ms LIMIT $2
     FOR UPDATE OF e SKIP LOCKED";

/// Deletes the locked events (and their dropped marks) that still have no
/// delivery: this statement's snapshot sees a delivery committed after the
/// lock statement's, and none can be added while the rows are locked.
const PURGE_EVENTS_DELETE: &str = "WITH doomed AS (
         SELECT u.tenant_id, u.event_id FROM UNNEST($1::TEXT[], $2::TEXT[])
             AS u(tenant_id, event_id)
         WHERE NOT EXISTS (SELECT 1 FROM deliveries d
                           WHERE d.tenant_id = u.tenant_id AND d.event_id = u.event_id)
     ), marks AS (
         DELETE FROM dropped_deliveries m USING doomed x
         WHERE m.tenant_id = x.tenant_id AND m.event_id = x.event_id
     )
     DELETE FROM events e USING doomed x
     WHERE e.tenant_id = x.tenant_id AND e.event_id = x.event_id";

/// The event log's statements that scan a range, by name: the plans test
/// explains them.
#[cfg(feature = "test-support")]
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("list_newest", LIST_NEWEST),
    ("list_after", LIST_AFTER),
    ("list_of_type", LIST_OF_TYPE),
    ("list_of_type_after", LIST_OF_TYPE_AFTER),
    ("recover_scan", RECOVER_SCAN),
    ("purge_attempts", PURGE_ATTEMPTS),
    ("purge_events_lock", PURGE_EVENTS_LOCK),
];

fn decode_event(row: &Row) -> Result<Event, PgError> {
    let id: &str = row.try_get(0)?;
    let event_type: String = row.try_get(1)?;
    let created_at: i64 = row.try_get(2)?;
    let payload: String = row.try_get(3)?;
    Ok(Event {
        event_id: id.parse().map_err(|_| PgError::corrupt("event id"))?,
        event_type: EventType::try_from(event_type).map_err(|_| PgError::corrupt("event type"))?,
        created_at: timestamp(created_at, "event created at")?,
        payload: Payload::from_json(payload).map_err(|_| PgError::corrupt("payload"))?,
    })
}

fn destination_id(row: &Row, column: usize) -> Result<DestinationId, PgError> {
    let id: &str = row.try_get(column)?;
    id.parse().map_err(|_| PgError::corrupt("destination id"))
}

fn outcome(text: &str) -> Result<AttemptOutcome, PgError> {
    match text {
        "succeeded" => Ok(AttemptOutcome::Succeeded),
        "failed" => Ok(AttemptOutcome::Failed),
        "refused" => Ok(AttemptOutcome::Refused),
        _ => Err(PgError::corrupt("attempt outcome")),
    }
}

/// A destination as a resend or recover needs it.
struct Target {
    enabled: bool,
    filter: FilterTypes,
    created_at: Timestamp,
}

/// Locks the destination `FOR SHARE` in `tx` and reads it; `None` if the
/// tenant has none of this id.
async fn lock_destination(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
    destination: &str,
) -> Result<Option<Target>, PgError> {
    let stmt = tx.prepare_cached(LOCK_DESTINATION).await?;
    let Some(row) = tx.query_opt(&stmt, &[&tenant, &destination]).await? else {
        return Ok(None);
    };
    let types: Vec<String> = row.try_get(1)?;
    Ok(Some(Target {
        enabled: row.try_get(0)?,
        filter: FilterTypes::new(types).map_err(|_| PgError::corrupt("filter types"))?,
        created_at: timestamp(row.try_get(2)?, "destination created at")?,
    }))
}

/// Where a recover goes on from: the last event it looked at.
type RecoverFrom = (i64, String);

impl EventLog for PgRepo {
    async fn list_events(
        &self,
        tenant: &TenantId,
        event_type: Option<&EventType>,
        cursor: Option<EventCursor>,
        limit_to: usize,
    ) -> Result<Vec<Event>, PgError> {
        let tenant = tenant.as_str().to_owned();
        let event_type = event_type.map(|t| t.as_str().to_owned());
        let cursor = cursor.map(|c| (millis(c.created_at), c.event_id.to_string()));
        let limit_to = limit(limit_to);
        self.run(|pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            tx.batch_execute(WALK_THE_TENANTS_INDEX).await?;
            // Row values compare as tuples: `(created_at_ms, event_id) <
            // ($, $)` is a range of `events_newest` (or
            // `events_newest_of_type`), read backwards.
            let rows = match (event_type, cursor) {
                (None, None) => {
                    let stmt = tx.prepare_cached(LIST_NEWEST).await?;
                    tx.query(&stmt, &[&tenant, &limit_to]).await?
                }
                (None, Some((at, id))) => {
                    let stmt = tx.prepare_cached(LIST_AFTER).await?;
                    tx.query(&stmt, &[&tenant, &at, &id, &limit_to]).await?
                }
                (Some(t), None) => {
                    let stmt = tx.prepare_cached(LIST_OF_TYPE).await?;
                    tx.query(&stmt, &[&tenant, &t, &limit_to]).await?
                }
                (Some(t), Some((at, id))) => {
                    let stmt = tx.prepare_cached(LIST_OF_TYPE_AFTER).await?;
                    tx.query(&stmt, &[&tenant, &t, &at, &id, &limit_to]).await?
                }
            };
            tx.commit().await?;
            rows.iter().map(decode_event).collect()
        })
        .await
    }

    async fn get_event(
        &self,
        tenant: &TenantId,
        event_id: EventId,
    ) -> Result<Option<EventDetail>, PgError> {
        let tenant = tenant.as_str().to_owned();
        let event_id = event_id.to_string();
        self.run(|pool| async move {
            let mut client = pool.get().await?;
            // One snapshot for every read.
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let stmt = tx.prepare_cached(GET_EVENT).await?;
            let Some(row) = tx.query_opt(&stmt, &[&tenant, &event_id]).await? else {
                return Ok(None);
            };
            let event = decode_event(&row)?;
            let mut facts = EventFacts::default();
            let stmt = tx.prepare_cached(PENDING_OF_EVENT).await?;
            for row in tx.query(&stmt, &[&tenant, &event_id]).await? {
                facts.pending.push((
                    destination_id(&row, 0)?,
                    timestamp(row.try_get(1)?, "delivery due at")?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                ));
            }
            let stmt = tx.prepare_cached(ATTEMPTS_OF_EVENT).await?;
            for row in tx.query(&stmt, &[&tenant, &event_id]).await? {
                facts.attempts.push((
                    destination_id(&row, 0)?,
                    timestamp(row.try_get(1)?, "attempt started at")?,
                    outcome(row.try_get(2)?)?,
                ));
            }
            let stmt = tx.prepare_cached(DROPPED_OF_EVENT).await?;
            for row in tx.query(&stmt, &[&tenant, &event_id]).await? {
                facts.dropped.push(destination_id(&row, 0)?);
            }
            let named: BTreeSet<String> = facts
                .pending
                .iter()
                .map(|p| p.0)
                .chain(facts.attempts.iter().map(|a| a.0))
                .chain(facts.dropped.iter().copied())
                .map(|id| id.to_string())
                .collect();
            let named: Vec<String> = named.into_iter().collect();
            let stmt = tx.prepare_cached(DISABLED_OF).await?;
            for row in tx.query(&stmt, &[&tenant, &named]).await? {
                facts.disabled.push(destination_id(&row, 0)?);
            }
            tx.commit().await?;
            Ok(Some(EventDetail {
                event,
                deliveries: facts.derive(),
            }))
        })
        .await
    }

    async fn resend(
        &self,
        tenant: &TenantId,
        event_id: EventId,
        destination_id: DestinationId,
        now: Timestamp,
    ) -> Result<ResendOutcome, PgError> {
        let tenant = tenant.as_str().to_owned();
        let (event_id, dest) = (event_id.to_string(), destination_id.to_string());
        let now = millis(now);
        let quotas = self.quotas;
        let limited = quotas.caps_pending_deliveries();
        let outcome = self
            .run(|pool| async move {
                let mut client = pool.get().await?;
                let tx = client.transaction().await?;
                let target = lock_destination(&tx, &tenant, &dest).await?;
                let stmt = tx.prepare_cached(LOCK_EVENT).await?;
                if tx.query_opt(&stmt, &[&tenant, &event_id]).await?.is_none() {
                    return Ok(ResendOutcome::EventNotFound);
                }
                match target {
                    None => return Ok(ResendOutcome::DestinationNotFound),
                    Some(t) if !t.enabled => return Ok(ResendOutcome::Disabled),
                    Some(_) => {}
                }
                if limited && !quotas.allows_deliveries(pending_count(&tx, &tenant, true).await?, 1)
                {
                    // No room for a new one: a pending one is still made due.
                    let stmt = tx.prepare_cached(MAKE_MANUAL).await?;
                    if tx
                        .execute(&stmt, &[&tenant, &event_id, &dest, &now])
                        .await?
                        == 0
                    {
                        return Ok(ResendOutcome::QueueFull);
                    }
                    tx.commit().await?;
                    return Ok(ResendOutcome::AlreadyPending);
                }
                let stmt = tx.prepare_cached(QUEUE_MANUAL).await?;
                let inserted: bool = tx
                    .query_one(&stmt, &[&tenant, &event_id, &dest, &now])
                    .await?
                    .try_get(0)?;
                tx.commit().await?;
                Ok(if inserted {
                    ResendOutcome::Queued
                } else {
                    ResendOutcome::AlreadyPending
                })
            })
            .await?;
        if matches!(
            outcome,
            ResendOutcome::Queued | ResendOutcome::AlreadyPending
        ) {
            self.notify_published();
        }
        Ok(outcome)
    }

    async fn recover(
        &self,
        tenant: &TenantId,
        destination_id: DestinationId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<RecoverOutcome, PgError> {
        let tenant = tenant.as_str().to_owned();
        let dest = destination_id.to_string();
        let now = millis(now);
        let mut from: Option<RecoverFrom> = None;
        let mut queued = 0usize;
        let mut first = true;
        let quotas = self.quotas;
        let limited = quotas.caps_pending_deliveries();
        while queued < RECOVER_MAX_EVENTS {
            let room = RECOVER_MAX_EVENTS - queued;
            let (tenant, dest, at) = (tenant.clone(), dest.clone(), from.clone());
            // One transaction per batch: the destination locked `FOR
            // SHARE` (not disabled or removed meanwhile), up to
            // RECOVER_BATCH events looked at, up to `room` queued.
            let step = self
                .run(move |pool| async move {
                    let mut client = pool.get().await?;
                    let tx = client.transaction().await?;
                    let target = match lock_destination(&tx, &tenant, &dest).await? {
                        None => return Ok(Err(RecoverOutcome::NotFound)),
                        Some(t) if !t.enabled => return Ok(Err(RecoverOutcome::Disabled)),
                        Some(t) => t,
                    };
                    // Just before the first event to look at: no id sorts
                    // above the largest, so the first batch starts at the
                    // time itself.
                    let (at_ms, after_id) = at.unwrap_or_else(|| {
                        (
                            millis(since.max(target.created_at)) - 1,
                            EventId::MAX.to_string(),
                        )
                    });
                    tx.batch_execute(WALK_THE_TENANTS_INDEX).await?;
                    let stmt = tx.prepare_cached(RECOVER_SCAN).await?;
                    let batch = limit(RECOVER_BATCH);
                    let rows = tx
                        .query(&stmt, &[&tenant, &at_ms, &after_id, &batch])
                        .await?;
                    let full = rows.len() == RECOVER_BATCH;
                    let mut ids = Vec::with_capacity(rows.len());
                    let mut last = None;
                    for row in &rows {
                        let id: String = row.try_get(0)?;
                        let event_type: String = row.try_get(1)?;
                        let created: i64 = row.try_get(2)?;
                        let event_type = EventType::try_from(event_type)
                            .map_err(|_| PgError::corrupt("event type"))?;
                        if target.filter.matches(&event_type) {
                            ids.push(id.clone());
                        }
                        last = Some((created, id));
                    }
                    // Within the tenant's pending-delivery quota.
                    let room_left = if limited {
                        let pending = pending_count(&tx, &tenant, true).await?;
                        quotas.max_pending_deliveries.saturating_sub(pending)
                    } else {
                        usize::MAX
                    };
                    let stmt = tx.prepare_cached(RECOVER_QUEUE).await?;
                    let row = tx
                        .query_one(
                            &stmt,
                            &[&tenant, &ids, &dest, &limit(room.min(room_left)), &now],
                        )
                        .await?;
                    tx.commit().await?;
                    let n = usize::try_from(row.try_get::<_, i64>(0)?).unwrap_or(usize::MAX);
                    let wanted = usize::try_from(row.try_get::<_, i64>(1)?).unwrap_or(0);
                    // The quota, not the call's limit, left some out.
                    let queue_full = room_left < room && n >= room_left && wanted > n;
                    Ok(Ok((n, if full { last } else { None }, queue_full)))
                })
                .await?;
            let (n, next, queue_full) = match step {
                Ok(step) => step,
                Err(refused) if first => return Ok(refused),
                // Disabled or removed since the last batch: what is queued
                // stays.
                Err(_) => break,
            };
            first = false;
            queued += n;
            if queue_full {
                if queued > 0 {
                    self.notify_published();
                }
                return Ok(RecoverOutcome::QueueFull(queued));
            }
            match next {
                Some(next) => from = Some(next),
                None => break,
            }
        }
        if queued > 0 {
            self.notify_published();
        }
        Ok(RecoverOutcome::Queued(queued))
    }

    async fn purge(&self, cutoffs: PurgeCutoffs, batch: usize) -> Result<Purged, PgError> {
        let batch = limit(batch);
        let attempts_before = millis(cutoffs.attempts_before);
        let events_before = millis(cutoffs.events_before);
        self.run(|pool| async move {
            let mut client = pool.get().await?;
            let stmt = client.prepare_cached(PURGE_ATTEMPTS).await?;
            let attempts = client.execute(&stmt, &[&attempts_before, &batch]).await?;
            let tx = client.transaction().await?;
            let stmt = tx.prepare_cached(PURGE_EVENTS_LOCK).await?;
            let (mut tenants, mut events) = (Vec::new(), Vec::new());
            for row in tx.query(&stmt, &[&events_before, &batch]).await? {
                tenants.push(row.try_get::<_, String>(0)?);
                events.push(row.try_get::<_, String>(1)?);
            }
            let gone = if tenants.is_empty() {
                0
            } else {
                let stmt = tx.prepare_cached(PURGE_EVENTS_DELETE).await?;
                tx.execute(&stmt, &[&tenants, &events]).await?
            };
            tx.commit().await?;
            Ok(Purged {
                attempts: usize::try_from(attempts).unwrap_or(usize::MAX),
                events: usize::try_from(gone).unwrap_or(usize::MAX),
            })
        })
        .await
    }
}
