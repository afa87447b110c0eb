//! Every validator against an independent oracle: the literal published
//! patterns (compiled once with `regex-lite`), the published length limits,
//! the https rule, and the crate's documented extra rules.
//!
//! For each input the oracle lists every rule it breaks, by the crate's error
//! code (`pattern`, `too_long`, `not_https`, `too_short`; for URLs also
//! `credentials`, `empty_host`, `invalid_port`; `non_canonical` for
//! secrets; `control_character` and `blank` for names).
//! The crate must accept exactly when nothing is broken, and refuse only with
//! the code of a broken rule.
//!
//! URLs have one exception, for the host policy (IP literals, `localhost` and
//! the like): a URL that the pattern, length and https rules allow may be
//! refused for its host, with any code but those four. So each URL is checked
//! twice: as given, with that allowance, and with its host replaced by
//! `example.com` (the spec's example, which no policy refuses), exactly.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use prets_destinations::id::ID_PATTERN;
use prets_destinations::secret::SECRET_PATTERN;
use prets_destinations::url::URL_PATTERN;
use prets_destinations::{BearerSecret, DestinationId, DestinationName, DestinationUrl};
use regex_lite::Regex;

static URL_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(URL_PATTERN).expect("url pattern"));
static ID_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(ID_PATTERN).expect("id pattern"));
static SECRET_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(SECRET_PATTERN).expect("secret pattern"));

/// The codes of the rules shared by the published schema: length, https and
/// the pattern.
const URL_BASE_CODES: &[&str] = &["too_short", "too_long", "not_https", "pattern"];

/// Checks one verdict of the crate against the rules the oracle found
/// broken: accepted exactly when nothing is broken, and refused only with the
/// code of a broken rule.
fn compare(what: &str, verdict: Result<(), &'static str>, broken: &[&str]) {
    match verdict {
        Ok(()) => assert!(
            broken.is_empty(),
            "{what}: accepted although it breaks {broken:?}"
        ),
        Err(code) => assert!(
            broken.contains(&code),
            "{what}: refused with {code:?} but the oracle finds only {broken:?}"
        ),
    }
}

fn port_ok(p: &str) -> bool {
    (1..=5).contains(&p.len())
        && p.bytes().all(|c| c.is_ascii_digit())
        && !p.starts_with('0')
        && p.parse::<u32>().is_ok_and(|n| (1..=65_535).contains(&n))
}

fn url_broken(s: &str) -> Vec<&'static str> {
    let mut broken = Vec::new();
    if s.is_empty() {
        broken.push("too_short");
    }
    if s.chars().count() > 2048 {
        broken.push("too_long");
    }
    let https = s
        .as_bytes()
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"https://"));
    if !https {
        broken.push("not_https");
    }
    if !URL_RE.is_match(s) {
        broken.push("pattern");
    }
    if !broken.is_empty() {
        return broken;
    }
    // The pattern has no '#', '[' or ']': the authority runs to the first '/'
    // or '?', and a ':' in it can only start the port.
    let rest = s.get(8..).unwrap_or_default();
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        broken.push("credentials");
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if host.is_empty() {
        broken.push("empty_host");
    }
    if port.is_some_and(|p| !port_ok(p)) {
        broken.push("invalid_port");
    }
    broken
}

/// `s` with its host replaced by the spec's example host, which no host
/// policy refuses; the scheme's spelling, port, path and query are kept.
fn with_public_host(s: &str) -> Option<String> {
    let scheme = s.get(..8)?;
    let rest = s.get(8..)?;
    let host_len = rest.find([':', '/', '?']).unwrap_or(rest.len());
    Some(format!("{scheme}example.com{}", rest.get(host_len..)?))
}

/// The crate's verdict on a URL, as an error code.
fn url_verdict(s: &str) -> Result<(), &'static str> {
    DestinationUrl::validate(s).map_err(|e| e.code())
}

fn check_url(s: &str) {
    let broken = url_broken(s);
    let verdict = url_verdict(s);
    if broken.iter().any(|b| URL_BASE_CODES.contains(b)) {
        compare("url", verdict, &broken);
    } else {
        // Pattern, length and https hold. Accepted only if the extra rules
        // hold too; refused, if at all, for an extra rule or for the host
        // policy, never with one of the schema's codes.
        match verdict {
            Ok(()) => assert!(
                broken.is_empty(),
                "url: accepted although it breaks {broken:?}"
            ),
            Err(code) => assert!(
                !URL_BASE_CODES.contains(&code),
                "url: pattern, length and https hold, yet refused with {code:?}"
            ),
        }
    }

    // With a host no policy refuses, the crate and the oracle agree exactly.
    if let Some(public) = with_public_host(s) {
        compare(
            "url with a public host",
            url_verdict(&public),
            &url_broken(&public),
        );
    }
}

fn check_id(s: &str) {
    let mut broken = Vec::new();
    if !ID_RE.is_match(s) {
        broken.push("pattern");
    }
    let verdict = s.parse::<DestinationId>().map(drop).map_err(|e| e.code());
    compare("destinationId", verdict, &broken);
}

/// The value of a base64url character.
fn base64url_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

fn check_secret(s: &str) {
    let mut broken = Vec::new();
    if !SECRET_RE.is_match(s) {
        broken.push("pattern");
    } else if s
        .as_bytes()
        .last()
        .and_then(|&c| base64url_value(c))
        .is_none_or(|v| v & 0b11 != 0)
    {
        // 43 characters carry 258 bits; the last 2 must be zero.
        broken.push("non_canonical");
    }
    let verdict = s.parse::<BearerSecret>().map(drop).map_err(|e| e.code());
    compare("bearerSecret", verdict, &broken);
}

/// C0, DEL and C1 (Unicode's general category Cc), plus the line and
/// paragraph separators, which the crate refuses in a one-line label.
fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}')
}

/// The invisible characters `docs/decisions.md` lists for `blank`: a name made only
/// of these and white space shows as nothing.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{34f}'
            | '\u{61c}'
            | '\u{115f}'
            | '\u{1160}'
            | '\u{17b4}'
            | '\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
    )
}

/// Unicode's `White_Space` property, listed.
fn is_white_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}'..='\u{d}'
            | '\u{20}'
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

fn check_name(s: &str) {
    let mut broken = Vec::new();
    let chars = s.chars().count();
    if chars == 0 {
        broken.push("too_short");
    }
    if chars > 128 {
        broken.push("too_long");
    }
    if s.chars().any(is_control) {
        broken.push("control_character");
    }
    if s.chars().all(|c| is_white_space(c) || is_invisible(c)) {
        broken.push("blank");
    }
    let verdict = DestinationName::validate(s).map_err(|e| e.code());
    compare("name", verdict, &broken);
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let s: &str = &text;

    check_name(s);
    check_url(s);
    check_id(s);
    check_secret(s);
    // The same bytes behind each prefix, so most inputs reach the rules past it.
    check_url(&format!("https://{s}"));
    check_id(&format!("whk_{s}"));
    check_secret(&format!("whsec_{s}"));
});
