//! `Metadata`: the string-to-string map a client keeps with a destination.

use core::fmt;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::description::is_refused_in_text;
use crate::error::{Field, field_error_type};

/// Most keys a metadata map may have.
pub const METADATA_MAX_KEYS: usize = 50;

/// Most characters of a metadata key, counted as Unicode scalar values.
pub const METADATA_KEY_MAX_CHARS: usize = 40;

/// Most characters of a metadata value, counted as Unicode scalar values.
pub const METADATA_VALUE_MAX_CHARS: usize = 500;

field_error_type! {
    /// Why a map is not valid [`Metadata`]. Never contains a key or a value.
    InvalidMetadata, MetadataErrorKind, Field::Metadata,
    {
        TooMany => ("too_many", "metadata must have at most 50 keys"),
        KeyTooShort => ("key_too_short", "metadata keys must not be empty"),
        KeyTooLong => ("key_too_long", "metadata keys must be at most 40 characters"),
        ValueTooLong => ("value_too_long", "metadata values must be at most 500 characters"),
        Control => ("control_character", "metadata keys must not contain control characters, nor values control characters other than tab, line feed and carriage return"),
        DuplicateKey => ("duplicate_key", "metadata must not repeat a key"),
    }
}

/// A destination's metadata: at most 50 keys of 1 to 40 characters, each
/// with a value of 0 to 500 characters (Unicode scalar values, as JSON Schema
/// counts). Stored and returned, never interpreted; an update replaces the
/// whole map.
///
/// Keys are labels: no control character at all (C0, DEL, C1, and the line
/// and paragraph separators U+2028 and U+2029, as for destination names).
/// Values are free text, as a [`Description`](crate::description::Description):
/// tab, line feed and carriage return are kept, every other control character
/// (NUL included) is refused. Keys are compared exactly (case matters), a
/// repeated key is refused, and the map iterates in key order.
///
/// The rules are checked in the order of the error codes (`too_many`, then
/// the keys, the values, and `duplicate_key`), each over the whole map, so
/// the error does not depend on the order of the members.
///
/// ```
/// use prets_destinations::metadata::Metadata;
///
/// let m = Metadata::new([("team", "billing"), ("tier", "gold")])?;
/// assert_eq!(m.get("team"), Some("billing"));
/// assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"team":"billing","tier":"gold"}"#);
/// let bad = Metadata::new([("k".repeat(41), String::new())]).unwrap_err();
/// assert_eq!(bad.code(), "key_too_long");
/// # Ok::<(), prets_destinations::metadata::InvalidMetadata>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Metadata(BTreeMap<String, String>);

/// Counts the characters of `s`, stopping past `max`, and whether any of them
/// is refused by `refused`. Reads at most `4 * max + 4` bytes' worth of input
/// before it knows the answer is "too long".
fn scan(s: &str, max: usize, refused: fn(char) -> bool) -> (bool, bool) {
    if s.len() > max * 4 {
        return (true, false);
    }
    let mut count = 0usize;
    let mut bad = false;
    for c in s.chars() {
        count += 1;
        bad |= refused(c);
    }
    (count > max, bad)
}

fn is_refused_in_key(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// The first rule (in the order of the codes) that one entry fails.
fn check_entry(key: &str, value: &str) -> Option<MetadataErrorKind> {
    let (key_long, key_bad) = scan(key, METADATA_KEY_MAX_CHARS, is_refused_in_key);
    let (value_long, value_bad) = scan(value, METADATA_VALUE_MAX_CHARS, is_refused_in_text);
    if key.is_empty() {
        Some(MetadataErrorKind::KeyTooShort)
    } else if key_long {
        Some(MetadataErrorKind::KeyTooLong)
    } else if value_long {
        Some(MetadataErrorKind::ValueTooLong)
    } else if key_bad || value_bad {
        Some(MetadataErrorKind::Control)
    } else {
        None
    }
}

impl Metadata {
    /// Validates `entries` into a map. Stops reading at the 51st entry.
    ///
    /// # Errors
    /// [`InvalidMetadata`] with code `too_many`, `key_too_short`,
    /// `key_too_long`, `value_too_long`, `control_character` or
    /// `duplicate_key`: the first of these rules that any entry fails.
    pub fn new<I, K, V>(entries: I) -> Result<Self, InvalidMetadata>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut map = BTreeMap::new();
        let mut first: Option<MetadataErrorKind> = None;
        let mut note = |kind: MetadataErrorKind| {
            first = Some(first.map_or(kind, |f| f.min(kind)));
        };
        for (i, (key, value)) in entries.into_iter().enumerate() {
            if i == METADATA_MAX_KEYS {
                return Err(InvalidMetadata::new(MetadataErrorKind::TooMany));
            }
            let (key, value) = (key.into(), value.into());
            if let Some(kind) = check_entry(&key, &value) {
                note(kind);
            }
            match map.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(_) => note(MetadataErrorKind::DuplicateKey),
            }
        }
        match first {
            Some(kind) => Err(InvalidMetadata::new(kind)),
            None => Ok(Self(map)),
        }
    }

    /// The value of `key`, if the map has it.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// How many keys the map has.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the map has no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries, in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The map.
    #[must_use]
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// The owned map.
    #[must_use]
    pub fn into_map(self) -> BTreeMap<String, String> {
        self.0
    }
}

impl TryFrom<BTreeMap<String, String>> for Metadata {
    type Error = InvalidMetadata;
    fn try_from(map: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        Self::new(map)
    }
}

impl TryFrom<Vec<(String, String)>> for Metadata {
    type Error = InvalidMetadata;
    fn try_from(entries: Vec<(String, String)>) -> Result<Self, Self::Error> {
        Self::new(entries)
    }
}

impl From<Metadata> for BTreeMap<String, String> {
    fn from(m: Metadata) -> Self {
        m.0
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Metadata").field(&self.0).finish()
    }
}

impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Reads a JSON object member by member, so a repeated key is seen (a map
/// type would keep only the last) and reported as `duplicate_key`.
impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Metadata;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, String>()? {
                    if entries.len() > METADATA_MAX_KEYS {
                        continue;
                    }
                    entries.push(entry);
                }
                Metadata::new(entries).map_err(serde::de::Error::custom)
            }
        }
        d.deserialize_map(V)
    }
}
