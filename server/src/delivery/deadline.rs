//! Deadlines from the configured waits.

use std::time::Duration;

use tokio::time::Instant;

/// The instant `wait` from now, or about thirty years from now when that
/// does not fit (an unbounded setting such as `Duration::MAX` must not make
/// `Instant + Duration` panic).
pub(super) fn after(wait: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 86_400);
    let now = Instant::now();
    now.checked_add(wait.min(FAR))
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}
