//! `FairQueue`, the fair scheduler of pending deliveries: a model test
//! against a naive reference (random operation sequences, the clock moving
//! both ways), then the fairness scenarios by name: a deep lane never delays
//! another lane's due delivery, an organization with many lanes never
//! starves one with a single lane, the slow lane keeps within its limits,
//! and lapsed leases come back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use prets_destinations::delivery::{ClaimLimits, EventId, FairEntry, FairKey, FairQueue};
use prets_destinations::{DestinationId, TenantId, Timestamp};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;

use crate::support::{now, regressions_beside_module, rng, tenant};

const ORGS: usize = 3;
const LANES: usize = 3;

/// The fixed universe of the model test: `ORGS` organizations of `LANES`
/// destinations each.
struct World {
    tenants: Vec<TenantId>,
    destinations: Vec<DestinationId>,
}

impl World {
    fn new() -> Self {
        Self {
            tenants: (0..ORGS).map(|i| tenant(&format!("org_{i}"))).collect(),
            destinations: (0..ORGS * LANES)
                .map(|i| DestinationId::from_parts(now(), i as u128 + 1))
                .collect(),
        }
    }

    fn lane(&self, org: usize, lane: usize) -> (&TenantId, DestinationId) {
        (&self.tenants[org], self.destinations[org * LANES + lane])
    }

    fn key(&self, k: &Key) -> FairKey {
        let (t, d) = self.lane(k.0, k.1);
        (t.clone(), d, k.2)
    }
}

/// (organization, lane, event) in the model.
type Key = (usize, usize, EventId);

#[derive(Clone, Copy, Debug)]
struct Item {
    due: Timestamp,
    /// When it is claimable while not leased: its due time, or a lapsed
    /// lease's expiry if later.
    available: Timestamp,
    lease: Option<Timestamp>,
}

/// The naive reference: every pending delivery in a map, every claim a scan.
#[derive(Default)]
struct Model {
    items: BTreeMap<Key, Item>,
    failing: BTreeSet<(usize, usize)>,
}

impl Model {
    fn pick(&self, i: usize) -> Option<Key> {
        if self.items.is_empty() {
            return None;
        }
        self.items.keys().nth(i % self.items.len()).copied()
    }

    fn leased(&self) -> usize {
        self.items.values().filter(|i| i.lease.is_some()).count()
    }

    fn lanes(&self) -> usize {
        let mut lanes: BTreeSet<(usize, usize)> = self.items.keys().map(|k| (k.0, k.1)).collect();
        lanes.extend(&self.failing);
        lanes.len()
    }
}

fn shift(t: Timestamp, secs: i64) -> Timestamp {
    let ms = t.unix_millis();
    let ms = if secs < 0 {
        ms.saturating_sub(secs.unsigned_abs() * 1000)
    } else {
        ms.saturating_add(secs.unsigned_abs() * 1000)
    };
    Timestamp::from_unix_millis(ms).unwrap_or(Timestamp::MAX)
}

#[derive(Clone, Debug)]
enum Op {
    Push {
        org: usize,
        lane: usize,
        n: usize,
        due: i64,
    },
    PushAgain(usize),
    Claim {
        limits: ClaimLimits,
        lease: i64,
    },
    Finish(usize),
    Retry(usize, i64),
    Release(usize),
    Renew(usize, i64),
    Unknown(usize),
    SetFailing {
        org: usize,
        lane: usize,
        failing: bool,
    },
    RemoveLane {
        org: usize,
        lane: usize,
    },
    RemoveUnleased {
        org: usize,
        lane: usize,
    },
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    let lane = (0..ORGS, 0..LANES);
    let limits =
        (0usize..12, 0usize..4, 0usize..4, 0usize..3).prop_map(|(l, p, f, pf)| ClaimLimits {
            limit: l,
            per_destination: p,
            failing_limit: f,
            per_failing_destination: pf,
        });
    prop_oneof![
        4 => (lane.clone(), 1usize..12, -20i64..40)
            .prop_map(|((org, lane), n, due)| Op::Push { org, lane, n, due }),
        1 => any::<usize>().prop_map(Op::PushAgain),
        5 => (limits, -5i64..60).prop_map(|(limits, lease)| Op::Claim { limits, lease }),
        3 => any::<usize>().prop_map(Op::Finish),
        2 => (any::<usize>(), -20i64..60).prop_map(|(p, d)| Op::Retry(p, d)),
        1 => any::<usize>().prop_map(Op::Release),
        1 => (any::<usize>(), -5i64..60).prop_map(|(p, d)| Op::Renew(p, d)),
        1 => any::<usize>().prop_map(Op::Unknown),
        2 => (lane.clone(), any::<bool>())
            .prop_map(|((org, lane), failing)| Op::SetFailing { org, lane, failing }),
        1 => lane.clone().prop_map(|(org, lane)| Op::RemoveLane { org, lane }),
        1 => lane.prop_map(|(org, lane)| Op::RemoveUnleased { org, lane }),
        3 => (-40i64..60).prop_map(Op::Advance),
    ]
}

