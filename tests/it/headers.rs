//! `CustomHeaders`: RFC 9110 tokens for names, visible ASCII for values, the
//! server's and hop-by-hop names refused whatever their case, and values
//! never shown by `Debug` or an error.

use prets_destinations::error::Field;
use prets_destinations::headers::{
    CustomHeaders, HEADER_NAME_MAX_BYTES, HEADER_VALUE_MAX_BYTES, MAX_CUSTOM_HEADERS,
    RESERVED_HEADER_NAMES, RESERVED_HEADER_PREFIXES,
};
use proptest::prelude::*;

use crate::support::regressions_beside_module;

/// RFC 9110 §5.6.2 `tchar`, spelled out from the grammar.
const TCHAR: &[u8] =
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn code<N: Into<String>, V: Into<String>>(
    headers: impl IntoIterator<Item = (N, V)>,
) -> &'static str {
    match CustomHeaders::new(headers) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

fn one(name: &str, value: &str) -> &'static str {
    code([(name, value)])
}

/// The same name with its letters' case alternated, starting upper.
fn mixed_case(name: &str) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

#[test]
fn the_issue_bounds_are_20_headers_and_values_of_1_kib() {
    assert_eq!(MAX_CUSTOM_HEADERS, 20);
    assert_eq!(HEADER_VALUE_MAX_BYTES, 1024);
    assert_eq!(HEADER_NAME_MAX_BYTES, 256);
}

