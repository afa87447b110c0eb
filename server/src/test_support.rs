//! Helpers for the server's own tests (feature `test-support`): databases
//! as an older release left them, made by the server's own migrations. Not
//! for applications.

use std::path::Path;

use crate::sqlite::{SqliteError, create_at_version, schema_version};

/// Creates the SQLite database at `path` as
/// [`SqliteRepo::open`](crate::SqliteRepo::open) does (file mode, WAL), and
/// applies the first `version` of the server's migrations, recorded in
/// `user_version` as `open` records them, and no more: the file a release
/// whose schema was `version` left. A later `open` migrates it the rest of
/// the way.
///
/// # Errors
/// If the file cannot be created or a migration fails.
///
/// # Panics
/// If `version` is above [`schema_version`].
pub fn sqlite_at_version(path: &Path, version: usize) -> Result<(), SqliteError> {
    assert!(
        version <= schema_version(),
        "schema version {version} does not exist"
    );
    create_at_version(path, version)
}
