//! `Description`: free text a client keeps with a destination.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Field, field_error_type};

/// Most characters a description may have, counted as Unicode scalar values.
pub const DESCRIPTION_MAX_CHARS: usize = 1024;

field_error_type! {
    /// Why a string is not a valid [`Description`].
    InvalidDescription, DescriptionErrorKind, Field::Description,
    {
        TooLong => ("too_long", "description must be at most 1024 characters"),
        Control => ("control_character", "description must not contain control characters other than tab, line feed and carriage return"),
    }
}

/// A destination's description: 0 to 1,024 Unicode scalar values (as JSON
/// Schema counts `maxLength`), stored and returned exactly as sent and never
/// interpreted.
///
/// Unlike a [`DestinationName`](crate::name::DestinationName), which is one
/// line, a description may span lines: tab (U+0009), line feed (U+000A) and
/// carriage return (U+000D) are kept. Every other control character (the
/// rest of C0, DEL, C1; NUL included) is refused: NUL cannot be stored by
/// common databases, and the others are terminal escapes in logs and
/// consoles. The empty string is a valid description (no description).
///
/// ```
/// use prets_destinations::description::Description;
///
/// let d: Description = "Invoices for the billing team.\nOwner: ops".parse()?;
/// assert_eq!(d.as_str(), "Invoices for the billing team.\nOwner: ops");
/// assert!("é".repeat(1024).parse::<Description>().is_ok());
/// assert_eq!("a".repeat(1025).parse::<Description>().unwrap_err().code(), "too_long");
/// assert_eq!("bell\u{7}".parse::<Description>().unwrap_err().code(), "control_character");
/// # Ok::<(), prets_destinations::description::InvalidDescription>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Description(String);

/// Whether `c` is refused in free text: a control character other than tab,
/// line feed and carriage return. Shared with metadata values.
pub(crate) fn is_refused_in_text(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

impl Description {
    /// Validates `s` without allocating, in one pass.
    ///
    /// # Errors
    /// [`InvalidDescription`] with code `too_long` or `control_character`.
    pub fn validate(s: &str) -> Result<(), InvalidDescription> {
        // A char is at most 4 bytes: anything longer than this is too long
        // without looking at it.
        if s.len() > DESCRIPTION_MAX_CHARS * 4 {
            return Err(InvalidDescription::new(DescriptionErrorKind::TooLong));
        }
        let mut count = 0usize;
        let mut control = false;
        for c in s.chars() {
            count += 1;
            control |= is_refused_in_text(c);
        }
        if count > DESCRIPTION_MAX_CHARS {
            Err(InvalidDescription::new(DescriptionErrorKind::TooLong))
        } else if control {
            Err(InvalidDescription::new(DescriptionErrorKind::Control))
        } else {
            Ok(())
        }
    }

    /// The description exactly as sent.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is the empty string.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The owned string.
    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }
}

impl FromStr for Description {
    type Err = InvalidDescription;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::validate(s)?;
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<&str> for Description {
    type Error = InvalidDescription;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<String> for Description {
    type Error = InvalidDescription;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::validate(&s)?;
        Ok(Self(s))
    }
}

impl From<Description> for String {
    fn from(d: Description) -> Self {
        d.0
    }
}

impl AsRef<str> for Description {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Description").field(&self.0).finish()
    }
}
