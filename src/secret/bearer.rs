//! `BearerSecret`: the `whsec_` secret sent on every delivery, and the
//! `Authorization: Bearer` header that carries it.

use core::fmt;
use core::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Field, field_error_type};

/// The prefix of every bearer secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// The published `bearerSecret` pattern, verbatim from the API reference.
pub const SECRET_PATTERN: &str = "^whsec_[A-Za-z0-9_-]{43}$";

/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;
/// Characters of base64url without padding for 32 bytes.
const ENCODED_LEN: usize = 43;
/// Length of the whole secret text.
pub(crate) const SECRET_LEN: usize = SECRET_PREFIX.len() + ENCODED_LEN;

field_error_type! {
    /// Why a string is not a valid [`BearerSecret`]. Never contains the string.
    InvalidSecret, SecretErrorKind, Field::BearerSecret,
    {
        Pattern => ("pattern", "bearer secret must be whsec_ followed by 43 base64url characters"),
        NonCanonical => ("non_canonical", "bearer secret is not the canonical base64url encoding of 32 bytes"),
    }
}

/// A webhook bearer secret: `whsec_` and the unpadded base64url encoding of
/// 32 random bytes (43 characters).
///
/// The type keeps the cleartext from spreading by accident: it is not
/// [`Clone`], has no [`Display`](fmt::Display) and no `Serialize`, its
/// [`Debug`](fmt::Debug) is redacted, and its memory is wiped on drop. The one
/// way to the text is the explicit, greppable [`expose_secret`](Self::expose_secret).
///
/// ```
/// use prets_destinations::BearerSecret;
///
/// let secret: BearerSecret = "whsec_3XvK2nQ8mB7pR1sT4uW6yZ0aE5gH9jLcV2bN1xM4qP8".parse()?;
/// assert_eq!(format!("{secret:?}"), "BearerSecret(<redacted>)");
/// assert!(secret.verify_authorization("Bearer whsec_3XvK2nQ8mB7pR1sT4uW6yZ0aE5gH9jLcV2bN1xM4qP8"));
/// # Ok::<(), prets_destinations::secret::InvalidSecret>(())
/// ```
pub struct BearerSecret {
    /// Always exactly [`SECRET_LEN`] ASCII bytes; allocated once at that size so
    /// no copy is left behind by a reallocation.
    text: Zeroizing<String>,
}

/// The operating system's random number generator failed.
#[cfg(feature = "getrandom")]
#[derive(Debug)]
pub struct RandomnessError(pub(crate) getrandom::Error);

#[cfg(feature = "getrandom")]
impl fmt::Display for RandomnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the operating system's random number generator failed")
    }
}

#[cfg(feature = "getrandom")]
impl std::error::Error for RandomnessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// The operating system's generator as an infallible [`rand_core::CryptoRng`],
/// for [`NewDestination::plan`](crate::wire::NewDestination::plan) and [`BearerSecret::from_rng`].
///
/// # Panics
/// The returned generator panics if the operating system cannot provide
/// random bytes, which on supported platforms does not happen once the
/// system has booted. Use [`BearerSecret::generate`] to handle that failure
/// as an error instead.
#[cfg(feature = "getrandom")]
#[must_use]
pub fn os_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

impl BearerSecret {
    /// A new secret from the operating system's generator.
    ///
    /// # Errors
    /// [`RandomnessError`] if the operating system cannot provide random bytes.
    #[cfg(feature = "getrandom")]
    pub fn generate() -> Result<Self, RandomnessError> {
        Self::mint(|bytes| getrandom::fill(bytes).map_err(RandomnessError))
    }

    /// A new secret from 32 bytes of the caller's cryptographically secure
    /// generator.
    ///
    /// ```
    /// use prets_destinations::BearerSecret;
    /// use rand_core::UnwrapErr;
    ///
    /// let secret = BearerSecret::from_rng(&mut UnwrapErr(getrandom::SysRng));
    /// assert_eq!(secret.expose_secret().len(), 49);
    /// ```
    pub fn from_rng<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let Ok(secret) = Self::mint(|bytes| {
            rng.fill_bytes(bytes);
            Ok::<(), core::convert::Infallible>(())
        });
        secret
    }

    /// Fills 32 random bytes and encodes them as `whsec_` + base64url,
    /// straight into the one heap buffer the text lives in: no stack copy of
    /// the text to wipe and no per-character pushes. The buffer is allocated
    /// before the bytes are drawn, so nothing but the encoding sits between
    /// the generator and the secret (see the `mint` bench).
    fn mint<E>(fill: impl FnOnce(&mut [u8]) -> Result<(), E>) -> Result<Self, E> {
        let mut text = Vec::with_capacity(SECRET_LEN);
        text.extend_from_slice(SECRET_PREFIX.as_bytes());
        text.resize(SECRET_LEN, 0);
        let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        fill(bytes.as_mut_slice())?;
        if let Some(encoded) = text.get_mut(SECRET_PREFIX.len()..) {
            // 32 bytes always encode to exactly 43 characters, so this cannot
            // fail; a failure would leave zeros, which `expose_secret` callers
            // would see as a malformed secret rather than a weak one.
            let _ = URL_SAFE_NO_PAD.encode_slice(bytes.as_slice(), encoded);
        }
        // The prefix and the base64url alphabet are ASCII, so this keeps the
        // same buffer; the error arm cannot happen and only wipes.
        Ok(match String::from_utf8(text) {
            Ok(text) => Self {
                text: Zeroizing::new(text),
            },
            Err(e) => {
                e.into_bytes().zeroize();
                Self::from_text("")
            }
        })
    }

    /// Copies validated secret text into a buffer allocated once at the
    /// secret's length.
    fn from_text(s: &str) -> Self {
        let mut text = Zeroizing::new(String::with_capacity(SECRET_LEN));
        text.push_str(s);
        Self { text }
    }

    /// The cleartext, `whsec_...`. Every call is a place where the secret can
    /// leave the process; keep them few and easy to find.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.text
    }

    /// The value of the `Authorization` header a delivery carries:
    /// `Bearer whsec_...`, wiped on drop.
    #[must_use]
    pub fn authorization_header(&self) -> Zeroizing<String> {
        let mut v = Zeroizing::new(String::with_capacity(BEARER.len() + 1 + SECRET_LEN));
        v.push_str(BEARER);
        v.push(' ');
        v.push_str(&self.text);
        v
    }

    /// Whether `header`, the value of an `Authorization` header, presents this
    /// secret. See [`SecretDigest::verify_authorization`](crate::secret::SecretDigest::verify_authorization) for the accepted form;
    /// the comparison takes the same time for every presented secret of the
    /// right length.
    #[must_use]
    pub fn verify_authorization(&self, header: impl AsRef<[u8]>) -> bool {
        let Some(token) = bearer_token(header.as_ref()) else {
            return false;
        };
        let mine: &[u8] = self.text.as_bytes();
        // Both sides are exactly SECRET_LEN bytes here, so `ct_eq` compares
        // every byte: subtle's slice comparison only exits early on length.
        bool::from(token.ct_eq(mine))
    }

    /// Whether the two secrets are the same, in constant time.
    #[must_use]
    pub fn ct_eq(&self, other: &Self) -> bool {
        bool::from(self.text.as_bytes().ct_eq(other.text.as_bytes()))
    }
}

