//! A fake kubelet for the throwaway API server (tests/src/kube.rs), so pod
//! logs and exec go through the real kube-apiserver's proxy path: the API
//! server looks up the pod's node, dials this HTTPS server at the node's
//! InternalIP and `daemonEndpoints.kubeletEndpoint.Port`, presents its
//! `--kubelet-client-certificate` (required here: signed by the test CA),
//! and streams the answer back.
//!
//! It serves `GET /containerLogs/{ns}/{pod}/{container}` (logs the test
//! registered, honouring `tailLines`, `sinceSeconds`, `limitBytes` and
//! `previous`) and `/exec/{ns}/{pod}/{container}?command=..` as a WebSocket speaking
//! `v4.channel.k8s.io` (first byte of each binary message: 1 stdout, 2
//! stderr, 3 the exit Status JSON), running a few commands itself: `echo`,
//! `env` (prints [`FakeKubelet::ENV`], a credential among them), `sh -c`
//! with `echo`/`echo ... >&2`/`exit N` statements, `sleep N` and `yes`
//! (output until the stream closes). Every request and every exec (argv,
//! start, end, whether the stream closed before the command ended) is
//! recorded for the test to check.
//!
//! What it does not prove: what a real kubelet and container runtime do
//! with a process whose stream closed (here the simulated command ends when
//! its stream closes; containerd and CRI-O over runc usually leave a
//! non-TTY exec running), nor TTYs, stdin or the v5 protocol.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::kube::KubeServer;

/// One exec the fake ran.
#[derive(Debug, Clone)]
pub struct ExecRecord {
    /// `ns/pod/container`.
    pub target: String,
    /// The command words.
    pub argv: Vec<String>,
    /// When it started.
    pub started: Instant,
    /// When it ended (None: still running).
    pub ended: Option<Instant>,
    /// The stream closed before the command had finished.
    pub closed_early: bool,
}

#[derive(Default)]
struct State {
    logs: HashMap<String, Vec<(SystemTime, String)>>,
    requests: Vec<String>,
    heads: Vec<String>,
    execs: Vec<ExecRecord>,
}

type Shared = Arc<Mutex<State>>;

/// A running fake kubelet; stops when dropped.
pub struct FakeKubelet {
    port: u16,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeKubelet {
    /// The environment `env` prints: one credential, one plain value.
    pub const ENV: [(&'static str, &'static str); 2] = [
        ("DB_PASSWORD", "Pa55-kubelet-env-99"),
        ("LOG_LEVEL", "debug"),
    ];

    /// Listen on a free loopback port with `kubelet.pem`/`kubelet.key` from
    /// the API server's directory, requiring client certificates signed by
    /// its `ca.pem`.
    pub async fn start(kube: &KubeServer) -> anyhow::Result<Self> {
        let dir = kube.dir();
        let tls = tls_config(dir)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let state: Shared = Arc::default();
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, st) = (acceptor.clone(), st.clone());
                tokio::spawn(async move {
                    match acceptor.accept(tcp).await {
                        Ok(tls) => {
                            if let Err(e) = serve(BufReader::new(tls), st).await {
                                eprintln!("fake kubelet: {e:#}");
                            }
                        }
                        Err(e) => eprintln!("fake kubelet: TLS: {e}"),
                    }
                });
            }
        });
        Ok(FakeKubelet { port, state, task })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Add a log line of `ns/pod/container` (`ns/pod/container#previous`:
    /// of its previous instance), logged `age` ago.
    pub fn log(&self, target: &str, age: Duration, line: &str) {
        let at = SystemTime::now() - age;
        lock(&self.state)
            .logs
            .entry(target.to_string())
            .or_default()
            .push((at, line.to_string()));
    }

    /// Every request it received (`path?query`), in order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state).requests.clone()
    }

    /// The head (request line and headers) of every request, in order.
    pub fn heads(&self) -> Vec<String> {
        lock(&self.state).heads.clone()
    }

    /// Every exec it ran, in order.
    pub fn execs(&self) -> Vec<ExecRecord> {
        lock(&self.state).execs.clone()
    }

    /// Create node `name` and point its status at this kubelet
    /// (InternalIP 127.0.0.1, kubelet port), Ready.
    pub async fn register(&self, kube: &KubeServer, name: &str) -> anyhow::Result<()> {
        kube.create(
            "/api/v1/nodes",
            &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}),
        )
        .await?;
        let status = json!({"status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "fake kubelet", "lastHeartbeatTime": now(), "lastTransitionTime": now()}]
        }});
        let r = kube
            .http()?
            .patch(format!("{}/api/v1/nodes/{name}/status", kube.url()))
            .bearer_auth(kube.admin_token())
            .header("Content-Type", "application/merge-patch+json")
            .body(status.to_string())
            .send()
            .await?;
        let code = r.status();
        anyhow::ensure!(
            code.is_success(),
            "node status: {code}: {}",
            r.text().await?
        );
        Ok(())
    }
}

