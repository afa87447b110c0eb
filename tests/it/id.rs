//! `DestinationId` and `EventId` against the spec's patterns
//! `^whk_[0-9A-HJKMNP-TV-Z]{26}$` and `^evt_[0-9A-HJKMNP-TV-Z]{26}$`: every
//! pattern-valid id is accepted, including the ones whose 130 bits do not fit
//! a 128-bit ULID. Each test below runs for both ids (`id::destination::…`
//! and `id::event::…`).

use std::fmt::{Debug, Display};
use std::hash::Hash;

use prets_destinations::error::{Field, FieldError};
use prets_destinations::id::{
    EVENT_ID_PATTERN, EVENT_ID_PREFIX, EventId, ID_PATTERN, ID_PREFIX, InvalidDestinationId,
    InvalidEventId,
};
use prets_destinations::rand_core::{Rng, SeedableRng};
use prets_destinations::{DestinationId, Timestamp};
use rand_chacha::ChaCha20Rng;
use regex_lite::Regex;

/// `[0-9A-HJKMNP-TV-Z]` written out: Crockford's base32 digits in value order.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The ULID spec's own example value, after the prefix.
const EXAMPLE: &str = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

/// What the tests need of an id type; both ids have the same methods.
trait Id: Copy + Ord + Hash + Debug + Display + Into<String> {
    type Invalid: Debug + Display + PartialEq;
    /// The pattern exactly as printed in the API reference.
    const SPEC_PATTERN: &'static str;
    const PREFIX: &'static str;
    const PATTERN: &'static str;
    const NAME: &'static str;
    const FIELD: Field;
    const FIELD_NAME: &'static str;
    const MIN: Self;
    const MAX: Self;

    fn parse(s: &str) -> Result<Self, Self::Invalid>;
    fn from_str_ref(s: &str) -> Result<Self, Self::Invalid>;
    fn from_string(s: String) -> Result<Self, Self::Invalid>;
    fn code(e: &Self::Invalid) -> &'static str;
    fn message(e: &Self::Invalid) -> &'static str;
    fn field_error(e: &Self::Invalid) -> FieldError;
    fn as_str(&self) -> &str;
    fn body(&self) -> &[u8];
    fn to_ulid(self) -> Option<u128>;
    fn timestamp_ms(self) -> Option<u64>;
    fn from_ulid(value: u128) -> Self;
    fn from_parts(time: Timestamp, random: u128) -> Self;
    fn generate(now: Timestamp, rng: &mut ChaCha20Rng) -> Self;
    fn successor(self) -> Option<Self>;
    fn predecessor(self) -> Option<Self>;
    fn to_json(&self) -> String;
    fn from_json(json: &str) -> Result<Self, serde_json::Error>;
}

macro_rules! impl_id {
    ($id:ty, $invalid:ty, $spec:literal, $prefix:expr, $pattern:expr, $field:expr, $field_name:literal) => {
        impl Id for $id {
            type Invalid = $invalid;
            const SPEC_PATTERN: &'static str = $spec;
            const PREFIX: &'static str = $prefix;
            const PATTERN: &'static str = $pattern;
            const NAME: &'static str = stringify!($id);
            const FIELD: Field = $field;
            const FIELD_NAME: &'static str = $field_name;
            const MIN: Self = <$id>::MIN;
            const MAX: Self = <$id>::MAX;

            fn parse(s: &str) -> Result<Self, Self::Invalid> {
                s.parse()
            }
            fn from_str_ref(s: &str) -> Result<Self, Self::Invalid> {
                <$id>::try_from(s)
            }
            fn from_string(s: String) -> Result<Self, Self::Invalid> {
                <$id>::try_from(s)
            }
            fn code(e: &Self::Invalid) -> &'static str {
                e.code()
            }
            fn message(e: &Self::Invalid) -> &'static str {
                e.message()
            }
            fn field_error(e: &Self::Invalid) -> FieldError {
                e.to_field_error()
            }
            fn as_str(&self) -> &str {
                <$id>::as_str(self)
            }
            fn body(&self) -> &[u8] {
                <$id>::body(self)
            }
            fn to_ulid(self) -> Option<u128> {
                <$id>::to_ulid(self)
            }
            fn timestamp_ms(self) -> Option<u64> {
                <$id>::timestamp_ms(self)
            }
            fn from_ulid(value: u128) -> Self {
                <$id>::from_ulid(value)
            }
            fn from_parts(time: Timestamp, random: u128) -> Self {
                <$id>::from_parts(time, random)
            }
            fn generate(now: Timestamp, rng: &mut ChaCha20Rng) -> Self {
                <$id>::generate(now, rng)
            }
            fn successor(self) -> Option<Self> {
                <$id>::successor(self)
            }
            fn predecessor(self) -> Option<Self> {
                <$id>::predecessor(self)
            }
            fn to_json(&self) -> String {
                serde_json::to_string(self).unwrap()
            }
            fn from_json(json: &str) -> Result<Self, serde_json::Error> {
                serde_json::from_str(json)
            }
        }
    };
}

