//! Load and fault harness (the load benchmark and `tests/faults.rs`): the
//! real `tollgate serve` as a child process (the calling binary re-executed,
//! see [`crate::run_child_server_if_asked`]) on a throwaway PostgreSQL,
//! driven by N concurrent MCP clients over streamable HTTP (2025-11-25
//! sessions, bearer tokens), each making M governed calls of a fixed mix:
//! reads, reads of a masked column, denied deletes, inserts into `marks`
//! (no approval) and inserts into `refunds` that a reviewer approves over
//! the REST API while the call waits.
//!
//! Every call carries a unique marker as its first SQL parameter, so the
//! audit export (`tollgate audit export`, intents included) and the target's
//! tables can be matched call by call ([`AuditIndex`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::pg::PgServer;
use crate::util::{TempDir, free_port};

/// The target's tables: `orders` and `customers` (emails, masked) to read,
/// `marks` and `refunds` for the markers of executed inserts.
pub const FIXTURE: &str = r#"
CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL, amount numeric(10,2) NOT NULL);
INSERT INTO orders SELECT g, 'paid', g * 1.5 FROM generate_series(1, 200) g;
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL);
INSERT INTO customers SELECT g, 'customer ' || g, 'customer' || g || '@example.com' FROM generate_series(1, 200) g;
CREATE TABLE marks (marker bigint PRIMARY KEY, client int NOT NULL);
CREATE TABLE refunds (marker bigint PRIMARY KEY, amount int NOT NULL);
"#;

/// Agents read everything and insert into `marks`; inserts into `refunds`
/// need a reviewer; nothing else is permitted (deletes are denied).
pub const POLICY: &str = r#"
@id("agents-connect")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource == Tollgate::Connection::"shop");
@id("agents-read")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select", resource in Tollgate::Connection::"shop");
@id("agents-mark")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:insert", resource == Tollgate::Table::"shop/public.marks");
@id("refunds-reviewed")
@approval("reviewers")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:insert", resource == Tollgate::Table::"shop/public.refunds");
"#;

/// One kind of call in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `SELECT` of one order: allowed, nothing masked.
    Read,
    /// `SELECT` of one customer with the email column: allowed, masked.
    Masked,
    /// `DELETE` from `marks`: denied by policy, nothing runs.
    Denied,
    /// `INSERT` into `marks`: allowed, no approval.
    Insert,
    /// `INSERT` into `refunds`: approved by a reviewer while the call waits.
    Approval,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 5] = [
        Kind::Read,
        Kind::Masked,
        Kind::Denied,
        Kind::Insert,
        Kind::Approval,
    ];

    /// The kind of a client's `i`-th call: of every 50 calls, 20 reads,
    /// 10 masked reads, 8 denials, 11 inserts and 1 approval.
    pub fn of(i: usize) -> Kind {
        match i % 50 {
            0..20 => Kind::Read,
            20..30 => Kind::Masked,
            30..38 => Kind::Denied,
            38..49 => Kind::Insert,
            _ => Kind::Approval,
        }
    }

    /// Label in reports.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Masked => "masked read",
            Kind::Denied => "denied",
            Kind::Insert => "insert",
            Kind::Approval => "approved insert",
        }
    }

    /// Does a call of this kind reach the target when allowed?
    pub fn executes(self) -> bool {
        self != Kind::Denied
    }

    /// The `sql_query` arguments of the call with `marker` by `client`
    /// (the marker is always `$1`).
    pub fn arguments(self, marker: i64, client: usize) -> Value {
        let row = marker.rem_euclid(200) + 1;
        let (sql, params) = match self {
            Kind::Read => (
                "SELECT id, status, amount, $1::bigint AS call FROM orders WHERE id = $2",
                json!([marker, row]),
            ),
            Kind::Masked => (
                "SELECT id, name, email, $1::bigint AS call FROM customers WHERE id = $2",
                json!([marker, row]),
            ),
            Kind::Denied => ("DELETE FROM marks WHERE marker = $1", json!([marker])),
            Kind::Insert => (
                "INSERT INTO marks (marker, client) VALUES ($1, $2)",
                json!([marker, client]),
            ),
            Kind::Approval => (
                "INSERT INTO refunds (marker, amount) VALUES ($1, 10)",
                json!([marker]),
            ),
        };
        json!({"connection": "shop", "sql": sql, "params": params})
    }

    /// Whether `result` (the `structuredContent` of a successful call) is
    /// this call's: its own row, the email masked.
    pub fn check_result(self, marker: i64, result: &Value) -> Result<(), String> {
        let row = &result["rows"][0];
        match self {
            Kind::Read if row[3] != json!(marker) => Err(format!("not this call's row: {result}")),
            Kind::Masked => {
                let raw = format!("customer{}@example.com", marker.rem_euclid(200) + 1);
                if row[3] != json!(marker) {
                    Err(format!("not this call's row: {result}"))
                } else if row[2] == json!(raw) || result["masked"]["EMAIL"].as_u64() != Some(1) {
                    Err(format!("the email is not masked: {result}"))
                } else {
                    Ok(())
                }
            }
            Kind::Approval if result["status"] == "pending_approval" => {
                Err(format!("still pending: {result}"))
            }
            _ => Ok(()),
        }
    }
}

