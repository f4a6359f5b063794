//! The retry schedule for deliveries: exponential backoff with jitter, honouring a
//! connector's `Retry-After`, capped.
//!
//! Owns the one function that decides what happens after an attempt. Pure: the jitter
//! factor and `now` are passed in. It must never schedule past the configured cap.

/// What the connector's answer (or its absence) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 2xx.
    Delivered,
    /// 404 or 410: the contact has no open chat; final.
    NoSession,
    /// 429, 5xx, a timeout or a refused connection: worth trying again.
    Retryable {
        /// A `Retry-After` the connector asked for, in milliseconds.
        retry_after_ms: Option<u64>,
    },
    /// Any other answer (400, 401, 403, ...): trying again would not help.
    Refused,
}

/// The decision after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Recorded as delivered.
    Delivered,
    /// Recorded as no_session; final.
    NoSession,
    /// Try again at this time (microseconds since the epoch).
    RetryAt(i64),
    /// Given up.
    Dead,
}

/// The schedule's settings.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// First delay in milliseconds.
    pub base_ms: u64,
    /// Longest delay in milliseconds.
    pub max_ms: u64,
}

/// Decides what follows attempt number `attempt` (1-based). `jitter` in [0, 1) spreads
/// retries over ±25 % of the delay so a recovering connector is not hit all at once.
pub fn next(policy: &Policy, attempt: u32, answer: Answer, now_micros: i64, jitter: f64) -> Next {
    match answer {
        Answer::Delivered => Next::Delivered,
        Answer::NoSession => Next::NoSession,
        Answer::Refused => Next::Dead,
        Answer::Retryable { .. } if attempt >= policy.max_attempts => Next::Dead,
        Answer::Retryable { retry_after_ms } => {
            let exp = policy
                .base_ms
                .saturating_mul(1u64 << (attempt.saturating_sub(1)).min(32));
            let spread = 0.75 + 0.5 * jitter.clamp(0.0, 1.0);
            let backoff = ((exp.min(policy.max_ms)) as f64 * spread) as u64;
            let delay = retry_after_ms.unwrap_or(backoff).min(policy.max_ms);
            Next::RetryAt(now_micros.saturating_add((delay as i64).saturating_mul(1000)))
        }
    }
}

/// Parses a `Retry-After` header: delay-seconds, or an HTTP date relative to `now`.
pub fn parse_retry_after(value: &str, now_micros: i64) -> Option<u64> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    let format = time::format_description::well_known::Rfc2822;
    let at = time::OffsetDateTime::parse(v, &format).ok()?;
    let at_micros = (at.unix_timestamp_nanos() / 1000) as i64;
    Some(u64::try_from((at_micros - now_micros).max(0) / 1000).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy {
        max_attempts: 5,
        base_ms: 1000,
        max_ms: 60_000,
    };

    fn delay_ms(n: Next) -> i64 {
        match n {
            Next::RetryAt(t) => t / 1000,
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter_and_a_cap() {
        let r = Answer::Retryable {
            retry_after_ms: None,
        };
        assert_eq!(delay_ms(next(&P, 1, r, 0, 0.5)), 1000);
        assert_eq!(delay_ms(next(&P, 2, r, 0, 0.5)), 2000);
        assert_eq!(delay_ms(next(&P, 3, r, 0, 0.0)), 3000);
        assert_eq!(delay_ms(next(&P, 3, r, 0, 1.0)), 5000);
        let capped = Policy {
            max_attempts: 50,
            ..P
        };
        assert!(delay_ms(next(&capped, 40, r, 0, 1.0)) <= 60_000);
        assert_eq!(next(&P, 5, r, 0, 0.5), Next::Dead);
    }

    #[test]
    fn retry_after_wins_but_not_past_the_cap() {
        let a = Answer::Retryable {
            retry_after_ms: Some(30_000),
        };
        assert_eq!(delay_ms(next(&P, 1, a, 0, 0.5)), 30_000);
        let huge = Answer::Retryable {
            retry_after_ms: Some(10_000_000),
        };
        assert_eq!(delay_ms(next(&P, 1, huge, 0, 0.5)), 60_000);
        let zero = Answer::Retryable {
            retry_after_ms: Some(0),
        };
        assert_eq!(delay_ms(next(&P, 1, zero, 0, 0.5)), 0);
    }

    #[test]
    fn final_answers() {
        assert_eq!(next(&P, 1, Answer::Delivered, 0, 0.5), Next::Delivered);
        assert_eq!(next(&P, 1, Answer::NoSession, 0, 0.5), Next::NoSession);
        assert_eq!(next(&P, 1, Answer::Refused, 0, 0.5), Next::Dead);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7", 0), Some(7000));
        let now = 1_700_000_000_000_000;
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:13:30 +0000", now),
            Some(10_000)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
