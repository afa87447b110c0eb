//! The request and response bodies of `POST /v1/events/destinations`.

use core::fmt;

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::delivery::{AttemptId, DisabledReason};
use crate::error::{Field, FieldError, ValidationErrors};
use crate::{
    BearerSecret, DestinationId, DestinationName, DestinationRecord, DestinationUrl, GracePeriod,
    MAX_VERSION, Timestamp,
};

/// One member of the request body, kept as the client sent it until
/// validation so that every bad field can be reported at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Member {
    #[default]
    Missing,
    Null,
    String(String),
    /// A non-negative integer (kept for the members that are numbers).
    Number(u64),
    /// An integer outside `0..=u64::MAX`: negative, or at least 2^64
    /// (read as a float, so only its magnitude is known).
    BigInteger,
    /// `true` or `false`.
    Bool(bool),
    /// A fractional number, array or object.
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
            fn visit_bool<E>(self, v: bool) -> Result<Member, E> {
                Ok(Member::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Member, E> {
                Ok(u64::try_from(v).map_or(Member::BigInteger, Member::Number))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Member, E> {
                Ok(Member::Number(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Member, E> {
                // JSON integers beyond 64 bits arrive as floats; every float
                // this large is integral.
                Ok(if v.abs() >= 9_223_372_036_854_775_808.0 {
                    Member::BigInteger
                } else {
                    Member::Other
                })
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

/// Finds a member name among `names`, by position; an unknown name is an
/// error that does not echo it.
pub(crate) struct KeySeed {
    pub(crate) names: &'static [&'static str],
    pub(crate) expected: &'static str,
}

impl<'de> de::DeserializeSeed<'de> for KeySeed {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        struct V(KeySeed);
        impl Visitor<'_> for V {
            type Value = usize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0.expected)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
                self.0
                    .names
                    .iter()
                    .position(|n| *n == v)
                    // The member name is the client's text: never echo it.
                    .ok_or_else(|| E::custom(self.0.expected))
            }
        }
        d.deserialize_identifier(V(self))
    }
}

/// Reads an object whose members are among `names` (each at most once) into
/// `N` members, in the order of `names`.
fn read_object<'de, A: MapAccess<'de>, const N: usize>(
    mut map: A,
    names: &'static [&'static str; N],
    expected: &'static str,
) -> Result<[Member; N], A::Error> {
    let mut members: [Member; N] = core::array::from_fn(|_| Member::Missing);
    while let Some(i) = map.next_key_seed(KeySeed { names, expected })? {
        let (Some(slot), Some(name)) = (members.get_mut(i), names.get(i)) else {
            return Err(de::Error::custom(expected));
        };
        if *slot != Member::Missing {
            return Err(de::Error::duplicate_field(name));
        }
        *slot = map.next_value()?;
    }
    Ok(members)
}

/// Deserializes a request type from an object with the members `names`.
macro_rules! object_deserialize {
    ($ty:ident, $names:expr, $expected:literal, |$m:ident| $build:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expected)
                    }
                    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<$ty, A::Error> {
                        let $m = read_object(map, $names, $expected)?;
                        Ok($build)
                    }
                }
                d.deserialize_struct(stringify!($ty), $names, V)
            }
        }
    };
}

/// An optional string member: absent is `Ok(None)`; `null` or another type
/// records a `type` error.
fn optional_string(
    m: Member,
    field: Field,
    message: &'static str,
    errors: &mut Vec<FieldError>,
) -> Result<Option<String>, ()> {
    match m {
        Member::Missing => Ok(None),
        Member::String(s) => Ok(Some(s)),
        _ => {
            errors.push(FieldError::new(field, "type", message));
            Err(())
        }
    }
}