/// How one call ended, as the client saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A result, checked to be this call's.
    Ok,
    /// A tool error (`isError`) with its `error.code`.
    ToolError {
        /// `structuredContent.error.code`.
        code: String,
        /// `structuredContent.error.message`.
        message: String,
    },
    /// A result that is not this call's, a JSON-RPC error, an HTTP error.
    Wrong(String),
    /// No answer: the connection failed or broke.
    Transport(String),
    /// No answer within the client's timeout.
    Timeout,
}

impl Outcome {
    /// A tool error with this code?
    pub fn is_code(&self, want: &str) -> bool {
        matches!(self, Outcome::ToolError { code, .. } if code == want)
    }

    /// What a healthy server answers a call of `kind`.
    pub fn is_expected(&self, kind: Kind) -> bool {
        match kind {
            Kind::Denied => self.is_code("denied"),
            _ => *self == Outcome::Ok,
        }
    }
}

/// One call made.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// Which client made it.
    pub client: usize,
    /// Its marker (`$1`).
    pub marker: i64,
    /// Its kind.
    pub kind: Kind,
    /// How it ended.
    pub outcome: Outcome,
    /// When it was sent.
    pub started: Instant,
    /// When its answer (or error) came.
    pub ended: Instant,
}

/// A throwaway PostgreSQL with the fixture, a config dir with the policies,
/// and how to run `tollgate` on it as a child process.
pub struct Fixture {
    /// The target.
    pub pg: PgServer,
    /// Config, policies, logs (and the data dir unless given).
    pub dir: TempDir,
    /// `tollgate.toml`.
    pub config: PathBuf,
    /// The server's data dir (the audit store).
    pub data_dir: PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The server's stderr, appended by every start.
    pub log: PathBuf,
    /// Words before the CLI's: how the calling binary runs only its child
    /// server (a test binary: its `child_server` test; a benchmark: none).
    child_prefix: Vec<String>,
}

