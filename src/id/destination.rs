//! `DestinationId`: `whk_` followed by 26 upper-case Crockford base32 characters.

use serde::{Deserialize, Serialize};

use crate::error::{Field, field_error_type};
use crate::id::text::{Text, text_id};

/// The prefix of every destination id.
pub const ID_PREFIX: &str = DestinationId::PREFIX;

/// The published `destinationId` pattern, verbatim from the API reference.
pub const ID_PATTERN: &str = "^whk_[0-9A-HJKMNP-TV-Z]{26}$";

field_error_type! {
    /// Why a string is not a valid [`DestinationId`].
    InvalidDestinationId, IdErrorKind, Field::DestinationId,
    {
        Pattern => ("pattern", "destinationId must be whk_ followed by 26 upper-case crockford base32 characters"),
    }
}

/// A destination id: `whk_` and 26 upper-case Crockford base32 characters,
/// exactly the published pattern `^whk_[0-9A-HJKMNP-TV-Z]{26}$`.
///
/// The id holds its validated text, so ids compare, hash and sort like their
/// text, and [`Display`](core::fmt::Display) and serde write back exactly what was
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
pub struct DestinationId(Text);

text_id!(
    DestinationId,
    "whk_",
    InvalidDestinationId,
    IdErrorKind::Pattern
);
