//! [`TenantId`]: the organization that owns destinations.

use core::fmt;
use core::str::FromStr;

/// Most bytes in a [`TenantId`].
pub const TENANT_ID_MAX_LEN: usize = 128;

/// The organization that owns destinations: the scope of every
/// [`DestinationRepo`](crate::repo::DestinationRepo) call but
/// [`find_by_digest`](crate::repo::DestinationRepo::find_by_digest).
///
/// The host derives it from the authenticated caller (never from the request
/// body) and passes it to each call. It is opaque here: 1 to 128 printable
/// ASCII characters (`!` to `~`, no spaces), enough for the UUIDs, ULIDs,
/// numbers and slugs hosts use as organization ids.
///
/// ```
/// use prets_destinations::TenantId;
///
/// let tenant: TenantId = "org_2b1f".parse()?;
/// assert_eq!(tenant.as_str(), "org_2b1f");
/// assert!("".parse::<TenantId>().is_err());
/// assert!("org 1".parse::<TenantId>().is_err());
/// # Ok::<(), prets_destinations::tenant::InvalidTenantId>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(Box<str>);

/// Why a string is not a [`TenantId`]: empty, longer than 128 bytes, or with a
/// character outside printable ASCII.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InvalidTenantId(());

impl fmt::Display for InvalidTenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tenant id must be 1 to 128 printable ascii characters without spaces")
    }
}

impl std::error::Error for InvalidTenantId {}

fn valid_tenant(s: &str) -> bool {
    (1..=TENANT_ID_MAX_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

impl TenantId {
    /// The id's text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TenantId {
    type Err = InvalidTenantId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if valid_tenant(s) {
            Ok(Self(s.into()))
        } else {
            Err(InvalidTenantId(()))
        }
    }
}

impl TryFrom<&str> for TenantId {
    type Error = InvalidTenantId;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<String> for TenantId {
    type Error = InvalidTenantId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if valid_tenant(&s) {
            Ok(Self(s.into_boxed_str()))
        } else {
            Err(InvalidTenantId(()))
        }
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> Self {
        t.0.into()
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}
