//! Constant time, measured: a dudect-style fixed-vs-random test of
//! `Authorization` header verification, with a naive early-exit control that
//! the same harness must flag.
//!
//! For each target, every sample times `K` verifications of one header
//! (amplification). Each sample's class is drawn at random, so drift and noise
//! from the rest of the machine fall on both classes alike:
//!
//! Targets: `SecretDigest`, `BearerSecret` and `SecretSet` (the expected
//! secret kept as an unexpired previous one) verification, and two controls.
//!
//! - fixed: one header, the same in every sample of the class, presenting a
//!   secret that equals the expected one (`equal`) or matches it in its first
//!   40 of 49 bytes and differs at byte 40 (`prefix40`);
//! - random: a fresh random secret of the same length per sample.
//!
//! A Welch t-test compares the two timing distributions, on all samples and on
//! samples cropped below 100 pooled percentiles (the dudect method; cropping
//! removes the long tail that preemption adds). The reported `|t|` is the
//! largest over those tests. Our verifiers pass when `|t|` stays below the
//! threshold in every round; the run is only meaningful if the naive `==`
//! control exceeds it in at least one round.
//!
//! `cargo bench --bench ct_verify -- [--rounds R] [--samples N]
//! [--threshold T] [--seed S]`; exits non-zero when the gate fails.

#![allow(
    clippy::print_stdout,
    reason = "a command-line report; the t values are its output"
)]

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prets_destinations::rand_core::{Rng as _, SeedableRng as _};
use prets_destinations::secret::{SECRET_PREFIX, SecretSet};
use prets_destinations::{BearerSecret, SecretDigest, Timestamp};
use rand_chacha::ChaCha20Rng;

const SCHEME: &[u8] = b"Bearer ";
const SECRET_LEN: usize = 49;
const HEADER_LEN: usize = SCHEME.len() + SECRET_LEN;
/// Bytes of the secret the `prefix40` fixed class has right.
const MATCHING: usize = 40;
/// Samples generated and then timed together; small enough to stay in cache.
const BATCH: usize = 8192;

type Header = [u8; HEADER_LEN];

/// What the receiver holds.
struct Subject {
    secret: BearerSecret,
    digest: SecretDigest,
    /// A rotated destination: another current secret, and the expected one
    /// kept as a previous secret that has not expired at `now`.
    set: SecretSet,
    now: Timestamp,
    expected: Header,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Our verifier: must not be flagged.
    Ours,
    /// The naive `==` control: must be flagged, or the harness proves nothing.
    Control,
    /// A second control, reported but not gated.
    Reference,
}

#[derive(Clone, Copy)]
enum Fixed {
    Equal,
    Prefix40,
}

struct Target {
    name: &'static str,
    role: Role,
    fixed: Fixed,
    /// Verifications per sample.
    amplification: u32,
    verify: fn(&Subject, &[u8]) -> bool,
}

fn ours_digest(s: &Subject, header: &[u8]) -> bool {
    s.digest.verify_authorization(header)
}

fn ours_secret(s: &Subject, header: &[u8]) -> bool {
    s.secret.verify_authorization(header)
}

fn ours_set(s: &Subject, header: &[u8]) -> bool {
    s.set.verify_authorization(header, s.now)
}

/// What a receiver writes without thinking: `header == format!("Bearer {secret}")`.
/// The expected value goes through `black_box` so its length is not a
/// compile-time constant and the comparison stays the library `memcmp`.
fn naive_eq(s: &Subject, header: &[u8]) -> bool {
    header == black_box(s.expected.as_slice())
}

/// A byte loop that returns at the first difference.
fn naive_loop(s: &Subject, header: &[u8]) -> bool {
    if header.len() != s.expected.len() {
        return false;
    }
    for (a, b) in header.iter().zip(black_box(&s.expected)) {
        if a != b {
            return false;
        }
    }
    true
}

