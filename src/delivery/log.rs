//! The event log: [`EventLog`], the events an outbox retains after their
//! deliveries finish, read back, resent, recovered and purged.

use core::fmt;
use core::future::Future;
use core::str::FromStr;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::delivery::attempt::AttemptOutcome;
use crate::delivery::event::{Event, EventType};
use crate::delivery::outbox::Outbox;
use crate::id::{DestinationId, EventId};
use crate::tenant::TenantId;
use crate::time::Timestamp;

/// Most events one [`EventLog::recover`] queues again.
pub const RECOVER_MAX_EVENTS: usize = 10_000;

/// Most events one write of [`EventLog::recover`] queues: a store with a
/// single writer is never held by a recover for longer than one such batch.
pub const RECOVER_BATCH: usize = 1_000;

/// Where a page of [`EventLog::list_events`] ends: the last event's
/// `(created_at, event_id)`. Opaque to clients: its text form is only
/// ever given back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventCursor {
    /// The last listed event's creation time.
    pub created_at: Timestamp,
    /// The last listed event's id.
    pub event_id: EventId,
}

impl EventCursor {
    /// The cursor after `event`.
    #[must_use]
    pub fn after(event: &Event) -> Self {
        Self {
            created_at: event.created_at,
            event_id: event.event_id,
        }
    }

    /// Whether an event at `(created_at, event_id)` comes after the cursor
    /// in the list's order (newest first).
    #[must_use]
    pub fn precedes(&self, created_at: Timestamp, event_id: EventId) -> bool {
        (created_at, event_id) < (self.created_at, self.event_id)
    }
}

/// Why a text is not an [`EventCursor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidEventCursor;

impl fmt::Display for InvalidEventCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cursor is not one this service gave")
    }
}

impl std::error::Error for InvalidEventCursor {}

impl fmt::Display for EventCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}.{}", self.created_at.unix_millis(), self.event_id)
    }
}

impl FromStr for EventCursor {
    type Err = InvalidEventCursor;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, id) = s.split_once('.').ok_or(InvalidEventCursor)?;
        if ms.is_empty() || ms.len() > 16 || !ms.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidEventCursor);
        }
        let ms = u64::from_str_radix(ms, 16).map_err(|_| InvalidEventCursor)?;
        Ok(Self {
            created_at: Timestamp::from_unix_millis(ms).ok_or(InvalidEventCursor)?,
            event_id: id.parse().map_err(|_| InvalidEventCursor)?,
        })
    }
}

/// A delivery's state as [`EventLog::get_event`] derives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Queued or leased: another attempt will be made.
    Pending {
        /// When the next attempt is due (for a leased delivery, when it was).
        next_attempt_at: Timestamp,
        /// Whether an attempt is in flight (under a lease).
        leased: bool,
        /// Whether it was queued by a resend or a recover.
        manual: bool,
    },
    /// An attempt succeeded.
    Delivered,
    /// Attempts were made, none succeeded, none will follow.
    Failed,
    /// Its destination was disabled: dropped before it succeeded.
    Dropped,
}

impl DeliveryState {
    /// The state's name in the API: `pending`, `delivered`, `failed` or
    /// `dropped`.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Pending { .. } => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Dropped => "dropped",
        }
    }
}

/// One destination's deliveries of an event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventDelivery {
    /// The destination.
    pub destination_id: DestinationId,
    /// Its state.
    pub state: DeliveryState,
    /// How many attempts were recorded for the pair (every delivery of it).
    pub attempts: u32,
    /// When the latest recorded attempt started.
    pub last_attempt_at: Option<Timestamp>,
}

/// An event and each destination's delivery state: what
/// [`EventLog::get_event`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventDetail {
    /// The event, as published.
    pub event: Event,
    /// The deliveries, by destination id.
    pub deliveries: Vec<EventDelivery>,
}

/// What a store knows of one event's deliveries, for [`EventFacts::derive`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFacts {
    /// Each pending delivery: destination, due time, leased, manual.
    pub pending: Vec<(DestinationId, Timestamp, bool, bool)>,
    /// Each recorded attempt of the event that is still kept: destination,
    /// start time, outcome.
    pub attempts: Vec<(DestinationId, Timestamp, AttemptOutcome)>,
    /// Each destination a disable dropped a delivery of the event for.
    pub dropped: Vec<DestinationId>,
    /// Which of the destinations above are disabled now (the others are
    /// enabled, or gone: a removed destination takes its facts with it).
    pub disabled: Vec<DestinationId>,
}

