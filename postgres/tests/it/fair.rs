//! Fair claims on PostgreSQL: a quiet organization beside one with 10,000
//! due deliveries (on one destination or spread over many), per-destination
//! caps counted over live leases across claims, the failing budget, and
//! earliest due first within a destination.

use std::collections::BTreeSet;
use std::time::Duration;

use prets_destinations::delivery::{
    ClaimLimits, Claimed, CompleteOutcome, EnqueueOutcome, Event, LeaseRequest, LeaseToken,
    NextStep, Outbox, Target,
};
use prets_destinations::{DestinationId, DestinationRecord, TenantId, Timestamp};
use prets_destinations_postgres::PgRepo;
use prets_destinations_postgres::test_support::TestDb;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::outbox::{at, destinations, report, t0};

fn lease(rng: &mut ChaCha20Rng) -> LeaseRequest {
    LeaseRequest {
        token: LeaseToken::generate(rng),
        duration: Duration::from_secs(60),
    }
}

/// `n` events of `tenant`, one delivery each, spread round-robin over
/// `dests`, due from `t0()` one millisecond apart: written in two
/// statements (10,000 enqueue calls would only slow the test), then the
/// table analyzed.
pub(crate) async fn backlog(db: &TestDb, tenant: &TenantId, dests: &[DestinationRecord], n: i64) {
    insert_backlog(db, tenant, dests, n).await;
    let client = db.client().await;
    client.batch_execute("ANALYZE deliveries").await.unwrap();
}

/// [`backlog`] without the `ANALYZE`: the planner's statistics stay those
/// of the table before.
async fn insert_backlog(db: &TestDb, tenant: &TenantId, dests: &[DestinationRecord], n: i64) {
    let client = db.client().await;
    let ids: Vec<String> = dests.iter().map(|d| d.destination_id.to_string()).collect();
    let t0 = i64::try_from(t0().unix_millis()).unwrap();
    client
        .execute(
            "INSERT INTO events (tenant_id, event_id, event_type, created_at_ms, payload)
             SELECT $1, 'evt_01HF2V3J6T0Q8X5Y7Z9A' || lpad(i::TEXT, 6, '0'), 'bulk.event',
                 $2 + i, '{}'
             FROM generate_series(0::BIGINT, $3::BIGINT - 1) AS i",
            &[&tenant.as_str(), &t0, &n],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO deliveries (tenant_id, event_id, destination_id, attempt, due_at_ms)
             SELECT $1, 'evt_01HF2V3J6T0Q8X5Y7Z9A' || lpad(i::TEXT, 6, '0'),
                 ($4::TEXT[])[1 + i % cardinality($4::TEXT[])], 1, $2 + i
             FROM generate_series(0::BIGINT, $3::BIGINT - 1) AS i",
            &[&tenant.as_str(), &t0, &n, &ids],
        )
        .await
        .unwrap();
}

/// One event of `tenant`, created (so due) at `created`.
async fn publish(
    repo: &PgRepo,
    tenant: &TenantId,
    created: Timestamp,
    rng: &mut ChaCha20Rng,
) -> Event {
    let e = Event::new("quiet.event", "{}".to_owned(), created, rng).unwrap();
    assert!(matches!(
        repo.enqueue(tenant, &e, Target::AllEnabled).await.unwrap(),
        EnqueueOutcome::Enqueued { deliveries: 1.. }
    ));
    e
}

fn of(claimed: &[Claimed], tenant: &TenantId) -> usize {
    claimed
        .iter()
        .filter(|c| c.lease.delivery.tenant == *tenant)
        .count()
}

