//! Kubernetes list benchmark: 500 pods in one namespace of a throwaway
//! kube-apiserver (tests/src/kube.rs), listed at 1 client
//! - directly with kube-rs (`Api<Pod>::list`, typed): the floor;
//! - through Tollgate's `k8s_list` over MCP stdio (discovery cache, names
//!   and namespace checks, Cedar, field origins and masking of every item,
//!   durable hash-chained audit);
//! - through kubernetes-mcp-server (npm `kubernetes-mcp-server`, its Go
//!   binary) `resources_list` over MCP stdio, with its YAML list output (the
//!   full objects, like Tollgate's) and with its default table output.
//!
//! Both MCP servers are driven by the same client
//! ([`tollgate_tests::mcp_stdio::StdioClient`]) and checked to return all 500
//! pods on every call. Prints p50/p99 and the ratios to the floor and to the
//! peer.
//!
//! Run: `cargo bench -p tollgate-tests --bench k8s_list` (BENCH_SECONDS per
//! measurement, default 3; BENCH_PODS, default 500). The peer binary comes
//! from `KUBERNETES_MCP_SERVER`, or is installed with npm into
//! `target/bench-node` (needs Node.js and npm).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use tollgate_tests::bench::{measure, ms, npm_peer, secs};
use tollgate_tests::kube::KubeServer;
use tollgate_tests::mcp_stdio::StdioClient;
use tollgate_tests::stdio::child_server_command;
use tollgate_tests::util::TempDir;

/// The allocator the `tollgate` binary uses, so the benchmark measures it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PEER_VERSION: &str = "0.0.67";
const NS: &str = "bench";

async fn seed(kube: &KubeServer, pods: usize) -> anyhow::Result<()> {
    kube.create(
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    )
    .await?;
    kube.create(
        &format!("/api/v1/namespaces/{NS}/serviceaccounts"),
        &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
    )
    .await?;
    let creates = (0..pods).map(|i| async move {
        kube.create(
            &format!("/api/v1/namespaces/{NS}/pods"),
            &json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("web-{i:04}"), "labels": {"app": "web", "shard": (i % 8).to_string()}},
                "spec": {"automountServiceAccountToken": false, "containers": [{
                    "name": "app", "image": "registry.example.com/web:1.4.2",
                    "ports": [{"containerPort": 8080}],
                    "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "DB_PASSWORD", "value": "not-a-real-one"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}),
        )
        .await
        .map(|_| ())
    });
    for r in futures::stream::iter(creates)
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
    {
        r?;
    }
    Ok(())
}

fn write_configs(kube: &KubeServer, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let token = dir.join("admin.token");
    std::fs::write(&token, kube.admin_token())?;
    std::fs::create_dir_all(dir.join("policies"))?;
    std::fs::write(
        dir.join("policies/bench.cedar"),
        r#"permit (principal in Tollgate::Group::"agents",
        action in [Tollgate::Action::"connect", Tollgate::Action::"k8s:list"], resource);"#,
    )?;
    let config = dir.join("tollgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
data_dir = "data"

[auth]
hs256_secret = "k8s-bench-secret-0123456789abcdef-0123"

[policy]
dir = "policies"

[stdio]
sub = "bench"
groups = ["agents"]

[[connection]]
name = "k8s"
kind = "kubernetes"
server = "{url}"
ca_file = "{ca}"
token = "${{file:{token}}}"
max_items = 1000
"#,
            url = kube.url(),
            ca = kube.ca_file().display(),
            token = token.display(),
        ),
    )?;
    let ca = std::fs::read(kube.ca_file())?;
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: bench\nclusters:\n- name: bench\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\ncontexts:\n- name: bench\n  context:\n    cluster: bench\n    user: admin\n    namespace: {NS}\nusers:\n- name: admin\n  user:\n    token: {token}\n",
            url = kube.url(),
            ca = base64::engine::general_purpose::STANDARD.encode(&ca),
            token = kube.admin_token(),
        ),
    )?;
    Ok((config, kubeconfig))
}