/// An optional non-negative integer member: absent is `Ok(None)`; a string
/// of decimal digits is accepted when `digits_ok` (query strings carry only
/// text); anything else records a `type` error.
fn optional_integer(
    m: Member,
    field: Field,
    message: &'static str,
    digits_ok: bool,
    errors: &mut Vec<FieldError>,
) -> Result<Option<u64>, ()> {
    match m {
        Member::Missing => return Ok(None),
        Member::Number(n) => return Ok(Some(n)),
        Member::String(s)
            if digits_ok && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            // All digits: the only failure left is overflow, which is out of
            // every range here.
            return Ok(Some(s.parse().unwrap_or(u64::MAX)));
        }
        _ => {}
    }
    errors.push(FieldError::new(field, "type", message));
    Err(())
}

/// An optional `version` member: absent is `Ok(None)`; an integer outside
/// 1 to [`MAX_VERSION`] (negative, or beyond 64 bits, included) records
/// `out_of_range`; any other value records `type`.
fn optional_version(m: Member, errors: &mut Vec<FieldError>) -> Result<Option<u64>, ()> {
    let out_of_range = |errors: &mut Vec<FieldError>| {
        errors.push(FieldError::new(
            Field::Version,
            "out_of_range",
            "version must be between 1 and 9223372036854775807",
        ));
    };
    match m {
        Member::BigInteger => {
            out_of_range(errors);
            Err(())
        }
        m => match optional_integer(
            m,
            Field::Version,
            "version must be a positive integer",
            false,
            errors,
        )? {
            v @ (None | Some(1..=MAX_VERSION)) => Ok(v),
            Some(_) => {
                out_of_range(errors);
                Err(())
            }
        },
    }
}

const UPDATE_FIELDS: &[&str; 4] = &["name", "url", "version", "enabled"];

/// The body of an update (`PATCH /v1/events/destinations/{destinationId}`):
/// an optional `name`, an optional `url`, an optional `version` and an
/// optional `enabled`, as received.
///
/// `enabled: false` disables the destination with the reason `manual` (no new
/// deliveries; pending ones are dropped when a worker next claims them);
/// `enabled: true` enables it and clears the reason, whatever it was.
///
/// Absent members are left unchanged. Unknown members (`destinationId`
/// included: ids never change) and repeated members make the body malformed,
/// as for create. `null` is not "unchanged" nor "cleared": both fields are
/// required on a destination, so `null` is refused with the code `type`.
/// `version`, if present, must be the destination's current version (as read
/// in its view), or the update answers `version_mismatch`; without it, the
/// update applies to the version the server reads.
///
/// ```
/// use prets_destinations::UpdateDestinationRequest;
///
/// let req: UpdateDestinationRequest =
///     serde_json::from_str(r#"{"name":"","url":null,"version":"2"}"#)?;
/// let errors = req.validate().unwrap_err();
/// let codes: Vec<_> = errors.errors().iter().map(|e| (e.field().as_str(), e.code())).collect();
/// assert_eq!(codes, [("name", "too_short"), ("url", "type"), ("version", "type")]);
/// assert!(serde_json::from_str::<UpdateDestinationRequest>(r#"{"destinationId":"x"}"#).is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateDestinationRequest {
    name: Member,
    url: Member,
    version: Member,
    enabled: Member,
}

object_deserialize!(
    UpdateDestinationRequest,
    UPDATE_FIELDS,
    "an object with optional name, url, version and enabled",
    |m| {
        let [name, url, version, enabled] = m;
        UpdateDestinationRequest {
            name,
            url,
            version,
            enabled,
        }
    }
);

