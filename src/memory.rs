//! `MemoryRepo`: a [`DestinationRepo`] in process memory.

use std::collections::{BTreeMap, HashMap, btree_map::Entry};
use std::convert::Infallible;
use std::ops::Bound;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::{
    DestinationId, DestinationRecord, DestinationRepo, InsertOutcome, RemoveOutcome,
    ReplaceOutcome, SecretDigest, TenantId,
};

/// A [`DestinationRepo`] in process memory: the embedded default for tests
/// and for small hosts that keep their destinations elsewhere or not at all
/// between restarts.
///
/// Correct under concurrent use: one lock guards the records and the digest
/// index together, so an insert is atomic and every reader sees whole
/// records. Reads share the lock. Nothing is durable past the process; that
/// is the whole of its "durable on `Ok`". It never fails (its error type is
/// [`Infallible`]), and a panic in another thread holding the lock cannot
/// leave it half-written, since no code of ours panics while holding it.
///
/// See [`create`](crate::create) for an example.
#[derive(Debug, Default)]
pub struct MemoryRepo {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tenants: HashMap<TenantId, BTreeMap<DestinationId, DestinationRecord>>,
    by_digest: HashMap<SecretDigest, Vec<(TenantId, DestinationId)>>,
}

impl MemoryRepo {
    /// An empty repo.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of destinations, over all tenants.
    #[must_use]
    pub fn len(&self) -> usize {
        self.read().tenants.values().map(BTreeMap::len).sum()
    }

    /// Whether there are no destinations at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A poisoned lock only means another thread panicked elsewhere while
    // holding it; every write below completes before anything can panic.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DestinationRepo for MemoryRepo {
    type Error = Infallible;

    async fn insert(
        &self,
        tenant: &TenantId,
        record: &DestinationRecord,
    ) -> Result<InsertOutcome, Infallible> {
        let mut inner = self.write();
        let Inner { tenants, by_digest } = &mut *inner;
        let records = tenants.entry(tenant.clone()).or_default();
        match records.entry(record.destination_id) {
            Entry::Occupied(_) => Ok(InsertOutcome::Duplicate),
            Entry::Vacant(slot) => {
                slot.insert(record.clone());
                index(by_digest, tenant, record);
                Ok(InsertOutcome::Inserted)
            }
        }
    }

    async fn get(
        &self,
        tenant: &TenantId,
        id: DestinationId,
    ) -> Result<Option<DestinationRecord>, Infallible> {
        Ok(self
            .read()
            .tenants
            .get(tenant)
            .and_then(|records| records.get(&id))
            .cloned())
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<DestinationRecord>, Infallible> {
        Ok(self
            .read()
            .tenants
            .get(tenant)
            .map(|records| records.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn find_by_digest(
        &self,
        digest: &SecretDigest,
    ) -> Result<Vec<(TenantId, DestinationRecord)>, Infallible> {
        let inner = self.read();
        let Some(hits) = inner.by_digest.get(digest) else {
            return Ok(Vec::new());
        };
        Ok(hits
            .iter()
            .filter_map(|(tenant, id)| {
                let record = inner.tenants.get(tenant)?.get(id)?;
                // The index is kept with the records; checking the digest
                // again keeps it honest.
                digests(record)
                    .any(|d| d == *digest)
                    .then(|| (tenant.clone(), record.clone()))
            })
            .collect())
    }

    async fn list_page(
        &self,
        tenant: &TenantId,
        after: Option<DestinationId>,
        limit: usize,
    ) -> Result<Vec<DestinationRecord>, Infallible> {
        let inner = self.read();
        let Some(records) = inner.tenants.get(tenant) else {
            return Ok(Vec::new());
        };
        let range = match after {
            Some(after) => records.range((Bound::Excluded(after), Bound::Unbounded)),
            None => records.range(..),
        };
        Ok(range.take(limit).map(|(_, r)| r.clone()).collect())
    }

    async fn replace(
        &self,
        tenant: &TenantId,
        expected_version: u64,
        record: &DestinationRecord,
    ) -> Result<ReplaceOutcome, Infallible> {
        let mut inner = self.write();
        let Inner { tenants, by_digest } = &mut *inner;
        let Some(stored) = tenants
            .get_mut(tenant)
            .and_then(|records| records.get_mut(&record.destination_id))
        else {
            return Ok(ReplaceOutcome::NotFound);
        };
        if stored.version != expected_version {
            return Ok(ReplaceOutcome::VersionMismatch);
        }
        unindex(by_digest, tenant, stored);
        *stored = record.clone();
        index(by_digest, tenant, stored);
        Ok(ReplaceOutcome::Replaced)
    }

    async fn remove(
        &self,
        tenant: &TenantId,
        id: DestinationId,
    ) -> Result<RemoveOutcome, Infallible> {
        let mut inner = self.write();
        let Inner { tenants, by_digest } = &mut *inner;
        let Some(records) = tenants.get_mut(tenant) else {
            return Ok(RemoveOutcome::NotFound);
        };
        let Some(removed) = records.remove(&id) else {
            return Ok(RemoveOutcome::NotFound);
        };
        if records.is_empty() {
            tenants.remove(tenant);
        }
        unindex(by_digest, tenant, &removed);
        Ok(RemoveOutcome::Removed)
    }
}

/// Every digest a record holds: the current secret's, then the previous ones'.
fn digests(record: &DestinationRecord) -> impl Iterator<Item = SecretDigest> + '_ {
    core::iter::once(record.secret_digest)
        .chain(record.previous_secrets.iter().map(|p| p.secret_digest))
}

fn index(
    by_digest: &mut HashMap<SecretDigest, Vec<(TenantId, DestinationId)>>,
    tenant: &TenantId,
    record: &DestinationRecord,
) {
    for digest in digests(record) {
        let hits = by_digest.entry(digest).or_default();
        let key = (tenant.clone(), record.destination_id);
        if !hits.contains(&key) {
            hits.push(key);
        }
    }
}

fn unindex(
    by_digest: &mut HashMap<SecretDigest, Vec<(TenantId, DestinationId)>>,
    tenant: &TenantId,
    record: &DestinationRecord,
) {
    for digest in digests(record) {
        if let Some(hits) = by_digest.get_mut(&digest) {
            hits.retain(|(t, id)| !(t == tenant && *id == record.destination_id));
            if hits.is_empty() {
                by_digest.remove(&digest);
            }
        }
    }
}
