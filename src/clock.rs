//! Time as the gateway records it: microseconds since the Unix epoch, shown as RFC 3339 UTC.
//!
//! Owns the conversions between stored integers and the RFC 3339 text of the API. Pure
//! functions only, except [`now_micros`], the single place that reads the wall clock, and
//! [`Clock`], through which the ingest path reads it (tests fix it); pure code takes a
//! `now` argument instead of calling either.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The clock the ingest path reads: the system clock, or a fixed time that tests (and
/// replays of recorded provider requests) set, so signed timestamps from the past verify.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    fixed: Option<std::sync::Arc<std::sync::atomic::AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock { fixed: None }
    }

    /// A clock that shows `micros` until set otherwise.
    pub fn fixed(micros: i64) -> Self {
        Clock {
            fixed: Some(std::sync::Arc::new(std::sync::atomic::AtomicI64::new(
                micros,
            ))),
        }
    }

    /// Moves a fixed clock (every clone sees it); does nothing to the system clock.
    pub fn set(&self, micros: i64) {
        if let Some(f) = &self.fixed {
            f.store(micros, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// The time in microseconds since the Unix epoch.
    pub fn now_micros(&self) -> i64 {
        match &self.fixed {
            Some(f) => f.load(std::sync::atomic::Ordering::SeqCst),
            None => now_micros(),
        }
    }
}

/// The current wall-clock time in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    let now = OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000) as i64
}

/// Formats stored microseconds as RFC 3339 in UTC with exactly six fractional digits,
/// e.g. `2026-11-21T17:01:02.123400Z`, so that times sort the same as text and as time.
pub fn format_micros(micros: i64) -> String {
    let nanos = i128::from(micros) * 1_000;
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| micros.to_string())
}

/// Parses an RFC 3339 time (or plain Unix seconds) into microseconds since the epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    if let Ok(secs) = text.parse::<i64>() {
        return secs.checked_mul(1_000_000);
    }
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc3339() {
        let micros = 1_763_744_462_123_456;
        let text = format_micros(micros);
        assert!(text.ends_with('Z'), "{text}");
        assert_eq!(parse_time(&text), Some(micros));
    }

    #[test]
    fn fractions_have_fixed_width_so_text_order_is_time_order() {
        let a = format_micros(1_763_744_462_120_000);
        let b = format_micros(1_763_744_462_123_400);
        assert!(a.ends_with(".120000Z"), "{a}");
        assert!(a < b);
    }

    #[test]
    fn accepts_unix_seconds_and_rejects_garbage() {
        assert_eq!(parse_time("10"), Some(10_000_000));
        assert_eq!(parse_time("yesterday"), None);
    }
}
