//! The storage seam: [`DestinationRepo`], which the host implements over its
//! own storage (the operations in [`ops`](crate::ops) run over it), and
//! [`MemoryRepo`], the in-memory implementation (feature `memory`).
//!
//! The conformance kit every implementation should pass is
//! [`conformance`](crate::conformance) (feature `conformance`).

#[cfg(feature = "memory")]
mod memory;
pub(crate) mod seam;

#[cfg(feature = "memory")]
pub use self::memory::MemoryRepo;
pub use self::seam::{DestinationRepo, InsertOutcome, RemoveOutcome, ReplaceOutcome};
