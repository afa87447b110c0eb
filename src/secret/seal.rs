//! Secrets at rest: the bearer secret and the signing secret sealed with
//! XChaCha20-Poly1305 under a host-provided key, bound to their tenant and
//! destination id. One sealing path serves both; each kind has its own
//! associated-data context, so one never opens as the other.

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::AeadInOut as _;
use chacha20poly1305::{KeyInit as _, Tag, XChaCha20Poly1305, XNonce};
use rand_core::CryptoRng;
use zeroize::{Zeroize as _, Zeroizing};

use crate::id::DestinationId;
use crate::secret::bearer::{BearerSecret, SECRET_LEN};
use crate::secret::signing::{SIGNING_KEY_BYTES, SigningSecret};
use crate::tenant::TenantId;

/// Format version of a sealed secret, first byte of its stored form.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Version and key id, before the nonce.
const HEADER_LEN: usize = 1 + 4;
/// Version, key id, nonce, the bearer secret's 49 encrypted bytes and tag.
const SEALED_LEN: usize = HEADER_LEN + NONCE_LEN + SECRET_LEN + TAG_LEN;
/// Version, key id, nonce, the signing key's 32 encrypted bytes and tag.
const SEALED_SIGNING_LEN: usize = HEADER_LEN + NONCE_LEN + SIGNING_KEY_BYTES + TAG_LEN;
/// Separates this use of the key from any other the host may make of it.
const BEARER_CONTEXT: &[u8] = b"prets-destinations/sealed-bearer-secret\0";
/// The same for signing secrets: a sealed bearer secret never opens as a
/// signing secret, nor the reverse.
const SIGNING_CONTEXT: &[u8] = b"prets-destinations/sealed-signing-secret\0";

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
        let mut text = Zeroizing::new([0u8; SECRET_LEN]);
        for (t, s) in text.iter_mut().zip(secret.expose_secret().as_bytes()) {
            *t = *s;
        }
        SealedSecret(self.seal_body(BEARER_CONTEXT, tenant, id, &text, rng))
    }

    /// Seals a signing secret for storage in `tenant`'s destination `id`,
    /// as [`seal`](Self::seal) does a bearer secret: a fresh random nonce,
    /// and the tenant, destination id and key id bound as associated data.
    /// What is sealed is the 32-byte key; opening gives back the same
    /// `whsec_` text.
    ///
    /// ```
    /// use prets_destinations::{DestinationId, KeyId, Keyring, SealingKey, TenantId, Timestamp};
    /// use prets_destinations::secret::{
    ///     SealedSigningSecret, SignedMessage, SigningSecret, webhook_signature,
    /// };
    /// use rand_core::UnwrapErr;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut rng = UnwrapErr(getrandom::SysRng);
    /// let keyring = Keyring::new(SealingKey::from_rng(KeyId::new(1), &mut rng), [])?;
    /// let now = Timestamp::from_unix_seconds(1_700_000_000).ok_or("time")?;
    /// let (tenant, id): (TenantId, _) = ("org_1".parse()?, DestinationId::generate(now, &mut rng));
    /// let secret = SigningSecret::from_rng(&mut rng);
    /// let sealed = keyring.current().seal_signing_secret(&tenant, id, &secret, &mut rng);
    /// // Stored as 77 bytes (or their base64url through serde) and read back.
    /// let stored = SealedSigningSecret::from_bytes(&sealed.to_bytes())?;
    /// let message = SignedMessage { webhook_id: "evt_1", timestamp: now, body: b"{}" };
    /// let header = keyring.webhook_signature(&tenant, id, &stored, [], &message)?;
    /// assert_eq!(header, webhook_signature(&message, &secret, []));
    /// # Ok(())
    /// # }
    /// ```
    pub fn seal_signing_secret<R: CryptoRng + ?Sized>(
        &self,
        tenant: &TenantId,
        id: DestinationId,
        secret: &SigningSecret,
        rng: &mut R,
    ) -> SealedSigningSecret {
        SealedSigningSecret(self.seal_body(SIGNING_CONTEXT, tenant, id, secret.key(), rng))
    }

    /// Encrypts `plaintext` under a fresh nonce, binding `context`, the key
    /// id, the tenant and the destination id.
    fn seal_body<R: CryptoRng + ?Sized, const N: usize>(
        &self,
        context: &[u8],
        tenant: &TenantId,
        id: DestinationId,
        plaintext: &[u8; N],
        rng: &mut R,
    ) -> Envelope<N> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut body = *plaintext;
        let aad = associated_data(context, self.id, tenant, id);
        // Encryption refuses only messages of 256 GiB or more; these are 49
        // or 32 bytes. Were it ever to fail, the buffer (which may still hold
        // the cleartext) is wiped: the record then fails to open, and never
        // holds the secret.
        let mut tag = [0u8; TAG_LEN];
        match self.cipher.encrypt_inout_detached(
            &XNonce::from(nonce),
            &aad,
            body.as_mut_slice().into(),
        ) {
            Ok(t) => tag = t.into(),
            Err(_) => body.zeroize(),
        }
        Envelope {
            key_id: self.id,
            nonce,
            body,
            tag,
        }
    }

    /// Decrypts `sealed` for `tenant`'s destination `id` under `context`.
    fn open_body<const N: usize>(
        &self,
        context: &[u8],
        tenant: &TenantId,
        id: DestinationId,
        sealed: &Envelope<N>,
    ) -> Result<Zeroizing<[u8; N]>, OpenErrorKind> {
        let mut body = Zeroizing::new(sealed.body);
        let aad = associated_data(context, sealed.key_id, tenant, id);
        self.cipher
            .decrypt_inout_detached(
                &XNonce::from(sealed.nonce),
                &aad,
                body.as_mut_slice().into(),
                &Tag::from(sealed.tag),
            )
            .map_err(|_| OpenErrorKind::Unauthentic)?;
        Ok(body)
    }

    fn open(
        &self,
        tenant: &TenantId,
        id: DestinationId,
        sealed: &SealedSecret,
    ) -> Result<BearerSecret, OpenErrorKind> {
        let body = self.open_body(BEARER_CONTEXT, tenant, id, &sealed.0)?;
        let text = core::str::from_utf8(body.as_slice()).map_err(|_| OpenErrorKind::Unauthentic)?;
        text.parse().map_err(|_| OpenErrorKind::Unauthentic)
    }

    fn open_signing_secret(
        &self,
        tenant: &TenantId,
        id: DestinationId,
        sealed: &SealedSigningSecret,
    ) -> Result<SigningSecret, OpenErrorKind> {
        let key = self.open_body(SIGNING_CONTEXT, tenant, id, &sealed.0)?;
        Ok(SigningSecret::from_key(key))
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

/// Context, format version, key id, tenant (length-prefixed) and destination
/// id, so no two different (context, key, tenant, id) give the same
/// associated data.
fn associated_data(context: &[u8], key_id: KeyId, tenant: &TenantId, id: DestinationId) -> Vec<u8> {
    let tenant = tenant.as_str().as_bytes();
    let mut aad = Vec::with_capacity(context.len() + 1 + 4 + 1 + tenant.len() + 26);
    aad.extend_from_slice(context);
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

/// `N` sealed bytes: the key id they were sealed under, the nonce, the
/// ciphertext and the tag. Stored as version, key id (big-endian), nonce,
/// ciphertext, tag.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Envelope<const N: usize> {
    key_id: KeyId,
    nonce: [u8; NONCE_LEN],
    body: [u8; N],
    tag: [u8; TAG_LEN],
}

impl<const N: usize> Envelope<N> {
    /// Length of the stored form.
    const LEN: usize = HEADER_LEN + NONCE_LEN + N + TAG_LEN;

    /// Writes the stored form into `out`, which is [`Self::LEN`] bytes.
    fn write(&self, out: &mut [u8]) {
        let key_id = self.key_id.0.to_be_bytes();
        let stored = core::iter::once(&VERSION)
            .chain(&key_id)
            .chain(&self.nonce)
            .chain(&self.body)
            .chain(&self.tag);
        for (o, b) in out.iter_mut().zip(stored) {
            *o = *b;
        }
    }

    /// Reads the stored form: exactly [`Self::LEN`] bytes starting with the
    /// format version.
    fn read(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let (&version, rest) = bytes.split_first()?;
        let (key_id, rest) = rest.split_at_checked(4)?;
        let (nonce, rest) = rest.split_at_checked(NONCE_LEN)?;
        let (body, tag) = rest.split_at_checked(N)?;
        if version != VERSION {
            return None;
        }
        Some(Self {
            key_id: KeyId(u32::from_be_bytes(key_id.try_into().ok()?)),
            nonce: nonce.try_into().ok()?,
            body: body.try_into().ok()?,
            tag: tag.try_into().ok()?,
        })
    }

    /// The stored form as unpadded base64url, through serde.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The longest stored form, 94 bytes, encodes to 126 characters.
        let mut bytes = [0u8; SEALED_LEN];
        let bytes = bytes
            .get_mut(..Self::LEN)
            .ok_or_else(|| serde::ser::Error::custom("sealed secret encoding failed"))?;
        self.write(bytes);
        let mut buf = [0u8; 128];
        let len = URL_SAFE_NO_PAD
            .encode_slice(bytes, &mut buf)
            .map_err(serde::ser::Error::custom)?;
        let text = buf
            .get(..len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .ok_or_else(|| serde::ser::Error::custom("sealed secret encoding failed"))?;
        s.serialize_str(text)
    }

    /// Reads what [`serialize`](Self::serialize) wrote; `invalid` is the
    /// error of the type it is for.
    fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
        invalid: impl fmt::Display,
    ) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        let mut buf = [0u8; SEALED_LEN + 3];
        match URL_SAFE_NO_PAD.decode_slice(s.as_bytes(), &mut buf) {
            Ok(len) if len == Self::LEN => buf.get(..len).and_then(Self::read),
            _ => None,
        }
        .ok_or_else(|| serde::de::Error::custom(invalid))
    }
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
pub struct SealedSecret(Envelope<SECRET_LEN>);

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
        self.0.key_id
    }

    /// The stored form: version, key id (big-endian), nonce, ciphertext, tag.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; SEALED_LEN] {
        let mut out = [0u8; SEALED_LEN];
        self.0.write(&mut out);
        out
    }

    /// Reads the stored form written by [`to_bytes`](Self::to_bytes).
    ///
    /// # Errors
    /// [`InvalidSealedSecret`] if `bytes` is not 94 bytes starting with the
    /// format version 1. Tampering inside is found only when opening.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, InvalidSealedSecret> {
        Envelope::read(bytes)
            .map(Self)
            .ok_or(InvalidSealedSecret(()))
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSecret")
            .field("key_id", &self.0.key_id)
            .finish_non_exhaustive()
    }
}

