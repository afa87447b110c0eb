//! `BearerSecret` and `SecretDigest` against the spec's `bearerSecret`
//! pattern `^whsec_[A-Za-z0-9_-]{43}$`, the issue's canonical-base64 rule, and
//! the `Authorization: Bearer <token>` form (RFC 7235: 1*SP after a
//! case-insensitive scheme).

use prets_destinations::error::Field;
use prets_destinations::rand_core::{Rng, SeedableRng};
use prets_destinations::secret::{InvalidSecret, SECRET_PATTERN, SECRET_PREFIX};
use prets_destinations::{BearerSecret, SecretDigest};
use rand_chacha::ChaCha20Rng;
use regex_lite::Regex;
use sha2::{Digest as _, Sha256};

/// The `bearerSecret` pattern exactly as printed in the API reference.
const SPEC_SECRET_PATTERN: &str = "^whsec_[A-Za-z0-9_-]{43}$";

/// The spec's example secret.
const EXAMPLE: &str = "whsec_3XvK2nQ8mB7pR1sT4uW6yZ0aE5gH9jLcV2bN1xM4qP8";

/// base64url digits in value order (RFC 4648 §5).
const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn parse(s: &str) -> Result<BearerSecret, InvalidSecret> {
    s.parse()
}

fn code(s: &str) -> &'static str {
    match parse(s) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

fn seeded(seed: u64) -> BearerSecret {
    BearerSecret::from_rng(&mut ChaCha20Rng::seed_from_u64(seed))
}

#[test]
fn published_constants_are_the_spec_text() {
    assert_eq!(SECRET_PATTERN, SPEC_SECRET_PATTERN);
    assert_eq!(SECRET_PREFIX, "whsec_");
}

#[test]
fn the_spec_example_parses() {
    let s = parse(EXAMPLE).unwrap();
    assert_eq!(s.expose_secret(), EXAMPLE);
}

#[test]
fn generated_secrets_match_the_pattern_and_parse_back() {
    let re = Regex::new(SECRET_PATTERN).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let s = BearerSecret::from_rng(&mut rng);
        let text = s.expose_secret();
        assert_eq!(text.len(), 49);
        assert!(re.is_match(text), "{}", text.len());
        let back = parse(text).unwrap();
        assert!(back.ct_eq(&s));
        assert_eq!(back.expose_secret(), text);
        assert_eq!(back.digest(), s.digest());
        assert!(seen.insert(text.to_owned()), "repeated secret");
    }
}

#[test]
fn the_same_seed_gives_the_same_secret_and_another_seed_another() {
    assert!(seeded(1).ct_eq(&seeded(1)));
    assert!(!seeded(1).ct_eq(&seeded(2)));
}

#[cfg(feature = "getrandom")]
#[test]
fn os_generated_secrets_are_valid_and_distinct() {
    let re = Regex::new(SECRET_PATTERN).unwrap();
    let a = BearerSecret::generate().unwrap();
    let b = BearerSecret::generate().unwrap();
    assert!(re.is_match(a.expose_secret()));
    assert!(parse(a.expose_secret()).is_ok());
    assert!(!a.ct_eq(&b));
}

#[test]
fn wrong_lengths_are_refused() {
    let body = &EXAMPLE[6..];
    assert_eq!(body.len(), 43);
    for s in [
        format!("whsec_{}", &body[..42]),
        format!("whsec_{body}A"),
        format!("whsec_{body}AA"),
        format!("whsec_{}", &body[..40]),
        "whsec_".to_owned(),
        String::new(),
        format!("whsec_{}", "A".repeat(1 << 16)),
    ] {
        assert_eq!(code(&s), "pattern", "{}", s.len());
    }
}

#[test]
fn characters_outside_base64url_are_refused() {
    for bad in ['+', '/', '=', ' ', '.', '~', '\0', '\n', 'é', '🦀'] {
        for pos in [6, 20, 47, 48] {
            let mut s = EXAMPLE.to_owned();
            s.replace_range(pos..=pos, &bad.to_string());
            assert_eq!(code(&s), "pattern", "{bad:?} at {pos}");
        }
    }
    // Padding after 43 characters.
    assert_eq!(code(&format!("{EXAMPLE}=")), "pattern");
    assert_eq!(code(&format!("{}=", &EXAMPLE[..48])), "pattern");
    assert_eq!(code(&format!("{EXAMPLE}\n")), "pattern");
}

#[test]
fn wrong_prefixes_are_refused() {
    let body = &EXAMPLE[6..];
    for prefix in [
        "WHSEC_", "Whsec_", "whsec-", "whsec", "whk_", "whsec__", " whsec_", "",
    ] {
        let s = format!("{prefix}{body}");
        assert_eq!(code(&s), "pattern", "{s}");
    }
}

