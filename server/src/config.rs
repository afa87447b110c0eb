//! Command-line flags and environment variables.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;
use prets_destinations::delivery::{DisablePolicy, RetrySchedule};
use prets_destinations::limits::{Quotas, Rate};
use prets_destinations::{HostPolicy, TenantId};

use crate::database::{Database, DatabaseParser};
use crate::delivery::{DeliveryConfig, parse_root_certificates};
use crate::retention::{Retention, RetentionConfigError};

/// The server's configuration: every flag also reads an environment variable.
///
/// With no configuration at all the server starts on `127.0.0.1:8080` with
/// the database `prets-destinations.sqlite3` in the working directory; on
/// that first start it creates the database, a sealing-key file beside it
/// (mode 0600) and a demo organization whose API token it prints once.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "prets-destinations-server",
    version,
    about = "The event destinations API (POST /v1/events/destinations) on an embedded SQLite database or on PostgreSQL",
    long_about = "The event destinations API (POST /v1/events/destinations) on an embedded SQLite database, \
                  or on PostgreSQL (--database postgres://…) for several nodes behind a load balancer.\n\n\
                  With no configuration it listens on 127.0.0.1:8080 with the database \
                  prets-destinations.sqlite3 in the working directory; a first start creates the \
                  database, a sealing-key file beside it (mode 0600) and a demo organization whose \
                  API token it prints once. Every flag also reads the environment variable shown.",
    after_help = "API tokens are configured as digests: `printf %s \"$TOKEN\" | sha256sum` gives the \
                  hex digest of a token. When no token is configured, the server accepts the tokens \
                  stored in its database, and on a first start with an empty database creates a demo \
                  organization `demo` and prints its token once."
)]
pub struct Config {
    /// Address and port to listen on.
    #[arg(long, env = "PRETS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The SQLite database file, created on first start; or a PostgreSQL
    /// URL (`postgres://user:password@host:5432/db`, scheme `postgres` or
    /// `postgresql`) for several nodes on one database, which then requires
    /// `--sealing-key-file`. The password is never logged.
    #[arg(
        long,
        env = "PRETS_DATABASE",
        value_name = "PATH_OR_URL",
        default_value = "prets-destinations.sqlite3",
        hide_env_values = true,
        value_parser = DatabaseParser
    )]
    pub database: Database,

    /// Most connections each node keeps open to PostgreSQL (ignored with
    /// SQLite). A request waits at most 5 s for one, then is answered `503`.
    #[arg(long, env = "PRETS_DATABASE_POOL_SIZE", default_value = "16", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_pool_size: u32,

    /// The sealing-key file (`<key id> <64 hex digits>` per line, first line
    /// current). Default with SQLite: the database path with `.sealing-key`
    /// appended, created with a fresh key (mode 0600) if missing. A file
    /// named here explicitly must exist. Required with PostgreSQL: every
    /// node names the same key file.
    #[arg(long, env = "PRETS_SEALING_KEY_FILE", value_name = "PATH")]
    pub sealing_key_file: Option<PathBuf>,

    /// An accepted API token as `ORGANIZATION=SHA256_HEX` (the SHA-256 of the
    /// token's text, in hex). Repeat the flag, or separate entries with
    /// commas in the variable. When given, only these tokens are accepted and
    /// no demo organization is created.
    #[arg(
        long = "api-token",
        env = "PRETS_API_TOKENS",
        value_name = "ORGANIZATION=SHA256_HEX",
        value_delimiter = ',',
        value_parser = TokenEntryParser
    )]
    pub api_tokens: Vec<TokenEntry>,

    /// Keep destinations in memory instead of SQLite (lost on exit): for
    /// trying the API and for comparing in the load benchmark. Without
    /// `--api-token` a demo token is minted and printed on every start; without
    /// `--sealing-key-file` a fresh key is used.
    #[arg(long, env = "PRETS_MEMORY")]
    pub memory: bool,

    /// How long a client may take to send a request's start line and headers,
    /// counted from when the server starts waiting for them (the connection's
    /// start, or the end of the previous response: so it is also how long a
    /// kept-alive connection may sit idle); a connection that takes longer is
    /// closed. `10s`, `500ms` or plain seconds.
    #[arg(long, env = "PRETS_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// How long a client may take to send a request's body, counted from the
    /// end of its headers; past it the request is answered 408 and the
    /// connection closed.
    #[arg(long, env = "PRETS_BODY_READ_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,

    /// How long a connection may make no progress (no byte read or written)
    /// before it is closed: a client that stops sending, or stops reading its
    /// response, mid-request.
    #[arg(long, env = "PRETS_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Most connections served at once. A connection past it is answered
    /// `503` (a problem, `Connection: close`) and closed. The process's open
    /// file limit (`ulimit -n`) must exceed it, with room for the database.
    #[arg(long, env = "PRETS_MAX_CONNECTIONS", default_value = "4096", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// A private, loopback or otherwise non-public network that deliveries
    /// may reach anyway, as a CIDR (`10.20.0.0/16`) or an address. Repeat the
    /// flag, or separate entries with commas in the variable. Default: none,
    /// only public addresses are delivered to. Logged as a warning at start.
    #[arg(
        long = "allow-private-destinations",
        env = "PRETS_ALLOW_PRIVATE_DESTINATIONS",
        value_name = "CIDR",
        value_delimiter = ',',
        value_parser = parse_cidr
    )]
    pub allow_private_destinations: Vec<IpNet>,

    /// A network deliveries never reach, even when public or allowed above,
    /// as a CIDR or an address. Repeatable; default: none.
    #[arg(
        long = "deny-destinations",
        env = "PRETS_DENY_DESTINATIONS",
        value_name = "CIDR",
        value_delimiter = ',',
        value_parser = parse_cidr
    )]
    pub deny_destinations: Vec<IpNet>,

    /// A PEM file of root certificates trusted for deliveries besides the
    /// web PKI roots (a private CA). Repeatable; default: none.
    #[arg(
        long = "delivery-root-cert",
        env = "PRETS_DELIVERY_ROOT_CERTS",
        value_name = "PEM_FILE",
        value_delimiter = ','
    )]
    pub delivery_root_certs: Vec<PathBuf>,

    /// The waits between delivery attempts: steps separated by commas, each a
    /// whole number and `s`, `m`, `h` or `d`, never shorter than the one
    /// before, at most 7 days each and 32 in all. After a failed attempt with
    /// no step left the delivery has failed.
    #[arg(
        long,
        env = "PRETS_RETRY_SCHEDULE",
        default_value = "5s,5m,30m,2h,5h,10h,10h"
    )]
    pub retry_schedule: RetrySchedule,

    /// How long a destination must have failed continuously (and at least 3
    /// attempts) before it is disabled: `5d`, `12h`, `90m` or `30s`.
    #[arg(long, env = "PRETS_DISABLE_AFTER", default_value = "5d", value_parser = parse_span)]
    pub disable_after: Duration,

    /// The most one delivery attempt may take, from resolving the name to
    /// the answer's status.
    #[arg(long, env = "PRETS_DELIVERY_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub delivery_timeout: Duration,

    /// The most resolving, connecting and the TLS handshake of one attempt
    /// may take.
    #[arg(long, env = "PRETS_DELIVERY_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub delivery_connect_timeout: Duration,

    /// Most delivery attempts in flight at once.
    #[arg(long, env = "PRETS_DELIVERY_CONCURRENCY", default_value = "64", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub delivery_concurrency: u32,

    /// Most delivery attempts in flight at once to one destination, so that
    /// one destination's backlog or slow receiver holds at most this many of
    /// the `--delivery-concurrency` slots. A destination whose last attempt
    /// failed gets 1, and the failing ones together a quarter of the slots.
    #[arg(long, env = "PRETS_DESTINATION_CONCURRENCY", default_value = "4", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub destination_concurrency: u32,

    /// Deliveries the worker holds claimed for each attempt it may have in
    /// flight, in all and per destination. Those beyond the ones in flight
    /// are sent the moment an answer frees a slot, without waiting for the
    /// answer's write and a claim. Attempts in flight stay within
    /// `--delivery-concurrency` and `--destination-concurrency` on each
    /// node; nodes sharing a database send one destination at most
    /// `--destination-concurrency` × this together. 1 claims only what can
    /// be sent at once.
    #[arg(long, env = "PRETS_DELIVERY_LOOKAHEAD", default_value = "4", value_parser = clap::value_parser!(u32).range(1..=16))]
    pub delivery_lookahead: u32,

    /// How long a connection to a destination may sit unused in the
    /// delivery pool before it is closed. Kept shorter than the common
    /// receivers' keep-alive (5 s in Node.js and Apache), so a kept
    /// connection is rarely one the receiver is closing.
    #[arg(long, env = "PRETS_DELIVERY_POOL_IDLE_TIMEOUT", default_value = "4s", value_parser = parse_duration)]
    pub delivery_pool_idle_timeout: Duration,

    /// Most unused connections kept open per destination host and port for
    /// the next attempt; the others close when their attempt ends. 0 keeps
    /// none: every attempt opens its own connection.
    #[arg(long, env = "PRETS_DELIVERY_POOL_MAX_IDLE_PER_HOST", default_value = "2", value_parser = clap::value_parser!(u32).range(0..=4096))]
    pub delivery_pool_max_idle_per_host: u32,

    /// How long attempt records are kept (by the time the attempt started):
    /// `30d`, `12h`, `90m` or `30s`. Never shorter than `--event-retention`,
    /// so a retained event's successful attempts are kept with it.
    #[arg(long, env = "PRETS_ATTEMPT_RETENTION", default_value = "30d", value_parser = parse_span)]
    pub attempt_retention: Duration,

    /// How long an event is kept once none of its deliveries is pending (by
    /// the time it was published): `7d`, `12h`, `90m` or `30s`. Reading
    /// events, resend and recover cover what is kept; an event with a
    /// delivery still pending is never removed.
    #[arg(long, env = "PRETS_EVENT_RETENTION", default_value = "7d", value_parser = parse_span)]
    pub event_retention: Duration,

    /// How often the retention sweeper runs (each run removes what is past
    /// the retentions in batches of 1,000, pausing between batches).
    #[arg(long, env = "PRETS_RETENTION_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub retention_interval: Duration,

    /// Most events each organization may publish per second on this node
    /// (`POST /v1/events`; each resend and recover counts as one), with
    /// bursts of as many at once after a quiet second; past it `429
    /// rate_limited` with `Retry-After`. With several
    /// PostgreSQL nodes each keeps its own count: an organization may
    /// publish this many times the number of nodes. 0: no limit.
    #[arg(long, env = "PRETS_PUBLISH_RATE_LIMIT", default_value = "500", value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub publish_rate_limit: u32,

    /// Most test events (`POST /v1/events/destinations/{id}/test`) each
    /// organization may send per second on this node, with bursts of as
    /// many; as `--publish-rate-limit`. 0: no limit.
    #[arg(long, env = "PRETS_TEST_SEND_RATE_LIMIT", default_value = "5", value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub test_send_rate_limit: u32,

    /// Most destinations an organization may have; a create past it is
    /// answered `403 quota_exceeded`. Counted in the create's own write, so
    /// concurrent creates on any node never pass it.
    #[arg(long, env = "PRETS_MAX_DESTINATIONS", default_value = "1000", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_destinations: u32,

    /// Most deliveries an organization may have pending (queued or in
    /// flight); a publish, test event or resend whose deliveries would pass
    /// it is answered `429 queue_full` with `Retry-After`, and queues
    /// nothing; a recover queues up to it.
    #[arg(long, env = "PRETS_MAX_PENDING_DELIVERIES", default_value = "100000", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pending_deliveries: u32,

    /// Serve the API and queue deliveries, but send none: for nodes that only
    /// take requests while other nodes on the same PostgreSQL database
    /// deliver. A node started with it never claims a delivery.
    #[arg(long, env = "PRETS_NO_DELIVERY")]
    pub no_delivery: bool,

    /// Address and port of a second listener serving `GET /metrics` in the
    /// Prometheus text format, without a token: bind it where only the
    /// scraper reaches. Off when not given.
    #[arg(long, env = "PRETS_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// Log filter (`tracing` env-filter syntax), e.g. `info` or
    /// `prets_destinations_server=debug`.
    #[arg(long, env = "PRETS_LOG", default_value = "info")]
    pub log: String,
}

