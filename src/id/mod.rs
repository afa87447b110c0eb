//! The ids: [`DestinationId`] (`whk_`, the published pattern), and the
//! [`EventId`] (`evt_`) and [`AttemptId`] (`att_`) of deliveries, both
//! canonical ULIDs.

mod attempt;
mod destination;
mod event;
mod ulid;

pub use self::attempt::{ATTEMPT_ID_PREFIX, AttemptId, InvalidAttemptId};
pub use self::destination::{DestinationId, ID_PATTERN, ID_PREFIX, InvalidDestinationId};
pub use self::event::{EVENT_ID_PREFIX, EventId, InvalidEventId};
