//! Auto-disable: a destination that keeps failing stops receiving.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// A destination's run of consecutive failed attempts (across all its
/// deliveries): when it started and how many attempts it holds. The outbox
/// stores it next to the destination; any successful delivery clears it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureStreak {
    /// When the first failed attempt of the run was made.
    pub since: Timestamp,
    /// Failed attempts in the run.
    pub attempts: u32,
}

impl FailureStreak {
    /// The streak after one more failed attempt at `now`: a new streak if
    /// there was none.
    #[must_use]
    pub fn after_failure(streak: Option<Self>, now: Timestamp) -> Self {
        match streak {
            Some(s) => Self {
                since: s.since,
                attempts: s.attempts.saturating_add(1),
            },
            None => Self {
                since: now,
                attempts: 1,
            },
        }
    }
}

/// When continuous failure disables a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DisablePolicy {
    /// How long a destination must have failed continuously: 5 days by default.
    pub disable_after: Duration,
    /// The fewest failed attempts in the run: 3 by default, so that a
    /// single failure after a long silence never disables.
    pub min_attempts: u32,
}

impl Default for DisablePolicy {
    fn default() -> Self {
        Self {
            disable_after: Duration::from_secs(5 * 86_400),
            min_attempts: 3,
        }
    }
}

impl DisablePolicy {
    /// Whether `streak`, as of `now`, disables the destination: at least
    /// `min_attempts` failures spanning at least `disable_after`.
    #[must_use]
    pub fn disables(&self, streak: &FailureStreak, now: Timestamp) -> bool {
        let failing_for =
            Duration::from_millis(now.unix_millis().saturating_sub(streak.since.unix_millis()));
        streak.attempts >= self.min_attempts && failing_for >= self.disable_after
    }
}
