//! `MemoryRepo` against each lifecycle property of the conformance kit, and
//! compare-and-swap from truly parallel threads.

use std::sync::Barrier;
use std::thread;

use prets_destinations::conformance::{self, FailingInserts};
use prets_destinations::record::MAX_VERSION;
use prets_destinations::secret::GracePeriod;
use prets_destinations::wire::{DestinationPatch, Rotation};
use prets_destinations::{
    CreateDestinationRequest, CreateOutcome, DestinationRepo, MemoryRepo, RemoveOutcome,
    ReplaceOutcome, RotateOutcome, RotateSecretRequest, UpdateDestinationRequest, UpdateOutcome,
    create, delete, rotate, update,
};

use crate::support::{block_on, keyring, now, rng, sealer, tenant};

#[test]
fn memory_repo_pages_in_id_order() {
    block_on(conformance::list_page_walks_in_id_order(&MemoryRepo::new()));
}

#[test]
fn memory_repo_pages_hold_under_concurrent_changes() {
    block_on(conformance::pages_hold_under_concurrent_changes(
        &MemoryRepo::new(),
    ));
}

#[test]
fn memory_repo_replace_is_compare_and_swap() {
    block_on(conformance::replace_is_compare_and_swap(&MemoryRepo::new()));
    block_on(conformance::concurrent_replaces_one_wins(
        &MemoryRepo::new(),
        32,
    ));
}

#[test]
fn memory_repo_versionless_writes_all_apply_under_contention() {
    block_on(conformance::concurrent_versionless_updates_all_apply(
        &MemoryRepo::new(),
        32,
    ));
    block_on(conformance::concurrent_rotations_all_apply(
        &MemoryRepo::new(),
        32,
    ));
    block_on(conformance::concurrent_versioned_updates_one_wins(
        &MemoryRepo::new(),
        32,
    ));
}

#[test]
fn memory_repo_remove_deletes_everything() {
    block_on(conformance::remove_deletes_everything(&MemoryRepo::new()));
}

#[test]
fn memory_repo_keeps_previous_secrets() {
    block_on(conformance::rotation_keeps_previous_secrets(
        &MemoryRepo::new(),
    ));
}

#[test]
fn memory_repo_lifecycle_through_the_core() {
    block_on(conformance::lifecycle_through_the_core(&MemoryRepo::new()));
}