impl UpdateDestinationRequest {
    /// An empty patch: changes nothing but `updatedAt` and the version.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The same patch also setting the name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Member::String(name.into());
        self
    }

    /// The same patch also setting the URL.
    #[must_use]
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Member::String(url.into());
        self
    }

    /// The same patch applying only to this version of the destination.
    #[must_use]
    pub fn with_version(mut self, version: u64) -> Self {
        self.version = Member::Number(version);
        self
    }

    /// The same patch also enabling (`true`) or disabling (`false`, reason
    /// `manual`) the destination.
    #[must_use]
    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = Member::Bool(enabled);
        self
    }

    /// Checks every member with the rules of create and returns the patch,
    /// or every field error at once (in the order `name`, `url`, `version`,
    /// `enabled`; `enabled` must be `true` or `false`, code `type`).
    ///
    /// # Errors
    /// [`ValidationErrors`] naming each bad field with a stable code.
    pub fn validate(self) -> Result<DestinationPatch, ValidationErrors> {
        let mut errors = Vec::new();
        let name = optional_string(self.name, Field::Name, "name must be a string", &mut errors)
            .map(|s| s.and_then(|s| keep(DestinationName::try_from(s), &mut errors)));
        let url = optional_string(self.url, Field::Url, "url must be a string", &mut errors)
            .map(|s| s.and_then(|s| keep(DestinationUrl::try_from(s), &mut errors)));
        let version = optional_version(self.version, &mut errors);
        let enabled = match self.enabled {
            Member::Missing => Ok(None),
            Member::Bool(b) => Ok(Some(b)),
            _ => {
                errors.push(FieldError::new(
                    Field::Enabled,
                    "type",
                    "enabled must be true or false",
                ));
                Err(())
            }
        };
        if !errors.is_empty() {
            return Err(ValidationErrors::from_errors(errors));
        }
        match (name, url, version, enabled) {
            (Ok(name), Ok(url), Ok(expected_version), Ok(enabled)) => Ok(DestinationPatch {
                name,
                url,
                expected_version,
                enabled,
            }),
            // Every `Err` above recorded its error.
            _ => Err(ValidationErrors::from_errors(errors)),
        }
    }
}

/// A valid update: the fields to change, and the version it applies to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestinationPatch {
    /// The new name, if it changes.
    pub name: Option<DestinationName>,
    /// The new URL, if it changes.
    pub url: Option<DestinationUrl>,
    /// The version the client read; `None` to apply to whatever version the
    /// server reads.
    pub expected_version: Option<u64>,
    /// `Some(false)` disables the destination (reason `manual`),
    /// `Some(true)` enables it (reason cleared); `None` leaves it as it is.
    pub enabled: Option<bool>,
}

/// The default number of destinations per page.
pub const DEFAULT_PAGE_LIMIT: usize = 20;

/// The largest page a list request may ask for.
pub const MAX_PAGE_LIMIT: usize = 100;

const LIST_FIELDS: &[&str; 2] = &["limit", "cursor"];

/// A list request (`GET /v1/events/destinations?limit=20&cursor=whk_...`),
/// as received: deserialize it from the query string (every value is then
/// text) or from JSON.
///
/// - `limit`: 1 to 100 ([`MAX_PAGE_LIMIT`]), default 20
///   ([`DEFAULT_PAGE_LIMIT`]); an integer or a string of decimal digits.
///   Out of range is refused (`out_of_range`), not clamped.
/// - `cursor`: the `nextCursor` of the previous page; absent for the first
///   page. Clients treat it as opaque; today it is the id of the last
///   destination of the previous page, and the next page starts after it
///   whether or not it still exists.
///
/// Unknown members are refused, as for create.
///
/// ```
/// use prets_destinations::ListDestinationsRequest;
///
/// let req: ListDestinationsRequest = serde_json::from_str(r#"{"limit":"0","cursor":"x"}"#)?;
/// let errors = req.validate().unwrap_err();
/// let codes: Vec<_> = errors.errors().iter().map(|e| (e.field().as_str(), e.code())).collect();
/// assert_eq!(codes, [("limit", "out_of_range"), ("cursor", "invalid")]);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListDestinationsRequest {
    limit: Member,
    cursor: Member,
}

object_deserialize!(
    ListDestinationsRequest,
    LIST_FIELDS,
    "an object with optional limit and cursor",
    |m| {
        let [limit, cursor] = m;
        ListDestinationsRequest { limit, cursor }
    }
);

