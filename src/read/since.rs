//! `--since`: a lower bound on event time, read from a date or an RFC 3339 time.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use super::QueryError;
use crate::store::codec;

/// A lower bound on event time, held as the smallest sort key of an event at or
/// after it, so `timestamp >= since` selects the events at or after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since(String);

impl Since {
    /// Reads a date (`2026-11-22`, midnight UTC) or an RFC 3339 time with any
    /// offset (`2026-11-22T10:15:30.5+08:00`), rounded up to the millisecond.
    pub fn parse(text: &str) -> Result<Since, QueryError> {
        let at = parse_time(text.trim()).ok_or_else(|| QueryError::BadTime(text.to_owned()))?;
        Ok(Since(codec::sort_key_from(ceil_to_millis(at))))
    }

    /// The bound as stored in sort keys, e.g. `2026-11-22T02:15:30.500Z`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    if text.len() == 10 {
        let date = Date::parse(text, format_description!("[year]-[month]-[day]")).ok()?;
        return Some(date.midnight().assume_utc());
    }
    // RFC 3339 lets an application pick the date/time separator; `time` accepts
    // any byte there, we only `T`, `t` and a space.
    if !matches!(text.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// Unix milliseconds, rounded up: an event at a whole millisecond is at or after
/// `at` exactly when it is at or after this.
fn ceil_to_millis(at: OffsetDateTime) -> i64 {
    let nanos = at.unix_timestamp_nanos();
    let millis = nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0);
    i64::try_from(millis).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn since(text: &str) -> Option<String> {
        Since::parse(text).ok().map(|s| s.as_str().to_owned())
    }

    #[test]
    fn since_reads_dates_and_rfc3339_times_in_any_offset() {
        assert_eq!(
            since("2026-11-22").as_deref(),
            Some("2026-11-22T00:00:00.000Z")
        );
        assert_eq!(
            since("2026-11-22T10:15:30Z").as_deref(),
            Some("2026-11-22T10:15:30.000Z")
        );
        assert_eq!(
            since("2026-11-22t10:15:30.5+08:00").as_deref(),
            Some("2026-11-22T02:15:30.500Z")
        );
        assert_eq!(
            since("2026-11-22 00:30:00-01:30").as_deref(),
            Some("2026-11-22T02:00:00.000Z")
        );
        // Sub-millisecond parts round up: an event at .123 is before .1231.
        assert_eq!(
            since("2026-11-22T10:15:30.1231Z").as_deref(),
            Some("2026-11-22T10:15:30.124Z")
        );
    }

    #[test]
    fn since_refuses_anything_else() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-11-22T10:15Z",
            "2026-11-22T10:15:30",
            "2026-11-22T25:00:00Z",
            "2026-11-22T10:15:30.Z",
            "2026-11-22T10:15:30+0800",
            "2026-11-22X10:15:30Z",
            "1795342530",
            "２０２６-11-22",
        ] {
            assert_eq!(
                Since::parse(bad),
                Err(QueryError::BadTime(bad.to_owned())),
                "{bad}"
            );
        }
    }
}
