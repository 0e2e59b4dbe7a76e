//! `app::reload_policies` (what SIGHUP runs) on the embedded store: every
//! reload is a `policy_reload` event with the policy set's sha256, accepted
//! or refused; a refused set leaves the last good one in force.

use gateway_core::Principal;
use gateway_core::access_log::policy_set_hash;
use gateway_core::audit::AuditFilter;
use tollgate_server::config::Config;

const AUDITORS: &str = r#"
@id("auditors")
permit (principal in Tollgate::Group::"auditors", action == Tollgate::Action::"audit:read", resource == Tollgate::Audit::"log");
"#;

const NOBODY: &str = r#"
@id("agents-connect")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource == Tollgate::Connection::"db");
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reload_is_an_event_with_the_sets_hash() {
    tollgate_server::init_crypto();
    let dir = std::env::temp_dir().join(format!("tollgate-policy-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("policies/p.cedar"), AUDITORS).unwrap();
    let config_path = dir.join("tollgate.toml");
    std::fs::write(
        &config_path,
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1\"\ndata_dir = \"data\"\n\n\
         [auth]\nhs256_secret = \"policy-reload-test-secret-0123456789\"\n\n[policy]\ndir = \"policies\"\n",
    )
    .unwrap();
    let config = Config::load(&config_path).expect("config loads");
    let gateway = tollgate_server::app::gateway(&config)
        .await
        .expect("gateway");
    let audrey = Principal {
        sub: "audrey".into(),
        groups: vec!["auditors".into()],
    };
    assert!(gateway.may_read_audit(&audrey));

    // A broken set is refused: the last good one stays in force.
    std::fs::write(dir.join("policies/q.cedar"), "permit (principal,").unwrap();
    let broken = policy_set_hash([("p.cedar", AUDITORS), ("q.cedar", "permit (principal,")]);
    tollgate_server::app::reload_policies(&config_path, &gateway)
        .await
        .unwrap();
    assert!(gateway.may_read_audit(&audrey), "the last good set stays");

    // A valid set replaces it.
    std::fs::remove_file(dir.join("policies/q.cedar")).unwrap();
    std::fs::write(dir.join("policies/p.cedar"), NOBODY).unwrap();
    let good = policy_set_hash([("p.cedar", NOBODY)]);
    tollgate_server::app::reload_policies(&config_path, &gateway)
        .await
        .unwrap();
    assert!(!gateway.may_read_audit(&audrey), "the new set is in force");

    let mut events = gateway
        .audit()
        .list(&AuditFilter {
            tool: Some("policy_reload".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    events.sort_by_key(|e| e.seq);
    let seen: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.record.arguments["sha256"].as_str().unwrap().to_string(),
                e.record.arguments["accepted"].as_bool().unwrap(),
                e.record.decision.clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [(broken, false, "deny".into()), (good, true, "allow".into())]
    );
    assert!(
        events[0]
            .record
            .outcome
            .error
            .as_deref()
            .is_some_and(|e| e.contains("q.cedar")),
        "{:?}",
        events[0].record.outcome
    );
    assert_eq!(events[0].record.principal.sub, "system");
    let report = gateway.audit().verify().await.unwrap();
    assert!(report.first_break.is_none(), "{report:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
