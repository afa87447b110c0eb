//! `Timestamp`: an instant in UTC, written as RFC 3339 with whole seconds.

use core::fmt;
use core::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch of `9999-12-31T23:59:59.999Z`, the last
/// instant a four-digit RFC 3339 year can write.
const MAX_MILLIS: u64 = 253_402_300_799_999;

/// An instant between `1970-01-01T00:00:00Z` and `9999-12-31T23:59:59.999Z`,
/// with millisecond precision.
///
/// It is written (by [`Display`](fmt::Display) and serde) as RFC 3339 in UTC
/// with whole seconds and a `Z`, like the spec's `2023-11-07T05:31:56Z`; the
/// milliseconds only feed the time part of server-generated ids. Records and
/// responses hold [`truncated`](Self::truncated) values so what is stored is
/// exactly what is written.
///
/// The crate never reads the clock: the host passes `now` in, usually with
/// `Timestamp::try_from(SystemTime::now())`.
///
/// ```
/// use prets_destinations::Timestamp;
///
/// let t = Timestamp::from_unix_millis(1_699_335_116_250).unwrap();
/// assert_eq!(t.to_string(), "2023-11-07T05:31:56Z");
/// assert_eq!("2023-11-07T05:31:56Z".parse::<Timestamp>()?, t.truncated());
/// # Ok::<(), prets_destinations::time::InvalidTimestamp>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp {
    millis: u64,
}

/// Why a value is not a [`Timestamp`]: out of range, or not
/// `YYYY-MM-DDTHH:MM:SSZ`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InvalidTimestamp(());

impl fmt::Display for InvalidTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timestamp must be YYYY-MM-DDTHH:MM:SSZ between 1970 and 9999")
    }
}

impl std::error::Error for InvalidTimestamp {}

impl Timestamp {
    /// The Unix epoch, `1970-01-01T00:00:00Z`.
    pub const UNIX_EPOCH: Self = Self { millis: 0 };

    /// From milliseconds since the Unix epoch; `None` past year 9999.
    #[must_use]
    pub const fn from_unix_millis(millis: u64) -> Option<Self> {
        if millis > MAX_MILLIS {
            None
        } else {
            Some(Self { millis })
        }
    }

    /// From whole seconds since the Unix epoch; `None` past year 9999.
    #[must_use]
    pub const fn from_unix_seconds(secs: u64) -> Option<Self> {
        match secs.checked_mul(1000) {
            Some(millis) => Self::from_unix_millis(millis),
            None => None,
        }
    }

    /// Milliseconds since the Unix epoch.
    #[must_use]
    pub const fn unix_millis(self) -> u64 {
        self.millis
    }

    /// Whole seconds since the Unix epoch.
    #[must_use]
    pub const fn unix_seconds(self) -> u64 {
        self.millis / 1000
    }

    /// The same instant with the milliseconds dropped: what the wire format writes.
    #[must_use]
    pub const fn truncated(self) -> Self {
        Self {
            millis: self.millis - self.millis % 1000,
        }
    }

    /// This instant plus `d`, or `None` past year 9999.
    #[must_use]
    pub fn checked_add(self, d: Duration) -> Option<Self> {
        let add = u64::try_from(d.as_millis()).ok()?;
        Self::from_unix_millis(self.millis.checked_add(add)?)
    }

    /// The latest instant, the last millisecond of year 9999.
    pub const MAX: Self = Self { millis: MAX_MILLIS };

    /// This instant plus `d`, or [`MAX`](Self::MAX) past year 9999.
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Self {
        self.checked_add(d).unwrap_or(Self::MAX)
    }

    fn write_rfc3339(self, out: &mut [u8; 20]) {
        let secs = self.unix_seconds();
        let days = secs / 86_400;
        let sod = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        let fields: [(usize, u64, usize); 6] = [
            (0, y, 4),
            (5, m, 2),
            (8, d, 2),
            (11, sod / 3600, 2),
            (14, sod / 60 % 60, 2),
            (17, sod % 60, 2),
        ];
        *out = *b"0000-00-00T00:00:00Z";
        for (at, mut v, width) in fields {
            for k in (0..width).rev() {
                if let Some(slot) = out.get_mut(at + k) {
                    // `v % 10` is below 10, so the cast cannot truncate.
                    *slot = b'0' + (v % 10) as u8;
                }
                v /= 10;
            }
        }
    }
}

