//! Secrets at rest: the bearer secret sealed with XChaCha20-Poly1305 under a
//! host-provided key, bound to its tenant and destination id.

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::AeadInOut as _;
use chacha20poly1305::{KeyInit as _, Tag, XChaCha20Poly1305, XNonce};
use rand_core::CryptoRng;
use zeroize::{Zeroize as _, Zeroizing};

use crate::id::DestinationId;
use crate::secret::bearer::{BearerSecret, SECRET_LEN};
use crate::tenant::TenantId;

/// Format version of a [`SealedSecret`], first byte of its stored form.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const CIPHERTEXT_LEN: usize = SECRET_LEN + TAG_LEN;
/// Version, key id, nonce, ciphertext and tag.
const SEALED_LEN: usize = 1 + 4 + NONCE_LEN + CIPHERTEXT_LEN;
/// Separates this use of the key from any other the host may make of it.
const AAD_CONTEXT: &[u8] = b"prets-destinations/sealed-bearer-secret\0";

/// The id of a [`SealingKey`], stored beside every secret sealed under it so
/// that a [`Keyring`] can pick the key that opens it after keys rotate.
///
/// The host chooses the numbering (a counter, a date like `20261126`, ...);
/// ids only need to be distinct within a keyring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(u32);

impl KeyId {
    /// The id `id`.
    #[must_use]
    pub const fn new(id: u32) -> Self {
        Self(id)
    }

    /// The number.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A 256-bit XChaCha20-Poly1305 key with its [`KeyId`], provided by the host
/// (from its secret store or KMS) to seal bearer secrets for storage.
///
/// Like a private key it is not `Clone`, its `Debug` shows only the id, and
/// the key material is wiped when it is dropped.
///
/// ```
/// use prets_destinations::{KeyId, SealingKey};
/// use zeroize::{Zeroize as _, Zeroizing};
///
/// let material = Zeroizing::new([7u8; 32]); // from the host's secret store
/// let key = SealingKey::new(KeyId::new(1), &material);
/// assert_eq!(format!("{key:?}"), "SealingKey { id: KeyId(1), key: <redacted> }");
/// ```
pub struct SealingKey {
    id: KeyId,
    /// Holds the only copy of the key; wiped on drop (chacha20poly1305's
    /// `zeroize` feature).
    cipher: XChaCha20Poly1305,
}

impl SealingKey {
    /// A key from its 32 bytes. The key is copied; wipe the caller's copy
    /// (for example by keeping it in [`zeroize::Zeroizing`], as above).
    #[must_use]
    pub fn new(id: KeyId, key: &[u8; 32]) -> Self {
        Self {
            id,
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// A fresh random key, for tests and for hosts that generate keys here.
    pub fn from_rng<R: CryptoRng + ?Sized>(id: KeyId, rng: &mut R) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut_slice());
        Self::new(id, &key)
    }

    /// The key's id.
    #[must_use]
    pub const fn id(&self) -> KeyId {
        self.id
    }

    /// Seals `secret` for storage in `tenant`'s destination `id`, with a fresh
    /// random 24-byte nonce from `rng`.
    ///
    /// The tenant, the destination id and the key id are bound as associated
    /// data: the sealed secret opens only for that same tenant and id, so one
    /// copied into another record fails to open.
    pub fn seal<R: CryptoRng + ?Sized>(
        &self,
        tenant: &TenantId,
        id: DestinationId,
        secret: &BearerSecret,
        rng: &mut R,
    ) -> SealedSecret {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut ciphertext = [0u8; CIPHERTEXT_LEN];
        let (body, tag_out) = ciphertext.split_at_mut(SECRET_LEN);
        body.copy_from_slice(secret.expose_secret().as_bytes());
        let aad = associated_data(self.id, tenant, id);
        // Encryption refuses only messages of 256 GiB or more; this one is 49
        // bytes. Were it ever to fail, the buffer (which may still hold the
        // cleartext) is wiped: the record then fails to open, and never
        // holds the secret.
        match self
            .cipher
            .encrypt_inout_detached(&XNonce::from(nonce), &aad, (&mut *body).into())
        {
            Ok(tag) => tag_out.copy_from_slice(&tag),
            Err(_) => body.zeroize(),
        }
        SealedSecret {
            key_id: self.id,
            nonce,
            ciphertext,
        }
    }