fn now() -> String {
    // RFC 3339 without pulling a time crate: seconds since the epoch in UTC.
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 as (year, month, day) (H. Hinnant's algorithm).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn tls_config(dir: &Path) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join("ca.pem"))? {
        roots.add(c?)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()?;
    let certs =
        CertificateDer::pem_file_iter(dir.join("kubelet.pem"))?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(dir.join("kubelet.key"))?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("kubelet certificate")
}

/// `%XX` and `+` decoded.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

async fn serve<S>(mut conn: BufReader<S>, st: Shared) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // The request head, line by line (the body, if any, is not read).
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        head.push(line.trim_end().to_string());
        anyhow::ensure!(head.len() < 100, "request head too long");
    }
    let mut words = head.first().map(|l| l.split(' ')).into_iter().flatten();
    let (_method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let headers: HashMap<String, String> = head
        .iter()
        .skip(1)
        .filter_map(|h| h.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    {
        let mut s = lock(&st);
        s.requests.push(target.to_string());
        s.heads.push(head.join("\n"));
    }
    let (path, q) = target.split_once('?').unwrap_or((target, ""));
    let params = query(q);
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["containerLogs", ns, pod, container] => {
            let previous = params.iter().any(|(k, v)| k == "previous" && v == "true");
            let key = format!(
                "{ns}/{pod}/{container}{}",
                if previous { "#previous" } else { "" }
            );
            let body = logs(&st, &key, &params);
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            conn.write_all(resp.as_bytes()).await?;
            conn.write_all(&body).await?;
            conn.flush().await?;
            conn.shutdown().await?;
        }
        ["exec", ns, pod, container] => {
            let argv: Vec<String> = params
                .iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.clone())
                .collect();
            let offered = headers
                .get("sec-websocket-protocol")
                .cloned()
                .unwrap_or_default();
            let key = headers.get("sec-websocket-key").cloned();
            let v4 = offered.split(',').any(|p| p.trim() == "v4.channel.k8s.io");
            let (Some(key), true) = (key, v4) else {
                let body = format!(
                    "fake kubelet: a v4.channel.k8s.io WebSocket is required, offered `{offered}`"
                );
                let resp = format!(
                    "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                conn.write_all(resp.as_bytes()).await?;
                return Ok(());
            };
            let resp = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n",
                derive_accept_key(key.as_bytes())
            );
            conn.write_all(resp.as_bytes()).await?;
            conn.flush().await?;
            let ws = WebSocketStream::from_raw_socket(conn, Role::Server, None).await;
            let index = {
                let mut s = lock(&st);
                s.execs.push(ExecRecord {
                    target: format!("{ns}/{pod}/{container}"),
                    argv: argv.clone(),
                    started: Instant::now(),
                    ended: None,
                    closed_early: false,
                });
                s.execs.len() - 1
            };
            let closed_early = exec(ws, &argv).await;
            let mut s = lock(&st);
            s.execs[index].ended = Some(Instant::now());
            s.execs[index].closed_early = closed_early;
        }
        _ => {
            let resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            conn.write_all(resp.as_bytes()).await?;
        }
    }
    Ok(())
}

/// The log of `target` as the kubelet would serve it.
fn logs(st: &Shared, target: &str, params: &[(String, String)]) -> Vec<u8> {
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.parse::<u64>().ok())
    };
    let lines = lock(st).logs.get(target).cloned().unwrap_or_default();
    let since = get("sinceSeconds").map(|s| SystemTime::now() - Duration::from_secs(s));
    let mut kept: Vec<String> = lines
        .into_iter()
        .filter(|(at, _)| since.is_none_or(|s| *at >= s))
        .map(|(_, l)| l)
        .collect();
    if let Some(n) = get("tailLines") {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        kept = kept.split_off(kept.len().saturating_sub(n));
    }
    let mut body: Vec<u8> = kept
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect();
    if let Some(n) = get("limitBytes") {
        body.truncate(usize::try_from(n).unwrap_or(usize::MAX));
    }
    body
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::binary(v)
}

/// What a simulated command printed and how it ended.
struct Run {
    stdout: String,
    stderr: String,
    code: i64,
}

