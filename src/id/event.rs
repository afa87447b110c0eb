//! `EventId`: `evt_` followed by 26 upper-case Crockford base32 characters.

use serde::{Deserialize, Serialize};

use crate::error::{Field, field_error_type};
use crate::id::text::{Text, text_id};

/// The prefix of every event id.
pub const EVENT_ID_PREFIX: &str = EventId::PREFIX;

/// The published `eventId` pattern, verbatim from the API reference.
pub const EVENT_ID_PATTERN: &str = "^evt_[0-9A-HJKMNP-TV-Z]{26}$";

field_error_type! {
    /// Why a string is not a valid [`EventId`].
    InvalidEventId, EventIdErrorKind, Field::EventId,
    {
        Pattern => ("pattern", "eventId must be evt_ followed by 26 upper-case crockford base32 characters"),
    }
}

/// An event id: `evt_` and 26 upper-case Crockford base32 characters,
/// exactly the published pattern `^evt_[0-9A-HJKMNP-TV-Z]{26}$`. It is the
/// `Webhook-Id` of every delivery of the event, the same on every retry, so
/// receivers can drop duplicates.
///
/// It is held like a [`DestinationId`](crate::id::DestinationId): the
/// validated text, so ids compare, hash and sort like their text and write
/// back exactly what was parsed; lower case and the Crockford aliases are
/// refused. Generated ids are ULIDs (`0` to `7` first, the publish time in
/// milliseconds); an id chosen by a client may need more than 128 bits, and
/// then has no ULID value or time.
///
/// ```
/// use prets_destinations::delivery::EventId;
///
/// let id: EventId = "evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFG".parse()?;
/// assert_eq!(id.to_string(), "evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFG");
/// assert!(id.timestamp_ms().is_some());
///
/// let wide: EventId = "evt_ZZZZZZZZZZZZZZZZZZZZZZZZZZ".parse()?;
/// assert_eq!(wide, EventId::MAX);
/// assert_eq!(wide.timestamp_ms(), None);
///
/// assert!("evt_01hf2v3j6t0q8x5y7z9abcdefg".parse::<EventId>().is_err());
/// # Ok::<(), prets_destinations::delivery::InvalidEventId>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(Text);

text_id!(EventId, "evt_", InvalidEventId, EventIdErrorKind::Pattern);
