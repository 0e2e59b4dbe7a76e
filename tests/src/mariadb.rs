//! A throwaway MariaDB: `mariadb-install-db` in a temp dir owned by `mysql`,
//! `mariadbd` on a free loopback port and a private socket, a password user
//! for TCP. Stopped and deleted on drop. Missing binaries are an error that
//! says `apt-get install -y mariadb-server`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::util::{TempDir, chown, free_port, random_password, run};

/// A running throwaway MariaDB server.
#[derive(Debug)]
pub struct MariaDbServer {
    dir: TempDir,
    child: Option<Child>,
    port: u16,
    password: String,
    /// How long install + start took.
    pub start_time: Duration,
}

fn which(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

fn binary(name: &str) -> anyhow::Result<PathBuf> {
    which(name).with_context(|| {
        format!("MariaDB binary `{name}` not found: run `apt-get install -y mariadb-server`")
    })
}

/// The MySQL user the harness creates.
pub const USER: &str = "tollgate";

impl MariaDbServer {
    /// Start a fresh server (retries on a port race).
    pub fn start() -> anyhow::Result<Self> {
        crate::util::retry_start("MariaDB", Self::try_start)
    }

    fn try_start() -> anyhow::Result<Self> {
        let t0 = Instant::now();
        let (install, server, admin) = (
            binary("mariadb-install-db")?,
            binary("mariadbd")?,
            binary("mariadb-admin")?,
        );
        binary("mariadb")?;
        let dir = TempDir::new("mariadb")?;
        chown(dir.path(), "mysql")?;
        let data = dir.path().join("data");
        run(Command::new(install)
            .args([
                "--no-defaults",
                "--user=mysql",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", data.display())))?;
        let port = free_port();
        let sock = dir.path().join("mysqld.sock");
        let child = Command::new(server)
            .args([
                "--no-defaults",
                "--user=mysql",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
            ])
            .args([
                "--innodb-buffer-pool-size=64M",
                "--innodb-flush-log-at-trx-commit=0",
                "--skip-log-bin",
            ])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", sock.display()))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mysqld.pid").display()
            ))
            .arg(format!(
                "--log-error={}",
                dir.path().join("error.log").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn mariadbd")?;
        let mut s = MariaDbServer {
            dir,
            child: Some(child),
            port,
            password: random_password(),
            start_time: Duration::ZERO,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new(&admin)
                .arg("--no-defaults")
                .arg(format!("--socket={}", sock.display()))
                .args(["-uroot", "ping"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ok {
                break;
            }
            if let Some(c) = s.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                let log =
                    std::fs::read_to_string(s.dir.path().join("error.log")).unwrap_or_default();
                bail!("mariadbd exited ({status}):\n{log}");
            }
            if Instant::now() > deadline {
                bail!("mariadbd did not answer within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        s.root_sql(&format!(
            "CREATE USER '{USER}'@'%' IDENTIFIED BY '{pw}'; GRANT ALL ON *.* TO '{USER}'@'%';",
            pw = s.password
        ))?;
        s.start_time = t0.elapsed();
        Ok(s)
    }

    /// Port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The password of [`USER`].
    pub fn password(&self) -> &str {
        &self.password
    }

    /// URL of database `db` as [`USER`].
    pub fn url(&self, db: &str) -> String {
        format!(
            "mysql://{USER}:{}@127.0.0.1:{}/{db}?ssl-mode=disabled",
            self.password, self.port
        )
    }

    /// Run SQL as root over the private socket.
    pub fn root_sql(&self, sql: &str) -> anyhow::Result<String> {
        let out = run(Command::new(binary("mariadb")?)
            .arg("--no-defaults")
            .arg(format!(
                "--socket={}",
                self.dir.path().join("mysqld.sock").display()
            ))
            .args(["-uroot", "-N", "-B", "-e", sql]))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Create database `name`, load `fixture` into it, return its URL.
    pub fn create_database(&self, name: &str, fixture: &str) -> anyhow::Result<String> {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("database name must be [A-Za-z0-9_]");
        }
        self.root_sql(&format!("CREATE DATABASE {name}; USE {name}; {fixture}"))?;
        Ok(self.url(name))
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        if let Ok(admin) = binary("mariadb-admin") {
            let _ = Command::new(admin)
                .arg("--no-defaults")
                .arg(format!(
                    "--socket={}",
                    self.dir.path().join("mysqld.sock").display()
                ))
                .args(["-uroot", "shutdown"])
                .output();
        }
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