impl ListDestinationsRequest {
    /// The first page, with the default limit.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The same request with this page size.
    #[must_use]
    pub fn with_limit(mut self, limit: u64) -> Self {
        self.limit = Member::Number(limit);
        self
    }

    /// The same request continuing after `cursor`, a previous page's
    /// `nextCursor`.
    #[must_use]
    pub fn with_cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Member::String(cursor.into());
        self
    }

    /// Checks both members, reporting every error at once.
    ///
    /// # Errors
    /// [`ValidationErrors`]: `limit` `type` or `out_of_range`; `cursor`
    /// `type` or `invalid`.
    pub fn validate(self) -> Result<PageRequest, ValidationErrors> {
        let mut errors = Vec::new();
        let limit = optional_integer(
            self.limit,
            Field::Limit,
            "limit must be an integer",
            true,
            &mut errors,
        )
        .ok()
        .and_then(|limit| match limit {
            None => Some(DEFAULT_PAGE_LIMIT),
            Some(n) => match usize::try_from(n) {
                Ok(n @ 1..=MAX_PAGE_LIMIT) => Some(n),
                _ => {
                    errors.push(FieldError::new(
                        Field::Limit,
                        "out_of_range",
                        "limit must be between 1 and 100",
                    ));
                    None
                }
            },
        });
        let after = optional_string(
            self.cursor,
            Field::Cursor,
            "cursor must be a string",
            &mut errors,
        )
        .ok()
        .and_then(|cursor| match cursor {
            None => Some(None),
            Some(c) => match DestinationId::try_from(c.as_str()) {
                Ok(id) => Some(Some(id)),
                Err(_) => {
                    errors.push(FieldError::new(
                        Field::Cursor,
                        "invalid",
                        "cursor must be the nextCursor of a previous page",
                    ));
                    None
                }
            },
        });
        match (limit, after) {
            (Some(limit), Some(after)) => Ok(PageRequest { limit, after }),
            _ => Err(ValidationErrors::from_errors(errors)),
        }
    }
}

/// A request for a destination's delivery attempts
/// (`GET /v1/events/destinations/{destinationId}/attempts?limit=20&cursor=att_...`),
/// as received: `limit` as for [`ListDestinationsRequest`] (1 to 100, default
/// 20), `cursor` the `nextCursor` of the previous page (an attempt id).
/// Unknown members are refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListAttemptsRequest {
    limit: Member,
    cursor: Member,
}

object_deserialize!(
    ListAttemptsRequest,
    LIST_FIELDS,
    "an object with optional limit and cursor",
    |m| {
        let [limit, cursor] = m;
        ListAttemptsRequest { limit, cursor }
    }
);

impl ListAttemptsRequest {
    /// The first page, with the default limit.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The same request with this page size.
    #[must_use]
    pub fn with_limit(mut self, limit: u64) -> Self {
        self.limit = Member::Number(limit);
        self
    }

    /// The same request continuing after `cursor`, a previous page's
    /// `nextCursor`.
    #[must_use]
    pub fn with_cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Member::String(cursor.into());
        self
    }

    /// Checks both members, reporting every error at once.
    ///
    /// # Errors
    /// [`ValidationErrors`]: `limit` `type` or `out_of_range`; `cursor`
    /// `type` or `invalid`.
    pub fn validate(self) -> Result<AttemptPageRequest, ValidationErrors> {
        let mut errors = Vec::new();
        let limit = page_limit(self.limit, &mut errors);
        let before = optional_string(
            self.cursor,
            Field::Cursor,
            "cursor must be a string",
            &mut errors,
        )
        .ok()
        .and_then(|cursor| match cursor {
            None => Some(None),
            Some(c) => match c.parse::<AttemptId>() {
                Ok(id) => Some(Some(id)),
                Err(_) => {
                    errors.push(FieldError::new(
                        Field::Cursor,
                        "invalid",
                        "cursor must be the nextCursor of a previous page",
                    ));
                    None
                }
            },
        });
        match (limit, before) {
            (Some(limit), Some(before)) => Ok(AttemptPageRequest { limit, before }),
            _ => Err(ValidationErrors::from_errors(errors)),
        }
    }
}

