//! The request bodies, as received, and the valid requests their
//! `validate` gives: destinations (create, update, list, rotate), events
//! (publish) and attempts (list).

use core::fmt;
use core::str::FromStr;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::delivery::{EventCursor, EventType, FilterTypes, Payload};
use crate::description::Description;
use crate::error::{Field, FieldError, ValidationErrors};
use crate::headers::CustomHeaders;
use crate::id::{AttemptId, DestinationId, EventId};
use crate::metadata::Metadata;
use crate::name::DestinationName;
use crate::policy::HostPolicy;
use crate::secret::{GracePeriod, Signing};
use crate::time::Timestamp;
use crate::url::DestinationUrl;
use crate::wire::json::{
    KeySeed, Member, keep, object_deserialize, optional_integer, optional_string, optional_version,
    read_object, required,
};

const FIELDS: &[&str; 8] = &[
    "name",
    "url",
    "destinationId",
    "signing",
    "filterTypes",
    "headers",
    "description",
    "metadata",
];

/// The receiver members a create or an update may carry, as received:
/// `signing`, `filterTypes`, `headers`, `description`, `metadata`.
/// `Debug` shows no header value (a receiver's credentials often travel in
/// one), only what kind of value `headers` is.
#[derive(Clone, Default, PartialEq, Eq)]
struct ReceiverMembers {
    signing: Member,
    filter_types: Member,
    headers: Member,
    description: Member,
    metadata: Member,
}

impl fmt::Debug for ReceiverMembers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers = match &self.headers {
            Member::Missing => "missing",
            Member::Object(_) => "an object",
            _ => "another value",
        };
        f.debug_struct("ReceiverMembers")
            .field("signing", &self.signing)
            .field("filter_types", &self.filter_types)
            .field("headers", &headers)
            .field("description", &self.description)
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl ReceiverMembers {
    fn new([signing, filter_types, headers, description, metadata]: [Member; 5]) -> Self {
        Self {
            signing,
            filter_types,
            headers,
            description,
            metadata,
        }
    }

    /// Every member checked, each error recorded (in the order `signing`,
    /// `filterTypes`, `headers`, `description`, `metadata`); `None` if any
    /// was bad.
    fn validate(self, errors: &mut Vec<FieldError>) -> Option<ReceiverOptions> {
        let before = errors.len();
        let signing = optional_string(
            self.signing,
            Field::Signing,
            "signing must be a string",
            errors,
        )
        .ok()
        .flatten()
        .and_then(|s| keep(s.parse::<Signing>(), errors));
        let filter_types =
            string_list(self.filter_types, errors).and_then(|l| keep(FilterTypes::new(l), errors));
        let headers = string_map(
            self.headers,
            Field::Headers,
            "headers must be an object of strings",
            errors,
        )
        .and_then(|m| keep(CustomHeaders::new(m), errors));
        let description = optional_string(
            self.description,
            Field::Description,
            "description must be a string",
            errors,
        )
        .ok()
        .flatten()
        .and_then(|s| keep(Description::try_from(s), errors));
        let metadata = string_map(
            self.metadata,
            Field::Metadata,
            "metadata must be an object of strings",
            errors,
        )
        .and_then(|m| keep(Metadata::new(m), errors));
        (errors.len() == before).then_some(ReceiverOptions {
            signing,
            filter_types,
            headers,
            description,
            metadata,
        })
    }
}

/// `filterTypes` as a list of strings, or `None` (absent, or a `type` error
/// recorded).
fn string_list(m: Member, errors: &mut Vec<FieldError>) -> Option<Vec<String>> {
    match m {
        Member::Missing => None,
        Member::Array(items) => {
            let n = items.len();
            let strings: Vec<String> = items
                .into_iter()
                .filter_map(|i| match i {
                    Member::String(s) => Some(s),
                    _ => None,
                })
                .collect();
            if strings.len() == n {
                return Some(strings);
            }
            errors.push(FieldError::new(
                Field::FilterTypes,
                "type",
                "filterTypes must be an array of strings",
            ));
            None
        }
        _ => {
            errors.push(FieldError::new(
                Field::FilterTypes,
                "type",
                "filterTypes must be an array of strings",
            ));
            None
        }
    }
}

