//! The text shared by the ids whose published pattern is a four-byte prefix
//! and 26 upper-case Crockford base32 characters (`whk_`, `evt_`): parsing,
//! minting, decoding and stepping the 30 ASCII bytes, and the
//! [`text_id!`](text_id) macro that gives an id type its methods and traits.

use rand_core::CryptoRng;
use ulid::Ulid;

use crate::byteset::ByteSet;
use crate::id::ulid::generate_ulid;
use crate::time::Timestamp;

const PREFIX_LEN: usize = 4;
const BODY_CHARS: usize = 26;

/// The length of an id's text, prefix included.
const TEXT_LEN: usize = PREFIX_LEN + BODY_CHARS;

/// An id's validated text: its prefix and 26 upper-case Crockford digits.
pub(crate) type Text = [u8; TEXT_LEN];

/// The Crockford digits in ascending order (also ascending ASCII order).
const DIGITS: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Upper-case Crockford base32: digits and letters but I, L, O and U.
static CROCKFORD: ByteSet = ByteSet::new(DIGITS, &[]);

/// `prefix` followed by 26 copies of `digit`, for the ids' constants (where
/// a `prefix` that is not four bytes fails the build).
#[expect(
    clippy::indexing_slicing,
    reason = "const evaluation: an out-of-range index is a build error, never a runtime panic"
)]
pub(crate) const fn repeated(prefix: &str, digit: u8) -> Text {
    let prefix = prefix.as_bytes();
    assert!(prefix.len() == PREFIX_LEN, "an id prefix is four bytes");
    let mut text = [digit; TEXT_LEN];
    let mut i = 0;
    while i < PREFIX_LEN {
        text[i] = prefix[i];
        i += 1;
    }
    text
}

/// The text of `s` if it is `prefix` and 26 upper-case Crockford digits.
pub(crate) fn parse(s: &str, prefix: &str) -> Option<Text> {
    let body = s.as_bytes().strip_prefix(prefix.as_bytes())?;
    if body.len() != BODY_CHARS || !body.iter().all(|&c| CROCKFORD.contains(c)) {
        return None;
    }
    s.as_bytes().try_into().ok()
}

/// `text`'s prefix and the ULID text of `value` (it starts with `0` to `7`).
pub(crate) fn from_ulid(mut text: Text, value: u128) -> Text {
    let mut body = [0u8; BODY_CHARS];
    let ulid = Ulid::from(value).array_to_str(&mut body);
    if let Some(rest) = text.get_mut(PREFIX_LEN..) {
        rest.copy_from_slice(ulid.as_bytes());
    }
    text
}

/// `text`'s prefix and a ULID from `time` and the low 80 bits of `random`.
pub(crate) fn from_parts(text: Text, time: Timestamp, random: u128) -> Text {
    from_ulid(text, Ulid::from_parts(time.unix_millis(), random).into())
}

/// `text`'s prefix and a ULID whose time is `now` and whose 80 random bits
/// come from `rng`.
pub(crate) fn generate<R: CryptoRng + ?Sized>(text: Text, now: Timestamp, rng: &mut R) -> Text {
    from_ulid(text, generate_ulid(now, rng).into())
}

/// The text as a `str` (always ASCII).
pub(crate) fn as_str(text: &Text) -> &str {
    core::str::from_utf8(text).unwrap_or_default()
}

/// The 26 digits after the prefix.
pub(crate) fn body(text: &Text) -> &[u8] {
    text.get(PREFIX_LEN..).unwrap_or_default()
}

/// The 128-bit value the digits spell, or `None` if it needs more bits (the
/// first digit is `8` to `Z`).
pub(crate) fn to_ulid(text: &Text) -> Option<u128> {
    let body = body(text);
    if body.first().is_some_and(|&c| c > b'7') {
        return None;
    }
    let mut value = 0u128;
    for &c in body {
        value = (value << 5) | u128::from(digit_value(c));
    }
    Some(value)
}

/// The ULID time part in milliseconds, or `None` past 128 bits.
pub(crate) fn timestamp_ms(text: &Text) -> Option<u64> {
    to_ulid(text).and_then(|value| u64::try_from(value >> 80).ok())
}

