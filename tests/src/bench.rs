//! Helpers the benchmarks share: the measurement length, one latency
//! measurement ([`measure`] → [`Stats`]), the durability floor of a
//! directory, an audit record shaped like a governed call's, and the peer
//! MCP servers the benchmarks compare with ([`npm_peer`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gateway_core::Principal;
use gateway_core::audit::{AuditRecord, OutcomeRecord, RequestRecord};
use hdrhistogram::Histogram;
use serde_json::json;

/// Length of one measurement: `BENCH_SECONDS` (default 3).
pub fn secs() -> Duration {
    Duration::from_secs_f64(
        std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0),
    )
}

/// p50 and p99 of one measured path.
pub struct Stats {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Calls measured.
    pub calls: u64,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:>8.3} ms  p99 {:>8.3} ms  ({} calls)",
            ms(self.p50),
            ms(self.p99),
            self.calls
        )
    }
}

/// Milliseconds of `d`.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Call `once` `warmup` times, then for [`secs`] (and at least 20 times),
/// timing each call in nanoseconds.
pub fn measure(
    warmup: usize,
    mut once: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Stats> {
    for _ in 0..warmup {
        once()?;
    }
    let mut h = Histogram::<u64>::new(3)?;
    let (t0, budget) = (Instant::now(), secs());
    while t0.elapsed() < budget || h.len() < 20 {
        let t = Instant::now();
        once()?;
        h.record(t.elapsed().as_nanos() as u64)?;
    }
    Ok(Stats {
        p50: Duration::from_nanos(h.value_at_quantile(0.5)),
        p99: Duration::from_nanos(h.value_at_quantile(0.99)),
        calls: h.len(),
    })
}

/// p50 of `samples` synchronous 4 KiB writes + fdatasync in `dir`: the floor
/// under any write that must be durable before it is acknowledged.
pub fn fsync_floor(dir: &Path, samples: usize) -> anyhow::Result<Duration> {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path)?;
    let mut h = Histogram::<u64>::new(3)?;
    for _ in 0..samples {
        let t = Instant::now();
        f.write_all(&[0u8; 4096])?;
        f.sync_data()?;
        h.record(t.elapsed().as_nanos() as u64).ok();
    }
    std::fs::remove_file(&path)?;
    Ok(Duration::from_nanos(h.value_at_quantile(0.5)))
}

/// The audit record of an allowed one-row `sql_query` call (`i` varies it).
pub fn sql_call_record(i: u64) -> AuditRecord {
    AuditRecord {
        principal: Principal {
            sub: "bench".into(),
            groups: vec!["agents".into()],
        },
        tool: "sql_query".into(),
        connection: Some("shop".into()),
        arguments: json!({"connection": "shop", "sql": "SELECT id, status, amount FROM orders WHERE id = $1", "params": [i]}),
        requests: vec![
            RequestRecord {
                action: "connect".into(),
                resource: "Tollgate::Connection::\"shop\"".into(),
                decision: "allow".into(),
                policies: vec!["bench.cedar:1".into()],
            },
            RequestRecord {
                action: "sql:select".into(),
                resource: "Tollgate::Table::\"shop/public.orders\"".into(),
                decision: "allow".into(),
                policies: vec!["bench.cedar:2".into()],
            },
        ],
        decision: "allow".into(),
        approval: None,
        outcome: OutcomeRecord {
            status: "ok".into(),
            duration_ms: 0,
            rows: Some(1),
            error: None,
        },
        result_preview: json!({"columns": ["id", "status", "amount"], "rows": [[i, "paid", "1.50"]]}),
        masked: Default::default(),
        recording: None,
        intent: None,
    }
}

/// A peer MCP server from npm: the path in env var `override_var` when set,
/// else `file` (relative to `node_modules`) of `package@version`, installed
/// with npm into `target/bench-node` unless that exact version is there.
pub fn npm_peer(
    package: &str,
    version: &str,
    file: &str,
    override_var: &str,
) -> anyhow::Result<PathBuf> {
    use anyhow::Context as _;
    if let Some(p) = std::env::var_os(override_var) {
        return Ok(PathBuf::from(p));
    }
    let prefix = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-node");
    let modules = prefix.join("node_modules");
    let path = modules.join(file);
    let installed = std::fs::read_to_string(modules.join(package).join("package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|p| p["version"] == version);
    if !installed || !path.is_file() {
        std::fs::create_dir_all(&prefix)?;
        let ok = Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--save-exact",
                "--prefix",
            ])
            .arg(&prefix)
            .arg(format!("{package}@{version}"))
            .stdout(Stdio::null())
            .status()
            .with_context(|| format!("npm (apt-get install -y nodejs npm) to install {package}"))?
            .success();
        if !ok || !path.is_file() {
            anyhow::bail!(
                "could not install {package}@{version} with npm into {}; set {override_var} to its {file}",
                prefix.display()
            );
        }
    }
    Ok(path)
}