/// Run `argv` on the stream; true when the stream closed before the
/// command ended.
async fn exec<S>(ws: WebSocketStream<S>, argv: &[String]) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut tx, mut rx) = ws.split();
    // Resolves when the client side goes away (close frame, EOF or error).
    let closed = async move {
        while let Some(m) = rx.next().await {
            if matches!(m, Err(_) | Ok(Message::Close(_))) {
                break;
            }
        }
    };
    tokio::pin!(closed);
    let words: Vec<&str> = argv.iter().map(String::as_str).collect();
    let run = match words.as_slice() {
        ["sleep", n] => {
            let secs: f64 = n.parse().unwrap_or(0.0);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs_f64(secs)) => Run { stdout: String::new(), stderr: String::new(), code: 0 },
                _ = &mut closed => return true,
            }
        }
        ["yes", rest @ ..] => {
            let line = format!(
                "{}\n",
                if rest.is_empty() {
                    "y".to_string()
                } else {
                    rest.join(" ")
                }
            );
            let chunk = line.repeat(16 * 1024 / line.len() + 1);
            loop {
                tokio::select! {
                    r = tx.send(frame(1, chunk.as_bytes())) => if r.is_err() { return true },
                    _ = &mut closed => return true,
                }
            }
        }
        ["echo", rest @ ..] => Run {
            stdout: format!("{}\n", rest.join(" ")),
            stderr: String::new(),
            code: 0,
        },
        ["env"] => Run {
            stdout: FakeKubelet::ENV
                .iter()
                .map(|(k, v)| format!("{k}={v}\n"))
                .collect(),
            stderr: String::new(),
            code: 0,
        },
        ["sh", "-c", script] => shell(script),
        _ => {
            let msg = format!(
                "OCI runtime exec failed: exec failed: container_linux.go:367: starting container process caused: exec: \"{}\": executable file not found in $PATH: unknown",
                argv.first().map_or("", String::as_str)
            );
            let status = json!({"metadata": {}, "status": "Failure", "message": msg, "reason": "InternalError",
                "details": {"causes": [{"message": msg}]}, "code": 500});
            let _ = tx.send(frame(3, status.to_string().as_bytes())).await;
            let _ = tx.close().await;
            return false;
        }
    };
    for (ch, text) in [(1u8, &run.stdout), (2u8, &run.stderr)] {
        if !text.is_empty() && tx.send(frame(ch, text.as_bytes())).await.is_err() {
            return true;
        }
    }
    let status: Value = if run.code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({"metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command {argv:?}, exit code {}", run.code),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": run.code.to_string()}]}})
    };
    let _ = tx.send(frame(3, status.to_string().as_bytes())).await;
    let _ = tx.close().await;
    false
}

/// `sh -c`: `;`-separated `echo WORDS`, `echo WORDS >&2` and `exit N`.
fn shell(script: &str) -> Run {
    let mut run = Run {
        stdout: String::new(),
        stderr: String::new(),
        code: 0,
    };
    for stmt in script.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(n) = stmt.strip_prefix("exit ") {
            run.code = n.trim().parse().unwrap_or(2);
            return run;
        } else if let Some(rest) = stmt.strip_prefix("echo ") {
            match rest.strip_suffix(">&2") {
                Some(e) => run.stderr.push_str(&format!("{}\n", e.trim())),
                None => run.stdout.push_str(&format!("{}\n", rest.trim())),
            }
        } else {
            run.stderr.push_str(&format!("sh: {stmt}: not found\n"));
            run.code = 127;
            return run;
        }
    }
    run
}

/// Create namespace `ns` with its `default` ServiceAccount (made here
/// unless a controller manager made it first).
pub async fn namespace(kube: &KubeServer, ns: &str) -> anyhow::Result<()> {
    kube.create(
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .await?;
    let sa = kube
        .create(
            &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
            &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
        )
        .await;
    match sa {
        // A controller manager may have made it first.
        Err(e) if e.to_string().contains("409") => Ok(()),
        r => r.map(drop),
    }
}

/// Create pod `ns/name` bound to node `node`, with these containers.
pub async fn pod(
    kube: &KubeServer,
    ns: &str,
    name: &str,
    node: &str,
    containers: &[&str],
) -> anyhow::Result<()> {
    let containers: Vec<Value> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "busybox:1.36"}))
        .collect();
    kube.create(
        &format!("/api/v1/namespaces/{ns}/pods"),
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "automountServiceAccountToken": false,
                "containers": containers}}),
    )
    .await?;
    Ok(())
}
