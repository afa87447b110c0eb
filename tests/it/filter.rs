//! `FilterTypes`: which event types reach a destination. Entries are event
//! types, `*` or prefix wildcards; matching is checked against a regular
//! expression built from the documented semantics.

use prets_destinations::delivery::{
    EventType, FILTER_TYPE_PATTERN, FilterType, FilterTypes, MAX_FILTER_TYPES,
};
use prets_destinations::error::Field;
use proptest::prelude::*;
use regex_lite::Regex;

use crate::support::regressions_beside_module;

fn t(s: &str) -> EventType {
    s.parse().unwrap()
}

fn code<S: Into<String>>(entries: impl IntoIterator<Item = S>) -> &'static str {
    match FilterTypes::new(entries) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

fn filter(entries: &[&str]) -> FilterTypes {
    FilterTypes::new(entries.iter().copied()).unwrap()
}

/// The documented meaning of an entry as a regular expression: `*` at the
/// end stands for any rest, empty included; otherwise the type exactly.
fn reference(entry: &str) -> Regex {
    let re = match entry.strip_suffix('*') {
        Some(prefix) => format!("^{}.*$", regex_lite::escape(prefix)),
        None => format!("^{}$", regex_lite::escape(entry)),
    };
    Regex::new(&re).unwrap()
}

#[test]
fn the_documented_table_holds() {
    let cases: [(&str, &[&str], &[&str]); 4] = [
        (
            "invoice.paid",
            &["invoice.paid"],
            &[
                "Invoice.paid",
                "invoice.paid.late",
                "invoice",
                "invoice.pai",
            ],
        ),
        ("*", &["a", "invoice.paid", "Z:9_-."], &[]),
        (
            "invoice.*",
            &["invoice.paid", "invoice.paid.late", "invoice."],
            &["invoice", "invoices.sent", "Invoice.paid", "xinvoice.paid"],
        ),
        (
            "invoice*",
            &["invoice", "invoices.sent", "invoice.paid"],
            &["inv", "Invoice", "my.invoice"],
        ),
    ];
    for (entry, yes, no) in cases {
        let f = filter(&[entry]);
        for s in yes {
            assert!(f.matches(&t(s)), "{entry} should match {s}");
        }
        for s in no {
            assert!(!f.matches(&t(s)), "{entry} should not match {s}");
        }
    }
}

#[test]
fn an_empty_filter_lets_every_event_through() {
    let empty = FilterTypes::default();
    assert!(empty.is_empty() && empty.is_every());
    assert!(empty.matches(&t("anything.at.all")));
    assert_eq!(FilterTypes::new(Vec::<String>::new()).unwrap(), empty);
    assert!(filter(&["a", "*"]).is_every());
    assert!(!filter(&["a", "b.*"]).is_every());
}

#[test]
fn several_entries_match_when_any_does() {
    let f = filter(&["customer.created", "invoice.*"]);
    assert!(f.matches(&t("customer.created")));
    assert!(f.matches(&t("invoice.voided")));
    assert!(!f.matches(&t("customer.deleted")));
    assert_eq!(
        f.iter().collect::<Vec<_>>(),
        [
            FilterType::Exact("customer.created"),
            FilterType::Prefix("invoice.")
        ]
    );
    assert_eq!(filter(&["*"]).iter().next(), Some(FilterType::Prefix("")));
}

#[test]
fn malformed_entries_are_refused_with_pattern() {
    let max_type = "a".repeat(128);
    let max_prefix = format!("{}*", "a".repeat(127));
    assert_eq!(code([max_type.as_str()]), "ok");
    assert_eq!(code([max_prefix.as_str()]), "ok");
    for bad in [
        String::new(),
        "**".to_owned(),
        "*.paid".to_owned(),
        "inv*ice".to_owned(),
        "invoice.*.*".to_owned(),
        " invoice".to_owned(),
        "invoice paid".to_owned(),
        "invoice/paid".to_owned(),
        "facture.payée".to_owned(),
        "a".repeat(129),
        format!("{}*", "a".repeat(128)),
    ] {
        assert_eq!(code([bad.as_str()]), "pattern", "{bad:?}");
        assert_eq!(code(["ok", bad.as_str()]), "pattern", "{bad:?} second");
    }
}

