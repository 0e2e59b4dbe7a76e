//! `GET /api/audit/{id}/recording` on the real router and the embedded
//! store: the asciicast for `audit:read` only, 404 without one, and a
//! recording changed or removed in the database is a 500 naming the
//! problem, never the changed file. Every read of the audit log is an
//! `audit_read` event; refused bearer tokens are one `auth_refused` event
//! per window, however many.

use std::sync::Arc;
use std::time::Duration;

use gateway_core::audit::AuditEvent;
use gateway_core::connector::FieldPath;
use gateway_core::mask::Masker;
use gateway_core::record::Trace;
use gateway_core::recording::{RecordedOutput, Recording, RenderedRecording};
use gateway_core::{Gateway, Principal};
use sqlx::ConnectOptions;
use tollgate_server::config::Config;
use tollgate_server::state::AppState;

const POLICY: &str = r#"
@id("auditors")
permit (principal in Tollgate::Group::"auditors", action == Tollgate::Action::"audit:read", resource == Tollgate::Audit::"log");
"#;

struct Server {
    dir: std::path::PathBuf,
    base: String,
    gateway: Arc<Gateway>,
    auditor: String,
    agent: String,
    auth: Arc<gateway_core::identity::Authenticator>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn serve() -> Server {
    tollgate_server::init_crypto();
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir =
        std::env::temp_dir().join(format!("tollgate-api-recording-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("policies/p.cedar"), POLICY).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config_path = dir.join("tollgate.toml");
    std::fs::write(
        &config_path,
        format!(
            "[server]\nlisten = \"{addr}\"\npublic_url = \"http://{addr}\"\ndata_dir = \"data\"\n\n\
             [auth]\nhs256_secret = \"api-recording-test-secret-0123456789\"\n\n[policy]\ndir = \"policies\"\n"
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
    let token = |sub: &str, group: &str| {
        auth.mint_hs256(sub, &[group.to_string()], Duration::from_secs(600))
            .unwrap()
    };
    let (auditor, agent) = (token("audrey", "auditors"), token("bot", "agents"));
    let state = AppState {
        gateway: gateway.clone(),
        auth: auth.clone(),
        public_url: format!("http://{addr}"),
        issuer: None,
        login: Default::default(),
    };
    let app = tollgate_server::http::router(state, vec![addr.to_string()], Default::default())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        dir,
        base: format!("http://{addr}"),
        gateway,
        auditor,
        agent,
        auth,
    }
}

/// Record a call in the running gateway's store, with `recording` stored
/// first and named by the event when given.
async fn record(gateway: &Gateway, recording: Option<&RenderedRecording>) -> AuditEvent {
    let who = Principal {
        sub: "bot".into(),
        groups: vec!["agents".into()],
    };
    let args = serde_json::json!({"connection": "web-1", "command": "uptime"});
    let mut record = Trace::start(&who, "ssh_exec", &args, &Masker::default()).finish(
        "allow",
        "ok",
        None,
        None,
        serde_json::Value::Null,
    );
    if let Some(r) = recording {
        gateway.audit().put_recording(r).await.unwrap();
        record.recording = Some(r.reference.clone());
    }
    gateway.audit().append(record).await.unwrap()
}

async fn tamper(server: &Server, sql: &str, body: Option<Vec<u8>>) {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(server.dir.join("data/tollgate.db"))
        .connect()
        .await
        .unwrap();
    let query = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
    let query = match body {
        Some(b) => query.bind(b),
        None => query,
    };
    query.execute(&mut conn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recording_is_served_to_auditors_only_and_only_intact() {
    let s = serve().await;
    let recording = RenderedRecording::new(&Recording {
        width: 80,
        height: 24,
        timestamp: 1_765_000_000,
        command: "uptime".into(),
        title: "ssh web-1".into(),
        events: vec![RecordedOutput {
            at: Duration::from_millis(12),
            field: FieldPath::new(["stdout"]),
            text: " 10:00:01 up 3 days, load [IP_ADDRESS]\n".into(),
        }],
    });
    let plain = record(&s.gateway, None).await;
    let with = record(&s.gateway, Some(&recording)).await;
    let http = reqwest::Client::new();
    let get = |id: &str, token: Option<&str>| {
        let mut r = http.get(format!("{}/api/audit/{id}/recording", s.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let json = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let ct = r.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(ct.starts_with("application/json"), "{status}: {ct}");
        (status, r.json::<serde_json::Value>().await.unwrap())
    };

    let r = get(&with.id, Some(&s.auditor)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()[reqwest::header::CONTENT_TYPE],
        "application/x-asciicast"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.bytes().await.unwrap().as_ref(), recording.body.as_slice());

    // Who may not read the audit gets neither the file nor whether it exists.
    let (status, body) = json(get(&with.id, Some(&s.agent)).await.unwrap()).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("audit:read"),
        "{body}"
    );
    let (status, _) = json(get("nope", Some(&s.agent)).await.unwrap()).await;
    assert_eq!(status, 403, "the same answer for an unknown id");
    assert_eq!(get(&with.id, None).await.unwrap().status(), 401);

    let (status, body) = json(get("nope", Some(&s.auditor)).await.unwrap()).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["message"], "no audit event nope");
    let (status, body) = json(get(&plain.id, Some(&s.auditor)).await.unwrap()).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("has no recording"),
        "{body}"
    );

    // Changed in the database: a 500 that says so, never the changed file.
    let forged = String::from_utf8(recording.body.clone())
        .unwrap()
        .replace("[IP_ADDRESS]", "10.20.30.40")
        .into_bytes();
    tamper(&s, "UPDATE recordings SET body = ?", Some(forged)).await;
    let r = get(&with.id, Some(&s.auditor)).await.unwrap();
    let (status, body) = json(r).await;
    assert_eq!(status, 500, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(&recording.reference.sha256)
            && message.contains("was modified")
            && message.contains("audit verify"),
        "{message}"
    );
    assert!(!body.to_string().contains("10.20.30.40"), "{body}");

    tamper(&s, "DELETE FROM recordings", None).await;
    let (status, body) = json(get(&with.id, Some(&s.auditor)).await.unwrap()).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("is missing from the store"),
        "{body}"
    );
}

/// The events of `tool` in the running gateway's store, oldest first.
async fn events_of(gateway: &Gateway, tool: &str) -> Vec<AuditEvent> {
    let mut events = gateway
        .audit()
        .list(&gateway_core::audit::AuditFilter {
            tool: Some(tool.into()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    events.sort_by_key(|e| e.seq);
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_audit_read_and_every_refused_token_is_in_the_chain() {
    let s = serve().await;
    let event = record(&s.gateway, None).await;
    let http = reqwest::Client::new();
    let get = |path: String, token: &str| {
        http.get(format!("{}{path}", s.base))
            .bearer_auth(token)
            .send()
    };
    let r = get("/api/audit?tool=ssh_exec&limit=5".into(), &s.auditor)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = get(format!("/api/audit/{}", event.id), &s.auditor)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = get(format!("/api/audit/{}/recording", event.id), &s.auditor)
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no recording, but the read is recorded");
    let r = get("/api/audit".into(), &s.agent).await.unwrap();
    assert_eq!(r.status(), 403);
    // A bad query is still authenticated first (401, not 400).
    let r = http
        .get(format!("{}/api/audit?bogus=1", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let reads = events_of(&s.gateway, "audit_read").await;
    let seen: Vec<(&str, &str, &str)> = reads
        .iter()
        .map(|e| {
            (
                e.record.principal.sub.as_str(),
                e.record.arguments["path"].as_str().unwrap(),
                e.record.decision.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("audrey", "/api/audit", "allow"),
            ("audrey", "/api/audit/{id}", "allow"),
            ("audrey", "/api/audit/{id}/recording", "allow"),
            ("bot", "/api/audit", "deny"),
        ]
    );
    assert_eq!(reads[0].record.arguments["filter"]["tool"], "ssh_exec");
    assert_eq!(reads[0].record.arguments["filter"]["limit"], 5);
    assert_eq!(reads[1].record.arguments["id"], event.id);
    assert!(reads[0].seq > event.seq);

    // A flood of bad tokens: counted, one event when the window is written.
    let bad = "eyJhbGciOiJIUzI1NiJ9.bm90LWEtdG9rZW4.c2lnbmF0dXJl";
    for _ in 0..1000 {
        let r = get("/api/audit".into(), bad).await.unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = http
        .get(format!("{}/api/audit", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A refused login on the review pages counts too.
    let r = http
        .post(format!("{}/ui/login", s.base))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body("token=not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(s.gateway.flush_refusals().await.unwrap());
    assert!(
        !s.gateway.flush_refusals().await.unwrap(),
        "nothing new: no event"
    );
    let refused = events_of(&s.gateway, "auth_refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    let args = &refused[0].record.arguments;
    assert_eq!(args["total"], 1003);
    let counts: Vec<(&str, &str, u64)> = args["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap(),
                e["source"].as_str().unwrap(),
                e["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("bad_signature", "127.0.0.1", 1000),
            ("malformed", "127.0.0.1", 1),
            ("missing_token", "127.0.0.1", 2),
        ]
    );
    assert_eq!(refused[0].record.principal.sub, "anonymous");
    assert_eq!(refused[0].record.decision, "deny");
    assert_eq!(
        events_of(&s.gateway, "audit_read").await.len(),
        4,
        "refused reads are not reads"
    );
    let all = serde_json::to_string(&refused).unwrap();
    assert!(
        !all.contains(bad) && !all.contains("c2lnbmF0dXJl"),
        "never the token: {all}"
    );
    let report = s.gateway.audit().verify().await.unwrap();
    assert!(report.first_break.is_none(), "{report:?}");
}

/// A read of the audit log that cannot be recorded is not answered (503),
/// and says nothing of the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_read_that_cannot_be_recorded_is_refused() {
    use gateway_core::policy::{PolicyEngine, load_sources};
    use gateway_core::test_util::MemoryStore;
    use std::sync::atomic::Ordering;
    let s = serve().await;
    let store = Arc::new(MemoryStore::default());
    let engine = PolicyEngine::new(
        gateway_core::test_util::policy_schema(),
        &load_sources(vec![("p.cedar".into(), POLICY.into())]),
    )
    .unwrap();
    let gateway = Arc::new(
        gateway_core::GatewayBuilder::new(engine, store.clone())
            .build()
            .unwrap(),
    );
    let secret_event = record(&gateway, None).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState {
        gateway,
        auth: s.auth.clone(),
        public_url: format!("http://{addr}"),
        issuer: None,
        login: Default::default(),
    };
    let app = tollgate_server::http::router(state, vec![addr.to_string()], Default::default());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let get = |path: String| {
        http.get(format!("http://{addr}{path}"))
            .bearer_auth(&s.auditor)
            .send()
    };
    assert_eq!(get("/api/audit".into()).await.unwrap().status(), 200);
    store.broken.store(true, Ordering::SeqCst);
    for path in [
        "/api/audit".to_string(),
        format!("/api/audit/{}", secret_event.id),
        format!("/api/audit/{}/recording", secret_event.id),
    ] {
        let r = get(path.clone()).await.unwrap();
        assert_eq!(r.status(), 503, "{path}");
        let body = r.text().await.unwrap();
        assert!(!body.contains("uptime"), "{path}: {body}");
    }
    store.broken.store(false, Ordering::SeqCst);
    let reads = store
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.record.tool == "audit_read")
        .count();
    assert_eq!(reads, 1, "only the answered read is recorded");
}
