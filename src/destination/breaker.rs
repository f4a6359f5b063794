//! The circuit breaker of one destination: after `threshold` consecutive failed attempts
//! it opens, and the destination's deliveries wait (they are not attempted, so their
//! attempt budget is not spent); every `probe_micros` one delivery is let through as a
//! probe; its success closes the breaker, its failure keeps it open for another interval.
//!
//! Owns the state machine. Pure, time passed in. It must never let more than one probe
//! out at a time.

use serde::Serialize;

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// Deliveries flow; `failures` consecutive attempts failed so far.
    Closed {
        /// Consecutive failures.
        failures: u32,
    },
    /// Paused until `until` (microseconds since the epoch), then one probe.
    Open {
        /// When the next probe may go.
        until: i64,
    },
    /// One probe is in flight.
    Probing,
}

impl Default for State {
    fn default() -> Self {
        State::Closed { failures: 0 }
    }
}

/// The breaker's settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Consecutive failures that open it; 0 never opens.
    pub threshold: u32,
    /// Time between probes, in microseconds.
    pub probe_micros: i64,
}

impl Settings {
    /// From a configuration's failure count and probe interval in milliseconds.
    pub fn new(threshold: u32, probe_ms: u64) -> Settings {
        Settings {
            threshold,
            probe_micros: i64::try_from(probe_ms)
                .unwrap_or(i64::MAX)
                .saturating_mul(1000),
        }
    }
}

/// What the worker may do with this destination's next delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Send it.
    Go,
    /// Send it as the probe (the breaker is now `Probing`).
    Probe,
    /// Leave it waiting.
    Wait,
}

impl State {
    /// Asks to start a delivery at `now`.
    pub fn gate(&mut self, now: i64) -> Gate {
        match *self {
            State::Closed { .. } => Gate::Go,
            State::Open { until } if now >= until => {
                *self = State::Probing;
                Gate::Probe
            }
            State::Open { .. } | State::Probing => Gate::Wait,
        }
    }

    /// Records an attempt's outcome at `now`.
    pub fn record(&mut self, ok: bool, now: i64, s: Settings) {
        *self = match (*self, ok) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) => {
                let failures = failures.saturating_add(1);
                if s.threshold > 0 && failures >= s.threshold {
                    State::Open {
                        until: now.saturating_add(s.probe_micros),
                    }
                } else {
                    State::Closed { failures }
                }
            }
            (State::Open { until }, false) => State::Open { until },
            (State::Probing, false) => State::Open {
                until: now.saturating_add(s.probe_micros),
            },
        }
    }

    /// True unless deliveries flow.
    pub fn is_open(&self) -> bool {
        !matches!(self, State::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Settings = Settings {
        threshold: 3,
        probe_micros: 100,
    };

    #[test]
    fn opens_after_the_threshold_probes_one_at_a_time_and_closes_on_success() {
        let mut b = State::default();
        for t in 0..2 {
            assert_eq!(b.gate(t), Gate::Go);
            b.record(false, t, S);
        }
        assert!(!b.is_open());
        b.record(false, 10, S);
        assert_eq!(b, State::Open { until: 110 });
        assert_eq!(b.gate(50), Gate::Wait);
        assert_eq!(b.gate(110), Gate::Probe);
        assert_eq!(b.gate(111), Gate::Wait, "one probe at a time");
        b.record(false, 120, S);
        assert_eq!(b, State::Open { until: 220 });
        assert_eq!(b.gate(220), Gate::Probe);
        b.record(true, 230, S);
        assert_eq!(b, State::Closed { failures: 0 });
        assert_eq!(b.gate(231), Gate::Go);
    }

    #[test]
    fn a_success_resets_the_count_and_zero_never_opens() {
        let mut b = State::default();
        b.record(false, 0, S);
        b.record(false, 0, S);
        b.record(true, 0, S);
        b.record(false, 0, S);
        assert_eq!(b, State::Closed { failures: 1 });
        let never = Settings { threshold: 0, ..S };
        for _ in 0..10 {
            b.record(false, 0, never);
        }
        assert!(!b.is_open());
    }
}
