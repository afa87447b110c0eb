//! The request and response bodies of `POST /v1/events/destinations`.

use core::fmt;

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Field, FieldError, ValidationErrors};
use crate::{BearerSecret, DestinationId, DestinationName, DestinationUrl, Timestamp};

/// One member of the request body, kept as the client sent it until
/// validation so that every bad field can be reported at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Member {
    #[default]
    Missing,
    Null,
    String(String),
    /// A number, boolean, array or object: the wrong JSON type.
    Other,
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Member;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Member, E> {
                Ok(Member::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Member, E> {
                Ok(Member::String(v))
            }
            fn visit_unit<E>(self) -> Result<Member, E> {
                Ok(Member::Null)
            }
            fn visit_none<E>(self) -> Result<Member, E> {
                Ok(Member::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Member, D::Error> {
                Member::deserialize(d)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Member, E> {
                Ok(Member::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Member, E> {
                Ok(Member::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Member, E> {
                Ok(Member::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Member, E> {
                Ok(Member::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Member, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Member::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Member::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// A member name of the request body.
enum Key {
    Name,
    Url,
    DestinationId,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("name, url or destinationId")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                match v {
                    "name" => Ok(Key::Name),
                    "url" => Ok(Key::Url),
                    "destinationId" => Ok(Key::DestinationId),
                    // The member name is the client's text: never echo it.
                    _ => Err(E::custom(
                        "unknown field, expected one of `name`, `url`, `destinationId`",
                    )),
                }
            }
        }
        d.deserialize_identifier(V)
    }
}

const FIELDS: &[&str] = &["name", "url", "destinationId"];

/// The body of `POST /v1/events/destinations`: `name`, `url` and an optional
/// `destinationId`, as received.
///
/// Deserializing only checks the body's shape: a JSON object whose members
/// are among `name`, `url` and `destinationId`, each at most once. Unknown
/// members are refused. Values of the wrong JSON type (`null` included) are
/// kept and reported by [`validate`](Self::validate) together with every
/// other field error, so one response can list all of them.
///
/// ```
/// use prets_destinations::CreateDestinationRequest;
///
/// let req: CreateDestinationRequest =
///     serde_json::from_str(r#"{"name":"","url":"http://example.com","destinationId":7}"#)?;
/// let errors = req.validate().unwrap_err();
/// let codes: Vec<_> = errors.errors().iter().map(|e| (e.field().as_str(), e.code())).collect();
/// assert_eq!(codes, [("name", "too_short"), ("url", "not_https"), ("destinationId", "type")]);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateDestinationRequest {
    name: Member,
    url: Member,
    destination_id: Member,
}

impl CreateDestinationRequest {
    /// A request with a name and a URL and no client-supplied id.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: Member::String(name.into()),
            url: Member::String(url.into()),
            destination_id: Member::Missing,
        }
    }

    /// The same request with a client-supplied `destinationId`.
    #[must_use]
    pub fn with_destination_id(mut self, id: impl Into<String>) -> Self {
        self.destination_id = Member::String(id.into());
        self
    }

    /// Checks every field and returns the validated values, or every field
    /// error at once (in the order `name`, `url`, `destinationId`).
    ///
    /// A `destinationId` of `null` is refused with the code `type`: the
    /// schema types it as a string, and omitting it is how a client asks for
    /// a server-generated id.
    ///
    /// # Errors
    /// [`ValidationErrors`] naming each bad field with a stable code.
    pub fn validate(self) -> Result<NewDestination, ValidationErrors> {
        let mut errors = Vec::new();
        let name = required(self.name, Field::Name, &mut errors)
            .and_then(|s| keep(DestinationName::try_from(s), &mut errors));
        let url = required(self.url, Field::Url, &mut errors)
            .and_then(|s| keep(DestinationUrl::try_from(s), &mut errors));
        let destination_id = match self.destination_id {
            Member::Missing => Some(None),
            other => required(other, Field::DestinationId, &mut errors)
                .and_then(|s| keep(DestinationId::try_from(s), &mut errors))
                .map(Some),
        };
        match (name, url, destination_id) {
            (Some(name), Some(url), Some(destination_id)) => Ok(NewDestination {
                name,
                url,
                destination_id,
            }),
            // Every `None` above recorded its error, so the list is not empty.
            _ => Err(ValidationErrors::from_errors(errors)),
        }
    }
}

/// The string value of a required member, or `None` with an error recorded.
fn required(m: Member, field: Field, errors: &mut Vec<FieldError>) -> Option<String> {
    let (code, message) = match (m, field) {
        (Member::String(s), _) => return Some(s),
        (Member::Missing, Field::Name) => ("required", "name is required"),
        (Member::Missing, Field::Url) => ("required", "url is required"),
        (Member::Missing, _) => ("required", "destinationId is required"),
        (_, Field::Name) => ("type", "name must be a string"),
        (_, Field::Url) => ("type", "url must be a string"),
        (_, _) => ("type", "destinationId must be a string"),
    };
    errors.push(FieldError::new(field, code, message));
    None
}

fn keep<T, E: Into<FieldError>>(r: Result<T, E>, errors: &mut Vec<FieldError>) -> Option<T> {
    r.map_err(|e| errors.push(e.into())).ok()
}

impl<'de> Deserialize<'de> for CreateDestinationRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CreateDestinationRequest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object with name, url and optionally destinationId")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut req = CreateDestinationRequest {
                    name: Member::Missing,
                    url: Member::Missing,
                    destination_id: Member::Missing,
                };
                while let Some(key) = map.next_key::<Key>()? {
                    let (slot, name) = match key {
                        Key::Name => (&mut req.name, "name"),
                        Key::Url => (&mut req.url, "url"),
                        Key::DestinationId => (&mut req.destination_id, "destinationId"),
                    };
                    if *slot != Member::Missing {
                        return Err(de::Error::duplicate_field(name));
                    }
                    *slot = map.next_value()?;
                }
                Ok(req)
            }
        }
        d.deserialize_struct("CreateDestinationRequest", FIELDS, V)
    }
}

/// A create request whose fields are all valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDestination {
    /// The label.
    pub name: DestinationName,
    /// The endpoint.
    pub url: DestinationUrl,
    /// The client-supplied id, or `None` for a server-generated one.
    pub destination_id: Option<DestinationId>,
}

/// The body of the `201 Created` response: the destination and its bearer
/// secret in cleartext. This is the one type whose serialization includes
/// the secret; it is not `Clone`, so it can be sent once.
///
/// Serializes with the spec's field names, in the spec's order:
/// `destinationId`, `name`, `url`, `createdAt`, `updatedAt`, `bearerSecret`.
#[derive(Debug)]
pub struct CreatedDestination {
    pub(crate) destination_id: DestinationId,
    pub(crate) name: DestinationName,
    pub(crate) url: DestinationUrl,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
    pub(crate) bearer_secret: BearerSecret,
}

impl CreatedDestination {
    /// The destination's id.
    #[must_use]
    pub fn destination_id(&self) -> DestinationId {
        self.destination_id
    }
    /// The name, as sent.
    #[must_use]
    pub fn name(&self) -> &DestinationName {
        &self.name
    }
    /// The URL, as sent.
    #[must_use]
    pub fn url(&self) -> &DestinationUrl {
        &self.url
    }
    /// When the destination was created (whole seconds).
    #[must_use]
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
    /// When the destination was last changed; equal to `created_at` here.
    #[must_use]
    pub fn updated_at(&self) -> Timestamp {
        self.updated_at
    }
    /// The newly minted secret.
    #[must_use]
    pub fn bearer_secret(&self) -> &BearerSecret {
        &self.bearer_secret
    }
}

impl Serialize for CreatedDestination {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("CreatedDestination", 6)?;
        s.serialize_field("destinationId", &self.destination_id)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("url", &self.url)?;
        s.serialize_field("createdAt", &self.created_at)?;
        s.serialize_field("updatedAt", &self.updated_at)?;
        s.serialize_field("bearerSecret", self.bearer_secret.expose_secret())?;
        s.end()
    }
}
