//! Kubernetes connections beyond server + CA + token, on a real
//! kube-apiserver (tests/src/kube.rs), through the whole gateway: a client
//! certificate (mTLS), a kubeconfig file and its contexts (token, client
//! certificate files), an exec-plugin kubeconfig refused at `check` and at
//! start without running the plugin, and `impersonate = true`: requests act
//! as the caller, so the cluster's RBAC refuses what it does not grant,
//! naming the user. No credential (token, client key) appears in any
//! result, error, audit record or log line.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use gateway_core::Principal;
use gateway_core::approval::CallContext;
use gateway_core::outcome::CallResult;
use serde_json::{Value, json};
use tollgate_server::config::Config;
use tollgate_server::state::AppState;
use tollgate_tests::TempDir;
use tollgate_tests::kube::KubeServer;

const PASSWORD: &str = "Kube-Auth-S3cret-91";

const POLICY: &str = r#"
@id("connect")
permit (principal, action == Tollgate::Action::"connect", resource);
@id("read")
permit (principal, action in [Tollgate::Action::"k8s:get", Tollgate::Action::"k8s:list"], resource);
@id("auditors")
permit (principal in Tollgate::Group::"auditors", action == Tollgate::Action::"audit:read", resource == Tollgate::Audit::"log");
"#;

/// Credential files of the test and what must never show.
struct Creds {
    admin_token: String,
    /// The base64 body lines of every client key.
    key_lines: Vec<String>,
}

impl Creds {
    fn assert_absent(&self, what: &str, text: &str) {
        assert!(
            !text.contains(&self.admin_token),
            "{what} holds the admin token"
        );
        for line in &self.key_lines {
            assert!(!text.contains(line), "{what} holds client key material");
        }
        assert!(!text.contains(PASSWORD), "{what} holds the Secret's value");
    }
}

/// Seed namespace `shop` (a pod, a Secret) and `other` (a pod); RBAC: group
/// `devs` and user `certuser` may get and list pods in `shop`, nothing else.
async fn seed(kube: &KubeServer) {
    for ns in ["shop", "other"] {
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
        kube.create(
            &format!("/api/v1/namespaces/{ns}/pods"),
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("{ns}-pod")},
                "spec": {"automountServiceAccountToken": false,
                    "containers": [{"name": "app", "image": "nginx:1.25"}]}}),
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
    kube.create(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/shop/roles",
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}),
    )
    .await
    .unwrap();
    kube.create(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/shop/rolebindings",
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "pod-readers"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"},
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "certuser"}]}),
    )
    .await
    .unwrap();
}

