//! Per-account rate limiting: one token bucket per account name.
//!
//! Owns [`RateLimiter`]: `rate` tokens per second refill each bucket up to `burst`; a
//! request takes one token or is told how long until one is there (for `Retry-After`).
//! Buckets exist only for accounts that were found, so memory is bounded by the number of
//! accounts. It must never sleep, block on I/O, or decide anything but "now or later"; the
//! caller still records the refused request in the audit log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The limiter's decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A token was taken; go on.
    Allow,
    /// No token now; one is available after this long (at least one second, rounded up).
    Deny {
        /// Whole seconds until a token is available, for `Retry-After`.
        retry_after_secs: u64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets keyed by account name.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `rate` requests per second sustained, `burst` at once; a rate of 0 disables limiting.
    pub fn new(rate: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token from `key`'s bucket at time `now`.
    pub fn check(&self, key: &str, now: Instant) -> Decision {
        if self.rate <= 0.0 {
            return Decision::Allow;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Decision::Allow
        } else {
            let wait = Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate);
            Decision::Deny {
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_then_refill() {
        let l = RateLimiter::new(2, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check("a", t0), Decision::Allow);
        }
        assert_eq!(
            l.check("a", t0),
            Decision::Deny {
                retry_after_secs: 1
            }
        );
        // Another account is not affected.
        assert_eq!(l.check("b", t0), Decision::Allow);
        // Half a second at 2/s refills one token.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(l.check("a", t1), Decision::Allow);
        assert!(matches!(l.check("a", t1), Decision::Deny { .. }));
        // Refill never exceeds the burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(l.check("a", t2), Decision::Allow);
        }
        assert!(matches!(l.check("a", t2), Decision::Deny { .. }));
    }

    #[test]
    fn slow_rates_ask_for_longer_waits_and_zero_disables() {
        let l = RateLimiter::new(1, 1);
        let t0 = Instant::now();
        assert_eq!(l.check("a", t0), Decision::Allow);
        assert_eq!(
            l.check("a", t0 + Duration::from_millis(100)),
            Decision::Deny {
                retry_after_secs: 1
            }
        );
        let off = RateLimiter::new(0, 0);
        for _ in 0..10_000 {
            assert_eq!(off.check("a", t0), Decision::Allow);
        }
    }
}
