//! `--database`: a SQLite file or a PostgreSQL connection URL.

use std::ffi::OsStr;
use std::fmt;
use std::path::PathBuf;

/// Where the server keeps its data: `--database`.
///
/// A value starting with `postgres://` or `postgresql://` (the scheme in
/// any case) selects PostgreSQL; a libpq `key=value` connection string is
/// refused ([`Database::parse`]); anything else is the path of a SQLite
/// file. Its `Debug` never shows a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// An embedded SQLite database file, created on first start.
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by every node.
    Postgres(PgUrl),
}

impl Database {
    /// Reads a `--database` value: see [`Database`].
    ///
    /// # Errors
    /// If `value` looks like a libpq `key=value` connection string (`host=…
    /// password=…`): a word that is a libpq keyword followed by `=`, such as
    /// `host=`, `dbname=`, `user=` or `password=`. Taken as a file name, its
    /// text (password included) would be shown wherever the path is; a
    /// SQLite file really named so can be given as `./host=…`. The error
    /// never repeats the value.
    pub fn parse(value: &OsStr) -> Result<Self, ConninfoRefused> {
        let Some(text) = value.to_str() else {
            return Ok(Self::Sqlite(PathBuf::from(value)));
        };
        if let Some(url) = PgUrl::parse(text) {
            return Ok(Self::Postgres(url));
        }
        if looks_like_conninfo(text) {
            return Err(ConninfoRefused);
        }
        Ok(Self::Sqlite(PathBuf::from(value)))
    }
}

/// A `--database` value that looks like a libpq `key=value` connection
/// string, which the server does not take: see [`Database::parse`]. Its
/// text names no part of the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConninfoRefused;

impl fmt::Display for ConninfoRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the database looks like a libpq key=value connection string (host=... password=...), \
             which is not supported: give a PostgreSQL URL instead \
             (postgres://user:password@host:5432/dbname), or start a SQLite file name with ./",
        )
    }
}

impl std::error::Error for ConninfoRefused {}

/// libpq's connection keywords (PostgreSQL 17's list).
const LIBPQ_KEYS: &[&str] = &[
    "application_name",
    "channel_binding",
    "client_encoding",
    "connect_timeout",
    "dbname",
    "fallback_application_name",
    "gssdelegation",
    "gssencmode",
    "gsslib",
    "host",
    "hostaddr",
    "keepalives",
    "keepalives_count",
    "keepalives_idle",
    "keepalives_interval",
    "krbsrvname",
    "load_balance_hosts",
    "options",
    "passfile",
    "password",
    "port",
    "replication",
    "require_auth",
    "requirepeer",
    "requiressl",
    "service",
    "sslcert",
    "sslcertmode",
    "sslcompression",
    "sslcrl",
    "sslcrldir",
    "sslkey",
    "sslmode",
    "sslnegotiation",
    "sslpassword",
    "sslrootcert",
    "sslsni",
    "ssl_max_protocol_version",
    "ssl_min_protocol_version",
    "target_session_attrs",
    "tcp_user_timeout",
    "user",
];

/// Whether some whitespace-separated word of `text` is a libpq keyword
/// (any case) directly followed by `=`, or is one and the next word starts
/// with `=` (libpq allows spaces around `=`).
fn looks_like_conninfo(text: &str) -> bool {
    let is_key = |word: &str| LIBPQ_KEYS.iter().any(|k| k.eq_ignore_ascii_case(word));
    let mut words = text.split_whitespace().peekable();
    while let Some(word) = words.next() {
        if let Some((key, _)) = word.split_once('=') {
            if is_key(key) {
                return true;
            }
        } else if is_key(word) && words.peek().is_some_and(|next| next.starts_with('=')) {
            return true;
        }
    }
    false
}

impl From<PathBuf> for Database {
    fn from(path: PathBuf) -> Self {
        Self::Sqlite(path)
    }
}

impl From<PgUrl> for Database {
    fn from(url: PgUrl) -> Self {
        Self::Postgres(url)
    }
}

/// A PostgreSQL connection URL (`postgres://user:password@host:port/db?…`).
///
/// Its [`Display`](fmt::Display) and `Debug` replace the password (in the
/// user information and in a `password` query parameter) with `***`; only
/// [`expose`](Self::expose) gives the whole text, to connect with.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl(String);

impl PgUrl {
    /// `text` as a PostgreSQL URL, if its scheme is `postgres` or
    /// `postgresql` (any case; given back in lower case). The rest is
    /// checked when connecting.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let (scheme, rest) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "postgres" && scheme != "postgresql" {
            return None;
        }
        Some(Self(format!("{scheme}://{rest}")))
    }

    /// The whole URL, password included: for connecting only.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return f.write_str("postgres://***");
        };
        write!(f, "{scheme}://")?;
        // Erring towards hiding too much: with a `:` before the last `@`,
        // everything from the first `:` to the last `@` may be a password
        // (one with an unencoded `@` or `/` included).
        let rest = match rest.rsplit_once('@') {
            Some((userinfo, after)) if userinfo.contains(':') => {
                let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
                write!(f, "{user}:***@")?;
                after
            }
            _ => rest,
        };
        // Then every `password=` parameter, wherever a `?` or `&` starts one.
        for piece in rest.split_inclusive(['?', '&']) {
            let (pair, delimiter) = match piece.strip_suffix(['?', '&']) {
                Some(pair) => (pair, piece.get(pair.len()..).unwrap_or_default()),
                None => (piece, ""),
            };
            match pair.split_once('=') {
                Some((key, _)) if is_password_key(key) => write!(f, "{key}=***")?,
                _ => f.write_str(pair)?,
            }
            f.write_str(delimiter)?;
        }
        Ok(())
    }
}

