//! `MemoryRepo` as an `EventLog`: the event-log conformance kit, property by
//! property, twice on one store, and through an `Arc`.

use prets_destinations::MemoryRepo;
use prets_destinations::conformance::events as kit;

use crate::support::block_on;

#[test]
fn events_are_retained_and_listed_newest_first() {
    block_on(kit::events_are_retained_and_listed_newest_first(
        &MemoryRepo::new(),
    ));
}

#[test]
fn get_event_tells_each_delivery_state() {
    block_on(kit::get_event_tells_each_delivery_state(&MemoryRepo::new()));
}

#[test]
fn resend_queues_one_manual_delivery() {
    block_on(kit::resend_queues_one_manual_delivery(&MemoryRepo::new()));
}

#[test]
fn recover_requeues_what_a_disable_dropped() {
    block_on(kit::recover_requeues_what_a_disable_dropped(
        &MemoryRepo::new(),
    ));
}

#[test]
fn purge_deletes_old_attempts_and_finished_events() {
    block_on(kit::purge_deletes_old_attempts_and_finished_events(
        &MemoryRepo::new(),
    ));
}

#[test]
fn run_all_twice_on_one_shared_store() {
    let repo = std::sync::Arc::new(MemoryRepo::new());
    block_on(kit::events_run_all(&repo));
    block_on(prets_destinations::conformance::outbox::outbox_run_all(
        &repo,
    ));
    block_on(kit::events_run_all(&repo));
}
