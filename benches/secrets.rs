//! Minting and verifying bearer secrets, each beside its floor: the raw
//! primitives the production path is built from, measured in the same run.
//!
//! - `mint/generate` vs `mint/floor_os`: `getrandom::fill` of 32 bytes and a
//!   base64url encode behind the `whsec_` prefix into a fixed buffer.
//! - `mint/from_rng_chacha20` vs `mint/floor_chacha20`: the same with a
//!   caller's userspace CSPRNG (`ChaCha20Rng`, seeded once).
//! - `verify/digest` vs `verify/floor_sha256_ct_eq`: SHA-256 of the 49-byte
//!   token and a fixed-size constant-time compare of the 32-byte digests.
//! - `verify/secret` vs `verify/floor_ct_eq_49`: a constant-time compare of
//!   the 49-byte token.

use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use prets_destinations::BearerSecret;
use prets_destinations::rand_core::{Rng as _, SeedableRng as _};
use prets_destinations::secret::SECRET_PREFIX;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// `whsec_` + 43 characters.
const SECRET_LEN: usize = 49;

/// The floor of a mint: 32 bytes in, `whsec_` + base64url out, no allocation.
fn encode_floor(bytes: &[u8; 32], out: &mut [u8; SECRET_LEN]) {
    let (prefix, encoded) = out.split_at_mut(SECRET_PREFIX.len());
    prefix.copy_from_slice(SECRET_PREFIX.as_bytes());
    let written = URL_SAFE_NO_PAD.encode_slice(bytes, encoded);
    black_box(written.is_ok());
}

fn seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    assert!(
        getrandom::fill(&mut seed).is_ok(),
        "the OS generator failed"
    );
    seed
}

fn mint(c: &mut Criterion) {
    let mut g = c.benchmark_group("mint");

    g.bench_function("generate", |b| {
        b.iter(|| black_box(BearerSecret::generate()));
    });
    g.bench_function("floor_os", |b| {
        b.iter(|| {
            let mut bytes = [0u8; 32];
            let filled = getrandom::fill(&mut bytes);
            black_box(filled.is_ok());
            let mut out = [0u8; SECRET_LEN];
            encode_floor(&bytes, &mut out);
            black_box(out)
        });
    });

    let mut rng = ChaCha20Rng::from_seed(seed());
    g.bench_function("from_rng_chacha20", |b| {
        b.iter(|| black_box(BearerSecret::from_rng(&mut rng)));
    });
    let mut rng = ChaCha20Rng::from_seed(seed());
    g.bench_function("floor_chacha20", |b| {
        b.iter(|| {
            let mut bytes = [0u8; 32];
            rng.fill_bytes(&mut bytes);
            let mut out = [0u8; SECRET_LEN];
            encode_floor(&bytes, &mut out);
            black_box(out)
        });
    });

    g.finish();
}

fn verify(c: &mut Criterion) {
    let mut g = c.benchmark_group("verify");

    let secret = BearerSecret::from_rng(&mut ChaCha20Rng::from_seed(seed()));
    let digest = secret.digest();
    // A wrong secret of the right length: the full work is always done, and
    // this is the common case on an endpoint under attack.
    let other = BearerSecret::from_rng(&mut ChaCha20Rng::from_seed(seed()));
    let header = other.authorization_header();
    let header: &str = &header;
    let token: [u8; SECRET_LEN] = other
        .expose_secret()
        .as_bytes()
        .try_into()
        .unwrap_or([0; SECRET_LEN]);
    let mine: [u8; SECRET_LEN] = secret
        .expose_secret()
        .as_bytes()
        .try_into()
        .unwrap_or([0; SECRET_LEN]);
    let stored: [u8; 32] = *digest.as_bytes();

    g.bench_function("digest", |b| {
        b.iter(|| black_box(&digest).verify_authorization(black_box(header)));
    });
    g.bench_function("floor_sha256_ct_eq", |b| {
        b.iter(|| {
            let presented: [u8; 32] = Sha256::digest(black_box(&token)).into();
            bool::from(presented.ct_eq(black_box(&stored)))
        });
    });
    g.bench_function("secret", |b| {
        b.iter(|| black_box(&secret).verify_authorization(black_box(header)));
    });
    g.bench_function("floor_ct_eq_49", |b| {
        b.iter(|| bool::from(black_box(&token).ct_eq(black_box(&mine))));
    });

    g.finish();
}

fn config() -> Criterion {
    // Short by default so `cargo bench` stays quick; command-line flags
    // (`--measurement-time`, `--warm-up-time`) override these.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = mint, verify
}
criterion_main!(benches);
