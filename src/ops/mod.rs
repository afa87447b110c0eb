//! The operations over a [`DestinationRepo`](crate::repo::DestinationRepo)
//! and its [`Outbox`](crate::delivery::Outbox), and their pure steps:
//!
//! - destinations: [`create`](create()), [`get`](get()), [`list`](list()),
//!   [`update`](update()), [`delete`](delete()) and [`rotate`](rotate());
//! - events: [`publish`](publish()), [`send_test`] and [`list_attempts`];
//! - the delivery worker's finish step: [`plan_finish`] and
//!   [`finish_attempt`].
//!
//! Each operation validates its request (every field error at once), runs
//! its pure step and reads or writes through the store. Every answer to the
//! client is an outcome value (`Ok`); `Err` is [`OpError`], the host's `5xx`.
//! Each client outcome has `into_result`, giving the success body or the
//! [`ApiError`](crate::wire::ApiError) to send.
//!
//! The pure steps are named `plan` and take the validated request:
//! [`NewDestination::plan`](crate::wire::NewDestination::plan),
//! [`DestinationPatch::plan`](crate::wire::DestinationPatch::plan),
//! [`Rotation::plan`](crate::wire::Rotation::plan) and [`plan_finish`]. No
//! clock, no I/O: `now`, the tenant, randomness and the sealing key come in
//! as arguments, and the record to store and the one-time response come out.

mod create;
mod delete;
mod error;
mod events;
mod finish;
mod list_attempts;
mod publish;
mod read;
mod rotate;
mod send_test;
mod update;

pub use self::create::{
    CreateOutcome, CreatePlan, IdSource, SERVER_ID_ATTEMPTS, create, create_with_policy,
    plan_create,
};
pub use self::delete::{DeleteOutcome, delete};
pub use self::error::OpError;
pub use self::events::{EventOutcome, get_event, list_events, recover, resend};
pub use self::finish::{finish_attempt, plan_finish};
pub use self::list_attempts::{AttemptsOutcome, list_attempts};
pub use self::publish::{PublishOutcome, publish};
pub use self::read::{GetOutcome, ListOutcome, get, list, list_page};
pub use self::rotate::{RotateOutcome, RotationPlan, rotate};
pub use self::send_test::{TEST_EVENT_TYPE, TestOutcome, send_test};
pub use self::update::{UpdateOutcome, VERSIONLESS_ATTEMPTS, update, update_with_policy};
