//! `DestinationId` and `EventId`: never panic; every accepted input
//! round-trips exactly, is ordered like its text, has neighbours one digit
//! away, and decodes to the 128-bit ULID its Crockford digits spell exactly
//! when that value fits; every 128-bit value writes an id that parses back to
//! itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prets_destinations::DestinationId;
use prets_destinations::error::Field;
use prets_destinations::id::{EVENT_ID_PREFIX, EventId, ID_PREFIX};

/// The value of an upper-case Crockford base32 digit.
fn crockford(c: u8) -> Option<u128> {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    ALPHABET.iter().position(|&a| a == c).map(|v| v as u128)
}

/// The same checks for each id type (both have the same methods).
macro_rules! check_id {
    ($check_value:ident, $check_text:ident, $id:ident, $prefix:expr, $field:expr) => {
        fn $check_value(value: u128) {
            let id = $id::from_ulid(value);
            assert_eq!(id.to_ulid(), Some(value));
            assert_eq!(id.timestamp_ms().map(u128::from), Some(value >> 80));
            let text = id.to_string();
            assert_eq!(text.len(), 30);
            assert!(text.starts_with($prefix));
            assert_eq!(text.parse::<$id>(), Ok(id));
            assert_eq!(String::from(id), text);
        }

        fn $check_text(s: &str) {
            let parsed = s.parse::<$id>();
            assert_eq!($id::try_from(s), parsed);
            assert_eq!($id::try_from(s.to_owned()), parsed);
            let json = serde_json::to_string(s).expect("a str serializes");
            let via_serde = serde_json::from_str::<$id>(&json);

            match parsed {
                Ok(id) => {
                    assert_eq!(id.to_string(), s);
                    assert_eq!(format!("{id:?}"), format!("{}({s})", stringify!($id)));
                    let again: $id = id.to_string().parse().expect("output re-parses");
                    assert_eq!(again, id);
                    assert_eq!(via_serde.expect("serde accepts what FromStr accepts"), id);
                    assert_eq!(serde_json::to_string(&id).expect("serializes"), json);

                    let digits = s
                        .strip_prefix($prefix)
                        .expect("accepted ids carry the prefix");
                    assert_eq!(id.as_str(), s);
                    assert_eq!(id.body(), digits.as_bytes());
                    let mut value = Some(0u128);
                    for c in digits.bytes() {
                        let d = crockford(c).expect("accepted ids use upper-case crockford digits");
                        value = value
                            .and_then(|v| v.checked_mul(32))
                            .and_then(|v| v.checked_add(d));
                    }
                    assert_eq!(id.to_ulid(), value);
                    assert_eq!(value.is_some(), digits.as_bytes()[0] <= b'7');
                    if let Some(value) = value {
                        $check_value(value);
                    }
                    for (next, prev) in [(id.successor(), Some(id)), (Some(id), id.predecessor())] {
                        if let (Some(next), Some(prev)) = (next, prev) {
                            assert!(prev < next);
                            assert!(prev.as_str() < next.as_str());
                            assert_eq!(prev.successor(), Some(next));
                            assert_eq!(next.predecessor(), Some(prev));
                        }
                    }
                    assert_eq!(id.successor().is_none(), id == $id::MAX);
                    assert_eq!(id.predecessor().is_none(), id == $id::MIN);
                }
                Err(e) => {
                    assert!(via_serde.is_err(), "serde accepted what FromStr refused");
                    let fe = e.to_field_error();
                    assert_eq!(fe.field(), $field);
                    assert_eq!(fe.code(), e.code());
                    assert_eq!(fe.message(), e.message());
                    assert_eq!(e.to_string(), e.message());
                }
            }
        }
    };
}

check_id!(
    destination_value,
    destination_text,
    DestinationId,
    ID_PREFIX,
    Field::DestinationId
);
check_id!(
    event_value,
    event_text,
    EventId,
    EVENT_ID_PREFIX,
    Field::EventId
);

fuzz_target!(|data: &[u8]| {
    if let Some(bytes) = data.first_chunk::<16>() {
        let value = u128::from_be_bytes(*bytes);
        destination_value(value);
        event_value(value);
    }

    let text = String::from_utf8_lossy(data);
    destination_text(&text);
    event_text(&text);
    // The same body under the other prefix: an input the fuzzer found for
    // one id reaches the other too.
    if let Some(body) = text.strip_prefix(ID_PREFIX) {
        event_text(&format!("{EVENT_ID_PREFIX}{body}"));
    } else if let Some(body) = text.strip_prefix(EVENT_ID_PREFIX) {
        destination_text(&format!("{ID_PREFIX}{body}"));
    }
});