impl_id!(
    DestinationId,
    InvalidDestinationId,
    "^whk_[0-9A-HJKMNP-TV-Z]{26}$",
    ID_PREFIX,
    ID_PATTERN,
    Field::DestinationId,
    "destinationId"
);
impl_id!(
    EventId,
    InvalidEventId,
    "^evt_[0-9A-HJKMNP-TV-Z]{26}$",
    EVENT_ID_PREFIX,
    EVENT_ID_PATTERN,
    Field::EventId,
    "eventId"
);

/// Each test, once per id type.
macro_rules! for_each_id {
    ($($test:ident),* $(,)?) => {
        mod destination {
            $( #[test] fn $test() { super::$test::<prets_destinations::DestinationId>() } )*
        }
        mod event {
            $( #[test] fn $test() { super::$test::<prets_destinations::id::EventId>() } )*
        }
    };
}

for_each_id!(
    published_constants_are_the_spec_text,
    the_written_out_alphabet_is_exactly_the_pattern_class,
    canonical_ids_round_trip_exactly_and_decode_to_their_value,
    the_largest_ulid_is_all_ones_and_the_bounds_are_the_extremes,
    a_first_character_above_7_is_a_valid_id_wider_than_a_ulid,
    every_first_character_is_accepted,
    random_pattern_valid_strings_are_all_accepted_and_order_like_their_text,
    successor_and_predecessor_are_the_neighbours_in_text_order,
    lowercase_is_refused_not_normalised,
    crockford_aliases_are_refused_everywhere,
    wrong_prefixes_are_refused,
    every_length_but_26_characters_is_refused,
    other_bytes_and_trailing_newlines_are_refused,
    from_parts_keeps_the_time_and_the_low_80_random_bits,
    generated_ids_carry_the_injected_time_and_round_trip,
    generated_ids_are_the_time_then_the_rngs_next_80_bits,
    ids_sort_like_their_text,
    every_constructor_agrees,
    invalid_data_cannot_be_deserialized_into_an_id,
    errors_name_the_field_follow_the_message_style_and_omit_the_value,
);

fn code<I: Id>(s: &str) -> &'static str {
    match I::parse(s) {
        Ok(_) => "ok",
        Err(e) => I::code(&e),
    }
}

/// The prefix and `body`.
fn text<I: Id>(body: &str) -> String {
    format!("{}{body}", I::PREFIX)
}

/// The 130-bit number the 26 characters spell, if it fits in 128 bits; `None`
/// if a character is not a Crockford digit or the value overflows.
fn decode(body: &str) -> Option<u128> {
    let mut v: u128 = 0;
    for c in body.bytes() {
        let digit = CROCKFORD.iter().position(|&d| d == c)?;
        v = v.checked_mul(32)?.checked_add(digit as u128)?;
    }
    Some(v)
}

/// The 26 Crockford digits of a 128-bit value (big-endian, two zero bits on
/// top), written independently of the library.
fn encode(value: u128) -> String {
    (0..26)
        .rev()
        .map(|i| {
            let digit = (value >> (i * 5)) & 31;
            char::from(CROCKFORD[digit as usize])
        })
        .collect()
}

fn id_from<I: Id>(digits: impl IntoIterator<Item = u8>) -> String {
    let body: String = digits.into_iter().map(char::from).collect();
    text::<I>(&body)
}

fn published_constants_are_the_spec_text<I: Id>() {
    assert_eq!(I::PATTERN, I::SPEC_PATTERN);
    assert_eq!(I::PREFIX, &I::SPEC_PATTERN[1..5]);
}

fn the_written_out_alphabet_is_exactly_the_pattern_class<I: Id>() {
    let re = Regex::new(I::PATTERN).unwrap();
    for b in 0u8..=127 {
        let s = text::<I>(&char::from(b).to_string().repeat(26));
        assert_eq!(
            re.is_match(&s),
            CROCKFORD.contains(&b),
            "{:?}",
            char::from(b)
        );
        assert_eq!(I::parse(&s).is_ok(), CROCKFORD.contains(&b), "{s:?}");
    }
}

fn canonical_ids_round_trip_exactly_and_decode_to_their_value<I: Id>() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut samples: Vec<String> = [
        EXAMPLE,
        "00000000000000000000000000",
        "7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
        "0123456789ABCDEFGHJKMNPQRS",
        "7TVWXYZ0123456789ABCDEFGHJ",
        "80000000000000000000000000",
        "ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
        "ZTVWXYZ0123456789ABCDEFGHJ",
    ]
    .into_iter()
    .map(text::<I>)
    .collect();
    for _ in 0..500 {
        samples.push(id_from::<I>(
            (0..26).map(|_| CROCKFORD[(rng.next_u32() % 32) as usize]),
        ));
    }
    for s in samples {
        let id = I::parse(&s).unwrap();
        assert_eq!(id.to_string(), s);
        assert_eq!(Into::<String>::into(id), s);
        assert_eq!(format!("{id:?}"), format!("{}({s})", I::NAME));
        assert_eq!(id.as_str(), s);
        assert_eq!(id.body(), &s.as_bytes()[4..]);
        let value = decode(&s[4..]);
        assert_eq!(id.to_ulid(), value, "{s}");
        assert_eq!(id.timestamp_ms(), value.map(|v| (v >> 80) as u64), "{s}");
        if let Some(value) = value {
            assert_eq!(I::from_ulid(value), id);
            assert_eq!(encode(value), s[4..]);
        }
        let json = id.to_json();
        assert_eq!(json, format!("\"{s}\""));
        assert_eq!(I::from_json(&json).unwrap(), id);
    }
}

