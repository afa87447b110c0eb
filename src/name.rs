//! `DestinationName`: the human-readable label of a destination.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Field, field_error_type};

/// Most characters a name may have, counted as Unicode scalar values.
pub const NAME_MAX_CHARS: usize = 128;

field_error_type! {
    /// Why a string is not a valid [`DestinationName`].
    InvalidName, NameErrorKind, Field::Name,
    {
        Empty => ("too_short", "name must be at least 1 character"),
        TooLong => ("too_long", "name must be at most 128 characters"),
        Control => ("control_character", "name must not contain control characters"),
        Blank => ("blank", "name must not be only whitespace or invisible characters"),
    }
}

/// A destination's label: 1 to 128 Unicode scalar values (as JSON Schema
/// counts `minLength`/`maxLength`), with no control characters (C0, DEL, C1;
/// NUL included) and not only whitespace or invisible format characters
/// (zero-width spaces, directional marks, the byte-order mark, ...).
///
/// The text is kept exactly as the client sent it, leading and trailing
/// whitespace included.
///
/// ```
/// use prets_destinations::DestinationName;
///
/// let name: DestinationName = "Production".parse()?;
/// assert_eq!(name.as_str(), "Production");
/// assert!("".parse::<DestinationName>().is_err());
/// assert!("🦀".repeat(128).parse::<DestinationName>().is_ok());
/// assert!("a".repeat(129).parse::<DestinationName>().is_err());
/// # Ok::<(), prets_destinations::name::InvalidName>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DestinationName(String);

impl DestinationName {
    /// Validates `s` without allocating.
    ///
    /// # Errors
    /// [`InvalidName`] with code `too_short`, `too_long`, `control_character` or
    /// `blank`.
    pub fn validate(s: &str) -> Result<(), InvalidName> {
        // A char is at most 4 bytes: anything longer than this is too long
        // without looking at it.
        if s.len() > NAME_MAX_CHARS * 4 {
            return Err(InvalidName::new(NameErrorKind::TooLong));
        }
        let mut count = 0usize;
        let mut control = false;
        let mut blank = true;
        for c in s.chars() {
            count += 1;
            // Line and paragraph separators break a one-line label too.
            control |= c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
            blank &= c.is_whitespace() || is_invisible(c);
        }
        let kind = if count == 0 {
            NameErrorKind::Empty
        } else if count > NAME_MAX_CHARS {
            NameErrorKind::TooLong
        } else if control {
            NameErrorKind::Control
        } else if blank {
            NameErrorKind::Blank
        } else {
            return Ok(());
        };
        Err(InvalidName::new(kind))
    }

    /// The name exactly as sent.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The owned string.
    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Characters that render as nothing: zero-width spaces and joiners, word
/// joiner and invisible operators, directional marks, embeddings, overrides
/// and isolates, the soft hyphen, the byte-order mark, Hangul and Braille
/// fillers, variation selectors, tags and other default-ignorable code points.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

impl FromStr for DestinationName {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::validate(s)?;
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<&str> for DestinationName {
    type Error = InvalidName;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<String> for DestinationName {
    type Error = InvalidName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::validate(&s)?;
        Ok(Self(s))
    }
}

impl From<DestinationName> for String {
    fn from(n: DestinationName) -> Self {
        n.0
    }
}

impl AsRef<str> for DestinationName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DestinationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DestinationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DestinationName").field(&self.0).finish()
    }
}
