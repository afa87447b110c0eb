//! The worker's finish step: the pure step [`plan_finish`] decides what
//! follows an attempt, and [`finish_attempt`] records it through the outbox.

use std::time::Duration;

use rand_core::CryptoRng;

use crate::delivery::{
    AttemptMeta, AttemptRecord, AttemptReport, Claimed, Classification, CompleteOutcome,
    DisablePolicy, Lease, Outbox, RetrySchedule, next_step,
};
use crate::id::AttemptId;
use crate::ops::error::OpError;
use crate::time::Timestamp;

/// A worker's report of one attempt of `claimed`, for [`finish_attempt`]:
/// a new attempt id, the decision of [`next_step`] (made without the
/// destination's failure streak, which only the store holds; the store
/// applies `disable` to it in [`settle`](crate::delivery::settle)), and the
/// attempt record. Pure: the time, the duration and randomness come in as
/// arguments.
pub fn plan_finish<G: CryptoRng + ?Sized>(
    claimed: &Claimed,
    classification: &Classification,
    started_at: Timestamp,
    duration: Duration,
    schedule: &RetrySchedule,
    disable: DisablePolicy,
    rng: &mut G,
) -> AttemptReport {
    let decision = next_step(
        classification,
        claimed.attempt,
        schedule,
        None,
        &disable,
        started_at,
        rng,
    );
    let meta = AttemptMeta {
        attempt_id: AttemptId::generate(started_at, rng),
        event_id: claimed.event.event_id,
        destination_id: claimed.lease.delivery.destination_id,
        attempt: claimed.attempt,
        started_at,
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
    };
    AttemptReport {
        attempt: AttemptRecord::new(meta, classification, &decision.step),
        next: decision.step,
        disable,
    }
}

/// Records one attempt and its consequence (`report`, from [`plan_finish`])
/// in one write, if the worker still holds `lease`: the attempt record, the
/// delivery rescheduled or finished, the destination's failure streak, and
/// the destination disabled if the attempt disables it
/// ([`Outbox::complete`]).
///
/// The answer is the store's: [`CompleteOutcome::Recorded`] (with the reason
/// if this write disabled the destination) or [`CompleteOutcome::LeaseLost`]
/// (nothing written; the delivery is another worker's now, or gone).
///
/// # Errors
/// [`OpError::Repo`] with the store's own error; then nothing was written and
/// the delivery is offered again once the lease expires.
pub async fn finish_attempt<O: Outbox>(
    outbox: &O,
    lease: &Lease,
    report: AttemptReport,
) -> Result<CompleteOutcome, OpError<O::Error>> {
    outbox.complete(lease, report).await.map_err(OpError::Repo)
}
