//! `SigningSecret`: the Standard Webhooks `whsec_` secret deliveries are
//! signed with.

use core::fmt;
use core::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand_core::CryptoRng;
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize as _, Zeroizing};

use crate::error::{Field, field_error_type};
#[cfg(feature = "getrandom")]
use crate::secret::bearer::RandomnessError;
use crate::secret::bearer::SECRET_PREFIX;

/// The pattern of a signing secret: `whsec_` and the padded standard base64
/// of 32 bytes.
pub const SIGNING_SECRET_PATTERN: &str = "^whsec_[A-Za-z0-9+/]{43}=$";

/// Bytes of an HMAC-SHA256 signing key.
pub(crate) const SIGNING_KEY_BYTES: usize = 32;
/// Characters of padded standard base64 for 32 bytes.
const ENCODED_LEN: usize = 44;
/// Length of the whole secret text.
const SIGNING_SECRET_LEN: usize = SECRET_PREFIX.len() + ENCODED_LEN;

field_error_type! {
    /// Why a string is not a valid [`SigningSecret`]. Never contains the string.
    InvalidSigningSecret, SigningSecretErrorKind, Field::SigningSecret,
    {
        Pattern => ("pattern", "signing secret must be whsec_ followed by 44 standard base64 characters ending in ="),
        NonCanonical => ("non_canonical", "signing secret is not the canonical base64 encoding of 32 bytes"),
    }
}

/// A Standard Webhooks signing secret: `whsec_` and the standard base64
/// (RFC 4648 §4: `+`, `/` and `=` padding) of a 32-byte HMAC-SHA256 key,
/// 50 characters in all.
///
/// The official Standard Webhooks libraries take this text as it is: they
/// strip `whsec_` and base64-decode the rest into the key. Parsing accepts
/// exactly what is minted here: 32 bytes, canonically encoded (the last data
/// character's two spare bits zero), so every secret has one spelling. (The
/// specification allows keys of 24 to 64 bytes; none is accepted from
/// outside yet, so only this crate's own form is parsed.)
///
/// The same discipline as [`BearerSecret`](crate::secret::BearerSecret): not
/// [`Clone`], no [`Display`](fmt::Display), no `Serialize`, redacted
/// [`Debug`](fmt::Debug), wiped on drop, read through the explicit
/// [`expose_secret`](Self::expose_secret). It is sealed for storage with
/// [`SealingKey::seal_signing_secret`](crate::secret::SealingKey::seal_signing_secret).
///
/// ```
/// use prets_destinations::secret::SigningSecret;
/// use rand_core::UnwrapErr;
///
/// let secret = SigningSecret::from_rng(&mut UnwrapErr(getrandom::SysRng));
/// assert_eq!(secret.expose_secret().len(), 50);
/// assert_eq!(format!("{secret:?}"), "SigningSecret(<redacted>)");
/// let again: SigningSecret = secret.expose_secret().parse()?;
/// assert!(again.ct_eq(&secret));
/// # Ok::<(), prets_destinations::secret::InvalidSigningSecret>(())
/// ```
pub struct SigningSecret {
    /// Exactly [`SIGNING_SECRET_LEN`] ASCII bytes, allocated once at that size.
    text: Zeroizing<String>,
    /// The decoded key the signatures are computed with.
    key: Zeroizing<[u8; SIGNING_KEY_BYTES]>,
}

impl SigningSecret {
    /// A new secret from the operating system's generator.
    ///
    /// # Errors
    /// [`RandomnessError`] if the operating system cannot provide random bytes.
    #[cfg(feature = "getrandom")]
    pub fn generate() -> Result<Self, RandomnessError> {
        let mut key = Zeroizing::new([0u8; SIGNING_KEY_BYTES]);
        getrandom::fill(key.as_mut_slice()).map_err(RandomnessError)?;
        Ok(Self::from_key(key))
    }

