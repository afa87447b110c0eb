//! Create: the pure step [`NewDestination::plan`], [`plan_create`] (validate
//! and plan in one call) and the async [`create`] over a repo.

use rand_core::CryptoRng;

use crate::error::ValidationErrors;
use crate::id::DestinationId;
use crate::ops::error::OpError;
use crate::policy::HostPolicy;
use crate::record::DestinationRecord;
use crate::repo::{DestinationRepo, InsertOutcome};
use crate::secret::{BearerSecret, SealingKey, Signing, SigningSecret};
use crate::tenant::TenantId;
use crate::time::Timestamp;
use crate::wire::{ApiError, CreateDestinationRequest, CreatedDestination, NewDestination};

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
        let receiver = &self.receiver;
        let signing_secret = (receiver.signing == Some(Signing::StandardWebhooks))
            .then(|| SigningSecret::from_rng(rng));
        let sealed_signing_secret = signing_secret
            .as_ref()
            .map(|s| sealer.seal_signing_secret(tenant, destination_id, s, rng));
        let filter_types = receiver.filter_types.clone().unwrap_or_default();
        let headers = receiver.headers.clone().unwrap_or_default();
        let description = receiver.description.clone().unwrap_or_default();
        let metadata = receiver.metadata.clone().unwrap_or_default();
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
            signing_secret: sealed_signing_secret,
            filter_types: filter_types.clone(),
            headers: headers.clone(),
            description: description.clone(),
            metadata: metadata.clone(),
        };
        let response = CreatedDestination {
            destination_id,
            name: self.name.clone(),
            url: self.url.clone(),
            created_at: at,
            updated_at: at,
            bearer_secret: secret,
            signing_secret,
            filter_types,
            headers,
            description,
            metadata,
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

/// How many ids [`create`] tries when the server generates them: the first
/// and up to 3 retries. A generated id has 80 random bits, so even one retry
/// means something is wrong with the randomness or the repo.
pub const SERVER_ID_ATTEMPTS: u32 = 4;

/// Every answer [`create`] gives the client. A host maps them to `201`,
/// `409` and `400` (or `422`); [`OpError`] is for the host's `5xx`.
///
/// Not `#[non_exhaustive]`: a host must answer each one.
#[derive(Debug)]
#[must_use]
#[allow(
    clippy::large_enum_variant,
    reason = "one answer per request, moved once; boxing would only add an allocation"
)]
pub enum CreateOutcome {
    /// Stored; send this body, with the secret, once.
    Created(CreatedDestination),
    /// The client sent a `destinationId` the tenant already has. Nothing was
    /// written; the existing destination is untouched.
    Conflict {
        /// The id that exists, for the `409` answer.
        existing: DestinationId,
    },
    /// Some fields are invalid (all are listed); the repo was not called.
    Invalid(ValidationErrors),
    /// The tenant has the most destinations the store's quota allows;
    /// nothing was written (`403 quota_exceeded`).
    QuotaExceeded,
}

