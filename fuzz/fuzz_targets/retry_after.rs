//! Arbitrary bytes as a `Retry-After` header on every status: classifying
//! never panics; only 429 and 503 read it; a delay is read exactly when the
//! text (after spaces and tabs) is all digits or an HTTP-date after `now`,
//! and digits read as that many seconds; 2xx is delivered and 410 gone
//! whatever the header says.

#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use prets_destinations::Timestamp;
use prets_destinations::delivery::{Answer, Classification, FailureCause, classify};

const NOW_MS: u64 = 1_699_335_116_250;

fuzz_target!(|data: &[u8]| {
    let Some((&[hi, lo], value)) = data.split_first_chunk::<2>().map(|(s, v)| (s, v)) else {
        return;
    };
    let status = u16::from_be_bytes([hi, lo]) % 1000;
    let now = Timestamp::from_unix_millis(NOW_MS).expect("in range");
    let got = classify(
        Answer::Response {
            status,
            retry_after: Some(value),
        },
        now,
    );
    match status {
        200..=299 => assert_eq!(got, Classification::Delivered { status }),
        410 => assert_eq!(got, Classification::Gone),
        _ => {
            let Classification::Failed(f) = got else {
                panic!("status {status} is a failure");
            };
            assert_eq!(f.cause, FailureCause::Status(status));
            if status != 429 && status != 503 {
                assert_eq!(f.retry_after, None);
                return;
            }
            // An independent reading of the header.
            let expected = (value.len() <= 64)
                .then(|| std::str::from_utf8(value).ok())
                .flatten()
                .map(|t| t.trim_matches([' ', '\t']))
                .and_then(|t| {
                    if !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()) {
                        Some(Duration::from_secs(t.parse().unwrap_or(u64::MAX)))
                    } else {
                        let at = httpdate::parse_http_date(t).ok()?;
                        let at = at.duration_since(UNIX_EPOCH).ok()?;
                        at.checked_sub(Duration::from_millis(NOW_MS))
                            .filter(|d| !d.is_zero())
                    }
                });
            assert_eq!(f.retry_after, expected);
        }
    }
});