impl Config {
    /// The default configuration for a database at `database` (as if started
    /// with only `--database`), listening on `listen`.
    #[must_use]
    pub fn new(database: PathBuf, listen: SocketAddr) -> Self {
        let delivery = DeliveryConfig::default();
        Self {
            listen,
            database: Database::Sqlite(database),
            database_pool_size: DATABASE_POOL_SIZE,
            sealing_key_file: None,
            api_tokens: Vec::new(),
            memory: false,
            log: "info".into(),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            allow_private_destinations: Vec::new(),
            deny_destinations: Vec::new(),
            delivery_root_certs: Vec::new(),
            retry_schedule: delivery.retry_schedule,
            disable_after: delivery.disable.disable_after,
            delivery_timeout: delivery.timeout,
            delivery_connect_timeout: delivery.connect_timeout,
            delivery_concurrency: delivery.concurrency,
            destination_concurrency: delivery.destination_concurrency,
            delivery_lookahead: 4,
            delivery_pool_idle_timeout: delivery.pool_idle_timeout,
            delivery_pool_max_idle_per_host: delivery.pool_max_idle_per_host,
            attempt_retention: Retention::default().attempts,
            event_retention: Retention::default().events,
            retention_interval: Retention::default().interval,
            publish_rate_limit: 500,
            test_send_rate_limit: 5,
            max_destinations: 1000,
            max_pending_deliveries: 100_000,
            no_delivery: false,
            metrics_listen: None,
        }
    }

