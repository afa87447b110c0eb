//! `DestinationUrl` against the spec's `url` schema: at most 2048
//! characters, the published pattern over the whole input, and "Plain HTTP is
//! rejected"; plus the crate's documented rules for the authority (non-empty
//! host, no credentials, a valid port).

use prets_destinations::DestinationUrl;
use prets_destinations::error::Field;
use prets_destinations::url::{InvalidUrl, URL_MAX_CHARS, URL_PATTERN};
use regex_lite::Regex;

/// The `url` pattern exactly as printed in the API reference.
const SPEC_URL_PATTERN: &str =
    r"^((%[0-9A-Fa-f]{2}|[-()_.!~*';/?:@&=+$,A-Za-z0-9])+)([).!';/?:,])?$";

fn oracle() -> Regex {
    Regex::new(URL_PATTERN).unwrap()
}

fn parse(s: &str) -> Result<DestinationUrl, InvalidUrl> {
    s.parse()
}

fn code(s: &str) -> &'static str {
    match parse(s) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

#[test]
fn published_constants_are_the_spec_text() {
    assert_eq!(URL_PATTERN, SPEC_URL_PATTERN);
    // "Maximum string length: 2048"
    assert_eq!(URL_MAX_CHARS, 2048);
}

#[test]
fn the_spec_example_is_accepted() {
    let url = parse("https://example.com/prets/events").unwrap();
    assert_eq!(url.as_str(), "https://example.com/prets/events");
    assert_eq!(url.host(), "example.com");
    assert_eq!(url.port(), None);
}

fn of_len(n: usize) -> String {
    let base = "https://example.com/";
    format!("{base}{}", "a".repeat(n - base.len()))
}

#[test]
fn length_boundary_is_2048_characters() {
    let max = of_len(2048);
    assert_eq!(max.chars().count(), 2048);
    assert!(oracle().is_match(&max));
    assert_eq!(code(&max), "ok");
    assert_eq!(parse(&max).unwrap().as_str(), max);

    let over = of_len(2049);
    assert!(oracle().is_match(&over), "only the length is wrong");
    assert_eq!(code(&over), "too_long");
    assert_eq!(code(&of_len(1 << 20)), "too_long");
}

#[test]
fn length_counts_characters_so_long_non_ascii_input_fails_the_pattern() {
    // 1520 characters but 3020 bytes: not too long, but outside the pattern.
    let s = format!("https://example.com/{}", "é".repeat(1500));
    assert!(s.len() > 2048 && s.chars().count() <= 2048);
    assert_eq!(code(&s), "pattern");
}

#[test]
fn empty_input_is_refused() {
    assert!(!oracle().is_match(""));
    assert_eq!(code(""), "too_short");
}

/// Membership of an ASCII character in the pattern's literal class, decided
/// by the published pattern itself: `https://example.com/p` followed by the
/// character, matched over the whole input.
fn pattern_allows(c: char) -> bool {
    oracle().is_match(&format!("https://example.com/p{c}"))
}

#[test]
fn the_class_text_and_the_whole_pattern_agree_on_membership() {
    // The literal class `[-()_.!~*';/?:@&=+$,A-Za-z0-9]`, cut out of the
    // published pattern and compiled on its own.
    let start = URL_PATTERN.find("|[").unwrap() + 1;
    let len = URL_PATTERN[start..].find(']').unwrap() + 1;
    let class = &URL_PATTERN[start..start + len];
    assert_eq!(class, "[-()_.!~*';/?:@&=+$,A-Za-z0-9]");
    let single = Regex::new(&format!("^{class}$")).unwrap();
    for b in 0u8..=127 {
        let c = char::from(b);
        assert_eq!(single.is_match(&c.to_string()), pattern_allows(c), "{c:?}");
    }
}

