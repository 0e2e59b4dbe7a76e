//! Gateway benchmark: the same query direct over tokio-postgres and governed
//! through `sql_query` over MCP streamable HTTP (bearer auth + SQL analysis +
//! Cedar + masking + durable, hash-chained audit), at 1, 8 and 32 concurrent
//! clients, in one run against one throwaway PostgreSQL. Prints p50/p99,
//! throughput, the governed/direct ratios, time per pipeline stage, and
//! checks that no audit event was lost (count + chain verify).
//!
//! Run: `cargo bench -p tollgate-tests --bench gateway` (env BENCH_SECONDS,
//! default 3 per measurement; BENCH_CLIENTS, default `1,8,32`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tollgate_server::config::Config;
use tollgate_server::http::router;
use tollgate_server::state::AppState;
use tollgate_tests::bench::{fsync_floor, secs, sql_call_record};
use tollgate_tests::pg::PgServer;
use tollgate_tests::util::TempDir;

/// The allocator the `tollgate` binary uses, so the benchmark measures it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const POOL: usize = 8;
const QUERY: &str = "SELECT id, status, amount FROM orders WHERE id = $1";

struct Stats {
    p50: Duration,
    p99: Duration,
    per_sec: f64,
    calls: u64,
    /// CPU time per call: this process (server and clients), PostgreSQL.
    cpu_per_call: (Duration, Duration),
}

/// CPU time used so far by this process and by every `postgres` process, from
/// /proc (clock ticks). CPU per call is what bounds throughput on a saturated
/// machine, and unlike calls/s it barely moves when a neighbour steals time.
fn cpu_time() -> (Duration, Duration) {
    fn ticks(stat: &str) -> Option<u64> {
        // Fields after the `(comm)`: state is 3rd, utime 14th, stime 15th.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    }
    let hz = 100u64; // USER_HZ on Linux
    let to = |t: u64| Duration::from_micros(t * 1_000_000 / hz);
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| ticks(&s))
        .unwrap_or(0);
    let mut pg = 0;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            if stat.contains(" (postgres) ") {
                pg += ticks(&stat).unwrap_or(0);
            }
        }
    }
    (to(own), to(pg))
}

async fn measure<F, Fut>(clients: usize, make: F) -> anyhow::Result<Stats>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<
            Output = anyhow::Result<
                Box<
                    dyn FnMut(u64) -> futures::future::BoxFuture<'static, anyhow::Result<()>>
                        + Send,
                >,
            >,
        >,
{
    let mut workers = vec![];
    for c in 0..clients {
        workers.push(make(c).await?);
    }
    // Warm up, then measure for a fixed time.
    let hist = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new(3)?));
    let cpu = Arc::new(std::sync::Mutex::new(None::<(Duration, Duration)>));
    let calls = Arc::new(AtomicU64::new(0));
    let deadline_warm = Instant::now() + Duration::from_millis(500);
    let duration = secs();
    let mut tasks = vec![];
    for (c, mut w) in workers.into_iter().enumerate() {
        let (hist, calls, cpu) = (hist.clone(), calls.clone(), cpu.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new(3).expect("histogram");
            let mut i = c as u64;
            while Instant::now() < deadline_warm {
                w(i % 200 + 1).await?;
                i += 1;
            }
            if let Ok(mut start) = cpu.lock()
                && start.is_none()
            {
                *start = Some(cpu_time());
            }
            let end = Instant::now() + duration;
            let mut n = 0;
            while Instant::now() < end {
                let t = Instant::now();
                w(i % 200 + 1).await?;
                local.record(t.elapsed().as_nanos() as u64).ok();
                i += 1;
                n += 1;
            }
            calls.fetch_add(n, Ordering::Relaxed);
            hist.lock()
                .map_err(|_| anyhow!("poisoned"))?
                .add(&local)
                .ok();
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let (own1, pg1) = cpu_time();
    let (own0, pg0) = cpu
        .lock()
        .map_err(|_| anyhow!("poisoned"))?
        .unwrap_or((own1, pg1));
    let h = hist.lock().map_err(|_| anyhow!("poisoned"))?;
    let calls = calls.load(Ordering::Relaxed);
    let per = |d: Duration| d / (calls.max(1) as u32);
    Ok(Stats {
        p50: Duration::from_nanos(h.value_at_quantile(0.5)),
        p99: Duration::from_nanos(h.value_at_quantile(0.99)),
        per_sec: calls as f64 / duration.as_secs_f64(),
        calls,
        cpu_per_call: (per(own1.saturating_sub(own0)), per(pg1.saturating_sub(pg0))),
    })
}

/// The two ways an MCP client talks streamable HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// 2025-11-25: `initialize`, then requests on an `Mcp-Session-Id` session
    /// (answered as SSE streams).
    Session,
    /// 2026-07-28: no session; every request carries its protocol metadata
    /// (answered as JSON when nothing precedes the result).
    Stateless,
    /// 2026-07-28, and the SQL text differs on every call (a literal that
    /// changes), as when an agent writes its values into the SQL: the
    /// analysis cache never hits and PostgreSQL prepares every statement.
    StatelessNewSql,
}

