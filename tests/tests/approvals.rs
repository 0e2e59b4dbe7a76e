//! Human approvals end to end against a real throwaway PostgreSQL: the
//! `tollgate` server runs as a child process (this test binary re-executed,
//! so it can be killed with SIGKILL), driven over raw MCP JSON-RPC/HTTP, the
//! REST API, the reviewer CLI and the review UI; plus an in-process gateway
//! for policy reloads, racing `approval_wait` calls and expiry.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gateway_core::Principal;
use gateway_core::approval::CallContext;
use gateway_core::policy::{PolicyEngine, load_sources};
use serde_json::{Value, json};
use tollgate_server::config::Config;
use tollgate_tests::{PgServer, TempDir, free_port, ui_login};

const FIXTURE: &str = r#"
CREATE TABLE orders (id int PRIMARY KEY, note text);
INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 50) g;
CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
INSERT INTO accounts VALUES (1, 100);
"#;

const POLICY: &str = r#"
@id("agents-connect")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource == Tollgate::Connection::"shop");
@id("agents-read")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select", resource in Tollgate::Connection::"shop");
@id("delete-orders-reviewed")
@approval("reviewers")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:delete", resource == Tollgate::Table::"shop/public.orders")
when { context.has_where };
@id("accounts-reviewers")
@approval("reviewers")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:update", resource == Tollgate::Table::"shop/public.accounts");
@id("accounts-dba")
@approval("dba")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:update", resource == Tollgate::Table::"shop/public.accounts");
@id("auditors")
permit (principal in Tollgate::Group::"auditors", action == Tollgate::Action::"audit:read", resource == Tollgate::Audit::"log");
@id("unmaskers-see-raw")
permit (principal in Tollgate::Group::"unmaskers", action == Tollgate::Action::"unmask", resource in Tollgate::Connection::"shop");
"#;

/// The review page of approval `id` as the session's reviewer sees it.
async fn ui_page(ui: &reqwest::Client, base: &str, id: &str, session: &str) -> String {
    ui.get(format!("{base}/ui/approvals/{id}"))
        .header("Cookie", session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Not a test: the child server. Runs the CLI with `TOLLGATE_CHILD_ARGS`.
#[test]
fn child_server() {
    tollgate_tests::run_child_server_if_asked();
}

fn child(args: &[&str]) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("test exe"));
    c.args(["child_server", "--exact", "--nocapture", "--test-threads=1"])
        .env(
            "TOLLGATE_CHILD_ARGS",
            serde_json::to_string(&[&["tollgate"], args].concat()).unwrap(),
        );
    c
}

struct Setup {
    dir: TempDir,
    config: PathBuf,
    base: String,
}

fn setup(db_url: &str, extra: &str) -> Setup {
    let dir = TempDir::new("approvals").unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/test.cedar"), POLICY).unwrap();
    std::fs::write(
        dir.path().join("secret.key"),
        "approvals-test-secret-0123456789abcdef",
    )
    .unwrap();
    let port = free_port();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
listen = "127.0.0.1:{port}"
data_dir = "data"

[auth]
hs256_secret = "${{file:{secret}}}"

[policy]
dir = "policies"

[approval]
wait_seconds = 2
ttl = "1h"
{extra}

[[connection]]
name = "shop"
kind = "postgres"
url = "{db_url}"
statement_timeout = "5s"
"#,
            secret = dir.path().join("secret.key").display()
        ),
    )
    .unwrap();
    Setup {
        dir,
        config,
        base: format!("http://127.0.0.1:{port}"),
    }
}

impl Setup {
    fn token(&self, sub: &str, groups: &[&str]) -> String {
        let config = Config::load(&self.config).expect("config");
        let auth = tollgate_server::app::authenticator(&config)
            .unwrap()
            .unwrap();
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        auth.mint_hs256(sub, &groups, Duration::from_secs(3600))
            .unwrap()
    }

