//! Delivery, without I/O: the core decides, the host acts.
//!
//! Like quinn-proto keeps QUIC free of sockets, this module never reads the
//! clock, resolves a name or opens a connection. Time, randomness, DNS
//! answers and HTTP answers come in as values; requests to send, addresses
//! to connect to and next steps go out as values.
//!
//! One attempt, as a host's worker runs it:
//!
//! 1. [`plan_attempt`]: the [`DeliveryRequest`] (`POST`, `Authorization:
//!    Bearer`, `Webhook-Id`, `Webhook-Timestamp`, the [`Event`]'s body);
//! 2. [`lookup`] then [`pin_addresses`]: resolve the name (or take the
//!    literal), and connect only to the returned addresses, all of which the
//!    [`HostPolicy`](crate::policy::HostPolicy) allows; follow no redirect;
//! 3. [`classify`] the [`Answer`] (status and `Retry-After`, or a
//!    [`TransportError`]);
//! 4. [`next_step`] with the [`RetrySchedule`], the destination's
//!    [`FailureStreak`] and the [`DisablePolicy`]: delivered, retry at a
//!    time, failed, or disable with a [`DisabledReason`];
//! 5. store an [`AttemptRecord`] and the decision in one write.
//!
//! The [`Outbox`] is the store's durable queue of deliveries, beside its
//! destinations; [`settle`] is the rule every store applies when an attempt
//! completes. The operations a host calls over it (publish, test events,
//! the attempts list and the worker's finish step) are in
//! [`ops`](crate::ops), with the others.

mod attempt;
mod classify;
mod disable;
mod event;
mod fair;
pub(crate) mod filter;
mod log;
mod outbox;
mod pin;
mod request;
mod schedule;
mod step;

pub use crate::delivery::attempt::{AttemptMeta, AttemptOutcome, AttemptRecord, ERROR_MAX_CHARS};
pub use crate::delivery::classify::{
    Answer, Classification, Failure, FailureCause, TransportError, classify,
};
pub use crate::delivery::disable::{DisablePolicy, FailureStreak};
pub use crate::delivery::event::{
    EVENT_TYPE_MAX_CHARS, Event, EventType, InvalidEventType, InvalidPayload, PAYLOAD_MAX_BYTES,
    Payload, PayloadDigest,
};
pub use crate::delivery::fair::{ClaimLimits, FairEntry, FairKey, FairQueue};
pub use crate::delivery::filter::{
    FILTER_TYPE_PATTERN, FilterType, FilterTypes, InvalidFilterTypes, MAX_FILTER_TYPES,
};
pub use crate::delivery::log::{
    DeliveryState, EventCursor, EventDelivery, EventDetail, EventFacts, EventLog,
    InvalidEventCursor, PurgeCutoffs, Purged, RECOVER_BATCH, RECOVER_MAX_EVENTS, RecoverOutcome,
    ResendOutcome,
};
pub use crate::delivery::outbox::{
    AttemptReport, Claimed, CompleteOutcome, DeliveryAfter, DeliveryKey, EVENT_ID_RETENTION,
    EVENT_IDS_FORGOTTEN_PER_ENQUEUE, EnqueueOutcome, ExistingEvent, Lease, LeaseRequest,
    LeaseToken, Outbox, QueueDepth, Settlement, Target, settle,
};
pub use crate::delivery::pin::{Lookup, Refusal, lookup, pin_addresses};
pub use crate::delivery::request::{DeliveryRequest, USER_AGENT, plan_attempt};
pub use crate::delivery::schedule::{
    InvalidRetrySchedule, JITTER_DIVISOR, MAX_STEP, MAX_STEPS, RetrySchedule,
};
pub use crate::delivery::step::{Decision, NextStep, next_step};
pub use crate::id::{
    ATTEMPT_ID_PREFIX, AttemptId, EVENT_ID_PREFIX, EventId, InvalidAttemptId, InvalidEventId,
};
pub use crate::record::DisabledReason;
