//! SSH exec benchmark: `uname -a` on a throwaway OpenSSH sshd
//! (tests/src/sshd.rs), at 1 client
//! - directly on a warm session of `tollgate_ssh::transport::SshPool` (the
//!   russh transport Tollgate itself uses): the floor;
//! - through the gateway in process (`Gateway::call`, no MCP transport), with
//!   the time per pipeline stage;
//! - through Tollgate's `ssh_exec` over MCP stdio (analysis of the command
//!   line, Cedar, execution on the pooled transport, masking of stdout and
//!   stderr, a masked asciicast recording stored before the durable
//!   hash-chained audit event);
//! - through ssh-mcp (npm `ssh-mcp`, a Node.js server on ssh2) `run-command`
//!   over MCP stdio, with its default audit log and with
//!   `--auditTamperEvident` (its hash chain).
//!
//! Both MCP servers are driven by the same client
//! ([`tollgate_tests::mcp_stdio::StdioClient`]), log in as the same user with
//! the same key, and are checked to answer `Linux ...` on every call. Then
//! 32 calls are sent at once on one MCP stdio session (pipelined JSON-RPC
//! requests) to each server, in bursts: Tollgate must answer every one
//! without an error (one connection: its session pool); the peer's errors are
//! counted and shown. Finally the Tollgate child's audit chain is verified and
//! must hold every call, each with its recording.
//!
//! Run: `cargo bench -p tollgate-tests --bench ssh_exec` (BENCH_SECONDS per
//! measurement, default 3). The peer comes from `SSH_MCP` (the path of its
//! `build/index.js`), or is installed with npm into `target/bench-node`
//! (needs Node.js and npm); sshd from `apt-get install -y openssh-server`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use gateway_core::Principal;
use gateway_core::approval::CallContext;
use gateway_core::audit::AuditFilter;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tollgate_ssh::transport::{ClientKey, ExecRequest, HostKeyPin, HostSpec, SshPool};
use tollgate_tests::bench::{fsync_floor, measure, ms, npm_peer, secs};
use tollgate_tests::mcp_stdio::StdioClient;
use tollgate_tests::sshd::SshdServer;
use tollgate_tests::stdio::child_server_command;
use tollgate_tests::util::TempDir;

/// The allocator the `tollgate` binary uses, so the benchmark measures it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PEER_VERSION: &str = "2.11.0";
const COMMAND: &str = "uname -a";
/// Calls sent at once on one MCP session.
const BURST: usize = 32;

/// The client key in a file of its own (mode 0600), for both servers.
fn write_key(sshd: &SshdServer, dir: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("client_ed25519");
    std::fs::write(&key, sshd.client_key_pem())?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    Ok(key)
}

/// A Tollgate config dir under `dir`: policy, `tollgate.toml` with a stdio
/// identity and one SSH connection `web` pinned to the server's host key.
fn write_config(sshd: &SshdServer, dir: &Path, key: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir.join("policies"))?;
    std::fs::write(
        dir.join("policies/bench.cedar"),
        r#"permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource);
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"ssh:exec",
        resource == Tollgate::Connection::"web")
when { ["uname"].containsAll(context.runs) && !context.sudo && !context.shell };
forbid (principal, action == Tollgate::Action::"ssh:shell", resource);
"#,
    )?;
    let config = dir.join("tollgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
data_dir = "data"

[auth]
hs256_secret = "ssh-bench-secret-0123456789abcdef-0123"

[policy]
dir = "policies"

[stdio]
sub = "bench"
groups = ["agents"]

[[connection]]
name = "web"
kind = "ssh"
host = "{host}"
port = {port}
user = "{user}"
private_key = "${{file:{key}}}"
host_key = "{host_key}"
timeout = "20s"
"#,
            host = sshd.host(),
            port = sshd.port(),
            user = sshd.user(),
            key = key.display(),
            host_key = sshd.host_key_line(),
        ),
    )?;
    Ok(config)
}

