//! The process's log and traces: the `HOOKGATE_LOG` filter, text (colour only on a
//! terminal) or JSON lines on standard error written by a thread of their own, and, in a
//! build with the `otlp` feature, spans exported over OTLP/HTTP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
//!
//! Owns setting up the global subscriber once, from `main`. It must never hold up a
//! request on a slow standard error or collector (both are written in the background,
//! dropping rather than blocking), never let a failed log write reach anything but a
//! counter (`lost_lines`, in `/metrics`), and never fail start-up because a collector is
//! away.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::cli::LogFormat;

/// Keeps the background writers alive; dropping it at exit flushes what is left.
pub struct Guard {
    _log: tracing_appender::non_blocking::WorkerGuard,
    #[cfg(feature = "otlp")]
    _otlp: Option<otlp::Guard>,
}

type Boxed = Box<dyn Layer<Registry> + Send + Sync>;

fn filter() -> EnvFilter {
    EnvFilter::try_from_env("HOOKGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Log writes that failed (a closed standard error, a full disk): counted, never raised.
static WRITE_ERRORS: AtomicU64 = AtomicU64::new(0);
/// How many lines the background writer dropped because its buffer was full.
static DROPPED: std::sync::OnceLock<Box<dyn Fn() -> u64 + Send + Sync>> =
    std::sync::OnceLock::new();

/// Log lines lost so far: (writes that failed, lines dropped behind a slow standard error).
pub fn lost_lines() -> (u64, u64) {
    (
        WRITE_ERRORS.load(Ordering::Relaxed),
        DROPPED.get().map_or(0, |f| f()),
    )
}

/// Standard error as the log writer sees it: a write that fails (`EPIPE` from a log
/// shipper that died, `ENOSPC` from a full disk) is counted and reported as written, so the
/// failure stops at the log and never reaches a request or the writer.
struct Lossy<W>(W);

impl<W: std::io::Write> std::io::Write for Lossy<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.write(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Err(e),
            Err(_) => {
                WRITE_ERRORS.fetch_add(1, Ordering::Relaxed);
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

/// Installs the global subscriber. A second call leaves the first in place.
pub fn init(format: LogFormat) -> Guard {
    // Log lines are written by a thread of their own: a request never waits on a slow or
    // full standard error (a stalled journal, a pipe nobody reads); past its buffer a line
    // is dropped rather than a request held.
    let (writer, log_guard) = tracing_appender::non_blocking(Lossy(std::io::stderr()));
    let dropped = writer.error_counter();
    let _ = DROPPED.set(Box::new(move || dropped.dropped_lines() as u64));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let fmt: Boxed = match format {
        LogFormat::Text => fmt.with_ansi(ansi).with_filter(filter()).boxed(),
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_filter(filter())
            .boxed(),
    };
    #[cfg_attr(not(feature = "otlp"), allow(unused_mut))]
    let mut layers: Vec<Boxed> = vec![fmt];
    #[cfg(feature = "otlp")]
    let otlp_guard = match otlp::layer() {
        Ok(Some((layer, guard))) => {
            layers.push(layer.with_filter(filter()).boxed());
            Some(guard)
        }
        Ok(None) => None,
        Err(e) => {
            eprintln!("warning: OTLP export is off: {e}");
            None
        }
    };
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Guard {
        _log: log_guard,
        #[cfg(feature = "otlp")]
        _otlp: otlp_guard,
    }
}

#[cfg(feature = "otlp")]
mod otlp {
    //! Spans to an OpenTelemetry collector over OTLP/HTTP (protobuf), batched on a thread
    //! of the SDK's own.

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::Registry;

    /// Shuts the exporter down (sending what is batched) when dropped.
    pub struct Guard(SdkTracerProvider);

    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.shutdown();
        }
    }

    type OtelLayer =
        tracing_opentelemetry::OpenTelemetryLayer<Registry, opentelemetry_sdk::trace::Tracer>;

    /// The export layer, when an endpoint is configured in the standard variables.
    pub fn layer() -> Result<Option<(OtelLayer, Guard)>, String> {
        let configured = [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ]
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
        if !configured {
            return Ok(None);
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| e.to_string())?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name("hookgate").build())
            .build();
        let tracer = provider.tracer("hookgate");
        let layer = tracing_opentelemetry::layer().with_tracer(tracer);
        Ok(Some((layer, Guard(provider))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    struct Broken;

    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
    }

    #[test]
    fn a_failed_log_write_is_counted_and_never_an_error() {
        let before = lost_lines().0;
        let mut w = Lossy(Broken);
        assert_eq!(w.write(b"line\n").ok(), Some(5));
        assert!(w.write_all(b"another line\n").is_ok());
        assert!(w.flush().is_ok());
        assert!(lost_lines().0 >= before + 2);
    }
}
