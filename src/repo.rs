//! The storage seam: [`DestinationRepo`], implemented by the host over its own
//! storage, and [`create`], the async create over it.

use core::fmt;
use core::future::Future;
use core::str::FromStr;

use rand_core::CryptoRng;

use crate::{
    CreateDestinationRequest, CreatedDestination, DestinationId, DestinationRecord, IdSource,
    SealingKey, SecretDigest, Timestamp, ValidationErrors,
};

/// Most bytes in a [`TenantId`].
pub const TENANT_ID_MAX_LEN: usize = 128;

/// The organization that owns destinations: the scope of every
/// [`DestinationRepo`] call but [`find_by_digest`](DestinationRepo::find_by_digest).
///
/// The host derives it from the authenticated caller (never from the request
/// body) and passes it to each call. It is opaque here: 1 to 128 printable
/// ASCII characters (`!` to `~`, no spaces), enough for the UUIDs, ULIDs,
/// numbers and slugs hosts use as organization ids.
///
/// ```
/// use prets_destinations::TenantId;
///
/// let tenant: TenantId = "org_2b1f".parse()?;
/// assert_eq!(tenant.as_str(), "org_2b1f");
/// assert!("".parse::<TenantId>().is_err());
/// assert!("org 1".parse::<TenantId>().is_err());
/// # Ok::<(), prets_destinations::InvalidTenantId>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(Box<str>);

/// Why a string is not a [`TenantId`]: empty, longer than 128 bytes, or with a
/// character outside printable ASCII.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InvalidTenantId(());

impl fmt::Display for InvalidTenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tenant id must be 1 to 128 printable ascii characters without spaces")
    }
}

impl std::error::Error for InvalidTenantId {}

