//! The host policy seam: what `DestinationUrl` asks of the host it found.

use crate::url::UrlErrorKind;

/// Judges the host text of a URL that already matched the published pattern
/// and has an `https://` scheme, no user information and a valid port.
///
/// `host` is non-empty ASCII from the pattern's character set.
pub(crate) fn check_host(host: &str) -> Result<(), UrlErrorKind> {
    debug_assert!(!host.is_empty());
    let _ = host;
    Ok(())
}
