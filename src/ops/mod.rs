//! The operations: [`create`](create()), [`get`](get()), [`list`](list()),
//! [`update`](update()), [`delete`](delete()) and [`rotate`](rotate()) over a
//! [`DestinationRepo`](crate::repo::DestinationRepo), and their pure steps.
//!
//! Each operation validates its request (every field error at once), runs
//! its pure step and reads or writes through the repo. Every answer to the
//! client is an outcome value (`Ok`); `Err` is [`OpError`], the host's `5xx`.
//! Each outcome has `into_result`, giving the success body or the
//! [`ApiError`](crate::wire::ApiError) to send.
//!
//! The pure steps are all named `plan` and take the validated request:
//! [`NewDestination::plan`](crate::wire::NewDestination::plan),
//! [`DestinationPatch::plan`](crate::wire::DestinationPatch::plan) and
//! [`Rotation::plan`](crate::wire::Rotation::plan). No clock, no I/O: `now`,
//! the tenant, randomness and the sealing key come in as arguments, and the
//! record to store and the one-time response come out.

mod create;
mod delete;
mod error;
mod read;
mod rotate;
mod update;

pub use self::create::{
    CreateOutcome, CreatePlan, IdSource, SERVER_ID_ATTEMPTS, create, create_with_policy,
    plan_create,
};
pub use self::delete::{DeleteOutcome, delete};
pub use self::error::OpError;
pub use self::read::{GetOutcome, ListOutcome, get, list, list_page};
pub use self::rotate::{RotateOutcome, RotationPlan, rotate};
pub use self::update::{UpdateOutcome, VERSIONLESS_ATTEMPTS, update, update_with_policy};
