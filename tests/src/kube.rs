//! A throwaway Kubernetes API server: etcd and kube-apiserver on free
//! loopback ports in a temp dir, with an openssl CA and serving certificate
//! (SAN IP:127.0.0.1), a service-account key pair, a static token file with
//! an admin token (`system:masters`) and a restricted token (no bindings:
//! RBAC refuses it everything a test does not grant), and RBAC
//! authorization. [`KubeServer::start_with_controllers`] also runs
//! kube-controller-manager (Deployments get ReplicaSets and pods, namespaces
//! their `default` ServiceAccount). The API server presents a kubelet client
//! certificate signed by the same CA, and `kubelet.pem`/`kubelet.key` serve
//! a fake kubelet (tests/src/kubelet.rs). Stopped and deleted on drop.
//!
//! Binaries: `etcd` (apt-get install -y etcd-server), `kube-apiserver` and
//! `kube-controller-manager` built by `tests/install-kube.sh` into `~/.cache/tollgate-kube/bin`
//! (`TOLLGATE_KUBE_BIN` overrides the directory). Missing binaries fail the
//! test with that hint, never skip it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::util::{TempDir, free_port, random_password, retry_start, run};

/// A running throwaway API server.
pub struct KubeServer {
    dir: TempDir,
    etcd: Child,
    apiserver: Child,
    controllers: Option<Child>,
    port: u16,
    admin: String,
    restricted: String,
    /// How long certificates + etcd + apiserver to ready took.
    pub start_time: Duration,
}

impl std::fmt::Debug for KubeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeServer")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

const HINT: &str = "run `bash tests/install-kube.sh` as root (installs etcd-server and golang-go, \
                    builds kube-apiserver and kube-controller-manager from Debian's source package into ~/.cache/tollgate-kube/bin)";

/// The directory holding `kube-apiserver`.
pub fn kube_bin() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("TOLLGATE_KUBE_BIN") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
            .join(".cache/tollgate-kube/bin"),
    };
    if !dir.join("kube-apiserver").is_file() {
        bail!("kube-apiserver not found in {}: {HINT}", dir.display());
    }
    Ok(dir)
}

/// `etcd` on PATH.
fn etcd_bin() -> anyhow::Result<PathBuf> {
    for d in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(d).join("etcd");
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("etcd not found on PATH: {HINT}")
}

fn certificates(dir: &Path) -> anyhow::Result<()> {
    let openssl = |args: &[&str]| {
        run(Command::new("openssl").current_dir(dir).args(args))
            .context("openssl (apt-get install -y openssl)")
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=tollgate test kube CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=kube-apiserver",
    ])?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "server.pem",
        "-extfile",
        "server.ext",
    ])?;
    // The fake kubelet's serving certificate and the client certificate the
    // API server presents to kubelets (tests/src/kubelet.rs requires it).
    for (name, cn, ext) in [
        (
            "kubelet",
            "fake-kubelet",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        (
            "kubelet-client",
            "kube-apiserver-kubelet-client",
            "extendedKeyUsage=clientAuth\n",
        ),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext)?;
        let subj = format!("/CN={cn}");
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        openssl(&[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subj,
        ])?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &pem,
            "-extfile",
            &ext,
        ])?;
    }
    openssl(&["genrsa", "-out", "sa.key", "2048"])?;
    openssl(&["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"])?;
    Ok(())
}

fn spawn(cmd: &mut Command, log: &Path) -> anyhow::Result<Child> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("spawn {:?}", cmd.get_program()))
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

