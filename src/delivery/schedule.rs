//! `RetrySchedule`: the delays between delivery attempts, with bounded jitter.

use core::fmt;
use core::str::FromStr;
use std::time::Duration;

use rand_core::Rng;

use crate::error::{Field, field_error_type};

/// Most steps a schedule may have.
pub const MAX_STEPS: usize = 32;

/// Longest single step: 7 days.
pub const MAX_STEP: Duration = Duration::from_secs(7 * 86_400);

/// The jitter added to a step is at most this fraction of it: 1/10.
pub const JITTER_DIVISOR: u32 = 10;

/// The default steps, in seconds: 5s, 5m, 30m, 2h, 5h, 10h, 10h.
const DEFAULT_STEPS: [u64; 7] = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];

field_error_type! {
    /// Why a list of delays is not a valid [`RetrySchedule`].
    InvalidRetrySchedule, ScheduleErrorKind, Field::RetrySchedule,
    {
        Empty => ("too_short", "retry schedule must have at least one step"),
        TooMany => ("too_long", "retry schedule must have at most 32 steps"),
        Step => ("pattern", "retry schedule steps must be whole numbers followed by s, m, h or d, separated by commas"),
        StepTooLong => ("step_too_long", "retry schedule steps must be at most 7 days"),
        Decreasing => ("decreasing", "retry schedule steps must never get shorter"),
    }
}

/// How long to wait after each failed attempt before the next one.
///
/// The first attempt is made at once; after failed attempt `n` the next waits
/// step `n` (plus jitter); after a failure with no step left the delivery is
/// failed. Steps are whole seconds, at most [`MAX_STEP`] each, never shorter
/// than the step before, at most [`MAX_STEPS`] of them.
///
/// The text form (for a command-line flag) is the steps separated by commas,
/// each a whole number and a unit `s`, `m`, `h` or `d`.
///
/// ```
/// use std::time::Duration;
/// use prets_destinations::delivery::RetrySchedule;
///
/// let s = RetrySchedule::default();
/// assert_eq!(s.to_string(), "5s,5m,30m,2h,5h,10h,10h");
/// assert_eq!(s.max_attempts(), 8);
/// assert_eq!(s.delay_after(1), Some(Duration::from_secs(5)));
/// assert_eq!(s.delay_after(8), None);
/// assert_eq!("1m,90s".parse::<RetrySchedule>()?.to_string(), "1m,90s");
/// # Ok::<(), prets_destinations::delivery::InvalidRetrySchedule>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RetrySchedule {
    /// Whole seconds, non-decreasing, 1 to [`MAX_STEPS`] of them.
    steps: Vec<u64>,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self {
            steps: DEFAULT_STEPS.to_vec(),
        }
    }
}

impl RetrySchedule {
    /// A schedule from its steps; sub-second parts are dropped.
    ///
    /// # Errors
    /// [`InvalidRetrySchedule`] if there are none or too many steps, a step
    /// is longer than [`MAX_STEP`], or a step is shorter than the one before.
    pub fn new(steps: impl IntoIterator<Item = Duration>) -> Result<Self, InvalidRetrySchedule> {
        let mut out = Vec::new();
        for step in steps {
            if out.len() == MAX_STEPS {
                return Err(InvalidRetrySchedule::new(ScheduleErrorKind::TooMany));
            }
            out.push(step.as_secs());
        }
        Self::from_secs(out).map_err(InvalidRetrySchedule::new)
    }

    fn from_secs(steps: Vec<u64>) -> Result<Self, ScheduleErrorKind> {
        if steps.is_empty() {
            return Err(ScheduleErrorKind::Empty);
        }
        if steps.len() > MAX_STEPS {
            return Err(ScheduleErrorKind::TooMany);
        }
        if steps.iter().any(|&s| s > MAX_STEP.as_secs()) {
            return Err(ScheduleErrorKind::StepTooLong);
        }
        if steps.windows(2).any(|w| w.first() > w.get(1)) {
            return Err(ScheduleErrorKind::Decreasing);
        }
        Ok(Self { steps })
    }

    /// The steps.
    pub fn steps(&self) -> impl ExactSizeIterator<Item = Duration> + '_ {
        self.steps.iter().map(|&s| Duration::from_secs(s))
    }

    /// How many attempts a delivery gets: one more than the steps.
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.steps.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1)
    }

    /// The longest step (the last one); `Retry-After` is capped at it.
    #[must_use]
    pub fn longest(&self) -> Duration {
        Duration::from_secs(self.steps.last().copied().unwrap_or(0))
    }

    /// The step after failed attempt `attempt` (counted from 1), without
    /// jitter; `None` when no attempt is left (or for attempt 0).
    #[must_use]
    pub fn delay_after(&self, attempt: u32) -> Option<Duration> {
        let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
        self.steps.get(index).map(|&s| Duration::from_secs(s))
    }

    /// [`delay_after`](Self::delay_after) plus a jitter drawn from `rng`,
    /// uniform in whole milliseconds from zero to a tenth of the step. The
    /// result is never shorter than the step, so jittered delays still never
    /// decrease from one attempt to the next.
    pub fn jittered_delay_after<R: Rng + ?Sized>(
        &self,
        attempt: u32,
        rng: &mut R,
    ) -> Option<Duration> {
        let base = self.delay_after(attempt)?;
        let span = u64::try_from(base.as_millis() / u128::from(JITTER_DIVISOR)).unwrap_or(0);
        let extra = rng.next_u64() % span.saturating_add(1);
        Some(base.saturating_add(Duration::from_millis(extra)))
    }
}

/// One step of the text form: 1 to 7 digits and a unit.
fn parse_step(text: &str) -> Option<u64> {
    let (digits, unit) = text.split_at_checked(text.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 7 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(scale)
}

impl FromStr for RetrySchedule {
    type Err = InvalidRetrySchedule;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut steps = Vec::new();
        for part in s.split(',') {
            if steps.len() == MAX_STEPS {
                return Err(InvalidRetrySchedule::new(ScheduleErrorKind::TooMany));
            }
            let secs =
                parse_step(part).ok_or(InvalidRetrySchedule::new(ScheduleErrorKind::Step))?;
            steps.push(secs);
        }
        Self::from_secs(steps).map_err(InvalidRetrySchedule::new)
    }
}

impl fmt::Display for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for &s in &self.steps {
            let (n, unit) = match s {
                0 => (0, "s"),
                s if s % 86_400 == 0 => (s / 86_400, "d"),
                s if s % 3600 == 0 => (s / 3600, "h"),
                s if s % 60 == 0 => (s / 60, "m"),
                s => (s, "s"),
            };
            write!(f, "{sep}{n}{unit}")?;
            sep = ",";
        }
        Ok(())
    }
}

impl fmt::Debug for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RetrySchedule({self})")
    }
}
