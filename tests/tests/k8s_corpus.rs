//! The adversarial Kubernetes corpus (`tests/corpus/k8s_adversarial.toml`)
//! through the whole gateway on a real kube-apiserver: every case must end
//! as the corpus says (masked, refused before policy, or denied), apply
//! cases that are refused must leave nothing behind on the server, and no
//! result, error or audit record may hold a Secret value (raw or base64) or
//! the connection's token.

use std::time::Duration;

use base64::Engine as _;
use gateway_core::approval::CallContext;
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_tests::kube::KubeServer;
use tollgate_tests::served::{Served, kube_connection, principal};

const SECRET_VALUE: &str = "Corpus-S3cret-9f7Q";
const ENV_SECRET: &str = "corpus-env-hunter2-41";

const POLICY: &str = r#"
@id("connect")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource);
@id("agents-read")
permit (principal in Tollgate::Group::"agents",
        action in [Tollgate::Action::"k8s:get", Tollgate::Action::"k8s:list", Tollgate::Action::"k8s:logs"],
        resource);
@id("agents-write-shop")
permit (principal in Tollgate::Group::"agents",
        action in [Tollgate::Action::"k8s:apply", Tollgate::Action::"k8s:delete"],
        resource in Tollgate::Namespace::"k8s/shop");
@id("agents-delete-web-dry-run")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"k8s:delete",
        resource in Tollgate::Namespace::"k8s/web") when { context.dry_run };
@id("agents-bind-in-shop")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"k8s:apply",
        resource in Tollgate::Connection::"k8s")
when { context.kind == "ClusterRoleBinding" };
@id("no-pod-security-exceptions")
forbid (principal, action == Tollgate::Action::"k8s:apply", resource)
when { context.pod_security.containsAny(["privileged", "hostPID", "hostIPC", "hostNetwork",
  "hostPath", "capabilities", "runAsRoot", "allowPrivilegeEscalation"]) };
@id("no-cluster-admin-bindings")
forbid (principal, action == Tollgate::Action::"k8s:apply", resource)
when { context.binds_roles.contains("cluster-admin") };
@id("hands-off-kube-system")
forbid (principal, action, resource in Tollgate::Namespace::"wide/kube-system");
"#;

#[derive(Debug, Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    tool: String,
    args: toml::Value,
    expect: String,
    #[serde(default)]
    absent: Option<String>,
}

fn load() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/k8s_adversarial.toml");
    let text = std::fs::read_to_string(path).expect("read the corpus");
    let corpus: Corpus = toml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(corpus.case.len() >= 40, "the corpus shrank");
    corpus.case
}

async fn seed(kube: &KubeServer) {
    for ns in ["shop", "web", "other"] {
        kube.create(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await
        .unwrap();
        kube.create(
            &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
            &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
        )
        .await
        .unwrap();
    }
    for ns in ["shop", "web", "other", "kube-system"] {
        kube.create(
            &format!("/api/v1/namespaces/{ns}/secrets"),
            &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "db", "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration":
                        format!("{{\"stringData\":{{\"password\":\"{SECRET_VALUE}\"}}}}")}},
                "stringData": {"password": SECRET_VALUE}}),
        )
        .await
        .unwrap();
    }
    let container = json!({"name": "app", "image": "nginx:1.25",
        "env": [{"name": "DB_PASSWORD", "value": ENV_SECRET}]});
    kube.create(
        "/apis/apps/v1/namespaces/shop/deployments",
        &json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration":
                    json!({"spec": {"template": {"spec": {"containers": [container]}}}}).to_string()}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [container]}}}}),
    )
    .await
    .unwrap();
    kube.create(
        "/api/v1/namespaces/shop/pods",
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1"},
            "spec": {"automountServiceAccountToken": false,
                "containers": [{"name": "app", "image": "nginx:1.25"}]}}),
    )
    .await
    .unwrap();
}

/// The API object at `path` exists (as admin).
async fn exists(kube: &KubeServer, path: &str) -> bool {
    let r = kube
        .http()
        .unwrap()
        .get(format!("{}{path}", kube.url()))
        .bearer_auth(kube.admin_token())
        .send()
        .await
        .unwrap();
    match r.status().as_u16() {
        200 => true,
        404 => false,
        s => panic!("GET {path}: {s}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_corpus_is_masked_or_refused() {
    tollgate_server::init_crypto();
    let cases = load();
    let kube = KubeServer::start().await.expect("kube-apiserver starts");
    seed(&kube).await;
    let served = Served::start("k8s-corpus", POLICY, "", |dir| {
        format!(
            "[approval]\nwait_seconds = 0\n\n{}{}",
            kube_connection(&kube, dir, "k8s", "namespaces = [\"shop\", \"web\"]"),
            kube_connection(&kube, dir, "wide", "")
        )
    })
    .await;
    let gateway = served.gateway.clone();
    let agent = principal("agent-k8s", &["agents"]);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let forbidden = [
        ("the Secret value", SECRET_VALUE.to_string()),
        ("the Secret value (base64)", b64(SECRET_VALUE)),
        ("the env credential", ENV_SECRET.to_string()),
        ("the connection token", kube.admin_token().to_string()),
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let text = serde_json::to_string(&case.args)
            .unwrap()
            .replace("SECRET_VALUE", SECRET_VALUE);
        let args: Value = serde_json::from_str(&text).unwrap();
        let r = gateway
            .call(
                &agent,
                &case.tool,
                args,
                &CallContext {
                    wait: Some(Duration::ZERO),
                    ..Default::default()
                },
            )
            .await;
        let shown = r.structured.to_string();
        let code = r.structured["error"]["code"].as_str().unwrap_or("");
        let ok = match case.expect.as_str() {
            "masked" => !r.is_error,
            "invalid" => code == "invalid_arguments",
            "denied" => code == "denied",
            "any" => true,
            other => panic!("{}: unknown expectation {other}", case.name),
        };
        if !ok {
            failures.push(format!(
                "{}: expected {}, got {}",
                case.name, case.expect, shown
            ));
        }
        for (what, value) in &forbidden {
            if shown.contains(value.as_str()) {
                failures.push(format!("{}: {what} in the result: {shown}", case.name));
            }
        }
        if let Some(path) = &case.absent
            && exists(&kube, path).await
        {
            failures.push(format!("{}: {path} exists after the call", case.name));
        }
        eprintln!("{:<60} {}", case.name, if r.is_error { code } else { "ok" });
    }
    // The audit record of every call, as stored (all files of the store).
    let store = std::fs::read_dir(served.dir.path().join("data")).unwrap();
    let mut audit = String::new();
    for entry in store.flatten() {
        if let Ok(bytes) = std::fs::read(entry.path()) {
            audit.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    assert!(audit.contains("k8s_apply"), "the audit store was not read");
    for (what, value) in &forbidden {
        if audit.contains(value.as_str()) {
            failures.push(format!("{what} in the audit store"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