const TARGETS: [Target; 8] = [
    Target {
        name: "digest.verify_authorization, fixed=equal",
        role: Role::Ours,
        fixed: Fixed::Equal,
        amplification: 8,
        verify: ours_digest,
    },
    Target {
        name: "digest.verify_authorization, fixed=prefix40",
        role: Role::Ours,
        fixed: Fixed::Prefix40,
        amplification: 8,
        verify: ours_digest,
    },
    Target {
        name: "secret.verify_authorization, fixed=equal",
        role: Role::Ours,
        fixed: Fixed::Equal,
        amplification: 32,
        verify: ours_secret,
    },
    Target {
        name: "secret.verify_authorization, fixed=prefix40",
        role: Role::Ours,
        fixed: Fixed::Prefix40,
        amplification: 32,
        verify: ours_secret,
    },
    Target {
        name: "secret_set.verify_authorization, fixed=equal",
        role: Role::Ours,
        fixed: Fixed::Equal,
        amplification: 8,
        verify: ours_set,
    },
    Target {
        name: "secret_set.verify_authorization, fixed=prefix40",
        role: Role::Ours,
        fixed: Fixed::Prefix40,
        amplification: 8,
        verify: ours_set,
    },
    Target {
        name: "control: naive == (memcmp), fixed=prefix40",
        role: Role::Control,
        fixed: Fixed::Prefix40,
        amplification: 32,
        verify: naive_eq,
    },
    Target {
        name: "control: early-exit byte loop, fixed=prefix40",
        role: Role::Reference,
        fixed: Fixed::Prefix40,
        amplification: 32,
        verify: naive_loop,
    },
];

/// `Bearer ` + `whsec_` + base64url of `bytes`.
fn header_of(bytes: &[u8; 32]) -> Header {
    let mut h = [0u8; HEADER_LEN];
    let (scheme, secret) = h.split_at_mut(SCHEME.len());
    scheme.copy_from_slice(SCHEME);
    let (prefix, encoded) = secret.split_at_mut(SECRET_PREFIX.len());
    prefix.copy_from_slice(SECRET_PREFIX.as_bytes());
    // 32 bytes always encode to 43 characters; the buffer is exactly that.
    let _ = URL_SAFE_NO_PAD.encode_slice(bytes, encoded);
    h
}

fn random_header(rng: &mut ChaCha20Rng) -> Header {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    header_of(&bytes)
}

/// The fixed-class header: the expected one, or one that matches it in the
/// first [`MATCHING`] bytes of the secret and differs right after.
fn fixed_header(subject: &Subject, fixed: Fixed, rng: &mut ChaCha20Rng) -> Header {
    match fixed {
        Fixed::Equal => subject.expected,
        Fixed::Prefix40 => {
            let split = SCHEME.len() + MATCHING;
            loop {
                let mut h = random_header(rng);
                let (head, _) = h.split_at_mut(split);
                head.copy_from_slice(subject.expected.get(..split).unwrap_or_default());
                if h.get(split) != subject.expected.get(split) {
                    return h;
                }
            }
        }
    }
}

/// Running sums of one class, shifted by a reference to keep the variance exact.
#[derive(Clone, Copy, Default)]
struct Moments {
    n: f64,
    sum: f64,
    sum_sq: f64,
}

impl Moments {
    fn add(&mut self, x: f64) {
        self.n += 1.0;
        self.sum += x;
        self.sum_sq += x * x;
    }
    fn mean_var(&self) -> (f64, f64) {
        let mean = self.sum / self.n;
        let var = (self.sum_sq - self.n * mean * mean) / (self.n - 1.0);
        (mean, var)
    }
}

/// Welch's t of the two classes.
fn welch(fixed: &Moments, random: &Moments) -> f64 {
    if fixed.n < 2.0 || random.n < 2.0 {
        return 0.0;
    }
    let (m0, v0) = fixed.mean_var();
    let (m1, v1) = random.mean_var();
    let den = (v0 / fixed.n + v1 / random.n).sqrt();
    if den > 0.0 { (m0 - m1) / den } else { 0.0 }
}

