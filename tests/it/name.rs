//! `DestinationName` against the spec's `name` schema: a string of 1 to 128
//! characters, counted as JSON Schema counts them (Unicode scalar values),
//! plus the crate's documented refusals (control characters, whitespace only).

use prets_destinations::DestinationName;
use prets_destinations::error::Field;
use prets_destinations::name::{InvalidName, NAME_MAX_CHARS};

/// One character of each UTF-8 encoded width, with that width.
const WIDTHS: [(char, usize); 4] = [('a', 1), ('é', 2), ('€', 3), ('🦀', 4)];

fn parse(s: &str) -> Result<DestinationName, InvalidName> {
    s.parse()
}

fn code(s: &str) -> &'static str {
    match parse(s) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

#[test]
fn schema_bounds_are_one_and_128() {
    // "Required string length: 1 - 128"
    assert_eq!(NAME_MAX_CHARS, 128);
}

#[test]
fn length_boundaries_count_characters_in_every_utf8_width() {
    for (c, width) in WIDTHS {
        assert_eq!(c.len_utf8(), width);
        let zero = String::new();
        let one = c.to_string();
        let max = c.to_string().repeat(128);
        let over = c.to_string().repeat(129);
        assert_eq!(max.len(), 128 * width);
        assert_eq!(over.len(), 129 * width);

        assert_eq!(code(&zero), "too_short", "0 x {c:?}");
        assert_eq!(code(&one), "ok", "1 x {c:?}");
        assert_eq!(code(&max), "ok", "128 x {c:?}");
        assert_eq!(code(&over), "too_long", "129 x {c:?}");
    }
}

#[test]
fn the_crate_doc_examples_hold_128_emoji_valid_129_ascii_invalid() {
    let emoji = "🦀".repeat(128);
    assert_eq!(emoji.len(), 512);
    assert_eq!(parse(&emoji).map(|n| n.into_string()), Ok(emoji));
    assert_eq!(code(&"a".repeat(129)), "too_long");
}

#[test]
fn mixed_widths_count_characters_not_bytes() {
    // 127 ASCII + one 4-byte char = 128 characters, 131 bytes.
    let s = format!("{}🦀", "a".repeat(127));
    assert_eq!(s.len(), 131);
    assert_eq!(code(&s), "ok");
    // One more ASCII character makes 129.
    assert_eq!(code(&format!("a{s}")), "too_long");

    // Every mix of widths at exactly 128 and 129 characters.
    for (i, (a, _)) in WIDTHS.iter().enumerate() {
        for (b, _) in WIDTHS.iter().skip(i) {
            let max: String = (0..128).map(|k| if k % 2 == 0 { *a } else { *b }).collect();
            assert_eq!(code(&max), "ok", "{a:?}/{b:?}");
            let over = format!("{max}{a}");
            assert_eq!(code(&over), "too_long", "{a:?}/{b:?}");
        }
    }
}

#[test]
fn combining_marks_are_separate_characters() {
    // "e" + U+0301 is one grapheme but two scalar values, as JSON Schema counts.
    let pair = "e\u{301}";
    assert_eq!(code(&pair.repeat(64)), "ok");
    assert_eq!(code(&format!("{}e", pair.repeat(64))), "too_long");
}

#[test]
fn much_longer_inputs_are_too_long_not_a_panic() {
    assert_eq!(code(&"x".repeat(1 << 20)), "too_long");
    assert_eq!(code(&"🦀".repeat(1 << 18)), "too_long");
    // Too long and containing a control character: refused either way.
    assert!(parse(&format!("{}\0", "x".repeat(200))).is_err());
}

/// Every C0 control, DEL and every C1 control.
fn controls() -> impl Iterator<Item = char> {
    (0x00u32..=0x1F)
        .chain([0x7F])
        .chain(0x80..=0x9F)
        .filter_map(char::from_u32)
}

#[test]
fn every_control_character_is_refused_anywhere() {
    let mut seen = 0;
    for c in controls() {
        seen += 1;
        for s in [
            c.to_string(),
            format!("{c}Production"),
            format!("Prod{c}uction"),
            format!("Production{c}"),
            format!(" {c} "),
        ] {
            assert_eq!(code(&s), "control_character", "{s:?}");
        }
    }
    // 32 C0 + DEL + 32 C1.
    assert_eq!(seen, 65);
}

#[test]
fn nul_is_refused_even_in_a_max_length_name() {
    let s = format!("{}\0", "a".repeat(127));
    assert_eq!(s.chars().count(), 128);
    assert_eq!(code(&s), "control_character");
}

#[test]
fn characters_next_to_the_control_ranges_are_accepted() {
    // U+0020 (after C0), U+007E (before DEL), U+00A0 (after C1), U+00A1.
    for s in ["a b", "a~b", "a\u{A0}b", "\u{A1}", "\u{FFFD}", "\u{10FFFF}"] {
        assert_eq!(code(s), "ok", "{s:?}");
    }
}

#[test]
fn whitespace_only_names_are_blank() {
    for s in [
        " ",
        "   ",
        &" ".repeat(128),
        "\u{A0}",
        "\u{2003}",
        "\u{3000}",
        " \u{3000} ",
    ] {
        assert_eq!(code(s), "blank", "{s:?}");
    }
    // Whitespace that is also a control character is reported as a control.
    for s in ["\t", "\n", " \r\n ", "\u{85}"] {
        assert_eq!(code(s), "control_character", "{s:?}");
    }
    // Line and paragraph separators would break a one-line label.
    for s in ["a\u{2028}b", "Production\u{2029}", "\u{2028}"] {
        assert_eq!(code(s), "control_character", "{s:?}");
    }
}