/// The text of a tool reply, failing on an error reply.
fn reply_text(r: &Value) -> anyhow::Result<String> {
    let result = r
        .get("result")
        .with_context(|| format!("error reply: {r}"))?;
    if result["isError"] == true {
        bail!("tool error: {result}");
    }
    Ok(result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n"))
}

/// A Tollgate `ssh_exec` reply: exit 0 and stdout `Linux ...`.
fn check_tollgate(r: &Value) -> anyhow::Result<()> {
    reply_text(r)?;
    let s = &r["result"]["structuredContent"];
    if s["exit_code"] != 0 || !s["stdout"].as_str().is_some_and(|o| o.starts_with("Linux")) {
        bail!("tollgate did not return uname's answer: {r:.300}");
    }
    Ok(())
}

/// An ssh-mcp `run-command` reply: text holding `Linux`.
fn check_peer(r: &Value) -> anyhow::Result<()> {
    let text = reply_text(r)?;
    if !text.contains("Linux") {
        bail!("ssh-mcp did not return uname's answer: {text:.300}");
    }
    Ok(())
}

/// p50 of 200 MCP `ping`s: the stdio round trip that does no work.
fn ping_p50(client: &mut StdioClient) -> anyhow::Result<Duration> {
    let mut h = Histogram::<u64>::new(3)?;
    for id in 0..200 {
        let id = 500_000 + id;
        let t = Instant::now();
        client.send(&json!({"jsonrpc": "2.0", "id": id, "method": "ping"}))?;
        client
            .reply(id, Duration::from_secs(10))
            .ok_or_else(|| anyhow!("no reply to ping"))?;
        h.record(t.elapsed().as_nanos() as u64)?;
    }
    Ok(Duration::from_nanos(h.value_at_quantile(0.5)))
}

/// What one burst of concurrent calls did.
struct Burst {
    wall: Duration,
    errors: Vec<String>,
}

/// `n` `tools/call`s written at once on `session`; every reply checked by
/// `check`.
fn burst(
    session: &mut StdioClient,
    n: usize,
    tool: &str,
    args: &Value,
    check: fn(&Value) -> anyhow::Result<()>,
) -> anyhow::Result<Burst> {
    let t = Instant::now();
    let replies = session.call_tool_pipelined(n, tool, args, Duration::from_secs(120))?;
    let wall = t.elapsed();
    let errors = replies
        .iter()
        .filter_map(|v| check(v).err().map(|e| format!("{e:#}")))
        .collect();
    Ok(Burst { wall, errors })
}

/// Bursts of [`BURST`] concurrent calls for `secs()` (at least 5).
struct BurstStats {
    bursts: usize,
    calls: usize,
    errors: Vec<String>,
    wall_p50: Duration,
    wall_max: Duration,
    calls_per_s: f64,
}

impl std::fmt::Display for BurstStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bursts, {} calls, {} errors; wall per burst p50 {:.1} ms, max {:.1} ms; {:.0} calls/s",
            self.bursts,
            self.calls,
            self.errors.len(),
            ms(self.wall_p50),
            ms(self.wall_max),
            self.calls_per_s
        )
    }
}

fn bursts(
    session: &mut StdioClient,
    tool: &str,
    args: &Value,
    check: fn(&Value) -> anyhow::Result<()>,
) -> anyhow::Result<BurstStats> {
    // One warm-up burst (opens the sessions a burst needs), not counted.
    burst(session, BURST, tool, args, check)?;
    let mut walls = Vec::new();
    let mut errors = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < secs() || walls.len() < 5 {
        let b = burst(session, BURST, tool, args, check)?;
        walls.push(b.wall);
        errors.extend(b.errors);
    }
    let total: Duration = walls.iter().sum();
    let bursts = walls.len();
    walls.sort();
    Ok(BurstStats {
        bursts,
        calls: bursts * BURST,
        errors,
        wall_p50: walls[bursts / 2],
        wall_max: walls[bursts - 1],
        calls_per_s: (bursts * BURST) as f64 / total.as_secs_f64(),
    })
}

