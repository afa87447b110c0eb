//! `DestinationId` against the spec's `destinationId` pattern
//! `^whk_[0-9A-HJKMNP-TV-Z]{26}$`: every pattern-valid id is accepted,
//! including the ones whose 130 bits do not fit a 128-bit ULID.

use prets_destinations::error::Field;
use prets_destinations::id::{ID_PATTERN, ID_PREFIX, InvalidDestinationId};
use prets_destinations::rand_core::{Rng, SeedableRng};
use prets_destinations::{DestinationId, Timestamp};
use rand_chacha::ChaCha20Rng;
use regex_lite::Regex;

/// The `destinationId` pattern exactly as printed in the API reference.
const SPEC_ID_PATTERN: &str = "^whk_[0-9A-HJKMNP-TV-Z]{26}$";

/// `[0-9A-HJKMNP-TV-Z]` written out: Crockford's base32 digits in value order.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The ULID spec's own example value.
const EXAMPLE: &str = "whk_01ARZ3NDEKTSV4RRFFQ69G5FAV";

fn parse(s: &str) -> Result<DestinationId, InvalidDestinationId> {
    s.parse()
}

fn code(s: &str) -> &'static str {
    match parse(s) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

/// The 130-bit number the 26 characters spell, if it fits in 128 bits; `None`
/// if a character is not a Crockford digit or the value overflows.
fn decode(ulid: &str) -> Option<u128> {
    let mut v: u128 = 0;
    for c in ulid.bytes() {
        let digit = CROCKFORD.iter().position(|&d| d == c)?;
        v = v.checked_mul(32)?.checked_add(digit as u128)?;
    }
    Some(v)
}

fn id_from(digits: impl IntoIterator<Item = u8>) -> String {
    let body: String = digits.into_iter().map(char::from).collect();
    format!("whk_{body}")
}

#[test]
fn published_constants_are_the_spec_text() {
    assert_eq!(ID_PATTERN, SPEC_ID_PATTERN);
    assert_eq!(ID_PREFIX, "whk_");
}

#[test]
fn the_written_out_alphabet_is_exactly_the_pattern_class() {
    let re = Regex::new(ID_PATTERN).unwrap();
    for b in 0u8..=127 {
        let s = format!("whk_{}", char::from(b).to_string().repeat(26));
        assert_eq!(
            re.is_match(&s),
            CROCKFORD.contains(&b),
            "{:?}",
            char::from(b)
        );
    }
}

#[test]
fn canonical_ids_round_trip_exactly_and_decode_to_their_value() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut samples = vec![
        EXAMPLE.to_owned(),
        "whk_00000000000000000000000000".to_owned(),
        "whk_7ZZZZZZZZZZZZZZZZZZZZZZZZZ".to_owned(),
        "whk_0123456789ABCDEFGHJKMNPQRS".to_owned(),
        "whk_7TVWXYZ0123456789ABCDEFGHJ".to_owned(),
        "whk_80000000000000000000000000".to_owned(),
        "whk_ZZZZZZZZZZZZZZZZZZZZZZZZZZ".to_owned(),
        "whk_ZTVWXYZ0123456789ABCDEFGHJ".to_owned(),
    ];
    for _ in 0..500 {
        samples.push(id_from(
            (0..26).map(|_| CROCKFORD[(rng.next_u32() % 32) as usize]),
        ));
    }
    for s in samples {
        let id = parse(&s).unwrap();
        assert_eq!(id.to_string(), s);
        assert_eq!(String::from(id), s);
        assert_eq!(format!("{id:?}"), format!("DestinationId({s})"));
        assert_eq!(id.as_str(), s);
        assert_eq!(id.body(), &s.as_bytes()[4..]);
        let value = decode(&s[4..]);
        assert_eq!(id.to_ulid(), value, "{s}");
        assert_eq!(id.timestamp_ms(), value.map(|v| (v >> 80) as u64), "{s}");
        if let Some(value) = value {
            assert_eq!(DestinationId::from_ulid(value), id);
        }
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<DestinationId>(&json).unwrap(), id);
    }
}

#[test]
fn the_largest_ulid_is_all_ones_and_the_bounds_are_the_extremes() {
    let max = parse("whk_7ZZZZZZZZZZZZZZZZZZZZZZZZZ").unwrap();
    assert_eq!(max.to_ulid(), Some(u128::MAX));
    assert_eq!(DestinationId::from_ulid(u128::MAX), max);
    assert_eq!(
        DestinationId::MIN,
        parse("whk_00000000000000000000000000").unwrap()
    );
    assert_eq!(DestinationId::MIN.to_ulid(), Some(0));
    assert_eq!(DestinationId::from_ulid(0), DestinationId::MIN);
    assert_eq!(
        DestinationId::MAX,
        parse("whk_ZZZZZZZZZZZZZZZZZZZZZZZZZZ").unwrap()
    );
    assert_eq!(DestinationId::MAX.to_ulid(), None);
    assert_eq!(DestinationId::MIN.predecessor(), None);
    assert_eq!(DestinationId::MAX.successor(), None);
}