impl Fixture {
    /// Start PostgreSQL with [`FIXTURE`] and write the config (`data_dir`:
    /// where the audit store lives, default `<dir>/data`; `pool_size` of
    /// the connection).
    pub fn new(
        label: &str,
        child_prefix: &[&str],
        data_dir: Option<&Path>,
        pool_size: usize,
    ) -> anyhow::Result<Self> {
        let pg = PgServer::start()?;
        let url = pg.create_database("shop", FIXTURE)?;
        let dir = TempDir::new(label)?;
        std::fs::create_dir_all(dir.path().join("policies"))?;
        std::fs::write(dir.path().join("policies/load.cedar"), POLICY)?;
        let secret = dir.path().join("secret.key");
        std::fs::write(&secret, format!("{label}-load-secret-0123456789abcdef"))?;
        let data_dir = data_dir.map_or_else(|| dir.path().join("data"), Path::to_path_buf);
        let port = free_port();
        let config = dir.path().join("tollgate.toml");
        std::fs::write(
            &config,
            format!(
                r#"[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
data_dir = "{data}"

[auth]
hs256_secret = "${{file:{secret}}}"

[policy]
dir = "policies"

[approval]
wait_seconds = 50
ttl = "1h"

[[masking.columns]]
connection = "shop"
column = "public.customers.email"
type = "EMAIL"

[[connection]]
name = "shop"
kind = "postgres"
url = "{url}"
statement_timeout = "10s"
pool_size = {pool_size}
"#,
                data = data_dir.display(),
                secret = secret.display(),
            ),
        )?;
        let log = dir.path().join("server.log");
        Ok(Fixture {
            pg,
            config,
            data_dir,
            base: format!("http://127.0.0.1:{port}"),
            log,
            child_prefix: child_prefix.iter().map(|s| s.to_string()).collect(),
            dir,
        })
    }

    /// A bearer token for `sub` in `groups`, valid 10 hours.
    pub fn token(&self, sub: &str, groups: &[&str]) -> anyhow::Result<String> {
        let config = tollgate_server::config::Config::load(&self.config)
            .map_err(|e| anyhow!("config: {e:?}"))?;
        let auth = tollgate_server::app::authenticator(&config)?.context("an [auth] section")?;
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        Ok(auth.mint_hs256(sub, &groups, Duration::from_secs(36_000))?)
    }

    /// `tollgate <args>` as a child process of this binary.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cli = vec!["tollgate"];
        cli.extend_from_slice(args);
        let mut c = Command::new(std::env::current_exe().expect("this binary"));
        c.args(&self.child_prefix)
            .env("TOLLGATE_CHILD_ARGS", serde_json::to_string(&cli).unwrap())
            .env("NO_COLOR", "1");
        c
    }

    /// Start `tollgate serve` and wait until `/readyz` answers.
    pub async fn start_server(&self) -> anyhow::Result<Server> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let config = self.config.to_str().context("utf-8 config path")?;
        // Owned by `Server` at once, so a failed start still kills and reaps it.
        let mut server = Server(
            self.command(&["serve", "--config", config])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("spawn the server")?,
        );
        let http = reqwest::Client::new();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(status)) = server.0.try_wait() {
                bail!(
                    "the server exited ({status}) at start:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await
                && r.status().is_success()
            {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the server was not ready within 60 s:\n{}", self.log_tail())
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `tollgate audit verify`: whether it exited 0, and its report line.
    pub fn verify(&self) -> anyhow::Result<Verified> {
        let out = self
            .command(&["audit", "verify", "--config", self.config.to_str().unwrap()])
            .stderr(Stdio::piped())
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find(|l| l.contains("chain "))
            .map(str::to_string)
            .unwrap_or_else(|| format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)));
        let count = |suffix: &str| {
            line.split("; ")
                .find_map(|part| part.strip_suffix(suffix))
                .map_or(0, |n| n.trim().parse().unwrap_or(u64::MAX))
        };
        Ok(Verified {
            ok: out.status.success(),
            unknown: count(
                " call(s) with outcome unknown (the server stopped after their intent was recorded)",
            ),
            open: count(
                " intent(s) without an outcome yet (in flight, or closed at the next start)",
            ),
            line,
        })
    }

    /// `tollgate audit export --format jsonl`, indexed by marker.
    pub fn export(&self) -> anyhow::Result<AuditIndex> {
        let mut child = self
            .command(&[
                "audit",
                "export",
                "--config",
                self.config.to_str().unwrap(),
                "--format",
                "jsonl",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let mut index = AuditIndex::default();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line?;
            // A re-executed test binary prints libtest text too.
            let Some(at) = line.find('{') else { continue };
            let Ok(entry) = serde_json::from_str::<Value>(&line[at..]) else {
                continue;
            };
            if entry.get("seq").is_some() {
                index.add(&entry);
            }
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "audit export failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(index)
    }

    /// The markers in `table` (`marks` or `refunds`) of the target.
    pub fn markers(&self, table: &str) -> anyhow::Result<BTreeSet<i64>> {
        let out = self
            .pg
            .psql("shop", &format!("SELECT marker FROM {table}"))?;
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.trim().parse::<i64>().map_err(Into::into))
            .collect()
    }
}

/// What `tollgate audit verify` said.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Exit status 0.
    pub ok: bool,
    /// The report line (`chain intact: ...`).
    pub line: String,
    /// The calls it counts with outcome unknown.
    pub unknown: u64,
    /// The intents it counts without an outcome yet.
    pub open: u64,
}