impl EventFacts {
    /// The delivery state of each destination named by a fact, by id: every
    /// store derives it with this function.
    ///
    /// Pending if a delivery is pending; else delivered if an attempt
    /// succeeded; else dropped if the destination is disabled now, or if a
    /// disable dropped a delivery and no attempt was recorded; else failed.
    #[must_use]
    pub fn derive(&self) -> Vec<EventDelivery> {
        #[derive(Default)]
        struct Acc {
            pending: Option<(Timestamp, bool, bool)>,
            attempts: u32,
            last: Option<Timestamp>,
            succeeded: bool,
            dropped: bool,
        }
        let mut by: BTreeMap<DestinationId, Acc> = BTreeMap::new();
        for &(id, due, leased, manual) in &self.pending {
            by.entry(id).or_default().pending = Some((due, leased, manual));
        }
        for &(id, at, outcome) in &self.attempts {
            let acc = by.entry(id).or_default();
            acc.attempts = acc.attempts.saturating_add(1);
            acc.last = acc.last.max(Some(at));
            acc.succeeded |= outcome == AttemptOutcome::Succeeded;
        }
        for &id in &self.dropped {
            by.entry(id).or_default().dropped = true;
        }
        by.into_iter()
            .map(|(destination_id, acc)| {
                let state = match acc.pending {
                    Some((next_attempt_at, leased, manual)) => DeliveryState::Pending {
                        next_attempt_at,
                        leased,
                        manual,
                    },
                    None if acc.succeeded => DeliveryState::Delivered,
                    None if self.disabled.contains(&destination_id) => DeliveryState::Dropped,
                    None if acc.attempts == 0 => DeliveryState::Dropped,
                    None => DeliveryState::Failed,
                };
                EventDelivery {
                    destination_id,
                    state,
                    attempts: acc.attempts,
                    last_attempt_at: acc.last,
                }
            })
            .collect()
    }
}

/// What [`EventLog::resend`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use]
pub enum ResendOutcome {
    /// A new delivery (attempt 1, due now, manual) was queued.
    Queued,
    /// A delivery of the pair was pending: it is due now (unless an attempt
    /// of it is in flight) and manual.
    AlreadyPending,
    /// The tenant has no retained event of this id.
    EventNotFound,
    /// The tenant has no destination of this id.
    DestinationNotFound,
    /// The destination is disabled.
    Disabled,
    /// A new delivery would pass the organization's
    /// [`Quotas::max_pending_deliveries`](crate::limits::Quotas::max_pending_deliveries):
    /// nothing was written. (A pending delivery is made due whatever the
    /// quota: that adds none.)
    QueueFull,
}

/// What [`EventLog::recover`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use]
pub enum RecoverOutcome {
    /// This many events were queued again for the destination (at most
    /// [`RECOVER_MAX_EVENTS`]).
    Queued(usize),
    /// The tenant has no destination of this id.
    NotFound,
    /// The destination is disabled.
    Disabled,
    /// The organization reached its
    /// [`Quotas::max_pending_deliveries`](crate::limits::Quotas::max_pending_deliveries)
    /// after this many events were queued (they stay queued); a recover
    /// again with the same `since`, once deliveries have drained, queues
    /// the rest.
    QueueFull(usize),
}

/// The ages [`EventLog::purge`] deletes before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PurgeCutoffs {
    /// Attempts that started before this time are deleted.
    pub attempts_before: Timestamp,
    /// Events created before this time with no pending delivery are deleted.
    pub events_before: Timestamp,
}

/// What one [`EventLog::purge`] deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[must_use]
pub struct Purged {
    /// Attempt records deleted.
    pub attempts: usize,
    /// Events deleted.
    pub events: usize,
}

impl Purged {
    /// Whether nothing was deleted: a purge loop is done.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.attempts == 0 && self.events == 0
    }
}

