//! `DestinationId`: `whk_` followed by 26 upper-case Crockford base32 characters.

use core::fmt;
use core::str::FromStr;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::byteset::ByteSet;
use crate::error::{Field, field_error_type};
use crate::time::Timestamp;

/// The prefix of every destination id.
pub const ID_PREFIX: &str = "whk_";

/// The published `destinationId` pattern, verbatim from the API reference.
pub const ID_PATTERN: &str = "^whk_[0-9A-HJKMNP-TV-Z]{26}$";

const BODY_CHARS: usize = 26;
const ID_LEN: usize = ID_PREFIX.len() + BODY_CHARS;

/// The Crockford digits in ascending order (also ascending ASCII order).
const DIGITS: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

field_error_type! {
    /// Why a string is not a valid [`DestinationId`].
    InvalidDestinationId, IdErrorKind, Field::DestinationId,
    {
        Pattern => ("pattern", "destinationId must be whk_ followed by 26 upper-case crockford base32 characters"),
    }
}

/// Upper-case Crockford base32: digits and letters but I, L, O and U.
static CROCKFORD: ByteSet = ByteSet::new(DIGITS, &[]);

/// A destination id: `whk_` and 26 upper-case Crockford base32 characters,
/// exactly the published pattern `^whk_[0-9A-HJKMNP-TV-Z]{26}$`.
///
/// The id holds its validated text, so ids compare, hash and sort like their
/// text, and [`Display`](fmt::Display) and serde write back exactly what was
/// parsed. The Crockford alphabet is in ASCII order, so text order is also
/// the order of the 130-bit numbers the ids spell. Lower-case letters and the
/// Crockford aliases (`I`, `L`, `O`) are refused rather than normalised.
///
/// Ids the server generates are ULIDs (48-bit time, 80 random bits), which
/// always start with `0` to `7`; a client may choose any id the pattern
/// allows, including ones that need more than 128 bits.
///
/// ```
/// use prets_destinations::DestinationId;
///
/// let id: DestinationId = "whk_01HF2V3J6T0Q8X5Y7Z9ABCDEFG".parse()?;
/// assert_eq!(id.as_str(), "whk_01HF2V3J6T0Q8X5Y7Z9ABCDEFG");
/// assert!(id.to_ulid().is_some());
///
/// let wide: DestinationId = "whk_ZZZZZZZZZZZZZZZZZZZZZZZZZZ".parse()?;
/// assert_eq!(wide, DestinationId::MAX);
/// assert_eq!(wide.to_ulid(), None);
///
/// let err = "whk_01hf2v3j6t0q8x5y7z9abcdefg".parse::<DestinationId>().unwrap_err();
/// assert_eq!(err.code(), "pattern");
/// # Ok::<(), prets_destinations::id::InvalidDestinationId>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DestinationId([u8; ID_LEN]);

impl DestinationId {
    /// The smallest id, `whk_00000000000000000000000000`.
    pub const MIN: Self = Self(*b"whk_00000000000000000000000000");
    /// The largest id, `whk_ZZZZZZZZZZZZZZZZZZZZZZZZZZ`.
    pub const MAX: Self = Self(*b"whk_ZZZZZZZZZZZZZZZZZZZZZZZZZZ");

    /// A new ULID id whose time part is `now` (in milliseconds) and whose 80
    /// random bits come from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(now: Timestamp, rng: &mut R) -> Self {
        let mut random = [0u8; 16];
        if let Some(tail) = random.get_mut(6..) {
            rng.fill_bytes(tail);
        }
        Self::from_parts(now, u128::from_be_bytes(random))
    }

    /// A ULID id from its time part and the low 80 bits of `random` (higher
    /// bits are ignored).
    #[must_use]
    pub fn from_parts(time: Timestamp, random: u128) -> Self {
        Self::from_ulid(Ulid::from_parts(time.unix_millis(), random).into())
    }

    /// The id whose 26 characters are the ULID text of `value` (every value
    /// gives an id; it starts with `0` to `7`).
    #[must_use]
    pub fn from_ulid(value: u128) -> Self {
        let mut text = Self::MIN.0;
        let mut body = [0u8; BODY_CHARS];
        let ulid = Ulid::from(value).array_to_str(&mut body);
        if let Some(rest) = text.get_mut(ID_PREFIX.len()..) {
            rest.copy_from_slice(ulid.as_bytes());
        }
        Self(text)
    }

    /// The 128-bit ULID value this id spells, or `None` if it needs more
    /// than 128 bits (its first character after `whk_` is `8` to `Z`).
    #[must_use]
    pub fn to_ulid(self) -> Option<u128> {
        let body = self.body();
        if body.first().is_some_and(|&c| c > b'7') {
            return None;
        }
        let mut value = 0u128;
        for &c in body {
            value = (value << 5) | u128::from(digit_value(c));
        }
        Some(value)
    }

    /// The ULID time part in milliseconds since the Unix epoch, or `None` if
    /// the id is not a 128-bit ULID (see [`to_ulid`](Self::to_ulid)).
    #[must_use]
    pub fn timestamp_ms(self) -> Option<u64> {
        self.to_ulid()
            .and_then(|value| u64::try_from(value >> 80).ok())
    }

    /// The whole id, `whk_` included.
    #[must_use]
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The 26 characters after `whk_`, as ASCII bytes.
    #[must_use]
    pub fn body(&self) -> &[u8] {
        self.0.get(ID_PREFIX.len()..).unwrap_or_default()
    }

    /// The next id in order (the last character incremented, with carry), or
    /// `None` for [`MAX`](Self::MAX).
    #[must_use]
    pub fn successor(self) -> Option<Self> {
        self.step(true)
    }

    /// The previous id in order (the last character decremented, with
    /// borrow), or `None` for [`MIN`](Self::MIN).
    #[must_use]
    pub fn predecessor(self) -> Option<Self> {
        self.step(false)
    }

    fn step(mut self, up: bool) -> Option<Self> {
        let (from, to) = if up { (b'Z', b'0') } else { (b'0', b'Z') };
        for c in self.0.iter_mut().skip(ID_PREFIX.len()).rev() {
            if *c == from {
                *c = to;
                continue;
            }
            let value = digit_value(*c);
            let next = if up { value + 1 } else { value.checked_sub(1)? };
            *c = *DIGITS.get(usize::from(next))?;
            return Some(self);
        }
        None
    }
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

fn parse(s: &str) -> Result<DestinationId, IdErrorKind> {
    let b = s.as_bytes();
    let Some(body) = b.strip_prefix(ID_PREFIX.as_bytes()) else {
        return Err(IdErrorKind::Pattern);
    };
    if body.len() != BODY_CHARS || !body.iter().all(|&c| CROCKFORD.contains(c)) {
        return Err(IdErrorKind::Pattern);
    }
    let text: [u8; ID_LEN] = b.try_into().map_err(|_| IdErrorKind::Pattern)?;
    Ok(DestinationId(text))
}

impl FromStr for DestinationId {
    type Err = InvalidDestinationId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).map_err(InvalidDestinationId::new)
    }
}

impl TryFrom<&str> for DestinationId {
    type Error = InvalidDestinationId;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<String> for DestinationId {
    type Error = InvalidDestinationId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DestinationId> for String {
    fn from(id: DestinationId) -> Self {
        id.as_str().to_owned()
    }
}

impl AsRef<str> for DestinationId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for DestinationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for DestinationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DestinationId({self})")
    }
}