/// The `tollgate serve` child; killed (SIGKILL) and reaped on drop.
pub struct Server(Child);

impl Server {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// `kill -9`, and reap it.
    pub fn kill9(mut self) {
        // Child::kill is SIGKILL on Unix.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Still running (not exited)?
    pub fn is_running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }

    /// Resident set size now, KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `VmRSS` of process `pid`, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The audit export, by marker: each call's events (`outcome.status` and
/// the intent they close) and intents (their ids). Entries of other tools
/// than `sql_query` (the approvals' lifecycle, the masking classifier's
/// runs) are counted in `others` by tool and status.
#[derive(Debug, Default)]
pub struct AuditIndex {
    /// Entries of `sql_query` calls that are not intents.
    pub events: u64,
    /// Entries of other tools: (tool, `outcome.status`) → count.
    pub others: std::collections::BTreeMap<(String, String), u64>,
    /// Intent entries.
    pub intents: u64,
    /// Events with `outcome.status` = `unknown`.
    pub unknown: u64,
    /// Events and intents without a marker (not made by the load).
    pub unmarked: u64,
    /// The first few of them, for messages.
    pub unmarked_examples: Vec<String>,
    /// Marker → (status, closed intent) of each of its events.
    pub events_by_marker: HashMap<i64, Vec<(String, Option<String>)>>,
    /// Marker → ids of its intents.
    pub intents_by_marker: HashMap<i64, Vec<String>>,
    /// Intent id → status of the event that names it.
    pub closed: HashMap<String, String>,
}

impl AuditIndex {
    fn add(&mut self, entry: &Value) {
        let status = entry["outcome"]["status"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let tool = entry["tool"].as_str().unwrap_or("");
        if tool != "sql_query" {
            *self.others.entry((tool.to_string(), status)).or_default() += 1;
            return;
        }
        let marker = entry["arguments"]["params"][0].as_i64();
        let id = entry["id"].as_str().unwrap_or("").to_string();
        if marker.is_none() && self.unmarked_examples.len() < 3 {
            self.unmarked_examples.push(entry.to_string());
        }
        if status == "intent" {
            self.intents += 1;
            match marker {
                Some(m) => self.intents_by_marker.entry(m).or_default().push(id),
                None => self.unmarked += 1,
            }
            return;
        }
        self.events += 1;
        if status == "unknown" {
            self.unknown += 1;
        }
        let intent = entry["intent"].as_str().map(str::to_string);
        if let Some(i) = &intent {
            self.closed.insert(i.clone(), status.clone());
        }
        match marker {
            Some(m) => self
                .events_by_marker
                .entry(m)
                .or_default()
                .push((status, intent)),
            None => self.unmarked += 1,
        }
    }

    /// The statuses of the events of `marker`.
    pub fn statuses(&self, marker: i64) -> Vec<&str> {
        self.events_by_marker
            .get(&marker)
            .map(|v| v.iter().map(|(s, _)| s.as_str()).collect())
            .unwrap_or_default()
    }

    /// Has `marker` an intent in the chain?
    pub fn has_intent(&self, marker: i64) -> bool {
        self.intents_by_marker.contains_key(&marker)
    }

    /// Has one of `marker`'s intents an event naming it (its outcome, or
    /// `unknown`)?
    pub fn intent_closed(&self, marker: i64) -> bool {
        self.intents_by_marker
            .get(&marker)
            .is_some_and(|ids| ids.iter().any(|id| self.closed.contains_key(id)))
    }

    /// Problems with "exactly one event per call" for `records` (each
    /// answered call has one event, and no event is not a call's).
    pub fn exact_problems(&self, records: &[CallRecord]) -> Vec<String> {
        let mut problems = vec![];
        let made: HashSet<i64> = records.iter().map(|r| r.marker).collect();
        for r in records {
            let n = self.statuses(r.marker).len();
            if n != 1 {
                problems.push(format!(
                    "call {} ({}) has {n} events; it ended {:?}",
                    r.marker,
                    r.kind.label(),
                    r.outcome
                ));
            }
        }
        for m in self.events_by_marker.keys() {
            if !made.contains(m) {
                problems.push(format!("event for marker {m}, which no call carried"));
            }
        }
        if self.unmarked > 0 {
            problems.push(format!(
                "{} entries carry no marker, e.g. {}",
                self.unmarked,
                self.unmarked_examples.join("\n")
            ));
        }
        problems
    }
}

/// Calls finished so far, shared by the clients and whoever waits on them.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
    /// Tool errors with code `audit_unavailable` so far.
    pub audit_unavailable: AtomicU64,
    /// Tool errors with code `target_unavailable` so far.
    pub target_unavailable: AtomicU64,
}

impl Progress {
    /// Calls finished.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Wait until `check(self)` holds (polled every 10 ms), at most `limit`.
    pub async fn until(&self, limit: Duration, check: impl Fn(&Progress) -> bool) -> bool {
        let t0 = Instant::now();
        while !check(self) {
            if t0.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Wait until `n` calls are finished, at most `limit`.
    pub async fn until_done(&self, n: u64, limit: Duration) -> bool {
        self.until(limit, |p| p.done() >= n).await
    }
}

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Concurrent clients (each its own HTTP client and MCP session).
    pub clients: usize,
    /// Calls per client, one after another.
    pub calls: usize,
    /// The first marker; client `c`'s call `i` carries
    /// `first_marker + c * calls + i`.
    pub first_marker: i64,
    /// How long a client waits for one answer.
    pub timeout: Duration,
    /// A client stops after this many transport errors in a row (the
    /// server is gone); `None`: never.
    pub stop_after_transport_errors: Option<usize>,
}

impl LoadSpec {
    /// `clients` × `calls` from marker `first_marker`, 60 s per call.
    pub fn new(clients: usize, calls: usize, first_marker: i64) -> Self {
        LoadSpec {
            clients,
            calls,
            first_marker,
            timeout: Duration::from_secs(60),
            stop_after_transport_errors: None,
        }
    }