/// A lane's claimable items, earliest first, and how many it may take.
type Claimable = (Vec<(Timestamp, EventId)>, usize);

/// Checks one claim against the model and records its leases there.
fn check_claim(
    world: &World,
    model: &mut Model,
    got: &[FairKey],
    now: Timestamp,
    limits: &ClaimLimits,
    until: Timestamp,
) -> Result<(), TestCaseError> {
    // Leases that expired at or before `now` lapse.
    for item in model.items.values_mut() {
        if let Some(e) = item.lease.filter(|e| *e <= now) {
            item.lease = None;
            item.available = item.due.max(e);
        }
    }
    // Per lane: its claimable items in order, and how many it may take.
    let mut claimable: BTreeMap<(usize, usize), Claimable> = BTreeMap::new();
    for org in 0..ORGS {
        for lane in 0..LANES {
            let mine = || {
                model
                    .items
                    .iter()
                    .filter(move |(k, _)| k.0 == org && k.1 == lane)
            };
            let live = mine().filter(|(_, i)| i.lease.is_some()).count();
            let mut free: Vec<_> = mine()
                .filter(|(_, i)| i.lease.is_none() && i.available <= now)
                .map(|(k, i)| (i.available, k.2))
                .collect();
            free.sort();
            let cap = if model.failing.contains(&(org, lane)) {
                limits.per_failing_destination
            } else {
                limits.per_destination
            };
            let room = cap.saturating_sub(live).min(free.len());
            claimable.insert((org, lane), (free, room));
        }
    }
    // Map the claimed keys back into the model.
    let mut served: BTreeMap<(usize, usize), Vec<EventId>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (t, d, e) in got {
        let org = world.tenants.iter().position(|x| x == t);
        let pos = world.destinations.iter().position(|x| x == d);
        let (Some(org), Some(pos)) = (org, pos) else {
            return Err(TestCaseError::fail("claimed a key outside the world"));
        };
        prop_assert_eq!(pos / LANES, org, "destination of another organization");
        prop_assert!(seen.insert(*e), "claimed twice in one claim");
        served.entry((org, pos % LANES)).or_default().push(*e);
    }
    // Each lane: its earliest claimable items, within its room.
    for (lane, events) in &served {
        let (free, room) = &claimable[lane];
        prop_assert!(events.len() <= *room, "lane over its cap: {:?}", lane);
        let want: Vec<EventId> = free.iter().take(events.len()).map(|x| x.1).collect();
        prop_assert_eq!(events, &want, "not the lane's earliest available, in order");
    }
    // Totals per kind: work-conserving, within the slow-lane limit, and
    // alternating while both kinds have work.
    let failing = |lane: &(usize, usize)| model.failing.contains(lane);
    let total = |f: bool, m: &dyn Fn(&(usize, usize)) -> usize| -> usize {
        claimable.keys().filter(|l| failing(l) == f).map(m).sum()
    };
    let c_h = total(false, &|l| claimable[l].1);
    let c_f = total(true, &|l| claimable[l].1);
    let s_h = total(false, &|l| served.get(l).map_or(0, Vec::len));
    let s_f = total(true, &|l| served.get(l).map_or(0, Vec::len));
    prop_assert!(s_f <= limits.failing_limit);
    prop_assert_eq!(s_h, c_h.min(limits.limit - s_f));
    prop_assert_eq!(s_f, c_f.min(limits.failing_limit).min(limits.limit - s_h));
    prop_assert!(s_f >= c_f.min(limits.failing_limit).min(limits.limit / 2));
    prop_assert!(s_h >= c_h.min(limits.limit - limits.limit / 2));
    // Round-robin: organizations (and an organization's lanes) not yet out
    // of claimable work were served at most one fewer time than any other.
    for f in [false, true] {
        let org_count = |org: usize, m: &dyn Fn(&(usize, usize)) -> usize| -> usize {
            (0..LANES)
                .map(|l| (org, l))
                .filter(|l| failing(l) == f)
                .map(|l| m(&l))
                .sum()
        };
        let served_n = |l: &(usize, usize)| served.get(l).map_or(0, Vec::len);
        let room_n = |l: &(usize, usize)| claimable[l].1;
        for x in 0..ORGS {
            let (sx, cx) = (org_count(x, &served_n), org_count(x, &room_n));
            for y in 0..ORGS {
                if sx < cx {
                    prop_assert!(
                        org_count(y, &served_n) <= sx + 1,
                        "organization {} starved",
                        x
                    );
                }
            }
            for a in (0..LANES).map(|l| (x, l)).filter(|l| failing(l) == f) {
                for b in (0..LANES).map(|l| (x, l)).filter(|l| failing(l) == f) {
                    if served_n(&a) < room_n(&a) {
                        prop_assert!(served_n(&b) <= served_n(&a) + 1, "lane {:?} starved", a);
                    }
                }
            }
        }
    }
    for (lane, events) in served {
        for e in events {
            if let Some(item) = model.items.get_mut(&(lane.0, lane.1, e)) {
                item.lease = Some(until);
            }
        }
    }
    Ok(())
}