    /// The store's quotas: `--max-destinations` and
    /// `--max-pending-deliveries`.
    #[must_use]
    pub fn quotas(&self) -> Quotas {
        let n = |v: u32| usize::try_from(v).unwrap_or(usize::MAX);
        Quotas {
            max_destinations: n(self.max_destinations),
            max_pending_deliveries: n(self.max_pending_deliveries),
        }
    }

    /// The publish rate per organization, bursts of one second's worth;
    /// `None` for no limit (`--publish-rate-limit 0`).
    #[must_use]
    pub fn publish_rate(&self) -> Option<Rate> {
        per_second(self.publish_rate_limit)
    }

    /// The test-event rate per organization, as [`publish_rate`](Self::publish_rate).
    #[must_use]
    pub fn test_send_rate(&self) -> Option<Rate> {
        per_second(self.test_send_rate_limit)
    }

    /// The host policy of `--allow-private-destinations` and
    /// `--deny-destinations`, which create and update judge a literal-IP
    /// URL by, and deliveries every resolved address.
    #[must_use]
    pub fn host_policy(&self) -> HostPolicy {
        let mut policy = HostPolicy::new();
        for net in &self.allow_private_destinations {
            policy = policy.allow(*net);
        }
        for net in &self.deny_destinations {
            policy = policy.deny(*net);
        }
        policy
    }

