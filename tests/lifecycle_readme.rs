//! The lifecycle example written for the README, compiled and run as a test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "an example: a panic is a test failure"
)]
#![cfg(feature = "memory")]

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use prets_destinations::{
    CreateDestinationRequest, DeleteOutcome, GetOutcome, KeyId, Keyring, ListDestinationsRequest,
    MemoryRepo, RotateSecretRequest, SealingKey, TenantId, Timestamp, UpdateDestinationRequest,
    create, delete, get, list, rotate, update,
};
use rand_core::UnwrapErr;

/// Runs a future to completion on this thread, parking while it waits.
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark()
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => thread::park(),
        }
    }
}

#[test]
fn the_readme_lifecycle_example_runs() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let keyring = Keyring::new(SealingKey::from_rng(KeyId::new(1), &mut rng), [])?;
    let repo = MemoryRepo::new();
    let org: TenantId = "org_1".parse()?;
    let now = Timestamp::try_from(std::time::SystemTime::now())?;

    // Create: 201 with the secret, once.
    let request = CreateDestinationRequest::new("Production", "https://example.com/prets/events");
    let created = block_on(create(
        &repo,
        &org,
        request,
        now,
        &mut rng,
        keyring.current(),
    ))?
    .into_result()?;
    let id = created.destination_id();
    let first_secret = created.bearer_secret().authorization_header();

    // Get: the view never holds the secret.
    let view = block_on(get(&repo, &org, id))?.into_result()?;
    assert_eq!(view.version(), 1);
    assert!(!serde_json::to_string(&view)?.contains("whsec_"));

    // List, page by page: {"data":[...],"hasMore":false,"nextCursor":null}.
    let page = block_on(list(
        &repo,
        &org,
        ListDestinationsRequest::new().with_limit(10),
    ))?
    .into_result()?;
    assert_eq!(page.data, std::slice::from_ref(&view));
    assert!(!page.has_more);

    // Update with compare-and-swap: applies only to the version read.
    let later = now.checked_add(Duration::from_secs(60)).expect("in range");
    let patch = UpdateDestinationRequest::new()
        .with_name("Production EU")
        .with_version(view.version());
    let renamed = block_on(update(&repo, &org, id, patch.clone(), later))?.into_result()?;
    assert_eq!(
        (renamed.name().as_str(), renamed.version()),
        ("Production EU", 2)
    );
    assert_eq!(renamed.created_at(), view.created_at());
    // The same patch again is stale: 409 version_mismatch.
    let stale = block_on(update(&repo, &org, id, patch, later))?
        .into_result()
        .unwrap_err();
    assert_eq!((stale.status(), stale.code()), (409, "version_mismatch"));

    // Rotate: a new secret, once; the old one stays valid for one hour.
    let rotation = RotateSecretRequest::new().with_grace_period_seconds(3_600);
    let rotated = block_on(rotate(
        &repo,
        &org,
        id,
        rotation,
        later,
        &mut rng,
        keyring.current(),
    ))?
    .into_result()?;
    let second_secret = rotated.bearer_secret().authorization_header();
    let record =
        block_on(prets_destinations::DestinationRepo::get(&repo, &org, id))?.expect("stored");
    // Deliveries carry the newest secret...
    assert_eq!(
        *keyring.authorization_header(&org, &record)?,
        *second_secret
    );
    // ...and the receiver accepts both until the old one's deadline.
    let accepted = record.secret_set();
    assert!(accepted.verify_authorization(&*second_secret, later));
    assert!(accepted.verify_authorization(&*first_secret, later));
    let deadline = rotated
        .previous_secret_expires_at()
        .expect("grace period above 0");
    assert!(!accepted.verify_authorization(&*first_secret, deadline));

    // Delete: gone with its secrets; a second delete is a 404, not an error.
    assert_eq!(block_on(delete(&repo, &org, id))?, DeleteOutcome::Deleted);
    assert_eq!(block_on(delete(&repo, &org, id))?, DeleteOutcome::NotFound);
    assert_eq!(block_on(get(&repo, &org, id))?, GetOutcome::NotFound);
    Ok(())
}