#[test]
fn a_first_character_above_7_is_a_valid_id_wider_than_a_ulid() {
    let mut count = 0;
    for &first in CROCKFORD.iter().filter(|&&c| c > b'7') {
        count += 1;
        for rest in [b'0', b'Z', b'7'] {
            let s = id_from(core::iter::once(first).chain(core::iter::repeat_n(rest, 25)));
            assert!(decode(&s[4..]).is_none(), "{s} needs more than 128 bits");
            assert!(Regex::new(ID_PATTERN).unwrap().is_match(&s), "{s}");
            let id = parse(&s).unwrap();
            assert_eq!(id.to_string(), s);
            assert_eq!(id.to_ulid(), None, "{s}");
            assert_eq!(id.timestamp_ms(), None, "{s}");
            assert!(id > DestinationId::from_ulid(u128::MAX), "{s}");
        }
    }
    // 8, 9 and the 22 letters.
    assert_eq!(count, 24);
}

#[test]
fn random_pattern_valid_strings_are_all_accepted_and_order_like_their_text() {
    let re = Regex::new(ID_PATTERN).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let mut pairs = Vec::new();
    for _ in 0..2000 {
        // Bias towards shared prefixes so neighbours differ late.
        let len = (rng.next_u32() % 27) as usize;
        let shared: Vec<u8> = (0..len)
            .map(|_| CROCKFORD[(rng.next_u32() % 4) as usize])
            .collect();
        let s = id_from(
            shared
                .into_iter()
                .chain((len..26).map(|_| CROCKFORD[(rng.next_u32() % 32) as usize])),
        );
        assert!(re.is_match(&s), "{s}");
        let id = parse(&s).unwrap();
        assert_eq!(id.to_string(), s);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<DestinationId>(&json).unwrap(), id);
        pairs.push((id, s));
    }
    for w in pairs.windows(2) {
        let ((a, sa), (b, sb)) = (&w[0], &w[1]);
        assert_eq!(a.cmp(b), sa.cmp(sb), "{sa} {sb}");
        assert_eq!(a == b, sa == sb);
    }
}

#[test]
fn successor_and_predecessor_are_the_neighbours_in_text_order() {
    let cases = [
        (
            "whk_00000000000000000000000000",
            "whk_00000000000000000000000001",
        ),
        (
            "whk_0000000000000000000000000Z",
            "whk_00000000000000000000000010",
        ),
        (
            "whk_7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
            "whk_80000000000000000000000000",
        ),
        (
            "whk_0000000000000000000000000H",
            "whk_0000000000000000000000000J",
        ),
        (
            "whk_YZZZZZZZZZZZZZZZZZZZZZZZZZ",
            "whk_Z0000000000000000000000000",
        ),
    ];
    for (a, b) in cases {
        let (a, b) = (parse(a).unwrap(), parse(b).unwrap());
        assert!(a < b);
        assert_eq!(a.successor(), Some(b), "{a}");
        assert_eq!(b.predecessor(), Some(a), "{b}");
    }
    // Against the numeric value where it fits.
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for _ in 0..500 {
        let v = (u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64()))
            >> (rng.next_u32() % 128);
        let id = DestinationId::from_ulid(v);
        if let Some(next) = v.checked_add(1) {
            assert_eq!(id.successor(), Some(DestinationId::from_ulid(next)));
        }
        if let Some(prev) = v.checked_sub(1) {
            assert_eq!(id.predecessor(), Some(DestinationId::from_ulid(prev)));
        }
    }
}

#[test]
fn lowercase_is_refused_not_normalised() {
    assert_eq!(code(&EXAMPLE.to_lowercase()), "pattern");
    // One lowercase letter anywhere.
    for (i, c) in EXAMPLE.char_indices().skip(4) {
        if c.is_ascii_alphabetic() {
            let mut s = EXAMPLE.to_owned();
            s.replace_range(i..=i, &c.to_ascii_lowercase().to_string());
            assert_eq!(code(&s), "pattern", "{s}");
        }
    }
    // A lowercase first letter is a pattern error too.
    assert_eq!(code("whk_z0000000000000000000000000"), "pattern");
}

#[test]
fn crockford_aliases_are_refused_everywhere() {
    for alias in ['I', 'L', 'O', 'U', 'i', 'l', 'o', 'u'] {
        for pos in [4, 5, 17, 29] {
            let mut s = "whk_00000000000000000000000000".to_owned();
            s.replace_range(pos..=pos, &alias.to_string());
            assert_eq!(code(&s), "pattern", "{s}");
        }
    }
}

#[test]
fn wrong_prefixes_are_refused() {
    let body = &EXAMPLE[4..];
    for prefix in [
        "WHK_", "Whk_", "whk-", "whk", "wh_", "whk__", " whk_", "whk_ ", "whsec_", "",
    ] {
        let s = format!("{prefix}{body}");
        assert_eq!(code(&s), "pattern", "{s:?}");
    }
}

