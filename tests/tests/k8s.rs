//! The Kubernetes family on a real kube-apiserver (tests/src/kube.rs),
//! through the whole gateway: `check` accepts a kubernetes connection, kinds
//! resolve through discovery, names and namespaces are refused before
//! policy, policy decides per namespace and object (a list across namespaces
//! returns only permitted namespaces' items), Secret values and the
//! last-applied annotation are masked as K8S_SECRET unless policy permits
//! unmask, env credentials as SECRET, managedFields are dropped, continue
//! tokens are followed up to the item cap, and the connection's token
//! appears in no result, error or audit record.

use std::process::ExitCode;

use clap::Parser;
use gateway_core::Principal;
use gateway_core::approval::CallContext;
use gateway_core::outcome::{CallOutcome, CallResult};
use serde_json::{Value, json};
use tollgate_server::config::Config;
use tollgate_tests::TempDir;
use tollgate_tests::kube::KubeServer;
use tollgate_tests::served::{Served, principal};

const PASSWORD: &str = "S3cr3t-Value-42";
const ENV_PASSWORD: &str = "hunter2-env-77";

const POLICY: &str = r#"
@id("connect")
permit (principal, action == Tollgate::Action::"connect", resource);
@id("agents-read-shop")
permit (principal in Tollgate::Group::"agents",
        action in [Tollgate::Action::"k8s:get", Tollgate::Action::"k8s:list"],
        resource in Tollgate::Namespace::"k8s/shop");
@id("agents-read-shop-all")
permit (principal in Tollgate::Group::"agents",
        action == Tollgate::Action::"k8s:list",
        resource in Tollgate::Namespace::"k8s-all/shop");
@id("admins-read")
permit (principal in Tollgate::Group::"admins",
        action in [Tollgate::Action::"k8s:get", Tollgate::Action::"k8s:list"],
        resource);
@id("admins-unmask-secrets")
permit (principal in Tollgate::Group::"admins", action == Tollgate::Action::"unmask", resource)
when { ["K8S_SECRET", "SECRET"].containsAll(context.types) };
@id("auditors")
permit (principal in Tollgate::Group::"auditors", action == Tollgate::Action::"audit:read", resource == Tollgate::Audit::"log");
@id("admins-scale-shop")
permit (principal in Tollgate::Group::"admins", action == Tollgate::Action::"k8s:scale",
        resource in Tollgate::Namespace::"k8s/shop");
@id("agents-scale-reviewed")
@approval("reviewers")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"k8s:scale",
        resource in Tollgate::Namespace::"k8s/shop");
"#;

/// Everything after `[policy]`: `[approval]` and the three connections
/// (admin token: `k8s` limited to shop/web/bulk, `k8s-all`; restricted
/// token: `k8s-reader`), their tokens in files under `dir`.
fn connections(kube: &KubeServer, dir: &std::path::Path) -> String {
    let admin = dir.join("admin.token");
    let reader = dir.join("reader.token");
    std::fs::write(&admin, kube.admin_token()).unwrap();
    std::fs::write(&reader, kube.restricted_token()).unwrap();
    format!(
        r#"[approval]
wait_seconds = 0

[[connection]]
name = "k8s"
kind = "kubernetes"
server = "{url}"
ca_file = "{ca}"
token = "${{file:{admin}}}"
namespaces = ["shop", "web", "bulk"]
max_items = 600
timeout = "20s"

[[connection]]
name = "k8s-all"
kind = "kubernetes"
server = "{url}"
ca_file = "{ca}"
token = "${{file:{admin}}}"

[[connection]]
name = "k8s-reader"
kind = "kubernetes"
server = "{url}"
ca_file = "{ca}"
token = "${{file:{reader}}}"
"#,
        url = kube.url(),
        ca = kube.ca_file().display(),
        admin = admin.display(),
        reader = reader.display(),
    )
}

/// A whole config on `port` with the HS256 secret in file `secret`.
fn config_text(port: u16, secret: &str, kube: &KubeServer, dir: &std::path::Path) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
         data_dir = \"data\"\n\n[auth]\nhs256_secret = \"${{file:{secret}}}\"\n\n\
         [policy]\ndir = \"policies\"\n\n{}",
        connections(kube, dir)
    )
}

