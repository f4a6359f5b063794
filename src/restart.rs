//! Starting a failed task again: the policy ([`Backoff`], pure) shared by the gateway's
//! supervised tasks (`server::supervise`) and an engine's own (the PostgreSQL writer and
//! follower), and [`restarting`], the loop around a task that must outlive its panics.
//!
//! Owns when a task is tried again and when it is given up. It must never give up on a
//! task that recovers between failures, nor retry without a pause.

use std::future::Future;
use std::time::Duration;

/// The restart policy of one task: the wait doubles from `FIRST` up to `MOST` after each
/// failure; a task that ran at least `HEALTHY` before failing starts again from `FIRST`;
/// after `LIMIT` failures in a row, each within `HEALTHY` of its start, it is given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MOST: Duration = Duration::from_secs(10);
    /// A run this long counts as a recovery.
    pub const HEALTHY: Duration = Duration::from_secs(60);
    /// Failures in a row, each quick, after which the task is given up.
    pub const LIMIT: u32 = 8;

    /// A task that has not failed yet.
    pub fn new() -> Backoff {
        Backoff { failures: 0 }
    }

    /// The task failed after running for `ran`: how long to wait before starting it again,
    /// or `None` when it is given up.
    pub fn failed(&mut self, ran: Duration) -> Option<Duration> {
        if ran >= Self::HEALTHY {
            self.failures = 0;
        }
        self.failures += 1;
        if self.failures >= Self::LIMIT {
            return None;
        }
        let factor = 1u32 << (self.failures - 1).min(16);
        Some(Self::FIRST.saturating_mul(factor).min(Self::MOST))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

/// Runs the task `make` builds, starting it again after a pause whenever it panics, until
/// it ends normally; after [`Backoff::LIMIT`] quick panics in a row it is given up and
/// `give_up` is told why.
pub async fn restarting<F, Fut>(name: &'static str, mut make: F, give_up: impl FnOnce(String))
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut backoff = Backoff::new();
    loop {
        let started = std::time::Instant::now();
        let task = tokio::spawn(make());
        // Aborting the loop (an engine closing) aborts the task it runs too.
        let _abort = AbortOnDrop(task.abort_handle());
        let why = match task.await {
            Ok(()) => return,
            Err(e) if e.is_panic() => panic_text(e.into_panic()),
            Err(_) => return,
        };
        match backoff.failed(started.elapsed()) {
            Some(wait) => {
                tracing::error!(
                    task = name,
                    "the {name} panicked ({why}); starting it again in {wait:?}"
                );
                tokio::time::sleep(wait).await;
            }
            None => {
                give_up(format!(
                    "the {name} panicked {} times in a row ({why})",
                    Backoff::LIMIT
                ));
                return;
            }
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A panic's message, when it is text.
pub fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        return (*s).to_owned();
    }
    if let Some(s) = payload.downcast_ref::<String>() {
        return s.clone();
    }
    "(no message)".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_to_a_cap_resets_after_a_healthy_run_and_gives_up_at_the_limit() {
        let mut b = Backoff::new();
        let quick = Duration::from_millis(5);
        assert_eq!(b.failed(quick), Some(Duration::from_millis(100)));
        assert_eq!(b.failed(quick), Some(Duration::from_millis(200)));
        assert_eq!(b.failed(quick), Some(Duration::from_millis(400)));
        assert_eq!(b.failed(Backoff::HEALTHY), Some(Duration::from_millis(100)));
        let mut b = Backoff::new();
        let waits: Vec<_> = (0..Backoff::LIMIT).map(|_| b.failed(quick)).collect();
        assert!(
            waits[..Backoff::LIMIT as usize - 1]
                .iter()
                .all(Option::is_some)
        );
        assert!(waits.iter().flatten().all(|w| *w <= Backoff::MOST));
        assert_eq!(waits.last(), Some(&None));
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_is_started_again_after_a_panic_and_given_up_when_it_keeps_panicking() {
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = std::sync::Arc::clone(&runs);
        let mut given_up = None;
        restarting(
            "flaky task",
            move || {
                let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    if n < 2 {
                        panic!("run {n} fails");
                    }
                }
            },
            |why| given_up = Some(why),
        )
        .await;
        assert_eq!(
            runs.load(std::sync::atomic::Ordering::SeqCst),
            3,
            "two panics, then a normal end"
        );
        assert_eq!(given_up, None);
        let mut given_up = None;
        restarting(
            "doomed task",
            || async { panic!("always") },
            |why| given_up = Some(why),
        )
        .await;
        let why = given_up.unwrap_or_default();
        assert!(
            why.contains("doomed task") && why.contains("always"),
            "{why}"
        );
    }
}