#[test]
fn names_of_only_invisible_format_characters_are_blank() {
    for s in [
        "\u{200B}",
        "\u{FEFF}",
        "\u{2060}",
        "\u{00AD}",
        "\u{200E}\u{200F}",
        "\u{202E}",
        " \u{200B} \u{2066}\u{2069}",
        "\u{3164}",
        "\u{115F}\u{1160}",
        "\u{2800}",
        "\u{FE0F}",
        "\u{E0020}\u{E007F}",
        "\u{FFA0}",
    ] {
        assert_eq!(code(s), "blank", "{s:?}");
    }
    // Invisible characters inside a visible name are kept as sent.
    for s in [
        "a\u{200B}b",
        "\u{202E}abc",
        "\u{FEFF}Production",
        "x\u{00AD}y",
    ] {
        assert_eq!(parse(s).unwrap().as_str(), s);
    }
}

#[test]
fn names_are_echoed_exactly_including_surrounding_spaces() {
    for s in [
        "Production",
        " Production",
        "Production ",
        "  Prod  uction  ",
        "\u{3000}名前\u{3000}",
        "e\u{301}",
        "é",
        "🦀 crab",
    ] {
        let name = parse(s).unwrap();
        assert_eq!(name.as_str(), s);
        assert_eq!(AsRef::<str>::as_ref(&name), s);
        assert_eq!(name.to_string(), s);
        assert_eq!(String::from(name.clone()), s);
        assert_eq!(name.into_string(), s);
    }
}

#[test]
fn every_constructor_agrees() {
    let inputs = [
        String::new(),
        "ok".to_owned(),
        " ".to_owned(),
        "a\u{0}".to_owned(),
        "🦀".repeat(128),
        "🦀".repeat(129),
    ];
    for s in inputs {
        let from_str = s.parse::<DestinationName>();
        let from_ref = DestinationName::try_from(s.as_str());
        let from_owned = DestinationName::try_from(s.clone());
        let validated = DestinationName::validate(&s);
        assert_eq!(from_str, from_ref, "{s:?}");
        assert_eq!(from_str, from_owned, "{s:?}");
        assert_eq!(
            from_str.as_ref().map(|_| ()).map_err(|e| *e),
            validated,
            "{s:?}"
        );
    }
}

#[test]
fn errors_name_the_field_and_follow_the_message_style() {
    for s in ["", &"a".repeat(129), "a\0", " "] {
        let e = parse(s).unwrap_err();
        let fe = e.to_field_error();
        assert_eq!(fe.field(), Field::Name);
        assert_eq!(fe.field().as_str(), "name");
        assert_eq!(fe.code(), e.code());
        assert_eq!(fe.message(), e.message());
        assert_eq!(e.to_string(), e.message());
        let m = e.message();
        assert!(!m.is_empty());
        assert_eq!(m, m.to_lowercase(), "{m}");
        assert!(!m.ends_with('.'), "{m}");
    }
}

#[test]
fn errors_do_not_contain_the_rejected_value() {
    let marker = "zqxjmarker";
    for s in [
        format!("{marker}\0"),
        format!("{marker}{}", "x".repeat(200)),
        format!("{marker}\u{7F}"),
    ] {
        let e = parse(&s).unwrap_err();
        for text in [e.to_string(), format!("{e:?}"), e.message().to_owned()] {
            assert!(!text.contains(marker), "{text}");
        }
        let json = serde_json::to_string(&e.to_field_error()).unwrap();
        assert!(!json.contains(marker), "{json}");
    }
}

#[test]
fn serde_round_trips_exactly() {
    for s in [
        "Production",
        "  spaced  ",
        "🦀".repeat(128).as_str(),
        "\"quoted\" \\",
    ] {
        let name = parse(s).unwrap();
        let json = serde_json::to_string(&name).unwrap();
        assert_eq!(json, serde_json::to_string(s).unwrap());
        let back: DestinationName = serde_json::from_str(&json).unwrap();
        assert_eq!(back, name);
        assert_eq!(back.as_str(), s);
    }
}

#[test]
fn json_surrogate_pairs_count_as_one_character() {
    // U+1F980 written as a JSON escape is two UTF-16 code units, one character.
    let max = format!("\"{}\"", r"\ud83e\udd80".repeat(128));
    let name: DestinationName = serde_json::from_str(&max).unwrap();
    assert_eq!(name.as_str(), "🦀".repeat(128));
    let over = format!("\"{}\"", r"\ud83e\udd80".repeat(129));
    assert!(serde_json::from_str::<DestinationName>(&over).is_err());
}

#[test]
fn invalid_data_cannot_be_deserialized_into_a_name() {
    for json in [
        r#""""#.to_owned(),
        r#""   ""#.to_owned(),
        r#""a\u0000b""#.to_owned(),
        r#""a\u007fb""#.to_owned(),
        r#""\u0085""#.to_owned(),
        r#""\t""#.to_owned(),
        format!("\"{}\"", "a".repeat(129)),
        format!("\"{}\"", "🦀".repeat(129)),
        // A lone surrogate is not a Unicode scalar value.
        r#""\ud800""#.to_owned(),
        "null".to_owned(),
        "7".to_owned(),
        "[]".to_owned(),
        "{}".to_owned(),
    ] {
        assert!(
            serde_json::from_str::<DestinationName>(&json).is_err(),
            "{json}"
        );
    }
}