fn the_largest_ulid_is_all_ones_and_the_bounds_are_the_extremes<I: Id>() {
    let max = I::parse(&text::<I>("7ZZZZZZZZZZZZZZZZZZZZZZZZZ")).unwrap();
    assert_eq!(max.to_ulid(), Some(u128::MAX));
    assert_eq!(I::from_ulid(u128::MAX), max);
    assert_eq!(
        I::MIN,
        I::parse(&text::<I>("00000000000000000000000000")).unwrap()
    );
    assert_eq!(I::MIN.to_ulid(), Some(0));
    assert_eq!(I::from_ulid(0), I::MIN);
    assert_eq!(
        I::MAX,
        I::parse(&text::<I>("ZZZZZZZZZZZZZZZZZZZZZZZZZZ")).unwrap()
    );
    assert_eq!(I::MAX.to_ulid(), None);
    assert_eq!(I::MAX.timestamp_ms(), None);
    assert_eq!(I::MIN.predecessor(), None);
    assert_eq!(I::MAX.successor(), None);
}

fn a_first_character_above_7_is_a_valid_id_wider_than_a_ulid<I: Id>() {
    let re = Regex::new(I::PATTERN).unwrap();
    let mut count = 0;
    for &first in CROCKFORD.iter().filter(|&&c| c > b'7') {
        count += 1;
        for rest in [b'0', b'Z', b'7'] {
            let s = id_from::<I>(core::iter::once(first).chain(core::iter::repeat_n(rest, 25)));
            assert!(decode(&s[4..]).is_none(), "{s} needs more than 128 bits");
            assert!(re.is_match(&s), "{s}");
            let id = I::parse(&s).unwrap();
            assert_eq!(id.to_string(), s);
            assert_eq!(id.to_ulid(), None, "{s}");
            assert_eq!(id.timestamp_ms(), None, "{s}");
            assert!(id > I::from_ulid(u128::MAX), "{s}");
        }
    }
    // 8, 9 and the 22 letters.
    assert_eq!(count, 24);
}