    fn open(
        &self,
        tenant: &TenantId,
        id: DestinationId,
        sealed: &SealedSecret,
    ) -> Result<BearerSecret, OpenErrorKind> {
        let mut body = Zeroizing::new([0u8; SECRET_LEN]);
        let (ciphertext, tag) = sealed.ciphertext.split_at(SECRET_LEN);
        body.copy_from_slice(ciphertext);
        let tag = Tag::try_from(tag).map_err(|_| OpenErrorKind::Unauthentic)?;
        let aad = associated_data(sealed.key_id, tenant, id);
        self.cipher
            .decrypt_inout_detached(
                &XNonce::from(sealed.nonce),
                &aad,
                body.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| OpenErrorKind::Unauthentic)?;
        let text = core::str::from_utf8(body.as_slice()).map_err(|_| OpenErrorKind::Unauthentic)?;
        text.parse().map_err(|_| OpenErrorKind::Unauthentic)
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey")
            .field("id", &self.id)
            .field("key", &format_args!("<redacted>"))
            .finish()
    }
}

/// Context, key id, tenant (length-prefixed) and destination id, so no two
/// different (key, tenant, id) triples give the same associated data.
fn associated_data(key_id: KeyId, tenant: &TenantId, id: DestinationId) -> Vec<u8> {
    let tenant = tenant.as_str().as_bytes();
    let mut aad = Vec::with_capacity(AAD_CONTEXT.len() + 1 + 4 + 1 + tenant.len() + 26);
    aad.extend_from_slice(AAD_CONTEXT);
    aad.push(VERSION);
    aad.extend_from_slice(&key_id.0.to_be_bytes());
    // A tenant id is at most 128 bytes, so its length fits in one byte.
    aad.push(u8::try_from(tenant.len()).unwrap_or(u8::MAX));
    aad.extend_from_slice(tenant);
    // An id that is a 128-bit ULID keeps the 16-byte big-endian encoding
    // every existing sealed secret was bound to; a wider id is bound to its
    // 26 text bytes. The tenant is length-prefixed, so the id part is the
    // rest of the data and its length (16 or 26) tells the two apart.
    match id.to_ulid() {
        Some(value) => aad.extend_from_slice(&value.to_be_bytes()),
        None => aad.extend_from_slice(id.body()),
    }
    aad
}

/// A bearer secret sealed for storage: the [`KeyId`] it was sealed under, a
/// random nonce, and the XChaCha20-Poly1305 ciphertext and tag.
///
/// It reveals nothing about the secret without the key, so it is `Clone` and
/// serializable. Stored form: [`to_bytes`](Self::to_bytes) (94 bytes, first
/// byte a format version) or, through serde, those bytes in unpadded
/// base64url. Only a [`Keyring`] opens it, and only into the
/// `Authorization` header value of a delivery.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SealedSecret {
    key_id: KeyId,
    nonce: [u8; NONCE_LEN],
    ciphertext: [u8; CIPHERTEXT_LEN],
}

/// Why bytes are not a [`SealedSecret`]: wrong length or unknown version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InvalidSealedSecret(());

impl fmt::Display for InvalidSealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sealed secret is not 94 bytes of format version 1")
    }
}

impl std::error::Error for InvalidSealedSecret {}

impl SealedSecret {
    /// Length of [`to_bytes`](Self::to_bytes).
    pub const LEN: usize = SEALED_LEN;

    /// The id of the key it was sealed under.
    #[must_use]
    pub const fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The stored form: version, key id (big-endian), nonce, ciphertext, tag.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; SEALED_LEN] {
        let mut out = [0u8; SEALED_LEN];
        let (version, rest) = out.split_at_mut(1);
        let (key_id, rest) = rest.split_at_mut(4);
        let (nonce, ciphertext) = rest.split_at_mut(NONCE_LEN);
        version.copy_from_slice(&[VERSION]);
        key_id.copy_from_slice(&self.key_id.0.to_be_bytes());
        nonce.copy_from_slice(&self.nonce);
        ciphertext.copy_from_slice(&self.ciphertext);
        out
    }

    /// Reads the stored form written by [`to_bytes`](Self::to_bytes).
    ///
    /// # Errors
    /// [`InvalidSealedSecret`] if `bytes` is not 94 bytes starting with the
    /// format version 1. Tampering inside is found only when opening.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, InvalidSealedSecret> {
        let bytes: &[u8; SEALED_LEN] = bytes.try_into().map_err(|_| InvalidSealedSecret(()))?;
        let (version, rest) = bytes.split_at(1);
        let (key_id, rest) = rest.split_at(4);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        if version != [VERSION] {
            return Err(InvalidSealedSecret(()));
        }
        let err = |_| InvalidSealedSecret(());
        Ok(Self {
            key_id: KeyId(u32::from_be_bytes(key_id.try_into().map_err(err)?)),
            nonce: nonce.try_into().map_err(err)?,
            ciphertext: ciphertext.try_into().map_err(err)?,
        })
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSecret")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl serde::Serialize for SealedSecret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // 94 bytes encode to 126 characters.
        let mut buf = [0u8; 128];
        let len = URL_SAFE_NO_PAD
            .encode_slice(self.to_bytes(), &mut buf)
            .map_err(serde::ser::Error::custom)?;
        let text = buf
            .get(..len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .ok_or_else(|| serde::ser::Error::custom("sealed secret encoding failed"))?;
        s.serialize_str(text)
    }
}

