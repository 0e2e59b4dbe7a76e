//! A tool family added without touching gateway-core: the test-only `depot`
//! family (tests/src/depot.rs: nested resources with a parent chain and an
//! attribute, its own Cedar fragment, actions and context, non-row output,
//! a field masking rule of its own, its own review summary) registered into
//! the server at run time, then driven through the whole pipeline: `check`
//! against the combined schema, policy on its actions, parent chain and
//! attribute, masking by its field rule, an approval whose page shows its
//! review, approval and execution, and an audit chain that verifies.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use gateway_core::Principal;
use gateway_core::approval::CallContext;
use gateway_core::outcome::CallOutcome;
use serde_json::{Value, json};
use tollgate_server::config::Config;
use tollgate_server::state::AppState;
use tollgate_tests::TempDir;
use tollgate_tests::depot::DepotFactory;

const SEAL: &str = "4471-9023";

const POLICY: &str = r#"
@id("agents-connect")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource == Tollgate::Connection::"depot");
@id("inspect-shelf-a-in-eu")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"depot:inspect", resource in Tollgate::Shelf::"depot/A")
when { context.site == "eu" };
@id("no-hazardous-crates")
forbid (principal, action, resource is Tollgate::Crate) when { resource.hazard };
@id("open-with-review")
@approval("reviewers")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"depot:open", resource in Tollgate::Connection::"depot")
when { context.labels.contains("openable") };
@id("auditors")
permit (principal in Tollgate::Group::"auditors", action == Tollgate::Action::"audit:read", resource == Tollgate::Audit::"log");
"#;

fn config_text(port: u16, secret: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
data_dir = "data"

[auth]
hs256_secret = "${{file:{secret}}}"

[policy]
dir = "policies"

[approval]
wait_seconds = 0

[[masking.fields]]
field = "Crate.secrets.*"
kinds = ["depot"]
type = "SEAL"

[[connection]]
name = "depot"
kind = "depot"
site = "eu"
crates = [
  {{ shelf = "A", id = "1", label = "bolts", code = "{SEAL}", labels = ["openable"] }},
  {{ shelf = "A", id = "2", label = "acid", code = "1111-2222", hazard = true, labels = ["openable"] }},
  {{ shelf = "B", id = "3", label = "nuts", code = "3333-4444" }},
]
"#
    )
}

