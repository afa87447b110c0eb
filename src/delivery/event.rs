//! `Event`: what is delivered. An `evt_` id, a type, a creation time and a
//! JSON payload kept byte for byte as it was received.

use core::fmt;
use core::str::FromStr;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};

use crate::byteset::ByteSet;
use crate::error::{Field, FieldError, ValidationErrors, field_error_type};
use crate::id::EventId;
use crate::time::Timestamp;

/// Most characters an event type may have.
pub const EVENT_TYPE_MAX_CHARS: usize = 128;

/// Most bytes of an event payload, as serialized JSON: 256 KiB.
pub const PAYLOAD_MAX_BYTES: usize = 256 * 1024;

/// Bytes an event type may hold: `[A-Za-z0-9._:-]`.
pub(crate) static TYPE_CHARS: ByteSet =
    ByteSet::new(b"._:-", &[(b'0', b'9'), (b'A', b'Z'), (b'a', b'z')]);

field_error_type! {
    /// Why a string is not a valid [`EventType`].
    InvalidEventType, EventTypeErrorKind, Field::Type,
    {
        Empty => ("too_short", "type must not be empty"),
        TooLong => ("too_long", "type must be at most 128 characters"),
        Character => ("pattern", "type may contain only letters, digits, '.', '_', ':' and '-'"),
    }
}

/// An event type such as `invoice.paid`: 1 to 128 characters from
/// `[A-Za-z0-9._:-]`.
///
/// ```
/// use prets_destinations::delivery::EventType;
///
/// let t: EventType = "invoice.paid".parse()?;
/// assert_eq!(t.as_str(), "invoice.paid");
/// assert_eq!("invoice paid".parse::<EventType>().unwrap_err().code(), "pattern");
/// # Ok::<(), prets_destinations::delivery::InvalidEventType>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventType(Box<str>);

fn check_type(s: &str) -> Result<(), EventTypeErrorKind> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(EventTypeErrorKind::Empty);
    }
    // Length is counted in characters; only more than 128 bytes can be more
    // than 128 characters.
    if b.len() > EVENT_TYPE_MAX_CHARS && s.chars().count() > EVENT_TYPE_MAX_CHARS {
        return Err(EventTypeErrorKind::TooLong);
    }
    if !b.iter().all(|&c| TYPE_CHARS.contains(c)) {
        return Err(EventTypeErrorKind::Character);
    }
    Ok(())
}

impl EventType {
    /// The type as sent.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for EventType {
    type Err = InvalidEventType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_type(s).map_err(InvalidEventType::new)?;
        Ok(Self(s.into()))
    }
}

impl TryFrom<String> for EventType {
    type Error = InvalidEventType;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        check_type(&s).map_err(InvalidEventType::new)?;
        Ok(Self(s.into_boxed_str()))
    }
}

impl From<EventType> for String {
    fn from(t: EventType) -> Self {
        t.0.into_string()
    }
}

impl AsRef<str> for EventType {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EventType").field(&&*self.0).finish()
    }
}

field_error_type! {
    /// Why a text is not a valid [`Payload`].
    InvalidPayload, PayloadErrorKind, Field::Payload,
    {
        TooLarge => ("too_large", "payload must be at most 262144 bytes of json"),
        Json => ("invalid_json", "payload must be a json value"),
    }
}

/// An event payload: any JSON value of at most [`PAYLOAD_MAX_BYTES`] bytes,
/// kept exactly as received (whitespace, key order, escapes, number
/// spelling) apart from whitespace before or after the value.
///
/// `Debug` shows only the length: payloads may hold personal data. Serde
/// reads it only from `serde_json` (a raw JSON value has no meaning in other
/// formats).
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub struct Payload(Box<RawValue>);

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for Payload {}

impl Payload {
    /// Checks the size first (so an oversized text is never parsed), then
    /// that `text` is one JSON value.
    ///
    /// # Errors
    /// [`InvalidPayload`]: `too_large` or `invalid_json`.
    pub fn from_json(text: String) -> Result<Self, InvalidPayload> {
        if text.trim_matches(is_json_ws).len() > PAYLOAD_MAX_BYTES {
            return Err(InvalidPayload::new(PayloadErrorKind::TooLarge));
        }
        RawValue::from_string(text)
            .map(Self)
            .map_err(|_| InvalidPayload::new(PayloadErrorKind::Json))
    }

