//! `create` through the in-memory repo, beside the parts it is made of
//! (validation, minting the id and secret, sealing, digest), in one run so
//! that the overhead of the orchestration and the store can be read off as
//! a ratio.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a bench setup failure should stop the bench"
)]

use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use chacha20poly1305::aead::AeadInOut as _;
use chacha20poly1305::{KeyInit as _, XChaCha20Poly1305};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use prets_destinations::{
    BearerSecret, CreateDestinationRequest, CreateOutcome, DestinationId, KeyId, MemoryRepo,
    SealingKey, TenantId, Timestamp, create,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

/// `MemoryRepo` never waits, so one poll finishes `create`.
fn run_once<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let key = SealingKey::from_rng(KeyId::new(1), &mut rng);
    let tenant: TenantId = "org_bench".parse().unwrap();
    let now = Timestamp::from_unix_millis(1_764_000_000_123).unwrap();
    let request = CreateDestinationRequest::new(
        "Production",
        "https://example.com/prets/events?tenant=acme&v=2",
    );

    let mut g = c.benchmark_group("create");
    g.bench_function("create_memory_repo", |b| {
        b.iter_batched(
            || (MemoryRepo::new(), request.clone()),
            |(repo, req)| {
                let out = run_once(create(&repo, &tenant, req, now, &mut rng, &key));
                assert!(matches!(out, Ok(CreateOutcome::Created(_))));
                // Dropped outside the timed part.
                (repo, out)
            },
            BatchSize::SmallInput,
        );
    });
    // The parts chained in one iteration, as `create` runs them, without
    // the response, the record's clones or the store.
    g.bench_function("parts_in_sequence", |b| {
        b.iter_batched(
            || request.clone(),
            |req| {
                let new = req.validate().unwrap();
                let id = DestinationId::generate(now, &mut rng);
                let secret = BearerSecret::from_rng(&mut rng);
                let sealed = key.seal(&tenant, id, &secret, &mut rng);
                (new, sealed, secret.digest())
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function("plan", |b| {
        let new = request.clone().validate().unwrap();
        b.iter(|| new.plan(&tenant, now, &mut rng, &key));
    });
    g.bench_function("part_validate", |b| {
        b.iter_batched(
            || request.clone(),
            |req| req.validate(),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("part_mint_id_and_secret", |b| {
        b.iter(|| {
            (
                DestinationId::generate(now, &mut rng),
                BearerSecret::from_rng(&mut rng),
            )
        });
    });
    let secret = BearerSecret::from_rng(&mut rng);
    let id = DestinationId::generate(now, &mut rng);
    g.bench_function("part_seal", |b| {
        b.iter(|| key.seal(&tenant, black_box(id), black_box(&secret), &mut rng));
    });
    // The floor under `part_seal`: the AEAD alone on a secret-sized message.
    let cipher = XChaCha20Poly1305::new(&[7u8; 32].into());
    g.bench_function("floor_xchacha20poly1305_49_bytes", |b| {
        b.iter(|| {
            let mut msg = [0x61u8; 49];
            let tag = cipher
                .encrypt_inout_detached(&[9u8; 24].into(), b"aad", msg.as_mut_slice().into())
                .unwrap();
            (msg, tag)
        });
    });
    g.bench_function("part_digest", |b| {
        b.iter(|| black_box(&secret).digest());
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
