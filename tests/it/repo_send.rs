//! Compile-time proofs: `create`'s future is `Send` for every repo, and the
//! public types of the storage seam are `Send + Sync`.

use std::convert::Infallible;

use prets_destinations::secret::OpenError;
use prets_destinations::{
    CreateDestinationRequest, CreateOutcome, DestinationRepo, InsertOutcome, KeyId, Keyring,
    OpError, SealedSecret, SealingKey, TenantId, Timestamp, create,
};

fn require_send<T: Send>(value: T) -> T {
    value
}

fn require_send_sync<T: Send + Sync>() {}

/// Type-checked for every `R: DestinationRepo`, so the future's `Send`-ness
/// cannot depend on the repo beyond the trait's own bounds.
fn create_future_is_send<R: DestinationRepo, G: rand_core::CryptoRng + Send>(
    repo: &R,
    tenant: &TenantId,
    rng: &mut G,
    sealer: &SealingKey,
) -> impl Future<Output = Result<CreateOutcome, OpError<R::Error>>> + Send {
    let request = CreateDestinationRequest::new("n", "https://example.com/");
    let now = Timestamp::from_unix_millis(0).unwrap();
    require_send(create(repo, tenant, request, now, rng, sealer))
}

#[test]
fn create_future_is_send_for_any_repo_and_spawnable_on_a_thread() {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let key = SealingKey::from_rng(KeyId::new(1), &mut rng);
    let tenant: TenantId = "org_a".parse().unwrap();
    struct Nothing;
    impl DestinationRepo for Nothing {
        type Error = Infallible;
        async fn insert(
            &self,
            _: &TenantId,
            _: &prets_destinations::DestinationRecord,
        ) -> Result<InsertOutcome, Infallible> {
            Ok(InsertOutcome::Inserted)
        }
        async fn get(
            &self,
            _: &TenantId,
            _: prets_destinations::DestinationId,
        ) -> Result<Option<prets_destinations::DestinationRecord>, Infallible> {
            Ok(None)
        }
        async fn list(
            &self,
            _: &TenantId,
        ) -> Result<Vec<prets_destinations::DestinationRecord>, Infallible> {
            Ok(Vec::new())
        }
        async fn find_by_digest(
            &self,
            _: &prets_destinations::SecretDigest,
        ) -> Result<Vec<(TenantId, prets_destinations::DestinationRecord)>, Infallible> {
            Ok(Vec::new())
        }
        async fn list_page(
            &self,
            _: &TenantId,
            _: Option<prets_destinations::DestinationId>,
            _: usize,
        ) -> Result<Vec<prets_destinations::DestinationRecord>, Infallible> {
            Ok(Vec::new())
        }
        async fn replace(
            &self,
            _: &TenantId,
            _: u64,
            _: &prets_destinations::DestinationRecord,
        ) -> Result<prets_destinations::ReplaceOutcome, Infallible> {
            Ok(prets_destinations::ReplaceOutcome::NotFound)
        }
        async fn remove(
            &self,
            _: &TenantId,
            _: prets_destinations::DestinationId,
        ) -> Result<prets_destinations::RemoveOutcome, Infallible> {
            Ok(prets_destinations::RemoveOutcome::NotFound)
        }
    }
    let repo = Nothing;
    // Moving the future to another thread before polling it is what a
    // multi-threaded runtime does; it compiles only because it is `Send`.
    let outcome = std::thread::scope(|s| {
        let future = create_future_is_send(&repo, &tenant, &mut rng, &key);
        s.spawn(move || {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let mut future = std::pin::pin!(future);
            loop {
                if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                    return out;
                }
            }
        })
        .join()
        .unwrap()
    });
    assert!(matches!(outcome, Ok(CreateOutcome::Created(_))));
}

#[test]
fn storage_seam_types_are_send_and_sync() {
    require_send_sync::<TenantId>();
    require_send_sync::<SealingKey>();
    require_send_sync::<Keyring>();
    require_send_sync::<SealedSecret>();
    require_send_sync::<OpenError>();
    require_send_sync::<InsertOutcome>();
    require_send_sync::<CreateOutcome>();
    require_send_sync::<OpError<std::io::Error>>();
    #[cfg(feature = "memory")]
    require_send_sync::<prets_destinations::MemoryRepo>();
}

/// The lifecycle futures, type-checked for every repo.
#[allow(dead_code, reason = "compile-time proof; never called")]
fn lifecycle_futures_are_send<R: DestinationRepo, G: rand_core::CryptoRng + Send>(
    repo: &R,
    tenant: &TenantId,
    id: prets_destinations::DestinationId,
    rng: &mut G,
    sealer: &SealingKey,
) {
    let now = Timestamp::from_unix_millis(0).unwrap();
    drop(require_send(prets_destinations::get(repo, tenant, id)));
    drop(require_send(prets_destinations::list(
        repo,
        tenant,
        prets_destinations::ListDestinationsRequest::new(),
    )));
    drop(require_send(prets_destinations::ops::list_page(
        repo,
        tenant,
        prets_destinations::wire::PageRequest::default(),
    )));
    drop(require_send(prets_destinations::update(
        repo,
        tenant,
        id,
        prets_destinations::UpdateDestinationRequest::new(),
        now,
        &mut *rng,
        sealer,
    )));
    drop(require_send(prets_destinations::delete(repo, tenant, id)));
    drop(require_send(prets_destinations::rotate(
        repo,
        tenant,
        id,
        prets_destinations::RotateSecretRequest::new(),
        now,
        rng,
        sealer,
    )));
}

#[test]
fn lifecycle_types_are_send_and_sync() {
    use prets_destinations::secret::SecretSet;
    use prets_destinations::wire::{DestinationPage, DestinationView, RotatedSecret};
    use prets_destinations::*;
    require_send_sync::<GetOutcome>();
    require_send_sync::<ListOutcome>();
    require_send_sync::<UpdateOutcome>();
    require_send_sync::<DeleteOutcome>();
    require_send_sync::<RotateOutcome>();
    require_send_sync::<ReplaceOutcome>();
    require_send_sync::<RemoveOutcome>();
    require_send_sync::<DestinationView>();
    require_send_sync::<DestinationPage>();
    require_send_sync::<RotatedSecret>();
    require_send_sync::<SecretSet>();
    require_send_sync::<ApiError>();
    require_send_sync::<PreviousSecret>();
}

#[cfg(feature = "memory")]
#[test]
fn lifecycle_futures_over_the_memory_repo_run_on_another_thread() {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let key = SealingKey::from_rng(KeyId::new(1), &mut rng);
    let tenant: TenantId = "org_a".parse().unwrap();
    let repo = prets_destinations::MemoryRepo::new();
    let now = Timestamp::from_unix_millis(0).unwrap();
    let id = prets_destinations::DestinationId::generate(now, &mut rng);
    let future = require_send(prets_destinations::rotate(
        &repo,
        &tenant,
        id,
        prets_destinations::RotateSecretRequest::new(),
        now,
        &mut rng,
        &key,
    ));
    let outcome = std::thread::scope(|s| {
        s.spawn(move || {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let mut future = std::pin::pin!(future);
            loop {
                if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                    return out;
                }
            }
        })
        .join()
        .unwrap()
    });
    assert!(matches!(
        outcome,
        Ok(prets_destinations::RotateOutcome::NotFound)
    ));
}
