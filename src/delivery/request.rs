//! The HTTP request one delivery attempt sends.

use core::fmt;

use zeroize::Zeroizing;

use crate::delivery::event::Event;
use crate::record::DestinationRecord;
use crate::secret::{Keyring, OpenError};
use crate::tenant::TenantId;
use crate::time::Timestamp;
use crate::url::DestinationUrl;

/// The `User-Agent` of every delivery.
pub const USER_AGENT: &str = concat!("prets-destinations/", env!("CARGO_PKG_VERSION"));

/// What to send for one attempt: `POST` to the destination URL with these
/// headers and this body. Built by [`plan_attempt`].
///
/// The `Authorization` value is held wiped-on-drop and left out of
/// [`Debug`](fmt::Debug); [`expose_headers`](Self::expose_headers) is the one
/// call that hands it out.
pub struct DeliveryRequest {
    url: DestinationUrl,
    authorization: Zeroizing<String>,
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
    /// `User-Agent`. Mark the `Authorization` value sensitive in the HTTP
    /// client so it stays out of its logs.
    #[must_use]
    pub fn expose_headers(&self) -> [(&'static str, &str); 5] {
        [
            ("Authorization", self.authorization.as_str()),
            ("Content-Type", "application/json"),
            ("Webhook-Id", &self.event_id),
            ("Webhook-Timestamp", &self.timestamp),
            ("User-Agent", USER_AGENT),
        ]
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
///
/// # Errors
/// [`OpenError`] if the record's sealed secret does not open (see
/// [`Keyring::authorization_header`]).
pub fn plan_attempt(
    tenant: &TenantId,
    record: &DestinationRecord,
    keyring: &Keyring,
    event: &Event,
    attempt: u32,
    now: Timestamp,
) -> Result<DeliveryRequest, OpenError> {
    let authorization = keyring.authorization_header(tenant, record)?;
    Ok(DeliveryRequest {
        url: record.url.clone(),
        authorization,
        event_id: event.event_id.to_string(),
        timestamp: now.unix_seconds().to_string(),
        attempt,
        body: event.delivery_body(),
    })
}
