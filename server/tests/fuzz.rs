//! Fuzzing of config parsing and of MCP (JSON-RPC over streamable HTTP)
//! request handling, on the stable toolchain with proptest.
//!
//! * `Config::parse` on arbitrary text, on TOML generated from the real
//!   sections and keys with random values, and on 10,000-deep inline arrays
//!   and tables: no panic, no stack overflow (2 MiB stack), and every error
//!   carries file:line:col inside the text.
//! * `POST /mcp` on the real router (a SQLite connection, tower's `oneshot`,
//!   no socket) with a valid bearer token and an initialised session: random
//!   methods (real ones like `tools/call` with random params), wrong types,
//!   huge numbers, 10,000-deep nesting, invalid UTF-8 and truncated JSON are
//!   each answered with a status below 500, and `/healthz` answers after.
//!
//! Cases per property: `FUZZ_CASES` (default 256; the MCP property runs a
//! quarter of that, each case being a whole HTTP exchange). A long run:
//! `FUZZ_CASES=100000 cargo test --release -p tollgate --test fuzz`.
//! Failures proptest finds are kept in `proptest-regressions/fuzz.txt`.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use gateway_core::test_util::{fuzz_cases, on_worker_stack};
use http::{Request, StatusCode};
use proptest::prelude::*;
use serde_json::{Value, json};
use tollgate_server::config::Config;
use tollgate_server::state::AppState;
use tower::ServiceExt;

// ---------------------------------------------------------------------------
// Config.

/// Parse `text`; errors must point inside it.
fn parse_config(text: String) {
    let lines = text.split('\n').count();
    let errors = on_worker_stack(move || {
        Config::parse(Path::new("fuzz.toml"), &text)
            .err()
            .unwrap_or_default()
    });
    for e in errors {
        assert_eq!(e.path, "fuzz.toml");
        assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
        assert!(e.col >= 1, "col {}", e.col);
        assert!(!e.message.trim().is_empty());
    }
}

fn toml_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        "\"[^\"\\\\\\x00-\\x1f]{0,12}\"",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        prop::sample::select(vec![
            "true",
            "false",
            "\"30s\"",
            "\"1h\"",
            "\"0s\"",
            "\"-1s\"",
            "\"127.0.0.1:0\"",
            "\"http://x\"",
            "\"policies\"",
            "\"env:NOPE\"",
            "\"file:/nope\"",
            "\"redact\"",
            "\"partial\"",
            "\"hash\"",
            "\"sqlite\"",
            "\"postgres\"",
            "\"ssh\"",
            "\"k8s\"",
            "99999999999999999999",
            "1979-05-27T07:32:00Z",
            "inf",
            "nan",
            "''' x '''",
        ])
        .prop_map(str::to_string),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((key(), inner), 0..3).prop_map(|kv| format!(
                "{{ {} }}",
                kv.into_iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "listen",
            "public_url",
            "data_dir",
            "hs256_secret",
            "dir",
            "watch",
            "name",
            "kind",
            "path",
            "url",
            "create_if_missing",
            "max_affected_rows",
            "enabled",
            "default_strategy",
            "keep",
            "hash_key",
            "types",
            "columns",
            "fields",
            "custom",
            "rate",
            "concurrency",
            "who",
            "tool",
            "body_timeout",
            "approval_ttl",
            "checkpoint_interval",
            "issuer",
            "jwks_url",
            "audience",
            "max_rows",
            "timeout",
            "host",
            "user",
            "namespaces",
            "regex",
            "validator",
            "strategy",
            "\"quoted key\"",
            "a.b",
        ])
        .prop_map(str::to_string),
        "[a-z_]{1,10}",
    ]
}

fn toml_document() -> impl Strategy<Value = String> {
    let header = prop::sample::select(vec![
        "[server]",
        "[auth]",
        "[policy]",
        "[audit]",
        "[masking]",
        "[[masking.custom]]",
        "[[masking.fields]]",
        "[[connection]]",
        "[[limits]]",
        "[approval]",
        "[metrics]",
        "[x]",
        "[[server]]",
        "",
    ]);
    prop::collection::vec(
        (header, prop::collection::vec((key(), toml_value()), 0..5)),
        0..6,
    )
    .prop_map(|sections| {
        sections
            .into_iter()
            .map(|(h, kv)| {
                let body: String = kv
                    .into_iter()
                    .map(|(k, v)| format!("{k} = {v}\n"))
                    .collect();
                format!("{h}\n{body}")
            })
            .collect::<String>()
    })
}

// ---------------------------------------------------------------------------
// MCP.

struct App {
    router: Router,
    token: String,
    session: String,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

const HOST: &str = "127.0.0.1:9";

/// The runtime the MCP cases run on: workers with tokio's default stack.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| runtime().block_on(build_app()))
}

