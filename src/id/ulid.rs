//! ULIDs: parsing a prefix and 26 canonical characters (`att_` ids), and
//! minting one from a time and random bits (every generated id).

use rand_core::CryptoRng;
use ulid::Ulid;

use crate::byteset::ByteSet;
use crate::time::Timestamp;

const ULID_CHARS: usize = 26;

/// Upper-case Crockford base32: digits and letters but I, L, O and U.
static CROCKFORD: ByteSet = ByteSet::new(b"0123456789ABCDEFGHJKMNPQRSTVWXYZ", &[]);

/// Parses `prefix` + a canonical 26-character ULID.
pub(crate) fn parse_prefixed_ulid(s: &str, prefix: &str) -> Option<Ulid> {
    let ulid = s.strip_prefix(prefix)?;
    let b = ulid.as_bytes();
    if b.len() != ULID_CHARS || !b.iter().all(|&c| CROCKFORD.contains(c)) {
        return None;
    }
    // 26 characters carry 130 bits; the top two must be zero.
    if b.first().is_some_and(|&c| c > b'7') {
        return None;
    }
    Ulid::from_string(ulid).ok()
}

/// A ULID whose time part is `now` and whose 80 random bits come from `rng`.
pub(crate) fn generate_ulid<R: CryptoRng + ?Sized>(now: Timestamp, rng: &mut R) -> Ulid {
    let mut random = [0u8; 16];
    if let Some(tail) = random.get_mut(6..) {
        rng.fill_bytes(tail);
    }
    Ulid::from_parts(now.unix_millis(), u128::from_be_bytes(random))
}
