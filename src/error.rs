//! Field errors with stable codes, and the list a request validation returns.

use core::fmt;

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};

/// A field of the public API that an error concerns, named as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Field {
    /// `name`: the human-readable label.
    Name,
    /// `url`: the HTTPS endpoint.
    Url,
    /// `destinationId`: the `whk_` identifier.
    DestinationId,
    /// `bearerSecret`: the `whsec_` secret.
    BearerSecret,
    /// `version`: the record version an update expects (compare-and-swap).
    Version,
    /// `limit`: the page size of a list request.
    Limit,
    /// `cursor`: where a list request continues.
    Cursor,
    /// `gracePeriodSeconds`: how long a rotated-out secret stays valid.
    GracePeriodSeconds,
    /// `eventId`: the `evt_` identifier of an event.
    EventId,
    /// `type`: the type of an event.
    Type,
    /// `payload`: the JSON payload of an event.
    Payload,
    /// `retrySchedule`: the list of delays between delivery attempts.
    RetrySchedule,
    /// `enabled`: whether a destination receives deliveries.
    Enabled,
    /// `signing`: how deliveries are signed (`bearer` or `standard-webhooks`).
    Signing,
    /// `signingSecret`: the `whsec_` secret of Standard Webhooks signatures.
    SigningSecret,
    /// `filterTypes`: the event types a destination receives.
    FilterTypes,
    /// `headers`: the custom headers every delivery carries.
    Headers,
    /// `description`: free text about a destination.
    Description,
    /// `metadata`: the string-to-string map a client stores with a destination.
    Metadata,
    /// `since`: the RFC 3339 time a recover starts from.
    Since,
}

impl Field {
    /// The JSON field name, exactly as the spec spells it.
    ///
    /// ```
    /// use prets_destinations::error::Field;
    /// assert_eq!(Field::DestinationId.as_str(), "destinationId");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Url => "url",
            Self::DestinationId => "destinationId",
            Self::BearerSecret => "bearerSecret",
            Self::Version => "version",
            Self::Limit => "limit",
            Self::Cursor => "cursor",
            Self::GracePeriodSeconds => "gracePeriodSeconds",
            Self::EventId => "eventId",
            Self::Type => "type",
            Self::Payload => "payload",
            Self::RetrySchedule => "retrySchedule",
            Self::Enabled => "enabled",
            Self::Signing => "signing",
            Self::SigningSecret => "signingSecret",
            Self::FilterTypes => "filterTypes",
            Self::Headers => "headers",
            Self::Description => "description",
            Self::Metadata => "metadata",
            Self::Since => "since",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Field {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One problem with one field: the JSON field name, a stable machine code and a
/// lowercase human message.
///
/// The code is part of the API contract and never changes meaning; the message
/// may be reworded. Neither ever contains the value that was rejected, so an
/// error can be logged or returned without leaking what the client sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldError {
    field: Field,
    code: &'static str,
    message: &'static str,
}

impl FieldError {
    pub(crate) const fn new(field: Field, code: &'static str, message: &'static str) -> Self {
        Self {
            field,
            code,
            message,
        }
    }

    /// The field this error concerns.
    #[must_use]
    pub const fn field(&self) -> Field {
        self.field
    }

    /// The stable machine code, for example `too_long`, `not_https` or `pattern`.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        self.code
    }

    /// A short lowercase description without a trailing period.
    #[must_use]
    pub const fn message(&self) -> &'static str {
        self.message
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)
    }
}

impl std::error::Error for FieldError {}

impl Serialize for FieldError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("FieldError", 3)?;
        s.serialize_field("field", &self.field)?;
        s.serialize_field("code", self.code)?;
        s.serialize_field("message", self.message)?;
        s.end()
    }
}

/// Every field error of one request, in field order; never empty.
///
/// Serializes as `{"errors":[{"field":"url","code":"not_https","message":"..."}]}`
/// so a host can return it as the body of a 400 or 422 response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ValidationErrors {
    errors: Vec<FieldError>,
}

impl ValidationErrors {
    /// Wraps a list of errors that the caller knows is not empty.
    pub(crate) fn from_errors(errors: Vec<FieldError>) -> Self {
        debug_assert!(!errors.is_empty());
        Self { errors }
    }

    /// The individual errors, at least one.
    #[must_use]
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// The first error concerning `field`, if any.
    #[must_use]
    pub fn get(&self, field: Field) -> Option<&FieldError> {
        self.errors.iter().find(|e| e.field == field)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid request")?;
        let mut sep = ": ";
        for e in &self.errors {
            write!(f, "{sep}{}", e.message)?;
            sep = "; ";
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

impl IntoIterator for ValidationErrors {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

/// Declares a per-type parse error: a public struct around a private kind
/// enum, each kind with its stable code and lowercase message.
macro_rules! field_error_type {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:ident, $field:expr,
        { $( $(#[$vmeta:meta])* $variant:ident => ($code:literal, $msg:literal), )+ }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name {
            kind: $kind,
        }

        // Ordered as declared: collections report the first rule any of
        // their entries fails.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub(crate) enum $kind {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            pub(crate) const fn new(kind: $kind) -> Self {
                Self { kind }
            }

            /// The stable machine code of this error.
            #[must_use]
            pub const fn code(&self) -> &'static str {
                match self.kind {
                    $( $kind::$variant => $code, )+
                }
            }

            /// A short lowercase description without a trailing period.
            #[must_use]
            pub const fn message(&self) -> &'static str {
                match self.kind {
                    $( $kind::$variant => $msg, )+
                }
            }

            /// The same error as a [`FieldError`](crate::error::FieldError).
            #[must_use]
            pub const fn to_field_error(&self) -> $crate::error::FieldError {
                $crate::error::FieldError::new($field, self.code(), self.message())
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.message())
            }
        }

        impl ::std::error::Error for $name {}

        impl From<$name> for $crate::error::FieldError {
            fn from(e: $name) -> Self {
                e.to_field_error()
            }
        }
    };
}

pub(crate) use field_error_type;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_every_field_without_values() {
        let errs = ValidationErrors::from_errors(vec![
            FieldError::new(
                Field::Name,
                "too_long",
                "name must be at most 128 characters",
            ),
            FieldError::new(Field::Url, "not_https", "url must begin with https://"),
        ]);
        assert_eq!(
            errs.to_string(),
            "invalid request: name must be at most 128 characters; url must begin with https://"
        );
    }
}
