//! The storage seam: [`DestinationRepo`], which the host implements over its
//! own storage (the operations in [`ops`](crate::ops) run over it), the
//! answers of its writes, and [`StoreError`], what a host needs to know of
//! the store's errors. [`MemoryRepo`](crate::memory::MemoryRepo) (feature
//! `memory`) is the in-memory implementation; [`conformance`](crate::conformance)
//! (feature `conformance`) is the kit every implementation should pass.

use core::convert::Infallible;
use core::future::Future;
use std::sync::Arc;

use crate::id::DestinationId;
use crate::record::DestinationRecord;
use crate::secret::SecretDigest;
use crate::tenant::TenantId;

/// What [`DestinationRepo::insert`] did.
///
/// Not `#[non_exhaustive]`: these are the answers of an atomic
/// insert-if-absent under a cap, and callers must handle each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use]
pub enum InsertOutcome {
    /// The record was stored.
    Inserted,
    /// The tenant already has a destination with this id; nothing was
    /// written. The id is the record's own `destination_id`.
    Duplicate,
    /// The tenant already has the most destinations the store's
    /// [`Quotas`](crate::limits::Quotas) allow (and none with this id);
    /// nothing was written.
    QuotaExceeded,
}

/// A store's error, as a host answers it: the store cannot be reached
/// ([`is_unavailable`](Self::is_unavailable)) or is busy
/// ([`is_busy`](Self::is_busy)), both worth retrying shortly (an HTTP host
/// answers `503` with `Retry-After`), or it failed (a `500`).
///
/// Every [`DestinationRepo::Error`] implements it. Both methods default to
/// `false`: a store whose every error is a failure writes
/// `impl StoreError for MyError {}`.
///
/// # Logging
/// The error's `Display` is what a host logs: what failed and the cause worth
/// knowing, never a stored value, a secret or a connection string. A host
/// does not walk on to its [`source`](std::error::Error::source)s, which may
/// be a driver's error quoting row values (PostgreSQL's `DETAIL`).
///
/// ```
/// use prets_destinations::repo::StoreError;
///
/// #[derive(Debug)]
/// enum KvError {
///     Timeout,
///     Corrupt,
/// }
///
/// impl std::fmt::Display for KvError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str(match self {
///             Self::Timeout => "the key-value store did not answer in time",
///             Self::Corrupt => "a stored record does not decode",
///         })
///     }
/// }
///
/// impl std::error::Error for KvError {}
///
/// impl StoreError for KvError {
///     fn is_unavailable(&self) -> bool {
///         matches!(self, Self::Timeout)
///     }
/// }
///
/// assert!(KvError::Timeout.is_unavailable() && !KvError::Corrupt.is_unavailable());
/// assert!(!KvError::Timeout.is_busy());
/// ```
pub trait StoreError: std::error::Error + Send + Sync + 'static {
    /// The store cannot be reached right now: the connection was refused or
    /// closed, the server is shutting down, or no pooled connection came
    /// free in time. Nothing was done; retrying shortly may succeed.
    fn is_unavailable(&self) -> bool {
        false
    }

    /// The store is reachable but busy: another writer holds the lock it
    /// needs past its wait, or its own queue cannot take the work now.
    /// Nothing was done; retrying shortly may succeed.
    fn is_busy(&self) -> bool {
        false
    }
}

/// A store that cannot fail ([`MemoryRepo`](crate::memory::MemoryRepo)).
impl StoreError for Infallible {}

/// Storage for destinations, implemented by the host over its database.
///
/// Implementors write `async fn`; the trait spells the methods as returning
/// `impl Future + Send` so that [`create`](crate::ops::create()) is `Send` and runs on
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
/// - **Capped atomically.** A store opened with
///   [`Quotas::max_destinations`](crate::limits::Quotas::max_destinations)
///   counts the tenant's destinations in the same atomic step as the insert
///   (a transaction that serializes the tenant's inserts, or a lock): an
///   insert that would give the tenant more answers
///   `Ok(InsertOutcome::QuotaExceeded)`, and of inserts racing at one below
///   the cap exactly one is stored. A duplicate id is `Duplicate` first,
///   even at the cap. Counting reads the tenant's own destinations only.
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
/// # pollster::block_on(prets_destinations::conformance::run_all(&MapRepo::default()));
/// ```
pub trait DestinationRepo: Send + Sync {
    /// The backend's error, kept as the source of
    /// [`OpError::Repo`](crate::ops::OpError::Repo); [`StoreError`] says
    /// whether a retry may succeed.
    type Error: StoreError;

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
    ///   [`MAX_PAGE_LIMIT`](crate::wire::MAX_PAGE_LIMIT) + 1).
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

/// A shared repo is a repo: a host hands one store to its HTTP handlers and
/// its delivery worker as `Arc<R>`.
impl<T: DestinationRepo + ?Sized> DestinationRepo for Arc<T> {
    type Error = T::Error;

    fn insert(
        &self,
        tenant: &TenantId,
        record: &DestinationRecord,
    ) -> impl Future<Output = Result<InsertOutcome, Self::Error>> + Send {
        (**self).insert(tenant, record)
    }

    fn get(
        &self,
        tenant: &TenantId,
        id: DestinationId,
    ) -> impl Future<Output = Result<Option<DestinationRecord>, Self::Error>> + Send {
        (**self).get(tenant, id)
    }

    fn list(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<DestinationRecord>, Self::Error>> + Send {
        (**self).list(tenant)
    }

    fn find_by_digest(
        &self,
        digest: &SecretDigest,
    ) -> impl Future<Output = Result<Vec<(TenantId, DestinationRecord)>, Self::Error>> + Send {
        (**self).find_by_digest(digest)
    }

    fn list_page(
        &self,
        tenant: &TenantId,
        after: Option<DestinationId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DestinationRecord>, Self::Error>> + Send {
        (**self).list_page(tenant, after, limit)
    }

    fn replace(
        &self,
        tenant: &TenantId,
        expected_version: u64,
        record: &DestinationRecord,
    ) -> impl Future<Output = Result<ReplaceOutcome, Self::Error>> + Send {
        (**self).replace(tenant, expected_version, record)
    }

    fn remove(
        &self,
        tenant: &TenantId,
        id: DestinationId,
    ) -> impl Future<Output = Result<RemoveOutcome, Self::Error>> + Send {
        (**self).remove(tenant, id)
    }
}
