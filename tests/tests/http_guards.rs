//! The browser- and session-facing walls of the HTTP surface, against a real
//! `tollgate` HTTP server (in process, SQLite target, no external server):
//! the Origin check on `/mcp`, MCP sessions bound to their principal, login
//! CSRF, the `?done=` message and the UI's security headers.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tollgate_server::config::Config;
use tollgate_tests::TempDir;

const POLICY: &str = r#"
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource == Tollgate::Connection::"demo");
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select", resource in Tollgate::Connection::"demo");
@approval("reviewers")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:delete", resource in Tollgate::Connection::"demo");
"#;

const PUBLIC: &str = "https://tollgate.example";

struct Server {
    gateway: std::sync::Arc<gateway_core::Gateway>,
    _dir: TempDir,
    base: String,
    config: Config,
    db: String,
}

impl Server {
    async fn start() -> Server {
        tollgate_server::init_crypto();
        let dir = TempDir::new("http-guards").unwrap();
        std::fs::create_dir_all(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("policies/p.cedar"), POLICY).unwrap();
        let path = dir.path().join("tollgate.toml");
        std::fs::write(
            &path,
            format!(
                r#"[server]
listen = "127.0.0.1:0"
public_url = "{PUBLIC}"
data_dir = "data"

[auth]
hs256_secret = "http-guards-secret-0123456789abcdef"

[approval]
wait_seconds = 0

[[connection]]
name = "demo"
kind = "sqlite"
path = "{db}"
create_if_missing = true
"#,
                db = dir.path().join("demo.db").display()
            ),
        )
        .unwrap();
        let config = Config::load(&path).expect("config");
        let gateway = tollgate_server::app::gateway(&config)
            .await
            .expect("gateway");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let serve_config = Config::load(&path).expect("config");
        let served = gateway.clone();
        tokio::spawn(async move {
            tollgate_server::commands::serve::serve_http(&serve_config, served, Some(tx)).await
        });
        let addr = tokio::time::timeout(Duration::from_secs(20), rx)
            .await
            .expect("server ready")
            .expect("address");
        let db = dir.path().join("demo.db").display().to_string();
        Server {
            gateway,
            _dir: dir,
            base: format!("http://{addr}"),
            config,
            db,
        }
    }

    fn token(&self, sub: &str, groups: &[&str]) -> String {
        let auth = tollgate_server::app::authenticator(&self.config)
            .unwrap()
            .unwrap();
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        auth.mint_hs256(sub, &groups, Duration::from_secs(600))
            .unwrap()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// One JSON-RPC message to /mcp; returns (status, session id header, first message).
async fn mcp(
    base: &str,
    token: &str,
    session: Option<&str>,
    origin: Option<&str>,
    body: Value,
) -> (StatusCode, Option<String>, Value) {
    let mut req = client()
        .post(format!("{base}/mcp"))
        .bearer_auth(token)
        .header("Accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(s) = session {
        req = req
            .header("Mcp-Session-Id", s)
            .header("MCP-Protocol-Version", "2025-11-25");
    }
    if let Some(o) = origin {
        req = req.header("Origin", o);
    }
    let resp = req.send().await.expect("post /mcp");
    let status = resp.status();
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
    (status, sid, value)
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "guards", "version": "1"}}})
}