#[test]
fn at_most_100_entries_each_once() {
    let entries = |n: usize| (0..n).map(|i| format!("type.{i}"));
    assert_eq!(code(entries(100)), "ok");
    assert_eq!(MAX_FILTER_TYPES, 100);
    assert_eq!(code(entries(101)), "too_many");
    // Too many is reported before any entry is judged.
    assert_eq!(
        code(entries(100).chain(["bad entry".to_owned()])),
        "too_many"
    );
    assert_eq!(code((0..).map(|i: u64| i.to_string())), "too_many");
    assert_eq!(code(["a.*", "b", "a.*"]), "duplicate");
    assert_eq!(code(["bad entry", "a", "a"]), "pattern");
    // Different spellings are different entries, even when one covers the other.
    assert_eq!(code(["a", "A", "a*", "a.*", "*"]), "ok");
}

#[test]
fn errors_name_the_field_and_never_an_entry() {
    let e = FilterTypes::new(["secret.type", "secret type"]).unwrap_err();
    let fe = e.to_field_error();
    assert_eq!(fe.field(), Field::FilterTypes);
    assert_eq!(fe.field().as_str(), "filterTypes");
    let shown = format!("{e} {e:?} {}", serde_json::to_string(&fe).unwrap());
    assert!(!shown.contains("secret"), "{shown}");
}

#[test]
fn serde_is_a_json_array_in_the_order_sent() {
    let f: FilterTypes = serde_json::from_str(r#"["z.*","a","*"]"#).unwrap();
    assert_eq!(f.entries().collect::<Vec<_>>(), ["z.*", "a", "*"]);
    assert_eq!(serde_json::to_string(&f).unwrap(), r#"["z.*","a","*"]"#);
    let back: Vec<String> = f.clone().into();
    assert_eq!(FilterTypes::try_from(back).unwrap(), f);
    assert!(serde_json::from_str::<FilterTypes>(r#"["a",1]"#).is_err());
    assert!(serde_json::from_str::<FilterTypes>(r#"["a b"]"#).is_err());
    assert!(serde_json::from_str::<FilterTypes>(r#""a""#).is_err());
    let many = format!("[{}]", vec!["\"a\""; 100_000].join(","));
    let e = serde_json::from_str::<FilterTypes>(&many).unwrap_err();
    assert!(e.to_string().contains("at most 100"), "{e}");
}

#[test]
fn the_published_pattern_is_the_entry_rule() {
    let re = Regex::new(FILTER_TYPE_PATTERN).unwrap();
    for s in [
        "a",
        "*",
        "a*",
        "a.*",
        "**",
        "*a",
        "",
        " ",
        "a b",
        "é",
        &"a".repeat(128),
        &"a".repeat(129),
        &format!("{}*", "a".repeat(127)),
        &format!("{}*", "a".repeat(128)),
    ] {
        assert_eq!(re.is_match(s), code([s]) == "ok", "{s:?}");
    }
}

fn type_text() -> impl Strategy<Value = String> {
    "[a-cA.:_-]{1,6}"
}

fn entry() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => type_text(),
        3 => "[a-cA.:_-]{0,4}".prop_map(|p| format!("{p}*")),
        1 => "[a-c.* ]{0,5}",
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(regressions_beside_module(ProptestConfig::default()))]

    #[test]
    fn matches_agrees_with_the_documented_semantics(
        entries in proptest::collection::vec(entry(), 0..8),
        types in proptest::collection::vec(type_text(), 1..8),
    ) {
        let pattern = Regex::new(FILTER_TYPE_PATTERN).unwrap();
        let mut seen = std::collections::HashSet::new();
        let expected = if !entries.iter().all(|e| pattern.is_match(e)) {
            "pattern"
        } else if !entries.iter().all(|e| seen.insert(e.clone())) {
            "duplicate"
        } else {
            "ok"
        };
        prop_assert_eq!(code(entries.clone()), expected);
        if let Ok(f) = FilterTypes::new(entries.clone()) {
            for ty in &types {
                let want = entries.is_empty() || entries.iter().any(|e| reference(e).is_match(ty));
                prop_assert_eq!(f.matches(&t(ty)), want, "{:?} on {}", entries, ty);
                prop_assert_eq!(
                    f.iter().any(|entry| entry.matches(&t(ty))) || f.is_empty(),
                    want
                );
            }
            let json = serde_json::to_string(&f).unwrap();
            prop_assert_eq!(serde_json::from_str::<FilterTypes>(&json).unwrap(), f);
        }
    }
}
