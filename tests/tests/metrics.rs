//! `GET /metrics` on real `tollgate` HTTP servers (in process, SQLite
//! target): calls made over `/mcp` are counted by tool and decision with
//! exact values, latencies are Prometheus histograms, pending approvals are
//! counted in the store (by a second server on the same store too), no
//! principal or argument reaches the page, and `[server] metrics` decides
//! who may scrape.
//!
//! The metrics recorder is process-wide: only one test in this binary makes
//! tool calls; the others scrape.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tollgate_server::config::Config;
use tollgate_tests::TempDir;

const POLICY: &str = r#"
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource == Tollgate::Connection::"metricsdb");
permit (principal in Tollgate::Group::"agents", action in [Tollgate::Action::"sql:select", Tollgate::Action::"sql:insert"], resource in Tollgate::Connection::"metricsdb");
@approval("reviewers")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:delete", resource in Tollgate::Connection::"metricsdb");
permit (principal in Tollgate::Group::"auditors", action == Tollgate::Action::"audit:read", resource == Tollgate::Audit::"log");
"#;

/// Values that must never appear on the page: the caller's `sub`, an
/// argument literal, the table, the statement words, the secret.
const AGENT_SUB: &str = "agent-sub-7q2x";
const NEEDLE: &str = "needle-arg-9137";
const SECRET: &str = "metrics-test-secret-0123456789abcdef";

struct Server {
    _dir: TempDir,
    base: String,
    config: Config,
    db: String,
}

/// Serve a config whose `[server]` has `server_extra` (the data dir of
/// `share`'s server when given: a second replica on the same store).
async fn serve(label: &str, server_extra: &str, share: Option<&Server>) -> Server {
    tollgate_server::init_crypto();
    let dir = TempDir::new(label).unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/p.cedar"), POLICY).unwrap();
    let (data, db) = match share {
        Some(s) => (
            s.config
                .resolve_path(&s.config.server.data_dir)
                .display()
                .to_string(),
            s.db.clone(),
        ),
        None => (
            dir.path().join("data").display().to_string(),
            dir.path().join("metrics.db").display().to_string(),
        ),
    };
    let path = dir.path().join("tollgate.toml");
    std::fs::write(
        &path,
        format!(
            r#"[server]
listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:1"
data_dir = "{data}"
{server_extra}

[auth]
hs256_secret = "{SECRET}"

[approval]
wait_seconds = 0

[[connection]]
name = "metricsdb"
kind = "sqlite"
path = "{db}"
create_if_missing = true
"#
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
    tokio::spawn(async move {
        tollgate_server::commands::serve::serve_http(&serve_config, gateway, Some(tx)).await
    });
    let addr = tokio::time::timeout(Duration::from_secs(20), rx)
        .await
        .expect("server ready")
        .expect("address");
    Server {
        _dir: dir,
        base: format!("http://{addr}"),
        config,
        db,
    }
}

impl Server {
    fn token(&self, sub: &str, groups: &[&str]) -> String {
        let auth = tollgate_server::app::authenticator(&self.config)
            .unwrap()
            .unwrap();
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        auth.mint_hs256(sub, &groups, Duration::from_secs(600))
            .unwrap()
    }

    /// `GET /metrics` with an optional bearer: (status, content type, body).
    async fn scrape(&self, token: Option<&str>) -> (StatusCode, String, String) {
        let mut req = reqwest::Client::new().get(format!("{}/metrics", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("GET /metrics");
        let status = resp.status();
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, ct, resp.text().await.unwrap())
    }

    /// A scrape that must succeed, parsed.
    async fn metrics(&self) -> (String, Samples) {
        let (status, ct, body) = self.scrape(None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        let samples = parse(&body);
        (body, samples)
    }
}

/// One JSON-RPC message to /mcp in `session`; returns the response message.
async fn mcp(
    base: &str,
    token: &str,
    session: Option<&str>,
    body: Value,
) -> (Option<String>, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .bearer_auth(token)
        .header("Accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(s) = session {
        req = req
            .header("Mcp-Session-Id", s)
            .header("MCP-Protocol-Version", "2025-11-25");
    }
    let resp = req.send().await.expect("post /mcp");
    assert!(resp.status().is_success(), "{}", resp.status());
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
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
    (sid, value)
}

async fn open_session(base: &str, token: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "metrics", "version": "1"}}});
    let (sid, v) = mcp(base, token, None, init).await;
    let sid = sid.unwrap_or_else(|| panic!("a session id: {v}"));
    mcp(
        base,
        token,
        Some(&sid),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    sid
}

/// `tools/call` in a session; the JSON-RPC response.
async fn call(base: &str, token: &str, sid: &str, tool: &str, args: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": tool, "arguments": args}});
    mcp(base, token, Some(sid), body).await.1
}

/// Samples of a Prometheus text page: (name, sorted labels) → value.
type Samples = BTreeMap<(String, Vec<(String, String)>), f64>;

/// Parse the text exposition format (what this page uses of it: `# HELP`
/// and `# TYPE` comments, `name{k="v",...} value` lines, no escapes in the
/// label values checked here). A malformed line fails the test.
fn parse(body: &str) -> Samples {
    let mut out = Samples::new();
    for line in body.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|e| panic!("{e}: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), vec![]),
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                let mut labels: Vec<(String, String)> = inner
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair
                            .split_once('=')
                            .unwrap_or_else(|| panic!("bad label {pair}: {line}"));
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .unwrap_or_else(|| panic!("unquoted label {pair}: {line}"));
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                labels.sort();
                (name.to_string(), labels)
            }
        };
        assert!(
            out.insert((name, labels), value).is_none(),
            "duplicate series: {line}"
        );
    }
    out
}