#[test]
fn every_length_but_26_characters_is_refused() {
    for n in (0..=40).filter(|&n| n != 26) {
        let s = format!("whk_{}", "0".repeat(n));
        assert_eq!(code(&s), "pattern", "{n}");
    }
    // 25 and 27 characters with a first character above 7 are pattern errors.
    assert_eq!(code(&format!("whk_8{}", "0".repeat(24))), "pattern");
    assert_eq!(code(&format!("whk_8{}", "0".repeat(26))), "pattern");
    assert_eq!(code(&format!("whk_{}", "0".repeat(1 << 16))), "pattern");
}

#[test]
fn other_bytes_and_trailing_newlines_are_refused() {
    for s in [
        format!("{EXAMPLE}\n"),
        format!("\n{EXAMPLE}"),
        format!("{EXAMPLE}\0"),
        // 30 bytes, 29 characters.
        format!("whk_{}é", "0".repeat(24)),
        format!("whk_{}é", "0".repeat(25)),
        format!("whk_{}Ｚ", "0".repeat(25)),
        "whk_0000000000000-0000000000".to_owned(),
        "whk_000000000000000000000000 0".to_owned(),
    ] {
        assert_eq!(code(&s), "pattern", "{s:?}");
    }
}

#[test]
fn from_parts_keeps_the_time_and_the_low_80_random_bits() {
    let mask: u128 = (1 << 80) - 1;
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    // The last value is the latest instant a Timestamp can hold (9999-12-31).
    for millis in [0, 1, 1_699_335_116_250, 253_402_300_799_999] {
        let now = Timestamp::from_unix_millis(millis).unwrap();
        for _ in 0..20 {
            let random = u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64());
            let id = DestinationId::from_parts(now, random);
            assert_eq!(id.timestamp_ms(), Some(millis));
            let value = id.to_ulid().unwrap();
            assert_eq!(value & mask, random & mask);
            assert_eq!(value >> 80, u128::from(millis));
            assert_eq!(parse(id.as_str()).unwrap(), id);
        }
        assert_eq!(
            DestinationId::from_parts(now, u128::MAX).to_ulid().unwrap() & mask,
            mask
        );
    }
}

#[test]
fn generated_ids_carry_the_injected_time_and_round_trip() {
    let now = Timestamp::from_unix_millis(1_699_335_116_250).unwrap();
    let re = Regex::new(ID_PATTERN).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let id = DestinationId::generate(now, &mut rng);
        assert_eq!(id.timestamp_ms(), Some(1_699_335_116_250));
        let text = id.to_string();
        assert!(re.is_match(&text), "{text}");
        assert_eq!(parse(&text).unwrap(), id);
        assert!(seen.insert(id), "two equal ids from one generator");
    }
    // The same seed gives the same ids: the rng is the only source of randomness.
    let a = DestinationId::generate(now, &mut ChaCha20Rng::seed_from_u64(4));
    let b = DestinationId::generate(now, &mut ChaCha20Rng::seed_from_u64(4));
    assert_eq!(a, b);
}

#[test]
fn ids_sort_like_their_text() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mut ids: Vec<DestinationId> = (0..200)
        .map(|i| {
            let now = Timestamp::from_unix_millis(u64::from(rng.next_u32()) * (i % 3)).unwrap();
            DestinationId::generate(now, &mut rng)
        })
        .collect();
    let mut texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
    ids.sort();
    texts.sort();
    let sorted: Vec<String> = ids.iter().map(ToString::to_string).collect();
    assert_eq!(sorted, texts);
}

#[test]
fn every_constructor_agrees() {
    for s in [EXAMPLE, "whk_8ZZZZZZZZZZZZZZZZZZZZZZZZZ", "whk_", ""] {
        let a = s.parse::<DestinationId>();
        assert_eq!(a, DestinationId::try_from(s), "{s}");
        assert_eq!(a, DestinationId::try_from(s.to_owned()), "{s}");
    }
}

#[test]
fn invalid_data_cannot_be_deserialized_into_an_id() {
    for json in [
        "\"whk_01arz3ndektsv4rrffq69g5fav\"",
        "\"whk_81ARZ3NDEKTSV4RRFFQ69G5FAU\"",
        "\"whk_01ARZ3NDEKTSV4RRFFQ69G5FA\"",
        "\"WHK_01ARZ3NDEKTSV4RRFFQ69G5FAV\"",
        "\"<string>\"",
        "null",
        "1",
    ] {
        assert!(
            serde_json::from_str::<DestinationId>(json).is_err(),
            "{json}"
        );
    }
}

#[test]
fn errors_name_the_field_follow_the_message_style_and_omit_the_value() {
    for s in [
        "whk_zqxj0000000000000000000000",
        "whk_ZQXJ000000000000000000000",
        "zqxj",
    ] {
        let e = parse(s).unwrap_err();
        let fe = e.to_field_error();
        assert_eq!(fe.field(), Field::DestinationId);
        assert_eq!(fe.field().as_str(), "destinationId");
        assert_eq!((fe.code(), fe.message()), (e.code(), e.message()));
        let m = e.message();
        // Lowercase apart from the JSON field name itself.
        let rest = m.replace("destinationId", "");
        assert_eq!(rest, rest.to_lowercase(), "{m}");
        assert!(!m.ends_with('.'), "{m}");
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.to_lowercase().contains("zqxj"), "{text}");
        }
    }
}