fn caps(limit: usize, per_destination: usize) -> ClaimLimits {
    ClaimLimits {
        limit,
        per_destination,
        failing_limit: limit,
        per_failing_destination: per_destination,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_organization_is_served_beside_ten_thousand_due_deliveries() {
    for spread in [1, 100] {
        let db = TestDb::new();
        let repo = db.repo().await;
        let mut rng = ChaCha20Rng::seed_from_u64(90 + spread);
        // "org_a…" sorts before "org_z…": the hostile one comes first.
        let hostile: TenantId = "org_a_hostile".parse().unwrap();
        let quiet: TenantId = "org_z_quiet".parse().unwrap();
        let many = destinations(&repo, &hostile, usize::try_from(spread).unwrap(), &mut rng).await;
        backlog(&db, &hostile, &many, 10_000).await;
        destinations(&repo, &quiet, 1, &mut rng).await;
        // Due after every one of the backlog: earliest-due-first would
        // serve it last.
        let e = publish(&repo, &quiet, at(20), &mut rng).await;
        let claimed = repo
            .claim(at(100), 2.into(), lease(&mut rng))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 2, "spread {spread}");
        assert_eq!(of(&claimed, &quiet), 1, "spread {spread}: {claimed:?}");
        assert!(claimed.iter().any(|c| c.event == e));
        // The hostile one's is the earliest due of its destination (event
        // i went to destination i % spread).
        let first = claimed.iter().find(|c| c.lease.delivery.tenant == hostile);
        let id = first.unwrap().event.event_id.to_string();
        let i: u64 = id
            .trim_start_matches("evt_01HF2V3J6T0Q8X5Y7Z9A")
            .parse()
            .unwrap();
        assert!(i < spread, "{id}");
        // With caps: at most 4 per destination, counted over the leases of
        // earlier claims too.
        let claimed = repo
            .claim(at(100), caps(64, 4), lease(&mut rng))
            .await
            .unwrap();
        let want = if spread == 1 { 3 } else { 64 };
        assert_eq!(of(&claimed, &hostile), want, "spread {spread}");
        if spread == 1 {
            assert!(
                repo.claim(at(100), caps(64, 4), lease(&mut rng))
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
    }
}

/// Two organizations with backlogs share each claim; the one served
/// first alternates, so neither takes the odd slot every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organizations_take_turns_from_a_rotating_start() {
    let db = TestDb::new();
    let repo = db.repo().await;
    let mut rng = ChaCha20Rng::seed_from_u64(94);
    let a: TenantId = "org_a".parse().unwrap();
    let b: TenantId = "org_b".parse().unwrap();
    destinations(&repo, &a, 2, &mut rng).await;
    destinations(&repo, &b, 1, &mut rng).await;
    for n in 0..20 {
        publish(&repo, &a, at(n), &mut rng).await;
        publish(&repo, &b, at(n), &mut rng).await;
    }
    let mut firsts = Vec::new();
    let mut a_lanes = BTreeSet::new();
    for _ in 0..4 {
        let claimed = repo
            .claim(at(100), 3.into(), lease(&mut rng))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 3);
        assert!(
            of(&claimed, &a) >= 1 && of(&claimed, &b) >= 1,
            "{claimed:?}"
        );
        firsts.push(claimed[0].lease.delivery.tenant.clone());
        // Within A, its two destinations take turns.
        let lanes: BTreeSet<DestinationId> = claimed
            .iter()
            .filter(|c| c.lease.delivery.tenant == a)
            .map(|c| c.lease.delivery.destination_id)
            .collect();
        a_lanes.extend(lanes);
    }
    assert_eq!(firsts, [a.clone(), b.clone(), a.clone(), b.clone()]);
    assert_eq!(a_lanes.len(), 2);
}

/// A failing destination's deliveries come within the failing budget and
/// its own cap, marked failing; the healthy one's are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_destinations_stay_within_their_budget() {
    let db = TestDb::new();
    let repo = db.repo().await;
    let mut rng = ChaCha20Rng::seed_from_u64(95);
    let tenant: TenantId = "org_failing".parse().unwrap();
    let dests = destinations(&repo, &tenant, 2, &mut rng).await;
    let (sick, healthy) = (dests[0].destination_id, dests[1].destination_id);
    for n in 0..10 {
        publish(&repo, &tenant, at(n), &mut rng).await;
    }
    // One failed attempt on `sick` gives it a streak.
    let first = repo
        .claim(at(100), caps(2, 1), lease(&mut rng))
        .await
        .unwrap();
    assert!(first.iter().all(|c| !c.failing));
    for c in &first {
        let next = if c.lease.delivery.destination_id == sick {
            NextStep::RetryAt(at(101))
        } else {
            NextStep::Delivered
        };
        assert_eq!(
            repo.complete(&c.lease, report(c, at(100), next, &mut rng))
                .await
                .unwrap(),
            CompleteOutcome::Recorded {
                disabled: None,
                retry_at: match next {
                    NextStep::RetryAt(t) => Some(t),
                    _ => None,
                }
            }
        );
    }
    let limits = ClaimLimits {
        limit: 10,
        per_destination: 4,
        failing_limit: 1,
        per_failing_destination: 2,
    };
    let claimed = repo.claim(at(200), limits, lease(&mut rng)).await.unwrap();
    let on = |d: DestinationId| {
        claimed
            .iter()
            .filter(|c| c.lease.delivery.destination_id == d)
            .collect::<Vec<_>>()
    };
    assert_eq!(on(sick).len(), 1, "{claimed:?}");
    assert!(on(sick).iter().all(|c| c.failing));
    assert_eq!(on(healthy).len(), 4);
    assert!(on(healthy).iter().all(|c| !c.failing));
    // Within a destination, earliest due first.
    let due: Vec<Timestamp> = on(healthy).iter().map(|c| c.event.created_at).collect();
    let mut sorted = due.clone();
    sorted.sort();
    assert_eq!(due, sorted);
    // The failing one has a free slot (cap 2, one live lease) and due
    // deliveries, the healthy one is at its cap: a budget of 0 gives
    // nothing.
    let none = repo
        .claim(
            at(200),
            ClaimLimits {
                failing_limit: 0,
                ..limits
            },
            lease(&mut rng),
        )
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
}

