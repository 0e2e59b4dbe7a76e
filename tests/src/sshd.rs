//! A throwaway OpenSSH server: `/usr/sbin/sshd -D -e -f CONFIG` on a free
//! loopback port, with its own Ed25519 host key, a client key pair, an
//! authorized_keys file in a temp dir and a known_hosts file (plain and
//! hashed) naming it. Stopped, with every process it started, on drop.
//!
//! The login is a dedicated user `tollgate-ssh` (created with `useradd`
//! when missing and unlocked with `usermod -p '*'`, since `UsePAM no`
//! refuses a locked account) when the tests run as root, as CI does; the
//! current user otherwise. `StrictModes no`: the key files live under /tmp
//! (mode 1777), which strict mode refuses. Binaries:
//! `apt-get install -y openssh-server` (sshd, ssh-keygen).

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::util::{TempDir, free_port, is_root, run};

/// The sshd binary the harness runs.
pub const SSHD: &str = "/usr/sbin/sshd";
/// The login used when the tests run as root.
pub const TEST_USER: &str = "tollgate-ssh";
/// The passphrase of [`SshdServer::client_key_encrypted_pem`].
pub const KEY_PASSPHRASE: &str = "tollgate test passphrase";

/// A running throwaway sshd.
#[derive(Debug)]
pub struct SshdServer {
    dir: TempDir,
    port: u16,
    user: String,
    child: Option<Child>,
    /// How long key generation + start took.
    pub start_time: Duration,
}

fn ssh_keygen(args: &[&str]) -> anyhow::Result<()> {
    run(Command::new("ssh-keygen").args(args))
        .map(|_| ())
        .context("ssh-keygen (apt-get install -y openssh-server)")
}

/// The first two fields (`type base64`) of a public key file.
fn key_line(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let fields: Vec<&str> = text.split_whitespace().take(2).collect();
    if fields.len() != 2 {
        bail!("{}: not a public key line", path.display());
    }
    Ok(fields.join(" "))
}