struct Outcome {
    /// Largest |t| over the uncropped test and the cropped ones.
    max_t: f64,
    /// Pooled percentile of the crop that gave it (100 = uncropped).
    at_percentile: f64,
    samples: usize,
    /// Median nanoseconds per verification of each class.
    median_ns: (f64, f64),
}

/// The dudect analysis over `(nanoseconds, is_fixed)` samples.
fn analyse(mut samples: Vec<(u64, bool)>, amplification: u32) -> Outcome {
    samples.sort_unstable_by_key(|&(ns, _)| ns);
    let n = samples.len();
    let at = |q: f64| -> u64 {
        let i = ((n.saturating_sub(1)) as f64 * q) as usize;
        samples.get(i).map_or(0, |&(ns, _)| ns)
    };
    let reference = at(0.5) as f64;
    // dudect's crops: percentiles 1 - 0.5^(k/10) for k = 1..=100, then all.
    let mut crops: Vec<(f64, u64)> = (1..=100)
        .map(|k| {
            let q = 1.0 - 0.5f64.powf(f64::from(k) / 10.0);
            (q * 100.0, at(q))
        })
        .collect();
    crops.push((100.0, u64::MAX));

    // Samples are sorted, so one pass fills every crop in turn.
    let mut fixed = Moments::default();
    let mut random = Moments::default();
    let mut iter = samples.iter().peekable();
    let mut best = (0.0f64, 100.0f64);
    for &(pct, limit) in &crops {
        while let Some(&&(ns, is_fixed)) = iter.peek() {
            if ns >= limit {
                break;
            }
            let x = ns as f64 - reference;
            if is_fixed {
                fixed.add(x);
            } else {
                random.add(x);
            }
            iter.next();
        }
        let t = welch(&fixed, &random).abs();
        if t > best.0 {
            best = (t, pct);
        }
    }

    let median = |want_fixed: bool| -> f64 {
        let class: Vec<u64> = samples
            .iter()
            .filter(|&&(_, f)| f == want_fixed)
            .map(|&(ns, _)| ns)
            .collect();
        class.get(class.len() / 2).map_or(0.0, |&ns| ns as f64) / f64::from(amplification)
    };
    Outcome {
        max_t: best.0,
        at_percentile: best.1,
        samples: n,
        median_ns: (median(true), median(false)),
    }
}

fn measure(target: &Target, subject: &Subject, samples: usize, rng: &mut ChaCha20Rng) -> Outcome {
    let fixed = fixed_header(subject, target.fixed, rng);
    let mut out: Vec<(u64, bool)> = Vec::with_capacity(samples);
    let mut headers: Vec<Header> = Vec::with_capacity(BATCH);
    let mut classes: Vec<bool> = Vec::with_capacity(BATCH);
    // The first batch warms caches and clocks and is not recorded.
    let mut warm_up = true;
    while out.len() < samples {
        headers.clear();
        classes.clear();
        for _ in 0..BATCH {
            let is_fixed = rng.next_u32() & 1 == 1;
            headers.push(if is_fixed { fixed } else { random_header(rng) });
            classes.push(is_fixed);
        }
        for (header, &is_fixed) in headers.iter().zip(&classes) {
            let start = Instant::now();
            for _ in 0..target.amplification {
                black_box((target.verify)(subject, black_box(header.as_slice())));
            }
            let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            if !warm_up && out.len() < samples {
                out.push((ns, is_fixed));
            }
        }
        warm_up = false;
    }
    analyse(out, target.amplification)
}

struct Options {
    rounds: u32,
    samples: usize,
    threshold: f64,
    seed: Option<u64>,
}

