//! `DestinationUrl`: never panics; every accepted input round-trips exactly,
//! with `host()` and `port()` consistent with the text; every way in gives the
//! same verdict.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prets_destinations::DestinationUrl;
use prets_destinations::error::Field;
use prets_destinations::url::URL_MAX_CHARS;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let s: &str = &text;

    let parsed = s.parse::<DestinationUrl>();
    assert_eq!(DestinationUrl::try_from(s), parsed);
    assert_eq!(DestinationUrl::try_from(s.to_owned()), parsed);
    assert_eq!(
        DestinationUrl::validate(s),
        parsed.as_ref().map(|_| ()).map_err(|e| *e)
    );
    let json = serde_json::to_string(s).expect("a str serializes");
    let via_serde = serde_json::from_str::<DestinationUrl>(&json);

    match parsed {
        Ok(url) => {
            assert_eq!(url.as_str(), s);
            assert_eq!(AsRef::<str>::as_ref(&url), s);
            assert_eq!(url.to_string(), s);
            let again: DestinationUrl = url.to_string().parse().expect("output re-parses");
            assert_eq!(again, url);
            assert_eq!(again.host(), url.host());
            assert_eq!(again.port(), url.port());
            assert_eq!(via_serde.expect("serde accepts what FromStr accepts"), url);
            assert_eq!(serde_json::to_string(&url).expect("serializes"), json);

            assert!(s.chars().count() <= URL_MAX_CHARS);
            let (scheme, rest) = s.split_at(8);
            assert!(scheme.eq_ignore_ascii_case("https://"));
            let authority = rest.split(['/', '?']).next().unwrap_or_default();
            let (host, port) = match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            };
            assert_eq!(url.host(), host);
            assert!(!host.is_empty());
            assert!(!authority.contains('@'));
            match port {
                Some(p) => {
                    let n = url.port().expect("a written port is reported");
                    assert_ne!(n, 0);
                    assert_eq!(n.to_string(), p, "port text is canonical");
                }
                None => assert_eq!(url.port(), None),
            }
            assert_eq!(url.clone().into_string(), s);
            assert_eq!(String::from(url), s);
        }
        Err(e) => {
            assert!(via_serde.is_err(), "serde accepted what FromStr refused");
            let fe = e.to_field_error();
            assert_eq!(fe.field(), Field::Url);
            assert_eq!(fe.code(), e.code());
            assert_eq!(fe.message(), e.message());
            assert_eq!(e.to_string(), e.message());
        }
    }
});