async fn cli(args: &[&str]) -> ExitCode {
    let cli = tollgate_server::cli::Cli::parse_from(args);
    tollgate_server::commands::run(cli)
        .await
        .expect("command runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_outside_the_core_runs_the_whole_pipeline() {
    tollgate_server::init_crypto();
    tollgate_server::connectors::register(Arc::new(DepotFactory));
    let dir = TempDir::new("family").unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/depot.cedar"), POLICY).unwrap();
    let secret = dir.path().join("secret.key").to_str().unwrap().to_string();
    std::fs::write(&secret, "family-test-secret-0123456789abcdef").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config_path = dir.path().join("tollgate.toml");
    std::fs::write(&config_path, config_text(addr.port(), &secret)).unwrap();
    let config = Config::load(&config_path).expect("config loads");

    // The family's fragment is part of the schema policies validate against:
    // the config checks clean, and a policy naming a context field the
    // fragment does not declare is refused.
    assert_eq!(tollgate_server::app::check(&config), Vec::<String>::new());
    let bad = dir.path().join("policies/bad.cedar");
    std::fs::write(
        &bad,
        r#"permit (principal, action == Tollgate::Action::"depot:inspect", resource) when { context.aisle == "7" };"#,
    )
    .unwrap();
    let errors = tollgate_server::app::check(&config).join("\n");
    assert!(
        errors.contains("bad.cedar") && errors.contains("aisle"),
        "{errors}"
    );
    std::fs::remove_file(&bad).unwrap();
    // A typo in the family's own section is refused at its key.
    let typo = dir.path().join("typo.toml");
    std::fs::write(
        &typo,
        config_text(addr.port(), &secret).replace("site = ", "sight = "),
    )
    .unwrap();
    let errors = tollgate_server::app::check(&Config::load(&typo).unwrap()).join("\n");
    assert!(errors.contains("sight"), "{errors}");

    let gateway = tollgate_server::app::gateway(&config)
        .await
        .expect("gateway");
    let auth = Arc::new(
        tollgate_server::app::authenticator(&config)
            .unwrap()
            .unwrap(),
    );
    let token = |sub: &str, group: &str| {
        auth.mint_hs256(sub, &[group.to_string()], Duration::from_secs(600))
            .unwrap()
    };
    let (rita, audrey) = (token("rita", "reviewers"), token("audrey", "auditors"));
    let state = AppState {
        gateway: gateway.clone(),
        auth: auth.clone(),
        public_url: format!("http://{addr}"),
        issuer: None,
        login: Default::default(),
    };
    let app = tollgate_server::http::router(
        state,
        vec!["127.0.0.1".into(), addr.to_string()],
        Default::default(),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let base = format!("http://{addr}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let agent = Principal {
        sub: "agent-7".into(),
        groups: vec!["agents".into()],
    };
    let quick = CallContext {
        wait: Some(Duration::ZERO),
        ..Default::default()
    };
    let call = |tool: &'static str, shelf: &str, id: &str| {
        let gateway = gateway.clone();
        let agent = agent.clone();
        let args = json!({"connection": "depot", "shelf": shelf, "crate": id});
        async move {
            gateway
                .call(
                    &agent,
                    tool,
                    args,
                    &CallContext {
                        wait: Some(Duration::ZERO),
                        ..Default::default()
                    },
                )
                .await
        }
    };

    // Policy on the family's action and context, through the parent chain:
    // shelf A is permitted, shelf B is not.
    let seen = call("depot_inspect", "A", "1").await;
    assert!(!seen.is_error, "{}", seen.structured);
    let shown = seen.structured.to_string();
    assert_eq!(seen.structured["crate"]["label"], "bolts");
    // Masking by the family's field rule: the seal is gone, counted as SEAL.
    assert!(!shown.contains(SEAL), "seal code leaked: {shown}");
    assert_eq!(seen.structured["crate"]["secrets"]["code"], "[SEAL]");
    assert_eq!(seen.structured["masked"]["SEAL"], 1);
    let other_shelf = call("depot_inspect", "B", "3").await;
    assert!(other_shelf.is_error);
    assert_eq!(other_shelf.structured["error"]["code"], "denied");
    // A forbid on the resource's attribute.
    let hazard = call("depot_inspect", "A", "2").await;
    assert!(hazard.is_error);
    assert_eq!(
        hazard.structured["error"]["policies"],
        json!(["no-hazardous-crates"])
    );

    // An approval: the call pauses, the page shows the family's review with
    // the seal masked as a literal, a reviewer approves, the agent resumes.
    let paused = call("depot_open", "A", "1").await;
    let CallOutcome::Pending(pending) = &paused.outcome else {
        panic!("expected a pending approval: {}", paused.structured);
    };
    let id = pending.approval_id.clone();
    let session = tollgate_tests::ui_login(&http, &base, &rita).await;
    let page = http
        .get(format!("{base}/ui/approvals/{id}"))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("open crate A/1"),
        "review title on the page: {page}"
    );
    assert!(
        page.contains("break seal of A/1"),
        "what will run on the page"
    );
    assert!(page.contains("opened: false -&gt; true") || page.contains("opened: false -> true"));
    assert!(!page.contains(SEAL), "the seal is masked on the page");
    let approved = http
        .post(format!("{base}/api/approvals/{id}/approve"))
        .bearer_auth(&rita)
        .json(&json!({"reason": "scheduled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200, "{}", approved.text().await.unwrap());
    let resumed = gateway
        .call(
            &agent,
            "approval_wait",
            json!({"approval_id": id, "timeout_seconds": 5}),
            &quick,
        )
        .await;
    assert!(!resumed.is_error, "{}", resumed.structured);
    assert_eq!(resumed.structured["crate"]["opened"], true);
    assert!(!resumed.structured.to_string().contains(SEAL));

    // The record: every call is an event, the resources carry the family's
    // entity ids, no seal is recorded, and the chain verifies.
    let events: Value = http
        .get(format!("{base}/api/audit?connection=depot&limit=50"))
        .bearer_auth(&audrey)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = events.to_string();
    assert!(!text.contains(SEAL), "seal in the audit record: {text}");
    assert!(text.contains(r#"Tollgate::Crate::\"depot/A/1\""#), "{text}");
    let list = events["events"].as_array().expect("events");
    assert!(list.len() >= 5, "one event per call: {text}");
    let config_arg = config_path.to_str().unwrap();
    assert_eq!(
        cli(&["tollgate", "audit", "verify", "--config", config_arg]).await,
        ExitCode::SUCCESS
    );
}