/// A valid attempts request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptPageRequest {
    /// How many attempts at most, 1 to [`MAX_PAGE_LIMIT`].
    pub limit: usize,
    /// Only attempts older than this one (smaller id); `None` for the first page.
    pub before: Option<AttemptId>,
}

impl Default for AttemptPageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_PAGE_LIMIT,
            before: None,
        }
    }
}

fn page_limit(m: Member, errors: &mut Vec<FieldError>) -> Option<usize> {
    optional_integer(m, Field::Limit, "limit must be an integer", true, errors)
        .ok()
        .and_then(|limit| match limit {
            None => Some(DEFAULT_PAGE_LIMIT),
            Some(n) => match usize::try_from(n) {
                Ok(n @ 1..=MAX_PAGE_LIMIT) => Some(n),
                _ => {
                    errors.push(FieldError::new(
                        Field::Limit,
                        "out_of_range",
                        "limit must be between 1 and 100",
                    ));
                    None
                }
            },
        })
}

/// A valid list request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// How many destinations at most, 1 to [`MAX_PAGE_LIMIT`].
    pub limit: usize,
    /// Start after this id; `None` for the first page.
    pub after: Option<DestinationId>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_PAGE_LIMIT,
            after: None,
        }
    }
}

const ROTATE_FIELDS: &[&str; 2] = &["gracePeriodSeconds", "version"];

/// The body of a rotation (`POST /v1/events/destinations/{destinationId}/rotate-secret`),
/// as received: an optional `gracePeriodSeconds`, 0 to 604800 (7 days),
/// default 86400 (24 hours), and an optional `version`, as for an update (1
/// to [`MAX_VERSION`]; the rotation then applies only to that version). An
/// empty body is [`RotateSecretRequest::new`].
///
/// ```
/// use prets_destinations::RotateSecretRequest;
///
/// let req: RotateSecretRequest = serde_json::from_str(r#"{"gracePeriodSeconds":604801}"#)?;
/// assert_eq!(req.validate().unwrap_err().errors()[0].code(), "out_of_range");
/// let req: RotateSecretRequest = serde_json::from_str("{}")?;
/// let rotation = req.validate().unwrap();
/// assert_eq!((rotation.grace_period.as_secs(), rotation.expected_version), (86_400, None));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RotateSecretRequest {
    grace_period_seconds: Member,
    version: Member,
}

object_deserialize!(
    RotateSecretRequest,
    ROTATE_FIELDS,
    "an object with optional gracePeriodSeconds and version",
    |m| {
        let [grace_period_seconds, version] = m;
        RotateSecretRequest {
            grace_period_seconds,
            version,
        }
    }
);

/// A valid rotation request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// How long the replaced secret stays valid.
    pub grace_period: GracePeriod,
    /// The version the client read; `None` to apply to whatever version the
    /// server reads.
    pub expected_version: Option<u64>,
}

impl RotateSecretRequest {
    /// A rotation with the default grace period (24 hours).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The same request with a grace period of `secs` seconds.
    #[must_use]
    pub fn with_grace_period_seconds(mut self, secs: u64) -> Self {
        self.grace_period_seconds = Member::Number(secs);
        self
    }

    /// The same rotation applying only to this version of the destination.
    #[must_use]
    pub fn with_version(mut self, version: u64) -> Self {
        self.version = Member::Number(version);
        self
    }