async fn build_app() -> App {
    tollgate_server::init_crypto();
    let dir = std::env::temp_dir().join(format!("tollgate-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("policies/p.cedar"),
        "permit (principal in Tollgate::Group::\"agents\", action, resource);\n",
    )
    .unwrap();
    // An empty file is an empty SQLite database (queries open it read-only).
    std::fs::write(dir.join("db.sqlite"), b"").unwrap();
    let config_path = dir.join("tollgate.toml");
    std::fs::write(
        &config_path,
        format!(
            "[server]\nlisten = \"{HOST}\"\npublic_url = \"http://{HOST}\"\ndata_dir = \"data\"\n\n\
             [auth]\nhs256_secret = \"fuzz-test-secret-0123456789-abcdef\"\n\n[policy]\ndir = \"policies\"\n\n\
             [[connection]]\nname = \"db\"\nkind = \"sqlite\"\npath = \"{}\"\ncreate_if_missing = true\n",
            dir.join("db.sqlite").display()
        ),
    )
    .unwrap();
    let config = Config::load(&config_path).expect("config loads");
    let gateway = tollgate_server::app::gateway(&config)
        .await
        .expect("gateway");
    let auth = Arc::new(
        tollgate_server::app::authenticator(&config)
            .unwrap()
            .expect("an [auth] section"),
    );
    let token = auth
        .mint_hs256("fuzzer", &["agents".to_string()], Duration::from_secs(3600))
        .unwrap();
    let state = AppState {
        gateway,
        auth,
        public_url: format!("http://{HOST}"),
        issuer: None,
        login: Default::default(),
    };
    let router = tollgate_server::http::router(state, vec![HOST.to_string()], Default::default());
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}}});
    let resp = router
        .clone()
        .oneshot(post(&token, None, init.to_string().into_bytes()))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "initialize");
    let session = resp
        .headers()
        .get("mcp-session-id")
        .expect("a session id")
        .to_str()
        .unwrap()
        .to_string();
    drop(resp);
    let app = App {
        router,
        token,
        session,
        _dir: tempdir::Dir(dir),
    };
    let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let resp = send(&app, done.to_string().into_bytes()).await;
    assert!(resp < 500, "notifications/initialized: {resp}");
    app
}

fn post(token: &str, session: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut req = Request::post("/mcp")
        .header("Host", HOST)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("Authorization", format!("Bearer {token}"));
    if let Some(s) = session {
        req = req.header("Mcp-Session-Id", s);
    }
    let mut req = req.body(Body::from(body)).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40000,
        ))));
    req
}

/// POST `body` in the session; the status. The response is read to its end
/// (bounded in time: an SSE stream that stays open is cut after 10 s).
async fn send(app: &App, body: Vec<u8>) -> u16 {
    send_read(app, body).await.0
}

async fn send_read(app: &App, body: Vec<u8>) -> (u16, String) {
    let resp = app
        .router
        .clone()
        .oneshot(post(&app.token, Some(&app.session), body))
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = tokio::time::timeout(
        Duration::from_secs(10),
        axum::body::to_bytes(resp.into_body(), 1 << 20),
    )
    .await;
    let text = match body {
        Ok(Ok(b)) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    };
    (status, text)
}

/// The harness reaches the tool: a valid call runs and returns its row.
#[test]
fn mcp_valid_call_runs() {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "sql_query", "arguments": {"connection": "db", "sql": "SELECT 41 + 1 AS answer"}}});
    let (status, text) = runtime().block_on(send_read(app(), body.to_string().into_bytes()));
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("42") && text.contains("answer"), "{text}");
}