    /// The delivery settings: the host policy built from the allow and deny
    /// lists, the extra root certificates read and parsed, the schedule and
    /// the limits.
    ///
    /// # Errors
    /// [`DeliveryConfigError`] naming the root-certificate file that is
    /// missing, unreadable or holds no certificate.
    pub fn delivery(&self) -> Result<DeliveryConfig, DeliveryConfigError> {
        let policy = self.host_policy();
        let mut root_certificates = Vec::new();
        for path in &self.delivery_root_certs {
            let error = |reason: String| DeliveryConfigError {
                path: path.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| error(e.kind().to_string()))?;
            root_certificates.extend(parse_root_certificates(&pem).map_err(error)?);
        }
        Ok(DeliveryConfig {
            policy,
            root_certificates,
            retry_schedule: self.retry_schedule.clone(),
            disable: DisablePolicy {
                disable_after: self.disable_after,
                ..DisablePolicy::default()
            },
            timeout: self.delivery_timeout,
            connect_timeout: self.delivery_connect_timeout,
            concurrency: self.delivery_concurrency,
            destination_concurrency: self.destination_concurrency,
            pool_idle_timeout: self.delivery_pool_idle_timeout,
            pool_max_idle_per_host: self.delivery_pool_max_idle_per_host,
        })
    }

    /// The retention sweeper's settings.
    ///
    /// # Errors
    /// If `--attempt-retention` is shorter than `--event-retention`.
    pub fn retention(&self) -> Result<Retention, RetentionConfigError> {
        if self.attempt_retention < self.event_retention {
            return Err(RetentionConfigError);
        }
        Ok(Retention {
            attempts: self.attempt_retention,
            events: self.event_retention,
            interval: self.retention_interval,
        })
    }

