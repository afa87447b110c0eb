//! A model test for `MemoryRepo`'s outbox: random publish, claim, complete,
//! lease-expiry and delete sequences against a map of pending deliveries. No
//! delivery is lost, duplicated, or handed out while under a live lease.

use std::collections::BTreeMap;
use std::time::Duration;

use prets_destinations::delivery::{
    Claimed, Classification, CompleteOutcome, DeliveryKey, DisablePolicy, EnqueueOutcome,
    LeaseRequest, LeaseToken, NextStep, Outbox, RetrySchedule, Target,
};
use prets_destinations::ops::plan_finish;
use prets_destinations::{CreateDestinationRequest, DestinationRepo, MemoryRepo, create};
use prets_destinations::{DestinationId, Timestamp};
use proptest::prelude::*;

use crate::support::{block_on, keyring, now, regressions_beside_module, rng, tenant};

#[derive(Clone, Debug)]
enum Op {
    Publish,
    Claim(usize),
    Complete { pick: usize, delivered: bool },
    Advance(u64),
    Delete(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Publish),
        3 => (1usize..4).prop_map(Op::Claim),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(pick, delivered)| Op::Complete { pick, delivered }),
        2 => (1u64..90).prop_map(Op::Advance),
        1 => (0usize..3).prop_map(Op::Delete),
    ]
}

proptest! {
    #![proptest_config(regressions_beside_module(ProptestConfig::with_cases(64)))]
    #[test]
    fn outbox_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let repo = MemoryRepo::new();
        let t = tenant("org_model");
        let mut r = rng(11);
        let keys = keyring(1, &mut r);
        let mut dests: Vec<Option<DestinationId>> = Vec::new();
        for i in 0..3 {
            let req = CreateDestinationRequest::new(format!("D{i}"), "https://example.com/h");
            let c = block_on(create(&repo, &t, req, now(), &mut r, keys.current())).unwrap().into_result().unwrap();
            dests.push(Some(c.destination_id()));
        }
        let mut clock = now();
        // Pending deliveries: when due, and the lease's expiry if one is out.
        let mut model: BTreeMap<DeliveryKey, (Timestamp, Option<Timestamp>)> = BTreeMap::new();
        let mut held: Vec<Claimed> = Vec::new();
        let lease_for = Duration::from_secs(30);
        for op in ops {
            match op {
                Op::Publish => {
                    let event = prets_destinations::delivery::Event::new("m.e", "1".into(), clock, &mut r).unwrap();
                    let out = block_on(repo.enqueue(&t, &event, Target::AllEnabled)).unwrap();
                    let live: Vec<_> = dests.iter().flatten().copied().collect();
                    prop_assert_eq!(out, EnqueueOutcome::Enqueued { deliveries: live.len() });
                    for d in live {
                        model.insert(DeliveryKey { tenant: t.clone(), event_id: event.event_id, destination_id: d }, (event.created_at, None));
                    }
                }
                Op::Claim(limit) => {
                    let lease = LeaseRequest { token: LeaseToken::generate(&mut r), duration: lease_for };
                    let got = block_on(repo.claim(clock, limit.into(), lease)).unwrap();
                    let offerable = model.values().filter(|(due, l)| *due <= clock && l.is_none_or(|e| e <= clock)).count();
                    prop_assert_eq!(got.len(), offerable.min(limit));
                    for c in got {
                        let slot = model.get_mut(&c.lease.delivery);
                        prop_assert!(slot.is_some(), "claimed a delivery that is not pending");
                        let slot = slot.unwrap();
                        prop_assert!(slot.0 <= clock, "claimed before due");
                        prop_assert!(slot.1.is_none_or(|e| e <= clock), "claimed under a live lease");
                        slot.1 = Some(c.lease.expires_at);
                        held.retain(|h| h.lease.delivery != c.lease.delivery);
                        held.push(c);
                    }
                }
                Op::Complete { pick, delivered } => {
                    if held.is_empty() { continue; }
                    let c = held.remove(pick % held.len());
                    let class = if delivered { Classification::Delivered { status: 204 } } else {
                        prets_destinations::delivery::classify(prets_destinations::delivery::Answer::Response { status: 500, retry_after: None }, clock)
                    };
                    let report = plan_finish(&c, &class, clock, Duration::from_millis(3), &RetrySchedule::default(), DisablePolicy::default(), &mut r);
                    let next = report.next;
                    let out = block_on(repo.complete(&c.lease, report)).unwrap();
                    // Held = still pending and not claimed since by another lease.
                    let still_held = model.get(&c.lease.delivery).is_some_and(|s| s.1 == Some(c.lease.expires_at));
                    if still_held {
                        let retry_at = match next { NextStep::RetryAt(at) => Some(at), _ => None };
                        prop_assert_eq!(out, CompleteOutcome::Recorded { disabled: None, retry_at });
                        match next {
                            NextStep::RetryAt(at) => { model.insert(c.lease.delivery.clone(), (at, None)); }
                            _ => { model.remove(&c.lease.delivery); }
                        }
                    } else {
                        prop_assert_eq!(out, CompleteOutcome::LeaseLost);
                    }
                }
                Op::Advance(secs) => clock = clock.saturating_add(Duration::from_secs(secs)),
                Op::Delete(i) => {
                    if let Some(id) = dests[i].take() {
                        let _ = block_on(repo.remove(&t, id)).unwrap();
                        model.retain(|k, _| k.destination_id != id);
                    }
                }
            }
        }
        // Far in the future every pending delivery is offered exactly once.
        let lease = LeaseRequest { token: LeaseToken::generate(&mut r), duration: lease_for };
        let far = clock.saturating_add(Duration::from_secs(400 * 86_400));
        let rest = block_on(repo.claim(far, usize::MAX.into(), lease)).unwrap();
        let got: Vec<_> = rest.iter().map(|c| c.lease.delivery.clone()).collect();
        let want: Vec<_> = model.keys().cloned().collect();
        let mut sorted = got.clone();
        sorted.sort();
        prop_assert_eq!(sorted, want);
    }
}
