//! The receiver values (`Description`, `Metadata`, `CustomHeaders`,
//! `FilterTypes`, `SigningSecret`, `Signing`): parsing never panics; every
//! way in gives the same verdict; what is accepted round-trips; a filter
//! built from lines is accepted exactly when the published entry pattern,
//! the count and uniqueness say so, and matches as its entries' prefixes
//! say; custom headers' `Debug` is their names and nothing else.
//!
//! Assertions never format a secret or a header value: a failure names the
//! property that broke (the crashing input is saved by libFuzzer).

#![no_main]

use std::collections::HashSet;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use prets_destinations::delivery::{EventType, FILTER_TYPE_PATTERN, FilterTypes, MAX_FILTER_TYPES};
use prets_destinations::description::Description;
use prets_destinations::headers::CustomHeaders;
use prets_destinations::metadata::Metadata;
use prets_destinations::secret::{Signing, SigningSecret};

/// Types every filter is matched against.
const TYPES: [&str; 6] = [
    "a",
    "invoice",
    "invoice.paid",
    "invoice.paid.late",
    "Invoice.paid",
    "x:y_z-1",
];

/// The published entry pattern, compiled once.
static PATTERN: LazyLock<regex_lite::Regex> =
    LazyLock::new(|| regex_lite::Regex::new(FILTER_TYPE_PATTERN).expect("the pattern compiles"));

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let s: &str = &text;
    let json_string = serde_json::to_string(s).expect("a str serializes");

    // Description: every way in agrees, and the text is kept.
    let parsed = s.parse::<Description>();
    assert_eq!(Description::try_from(s), parsed);
    assert_eq!(Description::try_from(s.to_owned()), parsed);
    assert_eq!(
        Description::validate(s),
        parsed.as_ref().map(|_| ()).map_err(|e| *e)
    );
    let via_serde = serde_json::from_str::<Description>(&json_string);
    match &parsed {
        Ok(d) => {
            assert_eq!(d.as_str(), s);
            assert_eq!(via_serde.as_ref().ok(), Some(d));
        }
        Err(_) => assert!(via_serde.is_err(), "serde accepted a refused description"),
    }

    // SigningSecret: every way in agrees; an accepted one is its own text.
    let secret = s.parse::<SigningSecret>();
    let again = SigningSecret::try_from(s.to_owned());
    let via_serde = serde_json::from_str::<SigningSecret>(&json_string);
    match &secret {
        Ok(secret) => {
            assert!(
                secret.expose_secret() == s,
                "secret text differs from the input"
            );
            assert!(
                again.is_ok_and(|a| a.ct_eq(secret)),
                "TryFrom<String> disagrees"
            );
            assert!(via_serde.is_ok_and(|a| a.ct_eq(secret)), "serde disagrees");
            assert!(format!("{secret:?}") == "SigningSecret(<redacted>)");
        }
        Err(e) => {
            assert!(again.is_err_and(|a| a == *e), "TryFrom<String> disagrees");
            assert!(via_serde.is_err(), "serde accepted a refused secret");
        }
    }

    // Signing: only the two spellings.
    let signing = s.parse::<Signing>();
    assert_eq!(signing.is_ok(), s == "bearer" || s == "standard-webhooks");
    if let Ok(v) = signing {
        assert_eq!(v.as_str(), s);
    }

    // The input as JSON: objects and arrays of the three collections.
    if let Ok(m) = serde_json::from_str::<Metadata>(s) {
        assert!(m.len() <= 50);
        let back = serde_json::to_string(&m).expect("metadata serializes");
        assert_eq!(serde_json::from_str::<Metadata>(&back).ok(), Some(m));
    }
    if let Ok(h) = serde_json::from_str::<CustomHeaders>(s) {
        assert!(h.len() <= 20);
        let names: Vec<&str> = h.names().collect();
        assert!(
            format!("{h:?}") == format!("CustomHeaders {{ names: {names:?}, .. }}"),
            "custom headers' Debug shows more than the names"
        );
        let back = serde_json::to_string(&h).expect("headers serialize");
        assert!(
            serde_json::from_str::<CustomHeaders>(&back).ok() == Some(h),
            "custom headers do not round-trip"
        );
    }
    if let Ok(f) = serde_json::from_str::<FilterTypes>(s) {
        let back = serde_json::to_string(&f).expect("filter serializes");
        assert_eq!(serde_json::from_str::<FilterTypes>(&back).ok(), Some(f));
    }

    // The input's lines as filter entries, against the published pattern.
    let lines: Vec<&str> = s.split('\n').collect();
    let mut seen = HashSet::new();
    let valid = lines.len() <= MAX_FILTER_TYPES
        && lines.iter().all(|l| PATTERN.is_match(l))
        && lines.iter().all(|l| seen.insert(*l));
    let filter = FilterTypes::new(lines.iter().copied());
    assert_eq!(
        filter.is_ok(),
        valid,
        "filter verdict differs from the pattern"
    );
    if let Ok(filter) = filter {
        for ty in TYPES {
            let t: EventType = ty.parse().expect("a valid type");
            let want = lines.iter().any(|l| match l.strip_suffix('*') {
                Some(prefix) => ty.starts_with(prefix),
                None => ty == *l,
            });
            assert_eq!(filter.matches(&t), want, "filter matches differently");
        }
    }
});
