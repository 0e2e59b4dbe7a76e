//! Abuse limits against a real `tollgate` HTTP server (in process, SQLite
//! target): the header-read timeout and the connection cap of the listener
//! (half-open connections are closed, `/healthz` keeps answering, idle
//! unauthenticated connections make room and authenticated ones stay), and
//! a request body that trickles in is cut off, and the per-principal rate and concurrency limits and argument size cap of
//! tool calls (a `rate_limited` tool error with `retry_after_s`, nothing run,
//! an audit event).

use std::time::Duration;

use gateway_core::Principal;
use gateway_core::approval::CallContext;
use gateway_core::audit::AuditFilter;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate_server::config::Config;
use tollgate_tests::TempDir;

const POLICY: &str = r#"
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource == Tollgate::Connection::"demo");
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select", resource in Tollgate::Connection::"demo");
@approval("reviewers")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:delete", resource in Tollgate::Connection::"demo");
"#;

/// How long the test waits for something that must happen (a liveness
/// bound, not a speed assertion).
const PATIENCE: Duration = Duration::from_secs(30);

struct Server {
    gateway: std::sync::Arc<gateway_core::Gateway>,
    _dir: TempDir,
    addr: std::net::SocketAddr,
    config: Config,
}

impl Server {
    /// Serve with `server_extra` lines in `[server]` and `rest` after the
    /// connection (e.g. `[[limits.rule]]`s).
    async fn start(label: &str, server_extra: &str, rest: &str) -> Server {
        tollgate_server::init_crypto();
        let dir = TempDir::new(label).unwrap();
        std::fs::create_dir_all(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("policies/p.cedar"), POLICY).unwrap();
        let path = dir.path().join("tollgate.toml");
        std::fs::write(
            &path,
            format!(
                r#"[server]
listen = "127.0.0.1:0"
data_dir = "data"
{server_extra}

[auth]
hs256_secret = "abuse-limits-secret-0123456789abcdef"

[approval]
wait_seconds = 120

[[connection]]
name = "demo"
kind = "sqlite"
path = "{db}"
create_if_missing = true

{rest}
"#,
                db = dir.path().join("demo.db").display()
            ),
        )
        .unwrap();
        let config = Config::load(&path).expect("config");
        assert_eq!(tollgate_server::app::check(&config), Vec::<String>::new());
        let gateway = tollgate_server::app::gateway(&config)
            .await
            .expect("gateway");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let serve_config = Config::load(&path).expect("config");
        let served = gateway.clone();
        tokio::spawn(async move {
            tollgate_server::commands::serve::serve_http(&serve_config, served, Some(tx)).await
        });
        let addr = tokio::time::timeout(PATIENCE, rx)
            .await
            .expect("server ready")
            .expect("address");
        // The database and its table, set up through the connector directly
        // (no policy).
        let c = tollgate_tests::connector(
            "sqlite",
            "demo",
            json!({"name": "demo", "kind": "sqlite", "path": dir.path().join("demo.db"), "create_if_missing": true}),
        );
        tollgate_tests::query(
            &*c,
            "CREATE TABLE items (id INTEGER PRIMARY KEY)",
            json!([]),
        )
        .await
        .unwrap();
        Server {
            gateway,
            _dir: dir,
            addr,
            config,
        }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn token(&self, sub: &str, groups: &[&str]) -> String {
        let auth = tollgate_server::app::authenticator(&self.config)
            .unwrap()
            .unwrap();
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        auth.mint_hs256(sub, &groups, Duration::from_secs(600))
            .unwrap()
    }

    /// `GET /healthz` on a fresh connection, within [`PATIENCE`].
    async fn healthz(&self) -> StatusCode {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        tokio::time::timeout(
            PATIENCE,
            client.get(format!("{}/healthz", self.base())).send(),
        )
        .await
        .expect("/healthz answered within the test's patience")
        .expect("/healthz")
        .status()
    }
}

/// Raise this process's open-files limit as far as allowed; the limit.
fn open_files_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).expect("open-files limit")
}