fn check_state(world: &World, model: &Model, queue: &FairQueue) -> Result<(), TestCaseError> {
    prop_assert_eq!(queue.len(), model.items.len());
    prop_assert_eq!(queue.is_empty(), model.items.is_empty());
    prop_assert_eq!(queue.leased(), model.leased());
    prop_assert_eq!(queue.lanes(), model.lanes());
    for (k, item) in &model.items {
        let (t, d) = world.lane(k.0, k.1);
        prop_assert_eq!(
            queue.get(t, d, k.2),
            Some(FairEntry {
                due: item.due,
                leased_until: item.lease
            })
        );
    }
    for org in 0..ORGS {
        for lane in 0..LANES {
            let (t, d) = world.lane(org, lane);
            prop_assert_eq!(queue.is_failing(t, d), model.failing.contains(&(org, lane)));
        }
    }
    Ok(())
}

fn run(ops: Vec<Op>, r: &mut ChaCha20Rng) -> Result<(), TestCaseError> {
    let world = World::new();
    let mut queue = FairQueue::new();
    let mut model = Model::default();
    let mut clock = now();
    let mut latest = clock;
    for op in ops {
        match op {
            Op::Push { org, lane, n, due } => {
                let (t, d) = world.lane(org, lane);
                let due = shift(clock, due);
                for _ in 0..n {
                    let e = EventId::generate(clock, r);
                    prop_assert!(queue.push(t, d, e, due));
                    let item = Item {
                        due,
                        available: due,
                        lease: None,
                    };
                    model.items.insert((org, lane, e), item);
                }
            }
            Op::PushAgain(p) => {
                if let Some(k) = model.pick(p) {
                    let (t, d) = world.lane(k.0, k.1);
                    prop_assert!(!queue.push(t, d, k.2, clock), "a pending key pushed twice");
                }
            }
            Op::Claim { limits, lease } => {
                let until = shift(clock, lease);
                latest = latest.max(until);
                let got = queue.claim(clock, &limits, until);
                check_claim(&world, &mut model, &got, clock, &limits, until)?;
            }
            Op::Finish(p) => {
                if let Some(k) = model.pick(p) {
                    let (t, d) = world.lane(k.0, k.1);
                    prop_assert!(queue.finish(t, d, k.2));
                    model.items.remove(&k);
                }
            }
            Op::Retry(p, due) => {
                if let Some(k) = model.pick(p) {
                    let (t, d) = world.lane(k.0, k.1);
                    let due = shift(clock, due);
                    latest = latest.max(due);
                    prop_assert!(queue.retry(t, d, k.2, due));
                    let item = Item {
                        due,
                        available: due,
                        lease: None,
                    };
                    model.items.insert(k, item);
                }
            }
            Op::Release(p) => {
                if let Some(k) = model.pick(p) {
                    let (t, d) = world.lane(k.0, k.1);
                    prop_assert!(queue.release(t, d, k.2));
                    if let Some(item) = model.items.get_mut(&k) {
                        item.lease = None;
                        item.available = item.due;
                    }
                }
            }
            Op::Renew(p, secs) => {
                if let Some(k) = model.pick(p) {
                    let (t, d) = world.lane(k.0, k.1);
                    let until = shift(clock, secs);
                    latest = latest.max(until);
                    prop_assert!(queue.renew(t, d, k.2, until));
                    if let Some(item) = model.items.get_mut(&k) {
                        item.lease = Some(until);
                    }
                }
            }
            Op::Unknown(p) => {
                // A key never pushed, in a known lane and in an unknown one.
                let e = EventId::generate(clock, r);
                let (t, d) = world.lane(p % ORGS, p % LANES);
                let stranger = tenant("org_stranger");
                for (t, d) in [(t, d), (&stranger, DestinationId::MAX)] {
                    prop_assert!(!queue.finish(t, d, e));
                    prop_assert!(!queue.retry(t, d, e, clock));
                    prop_assert!(!queue.release(t, d, e));
                    prop_assert!(!queue.renew(t, d, e, clock));
                    prop_assert_eq!(queue.get(t, d, e), None);
                }
                prop_assert_eq!(queue.remove_lane(&stranger, d), Vec::<EventId>::new());
                prop_assert_eq!(queue.remove_unleased(&stranger, d), Vec::<EventId>::new());
                queue.set_failing(&stranger, d, false);
            }
            Op::SetFailing { org, lane, failing } => {
                let (t, d) = world.lane(org, lane);
                queue.set_failing(t, d, failing);
                if failing {
                    model.failing.insert((org, lane));
                } else {
                    model.failing.remove(&(org, lane));
                }
            }
            Op::RemoveLane { org, lane } => {
                let (t, d) = world.lane(org, lane);
                let mut want: Vec<EventId> = model
                    .items
                    .keys()
                    .filter(|k| (k.0, k.1) == (org, lane))
                    .map(|k| k.2)
                    .collect();
                want.sort();
                prop_assert_eq!(queue.remove_lane(t, d), want);
                model.items.retain(|k, _| (k.0, k.1) != (org, lane));
                model.failing.remove(&(org, lane));
            }
            Op::RemoveUnleased { org, lane } => {
                let (t, d) = world.lane(org, lane);
                let mut want: Vec<(Timestamp, EventId)> = model
                    .items
                    .iter()
                    .filter(|(k, i)| (k.0, k.1) == (org, lane) && i.lease.is_none())
                    .map(|(k, i)| (i.available, k.2))
                    .collect();
                want.sort();
                let want: Vec<EventId> = want.into_iter().map(|x| x.1).collect();
                prop_assert_eq!(queue.remove_unleased(t, d), want);
                model
                    .items
                    .retain(|k, i| (k.0, k.1) != (org, lane) || i.lease.is_some());
            }
            Op::Advance(secs) => {
                clock = shift(clock, secs);
                latest = latest.max(clock);
            }
        }
        check_state(&world, &model, &queue)?;
    }
    // Nothing lost: past every due time and lease, with no cap, one claim
    // offers every pending delivery exactly once; finishing them leaves only
    // the failing marks.
    let far = shift(latest, 3600);
    let all = ClaimLimits {
        limit: usize::MAX,
        per_destination: usize::MAX,
        failing_limit: usize::MAX,
        per_failing_destination: usize::MAX,
    };
    let mut got = queue.claim(far, &all, far);
    got.sort();
    let mut want: Vec<FairKey> = model.items.keys().map(|k| world.key(k)).collect();
    want.sort();
    prop_assert_eq!(&got, &want);
    for (t, d, e) in &got {
        prop_assert!(queue.finish(t, *d, *e));
    }
    prop_assert!(queue.is_empty());
    prop_assert_eq!(queue.leased(), 0);
    prop_assert_eq!(queue.lanes(), model.failing.len());
    for &(org, lane) in &model.failing {
        let (t, d) = world.lane(org, lane);
        queue.set_failing(t, d, false);
    }
    prop_assert_eq!(queue.lanes(), 0);
    Ok(())
}