#[test]
fn the_last_character_must_leave_the_two_spare_bits_zero() {
    // 43 characters carry 258 bits for 256: the last character's two low bits
    // are padding and must be zero, so each secret has exactly one spelling.
    let head = &EXAMPLE[..48];
    let mut accepted = 0;
    for (value, &c) in B64URL.iter().enumerate() {
        let s = format!("{head}{}", char::from(c));
        if value % 4 == 0 {
            assert_eq!(code(&s), "ok", "{}", char::from(c));
            accepted += 1;
        } else {
            assert_eq!(code(&s), "non_canonical", "{}", char::from(c));
        }
    }
    assert_eq!(accepted, 16);
}

#[test]
fn debug_is_redacted_and_never_shows_the_secret() {
    for s in [parse(EXAMPLE).unwrap(), seeded(3)] {
        let text = s.expose_secret().to_owned();
        for shown in [format!("{s:?}"), format!("{s:#?}")] {
            assert!(!shown.contains(&text));
            // Not even a fragment of the encoded part.
            for window in text.as_bytes()[6..].windows(6) {
                let w = std::str::from_utf8(window).unwrap();
                assert!(!shown.contains(w), "{shown} shows {w}");
            }
        }
    }
}

#[test]
fn errors_never_contain_the_presented_text() {
    // Near misses of a real secret: the part that might be real must not leak.
    let body = &EXAMPLE[6..];
    let candidates = [
        format!("{}B", &EXAMPLE[..48]),
        format!("whsec_{}", &body[..42]),
        format!("whsec_{body}x"),
        format!("WHSEC_{body}"),
        format!("{}+", &EXAMPLE[..48]),
    ];
    for s in candidates {
        let e = parse(&s).unwrap_err();
        let fe = e.to_field_error();
        assert_eq!(fe.field(), Field::BearerSecret);
        assert_eq!(fe.field().as_str(), "bearerSecret");
        let json = serde_json::to_string(&fe).unwrap();
        let de = serde_json::from_str::<BearerSecret>(&serde_json::to_string(&s).unwrap())
            .unwrap_err()
            .to_string();
        for shown in [e.to_string(), format!("{e:?}"), json, de] {
            for window in body.as_bytes().windows(8) {
                let w = std::str::from_utf8(window).unwrap();
                assert!(!shown.contains(w), "{shown} shows {w}");
            }
        }
        let m = e.message();
        assert_eq!(m, m.to_lowercase(), "{m}");
        assert!(!m.ends_with('.'), "{m}");
    }
}

#[test]
fn try_from_and_deserialize_agree_with_from_str() {
    let candidates = [
        EXAMPLE.to_owned(),
        format!("{}B", &EXAMPLE[..48]),
        "whsec_".to_owned(),
    ];
    for s in candidates {
        let a = s
            .parse::<BearerSecret>()
            .map(|x| x.expose_secret().to_owned());
        let b = BearerSecret::try_from(s.as_str()).map(|x| x.expose_secret().to_owned());
        let c = BearerSecret::try_from(s.clone()).map(|x| x.expose_secret().to_owned());
        assert_eq!(a, b);
        assert_eq!(a, c);
        let d = serde_json::from_str::<BearerSecret>(&serde_json::to_string(&s).unwrap())
            .map(|x| x.expose_secret().to_owned());
        assert_eq!(a.is_ok(), d.is_ok());
        if let (Ok(a), Ok(d)) = (&a, &d) {
            assert_eq!(a, d);
        }
    }
}

#[test]
fn digest_is_sha256_of_the_secret_text() {
    for s in [parse(EXAMPLE).unwrap(), seeded(4), seeded(5)] {
        let expected: [u8; 32] = Sha256::digest(s.expose_secret().as_bytes()).into();
        let d = s.digest();
        assert_eq!(d.as_bytes(), &expected);
        assert_eq!(SecretDigest::of_presented(s.expose_secret()), d);
        assert_eq!(SecretDigest::from_bytes(expected), d);
        // Hex form round-trips and is what serde writes.
        let hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(d.to_string(), hex);
        assert_eq!(hex.parse::<SecretDigest>().unwrap(), d);
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{hex}\""));
        assert_eq!(
            serde_json::from_str::<SecretDigest>(&format!("\"{hex}\"")).unwrap(),
            d
        );
        // The digest does not reveal the secret.
        assert!(!format!("{d:?}").contains(s.expose_secret()));
    }
    assert_ne!(seeded(4).digest(), seeded(5).digest());
    for bad in ["", "00", &"0".repeat(63), &"0".repeat(65), &"g".repeat(64)] {
        assert!(bad.parse::<SecretDigest>().is_err(), "{bad}");
    }
}