    /// The grace period and version asked for, or every field error at once
    /// (`gracePeriodSeconds`, then `version`).
    ///
    /// # Errors
    /// [`ValidationErrors`]: `gracePeriodSeconds` `type` (not a non-negative
    /// integer; `null` included) or `out_of_range` (above 7 days); `version`
    /// `type` or `out_of_range` (outside 1 to [`MAX_VERSION`]).
    pub fn validate(self) -> Result<Rotation, ValidationErrors> {
        let mut errors = Vec::new();
        let grace = optional_integer(
            self.grace_period_seconds,
            Field::GracePeriodSeconds,
            "gracePeriodSeconds must be a non-negative integer",
            false,
            &mut errors,
        )
        .and_then(|secs| match secs {
            None => Ok(GracePeriod::default()),
            Some(secs) => GracePeriod::from_secs(secs).map_err(|e| {
                errors.push(e.to_field_error());
            }),
        });
        let version = optional_version(self.version, &mut errors);
        match (grace, version) {
            (Ok(grace_period), Ok(expected_version)) => Ok(Rotation {
                grace_period,
                expected_version,
            }),
            // Every `Err` above recorded its error.
            _ => Err(ValidationErrors::from_errors(errors)),
        }
    }
}

/// A destination as clients read it (get, list, update): everything but its
/// secrets, which no view holds in any form.
///
/// Serializes as `{"destinationId","name","url","createdAt","updatedAt","version",
/// "enabled","disabledReason"}`. `version` is what an update may send back to
/// apply only to this version; `disabledReason` is `null`, `"manual"`,
/// `"gone"` or `"failing"`, and `null` exactly when `enabled` is `true`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationView {
    destination_id: DestinationId,
    name: DestinationName,
    url: DestinationUrl,
    created_at: Timestamp,
    updated_at: Timestamp,
    version: u64,
    enabled: bool,
    disabled_reason: Option<DisabledReason>,
}

impl From<&DestinationRecord> for DestinationView {
    fn from(r: &DestinationRecord) -> Self {
        Self {
            destination_id: r.destination_id,
            name: r.name.clone(),
            url: r.url.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
            enabled: r.disabled_reason.is_none(),
            disabled_reason: r.disabled_reason,
        }
    }
}

impl DestinationView {
    /// The id.
    #[must_use]
    pub fn destination_id(&self) -> DestinationId {
        self.destination_id
    }
    /// The name.
    #[must_use]
    pub fn name(&self) -> &DestinationName {
        &self.name
    }
    /// The URL.
    #[must_use]
    pub fn url(&self) -> &DestinationUrl {
        &self.url
    }
    /// Creation time (whole seconds); never changes.
    #[must_use]
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
    /// Time of the last update or rotation (whole seconds).
    #[must_use]
    pub fn updated_at(&self) -> Timestamp {
        self.updated_at
    }
    /// The version: 1 when created, one more on each update or rotation.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }
    /// Whether deliveries go to it.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.enabled
    }
    /// Why it is disabled; `None` when enabled.
    #[must_use]
    pub fn disabled_reason(&self) -> Option<DisabledReason> {
        self.disabled_reason
    }
}

/// One page of a list: `{"data":[...],"hasMore":true,"nextCursor":"whk_..."}`.
///
/// `nextCursor` is `null` exactly when `hasMore` is `false`; pass it as the
/// next request's `cursor`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationPage {
    /// The destinations, in ascending id order.
    pub data: Vec<DestinationView>,
    /// Whether more destinations follow.
    pub has_more: bool,
    /// The cursor of the next page, when there is one.
    pub next_cursor: Option<DestinationId>,
}

/// The body of a successful delete: `{"destinationId":"whk_...","deleted":true}`
/// (a host may answer `204 No Content` instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedDestination {
    /// The id that was deleted.
    pub destination_id: DestinationId,
    /// Always `true`.
    pub deleted: bool,
}

