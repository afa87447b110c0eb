//! Differential tests: each validator against the literal published pattern
//! (compiled with `regex-lite`) plus the length and scheme rules of the spec,
//! over many generated strings.
//!
//! The crate is allowed to be stricter than the published schema only by the
//! rules listed here, each of which is a documented decision:
//!
//! - `url`: besides the pattern, the 2048-character limit and an `https://`
//!   scheme (any case), the authority (the text after `https://` up to the
//!   first `/` or `?`, as RFC 3986 ends it; the pattern has no `#`) must hold
//!   no `@` (error code `credentials`), a non-empty host before any `:`
//!   (`empty_host`), and after a `:` a port of 1 to 5 digits without a leading
//!   zero whose value is 1..=65535 (`invalid_port`). When all of these hold,
//!   the host must also pass the host policy (`non_public_address`,
//!   `reserved_host`, `single_label_host`, `invalid_host`,
//!   `non_canonical_host`), which `tests/it/host_policy.rs` tests case by case;
//!   here a policy refusal is allowed only for a URL that breaks no other rule.
//! - `destinationId`: exactly the pattern, nothing stricter (`pattern`).
//! - `bearerSecret`: besides the pattern, the last character must leave the
//!   two spare bits of base64url zero, so the text is the canonical encoding
//!   of 32 bytes (`non_canonical`).

use prets_destinations::id::ID_PATTERN;
use prets_destinations::rand_core::{Rng, SeedableRng};
use prets_destinations::secret::SECRET_PATTERN;
use prets_destinations::url::URL_PATTERN;
use prets_destinations::{BearerSecret, DestinationId, DestinationUrl};
use rand_chacha::ChaCha20Rng;
use regex_lite::Regex;

/// A tiny deterministic generator over weighted token lists.
struct Gen(ChaCha20Rng);

impl Gen {
    fn new(seed: u64) -> Self {
        Self(ChaCha20Rng::seed_from_u64(seed))
    }
    fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------- url

const SCHEMES: &[&str] = &[
    "https://", "https://", "https://", "https://", "https://", "https://", "HTTPS://", "hTtPs://",
    "http://", "https:/", "https:", "ftp://", "", "https//", "Https://",
];

/// Tokens made of the pattern's characters (and well-formed escapes) only.
const URL_TOKENS: &[&str] = &[
    "example", ".", "com", "a", "Z", "9", "-", "_", "~", "/", "/", "/", "?", "=", "&", ":", ":",
    "@", "@", "%41", "%aF", "0", "1", "443", "04", "65535", "65536", "99999", "(", ")", "!", "*",
    "'", ";", "+", "$", ",",
];

/// Tokens outside the pattern: broken escapes and characters not in its class.
const BAD_TOKENS: &[&str] = &[
    "%", "%4", "%G0", "%%", "#", " ", "\n", "é", "[", "]", "\\", "\"", "<", "^", "`", "{", "|",
    "\t", "\0", "\u{7f}", "🦀",
];

/// Generates URL-like strings, some of them near the 2048-character limit.
fn gen_url(g: &mut Gen) -> String {
    let mut s = String::from(g.pick(SCHEMES));
    if g.chance(50) {
        // Shaped like a URL, so that many strings pass the pattern and the
        // authority rules reach their edges.
        // Most hosts pass the host policy; `a`, `x-1.example` and `%41` do not.
        s.push_str(g.pick(&[
            "example.com",
            "example.com",
            "x-1.example.org",
            "a",
            "x-1.example",
            "%41",
            "",
            "@",
            "u@h",
        ]));
        if g.chance(40) {
            s.push(':');
            s.push_str(g.pick(&["1", "443", "8443", "65535", "0", "65536", "04", "", "x"]));
        }
        s.push_str(g.pick(&["/", "?", "/a/b", ""]));
    }
    let n = g.below(12);
    let bad_at = if g.chance(30) {
        Some(g.below(n + 1))
    } else {
        None
    };
    for i in 0..=n {
        if bad_at == Some(i) {
            s.push_str(g.pick(BAD_TOKENS));
        }
        if i < n {
            s.push_str(g.pick(URL_TOKENS));
        }
    }
    if g.chance(4) {
        // Pad to just under, at or just over the limit.
        let target = 2040 + g.below(17);
        let filler = if g.chance(80) { "a" } else { "%41" };
        let mut count = s.chars().count();
        while count < target {
            s.push_str(filler);
            count += filler.len();
        }
        if g.chance(50) {
            s.push_str(g.pick(URL_TOKENS));
        }
    }
    s
}

/// What the spec's rules plus the crate's documented authority rules say
/// about `s`, each rule judged on its own.
struct UrlRules {
    empty: bool,
    too_long: bool,
    not_https: bool,
    off_pattern: bool,
    credentials: bool,
    empty_host: bool,
    bad_port: bool,
    host: String,
    port: Option<u16>,
}

fn port_value(text: &str) -> Option<u16> {
    let ok = !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && !text.starts_with('0');
    if !ok {
        return None;
    }
    let v: u32 = text.parse().ok()?;
    u16::try_from(v).ok().filter(|&p| p >= 1)
}

fn url_rules(re: &Regex, s: &str) -> UrlRules {
    let https = s
        .as_bytes()
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"https://"));
    let mut rules = UrlRules {
        empty: s.is_empty(),
        too_long: s.chars().count() > 2048,
        not_https: !https,
        off_pattern: !re.is_match(s),
        credentials: false,
        empty_host: false,
        bad_port: false,
        host: String::new(),
        port: None,
    };
    if let Some(rest) = s.get(8..).filter(|_| https) {
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        rules.credentials = authority.contains('@');
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        rules.empty_host = host.is_empty();
        rules.host = host.to_owned();
        if let Some(p) = port {
            rules.port = port_value(p);
            rules.bad_port = rules.port.is_none();
        }
    }
    rules
}

