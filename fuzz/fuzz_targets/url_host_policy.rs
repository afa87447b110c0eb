//! No URL that `DestinationUrl` accepts leads an HTTP client (which parses
//! with the WHATWG rules of the `url` crate) to a non-public IP literal, to
//! `localhost`, or to a host spelled differently from the text; and every
//! accepted URL is echoed exactly.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prets_destinations::DestinationUrl;
use prets_destinations::address::is_public_address;
use url::{Host, Url};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = core::str::from_utf8(data) else {
        return;
    };
    let Ok(dest) = input.parse::<DestinationUrl>() else {
        return;
    };
    assert_eq!(dest.as_str(), input);
    let parsed = Url::parse(input).expect("an accepted URL parses by the WHATWG rules");
    assert_eq!(parsed.scheme(), "https");
    assert!(parsed.username().is_empty() && parsed.password().is_none());
    match parsed.host() {
        Some(Host::Ipv4(ip)) => assert!(is_public_address(ip.into()), "{input}"),
        Some(Host::Ipv6(ip)) => assert!(is_public_address(ip.into()), "{input}"),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.');
            assert!(
                name != "localhost" && !name.ends_with(".localhost"),
                "{input}"
            );
        }
        None => panic!("accepted URL without a host: {input}"),
    }
    assert_eq!(
        parsed.host_str().unwrap_or_default(),
        dest.host().to_ascii_lowercase(),
        "{input}"
    );
    assert_eq!(
        parsed.port_or_known_default(),
        Some(dest.port().unwrap_or(443))
    );
});
