//! `MemoryRepo` against the conformance kit, truly parallel use from OS
//! threads, and the kit itself catching repos that break the contract.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Barrier;
use std::thread;

use prets_destinations::conformance::{self, FailingInserts};
use prets_destinations::{
    CreateDestinationRequest, CreateOutcome, DestinationId, DestinationRecord, DestinationRepo,
    InsertOutcome, MemoryRepo, RemoveOutcome, ReplaceOutcome, SecretDigest, TenantId, create,
};

use crate::support::{block_on, keyring, now, rng, tenant};

#[test]
fn memory_repo_round_trips_every_field() {
    block_on(conformance::insert_get_round_trip(&MemoryRepo::new()));
}

#[test]
fn memory_repo_reports_duplicates_without_overwriting() {
    block_on(conformance::duplicate_client_id_conflicts(
        &MemoryRepo::new(),
    ));
}

#[test]
fn memory_repo_isolates_tenants() {
    block_on(conformance::tenant_isolation(&MemoryRepo::new()));
}

#[test]
fn memory_repo_lists_in_id_order() {
    block_on(conformance::list_in_id_order(&MemoryRepo::new()));
}

#[test]
fn memory_repo_finds_by_digest_across_tenants() {
    block_on(conformance::find_by_digest_across_tenants(
        &MemoryRepo::new(),
    ));
}

#[test]
fn memory_repo_lets_one_of_many_joined_creates_win() {
    block_on(conformance::concurrent_creates_of_one_client_id(
        &MemoryRepo::new(),
        32,
    ));
}

#[test]
fn memory_repo_lets_one_of_many_parallel_threads_win() {
    let repo = MemoryRepo::new();
    for _ in 0..20 {
        block_on(conformance::parallel_creates_of_one_client_id_on_threads(
            &repo, 8,
        ));
    }
}

#[test]
fn memory_repo_keeps_nothing_from_a_failed_insert() {
    block_on(conformance::errors_leave_nothing_behind(&MemoryRepo::new()));
}

#[test]
fn the_whole_kit_passes_twice_on_one_repo() {
    let repo = MemoryRepo::new();
    block_on(conformance::run_all(&repo));
    block_on(conformance::run_all(&repo));
    assert!(!repo.is_empty());
}

#[test]
fn parallel_creates_of_distinct_destinations_all_land() {
    let repo = MemoryRepo::new();
    let org = tenant("org_a");
    let threads = 8;
    let per_thread = 50;
    let barrier = Barrier::new(threads);
    thread::scope(|s| {
        for t in 0..threads {
            let (repo, org, barrier) = (&repo, &org, &barrier);
            s.spawn(move || {
                let mut rng = rng(t as u64);
                let keys = keyring(1, &mut rng);
                barrier.wait();
                for _ in 0..per_thread {
                    let req = CreateDestinationRequest::new("n", "https://example.com/");
                    let out = block_on(create(repo, org, req, now(), &mut rng, keys.current()));
                    assert!(matches!(out, Ok(CreateOutcome::Created(_))));
                }
            });
        }
    });
    assert_eq!(repo.len(), threads * per_thread);
    let listed = block_on(repo.list(&org)).unwrap();
    assert_eq!(listed.len(), threads * per_thread);
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].destination_id < w[1].destination_id)
    );
    for record in listed.iter().take(20) {
        let found = block_on(repo.find_by_digest(&record.secret_digest)).unwrap();
        assert_eq!(found, vec![(org.clone(), record.clone())]);
    }
}

#[test]
fn failing_inserts_reach_nothing_and_reads_go_through() {
    let repo = MemoryRepo::new();
    let mut rng = rng(1);
    let keys = keyring(1, &mut rng);
    let org = tenant("org_a");
    let req = CreateDestinationRequest::new("n", "https://example.com/");
    let Ok(CreateOutcome::Created(created)) =
        block_on(create(&repo, &org, req, now(), &mut rng, keys.current()))
    else {
        panic!("not created")
    };
    let failing = FailingInserts::new(&repo);
    let stored = block_on(failing.get(&org, created.destination_id()))
        .unwrap()
        .unwrap();
    assert!(block_on(failing.insert(&org, &stored)).is_err());
    assert_eq!(block_on(failing.list(&org)).unwrap(), vec![stored]);
    assert_eq!(repo.len(), 1);
}

