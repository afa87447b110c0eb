//! The sealing-key file: the keys that seal destination secrets at rest.
//!
//! One key a line, `<key id> <64 hex digits>`; the first line is the current
//! key (it seals new secrets), the others only open secrets sealed under them,
//! which is how a key is rotated. Blank lines and lines starting with `#` are
//! ignored. The file is created with mode 0600.

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::Path;

use prets_destinations::rand_core::Rng as _;
use prets_destinations::{KeyId, Keyring, SealingKey};
use zeroize::Zeroizing;

/// Why the sealing-key file could not be read or written.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading or creating the file failed.
    Io(io::Error),
    /// A line is not `<key id> <64 hex digits>` (its number is given, never
    /// its text).
    Malformed {
        /// The 1-based line number.
        line: usize,
    },
    /// The file holds no key.
    Empty,
    /// Two keys share an id.
    DuplicateKeyId(KeyId),
    /// The file can be read by its group or by others (its mode allows more
    /// than `0600`).
    TooOpen,
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(_) => f.write_str("cannot read or create the sealing-key file"),
            Self::Malformed { line } => write!(
                f,
                "sealing-key file line {line} is not `<key id> <64 hex digits>`"
            ),
            Self::Empty => f.write_str("the sealing-key file holds no key"),
            Self::DuplicateKeyId(id) => write!(f, "the sealing-key file has key id {id} twice"),
            Self::TooOpen => f.write_str(
                "the sealing-key file can be read by its group or others; `chmod 600` it",
            ),
        }
    }
}

impl std::error::Error for KeyFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Reads the keyring from the file at `path`.
///
/// # Errors
/// If the file cannot be read, its group or others may read it, a line is
/// malformed, it holds no key, or two keys share an id.
pub(crate) fn load(path: &Path) -> Result<Keyring, KeyFileError> {
    if readable_by_others(path) {
        return Err(KeyFileError::TooOpen);
    }
    let text = Zeroizing::new(fs::read_to_string(path).map_err(KeyFileError::Io)?);
    parse(&text)
}

/// Parses the file's text into a keyring.
///
/// # Errors
/// As [`load`], but for the text.
pub(crate) fn parse(text: &str) -> Result<Keyring, KeyFileError> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let malformed = KeyFileError::Malformed { line: n + 1 };
        let (id, key) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| KeyFileError::Malformed { line: n + 1 })?;
        let id: u32 = id
            .parse()
            .map_err(|_| KeyFileError::Malformed { line: n + 1 })?;
        let key = Zeroizing::new(crate::hex::decode_32(key.trim()).ok_or(malformed)?);
        keys.push(SealingKey::new(KeyId::new(id), &key));
    }
    let mut keys = keys.into_iter();
    let current = keys.next().ok_or(KeyFileError::Empty)?;
    Keyring::new(current, keys).map_err(|e| KeyFileError::DuplicateKeyId(e.0))
}

/// Creates a new key file at `path` (which must not exist) holding one fresh
/// random key with id 1, readable and writable by the owner only, and
/// returns its keyring.
///
/// # Errors
/// If the file exists or cannot be written.
pub(crate) fn create(path: &Path) -> Result<Keyring, KeyFileError> {
    let mut key = Zeroizing::new([0u8; 32]);
    prets_destinations::os_rng().fill_bytes(key.as_mut_slice());
    let mut text = Zeroizing::new(String::from(
        "# prets-destinations-server sealing keys: `<key id> <64 hex digits>`, the\n\
         # first line seals new secrets. Keep this file secret and backed up with\n\
         # the database: without it the stored secrets cannot be opened.\n1 ",
    ));
    crate::hex::encode_into(key.as_slice(), &mut text);
    text.push('\n');
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(KeyFileError::Io)?;
    file.write_all(text.as_bytes()).map_err(KeyFileError::Io)?;
    file.sync_all().map_err(KeyFileError::Io)?;
    Keyring::new(SealingKey::new(KeyId::new(1), &key), [])
        .map_err(|e| KeyFileError::DuplicateKeyId(e.0))
}

/// Whether the file at `path` can be read by anyone but its owner (always
/// `false` off Unix).
#[must_use]
pub(crate) fn readable_by_others(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_is_current_and_comments_are_skipped() {
        let text = format!("# keys\n\n7 {}\n3 {}\n", "ab".repeat(32), "CD".repeat(32));
        let ring = parse(&text).unwrap();
        assert_eq!(ring.current().id(), KeyId::new(7));
    }

    #[test]
    fn malformed_lines_are_named_by_number_without_their_text() {
        let secret_looking = "ab".repeat(31);
        for (text, line) in [
            (format!("1 {secret_looking}"), 1),
            (format!("# c\nx {}", "ab".repeat(32)), 2),
            (format!("1 {}\n2", "ab".repeat(32)), 2),
            (format!("-1 {}", "ab".repeat(32)), 1),
        ] {
            let err = parse(&text).err().unwrap();
            assert!(
                matches!(err, KeyFileError::Malformed { line: l } if l == line),
                "{text:?}"
            );
            assert!(!err.to_string().contains(&secret_looking));
        }
        assert!(matches!(parse("# nothing\n"), Err(KeyFileError::Empty)));
        let dup = format!("1 {0}\n1 {0}\n", "ab".repeat(32));
        assert!(
            matches!(parse(&dup), Err(KeyFileError::DuplicateKeyId(id)) if id == KeyId::new(1))
        );
    }

    #[test]
    fn created_file_is_private_and_loads_back() {
        let dir = std::env::temp_dir().join(format!(
            "prets-keyfile-{}-{:x}",
            std::process::id(),
            prets_destinations::os_rng().next_u64()
        ));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        let created = create(&path).unwrap();
        assert!(!readable_by_others(&path));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.current().id(), created.current().id());
        assert!(
            matches!(create(&path), Err(KeyFileError::Io(_))),
            "never overwrites"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            for mode in [0o640, 0o604, 0o644, 0o660] {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
                assert!(
                    matches!(load(&path), Err(KeyFileError::TooOpen)),
                    "{mode:o}"
                );
            }
            fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
            assert!(load(&path).is_ok());
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