/// Each of the 32 first characters, with every character in each other
/// position too: the pattern admits all of them, so the id does.
fn every_first_character_is_accepted<I: Id>() {
    let re = Regex::new(I::PATTERN).unwrap();
    for &first in CROCKFORD {
        for &rest in CROCKFORD {
            for pos in 1..26 {
                let mut body = [first; 26];
                body[pos] = rest;
                let s = id_from::<I>(body);
                assert!(re.is_match(&s), "{s}");
                let id = I::parse(&s).unwrap();
                assert_eq!(id.as_str(), s);
                assert_eq!(id.to_ulid().is_some(), first <= b'7', "{s}");
            }
        }
    }
}

fn random_pattern_valid_strings_are_all_accepted_and_order_like_their_text<I: Id>() {
    let re = Regex::new(I::PATTERN).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let mut pairs = Vec::new();
    for _ in 0..2000 {
        // Bias towards shared prefixes so neighbours differ late.
        let len = (rng.next_u32() % 27) as usize;
        let shared: Vec<u8> = (0..len)
            .map(|_| CROCKFORD[(rng.next_u32() % 4) as usize])
            .collect();
        let s = id_from::<I>(
            shared
                .into_iter()
                .chain((len..26).map(|_| CROCKFORD[(rng.next_u32() % 32) as usize])),
        );
        assert!(re.is_match(&s), "{s}");
        let id = I::parse(&s).unwrap();
        assert_eq!(id.to_string(), s);
        assert_eq!(I::from_json(&id.to_json()).unwrap(), id);
        pairs.push((id, s));
    }
    for w in pairs.windows(2) {
        let ((a, sa), (b, sb)) = (&w[0], &w[1]);
        assert_eq!(a.cmp(b), sa.cmp(sb), "{sa} {sb}");
        assert_eq!(a == b, sa == sb);
    }
}

fn successor_and_predecessor_are_the_neighbours_in_text_order<I: Id>() {
    let cases = [
        ("00000000000000000000000000", "00000000000000000000000001"),
        ("0000000000000000000000000Z", "00000000000000000000000010"),
        ("7ZZZZZZZZZZZZZZZZZZZZZZZZZ", "80000000000000000000000000"),
        ("0000000000000000000000000H", "0000000000000000000000000J"),
        ("YZZZZZZZZZZZZZZZZZZZZZZZZZ", "Z0000000000000000000000000"),
    ];
    for (a, b) in cases {
        let (a, b) = (
            I::parse(&text::<I>(a)).unwrap(),
            I::parse(&text::<I>(b)).unwrap(),
        );
        assert!(a < b);
        assert_eq!(a.successor(), Some(b), "{a}");
        assert_eq!(b.predecessor(), Some(a), "{b}");
    }
    // Against the numeric value where it fits.
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for _ in 0..500 {
        let v = (u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64()))
            >> (rng.next_u32() % 128);
        let id = I::from_ulid(v);
        if let Some(next) = v.checked_add(1) {
            assert_eq!(id.successor(), Some(I::from_ulid(next)));
        }
        if let Some(prev) = v.checked_sub(1) {
            assert_eq!(id.predecessor(), Some(I::from_ulid(prev)));
        }
    }
}

fn lowercase_is_refused_not_normalised<I: Id>() {
    let example = text::<I>(EXAMPLE);
    assert_eq!(code::<I>(&text::<I>(&EXAMPLE.to_lowercase())), "pattern");
    // One lowercase letter anywhere.
    for (i, c) in example.char_indices().skip(4) {
        if c.is_ascii_alphabetic() {
            let mut s = example.clone();
            s.replace_range(i..=i, &c.to_ascii_lowercase().to_string());
            assert_eq!(code::<I>(&s), "pattern", "{s}");
        }
    }
    // A lowercase first letter is a pattern error too, wide or not.
    assert_eq!(
        code::<I>(&text::<I>("z0000000000000000000000000")),
        "pattern"
    );
    assert_eq!(
        code::<I>(&text::<I>("a0000000000000000000000000")),
        "pattern"
    );
}