    /// The sealing-key file in effect, and whether it is the default one;
    /// `None` with PostgreSQL and no `--sealing-key-file` (there is no
    /// default then).
    #[must_use]
    pub fn sealing_key_path(&self) -> Option<(PathBuf, bool)> {
        match (&self.sealing_key_file, &self.database) {
            (Some(path), _) => Some((path.clone(), false)),
            (None, Database::Sqlite(database)) => {
                let mut path = database.clone().into_os_string();
                path.push(".sealing-key");
                Some((path.into(), true))
            }
            (None, Database::Postgres(_)) => None,
        }
    }
}

/// `n` a second with bursts of `n`, or `None` for 0.
fn per_second(n: u32) -> Option<Rate> {
    NonZeroU32::new(n).map(|n| Rate::new(n, n))
}

/// Default `--database-pool-size`.
const DATABASE_POOL_SIZE: u32 = 16;

/// A `--delivery-root-cert` file that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryConfigError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for DeliveryConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--delivery-root-cert {}: {}",
            self.path.display(),
            self.reason
        )
    }
}

impl std::error::Error for DeliveryConfigError {}

/// A network flag: a CIDR (`10.0.0.0/8`, `fd00::/8`) or one address (as
/// `/32` or `/128`). Host bits below the prefix are cleared.
fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| "expected a CIDR such as `10.0.0.0/8` or `fd00::/8`, or an address".to_owned())
}

/// A span flag: a whole number and `s`, `m`, `h` or `d`; at least one second
/// and at most 365 days.
fn parse_span(text: &str) -> Result<Duration, String> {
    let bad = || "expected a duration such as `5d`, `12h`, `90m` or `30s`, up to 365d".to_owned();
    let text = text.trim();
    let (number, unit) = text
        .split_at_checked(text.len().saturating_sub(1))
        .ok_or_else(bad)?;
    let per_unit: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = n.checked_mul(per_unit).ok_or_else(bad)?;
    if secs == 0 || secs > 365 * 86_400 {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs))
}

/// A duration flag: `10s`, `500ms`, or a whole number of seconds; at least
/// 1 ms and at most a day.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, millis_per_unit) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000)
    } else {
        (text, 1000)
    };
    let bad =
        || "expected a duration such as `10s`, `500ms` or `10`, from 1ms to 86400s".to_owned();
    let n: u64 = number.trim().parse().map_err(|_| bad())?;
    let millis = n.checked_mul(millis_per_unit).ok_or_else(bad)?;
    if millis == 0 || millis > 86_400_000 {
        return Err(bad());
    }
    Ok(Duration::from_millis(millis))
}

/// One configured API token: the organization and the token's SHA-256.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenEntry {
    /// The organization the token acts for.
    pub organization: TenantId,
    /// The SHA-256 of the token's text.
    pub digest: [u8; 32],
}

impl fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEntry")
            .field("organization", &self.organization)
            .finish_non_exhaustive()
    }
}

/// Why a `--api-token` value is not `ORGANIZATION=SHA256_HEX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidTokenEntry(&'static str);

impl fmt::Display for InvalidTokenEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InvalidTokenEntry {}

impl FromStr for TokenEntry {
    type Err = InvalidTokenEntry;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (org, hex) = s
            .trim()
            .split_once('=')
            .ok_or(InvalidTokenEntry("expected ORGANIZATION=SHA256_HEX"))?;
        let organization = org.parse().map_err(|_| {
            InvalidTokenEntry("the organization must be 1 to 128 printable ascii characters")
        })?;
        // The message never repeats the value: it may be a token pasted by
        // mistake instead of its digest.
        let digest = crate::hex::decode_32(hex).ok_or(InvalidTokenEntry(
            "the digest must be 64 hex digits (a SHA-256)",
        ))?;
        Ok(Self {
            organization,
            digest,
        })
    }
}

/// Parses `--api-token` values into [`TokenEntry`]s with an error that never
/// repeats the value: clap's own message for a bad value quotes it, and the
/// value may be a token pasted by mistake instead of its digest.
#[derive(Clone, Copy, Debug)]
struct TokenEntryParser;