/// Does the server close `tcp` (EOF or reset) by `deadline`?
async fn closed_by_server(tcp: &mut TcpStream, deadline: tokio::time::Instant) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A response (e.g. 408) before the close is fine.
            Ok(Ok(_)) => continue,
        }
    }
}

/// Is `tcp` open now? A read that would block means open; EOF or an error
/// means closed.
fn still_open(tcp: &TcpStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(tcp.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// One HTTP/1.1 request on an open keep-alive connection; the status and
/// body of its response (read by Content-Length).
async fn request_on(tcp: &mut TcpStream, head: &str) -> (u16, String) {
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = tcp.read(&mut buf).await.expect("read");
            assert!(n > 0, "connection closed before a response: {got:?}");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if got.len() >= end + 4 + len {
                    let status = text[9..12].parse().unwrap();
                    return (status, text[end + 4..].to_string());
                }
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("a response within the test's patience")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_open_connections_are_closed_after_the_header_timeout() {
    let limit = open_files_limit();
    // Client and server ends live in this process: two descriptors each.
    let n = 2000usize.min(usize::try_from(limit.saturating_sub(600) / 2).unwrap());
    assert!(
        n >= 200,
        "open-files limit {limit} is too low for this test"
    );
    let s = Server::start("abuse-half-open", "header_timeout = \"1s\"", "").await;
    let mut stalled = Vec::with_capacity(n);
    for _ in 0..n {
        let mut tcp = TcpStream::connect(s.addr).await.expect("connect");
        tcp.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: applic")
            .await
            .unwrap();
        stalled.push(tcp);
    }
    // The server still answers while they are held.
    assert_eq!(s.healthz().await, StatusCode::OK);
    // Every stalled connection is closed by the server (header_timeout).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut open = 0;
    for tcp in &mut stalled {
        if !closed_by_server(tcp, deadline).await {
            open += 1;
        }
    }
    assert_eq!(
        open, 0,
        "{open} of {n} stalled connections were never closed"
    );
    assert_eq!(s.healthz().await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_in_is_cut_off_at_the_body_timeout() {
    let s = Server::start(
        "abuse-body",
        "header_timeout = \"5m\"\nbody_timeout = \"1s\"",
        "",
    )
    .await;
    // Headers complete at once, then 9 of 1000 promised body bytes, then nothing
    // (on an unauthenticated form: the login page reads its body).
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    tcp.write_all(
        b"POST /ui/login HTTP/1.1\r\nHost: 127.0.0.1\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\ntoken=abc",
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    assert!(
        closed_by_server(&mut tcp, deadline).await,
        "a stalled body holds its connection"
    );
    assert_eq!(s.healthz().await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_idle_unauthenticated_connections_make_room() {
    let s = Server::start(
        "abuse-cap",
        "header_timeout = \"5m\"\nmax_connections = 50",
        "",
    )
    .await;
    let token = s.token("alice", &["agents"]);
    // An authenticated keep-alive connection.
    let mut authed = TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "GET /api/audit?limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    let (status, body) = request_on(&mut authed, &head).await;
    assert!(status == 200 || status == 403, "{status} {body}");
    // One that only asked for /healthz (served, never authenticated).
    let mut served = TcpStream::connect(s.addr).await.unwrap();
    let (status, _) = request_on(
        &mut served,
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    // 200 idle connections that never send a byte.
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(s.addr).await.unwrap());
    }
    // A fresh health check is answered...
    assert_eq!(s.healthz().await, StatusCode::OK);
    // ...because the oldest silent connections were closed to make room:
    // at most 48 of the 200 fit beside the two that made requests.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    for (i, tcp) in idle.iter_mut().enumerate().take(150) {
        assert!(
            closed_by_server(tcp, deadline).await,
            "idle connection {i} was not shed"
        );
    }
    // The newest silent ones were not (header_timeout is minutes)...
    for (i, tcp) in idle.iter().enumerate().skip(160) {
        assert!(still_open(tcp), "idle connection {i} was shed out of order");
    }
    // ...nor the one that made an unauthenticated request: silent ones go first.
    assert!(
        still_open(&served),
        "a served connection is shed before silent ones"
    );
    // The authenticated connection was never shed and still works.
    let (status, _) = request_on(&mut authed, &head).await;
    assert!(status == 200 || status == 403, "{status}");
}

/// An MCP session over HTTP: initialize, then JSON-RPC requests.
struct Mcp {
    base: String,
    token: String,
    session: String,
    http: reqwest::Client,
}

impl Mcp {
    async fn open(base: &str, token: &str) -> Mcp {
        let http = reqwest::Client::new();
        let resp = http
            .post(format!("{base}/mcp"))
            .bearer_auth(token)
            .header("Accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "abuse", "version": "1"}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let session = resp.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string();
        let m = Mcp {
            base: base.into(),
            token: token.into(),
            session,
            http,
        };
        let (st, _) = m
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert!(st.is_success(), "{st}");
        m
    }

    async fn post(&self, body: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/mcp", self.base))
            .bearer_auth(&self.token)
            .header("Accept", "application/json, text/event-stream")
            .header("Mcp-Session-Id", &self.session)
            .header("MCP-Protocol-Version", "2025-11-25")
            .body(serde_json::to_vec(&body).unwrap())
            .header("Content-Type", "application/json")
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value = if text.trim_start().starts_with('{') {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        } else {
            text.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str(d.trim()).ok())
                .find(|m: &Value| m.get("id").is_some())
                .unwrap_or(Value::Null)
        };
        (status, value)
    }

    /// tools/call; the result object.
    async fn call(&self, tool: &str, args: Value) -> Value {
        let (st, v) = self
            .post(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": tool, "arguments": args}}))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v["result"].clone()
    }
}

fn select(n: u32) -> Value {
    json!({"connection": "demo", "sql": format!("SELECT {n} AS n")})
}

async fn events(s: &Server, sub: &str) -> Vec<gateway_core::audit::AuditEvent> {
    s.gateway
        .audit()
        .list(&AuditFilter {
            principal: Some(sub.into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_a_call_is_a_tool_error_with_retry_after_and_an_event() {
    let s = Server::start(
        "abuse-rate",
        "",
        "[[limits.rule]]\ngroup = \"agents\"\ntool = \"sql_query\"\nrate = \"3/h\"\n",
    )
    .await;
    let alice = Mcp::open(&s.base(), &s.token("alice", &["agents"])).await;
    for n in 0..3 {
        let r = alice.call("sql_query", select(n)).await;
        assert_eq!(r["isError"], json!(false), "{r}");
    }
    let r = alice.call("sql_query", select(99)).await;
    assert_eq!(r["isError"], json!(true), "{r}");
    let e = &r["structuredContent"]["error"];
    assert_eq!(e["code"], "rate_limited", "{r}");
    let retry = e["retry_after_s"].as_u64().expect("retry_after_s");
    assert!((1..=3600).contains(&retry), "{retry}");
    let text = r["content"][0]["text"].as_str().unwrap();
    assert!(text.contains(&format!("retry after {retry}s")), "{text}");
    assert!(text.contains("3 calls per 1h"), "{text}");
    assert!(text.contains("group \\\"agents\\\" on sql_query"), "{text}");
    // Other tools are not limited by this rule; another principal has its own budget.
    let r = alice.call("list_connections", json!({})).await;
    assert_eq!(r["isError"], json!(false), "{r}");
    let bob = Mcp::open(&s.base(), &s.token("bob", &["agents"])).await;
    let r = bob.call("sql_query", select(1)).await;
    assert_eq!(r["isError"], json!(false), "{r}");
    // Recorded: a denial that names the limit, and nothing ran (no rows).
    let refused: Vec<_> = events(&s, "alice")
        .await
        .into_iter()
        .filter(|e| e.record.tool == "sql_query" && e.record.decision == "deny")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let ev = &refused[0].record;
    assert!(
        ev.outcome
            .error
            .as_deref()
            .unwrap_or("")
            .contains("rate limit"),
        "{ev:?}"
    );
    assert_eq!(ev.outcome.rows, None);
    assert!(ev.requests.is_empty(), "no analysis or policy ran: {ev:?}");
    // Hammering the limit does not flood the store: the rest of the
    // window's refusals are counted into one `rate_limited` event.
    let before = all_events(&s).await.len();
    for n in 0..50 {
        let r = alice.call("sql_query", select(100 + n)).await;
        assert_eq!(r["structuredContent"]["error"]["code"], "rate_limited");
    }
    assert_eq!(all_events(&s).await.len(), before, "no event per refusal");
    assert!(s.gateway.flush_refusals().await.unwrap());
    let windows: Vec<_> = all_events(&s)
        .await
        .into_iter()
        .filter(|e| e.record.tool == "rate_limited")
        .collect();
    assert_eq!(windows.len(), 1, "{windows:?}");
    let w = &windows[0].record;
    assert_eq!(w.arguments["total"], 51, "{w:?}");
    let entries = w.arguments["refusals"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{w:?}");
    assert_eq!(entries[0]["principal"], "alice");
    assert!(
        entries[0]["limit"]
            .as_str()
            .unwrap()
            .contains("3 calls per 1h")
    );
    assert_eq!(w.decision, "deny");
}

async fn all_events(s: &Server) -> Vec<gateway_core::audit::AuditEvent> {
    s.gateway
        .audit()
        .list(&AuditFilter::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_concurrency_a_call_is_refused_until_a_slot_frees() {
    let s = Server::start(
        "abuse-concurrency",
        "",
        "[[limits.rule]]\nprincipal = \"alice\"\nconcurrency = 1\n",
    )
    .await;
    let who = Principal {
        sub: "alice".into(),
        groups: vec!["agents".into()],
    };
    // A call that waits for a human holds alice's one slot while it waits.
    let (gateway, waiting_as) = (s.gateway.clone(), who.clone());
    let waiting = tokio::spawn(async move {
        gateway
            .call(
                &waiting_as,
                "sql_query",
                json!({"connection": "demo", "sql": "DELETE FROM items WHERE id = 1"}),
                &CallContext::default(),
            )
            .await
    });
    let service = s
        .gateway
        .approvals()
        .and_then(|g| g.service())
        .expect("approval service");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while service.pending_count().await.unwrap() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call never reached its approval"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Over MCP, a second call of alice's is refused at once.
    let alice = Mcp::open(&s.base(), &s.token("alice", &["agents"])).await;
    let r = alice.call("sql_query", select(1)).await;
    assert_eq!(r["isError"], json!(true), "{r}");
    assert_eq!(r["structuredContent"]["error"]["code"], "rate_limited");
    assert!(r["structuredContent"]["error"]["retry_after_s"].as_u64() >= Some(1));
    let text = r["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("concurrency limit"), "{text}");
    assert!(text.contains("1 calls at once for principal"), "{text}");
    // Bob is not alice.
    let bob = Mcp::open(&s.base(), &s.token("bob", &["agents"])).await;
    assert_eq!(
        bob.call("sql_query", select(1)).await["isError"],
        json!(false)
    );
    // The waiting call ends (its client went away): the slot frees.
    waiting.abort();
    let _ = waiting.await;
    let r = alice.call("sql_query", select(2)).await;
    assert_eq!(r["isError"], json!(false), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_arguments_are_refused_before_analysis() {
    let s = Server::start("abuse-size", "max_argument_bytes = 1000", "").await;
    let alice = Mcp::open(&s.base(), &s.token("alice", &["agents"])).await;
    // Not even SQL: analysis would deny it; the size check comes first.
    let big = format!("SELEC {}", "x".repeat(2000));
    let r = alice
        .call("sql_query", json!({"connection": "demo", "sql": big}))
        .await;
    assert_eq!(r["isError"], json!(true), "{r}");
    let e = &r["structuredContent"]["error"];
    assert_eq!(e["code"], "invalid_arguments", "{r}");
    let message = e["message"].as_str().unwrap();
    assert!(message.contains("server.max_argument_bytes"), "{message}");
    assert!(message.contains("1000 bytes"), "{message}");
    // Recorded without the arguments themselves.
    let ev = events(&s, "alice").await;
    let ev = ev
        .iter()
        .find(|e| e.record.tool == "sql_query")
        .expect("an event");
    assert!(ev.record.requests.is_empty(), "{ev:?}");
    assert_eq!(ev.record.arguments["connection"], "demo");
    assert!(!ev.record.arguments.to_string().contains("xxxx"), "{ev:?}");
    // A body far over the cap is refused by the transport: a 413, or the
    // connection closed while the client was still sending it. Either way
    // the call never reached the gateway (no second event).
    let huge = format!("SELECT '{}'", "y".repeat(200_000));
    let sent = alice
        .http
        .post(format!("{}/mcp", alice.base))
        .bearer_auth(&alice.token)
        .header("Accept", "application/json, text/event-stream")
        .header("Mcp-Session-Id", &alice.session)
        .header("MCP-Protocol-Version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
            "params": {"name": "sql_query", "arguments": {"connection": "demo", "sql": huge}}}))
        .send()
        .await;
    if let Ok(resp) = sent {
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    let calls = events(&s, "alice").await;
    assert_eq!(
        calls
            .iter()
            .filter(|e| e.record.tool == "sql_query")
            .count(),
        1,
        "the oversized body reached the gateway"
    );
    // A call under the cap runs.
    let r = alice.call("sql_query", select(5)).await;
    assert_eq!(r["isError"], json!(false), "{r}");
}

#[test]
fn child_server() {
    tollgate_tests::run_child_server_if_asked();
}

/// The same limits hold over stdio (`tollgate serve --stdio`, this binary
/// re-executed).
#[test]
fn limits_hold_over_stdio() {
    let dir = TempDir::new("abuse-stdio").unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/p.cedar"), POLICY).unwrap();
    let db = dir.path().join("demo.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = tollgate_tests::connector(
            "sqlite",
            "demo",
            json!({"name": "demo", "kind": "sqlite", "path": db, "create_if_missing": true}),
        );
        tollgate_tests::query(
            &*c,
            "CREATE TABLE items (id INTEGER PRIMARY KEY)",
            json!([]),
        )
        .await
        .unwrap();
    });
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
data_dir = "data"
max_argument_bytes = 500

[policy]
dir = "policies"

[stdio]
sub = "bot"
groups = ["agents"]

[[limits.rule]]
principal = "bot"
tool = "sql_query"
rate = "2/h"

[[connection]]
name = "demo"
kind = "sqlite"
path = "{}"
"#,
            db.display()
        ),
    )
    .unwrap();
    let mut server = tollgate_tests::stdio::StdioServer::start(
        &config,
        &dir.path().join("server.log"),
        "abuse-stdio",
    );
    // Oversized arguments: refused, and spending no rate.
    let r = server.call(
        "sql_query",
        json!({"connection": "demo", "sql": format!("SELECT '{}'", "z".repeat(600))}),
    );
    let e = &r["result"]["structuredContent"]["error"];
    assert_eq!(e["code"], "invalid_arguments", "{r}");
    for n in 0..2 {
        let r = server.call("sql_query", select(n));
        assert_eq!(r["result"]["isError"], json!(false), "{r}");
    }
    let r = server.call("sql_query", select(3));
    let e = &r["result"]["structuredContent"]["error"];
    assert_eq!(e["code"], "rate_limited", "{r}");
    assert!(e["retry_after_s"].as_u64() >= Some(1), "{r}");
    server.finish();
}