fn crockford_aliases_are_refused_everywhere<I: Id>() {
    for alias in ['I', 'L', 'O', 'U', 'i', 'l', 'o', 'u'] {
        for pos in [4, 5, 17, 29] {
            let mut s = text::<I>("00000000000000000000000000");
            s.replace_range(pos..=pos, &alias.to_string());
            assert_eq!(code::<I>(&s), "pattern", "{s}");
        }
    }
}

fn wrong_prefixes_are_refused<I: Id>() {
    let p = I::PREFIX.trim_end_matches('_');
    let upper = p.to_uppercase();
    let title = format!("{}{}", &upper[..1], &p[1..]);
    let other = if p == "whk" { "evt_" } else { "whk_" };
    for prefix in [
        format!("{upper}_"),
        format!("{title}_"),
        format!("{p}-"),
        p.to_owned(),
        format!("{}_", &p[..2]),
        format!("{p}__"),
        format!(" {p}_"),
        format!("{p}_ "),
        "att_".to_owned(),
        "whsec_".to_owned(),
        other.to_owned(),
        String::new(),
    ] {
        let s = format!("{prefix}{EXAMPLE}");
        assert_eq!(code::<I>(&s), "pattern", "{s:?}");
    }
}

fn every_length_but_26_characters_is_refused<I: Id>() {
    for n in (0..=40).filter(|&n| n != 26) {
        let s = text::<I>(&"0".repeat(n));
        assert_eq!(code::<I>(&s), "pattern", "{n}");
    }
    // 25 and 27 characters with a first character above 7 are pattern errors.
    assert_eq!(
        code::<I>(&text::<I>(&format!("8{}", "0".repeat(24)))),
        "pattern"
    );
    assert_eq!(
        code::<I>(&text::<I>(&format!("8{}", "0".repeat(26)))),
        "pattern"
    );
    assert_eq!(code::<I>(&text::<I>(&"0".repeat(1 << 16))), "pattern");
}

fn other_bytes_and_trailing_newlines_are_refused<I: Id>() {
    let example = text::<I>(EXAMPLE);
    for s in [
        format!("{example}\n"),
        format!("\n{example}"),
        format!("{example}\0"),
        // 30 bytes, 29 characters.
        text::<I>(&format!("{}é", "0".repeat(24))),
        text::<I>(&format!("{}é", "0".repeat(25))),
        text::<I>(&format!("{}Ｚ", "0".repeat(25))),
        text::<I>("0000000000000-0000000000"),
        text::<I>("000000000000000000000000 0"),
    ] {
        assert_eq!(code::<I>(&s), "pattern", "{s:?}");
    }
}

fn from_parts_keeps_the_time_and_the_low_80_random_bits<I: Id>() {
    let mask: u128 = (1 << 80) - 1;
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    // The last value is the latest instant a Timestamp can hold (9999-12-31).
    for millis in [0, 1, 1_699_335_116_250, 253_402_300_799_999] {
        let now = Timestamp::from_unix_millis(millis).unwrap();
        for _ in 0..20 {
            let random = u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64());
            let id = I::from_parts(now, random);
            assert_eq!(id.timestamp_ms(), Some(millis));
            let value = id.to_ulid().unwrap();
            assert_eq!(value & mask, random & mask);
            assert_eq!(value >> 80, u128::from(millis));
            assert_eq!(I::parse(id.as_str()).unwrap(), id);
        }
        assert_eq!(
            I::from_parts(now, u128::MAX).to_ulid().unwrap() & mask,
            mask
        );
    }
}

fn generated_ids_carry_the_injected_time_and_round_trip<I: Id>() {
    let now = Timestamp::from_unix_millis(1_699_335_116_250).unwrap();
    let re = Regex::new(I::PATTERN).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let id = I::generate(now, &mut rng);
        assert_eq!(id.timestamp_ms(), Some(1_699_335_116_250));
        let text = id.to_string();
        assert!(re.is_match(&text), "{text}");
        assert_eq!(I::parse(&text).unwrap(), id);
        assert!(seen.insert(id), "two equal ids from one generator");
    }
    // The same seed gives the same ids: the rng is the only source of randomness.
    let a = I::generate(now, &mut ChaCha20Rng::seed_from_u64(4));
    let b = I::generate(now, &mut ChaCha20Rng::seed_from_u64(4));
    assert_eq!(a, b);
}

