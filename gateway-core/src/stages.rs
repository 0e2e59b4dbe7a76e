//! Per-stage timing of the pipeline (cumulative, lock-free), for the
//! benchmark's "time per pipeline stage" and for metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Target of the pipeline's tracing spans: `tool_call` (one per call) and
/// one per stage (named by [`Stage::name`], plus `intent` and `approval`),
/// at TRACE so they cost next to nothing unless a subscriber exports them
/// (the server's OTLP exporter). Span fields are names only (tool,
/// principal, connection, decision): never arguments or results.
pub const SPAN_TARGET: &str = "tollgate::span";

/// A span of one pipeline stage (or step) under the call's span.
#[macro_export]
#[doc(hidden)]
macro_rules! stage_span {
    ($name:expr) => {
        tracing::trace_span!(target: "tollgate::span", "stage", otel.name = $name)
    };
}

/// A pipeline stage whose time is measured, in run order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Finding the connection a call is for.
    Route,
    /// The connector's analysis of what the call will do.
    Analysis,
    /// Cedar decisions on every request.
    Policy,
    /// The connector's execution.
    Execute,
    /// Hiding unpermitted items and masking the result.
    Mask,
    /// The durable audit append.
    Audit,
}

impl Stage {
    /// Every stage, in run order.
    pub const ALL: [Stage; 6] = [
        Stage::Route,
        Stage::Analysis,
        Stage::Policy,
        Stage::Execute,
        Stage::Mask,
        Stage::Audit,
    ];

    /// Lower-case name, as the benchmark and metrics print it.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Route => "route",
            Stage::Analysis => "analysis",
            Stage::Policy => "policy",
            Stage::Execute => "execute",
            Stage::Mask => "mask",
            Stage::Audit => "audit",
        }
    }
}

/// Cumulative nanoseconds and counts per stage.
#[derive(Debug, Default)]
pub struct StageClock {
    nanos: [AtomicU64; Stage::ALL.len()],
    counts: [AtomicU64; Stage::ALL.len()],
}

impl StageClock {
    /// Run `f`, charging its time to `stage`.
    pub fn time<T>(&self, stage: Stage, f: impl FnOnce() -> T) -> T {
        let _span = crate::stage_span!(stage.name()).entered();
        let t = Instant::now();
        let out = f();
        self.add(stage, t.elapsed());
        out
    }

    /// Charge `d` to `stage`.
    pub fn add(&self, stage: Stage, d: Duration) {
        let i = stage as usize;
        self.nanos[i].fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// (stage name, calls, total time) per stage, in run order.
    pub fn snapshot(&self) -> Vec<(&'static str, u64, Duration)> {
        Stage::ALL
            .iter()
            .map(|&s| {
                let i = s as usize;
                (
                    s.name(),
                    self.counts[i].load(Ordering::Relaxed),
                    Duration::from_nanos(self.nanos[i].load(Ordering::Relaxed)),
                )
            })
            .collect()
    }
}
