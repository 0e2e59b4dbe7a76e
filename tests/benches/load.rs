//! Load benchmark (issue 14 item 4): the real `tollgate serve` (this binary
//! re-executed as the server, with the binary's allocator) on a throwaway
//! PostgreSQL, driven by LOAD_CLIENTS concurrent MCP clients over
//! streamable HTTP, each making LOAD_CALLS governed calls of the mix of
//! `tollgate_tests::load` (40 % reads, 20 % masked reads, 16 % denials, 22 %
//! inserts, 2 % inserts a reviewer approves over the REST API while the
//! call waits). Prints calls, errors, timeouts, p50/p99 (all and by kind),
//! throughput, the server's RSS sampled every second (after warm-up, the
//! first 10 % of calls, against the end), the audit events against the
//! calls made (matched call by call by marker) and `tollgate audit verify`.
//! Fails (exit 1) on any error, timeout, missing or extra event, committed
//! insert without its intent, or a broken chain.
//!
//! Run: `cargo bench -p tollgate-tests --bench load` (env LOAD_CLIENTS,
//! default 64; LOAD_CALLS per client, default 3000: the 640,000 calls of
//! 64 x 10,000 take ~15-20 min on 2 shared cores, 192,000 about 5; LOAD_POOL, the
//! connection's pool size, default 8). Quick check:
//! `LOAD_CLIENTS=4 LOAD_CALLS=50 cargo test -p tollgate-tests --bench load`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::ensure;
use tollgate_tests::load::{
    Fixture, LoadSpec, Progress, RssReport, RssSampler, Summary, run_load, unrecorded_inserts,
};

/// The allocator the `tollgate` binary uses (the server is this binary).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    tollgate_tests::run_child_server_if_asked();
    tollgate_server::init_crypto();
    tokio::runtime::Runtime::new()?.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let (clients, calls, pool) = (
        env("LOAD_CLIENTS", 64),
        env("LOAD_CALLS", 3000),
        env("LOAD_POOL", 8),
    );
    let total = (clients * calls) as u64;
    let fx = Fixture::new("loadbench", &[], None, pool)?;
    let server = fx.start_server().await?;
    println!(
        "load benchmark: {clients} MCP clients (HTTP sessions) x {calls} governed calls = {total} calls \
         against PostgreSQL ({pool}-connection pool), server pid {}",
        server.pid()
    );
    let progress = Arc::new(Progress::default());
    let rss = RssSampler::start(server.pid(), progress.clone());
    let spec = LoadSpec::new(clients, calls, 1);
    let t0 = Instant::now();
    let records = run_load(&fx, &spec, progress.clone()).await?;
    let wall = t0.elapsed();
    let samples = rss.stop();
    let summary = Summary::of(&records, wall);
    print!("{summary}");
    println!("wall time {:.1} s", wall.as_secs_f64());

    let warm = total / 10;
    let rss = RssReport::of(&samples, warm);
    match rss {
        Some(r) => println!("{r}"),
        None => println!("RSS: no sample after warm-up (the run was too short)"),
    }
    print!("RSS by calls done:");
    let mut shown = None;
    for tenth in 1..=10u64 {
        let at = samples
            .iter()
            .position(|(_, d, _)| *d >= total * tenth / 10);
        if let Some(i) = at
            && shown != Some(i)
        {
            let (_, done, kib) = samples[i];
            print!(" {done}: {:.1} MiB;", kib as f64 / 1024.0);
            shown = Some(i);
        }
    }
    println!();

    drop(server);
    let audit = fx.export()?;
    let inexact = audit.exact_problems(&records);
    let inserts = unrecorded_inserts(&fx, &audit, true);
    println!(
        "audit: {} call events for {} calls made ({} not exactly one per call), {} intents, \
         {} other entries {:?}",
        audit.events,
        records.len(),
        inexact.len(),
        audit.intents,
        audit.others.values().sum::<u64>(),
        audit.others
    );
    for p in inexact.iter().chain(&inserts).take(10) {
        println!("  {p}");
    }
    let verified = fx.verify()?;
    println!(
        "audit verify: {} ({})",
        verified.line,
        if verified.ok { "exit 0" } else { "FAILED" }
    );
    ensure!(
        summary.errors == 0 && summary.timeouts == 0,
        "{} errors, {} timeouts",
        summary.errors,
        summary.timeouts
    );
    ensure!(
        inexact.is_empty() && audit.events == records.len() as u64,
        "audit events do not match the calls one to one"
    );
    ensure!(inserts.is_empty(), "inserts without their intent");
    ensure!(verified.ok, "audit verify failed");
    Ok(())
}