fn get(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    samples.get(&(name.to_string(), labels)).copied()
}

fn calls(samples: &Samples, tool: &str, decision: &str) -> f64 {
    get(
        samples,
        "tollgate_calls_total",
        &[("tool", tool), ("decision", decision)],
    )
    .unwrap_or(0.0)
}

/// The histogram `name` for `tool` is well formed (cumulative buckets up
/// to `+Inf` = `_count`, a `_sum`); returns its count.
fn histogram(samples: &Samples, name: &str, tool: Option<&str>) -> f64 {
    let base: Vec<(&str, &str)> = tool.map(|t| vec![("tool", t)]).unwrap_or_default();
    let count = get(samples, &format!("{name}_count"), &base)
        .unwrap_or_else(|| panic!("{name}_count {base:?} missing"));
    let sum = get(samples, &format!("{name}_sum"), &base)
        .unwrap_or_else(|| panic!("{name}_sum {base:?} missing"));
    assert!(sum >= 0.0 && sum.is_finite(), "{name}_sum = {sum}");
    let mut buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|((n, labels), _)| {
            n == &format!("{name}_bucket")
                && labels
                    .iter()
                    .filter(|(k, _)| k != "le")
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .eq(base.iter().copied())
        })
        .map(|((_, labels), v)| {
            let le = &labels.iter().find(|(k, _)| k == "le").expect("le").1;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (le, *v)
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(buckets.len() > 5, "{name}: buckets {buckets:?}");
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "{name}: buckets are cumulative: {buckets:?}"
    );
    assert_eq!(
        buckets.last().copied(),
        Some((f64::INFINITY, count)),
        "{name}: the +Inf bucket is the count"
    );
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_counted_by_tool_and_decision_and_pending_approvals_by_the_store() {
    let s = serve("metrics-calls", "", None).await;
    // The table, set up through the connector directly (not a call).
    let c = tollgate_tests::connector(
        "sqlite",
        "metricsdb",
        json!({"name": "metricsdb", "kind": "sqlite", "path": s.db, "create_if_missing": true}),
    );
    tollgate_tests::query(
        &*c,
        "CREATE TABLE ledger (id INTEGER PRIMARY KEY, note TEXT)",
        json!([]),
    )
    .await
    .unwrap();

    let agent = s.token(AGENT_SUB, &["agents"]);
    let sid = open_session(&s.base, &agent).await;
    let ok = |v: &Value| {
        assert_eq!(v["result"]["isError"], false, "{v}");
    };
    let refused = |v: &Value| {
        assert_eq!(v["result"]["isError"], true, "{v}");
    };
    ok(&call(&s.base, &agent, &sid, "list_connections", json!({})).await);
    let q = |sql: String| json!({"connection": "metricsdb", "sql": sql});
    ok(&call(
        &s.base,
        &agent,
        &sid,
        "sql_query",
        q(format!(
            "INSERT INTO ledger (id, note) VALUES (1, '{NEEDLE}')"
        )),
    )
    .await);
    ok(&call(
        &s.base,
        &agent,
        &sid,
        "sql_query",
        q(format!("SELECT note FROM ledger WHERE note = '{NEEDLE}'")),
    )
    .await);
    ok(&call(
        &s.base,
        &agent,
        &sid,
        "sql_query",
        q("SELECT count(*) FROM ledger".into()),
    )
    .await);
    // No permit for an update; unanalysable text.
    refused(
        &call(
            &s.base,
            &agent,
            &sid,
            "sql_query",
            q(format!("UPDATE ledger SET note = '{NEEDLE}-2'")),
        )
        .await,
    );
    refused(
        &call(
            &s.base,
            &agent,
            &sid,
            "sql_query",
            q(format!("SELEC {NEEDLE} FROM")),
        )
        .await,
    );
    // A delete waits on a reviewer.
    let v = call(
        &s.base,
        &agent,
        &sid,
        "sql_query",
        q("DELETE FROM ledger WHERE id = 1".into()),
    )
    .await;
    ok(&v);
    let approval = v["result"]["structuredContent"]["approval_id"]
        .as_str()
        .unwrap_or_else(|| panic!("pending: {v}"))
        .to_string();
    // A tool nobody serves, named after an argument-like secret.
    let v = call(&s.base, &agent, &sid, &format!("tool_{NEEDLE}"), json!({})).await;
    assert!(
        v.get("error").is_some() || v["result"]["isError"] == true,
        "{v}"
    );

    let (body, m) = s.metrics().await;
    assert_eq!(calls(&m, "sql_query", "allow"), 3.0, "{body}");
    assert_eq!(calls(&m, "sql_query", "deny"), 2.0, "{body}");
    assert_eq!(calls(&m, "sql_query", "pending"), 1.0, "{body}");
    assert_eq!(calls(&m, "sql_query", "error"), 0.0, "{body}");
    assert_eq!(calls(&m, "list_connections", "allow"), 1.0, "{body}");
    let unknown: f64 = ["allow", "deny", "pending", "error"]
        .iter()
        .map(|d| calls(&m, "unknown", d))
        .sum();
    assert_eq!(unknown, 1.0, "{body}");
    let all: f64 = m
        .iter()
        .filter(|((n, _), _)| n == "tollgate_calls_total")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(all, 8.0, "every series is one we made: {body}");
    // The counts are what the audit log holds, event for event.
    let auditor = s.token("audrey", &["auditors"]);
    let events: Value = reqwest::Client::new()
        .get(format!("{}/api/audit?limit=100", s.base))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events = events["events"].as_array().expect("events");
    let recorded_calls = events
        .iter()
        .filter(|e| e["tool"] != "approval" && e["principal"]["sub"] == AGENT_SUB)
        .count();
    assert_eq!(recorded_calls, 8, "{events:?}");

    assert_eq!(
        histogram(&m, "tollgate_call_duration_seconds", Some("sql_query")),
        6.0
    );
    assert_eq!(
        histogram(
            &m,
            "tollgate_call_duration_seconds",
            Some("list_connections")
        ),
        1.0
    );
    let appends = histogram(&m, "tollgate_audit_append_duration_seconds", None);
    assert!(appends >= 8.0, "every call's event was appended: {appends}");
    assert_eq!(
        get(&m, "tollgate_approvals_pending", &[]),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        get(
            &m,
            "tollgate_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0),
        "{body}"
    );
    for line in [
        "# TYPE tollgate_calls_total counter",
        "# TYPE tollgate_call_duration_seconds histogram",
        "# TYPE tollgate_approvals_pending gauge",
        "# TYPE tollgate_audit_append_duration_seconds histogram",
    ] {
        assert!(body.contains(line), "{line} in {body}");
    }
    // Nothing about who called or with what.
    for leaked in [
        AGENT_SUB,
        NEEDLE,
        "ledger",
        "SELECT",
        "UPDATE",
        "metricsdb",
        SECRET,
        &approval,
        &s.db,
    ] {
        assert!(!body.contains(leaked), "{leaked} on the page:\n{body}");
    }

    // Another server on the same store (a restart, a replica) counts the
    // same pending approval without having seen the call.
    let replica = serve("metrics-replica", "", Some(&s)).await;
    let (_, r) = replica.metrics().await;
    assert_eq!(get(&r, "tollgate_approvals_pending", &[]), Some(1.0));

    // Decided: no longer pending, on either server; decisions are not calls.
    let reviewer = s.token("rita", &["reviewers"]);
    let resp = reqwest::Client::new()
        .post(format!("{}/api/approvals/{approval}/approve", s.base))
        .bearer_auth(&reviewer)
        .json(&json!({"reason": "ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        resp.text().await.unwrap()
    );
    let (body, after) = s.metrics().await;
    assert_eq!(
        get(&after, "tollgate_approvals_pending", &[]),
        Some(0.0),
        "{body}"
    );
    assert_eq!(calls(&after, "sql_query", "allow"), 3.0, "{body}");
    assert!(histogram(&after, "tollgate_audit_append_duration_seconds", None) > appends);
    let (_, r) = replica.metrics().await;
    assert_eq!(get(&r, "tollgate_approvals_pending", &[]), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_access_follows_the_server_setting() {
    // "token": a bearer permitted audit:read, like /api/audit.
    let s = serve("metrics-token", "metrics = \"token\"", None).await;
    let (status, _, body) = s.scrape(None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let resp = reqwest::Client::new()
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()
            .get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap().starts_with("Bearer resource_metadata=")),
        "{:?}",
        resp.headers()
    );
    let (status, _, body) = s.scrape(Some("not-a-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let agent = s.token(AGENT_SUB, &["agents"]);
    let (status, _, body) = s.scrape(Some(&agent)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(!body.contains("tollgate_"), "{body}");
    let auditor = s.token("audrey", &["auditors"]);
    let (status, ct, body) = s.scrape(Some(&auditor)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let m = parse(&body);
    assert!(
        get(&m, "tollgate_approvals_pending", &[]).is_some(),
        "{body}"
    );

    // "off": not served at all; the rest is.
    let off = serve("metrics-off", "metrics = \"off\"", None).await;
    let (status, _, body) = off.scrape(Some(&off.token("audrey", &["auditors"]))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let health = reqwest::get(format!("{}/healthz", off.base)).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    // The default: open, no token needed.
    let open = serve("metrics-open", "", None).await;
    let (status, _, body) = open.scrape(None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