/// Open a session as `token`; returns its id.
async fn open_session(base: &str, token: &str) -> String {
    let (st, sid, init) = mcp(base, token, None, None, initialize()).await;
    assert_eq!(st, StatusCode::OK, "{init}");
    let sid = sid.expect("a session id");
    let (st, _, _) = mcp(
        base,
        token,
        Some(&sid),
        None,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert!(st.is_success(), "{st}");
    sid
}

fn call(id: u64, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_origin_check_and_session_binding() {
    let s = Server::start().await;
    let alice = s.token("alice", &["agents"]);
    let mallory = s.token("mallory", &["agents"]);

    // --- Origin: absent, public, loopback pass; foreign and `null` are 403 before auth.
    for ok in [None, Some(PUBLIC), Some("http://localhost:6274")] {
        let (st, _, v) = mcp(&s.base, &alice, None, ok, initialize()).await;
        assert_eq!(st, StatusCode::OK, "{ok:?}: {v}");
    }
    for bad in [
        "https://evil.example",
        "null",
        "https://tollgate.example.evil.example",
    ] {
        let (st, _, v) = mcp(&s.base, &alice, None, Some(bad), initialize()).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{bad}: {v}");
        assert!(
            v["message"].as_str().unwrap_or("").contains("not allowed"),
            "{v}"
        );
        let (st, _, _) = mcp(&s.base, "no-token", None, Some(bad), initialize()).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "Origin is checked before auth");
    }

    // --- Sessions: the owner uses hers; another valid token cannot.
    let sid = open_session(&s.base, &alice).await;
    let (st, _, v) = mcp(
        &s.base,
        &alice,
        Some(&sid),
        None,
        call(2, "list_connections", json!({})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["result"]["isError"], false, "{v}");
    let (st, _, v) = mcp(
        &s.base,
        &mallory,
        Some(&sid),
        None,
        call(3, "list_connections", json!({})),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("not opened with your identity"),
        "{v}"
    );
    assert!(v.get("result").is_none(), "no result for the intruder: {v}");
    // Mallory cannot end Alice's session either; Alice's still works after.
    let r = client()
        .delete(format!("{}/mcp", s.base))
        .bearer_auth(&mallory)
        .header("Mcp-Session-Id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (st, _, v) = mcp(
        &s.base,
        &alice,
        Some(&sid),
        None,
        call(4, "list_connections", json!({})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // A made-up session id is refused as unknown.
    let (st, _, _) = mcp(
        &s.base,
        &alice,
        Some("made-up"),
        None,
        call(5, "list_connections", json!({})),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // An unknown tool is a protocol error, and audited like any call.
    let (st, _, v) = mcp(
        &s.base,
        &alice,
        Some(&sid),
        None,
        call(7, "no_such_tool", json!({})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["error"]["code"], -32602, "{v}");
    let events = s
        .gateway
        .audit()
        .list(&gateway_core::audit::AuditFilter {
            tool: Some("no_such_tool".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "the unknown tool call is audited");
    assert_eq!(events[0].record.principal.sub, "alice");
    // Mallory's own session works.
    let msid = open_session(&s.base, &mallory).await;
    let (st, _, v) = mcp(
        &s.base,
        &mallory,
        Some(&msid),
        None,
        call(6, "list_connections", json!({})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

fn has_security_headers(r: &reqwest::Response) {
    let h = r.headers();
    let csp = h
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    // Scripts and styles only from this origin (the console's embedded
    // assets): nothing inline runs.
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("style-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
    assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
    // Not `no-referrer`: browsers would then send `Origin: null` on our own forms.
    assert_eq!(h.get("referrer-policy").unwrap(), "same-origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_login_csrf_done_reflection_and_headers() {
    let s = Server::start().await;
    let agent = s.token("bot", &["agents"]);
    let rita = s.token("rita", &["reviewers"]);
    let eve = s.token("eve", &["reviewers"]);
    let ui = client();

    // A pending approval to look at.
    let sid = open_session(&s.base, &agent).await;
    // The table, set up through the connector directly (no policy).
    let c = tollgate_tests::connector(
        "sqlite",
        "demo",
        json!({"name": "demo", "kind": "sqlite", "path": s.db, "create_if_missing": true}),
    );
    for sql in [
        "CREATE TABLE items (id INTEGER PRIMARY KEY)",
        "INSERT INTO items VALUES (1)",
    ] {
        tollgate_tests::query(&*c, sql, json!([]))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let (_, _, v) = mcp(
        &s.base,
        &agent,
        Some(&sid),
        None,
        call(
            2,
            "sql_query",
            json!({"connection": "demo", "sql": "DELETE FROM items WHERE id = 1"}),
        ),
    )
    .await;
    let id = v["result"]["structuredContent"]["approval_id"]
        .as_str()
        .unwrap_or_else(|| panic!("pending: {v}"))
        .to_string();

    // --- headers on every UI response (login page, redirect, error).
    let r = ui.get(format!("{}/ui/login", s.base)).send().await.unwrap();
    has_security_headers(&r);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("<link rel=\"stylesheet\" href=\"/ui/assets/console.css\">")
            && !body.contains("<style"),
        "the stylesheet comes from the binary's assets, none inline"
    );
    let r = ui.get(format!("{}/ui", s.base)).send().await.unwrap();
    assert!(r.status().is_redirection());
    has_security_headers(&r);

    // --- login CSRF: a foreign Origin (or Referer) cannot set a session.
    let login = format!("{}/ui/login", s.base);
    for (name, value) in [
        ("Origin", "https://evil.example"),
        ("Origin", "null"),
        ("Referer", "https://evil.example/attack.html"),
    ] {
        let r = ui
            .post(&login)
            .header(name, value)
            .form(&[("token", eve.as_str()), ("next", "/ui")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name}: {value}");
        assert!(r.headers().get("set-cookie").is_none(), "no session set");
    }
    // Same origin (the public URL, or the Host it was sent to) logs in.
    let r = ui
        .post(&login)
        .header("Origin", PUBLIC)
        .form(&[("token", rita.as_str()), ("next", "/ui")])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let host_origin = s.base.clone();
    let r = ui
        .post(&login)
        .header("Origin", &host_origin)
        .form(&[("token", rita.as_str()), ("next", "/ui")])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let session = cookie.split(';').next().unwrap().to_string();

    // --- ?done= is never echoed; known keys show fixed text.
    let page = format!("{}/ui/approvals/{id}", s.base);
    let r = ui
        .get(format!(
            "{page}?done=%3Cb%3EInjected%3C/b%3E%20call%20evil.example"
        ))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    has_security_headers(&r);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("DELETE FROM items"),
        "the approval page: {html}"
    );
    assert!(!html.contains("Injected"), "done text reflected");
    assert!(!html.contains("evil.example"), "done text reflected");
    let html = ui
        .get(format!("{page}?done=approved"))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("The approval is now approved."), "{html}");
}