#[test]
fn every_ascii_character_outside_the_published_class_is_refused() {
    let mut allowed = 0;
    for b in 0u8..=127 {
        let c = char::from(b);
        let in_class = pattern_allows(c);
        for s in [
            format!("https://example.com/p{c}"),
            format!("https://example.com/{c}p"),
            format!("https://example.com/?q={c}&r=1"),
            format!("https://exa{c}mple.com/"),
        ] {
            if in_class {
                // Allowed characters may still break the authority rules in the
                // host position ('@', ':', '/', '?'), never the pattern.
                assert_ne!(code(&s), "pattern", "{s:?}");
            } else {
                // '%' lands here too: it is allowed only as the start of an escape.
                assert_eq!(code(&s), "pattern", "{s:?}");
                assert!(!oracle().is_match(&s), "{s:?}");
            }
        }
        if in_class {
            allowed += 1;
            // In the path every class member is simply accepted.
            assert_eq!(code(&format!("https://example.com/p{c}")), "ok", "{c:?}");
            assert_eq!(code(&format!("https://example.com/{c}p")), "ok", "{c:?}");
            assert_eq!(
                code(&format!("https://example.com/?q={c}&r=1")),
                "ok",
                "{c:?}"
            );
        }
    }
    // The class is "-()_.!~*';/?:@&=+$," (19) plus A-Z, a-z and 0-9 (62).
    assert_eq!(allowed, 19 + 62);
    for c in "-()_.!~*';/?:@&=+$,".chars() {
        assert!(pattern_allows(c), "{c:?}");
    }
    for c in " \"#<>[\\]^`{|}\0\t\n\r\u{7F}".chars() {
        assert!(!pattern_allows(c), "{c:?}");
    }
}

#[test]
fn non_ascii_characters_are_refused() {
    let oracle = oracle();
    let others = (0x80u32..=0xFF)
        .chain([0x2F, 0xFF0F, 0x2215, 0x200B, 0xFEFF, 0x1F980, 0x10FFFF])
        .filter_map(char::from_u32)
        .filter(|c| !c.is_ascii());
    for c in others {
        for s in [
            format!("https://example.com/{c}"),
            format!("https://exam{c}ple.com/"),
            format!("https://example.com/?q={c}"),
        ] {
            assert!(!oracle.is_match(&s), "{s:?}");
            assert_eq!(code(&s), "pattern", "{s:?}");
        }
    }
}

#[test]
fn broken_percent_escapes_are_pattern_errors() {
    let oracle = oracle();
    for s in [
        "https://example.com/%",
        "https://example.com/%4",
        "https://example.com/%zz",
        "https://example.com/%G0",
        "https://example.com/%0G",
        "https://example.com/%%41",
        "https://example.com/a%",
        "https://example.com/a%4",
        "https://example.com/%4/",
        "https://example.com/% 41",
        "https://example.com/%-1",
        "https://example.com/%é9",
        "https://example.com/%4é",
        "https://example.com/?q=%",
        "https://ex%ample.com/",
        "https://example.com/%41%",
    ] {
        assert!(!oracle.is_match(s), "{s:?}");
        assert_eq!(code(s), "pattern", "{s:?}");
    }
}

#[test]
fn well_formed_percent_escapes_are_accepted() {
    let oracle = oracle();
    for s in [
        "https://example.com/%2F",
        "https://example.com/%aF",
        "https://example.com/%Af",
        "https://example.com/%00",
        "https://example.com/%ff",
        "https://example.com/%41%42%43",
        "https://example.com/?q=%25",
    ] {
        assert!(oracle.is_match(s), "{s:?}");
        assert_eq!(code(s), "ok", "{s:?}");
        assert_eq!(parse(s).unwrap().as_str(), s);
    }
}

#[test]
fn end_of_input_is_the_end_of_the_string_so_trailing_newlines_are_refused() {
    let oracle = oracle();
    for s in [
        "https://example.com/\n",
        "https://example.com/\r\n",
        "https://example.com\n",
        "https://example.com/\r",
        "https://example.com/ ",
        "https://example.com/\0",
    ] {
        assert!(!oracle.is_match(s), "{s:?}");
        assert_eq!(code(s), "pattern", "{s:?}");
    }
}

