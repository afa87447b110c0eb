//! Organization limits: the token bucket against a model of its contract,
//! `Retry-After` rounding, and `MemoryRepo` through the quotas kit.

use std::num::NonZeroU32;
use std::time::Duration;

use prets_destinations::limits::{Quotas, Rate, TokenBucket, retry_after_seconds};
use proptest::prelude::*;

fn rate(per_second: u32, burst: u32) -> Rate {
    Rate::new(
        NonZeroU32::new(per_second).unwrap(),
        NonZeroU32::new(burst).unwrap(),
    )
}

#[test]
fn a_new_bucket_gives_its_burst_at_once_then_one_per_interval() {
    let rate = rate(10, 5);
    let mut bucket = TokenBucket::new();
    let t0 = Duration::from_secs(1_000);
    assert_eq!(bucket.tokens(&rate, t0), 5);
    for _ in 0..5 {
        bucket.take(&rate, t0).unwrap();
    }
    assert_eq!(bucket.tokens(&rate, t0), 0);
    assert_eq!(bucket.take(&rate, t0), Err(Duration::from_millis(100)));
    // A refused take spends nothing.
    assert_eq!(bucket.take(&rate, t0), Err(Duration::from_millis(100)));
    let t1 = t0 + Duration::from_millis(99);
    assert_eq!(bucket.take(&rate, t1), Err(Duration::from_millis(1)));
    let t2 = t0 + Duration::from_millis(100);
    bucket.take(&rate, t2).unwrap();
    assert!(bucket.take(&rate, t2).is_err());
    assert!(!bucket.is_full(t2));
    assert!(bucket.is_full(t0 + Duration::from_millis(600)));
    assert_eq!(bucket.tokens(&rate, t0 + Duration::from_secs(60)), 5);
}

#[test]
fn a_burst_of_one_is_a_plain_rate() {
    let rate = rate(2, 1);
    let mut bucket = TokenBucket::new();
    let t0 = Duration::from_secs(5);
    bucket.take(&rate, t0).unwrap();
    assert_eq!(bucket.take(&rate, t0), Err(Duration::from_millis(500)));
    bucket.take(&rate, t0 + Duration::from_millis(500)).unwrap();
}

#[test]
fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
    assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    assert_eq!(retry_after_seconds(Duration::from_nanos(1)), 1);
    assert_eq!(retry_after_seconds(Duration::from_secs(1)), 1);
    assert_eq!(retry_after_seconds(Duration::from_millis(1001)), 2);
    assert_eq!(retry_after_seconds(Duration::from_secs(7)), 7);
    assert_eq!(retry_after_seconds(Duration::MAX), u64::MAX);
}

#[test]
fn quotas_count_what_would_pass_them() {
    let q = Quotas {
        max_destinations: 2,
        max_pending_deliveries: 10,
    };
    assert!(q.allows_destination(1) && !q.allows_destination(2));
    assert!(q.allows_deliveries(7, 3) && !q.allows_deliveries(8, 3));
    assert!(q.allows_deliveries(10, 0) && q.allows_deliveries(usize::MAX, 0));
    assert!(Quotas::UNLIMITED.allows_deliveries(usize::MAX - 1, 1));
    assert_eq!(Quotas::default(), Quotas::UNLIMITED);
}

proptest! {
    /// Over any window, a bucket grants at most `burst` plus one per whole
    /// interval elapsed; whenever it refuses, waiting the wait it named is
    /// enough, and waiting less is not; a full bucket always grants.
    #[test]
    fn the_bucket_never_grants_more_than_its_rate_and_burst(
        per_second in 1u32..2_000,
        burst in 1u32..50,
        steps in proptest::collection::vec(0u64..400_000_000, 1..300),
    ) {
        let rate = rate(per_second, burst);
        let interval = rate.interval().as_nanos();
        let mut bucket = TokenBucket::new();
        let start = Duration::from_secs(10);
        let mut now = start;
        let mut granted: u128 = 0;
        for step in steps {
            now += Duration::from_nanos(step);
            let full = bucket.is_full(now);
            let before = bucket;
            match bucket.take(&rate, now) {
                Ok(()) => granted += 1,
                Err(wait) => {
                    prop_assert!(!full, "a full bucket refused");
                    prop_assert!(wait > Duration::ZERO);
                    prop_assert_eq!(bucket, before, "a refused take changed the bucket");
                    let mut later = bucket;
                    prop_assert!(later.take(&rate, now + wait).is_ok(), "the named wait was not enough");
                    let mut sooner = bucket;
                    let just_before = now + wait - Duration::from_nanos(1);
                    prop_assert!(sooner.take(&rate, just_before).is_err(), "the named wait was longer than needed");
                }
            }
            let elapsed = (now - start).as_nanos();
            prop_assert!(
                granted <= u128::from(burst) + elapsed / interval,
                "granted {} in {} ns at {}/s burst {}", granted, elapsed, per_second, burst
            );
            prop_assert!(bucket.tokens(&rate, now) <= burst);
        }
    }

    /// Asked steadily at its rate, a bucket refuses nothing.
    #[test]
    fn the_bucket_grants_a_steady_caller_at_its_rate(
        per_second in 1u32..2_000,
        burst in 1u32..50,
        n in 1usize..500,
    ) {
        let rate = rate(per_second, burst);
        let mut bucket = TokenBucket::new();
        let mut now = Duration::from_secs(1);
        for _ in 0..n {
            prop_assert!(bucket.take(&rate, now).is_ok());
            now += rate.interval();
        }
    }
}

#[cfg(all(feature = "memory", feature = "conformance"))]
mod memory {
    use prets_destinations::MemoryRepo;
    use prets_destinations::conformance::quotas as kit;

    use crate::support::block_on;

    fn repo() -> MemoryRepo {
        MemoryRepo::new().with_quotas(kit::KIT_QUOTAS)
    }

    #[test]
    fn destination_quota_per_tenant() {
        block_on(kit::destination_quota_per_tenant(&repo()));
    }

    #[test]
    fn concurrent_inserts_at_the_quota_store_one() {
        block_on(kit::concurrent_inserts_at_the_quota_store_one(&repo(), 8));
    }

    #[test]
    fn pending_quota_per_tenant() {
        block_on(kit::pending_quota_per_tenant(&repo()));
    }

    #[test]
    fn manual_deliveries_within_the_pending_quota() {
        block_on(kit::manual_deliveries_within_the_pending_quota(&repo()));
    }

    #[test]
    fn quotas_run_all() {
        block_on(kit::quotas_run_all(&repo()));
    }
}
