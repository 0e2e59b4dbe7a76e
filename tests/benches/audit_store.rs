//! Audit store benchmark: durable appends to the embedded SQLite store, one
//! appender at a time and 32 at once, against the floor measured in the
//! same run in the same directory: one synchronous 4 KiB write + fdatasync.
//! Prints p50/p99 per append, events/s, events per commit, and the ratio of
//! the append p50 to that floor.
//!
//! Run: `cargo bench -p tollgate-tests --bench audit_store` (env BENCH_SECONDS,
//! default 3 per measurement).

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_core::audit::AuditStore;
use hdrhistogram::Histogram;
use tollgate_server::store::SqliteAuditStore;
use tollgate_tests::bench::{fsync_floor, secs, sql_call_record};

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("tollgate-audit-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let store = Arc::new(SqliteAuditStore::open(&dir).await?);
    let floor = fsync_floor(&dir, 300)?;
    println!(
        "audit store benchmark: durable appends, {:?} per measurement; floor = one 4 KiB write + fdatasync here: p50 {:.0} µs",
        secs(),
        us(floor)
    );
    println!(
        "{:>10} | {:>9} {:>9} {:>10} {:>12} | {:>11}",
        "appenders", "p50 µs", "p99 µs", "events/s", "events/commit", "p50 / floor"
    );
    for appenders in [1usize, 32] {
        let before = store.stats();
        let end = Instant::now() + secs();
        let mut tasks = vec![];
        for a in 0..appenders {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut h = Histogram::<u64>::new(3).expect("histogram");
                let mut i = a as u64;
                while Instant::now() < end {
                    let t = Instant::now();
                    store.append(sql_call_record(i)).await?;
                    h.record(t.elapsed().as_nanos() as u64).ok();
                    i += appenders as u64;
                }
                anyhow::Ok(h)
            }));
        }
        let mut h = Histogram::<u64>::new(3)?;
        for t in tasks {
            h.add(t.await??).ok();
        }
        let after = store.stats();
        let events = after.events - before.events;
        let commits = (after.transactions - before.transactions).max(1);
        let p50 = Duration::from_nanos(h.value_at_quantile(0.5));
        println!(
            "{appenders:>10} | {:>9.0} {:>9.0} {:>10.0} {:>12.1} | {:>10.2}x",
            us(p50),
            us(Duration::from_nanos(h.value_at_quantile(0.99))),
            events as f64 / secs().as_secs_f64(),
            events as f64 / commits as f64,
            us(p50) / us(floor),
        );
    }
    let report = store.verify().await?;
    anyhow::ensure!(report.is_intact(), "chain broken: {report}");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