impl clap::builder::TypedValueParser for TokenEntryParser {
    type Value = TokenEntry;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<TokenEntry, clap::Error> {
        let refuse = |why: &str| {
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("invalid --api-token (PRETS_API_TOKENS) entry: {why}\n"),
            )
        };
        let text = value.to_str().ok_or_else(|| refuse("not UTF-8"))?;
        text.parse().map_err(|e: InvalidTokenEntry| refuse(e.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_entries_parse_from_flags_and_comma_lists() {
        let d1 = "ab".repeat(32);
        let d2 = "01".repeat(32);
        let config = Config::try_parse_from([
            "server".to_owned(),
            "--api-token".into(),
            format!("org_a={d1}"),
            "--api-token".into(),
            format!("org_b={d2},org_c={d1}"),
        ])
        .unwrap();
        let orgs: Vec<_> = config
            .api_tokens
            .iter()
            .map(|t| t.organization.to_string())
            .collect();
        assert_eq!(orgs, ["org_a", "org_b", "org_c"]);
        assert_eq!(config.api_tokens[1].digest, [1; 32]);
    }

    #[test]
    fn bad_token_entries_are_refused_without_echo() {
        let token = format!("prets_{}", "ab".repeat(32));
        for bad in [
            token.clone(),
            format!("org={token}"),
            format!("org a={}", "ab".repeat(32)),
            format!("={}", "ab".repeat(32)),
        ] {
            let err = bad.parse::<TokenEntry>().unwrap_err();
            assert!(!err.to_string().contains(&token), "{bad:?}");
            // Nor does the command line's (the variable goes through the same parser).
            let err = Config::try_parse_from(["server", "--api-token", bad.as_str()]).unwrap_err();
            assert!(!err.to_string().contains(&token), "{err}");
            assert!(err.to_string().contains("--api-token"), "{err}");
        }
    }

    #[test]
    fn a_libpq_connection_string_for_database_is_refused_without_echo() {
        let err = Config::try_parse_from([
            "server",
            "--database",
            "host=db.internal user=app password=hunter2",
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("--database"), "{text}");
        assert!(text.contains("postgres://"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("db.internal"), "{text}");
        let config = Config::try_parse_from(["server", "--database", "./host=x.sqlite3"]).unwrap();
        assert_eq!(config.database, Database::Sqlite("./host=x.sqlite3".into()));
    }

    #[test]
    fn defaults_listen_on_localhost_8080_with_key_beside_database() {
        let config =
            Config::try_parse_from(["server", "--database", "/var/lib/x/db.sqlite3"]).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            config.sealing_key_path(),
            Some((PathBuf::from("/var/lib/x/db.sqlite3.sealing-key"), true))
        );
        assert_eq!(config.database_pool_size, 16);
        assert!(!config.memory);
        assert_eq!(config.header_read_timeout, Duration::from_secs(10));
        assert_eq!(config.body_read_timeout, Duration::from_secs(30));
        assert_eq!(config.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.max_connections, 4096);
        let defaults = Config::new("/var/lib/x/db.sqlite3".into(), config.listen);
        assert_eq!(defaults.header_read_timeout, config.header_read_timeout);
        assert_eq!(defaults.body_read_timeout, config.body_read_timeout);
        assert_eq!(defaults.idle_timeout, config.idle_timeout);
        assert_eq!(defaults.max_connections, config.max_connections);
        assert_eq!(defaults.database_pool_size, config.database_pool_size);
    }

    #[test]
    fn durations_parse_in_seconds_or_milliseconds() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in [
            "",
            "0",
            "0ms",
            "-1s",
            "1.5s",
            "s",
            "10m",
            "86401",
            "99999999999999999999",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn delivery_flags_default_to_public_only_and_the_documented_limits() {
        let config = Config::try_parse_from(["server"]).unwrap();
        let d = config.delivery().unwrap();
        assert_eq!(d.policy, HostPolicy::new());
        assert!(d.root_certificates.is_empty());
        assert_eq!(d.retry_schedule.to_string(), "5s,5m,30m,2h,5h,10h,10h");
        assert_eq!(d.disable.disable_after, Duration::from_secs(5 * 86_400));
        assert_eq!(
            d.disable.min_attempts,
            DisablePolicy::default().min_attempts
        );
        assert_eq!(d.timeout, Duration::from_secs(15));
        assert_eq!(d.connect_timeout, Duration::from_secs(5));
        assert_eq!(d.concurrency, 64);
        assert_eq!(d.destination_concurrency, 4);
        assert_eq!(d.pool_idle_timeout, Duration::from_secs(4));
        assert_eq!(d.pool_max_idle_per_host, 2);
        assert_eq!(config.delivery_lookahead, 4);
        assert_eq!(
            Config::new("db".into(), config.listen).delivery_lookahead,
            config.delivery_lookahead
        );
        assert_eq!(
            usize::try_from(config.delivery_lookahead).unwrap(),
            crate::delivery::LOOKAHEAD
        );
        // `Config::new` and `DeliveryConfig::default` agree with the flags.
        let new = Config::new("db".into(), config.listen).delivery().unwrap();
        let default = DeliveryConfig::default();
        for other in [&new, &default] {
            assert_eq!(other.policy, d.policy);
            assert_eq!(other.retry_schedule, d.retry_schedule);
            assert_eq!(other.disable, d.disable);
            assert_eq!(other.timeout, d.timeout);
            assert_eq!(other.connect_timeout, d.connect_timeout);
            assert_eq!(other.concurrency, d.concurrency);
            assert_eq!(other.destination_concurrency, d.destination_concurrency);
            assert_eq!(other.pool_idle_timeout, d.pool_idle_timeout);
            assert_eq!(other.pool_max_idle_per_host, d.pool_max_idle_per_host);
        }
    }

    #[test]
    fn delivery_flags_build_the_host_policy() {
        let config = Config::try_parse_from([
            "server",
            "--allow-private-destinations",
            "10.20.0.0/16",
            "--allow-private-destinations",
            "127.0.0.1,fd00::/8",
            "--deny-destinations",
            "10.20.9.7/24",
            "--retry-schedule",
            "1s,1m",
            "--disable-after",
            "12h",
            "--delivery-timeout",
            "2s",
            "--delivery-connect-timeout",
            "500ms",
            "--delivery-concurrency",
            "8",
            "--destination-concurrency",
            "2",
            "--delivery-pool-idle-timeout",
            "250ms",
            "--delivery-pool-max-idle-per-host",
            "0",
        ])
        .unwrap();
        let d = config.delivery().unwrap();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(d.policy.is_allowed(ip("10.20.1.2")));
        assert!(d.policy.is_allowed(ip("127.0.0.1")));
        assert!(!d.policy.is_allowed(ip("127.0.0.2")));
        assert!(d.policy.is_allowed(ip("fd00::1")));
        // Host bits are cleared: the whole /24 is denied.
        assert!(!d.policy.is_allowed(ip("10.20.9.200")));
        assert!(!d.policy.is_allowed(ip("10.30.0.1")));
        assert_eq!(d.retry_schedule.max_attempts(), 3);
        assert_eq!(d.disable.disable_after, Duration::from_secs(12 * 3600));
        assert_eq!(d.timeout, Duration::from_secs(2));
        assert_eq!(d.connect_timeout, Duration::from_millis(500));
        assert_eq!(d.concurrency, 8);
        assert_eq!(d.destination_concurrency, 2);
        assert_eq!(d.pool_idle_timeout, Duration::from_millis(250));
        assert_eq!(d.pool_max_idle_per_host, 0);
    }

    #[test]
    fn bad_delivery_flags_are_start_errors_naming_the_flag() {
        for (flag, bad) in [
            ("--allow-private-destinations", "10.0.0.0/33"),
            ("--allow-private-destinations", "example.com"),
            ("--deny-destinations", "10.0.0/8"),
            ("--retry-schedule", "5m,5s"),
            ("--retry-schedule", ""),
            ("--disable-after", "5"),
            ("--disable-after", "0d"),
            ("--disable-after", "366d"),
            ("--delivery-timeout", "0"),
            ("--delivery-concurrency", "0"),
            ("--destination-concurrency", "0"),
            ("--destination-concurrency", "4097"),
            ("--delivery-pool-idle-timeout", "0"),
            ("--delivery-pool-idle-timeout", "86401"),
            ("--delivery-pool-max-idle-per-host", "4097"),
            ("--delivery-pool-max-idle-per-host", "two"),
        ] {
            let err = Config::try_parse_from(["server", flag, bad]).unwrap_err();
            assert!(err.to_string().contains(flag), "{flag} {bad}: {err}");
        }
    }

    #[test]
    fn limit_flags_default_to_the_documented_limits_and_0_turns_a_rate_off() {
        let config = Config::try_parse_from(["server"]).unwrap();
        let quotas = config.quotas();
        assert_eq!(quotas.max_destinations, 1000);
        assert_eq!(quotas.max_pending_deliveries, 100_000);
        let publish = config.publish_rate().unwrap();
        assert_eq!(publish.burst().get(), 500);
        assert_eq!(publish.interval(), Duration::from_millis(2));
        let test_send = config.test_send_rate().unwrap();
        assert_eq!(test_send.burst().get(), 5);
        assert_eq!(test_send.interval(), Duration::from_millis(200));
        // `Config::new` agrees with the flags.
        let new = Config::new("db".into(), config.listen);
        assert_eq!(new.quotas(), quotas);
        assert_eq!(new.publish_rate(), Some(publish));
        assert_eq!(new.test_send_rate(), Some(test_send));
        let off = Config::try_parse_from([
            "server",
            "--publish-rate-limit",
            "0",
            "--test-send-rate-limit",
            "0",
            "--max-destinations",
            "7",
            "--max-pending-deliveries",
            "9",
        ])
        .unwrap();
        assert_eq!(off.publish_rate(), None);
        assert_eq!(off.test_send_rate(), None);
        assert_eq!(off.quotas().max_destinations, 7);
        assert_eq!(off.quotas().max_pending_deliveries, 9);
        for (flag, bad) in [
            ("--max-destinations", "0"),
            ("--max-pending-deliveries", "0"),
            ("--publish-rate-limit", "1000001"),
            ("--test-send-rate-limit", "five"),
        ] {
            let err = Config::try_parse_from(["server", flag, bad]).unwrap_err();
            assert!(err.to_string().contains(flag), "{flag} {bad}: {err}");
        }
    }

    #[test]
    fn a_missing_or_empty_root_certificate_file_is_a_start_error() {
        let dir = std::env::temp_dir().join(format!("prets-roots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, b"").unwrap();
        let missing = dir.join("missing.pem");
        for path in [&missing, &empty] {
            let config = Config::try_parse_from([
                "server".as_ref(),
                "--delivery-root-cert".as_ref(),
                path.as_os_str(),
            ])
            .unwrap();
            let err = config.delivery().unwrap_err();
            assert_eq!(&err.path, path);
            assert!(
                err.to_string().starts_with("--delivery-root-cert "),
                "{err}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn spans_parse_in_days_hours_minutes_or_seconds() {
        assert_eq!(parse_span("5d"), Ok(Duration::from_secs(5 * 86_400)));
        assert_eq!(parse_span("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_span("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_span("30s"), Ok(Duration::from_secs(30)));
        for bad in [
            "",
            "d",
            "5",
            "-1d",
            "+1d",
            "1.5d",
            "0s",
            "366d",
            "99999999999999999999d",
            "5 d",
            "5é",
        ] {
            assert!(parse_span(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_postgres_url_selects_postgres_with_no_default_key_and_a_bounded_pool() {
        let config = Config::try_parse_from([
            "server",
            "--database",
            "PostgreSQL://app:hunter2@db:5432/prets",
            "--database-pool-size",
            "40",
        ])
        .unwrap();
        assert!(
            matches!(&config.database, Database::Postgres(url) if url.expose() == "postgresql://app:hunter2@db:5432/prets")
        );
        assert_eq!(config.database_pool_size, 40);
        assert_eq!(config.sealing_key_path(), None);
        assert!(!format!("{config:?}").contains("hunter2"));
        let config = Config::try_parse_from([
            "server",
            "--database",
            "postgres://db/prets",
            "--sealing-key-file",
            "/etc/prets/key",
        ])
        .unwrap();
        assert_eq!(
            config.sealing_key_path(),
            Some((PathBuf::from("/etc/prets/key"), false))
        );
        for bad in ["0", "1001", "-1", "x"] {
            let flag = format!("--database-pool-size={bad}");
            let err = Config::try_parse_from(["server", flag.as_str()]).unwrap_err();
            assert!(err.to_string().contains("--database-pool-size"), "{err}");
        }
        for good in ["1", "1000"] {
            assert!(Config::try_parse_from(["server", "--database-pool-size", good]).is_ok());
        }
    }
}