/// The text of a tool reply, failing on an error reply.
fn reply_text(r: &Value) -> anyhow::Result<String> {
    let result = r
        .get("result")
        .with_context(|| format!("error reply: {r}"))?;
    if result["isError"] == true {
        bail!("tool error: {result}");
    }
    Ok(result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n"))
}

fn main() -> anyhow::Result<()> {
    tollgate_tests::run_child_server_if_asked();
    tollgate_server::init_crypto();
    let pods: usize = std::env::var("BENCH_PODS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let peer = npm_peer(
        "kubernetes-mcp-server",
        PEER_VERSION,
        "kubernetes-mcp-server-linux-amd64/bin/kubernetes-mcp-server-linux-amd64",
        "KUBERNETES_MCP_SERVER",
    )?;
    let rt = tokio::runtime::Runtime::new()?;
    let kube = rt.block_on(KubeServer::start())?;
    let t = Instant::now();
    rt.block_on(seed(&kube, pods))?;
    println!(
        "kube-apiserver ready in {:.1} s; {pods} pods created in {:.1} s",
        kube.start_time.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    let dir = TempDir::new("k8s-bench")?;
    let (config, kubeconfig) = write_configs(&kube, dir.path())?;

    // The floor: kube-rs, typed, in this process.
    let client = rt.block_on(async {
        let cfg = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig)?,
            &kube::config::KubeConfigOptions::default(),
        )
        .await?;
        anyhow::Ok(kube::Client::try_from(cfg)?)
    })?;
    let api: Api<Pod> = Api::namespaced(client, NS);
    let direct = measure(3, || {
        let list = rt.block_on(api.list(&ListParams::default().limit(1000)))?;
        if list.items.len() != pods {
            bail!("direct list returned {} pods", list.items.len());
        }
        Ok(())
    })?;

    // Tollgate: this binary re-executed as `tollgate serve --stdio`.
    let log = std::fs::File::create(dir.path().join("tollgate.log"))?;
    let mut cmd = child_server_command(&config, &[]);
    cmd.current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stderr(log);
    let mut tollgate = StdioClient::spawn(&mut cmd, "bench")?;
    let args = json!({"connection": "k8s", "kind": "pods", "namespace": NS});
    let governed = measure(3, || {
        let r = tollgate.call_tool("k8s_list", args.clone())?;
        reply_text(&r)?;
        let items = r["result"]["structuredContent"]["items"]
            .as_array()
            .map_or(0, Vec::len);
        if items != pods {
            bail!("tollgate returned {items} pods: {r:.300}");
        }
        Ok(())
    })?;
    tollgate.close(Duration::from_secs(10));

    // The peer, with each list output.
    let mut peer_stats = Vec::new();
    for output in ["yaml", "table"] {
        let mut cmd = Command::new(&peer);
        cmd.arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--list-output", output, "--disable-multi-cluster"])
            .stderr(Stdio::null());
        let mut server = StdioClient::spawn(&mut cmd, "bench")?;
        let args = json!({"apiVersion": "v1", "kind": "Pod", "namespace": NS});
        let last = format!("web-{:04}", pods - 1);
        let stats = measure(3, || {
            let text = reply_text(&server.call_tool("resources_list", args.clone())?)?;
            if !text.contains("web-0000") || !text.contains(&last) {
                bail!("kubernetes-mcp-server did not list every pod: {text:.300}");
            }
            Ok(())
        })?;
        server.close(Duration::from_secs(5));
        peer_stats.push((output, stats));
    }

    println!(
        "\nk8s list of {pods} pods, 1 client, same apiserver (BENCH_SECONDS={:?})",
        secs()
    );
    println!("  direct kube-rs (floor)                 {direct}");
    println!(
        "  tollgate k8s_list (MCP stdio)          {governed}   {:.2}x floor",
        ms(governed.p50) / ms(direct.p50)
    );
    for (output, s) in &peer_stats {
        println!(
            "  kubernetes-mcp-server {output:<5} (stdio)    {s}   {:.2}x floor; tollgate/peer p50 {:.2}x",
            ms(s.p50) / ms(direct.p50),
            ms(governed.p50) / ms(s.p50)
        );
    }
    Ok(())
}