    /// The first marker after this run's.
    pub fn next_marker(&self) -> i64 {
        self.first_marker + (self.clients * self.calls) as i64
    }
}

/// One MCP client over streamable HTTP (2025-11-25, a session).
pub struct McpClient {
    http: reqwest::Client,
    url: String,
    token: String,
    session: String,
    next_id: u64,
}

impl McpClient {
    /// `initialize` a session at `<base>/mcp` as the token's principal.
    pub async fn connect(base: &str, token: &str, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(2)
            .build()?;
        let url = format!("{base}/mcp");
        let resp = http
            .post(&url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(
                &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "load", "version": "1"}}}),
            )
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "initialize: HTTP {}",
            resp.status()
        );
        let session = resp
            .headers()
            .get("mcp-session-id")
            .context("no session id")?
            .to_str()?
            .to_string();
        resp.text().await?;
        let client = McpClient {
            http,
            url,
            token: token.into(),
            session,
            next_id: 1,
        };
        client
            .request()
            .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .send()
            .await?;
        Ok(client)
    }

    fn request(&self) -> reqwest::RequestBuilder {
        self.http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", "2025-11-25")
    }

    /// `tools/call` of `sql_query` with `arguments`; the call's
    /// `structuredContent` or how it failed.
    pub async fn sql_query(&mut self, arguments: Value) -> Result<Value, Outcome> {
        self.next_id += 1;
        let id = self.next_id;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "sql_query", "arguments": arguments}});
        let fail = |e: reqwest::Error| {
            if e.is_timeout() {
                Outcome::Timeout
            } else {
                Outcome::Transport(format!("{e:#}"))
            }
        };
        let resp = self.request().json(&body).send().await.map_err(fail)?;
        let status = resp.status();
        let text = resp.text().await.map_err(fail)?;
        if !status.is_success() {
            return Err(Outcome::Wrong(format!("HTTP {status}: {text}")));
        }
        let reply = jsonrpc_reply(&text, id)
            .ok_or_else(|| Outcome::Wrong(format!("no reply to request {id} in: {text}")))?;
        let result = &reply["result"];
        if result.is_null() {
            return Err(Outcome::Wrong(format!("JSON-RPC error: {reply}")));
        }
        let content = result["structuredContent"].clone();
        if result["isError"] == json!(true) {
            let error = &content["error"];
            return Err(match error["code"].as_str() {
                Some(code) => Outcome::ToolError {
                    code: code.to_string(),
                    message: error["message"].as_str().unwrap_or("").to_string(),
                },
                None => Outcome::Wrong(format!("a tool error without a code: {result}")),
            });
        }
        Ok(content)
    }
}