fn parse(s: &str) -> Result<BearerSecret, SecretErrorKind> {
    let b = s.as_bytes();
    let Some(encoded) = b.strip_prefix(SECRET_PREFIX.as_bytes()) else {
        return Err(SecretErrorKind::Pattern);
    };
    if encoded.len() != ENCODED_LEN
        || !encoded
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    {
        return Err(SecretErrorKind::Pattern);
    }
    // The last character carries 4 data bits and 2 bits that must be zero;
    // the strict engine refuses anything else, so every secret has one spelling.
    let mut raw = Zeroizing::new([0u8; SECRET_BYTES + 3]);
    match URL_SAFE_NO_PAD.decode_slice(encoded, raw.as_mut_slice()) {
        Ok(SECRET_BYTES) => {}
        _ => return Err(SecretErrorKind::NonCanonical),
    }
    Ok(BearerSecret::from_text(s))
}

impl FromStr for BearerSecret {
    type Err = InvalidSecret;
    /// Parses a presented secret: the published pattern and canonical base64url.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).map_err(InvalidSecret::new)
    }
}

impl TryFrom<&str> for BearerSecret {
    type Error = InvalidSecret;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<String> for BearerSecret {
    type Error = InvalidSecret;
    /// Parses `s` and wipes it, whether or not it was valid.
    fn try_from(mut s: String) -> Result<Self, Self::Error> {
        let parsed = s.parse();
        s.zeroize();
        parsed
    }
}

impl<'de> serde::Deserialize<'de> for BearerSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Zeroizing::new(String::deserialize(d)?);
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for BearerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerSecret(<redacted>)")
    }
}

const BEARER: &str = "Bearer";

/// The token of `Bearer <token>` if it has the length of a secret.
///
/// The scheme is matched case-insensitively (RFC 9110 §11.1), one or more
/// spaces separate it from the token, and optional whitespace around the
/// whole value is ignored (RFC 9110 §5.5). Only public facts decide the
/// outcome here: the header's shape and the token's length.
pub(crate) fn bearer_token(header: &[u8]) -> Option<&[u8; SECRET_LEN]> {
    // Only SP and HTAB are optional whitespace; `trim_ascii` would also drop
    // CR, LF and form feed, which a well-formed field value cannot hold.
    let is_ows = |c: &u8| matches!(c, b' ' | b'\t');
    let start = header.iter().position(|c| !is_ows(c))?;
    let end = header.iter().rposition(|c| !is_ows(c))?;
    let header = header.get(start..=end)?;
    let (scheme, rest) = header.split_at_checked(BEARER.len())?;
    if !scheme.eq_ignore_ascii_case(BEARER.as_bytes()) {
        return None;
    }
    let token = rest.trim_ascii_start();
    if token.len() == rest.len()
        || rest
            .iter()
            .take_while(|c| c.is_ascii_whitespace())
            .any(|&c| c != b' ')
    {
        return None;
    }
    token.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_text_is_prefix_and_canonical_base64url_of_the_bytes() {
        // 32 zero bytes are 256 zero bits: 42 full sextets and 4 bits of
        // padding, all 'A'; 0xff bytes are '_' except the last character,
        // which holds 4 one bits and 2 zero bits: 0b111100 = 60 = '8'.
        let mint = |byte: u8| {
            BearerSecret::mint(|b| {
                b.fill(byte);
                Ok::<(), ()>(())
            })
            .unwrap()
        };
        let zeros = mint(0);
        assert_eq!(zeros.expose_secret(), format!("whsec_{}", "A".repeat(43)));
        let ones = mint(0xff);
        assert_eq!(ones.expose_secret(), format!("whsec_{}8", "_".repeat(42)));
        for s in [zeros, ones] {
            let reparsed: BearerSecret = s.expose_secret().parse().unwrap();
            assert!(reparsed.ct_eq(&s));
            assert_eq!(s.text.capacity(), SECRET_LEN);
        }
    }
}
