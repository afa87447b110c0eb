//! `AttemptId`: `att_` followed by the canonical text of a 128-bit ULID.

use core::fmt;
use core::str::FromStr;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::id::ulid::{generate_ulid, parse_prefixed_ulid};
use crate::time::Timestamp;

/// The prefix of every attempt id.
pub const ATTEMPT_ID_PREFIX: &str = "att_";

/// An attempt id: `att_` and a canonical ULID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AttemptId(Ulid);

/// A string is not `att_` followed by a canonical ULID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InvalidAttemptId(());

impl fmt::Display for InvalidAttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("attempt id must be att_ followed by a 26-character ulid")
    }
}

impl std::error::Error for InvalidAttemptId {}

impl AttemptId {
    /// A new id whose time part is `now` and whose random bits come from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(now: Timestamp, rng: &mut R) -> Self {
        Self(generate_ulid(now, rng))
    }
}

impl FromStr for AttemptId {
    type Err = InvalidAttemptId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_prefixed_ulid(s, ATTEMPT_ID_PREFIX)
            .map(Self)
            .ok_or(InvalidAttemptId(()))
    }
}

impl TryFrom<String> for AttemptId {
    type Error = InvalidAttemptId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<AttemptId> for String {
    fn from(id: AttemptId) -> Self {
        id.to_string()
    }
}

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ATTEMPT_ID_PREFIX}{}", self.0)
    }
}

impl fmt::Debug for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AttemptId({self})")
    }
}
