//! [`SecretDigest`]: what is stored to verify a presented secret and to find
//! the destination a leaked one belongs to.

use core::fmt;
use core::str::FromStr;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::bearer::{BearerSecret, bearer_token};

/// The SHA-256 digest of a secret's text (`whsec_...`), to store beside the
/// sealed secret: it verifies a presented secret and finds the destination a
/// leaked secret belongs to, but cannot be turned back into the secret.
///
/// `Display` and `FromStr` use 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretDigest([u8; 32]);

/// Why a string is not a [`SecretDigest`]: not 64 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InvalidDigest(());

impl fmt::Display for InvalidDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("secret digest must be 64 hex digits")
    }
}

impl std::error::Error for InvalidDigest {}

impl SecretDigest {
    pub(crate) fn of_text(text: &[u8]) -> Self {
        Self(Sha256::digest(text).into())
    }

    /// The digest of any presented string, valid secret or not; for looking up
    /// a leaked secret.
    #[must_use]
    pub fn of_presented(text: &str) -> Self {
        Self::of_text(text.as_bytes())
    }

    /// From raw digest bytes, as stored.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `header`, the value of an `Authorization` header, presents the
    /// secret this is the digest of.
    ///
    /// Accepted: `Bearer <secret>` with the scheme in any case, one or more
    /// spaces before the secret, and optional spaces or tabs around the value.
    /// Anything else, malformed or not UTF-8, is simply not verified. The work
    /// done depends only on the header's length and shape, never on how many
    /// bytes of the secret match: the presented token is hashed and the two
    /// 32-byte digests are compared in full.
    ///
    /// ```
    /// use prets_destinations::BearerSecret;
    /// use rand_core::UnwrapErr;
    ///
    /// let secret = BearerSecret::from_rng(&mut UnwrapErr(getrandom::SysRng));
    /// let digest = secret.digest();
    /// assert!(digest.verify_authorization(&*secret.authorization_header()));
    /// assert!(!digest.verify_authorization("Basic dXNlcjpwYXNz"));
    /// ```
    #[must_use]
    pub fn verify_authorization(&self, header: impl AsRef<[u8]>) -> bool {
        let Some(token) = bearer_token(header.as_ref()) else {
            return false;
        };
        let presented = Self::of_text(token);
        bool::from(presented.0.ct_eq(&self.0))
    }
}

impl BearerSecret {
    /// The SHA-256 digest of the secret text.
    #[must_use]
    pub fn digest(&self) -> SecretDigest {
        SecretDigest::of_text(self.expose_secret().as_bytes())
    }
}

impl fmt::Display for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretDigest({self})")
    }
}

impl FromStr for SecretDigest {
    type Err = InvalidDigest;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return Err(InvalidDigest(()));
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
            let hex = |c: u8| char::from(c).to_digit(16);
            match pair {
                [h, l] => match (hex(*h), hex(*l)) {
                    // Each digit is below 16, so the byte cannot overflow.
                    (Some(h), Some(l)) => *o = (h * 16 + l) as u8,
                    _ => return Err(InvalidDigest(())),
                },
                _ => return Err(InvalidDigest(())),
            }
        }
        Ok(Self(out))
    }
}

impl serde::Serialize for SecretDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SecretDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "whsec_3XvK2nQ8mB7pR1sT4uW6yZ0aE5gH9jLcV2bN1xM4qP8";

    #[test]
    fn header_forms() {
        let s: BearerSecret = EXAMPLE.parse().unwrap();
        for ok in [
            format!("Bearer {EXAMPLE}"),
            format!("bearer {EXAMPLE}"),
            format!("BEARER {EXAMPLE}"),
            format!("Bearer   {EXAMPLE}"),
            format!(" \tBearer {EXAMPLE}\t "),
        ] {
            assert!(s.verify_authorization(&ok), "{ok:?}");
            assert!(s.digest().verify_authorization(&ok), "{ok:?}");
        }
        for bad in [
            String::new(),
            "Bearer".to_owned(),
            "Bearer ".to_owned(),
            EXAMPLE.to_owned(),
            format!("Bearer{EXAMPLE}"),
            format!("Bearer\t{EXAMPLE}"),
            format!("Basic {EXAMPLE}"),
            format!("Bearer {EXAMPLE}x"),
            format!("Bearer {}", &EXAMPLE[..48]),
            format!("Bearer {EXAMPLE} {EXAMPLE}"),
            format!("Bearer: {EXAMPLE}"),
            format!("Bearerx {EXAMPLE}"),
        ] {
            assert!(!s.verify_authorization(&bad), "{bad:?}");
            assert!(!s.digest().verify_authorization(&bad), "{bad:?}");
        }
    }

    #[test]
    fn digest_hex_round_trips() {
        let s: BearerSecret = EXAMPLE.parse().unwrap();
        let d = s.digest();
        let hex = d.to_string();
        assert_eq!(hex.len(), 64);
        assert_eq!(hex.parse::<SecretDigest>(), Ok(d));
        assert!(hex.to_uppercase().parse::<SecretDigest>().is_ok());
        assert!(hex[..63].parse::<SecretDigest>().is_err());
        assert!(format!("{}g", &hex[..63]).parse::<SecretDigest>().is_err());
        assert!(format!("{}é", &hex[..62]).parse::<SecretDigest>().is_err());
    }
}