impl<'de> serde::Deserialize<'de> for SealedSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut buf = [0u8; SEALED_LEN + 3];
        match URL_SAFE_NO_PAD.decode_slice(s.as_bytes(), &mut buf) {
            Ok(SEALED_LEN) => buf
                .get(..SEALED_LEN)
                .ok_or_else(|| serde::de::Error::custom(InvalidSealedSecret(())))
                .and_then(|b| Self::from_bytes(b).map_err(serde::de::Error::custom)),
            _ => Err(serde::de::Error::custom(InvalidSealedSecret(()))),
        }
    }
}

/// The host's sealing keys: the current one, which seals new secrets, and
/// older ones kept so that records sealed before a rotation still open.
///
/// Opening is the delivery path's one use of a stored secret, so the only
/// opening operation is [`authorization_header`](Self::authorization_header).
///
/// ```
/// use prets_destinations::{KeyId, Keyring, SealingKey};
/// use rand_core::UnwrapErr;
///
/// let mut rng = UnwrapErr(getrandom::SysRng);
/// let old = SealingKey::from_rng(KeyId::new(1), &mut rng);
/// let new = SealingKey::from_rng(KeyId::new(2), &mut rng);
/// let keyring = Keyring::new(new, [old])?;
/// assert_eq!(keyring.current().id(), KeyId::new(2));
/// # Ok::<(), prets_destinations::secret::DuplicateKeyId>(())
/// ```
#[derive(Debug)]
pub struct Keyring {
    current: SealingKey,
    previous: Vec<SealingKey>,
}

/// Two keys of a [`Keyring`] share an id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DuplicateKeyId(pub KeyId);

impl fmt::Display for DuplicateKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "two sealing keys share the key id {}", self.0)
    }
}

impl std::error::Error for DuplicateKeyId {}

impl Keyring {
    /// A keyring sealing with `current` and also opening with `previous`.
    ///
    /// # Errors
    /// [`DuplicateKeyId`] if two of the keys have the same id.
    pub fn new(
        current: SealingKey,
        previous: impl IntoIterator<Item = SealingKey>,
    ) -> Result<Self, DuplicateKeyId> {
        let mut ring = Self {
            current,
            previous: Vec::new(),
        };
        for key in previous {
            if ring.key(key.id).is_some() {
                return Err(DuplicateKeyId(key.id));
            }
            ring.previous.push(key);
        }
        Ok(ring)
    }

    /// The key that seals new secrets.
    #[must_use]
    pub const fn current(&self) -> &SealingKey {
        &self.current
    }

    fn key(&self, id: KeyId) -> Option<&SealingKey> {
        core::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
    }

    /// Opens `sealed`, sealed for `tenant` and `id`, with the keyring's key of
    /// its key id. Only the record layer calls it, to build a delivery's
    /// header after checking the secret against the record's digest.
    pub(crate) fn open(
        &self,
        tenant: &TenantId,
        id: DestinationId,
        sealed: &SealedSecret,
    ) -> Result<BearerSecret, OpenError> {
        let key = self.key(sealed.key_id).ok_or(OpenError {
            kind: OpenErrorKind::UnknownKey(sealed.key_id),
        })?;
        key.open(tenant, id, sealed)
            .map_err(|kind| OpenError { kind })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum OpenErrorKind {
    UnknownKey(KeyId),
    Unauthentic,
    DigestMismatch,
}

/// Why [`Keyring::authorization_header`](crate::secret::Keyring::authorization_header) could not open a record's secret.
/// Says nothing about the secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpenError {
    kind: OpenErrorKind,
}

impl OpenError {
    /// The secret opened, but to another secret than the record's digest names.
    pub(crate) const fn digest_mismatch() -> Self {
        Self {
            kind: OpenErrorKind::DigestMismatch,
        }
    }

    /// A stable machine code: `unknown_key`, `unauthentic` or `digest_mismatch`.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self.kind {
            OpenErrorKind::UnknownKey(_) => "unknown_key",
            OpenErrorKind::Unauthentic => "unauthentic",
            OpenErrorKind::DigestMismatch => "digest_mismatch",
        }
    }

    /// The key id no key of the keyring has, for `unknown_key`.
    #[must_use]
    pub const fn unknown_key_id(&self) -> Option<KeyId> {
        match self.kind {
            OpenErrorKind::UnknownKey(id) => Some(id),
            _ => None,
        }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            OpenErrorKind::UnknownKey(id) => write!(f, "no sealing key has the key id {id}"),
            OpenErrorKind::Unauthentic => {
                f.write_str("sealed secret does not authenticate for this tenant and destination")
            }
            OpenErrorKind::DigestMismatch => {
                f.write_str("sealed secret does not match the record's secret digest")
            }
        }
    }
}

impl std::error::Error for OpenError {}