/// Checks `header` against the secret and its digest and requires them to agree.
fn verifies(secret: &BearerSecret, header: &[u8]) -> bool {
    let by_secret = secret.verify_authorization(header);
    let by_digest = secret.digest().verify_authorization(header);
    assert_eq!(
        by_secret,
        by_digest,
        "{:?}",
        String::from_utf8_lossy(header)
    );
    by_secret
}

#[test]
fn bearer_scheme_is_case_insensitive() {
    let s = seeded(6);
    let t = s.expose_secret();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        assert!(verifies(&s, format!("{scheme} {t}").as_bytes()), "{scheme}");
    }
    assert!(verifies(&s, s.authorization_header().as_bytes()));
    assert_eq!(&*s.authorization_header(), &format!("Bearer {t}"));
    // RFC 7235 allows one or more spaces after the scheme; RFC 9110 field
    // values carry no leading or trailing whitespace.
    assert!(verifies(&s, format!("Bearer   {t}").as_bytes()));
    assert!(verifies(&s, format!(" Bearer {t} ").as_bytes()));
}

#[test]
fn only_spaces_and_tabs_may_surround_the_header_value() {
    // RFC 9110 §5.5: optional whitespace (SP / HTAB) around a field value; CR,
    // LF, NUL and other controls are not part of a well-formed value.
    let s = seeded(13);
    let t = s.expose_secret();
    for ok in [
        format!("\tBearer {t}"),
        format!("Bearer {t}\t"),
        format!(" \t Bearer {t} \t "),
    ] {
        assert!(verifies(&s, ok.as_bytes()), "{ok:?}");
    }
    for ws in ["\r\n", "\n", "\r", "\x0c", "\x0b", "\0"] {
        for bad in [
            format!("Bearer {t}{ws}"),
            format!("{ws}Bearer {t}"),
            format!("Bearer {ws}{t}"),
            format!("Bearer{ws}{t}"),
        ] {
            assert!(!verifies(&s, bad.as_bytes()), "{bad:?}");
        }
    }
}

#[test]
fn other_secrets_schemes_and_shapes_are_not_verified() {
    let s = seeded(7);
    let t = s.expose_secret().to_owned();
    let other = seeded(8);
    let o = other.expose_secret();
    let mut flipped = t.clone().into_bytes();
    flipped[48] = if flipped[48] == b'A' { b'E' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let headers = [
        format!("Bearer {o}"),
        format!("Bearer {flipped}"),
        format!("Basic {t}"),
        format!("Token {t}"),
        format!("Bearer: {t}"),
        format!("Bearerx {t}"),
        format!("Bearer{t}"),
        format!("Bearer\t{t}"),
        format!("Bearer {t}{t}"),
        format!("Bearer {t} {t}"),
        format!("Bearer {t}x"),
        format!("Bearer x{t}"),
        format!("Bearer {}", &t[..48]),
        format!("Bearer {}", &t[6..]),
        format!("Bearer {}", t.to_uppercase()),
        format!("Bearer \"{t}\""),
        t.clone(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        String::new(),
        " ".to_owned(),
    ];
    for h in headers {
        assert!(!verifies(&s, h.as_bytes()), "{h:?}");
    }
}

#[test]
fn non_utf8_and_arbitrary_bytes_are_not_verified_and_never_panic() {
    let s = seeded(9);
    let t = s.expose_secret().as_bytes();
    let mut with_bad_byte = b"Bearer ".to_vec();
    with_bad_byte.extend_from_slice(&t[..48]);
    with_bad_byte.push(0xFF);
    assert!(!verifies(&s, &with_bad_byte));
    let mut bad_scheme = b"Bear\xC3\xA9r ".to_vec();
    bad_scheme.extend_from_slice(t);
    assert!(!verifies(&s, &bad_scheme));
    let mut appended = b"Bearer ".to_vec();
    appended.extend_from_slice(t);
    appended.push(0x80);
    assert!(!verifies(&s, &appended));
    assert!(!verifies(&s, &vec![b' '; 1 << 16]));
    assert!(!verifies(&s, b"Bearer \xF0\x9F\xA6"));

    // Arbitrary bytes of every length around the header's length.
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    for len in 0..120 {
        for _ in 0..20 {
            let mut h = vec![0u8; len];
            rng.fill_bytes(&mut h);
            if len > 7 && rng.next_u32() % 2 == 0 {
                h[..7].copy_from_slice(b"Bearer ");
            }
            assert!(!verifies(&s, &h));
        }
    }
    // Accepts str, String and byte inputs alike.
    let header = format!("Bearer {}", s.expose_secret());
    assert!(s.verify_authorization(header.as_str()));
    assert!(s.verify_authorization(header.clone()));
    assert!(s.verify_authorization(header.as_bytes()));
}