/// An object member whose values are all strings, as pairs in the order
/// sent, or `None` (absent, or a `type` error recorded).
fn string_map(
    m: Member,
    field: Field,
    message: &'static str,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<(String, String)>> {
    match m {
        Member::Missing => None,
        Member::Object(entries) => {
            let n = entries.len();
            let pairs: Vec<(String, String)> = entries
                .into_iter()
                .filter_map(|(k, v)| match v {
                    Member::String(s) => Some((k, s)),
                    _ => None,
                })
                .collect();
            if pairs.len() == n {
                return Some(pairs);
            }
            errors.push(FieldError::new(field, "type", message));
            None
        }
        _ => {
            errors.push(FieldError::new(field, "type", message));
            None
        }
    }
}

/// What a destination's receiver is given, validated: each member `None`
/// when the request did not carry it. On create an absent member takes its
/// default (`bearer`, every event, no headers, no description, no
/// metadata); on update it is left unchanged, and a present one replaces
/// the whole list or map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReceiverOptions {
    /// `signing`: `bearer` or `standard-webhooks`.
    pub signing: Option<Signing>,
    /// `filterTypes`: the event types delivered; empty means every event.
    pub filter_types: Option<FilterTypes>,
    /// `headers`: the custom headers every delivery carries.
    pub headers: Option<CustomHeaders>,
    /// `description`: free text.
    pub description: Option<Description>,
    /// `metadata`: the client's string-to-string map.
    pub metadata: Option<Metadata>,
}

/// The body of `POST /v1/events/destinations`: `name`, `url`, an optional
/// `destinationId`, and the optional receiver members `signing`
/// (`"bearer"`, the default, or `"standard-webhooks"`), `filterTypes`,
/// `headers`, `description` and `metadata`, as received.
///
/// Deserializing only checks the body's shape: a JSON object whose members
/// are among these, each at most once. Unknown members are refused. Values of the wrong JSON type (`null` included) are
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
    receiver: ReceiverMembers,
}

object_deserialize!(
    CreateDestinationRequest,
    FIELDS,
    "an object with name, url and optionally destinationId, signing, filterTypes, headers, description and metadata",
    |m| {
        let [
            name,
            url,
            destination_id,
            signing,
            filter_types,
            headers,
            description,
            metadata,
        ] = m;
        CreateDestinationRequest {
            name,
            url,
            destination_id,
            receiver: ReceiverMembers::new([signing, filter_types, headers, description, metadata]),
        }
    }
);

/// The builders of the receiver members, the same on a create request and
/// a patch (`$what` words their docs).
macro_rules! receiver_builders {
    ($what:literal) => {
        #[doc = concat!("The same ", $what, " how deliveries are signed (`signing`).")]
        #[must_use]
        pub fn with_signing(mut self, signing: Signing) -> Self {
            self.receiver.signing = Member::String(signing.as_str().to_owned());
            self
        }

        #[doc = concat!("The same ", $what, " these `filterTypes`.")]
        #[must_use]
        pub fn with_filter_types<S: Into<String>>(
            mut self,
            entries: impl IntoIterator<Item = S>,
        ) -> Self {
            self.receiver.filter_types = Member::Array(
                entries
                    .into_iter()
                    .map(|e| Member::String(e.into()))
                    .collect(),
            );
            self
        }

        #[doc = concat!("The same ", $what, " these custom `headers`, in order.")]
        #[must_use]
        pub fn with_headers<N: Into<String>, V: Into<String>>(
            mut self,
            headers: impl IntoIterator<Item = (N, V)>,
        ) -> Self {
            self.receiver.headers = object(headers);
            self
        }

        #[doc = concat!("The same ", $what, " this `description`.")]
        #[must_use]
        pub fn with_description(mut self, description: impl Into<String>) -> Self {
            self.receiver.description = Member::String(description.into());
            self
        }

        #[doc = concat!("The same ", $what, " this `metadata`.")]
        #[must_use]
        pub fn with_metadata<K: Into<String>, V: Into<String>>(
            mut self,
            metadata: impl IntoIterator<Item = (K, V)>,
        ) -> Self {
            self.receiver.metadata = object(metadata);
            self
        }
    };
}

