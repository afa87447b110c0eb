//! Standard Webhooks signatures: how a destination's deliveries are signed
//! ([`Signing`]) and the `webhook-signature` header value
//! ([`webhook_signature`]).

use core::fmt;
use core::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit as _, Mac as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::error::{Field, field_error_type};
use crate::id::DestinationId;
use crate::secret::seal::{Keyring, OpenError, SealedSigningSecret};
use crate::secret::signing::{SIGNING_KEY_BYTES, SigningSecret};
use crate::tenant::TenantId;
use crate::time::Timestamp;

/// The name of the header that carries the signatures.
pub const SIGNATURE_HEADER: &str = "Webhook-Signature";

/// The version identifier of a Standard Webhooks HMAC-SHA256 signature.
pub const SIGNATURE_VERSION: &str = "v1";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// SHA-256's block: HMAC pads a shorter key with zeros to this length.
const BLOCK_BYTES: usize = 64;
/// `v1,` and the padded base64 of a 32-byte HMAC.
const SIGNATURE_LEN: usize = SIGNATURE_VERSION.len() + 1 + 44;

field_error_type! {
    /// Why a string is not a [`Signing`] scheme.
    InvalidSigning, SigningErrorKind, Field::Signing,
    {
        Invalid => ("invalid", "signing must be \"bearer\" or \"standard-webhooks\""),
    }
}

/// How a destination's deliveries prove where they come from.
///
/// Every delivery carries `Authorization: Bearer whsec_...` whatever the
/// scheme; `standard-webhooks` adds a `webhook-signature` header
/// ([`webhook_signature`]) made with the destination's [`SigningSecret`].
/// Written in JSON as `"bearer"` or `"standard-webhooks"`, exactly (case
/// matters).
///
/// ```
/// use prets_destinations::secret::Signing;
///
/// let s: Signing = "standard-webhooks".parse()?;
/// assert_eq!(s, Signing::StandardWebhooks);
/// assert_eq!(Signing::default().as_str(), "bearer");
/// assert_eq!("Bearer".parse::<Signing>().unwrap_err().code(), "invalid");
/// # Ok::<(), prets_destinations::secret::InvalidSigning>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Signing {
    /// `bearer`: the bearer secret only (the default).
    #[default]
    Bearer,
    /// `standard-webhooks`: also a Standard Webhooks HMAC-SHA256 signature.
    StandardWebhooks,
}

impl Signing {
    /// The JSON spelling: `bearer` or `standard-webhooks`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::StandardWebhooks => "standard-webhooks",
        }
    }
}

impl FromStr for Signing {
    type Err = InvalidSigning;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bearer" => Ok(Self::Bearer),
            "standard-webhooks" => Ok(Self::StandardWebhooks),
            _ => Err(InvalidSigning::new(SigningErrorKind::Invalid)),
        }
    }
}

