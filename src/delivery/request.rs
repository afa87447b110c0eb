//! The HTTP request one delivery attempt sends.

use core::fmt;

use zeroize::Zeroizing;

use crate::delivery::event::Event;
use crate::headers::CustomHeaders;
use crate::record::DestinationRecord;
use crate::secret::{Keyring, OpenError, SIGNATURE_HEADER, SignedMessage};
use crate::tenant::TenantId;
use crate::time::Timestamp;
use crate::url::DestinationUrl;

/// The `User-Agent` of every delivery.
pub const USER_AGENT: &str = concat!("prets-destinations/", env!("CARGO_PKG_VERSION"));

/// What to send for one attempt: `POST` to the destination URL with these
/// headers and this body. Built by [`plan_attempt`].
///
/// The `Authorization` value is held wiped-on-drop and left out of
/// [`Debug`](fmt::Debug), as are the `Webhook-Signature` value and the
/// custom headers' values; [`expose_headers`](Self::expose_headers) is the
/// one call that hands them out.
pub struct DeliveryRequest {
    url: DestinationUrl,
    authorization: Zeroizing<String>,
    signature: Option<String>,
    headers: CustomHeaders,
    event_id: String,
    timestamp: String,
    attempt: u32,
    body: Vec<u8>,
}

impl DeliveryRequest {
    /// The HTTP method: always `POST`.
    #[must_use]
    pub const fn method(&self) -> &'static str {
        "POST"
    }

    /// The URL to post to, exactly as stored.
    #[must_use]
    pub fn url(&self) -> &DestinationUrl {
        &self.url
    }

    /// Which attempt this is, counted from 1.
    #[must_use]
    pub const fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Every header to send, `Authorization: Bearer whsec_...` included:
    /// `Authorization`, `Content-Type`, `Webhook-Id`, `Webhook-Timestamp`,
    /// `User-Agent` (always these five, in this order), then
    /// `Webhook-Signature` when the destination signs, then the destination's
    /// custom headers in their order. No two names are equal, whatever their
    /// case (custom headers never take a name the server sets). Mark every
    /// value but the first five's `Content-Type`, `Webhook-Id`,
    /// `Webhook-Timestamp` and `User-Agent` sensitive in the HTTP client
    /// ([`is_sensitive`](Self::is_sensitive)) so they stay out of its logs.
    #[must_use]
    pub fn expose_headers(&self) -> Vec<(&str, &str)> {
        let mut out = Vec::with_capacity(6 + self.headers.len());
        out.extend([
            ("Authorization", self.authorization.as_str()),
            ("Content-Type", "application/json"),
            ("Webhook-Id", &self.event_id),
            ("Webhook-Timestamp", &self.timestamp),
            ("User-Agent", USER_AGENT),
        ]);
        if let Some(signature) = &self.signature {
            out.push((SIGNATURE_HEADER, signature));
        }
        out.extend(self.headers.expose_pairs());
        out
    }

    /// Whether the header at `index` of [`expose_headers`](Self::expose_headers)
    /// carries a value to keep out of logs: the `Authorization` secret, the
    /// signature, and every custom header (a receiver's credentials often
    /// travel in one).
    #[must_use]
    pub const fn is_sensitive(index: usize) -> bool {
        !matches!(index, 1..=4)
    }

    /// The body: the event's [`delivery_body`](Event::delivery_body).
    #[must_use]
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body, taken out of the request.
    #[must_use]
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

impl fmt::Debug for DeliveryRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryRequest")
            .field("url", &self.url)
            .field("authorization", &"Bearer [redacted]")
            .field("signed", &self.signature.is_some())
            .field("headers", &self.headers)
            .field("webhook_id", &self.event_id)
            .field("webhook_timestamp", &self.timestamp)
            .field("attempt", &self.attempt)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Builds attempt `attempt` (from 1) of delivering `event` to `tenant`'s
/// `record`, made at `now`: opens the record's current secret with `keyring`
/// for the `Authorization` header, sets `Webhook-Id` to the event id (the
/// same on every retry) and `Webhook-Timestamp` to `now` in Unix seconds.
/// When the record signs (`standard-webhooks`), `Webhook-Signature` carries
/// the Standard Webhooks signatures of `{Webhook-Id}.{Webhook-Timestamp}.{body}`
/// ([`Keyring::record_signature`]): under the current signing secret, then
/// under each one still in a rotation's grace period at `now`. The record's
/// custom headers follow.
///
/// # Errors
/// [`OpenError`] if the record's sealed secret, or one of its sealed
/// signing secrets, does not open (see [`Keyring::authorization_header`]).
pub fn plan_attempt(
    tenant: &TenantId,
    record: &DestinationRecord,
    keyring: &Keyring,
    event: &Event,
    attempt: u32,
    now: Timestamp,
) -> Result<DeliveryRequest, OpenError> {
    let authorization = keyring.authorization_header(tenant, record)?;
    let event_id = event.event_id.to_string();
    let body = event.delivery_body();
    let message = SignedMessage {
        webhook_id: &event_id,
        timestamp: now,
        body: &body,
    };
    let signature = keyring.record_signature(tenant, record, &message, now)?;
    Ok(DeliveryRequest {
        url: record.url.clone(),
        authorization,
        signature,
        headers: record.headers.clone(),
        event_id,
        timestamp: now.unix_seconds().to_string(),
        attempt,
        body,
    })
}
