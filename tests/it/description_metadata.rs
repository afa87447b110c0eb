//! `Description` and `Metadata`: stored and returned, never interpreted;
//! bounded in characters as JSON Schema counts them; control characters
//! refused except where free text needs them.

use std::collections::BTreeMap;

use prets_destinations::description::{DESCRIPTION_MAX_CHARS, Description};
use prets_destinations::error::Field;
use prets_destinations::metadata::{
    METADATA_KEY_MAX_CHARS, METADATA_MAX_KEYS, METADATA_VALUE_MAX_CHARS, Metadata,
};
use proptest::prelude::*;

use crate::support::regressions_beside_module;

/// One character of each UTF-8 encoded width.
const WIDTHS: [char; 4] = ['a', 'é', '€', '🦀'];

fn description_code(s: &str) -> &'static str {
    match s.parse::<Description>() {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

fn metadata_code<K: Into<String>, V: Into<String>>(
    entries: impl IntoIterator<Item = (K, V)>,
) -> &'static str {
    match Metadata::new(entries) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

/// Every control character: C0, DEL and C1.
fn controls() -> impl Iterator<Item = char> {
    ('\0'..='\u{1f}').chain('\u{7f}'..='\u{9f}')
}

#[test]
fn the_issue_bounds_are_1024_then_50_keys_of_40_with_values_of_500() {
    assert_eq!(DESCRIPTION_MAX_CHARS, 1024);
    assert_eq!(METADATA_MAX_KEYS, 50);
    assert_eq!(METADATA_KEY_MAX_CHARS, 40);
    assert_eq!(METADATA_VALUE_MAX_CHARS, 500);
}

#[test]
fn description_length_counts_characters_in_every_utf8_width() {
    for c in WIDTHS {
        let max = c.to_string().repeat(1024);
        let over = c.to_string().repeat(1025);
        assert_eq!(description_code(&max), "ok", "1024 x {c:?}");
        assert_eq!(description_code(&over), "too_long", "1025 x {c:?}");
    }
    assert_eq!(description_code(""), "ok");
    assert!("".parse::<Description>().unwrap().is_empty());
}

#[test]
fn description_keeps_tab_and_line_breaks_and_refuses_every_other_control() {
    for c in controls() {
        let s = format!("line one{c}line two");
        let expected = if matches!(c, '\t' | '\n' | '\r') {
            "ok"
        } else {
            "control_character"
        };
        assert_eq!(description_code(&s), expected, "{c:?}");
    }
    // Line and paragraph separators are text in a multi-line description.
    assert_eq!(description_code("a\u{2028}b\u{2029}c"), "ok");
    let d: Description = "Invoices\r\n\tfor billing ".parse().unwrap();
    assert_eq!(d.as_str(), "Invoices\r\n\tfor billing ");
}

#[test]
fn description_reports_too_long_before_control_characters() {
    let s = format!("\0{}", "a".repeat(1024));
    assert_eq!(description_code(&s), "too_long");
}

#[test]
fn description_errors_name_the_field_and_never_the_value() {
    let e = "secret\u{1b}[31m".parse::<Description>().unwrap_err();
    let fe = e.to_field_error();
    assert_eq!(fe.field(), Field::Description);
    assert_eq!(fe.field().as_str(), "description");
    assert_eq!(fe.code(), "control_character");
    assert!(!e.to_string().contains("secret"));
    let json = serde_json::to_string(&fe).unwrap();
    assert!(!json.contains("secret"), "{json}");
}

#[test]
fn description_serde_is_a_json_string_read_through_the_same_rules() {
    let d: Description = serde_json::from_str(r#""Owned by \"ops\"\n""#).unwrap();
    assert_eq!(d.as_str(), "Owned by \"ops\"\n");
    assert_eq!(
        serde_json::to_string(&d).unwrap(),
        r#""Owned by \"ops\"\n""#
    );
    assert!(serde_json::from_str::<Description>(r#""nul \u0000""#).is_err());
    assert!(serde_json::from_str::<Description>("12").is_err());
    let long = format!("\"{}\"", "x".repeat(1025));
    assert!(serde_json::from_str::<Description>(&long).is_err());
}

#[test]
fn metadata_has_at_most_50_keys_and_says_so_first() {
    let entries = |n: usize| (0..n).map(|i| (format!("k{i}"), format!("v{i}")));
    assert_eq!(metadata_code(entries(50)), "ok");
    assert_eq!(Metadata::new(entries(50)).unwrap().len(), 50);
    assert_eq!(metadata_code(entries(51)), "too_many");
    // Too many wins over any rule a kept entry breaks.
    let mut bad: Vec<(String, String)> = entries(51).collect();
    bad[0].0 = String::new();
    assert_eq!(metadata_code(bad), "too_many");
    // Reading stops at the 51st entry: an endless source is refused.
    let endless = (0..).map(|i: u64| (i.to_string(), String::new()));
    assert_eq!(metadata_code(endless), "too_many");
    assert_eq!(metadata_code(Vec::<(String, String)>::new()), "ok");
}

#[test]
fn metadata_key_and_value_lengths_count_characters_in_every_utf8_width() {
    for c in WIDTHS {
        let k = |n: usize| c.to_string().repeat(n);
        assert_eq!(metadata_code([(k(40), "v".to_owned())]), "ok", "{c:?}");
        assert_eq!(
            metadata_code([(k(41), "v".to_owned())]),
            "key_too_long",
            "{c:?}"
        );
        assert_eq!(metadata_code([("k".to_owned(), k(500))]), "ok", "{c:?}");
        assert_eq!(
            metadata_code([("k".to_owned(), k(501))]),
            "value_too_long",
            "{c:?}"
        );
    }
    assert_eq!(metadata_code([("", "v")]), "key_too_short");
    assert_eq!(metadata_code([("k", "")]), "ok");
}

#[test]
fn metadata_keys_refuse_every_control_and_values_keep_tab_and_line_breaks() {
    for c in controls() {
        assert_eq!(
            metadata_code([(format!("k{c}"), "v".to_owned())]),
            "control_character",
            "key {c:?}"
        );
        let expected = if matches!(c, '\t' | '\n' | '\r') {
            "ok"
        } else {
            "control_character"
        };
        assert_eq!(
            metadata_code([("k".to_owned(), format!("v{c}"))]),
            expected,
            "value {c:?}"
        );
    }
    for sep in ['\u{2028}', '\u{2029}'] {
        assert_eq!(
            metadata_code([(format!("k{sep}"), "v".to_owned())]),
            "control_character"
        );
        assert_eq!(metadata_code([("k".to_owned(), format!("v{sep}"))]), "ok");
    }
}

#[test]
fn metadata_keys_are_exact_a_repeated_key_is_refused_and_case_makes_another() {
    assert_eq!(
        metadata_code([("team", "a"), ("team", "b")]),
        "duplicate_key"
    );
    let m = Metadata::new([("team", "a"), ("Team", "b")]).unwrap();
    assert_eq!(m.get("team"), Some("a"));
    assert_eq!(m.get("Team"), Some("b"));
    assert_eq!(m.get("TEAM"), None);
    // Through JSON, where a map type would silently keep the last one.
    let e = serde_json::from_str::<Metadata>(r#"{"team":"a","team":"b"}"#).unwrap_err();
    assert!(e.to_string().contains("must not repeat a key"), "{e}");
}

#[test]
fn metadata_reports_the_first_rule_in_code_order_whatever_the_member_order() {
    let entries = vec![
        ("k".to_owned(), "x".repeat(501)),
        ("a".repeat(41), "v".to_owned()),
        ("k".to_owned(), "\0".to_owned()),
        (String::new(), "v".to_owned()),
    ];
    let mut reversed = entries.clone();
    reversed.reverse();
    assert_eq!(metadata_code(entries.clone()), "key_too_short");
    assert_eq!(metadata_code(reversed), "key_too_short");
    let later = entries
        .into_iter()
        .filter(|(k, _)| !k.is_empty())
        .collect::<Vec<_>>();
    assert_eq!(metadata_code(later.clone()), "key_too_long");
    assert_eq!(metadata_code(later.into_iter().rev()), "key_too_long");
}

#[test]
fn metadata_serializes_as_an_object_in_key_order_and_reads_back() {
    let m = Metadata::new([("tier", "gold"), ("team", "billing")]).unwrap();
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(json, r#"{"team":"billing","tier":"gold"}"#);
    assert_eq!(serde_json::from_str::<Metadata>(&json).unwrap(), m);
    assert_eq!(
        m.iter().collect::<Vec<_>>(),
        [("team", "billing"), ("tier", "gold")]
    );
    let map: BTreeMap<String, String> = m.clone().into();
    assert_eq!(Metadata::try_from(map).unwrap(), m);
    assert!(serde_json::from_str::<Metadata>(r#"{"n":1}"#).is_err());
    assert!(serde_json::from_str::<Metadata>(r#"["a"]"#).is_err());
}

#[test]
fn metadata_errors_name_the_field_and_never_a_key_or_value() {
    let e = Metadata::new([("password", "hunter2\0")]).unwrap_err();
    let fe = e.to_field_error();
    assert_eq!(fe.field(), Field::Metadata);
    assert_eq!(fe.field().as_str(), "metadata");
    let shown = format!("{e} {e:?} {}", serde_json::to_string(&fe).unwrap());
    assert!(
        !shown.contains("password") && !shown.contains("hunter2"),
        "{shown}"
    );
}

#[test]
fn a_huge_metadata_object_is_refused_without_keeping_its_members() {
    let members: Vec<String> = (0..100_000).map(|i| format!("\"k{i}\":\"v\"")).collect();
    let json = format!("{{{}}}", members.join(","));
    let e = serde_json::from_str::<Metadata>(&json).unwrap_err();
    assert!(e.to_string().contains("at most 50 keys"), "{e}");
}

/// Characters with the interesting classes over-represented: ASCII, a tab
/// and line breaks, other controls, separators, and wide characters.
fn text_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('a', 'z'),
        1 => Just('\t'),
        1 => Just('\n'),
        1 => proptest::char::range('\0', '\u{1f}'),
        1 => proptest::char::range('\u{7f}', '\u{9f}'),
        1 => Just('\u{2028}'),
        1 => Just('🦀'),
        1 => any::<char>(),
    ]
}

/// A short text, sometimes padded to within a few characters of `bound`
/// (either side), so both sides of a length limit come up without
/// generating long strings character by character.
fn text(bound: usize) -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(text_char(), 0..8),
        prop::bool::weighted(0.25),
        0..8usize,
    )
        .prop_map(move |(chars, pad, extra)| {
            let mut s: String = chars.into_iter().collect();
            if pad {
                let have = s.chars().count();
                let want = (bound + extra).saturating_sub(4);
                s.push_str(&"é".repeat(want.saturating_sub(have)));
            }
            s
        })
}

fn is_refused_in_text(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

proptest! {
    #![proptest_config(regressions_beside_module(ProptestConfig::default()))]

    #[test]
    fn description_accepts_exactly_what_the_rules_say_and_round_trips(s in text(1024)) {
        let chars = s.chars().count();
        let expected = if chars > 1024 {
            "too_long"
        } else if s.chars().any(is_refused_in_text) {
            "control_character"
        } else {
            "ok"
        };
        prop_assert_eq!(description_code(&s), expected);
        let via_string = Description::try_from(s.clone());
        let via_serde = serde_json::from_str::<Description>(&serde_json::to_string(&s).unwrap());
        match s.parse::<Description>() {
            Ok(d) => {
                prop_assert_eq!(d.as_str(), s.as_str());
                prop_assert_eq!(via_string.unwrap(), d.clone());
                prop_assert_eq!(via_serde.unwrap(), d);
            }
            Err(e) => {
                prop_assert_eq!(via_string.unwrap_err(), e);
                prop_assert!(via_serde.is_err());
            }
        }
    }

    #[test]
    fn metadata_accepts_exactly_what_the_rules_say(
        entries in proptest::collection::vec((text(40), text(500)), 0..55),
    ) {
        let key_bad = |k: &str| k.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'));
        let mut keys = std::collections::HashSet::new();
        let duplicate = !entries.iter().all(|(k, _)| keys.insert(k.clone()));
        let expected = if entries.len() > 50 {
            "too_many"
        } else if entries.iter().any(|(k, _)| k.is_empty()) {
            "key_too_short"
        } else if entries.iter().any(|(k, _)| k.chars().count() > 40) {
            "key_too_long"
        } else if entries.iter().any(|(_, v)| v.chars().count() > 500) {
            "value_too_long"
        } else if entries.iter().any(|(k, v)| key_bad(k) || v.chars().any(is_refused_in_text)) {
            "control_character"
        } else if duplicate {
            "duplicate_key"
        } else {
            "ok"
        };
        prop_assert_eq!(metadata_code(entries.clone()), expected);
        if let Ok(m) = Metadata::new(entries.clone()) {
            let json = serde_json::to_string(&m).unwrap();
            prop_assert_eq!(serde_json::from_str::<Metadata>(&json).unwrap(), m.clone());
            for (k, v) in &entries {
                prop_assert_eq!(m.get(k), Some(v.as_str()));
            }
        }
    }
}