/// The JSON-RPC message answering request `id` in a JSON or SSE body.
fn jsonrpc_reply(body: &str, id: u64) -> Option<Value> {
    let trimmed = body.trim_start();
    if trimmed.starts_with('{') {
        return serde_json::from_str(trimmed).ok();
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v["id"] == json!(id))
}

/// Approves every pending approval (as a reviewer over the REST API) until
/// stopped; how many it approved.
pub struct Reviewer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl Reviewer {
    /// Start polling `<base>/api/approvals?state=pending` with `token`.
    pub fn start(base: &str, token: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (base, token, flag) = (base.to_string(), token.to_string(), stop.clone());
        let task = tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client");
            let mut approved = HashSet::new();
            while !flag.load(Ordering::Relaxed) {
                let list = http
                    .get(format!("{base}/api/approvals?state=pending&limit=500"))
                    .bearer_auth(&token)
                    .send()
                    .await;
                let ids: Vec<String> = match list {
                    Ok(r) => r
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| {
                            v["approvals"].as_array().map(|a| {
                                a.iter()
                                    .filter_map(|x| x["id"].as_str().map(str::to_string))
                                    .collect()
                            })
                        })
                        .unwrap_or_default(),
                    Err(_) => vec![],
                };
                for id in ids {
                    if approved.contains(&id) {
                        continue;
                    }
                    let r = http
                        .post(format!("{base}/api/approvals/{id}/approve"))
                        .bearer_auth(&token)
                        .json(&json!({"reason": "load test"}))
                        .send()
                        .await;
                    if r.is_ok_and(|r| r.status().is_success()) {
                        approved.insert(id);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            approved.len() as u64
        });
        Reviewer { stop, task }
    }

    /// Stop; how many approvals it granted.
    pub async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or(0)
    }
}