    /// A new secret from 32 bytes of the caller's cryptographically secure
    /// generator.
    pub fn from_rng<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = Zeroizing::new([0u8; SIGNING_KEY_BYTES]);
        rng.fill_bytes(key.as_mut_slice());
        Self::from_key(key)
    }

    /// The secret of `key`: `whsec_` + its padded standard base64, written
    /// straight into the one buffer the text lives in.
    pub(crate) fn from_key(key: Zeroizing<[u8; SIGNING_KEY_BYTES]>) -> Self {
        let mut text = Vec::with_capacity(SIGNING_SECRET_LEN);
        text.extend_from_slice(SECRET_PREFIX.as_bytes());
        text.resize(SIGNING_SECRET_LEN, 0);
        if let Some(encoded) = text.get_mut(SECRET_PREFIX.len()..) {
            // 32 bytes always encode to exactly 44 characters, so this cannot
            // fail; a failure would leave zeros, which a reader would see as a
            // malformed secret rather than a weak one.
            let _ = STANDARD.encode_slice(key.as_slice(), encoded);
        }
        // The prefix and the base64 alphabet are ASCII, so this keeps the
        // same buffer; the error arm cannot happen and only wipes.
        let text = match String::from_utf8(text) {
            Ok(text) => text,
            Err(e) => {
                e.into_bytes().zeroize();
                String::new()
            }
        };
        Self {
            text: Zeroizing::new(text),
            key,
        }
    }

    /// The cleartext, `whsec_...`, which receivers configure in their
    /// Standard Webhooks library. Every call is a place where the secret can
    /// leave the process; keep them few and easy to find.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.text
    }

    /// The HMAC-SHA256 key.
    pub(crate) fn key(&self) -> &[u8; SIGNING_KEY_BYTES] {
        &self.key
    }

    /// Whether the two secrets are the same, in constant time.
    #[must_use]
    pub fn ct_eq(&self, other: &Self) -> bool {
        bool::from(self.key.as_slice().ct_eq(other.key.as_slice()))
    }
}

fn parse(s: &str) -> Result<SigningSecret, SigningSecretErrorKind> {
    let b = s.as_bytes();
    let Some(encoded) = b.strip_prefix(SECRET_PREFIX.as_bytes()) else {
        return Err(SigningSecretErrorKind::Pattern);
    };
    let Some((&b'=', data)) = encoded.split_last() else {
        return Err(SigningSecretErrorKind::Pattern);
    };
    if encoded.len() != ENCODED_LEN
        || !data
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
    {
        return Err(SigningSecretErrorKind::Pattern);
    }
    // The last data character carries 4 data bits and 2 bits that must be
    // zero; the strict engine refuses anything else.
    let mut raw = Zeroizing::new([0u8; SIGNING_KEY_BYTES + 3]);
    match STANDARD.decode_slice(encoded, raw.as_mut_slice()) {
        Ok(SIGNING_KEY_BYTES) => {}
        _ => return Err(SigningSecretErrorKind::NonCanonical),
    }
    let mut key = Zeroizing::new([0u8; SIGNING_KEY_BYTES]);
    for (k, r) in key.iter_mut().zip(raw.iter()) {
        *k = *r;
    }
    Ok(SigningSecret::from_key(key))
}

impl FromStr for SigningSecret {
    type Err = InvalidSigningSecret;
    /// Parses a stored or presented secret: the pattern and canonical base64.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).map_err(InvalidSigningSecret::new)
    }
}

impl TryFrom<&str> for SigningSecret {
    type Error = InvalidSigningSecret;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<String> for SigningSecret {
    type Error = InvalidSigningSecret;
    /// Parses `s` and wipes it, whether or not it was valid.
    fn try_from(mut s: String) -> Result<Self, Self::Error> {
        let parsed = s.parse();
        s.zeroize();
        parsed
    }
}

impl<'de> serde::Deserialize<'de> for SigningSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Zeroizing::new(String::deserialize(d)?);
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_text_is_prefix_and_padded_standard_base64_of_the_key() {
        // 32 zero bytes: 42 full sextets of 'A', then 4 zero bits and 2 of
        // padding ('A'), then '='. 0xff bytes are '/' but the last data
        // character, 0b111100 = 60 = '8'.
        let zeros = SigningSecret::from_key(Zeroizing::new([0; 32]));
        assert_eq!(zeros.expose_secret(), format!("whsec_{}=", "A".repeat(43)));
        let ones = SigningSecret::from_key(Zeroizing::new([0xff; 32]));
        assert_eq!(ones.expose_secret(), format!("whsec_{}8=", "/".repeat(42)));
        for s in [zeros, ones] {
            let reparsed: SigningSecret = s.expose_secret().parse().unwrap();
            assert!(reparsed.ct_eq(&s));
            assert_eq!(reparsed.key(), s.key());
            assert_eq!(s.text.capacity(), SIGNING_SECRET_LEN);
        }
    }
}