impl serde::Serialize for SealedSecret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for SealedSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Envelope::deserialize(d, InvalidSealedSecret(())).map(Self)
    }
}

/// A [`SigningSecret`] sealed for storage, as a [`SealedSecret`] is a bearer
/// secret: the [`KeyId`], a random nonce, and the XChaCha20-Poly1305
/// ciphertext of the 32-byte key and its tag, bound to the tenant and
/// destination id under its own context.
///
/// Stored form: [`to_bytes`](Self::to_bytes) (77 bytes, first byte a format
/// version) or, through serde, those bytes in unpadded base64url. Only a
/// [`Keyring`] opens it, and only into the `webhook-signature` header value
/// of a delivery ([`Keyring::webhook_signature`]).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SealedSigningSecret(Envelope<SIGNING_KEY_BYTES>);

/// Why bytes are not a [`SealedSigningSecret`]: wrong length or unknown
/// version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InvalidSealedSigningSecret(());

impl fmt::Display for InvalidSealedSigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sealed signing secret is not 77 bytes of format version 1")
    }
}

impl std::error::Error for InvalidSealedSigningSecret {}

impl SealedSigningSecret {
    /// Length of [`to_bytes`](Self::to_bytes).
    pub const LEN: usize = SEALED_SIGNING_LEN;

