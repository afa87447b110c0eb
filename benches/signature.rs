//! The `webhook-signature` header beside its floor, HMAC-SHA256 alone over
//! the same signed content, measured in the same run.
//!
//! - `sign_1k/webhook_signature` vs `sign_1k/floor_hmac_sha256`: one secret,
//!   a 1 KiB body. The floor is handed `{id}.{timestamp}.{body}` already
//!   concatenated and keys the MAC from the raw 32 bytes; the header adds
//!   feeding the id and timestamp, the base64 of the tag and the `v1,`
//!   string. Target: at most 1.2x.
//! - `sign_1k/webhook_signature_grace` vs `sign_1k/floor_hmac_sha256_x2`:
//!   two secrets (a rotation's grace period), two MACs.

use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit as _, Mac as _};
use prets_destinations::Timestamp;
use prets_destinations::rand_core::SeedableRng as _;
use prets_destinations::secret::{SignedMessage, SigningSecret, webhook_signature};
use rand_chacha::ChaCha20Rng;
use sha2::Sha256;

const WEBHOOK_ID: &str = "evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFG";
const SECONDS: u64 = 1_764_000_000;

/// A 1 KiB JSON body.
fn body() -> Vec<u8> {
    let mut body = br#"{"type":"invoice.paid","data":{"note":""#.to_vec();
    body.resize(1024 - 3, b'x');
    body.extend_from_slice(br#""}}"#);
    assert_eq!(body.len(), 1024);
    body
}

/// The 32 key bytes behind a secret's `whsec_` text.
fn key(secret: &SigningSecret) -> [u8; 32] {
    let text = secret.expose_secret().trim_start_matches("whsec_");
    let mut out = [0u8; 35];
    let len = STANDARD.decode_slice(text, &mut out).unwrap_or(0);
    assert_eq!(len, 32);
    let mut key = [0u8; 32];
    for (k, o) in key.iter_mut().zip(out) {
        *k = o;
    }
    key
}

/// HMAC-SHA256 of `content` under `key`: the floor.
fn floor(key: &[u8; 32], content: &[u8]) -> [u8; 32] {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(content);
    mac.finalize().into_bytes().into()
}

fn sign(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let new = SigningSecret::from_rng(&mut rng);
    let old = SigningSecret::from_rng(&mut rng);
    let (new_key, old_key) = (key(&new), key(&old));
    let body = body();
    let at = Timestamp::from_unix_seconds(SECONDS).unwrap_or(Timestamp::UNIX_EPOCH);
    let message = SignedMessage {
        webhook_id: WEBHOOK_ID,
        timestamp: at,
        body: &body,
    };
    let mut content = format!("{WEBHOOK_ID}.{SECONDS}.").into_bytes();
    content.extend_from_slice(&body);

    let mut g = c.benchmark_group("sign_1k");
    g.bench_function("webhook_signature", |b| {
        b.iter(|| webhook_signature(black_box(&message), black_box(&new), []));
    });
    g.bench_function("floor_hmac_sha256", |b| {
        b.iter(|| floor(black_box(&new_key), black_box(&content)));
    });
    g.bench_function("webhook_signature_grace", |b| {
        b.iter(|| webhook_signature(black_box(&message), black_box(&new), [black_box(&old)]));
    });
    g.bench_function("floor_hmac_sha256_x2", |b| {
        b.iter(|| {
            (
                floor(black_box(&new_key), black_box(&content)),
                floor(black_box(&old_key), black_box(&content)),
            )
        });
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
    targets = sign
}
criterion_main!(benches);