/// An error answer of any operation: an HTTP status and the body create uses
/// for its field errors, `{"errors":[{"field","code","message"}]}`, so a
/// client parses one shape everywhere.
///
/// | code | status | field | when |
/// |---|---|---|---|
/// | field codes (`required`, `too_long`, `out_of_range`, ...) | 422 | the bad field | validation |
/// | `not_found` | 404 | `destinationId` | no such destination in the organization |
/// | `conflict` | 409 | `destinationId` | create with an id the organization has |
/// | `version_mismatch` | 409 | `version` | the destination changed since it was read |
/// | `version_exhausted` | 409 | `version` | the destination is at [`MAX_VERSION`](crate::MAX_VERSION) and cannot change |
/// | `disabled` | 409 | `destinationId` | a test event for a disabled destination |
/// | `contention` | 503 | `destinationId` | a write without `version` lost to other writers too many times |
///
/// ```
/// use prets_destinations::ApiError;
///
/// let e = ApiError::not_found();
/// assert_eq!((e.status(), e.code()), (404, "not_found"));
/// let body = serde_json::to_string(&e)?;
/// assert!(body.starts_with(r#"{"errors":[{"field":"destinationId","code":"not_found""#));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    status: u16,
    body: ValidationErrors,
}

impl ApiError {
    fn one(status: u16, field: Field, code: &'static str, message: &'static str) -> Self {
        Self {
            status,
            body: ValidationErrors::from_errors(vec![FieldError::new(field, code, message)]),
        }
    }

    /// `404 not_found`: the organization has no destination with that id.
    #[must_use]
    pub fn not_found() -> Self {
        Self::one(
            404,
            Field::DestinationId,
            "not_found",
            "no destination with this destinationId",
        )
    }

    /// `409 conflict`: create with a `destinationId` the organization has.
    #[must_use]
    pub fn conflict() -> Self {
        Self::one(
            409,
            Field::DestinationId,
            "conflict",
            "a destination with this destinationId already exists",
        )
    }

    /// `409 version_mismatch`: the destination changed since it was read;
    /// read it again and retry.
    #[must_use]
    pub fn version_mismatch() -> Self {
        Self::one(
            409,
            Field::Version,
            "version_mismatch",
            "the destination changed since it was read",
        )
    }

    /// `503 contention`: an update without `version`, or a rotation, lost
    /// the compare-and-swap to other writers
    /// [`VERSIONLESS_ATTEMPTS`](crate::VERSIONLESS_ATTEMPTS) times; nothing
    /// was written. Retry later.
    #[must_use]
    pub fn contention() -> Self {
        Self::one(
            503,
            Field::DestinationId,
            "contention",
            "too many concurrent changes to this destination; retry later",
        )
    }

    /// `409 version_exhausted`: the destination is at
    /// [`MAX_VERSION`](crate::MAX_VERSION) and can no longer be updated or
    /// rotated; delete and recreate it.
    #[must_use]
    pub fn version_exhausted() -> Self {
        Self::one(
            409,
            Field::Version,
            "version_exhausted",
            "the destination has reached the largest version and cannot change",
        )
    }

    /// `409 disabled`: the destination is disabled, so a test event cannot
    /// be sent to it; enable it first.
    #[must_use]
    pub fn disabled() -> Self {
        Self::one(
            409,
            Field::DestinationId,
            "disabled",
            "the destination is disabled",
        )
    }

    /// `422` with every field error.
    #[must_use]
    pub fn invalid(errors: ValidationErrors) -> Self {
        Self {
            status: 422,
            body: errors,
        }
    }

    /// The HTTP status.
    #[must_use]
    pub const fn status(&self) -> u16 {
        self.status
    }

    /// The code of the first error (for `not_found`, `conflict` and
    /// `version_mismatch`, the only one).
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.body
            .errors()
            .first()
            .map_or("invalid", FieldError::code)
    }

    /// The body, every error.
    #[must_use]
    pub const fn errors(&self) -> &ValidationErrors {
        &self.body
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        Self::invalid(errors)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

impl std::error::Error for ApiError {}

impl Serialize for ApiError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.body.serialize(serializer)
    }
}
