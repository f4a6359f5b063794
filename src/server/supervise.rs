//! Supervision of the gateway's long-running tasks (retention, the delivery worker, the
//! follower of other nodes, the heads publisher): a task that panics, or ends while the
//! gateway is not stopping, is started again after a backoff; one that keeps failing
//! without ever running for a while is given up on, and the gateway is told it cannot
//! recover, so the process exits non-zero and its supervisor (systemd) restarts it.
//!
//! Owns the loop around one task (the policy is `restart::Backoff`). It must never
//! leave a gateway running without one of its tasks: either the task runs, or it is about
//! to run again, or the gateway is stopping.

use std::future::Future;

use tokio::sync::{mpsc, watch};

use crate::restart::{Backoff, panic_text};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

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