/// Claims racing on one destination, from two nodes, never pass its cap
/// together: one claim at a time takes a lane, and counts the leases of
/// those before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_claims_on_two_nodes_keep_a_destinations_cap() {
    let db = TestDb::new();
    let a = std::sync::Arc::new(db.repo().await);
    let b = std::sync::Arc::new(db.repo().await);
    let mut rng = ChaCha20Rng::seed_from_u64(96);
    let tenant: TenantId = "org_racing".parse().unwrap();
    let dests = destinations(&a, &tenant, 1, &mut rng).await;
    backlog(&db, &tenant, &dests, 1000).await;
    for round in 0..5u64 {
        // Each round at a later `now`, past the previous round's leases.
        let now = at(1000 * (round + 1));
        let tasks: Vec<_> = (0..16)
            .map(|k| {
                let node = std::sync::Arc::clone(if k % 2 == 0 { &a } else { &b });
                let request = lease(&mut rng);
                tokio::spawn(async move { node.claim(now, caps(64, 4), request).await.unwrap() })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap().len();
        }
        assert_eq!(total, 4, "round {round}");
    }
}

/// `n` deliveries queued to `dests` (spread evenly), then a drain's lane
/// heads: 8 of each destination leased at `at(100)`, 4 of those finished.
async fn drain_heads(
    db: &TestDb,
    repo: &PgRepo,
    tenant: &TenantId,
    dests: &[DestinationRecord],
    n: i64,
    rng: &mut ChaCha20Rng,
) {
    insert_backlog(db, tenant, dests, n).await;
    let first = repo.claim(at(100), caps(80, 8), lease(rng)).await.unwrap();
    assert_eq!(first.len(), 80);
    for c in first.iter().step_by(2) {
        let done = repo
            .complete(&c.lease, report(c, at(100), NextStep::Delivered, rng))
            .await
            .unwrap();
        assert!(matches!(done, CompleteOutcome::Recorded { .. }));
    }
}

