//! `DestinationName`: never panics; every accepted input round-trips exactly;
//! every way in (`FromStr`, `TryFrom<&str>`, `TryFrom<String>`, `validate`,
//! serde) gives the same verdict.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prets_destinations::DestinationName;
use prets_destinations::error::Field;

fuzz_target!(|data: &[u8]| {
    // Invalid UTF-8 cannot reach the validator through the API; replace it so
    // those inputs still exercise it.
    let text = String::from_utf8_lossy(data);
    let s: &str = &text;

    let parsed = s.parse::<DestinationName>();
    assert_eq!(DestinationName::try_from(s), parsed);
    assert_eq!(DestinationName::try_from(s.to_owned()), parsed);
    assert_eq!(
        DestinationName::validate(s),
        parsed.as_ref().map(|_| ()).map_err(|e| *e)
    );
    let json = serde_json::to_string(s).expect("a str serializes");
    let via_serde = serde_json::from_str::<DestinationName>(&json);

    match parsed {
        Ok(name) => {
            assert_eq!(name.as_str(), s);
            assert_eq!(AsRef::<str>::as_ref(&name), s);
            assert_eq!(name.to_string(), s);
            let again: DestinationName = name.to_string().parse().expect("output re-parses");
            assert_eq!(again, name);
            assert_eq!(via_serde.expect("serde accepts what FromStr accepts"), name);
            assert_eq!(serde_json::to_string(&name).expect("serializes"), json);
            assert_eq!(name.clone().into_string(), s);
            assert_eq!(String::from(name), s);
        }
        Err(e) => {
            assert!(via_serde.is_err(), "serde accepted what FromStr refused");
            let fe = e.to_field_error();
            assert_eq!(fe.field(), Field::Name);
            assert_eq!(fe.code(), e.code());
            assert_eq!(fe.message(), e.message());
            assert_eq!(e.to_string(), e.message());
        }
    }
});