impl KubeServer {
    /// Start etcd and kube-apiserver and wait until `/readyz` answers.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_all(false).await
    }

    /// [`KubeServer::start`], then kube-controller-manager (all controllers
    /// but nodelifecycle), ready once it made namespace `default`'s
    /// ServiceAccount.
    pub async fn start_with_controllers() -> anyhow::Result<Self> {
        Self::start_all(true).await
    }

    async fn start_all(controllers: bool) -> anyhow::Result<Self> {
        let etcd = etcd_bin()?;
        let bin = kube_bin()?;
        if controllers && !bin.join("kube-controller-manager").is_file() {
            bail!(
                "kube-controller-manager not found in {}: {HINT}",
                bin.display()
            );
        }
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(&etcd, &bin, controllers).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("cannot start kube-apiserver")))
    }

    async fn start_once(etcd: &Path, bin: &Path, controllers: bool) -> anyhow::Result<Self> {
        let started = Instant::now();
        let dir = TempDir::new("kube")?;
        let d = dir.path();
        certificates(d)?;
        let (admin, restricted) = (
            format!("admin-{}", random_password()),
            format!("reader-{}", random_password()),
        );
        std::fs::write(
            d.join("tokens.csv"),
            format!(
                "{admin},admin,uid-admin,\"system:masters\"\n{restricted},reader,uid-reader,\"readers\"\n"
            ),
        )?;
        let (client, peer) = (free_port(), free_port());
        let etcd_child = retry_start("etcd", || {
            spawn(
                Command::new(etcd)
                    .arg("--name=t")
                    .arg(format!("--data-dir={}", d.join("etcd").display()))
                    .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
                    .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
                    .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
                    .arg(format!(
                        "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
                    ))
                    .arg(format!("--initial-cluster=t=http://127.0.0.1:{peer}"))
                    .arg("--unsafe-no-fsync"),
                &d.join("etcd.log"),
            )
        })?;
        let port = free_port();
        let p = |f: &str| d.join(f).display().to_string();
        let apiserver = spawn(
            Command::new(bin.join("kube-apiserver"))
                .arg(format!("--etcd-servers=http://127.0.0.1:{client}"))
                .arg("--bind-address=127.0.0.1")
                .arg("--advertise-address=127.0.0.1")
                .arg(format!("--secure-port={port}"))
                .arg("--insecure-port=0")
                .arg(format!("--tls-cert-file={}", p("server.pem")))
                .arg(format!("--tls-private-key-file={}", p("server.key")))
                .arg(format!("--client-ca-file={}", p("ca.pem")))
                .arg(format!("--token-auth-file={}", p("tokens.csv")))
                .arg("--authorization-mode=RBAC")
                .arg("--service-account-issuer=https://kubernetes.default.svc")
                .arg(format!("--service-account-key-file={}", p("sa.pub")))
                .arg(format!(
                    "--service-account-signing-key-file={}",
                    p("sa.key")
                ))
                .arg("--service-cluster-ip-range=10.96.0.0/24")
                .arg("--endpoint-reconciler-type=none")
                .arg("--allow-privileged=true")
                .arg(format!(
                    "--kubelet-client-certificate={}",
                    p("kubelet-client.pem")
                ))
                .arg(format!("--kubelet-client-key={}", p("kubelet-client.key")))
                .arg("--kubelet-preferred-address-types=InternalIP")
                .arg(format!("--cert-dir={}", p("certs"))),
            &d.join("apiserver.log"),
        );
        let mut etcd_child = etcd_child;
        let apiserver = match apiserver {
            Ok(a) => a,
            Err(e) => {
                let _ = etcd_child.kill();
                let _ = etcd_child.wait();
                return Err(e);
            }
        };
        let mut server = KubeServer {
            dir,
            etcd: etcd_child,
            apiserver,
            controllers: None,
            port,
            admin,
            restricted,
            start_time: Duration::ZERO,
        };
        let http = server.http()?;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Some(status)) = server.apiserver.try_wait() {
                bail!(
                    "kube-apiserver exited ({status}):\n{}\netcd:\n{}",
                    tail(&server.dir.path().join("apiserver.log")),
                    tail(&server.dir.path().join("etcd.log"))
                );
            }
            let ready = http
                .get(format!("{}/readyz", server.url()))
                .bearer_auth(&server.admin)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "kube-apiserver not ready after 90 s:\n{}",
                    tail(&server.dir.path().join("apiserver.log"))
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if controllers {
            server.start_controllers(bin).await?;
        }
        server.start_time = started.elapsed();
        Ok(server)
    }

    /// kube-controller-manager as admin, through a kubeconfig in the temp dir.
    async fn start_controllers(&mut self, bin: &Path) -> anyhow::Result<()> {
        let d = self.dir.path().to_path_buf();
        let p = |f: &str| d.join(f).display().to_string();
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster: {{server: \"{}\", certificate-authority: \"{}\"}}\n\
             users:\n- name: admin\n  user: {{token: \"{}\"}}\ncontexts:\n- name: t\n  context: {{cluster: t, user: admin}}\ncurrent-context: t\n",
            self.url(),
            p("ca.pem"),
            self.admin
        );
        std::fs::write(d.join("controllers.kubeconfig"), kubeconfig)?;
        self.controllers = Some(spawn(
            Command::new(bin.join("kube-controller-manager"))
                .arg(format!("--kubeconfig={}", p("controllers.kubeconfig")))
                .args(["--leader-elect=false", "--port=0", "--secure-port=0"])
                .arg("--controllers=*,-nodelifecycle")
                .arg(format!(
                    "--service-account-private-key-file={}",
                    p("sa.key")
                ))
                .arg(format!("--root-ca-file={}", p("ca.pem")))
                .arg("--use-service-account-credentials=false"),
            &d.join("controllers.log"),
        )?);
        let http = self.http()?;
        let deadline = Instant::now() + Duration::from_secs(90);
        let sa = format!(
            "{}/api/v1/namespaces/default/serviceaccounts/default",
            self.url()
        );
        loop {
            if let Some(Ok(Some(status))) = self.controllers.as_mut().map(Child::try_wait) {
                bail!(
                    "kube-controller-manager exited ({status}):\n{}",
                    tail(&d.join("controllers.log"))
                );
            }
            let r = http.get(&sa).bearer_auth(&self.admin).send().await;
            if r.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "kube-controller-manager made no ServiceAccount in 90 s:\n{}",
                    tail(&d.join("controllers.log"))
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The server's directory: `ca.pem`, and `kubelet.pem`/`kubelet.key`
    /// for a fake kubelet (tests/src/kubelet.rs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA that signed the serving certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The token of user `admin` (group `system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.admin
    }

    /// The token of user `reader` (group `readers`; nothing is bound to it).
    pub fn restricted_token(&self) -> &str {
        &self.restricted
    }

    /// Mint a client certificate signed by the test CA (which the server
    /// trusts for client auth): CN=`user`, one O= per group. Returns the
    /// paths of the certificate and key PEM files.
    pub fn client_cert(&self, user: &str, groups: &[&str]) -> anyhow::Result<(PathBuf, PathBuf)> {
        let d = self.dir.path();
        let (key, csr, crt) = (
            format!("{user}.key"),
            format!("{user}.csr"),
            format!("{user}.pem"),
        );
        let subj: String = std::iter::once(format!("/CN={user}"))
            .chain(groups.iter().map(|g| format!("/O={g}")))
            .collect();
        let ext = format!("{user}.ext");
        std::fs::write(d.join(&ext), "extendedKeyUsage=clientAuth\n")?;
        for args in [
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj",
                &subj,
            ][..],
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &crt,
                "-extfile",
                &ext,
            ][..],
        ] {
            run(Command::new("openssl").current_dir(d).args(args)).context("openssl")?;
        }
        Ok((d.join(crt), d.join(key)))
    }

    /// An HTTP client trusting the server's CA.
    pub fn http(&self) -> anyhow::Result<reqwest::Client> {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(self.ca_file())?)?;
        Ok(reqwest::Client::builder()
            .add_root_certificate(ca)
            .tls_built_in_root_certs(false)
            .build()?)
    }

    /// POST `body` to `path` as admin (create an object); fails unless 2xx.
    pub async fn create(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let r = self
            .http()?
            .post(format!("{}{path}", self.url()))
            .bearer_auth(&self.admin)
            .json(body)
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("POST {path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }
}

impl Drop for KubeServer {
    fn drop(&mut self) {
        let controllers = self.controllers.iter_mut();
        for child in controllers.chain([&mut self.apiserver, &mut self.etcd]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