/// Creates a destination: validates `request`, plans it (mints the id unless
/// the client sent one, mints and seals the secret under `sealer`) and inserts
/// the record for `tenant` through `repo`.
///
/// - A client-supplied `destinationId` the tenant already has gives
///   [`CreateOutcome::Conflict`] with that id, and nothing is written.
/// - A generated id that collides is replaced by a fresh one (with a fresh
///   secret), up to [`SERVER_ID_ATTEMPTS`] ids in all.
/// - Invalid fields give [`CreateOutcome::Invalid`] without touching the repo.
/// - A tenant at the store's destination quota gets
///   [`CreateOutcome::QuotaExceeded`], and nothing is written.
///
/// The secret leaves only in [`CreateOutcome::Created`], after the repo has
/// stored the record; the record holds it sealed, with its digest.
///
/// The future is `Send` (the repo's futures are, and `rng` must be), so it
/// runs on multi-threaded runtimes. It needs no runtime of its own: a
/// synchronous host can drive it with any executor, here `pollster`.
///
/// ```
/// # #[cfg(feature = "memory")] {
/// use pollster::block_on;
/// use prets_destinations::{
///     create, CreateDestinationRequest, CreateOutcome, DestinationRepo, KeyId, Keyring,
///     MemoryRepo, SealingKey, TenantId, Timestamp,
/// };
/// use rand_core::UnwrapErr;
///
/// let mut rng = UnwrapErr(getrandom::SysRng);
/// let keyring = Keyring::new(SealingKey::from_rng(KeyId::new(1), &mut rng), [])?;
/// let repo = MemoryRepo::new();
/// let tenant: TenantId = "org_1".parse()?;
/// let request = CreateDestinationRequest::new("Production", "https://example.com/prets/events");
/// let now = Timestamp::try_from(std::time::SystemTime::now())?;
///
/// let outcome = block_on(create(&repo, &tenant, request, now, &mut rng, keyring.current()))?;
/// let CreateOutcome::Created(created) = outcome else { panic!("{outcome:?}") };
///
/// // The delivery path opens the stored secret into the header value.
/// let record = block_on(repo.get(&tenant, created.destination_id()))?.expect("stored");
/// let header = keyring.authorization_header(&tenant, &record)?;
/// assert_eq!(*header, *created.bearer_secret().authorization_header());
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`OpError::Repo`] with the repo's own error if an insert fails, and
/// [`OpError::IdCollisions`] if every generated id collided.
pub async fn create<R, G>(
    repo: &R,
    tenant: &TenantId,
    request: CreateDestinationRequest,
    now: Timestamp,
    rng: &mut G,
    sealer: &SealingKey,
) -> Result<CreateOutcome, OpError<R::Error>>
where
    R: DestinationRepo,
    G: CryptoRng + Send + ?Sized,
{
    create_with_policy(
        repo,
        tenant,
        request,
        &HostPolicy::default(),
        now,
        rng,
        sealer,
    )
    .await
}

/// [`create`], judging the URL's host under an operator's [`HostPolicy`]
/// ([`CreateDestinationRequest::validate_with_policy`]) instead of the
/// default one: an allowed network admits a literal IP in it, a denied one
/// refuses even a public literal; host names such as `localhost` stay
/// refused.
///
/// # Errors
/// As for [`create`].
pub async fn create_with_policy<R, G>(
    repo: &R,
    tenant: &TenantId,
    request: CreateDestinationRequest,
    policy: &HostPolicy,
    now: Timestamp,
    rng: &mut G,
    sealer: &SealingKey,
) -> Result<CreateOutcome, OpError<R::Error>>
where
    R: DestinationRepo,
    G: CryptoRng + Send + ?Sized,
{
    let new = match request.validate_with_policy(policy) {
        Ok(new) => new,
        Err(errors) => return Ok(CreateOutcome::Invalid(errors)),
    };
    for _ in 0..SERVER_ID_ATTEMPTS {
        let plan = new.plan(tenant, now, rng, sealer);
        match repo
            .insert(tenant, &plan.record)
            .await
            .map_err(OpError::Repo)?
        {
            InsertOutcome::Inserted => return Ok(CreateOutcome::Created(plan.response)),
            InsertOutcome::QuotaExceeded => return Ok(CreateOutcome::QuotaExceeded),
            InsertOutcome::Duplicate => match plan.id_source {
                IdSource::Client => {
                    return Ok(CreateOutcome::Conflict {
                        existing: plan.record.destination_id,
                    });
                }
                IdSource::Server => {}
            },
        }
    }
    Err(OpError::IdCollisions {
        attempts: SERVER_ID_ATTEMPTS,
    })
}

impl CreateOutcome {
    /// The `201` body, or the error to answer.
    ///
    /// # Errors
    /// [`ApiError::Conflict`] (with the existing id), [`ApiError::Invalid`]
    /// or [`ApiError::QuotaExceeded`].
    pub fn into_result(self) -> Result<CreatedDestination, ApiError> {
        match self {
            Self::Created(created) => Ok(created),
            Self::Conflict { existing } => Err(ApiError::Conflict { existing }),
            Self::Invalid(errors) => Err(ApiError::Invalid(errors)),
            Self::QuotaExceeded => Err(ApiError::QuotaExceeded),
        }
    }
}
