//! `FilterTypes`: which event types a destination receives.

use core::fmt;
use std::collections::HashSet;

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::delivery::event::{EVENT_TYPE_MAX_CHARS, EventType, TYPE_CHARS};
use crate::error::{Field, field_error_type};

/// Most entries a filter may have.
pub const MAX_FILTER_TYPES: usize = 100;

/// The pattern every entry matches: an event type, or an event type prefix
/// (possibly empty) followed by `*`, 128 characters at most.
pub const FILTER_TYPE_PATTERN: &str = r"^(?:[A-Za-z0-9._:-]{1,128}|[A-Za-z0-9._:-]{0,127}\*)$";

/// The wildcard character.
const WILDCARD: char = '*';

field_error_type! {
    /// Why a list is not valid [`FilterTypes`]. Never contains an entry.
    InvalidFilterTypes, FilterErrorKind, Field::FilterTypes,
    {
        TooMany => ("too_many", "filterTypes must have at most 100 entries"),
        Pattern => ("pattern", "filterTypes entries must be an event type, '*', or an event type prefix followed by '*'"),
        Duplicate => ("duplicate", "filterTypes must not repeat an entry"),
    }
}

/// One entry of [`FilterTypes`], as stores index it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FilterType<'a> {
    /// An event type, matched exactly (case matters).
    Exact(&'a str),
    /// Every event type that begins with this text, byte for byte; the
    /// entry `*` is the empty prefix and matches every type.
    Prefix(&'a str),
}

impl FilterType<'_> {
    /// Whether an event of type `event_type` passes this entry.
    #[must_use]
    pub fn matches(self, event_type: &EventType) -> bool {
        match self {
            Self::Exact(t) => event_type.as_str() == t,
            Self::Prefix(p) => event_type.as_str().starts_with(p),
        }
    }
}

/// The event types a destination receives: at most 100 entries, each an
/// event type, `*`, or a prefix wildcard such as `invoice.*`. An empty filter
/// (the default, also what an absent member means) receives every event.
///
/// What an entry matches, case-sensitively, as [`EventType`]s compare:
///
/// | entry | matches | does not match |
/// |---|---|---|
/// | `invoice.paid` | `invoice.paid` only | `Invoice.paid`, `invoice.paid.late` |
/// | `*` | every type | |
/// | `invoice.*` | every type that begins with `invoice.`: `invoice.paid`, `invoice.paid.late` | `invoice`, `invoices.sent` |
/// | `invoice*` | every type that begins with `invoice`: `invoice`, `invoices.sent`, `invoice.paid` | `inv` |
///
/// So `*` stands for any rest of the type, empty included, and may only be
/// last; a client that wants `invoice` and its sub-types lists both
/// `invoice` and `invoice.*`. Entries are kept in the order sent, and an
/// entry may appear once.
///
/// Matching is a scan of the entries, each a byte comparison of at most 128
/// bytes: linear in the size of the filter, which is bounded.
///
/// ```
/// use prets_destinations::delivery::{EventType, FilterTypes};
///
/// let filter = FilterTypes::new(["invoice.*", "customer.created"])?;
/// let t = |s: &str| s.parse::<EventType>().unwrap();
/// assert!(filter.matches(&t("invoice.paid")));
/// assert!(filter.matches(&t("customer.created")));
/// assert!(!filter.matches(&t("invoice")));
/// assert!(!filter.matches(&t("customer.deleted")));
/// assert!(FilterTypes::default().matches(&t("anything")));
/// assert_eq!(FilterTypes::new(["*.paid"]).unwrap_err().code(), "pattern");
/// # Ok::<(), prets_destinations::delivery::InvalidFilterTypes>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct FilterTypes(Vec<Box<str>>);

/// Whether `entry` matches [`FILTER_TYPE_PATTERN`].
fn is_valid_entry(entry: &str) -> bool {
    let b = entry.as_bytes();
    if b.len() > EVENT_TYPE_MAX_CHARS {
        return false;
    }
    match b.split_last() {
        None => false,
        Some((b'*', prefix)) => prefix.iter().all(|&c| TYPE_CHARS.contains(c)),
        Some(_) => b.iter().all(|&c| TYPE_CHARS.contains(c)),
    }
}

fn kind(entry: &str) -> FilterType<'_> {
    match entry.strip_suffix(WILDCARD) {
        Some(prefix) => FilterType::Prefix(prefix),
        None => FilterType::Exact(entry),
    }
}