/// Whether a query key is `password`, possibly percent-encoded (the driver
/// decodes keys).
fn is_password_key(key: &str) -> bool {
    let mut decoded = Vec::with_capacity(key.len());
    let bytes = key.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(value)) => {
                decoded.push(value);
                i += 3;
            }
            (b'+', _) => {
                decoded.push(b' ');
                i += 1;
            }
            _ => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    decoded.eq_ignore_ascii_case(b"password")
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgUrl({self})")
    }
}

/// Parses `--database` values; refuses a libpq connection string with an
/// error that never echoes the value (clap's own message would quote it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct DatabaseParser;

impl clap::builder::TypedValueParser for DatabaseParser {
    type Value = Database;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Database, clap::Error> {
        Database::parse(value).map_err(|e| {
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("invalid --database (PRETS_DATABASE): {e}\n"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(text: &str) -> PgUrl {
        match Database::parse(OsStr::new(text)) {
            Ok(Database::Postgres(url)) => url,
            other => panic!("{text} read as {other:?}"),
        }
    }

    #[test]
    fn postgres_schemes_in_any_case_select_postgres_and_the_rest_are_files() {
        for text in [
            "postgres://h/db",
            "postgresql://h/db",
            "POSTGRES://h/db",
            "PostgreSQL://u@h:5433/db",
        ] {
            let url = pg(text);
            assert!(
                url.expose().starts_with("postgres://")
                    || url.expose().starts_with("postgresql://"),
                "{text}: {}",
                url.expose()
            );
        }
        assert_eq!(pg("POSTGRES://h/db").expose(), "postgres://h/db");
        for text in [
            "prets.sqlite3",
            "/var/lib/prets/db",
            "postgres:/h/db",
            "postgres",
            "./postgres://x",
            "mysql://h/db",
            "postgresx://h/db",
        ] {
            assert_eq!(
                Database::parse(OsStr::new(text)),
                Ok(Database::Sqlite(PathBuf::from(text))),
                "{text}"
            );
        }
    }

    #[test]
    fn libpq_connection_strings_are_refused_and_files_with_equals_signs_are_not() {
        for text in [
            "host=db.internal dbname=prets user=app password=hunter2",
            "host=localhost",
            "password=hunter2",
            "  dbname=prets",
            "dbname = prets password = hunter2",
            "sslmode=disable host=h password='hunter 2'",
            "HOST=db PASSWORD=hunter2",
            "port=5432\tuser=app",
            "service=prets",
            "/var/lib/prets.sqlite3 password=hunter2",
        ] {
            let err = Database::parse(OsStr::new(text)).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(shown.contains("postgres://"), "{shown}");
            for part in ["hunter", "db.internal", "prets user", "app"] {
                assert!(!shown.contains(part), "{part} in {shown}");
            }
        }
        for text in [
            "./host=db.sqlite3",
            "/var/lib/prets/host=db",
            "a=b.sqlite3",
            "data/version=2.sqlite3",
            "my db.sqlite3",
            "hosts.sqlite3",
            "host",
            "/data/x = y.sqlite3",
            "passwords=kept.sqlite3",
        ] {
            assert_eq!(
                Database::parse(OsStr::new(text)),
                Ok(Database::Sqlite(PathBuf::from(text))),
                "{text}"
            );
        }
    }

    #[test]
    fn passwords_never_show_in_display_or_debug() {
        for (text, shown) in [
            (
                "postgres://app:hunter2@db.internal:5432/prets",
                "postgres://app:***@db.internal:5432/prets",
            ),
            ("postgres://app:hun:ter@2@h/db", "postgres://app:***@h/db"),
            (
                "postgres://app:p/w?x@h/db?sslmode=disable",
                "postgres://app:***@h/db?sslmode=disable",
            ),
            (
                "postgres://h/db?user=a@b&password=hunter2",
                "postgres://h/db?user=a@b&password=***",
            ),
            (
                "postgres://h:5432/db?user=a@b&password=hunter2",
                "postgres://h:***@b&password=***",
            ),
            (
                "postgresql://h/db?user=app&password=hunter2&sslmode=disable",
                "postgresql://h/db?user=app&password=***&sslmode=disable",
            ),
            (
                "postgres://h/db?PassWord=hunter2",
                "postgres://h/db?PassWord=***",
            ),
            (
                "postgres://h/db?pass%77ord=hunter2",
                "postgres://h/db?pass%77ord=***",
            ),
            ("postgres://app@h/db", "postgres://app@h/db"),
        ] {
            let url = pg(text);
            assert_eq!(url.to_string(), shown, "{text}");
            let debug = format!("{:?} {:?}", url, Database::Postgres(url.clone()));
            assert!(!debug.contains("hunter2"), "{debug}");
            assert_eq!(url.expose(), text);
        }
        // A malformed one still hides what may be a password.
        let url = pg("postgres://app:hunter2@");
        assert!(!url.to_string().contains("hunter2"));
    }
}