fn check_mcp(body: Vec<u8>) {
    let status = runtime().block_on(send(app(), body.clone()));
    assert!(
        status < 500,
        "status {status} for {:?}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
        Just(json!("SELECT 1")),
        Just(json!("db")),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}|sql|connection|name|arguments", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn rpc_body() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        prop::sample::select(vec![
            "tools/call",
            "tools/list",
            "initialize",
            "ping",
            "resources/list",
            "resources/read",
            "prompts/list",
            "prompts/get",
            "completion/complete",
            "logging/setLevel",
            "notifications/initialized",
            "notifications/cancelled",
            "tasks/get",
            "tasks/list",
            "tasks/cancel",
            "tasks/result",
            "",
        ])
        .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        json_value(),
    ];
    let id = prop_oneof![
        any::<i64>().prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::from),
        Just(Value::Null),
        Just(json!(1e308)),
        Just(json!(u64::MAX)),
        json_value(),
    ];
    let params = prop_oneof![
        json_value(),
        (
            prop::sample::select(vec![
                "sql_query",
                "sql_execute",
                "sql_schema",
                "ssh_exec",
                "k8s_get",
                "nope",
                ""
            ]),
            json_value(),
            "\\PC{0,40}",
        )
            .prop_map(|(name, extra, sql)| json!({
                "name": name,
                "arguments": {"connection": "db", "sql": sql, "extra": extra},
            })),
        (
            prop::sample::select(vec!["sql_query", "sql_schema"]),
            json_value()
        )
            .prop_map(|(name, args)| json!({"name": name, "arguments": args})),
    ];
    let message = (
        prop::option::of(prop::sample::select(vec!["2.0", "1.0", ""])),
        prop::option::of(id),
        method,
        prop::option::of(params),
    )
        .prop_map(|(v, id, method, params)| {
            let mut m = serde_json::Map::new();
            if let Some(v) = v {
                m.insert("jsonrpc".into(), v.into());
            }
            if let Some(id) = id {
                m.insert("id".into(), id);
            }
            m.insert("method".into(), method);
            if let Some(p) = params {
                m.insert("params".into(), p);
            }
            Value::Object(m)
        });
    let text = prop_oneof![
        4 => message.clone().prop_map(|m| m.to_string().into_bytes()),
        1 => prop::collection::vec(message.clone(), 0..3).prop_map(|b| Value::Array(b).to_string().into_bytes()),
        1 => (message.clone(), any::<prop::sample::Index>()).prop_map(|(m, at)| {
            let mut b = m.to_string().into_bytes();
            b.truncate(at.index(b.len()));
            b
        }),
        1 => (message, any::<prop::sample::Index>(), any::<u8>()).prop_map(|(m, at, byte)| {
            let mut b = m.to_string().into_bytes();
            let i = at.index(b.len());
            b[i] = byte | 0x80;
            b
        }),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ];
    text
}

proptest! {
    #![proptest_config(gateway_core::fuzz_config!(fuzz_cases()))]

    #[test]
    fn config_arbitrary_text(text in "\\PC{0,300}|.{0,300}") {
        parse_config(text);
    }

    #[test]
    fn config_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        parse_config(String::from_utf8_lossy(&bytes).into_owned());
    }

    #[test]
    fn config_generated_toml(text in toml_document()) {
        parse_config(text);
    }
}

proptest! {
    #![proptest_config(gateway_core::fuzz_config!(fuzz_cases().div_ceil(4)))]

    #[test]
    fn mcp_requests(body in rpc_body()) {
        check_mcp(body);
    }
}

/// 10,000-deep TOML: refused with a positioned error saying so (the toml
/// parser's recursion limit), never a crash.
#[test]
fn config_deep_nesting_10000() {
    let n = 10_000;
    for text in [
        format!("a = {}1{}\n", "[".repeat(n), "]".repeat(n)),
        format!("a = {}1{}\n", "{ b = ".repeat(n), " }".repeat(n)),
        format!("[{}]\n", vec!["a"; n].join(".")),
        format!("{} = 1\n", vec!["a"; n].join(".")),
    ] {
        let errors = on_worker_stack(move || {
            Config::parse(Path::new("fuzz.toml"), &text)
                .err()
                .unwrap_or_default()
        });
        assert_eq!(errors.len(), 1, "10,000 levels must be refused");
        let e = &errors[0];
        assert!(e.line >= 1 && e.col >= 1 && e.path == "fuzz.toml");
        assert!(
            e.message.contains("recurs"),
            "the refusal must say the nesting is too deep: {}",
            e.message
        );
    }
}

/// Deep, huge and malformed bodies, then `/healthz` still answers.
#[test]
fn mcp_hostile_bodies_then_healthz() {
    let n = 10_000;
    let deep_params = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"sql_query\",\"arguments\":{{\"connection\":\"db\",\"sql\":\"SELECT 1\",\"x\":{}1{}}}}}}}",
        "[".repeat(n),
        "]".repeat(n)
    );
    let deep_sql = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{{\"name\":\"sql_query\",\"arguments\":{{\"connection\":\"db\",\"sql\":\"SELECT {}1{}\"}}}}}}",
        "(".repeat(n),
        ")".repeat(n)
    );
    let bodies: Vec<Vec<u8>> = vec![
        format!("{}1{}", "[".repeat(n), "]".repeat(n)).into_bytes(),
        format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n)).into_bytes(),
        deep_params.into_bytes(),
        deep_sql.into_bytes(),
        format!("{{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}}", "9".repeat(5000)).into_bytes(),
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"sql_query\",\"arguments\":{\"connection\":\"db\",\"sql\":\"SELECT 1\"}}}".to_vec(),
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/ca".to_vec(),
        vec![0xff, 0xfe, b'{', 0x80],
        Vec::new(),
    ];
    for body in bodies {
        check_mcp(body);
    }
    let status = runtime().block_on(async {
        let mut req = Request::get("/healthz")
            .header("Host", HOST)
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                40000,
            ))));
        app().router.clone().oneshot(req).await.unwrap().status()
    });
    assert_eq!(status, StatusCode::OK);
}