impl TryFrom<&str> for Signing {
    type Error = InvalidSigning;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<String> for Signing {
    type Error = InvalidSigning;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for Signing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Signing {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Signing {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a signature covers: the `webhook-id` and `webhook-timestamp` header
/// values and the body, signed as `{webhook_id}.{timestamp}.{body}`.
///
/// The id must not contain `.` (the Standard Webhooks specification asks
/// so, to keep the signed content unambiguous); an event id (`evt_` and a
/// ULID) never does. `Debug` shows the body's length only.
#[derive(Clone, Copy)]
pub struct SignedMessage<'a> {
    /// The `webhook-id` header value: the event id.
    pub webhook_id: &'a str,
    /// The `webhook-timestamp`: the attempt's time, signed in Unix seconds.
    pub timestamp: Timestamp,
    /// The body exactly as sent.
    pub body: &'a [u8],
}

impl fmt::Debug for SignedMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedMessage")
            .field("webhook_id", &self.webhook_id)
            .field("timestamp", &self.timestamp)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The decimal digits of `n`, written at the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    for slot in buf.iter_mut().rev() {
        // `n % 10` is below 10, so the cast keeps it whole.
        *slot = b'0' + (n % 10) as u8;
        start -= 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.get(start..).unwrap_or_default()
}

/// HMAC-SHA256 keyed with a 32-byte key. RFC 2104 pads a key shorter than
/// the hash's block with zeros, so keying with the padded block is the same
/// MAC, and cannot fail.
fn keyed(key: &[u8; SIGNING_KEY_BYTES]) -> HmacSha256 {
    let mut block = Zeroizing::new([0u8; BLOCK_BYTES]);
    for (b, k) in block.iter_mut().zip(key) {
        *b = *k;
    }
    let block: &[u8; BLOCK_BYTES] = &block;
    HmacSha256::new(block.into())
}

/// Appends `v1,<base64 HMAC-SHA256 of message under secret>` to `out`.
fn push_signature(out: &mut String, secret: &SigningSecret, message: &SignedMessage<'_>) {
    let mut mac = keyed(secret.key());
    let mut digits = [0u8; 20];
    mac.update(message.webhook_id.as_bytes());
    mac.update(b".");
    mac.update(decimal(message.timestamp.unix_seconds(), &mut digits));
    mac.update(b".");
    mac.update(message.body);
    let tag = mac.finalize().into_bytes();
    let mut encoded = [0u8; 44];
    out.push_str(SIGNATURE_VERSION);
    out.push(',');
    // 32 bytes encode to exactly 44 characters of the ASCII base64 alphabet.
    if let Ok(len) = STANDARD.encode_slice(tag, &mut encoded)
        && let Some(text) = encoded
            .get(..len)
            .and_then(|b| core::str::from_utf8(b).ok())
    {
        out.push_str(text);
    }
}

/// The `webhook-signature` header value of a delivery: `v1,<signature>` under
/// `current`, then one more, space-separated, under each of `previous` (the
/// secrets still in their rotation grace period), newest first:
/// `v1,<new> v1,<old>`.
///
/// Each signature is the standard base64 of HMAC-SHA256, keyed with the
/// secret's 32 bytes, of `{webhook_id}.{timestamp}.{body}`, as the Standard
/// Webhooks specification defines it: any official library verifies it with
/// the secret's `whsec_` text. One allocation, the returned string; the
/// signed content is fed to the MAC in place.
///
/// ```
/// use prets_destinations::Timestamp;
/// use prets_destinations::secret::{SignedMessage, SigningSecret, webhook_signature};
/// use rand_core::UnwrapErr;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut rng = UnwrapErr(getrandom::SysRng);
/// let (new, old) = (SigningSecret::from_rng(&mut rng), SigningSecret::from_rng(&mut rng));
/// let message = SignedMessage {
///     webhook_id: "evt_01HF2V3J6T0Q8X5Y7Z9ABCDEFG",
///     timestamp: Timestamp::from_unix_seconds(1_700_000_000).ok_or("time")?,
///     body: br#"{"amount":1250}"#,
/// };
/// let header = webhook_signature(&message, &new, [&old]);
/// let parts: Vec<&str> = header.split(' ').collect();
/// assert_eq!(parts.len(), 2);
/// assert!(parts.iter().all(|p| p.starts_with("v1,") && p.len() == 47));
/// assert_eq!(parts[0], webhook_signature(&message, &new, []));
/// # Ok(())
/// # }
/// ```
pub fn webhook_signature<'a>(
    message: &SignedMessage<'_>,
    current: &SigningSecret,
    previous: impl IntoIterator<Item = &'a SigningSecret>,
) -> String {
    let previous = previous.into_iter();
    let count = 1 + previous.size_hint().0;
    let mut out = String::with_capacity(count * (SIGNATURE_LEN + 1));
    push_signature(&mut out, current, message);
    for secret in previous {
        out.push(' ');
        push_signature(&mut out, secret, message);
    }
    out
}

impl Keyring {
    /// The `webhook-signature` header value of a delivery to `tenant`'s
    /// destination `id`: opens `current` and each of `previous` (sealed with
    /// [`SealingKey::seal_signing_secret`](crate::secret::SealingKey::seal_signing_secret)
    /// for that tenant and id) and signs `message` with them, as
    /// [`webhook_signature`] does. The secrets never leave this call.
    ///
    /// # Errors
    /// [`OpenError`] if a sealed secret names a key the keyring does not
    /// have (`unknown_key`), or does not authenticate for this tenant and
    /// destination id (`unauthentic`).
    pub fn webhook_signature<'a>(
        &self,
        tenant: &TenantId,
        id: DestinationId,
        current: &SealedSigningSecret,
        previous: impl IntoIterator<Item = &'a SealedSigningSecret>,
        message: &SignedMessage<'_>,
    ) -> Result<String, OpenError> {
        let current = self.open_signing_secret(tenant, id, current)?;
        let previous = previous
            .into_iter()
            .map(|sealed| self.open_signing_secret(tenant, id, sealed))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(webhook_signature(message, &current, &previous))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_writes_every_digit_of_every_width() {
        let mut buf = [0u8; 20];
        for n in [0, 7, 10, 99, 1_674_087_231, u64::MAX] {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
        let mut n = 1u64;
        while let Some(next) = n.checked_mul(10) {
            for m in [n - 1, n, n + 1] {
                assert_eq!(decimal(m, &mut buf), m.to_string().as_bytes());
            }
            n = next;
        }
    }

    #[test]
    fn keying_with_the_zero_padded_block_is_hmac_of_the_key() {
        let key = [0x5au8; SIGNING_KEY_BYTES];
        let mut ours = keyed(&key);
        let mut reference = HmacSha256::new_from_slice(&key).unwrap();
        ours.update(b"msg_1.1674087231.{}");
        reference.update(b"msg_1.1674087231.{}");
        assert_eq!(
            ours.finalize().into_bytes(),
            reference.finalize().into_bytes()
        );
    }
}