#[test]
fn at_most_20_headers_and_too_many_is_reported_first() {
    let headers = |n: usize| (0..n).map(|i| (format!("X-H{i}"), "v".to_owned()));
    assert_eq!(code(headers(20)), "ok");
    assert_eq!(code(headers(21)), "too_many");
    let mut bad: Vec<(String, String)> = headers(21).collect();
    bad[3].0 = "Host".to_owned();
    assert_eq!(code(bad), "too_many");
    let endless = (0..).map(|i: u64| (format!("X-{i}"), String::new()));
    assert_eq!(code(endless), "too_many");
    assert!(
        CustomHeaders::new(Vec::<(String, String)>::new())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn names_are_exactly_the_rfc_9110_token_characters() {
    for b in 0u8..=255 {
        let name = format!("X{}", char::from(b));
        let expected = if TCHAR.contains(&b) {
            "ok"
        } else {
            "invalid_name"
        };
        assert_eq!(one(&name, "v"), expected, "byte {b:#04x}");
    }
    assert_eq!(one(std::str::from_utf8(TCHAR).unwrap(), "v"), "ok");
    assert_eq!(one("", "v"), "invalid_name");
    assert_eq!(one("X-Ünïcode", "v"), "invalid_name");
    assert_eq!(one(&"X".repeat(256), "v"), "ok");
    assert_eq!(one(&"X".repeat(257), "v"), "invalid_name");
}

#[test]
fn every_reserved_name_is_refused_in_any_case() {
    let listed = [
        "Authorization",
        "Content-Type",
        "Content-Length",
        "Host",
        "Connection",
        "Transfer-Encoding",
        "TE",
        "Trailer",
        "Upgrade",
        "Keep-Alive",
        "User-Agent",
        "Cookie",
    ];
    for name in listed {
        assert!(
            RESERVED_HEADER_NAMES.contains(&name),
            "{name} is not in the list"
        );
    }
    let prefixed = [
        "Proxy-Authorization",
        "Proxy-Connection",
        "Proxy-Authenticate",
        "Proxy-",
        "Webhook-Id",
        "Webhook-Timestamp",
        "Webhook-Signature",
        "Webhook-Anything",
        "Proxy",
    ];
    for name in listed.into_iter().chain(prefixed) {
        for spelling in [
            name.to_owned(),
            name.to_ascii_lowercase(),
            name.to_ascii_uppercase(),
            mixed_case(name),
        ] {
            assert_eq!(one(&spelling, "v"), "reserved_name", "{spelling}");
        }
    }
    assert_eq!(RESERVED_HEADER_PREFIXES, ["Proxy-", "Webhook-"]);
}

#[test]
fn names_that_only_resemble_reserved_ones_are_allowed() {
    for name in [
        "X-Webhook-Id",
        "X-Authorization",
        "Authorization2",
        "Hosts",
        "Webhook",
        "Webhooks-Id",
        "Proxyx",
        "TEx",
        "Cookies",
        "Set-Cookie",
        "X-Api-Key",
        "Accept",
    ] {
        assert_eq!(one(name, "v"), "ok", "{name}");
    }
}

#[test]
fn values_are_visible_ascii_with_spaces_and_tabs_only_inside() {
    for b in 0u8..=127 {
        let c = char::from(b);
        let inside = format!("a{c}b");
        let expected = if (0x21..=0x7e).contains(&b) || b == b' ' || b == b'\t' {
            "ok"
        } else {
            "invalid_value"
        };
        assert_eq!(one("X-V", &inside), expected, "byte {b:#04x}");
    }
    assert_eq!(one("X-V", ""), "ok");
    assert_eq!(one("X-V", "x"), "ok");
    for edge in [" a", "a ", "\ta", "a\t", " ", "\t"] {
        assert_eq!(one("X-V", edge), "invalid_value", "{edge:?}");
    }
    for bad in ["a\r\nInjected: 1", "a\nb", "a\0b", "café", "a\u{7f}"] {
        assert_eq!(one("X-V", bad), "invalid_value", "{bad:?}");
    }
    assert_eq!(one("X-V", &"v".repeat(1024)), "ok");
    assert_eq!(one("X-V", &"v".repeat(1025)), "value_too_long");
}

#[test]
fn names_differing_only_in_case_are_duplicates_and_json_repeats_too() {
    assert_eq!(code([("X-Team", "a"), ("x-team", "b")]), "duplicate_name");
    assert_eq!(code([("X-Team", "a"), ("X-TEAM", "a")]), "duplicate_name");
    assert_eq!(code([("X-Team", "a"), ("X-Teams", "b")]), "ok");
    let e = serde_json::from_str::<CustomHeaders>(r#"{"X-A":"1","X-A":"2"}"#).unwrap_err();
    assert!(e.to_string().contains("must not repeat"), "{e}");
}

#[test]
fn the_first_rule_in_code_order_is_reported_whatever_the_member_order() {
    // Each entry breaks one rule; the last two only together.
    let mut remaining = vec![
        ("X-A".to_owned(), "a".to_owned()),
        ("X-V".to_owned(), " padded".to_owned()),
        ("X-L".to_owned(), "v".repeat(1025)),
        ("Host".to_owned(), "evil.example".to_owned()),
        ("Bad Name".to_owned(), "v".to_owned()),
        ("x-a".to_owned(), "b".to_owned()),
    ];
    for expected in [
        "invalid_name",
        "reserved_name",
        "value_too_long",
        "invalid_value",
        "duplicate_name",
    ] {
        assert_eq!(code(remaining.clone()), expected);
        assert_eq!(code(remaining.iter().rev().cloned()), expected, "reversed");
        remaining.retain(|e| code([e.clone()]) != expected);
    }
    assert_eq!(remaining.len(), 2);
    remaining.pop();
    assert_eq!(code(remaining), "ok");
}

#[test]
fn debug_and_errors_never_show_values_and_serde_keeps_the_order() {
    let h =
        CustomHeaders::new([("X-Api-Key", "sk_live_s3cr3t"), ("X-Team", "billing ops")]).unwrap();
    let debug = format!("{h:?} {h:#?}");
    assert!(
        !debug.contains("sk_live_s3cr3t") && !debug.contains("billing"),
        "{debug}"
    );
    assert!(debug.contains("X-Api-Key") && debug.contains("X-Team"));
    assert_eq!(h.names().collect::<Vec<_>>(), ["X-Api-Key", "X-Team"]);
    assert_eq!(
        h.expose_pairs().collect::<Vec<_>>(),
        [("X-Api-Key", "sk_live_s3cr3t"), ("X-Team", "billing ops")]
    );
    let json = serde_json::to_string(&h).unwrap();
    assert_eq!(
        json,
        r#"{"X-Api-Key":"sk_live_s3cr3t","X-Team":"billing ops"}"#
    );
    assert_eq!(serde_json::from_str::<CustomHeaders>(&json).unwrap(), h);
    let reordered: CustomHeaders =
        serde_json::from_str(r#"{"X-Team":"billing ops","X-Api-Key":"sk_live_s3cr3t"}"#).unwrap();
    assert_eq!(
        reordered.names().collect::<Vec<_>>(),
        ["X-Team", "X-Api-Key"]
    );

    let e = CustomHeaders::new([("X-Api-Key", "sk_live_s3cr3t\n")]).unwrap_err();
    let fe = e.to_field_error();
    assert_eq!(fe.field(), Field::Headers);
    assert_eq!(fe.field().as_str(), "headers");
    let shown = format!("{e} {e:?} {}", serde_json::to_string(&fe).unwrap());
    assert!(
        !shown.contains("sk_live") && !shown.contains("X-Api-Key"),
        "{shown}"
    );
    assert!(serde_json::from_str::<CustomHeaders>(r#"{"X-A":1}"#).is_err());
}

#[test]
fn a_huge_header_object_is_refused_as_too_many() {
    let members: Vec<String> = (0..100_000).map(|i| format!("\"X-{i}\":\"v\"")).collect();
    let json = format!("{{{}}}", members.join(","));
    let e = serde_json::from_str::<CustomHeaders>(&json).unwrap_err();
    assert!(e.to_string().contains("at most 20"), "{e}");
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}",
        1 => Just("Host".to_owned()),
        1 => Just("webhook-id".to_owned()),
        1 => Just("PROXY-Authorization".to_owned()),
        1 => "[ -~]{0,6}",
        1 => Just("X".repeat(257)),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[!-~]([ -~\t]{0,10}[!-~])?",
        1 => "[\\x00-\\x7f]{0,6}",
        1 => Just("v".repeat(1025)),
        1 => any::<String>(),
    ]
}

/// The rules as written in the docs, over one header.
fn expected_entry(name: &str, value: &str) -> Option<&'static str> {
    let n = name.as_bytes();
    let reserved = RESERVED_HEADER_NAMES
        .iter()
        .any(|r| n.eq_ignore_ascii_case(r.as_bytes()))
        || RESERVED_HEADER_PREFIXES
            .iter()
            .any(|p| n.len() >= p.len() && n[..p.len()].eq_ignore_ascii_case(p.as_bytes()));
    let v = value.as_bytes();
    let vchar = |b: u8| (0x21..=0x7e).contains(&b);
    let value_ok = v.is_empty()
        || (vchar(v[0])
            && vchar(v[v.len() - 1])
            && v.iter().all(|&b| vchar(b) || b == b' ' || b == b'\t'));
    if n.is_empty() || n.len() > 256 || !n.iter().all(|b| TCHAR.contains(b)) {
        Some("invalid_name")
    } else if reserved {
        Some("reserved_name")
    } else if v.len() > 1024 {
        Some("value_too_long")
    } else if !value_ok {
        Some("invalid_value")
    } else {
        None
    }
}

proptest! {
    #![proptest_config(regressions_beside_module(ProptestConfig::default()))]

    #[test]
    fn headers_accept_exactly_what_the_rules_say_and_debug_hides_values(
        entries in proptest::collection::vec((name(), value()), 0..23),
    ) {
        let order = [
            "invalid_name", "reserved_name", "value_too_long", "invalid_value", "duplicate_name",
        ];
        let mut found: Vec<&str> = entries.iter().filter_map(|(n, v)| expected_entry(n, v)).collect();
        for (i, (a, _)) in entries.iter().enumerate() {
            if entries[..i].iter().any(|(b, _)| a.eq_ignore_ascii_case(b)) {
                found.push("duplicate_name");
            }
        }
        let expected = if entries.len() > 20 {
            "too_many"
        } else {
            order.iter().find(|c| found.contains(c)).copied().unwrap_or("ok")
        };
        prop_assert_eq!(code(entries.clone()), expected);
        if let Ok(h) = CustomHeaders::new(entries.clone()) {
            // Debug is exactly the names: no value can show.
            let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
            prop_assert_eq!(format!("{h:?}"), format!("CustomHeaders {{ names: {names:?}, .. }}"));
            let json = serde_json::to_string(&h).unwrap();
            prop_assert_eq!(serde_json::from_str::<CustomHeaders>(&json).unwrap(), h);
        }
    }
}