    /// The id of the key it was sealed under.
    #[must_use]
    pub const fn key_id(&self) -> KeyId {
        self.0.key_id
    }

    /// The stored form: version, key id (big-endian), nonce, ciphertext, tag.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; SEALED_SIGNING_LEN] {
        let mut out = [0u8; SEALED_SIGNING_LEN];
        self.0.write(&mut out);
        out
    }

    /// Reads the stored form written by [`to_bytes`](Self::to_bytes).
    ///
    /// # Errors
    /// [`InvalidSealedSigningSecret`] if `bytes` is not 77 bytes starting
    /// with the format version 1. Tampering inside is found only when opening.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, InvalidSealedSigningSecret> {
        Envelope::read(bytes)
            .map(Self)
            .ok_or(InvalidSealedSigningSecret(()))
    }
}

impl fmt::Debug for SealedSigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSigningSecret")
            .field("key_id", &self.0.key_id)
            .finish_non_exhaustive()
    }
}

impl serde::Serialize for SealedSigningSecret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for SealedSigningSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Envelope::deserialize(d, InvalidSealedSigningSecret(())).map(Self)
    }
}

/// The host's sealing keys: the current one, which seals new secrets, and
/// older ones kept so that records sealed before a rotation still open.
///
/// Opening is the delivery path's one use of a stored secret, so the only
/// opening operations are [`authorization_header`](Self::authorization_header)
/// for the bearer secret and [`webhook_signature`](Self::webhook_signature)
/// for signing secrets: each gives a header value, never the secret.
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
        self.key_of(sealed.key_id())?
            .open(tenant, id, sealed)
            .map_err(|kind| OpenError { kind })
    }

    /// Opens a sealed signing secret, as [`open`](Self::open) a bearer
    /// secret. Only [`webhook_signature`](Self::webhook_signature) calls it.
    pub(crate) fn open_signing_secret(
        &self,
        tenant: &TenantId,
        id: DestinationId,
        sealed: &SealedSigningSecret,
    ) -> Result<SigningSecret, OpenError> {
        self.key_of(sealed.key_id())?
            .open_signing_secret(tenant, id, sealed)
            .map_err(|kind| OpenError { kind })
    }

    fn key_of(&self, id: KeyId) -> Result<&SealingKey, OpenError> {
        self.key(id).ok_or(OpenError {
            kind: OpenErrorKind::UnknownKey(id),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum OpenErrorKind {
    UnknownKey(KeyId),
    Unauthentic,
    DigestMismatch,
}

/// Why [`Keyring::authorization_header`](crate::secret::Keyring::authorization_header)
/// or [`Keyring::webhook_signature`](crate::secret::Keyring::webhook_signature)
/// could not open a record's secret. Says nothing about the secret.
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
