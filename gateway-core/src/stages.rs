//! Per-stage timing of the pipeline (cumulative, lock-free), for the
//! benchmark's "time per pipeline stage" and for metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The stages, in run order.
pub const STAGES: [&str; 6] = ["route", "analysis", "policy", "execute", "mask", "audit"];

/// Cumulative nanoseconds and counts per stage.
#[derive(Debug, Default)]
pub struct StageClock {
    nanos: [AtomicU64; 6],
    counts: [AtomicU64; 6],
}

impl StageClock {
    /// Run `f`, charging its time to stage `i` (an index into [`STAGES`]).
    pub fn time<T>(&self, i: usize, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.add(i, t.elapsed());
        out
    }

    /// Charge `d` to stage `i`.
    pub fn add(&self, i: usize, d: Duration) {
        self.nanos[i].fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// (stage, calls, total time) per stage.
    pub fn snapshot(&self) -> Vec<(&'static str, u64, Duration)> {
        STAGES
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    *s,
                    self.counts[i].load(Ordering::Relaxed),
                    Duration::from_nanos(self.nanos[i].load(Ordering::Relaxed)),
                )
            })
            .collect()
    }
}
