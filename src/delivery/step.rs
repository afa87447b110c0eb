//! The decision after an attempt: delivered, retry at a time, failed, or
//! disable the destination.

use rand_core::Rng;

use crate::delivery::classify::Classification;
use crate::delivery::disable::{DisablePolicy, FailureStreak};
use crate::delivery::schedule::RetrySchedule;
use crate::record::DisabledReason;
use crate::time::Timestamp;

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NextStep {
    /// The delivery is done.
    Delivered,
    /// Attempt again at this time.
    RetryAt(Timestamp),
    /// No attempt is left: the delivery is failed.
    Failed,
    /// Disable the destination for this reason; the delivery ends.
    Disable(DisabledReason),
}

/// The next step and the destination's failure streak to store with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    /// What to do with the delivery (and maybe the destination).
    pub step: NextStep,
    /// The destination's streak after this attempt: `None` after a success.
    pub streak: Option<FailureStreak>,
}

/// Decides what follows attempt `attempt` (from 1), made at `now`, that was
/// classified as `classification`; `streak` is the destination's failure
/// streak before this attempt.
///
/// A 2xx is delivered and clears the streak. A 410 disables with `gone`.
/// A failure extends the streak; if `disable` then says so the destination
/// is disabled with `failing`; otherwise the next attempt is due after the
/// schedule's (jittered) step, or later if a `Retry-After` asked for more
/// (capped at the schedule's longest step); with no step left the delivery
/// is failed.
///
/// ```
/// use prets_destinations::Timestamp;
/// use prets_destinations::delivery::{
///     Answer, DisablePolicy, NextStep, RetrySchedule, TransportError, classify, next_step,
/// };
/// use rand_core::UnwrapErr;
///
/// let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
/// let c = classify(Answer::Failed(TransportError::Timeout), now);
/// let d = next_step(&c, 1, &RetrySchedule::default(), None, &DisablePolicy::default(), now, &mut UnwrapErr(getrandom::SysRng));
/// let NextStep::RetryAt(at) = d.step else { unreachable!() };
/// assert!(at.unix_seconds() >= now.unix_seconds() + 5);
/// assert_eq!(d.streak.map(|s| s.attempts), Some(1));
/// ```
#[must_use]
pub fn next_step<R: Rng + ?Sized>(
    classification: &Classification,
    attempt: u32,
    schedule: &RetrySchedule,
    streak: Option<FailureStreak>,
    disable: &DisablePolicy,
    now: Timestamp,
    rng: &mut R,
) -> Decision {
    let failure = match classification {
        Classification::Delivered { .. } => {
            return Decision {
                step: NextStep::Delivered,
                streak: None,
            };
        }
        Classification::Gone => {
            return Decision {
                step: NextStep::Disable(DisabledReason::Gone),
                streak: Some(FailureStreak::after_failure(streak, now)),
            };
        }
        Classification::Failed(f) => f,
    };
    let streak = FailureStreak::after_failure(streak, now);
    let step = if disable.disables(&streak, now) {
        NextStep::Disable(DisabledReason::Failing)
    } else {
        match schedule.jittered_delay_after(attempt, rng) {
            None => NextStep::Failed,
            Some(delay) => {
                let asked = failure
                    .retry_after
                    .map_or(delay, |r| r.min(schedule.longest()));
                match now.checked_add(delay.max(asked)) {
                    Some(at) => NextStep::RetryAt(at),
                    None => NextStep::Failed,
                }
            }
        }
    };
    Decision {
        step,
        streak: Some(streak),
    }
}
