//! The pure create step: a validated request, `now` and randomness in; the
//! record to store and the one-time response out.

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::delivery::DisabledReason;
use crate::{
    BearerSecret, CreateDestinationRequest, CreatedDestination, DestinationId, DestinationName,
    DestinationUrl, NewDestination, PreviousSecret, SealedSecret, SealingKey, SecretDigest,
    TenantId, Timestamp, ValidationErrors,
};

/// What a host stores for one destination of a tenant. It never holds the
/// cleartext secret: only the secret sealed for its tenant and id, and the
/// secret's digest.
///
/// The tenant is not a field: the repo keys records by (tenant, id), and the
/// sealed secret opens only for the tenant it was sealed for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationRecord {
    /// The id, unique within the organization.
    pub destination_id: DestinationId,
    /// The label, as sent.
    pub name: DestinationName,
    /// The endpoint, as sent. Loaded with [`DestinationUrl::from_stored`]:
    /// a host-policy change never makes a stored record unreadable.
    #[serde(deserialize_with = "crate::url::deserialize_stored")]
    pub url: DestinationUrl,
    /// Creation time, whole seconds.
    pub created_at: Timestamp,
    /// Time of the last change, whole seconds.
    pub updated_at: Timestamp,
    /// The current secret, sealed under the host's key; opened only by
    /// [`Keyring::authorization_header`](crate::Keyring::authorization_header).
    pub sealed_secret: SealedSecret,
    /// SHA-256 of the current secret's text.
    pub secret_digest: SecretDigest,
    /// The record's version: 1 when created, one more on every change
    /// (update or rotation). Repos compare it in
    /// [`replace`](crate::DestinationRepo::replace) so that concurrent
    /// changes never silently overwrite each other.
    pub version: u64,
    /// Secrets rotated out but still accepted until their deadline, newest
    /// first, at most [`MAX_PREVIOUS_SECRETS`](crate::MAX_PREVIOUS_SECRETS).
    /// Never used for delivery, which always uses the current secret.
    /// Missing in a stored form means none (records stored before rotation
    /// existed).
    #[serde(default)]
    pub previous_secrets: Vec<PreviousSecret>,
    /// Whether deliveries go to it: `true` when created. Missing in a stored
    /// form means `true` (records stored before destinations could be
    /// disabled). Always `disabled_reason.is_none()`.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Why it is disabled (`manual`, `gone` or `failing`); `None` exactly
    /// when `enabled`. Missing in a stored form means `None`.
    #[serde(default)]
    pub disabled_reason: Option<DisabledReason>,
}

const fn enabled_by_default() -> bool {
    true
}

impl DestinationRecord {
    /// The record disabled for `reason` at `now`: `enabled` false,
    /// `disabled_reason` set, `updated_at` = `now` (whole seconds, never
    /// before the last change), version + 1. `None` only if the version
    /// cannot grow (the record is at [`MAX_VERSION`](crate::MAX_VERSION)).
    #[must_use]
    pub fn disabled(&self, reason: DisabledReason, now: Timestamp) -> Option<Self> {
        self.with_state(Some(reason), now)
    }

    /// The record enabled at `now`: `enabled` true, the reason cleared,
    /// `updated_at` and version moved as for [`disabled`](Self::disabled).
    #[must_use]
    pub fn reenabled(&self, now: Timestamp) -> Option<Self> {
        self.with_state(None, now)
    }

    fn with_state(&self, reason: Option<DisabledReason>, now: Timestamp) -> Option<Self> {
        Some(Self {
            enabled: reason.is_none(),
            disabled_reason: reason,
            updated_at: now.truncated().max(self.updated_at),
            version: self
                .version
                .checked_add(1)
                .filter(|v| *v <= crate::MAX_VERSION)?,
            ..self.clone()
        })
    }
}

/// Who chose a destination's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdSource {
    /// The client sent `destinationId`: a clash with an existing destination
    /// is the client's conflict to hear about.
    Client,
    /// The id was generated: a clash is a (very unlikely) collision, and
    /// planning again gives a fresh id.
    Server,
}

/// The outcome of the create step: what to store, and what to answer once
/// the store has succeeded.
#[derive(Debug)]
pub struct CreatePlan {
    /// The record to insert.
    pub record: DestinationRecord,
    /// The `201` body, holding the secret in cleartext; send it once.
    pub response: CreatedDestination,
    /// Whether the id came from the client or was generated.
    pub id_source: IdSource,
}

impl NewDestination {
    /// Mints the id (unless the client sent one) and the secret, seals the
    /// secret for `tenant` and the id under `sealer`, and builds the record
    /// and the response. Pure: no clock, no I/O; `tenant`, `now`, `rng` and
    /// `sealer` are the only inputs besides `self`. Calling it again gives a
    /// fresh id (if server-generated) and a fresh secret.
    ///
    /// `createdAt` and `updatedAt` are `now` truncated to whole seconds; the
    /// generated id's time part keeps the milliseconds.
    pub fn plan<R: CryptoRng + ?Sized>(
        &self,
        tenant: &TenantId,
        now: Timestamp,
        rng: &mut R,
        sealer: &SealingKey,
    ) -> CreatePlan {
        let (destination_id, id_source) = match self.destination_id {
            Some(id) => (id, IdSource::Client),
            None => (DestinationId::generate(now, rng), IdSource::Server),
        };
        let secret = BearerSecret::from_rng(rng);
        let sealed_secret = sealer.seal(tenant, destination_id, &secret, rng);
        let at = now.truncated();
        let record = DestinationRecord {
            destination_id,
            name: self.name.clone(),
            url: self.url.clone(),
            created_at: at,
            updated_at: at,
            sealed_secret,
            secret_digest: secret.digest(),
            version: 1,
            previous_secrets: Vec::new(),
            enabled: true,
            disabled_reason: None,
        };
        let response = CreatedDestination {
            destination_id,
            name: self.name.clone(),
            url: self.url.clone(),
            created_at: at,
            updated_at: at,
            bearer_secret: secret,
        };
        CreatePlan {
            record,
            response,
            id_source,
        }
    }
}

/// Validates `request` and plans the create in one call; see
/// [`CreateDestinationRequest::validate`] and [`NewDestination::plan`].
///
/// # Errors
/// [`ValidationErrors`] with every bad field.
pub fn plan_create<R: CryptoRng + ?Sized>(
    request: CreateDestinationRequest,
    tenant: &TenantId,
    now: Timestamp,
    rng: &mut R,
    sealer: &SealingKey,
) -> Result<CreatePlan, ValidationErrors> {
    Ok(request.validate()?.plan(tenant, now, rng, sealer))
}