impl UrlRules {
    fn accept(&self) -> bool {
        !(self.empty
            || self.too_long
            || self.not_https
            || self.off_pattern
            || self.credentials
            || self.empty_host
            || self.bad_port)
    }

    /// Whether `code` names a rule that `s` really breaks.
    fn breaks(&self, code: &str) -> bool {
        match code {
            "too_short" => self.empty,
            "too_long" => self.too_long,
            "not_https" => self.not_https,
            "pattern" => self.off_pattern,
            "credentials" => self.credentials,
            "empty_host" => self.empty_host,
            "invalid_port" => self.bad_port,
            // The host policy runs last, on URLs that pass every rule above.
            "non_public_address" | "reserved_host" | "single_label_host" | "invalid_host"
            | "non_canonical_host" => self.accept(),
            _ => false,
        }
    }
}

#[test]
fn destination_url_accepts_exactly_the_pattern_plus_the_documented_rules() {
    let re = Regex::new(URL_PATTERN).unwrap();
    let mut g = Gen::new(0x0a11ce);
    let (mut accepted, mut refused, mut long_accepted, mut long_refused) = (0, 0, 0, 0);
    let mut codes = std::collections::BTreeSet::new();
    for _ in 0..20_000 {
        let s = gen_url(&mut g);
        let rules = url_rules(&re, &s);
        match DestinationUrl::try_from(s.as_str()) {
            Ok(url) => {
                // Soundness: nothing outside the published schema gets in.
                assert!(re.is_match(&s), "{s:?}");
                assert!(s.chars().count() <= 2048, "{s:?}");
                assert!(!rules.not_https, "{s:?}");
                // Completeness: nothing the rules allow is refused (checked below).
                assert!(rules.accept(), "{s:?} accepted against the rules");
                assert_eq!(url.as_str(), s);
                assert_eq!(url.to_string(), s);
                assert_eq!(url.host(), rules.host, "{s:?}");
                assert_eq!(url.port(), rules.port, "{s:?}");
                accepted += 1;
                if s.len() > 2000 {
                    long_accepted += 1;
                }
            }
            Err(e) => {
                assert!(
                    !rules.accept() || rules.breaks(e.code()),
                    "{s:?} refused with {}",
                    e.code()
                );
                assert!(
                    rules.breaks(e.code()),
                    "{s:?} refused with {} but breaks no such rule",
                    e.code()
                );
                codes.insert(e.code());
                refused += 1;
                if s.len() > 2000 {
                    long_refused += 1;
                }
            }
        }
    }
    // The generator reaches both outcomes, also at the length limit.
    assert_eq!(
        codes.into_iter().collect::<Vec<_>>(),
        [
            "credentials",
            "empty_host",
            "invalid_host",
            "invalid_port",
            "non_canonical_host",
            "non_public_address",
            "not_https",
            "pattern",
            "reserved_host",
            "single_label_host",
            "too_long",
            "too_short"
        ],
        "every rule is exercised"
    );
    // The host policy refuses most generated hosts (random labels, single
    // labels, reserved names), so fewer strings get through than the pattern
    // alone would let through.
    assert!(accepted > 600, "{accepted}");
    assert!(refused > 2_000, "{refused}");
    // Padding that lands in the host makes a name over 253 octets.
    assert!(long_accepted > 15, "{long_accepted}");
    assert!(long_refused > 25, "{long_refused}");
}

// ---------------------------------------------------------------- id