/// Create the test login if missing and make sure `UsePAM no` accepts it.
fn ensure_test_user() -> anyhow::Result<()> {
    let exists = || {
        Command::new("id")
            .arg("-u")
            .arg(TEST_USER)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !exists() {
        let out = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", TEST_USER])
            .output()
            .context("useradd")?;
        // Another test binary may have created it meanwhile.
        if !out.status.success() && !exists() {
            bail!(
                "useradd {TEST_USER}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    run(Command::new("usermod").args(["-p", "*", TEST_USER]))?;
    Ok(())
}

fn current_user() -> anyhow::Result<String> {
    let out = run(Command::new("id").arg("-un"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Every process below `root` (children first found, by /proc ppid).
fn descendants(root: u32) -> Vec<u32> {
    let mut table = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may hold spaces; split after ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                table.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            table
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Process ids whose full command line matches `pattern` (`pgrep -f`).
pub fn pgrep(pattern: &str) -> Vec<u32> {
    Command::new("pgrep")
        .arg("-f")
        .arg(pattern)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

impl SshdServer {
    /// Start a fresh server (retries on a port race). Panics, naming the
    /// package, when sshd is not installed.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with("")
    }

    /// Start a fresh server with `extra` appended to its sshd_config
    /// (e.g. `MaxSessions 3`).
    pub fn start_with(extra: &str) -> anyhow::Result<Self> {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} not found: install openssh-server (apt-get install -y openssh-server)"
        );
        crate::util::retry_start("sshd", || Self::try_start(extra))
    }

    fn try_start(extra: &str) -> anyhow::Result<Self> {
        let t0 = Instant::now();
        let user = if is_root() {
            ensure_test_user()?;
            // sshd's privilege separation directory.
            std::fs::create_dir_all("/run/sshd").context("mkdir /run/sshd")?;
            TEST_USER.to_string()
        } else {
            current_user()?
        };
        let dir = TempDir::new("sshd")?;
        let d = dir.path();
        set_mode(d, 0o755)?;
        for name in ["host_ed25519", "other_host_ed25519", "client_ed25519"] {
            let path = d.join(name);
            ssh_keygen(&[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                &format!("tollgate-test-{name}"),
                "-f",
                &path.to_string_lossy(),
            ])?;
        }
        // The same client key, encrypted with a passphrase.
        std::fs::copy(d.join("client_ed25519"), d.join("client_ed25519_enc"))?;
        ssh_keygen(&[
            "-q",
            "-p",
            "-P",
            "",
            "-N",
            KEY_PASSPHRASE,
            "-f",
            &d.join("client_ed25519_enc").to_string_lossy(),
        ])?;
        std::fs::copy(d.join("client_ed25519.pub"), d.join("authorized_keys"))?;
        set_mode(&d.join("authorized_keys"), 0o644)?;

        let port = free_port();
        let host_line = key_line(&d.join("host_ed25519.pub"))?;
        std::fs::write(
            d.join("known_hosts"),
            format!("# throwaway sshd\n[127.0.0.1]:{port} {host_line}\n"),
        )?;
        std::fs::copy(d.join("known_hosts"), d.join("known_hosts_hashed"))?;
        ssh_keygen(&[
            "-q",
            "-H",
            "-f",
            &d.join("known_hosts_hashed").to_string_lossy(),
        ])?;

        let log_level = std::env::var("TOLLGATE_SSHD_LOGLEVEL").unwrap_or_else(|_| "INFO".into());
        let config = format!(
            "Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {d}/host_ed25519\n\
             PidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\n\
             StrictModes no\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             PermitRootLogin no\n\
             AllowUsers {user}\n\
             LogLevel {log_level}\n\
             {extra}\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config)?;
        let mut server = SshdServer {
            dir,
            port,
            user,
            child: None,
            start_time: Duration::ZERO,
        };
        server.spawn()?;
        server.start_time = t0.elapsed();
        Ok(server)
    }

    /// Start sshd on the prepared config and wait until it accepts TCP.
    fn spawn(&mut self) -> anyhow::Result<()> {
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("sshd.log"))?;
        let mut child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawn sshd (apt-get install -y openssh-server)")?;
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("sshd exited ({status}):\n{}", self.log());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                break;
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "sshd did not listen on {} within 10 s:\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        Ok(())
    }

    /// Kill the server and everything it started (connections and their
    /// commands), as a host reboot would.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            for pid in descendants(child.id()) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .output();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop the server (dropping every open connection) and start it again
    /// on the same port with the same keys.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > until => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// Port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The login that the client key opens.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The client private key (OpenSSH text, no passphrase).
    pub fn client_key_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("client_ed25519")).unwrap_or_default()
    }

    /// The same client key encrypted with [`KEY_PASSPHRASE`].
    pub fn client_key_encrypted_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("client_ed25519_enc")).unwrap_or_default()
    }

    /// The client public key line.
    pub fn client_public_line(&self) -> String {
        key_line(&self.dir.path().join("client_ed25519.pub")).unwrap_or_default()
    }

    /// The server's host key line (`ssh-ed25519 AAAA...`).
    pub fn host_key_line(&self) -> String {
        key_line(&self.dir.path().join("host_ed25519.pub")).unwrap_or_default()
    }

    /// A second, unrelated host key line (for mismatch tests).
    pub fn other_host_key_line(&self) -> String {
        key_line(&self.dir.path().join("other_host_ed25519.pub")).unwrap_or_default()
    }

    /// A known_hosts file with one plain `[127.0.0.1]:PORT` entry.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// The same entry hashed (`ssh-keygen -H`).
    pub fn known_hosts_hashed(&self) -> PathBuf {
        self.dir.path().join("known_hosts_hashed")
    }

    /// A scratch file path in the server's temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write a file in the server's temp dir; its path.
    pub fn write(&self, name: &str, text: &str) -> anyhow::Result<PathBuf> {
        let path = self.path(name);
        std::fs::File::create(&path)?.write_all(text.as_bytes())?;
        Ok(path)
    }

    /// sshd's log so far (`-e`: its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Successful logins so far (one per SSH connection).
    pub fn accepted_logins(&self) -> usize {
        self.log().matches("Accepted publickey for").count()
    }
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

impl Drop for SshdServer {
    fn drop(&mut self) {
        self.stop();
    }
}
