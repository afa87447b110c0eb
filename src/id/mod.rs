//! The ids: [`DestinationId`] (`whk_`) and [`EventId`] (`evt_`), each any
//! string of its published pattern, and the [`AttemptId`] (`att_`) of
//! attempts, a canonical ULID the server mints.

mod attempt;
mod destination;
mod event;
mod text;
mod ulid;

pub use self::attempt::{ATTEMPT_ID_PREFIX, AttemptId, InvalidAttemptId};
pub use self::destination::{DestinationId, ID_PATTERN, ID_PREFIX, InvalidDestinationId};
pub use self::event::{EVENT_ID_PATTERN, EVENT_ID_PREFIX, EventId, InvalidEventId};