impl CreateDestinationRequest {
    /// A request with a name and a URL and no client-supplied id.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: Member::String(name.into()),
            url: Member::String(url.into()),
            destination_id: Member::Missing,
            receiver: ReceiverMembers::default(),
        }
    }

    receiver_builders!("request with");

    /// The same request with a client-supplied `destinationId`.
    #[must_use]
    pub fn with_destination_id(mut self, id: impl Into<String>) -> Self {
        self.destination_id = Member::String(id.into());
        self
    }

    /// Checks every field and returns the validated values, or every field
    /// error at once (in the order `name`, `url`, `destinationId`, then the
    /// receiver members: `signing`, `filterTypes`, `headers`, `description`,
    /// `metadata`, each with the codes of its type, or `type` for a value of
    /// the wrong JSON type, `null` included).
    ///
    /// A `destinationId` of `null` is refused with the code `type`: the
    /// schema types it as a string, and omitting it is how a client asks for
    /// a server-generated id.
    ///
    /// # Errors
    /// [`ValidationErrors`] naming each bad field with a stable code.
    pub fn validate(self) -> Result<NewDestination, ValidationErrors> {
        self.validate_with_policy(&HostPolicy::default())
    }

    /// [`validate`](Self::validate), judging the URL's host under an
    /// operator's [`HostPolicy`] ([`DestinationUrl::parse_with_policy`]): an
    /// allowed network admits a literal IP such as `https://10.1.2.3/`, a
    /// denied one refuses even a public literal, and names such as
    /// `localhost` stay refused whatever the policy.
    ///
    /// ```
    /// use prets_destinations::{CreateDestinationRequest, HostPolicy};
    ///
    /// let policy = HostPolicy::default().allow("127.0.0.1/32".parse()?);
    /// let req = CreateDestinationRequest::new("Local", "https://127.0.0.1:8443/hook");
    /// assert!(req.clone().validate().is_err());
    /// assert!(req.validate_with_policy(&policy).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`ValidationErrors`] naming each bad field with a stable code.
    pub fn validate_with_policy(
        self,
        policy: &HostPolicy,
    ) -> Result<NewDestination, ValidationErrors> {
        let mut errors = Vec::new();
        let name = required(self.name, Field::Name, &mut errors)
            .and_then(|s| keep(DestinationName::try_from(s), &mut errors));
        let url = required(self.url, Field::Url, &mut errors)
            .and_then(|s| keep(DestinationUrl::parse_with_policy(&s, policy), &mut errors));
        let destination_id = match self.destination_id {
            Member::Missing => Some(None),
            other => required(other, Field::DestinationId, &mut errors)
                .and_then(|s| keep(DestinationId::try_from(s), &mut errors))
                .map(Some),
        };
        let receiver = self.receiver.validate(&mut errors);
        match (name, url, destination_id, receiver) {
            (Some(name), Some(url), Some(destination_id), Some(receiver)) => Ok(NewDestination {
                name,
                url,
                destination_id,
                receiver,
            }),
            // Every `None` above recorded its error, so the list is not empty.
            _ => Err(ValidationErrors::from_errors(errors)),
        }
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
    /// The receiver members given; absent ones take their defaults.
    pub receiver: ReceiverOptions,
}

/// An object member of these pairs, in order.
fn object<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Member {
    Member::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k.into(), Member::String(v.into())))
            .collect(),
    )
}

const UPDATE_FIELDS: &[&str; 9] = &[
    "name",
    "url",
    "version",
    "enabled",
    "signing",
    "filterTypes",
    "headers",
    "description",
    "metadata",
];

