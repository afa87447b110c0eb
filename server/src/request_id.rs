//! Request ids: one per request the API answers, and per connection refused
//! at the connection cap, in the `x-request-id` header and the log.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// A per-process request id: a random 32-bit prefix chosen at start, and a
/// counter, as 16 hex digits. Unique within a run, and across runs with
/// high probability; it carries nothing from the request.
pub(crate) fn next_request_id() -> String {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        use prets_destinations::rand_core::Rng as _;
        prets_destinations::os_rng().next_u32()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix:08x}{:08x}", n & 0xffff_ffff)
}