/// A claim reads `deliveries` through its indexes only, with leased and
/// finished deliveries ahead of each destination's first available one (as
/// in a drain): a scan of the table would cost more the deeper the queue.
/// Counted by the database for the claim's own transaction, in a session
/// whose claims began on a queue of ten deliveries (its statements planned
/// then, as a node's are soon after it starts) and on two calls after the
/// backlog arrived, with no statistics gathered since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_read_deliveries_through_their_indexes_only() {
    let db = TestDb::new();
    let repo = db.repo().await;
    let mut rng = ChaCha20Rng::seed_from_u64(97);
    let tenant: TenantId = "org_indexed".parse().unwrap();
    let dests = destinations(&repo, &tenant, 10, &mut rng).await;
    let client = db.client().await;
    let now = i64::try_from(at(100).unix_millis()).unwrap();
    let expires = now + 60_000;
    let claim = "SELECT count(*) FROM prets_claim($1, 64, 16, 64, 16, '\\x01', $2, '', 256)
                 WHERE o_seq > 0";
    publish(&repo, &tenant, at(0), &mut rng).await;
    for _ in 0..8 {
        client.batch_execute("BEGIN").await.unwrap();
        let taken: i64 = client
            .query_one(claim, &[&now, &expires])
            .await
            .unwrap()
            .get(0);
        assert_eq!(taken, 10);
        client.batch_execute("ROLLBACK").await.unwrap();
    }
    drain_heads(&db, &repo, &tenant, &dests, 3000, &mut rng).await;
    for round in 0..2 {
        client.batch_execute("BEGIN").await.unwrap();
        let taken: i64 = client
            .query_one(claim, &[&now, &expires])
            .await
            .unwrap()
            .get(0);
        // Room for 12 on each of the 10 (16, less the 4 still leased).
        assert_eq!(taken, 64, "round {round}");
        let row = client
            .query_one(
                "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables
                 WHERE relname = 'deliveries'",
                &[],
            )
            .await
            .unwrap();
        let (seq, idx): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(seq, 0, "round {round}: {idx} index scans");
        assert!(idx > 0, "round {round}");
        client.batch_execute("ROLLBACK").await.unwrap();
    }
}

/// A claim visits each lane with room in three reads of `deliveries`:
/// finding it, counting its live leases and taking its candidates (the
/// earliest available; none is a lane with nothing due). Each of those
/// walks the head of the lane, past its leased deliveries and finished ones
/// not yet vacuumed, so a fourth read per lane (whether it has one due)
/// costs as much again in a drain. Counted by the database for the claim's
/// own transaction: ten lanes with room, each with four of its deliveries
/// leased and four finished ahead of the rest. The claim commits with the
/// WAL's flush: until then, no reader may mark the index entries of the
/// rows it ended as dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_reads_each_lane_three_times_and_commits_flushed() {
    let db = TestDb::new();
    let repo = db.repo().await;
    let mut rng = ChaCha20Rng::seed_from_u64(98);
    let tenant: TenantId = "org_reads".parse().unwrap();
    let dests = destinations(&repo, &tenant, 10, &mut rng).await;
    drain_heads(&db, &repo, &tenant, &dests, 1000, &mut rng).await;
    let client = db.client().await;
    let now = i64::try_from(at(100).unix_millis()).unwrap();
    let expires = now + 60_000;
    client.batch_execute("BEGIN").await.unwrap();
    let taken: i64 = client
        .query_one(
            "SELECT count(*) FROM prets_claim($1, 64, 16, 64, 16, '\\x01', $2, '', 256)
             WHERE o_seq > 0",
            &[&now, &expires],
        )
        .await
        .unwrap()
        .get(0);
    // Room for 12 on each of the 10 (16, less the 4 still leased).
    assert_eq!(taken, 64);
    let idx: i64 = client
        .query_one(
            "SELECT idx_scan FROM pg_stat_xact_user_tables WHERE relname = 'deliveries'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // And it commits with the WAL's flush: the function leaves its
    // transaction's `synchronous_commit` as the connection has it (`on`).
    let synchronous: String = client
        .query_one("SHOW synchronous_commit", &[])
        .await
        .unwrap()
        .get(0);
    client.batch_execute("ROLLBACK").await.unwrap();
    // Three per lane, and the tenant's search and its lanes' end: two more
    // each (the first found, and none after it).
    assert!(idx <= 3 * 10 + 2 + 2, "{idx} index scans for 10 lanes");
    assert_eq!(synchronous, "on");
}
