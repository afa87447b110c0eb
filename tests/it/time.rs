//! `Timestamp`, the `createdAt`/`updatedAt` format: RFC 3339 in UTC with
//! whole seconds and `Z`, like the spec's `2023-11-07T05:31:56Z`, checked
//! against a deliberately naive calendar walk.

use prets_destinations::Timestamp;
use prets_destinations::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Milliseconds of `9999-12-31T23:59:59.999Z`.
const LAST_MS: u64 = 253_402_300_799_999;

fn is_leap(y: u64) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

/// Seconds since the epoch to `YYYY-MM-DDTHH:MM:SSZ`, one year and one month
/// at a time.
fn naive(secs: u64) -> String {
    let mut days = secs / 86_400;
    let sod = secs % 86_400;
    let mut year = 1970;
    loop {
        let len = if is_leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let feb = if is_leap(year) { 29 } else { 28 };
    let months = [31, feb, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut month = 0;
    while days >= months[month] {
        days -= months[month];
        month += 1;
    }
    format!(
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        month + 1,
        days + 1,
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

#[test]
fn the_spec_example_instant() {
    let t = Timestamp::from_unix_seconds(1_699_335_116).unwrap();
    assert_eq!(t.to_string(), "2023-11-07T05:31:56Z");
    assert_eq!(naive(1_699_335_116), "2023-11-07T05:31:56Z");
}

#[test]
fn display_agrees_with_a_naive_calendar_and_parses_back() {
    let mut rng = ChaCha20Rng::seed_from_u64(31);
    let mut samples: Vec<u64> = vec![0, 999, 1_000, 951_782_399_999, 951_782_400_000, LAST_MS];
    samples.extend((0..3_000).map(|_| rng.next_u64() % (LAST_MS + 1)));
    for ms in samples {
        let t = Timestamp::from_unix_millis(ms).unwrap();
        let text = t.to_string();
        assert_eq!(text, naive(ms / 1000), "{ms}");
        let back: Timestamp = text.parse().unwrap();
        assert_eq!(back, t.truncated());
        assert_eq!(back.unix_millis(), ms - ms % 1000);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), back);
    }
}

#[test]
fn the_range_ends_with_year_9999() {
    assert_eq!(
        Timestamp::from_unix_millis(LAST_MS).unwrap().to_string(),
        "9999-12-31T23:59:59Z"
    );
    assert!(Timestamp::from_unix_millis(LAST_MS + 1).is_none());
    assert!(Timestamp::from_unix_millis(u64::MAX).is_none());
    assert!(Timestamp::from_unix_seconds(u64::MAX).is_none());
}

#[test]
fn only_the_written_form_is_read() {
    for s in [
        "2023-11-07T05:31:56",
        "2023-11-07T05:31:56.000Z",
        "2023-11-07T05:31:56+00:00",
        "2023-11-07 05:31:56Z",
        "2023-11-07T05:31:56z",
        "2023-11-07T05:31:56Z\n",
        " 2023-11-07T05:31:56Z",
        "2023-02-29T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "",
    ] {
        assert!(s.parse::<Timestamp>().is_err(), "{s:?}");
    }
}