/// Reads the options; ignores what it does not know (`cargo bench` passes `--bench`).
fn options() -> Result<Options, String> {
    let mut o = Options {
        rounds: 2,
        samples: 500_000,
        threshold: 10.0,
        seed: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--rounds" => {
                o.rounds = value("--rounds")?
                    .parse()
                    .map_err(|e| format!("--rounds: {e}"))?
            }
            "--samples" => {
                o.samples = value("--samples")?
                    .parse()
                    .map_err(|e| format!("--samples: {e}"))?
            }
            "--threshold" => {
                o.threshold = value("--threshold")?
                    .parse()
                    .map_err(|e| format!("--threshold: {e}"))?;
            }
            "--seed" => {
                o.seed = Some(
                    value("--seed")?
                        .parse()
                        .map_err(|e| format!("--seed: {e}"))?,
                )
            }
            _ => {}
        }
    }
    if o.rounds == 0 || o.samples < 1000 {
        return Err("need at least 1 round and 1000 samples".to_owned());
    }
    Ok(o)
}

fn main() -> ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ct_verify: {e}");
            return ExitCode::from(2);
        }
    };
    let seed = o.seed.unwrap_or_else(|| {
        let mut b = [0u8; 8];
        // A failed OS generator leaves a zero seed; the seed is printed anyway.
        let _ = getrandom::fill(&mut b);
        u64::from_le_bytes(b)
    });
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let secret = BearerSecret::from_rng(&mut rng);
    let mut expected = [0u8; HEADER_LEN];
    for (e, b) in expected
        .iter_mut()
        .zip(secret.authorization_header().bytes())
    {
        *e = b;
    }
    let now = Timestamp::UNIX_EPOCH;
    let Some(deadline) = now.checked_add(std::time::Duration::from_secs(86_400)) else {
        eprintln!("ct_verify: deadline out of range");
        return ExitCode::from(2);
    };
    let current = BearerSecret::from_rng(&mut rng).digest();
    let Ok(set) = SecretSet::new(current).with_previous(secret.digest(), deadline) else {
        eprintln!("ct_verify: the secret set is full");
        return ExitCode::from(2);
    };
    let subject = Subject {
        digest: secret.digest(),
        secret,
        set,
        now,
        expected,
    };

    println!(
        "constant-time check: {} rounds x {} samples per target, threshold |t| < {}, seed {seed}",
        o.rounds, o.samples, o.threshold
    );
    let mut worst = [0.0f64; TARGETS.len()];
    for round in 1..=o.rounds {
        for (target, worst) in TARGETS.iter().zip(worst.iter_mut()) {
            let r = measure(target, &subject, o.samples, &mut rng);
            println!(
                "round {round}  {:<48} max|t| = {:>8.2} (crop {:>5.1}%)  n = {}  median ns/compare fixed {:.1} random {:.1}",
                target.name, r.max_t, r.at_percentile, r.samples, r.median_ns.0, r.median_ns.1
            );
            *worst = worst.max(r.max_t);
        }
    }

    let mut ok = true;
    println!("summary (largest |t| over rounds):");
    for (target, &t) in TARGETS.iter().zip(&worst) {
        let flagged = t >= o.threshold;
        let verdict = match (target.role, flagged) {
            (Role::Ours, false) => "pass",
            (Role::Ours, true) => {
                ok = false;
                "FAIL: timing depends on the presented secret"
            }
            (Role::Control, true) => "flagged, as it must be",
            (Role::Reference, true) => "flagged (reported only)",
            (Role::Control, false) => {
                ok = false;
                "FAIL: control not flagged, the harness cannot see a leak"
            }
            (Role::Reference, false) => "not flagged (reported only)",
        };
        println!("  {:<48} max|t| = {t:>8.2}  {verdict}", target.name);
    }
    if ok {
        println!("constant-time check passed");
        ExitCode::SUCCESS
    } else {
        println!("constant-time check FAILED");
        ExitCode::FAILURE
    }
}