/// Days since 1970-01-01 to (year, month, day), for days within years
/// 1970..=9999 (H. Hinnant's `civil_from_days`, unsigned form).
const fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// (year, month, day) to days since 1970-01-01, for years 1970..=9999.
const fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y % 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const fn is_leap(y: u64) -> bool {
    y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400))
}

const fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn digits(b: &[u8], from: usize, len: usize) -> Option<u64> {
    let mut v = 0u64;
    for &c in b.get(from..from + len)? {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    Some(v)
}

fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() != 20
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(10) != Some(&b'T')
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
        || b.get(19) != Some(&b'Z')
    {
        return None;
    }
    let (y, mo, d) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
    let (h, mi, se) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
    if y < 1970 || !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) {
        return None;
    }
    if h > 23 || mi > 59 || se > 59 {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se;
    Timestamp::from_unix_seconds(secs)
}

impl FromStr for Timestamp {
    type Err = InvalidTimestamp;
    /// Parses exactly `YYYY-MM-DDTHH:MM:SSZ` (the form this crate writes).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_rfc3339(s).ok_or(InvalidTimestamp(()))
    }
}

impl TryFrom<&str> for Timestamp {
    type Error = InvalidTimestamp;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<String> for Timestamp {
    type Error = InvalidTimestamp;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<SystemTime> for Timestamp {
    type Error = InvalidTimestamp;
    /// Fails for instants before 1970 or after 9999.
    fn try_from(t: SystemTime) -> Result<Self, Self::Error> {
        let d = t
            .duration_since(UNIX_EPOCH)
            .map_err(|_| InvalidTimestamp(()))?;
        u64::try_from(d.as_millis())
            .ok()
            .and_then(Self::from_unix_millis)
            .ok_or(InvalidTimestamp(()))
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        UNIX_EPOCH + Duration::from_millis(t.millis)
    }
}

impl From<Timestamp> for String {
    fn from(t: Timestamp) -> Self {
        t.to_string()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 20];
        self.write_rfc3339(&mut buf);
        // Only ASCII digits and separators were written.
        f.write_str(core::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self}+{}ms)", self.millis % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_conversions_invert_each_other_over_the_whole_range() {
        let last = days_from_civil(9999, 12, 31);
        for days in (0..=last).step_by(17).chain([last]) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!(d <= days_in_month(y, m));
        }
    }

    #[test]
    fn known_instants_format_as_rfc3339() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_699_335_116, "2023-11-07T05:31:56Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ];
        for (secs, text) in cases {
            let t = Timestamp::from_unix_seconds(secs).unwrap();
            assert_eq!(t.to_string(), text);
            assert_eq!(text.parse::<Timestamp>(), Ok(t));
        }
    }

    #[test]
    fn impossible_dates_and_other_forms_are_refused() {
        for s in [
            "2023-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2023-04-31T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-00-01T00:00:00Z",
            "2023-01-00T00:00:00Z",
            "2023-01-01T24:00:00Z",
            "2023-01-01T23:60:00Z",
            "2023-01-01T23:59:60Z",
            "2023-01-01T00:00:00z",
            "2023-01-01t00:00:00Z",
            "2023-01-01T00:00:00+00:00",
            "2023-01-01T00:00:00.000Z",
            "1969-12-31T23:59:59Z",
            "+2023-01-01T00:00:00Z",
            "２０２３-01-01T00:00:00Z",
            "",
        ] {
            assert!(s.parse::<Timestamp>().is_err(), "{s}");
        }
    }

    #[test]
    fn range_ends_at_year_9999() {
        assert!(Timestamp::from_unix_millis(MAX_MILLIS).is_some());
        assert!(Timestamp::from_unix_millis(MAX_MILLIS + 1).is_none());
        assert!(Timestamp::from_unix_seconds(u64::MAX).is_none());
        let last = Timestamp::from_unix_millis(MAX_MILLIS).unwrap();
        assert!(last.checked_add(Duration::from_millis(1)).is_none());
    }

    #[test]
    fn truncation_drops_only_milliseconds() {
        let t = Timestamp::from_unix_millis(1_699_335_116_999).unwrap();
        assert_eq!(t.truncated().unix_millis(), 1_699_335_116_000);
        assert_eq!(t.to_string(), t.truncated().to_string());
    }

    #[test]
    fn system_time_before_epoch_is_refused() {
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert!(Timestamp::try_from(before).is_err());
        let t = Timestamp::try_from(UNIX_EPOCH + Duration::from_millis(1500)).unwrap();
        assert_eq!(t.unix_millis(), 1500);
        assert_eq!(
            SystemTime::from(t),
            UNIX_EPOCH + Duration::from_millis(1500)
        );
    }
}