/// Time per pipeline stage between two `stage_times` snapshots, mean µs.
fn stage_line(
    before: &[(&'static str, u64, Duration)],
    after: &[(&'static str, u64, Duration)],
) -> String {
    before
        .iter()
        .zip(after)
        .map(|((stage, n0, t0), (_, n1, t1))| {
            let n = (n1 - n0).max(1);
            format!("{stage} {:.1}", (*t1 - *t0).as_secs_f64() * 1e6 / n as f64)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn load_config(path: &Path) -> anyhow::Result<tollgate_server::config::Config> {
    tollgate_server::config::Config::load(path).map_err(|e| {
        anyhow!(
            "config {}: {}",
            path.display(),
            e.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })
}

/// How the peer is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerVariant {
    /// As installed: its default (append-only, unchained) audit log.
    Default,
    /// `--auditTamperEvident`: its audit lines hash-chained.
    TamperEvident,
    /// A diagnostic, not the product: TCP_NODELAY forced on its sockets.
    NoDelay,
}

impl PeerVariant {
    fn label(self) -> &'static str {
        match self {
            PeerVariant::Default => "default",
            PeerVariant::TamperEvident => "--auditTamperEvident",
            PeerVariant::NoDelay => "TCP_NODELAY forced",
        }
    }
}

/// ssh2 (1.17) leaves Nagle's algorithm on for its socket; this preload
/// turns it off on every socket the peer connects, to show how much of its
/// latency is Nagle + delayed ACKs rather than its own work.
const NODELAY_PRELOAD: &str = "import net from 'node:net';\n\
const connect = net.Socket.prototype.connect;\n\
net.Socket.prototype.connect = function (...args) { this.setNoDelay(true); return connect.apply(this, args); };\n";

fn peer_command(
    entry: &Path,
    sshd: &SshdServer,
    key: &Path,
    home: &Path,
    variant: PeerVariant,
) -> anyhow::Result<Command> {
    // Its own HOME: no config file of this machine is read, and its audit
    // log ($XDG_DATA_HOME/ssh-mcp/audit.log) lands in the temp dir.
    std::fs::create_dir_all(home)?;
    let log = std::fs::File::create(home.join("stderr.log"))?;
    let mut cmd = Command::new("node");
    if variant == PeerVariant::NoDelay {
        let preload = home.join("nodelay.mjs");
        std::fs::write(&preload, NODELAY_PRELOAD)?;
        cmd.arg(format!("--import=file://{}", preload.display()));
    }
    cmd.arg(entry)
        .arg(format!("--host={}", sshd.host()))
        .arg(format!("--port={}", sshd.port()))
        .arg(format!("--user={}", sshd.user()))
        .arg(format!("--key={}", key.display()))
        .args(match variant {
            PeerVariant::TamperEvident => &["--auditTamperEvident"][..],
            _ => &[],
        })
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .stderr(log);
    Ok(cmd)
}

fn main() -> anyhow::Result<()> {
    tollgate_tests::run_child_server_if_asked();
    tollgate_server::init_crypto();
    let entry = npm_peer("ssh-mcp", PEER_VERSION, "ssh-mcp/build/index.js", "SSH_MCP")?;
    let sshd = SshdServer::start()?;
    println!(
        "sshd ready in {:.2} s on port {} (user {})",
        sshd.start_time.as_secs_f64(),
        sshd.port(),
        sshd.user()
    );
    let rt = tokio::runtime::Runtime::new()?;
    let dir = TempDir::new("ssh-bench")?;
    let key = write_key(&sshd, dir.path())?;

    // The floor: the same russh transport, a warm session, in this process.
    let pool = SshPool::new(
        HostSpec {
            host: sshd.host().to_string(),
            port: sshd.port(),
            user: sshd.user().to_string(),
            key: ClientKey::from_openssh(&sshd.client_key_pem(), None)?,
            pin: HostKeyPin::parse_line(&sshd.host_key_line())?,
            connect_timeout: Duration::from_secs(10),
        },
        1,
    );
    let direct = measure(5, || {
        let out =
            rt.block_on(pool.exec(ExecRequest::new(COMMAND, 1 << 20, Duration::from_secs(20))))?;
        if out.exit_code != Some(0) || !out.stdout.starts_with(b"Linux") {
            bail!("direct exec: {out:?}");
        }
        Ok(())
    })?;
    rt.block_on(pool.close_idle());
    drop(pool);

    let args = json!({"connection": "web", "command": COMMAND});

    // The gateway in process (its own data dir): no MCP transport, and the
    // time per stage.
    let (in_process, stages, fsync) = {
        let config = write_config(&sshd, &dir.path().join("in-process"), &key)?;
        let gateway = rt.block_on(tollgate_server::app::gateway(&load_config(&config)?))?;
        let who = Principal {
            sub: "bench".into(),
            groups: vec!["agents".into()],
        };
        let call = || {
            let r = rt.block_on(gateway.call(
                &who,
                "ssh_exec",
                args.clone(),
                &CallContext {
                    wait: Some(Duration::ZERO),
                    ..Default::default()
                },
            ));
            check_tollgate(&json!({"result": {
                "isError": r.is_error, "structuredContent": r.structured, "content": []}}))
        };
        call()?;
        let before = gateway.stage_times();
        let stats = measure(5, call)?;
        let stages = stage_line(&before, &gateway.stage_times());
        let fsync = fsync_floor(&dir.path().join("in-process/data"), 200)?;
        (stats, stages, fsync)
    };

    // Tollgate: this binary re-executed as `tollgate serve --stdio`.
    let config = write_config(&sshd, &dir.path().join("stdio"), &key)?;
    let tollgate_cmd = || -> anyhow::Result<Command> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("tollgate.log"))?;
        let mut cmd = child_server_command(&config, &[]);
        cmd.current_dir(dir.path().join("stdio"))
            .env("RUST_LOG", "warn")
            .stderr(log);
        Ok(cmd)
    };
    let mut tollgate = StdioClient::spawn(&mut tollgate_cmd()?, "bench")?;
    let governed = measure(5, || {
        check_tollgate(&tollgate.call_tool("ssh_exec", args.clone())?)
    })?;
    let tollgate_ping = ping_p50(&mut tollgate)?;
    tollgate.close(Duration::from_secs(10));
    let mut session = StdioClient::spawn(&mut tollgate_cmd()?, "bench-burst")?;
    let tollgate_burst = bursts(&mut session, "ssh_exec", &args, check_tollgate)?;
    session.close(Duration::from_secs(10));

    // Every call the child served is in its audit chain, with a recording.
    let tollgate_calls = governed.calls as usize + 5 + (tollgate_burst.bursts + 1) * BURST;
    let (checked, intact, recorded) = rt.block_on(async {
        let gateway = tollgate_server::app::gateway(&load_config(&config)?).await?;
        let report = gateway.audit().verify().await?;
        let last = gateway
            .audit()
            .list(&AuditFilter {
                tool: Some("ssh_exec".into()),
                limit: Some(100),
                ..Default::default()
            })
            .await?;
        let recorded = last.len() == 100 && last.iter().all(|e| e.record.recording.is_some());
        anyhow::Ok((report.checked, report.is_intact(), recorded))
    })?;

    // The peer, with its default audit log and with its hash chain.
    let peer_args = json!({"command": COMMAND});
    let mut peer_stats = Vec::new();
    for variant in [
        PeerVariant::Default,
        PeerVariant::TamperEvident,
        PeerVariant::NoDelay,
    ] {
        let label = variant.label();
        let home = dir.path().join(format!("peer-{}", peer_stats.len()));
        let mut server = StdioClient::spawn(
            &mut peer_command(&entry, &sshd, &key, &home, variant)?,
            "bench",
        )
        .with_context(|| {
            format!(
                "ssh-mcp@{PEER_VERSION} did not start: {}",
                std::fs::read_to_string(home.join("stderr.log")).unwrap_or_default()
            )
        })?;
        let stats = measure(5, || {
            check_peer(&server.call_tool("run-command", peer_args.clone())?)
        })
        .with_context(|| {
            format!(
                "ssh-mcp@{PEER_VERSION} failed; its stderr: {}",
                std::fs::read_to_string(home.join("stderr.log")).unwrap_or_default()
            )
        })?;
        let ping = ping_p50(&mut server)?;
        server.close(Duration::from_secs(10));
        peer_stats.push((label, stats, ping, home));
    }
    let home = dir.path().join("peer-burst");
    let mut session = StdioClient::spawn(
        &mut peer_command(&entry, &sshd, &key, &home, PeerVariant::Default)?,
        "bench-burst",
    )?;
    let peer_burst = bursts(&mut session, "run-command", &peer_args, check_peer)?;
    session.close(Duration::from_secs(10));

    println!(
        "\nssh exec of `{COMMAND}`, 1 client, same sshd, same login and key (BENCH_SECONDS={:?})",
        secs()
    );
    println!("  direct russh SshPool, warm session (floor)        {direct}");
    println!(
        "  tollgate Gateway::call in process (no MCP)        {in_process}   {:.2}x floor",
        ms(in_process.p50) / ms(direct.p50)
    );
    println!(
        "  tollgate ssh_exec (MCP stdio)                     {governed}   {:.2}x floor",
        ms(governed.p50) / ms(direct.p50)
    );
    for (label, s, _, _) in &peer_stats {
        println!(
            "  ssh-mcp {PEER_VERSION} run-command {label:<21} {s}   {:.2}x floor; tollgate/peer p50 {:.2}x",
            ms(s.p50) / ms(direct.p50),
            ms(governed.p50) / ms(s.p50)
        );
    }
    println!("time per pipeline stage in process, mean µs per call: {stages}");
    println!(
        "floors, p50: one synchronous 4 KiB write + fdatasync in the data dir {:.3} ms; \
         an MCP stdio `ping` (no work): tollgate {:.3} ms, ssh-mcp {:.3} ms",
        ms(fsync),
        ms(tollgate_ping),
        ms(peer_stats[0].2)
    );
    println!(
        "\n{BURST} concurrent calls on one MCP stdio session (pipelined), bursts for BENCH_SECONDS:"
    );
    println!("  tollgate ssh_exec   {tollgate_burst}");
    println!("  ssh-mcp run-command {peer_burst}");
    if let Some(e) = peer_burst.errors.first() {
        println!("    first ssh-mcp error: {e:.300}");
    }
    println!(
        "audit (tollgate stdio child): {checked} events for {tollgate_calls} calls; chain {}; last 100 ssh_exec events each name a recording: {recorded}",
        if intact { "intact" } else { "BROKEN" }
    );
    for (label, _, _, home) in &peer_stats {
        let log = home.join(".local/share/ssh-mcp/audit.log");
        let lines = std::fs::read_to_string(&log)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        println!(
            "audit (ssh-mcp {label}): {lines} lines in {}",
            log.display()
        );
    }
    if let Some(e) = tollgate_burst.errors.first() {
        bail!(
            "{} of {} concurrent tollgate calls failed; first: {e}",
            tollgate_burst.errors.len(),
            tollgate_burst.calls
        );
    }
    if !intact || (checked as usize) < tollgate_calls || !recorded {
        bail!("lost or broken audit events, or a call without its recording");
    }
    Ok(())
}
