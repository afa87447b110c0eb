//! The event log's operations: [`list_events`], [`get_event`],
//! [`resend`] and [`recover`], over an [`EventLog`].

use crate::delivery::{EventId, EventLog, RecoverOutcome, ResendOutcome};
use crate::error::ValidationErrors;
use crate::id::DestinationId;
use crate::ops::error::OpError;
use crate::tenant::TenantId;
use crate::time::Timestamp;
use crate::wire::{
    EventDetailView, EventPage, EventPageRequest, EventView, ListEventsRequest, RecoverRequest,
    RecoveredEvents, ResendRequest,
};

/// What an event-log operation answered.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum EventOutcome<T> {
    /// Done: the answer.
    Done(T),
    /// The request is invalid; nothing was read or written.
    Invalid(ValidationErrors),
    /// The organization has no retained event of the id.
    EventNotFound,
    /// The organization has no destination of the id.
    DestinationNotFound,
    /// The destination is disabled; nothing was queued.
    Disabled,
    /// The organization has the most pending deliveries allowed
    /// ([`ApiError::QueueFull`](crate::wire::ApiError::QueueFull)): nothing
    /// was queued.
    QueueFull,
}

/// Lists the organization's retained events, newest first by
/// `(createdAt, eventId)`, a page at a time.
///
/// # Errors
/// [`OpError::Repo`] with the store's error.
pub async fn list_events<L: EventLog>(
    log: &L,
    tenant: &TenantId,
    request: ListEventsRequest,
) -> Result<EventOutcome<EventPage>, OpError<L::Error>> {
    let page: EventPageRequest = match request.validate() {
        Ok(p) => p,
        Err(errors) => return Ok(EventOutcome::Invalid(errors)),
    };
    let limit = page.limit.max(1);
    let mut events = log
        .list_events(
            tenant,
            page.event_type.as_ref(),
            page.cursor,
            limit.saturating_add(1),
        )
        .await
        .map_err(OpError::Repo)?;
    let has_more = events.len() > limit;
    events.truncate(limit);
    let next_cursor = if has_more {
        events.last().map(crate::delivery::EventCursor::after)
    } else {
        None
    };
    Ok(EventOutcome::Done(EventPage {
        data: events.iter().map(EventView::from).collect(),
        has_more,
        next_cursor,
    }))
}

/// The organization's retained event and each destination's delivery
/// state.
///
/// # Errors
/// [`OpError::Repo`] with the store's error.
pub async fn get_event<L: EventLog>(
    log: &L,
    tenant: &TenantId,
    event_id: EventId,
) -> Result<EventOutcome<EventDetailView>, OpError<L::Error>> {
    Ok(
        match log
            .get_event(tenant, event_id)
            .await
            .map_err(OpError::Repo)?
        {
            Some(detail) => EventOutcome::Done(EventDetailView::from(&detail)),
            None => EventOutcome::EventNotFound,
        },
    )
}

/// One more delivery of the event to the destination named in `request`,
/// due `now`, manual ([`EventLog::resend`]).
///
/// # Errors
/// [`OpError::Repo`] with the store's error.
pub async fn resend<L: EventLog>(
    log: &L,
    tenant: &TenantId,
    event_id: EventId,
    request: ResendRequest,
    now: Timestamp,
) -> Result<EventOutcome<ResendOutcome>, OpError<L::Error>> {
    let destination: DestinationId = match request.validate() {
        Ok(d) => d,
        Err(errors) => return Ok(EventOutcome::Invalid(errors)),
    };
    let outcome = log
        .resend(tenant, event_id, destination, now)
        .await
        .map_err(OpError::Repo)?;
    Ok(match outcome {
        ResendOutcome::Queued | ResendOutcome::AlreadyPending => EventOutcome::Done(outcome),
        ResendOutcome::EventNotFound => EventOutcome::EventNotFound,
        ResendOutcome::DestinationNotFound => EventOutcome::DestinationNotFound,
        ResendOutcome::Disabled => EventOutcome::Disabled,
        ResendOutcome::QueueFull => EventOutcome::QueueFull,
    })
}

/// Queues again what the destination missed since the time in `request`
/// ([`EventLog::recover`]).
///
/// # Errors
/// [`OpError::Repo`] with the store's error.
pub async fn recover<L: EventLog>(
    log: &L,
    tenant: &TenantId,
    destination: DestinationId,
    request: RecoverRequest,
    now: Timestamp,
) -> Result<EventOutcome<RecoveredEvents>, OpError<L::Error>> {
    let since = match request.validate() {
        Ok(t) => t,
        Err(errors) => return Ok(EventOutcome::Invalid(errors)),
    };
    let outcome = log
        .recover(tenant, destination, since, now)
        .await
        .map_err(OpError::Repo)?;
    Ok(match outcome {
        RecoverOutcome::Queued(events) => EventOutcome::Done(RecoveredEvents { events }),
        RecoverOutcome::NotFound => EventOutcome::DestinationNotFound,
        RecoverOutcome::Disabled => EventOutcome::Disabled,
        // What it queued before it reached the quota is its answer (as
        // what a recover of more than `RECOVER_MAX_EVENTS` queues); with
        // room for none, the quota is.
        RecoverOutcome::QueueFull(0) => EventOutcome::QueueFull,
        RecoverOutcome::QueueFull(events) => EventOutcome::Done(RecoveredEvents { events }),
    })
}