fn valid_tenant(s: &str) -> bool {
    (1..=TENANT_ID_MAX_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

impl TenantId {
    /// The id's text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TenantId {
    type Err = InvalidTenantId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if valid_tenant(s) {
            Ok(Self(s.into()))
        } else {
            Err(InvalidTenantId(()))
        }
    }
}

impl TryFrom<&str> for TenantId {
    type Error = InvalidTenantId;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<String> for TenantId {
    type Error = InvalidTenantId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if valid_tenant(&s) {
            Ok(Self(s.into_boxed_str()))
        } else {
            Err(InvalidTenantId(()))
        }
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> Self {
        t.0.into()
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

/// What [`DestinationRepo::insert`] did.
///
/// Not `#[non_exhaustive]`: these are the only two answers an atomic
/// insert-if-absent has, and callers must handle each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use]
pub enum InsertOutcome {
    /// The record was stored.
    Inserted,
    /// The tenant already has a destination with this id; nothing was
    /// written. The id is the record's own `destination_id`.
    Duplicate,
}

/// Storage for destinations, implemented by the host over its database.
///
/// Implementors write `async fn`; the trait spells the methods as returning
/// `impl Future + Send` so that [`create`] is `Send` and runs on
/// multi-threaded runtimes. `MemoryRepo` (feature `memory`) is the embedded
/// implementation; the `conformance` module (feature `conformance`) checks
/// any implementation against the contract below.
///
/// # Tenancy
/// The tenant is an argument of every call (not a scoped handle): one repo
/// value, shared by every request, serves all tenants, and each call names the
/// tenant it acts for, which maps directly onto a `WHERE tenant_id = ?` or a
/// key prefix. Destinations are keyed by (tenant, destination id): two
/// tenants may each hold the same id, and no call for one tenant may read,
/// list, conflict with or overwrite another's destination. The one
/// cross-tenant call is [`find_by_digest`](Self::find_by_digest), meant for the
/// platform operator, never for a tenant's request.
///
/// # Contract
/// - **Atomic insert-if-absent.** [`insert`](Self::insert) stores the whole
///   record or nothing. If the tenant already has a destination with the
///   record's id, it returns `Ok(InsertOutcome::Duplicate)` (a value, not an
///   error) and leaves the existing record untouched, even when many inserts
///   of one id race: exactly one of them returns `Inserted`.
/// - **Durable on `Ok`.** When `insert` returns `Ok(Inserted)`, the record is
///   as durable as the host's storage makes anything (committed, for a
///   database) and every later call sees it. The caller hands the secret to
///   the client only after that.
/// - **Nothing on `Err`.** A failed `insert` leaves no partial record: a later
///   `get` finds the whole record or none.
/// - **Faithful.** Every field comes back exactly as inserted, the sealed
///   secret byte for byte.
/// - **Errors are the backend's.** `Err` is for storage failures only; a
///   missing destination is `Ok(None)`.
///
/// - **Versions.** Every change after the insert goes through
///   [`replace`](Self::replace), a compare-and-swap on the record's
///   `version`, or [`remove`](Self::remove); see each method's `# Contract`.
///
/// # Example: a host's repo over a map
/// Records keyed by (tenant, id) in a `BTreeMap`, so each tenant's records
/// are one range in id order; the whole implementation is 33 lines.
/// ```
/// use std::collections::{BTreeMap, btree_map::Entry};
/// use std::{convert::Infallible, ops::Bound, sync::Mutex};
/// use prets_destinations::{DestinationId as Id, DestinationRecord as Rec, DestinationRepo};
/// use prets_destinations::{InsertOutcome, RemoveOutcome, ReplaceOutcome, SecretDigest, TenantId};
///
/// #[derive(Default)]
/// struct MapRepo(Mutex<BTreeMap<(TenantId, Id), Rec>>);
///
/// impl DestinationRepo for MapRepo {
///     type Error = Infallible;
///     async fn insert(&self, t: &TenantId, r: &Rec) -> Result<InsertOutcome, Infallible> {
///         Ok(match self.0.lock().unwrap().entry((t.clone(), r.destination_id)) {
///             Entry::Occupied(_) => InsertOutcome::Duplicate,
///             Entry::Vacant(slot) => { slot.insert(r.clone()); InsertOutcome::Inserted }
///         })
///     }
///     async fn get(&self, t: &TenantId, id: Id) -> Result<Option<Rec>, Infallible> {
///         Ok(self.0.lock().unwrap().get(&(t.clone(), id)).cloned())
///     }
///     async fn list(&self, t: &TenantId) -> Result<Vec<Rec>, Infallible> { self.list_page(t, None, usize::MAX).await }
///     async fn list_page(&self, t: &TenantId, after: Option<Id>, limit: usize) -> Result<Vec<Rec>, Infallible> {
///         let lo = after.map_or(Bound::Included((t.clone(), Id::MIN)), |a| Bound::Excluded((t.clone(), a)));
///         let hi = Bound::Included((t.clone(), Id::MAX));
///         Ok(self.0.lock().unwrap().range((lo, hi)).take(limit).map(|(_, r)| r.clone()).collect())
///     }
///     async fn find_by_digest(&self, d: &SecretDigest) -> Result<Vec<(TenantId, Rec)>, Infallible> {
///         let has = |r: &Rec| r.secret_digest == *d || r.previous_secrets.iter().any(|p| p.secret_digest == *d);
///         Ok(self.0.lock().unwrap().iter().filter(|(_, r)| has(r)).map(|((t, _), r)| (t.clone(), r.clone())).collect())
///     }
///     async fn replace(&self, t: &TenantId, expected: u64, r: &Rec) -> Result<ReplaceOutcome, Infallible> {
///         Ok(match self.0.lock().unwrap().get_mut(&(t.clone(), r.destination_id)) {
///             None => ReplaceOutcome::NotFound,
///             Some(old) if old.version != expected => ReplaceOutcome::VersionMismatch,
///             Some(old) => { *old = r.clone(); ReplaceOutcome::Replaced }
///         })
///     }
///     async fn remove(&self, t: &TenantId, id: Id) -> Result<RemoveOutcome, Infallible> {
///         let gone = self.0.lock().unwrap().remove(&(t.clone(), id));
///         Ok(if gone.is_some() { RemoveOutcome::Removed } else { RemoveOutcome::NotFound })
///     }
/// }
/// # #[cfg(feature = "conformance")]
/// # // The example passes the conformance kit.
/// # block_on(prets_destinations::conformance::run_all(&MapRepo::default()));
/// # #[cfg(feature = "conformance")]
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     use std::task::{Context, Poll, Waker};
/// #     let mut f = std::pin::pin!(f);
/// #     let mut cx = Context::from_waker(Waker::noop());
/// #     loop { if let Poll::Ready(out) = f.as_mut().poll(&mut cx) { return out; } std::thread::yield_now(); }
/// # }
/// ```
pub trait DestinationRepo: Send + Sync {
    /// The backend's error, kept as the source of [`CreateError::Repo`].
    type Error: std::error::Error + Send + Sync + 'static;

    /// Stores `record` for `tenant` unless the tenant already has a destination
    /// with its id. See the contract above.
    ///
    /// # Errors
    /// Only storage failures; a duplicate id is `Ok(InsertOutcome::Duplicate)`.
    fn insert(
        &self,
        tenant: &TenantId,
        record: &DestinationRecord,
    ) -> impl Future<Output = Result<InsertOutcome, Self::Error>> + Send;

    /// The tenant's destination with this id, if any.
    ///
    /// # Errors
    /// Only storage failures.
    fn get(
        &self,
        tenant: &TenantId,
        id: DestinationId,
    ) -> impl Future<Output = Result<Option<DestinationRecord>, Self::Error>> + Send;

    /// All of the tenant's destinations, in ascending id order (ids start with
    /// their creation time, so this is roughly oldest first). For bounded
    /// pages, see [`list_page`](Self::list_page).
    ///
    /// # Errors
    /// Only storage failures.
    fn list(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<DestinationRecord>, Self::Error>> + Send;

    /// Every destination, in any tenant, whose current secret or one of
    /// whose kept previous secrets (`previous_secrets`, expired or not) has
    /// this digest, with its tenant: the operator's leak response, given a
    /// secret found in the wild ([`SecretDigest::of_presented`]). Secrets are
    /// 256 random bits, so in practice this is zero or one destination.
    ///
    /// # Contract
    /// Sees every change: after a [`replace`](Self::replace) the old digests
    /// the new record no longer holds find nothing, the new ones find it;
    /// after a [`remove`](Self::remove) none of its digests find it.
    ///
    /// A platform-level call: never expose it to a tenant's requests.
    ///
    /// # Errors
    /// Only storage failures.
    fn find_by_digest(
        &self,
        digest: &SecretDigest,
    ) -> impl Future<Output = Result<Vec<(TenantId, DestinationRecord)>, Self::Error>> + Send;

    /// One page of the tenant's destinations: those whose id is greater than
    /// `after` (all, for `None`), in ascending id order, at most `limit` of
    /// them.
    ///
    /// # Contract
    /// - **Keyset, not offset.** The page is the first `limit` records with
    ///   `id > after` in id order, as of one moment (one query, one snapshot
    ///   or one lock). `after` need not exist any more (it may have been
    ///   deleted since the previous page). This is what makes a walk page by
    ///   page never repeat nor skip a destination that existed for the whole
    ///   walk, whatever is inserted or removed meanwhile.
    /// - **Bounded.** Never more than `limit` records; fewer only when no
    ///   more match. `limit` is at least 1 (the core passes at most
    ///   [`MAX_PAGE_LIMIT`](crate::MAX_PAGE_LIMIT) + 1).
    /// - **Tenant-scoped**, and faithful like [`get`](Self::get).
    ///
    /// In SQL: `SELECT .. WHERE tenant_id = ? AND destination_id > ? ORDER
    /// BY destination_id LIMIT ?`, with ids compared as their text (which
    /// is `DestinationId` order: Crockford base32 in ASCII order).
    ///
    /// # Errors
    /// Only storage failures.
    fn list_page(
        &self,
        tenant: &TenantId,
        after: Option<DestinationId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DestinationRecord>, Self::Error>> + Send;

    /// Compare-and-swap: replaces the tenant's destination
    /// `record.destination_id` with `record`, only if the stored one's
    /// `version` is `expected_version`.
    ///
    /// # Contract
    /// - **Atomic compare-and-swap.** The version check and the write are one
    ///   step (a transaction, or `UPDATE .. WHERE tenant_id = ? AND
    ///   destination_id = ? AND version = ?` and the affected-row count): of
    ///   many replaces racing from one version, exactly one returns
    ///   `Replaced`, the others `VersionMismatch`, and no write is lost
    ///   silently.
    /// - **Whole record.** On `Replaced` every field is `record`'s (the
    ///   caller has set `version` to `expected_version + 1`; the repo stores
    ///   it as given), previous secrets included, and every later call sees
    ///   it. On any other answer, and on `Err`, the stored record is
    ///   untouched.
    /// - **Outcomes are values.** No destination with that id for this
    ///   tenant is `Ok(NotFound)` (nothing is written: replace never
    ///   inserts); another version is `Ok(VersionMismatch)`.
    ///
    /// # Errors
    /// Only storage failures.
    fn replace(
        &self,
        tenant: &TenantId,
        expected_version: u64,
        record: &DestinationRecord,
    ) -> impl Future<Output = Result<ReplaceOutcome, Self::Error>> + Send;

    /// Deletes the tenant's destination `id`, with its sealed secrets
    /// (current and previous) and digests.
    ///
    /// # Contract
    /// - **Gone for good.** On `Removed`, `get` answers `None`, no page lists
    ///   it and `find_by_digest` finds it by none of its digests. Nothing of
    ///   it stays behind (no tombstone is required): the same id may be
    ///   inserted again afterwards, as a new destination.
    /// - **Missing is a value.** No such destination for this tenant is
    ///   `Ok(NotFound)`. Of many removes of one id racing, exactly one
    ///   returns `Removed`.
    /// - **Nothing on `Err`.** A failed remove leaves the record whole.
    ///
    /// # Errors
    /// Only storage failures.
    fn remove(
        &self,
        tenant: &TenantId,
        id: DestinationId,
    ) -> impl Future<Output = Result<RemoveOutcome, Self::Error>> + Send;
}

/// What [`DestinationRepo::replace`] did.
///
/// Not `#[non_exhaustive]`: the three answers of a compare-and-swap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use]
pub enum ReplaceOutcome {
    /// The record was replaced.
    Replaced,
    /// The tenant has no destination with this id; nothing was written.
    NotFound,
    /// The stored record's version is not the expected one: it changed
    /// since it was read. Nothing was written.
    VersionMismatch,
}

/// What [`DestinationRepo::remove`] did.
///
/// Not `#[non_exhaustive]`: the two answers of a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use]
pub enum RemoveOutcome {
    /// The destination and its secrets were deleted.
    Removed,
    /// The tenant has no destination with this id.
    NotFound,
}

/// How many ids [`create`] tries when the server generates them: the first
/// and up to 3 retries. A generated id has 80 random bits, so even one retry
/// means something is wrong with the randomness or the repo.
pub const SERVER_ID_ATTEMPTS: u32 = 4;

/// Every answer [`create`] gives the client. A host maps them to `201`,
/// `409` and `400` (or `422`); [`CreateError`] is for the host's `5xx`.
///
/// Not `#[non_exhaustive]`: a host must answer each one.
#[derive(Debug)]
#[must_use]
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
}

/// Why [`create`] could not give the client an answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum CreateError<E> {
    /// The repo failed; the error is its own, as its source.
    Repo(E),
    /// Every generated id collided with an existing one
    /// ([`SERVER_ID_ATTEMPTS`] times): broken randomness or a broken repo.
    IdCollisions {
        /// How many ids were tried.
        attempts: u32,
    },
}

impl<E> fmt::Display for CreateError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Repo(_) => f.write_str("destination repository failed"),
            Self::IdCollisions { attempts } => {
                write!(f, "{attempts} generated destination ids all collided")
            }
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CreateError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Repo(e) => Some(e),
            Self::IdCollisions { .. } => None,
        }
    }
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
///
/// The secret leaves only in [`CreateOutcome::Created`], after the repo has
/// stored the record; the record holds it sealed, with its digest.
///
/// The future is `Send` (the repo's futures are, and `rng` must be), so it
/// runs on multi-threaded runtimes. It needs no runtime of its own: a
/// synchronous host can drive it with a few lines of executor, as here.
///
/// ```
/// # #[cfg(feature = "memory")] {
/// use std::future::Future;
/// use std::pin::pin;
/// use std::sync::Arc;
/// use std::task::{Context, Poll, Wake, Waker};
/// use std::thread::{self, Thread};
///
/// use prets_destinations::{
///     create, CreateDestinationRequest, CreateOutcome, DestinationRepo, KeyId, Keyring,
///     MemoryRepo, SealingKey, TenantId, Timestamp,
/// };
/// use rand_core::UnwrapErr;
///
/// /// Runs a future to completion on this thread, parking while it waits.
/// fn block_on<F: Future>(fut: F) -> F::Output {
///     struct Unpark(Thread);
///     impl Wake for Unpark {
///         fn wake(self: Arc<Self>) { self.0.unpark() }
///     }
///     let waker = Waker::from(Arc::new(Unpark(thread::current())));
///     let mut cx = Context::from_waker(&waker);
///     let mut fut = pin!(fut);
///     loop {
///         match fut.as_mut().poll(&mut cx) {
///             Poll::Ready(out) => return out,
///             Poll::Pending => thread::park(),
///         }
///     }
/// }
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
/// [`CreateError::Repo`] with the repo's own error if an insert fails, and
/// [`CreateError::IdCollisions`] if every generated id collided.
pub async fn create<R, G>(
    repo: &R,
    tenant: &TenantId,
    request: CreateDestinationRequest,
    now: Timestamp,
    rng: &mut G,
    sealer: &SealingKey,
) -> Result<CreateOutcome, CreateError<R::Error>>
where
    R: DestinationRepo,
    G: CryptoRng + Send + ?Sized,
{
    let new = match request.validate() {
        Ok(new) => new,
        Err(errors) => return Ok(CreateOutcome::Invalid(errors)),
    };
    for _ in 0..SERVER_ID_ATTEMPTS {
        let plan = new.plan(tenant, now, rng, sealer);
        match repo
            .insert(tenant, &plan.record)
            .await
            .map_err(CreateError::Repo)?
        {
            InsertOutcome::Inserted => return Ok(CreateOutcome::Created(plan.response)),
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
    Err(CreateError::IdCollisions {
        attempts: SERVER_ID_ATTEMPTS,
    })
}