impl Protocol {
    fn label(self) -> &'static str {
        match self {
            Protocol::Session => "2025-11-25 session",
            Protocol::Stateless => "2026-07-28 stateless",
            Protocol::StatelessNewSql => "stateless, new SQL",
        }
    }
}

/// One MCP client over streamable HTTP.
struct McpClient {
    http: reqwest::Client,
    url: String,
    token: String,
    /// `Some` in session mode.
    session: Option<String>,
    /// A different SQL text on every call.
    new_sql: bool,
}

/// Makes every "new SQL" text unique across the run.
static SQL_SERIAL: AtomicU64 = AtomicU64::new(0);

fn sse_result(body: &str) -> anyhow::Result<Value> {
    for line in body.lines() {
        if let Some(d) = line.strip_prefix("data:")
            && !d.trim().is_empty()
        {
            let v: Value = serde_json::from_str(d.trim())?;
            if v.get("id").is_some() {
                return Ok(v);
            }
        }
    }
    serde_json::from_str(body).context("no JSON-RPC response in body")
}

impl McpClient {
    async fn connect(url: &str, token: &str, protocol: Protocol) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(4)
            .build()?;
        if protocol != Protocol::Session {
            return Ok(McpClient {
                http,
                url: url.into(),
                token: token.into(),
                session: None,
                new_sql: protocol == Protocol::StatelessNewSql,
            });
        }
        let resp = http
            .post(url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}))
            .send()
            .await?;
        let session = resp
            .headers()
            .get("mcp-session-id")
            .context("no session id")?
            .to_str()?
            .to_string();
        resp.text().await?;
        let c = McpClient {
            http,
            url: url.into(),
            token: token.into(),
            session: Some(session),
            new_sql: false,
        };
        c.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(c)
    }

    async fn post(&self, body: Value) -> anyhow::Result<String> {
        let request = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream");
        let request = match &self.session {
            Some(session) => request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", "2025-11-25"),
            None => request
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "tools/call")
                .header("mcp-name", "sql_query"),
        };
        let resp = request.json(&body).send().await?;
        anyhow::ensure!(resp.status().is_success(), "HTTP {}", resp.status());
        Ok(resp.text().await?)
    }

    async fn query(&self, id: u64) -> anyhow::Result<()> {
        let mut params = json!({"name": "sql_query",
            "arguments": {"connection": "shop", "sql": QUERY, "params": [id as i64]}});
        if self.new_sql {
            let n = SQL_SERIAL.fetch_add(1, Ordering::Relaxed);
            params["arguments"]["sql"] = json!(format!("{QUERY} AND amount > -{n}"));
        }
        if self.session.is_none() {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            });
        }
        let body = self
            .post(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}))
            .await?;
        let v = sse_result(&body)?;
        let r = &v["result"];
        if r["isError"] == json!(true) || r["structuredContent"]["row_count"] != json!(1) {
            return Err(anyhow!("unexpected result: {v}"));
        }
        Ok(())
    }
}

/// Client counts to measure (BENCH_CLIENTS, comma-separated; default 1, 8, 32).
fn client_counts() -> Vec<usize> {
    std::env::var("BENCH_CLIENTS")
        .ok()
        .map(|s| s.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![1, 8, 32])
}

