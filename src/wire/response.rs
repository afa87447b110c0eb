//! The response bodies: the one-time bodies with a secret (create and
//! rotate), the view of a destination, a page of views, a delete; a
//! published event, and a page of delivery attempts.

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use crate::delivery::{
    AttemptOutcome, AttemptRecord, DeliveryState, Event, EventCursor, EventDetail, EventType,
    FilterTypes, Payload,
};
use crate::description::Description;
use crate::headers::CustomHeaders;
use crate::id::{AttemptId, DestinationId, EventId};
use crate::metadata::Metadata;
use crate::name::DestinationName;
use crate::record::{DestinationRecord, DisabledReason};
use crate::secret::{BearerSecret, Signing, SigningSecret};
use crate::time::Timestamp;
use crate::url::DestinationUrl;

/// Read accessors for the private fields of a response body: `copy` fields
/// are returned by value, `ref` fields by reference.
macro_rules! accessors {
    ($ty:ident { $($(#[$doc:meta])* $how:ident $field:ident: $t:ty;)* }) => {
        impl $ty {
            $(accessors!(@one $how $(#[$doc])* $field: $t);)*
        }
    };
    (@one copy $(#[$doc:meta])* $field:ident: $t:ty) => {
        $(#[$doc])*
        #[must_use]
        pub fn $field(&self) -> $t {
            self.$field
        }
    };
    (@one ref $(#[$doc:meta])* $field:ident: $t:ty) => {
        $(#[$doc])*
        #[must_use]
        pub fn $field(&self) -> &$t {
            &self.$field
        }
    };
}

/// The body of the `201 Created` response: the destination and its bearer
/// secret in cleartext. This is the one type whose serialization includes
/// the secret; it is not `Clone`, so it can be sent once.
///
/// Serializes with the spec's field names, in the spec's order:
/// `destinationId`, `name`, `url`, `createdAt`, `updatedAt`, `bearerSecret`.
/// The receiver members follow only when they differ from their defaults,
/// so a request that gives none of them gets exactly the spec's six:
/// `signing` and `signingSecret` (the `whsec_` signing secret, in
/// cleartext, this once) when signing is `standard-webhooks`, then
/// `filterTypes`, `headers`, `description` and `metadata` when not empty.
#[derive(Debug)]
pub struct CreatedDestination {
    pub(crate) destination_id: DestinationId,
    pub(crate) name: DestinationName,
    pub(crate) url: DestinationUrl,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
    pub(crate) bearer_secret: BearerSecret,
    pub(crate) signing_secret: Option<SigningSecret>,
    pub(crate) filter_types: FilterTypes,
    pub(crate) headers: CustomHeaders,
    pub(crate) description: Description,
    pub(crate) metadata: Metadata,
}

impl CreatedDestination {
    /// The newly minted signing secret, when signing is `standard-webhooks`.
    #[must_use]
    pub fn signing_secret(&self) -> Option<&SigningSecret> {
        self.signing_secret.as_ref()
    }

    /// How deliveries are signed.
    #[must_use]
    pub const fn signing(&self) -> Signing {
        if self.signing_secret.is_some() {
            Signing::StandardWebhooks
        } else {
            Signing::Bearer
        }
    }
}

accessors!(CreatedDestination {
    /// The destination's id.
    copy destination_id: DestinationId;
    /// The name, as sent.
    ref name: DestinationName;
    /// The URL, as sent.
    ref url: DestinationUrl;
    /// When the destination was created (whole seconds).
    copy created_at: Timestamp;
    /// When the destination was last changed; equal to `created_at` here.
    copy updated_at: Timestamp;
    /// The newly minted secret.
    ref bearer_secret: BearerSecret;
});

impl Serialize for CreatedDestination {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("CreatedDestination", 12)?;
        s.serialize_field("destinationId", &self.destination_id)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("url", &self.url)?;
        s.serialize_field("createdAt", &self.created_at)?;
        s.serialize_field("updatedAt", &self.updated_at)?;
        s.serialize_field("bearerSecret", self.bearer_secret.expose_secret())?;
        if let Some(secret) = &self.signing_secret {
            s.serialize_field("signing", &Signing::StandardWebhooks)?;
            s.serialize_field("signingSecret", secret.expose_secret())?;
        }
        if !self.filter_types.is_empty() {
            s.serialize_field("filterTypes", &self.filter_types)?;
        }
        if !self.headers.is_empty() {
            s.serialize_field("headers", &self.headers)?;
        }
        if !self.description.is_empty() {
            s.serialize_field("description", &self.description)?;
        }
        if !self.metadata.is_empty() {
            s.serialize_field("metadata", &self.metadata)?;
        }
        s.end()
    }
}

/// A destination as clients read it (get, list, update): everything but its
/// secrets, which no view holds in any form.
///
/// Serializes as `{"destinationId","name","url","createdAt","updatedAt","version",
/// "enabled","disabledReason","signing","filterTypes","headers","description",
/// "metadata"}`. `version` is what an update may send back to
/// apply only to this version; `disabledReason` is `null`, `"manual"`,
/// `"gone"` or `"failing"`, and `null` exactly when `enabled` is `true`;
/// `signing` is `"bearer"` or `"standard-webhooks"` (never the secret).
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
    #[serde(default)]
    signing: Signing,
    #[serde(default)]
    filter_types: FilterTypes,
    #[serde(default)]
    headers: CustomHeaders,
    #[serde(default)]
    description: Description,
    #[serde(default)]
    metadata: Metadata,
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
            signing: r.signing(),
            filter_types: r.filter_types.clone(),
            headers: r.headers.clone(),
            description: r.description.clone(),
            metadata: r.metadata.clone(),
        }
    }
}

accessors!(DestinationView {
    /// The id.
    copy destination_id: DestinationId;
    /// The name.
    ref name: DestinationName;
    /// The URL.
    ref url: DestinationUrl;
    /// Creation time (whole seconds); never changes.
    copy created_at: Timestamp;
    /// Time of the last update or rotation (whole seconds).
    copy updated_at: Timestamp;
    /// The version: 1 when created, one more on each update or rotation.
    copy version: u64;
    /// Whether deliveries go to it.
    copy enabled: bool;
    /// Why it is disabled; `None` when enabled.
    copy disabled_reason: Option<DisabledReason>;
    /// How deliveries are signed.
    copy signing: Signing;
    /// The event types delivered; empty means every event.
    ref filter_types: FilterTypes;
    /// The custom headers every delivery carries.
    ref headers: CustomHeaders;
    /// The description; empty when none.
    ref description: Description;
    /// The client's metadata.
    ref metadata: Metadata;
});

/// The body of a successful update: the [`DestinationView`], and, when the
/// update turned signing on, the new `signingSecret` in cleartext, this
/// once (serialized after the view's members). Not `Clone`, like
/// [`CreatedDestination`].
#[derive(Debug)]
pub struct UpdatedDestination {
    pub(crate) view: DestinationView,
    pub(crate) signing_secret: Option<SigningSecret>,
}

impl UpdatedDestination {
    /// The destination as it now is.
    #[must_use]
    pub const fn view(&self) -> &DestinationView {
        &self.view
    }

    /// The view alone (the secret, if any, is dropped and wiped).
    #[must_use]
    pub fn into_view(self) -> DestinationView {
        self.view
    }

    /// The signing secret minted by this update, when it turned signing on.
    #[must_use]
    pub fn signing_secret(&self) -> Option<&SigningSecret> {
        self.signing_secret.as_ref()
    }
}

impl core::ops::Deref for UpdatedDestination {
    type Target = DestinationView;
    fn deref(&self) -> &DestinationView {
        &self.view
    }
}

/// Equal when the views are equal and both hold the same signing secret
/// (compared in constant time) or neither holds one.
impl PartialEq for UpdatedDestination {
    fn eq(&self, other: &Self) -> bool {
        self.view == other.view
            && match (&self.signing_secret, &other.signing_secret) {
                (None, None) => true,
                (Some(a), Some(b)) => a.ct_eq(b),
                _ => false,
            }
    }
}

impl Eq for UpdatedDestination {}

impl Serialize for UpdatedDestination {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(flatten)]
            view: &'a DestinationView,
            #[serde(rename = "signingSecret", skip_serializing_if = "Option::is_none")]
            signing_secret: Option<&'a str>,
        }
        Body {
            view: &self.view,
            signing_secret: self.signing_secret.as_ref().map(|s| s.expose_secret()),
        }
        .serialize(serializer)
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

impl DeletedDestination {
    /// The body for the deleted destination `id`.
    #[must_use]
    pub const fn of(id: DestinationId) -> Self {
        Self {
            destination_id: id,
            deleted: true,
        }
    }
}

/// The body of a successful rotation: the new secret in cleartext, once.
///
/// Like [`CreatedDestination`], this is the one
/// place the new secret is serialized, and it is not `Clone`. Serializes as
/// `{"destinationId", "bearerSecret", "previousSecretExpiresAt", "updatedAt",
/// "version"}`; `previousSecretExpiresAt` is `null` when the grace period was
/// 0 (the old secret stopped working at once). When the destination signs
/// its deliveries, `signingSecret` (the new `whsec_` signing secret, rotated
/// with the bearer secret and on the same grace period) follows
/// `bearerSecret`.
#[derive(Debug)]
pub struct RotatedSecret {
    pub(crate) destination_id: DestinationId,
    pub(crate) bearer_secret: BearerSecret,
    pub(crate) signing_secret: Option<SigningSecret>,
    pub(crate) previous_secret_expires_at: Option<Timestamp>,
    pub(crate) updated_at: Timestamp,
    pub(crate) version: u64,
}

accessors!(RotatedSecret {
    /// The destination's id.
    copy destination_id: DestinationId;
    /// The newly minted secret, now the one deliveries carry.
    ref bearer_secret: BearerSecret;

    /// Until when the replaced secret is still accepted, or `None` if it was
    /// revoked at once.
    copy previous_secret_expires_at: Option<Timestamp>;
    /// The destination's new `updatedAt`.
    copy updated_at: Timestamp;
    /// The destination's new version.
    copy version: u64;
});

impl RotatedSecret {
    /// The newly minted signing secret, when the destination signs.
    #[must_use]
    pub fn signing_secret(&self) -> Option<&SigningSecret> {
        self.signing_secret.as_ref()
    }
}

impl Serialize for RotatedSecret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut s = serializer.serialize_struct("RotatedSecret", 6)?;
        s.serialize_field("destinationId", &self.destination_id)?;
        s.serialize_field("bearerSecret", self.bearer_secret.expose_secret())?;
        if let Some(secret) = &self.signing_secret {
            s.serialize_field("signingSecret", secret.expose_secret())?;
        }
        s.serialize_field("previousSecretExpiresAt", &self.previous_secret_expires_at)?;
        s.serialize_field("updatedAt", &self.updated_at)?;
        s.serialize_field("version", &self.version)?;
        s.end()
    }
}

/// The `202` body of a publish or a test event:
/// `{"eventId","type","createdAt","destinations"}`, where `destinations` is
/// how many deliveries were enqueued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedEvent {
    /// The event's id, its `Webhook-Id`.
    pub event_id: EventId,
    /// The type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it was published, whole seconds.
    pub created_at: Timestamp,
    /// How many destinations it will be delivered to.
    pub destinations: usize,
}

impl PublishedEvent {
    /// The body for `event`, enqueued for `destinations` destinations.
    pub(crate) fn of(event: &Event, destinations: usize) -> Self {
        Self {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            created_at: event.created_at,
            destinations,
        }
    }
}

/// One attempt as clients read it: `{"attemptId","eventId","attempt",
/// "startedAt","durationMs","outcome","responseStatus","error","nextAttemptAt"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    /// The attempt's id.
    pub attempt_id: AttemptId,
    /// The event delivered.
    pub event_id: EventId,
    /// Which attempt, from 1.
    pub attempt: u32,
    /// When it started.
    pub started_at: Timestamp,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The response status, if a response arrived.
    pub response_status: Option<u16>,
    /// What went wrong; `null` on success.
    pub error: Option<String>,
    /// When the next attempt is due, if there is one.
    pub next_attempt_at: Option<Timestamp>,
    /// Whether an operator queued the delivery (a resend or a recover).
    pub manual: bool,
}

impl From<&AttemptRecord> for AttemptView {
    fn from(a: &AttemptRecord) -> Self {
        Self {
            attempt_id: a.attempt_id,
            event_id: a.event_id,
            attempt: a.attempt,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            outcome: a.outcome,
            response_status: a.response_status,
            error: a.error.clone(),
            next_attempt_at: a.next_attempt_at,
            manual: a.manual,
        }
    }
}

/// One page of attempts, newest first: `{"data","hasMore","nextCursor"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptPage {
    /// The attempts.
    pub data: Vec<AttemptView>,
    /// Whether older attempts follow.
    pub has_more: bool,
    /// The cursor of the next page (the last attempt's id) when there is one.
    pub next_cursor: Option<AttemptId>,
}

