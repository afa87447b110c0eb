//! `DestinationUrl` validation beside the published pattern run by
//! `regex-lite`, on valid URLs of 60, 1024 and 2048 bytes (the 1024-byte one
//! makes linearity visible).
//!
//! - `url/from_str/N`: parse and keep an owned copy (one allocation).
//! - `url/validate/N`: the same checks, no allocation.
//! - `url/regex_lite/N`: `Regex::is_match` of [`URL_PATTERN`], compiled once
//!   outside the loop. It checks only the pattern, not the length, the scheme
//!   or the port, so it does less than the code it is compared with.

use std::hint::black_box;
use std::str::FromStr as _;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prets_destinations::DestinationUrl;
use prets_destinations::url::URL_PATTERN;

/// A realistic endpoint, 60 bytes.
const SHORT: &str = "https://hooks.acme-payments.example.com/prets/v1/events?t=42";

/// Pieces of a long path: every kind of character the pattern allows,
/// including `%`-escapes.
const PIECES: [&str; 18] = [
    "tenant-42",
    "/",
    "caf%C3%A9",
    "_a.b~c",
    "*",
    "'x'",
    "(v1)",
    "!",
    ";",
    "k=v",
    "&",
    "a+b",
    "$",
    ",",
    ":",
    "@",
    "%2F",
    "/",
];

/// A valid URL of exactly `len` bytes (at least 60).
fn long_url(len: usize) -> String {
    let mut url = String::from("https://hooks.acme-payments.example.com/prets/v1/events/");
    for piece in PIECES.iter().cycle() {
        if url.len() + piece.len() > len {
            break;
        }
        url.push_str(piece);
    }
    while url.len() < len {
        url.push('a');
    }
    url
}

fn url(c: &mut Criterion) {
    let regex = regex_lite::Regex::new(URL_PATTERN);
    assert!(regex.is_ok(), "the published pattern compiles");
    let Ok(regex) = regex else { return };

    let inputs = [SHORT.to_owned(), long_url(1024), long_url(2048)];
    for input in &inputs {
        assert!(regex.is_match(input), "the oracle accepts the bench input");
        assert!(
            DestinationUrl::validate(input).is_ok(),
            "the bench input is valid"
        );
    }

    let mut g = c.benchmark_group("url");
    for input in &inputs {
        let len = input.len();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("from_str", len), input, |b, s| {
            b.iter(|| DestinationUrl::from_str(black_box(s)));
        });
        g.bench_with_input(BenchmarkId::new("validate", len), input, |b, s| {
            b.iter(|| DestinationUrl::validate(black_box(s)));
        });
        g.bench_with_input(BenchmarkId::new("regex_lite", len), input, |b, s| {
            b.iter(|| regex.is_match(black_box(s)));
        });
    }
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
    targets = url
}
criterion_main!(benches);