    /// Checks the size of an already-parsed raw value.
    ///
    /// # Errors
    /// [`InvalidPayload`] with `too_large`.
    pub fn from_raw(raw: Box<RawValue>) -> Result<Self, InvalidPayload> {
        if raw.get().len() > PAYLOAD_MAX_BYTES {
            return Err(InvalidPayload::new(PayloadErrorKind::TooLarge));
        }
        Ok(Self(raw))
    }

    /// The JSON text.
    #[must_use]
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The SHA-256 of the JSON text: what a store keeps of a published
    /// payload to tell a retry of the event from a different event under
    /// its id.
    #[must_use]
    pub fn digest(&self) -> PayloadDigest {
        PayloadDigest(Sha256::digest(self.get().as_bytes()).into())
    }
}

/// The SHA-256 of a [`Payload`]'s text ([`Payload::digest`]): equal
/// digests are equal bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayloadDigest([u8; 32]);

impl PayloadDigest {
    /// A digest read back from storage.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes, for storage.
    #[must_use]
    pub const fn to_bytes(self) -> [u8; 32] {
        self.0
    }
}

impl fmt::Debug for PayloadDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PayloadDigest(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

const fn is_json_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        Self::from_raw(raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.get().len())
    }
}

/// One event: id, type, creation time (whole seconds) and payload.
///
/// Serializes as its delivery body, `{"eventId","type","createdAt","payload"}`,
/// which is also the form an outbox can store and read back.
///
/// ```
/// use prets_destinations::Timestamp;
/// use prets_destinations::delivery::Event;
/// use rand_core::UnwrapErr;
///
/// let now = Timestamp::from_unix_seconds(1_699_335_116).unwrap();
/// let event = Event::new("invoice.paid", r#"{"amount": 12.50}"#.to_owned(), now, &mut UnwrapErr(getrandom::SysRng))?;
/// let body = String::from_utf8(event.delivery_body())?;
/// assert!(body.ends_with(r#","type":"invoice.paid","createdAt":"2023-11-07T05:31:56Z","payload":{"amount": 12.50}}"#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Event {
    /// The id, the `Webhook-Id` of every delivery.
    pub event_id: EventId,
    /// The type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the event was published, whole seconds.
    pub created_at: Timestamp,
    /// The payload, as received.
    pub payload: Payload,
}

impl Event {
    /// Validates a published event and gives it a new id and `now` (truncated
    /// to whole seconds) as its creation time.
    ///
    /// # Errors
    /// [`ValidationErrors`] naming `type` and/or `payload`.
    pub fn new<R: CryptoRng + ?Sized>(
        event_type: &str,
        payload: String,
        now: Timestamp,
        rng: &mut R,
    ) -> Result<Self, ValidationErrors> {
        let t = event_type.parse::<EventType>();
        let p = Payload::from_json(payload);
        match (t, p) {
            (Ok(event_type), Ok(payload)) => Ok(Self {
                event_id: EventId::generate(now, rng),
                event_type,
                created_at: now.truncated(),
                payload,
            }),
            (t, p) => {
                let errors: Vec<FieldError> = t
                    .err()
                    .map(FieldError::from)
                    .into_iter()
                    .chain(p.err().map(FieldError::from))
                    .collect();
                Err(ValidationErrors::from_errors(errors))
            }
        }
    }

    /// The exact bytes every delivery of this event sends:
    /// `{"eventId":"evt_...","type":"...","createdAt":"...","payload":...}`
    /// with the payload copied unchanged.
    #[must_use]
    pub fn delivery_body(&self) -> Vec<u8> {
        // Ids, types and timestamps never need JSON escaping, so the body is
        // written directly; the payload is already JSON.
        let id = self.event_id.to_string();
        let created = self.created_at.truncated().to_string();
        let parts: [&str; 9] = [
            "{\"eventId\":\"",
            &id,
            "\",\"type\":\"",
            self.event_type.as_str(),
            "\",\"createdAt\":\"",
            &created,
            "\",\"payload\":",
            self.payload.get(),
            "}",
        ];
        let mut body = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        for part in parts {
            body.extend_from_slice(part.as_bytes());
        }
        body
    }
}