/// One event as clients read it: `{"eventId","type","createdAt","payload"}`,
/// the payload exactly as published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// The event's id.
    pub event_id: EventId,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it was published.
    pub created_at: Timestamp,
    /// The payload, byte for byte as published.
    pub payload: Payload,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        Self {
            event_id: e.event_id,
            event_type: e.event_type.clone(),
            created_at: e.created_at,
            payload: e.payload.clone(),
        }
    }
}

/// One page of events, newest first: `{"data","hasMore","nextCursor"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    /// The events.
    pub data: Vec<EventView>,
    /// Whether older events follow.
    pub has_more: bool,
    /// The opaque cursor of the next page, when there is one.
    #[serde(serialize_with = "cursor_text")]
    pub next_cursor: Option<EventCursor>,
}

fn cursor_text<S: Serializer>(c: &Option<EventCursor>, s: S) -> Result<S::Ok, S::Error> {
    match c {
        Some(c) => s.collect_str(c),
        None => s.serialize_none(),
    }
}

/// One destination's deliveries of an event: `{"destinationId","state",
/// "attempts","lastAttemptAt","nextAttemptAt","manual"}`; `nextAttemptAt`
/// and `manual` only for a pending one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    /// The destination.
    pub destination_id: DestinationId,
    /// `pending`, `delivered`, `failed` or `dropped`.
    pub state: &'static str,
    /// How many attempts are recorded for the pair.
    pub attempts: u32,
    /// When the latest one started.
    pub last_attempt_at: Option<Timestamp>,
    /// When a pending delivery's next attempt is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Timestamp>,
    /// Whether a pending delivery was queued by an operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manual: Option<bool>,
}

/// An event with each destination's delivery state:
/// `{"eventId","type","createdAt","payload","deliveries"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDetailView {
    /// The event.
    #[serde(flatten)]
    pub event: EventView,
    /// Each destination's deliveries, by destination id.
    pub deliveries: Vec<DeliveryView>,
}

impl From<&EventDetail> for EventDetailView {
    fn from(d: &EventDetail) -> Self {
        Self {
            event: EventView::from(&d.event),
            deliveries: d
                .deliveries
                .iter()
                .map(|x| {
                    let (next_attempt_at, manual) = match x.state {
                        DeliveryState::Pending {
                            next_attempt_at,
                            manual,
                            ..
                        } => (Some(next_attempt_at), Some(manual)),
                        _ => (None, None),
                    };
                    DeliveryView {
                        destination_id: x.destination_id,
                        state: x.state.as_str(),
                        attempts: x.attempts,
                        last_attempt_at: x.last_attempt_at,
                        next_attempt_at,
                        manual,
                    }
                })
                .collect(),
        }
    }
}

/// What a recover queued: `{"events"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RecoveredEvents {
    /// How many events were queued again.
    pub events: usize,
}
