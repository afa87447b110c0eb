//! Planning a delivery attempt, each step beside its floor, in one run.
//!
//! - `plan/attempt_{1k,256k}`: `plan_attempt` (open the sealed secret, build
//!   the headers and the body) for a 1 KiB and a 256 KiB payload.
//! - `plan/floor_open`: `Keyring::authorization_header` alone, the
//!   XChaCha20-Poly1305 open and SHA-256 digest check every attempt needs.
//! - `body/delivery_body_{1k,256k}` vs `body/floor_sha256_{1k,256k}`: writing
//!   the body beside one SHA-256 pass over the same number of bytes (any
//!   signing scheme would pay at least that).
//! - `decide/classify_next_step` and `decide/pin_addresses`: the per-answer
//!   decisions, for scale.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use prets_destinations::delivery::{
    Answer, DisablePolicy, Event, RetrySchedule, classify, next_step, pin_addresses, plan_attempt,
};
use prets_destinations::rand_core::SeedableRng as _;
use prets_destinations::{
    CreateDestinationRequest, DestinationUrl, HostPolicy, KeyId, Keyring, SealingKey, TenantId,
    Timestamp,
};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest as _, Sha256};

fn payload(len: usize) -> String {
    // A JSON string of `len` bytes.
    format!("\"{}\"", "a".repeat(len.saturating_sub(2)))
}

fn plan(c: &mut Criterion) {
    let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let org: TenantId = "org_bench".parse().unwrap_or_else(|_| unreachable!());
    let ring = Keyring::new(SealingKey::new(KeyId::new(1), &[7; 32]), [])
        .unwrap_or_else(|_| unreachable!());
    let Ok(valid) =
        CreateDestinationRequest::new("Bench", "https://example.com/prets/events").validate()
    else {
        unreachable!()
    };
    let record = valid.plan(&org, now, &mut rng, ring.current()).record;
    let small = Event::new("invoice.paid", payload(1024), now, &mut rng);
    let large = Event::new("invoice.paid", payload(256 * 1024), now, &mut rng);
    let (Ok(small), Ok(large)) = (small, large) else {
        unreachable!()
    };

    let mut g = c.benchmark_group("plan");
    g.bench_function("attempt_1k", |b| {
        b.iter(|| black_box(plan_attempt(&org, &record, &ring, black_box(&small), 1, now).is_ok()));
    });
    g.bench_function("attempt_256k", |b| {
        b.iter(|| black_box(plan_attempt(&org, &record, &ring, black_box(&large), 1, now).is_ok()));
    });
    g.bench_function("floor_open", |b| {
        b.iter(|| black_box(ring.authorization_header(&org, black_box(&record)).is_ok()));
    });
    g.finish();

    let mut g = c.benchmark_group("body");
    for (name, event) in [("1k", &small), ("256k", &large)] {
        let bytes = event.delivery_body();
        g.bench_function(format!("delivery_body_{name}"), |b| {
            b.iter(|| black_box(black_box(event).delivery_body()));
        });
        g.bench_function(format!("floor_sha256_{name}"), |b| {
            b.iter(|| black_box(Sha256::digest(black_box(&bytes))));
        });
    }
    g.finish();

    let mut g = c.benchmark_group("decide");
    let schedule = RetrySchedule::default();
    let disable = DisablePolicy::default();
    g.bench_function("classify_next_step", |b| {
        b.iter(|| {
            let answer = Answer::Response {
                status: black_box(503),
                retry_after: Some(b"Tue, 14 Nov 2023 22:14:20 GMT"),
            };
            let c = classify(answer, now);
            black_box(next_step(&c, 3, &schedule, None, &disable, now, &mut rng))
        });
    });
    let url: Result<DestinationUrl, _> = "https://hooks.example.com/in".parse();
    let Ok(url) = url else { unreachable!() };
    let answers: Vec<IpAddr> = ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let policy = HostPolicy::default().deny("168.63.129.16/32".parse().unwrap_or_default());
    g.bench_function("pin_addresses", |b| {
        b.iter(|| black_box(pin_addresses(black_box(&url), black_box(&answers), &policy).is_ok()));
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = plan
}
criterion_main!(benches);