#[test]
fn parallel_threads_replacing_one_version_have_one_winner() {
    let repo = MemoryRepo::new();
    let mut rng = rng(11);
    let keys = keyring(1, &mut rng);
    let org = tenant("org_cas");
    let request = CreateDestinationRequest::new("n", "https://example.com/");
    let CreateOutcome::Created(created) = block_on(create(
        &repo,
        &org,
        request,
        now(),
        &mut rng,
        keys.current(),
    ))
    .unwrap() else {
        panic!("not created")
    };
    let record = block_on(repo.get(&org, created.destination_id()))
        .unwrap()
        .unwrap();
    let threads = 8;
    let candidates: Vec<_> = (0..threads)
        .map(|_| {
            Rotation {
                grace_period: GracePeriod::default(),
                expected_version: None,
            }
            .plan(&record, &org, now(), &mut rng, keys.current())
            .unwrap()
            .record
        })
        .collect();
    let barrier = Barrier::new(threads);
    let outcomes: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> = candidates
            .iter()
            .map(|c| {
                let (repo, org, barrier) = (&repo, &org, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    block_on(repo.replace(org, 1, c)).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<_> = outcomes
        .iter()
        .zip(&candidates)
        .filter(|(o, _)| **o == ReplaceOutcome::Replaced)
        .map(|(_, c)| c)
        .collect();
    assert_eq!(winners.len(), 1);
    assert!(outcomes.iter().all(|o| matches!(
        o,
        ReplaceOutcome::Replaced | ReplaceOutcome::VersionMismatch
    )));
    let stored = block_on(repo.get(&org, record.destination_id))
        .unwrap()
        .unwrap();
    assert_eq!(&stored, winners[0]);
}

#[test]
fn failed_writes_change_nothing_and_surface_the_error() {
    let repo = MemoryRepo::new();
    let mut rng = rng(12);
    let keys = keyring(1, &mut rng);
    let org = tenant("org_fail");
    let request = CreateDestinationRequest::new("n", "https://example.com/");
    let CreateOutcome::Created(created) = block_on(create(
        &repo,
        &org,
        request,
        now(),
        &mut rng,
        keys.current(),
    ))
    .unwrap() else {
        panic!("not created")
    };
    let id = created.destination_id();
    let before = block_on(repo.get(&org, id)).unwrap();
    let failing = FailingInserts::new(&repo);
    let patch = UpdateDestinationRequest::new().with_name("other");
    assert!(
        block_on(update(
            &failing,
            &org,
            id,
            patch,
            now(),
            &mut crate::support::rng(1),
            &sealer()
        ))
        .is_err()
    );
    assert!(
        block_on(rotate(
            &failing,
            &org,
            id,
            RotateSecretRequest::new(),
            now(),
            &mut rng,
            keys.current()
        ))
        .is_err()
    );
    assert!(block_on(delete(&failing, &org, id)).is_err());
    assert_eq!(block_on(repo.get(&org, id)).unwrap(), before);
    // And the memory repo itself answers the same calls with values.
    assert!(matches!(
        block_on(rotate(
            &repo,
            &org,
            id,
            RotateSecretRequest::new(),
            now(),
            &mut rng,
            keys.current()
        ))
        .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    assert_eq!(
        block_on(repo.remove(&org, id)).unwrap(),
        RemoveOutcome::Removed
    );
}

#[test]
fn a_destination_at_the_largest_version_can_no_longer_change() {
    let repo = MemoryRepo::new();
    let mut rng = rng(13);
    let keys = keyring(1, &mut rng);
    let org = tenant("org_max");
    let request = CreateDestinationRequest::new("n", "https://example.com/");
    let CreateOutcome::Created(created) = block_on(create(
        &repo,
        &org,
        request,
        now(),
        &mut rng,
        keys.current(),
    ))
    .unwrap() else {
        panic!("not created")
    };
    let id = created.destination_id();
    let mut record = block_on(repo.get(&org, id)).unwrap().unwrap();
    // One below the largest: one more change is possible, to MAX_VERSION.
    let mut almost = record.clone();
    almost.version = MAX_VERSION - 1;
    assert_eq!(
        block_on(repo.replace(&org, 1, &almost)).unwrap(),
        ReplaceOutcome::Replaced
    );
    let patch = UpdateDestinationRequest::new().with_name("last");
    let UpdateOutcome::Updated(view) = block_on(update(
        &repo,
        &org,
        id,
        patch,
        now(),
        &mut crate::support::rng(1),
        &sealer(),
    ))
    .unwrap() else {
        panic!("the change to MAX_VERSION was refused")
    };
    assert_eq!(view.version(), MAX_VERSION);
    record = block_on(repo.get(&org, id)).unwrap().unwrap();
    assert_eq!(record.version, MAX_VERSION);
    assert!(
        DestinationPatch::default()
            .plan(&record, &org, now(), &mut crate::support::rng(1), &sealer())
            .is_none()
    );
    for patch in [
        UpdateDestinationRequest::new().with_name("more"),
        UpdateDestinationRequest::new()
            .with_name("more")
            .with_version(MAX_VERSION),
    ] {
        assert_eq!(
            block_on(update(
                &repo,
                &org,
                id,
                patch,
                now(),
                &mut crate::support::rng(1),
                &sealer()
            ))
            .unwrap(),
            UpdateOutcome::VersionExhausted
        );
    }
    let out = block_on(rotate(
        &repo,
        &org,
        id,
        RotateSecretRequest::new(),
        now(),
        &mut rng,
        keys.current(),
    ))
    .unwrap();
    assert!(matches!(out, RotateOutcome::VersionExhausted), "{out:?}");
    let out = block_on(rotate(
        &repo,
        &org,
        id,
        RotateSecretRequest::new().with_version(MAX_VERSION),
        now(),
        &mut rng,
        keys.current(),
    ))
    .unwrap();
    assert!(matches!(out, RotateOutcome::VersionExhausted), "{out:?}");
    assert_eq!(block_on(repo.get(&org, id)).unwrap().unwrap(), record);
    assert_eq!(
        UpdateOutcome::VersionExhausted
            .into_result()
            .unwrap_err()
            .code(),
        "version_exhausted"
    );
}

#[test]
fn a_rotation_naming_a_version_applies_only_to_it() {
    let repo = MemoryRepo::new();
    let mut rng = rng(14);
    let keys = keyring(1, &mut rng);
    let org = tenant("org_rotv");
    let request = CreateDestinationRequest::new("n", "https://example.com/");
    let CreateOutcome::Created(created) = block_on(create(
        &repo,
        &org,
        request,
        now(),
        &mut rng,
        keys.current(),
    ))
    .unwrap() else {
        panic!("not created")
    };
    let id = created.destination_id();
    let before = block_on(repo.get(&org, id)).unwrap().unwrap();
    for stale in [2, MAX_VERSION] {
        let out = block_on(rotate(
            &repo,
            &org,
            id,
            RotateSecretRequest::new().with_version(stale),
            now(),
            &mut rng,
            keys.current(),
        ))
        .unwrap();
        assert!(matches!(out, RotateOutcome::VersionMismatch), "{out:?}");
        assert_eq!(out.into_result().unwrap_err().code(), "version_mismatch");
    }
    assert_eq!(block_on(repo.get(&org, id)).unwrap().unwrap(), before);
    let out = block_on(rotate(
        &repo,
        &org,
        id,
        RotateSecretRequest::new().with_version(1),
        now(),
        &mut rng,
        keys.current(),
    ))
    .unwrap();
    let RotateOutcome::Rotated(rotated) = out else {
        panic!("{out:?}")
    };
    assert_eq!(rotated.version(), 2);
    let stored = block_on(repo.get(&org, id)).unwrap().unwrap();
    assert_eq!(stored.secret_digest, rotated.bearer_secret().digest());
}