fn fmt(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// p50 of `op` over `n` sequential runs.
async fn p50_of<F, Fut>(n: usize, mut op: F) -> anyhow::Result<Duration>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut h = Histogram::<u64>::new(3)?;
    for i in 0..n as u64 {
        let t = Instant::now();
        op(i).await?;
        h.record(t.elapsed().as_nanos() as u64).ok();
    }
    Ok(Duration::from_nanos(h.value_at_quantile(0.5)))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    tollgate_server::init_crypto();
    let pg = PgServer::start()?;
    let url = pg.create_database(
        "shop",
        "CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL, amount numeric(10,2) NOT NULL);
         INSERT INTO orders SELECT g, 'paid', g * 1.5 FROM generate_series(1, 200) g;",
    )?;
    let dir = TempDir::new("tollgate-bench")?;
    std::fs::create_dir_all(dir.path().join("policies"))?;
    std::fs::write(
        dir.path().join("policies/bench.cedar"),
        r#"permit(principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource == Tollgate::Connection::"shop");
permit(principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select", resource in Tollgate::Connection::"shop");
forbid(principal, action, resource) when { context has functions && context.functions.contains("pg_read_file") };"#,
    )?;
    // SAFETY: set before any thread reads the environment.
    unsafe { std::env::set_var("BENCH_DATABASE_URL", &url) };
    let config_path = dir.path().join("tollgate.toml");
    std::fs::write(
        &config_path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\n[auth]\nhs256_secret = \"bench-secret-bench-secret-bench-secret\"\n\
             [[connection]]\nname = \"shop\"\nkind = \"postgres\"\nurl = \"${{env:BENCH_DATABASE_URL}}\"\npool_size = {POOL}\n"
        ),
    )?;
    let config = Config::load(&config_path).map_err(|e| anyhow!("{e:?}"))?;
    let gateway = tollgate_server::app::gateway(&config).await?;
    let auth = tollgate_server::app::authenticator(&config)?.context("auth")?;
    let token = auth.mint_hs256("bench", &["agents".to_string()], Duration::from_secs(3600))?;
    let state = AppState {
        gateway: gateway.clone(),
        auth: Arc::new(auth),
        public_url: "http://127.0.0.1".into(),
        issuer: None,
        login: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = router(
        state,
        vec!["127.0.0.1".into(), addr.to_string()],
        Default::default(),
    );
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mcp_url = format!("http://{addr}/mcp");

    // Direct baseline: the same pool size as the gateway's connection.
    let mut pg_cfg = deadpool_postgres::Config::new();
    pg_cfg.url = Some(url.clone());
    pg_cfg.pool = Some(deadpool_postgres::PoolConfig::new(POOL));
    let pool = pg_cfg.create_pool(
        Some(deadpool_postgres::Runtime::Tokio1),
        tokio_postgres::NoTls,
    )?;

    println!(
        "gateway benchmark: `{QUERY}` on PostgreSQL, {POOL}-connection pool on both paths, {:?} per measurement",
        secs()
    );
    println!(
        "{:>20} {:>7} | {:>10} {:>10} {:>10} | {:>10} {:>10} {:>10} | {:>9} {:>9} {:>9}",
        "MCP over HTTP",
        "clients",
        "direct p50",
        "p99",
        "calls/s",
        "gov. p50",
        "p99",
        "calls/s",
        "added p50",
        "p50 ratio",
        "tput ratio"
    );
    let mut governed_calls = 0;
    let mut stage_rows = vec![];
    let mut cpu_rows = vec![];
    for clients in client_counts() {
        let direct = measure(clients, |_| {
            let pool = pool.clone();
            async move {
                let f: Box<
                    dyn FnMut(u64) -> futures::future::BoxFuture<'static, anyhow::Result<()>>
                        + Send,
                > = Box::new(move |id| {
                    let pool = pool.clone();
                    Box::pin(async move {
                        let c = pool.get().await?;
                        let st = c.prepare_cached(QUERY).await?;
                        let rows = c.query(&st, &[&(id as i32)]).await?;
                        anyhow::ensure!(rows.len() == 1);
                        Ok(())
                    })
                });
                Ok(f)
            }
        })
        .await?;
        for protocol in [
            Protocol::Session,
            Protocol::Stateless,
            Protocol::StatelessNewSql,
        ] {
            let before = gateway.stage_times();
            let governed = measure(clients, |_| {
                let (u, t) = (mcp_url.clone(), token.clone());
                async move {
                    let c = Arc::new(McpClient::connect(&u, &t, protocol).await?);
                    let f: Box<
                        dyn FnMut(u64) -> futures::future::BoxFuture<'static, anyhow::Result<()>>
                            + Send,
                    > = Box::new(move |id| {
                        let c = c.clone();
                        Box::pin(async move { c.query(id).await })
                    });
                    Ok(f)
                }
            })
            .await?;
            governed_calls += governed.calls;
            let after = gateway.stage_times();
            stage_rows.push((clients, protocol, before, after));
            cpu_rows.push((
                clients,
                protocol,
                direct.cpu_per_call,
                governed.cpu_per_call,
            ));
            println!(
                "{:>20} {clients:>7} | {:>10} {:>10} {:>10.0} | {:>10} {:>10} {:>10.0} | {:>9} {:>8.2}x {:>8.2}x",
                protocol.label(),
                fmt(direct.p50),
                fmt(direct.p99),
                direct.per_sec,
                fmt(governed.p50),
                fmt(governed.p99),
                governed.per_sec,
                fmt(governed.p50.saturating_sub(direct.p50)),
                governed.p50.as_secs_f64() / direct.p50.as_secs_f64(),
                governed.per_sec / direct.per_sec,
            );
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\nCPU per call, µs (process = gateway + benchmark clients; postgres = all its processes), \
         and the calls/s that CPU cost allows on {cores} cores:"
    );
    println!(
        "{:>20} {:>7} | {:>12} {:>9} | {:>12} {:>9} | {:>14}",
        "MCP over HTTP",
        "clients",
        "direct proc",
        "postgres",
        "gov. proc",
        "postgres",
        "gov. CPU-bound"
    );
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    for (clients, protocol, (dp, dg), (gp, gg)) in &cpu_rows {
        let per_call = us(*gp) + us(*gg);
        println!(
            "{:>20} {clients:>7} | {:>12.0} {:>9.0} | {:>12.0} {:>9.0} | {:>12.0}/s",
            protocol.label(),
            us(*dp),
            us(*dg),
            us(*gp),
            us(*gg),
            cores as f64 * 1e6 / per_call.max(1.0),
        );
    }
    println!(
        "\ntime per pipeline stage, mean µs per governed call (incl. warm-up), by client count:"
    );
    print!("{:>20} {:>7} |", "MCP over HTTP", "clients");
    for (stage, _, _) in gateway.stage_times() {
        print!(" {stage:>9}");
    }
    println!();
    for (clients, protocol, before, after) in &stage_rows {
        print!("{:>20} {clients:>7} |", protocol.label());
        for ((_, n0, t0), (_, n1, t1)) in before.iter().zip(after) {
            let n = (n1 - n0).max(1);
            print!(" {:>9.1}", (*t1 - *t0).as_secs_f64() * 1e6 / n as f64);
        }
        println!();
    }
    let fsync = fsync_floor(&dir.path().join("data"), 200)?;
    // What one sequential call cannot avoid, measured here: an MCP request
    // that does no gateway work, and one durable append to the audit store.
    let probe = McpClient::connect(&mcp_url, &token, Protocol::Session).await?;
    let ping = p50_of(2000, |i| {
        let probe = &probe;
        async move {
            probe
                .post(json!({"jsonrpc": "2.0", "id": i, "method": "ping"}))
                .await
                .map(drop)
        }
    })
    .await?;
    let audit = gateway.audit();
    let append = p50_of(2000, |i| {
        let audit = audit.clone();
        async move {
            audit.append(sql_call_record(i)).await?;
            Ok(())
        }
    })
    .await?;
    println!(
        "\nfloors at 1 client, p50: one synchronous 4 KiB write + fdatasync in the data dir {}; \
         one durable audit append (SQLite WAL commit of the event, its indexes and the chain head) {}; \
         an MCP request that does no gateway work (`ping`, HTTP + JSON-RPC + session) {}",
        fmt(fsync),
        fmt(append),
        fmt(ping)
    );
    // No lost audit events: every measured call (plus warm-up) is in the chain.
    let report = gateway.audit().verify().await?;
    println!(
        "\naudit: {} events recorded for >= {governed_calls} measured governed calls; chain {}",
        report.checked,
        if report.is_intact() {
            "intact"
        } else {
            "BROKEN"
        }
    );
    anyhow::ensure!(
        report.is_intact() && report.checked >= governed_calls,
        "lost or broken audit events: {report}"
    );
    Ok(())
}