/// A repo that breaks one part of the contract, to show the kit notices.
#[derive(Default)]
struct Broken {
    inner: MemoryRepo,
    flaw: Flaw,
}

#[derive(Default, Clone, Copy)]
enum Flaw {
    #[default]
    None,
    /// Reads of another tenant fall back to a fixed tenant's data.
    LeaksAcrossTenants,
    /// A duplicate id is answered `Inserted`, as an upsert would.
    HidesDuplicates,
    /// `list` comes back newest first.
    ListsBackwards,
    /// `find_by_digest` only looks in one tenant.
    FindsInOneTenant,
    /// `get` loses the URL's query.
    LosesAField,
    /// `list_page` includes the cursor's own record.
    PagesInclusively,
    /// `replace` ignores the expected version.
    ReplacesBlindly,
    /// `replace` stores no previous secrets.
    DropsPreviousSecrets,
    /// `remove` answers `Removed` but keeps the record.
    RemovesNothing,
}

fn shared() -> TenantId {
    tenant("shared")
}

impl DestinationRepo for Broken {
    type Error = std::convert::Infallible;
    async fn insert(
        &self,
        t: &TenantId,
        r: &DestinationRecord,
    ) -> Result<InsertOutcome, Self::Error> {
        match self.flaw {
            Flaw::LeaksAcrossTenants => self.inner.insert(&shared(), r).await,
            Flaw::HidesDuplicates => {
                let _ = self.inner.insert(t, r).await?;
                Ok(InsertOutcome::Inserted)
            }
            _ => self.inner.insert(t, r).await,
        }
    }
    async fn get(
        &self,
        t: &TenantId,
        id: DestinationId,
    ) -> Result<Option<DestinationRecord>, Self::Error> {
        match self.flaw {
            Flaw::LeaksAcrossTenants => self.inner.get(&shared(), id).await,
            Flaw::LosesAField => Ok(self.inner.get(t, id).await?.map(|mut r| {
                r.url = "https://example.com/".parse().unwrap();
                r
            })),
            _ => self.inner.get(t, id).await,
        }
    }
    async fn list(&self, t: &TenantId) -> Result<Vec<DestinationRecord>, Self::Error> {
        match self.flaw {
            Flaw::LeaksAcrossTenants => self.inner.list(&shared()).await,
            Flaw::ListsBackwards => {
                let mut all = self.inner.list(t).await?;
                all.reverse();
                Ok(all)
            }
            _ => self.inner.list(t).await,
        }
    }
    async fn find_by_digest(
        &self,
        d: &SecretDigest,
    ) -> Result<Vec<(TenantId, DestinationRecord)>, Self::Error> {
        let found = self.inner.find_by_digest(d).await?;
        Ok(match self.flaw {
            Flaw::FindsInOneTenant => found.into_iter().take(0).collect(),
            _ => found,
        })
    }
    async fn list_page(
        &self,
        t: &TenantId,
        after: Option<DestinationId>,
        limit: usize,
    ) -> Result<Vec<DestinationRecord>, Self::Error> {
        match self.flaw {
            // An offset-like cursor: includes the cursor's own record.
            Flaw::PagesInclusively => {
                let mut all = self.inner.list(t).await?;
                all.retain(|r| after.is_none_or(|a| r.destination_id >= a));
                all.truncate(limit);
                Ok(all)
            }
            _ => self.inner.list_page(t, after, limit).await,
        }
    }
    async fn replace(
        &self,
        t: &TenantId,
        expected: u64,
        r: &DestinationRecord,
    ) -> Result<ReplaceOutcome, Self::Error> {
        match self.flaw {
            Flaw::ReplacesBlindly => match self.inner.get(t, r.destination_id).await? {
                Some(stored) => self.inner.replace(t, stored.version, r).await,
                None => Ok(ReplaceOutcome::NotFound),
            },
            Flaw::DropsPreviousSecrets => {
                let mut r = r.clone();
                r.previous_secrets.clear();
                self.inner.replace(t, expected, &r).await
            }
            _ => self.inner.replace(t, expected, r).await,
        }
    }
    async fn remove(&self, t: &TenantId, id: DestinationId) -> Result<RemoveOutcome, Self::Error> {
        match self.flaw {
            Flaw::RemovesNothing => Ok(match self.inner.get(t, id).await? {
                Some(_) => RemoveOutcome::Removed,
                None => RemoveOutcome::NotFound,
            }),
            _ => self.inner.remove(t, id).await,
        }
    }
}

