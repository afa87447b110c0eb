//! `EventId`: `evt_` followed by the canonical text of a 128-bit ULID.

use core::fmt;
use core::str::FromStr;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::error::{Field, field_error_type};
use crate::id::ulid::{generate_ulid, parse_prefixed_ulid};
use crate::time::Timestamp;

/// The prefix of every event id.
pub const EVENT_ID_PREFIX: &str = "evt_";

field_error_type! {
    /// Why a string is not a valid [`EventId`].
    InvalidEventId, EventIdErrorKind, Field::EventId,
    {
        Pattern => ("pattern", "eventId must be evt_ followed by a 26-character upper-case crockford base32 ulid"),
    }
}

/// An event id: `evt_` and the canonical text of a 128-bit ULID. It is the
/// `Webhook-Id` of every delivery of the event, the same on every retry, so
/// receivers can drop duplicates.
///
/// ```
/// use prets_destinations::delivery::EventId;
///
/// let id: EventId = "evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFG".parse()?;
/// assert_eq!(id.to_string(), "evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFG");
/// assert!("evt_01hf2v3j6t0q8x5y7z9abcdefg".parse::<EventId>().is_err());
/// # Ok::<(), prets_destinations::delivery::InvalidEventId>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(Ulid);

impl EventId {
    /// A new id whose time part is `now` (milliseconds) and whose 80 random
    /// bits come from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(now: Timestamp, rng: &mut R) -> Self {
        Self(generate_ulid(now, rng))
    }

    /// The time part, in milliseconds since the Unix epoch.
    #[must_use]
    pub fn timestamp_ms(self) -> u64 {
        self.0.timestamp_ms()
    }
}

impl FromStr for EventId {
    type Err = InvalidEventId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_prefixed_ulid(s, EVENT_ID_PREFIX)
            .map(Self)
            .ok_or(InvalidEventId::new(EventIdErrorKind::Pattern))
    }
}

impl TryFrom<String> for EventId {
    type Error = InvalidEventId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<EventId> for String {
    fn from(id: EventId) -> Self {
        id.to_string()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{EVENT_ID_PREFIX}{}", self.0)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({self})")
    }
}
