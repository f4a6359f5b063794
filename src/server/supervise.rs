//! Supervision of the gateway's long-running tasks (retention, the delivery worker, the
//! follower of other nodes, the heads publisher): a task that panics, or ends while the
//! gateway is not stopping, is started again after a backoff; one that keeps failing
//! without ever running for a while is given up on, and the gateway is told it cannot
//! recover, so the process exits non-zero and its supervisor (systemd) restarts it.
//!
//! Owns the restart policy ([`Backoff`], pure) and the loop around one task. It must never
//! leave a gateway running without one of its tasks: either the task runs, or it is about
//! to run again, or the gateway is stopping.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

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

/// Runs the task `make` builds until `stop` turns true, starting it again whenever it
/// panics or ends early; sends the reason on `fatal` and returns when it is given up.
pub async fn supervise<F, Fut>(
    name: &'static str,
    mut stop: watch::Receiver<bool>,
    fatal: mpsc::Sender<String>,
    make: F,
) where
    F: Fn(watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut backoff = Backoff::new();
    loop {
        let started = std::time::Instant::now();
        let ended = tokio::spawn(make(stop.clone())).await;
        if *stop.borrow() {
            return;
        }
        let why = match ended {
            Ok(()) => "ended".to_owned(),
            Err(e) if e.is_panic() => format!("panicked: {}", panic_text(e.into_panic())),
            Err(e) => format!("was cancelled: {e}"),
        };
        match backoff.failed(started.elapsed()) {
            Some(wait) => {
                tracing::error!(
                    task = name,
                    "the {name} task {why}; starting it again in {wait:?}"
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
            }
            None => {
                let reason = format!(
                    "the {name} task failed {} times in a row ({why})",
                    Backoff::LIMIT
                );
                let _ = fatal.send(reason).await;
                return;
            }
        }
    }
}

/// A panic's message, when it is text.
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

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

    #[tokio::test]
    async fn a_task_that_panics_is_started_again_and_stops_with_the_gateway() {
        let (stop_tx, stop) = watch::channel(false);
        let (fatal_tx, mut fatal_rx) = mpsc::channel(1);
        let runs = Arc::new(AtomicU32::new(0));
        let (ran_twice_tx, mut ran_twice) = mpsc::channel::<()>(1);
        let counted = Arc::clone(&runs);
        let sup = tokio::spawn(supervise("test", stop, fatal_tx, move |mut stop| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            let ran_twice_tx = ran_twice_tx.clone();
            async move {
                if n == 0 {
                    panic!("first run fails");
                }
                let _ = ran_twice_tx.send(()).await;
                let _ = stop.changed().await;
            }
        }));
        ran_twice
            .recv()
            .await
            .expect("started again after the panic");
        let _ = stop_tx.send(true);
        sup.await.expect("supervisor ends");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(
            fatal_rx.try_recv().is_err(),
            "a recovered task is not fatal"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_keeps_failing_is_given_up_and_reported() {
        let (_stop_tx, stop) = watch::channel(false);
        let (fatal_tx, mut fatal_rx) = mpsc::channel(1);
        let sup = tokio::spawn(supervise("flaky", stop, fatal_tx, |_| async {
            panic!("always")
        }));
        let reason = fatal_rx.recv().await.expect("reported");
        assert!(
            reason.contains("flaky") && reason.contains("always"),
            "{reason}"
        );
        sup.await.expect("supervisor ends");
    }
}