fn kit_fails<F: Future<Output = ()>>(
    property: impl FnOnce(&'static Broken) -> F,
    flaw: Flaw,
) -> bool {
    let repo: &'static Broken = Box::leak(Box::new(Broken {
        inner: MemoryRepo::new(),
        flaw,
    }));
    catch_unwind(AssertUnwindSafe(|| block_on(property(repo)))).is_err()
}

#[test]
fn the_kit_passes_the_broken_repo_with_no_flaw() {
    assert!(!kit_fails(conformance::run_all, Flaw::None));
}

#[test]
fn the_kit_catches_a_repo_that_leaks_across_tenants() {
    assert!(kit_fails(
        conformance::tenant_isolation,
        Flaw::LeaksAcrossTenants
    ));
}

#[test]
fn the_kit_catches_a_repo_that_hides_duplicates() {
    assert!(kit_fails(
        conformance::duplicate_client_id_conflicts,
        Flaw::HidesDuplicates
    ));
    assert!(kit_fails(
        |r| conformance::concurrent_creates_of_one_client_id(r, 4),
        Flaw::HidesDuplicates
    ));
}

#[test]
fn the_kit_catches_a_repo_that_lists_out_of_order() {
    assert!(kit_fails(
        conformance::list_in_id_order,
        Flaw::ListsBackwards
    ));
}

#[test]
fn the_kit_catches_a_repo_that_cannot_find_by_digest() {
    assert!(kit_fails(
        conformance::find_by_digest_across_tenants,
        Flaw::FindsInOneTenant
    ));
}

#[test]
fn the_kit_catches_a_repo_that_loses_a_field() {
    assert!(kit_fails(
        conformance::insert_get_round_trip,
        Flaw::LosesAField
    ));
}

#[test]
fn the_kit_catches_a_repo_whose_cursor_is_inclusive() {
    assert!(kit_fails(
        conformance::list_page_walks_in_id_order,
        Flaw::PagesInclusively
    ));
    assert!(kit_fails(
        conformance::pages_hold_under_concurrent_changes,
        Flaw::PagesInclusively
    ));
}

#[test]
fn the_kit_catches_a_repo_without_compare_and_swap() {
    assert!(kit_fails(
        conformance::replace_is_compare_and_swap,
        Flaw::ReplacesBlindly
    ));
    assert!(kit_fails(
        |r| conformance::concurrent_replaces_one_wins(r, 4),
        Flaw::ReplacesBlindly
    ));
}

#[test]
fn the_kit_catches_a_repo_that_drops_previous_secrets() {
    assert!(kit_fails(
        conformance::replace_is_compare_and_swap,
        Flaw::DropsPreviousSecrets
    ));
    assert!(kit_fails(
        conformance::rotation_keeps_previous_secrets,
        Flaw::DropsPreviousSecrets
    ));
}

#[test]
fn the_kit_catches_a_repo_that_does_not_remove() {
    assert!(kit_fails(
        conformance::remove_deletes_everything,
        Flaw::RemovesNothing
    ));
    assert!(kit_fails(
        conformance::lifecycle_through_the_core,
        Flaw::RemovesNothing
    ));
}