/// The events an [`Outbox`] retains, read back and acted on by operators.
///
/// A separate trait from [`Outbox`] so that a host that only delivers
/// needs none of it; a store that implements it keeps every event after
/// its deliveries finish, until [`purge`](Self::purge) deletes it.
///
/// # Manual deliveries
/// A delivery queued by [`resend`](Self::resend) or
/// [`recover`](Self::recover) is manual: the store marks each attempt record
/// of it `manual`. It is retried on the usual schedule from attempt 1.
///
/// # Dropped deliveries
/// A store remembers, per event, each destination whose pending delivery a
/// disable dropped (until the event is purged), so that
/// [`get_event`](Self::get_event) can tell it, as [`EventFacts::derive`]
/// does.
pub trait EventLog: Outbox {
    /// The tenant's retained events, newest first by `(created_at,
    /// event_id)` descending, of type `event_type` only when given, after
    /// `cursor` when given, at most `limit`. Cost grows with `limit`, not
    /// with the number of events stored.
    ///
    /// # Errors
    /// Only storage failures.
    fn list_events(
        &self,
        tenant: &TenantId,
        event_type: Option<&EventType>,
        cursor: Option<EventCursor>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Event>, Self::Error>> + Send;

    /// The tenant's retained event of this id and each destination's
    /// delivery state ([`EventFacts::derive`]); `None` for an id the tenant
    /// has no retained event of.
    ///
    /// # Errors
    /// Only storage failures.
    fn get_event(
        &self,
        tenant: &TenantId,
        event_id: EventId,
    ) -> impl Future<Output = Result<Option<EventDetail>, Self::Error>> + Send;

    /// One more delivery of the event to the destination, due `now`,
    /// manual, whatever the earlier outcome (and whatever the destination's
    /// filter); a pending delivery of the pair is made due `now` and manual
    /// instead of a second one. Refused, with nothing written, for an
    /// unknown event or destination, a disabled destination, and a new
    /// delivery the organization's pending-delivery quota has no room for
    /// (the store's [`Quotas`](crate::limits::Quotas), as for
    /// [`Outbox::enqueue`]).
    ///
    /// # Errors
    /// Only storage failures.
    fn resend(
        &self,
        tenant: &TenantId,
        event_id: EventId,
        destination_id: DestinationId,
        now: Timestamp,
    ) -> impl Future<Output = Result<ResendOutcome, Self::Error>> + Send;

    /// Queues again, due `now` and manual, every retained event of the
    /// tenant created at or after `max(since, destination's created_at)`,
    /// oldest first, that matches the destination's current filter, has no
    /// succeeded attempt to it and no pending delivery to it; at most
    /// [`RECOVER_MAX_EVENTS`], written [`RECOVER_BATCH`] at a time (a
    /// recover again with the same `since` queues the rest), and no more
    /// than the organization's pending-delivery quota has room for
    /// ([`RecoverOutcome::QueueFull`]). Refused for an unknown or disabled
    /// destination.
    ///
    /// # Errors
    /// Only storage failures; batches written before one are kept.
    fn recover(
        &self,
        tenant: &TenantId,
        destination_id: DestinationId,
        since: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<RecoverOutcome, Self::Error>> + Send;

    /// Deletes, of every tenant, up to `batch` attempt records that started
    /// before `cutoffs.attempts_before`, and up to `batch` events created
    /// before `cutoffs.events_before` with no pending delivery (and what is
    /// kept of them besides attempts: the dropped marks); oldest first,
    /// through indexes. A caller loops until [`Purged::is_empty`].
    ///
    /// # Errors
    /// Only storage failures.
    fn purge(
        &self,
        cutoffs: PurgeCutoffs,
        batch: usize,
    ) -> impl Future<Output = Result<Purged, Self::Error>> + Send;
}

/// A shared event log is an event log.
impl<T: EventLog + ?Sized> EventLog for Arc<T> {
    fn list_events(
        &self,
        tenant: &TenantId,
        event_type: Option<&EventType>,
        cursor: Option<EventCursor>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Event>, Self::Error>> + Send {
        (**self).list_events(tenant, event_type, cursor, limit)
    }

    fn get_event(
        &self,
        tenant: &TenantId,
        event_id: EventId,
    ) -> impl Future<Output = Result<Option<EventDetail>, Self::Error>> + Send {
        (**self).get_event(tenant, event_id)
    }

    fn resend(
        &self,
        tenant: &TenantId,
        event_id: EventId,
        destination_id: DestinationId,
        now: Timestamp,
    ) -> impl Future<Output = Result<ResendOutcome, Self::Error>> + Send {
        (**self).resend(tenant, event_id, destination_id, now)
    }

    fn recover(
        &self,
        tenant: &TenantId,
        destination_id: DestinationId,
        since: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<RecoverOutcome, Self::Error>> + Send {
        (**self).recover(tenant, destination_id, since, now)
    }

    fn purge(
        &self,
        cutoffs: PurgeCutoffs,
        batch: usize,
    ) -> impl Future<Output = Result<Purged, Self::Error>> + Send {
        (**self).purge(cutoffs, batch)
    }
}
