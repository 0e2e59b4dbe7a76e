//! Result memory benchmark: what one huge value costs this process when the
//! byte cap is small. For each engine (a throwaway PostgreSQL and MariaDB,
//! a SQLite temp file) it runs 1 and 4 concurrent `sql_query` calls through
//! the connector that each produce one value of `BENCH_VALUE_MB` MB (default
//! 400; MariaDB's `max_allowed_packet` is raised to 1 GiB so it can), with
//! `max_result_bytes` = 1 MiB, plus a baseline of a 1 KiB value.
//!
//! Each scenario runs in a child process of its own (the peak RSS, VmHWM,
//! cannot be reset), which reports its RSS before the calls and its peak
//! after. Printed: the peak, the growth over the RSS before the calls, and
//! the growth as a multiple of `max_result_bytes` × concurrent calls.
//!
//! Run: `cargo bench -p tollgate-tests --bench result_memory`
//! (`BENCH_VALUE_MB`; `BENCH_ENGINES`, e.g. `sqlite,postgres`).

use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, bail};
use gateway_core::connector::{Connector, ExecLimits};
use serde_json::{Value, json};
use tollgate_tests::{MariaDbServer, PgServer, TempDir, connector, limits};

/// The allocator the `tollgate` binary uses, so the benchmark measures it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The gateway's `max_result_bytes` in every scenario.
const CAP: usize = 1 << 20;
/// Set in a child: `engine|url|bytes|concurrent`.
const CHILD: &str = "RESULT_MEMORY_CHILD";

fn status_kb(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/self/status"))
}

fn config(engine: &str, url: &str) -> Value {
    match engine {
        "sqlite" => {
            json!({"name": "m", "kind": "sqlite", "path": url, "statement_timeout": "120s"})
        }
        // As `tollgate serve` builds it (`build_within`): the connection's
        // cap comes down to `max_result_bytes`, and PostgreSQL's wire limit
        // with it.
        kind => json!({"name": "m", "kind": kind, "url": url, "statement_timeout": "120s",
                       "max_bytes": CAP}),
    }
}

fn sql(engine: &str, bytes: usize) -> String {
    match engine {
        "sqlite" => format!("SELECT printf('%.*c', {bytes}, 'x') AS v"),
        "postgres" => format!("SELECT repeat('x', {bytes}) AS v"),
        _ => format!("SELECT REPEAT('x', {bytes}) AS v"),
    }
}

/// One call as the pipeline makes it, under a 1 MiB byte cap: what came
/// back (`truncated`, rows) or the error's text.
async fn capped_call(c: &dyn Connector, sql: &str) -> String {
    let args = json!({"connection": "m", "sql": sql});
    c.prepare("sql_query", &args).await;
    let plan = match c.analyse("sql_query", &args) {
        Ok(p) => p,
        Err(e) => return format!("analysis: {e}"),
    };
    let capped = ExecLimits {
        max_bytes: CAP,
        ..limits()
    };
    match c.execute(&plan, capped).await {
        Ok(out) => format!(
            "rows {} truncated {}",
            out.value["row_count"], out.value["truncated"]
        ),
        Err(e) => {
            let text = e.to_string();
            format!("error: {}", text.chars().take(90).collect::<String>())
        }
    }
}

/// In the child: connect (a warm-up call), note the RSS, run the calls
/// concurrently, print `before_kb peak_kb outcome`.
fn child(spec: &str) -> anyhow::Result<()> {
    let parts: Vec<&str> = spec.split('|').collect();
    let [engine, url, bytes, concurrent] = parts[..] else {
        bail!("bad child spec {spec}");
    };
    let bytes: usize = bytes.parse()?;
    let concurrent: usize = concurrent.parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let c: Arc<dyn Connector> = connector(engine, "m", config(engine, url));
        // Open the pool's sessions and warm the caches first.
        let warm: Vec<_> = (0..concurrent)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { capped_call(&*c, "SELECT 1 AS one").await })
            })
            .collect();
        for w in warm {
            w.await?;
        }
        let before = status_kb("VmRSS:")?;
        let sql = sql(engine, bytes);
        let calls: Vec<_> = (0..concurrent)
            .map(|_| {
                let (c, sql) = (c.clone(), sql.clone());
                tokio::spawn(async move { capped_call(&*c, &sql).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for call in calls {
            outcomes.push(call.await?);
        }
        outcomes.dedup();
        let peak = status_kb("VmHWM:")?;
        println!("{before} {peak} {}", outcomes.join("; "));
        Ok(())
    })
}

fn run_scenario(engine: &str, url: &str, bytes: usize, concurrent: usize) -> anyhow::Result<()> {
    let out = Command::new(std::env::current_exe()?)
        .env(CHILD, format!("{engine}|{url}|{bytes}|{concurrent}"))
        .output()?;
    if !out.status.success() {
        bail!(
            "{engine} child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let line = line.lines().last().unwrap_or_default().to_string();
    let mut words = line.splitn(3, ' ');
    let before: u64 = words.next().unwrap_or("0").parse()?;
    let peak: u64 = words.next().unwrap_or("0").parse()?;
    let outcome = words.next().unwrap_or("");
    let growth = peak.saturating_sub(before) as f64 / 1024.0;
    let budget = (CAP * concurrent) as f64 / (1 << 20) as f64;
    println!(
        "{engine:<9} {:>9} {concurrent:>3}  {:>9.1} {:>9.1} {:>9.1}  {:>7.2}x  {outcome}",
        if bytes >= 1 << 20 {
            format!("{} MB", bytes / 1_000_000)
        } else {
            format!("{} KiB", bytes / 1024)
        },
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        growth,
        growth / budget,
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec);
    }
    let mb: usize = std::env::var("BENCH_VALUE_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let engines = std::env::var("BENCH_ENGINES").unwrap_or("sqlite,postgres,mysql".into());
    let dir = TempDir::new("result-memory")?;
    let mut targets: Vec<(&str, String)> = Vec::new();
    let mut _servers: (Option<PgServer>, Option<MariaDbServer>) = (None, None);
    for engine in engines.split(',') {
        match engine {
            "sqlite" => {
                let path = dir.path().join("m.db");
                targets.push(("sqlite", path.display().to_string()));
            }
            "postgres" => {
                let pg = PgServer::start()?;
                targets.push(("postgres", pg.create_database("m", "")?));
                _servers.0 = Some(pg);
            }
            "mysql" => {
                let my = MariaDbServer::start()?;
                // Lets MariaDB return a value this big (16 MiB by default).
                my.root_sql("SET GLOBAL max_allowed_packet = 1073741824")?;
                targets.push(("mysql", my.create_database("m", "")?));
                _servers.1 = Some(my);
            }
            other => bail!("unknown engine {other}"),
        }
    }
    // Created once: the SQLite connector opens an existing file.
    if engines.contains("sqlite") {
        std::fs::write(dir.path().join("m.db"), b"")?;
    }
    println!(
        "max_result_bytes = 1 MiB; RSS in MiB; growth = peak - RSS before the calls; \
         ratio = growth / (max_result_bytes x concurrent)"
    );
    println!(
        "{:<9} {:>9} {:>3}  {:>9} {:>9} {:>9}  {:>8}  outcome",
        "engine", "value", "n", "before", "peak", "growth", "ratio"
    );
    for (engine, url) in &targets {
        for (bytes, concurrent) in [(1024, 1), (mb * 1_000_000, 1), (mb * 1_000_000, 4)] {
            run_scenario(engine, url, bytes, concurrent)?;
        }
    }
    Ok(())
}