proptest! {
    #![proptest_config(regressions_beside_module(ProptestConfig::with_cases(256)))]
    #[test]
    fn fair_queue_matches_the_naive_model(
        ops in proptest::collection::vec(op(), 1..80),
        seed in any::<u64>(),
    ) {
        run(ops, &mut rng(seed))?;
    }
}

fn limits(limit: usize, per_destination: usize) -> ClaimLimits {
    ClaimLimits {
        limit,
        per_destination,
        failing_limit: 1,
        per_failing_destination: 1,
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

proptest! {
    #![proptest_config(regressions_beside_module(ProptestConfig::with_cases(64)))]
    /// A lane with a deep backlog, in the same organization or another,
    /// pushed before or after, due earlier: the other lane's due delivery is
    /// in the first claim of limit 2 or more.
    #[test]
    fn a_deep_lane_never_delays_another_lanes_due_delivery(
        depth in 1usize..1000,
        same_org in any::<bool>(),
        deep_first in any::<bool>(),
        limit in 2usize..64,
        cap in 1usize..8,
        deep_failing in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut r = rng(seed);
        let t0 = now();
        let (a, b) = (tenant("org_a"), tenant(if same_org { "org_a" } else { "org_b" }));
        let (deep, other) = (DestinationId::from_parts(t0, 1), DestinationId::from_parts(t0, 2));
        let mut queue = FairQueue::new();
        queue.set_failing(&a, deep, deep_failing);
        let due = EventId::generate(t0, &mut r);
        if !deep_first {
            queue.push(&b, other, due, t0);
        }
        for i in 0..depth {
            // The backlog is older than the other lane's delivery.
            let at = Timestamp::from_unix_millis(t0.unix_millis() - 1_000_000 + i as u64).unwrap();
            queue.push(&a, deep, EventId::generate(at, &mut r), at);
        }
        if deep_first {
            queue.push(&b, other, due, t0);
        }
        let got = queue.claim(t0, &limits(limit, cap), t0.saturating_add(secs(30)));
        prop_assert!(got.contains(&(b.clone(), other, due)));
        let from_deep = got.iter().filter(|k| k.1 == deep).count();
        let deep_cap = if deep_failing { 1 } else { cap };
        prop_assert_eq!(from_deep, depth.min(deep_cap).min(limit - 1));
    }
}

#[test]
fn an_organization_with_100_ready_lanes_does_not_starve_one_with_a_single_lane() {
    let mut r = rng(3);
    let t0 = now();
    let (big, small) = (tenant("org_big"), tenant("org_small"));
    let mut queue = FairQueue::new();
    for i in 0..100 {
        let d = DestinationId::from_parts(t0, 1000 + i);
        queue.push(&big, d, EventId::generate(t0, &mut r), t0);
    }
    let lone = DestinationId::from_parts(t0, 1);
    let mut lone_events = Vec::new();
    for _ in 0..10 {
        let e = EventId::generate(t0, &mut r);
        queue.push(&small, lone, e, t0);
        lone_events.push(e);
    }
    lone_events.sort();
    // Ten claims of two, each finished before the next: every claim serves
    // both organizations, the single lane's deliveries in order.
    let mut big_lanes = BTreeSet::new();
    for (i, want) in lone_events.iter().enumerate() {
        let got = queue.claim(t0, &limits(2, 4), t0.saturating_add(secs(30)));
        assert_eq!(got.len(), 2, "claim {i}");
        assert_eq!(
            got.iter().filter(|k| k.0 == small).count(),
            1,
            "claim {i}: {got:?}"
        );
        assert!(got.contains(&(small.clone(), lone, *want)), "claim {i}");
        for (t, d, e) in &got {
            if *t == big {
                assert!(
                    big_lanes.insert(*d),
                    "a lane of the big organization served twice"
                );
            }
            assert!(queue.finish(t, *d, *e));
        }
    }
    assert_eq!(big_lanes.len(), 10);
    assert_eq!(queue.len(), 90);
}

#[test]
fn failing_lanes_keep_within_the_slow_lanes_limits() {
    let mut r = rng(4);
    let t0 = now();
    let org = tenant("org_a");
    let mut queue = FairQueue::new();
    let failing: Vec<DestinationId> = (0..5)
        .map(|i| DestinationId::from_parts(t0, 10 + i))
        .collect();
    let healthy = DestinationId::from_parts(t0, 1);
    for &d in &failing {
        queue.set_failing(&org, d, true);
        for _ in 0..10 {
            queue.push(&org, d, EventId::generate(t0, &mut r), t0);
        }
    }
    for _ in 0..20 {
        queue.push(&org, healthy, EventId::generate(t0, &mut r), t0);
    }
    let slow = ClaimLimits {
        limit: 10,
        per_destination: 10,
        failing_limit: 2,
        per_failing_destination: 1,
    };
    let until = t0.saturating_add(secs(30));
    let count = |got: &[FairKey], d: DestinationId| got.iter().filter(|k| k.1 == d).count();

    // Two failing deliveries, from two lanes; the healthy lane fills the rest.
    let first = queue.claim(t0, &slow, until);
    assert_eq!(first.len(), 10);
    assert_eq!(count(&first, healthy), 8);
    let first_failing: BTreeSet<_> = first
        .iter()
        .filter(|k| k.1 != healthy)
        .map(|k| k.1)
        .collect();
    assert_eq!(first_failing.len(), 2);

    // Held leases keep their failing lanes out; the other three take turns.
    let second = queue.claim(t0, &slow, until);
    assert_eq!(
        count(&second, healthy),
        2,
        "the healthy lane is at its cap of 10"
    );
    let second_failing: BTreeSet<_> = second
        .iter()
        .filter(|k| k.1 != healthy)
        .map(|k| k.1)
        .collect();
    assert_eq!(second_failing.len(), 2);
    assert!(first_failing.is_disjoint(&second_failing));
    let third = queue.claim(t0, &slow, until);
    assert_eq!(
        third.len(),
        1,
        "one failing lane left under its cap: {third:?}"
    );

    // No slow-lane budget: nothing from failing lanes at all.
    for k in first.iter().chain(&second).chain(&third) {
        assert!(queue.finish(&k.0, k.1, k.2));
    }
    let none = ClaimLimits {
        failing_limit: 0,
        ..slow
    };
    let got = queue.claim(t0, &none, until);
    assert!(got.iter().all(|k| k.1 == healthy));
    assert_eq!(got.len(), 10);

    // Healthy again: back in the ordinary ring, under the ordinary cap.
    queue.set_failing(&org, failing[0], false);
    assert!(!queue.is_failing(&org, failing[0]));
    // (The healthy lane's ten are still leased: it is at its cap.)
    let got = queue.claim(t0, &none, until);
    assert_eq!((got.len(), count(&got, failing[0])), (9, 9));
}

#[test]
fn a_lapsed_lease_is_claimable_again_and_frees_its_lanes_slot() {
    let mut r = rng(5);
    let t0 = now();
    let org = tenant("org_a");
    let d = DestinationId::from_parts(t0, 1);
    let mut queue = FairQueue::new();
    let first = EventId::generate(t0, &mut r);
    let second = EventId::generate(t0, &mut r);
    queue.push(&org, d, first, t0);
    queue.push(&org, d, second, t0.saturating_add(secs(1)));
    let one = limits(10, 1);
    let until = t0.saturating_add(secs(30));

    assert_eq!(
        queue.claim(t0.saturating_add(secs(1)), &one, until),
        [(org.clone(), d, first)]
    );
    // At its cap of one until the lease expires.
    assert_eq!(queue.claim(t0.saturating_add(secs(29)), &one, until), []);
    assert_eq!(queue.leased(), 1);
    // At the expiry the slot is free: the earliest available is `second`
    // (due at t0 + 1), before `first` (available again from its expiry).
    let later = t0.saturating_add(secs(30));
    let got = queue.claim(later, &one, later.saturating_add(secs(30)));
    assert_eq!(got, [(org.clone(), d, second)]);
    assert_eq!(
        queue.get(&org, d, first),
        Some(FairEntry {
            due: t0,
            leased_until: None
        })
    );
    // The old holder of `first`'s lease can still retry it: it was not
    // claimed again.
    assert!(queue.retry(&org, d, first, later.saturating_add(secs(5))));
    assert!(queue.finish(&org, d, second));
    assert_eq!(queue.claim(later, &one, later), []);
    let got = queue.claim(
        later.saturating_add(secs(5)),
        &one,
        later.saturating_add(secs(60)),
    );
    assert_eq!(got, [(org.clone(), d, first)]);
    assert!(queue.finish(&org, d, first));
    assert!(queue.is_empty());
    assert_eq!(queue.lanes(), 0);
}

#[test]
fn a_clock_that_goes_backwards_loses_nothing() {
    let mut r = rng(6);
    let t0 = now();
    let org = tenant("org_a");
    let d = DestinationId::from_parts(t0, 1);
    let mut queue = FairQueue::new();
    let events: Vec<EventId> = (0..4).map(|_| EventId::generate(t0, &mut r)).collect();
    for &e in &events {
        queue.push(&org, d, e, t0);
    }
    let early = Timestamp::from_unix_millis(t0.unix_millis() - 60_000).unwrap();
    let all = limits(10, 10);
    // Claimed at t0 with a lease that ends at t0 + 10 s.
    let got = queue.claim(t0, &limits(2, 10), t0.saturating_add(secs(10)));
    assert_eq!(got.len(), 2);
    // A minute earlier: nothing is due, and nothing is dropped either.
    assert_eq!(queue.claim(early, &all, early), []);
    assert_eq!((queue.len(), queue.leased()), (4, 2));
    // Back at t0: the two not leased.
    assert_eq!(queue.claim(t0, &all, t0.saturating_add(secs(10))).len(), 2);
    // Past the leases: all four again.
    let late = t0.saturating_add(secs(10));
    let mut again: Vec<EventId> = queue
        .claim(late, &all, late)
        .into_iter()
        .map(|k| k.2)
        .collect();
    again.sort();
    let mut want = events;
    want.sort();
    assert_eq!(again, want);
}

#[test]
fn release_keeps_the_due_time_and_retry_replaces_it() {
    let mut r = rng(7);
    let t0 = now();
    let org = tenant("org_a");
    let d = DestinationId::from_parts(t0, 1);
    let mut queue = FairQueue::new();
    let e = EventId::generate(t0, &mut r);
    queue.push(&org, d, e, t0);
    let until = t0.saturating_add(secs(30));
    assert_eq!(queue.claim(t0, &limits(1, 1), until).len(), 1);
    assert_eq!(
        queue.get(&org, d, e),
        Some(FairEntry {
            due: t0,
            leased_until: Some(until)
        })
    );
    assert!(queue.release(&org, d, e));
    assert_eq!(
        queue.get(&org, d, e),
        Some(FairEntry {
            due: t0,
            leased_until: None
        })
    );
    assert_eq!(
        queue.claim(t0, &limits(1, 1), until).len(),
        1,
        "offered again at once"
    );
    let next = t0.saturating_add(secs(60));
    assert!(queue.retry(&org, d, e, next));
    assert_eq!(queue.leased(), 0);
    assert_eq!(
        queue.claim(t0.saturating_add(secs(59)), &limits(1, 1), next),
        []
    );
    assert_eq!(queue.claim(next, &limits(1, 1), next).len(), 1);
}

#[test]
fn removing_a_lane_or_its_unleased_deliveries_frees_what_it_held() {
    let mut r = rng(8);
    let t0 = now();
    let org = tenant("org_a");
    let (d, other) = (
        DestinationId::from_parts(t0, 1),
        DestinationId::from_parts(t0, 2),
    );
    let mut queue = FairQueue::new();
    let events: Vec<EventId> = (0..5).map(|_| EventId::generate(t0, &mut r)).collect();
    for &e in &events {
        queue.push(&org, d, e, t0);
    }
    queue.push(&org, other, EventId::generate(t0, &mut r), t0);
    let until = t0.saturating_add(secs(30));
    let leased: Vec<FairKey> = queue
        .claim(t0, &limits(4, 2), until)
        .into_iter()
        .filter(|k| k.1 == d)
        .collect();
    assert_eq!(leased.len(), 2);
    // Disabled: the three not leased go; the two leased stay for their holders.
    let gone = queue.remove_unleased(&org, d);
    assert_eq!(gone.len(), 3);
    assert!(gone.iter().all(|e| !leased.iter().any(|k| k.2 == *e)));
    assert_eq!(queue.len(), 3);
    // Deleted: the lane goes with its leases and its failing mark; the
    // organization stays for its other lane.
    queue.set_failing(&org, d, true);
    let mut held: Vec<EventId> = leased.iter().map(|k| k.2).collect();
    held.sort();
    assert_eq!(queue.remove_lane(&org, d), held);
    assert!(!queue.is_failing(&org, d));
    assert_eq!((queue.len(), queue.leased(), queue.lanes()), (1, 1, 1));
    // The old holders' calls are no-ops now.
    assert!(!queue.finish(&org, d, held[0]));
    assert!(!queue.renew(&org, d, held[1], until));
}
