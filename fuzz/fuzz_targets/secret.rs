//! `BearerSecret`: never panics; every accepted input round-trips exactly;
//! every way in gives the same verdict; `Authorization` header verification
//! against a secret and against its digest always agree.
//!
//! Assertions here never format a secret: a failure report names the property
//! that broke, not the value (the crashing input is saved by libFuzzer).

#![no_main]

use libfuzzer_sys::fuzz_target;
use prets_destinations::error::Field;
use prets_destinations::secret::{InvalidSecret, SECRET_PREFIX};
use prets_destinations::{BearerSecret, SecretDigest};

/// The secret from the spec's example response.
const EXAMPLE: &str = "whsec_3XvK2nQ8mB7pR1sT4uW6yZ0aE5gH9jLcV2bN1xM4qP8";

/// Whether two parse results are the same verdict (and the same secret).
fn same(a: &Result<BearerSecret, InvalidSecret>, b: &Result<BearerSecret, InvalidSecret>) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => x.ct_eq(y),
        (Err(x), Err(y)) => x == y,
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    // The raw bytes as an `Authorization` header value.
    let example: BearerSecret = EXAMPLE.parse().expect("the spec example is valid");
    let example_digest = example.digest();
    let by_secret = example.verify_authorization(data);
    assert!(
        by_secret == example_digest.verify_authorization(data),
        "secret and digest verification disagree"
    );
    if by_secret {
        assert!(
            data.trim_ascii().ends_with(EXAMPLE.as_bytes()),
            "a header verified without carrying the secret"
        );
    }

    let text = String::from_utf8_lossy(data);
    let s: &str = &text;

    let parsed = s.parse::<BearerSecret>();
    assert!(
        same(&BearerSecret::try_from(s), &parsed),
        "TryFrom<&str> disagrees with FromStr"
    );
    assert!(
        same(&BearerSecret::try_from(s.to_owned()), &parsed),
        "TryFrom<String> disagrees with FromStr"
    );
    let json = serde_json::to_string(s).expect("a str serializes");
    let via_serde = serde_json::from_str::<BearerSecret>(&json);

    match parsed {
        Ok(secret) => {
            assert!(
                secret.expose_secret() == s,
                "expose_secret differs from the input"
            );
            assert!(s.starts_with(SECRET_PREFIX));
            assert!(
                format!("{secret:?}") == "BearerSecret(<redacted>)",
                "Debug is not redacted"
            );
            let again: BearerSecret = secret.expose_secret().parse().expect("output re-parses");
            assert!(again.ct_eq(&secret), "re-parsed secret differs");
            let from_serde = via_serde.expect("serde accepts what FromStr accepts");
            assert!(from_serde.ct_eq(&secret), "serde gives a different secret");

            let digest = secret.digest();
            assert!(
                digest == SecretDigest::of_presented(s),
                "digest is not of the text"
            );
            assert!(
                digest == again.digest(),
                "equal secrets have different digests"
            );
            let header = secret.authorization_header();
            assert!(
                *header == format!("Bearer {s}"),
                "authorization header is malformed"
            );
            for h in [header.as_str().to_owned(), format!(" bearer  {s}\t")] {
                assert!(secret.verify_authorization(&h), "own header not verified");
                assert!(
                    digest.verify_authorization(&h),
                    "own header not verified by digest"
                );
            }
            let matches_example = secret.ct_eq(&example);
            let other = example.authorization_header();
            assert!(secret.verify_authorization(&*other) == matches_example);
            assert!(digest.verify_authorization(&*other) == matches_example);
        }
        Err(e) => {
            assert!(via_serde.is_err(), "serde accepted what FromStr refused");
            let fe = e.to_field_error();
            assert_eq!(fe.field(), Field::BearerSecret);
            assert_eq!(fe.code(), e.code());
            assert_eq!(fe.message(), e.message());
            assert_eq!(e.to_string(), e.message());
        }
    }
});