const CROCKFORD: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn gen_id(g: &mut Gen) -> String {
    let prefix = if g.chance(85) {
        "whk_"
    } else {
        g.pick(&["WHK_", "whk-", "whk", "", "whk_whk_", "Whk_"])
    };
    let len = if g.chance(80) { 26 } else { 23 + g.below(7) };
    let bad_at = if g.chance(25) {
        Some(g.below(len))
    } else {
        None
    };
    let mut s = String::from(prefix);
    for i in 0..len {
        if bad_at == Some(i) {
            s.push_str(g.pick(&["I", "L", "O", "U", "a", "z", "-", "_", "é", " ", "\n"]));
        } else {
            s.push(char::from(CROCKFORD.as_bytes()[g.below(32)]));
        }
    }
    s
}

fn crockford_value(ulid: &str) -> Option<u128> {
    ulid.bytes().try_fold(0u128, |v, c| {
        let d = CROCKFORD.bytes().position(|x| x == c)?;
        v.checked_mul(32)?.checked_add(d as u128)
    })
}

#[test]
fn destination_id_accepts_exactly_the_pattern() {
    let re = Regex::new(ID_PATTERN).unwrap();
    let mut g = Gen::new(0x1d);
    let (mut accepted, mut wide, mut pattern) = (0, 0, 0);
    for _ in 0..20_000 {
        let s = gen_id(&mut g);
        let matches = re.is_match(&s);
        match s.parse::<DestinationId>() {
            Ok(id) => {
                assert!(matches, "{s:?}");
                assert_eq!(id.to_string(), s);
                let value = s.get(4..).and_then(crockford_value);
                assert_eq!(id.to_ulid(), value, "{s:?}");
                if value.is_none() {
                    wide += 1;
                }
                accepted += 1;
            }
            Err(e) => {
                assert!(!matches, "{s:?} refused with {}", e.code());
                assert_eq!(e.code(), "pattern", "{s:?}");
                pattern += 1;
            }
        }
    }
    assert!(accepted > 5_000, "{accepted}");
    assert!(wide > 2_500, "{wide}");
    assert!(pattern > 2_500, "{pattern}");
}

#[test]
fn every_u128_has_one_canonical_id() {
    let re = Regex::new(ID_PATTERN).unwrap();
    let mut g = Gen::new(0x128);
    for _ in 0..10_000 {
        let v = u128::from(g.0.next_u64()) << 64 | u128::from(g.0.next_u64());
        let v = v >> g.below(128);
        let id = DestinationId::from_ulid(v);
        let text = id.to_string();
        assert!(re.is_match(&text), "{text}");
        assert_eq!(crockford_value(&text[4..]), Some(v));
        assert_eq!(id.to_ulid(), Some(v));
        assert_eq!(text.parse::<DestinationId>().unwrap(), id);
    }
}

// ---------------------------------------------------------------- secret

const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn gen_secret(g: &mut Gen) -> String {
    let prefix = if g.chance(90) {
        "whsec_"
    } else {
        g.pick(&["WHSEC_", "whsec-", "whsec", "", "whk_"])
    };
    let len = if g.chance(80) { 43 } else { 40 + g.below(7) };
    let bad_at = if g.chance(20) {
        Some(g.below(len))
    } else {
        None
    };
    let mut s = String::from(prefix);
    for i in 0..len {
        if bad_at == Some(i) {
            s.push_str(g.pick(&["+", "/", "=", " ", ".", "é", "\n"]));
        } else {
            s.push(char::from(B64URL.as_bytes()[g.below(64)]));
        }
    }
    s
}

/// Whether the last base64url digit leaves the two spare low bits zero.
fn canonical_tail(s: &str) -> bool {
    s.bytes()
        .last()
        .and_then(|c| B64URL.bytes().position(|x| x == c))
        .is_some_and(|v| v % 4 == 0)
}

#[test]
fn bearer_secret_accepts_exactly_the_pattern_in_canonical_base64() {
    let re = Regex::new(SECRET_PATTERN).unwrap();
    let mut g = Gen::new(0x5ec);
    let (mut accepted, mut non_canonical, mut pattern) = (0, 0, 0);
    for _ in 0..20_000 {
        let s = gen_secret(&mut g);
        let matches = re.is_match(&s);
        let canonical = canonical_tail(&s);
        match s.parse::<BearerSecret>() {
            Ok(secret) => {
                assert!(matches && canonical, "{s:?}");
                assert_eq!(secret.expose_secret(), s);
                assert!(secret.verify_authorization(format!("Bearer {s}")));
                accepted += 1;
            }
            Err(e) => {
                assert!(!(matches && canonical), "{s:?} refused with {}", e.code());
                match e.code() {
                    "non_canonical" => {
                        assert!(matches && !canonical, "{s:?}");
                        non_canonical += 1;
                    }
                    "pattern" => {
                        assert!(!matches, "{s:?}");
                        pattern += 1;
                    }
                    other => panic!("unexpected code {other} for {s:?}"),
                }
            }
        }
    }
    assert!(accepted > 2_500, "{accepted}");
    assert!(non_canonical > 2_500, "{non_canonical}");
    assert!(pattern > 2_500, "{pattern}");
}
