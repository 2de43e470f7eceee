//! RFC 3339 timestamps through the `time` crate: strict parsing (an
//! impossible date such as `2026-02-30`, or an offset past ±23:59, is
//! refused) and UTC formatting with milliseconds.

use std::time::SystemTime;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `2026-11-28T14:08:00.123Z`: UTC, milliseconds (a time the calendar cannot
/// show, which no key or message holds, shows as the epoch).
pub fn format(t: SystemTime) -> String {
    let at = OffsetDateTime::from(t);
    let at = at.replace_nanosecond(at.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// `YYYY-MM-DD` of a day counted from the epoch.
pub fn day(days_since_epoch: u32) -> String {
    (OffsetDateTime::UNIX_EPOCH + time::Duration::days(i64::from(days_since_epoch))).date().to_string()
}

/// Why a timestamp was refused. Carries no part of the input.
#[derive(Debug, thiserror::Error)]
#[error("not an RFC 3339 date-time (e.g. 2026-12-31T23:59:59Z)")]
pub struct NotRfc3339(#[source] time::error::Parse);

/// Parses an RFC 3339 date-time with any offset.
pub fn parse(text: &str) -> Result<SystemTime, NotRfc3339> {
    OffsetDateTime::parse(text, &Rfc3339).map(SystemTime::from).map_err(NotRfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn round_trips_and_known_points() {
        assert_eq!(format(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = parse("2026-11-28T14:08:00.5Z").unwrap();
        assert_eq!(format(t), "2026-11-28T14:08:00.5Z");
        assert_eq!(format(t + Duration::from_nanos(123_456)), "2026-11-28T14:08:00.5Z");
        assert_eq!(parse("2026-11-28T16:08:00+02:00").unwrap(), parse("2026-11-28T14:08:00Z").unwrap());
        assert_eq!(parse("2000-02-29T00:00:00Z").unwrap(), UNIX_EPOCH + Duration::from_secs(951_782_400));
        // RFC 3339 lets a space stand for the T.
        assert_eq!(parse("2026-11-28 14:08:00Z").unwrap(), parse("2026-11-28T14:08:00Z").unwrap());
        assert_eq!(day(0), "1970-01-01");
        assert_eq!(day(20_790), "2026-12-03");
    }

    #[test]
    fn impossible_and_hostile_input_is_refused_without_a_panic() {
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-28T24:00:00Z",
            "2026-11-28T14:08:00+25:00",
            "2026-11-28T14:08:00+24:00",
            "2026-12-02T12:00:00+0é00",
            "2026-12-02T12:00:00é",
            "2026-11-28T14:08:00",
            "yesterday",
            "\u{0}",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
