//! What the create-time host policy adds to URL validation.
//!
//! `pattern_only` is the floor: the pattern, length, scheme, credentials and
//! port checks without the host policy. `validate` is the full check. The
//! policy's own floor is `url_parse_origin`, the WHATWG parse of
//! `https://host:port` it is built on; `url_parse_full` is the parse of the
//! whole URL that an HTTP client does anyway, for scale. All are measured in
//! the same run, so only their ratios mean anything.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use prets_destinations::DestinationUrl;

/// The 60-byte URL: a realistic webhook endpoint.
fn url_60() -> String {
    let url = "https://hooks.example-shop.com:8443/prets/events?v=2&team=ab".to_owned();
    assert_eq!(url.len(), 60);
    url
}

/// The 2048-byte URL: the longest the schema allows, mostly path.
fn url_2048() -> String {
    let mut url = "https://hooks.example-shop.com/prets/events/".to_owned();
    let mut n = 0u32;
    while url.len() < 2048 {
        url.push(char::from(b'a' + (n % 26) as u8));
        n += 1;
    }
    assert_eq!(url.len(), 2048);
    url
}

fn bench(c: &mut Criterion) {
    for (label, url) in [("60B", url_60()), ("2048B", url_2048())] {
        assert!(DestinationUrl::validate(&url).is_ok());
        let mut g = c.benchmark_group(format!("url_policy/{label}"));
        g.bench_function("pattern_only", |b| {
            b.iter(|| DestinationUrl::validate_without_host_policy(black_box(&url)))
        });
        g.bench_function("validate", |b| {
            b.iter(|| DestinationUrl::validate(black_box(&url)))
        });
        // `https://` and the authority: what the host policy parses.
        let origin = url
            .get(8..)
            .and_then(|rest| rest.find(['/', '?']))
            .and_then(|end| url.get(..8 + end))
            .unwrap_or(&url);
        assert!(origin.starts_with("https://hooks.example-shop.com") && origin.len() < url.len());
        g.bench_function("url_parse_origin", |b| {
            b.iter(|| url::Url::parse(black_box(origin)))
        });
        g.bench_function("url_parse_full", |b| {
            b.iter(|| url::Url::parse(black_box(&url)))
        });
        g.finish();
    }
}

/// Hosts at and past the limits, where IDNA does the most work: the longest
/// valid name (four 63-letter labels), a 2 KiB `xn--` label (refused before
/// parsing), and percent-encoded full-width letters filling two labels up to
/// the decoded limit (parsed, mapped and then refused).
fn long_hosts() -> Vec<(&'static str, String)> {
    let label = "a".repeat(63);
    let longest = format!("https://{label}.{label}.{label}.{}.com/", "b".repeat(57));
    let mut xn = format!("https://xn--{}", "a".repeat(2030));
    xn.push_str(".com/");
    let wide = "%EF%BD%81".repeat(84);
    let mapped = format!("https://{wide}.{wide}.com/");
    vec![
        ("longest_name", longest),
        ("xn_2KiB", xn),
        ("mapped_labels", mapped),
    ]
}

fn bench_long_hosts(c: &mut Criterion) {
    let mut g = c.benchmark_group("url_policy/long_host");
    for (label, url) in long_hosts() {
        assert!(url.len() <= 2048, "{label}");
        g.bench_function(format!("{label}/pattern_only"), |b| {
            b.iter(|| DestinationUrl::validate_without_host_policy(black_box(&url)))
        });
        g.bench_function(format!("{label}/validate"), |b| {
            b.iter(|| DestinationUrl::validate(black_box(&url)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench, bench_long_hosts);
criterion_main!(benches);