/// The body of an update (`PATCH /v1/events/destinations/{destinationId}`):
/// an optional `name`, an optional `url`, an optional `version`, an
/// optional `enabled` and the optional receiver members of a create
/// (`signing`, `filterTypes`, `headers`, `description`, `metadata`; a list
/// or map given replaces the whole of it), as received.
///
/// `enabled: false` disables the destination with the reason `manual` (no new
/// deliveries; pending ones are dropped in the same write, and an attempt
/// being sent is recorded but not retried); `enabled: true` enables it and
/// clears the reason, whatever it was.
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
    receiver: ReceiverMembers,
}

object_deserialize!(
    UpdateDestinationRequest,
    UPDATE_FIELDS,
    "an object with optional name, url, version, enabled, signing, filterTypes, headers, description and metadata",
    |m| {
        let [
            name,
            url,
            version,
            enabled,
            signing,
            filter_types,
            headers,
            description,
            metadata,
        ] = m;
        UpdateDestinationRequest {
            name,
            url,
            version,
            enabled,
            receiver: ReceiverMembers::new([signing, filter_types, headers, description, metadata]),
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

    receiver_builders!("patch also replacing");

    /// Checks every member with the rules of create and returns the patch,
    /// or every field error at once (in the order `name`, `url`, `version`,
    /// `enabled`, then the receiver members; `enabled` must be `true` or
    /// `false`, code `type`).
    ///
    /// # Errors
    /// [`ValidationErrors`] naming each bad field with a stable code.
    pub fn validate(self) -> Result<DestinationPatch, ValidationErrors> {
        self.validate_with_policy(&HostPolicy::default())
    }

    /// [`validate`](Self::validate), judging a new URL's host under an
    /// operator's [`HostPolicy`], as
    /// [`CreateDestinationRequest::validate_with_policy`] does.
    ///
    /// # Errors
    /// [`ValidationErrors`] naming each bad field with a stable code.
    pub fn validate_with_policy(
        self,
        policy: &HostPolicy,
    ) -> Result<DestinationPatch, ValidationErrors> {
        let mut errors = Vec::new();
        let name = optional_string(self.name, Field::Name, "name must be a string", &mut errors)
            .map(|s| s.and_then(|s| keep(DestinationName::try_from(s), &mut errors)));
        let url =
            optional_string(self.url, Field::Url, "url must be a string", &mut errors).map(|s| {
                s.and_then(|s| keep(DestinationUrl::parse_with_policy(&s, policy), &mut errors))
            });
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
        let receiver = self.receiver.validate(&mut errors);
        if !errors.is_empty() {
            return Err(ValidationErrors::from_errors(errors));
        }
        match (name, url, version, enabled, receiver) {
            (Ok(name), Ok(url), Ok(expected_version), Ok(enabled), Some(receiver)) => {
                Ok(DestinationPatch {
                    name,
                    url,
                    expected_version,
                    enabled,
                    receiver,
                })
            }
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
    /// The receiver members to change; `None` ones are left as they are.
    pub receiver: ReceiverOptions,
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
        let (limit, after) = cursor_page(self.limit, self.cursor)?;
        Ok(PageRequest { limit, after })
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
        let (limit, before) = cursor_page(self.limit, self.cursor)?;
        Ok(AttemptPageRequest { limit, before })
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

/// The `limit` (1 to [`MAX_PAGE_LIMIT`], default [`DEFAULT_PAGE_LIMIT`]) and
/// the cursor `C` (the id of the previous page's last item) of a cursor-paged
/// list request, every error at once.
fn cursor_page<C: FromStr>(
    limit: Member,
    cursor: Member,
) -> Result<(usize, Option<C>), ValidationErrors> {
    let mut errors = Vec::new();
    let limit = optional_integer(
        limit,
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
    let cursor = optional_string(
        cursor,
        Field::Cursor,
        "cursor must be a string",
        &mut errors,
    )
    .ok()
    .and_then(|cursor| match cursor {
        None => Some(None),
        Some(c) => match c.parse::<C>() {
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
    match (limit, cursor) {
        (Some(limit), Some(cursor)) => Ok((limit, cursor)),
        _ => Err(ValidationErrors::from_errors(errors)),
    }
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
/// to [`MAX_VERSION`](crate::record::MAX_VERSION); the rotation then applies only to that version). An
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
    /// `type` or `out_of_range` (outside 1 to [`MAX_VERSION`](crate::record::MAX_VERSION)).
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

const PUBLISH_FIELDS: &[&str; 3] = &["type", "payload", "eventId"];
const PUBLISH_EXPECTED: &str = "an object with type, payload and optionally eventId";

/// The body of `POST /v1/events` (publish), as received: `type`,
/// `payload` and an optional, client-chosen `eventId`.
///
/// Deserializing checks only the shape, as for a create body: an object
/// whose members are among `type`, `payload` and `eventId`, each at most
/// once; unknown and repeated members make the body malformed. Serde reads it only from
/// `serde_json`, since the payload is kept as raw JSON text. Values are
/// checked by [`validate`](Self::validate), every error at once.
///
/// ```
/// use prets_destinations::wire::PublishRequest;
///
/// let req: PublishRequest = serde_json::from_str(r#"{"type":"invoice paid","payload":{"n":1}}"#)?;
/// let errors = req.validate().unwrap_err();
/// assert_eq!((errors.errors()[0].field().as_str(), errors.errors()[0].code()), ("type", "pattern"));
/// assert!(serde_json::from_str::<PublishRequest>(r#"{"type":"a","payload":1,"extra":0}"#).is_err());
///
/// let req: PublishRequest = serde_json::from_str(r#"{"type":"a","payload":1,"eventId":"evt_1"}"#)?;
/// let errors = req.validate().unwrap_err();
/// assert_eq!((errors.errors()[0].field().as_str(), errors.errors()[0].code()), ("eventId", "pattern"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct PublishRequest {
    event_type: TypeMember,
    payload: Option<Box<RawValue>>,
    event_id: Member,
}

/// A valid publish request, from [`PublishRequest::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The client's `eventId`, or `None` for a server-minted one.
    pub event_id: Option<EventId>,
    /// The type.
    pub event_type: EventType,
    /// The payload, as received.
    pub payload: Payload,
}

#[derive(Clone, Debug, Default)]
enum TypeMember {
    #[default]
    Missing,
    String(String),
    Other,
}

impl PublishRequest {
    /// A request with this type and payload (JSON text).
    ///
    /// # Errors
    /// [`ValidationErrors`] naming `payload` (`invalid_json`) if `payload`
    /// is not one JSON value.
    pub fn new(event_type: impl Into<String>, payload: String) -> Result<Self, ValidationErrors> {
        let payload = Payload::from_json(payload)
            .map_err(|e| ValidationErrors::from_errors(vec![FieldError::from(e)]))?;
        let raw = RawValue::from_string(payload.get().to_owned()).map_err(|_| {
            ValidationErrors::from_errors(vec![FieldError::new(
                Field::Payload,
                "invalid_json",
                "payload must be a json value",
            )])
        })?;
        Ok(Self {
            event_type: TypeMember::String(event_type.into()),
            payload: Some(raw),
            event_id: Member::Missing,
        })
    }

    /// The same request with a client-chosen `eventId`: publishing it again
    /// with the same type and payload answers as the first time and queues
    /// nothing (see [`publish`](crate::ops::publish())).
    #[must_use]
    pub fn with_event_id(mut self, id: impl Into<String>) -> Self {
        self.event_id = Member::String(id.into());
        self
    }

    /// The valid request, or every field error (`eventId`, `type`, then
    /// `payload`, the order of [`Field`]): `required`, `type` (not a string;
    /// `null` included), the [`EventType`] codes, `too_large` for a payload
    /// over 256 KiB, and `pattern` for an `eventId` that is not an
    /// [`EventId`].
    ///
    /// # Errors
    /// [`ValidationErrors`] naming `type`, `payload` and/or `eventId`.
    pub fn validate(self) -> Result<NewEvent, ValidationErrors> {
        let mut errors = Vec::new();
        let event_id = match self.event_id {
            Member::Missing => Some(None),
            Member::String(s) => keep(EventId::try_from(s), &mut errors).map(Some),
            _ => {
                errors.push(FieldError::new(
                    Field::EventId,
                    "type",
                    "eventId must be a string",
                ));
                None
            }
        };
        let event_type = match self.event_type {
            TypeMember::String(s) => EventType::try_from(s)
                .map_err(|e| errors.push(e.into()))
                .ok(),
            TypeMember::Missing => {
                errors.push(FieldError::new(Field::Type, "required", "type is required"));
                None
            }
            TypeMember::Other => {
                errors.push(FieldError::new(
                    Field::Type,
                    "type",
                    "type must be a string",
                ));
                None
            }
        };
        let payload = match self.payload {
            Some(raw) => Payload::from_raw(raw)
                .map_err(|e| errors.push(e.into()))
                .ok(),
            None => {
                errors.push(FieldError::new(
                    Field::Payload,
                    "required",
                    "payload is required",
                ));
                None
            }
        };
        match (event_type, payload, event_id) {
            (Some(event_type), Some(payload), Some(event_id)) => Ok(NewEvent {
                event_id,
                event_type,
                payload,
            }),
            _ => Err(ValidationErrors::from_errors(errors)),
        }
    }
}

impl<'de> Deserialize<'de> for PublishRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TypeValue;
        impl<'de> Visitor<'de> for TypeValue {
            type Value = TypeMember;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<TypeMember, E> {
                Ok(TypeMember::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<TypeMember, E> {
                Ok(TypeMember::String(v))
            }
            fn visit_unit<E>(self) -> Result<TypeMember, E> {
                Ok(TypeMember::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<TypeMember, E> {
                Ok(TypeMember::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<TypeMember, E> {
                Ok(TypeMember::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<TypeMember, E> {
                Ok(TypeMember::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<TypeMember, E> {
                Ok(TypeMember::Other)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<TypeMember, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(TypeMember::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TypeMember, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(TypeMember::Other)
            }
        }
        struct TypeSeed;
        impl<'de> de::DeserializeSeed<'de> for TypeSeed {
            type Value = TypeMember;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<TypeMember, D::Error> {
                d.deserialize_any(TypeValue)
            }
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PublishRequest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(PUBLISH_EXPECTED)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PublishRequest, A::Error> {
                let mut event_type = None;
                let mut payload = None;
                let mut event_id = None;
                while let Some(i) = map.next_key_seed(KeySeed {
                    names: PUBLISH_FIELDS,
                    expected: PUBLISH_EXPECTED,
                })? {
                    if i == 0 {
                        if event_type.is_some() {
                            return Err(de::Error::duplicate_field("type"));
                        }
                        event_type = Some(map.next_value_seed(TypeSeed)?);
                    } else if i == 2 {
                        if event_id.is_some() {
                            return Err(de::Error::duplicate_field("eventId"));
                        }
                        event_id = Some(map.next_value::<Member>()?);
                    } else {
                        if payload.is_some() {
                            return Err(de::Error::duplicate_field("payload"));
                        }
                        payload = Some(map.next_value::<Box<RawValue>>()?);
                    }
                }
                Ok(PublishRequest {
                    event_type: event_type.unwrap_or_default(),
                    payload,
                    event_id: event_id.unwrap_or_default(),
                })
            }
        }
        d.deserialize_struct("PublishRequest", PUBLISH_FIELDS, V)
    }
}

const LIST_EVENTS_FIELDS: &[&str; 3] = &["limit", "cursor", "type"];

/// A `GET /v1/events` query: `limit`, `cursor` (a previous page's
/// `nextCursor`) and `type` (only events of this type), each optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListEventsRequest {
    limit: Member,
    cursor: Member,
    event_type: Member,
}

object_deserialize!(
    ListEventsRequest,
    LIST_EVENTS_FIELDS,
    "an object with optional limit, cursor and type",
    |m| {
        let [limit, cursor, event_type] = m;
        ListEventsRequest {
            limit,
            cursor,
            event_type,
        }
    }
);

impl ListEventsRequest {
    /// The first page of every type, with the default limit.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks every member, reporting every error at once.
    ///
    /// # Errors
    /// [`ValidationErrors`]: `limit` `type` or `out_of_range`; `cursor`
    /// `type` or `invalid`; `type` `type`, `too_short`, `too_long` or
    /// `pattern`.
    pub fn validate(self) -> Result<EventPageRequest, ValidationErrors> {
        let page = cursor_page::<EventCursor>(self.limit, self.cursor);
        let mut errors = match &page {
            Ok(_) => Vec::new(),
            Err(e) => e.errors().to_vec(),
        };
        let event_type = match self.event_type {
            Member::Missing => Some(None),
            Member::String(s) => keep(EventType::try_from(s), &mut errors).map(Some),
            _ => {
                errors.push(FieldError::new(
                    Field::Type,
                    "type",
                    "type must be a string",
                ));
                None
            }
        };
        match (page, event_type) {
            (Ok((limit, cursor)), Some(event_type)) => Ok(EventPageRequest {
                limit,
                cursor,
                event_type,
            }),
            _ => Err(ValidationErrors::from_errors(errors)),
        }
    }
}

/// A valid events request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventPageRequest {
    /// How many events at most, 1 to [`MAX_PAGE_LIMIT`].
    pub limit: usize,
    /// Only events after this one in the list's order.
    pub cursor: Option<EventCursor>,
    /// Only events of this type.
    pub event_type: Option<EventType>,
}

const RESEND_FIELDS: &[&str; 1] = &["destinationId"];

/// A `POST /v1/events/{eventId}/resend` body: `{"destinationId": "whk_…"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResendRequest {
    destination_id: Member,
}

object_deserialize!(
    ResendRequest,
    RESEND_FIELDS,
    "an object with destinationId",
    |m| {
        let [destination_id] = m;
        ResendRequest { destination_id }
    }
);

impl ResendRequest {
    /// A resend to `destination_id`.
    #[must_use]
    pub fn new(destination_id: impl Into<String>) -> Self {
        Self {
            destination_id: Member::String(destination_id.into()),
        }
    }

    /// The destination to resend to.
    ///
    /// # Errors
    /// [`ValidationErrors`]: `destinationId` `required`, `type` or
    /// `pattern`.
    pub fn validate(self) -> Result<DestinationId, ValidationErrors> {
        let mut errors = Vec::new();
        required(self.destination_id, Field::DestinationId, &mut errors)
            .and_then(|s| keep(DestinationId::try_from(s), &mut errors))
            .ok_or_else(|| ValidationErrors::from_errors(errors))
    }
}

const RECOVER_FIELDS: &[&str; 1] = &["since"];

/// A `POST /v1/events/destinations/{id}/recover` body:
/// `{"since": "<RFC 3339>"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoverRequest {
    since: Member,
}

object_deserialize!(
    RecoverRequest,
    RECOVER_FIELDS,
    "an object with since",
    |m| {
        let [since] = m;
        RecoverRequest { since }
    }
);

impl RecoverRequest {
    /// A recover of what was missed since `since` (RFC 3339).
    #[must_use]
    pub fn new(since: impl Into<String>) -> Self {
        Self {
            since: Member::String(since.into()),
        }
    }

    /// The time to recover from.
    ///
    /// # Errors
    /// [`ValidationErrors`]: `since` `required`, `type` or `invalid` (not
    /// an RFC 3339 date-time between 1970 and 9999).
    pub fn validate(self) -> Result<Timestamp, ValidationErrors> {
        let error = match self.since {
            Member::String(s) => match s.parse::<Timestamp>() {
                Ok(t) => return Ok(t),
                Err(_) => FieldError::new(
                    Field::Since,
                    "invalid",
                    "since must be an RFC 3339 date-time such as 2026-01-01T00:00:00Z",
                ),
            },
            Member::Missing => FieldError::new(Field::Since, "required", "since is required"),
            _ => FieldError::new(Field::Since, "type", "since must be a string"),
        };
        Err(ValidationErrors::from_errors(vec![error]))
    }
}