#[test]
fn scheme_is_https_in_any_case() {
    for s in [
        "https://example.com/",
        "HTTPS://example.com/",
        "hTtPs://example.com/",
        "Https://example.com",
    ] {
        let url = parse(s).unwrap();
        assert_eq!(url.as_str(), s, "echoed as sent");
        assert_eq!(url.host(), "example.com");
    }
}

#[test]
fn other_schemes_and_missing_slashes_are_not_https() {
    for s in [
        "http://example.com/",
        "HTTP://example.com/",
        "ftp://example.com/",
        "wss://example.com/",
        "httpss://example.com/",
        "https:example.com",
        "https:/example.com",
        "https:",
        "https",
        "h",
        "example.com",
        "example.com/https://",
        "//example.com",
        "https//example.com",
        "https:\\\\example.com",
    ] {
        assert_eq!(code(s), "not_https", "{s:?}");
    }
    // Leading whitespace is neither https nor in the pattern.
    assert!(parse(" https://example.com/").is_err());
}

#[test]
fn an_empty_host_is_refused() {
    for s in [
        "https://",
        "HTTPS://",
        "https:///",
        "https:///path",
        "https://?q=1",
        "https://:443/",
        "https://:443",
    ] {
        assert_eq!(code(s), "empty_host", "{s:?}");
    }
}

#[test]
fn valid_ports_are_accepted_and_exposed() {
    for (port, s) in [
        (1, "https://example.com:1/"),
        (443, "https://example.com:443/"),
        (8443, "https://example.com:8443"),
        (65535, "https://example.com:65535/x"),
        (9, "https://example.com:9?x=1"),
    ] {
        let url = parse(s).unwrap();
        assert_eq!(url.port(), Some(port), "{s}");
        assert_eq!(url.host(), "example.com", "{s}");
        assert_eq!(url.as_str(), s);
    }
}

#[test]
fn invalid_ports_are_refused() {
    for s in [
        "https://example.com:0/",
        "https://example.com:00/",
        "https://example.com:65536/",
        "https://example.com:99999/",
        "https://example.com:100000/",
        "https://example.com:4294967297/",
        "https://example.com:18446744073709551617/",
        "https://example.com:/",
        "https://example.com:",
        "https://example.com:?q",
        "https://example.com:04/",
        "https://example.com:0443/",
        "https://example.com:http/",
        "https://example.com:44a/",
        "https://example.com:-1/",
        "https://example.com:+1/",
        "https://example.com:443:443/",
        "https://example.com::443/",
    ] {
        assert_eq!(code(s), "invalid_port", "{s:?}");
    }
}

#[test]
fn at_sign_in_the_authority_is_refused_as_credentials() {
    for s in [
        "https://user@example.com/",
        "https://user:pass@example.com/",
        "https://@example.com/",
        "https://example.com@evil.example/",
        "https://example.com:443@evil.example/",
        "https://a@b@c/",
        "https://example.com@",
    ] {
        assert_eq!(code(s), "credentials", "{s:?}");
    }
}

#[test]
fn at_sign_and_colon_are_fine_in_path_and_query() {
    for s in [
        "https://example.com/a@b",
        "https://example.com/user:pass@host",
        "https://example.com?mail=a@b.example",
        "https://example.com/?t=12:30",
        "https://example.com/x?y=@:@",
    ] {
        let url = parse(s).unwrap();
        assert_eq!(url.host(), "example.com", "{s}");
        assert_eq!(url.port(), None, "{s}");
    }
}