async fn cli(args: &[&str]) -> ExitCode {
    let cli = tollgate_server::cli::Cli::parse_from(args);
    tollgate_server::commands::run(cli)
        .await
        .expect("command runs")
}

async fn seed(kube: &KubeServer) {
    for ns in ["shop", "web", "other", "bulk"] {
        kube.create(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await
        .unwrap();
    }
    for ns in ["shop", "web"] {
        kube.create(
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "settings", "labels": {"app": "web"}},
                "data": {"mode": "fast", "contact": "alice.doe@example.com"}}),
        )
        .await
        .unwrap();
        kube.create(
            &format!("/api/v1/namespaces/{ns}/secrets"),
            &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "db", "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration":
                        format!("{{\"stringData\":{{\"password\":\"{PASSWORD}\"}}}}")}},
                "stringData": {"password": PASSWORD, "user": "app"}}),
        )
        .await
        .unwrap();
    }
    kube.create(
        "/apis/apps/v1/namespaces/shop/deployments",
        &json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx:1.25",
                        "env": [{"name": "DB_PASSWORD", "value": ENV_PASSWORD},
                                {"name": "LOG_LEVEL", "value": "debug"}]}]}}}}),
    )
    .await
    .unwrap();
    let http = kube.http().unwrap();
    let creates = (0..510).map(|i| {
        let http = http.clone();
        let url = format!("{}/api/v1/namespaces/bulk/configmaps", kube.url());
        let token = kube.admin_token().to_string();
        async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("cm-{i:04}")}, "data": {"i": i.to_string()}}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
        }
    });
    futures::stream::iter(creates)
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}