/// The config: connections `cert` (client certificate), `kc` (kubeconfig,
/// current context: the admin token), `kc-cert` (its `cert` context: client
/// certificate files) and `imp` (admin token, `impersonate = true`).
fn config_text(port: u16, kube: &KubeServer, dir: &Path) -> (String, Creds) {
    let admin = dir.join("admin.token");
    std::fs::write(&admin, kube.admin_token()).unwrap();
    let (cert, key) = kube.client_cert("certuser", &["certgroup"]).unwrap();
    let (kc_cert, kc_key) = kube.client_cert("kcuser", &["system:masters"]).unwrap();
    let kubeconfig = dir.join("kubeconfig.yaml");
    std::fs::write(
        &kubeconfig,
        format!(
            r#"apiVersion: v1
kind: Config
current-context: admin
clusters:
- name: test
  cluster:
    server: {url}
    certificate-authority: {ca}
contexts:
- name: admin
  context: {{cluster: test, user: admin}}
- name: cert
  context: {{cluster: test, user: kcuser}}
users:
- name: admin
  user:
    token: {token}
- name: kcuser
  user:
    client-certificate: {kc_cert}
    client-key: {kc_key}
"#,
            url = kube.url(),
            ca = kube.ca_file().display(),
            token = kube.admin_token(),
            kc_cert = kc_cert.display(),
            kc_key = kc_key.display(),
        ),
    )
    .unwrap();
    let key_lines = [&key, &kc_key]
        .iter()
        .flat_map(|k| {
            std::fs::read_to_string(k)
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let text = format!(
        r#"[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
data_dir = "data"

[auth]
hs256_secret = "k8s-auth-test-secret-0123456789abcdef"

[policy]
dir = "policies"

[approval]
wait_seconds = 0

[[connection]]
name = "cert"
kind = "kubernetes"
server = "{url}"
ca_file = "{ca}"
client_cert = "{cert}"
client_key = "${{file:{key}}}"

[[connection]]
name = "kc"
kind = "kubernetes"
kubeconfig = "{kubeconfig}"

[[connection]]
name = "kc-cert"
kind = "kubernetes"
kubeconfig = "{kubeconfig}"
context = "cert"

[[connection]]
name = "imp"
kind = "kubernetes"
server = "{url}"
ca_file = "{ca}"
token = "${{file:{admin}}}"
impersonate = true
"#,
        url = kube.url(),
        ca = kube.ca_file().display(),
        cert = cert.display(),
        key = key.display(),
        kubeconfig = kubeconfig.display(),
        admin = admin.display(),
    );
    (
        text,
        Creds {
            admin_token: kube.admin_token().to_string(),
            key_lines,
        },
    )
}

fn names(r: &CallResult) -> Vec<String> {
    r.structured["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {}", r.structured))
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn error_text(r: &CallResult) -> String {
    assert!(r.is_error, "expected an error: {}", r.structured);
    r.structured["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn write_policies(dir: &Path) {
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("policies/k8s.cedar"), POLICY).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_kubeconfig_and_impersonated_connections() {
    tollgate_server::init_crypto();
    let kube = KubeServer::start().await.expect("kube-apiserver starts");
    seed(&kube).await;
    let dir = TempDir::new("k8s-auth").unwrap();
    write_policies(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (text, creds) = config_text(addr.port(), &kube, dir.path());
    let config_path = dir.path().join("tollgate.toml");
    std::fs::write(&config_path, &text).unwrap();
    let config = Config::load(&config_path).expect("config loads");
    assert_eq!(tollgate_server::app::check(&config), Vec::<String>::new());

    let gateway = tollgate_server::app::gateway(&config)
        .await
        .expect("gateway");
    let auth = Arc::new(
        tollgate_server::app::authenticator(&config)
            .unwrap()
            .unwrap(),
    );
    let audrey = auth
        .mint_hs256("audrey", &["auditors".into()], Duration::from_secs(600))
        .unwrap();
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

    let who = |sub: &str, groups: &[&str]| Principal {
        sub: sub.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    };
    let mut seen: Vec<String> = Vec::new();
    let mut call = async |p: &Principal, tool: &str, args: Value| -> CallResult {
        let r = gateway
            .call(
                p,
                tool,
                args,
                &CallContext {
                    wait: Some(Duration::ZERO),
                    ..Default::default()
                },
            )
            .await;
        seen.push(r.structured.to_string());
        r
    };
    let ops = who("ops", &["ops"]);
    let pods = |conn: &str, ns: &str| json!({"connection": conn, "kind": "pods", "namespace": ns});

    // A client certificate: the API server knows the connection as
    // `certuser` (its RBAC grants pods in `shop` only).
    let r = call(&ops, "k8s_list", pods("cert", "shop")).await;
    assert!(!r.is_error, "{}", r.structured);
    assert_eq!(names(&r), ["shop-pod"]);
    let r = call(&ops, "k8s_list", pods("cert", "other")).await;
    let e = error_text(&r);
    assert_eq!(
        r.structured["error"]["code"], "target_error",
        "{}",
        r.structured
    );
    assert!(e.contains("certuser") && e.contains("forbidden"), "{e}");

    // A kubeconfig: the current context (admin token) and, selected by
    // `context`, a user with client certificate files (system:masters).
    for conn in ["kc", "kc-cert"] {
        let r = call(&ops, "k8s_list", pods(conn, "other")).await;
        assert!(!r.is_error, "{conn}: {}", r.structured);
        assert_eq!(names(&r), ["other-pod"], "{conn}");
        let r = call(
            &ops,
            "k8s_get",
            json!({"connection": conn, "kind": "Secret", "name": "db", "namespace": "shop"}),
        )
        .await;
        assert!(!r.is_error, "{conn}: {}", r.structured);
        assert_eq!(r.structured["object"]["data"]["password"], "[K8S_SECRET]");
    }

    // Impersonation: the admin token acts as the caller. alice (group
    // devs) may list pods in shop; the cluster refuses her the Secret and
    // pods elsewhere, naming her; the same token without impersonation
    // would have been allowed everything.
    let alice = who("alice", &["devs"]);
    let r = call(&alice, "k8s_list", pods("imp", "shop")).await;
    assert!(!r.is_error, "{}", r.structured);
    assert_eq!(names(&r), ["shop-pod"]);
    let r = call(
        &alice,
        "k8s_get",
        json!({"connection": "imp", "kind": "pod", "name": "shop-pod", "namespace": "shop"}),
    )
    .await;
    assert!(!r.is_error, "{}", r.structured);
    let r = call(
        &alice,
        "k8s_get",
        json!({"connection": "imp", "kind": "Secret", "name": "db", "namespace": "shop"}),
    )
    .await;
    let e = error_text(&r);
    assert_eq!(
        r.structured["error"]["code"], "target_error",
        "{}",
        r.structured
    );
    assert!(
        e.contains("the cluster refused user alice:") && e.contains("secrets \"db\" is forbidden"),
        "{e}"
    );
    eprintln!("impersonated RBAC refusal: {e}");
    let r = call(&alice, "k8s_list", pods("imp", "other")).await;
    assert!(error_text(&r).contains("the cluster refused user alice:"));
    // Groups are the caller's: bob, outside devs (and with no groups at
    // all), gets nothing.
    for bob in [who("bob", &["ops"]), who("bob", &[])] {
        let r = call(&bob, "k8s_list", pods("imp", "shop")).await;
        let e = error_text(&r);
        assert!(e.contains("the cluster refused user bob:"), "{e}");
    }
    // A caller a header cannot carry, or in the reserved system: names, is
    // refused before anything is sent.
    for (p, needle) in [
        (
            who("jösé", &["devs"]),
            "characters an HTTP header cannot carry",
        ),
        (
            who("eve", &["devs", "ops\nImpersonate-User: admin"]),
            "group",
        ),
        (who("eve", &["system:masters"]), "reserved `system:`"),
    ] {
        let r = call(&p, "k8s_list", pods("imp", "shop")).await;
        let e = error_text(&r);
        assert!(
            e.contains("cannot be impersonated") && e.contains(needle),
            "{e}"
        );
    }

    // The audit records: no credential.
    let events: Value = reqwest::Client::new()
        .get(format!("http://{addr}/api/audit?limit=200"))
        .bearer_auth(&audrey)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let audit = events.to_string();
    assert!(audit.contains("the cluster refused user alice"), "{audit}");
    creds.assert_absent("the audit log", &audit);
    for text in &seen {
        creds.assert_absent("a tool result", text);
    }
    let config_arg = config_path.to_str().unwrap();
    assert_eq!(
        cli(&["tollgate", "audit", "verify", "--config", config_arg]).await,
        ExitCode::SUCCESS
    );
}

async fn cli(args: &[&str]) -> ExitCode {
    let cli = tollgate_server::cli::Cli::parse_from(args);
    tollgate_server::commands::run(cli)
        .await
        .expect("command runs")
}

/// A kubeconfig whose user runs a credential plugin is refused by `check`
/// and at start, with the reason, and the plugin never runs; the file's
/// token is not quoted. Bad auth combinations are refused the same way.
#[tokio::test]
async fn exec_plugin_kubeconfig_is_refused_at_check_and_start() {
    tollgate_server::init_crypto();
    let dir = TempDir::new("k8s-exec").unwrap();
    write_policies(dir.path());
    let pwned = dir.path().join("pwned");
    let kubeconfig = dir.path().join("exec.yaml");
    std::fs::write(
        &kubeconfig,
        format!(
            r#"apiVersion: v1
kind: Config
current-context: eks
clusters:
- name: c
  cluster: {{server: "https://127.0.0.1:6443"}}
contexts:
- name: eks
  context: {{cluster: c, user: plugin}}
- name: tok
  context: {{cluster: c, user: tok}}
users:
- name: plugin
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: /usr/bin/touch
      args: ["{pwned}"]
- name: tok
  user:
    token: kubeconfig-token-abcdef123456
"#,
            pwned = pwned.display()
        ),
    )
    .unwrap();
    let base = r#"[server]
data_dir = "data"
[auth]
hs256_secret = "k8s-auth-test-secret-0123456789abcdef"
[policy]
dir = "policies"
"#;
    let write = |name: &str, conn: &str| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!("{base}\n[[connection]]\nname = \"k\"\nkind = \"kubernetes\"\n{conn}"),
        )
        .unwrap();
        p
    };
    let kc = kubeconfig.display();
    let exec = write("exec.toml", &format!("kubeconfig = \"{kc}\"\n"));
    let errors = tollgate_server::app::check(&Config::load(&exec).unwrap()).join("\n");
    assert!(
        errors.contains("runs a credential plugin (`exec`)")
            && errors.contains("user `plugin` of context `eks`"),
        "{errors}"
    );
    assert_eq!(
        cli(&["tollgate", "check", "--config", exec.to_str().unwrap()]).await,
        ExitCode::FAILURE
    );
    let start = tollgate_server::app::gateway(&Config::load(&exec).unwrap())
        .await
        .err()
        .expect("start refuses")
        .to_string();
    assert!(start.contains("credential plugin"), "{start}");
    assert!(!pwned.exists(), "the exec plugin ran");
    // The other context of the same file is fine.
    let tok = write(
        "tok.toml",
        &format!("kubeconfig = \"{kc}\"\ncontext = \"tok\"\n"),
    );
    assert_eq!(
        tollgate_server::app::check(&Config::load(&tok).unwrap()),
        Vec::<String>::new()
    );
    for (conn, needle) in [
        (
            format!("kubeconfig = \"{kc}\"\ncontext = \"tok\"\ntoken = \"t\"\n"),
            "set one way to authenticate",
        ),
        (
            format!("kubeconfig = \"{kc}\"\ncontext = \"tok\"\nserver = \"https://x\"\n"),
            "comes from the kubeconfig",
        ),
        (
            format!("kubeconfig = \"{kc}\"\ncontext = \"none\"\n"),
            "no context `none`",
        ),
        (
            "server = \"https://127.0.0.1:1\"\nclient_cert = \"/no/cert.pem\"\n".to_string(),
            "`client_cert` needs `client_key`",
        ),
        (
            "server = \"https://127.0.0.1:1\"\n".to_string(),
            "no credentials",
        ),
    ] {
        let p = write("bad.toml", &conn);
        let errors = tollgate_server::app::check(&Config::load(&p).unwrap()).join("\n");
        assert!(errors.contains(needle), "{conn}: {errors}");
        assert!(
            !errors.contains("kubeconfig-token-abcdef123456"),
            "{errors}"
        );
    }
}

/// Not a test: the child server of the log test. Runs the CLI with
/// `TOLLGATE_CHILD_ARGS`.
#[test]
fn child_server() {
    tollgate_tests::run_child_server_if_asked();
}

/// `tollgate serve --stdio` (this binary re-executed) at `RUST_LOG=trace`,
/// as caller alice (group devs): certificate, kubeconfig and impersonated
/// calls, one refused by the cluster's RBAC; neither the replies nor the
/// log hold a token or client key.
#[test]
fn trace_log_holds_no_credential() {
    tollgate_server::init_crypto();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let kube = rt
        .block_on(KubeServer::start())
        .expect("kube-apiserver starts");
    rt.block_on(seed(&kube));
    let dir = TempDir::new("k8s-auth-log").unwrap();
    write_policies(dir.path());
    let (text, creds) = config_text(0, &kube, dir.path());
    let text = text.replace(
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:0\"\n",
        "[server]\n",
    ) + "\n[stdio]\nsub = \"alice\"\ngroups = [\"devs\"]\n";
    let config = dir.path().join("tollgate.toml");
    std::fs::write(&config, text).unwrap();
    let log_path = dir.path().join("server.log");
    let mut server = tollgate_tests::stdio::StdioServer::start(&config, &log_path, "k8s-auth-log");
    let calls = [
        json!({"connection": "cert", "kind": "pods", "namespace": "shop"}),
        json!({"connection": "kc", "kind": "Secret", "namespace": "shop"}),
        json!({"connection": "kc-cert", "kind": "pods", "namespace": "other"}),
        json!({"connection": "imp", "kind": "pods", "namespace": "shop"}),
        json!({"connection": "imp", "kind": "Secret", "namespace": "shop"}),
    ];
    let mut replies = String::new();
    for args in calls {
        let r = server.call("k8s_list", args);
        assert!(r.get("result").is_some(), "{r}");
        replies.push_str(&r.to_string());
    }
    assert!(
        replies.contains("shop-pod") && replies.contains("other-pod"),
        "{replies}"
    );
    assert!(
        replies.contains("the cluster refused user alice"),
        "{replies}"
    );
    let log = server.finish();
    creds.assert_absent("the replies", &replies);
    creds.assert_absent("the server log", &log);
}