    async fn start(&self) -> Server {
        // Owned by `Server` at once, so a failed start still kills and reaps it.
        let server = Server(
            child(&["serve", "--config", self.config.to_str().unwrap()])
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn server"),
        );
        let http = reqwest::Client::new();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await
                && r.status().is_success()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("server did not become ready");
    }

    fn verify_audit(&self) -> bool {
        child(&["audit", "verify", "--config", self.config.to_str().unwrap()])
            .stdout(Stdio::null())
            .status()
            .expect("audit verify")
            .success()
    }
}

struct Server(Child);

impl Server {
    fn kill9(mut self) {
        // Child::kill is SIGKILL on Unix.
        self.0.kill().expect("kill -9");
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A minimal MCP client: JSON-RPC over streamable HTTP (2025-11-25, sessions).
struct Mcp {
    http: reqwest::Client,
    url: String,
    token: String,
    session: Option<String>,
    next: u64,
}

impl Mcp {
    async fn connect(base: &str, token: &str, tasks: bool) -> Mcp {
        let mut m = Mcp {
            http: reqwest::Client::new(),
            url: format!("{base}/mcp"),
            token: token.into(),
            session: None,
            next: 1,
        };
        let caps = if tasks {
            json!({"extensions": {"io.modelcontextprotocol/tasks": {}}})
        } else {
            json!({})
        };
        let (_, init) = m
            .request(
                "initialize",
                json!({"protocolVersion": "2025-11-25", "capabilities": caps, "clientInfo": {"name": "approvals-test", "version": "1"}}),
            )
            .await;
        assert!(init.get("result").is_some(), "{init}");
        m.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        m
    }

    async fn post(&mut self, body: Value) -> (Vec<Value>, Option<Value>) {
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("Accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(s) = &self.session {
            req = req
                .header("Mcp-Session-Id", s)
                .header("MCP-Protocol-Version", "2025-11-25");
        }
        let resp = req.send().await.expect("mcp post");
        if let Some(s) = resp.headers().get("mcp-session-id") {
            self.session = Some(s.to_str().unwrap().to_string());
        }
        let text = resp.text().await.unwrap_or_default();
        let messages: Vec<Value> = if text.trim_start().starts_with('{') {
            vec![serde_json::from_str(&text).unwrap()]
        } else {
            text.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str(d.trim()).ok())
                .collect()
        };
        let (responses, notes): (Vec<Value>, Vec<Value>) =
            messages.into_iter().partition(|m| m.get("id").is_some());
        (notes, responses.into_iter().next())
    }

    async fn request(&mut self, method: &str, params: Value) -> (Vec<Value>, Value) {
        let id = self.next;
        self.next += 1;
        let (notes, resp) = self
            .post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        (notes, resp.unwrap_or(Value::Null))
    }

    /// tools/call; returns (notifications, result).
    async fn call(&mut self, tool: &str, args: Value) -> (Vec<Value>, Value) {
        let (notes, resp) = self
            .request(
                "tools/call",
                json!({"name": tool, "arguments": args, "_meta": {"progressToken": "p"}}),
            )
            .await;
        let result = resp.get("result").cloned().unwrap_or(resp);
        (notes, result)
    }

    async fn sql(&mut self, sql: &str) -> Value {
        self.call("sql_query", json!({"connection": "shop", "sql": sql}))
            .await
            .1
    }
}

/// REST helper.
async fn rest(
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.expect("rest");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn pending_id(result: &Value) -> String {
    let s = &result["structuredContent"];
    assert_eq!(s["status"], "pending_approval", "{result}");
    assert_eq!(result["isError"], false);
    for k in ["approval_id", "expires_at", "review_url", "reviewers"] {
        assert!(s.get(k).is_some(), "pending object lacks {k}: {s}");
    }
    s["approval_id"].as_str().unwrap().to_string()
}

fn count(pg: &PgServer, sql: &str) -> i64 {
    pg.psql("shop", sql).unwrap().trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approvals_over_http() {
    let _ = tollgate_server::approvals::http_client(Duration::from_secs(1));
    let pg = PgServer::start().expect("start PostgreSQL");
    let url = pg.create_database("shop", FIXTURE).unwrap();
    // Webhook receiver: fails twice, then succeeds.
    let hits = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let hook = {
        let (hits, bodies) = (hits.clone(), bodies.clone());
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(b): axum::Json<Value>| {
                let (hits, bodies) = (hits.clone(), bodies.clone());
                async move {
                    let n = hits.fetch_add(1, Ordering::SeqCst);
                    bodies.lock().unwrap().push(b);
                    if n < 2 {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        axum::http::StatusCode::OK
                    }
                }
            }),
        )
    };
    let hook_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = hook_listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(hook_listener, hook).await });

    let s = setup(&url, &format!("webhook_url = \"http://{hook_addr}/hook\""));
    let server = s.start().await;
    let agent = s.token("agent-1", &["agents"]);
    let rita = s.token("rita", &["reviewers"]);
    let alice = s.token("alice", &["reviewers", "dba"]);
    let bob = s.token("bob", &["reviewers"]);
    let auditor = s.token("audra", &["auditors"]);
    let api = |p: &str| format!("{}/api/approvals{p}", s.base);

    // --- pause, then approve while the call is blocked: the result arrives in that call.
    let mut m = Mcp::connect(&s.base, &agent, false).await;
    let approver = {
        let (api_list, rita) = (api("?state=pending"), rita.clone());
        let api_base = api("");
        tokio::spawn(async move {
            for _ in 0..100 {
                let (_, list) = rest(reqwest::Method::GET, api_list.clone(), &rita, None).await;
                if let Some(a) = list["approvals"].as_array().and_then(|a| a.first()) {
                    let id = a["id"].as_str().unwrap().to_string();
                    let (st, v) = rest(
                        reqwest::Method::POST,
                        format!("{api_base}/{id}/approve"),
                        &rita,
                        Some(json!({"reason": "checked"})),
                    )
                    .await;
                    assert_eq!(st, 200, "{v}");
                    return id;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("no pending approval appeared");
        })
    };
    let (notes, r) = m
        .call(
            "sql_query",
            json!({"connection": "shop", "sql": "DELETE FROM orders WHERE id = 1"}),
        )
        .await;
    let first_id = approver.await.unwrap();
    assert_eq!(r["isError"], false, "{r}");
    assert!(r["structuredContent"].get("columns").is_some(), "{r}");
    assert_eq!(count(&pg, "SELECT count(*) FROM orders WHERE id = 1"), 0);
    assert!(
        notes.iter().any(|n| n["method"] == "notifications/progress"
            && n["params"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(&first_id)),
        "progress notifications name the approval: {notes:?}"
    );

    // --- undecided within wait_seconds: the pending object; approval_wait picks it up (CLI approves).
    let r = m.sql("DELETE FROM orders WHERE id = 2").await;
    let id = pending_id(&r);
    assert!(
        r["structuredContent"]["review_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/ui/approvals/{id}"))
    );
    // Same call again: same approval.
    assert_eq!(
        pending_id(&m.sql("DELETE FROM orders WHERE id = 2").await),
        id
    );
    let cli = child(&[
        "approvals",
        "approve",
        &id,
        "--server",
        &s.base,
        "--token",
        &rita,
        "--reason",
        "fine",
    ])
    .stdout(Stdio::null())
    .status()
    .unwrap();
    assert!(cli.success());
    assert_eq!(
        count(&pg, "SELECT count(*) FROM orders WHERE id = 2"),
        1,
        "nothing runs before the agent resumes"
    );
    let (_, r) = m.call("approval_wait", json!({"approval_id": id})).await;
    assert_eq!(r["isError"], false, "{r}");
    assert_eq!(count(&pg, "SELECT count(*) FROM orders WHERE id = 2"), 0);
    let (_, v) = rest(reqwest::Method::GET, api(&format!("/{id}")), &rita, None).await;
    assert_eq!(v["state"], "executed");
    assert_eq!(v["approvers"], json!(["rita"]));

    // --- deny: a reason is required; the agent learns it; nothing runs.
    let id = pending_id(&m.sql("DELETE FROM orders WHERE id = 3").await);
    let (st, _) = rest(
        reqwest::Method::POST,
        api(&format!("/{id}/deny")),
        &rita,
        Some(json!({})),
    )
    .await;
    assert_eq!(st, 400);
    let (st, _) = rest(
        reqwest::Method::POST,
        api(&format!("/{id}/deny")),
        &rita,
        Some(json!({"reason": "wrong customer"})),
    )
    .await;
    assert_eq!(st, 200);
    let (_, r) = m.call("approval_wait", json!({"approval_id": id})).await;
    assert_eq!(r["isError"], true);
    assert!(
        r["structuredContent"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wrong customer"),
        "{r}"
    );
    assert_eq!(count(&pg, "SELECT count(*) FROM orders WHERE id = 3"), 1);

    // --- self-approval refused: a requester who is also a reviewer.
    let both = s.token("sam", &["agents", "reviewers"]);
    let mut sam = Mcp::connect(&s.base, &both, false).await;
    let id = pending_id(&sam.sql("DELETE FROM orders WHERE id = 4").await);
    let (st, v) = rest(
        reqwest::Method::POST,
        api(&format!("/{id}/approve")),
        &both,
        Some(json!({"reason": "me"})),
    )
    .await;
    assert_eq!(st, 403, "{v}");
    // Not in a required group: refused, and not listed for them.
    let (st, _) = rest(
        reqwest::Method::POST,
        api(&format!("/{id}/approve")),
        &auditor,
        None,
    )
    .await;
    assert_eq!(st, 403);
    let (_, list) = rest(reqwest::Method::GET, api("?state=pending"), &both, None).await;
    assert!(
        list["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"] != id.as_str())
    );
    // An auditor sees everything.
    let (_, list) = rest(reqwest::Method::GET, api("?state=all"), &auditor, None).await;
    assert!(list["approvals"].as_array().unwrap().len() >= 4);

    // --- 2 groups: one person in both still needs a second person.
    let id = pending_id(
        &m.sql("UPDATE accounts SET balance = balance - 10 WHERE id = 1")
            .await,
    );
    let (_, v) = rest(
        reqwest::Method::POST,
        api(&format!("/{id}/approve")),
        &alice,
        None,
    )
    .await;
    assert_eq!(v["state"], "pending", "{v}");
    let (_, v) = rest(
        reqwest::Method::POST,
        api(&format!("/{id}/approve")),
        &bob,
        None,
    )
    .await;
    assert_eq!(v["state"], "approved", "{v}");

    // --- replay with one changed value: a new approval, nothing executed.
    let r = m
        .sql("UPDATE accounts SET balance = balance - 99 WHERE id = 1")
        .await;
    assert_ne!(pending_id(&r), id);
    assert_eq!(count(&pg, "SELECT balance FROM accounts WHERE id = 1"), 100);
    let (_, r) = m.call("approval_wait", json!({"approval_id": id})).await;
    assert_eq!(r["isError"], false, "{r}");
    assert_eq!(count(&pg, "SELECT balance FROM accounts WHERE id = 1"), 90);
    // The approval says what ran, when, and how many rows it changed.
    let (_, v) = rest(reqwest::Method::GET, api(&format!("/{id}")), &alice, None).await;
    assert_eq!(v["state"], "executed", "{v}");
    assert_eq!(v["items"], 1, "{v}");
    assert!(v["finished_at"].is_string(), "{v}");
    assert_eq!(v["review"]["title"], "UPDATE on public.accounts", "{v}");
    assert_eq!(v["review"]["resources"], json!(["public.accounts"]), "{v}");
    let executed_id = id.clone();
    // Somebody else's approval id is not theirs to resume.
    let (_, r) = sam.call("approval_wait", json!({"approval_id": id})).await;
    assert_eq!(r["isError"], true);

    // --- the review UI: cookie login, escaped content, CSRF.
    let id = pending_id(
        &m.sql("DELETE FROM orders WHERE note = '<script>x</script>'")
            .await,
    );
    let ui = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // After execution the page shows when it ran, the outcome and the rows.
    let alice_session = ui_login(&ui, &s.base, &alice).await;
    let html = ui_page(&ui, &s.base, &executed_id, &alice_session).await;
    assert!(
        html.contains("<th>Outcome</th><td>executed</td>")
            && html.contains("<th>Items</th><td>1 returned or changed</td>")
            && html.contains("<th>Executed at</th>"),
        "execution facts on the page:\n{html}"
    );
    let page = format!("{}/ui/approvals/{id}", s.base);
    let r = ui.get(&page).send().await.unwrap();
    assert!(r.status().is_redirection());
    let r = ui
        .post(format!("{}/ui/login", s.base))
        .form(&[
            ("token", rita.as_str()),
            ("next", &format!("/ui/approvals/{id}")),
        ])
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    // SameSite=Lax: Strict would drop it on the redirect back from an
    // OpenID Connect provider.
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    assert!(
        !session.contains(&rita) && !session.contains('.'),
        "the cookie holds a session id, not the token: {session}"
    );
    let html = ui
        .get(&page)
        .header("Cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("&lt;script&gt;x&lt;/script&gt;") && !html.contains("<script>x"),
        "escaped"
    );
    assert!(
        html.contains("delete-orders-reviewed") && html.contains("public.orders"),
        "policies and tables shown"
    );
    assert!(!html.contains(&rita), "the token never appears in a page");
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let decide = format!("{page}/decide");
    let r = ui
        .post(&decide)
        .header("Cookie", &session)
        .form(&[("verdict", "approve"), ("csrf", "00")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = ui
        .post(&decide)
        .header("Cookie", &session)
        .form(&[
            ("verdict", "approve"),
            ("csrf", csrf.as_str()),
            ("reason", "ui ok"),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection());
    let (_, v) = rest(reqwest::Method::GET, api(&format!("/{id}")), &rita, None).await;
    assert_eq!(v["state"], "approved");

    // --- issue #8: a literal cannot mask away the predicate after it. The
    // reviewer sees `OR id > 0` in REST, on the page and in the audit event.
    let attack = "DELETE FROM orders WHERE note = '-----BEGIN PRIVATE KEY-----' OR id > 0";
    let attack_id = pending_id(&m.sql(attack).await);
    let (_, v) = rest(
        reqwest::Method::GET,
        api(&format!("/{attack_id}")),
        &rita,
        None,
    )
    .await;
    let shown = v["review"]["runs"][0]["text"].as_str().unwrap_or_default();
    // The canonical statement (names qualified as policy saw them).
    assert_eq!(
        shown, "DELETE FROM \"public\".\"orders\" WHERE note = '[PRIVATE_KEY]' OR id > 0",
        "{v}"
    );
    for field in [&v["arguments"]["sql"], &v["summary_text"]] {
        let text = field.as_str().unwrap_or_default();
        assert!(
            text.contains("'[PRIVATE_KEY]' OR id > 0") && !text.contains("BEGIN PRIVATE"),
            "{field}"
        );
    }
    let html = ui_page(&ui, &s.base, &attack_id, &session).await;
    assert!(
        html.contains("&#39;[PRIVATE_KEY]&#39; OR id &gt; 0")
            || html.contains("'[PRIVATE_KEY]' OR id &gt; 0"),
        "the page shows the predicate"
    );
    // The page says that values are masked and what would unmask them, and
    // speaks of a pending call in the future tense.
    assert!(
        html.contains("[PRIVATE_KEY] are masked")
            && html.contains("permitting you <code>unmask</code>")
            && html.contains("Approval does not start it"),
        "masking note and lifecycle on the page:\n{html}"
    );
    // A reviewer whom policy permits `unmask` sees the values raw, and is told so.
    let dora = s.token("dora", &["reviewers", "unmaskers"]);
    let dora_session = ui_login(&ui, &s.base, &dora).await;
    let raw = ui_page(&ui, &s.base, &attack_id, &dora_session).await;
    assert!(
        raw.contains("Shown unmasked") && raw.contains("-----BEGIN PRIVATE KEY-----"),
        "an unmask-permitted reviewer sees raw values:\n{raw}"
    );
    let (_, events) = rest(
        reqwest::Method::GET,
        format!("{}/api/audit?tool=sql_query&limit=1000", s.base),
        &auditor,
        None,
    )
    .await;
    let recorded = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["approval"]["id"] == attack_id.as_str())
        .cloned()
        .expect("the paused call is audited");
    assert_eq!(
        recorded["arguments"]["sql"], "DELETE FROM orders WHERE note = '[PRIVATE_KEY]' OR id > 0",
        "{recorded}"
    );
    let (st, _) = rest(
        reqwest::Method::POST,
        api(&format!("/{attack_id}/deny")),
        &rita,
        Some(json!({"reason": "deletes every order"})),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(count(&pg, "SELECT count(*) FROM orders WHERE id > 40"), 10);

    // --- Tasks extension: the call becomes a task; its result is the tool's result.
    let mut t = Mcp::connect(&s.base, &agent, true).await;
    let r = t.sql("DELETE FROM orders WHERE id = 6").await;
    assert_eq!(r["resultType"], "task", "{r}");
    let task = r["taskId"].as_str().unwrap().to_string();
    let (_, g) = t.request("tasks/get", json!({"taskId": task})).await;
    assert_eq!(g["result"]["status"], "working", "{g}");
    let msg = g["result"]["statusMessage"].as_str().unwrap().to_string();
    let id = msg
        .split_whitespace()
        .find(|w| w.starts_with("apr_"))
        .expect("status names the approval")
        .to_string();
    rest(
        reqwest::Method::POST,
        api(&format!("/{id}/approve")),
        &rita,
        None,
    )
    .await;
    let mut done = Value::Null;
    for _ in 0..100 {
        let (_, g) = t.request("tasks/get", json!({"taskId": task})).await;
        if g["result"]["status"] != "working" {
            done = g["result"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"]["isError"], false, "{done}");
    assert_eq!(count(&pg, "SELECT count(*) FROM orders WHERE id = 6"), 0);
    // tasks/cancel cancels the pending approval.
    let r = t.sql("DELETE FROM orders WHERE id = 7").await;
    let task = r["taskId"].as_str().unwrap().to_string();
    t.request("tasks/cancel", json!({"taskId": task})).await;
    let mut status = Value::Null;
    for _ in 0..50 {
        let (_, g) = t.request("tasks/get", json!({"taskId": task})).await;
        status = g["result"]["status"].clone();
        if status != "working" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "cancelled");
    let (_, list) = rest(
        reqwest::Method::GET,
        api("?state=cancelled"),
        &auditor,
        None,
    )
    .await;
    assert_eq!(list["approvals"].as_array().unwrap().len(), 1, "{list}");

    // --- kill -9 with approvals pending; restart; approve; the result is delivered.
    let id8 = pending_id(&m.sql("DELETE FROM orders WHERE id = 8").await);
    server.kill9();
    let server = s.start().await;
    let (st, v) = rest(
        reqwest::Method::POST,
        api(&format!("/{id8}/approve")),
        &rita,
        Some(json!({"reason": "after restart"})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let mut m = Mcp::connect(&s.base, &agent, false).await;
    let (_, r) = m.call("approval_wait", json!({"approval_id": id8})).await;
    assert_eq!(r["isError"], false, "{r}");
    assert_eq!(count(&pg, "SELECT count(*) FROM orders WHERE id = 8"), 0);

    // --- webhook: failed twice (audited), then delivered.
    let t0 = Instant::now();
    while hits.load(Ordering::SeqCst) < 3 && t0.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(hits.load(Ordering::SeqCst) >= 3);
    let first = bodies.lock().unwrap()[0].clone();
    assert!(
        first["text"]
            .as_str()
            .unwrap()
            .contains("/ui/approvals/apr_"),
        "{first}"
    );
    assert!(first["blocks"].is_array());
    let attack_hook = bodies
        .lock()
        .unwrap()
        .iter()
        .find(|b| b.to_string().contains("[PRIVATE_KEY]"))
        .cloned()
        .expect("the attack's approval went to the webhook");
    assert!(
        attack_hook["text"]
            .as_str()
            .unwrap_or_default()
            .contains("'[PRIVATE_KEY]' OR id &gt; 0"),
        "{attack_hook}"
    );
    let (_, events) = rest(
        reqwest::Method::GET,
        format!("{}/api/audit?tool=approval&limit=1000", s.base),
        &auditor,
        None,
    )
    .await;
    let events = events["events"].as_array().unwrap().clone();
    assert!(
        events
            .iter()
            .any(|e| e["arguments"]["event"] == "webhook_failed")
    );
    for ev in [
        "created",
        "approve",
        "approved",
        "denied",
        "executed",
        "cancelled",
    ] {
        assert!(
            events.iter().any(|e| e["arguments"]["event"] == ev),
            "no audited {ev}"
        );
    }
    drop(server);
    assert!(s.verify_audit(), "audit chain intact");
    drop(s.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approvals_in_process() {
    let pg = PgServer::start().expect("start PostgreSQL");
    let url = pg.create_database("shop", FIXTURE).unwrap();
    let s = setup(&url, "");
    let config = Config::load(&s.config).expect("config");
    let gw = tollgate_server::app::gateway(&config).await.unwrap();
    let gate = gw.approvals().unwrap().service().unwrap();
    let agent = Principal {
        sub: "agent-1".into(),
        groups: vec!["agents".into()],
    };
    let rita = Principal {
        sub: "rita".into(),
        groups: vec!["reviewers".into()],
    };
    let quick = CallContext {
        wait: Some(Duration::ZERO),
        ..Default::default()
    };
    let call = |sql: &str| json!({"connection": "shop", "sql": sql});

    // --- two racing approval_wait calls: one execution.
    let r = gw
        .call(
            &agent,
            "sql_query",
            call("DELETE FROM orders WHERE id < 10"),
            &quick,
        )
        .await;
    let id = r.structured["approval_id"].as_str().unwrap().to_string();
    gate.approve(&id, &rita, None).await.unwrap();
    let wait = json!({"approval_id": id});
    let (a, b) = tokio::join!(
        gw.call(&agent, "approval_wait", wait.clone(), &quick),
        gw.call(&agent, "approval_wait", wait.clone(), &quick)
    );
    assert_eq!(
        [a.is_error, b.is_error].iter().filter(|e| !**e).count(),
        1,
        "{a:?} {b:?}"
    );
    assert_eq!(count(&pg, "SELECT count(*) FROM orders WHERE id < 10"), 0);

    // --- policy changed to deny between approval and execution: nothing runs.
    let r = gw
        .call(
            &agent,
            "sql_query",
            call("DELETE FROM orders WHERE id = 20"),
            &quick,
        )
        .await;
    let id = r.structured["approval_id"].as_str().unwrap().to_string();
    gate.approve(&id, &rita, None).await.unwrap();
    let no_delete: String = POLICY.lines().take(5).collect::<Vec<_>>().join("\n");
    gw.set_policy(
        PolicyEngine::new(
            tollgate_server::app::policy_schema().unwrap(),
            &load_sources(vec![("p.cedar".into(), no_delete)]),
        )
        .unwrap(),
    );
    let r = gw
        .call(&agent, "approval_wait", json!({"approval_id": id}), &quick)
        .await;
    assert!(r.is_error);
    assert_eq!(r.structured["error"]["code"], "denied");
    assert_eq!(count(&pg, "SELECT count(*) FROM orders WHERE id = 20"), 1);

    // --- expiry (also enforced by the sweeper after a restart).
    gw.set_policy(
        PolicyEngine::new(
            tollgate_server::app::policy_schema().unwrap(),
            &load_sources(vec![("p.cedar".into(), POLICY.into())]),
        )
        .unwrap(),
    );
    let s2 = setup(&url, "");
    std::fs::write(
        &s2.config,
        std::fs::read_to_string(&s2.config)
            .unwrap()
            .replace("ttl = \"1h\"", "ttl = \"1s\""),
    )
    .unwrap();
    let config2 = Config::load(&s2.config).expect("config");
    let gw2 = tollgate_server::app::gateway(&config2).await.unwrap();
    let r = gw2
        .call(
            &agent,
            "sql_query",
            call("DELETE FROM orders WHERE id = 30"),
            &quick,
        )
        .await;
    let id = r.structured["approval_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let gate2 = gw2.approvals().unwrap().service().unwrap();
    assert!(
        gate2.approve(&id, &rita, None).await.is_err(),
        "expired approvals cannot be approved"
    );
    let r = gw2
        .call(&agent, "approval_wait", json!({"approval_id": id}), &quick)
        .await;
    assert!(r.is_error);
    assert!(
        r.structured["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{r:?}"
    );
    assert_eq!(count(&pg, "SELECT count(*) FROM orders WHERE id = 30"), 1);
}

/// An agent's `notifications/cancelled` stops the statement on the server
/// (not just the wait for it), and the call is audited as cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mcp_cancellation_stops_the_running_statement() {
    // Installs the process's TLS provider, which reqwest clients need.
    let _ = tollgate_server::approvals::http_client(Duration::from_secs(1));
    let pg = PgServer::start().expect("start PostgreSQL");
    let url = pg.create_database("shop", FIXTURE).unwrap();
    let s = setup(&url, "");
    let _server = s.start().await;
    let agent = s.token("agent-1", &["agents"]);
    let auditor = s.token("aud-1", &["auditors"]);
    let running = || {
        count(
            &pg,
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
             AND query LIKE '%generate_series%2000000000%' AND pid <> pg_backend_pid()",
        )
    };
    let mut m = Mcp::connect(&s.base, &agent, false).await;
    let mut canceller = Mcp {
        http: reqwest::Client::new(),
        url: m.url.clone(),
        token: agent.clone(),
        session: m.session.clone(),
        next: 1000,
    };
    let request_id = m.next;
    // Counting to 2e9 runs far longer than the 1 s before the cancel (and
    // than the check after it); the connection's statement_timeout is 5 s.
    let call = tokio::spawn(async move {
        m.sql("SELECT count(*) FROM generate_series(1, 2000000000)")
            .await
    });
    let mut seen = false;
    for _ in 0..50 {
        if running() == 1 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen,
        "the statement should be running: {:?}",
        call.is_finished()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    canceller
        .post(
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": request_id, "reason": "test"}}),
        )
        .await;
    let cancelled_at = Instant::now();
    let mut stopped = false;
    // Well before the 5 s statement_timeout (started >= 0.5 s before the
    // cancel), with room for a loaded 2-core machine.
    while cancelled_at.elapsed() < Duration::from_millis(3000) {
        if running() == 0 {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stopped, "the server still runs the cancelled statement");
    let _ = tokio::time::timeout(Duration::from_secs(5), call).await;
    // Audited: an error whose message says it was cancelled.
    let mut event = Value::Null;
    for _ in 0..50 {
        let (_, list) = rest(
            reqwest::Method::GET,
            format!("{}/api/audit?tool=sql_query", s.base),
            &auditor,
            None,
        )
        .await;
        if let Some(e) = list["events"].as_array().and_then(|a| a.first()) {
            event = e.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(event["decision"], "error", "{event}");
    assert!(
        event["outcome"]["error"]
            .as_str()
            .is_some_and(|m| m.contains("cancelled")),
        "{event}"
    );
}
