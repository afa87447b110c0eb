//! `FairQueue` at depth: one batch of 64 claimed, finished and replaced
//! (the same keys pushed again, due after everything queued, so the depth
//! stays put), with 10k, 100k and 1M deliveries queued.
//!
//! - `fair_queue/one_lane/{depth}`: every delivery in one destination's lane
//!   (its cap at 64, so one claim takes 64 from it);
//! - `fair_queue/1000_lanes/{depth}`: 1,000 destinations of 100 organizations,
//!   cap 4: one claim takes one delivery from each of 64 lanes;
//! - `fair_queue/floor_btree/{depth}`: the floor of `one_lane`, one ordered
//!   set of `(due, event)` at the same depth: pop the first 64, insert 64;
//! - `fair_queue/floor_lanes/{depth}`: the floor of `1000_lanes`, 1,000
//!   ordered sets sharing the same depth: pop the first of 64 sets in turn,
//!   insert it again at the back of its set.
//!
//! Throughput is per delivery. Compare each depth with 10k, and each row
//! with its floor at the same depth: only the O(log n) steps and the memory
//! the sets occupy grow with depth.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prets_destinations::delivery::{ClaimLimits, EventId, FairQueue};
use prets_destinations::rand_core::SeedableRng as _;
use prets_destinations::{DestinationId, TenantId, Timestamp};
use rand_chacha::ChaCha20Rng;

const BATCH: usize = 64;
const DEPTHS: [usize; 3] = [10_000, 100_000, 1_000_000];

fn at(ms: u64) -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_000 + ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A queue of `depth` deliveries over `lanes` destinations of
/// `orgs` organizations, due one millisecond apart.
fn filled(depth: usize, lanes: usize, orgs: usize) -> FairQueue {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let tenants: Vec<TenantId> = (0..orgs)
        .map(|i| {
            format!("org_{i}")
                .parse()
                .unwrap_or_else(|_| unreachable!())
        })
        .collect();
    let destinations: Vec<DestinationId> = (0..lanes)
        .map(|i| DestinationId::from_parts(at(0), i as u128))
        .collect();
    let mut queue = FairQueue::new();
    for i in 0..depth {
        let lane = i % lanes;
        let due = at(i as u64);
        let tenant = tenants.get(lane % orgs).unwrap_or_else(|| unreachable!());
        let destination = *destinations.get(lane).unwrap_or_else(|| unreachable!());
        queue.push(tenant, destination, EventId::generate(due, &mut rng), due);
    }
    queue
}

fn cycle(c: &mut Criterion) {
    let mut g = c.benchmark_group("fair_queue");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(30);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    // Everything queued is due: deliveries are due before `now`, and pushed
    // again at a due time that keeps growing but never reaches it.
    let now = at(1 << 40);
    let lease = now.saturating_add(Duration::from_secs(30));
    for (name, lanes, orgs, per_destination) in
        [("one_lane", 1, 1, BATCH), ("1000_lanes", 1000, 100, 4)]
    {
        let limits = ClaimLimits {
            limit: BATCH,
            per_destination,
            failing_limit: 0,
            per_failing_destination: 1,
        };
        for depth in DEPTHS {
            let mut queue = filled(depth, lanes, orgs);
            let mut next = depth as u64;
            g.bench_function(BenchmarkId::new(name, depth), |b| {
                b.iter(|| {
                    let claimed = queue.claim(now, &limits, lease);
                    for (tenant, destination, event) in &claimed {
                        queue.finish(tenant, *destination, *event);
                    }
                    for (tenant, destination, event) in &claimed {
                        next += 1;
                        queue.push(tenant, *destination, *event, at(next));
                    }
                    black_box(claimed.len())
                });
            });
            assert_eq!(queue.len(), depth, "the depth held");
        }
    }
    for depth in DEPTHS {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut set: BTreeSet<(Timestamp, EventId)> = (0..depth as u64)
            .map(|i| (at(i), EventId::generate(at(i), &mut rng)))
            .collect();
        let mut next = depth as u64;
        g.bench_function(BenchmarkId::new("floor_btree", depth), |b| {
            b.iter(|| {
                let mut batch = [None; BATCH];
                for slot in &mut batch {
                    *slot = set.pop_first();
                }
                for (_, event) in batch.into_iter().flatten() {
                    next += 1;
                    set.insert((at(next), event));
                }
                black_box(set.len())
            });
        });
    }
    let lanes = 1000;
    for depth in DEPTHS {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut sets: Vec<BTreeSet<(Timestamp, EventId)>> = vec![BTreeSet::new(); lanes];
        for i in 0..depth {
            if let Some(set) = sets.get_mut(i % lanes) {
                set.insert((at(i as u64), EventId::generate(at(i as u64), &mut rng)));
            }
        }
        let mut next = depth as u64;
        let mut turn = 0;
        g.bench_function(BenchmarkId::new("floor_lanes", depth), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    turn = (turn + 1) % lanes;
                    if let Some(set) = sets.get_mut(turn)
                        && let Some((_, event)) = set.pop_first()
                    {
                        next += 1;
                        set.insert((at(next), event));
                    }
                }
                black_box(turn)
            });
        });
    }
    g.finish();
}

criterion_group!(benches, cycle);
criterion_main!(benches);