#[test]
fn host_stops_at_port_path_or_query_and_keeps_its_spelling() {
    for (s, host, port) in [
        ("https://Example.COM:8443/x?y", "Example.COM", Some(8443)),
        ("https://example.com?q", "example.com", None),
        ("https://example.com", "example.com", None),
        ("HTTPS://a.io/", "a.io", None),
        ("https://a.b.c:1", "a.b.c", Some(1)),
        // Single-label hosts and trailing-dot names are refused by the host
        // policy (tests/it/host_policy.rs), so the spelling kept here is case.
        (
            "https://Sub-Domain.Example.com/",
            "Sub-Domain.Example.com",
            None,
        ),
    ] {
        let url = parse(s).unwrap();
        assert_eq!(url.host(), host, "{s}");
        assert_eq!(url.port(), port, "{s}");
    }
}

#[test]
fn pattern_trailing_group_characters_are_accepted_at_the_end() {
    // The pattern's optional last group `[).!';/?:,]`.
    for c in ").!';/?:,".chars() {
        let s = format!("https://example.com/x{c}");
        assert!(oracle().is_match(&s));
        assert_eq!(code(&s), "ok", "{s:?}");
    }
}

#[test]
fn every_constructor_agrees_and_echoes_exactly() {
    for s in [
        "https://example.com/prets/events",
        "HTTPS://example.com:8443/a?b=c@d",
        "http://example.com/",
        "https://example.com/%zz",
        "",
    ] {
        let a = s.parse::<DestinationUrl>();
        let b = DestinationUrl::try_from(s);
        let c = DestinationUrl::try_from(s.to_owned());
        assert_eq!(a, b, "{s:?}");
        assert_eq!(a, c, "{s:?}");
        assert_eq!(
            a.as_ref().map(|_| ()).map_err(|e| *e),
            DestinationUrl::validate(s),
            "{s:?}"
        );
        if let Ok(url) = a {
            assert_eq!(url.as_str(), s);
            assert_eq!(AsRef::<str>::as_ref(&url), s);
            assert_eq!(url.to_string(), s);
            assert_eq!(String::from(url.clone()), s);
            assert_eq!(url.into_string(), s);
        }
    }
}

#[test]
fn serde_round_trips_exactly_and_refuses_invalid_urls() {
    for s in [
        "https://example.com/prets/events",
        "hTtPs://example.com:65535/%aF?x=y@z",
    ] {
        let url = parse(s).unwrap();
        let json = serde_json::to_string(&url).unwrap();
        assert_eq!(json, serde_json::to_string(s).unwrap());
        let back: DestinationUrl = serde_json::from_str(&json).unwrap();
        assert_eq!(back.as_str(), s);
        assert_eq!(back, url);
        assert_eq!(back.host(), url.host());
        assert_eq!(back.port(), url.port());
    }
    for json in [
        r#""http://example.com/""#.to_owned(),
        r#""https://example.com/\n""#.to_owned(),
        r#""https://user@example.com/""#.to_owned(),
        r#""https://example.com:0/""#.to_owned(),
        r#""""#.to_owned(),
        format!("\"{}\"", of_len(2049)),
        "null".to_owned(),
        "1".to_owned(),
    ] {
        assert!(
            serde_json::from_str::<DestinationUrl>(&json).is_err(),
            "{json}"
        );
    }
}

#[test]
fn errors_name_the_field_follow_the_message_style_and_omit_the_value() {
    let marker = "zqxjmarker";
    for s in [
        String::new(),
        format!("http://{marker}.example/"),
        format!("https://{marker}.example/ "),
        format!("https://{marker}.example/%"),
        format!("https://{marker}@example.com/"),
        format!("https:///{marker}"),
        format!("https://{marker}:0/"),
        format!("https://{marker}.example/{}", "a".repeat(2100)),
    ] {
        let e = parse(&s).unwrap_err();
        let fe = e.to_field_error();
        assert_eq!(fe.field(), Field::Url);
        assert_eq!((fe.code(), fe.message()), (e.code(), e.message()));
        let m = e.message();
        assert_eq!(m, m.to_lowercase(), "{m}");
        assert!(!m.ends_with('.'), "{m}");
        for text in [e.to_string(), format!("{e:?}"), m.to_owned()] {
            assert!(!text.contains(marker), "{text}");
        }
    }
}