/// What `generate` writes: the ULID whose top 48 bits are the time in
/// milliseconds and whose low 80 bits are the next 10 bytes of the rng, big
/// end first (what the event ids minted as `Ulid`s always were).
fn generated_ids_are_the_time_then_the_rngs_next_80_bits<I: Id>() {
    fn next_80_bits(rng: &mut ChaCha20Rng) -> u128 {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes[6..]);
        u128::from_be_bytes(bytes)
    }
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let mut expected = ChaCha20Rng::seed_from_u64(8);
    for millis in [0, 1, 1_699_335_116_250, 253_402_300_799_999] {
        let now = Timestamp::from_unix_millis(millis).unwrap();
        for _ in 0..50 {
            let id = I::generate(now, &mut rng);
            let value = u128::from(millis) << 80 | next_80_bits(&mut expected);
            assert_eq!(id.as_str(), text::<I>(&encode(value)));
        }
    }
}

fn ids_sort_like_their_text<I: Id>() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mut ids: Vec<I> = (0..200)
        .map(|i| {
            let now = Timestamp::from_unix_millis(u64::from(rng.next_u32()) * (i % 3)).unwrap();
            I::generate(now, &mut rng)
        })
        .collect();
    let mut texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
    ids.sort();
    texts.sort();
    let sorted: Vec<String> = ids.iter().map(ToString::to_string).collect();
    assert_eq!(sorted, texts);
}

fn every_constructor_agrees<I: Id>() {
    for s in [
        text::<I>(EXAMPLE),
        text::<I>("8ZZZZZZZZZZZZZZZZZZZZZZZZZ"),
        I::PREFIX.to_owned(),
        String::new(),
    ] {
        let a = I::parse(&s);
        assert_eq!(a, I::from_str_ref(&s), "{s}");
        assert_eq!(a, I::from_string(s.clone()), "{s}");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(a.is_ok(), I::from_json(&json).is_ok(), "{s}");
    }
}

fn invalid_data_cannot_be_deserialized_into_an_id<I: Id>() {
    let p = I::PREFIX;
    let upper = p.to_uppercase();
    for json in [
        format!("\"{p}01arz3ndektsv4rrffq69g5fav\""),
        format!("\"{p}81ARZ3NDEKTSV4RRFFQ69G5FAU\""),
        format!("\"{p}01ARZ3NDEKTSV4RRFFQ69G5FA\""),
        format!("\"{upper}01ARZ3NDEKTSV4RRFFQ69G5FAV\""),
        "\"<string>\"".to_owned(),
        "null".to_owned(),
        "1".to_owned(),
    ] {
        assert!(I::from_json(&json).is_err(), "{json}");
    }
}

fn errors_name_the_field_follow_the_message_style_and_omit_the_value<I: Id>() {
    for s in [
        text::<I>("zqxj0000000000000000000000"),
        text::<I>("ZQXJ000000000000000000000"),
        "zqxj".to_owned(),
    ] {
        let e = I::parse(&s).unwrap_err();
        let fe = I::field_error(&e);
        assert_eq!(fe.field(), I::FIELD);
        assert_eq!(fe.field().as_str(), I::FIELD_NAME);
        assert_eq!((fe.code(), fe.message()), (I::code(&e), I::message(&e)));
        let m = I::message(&e);
        assert!(
            m.starts_with(&format!("{} must be {}", I::FIELD_NAME, I::PREFIX)),
            "{m}"
        );
        // Lowercase apart from the JSON field name itself.
        let rest = m.replace(I::FIELD_NAME, "");
        assert_eq!(rest, rest.to_lowercase(), "{m}");
        assert!(!m.ends_with('.'), "{m}");
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.to_lowercase().contains("zqxj"), "{text}");
        }
    }
}