/// The next (`up`) or previous text in order: the last digit stepped, with
/// carry or borrow; `None` past either end.
pub(crate) fn step(mut text: Text, up: bool) -> Option<Text> {
    let (from, to) = if up { (b'Z', b'0') } else { (b'0', b'Z') };
    for c in text.iter_mut().skip(PREFIX_LEN).rev() {
        if *c == from {
            *c = to;
            continue;
        }
        let value = digit_value(*c);
        let next = if up { value + 1 } else { value.checked_sub(1)? };
        *c = *DIGITS.get(usize::from(next))?;
        return Some(text);
    }
    None
}

/// The value of a Crockford digit (0 for anything else; only validated text
/// reaches here).
fn digit_value(c: u8) -> u8 {
    DIGITS
        .iter()
        .position(|&d| d == c)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(0)
}

/// Gives `$name`, a tuple struct around a [`Text`], the constants, methods
/// and traits of an id whose text is `$prefix` and 26 upper-case Crockford
/// characters; `$error::new($kind)` is its parse error. The struct itself,
/// its documentation and its derives stay with the id.
macro_rules! text_id {
    ($name:ident, $prefix:literal, $error:ident, $kind:expr) => {
        impl $name {
            /// The prefix of every id of this type.
            const PREFIX: &str = $prefix;

            #[doc = concat!("The smallest id, `", $prefix, "00000000000000000000000000`.")]
            pub const MIN: Self = Self($crate::id::text::repeated($prefix, b'0'));

            #[doc = concat!("The largest id, `", $prefix, "ZZZZZZZZZZZZZZZZZZZZZZZZZZ`.")]
            pub const MAX: Self = Self($crate::id::text::repeated($prefix, b'Z'));

            /// A new ULID id whose time part is `now` (in milliseconds) and
            /// whose 80 random bits come from `rng`.
            pub fn generate<R: ::rand_core::CryptoRng + ?Sized>(
                now: $crate::time::Timestamp,
                rng: &mut R,
            ) -> Self {
                Self($crate::id::text::generate(Self::MIN.0, now, rng))
            }

            /// A ULID id from its time part and the low 80 bits of `random`
            /// (higher bits are ignored).
            #[must_use]
            pub fn from_parts(time: $crate::time::Timestamp, random: u128) -> Self {
                Self($crate::id::text::from_parts(Self::MIN.0, time, random))
            }

            /// The id whose 26 characters are the ULID text of `value` (every
            /// value gives an id; it starts with `0` to `7`).
            #[must_use]
            pub fn from_ulid(value: u128) -> Self {
                Self($crate::id::text::from_ulid(Self::MIN.0, value))
            }

            #[doc = concat!(
                        "The 128-bit ULID value this id spells, or `None` if it needs more than ",
                        "128 bits (its first character after `", $prefix, "` is `8` to `Z`)."
                    )]
            #[must_use]
            pub fn to_ulid(self) -> Option<u128> {
                $crate::id::text::to_ulid(&self.0)
            }

            /// The ULID time part in milliseconds since the Unix epoch, or
            /// `None` if the id is not a 128-bit ULID (see
            /// [`to_ulid`](Self::to_ulid)).
            #[must_use]
            pub fn timestamp_ms(self) -> Option<u64> {
                $crate::id::text::timestamp_ms(&self.0)
            }

            #[doc = concat!("The whole id, `", $prefix, "` included.")]
            #[must_use]
            pub fn as_str(&self) -> &str {
                $crate::id::text::as_str(&self.0)
            }

            #[doc = concat!("The 26 characters after `", $prefix, "`, as ASCII bytes.")]
            #[must_use]
            pub fn body(&self) -> &[u8] {
                $crate::id::text::body(&self.0)
            }

            /// The next id in order (the last character incremented, with
            /// carry), or `None` for [`MAX`](Self::MAX).
            #[must_use]
            pub fn successor(self) -> Option<Self> {
                $crate::id::text::step(self.0, true).map(Self)
            }

            /// The previous id in order (the last character decremented,
            /// with borrow), or `None` for [`MIN`](Self::MIN).
            #[must_use]
            pub fn predecessor(self) -> Option<Self> {
                $crate::id::text::step(self.0, false).map(Self)
            }
        }

        impl ::core::str::FromStr for $name {
            type Err = $error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $crate::id::text::parse(s, Self::PREFIX)
                    .map(Self)
                    .ok_or($error::new($kind))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = $error;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl TryFrom<String> for $name {
            type Error = $error;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.as_str().to_owned()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::core::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.as_str())
            }
        }
    };
}

pub(crate) use text_id;