/// Run `spec` against the server at `fx.base`: every client connects, then
/// makes its calls one after another. A reviewer approves the approval
/// calls meanwhile. Returns every call made.
pub async fn run_load(
    fx: &Fixture,
    spec: &LoadSpec,
    progress: Arc<Progress>,
) -> anyhow::Result<Vec<CallRecord>> {
    let reviewer = Reviewer::start(&fx.base, &fx.token("rita", &["reviewers"])?);
    let mut clients = Vec::with_capacity(spec.clients);
    for c in 0..spec.clients {
        let token = fx.token(&format!("agent-{c}"), &["agents"])?;
        clients.push(
            McpClient::connect(&fx.base, &token, spec.timeout)
                .await
                .with_context(|| format!("client {c} cannot connect"))?,
        );
    }
    let mut tasks = Vec::with_capacity(spec.clients);
    for (c, mut client) in clients.into_iter().enumerate() {
        let (spec, progress) = (spec.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            let mut records = Vec::with_capacity(spec.calls);
            let mut broken = 0;
            for i in 0..spec.calls {
                let kind = Kind::of(i + c);
                let marker = spec.first_marker + (c * spec.calls + i) as i64;
                let started = Instant::now();
                let outcome = match client.sql_query(kind.arguments(marker, c)).await {
                    Ok(result) => match kind.check_result(marker, &result) {
                        Ok(()) => Outcome::Ok,
                        Err(e) => Outcome::Wrong(e),
                    },
                    Err(o) => o,
                };
                if outcome.is_code("audit_unavailable") {
                    progress.audit_unavailable.fetch_add(1, Ordering::Relaxed);
                }
                if outcome.is_code("target_unavailable") {
                    progress.target_unavailable.fetch_add(1, Ordering::Relaxed);
                }
                broken = match outcome {
                    Outcome::Transport(_) => broken + 1,
                    _ => 0,
                };
                records.push(CallRecord {
                    client: c,
                    marker,
                    kind,
                    outcome,
                    started,
                    ended: Instant::now(),
                });
                progress.done.fetch_add(1, Ordering::Relaxed);
                if spec
                    .stop_after_transport_errors
                    .is_some_and(|n| broken >= n)
                {
                    break;
                }
            }
            records
        }));
    }
    let mut all = Vec::with_capacity(spec.clients * spec.calls);
    for t in tasks {
        all.extend(t.await?);
    }
    reviewer.stop().await;
    Ok(all)
}

/// Counts and latencies of a run.
#[derive(Debug)]
pub struct Summary {
    /// Calls made.
    pub calls: usize,
    /// Calls that did not end as a healthy server ends them (see
    /// [`Outcome::is_expected`]), timeouts included.
    pub errors: usize,
    /// Calls that got no answer in time.
    pub timeouts: usize,
    /// Up to 10 of the unexpected outcomes, for messages.
    pub examples: Vec<String>,
    /// p50 and p99 of all calls.
    pub p50: Duration,
    /// p99 of all calls.
    pub p99: Duration,
    /// p50 and p99 per kind.
    pub by_kind: Vec<(Kind, usize, Duration, Duration)>,
    /// Calls per second over the run's wall time.
    pub per_sec: f64,
}

impl Summary {
    /// Summarise `records`, made in `wall` time.
    pub fn of(records: &[CallRecord], wall: Duration) -> Summary {
        let hist = || Histogram::<u64>::new(3).expect("histogram");
        let mut all = hist();
        let mut kinds: HashMap<Kind, Histogram<u64>> = HashMap::new();
        let (mut errors, mut timeouts, mut examples) = (0, 0, vec![]);
        for r in records {
            let ns = r.ended.duration_since(r.started).as_nanos() as u64;
            all.record(ns).ok();
            kinds.entry(r.kind).or_insert_with(hist).record(ns).ok();
            if !r.outcome.is_expected(r.kind) {
                errors += 1;
                if examples.len() < 10 {
                    examples.push(format!(
                        "call {} ({}): {:?}",
                        r.marker,
                        r.kind.label(),
                        r.outcome
                    ));
                }
            }
            if r.outcome == Outcome::Timeout {
                timeouts += 1;
            }
        }
        let q = |h: &Histogram<u64>, q: f64| Duration::from_nanos(h.value_at_quantile(q));
        Summary {
            calls: records.len(),
            errors,
            timeouts,
            examples,
            p50: q(&all, 0.5),
            p99: q(&all, 0.99),
            by_kind: Kind::ALL
                .iter()
                .filter_map(|k| {
                    let h = kinds.get(k)?;
                    Some((*k, h.len() as usize, q(h, 0.5), q(h, 0.99)))
                })
                .collect(),
            per_sec: records.len() as f64 / wall.as_secs_f64().max(1e-9),
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        writeln!(
            f,
            "calls {}, errors {}, timeouts {}, p50 {:.2} ms, p99 {:.2} ms, {:.0} calls/s",
            self.calls,
            self.errors,
            self.timeouts,
            ms(self.p50),
            ms(self.p99),
            self.per_sec
        )?;
        for (kind, n, p50, p99) in &self.by_kind {
            writeln!(
                f,
                "  {:<16} {n:>8} calls  p50 {:>8.2} ms  p99 {:>8.2} ms",
                kind.label(),
                ms(*p50),
                ms(*p99)
            )?;
        }
        for e in &self.examples {
            writeln!(f, "  unexpected: {e}")?;
        }
        Ok(())
    }
}

/// The server's RSS sampled every second, with the calls done at each
/// sample, until stopped.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Duration, u64, u64)>>,
}