impl FilterTypes {
    /// Validates `entries`, keeping their order. Stops reading at the 101st.
    ///
    /// # Errors
    /// [`InvalidFilterTypes`] with code `too_many`, `pattern` or `duplicate`:
    /// the first of these rules that any entry fails.
    pub fn new<I, S>(entries: I) -> Result<Self, InvalidFilterTypes>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut kept: Vec<Box<str>> = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            if i == MAX_FILTER_TYPES {
                return Err(InvalidFilterTypes::new(FilterErrorKind::TooMany));
            }
            kept.push(entry.into().into_boxed_str());
        }
        if !kept.iter().all(|e| is_valid_entry(e)) {
            return Err(InvalidFilterTypes::new(FilterErrorKind::Pattern));
        }
        let mut seen = HashSet::with_capacity(kept.len());
        if !kept.iter().all(|e| seen.insert(&**e)) {
            return Err(InvalidFilterTypes::new(FilterErrorKind::Duplicate));
        }
        Ok(Self(kept))
    }

    /// Whether an event of type `event_type` goes to the destination: the
    /// filter is empty, or one of its entries matches.
    #[must_use]
    pub fn matches(&self, event_type: &EventType) -> bool {
        self.0.is_empty() || self.iter().any(|entry| entry.matches(event_type))
    }

    /// Whether the filter lets every event through: it is empty or has `*`.
    #[must_use]
    pub fn is_every(&self) -> bool {
        self.0.is_empty() || self.0.iter().any(|e| &**e == "*")
    }

    /// How many entries there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none (every event goes through).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries as sent, in order.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.iter().map(|e| &**e)
    }

    /// The entries, each as an exact type or a prefix, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = FilterType<'_>> {
        self.0.iter().map(|e| kind(e))
    }

    /// The keys a store indexes this filter under: its entries, or `*`
    /// alone when it is empty (every event). With
    /// [`keys_matching`](Self::keys_matching), a store finds the
    /// destinations an event goes to by looking keys up, never by reading
    /// every destination: a filter matches an event type exactly when one of
    /// its index keys is among that type's matching keys.
    pub fn index_keys(&self) -> impl Iterator<Item = &str> {
        let every = self.0.is_empty().then_some("*");
        every.into_iter().chain(self.entries())
    }

    /// Every filter entry that matches `event_type`: the type itself, `*`,
    /// and each of its proper prefixes followed by `*` (at most 129 keys for
    /// the longest type), shortest first.
    ///
    /// ```
    /// use prets_destinations::delivery::{EventType, FilterTypes};
    ///
    /// let t: EventType = "a.b".parse()?;
    /// assert_eq!(FilterTypes::keys_matching(&t), ["*", "a*", "a.*", "a.b*", "a.b"]);
    /// let f = FilterTypes::new(["a.*"])?;
    /// assert!(f.index_keys().any(|k| FilterTypes::keys_matching(&t).iter().any(|m| m == k)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn keys_matching(event_type: &EventType) -> Vec<String> {
        let t = event_type.as_str();
        // Event types are ASCII, so every byte index is a char boundary.
        let mut keys: Vec<String> = (0..=t.len())
            .filter_map(|i| t.get(..i))
            .map(|prefix| format!("{prefix}{WILDCARD}"))
            .collect();
        keys.push(t.to_owned());
        keys
    }
}

impl TryFrom<Vec<String>> for FilterTypes {
    type Error = InvalidFilterTypes;
    fn try_from(entries: Vec<String>) -> Result<Self, Self::Error> {
        Self::new(entries)
    }
}

impl From<FilterTypes> for Vec<String> {
    fn from(f: FilterTypes) -> Self {
        f.0.into_iter().map(String::from).collect()
    }
}

impl fmt::Debug for FilterTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FilterTypes").field(&self.0).finish()
    }
}

/// A JSON array of strings, in order.
impl Serialize for FilterTypes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for entry in &self.0 {
            seq.serialize_element(&**entry)?;
        }
        seq.end()
    }
}

/// Reads a JSON array, keeping no more than 101 entries in memory.
impl<'de> Deserialize<'de> for FilterTypes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FilterTypes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FilterTypes, A::Error> {
                let mut entries: Vec<String> = Vec::new();
                while let Some(entry) = seq.next_element::<String>()? {
                    if entries.len() > MAX_FILTER_TYPES {
                        continue;
                    }
                    entries.push(entry);
                }
                FilterTypes::new(entries).map_err(serde::de::Error::custom)
            }
        }
        d.deserialize_seq(V)
    }
}
