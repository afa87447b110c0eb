//! `DestinationId`: `whk_` followed by a canonical ULID.

use core::fmt;
use core::str::FromStr;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::Timestamp;
use crate::byteset::ByteSet;
use crate::error::{Field, field_error_type};

/// The prefix of every destination id.
pub const ID_PREFIX: &str = "whk_";

/// The published `destinationId` pattern, verbatim from the API reference.
pub const ID_PATTERN: &str = "^whk_[0-9A-HJKMNP-TV-Z]{26}$";

const ULID_CHARS: usize = 26;
const ID_LEN: usize = ID_PREFIX.len() + ULID_CHARS;

field_error_type! {
    /// Why a string is not a valid [`DestinationId`].
    InvalidDestinationId, IdErrorKind, Field::DestinationId,
    {
        Pattern => ("pattern", "destinationId must be whk_ followed by 26 upper-case crockford base32 characters"),
        Overflow => ("overflow", "destinationId is not a 128-bit ulid: its first character after whk_ must be 0 to 7"),
    }
}

/// Upper-case Crockford base32: digits and letters but I, L, O and U.
static CROCKFORD: ByteSet = ByteSet::new(b"0123456789ABCDEFGHJKMNPQRSTVWXYZ", &[]);

/// A destination id: `whk_` and 26 upper-case Crockford base32 characters
/// that are the canonical text of a 128-bit ULID.
///
/// Every id has exactly one spelling, so ids compare, hash and sort like their
/// text, and [`Display`](fmt::Display) writes back exactly what was parsed.
/// Lower-case letters and the Crockford aliases (`I`, `L`, `O`) are refused
/// rather than normalised, and a first character above `7` (which would need
/// more than 128 bits) is refused with the code `overflow`.
///
/// ```
/// use prets_destinations::DestinationId;
///
/// let id: DestinationId = "whk_01HF2V3J6T0Q8X5Y7Z9ABCDEFG".parse()?;
/// assert_eq!(id.to_string(), "whk_01HF2V3J6T0Q8X5Y7Z9ABCDEFG");
///
/// let err = "whk_81HF2V3J6T0Q8X5Y7Z9ABCDEFG".parse::<DestinationId>().unwrap_err();
/// assert_eq!(err.code(), "overflow");
/// # Ok::<(), prets_destinations::InvalidDestinationId>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DestinationId(Ulid);

impl DestinationId {
    /// A new id whose time part is `now` (in milliseconds) and whose 80 random
    /// bits come from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(now: Timestamp, rng: &mut R) -> Self {
        let mut random = [0u8; 16];
        if let Some(tail) = random.get_mut(6..) {
            rng.fill_bytes(tail);
        }
        Self::from_parts(now, u128::from_be_bytes(random))
    }

    /// An id from its time part and the low 80 bits of `random` (higher bits
    /// are ignored).
    #[must_use]
    pub fn from_parts(time: Timestamp, random: u128) -> Self {
        Self(Ulid::from_parts(time.unix_millis(), random))
    }

    /// The 128-bit value of the ULID.
    #[must_use]
    pub fn to_u128(self) -> u128 {
        self.0.into()
    }

    /// The id from a 128-bit ULID value (every value is a valid id).
    #[must_use]
    pub fn from_u128(value: u128) -> Self {
        Self(Ulid::from(value))
    }

    /// The time part, in milliseconds since the Unix epoch.
    #[must_use]
    pub fn timestamp_ms(self) -> u64 {
        self.0.timestamp_ms()
    }

    /// Writes the 30-byte text form into `buf` and returns it.
    fn encode(self, buf: &mut [u8; ID_LEN]) -> &str {
        let mut ulid = [0u8; ULID_CHARS];
        let text = self.0.array_to_str(&mut ulid);
        let (prefix, rest) = buf.split_at_mut(ID_PREFIX.len());
        prefix.copy_from_slice(ID_PREFIX.as_bytes());
        rest.copy_from_slice(text.as_bytes());
        core::str::from_utf8(buf).unwrap_or_default()
    }
}

fn parse(s: &str) -> Result<DestinationId, IdErrorKind> {
    let b = s.as_bytes();
    let Some(ulid) = b.strip_prefix(ID_PREFIX.as_bytes()) else {
        return Err(IdErrorKind::Pattern);
    };
    if b.len() != ID_LEN || !ulid.iter().all(|&c| CROCKFORD.contains(c)) {
        return Err(IdErrorKind::Pattern);
    }
    // 26 characters carry 130 bits; the top two must be zero.
    if ulid.first().is_some_and(|&c| c > b'7') {
        return Err(IdErrorKind::Overflow);
    }
    let text = s.get(ID_PREFIX.len()..).ok_or(IdErrorKind::Pattern)?;
    Ulid::from_string(text)
        .map(DestinationId)
        .map_err(|_| IdErrorKind::Pattern)
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
        id.to_string()
    }
}

impl fmt::Display for DestinationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; ID_LEN];
        f.write_str(self.encode(&mut buf))
    }
}

impl fmt::Debug for DestinationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DestinationId({self})")
    }
}