impl RssSampler {
    /// Start sampling `pid`'s `VmRSS`.
    pub fn start(pid: u32, progress: Arc<Progress>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut samples = vec![];
            let mut next = t0;
            loop {
                if let Some(kib) = rss_kib(pid) {
                    samples.push((t0.elapsed(), progress.done(), kib));
                }
                next += Duration::from_secs(1);
                while Instant::now() < next {
                    if flag.load(Ordering::Relaxed) {
                        return samples;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        RssSampler { stop, thread }
    }

    /// Stop; the samples: (time since start, calls done, RSS KiB).
    pub fn stop(self) -> Vec<(Duration, u64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The RSS figures of a run: at the first sample after `warm` calls were
/// done, the largest, and at the end (KiB).
#[derive(Debug, Clone, Copy)]
pub struct RssReport {
    /// After warm-up.
    pub warm: u64,
    /// Largest sample after warm-up.
    pub peak: u64,
    /// Last sample.
    pub end: u64,
    /// Samples taken.
    pub samples: usize,
}

impl RssReport {
    /// From `samples` of [`RssSampler::stop`], warm-up ending at `warm` calls.
    pub fn of(samples: &[(Duration, u64, u64)], warm: u64) -> Option<RssReport> {
        let after: Vec<u64> = samples
            .iter()
            .filter(|(_, done, _)| *done >= warm)
            .map(|(_, _, kib)| *kib)
            .collect();
        Some(RssReport {
            warm: *after.first()?,
            peak: *after.iter().max()?,
            end: *after.last()?,
            samples: samples.len(),
        })
    }
}

impl std::fmt::Display for RssReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |k: u64| k as f64 / 1024.0;
        write!(
            f,
            "RSS after warm-up {:.1} MiB, peak {:.1} MiB, end {:.1} MiB ({:+.1}% end vs warm; {} samples, 1/s)",
            mib(self.warm),
            mib(self.peak),
            mib(self.end),
            (self.end as f64 / self.warm.max(1) as f64 - 1.0) * 100.0,
            self.samples
        )
    }
}

/// The calls of `records` whose (checked) result reached the client.
pub fn answered_ok(records: &[CallRecord]) -> impl Iterator<Item = &CallRecord> {
    records.iter().filter(|r| r.outcome == Outcome::Ok)
}

/// Every marker in the target's `marks` and `refunds` (inserts that
/// committed), each with an intent in the chain and (`closed`) an event
/// naming it: the problems found.
pub fn unrecorded_inserts(fx: &Fixture, audit: &AuditIndex, closed: bool) -> Vec<String> {
    let mut problems = vec![];
    for table in ["marks", "refunds"] {
        let markers = match fx.markers(table) {
            Ok(m) => m,
            Err(e) => return vec![format!("cannot read {table}: {e:#}")],
        };
        for m in markers {
            if !audit.has_intent(m) {
                problems.push(format!(
                    "{table} marker {m} committed without an intent in the chain"
                ));
            } else if closed && !audit.intent_closed(m) {
                problems.push(format!(
                    "{table} marker {m}: its intent is in the chain but no event names it"
                ));
            }
        }
    }
    problems
}

/// The progress counters as one line, for messages.
pub fn progress_line(p: &Progress) -> String {
    format!(
        "{} calls done, {} audit_unavailable, {} target_unavailable",
        p.done(),
        p.audit_unavailable.load(Ordering::Relaxed),
        p.target_unavailable.load(Ordering::Relaxed)
    )
}