use futures::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_reads_through_the_whole_gateway() {
    tollgate_server::init_crypto();
    let kube = KubeServer::start().await.expect("kube-apiserver starts");
    eprintln!("kube-apiserver ready in {:?}", kube.start_time);
    seed(&kube).await;

    let served = Served::start("k8s", POLICY, "", |dir| connections(&kube, dir)).await;
    let (addr, gateway) = (served.addr, served.gateway.clone());
    let config_path = served.config_path.clone();
    let text = std::fs::read_to_string(&config_path).unwrap();
    let config = Config::load(&config_path).expect("config loads");

    // `check` accepts kubernetes connections and the family's policy
    // vocabulary (asserted clean by `Served::start`); a typo in the section
    // is refused at its key.
    let typo = served.dir.path().join("typo.toml");
    std::fs::write(&typo, text.replace("max_items = 600", "max_itmes = 600")).unwrap();
    let errors = tollgate_server::app::check(&Config::load(&typo).unwrap()).join("\n");
    assert!(errors.contains("max_itmes"), "{errors}");
    let bad = served.dir.path().join("policies/bad.cedar");
    std::fs::write(
        &bad,
        r#"permit (principal, action == Tollgate::Action::"k8s:get", resource) when { context.verb == "x" };"#,
    )
    .unwrap();
    let errors = tollgate_server::app::check(&config).join("\n");
    assert!(errors.contains("verb"), "{errors}");
    std::fs::remove_file(&bad).unwrap();
    let audrey = served.token("audrey", &["auditors"]);

    let agent = principal("agent-7", &["agents"]);
    let admin = principal("ada", &["admins"]);
    let mut seen: Vec<String> = Vec::new();
    let mut call = async |who: &Principal, tool: &str, args: Value| -> CallResult {
        let r = served.call(who, tool, args).await;
        seen.push(r.structured.to_string());
        r
    };
    let b64 = "UzNjcjN0LVZhbHVlLTQy"; // base64 of PASSWORD
    let no_secret = |r: &CallResult| {
        let t = r.structured.to_string();
        assert!(
            !t.contains(PASSWORD) && !t.contains(b64) && !t.contains(ENV_PASSWORD),
            "a secret value leaked: {t}"
        );
        assert!(!t.contains("managedFields"), "managedFields shown: {t}");
    };

    // ConfigMaps in a permitted namespace; other strings pass the detectors.
    let cms = call(
        &agent,
        "k8s_list",
        json!({"connection": "k8s", "kind": "cm", "namespace": "shop"}),
    )
    .await;
    assert!(!cms.is_error, "{}", cms.structured);
    let items = cms.structured["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", cms.structured);
    assert_eq!(items[0]["kind"], "ConfigMap");
    assert_eq!(items[0]["data"]["mode"], "fast");
    assert!(!cms.structured.to_string().contains("alice.doe@example.com"));
    assert_eq!(cms.structured["truncated"], false);

    // Secrets, every spelling: values masked as K8S_SECRET, the
    // last-applied annotation too.
    for spelling in ["secrets", "Secret", "secret", "v1/Secret"] {
        let s = call(
            &agent,
            "k8s_list",
            json!({"connection": "k8s", "kind": spelling, "namespace": "shop"}),
        )
        .await;
        assert!(!s.is_error, "{spelling}: {}", s.structured);
        no_secret(&s);
        let item = &s.structured["items"][0];
        assert_eq!(
            item["data"]["password"], "[K8S_SECRET]",
            "{spelling}: {}",
            s.structured
        );
        assert_eq!(item["data"]["user"], "[K8S_SECRET]");
        assert_eq!(
            item["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
            "[K8S_SECRET]"
        );
        assert!(
            s.structured["masked"]["K8S_SECRET"].as_u64().unwrap() >= 3,
            "{}",
            s.structured
        );
    }
    let got = call(
        &agent,
        "k8s_get",
        json!({"connection": "k8s", "kind": "Secret", "name": "db", "namespace": "shop"}),
    )
    .await;
    assert!(!got.is_error, "{}", got.structured);
    no_secret(&got);
    assert_eq!(got.structured["object"]["data"]["password"], "[K8S_SECRET]");

    // Unmasked for a caller policy permits `unmask` of K8S_SECRET.
    let raw = call(
        &admin,
        "k8s_get",
        json!({"connection": "k8s", "kind": "secrets", "name": "db", "namespace": "shop"}),
    )
    .await;
    assert!(!raw.is_error, "{}", raw.structured);
    assert_eq!(
        raw.structured["object"]["data"]["password"], b64,
        "{}",
        raw.structured
    );
    assert!(!raw.structured.to_string().contains("managedFields"));

    // A Deployment: env credential masked as SECRET, other env kept.
    let dep = call(&agent, "k8s_get", json!({"connection": "k8s", "kind": "deployments.apps", "name": "web", "namespace": "shop"})).await;
    assert!(!dep.is_error, "{}", dep.structured);
    no_secret(&dep);
    let env = &dep.structured["object"]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(env[0]["value"], "[SECRET]", "{env}");
    assert_eq!(env[1]["value"], "debug");
    let deps = call(&agent, "k8s_list", json!({"connection": "k8s", "kind": "deploy", "namespace": "shop", "label_selector": "app=web"})).await;
    assert_eq!(
        deps.structured["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        deps.structured
    );
    no_secret(&deps);

    // Across namespaces: only the permitted namespace's items come back.
    let all = call(
        &agent,
        "k8s_list",
        json!({"connection": "k8s", "kind": "Secret"}),
    )
    .await;
    assert!(!all.is_error, "{}", all.structured);
    no_secret(&all);
    let namespaces: Vec<&str> = all.structured["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, vec!["shop"], "{}", all.structured);
    let all_admin = call(
        &admin,
        "k8s_list",
        json!({"connection": "k8s", "kind": "ConfigMap", "label_selector": "app=web"}),
    )
    .await;
    let mut namespaces: Vec<&str> = all_admin.structured["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["namespace"].as_str().unwrap())
        .collect();
    namespaces.sort();
    assert_eq!(
        namespaces,
        vec!["shop", "web"],
        "never `other`: {}",
        all_admin.structured
    );

    // A connection without `namespaces`: one cluster-wide list, each item
    // guarded by its namespace.
    let wide = call(
        &agent,
        "k8s_list",
        json!({"connection": "k8s-all", "kind": "ConfigMap", "label_selector": "app=web"}),
    )
    .await;
    assert!(!wide.is_error, "{}", wide.structured);
    let namespaces: Vec<&str> = wide.structured["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, vec!["shop"], "{}", wide.structured);
    assert!(
        !wide.structured.to_string().contains("hidden"),
        "the caller is not told"
    );

    // Policy denial on a namespace.
    let web = call(
        &agent,
        "k8s_list",
        json!({"connection": "k8s", "kind": "ConfigMap", "namespace": "web"}),
    )
    .await;
    assert!(web.is_error);
    assert_eq!(
        web.structured["error"]["code"], "denied",
        "{}",
        web.structured
    );
    // A namespace outside the connection's list: refused, for everyone.
    let other = call(
        &admin,
        "k8s_list",
        json!({"connection": "k8s", "kind": "ConfigMap", "namespace": "other"}),
    )
    .await;
    assert!(other.is_error);
    assert_eq!(
        other.structured["error"]["code"], "invalid_arguments",
        "{}",
        other.structured
    );
    assert!(
        other.structured.to_string().contains("outside"),
        "{}",
        other.structured
    );
    let other_ns = call(
        &admin,
        "k8s_get",
        json!({"connection": "k8s", "kind": "Namespace", "name": "other"}),
    )
    .await;
    assert!(other_ns.is_error, "{}", other_ns.structured);
    // An unknown kind is denied with a reason.
    let widget = call(
        &admin,
        "k8s_list",
        json!({"connection": "k8s", "kind": "Widget", "namespace": "shop"}),
    )
    .await;
    assert!(widget.is_error);
    assert!(
        widget
            .structured
            .to_string()
            .contains("unknown kind `Widget`"),
        "{}",
        widget.structured
    );
    eprintln!("unknown kind: {}", widget.structured["error"]);
    eprintln!("outside namespaces: {}", other.structured["error"]);
    eprintln!("policy denial: {}", web.structured["error"]);
    eprintln!(
        "secret as the agent sees it: {}",
        got.structured["object"]["data"]
    );
    // Names shaped like paths or flags: refused before policy (the agent
    // holds no permission that could matter; the code says why).
    for name in ["../etc", "a/b", "--server=https://evil", "Web"] {
        let r = call(
            &admin,
            "k8s_get",
            json!({"connection": "k8s", "kind": "Secret", "name": name, "namespace": "shop"}),
        )
        .await;
        assert_eq!(
            r.structured["error"]["code"], "invalid_arguments",
            "{name}: {}",
            r.structured
        );
    }
    let r = call(
        &admin,
        "k8s_list",
        json!({"connection": "k8s", "kind": "Secret", "namespace": "../kube-system"}),
    )
    .await;
    assert_eq!(
        r.structured["error"]["code"], "invalid_arguments",
        "{}",
        r.structured
    );

    // Continue tokens followed up to the cap: 510 items span two pages.
    let bulk = call(
        &admin,
        "k8s_list",
        json!({"connection": "k8s", "kind": "ConfigMap", "namespace": "bulk"}),
    )
    .await;
    assert!(!bulk.is_error, "{}", bulk.structured);
    assert_eq!(bulk.structured["items"].as_array().unwrap().len(), 510);
    assert_eq!(bulk.structured["truncated"], false);
    let capped = call(
        &admin,
        "k8s_list",
        json!({"connection": "k8s", "kind": "ConfigMap", "namespace": "bulk", "limit": 505}),
    )
    .await;
    assert_eq!(capped.structured["items"].as_array().unwrap().len(), 505);
    assert_eq!(capped.structured["truncated"], true);
    let names: std::collections::BTreeSet<&str> = capped.structured["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 505, "no item twice");

    // The gateway's byte cap ends a list early, marked truncated.
    let factory = tollgate_server::connectors::factories()
        .into_iter()
        .find(|f| f.kind() == "kubernetes")
        .expect("the kubernetes family is compiled in");
    let table: Value = serde_json::to_value(
        toml::from_str::<toml::Table>(&text).unwrap()["connection"][0].clone(),
    )
    .unwrap();
    let direct = factory.build("k8s", &table).expect("builds");
    let args = json!({"connection": "k8s", "kind": "ConfigMap", "namespace": "bulk"});
    direct.prepare("k8s_list", &args).await;
    let plan = direct.analyse("k8s_list", &args).unwrap();
    let mut small = tollgate_tests::limits();
    small.max_bytes = 20_000;
    let out = direct.execute(&plan, small).await.expect("capped list");
    let n = out.value["items"].as_array().unwrap().len();
    assert!(out.truncated && n > 10 && n < 510, "{n} items");
    assert!(out.value["items"].to_string().len() <= 20_000);

    // The cluster's own RBAC: a restricted token is refused by the API
    // server, as a target error that names no credential.
    let refused = call(
        &admin,
        "k8s_list",
        json!({"connection": "k8s-reader", "kind": "Secret", "namespace": "shop"}),
    )
    .await;
    assert!(refused.is_error);
    assert_eq!(
        refused.structured["error"]["code"], "target_error",
        "{}",
        refused.structured
    );
    assert!(
        refused.structured.to_string().contains("forbidden"),
        "{}",
        refused.structured
    );
    eprintln!("RBAC refusal: {}", refused.structured["error"]);

    // Events: filtered by the involved object's kind (resolved through
    // discovery) and name; messages pass the detectors.
    for (ns, kind, name, reason, message, ts) in [
        (
            "shop",
            "Deployment",
            "web",
            "ScalingReplicaSet",
            "Scaled up, contact bob.roe@example.com",
            "2026-01-02T03:04:05Z",
        ),
        (
            "shop",
            "ConfigMap",
            "settings",
            "Updated",
            "settings changed",
            "2026-01-02T03:04:06Z",
        ),
        (
            "web",
            "ConfigMap",
            "settings",
            "Updated",
            "settings changed in web",
            "2026-01-02T03:04:07Z",
        ),
    ] {
        kube.create(
            &format!("/api/v1/namespaces/{ns}/events"),
            &json!({"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": format!("{name}.{reason}").to_ascii_lowercase()},
                "involvedObject": {"kind": kind, "name": name, "namespace": ns,
                    "apiVersion": if kind == "Deployment" { "apps/v1" } else { "v1" }},
                "reason": reason, "message": message, "type": "Warning", "count": 3,
                "firstTimestamp": ts, "lastTimestamp": ts,
                "source": {"component": "tollgate-test"}}),
        )
        .await
        .unwrap();
    }
    let all_events = call(
        &agent,
        "k8s_events",
        json!({"connection": "k8s", "namespace": "shop"}),
    )
    .await;
    assert!(!all_events.is_error, "{}", all_events.structured);
    assert_eq!(
        all_events.structured["items"].as_array().unwrap().len(),
        2,
        "{}",
        all_events.structured
    );
    let dep_events = call(
        &agent,
        "k8s_events",
        json!({"connection": "k8s", "namespace": "shop", "kind": "deploy", "name": "web"}),
    )
    .await;
    assert!(!dep_events.is_error, "{}", dep_events.structured);
    let items = dep_events.structured["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", dep_events.structured);
    let e = &items[0];
    assert_eq!(e["object"], "Deployment/web");
    assert_eq!(
        (&e["type"], &e["reason"], &e["count"], &e["last_seen"]),
        (
            &json!("Warning"),
            &json!("ScalingReplicaSet"),
            &json!(3),
            &json!("2026-01-02T03:04:05Z")
        )
    );
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Scaled up") && !msg.contains("bob.roe@example.com"),
        "{msg}"
    );
    let cm_events = call(
        &agent,
        "k8s_events",
        json!({"connection": "k8s", "namespace": "shop", "kind": "ConfigMap"}),
    )
    .await;
    assert_eq!(
        cm_events.structured["items"][0]["object"], "ConfigMap/settings",
        "{}",
        cm_events.structured
    );
    assert_eq!(cm_events.structured["items"].as_array().unwrap().len(), 1);
    let web_events = call(
        &agent,
        "k8s_events",
        json!({"connection": "k8s", "namespace": "web"}),
    )
    .await;
    assert_eq!(
        web_events.structured["error"]["code"], "denied",
        "{}",
        web_events.structured
    );
    eprintln!("events: {}", dep_events.structured);

    // Scale: an admin scales the Deployment in shop; the object confirms it.
    let replicas = async |who: &Principal| -> Value {
        let r = gateway
            .call(
                who,
                "k8s_get",
                json!({"connection": "k8s", "kind": "Deployment", "name": "web", "namespace": "shop"}),
                &CallContext::default(),
            )
            .await;
        assert!(!r.is_error, "{}", r.structured);
        r.structured["object"]["spec"]["replicas"].clone()
    };
    assert_eq!(replicas(&admin).await, json!(2));
    let scaled = call(
        &admin,
        "k8s_scale",
        json!({"connection": "k8s", "kind": "deployments.apps", "name": "web", "namespace": "shop", "replicas": 5}),
    )
    .await;
    assert!(!scaled.is_error, "{}", scaled.structured);
    let counts = |r: &CallResult| {
        (
            r.structured["before"].clone(),
            r.structured["after"].clone(),
        )
    };
    assert_eq!(
        counts(&scaled),
        (json!(2), json!(5)),
        "{}",
        scaled.structured
    );
    assert_eq!(replicas(&admin).await, json!(5));
    let down = call(
        &admin,
        "k8s_scale",
        json!({"connection": "k8s", "kind": "Deployment", "name": "web", "namespace": "shop", "replicas": 0}),
    )
    .await;
    assert_eq!(counts(&down), (json!(5), json!(0)), "{}", down.structured);
    assert_eq!(replicas(&admin).await, json!(0));
    // An agent's scale waits for reviewers; nothing changes meanwhile.
    let paused = call(
        &agent,
        "k8s_scale",
        json!({"connection": "k8s", "kind": "Deployment", "name": "web", "namespace": "shop", "replicas": 4}),
    )
    .await;
    let CallOutcome::Pending(pending) = &paused.outcome else {
        panic!("expected a pending approval: {}", paused.structured);
    };
    assert_eq!(pending.reviewers, vec!["reviewers".to_string()]);
    let stored = gateway
        .approvals()
        .and_then(|g| g.service())
        .expect("approval service")
        .get_for(&pending.approval_id, &agent, false)
        .await
        .expect("the requester sees the approval");
    assert_eq!(stored.review.title, "scale deployment shop/web to 4");
    assert_eq!(replicas(&admin).await, json!(0));
    // A namespace policy does not permit: denied.
    let denied = call(
        &admin,
        "k8s_scale",
        json!({"connection": "k8s", "kind": "Deployment", "name": "web", "namespace": "web", "replicas": 1}),
    )
    .await;
    assert_eq!(
        denied.structured["error"]["code"], "denied",
        "{}",
        denied.structured
    );
    // Refused before policy: no approval is asked for them.
    for (kind, n) in [
        ("Deployment", json!(10001)),
        ("Deployment", json!(-1)),
        ("Deployment", json!(1.5)),
    ] {
        let r = call(
            &agent,
            "k8s_scale",
            json!({"connection": "k8s", "kind": kind, "name": "web", "namespace": "shop", "replicas": n}),
        )
        .await;
        assert_eq!(
            r.structured["error"]["code"], "invalid_arguments",
            "{n}: {}",
            r.structured
        );
    }
    let cm = call(
        &agent,
        "k8s_scale",
        json!({"connection": "k8s", "kind": "ConfigMap", "name": "settings", "namespace": "shop", "replicas": 1}),
    )
    .await;
    assert!(
        cm.is_error && !matches!(cm.outcome, CallOutcome::Pending(_)),
        "{}",
        cm.structured
    );
    assert!(
        cm.structured.to_string().contains("no scale subresource"),
        "{}",
        cm.structured
    );
    assert_eq!(replicas(&admin).await, json!(0));
    eprintln!("scale refusal: {}", cm.structured["error"]);

    // The audit record: masked, with the family's entity ids; no token
    // anywhere; the chain verifies.
    let events: Value = reqwest::Client::new()
        .get(format!("http://{addr}/api/audit?connection=k8s&limit=100"))
        .bearer_auth(&audrey)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let audit = events.to_string();
    assert!(
        audit.contains(r#"Tollgate::K8sObject::\"k8s/shop/Secret/db\""#),
        "{audit}"
    );
    assert!(
        !audit.contains(PASSWORD) && !audit.contains(b64),
        "secret in the audit record"
    );
    seen.push(audit);
    for text in &seen {
        assert!(
            !text.contains(kube.admin_token()),
            "the admin token leaked: {text}"
        );
        assert!(
            !text.contains(kube.restricted_token()),
            "the reader token leaked: {text}"
        );
    }
    let config_arg = config_path.to_str().unwrap();
    assert_eq!(
        cli(&["tollgate", "audit", "verify", "--config", config_arg]).await,
        ExitCode::SUCCESS
    );
}

/// Not a test: the child server of the log test. Runs the CLI with
/// `TOLLGATE_CHILD_ARGS`.
#[test]
fn child_server() {
    tollgate_tests::run_child_server_if_asked();
}

/// `tollgate serve --stdio` (this binary re-executed) at `RUST_LOG=trace`
/// runs Kubernetes calls that read Secrets, fail on an unknown kind and on
/// the cluster's RBAC: its log holds neither token nor any Secret value.
#[test]
fn trace_log_holds_no_token_or_secret_value() {
    tollgate_server::init_crypto();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let kube = rt
        .block_on(KubeServer::start())
        .expect("kube-apiserver starts");
    rt.block_on(async {
        for ns in ["shop", "web"] {
            kube.create(
                "/api/v1/namespaces",
                &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )
            .await
            .unwrap();
        }
        kube.create(
            "/api/v1/namespaces/shop/secrets",
            &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                "stringData": {"password": PASSWORD}}),
        )
        .await
        .unwrap();
    });
    let dir = TempDir::new("k8s-log").unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/p.cedar"),
        r#"permit (principal in Tollgate::Group::"agents",
        action in [Tollgate::Action::"connect", Tollgate::Action::"k8s:get", Tollgate::Action::"k8s:list"],
        resource);"#,
    )
    .unwrap();
    let text = config_text(0, "unused", &kube, dir.path())
        .replace(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:0\"\n",
            "[server]\n",
        )
        .replace(
            "hs256_secret = \"${file:unused}\"",
            "hs256_secret = \"k8s-log-test-secret-0123456789abcdef\"",
        )
        + "\n[stdio]\nsub = \"bot\"\ngroups = [\"agents\"]\n";
    let config = dir.path().join("tollgate.toml");
    std::fs::write(&config, text).unwrap();
    let log_path = dir.path().join("server.log");
    let mut server = tollgate_tests::stdio::StdioServer::start(&config, &log_path, "k8s-log");
    let calls = [
        (
            "k8s_list",
            json!({"connection": "k8s", "kind": "secrets", "namespace": "shop"}),
        ),
        (
            "k8s_get",
            json!({"connection": "k8s", "kind": "Secret", "name": "db", "namespace": "shop"}),
        ),
        (
            "k8s_get",
            json!({"connection": "k8s", "kind": "Secret", "name": "nope", "namespace": "shop"}),
        ),
        (
            "k8s_list",
            json!({"connection": "k8s", "kind": "Widget", "namespace": "shop"}),
        ),
        (
            "k8s_list",
            json!({"connection": "k8s-reader", "kind": "Secret", "namespace": "shop"}),
        ),
    ];
    let mut replies = String::new();
    for (tool, args) in calls {
        let r = server.call(tool, args);
        assert!(r.get("result").is_some(), "{r}");
        replies.push_str(&r.to_string());
    }
    assert!(replies.contains("[K8S_SECRET]"), "{replies}");
    assert!(replies.contains("forbidden"), "{replies}");
    let log = server.finish();
    let b64 = "UzNjcjN0LVZhbHVlLTQy";
    for (what, secret) in [
        ("admin token", kube.admin_token()),
        ("restricted token", kube.restricted_token()),
        ("Secret value", PASSWORD),
        ("Secret value (base64)", b64),
    ] {
        assert!(!replies.contains(secret), "a reply holds the {what}");
        assert!(
            !log.contains(secret),
            "the server log holds the {what}:\n{}",
            log.lines()
                .filter(|l| l.contains(secret))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
