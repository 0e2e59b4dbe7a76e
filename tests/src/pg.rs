//! A throwaway PostgreSQL: `initdb` (scram password) in a temp dir, started
//! with `pg_ctl` on a free loopback port (no Unix socket in /var/run), fsync
//! off. Stopped and deleted on drop. Binaries: the newest
//! `/usr/lib/postgresql/*/bin` (apt-get install -y postgresql).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::util::{TempDir, as_user, chown, free_port, random_password, run};

/// A running throwaway PostgreSQL server.
#[derive(Debug)]
pub struct PgServer {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
    password: String,
    /// The server options `pg_ctl start` got, for [`PgServer::resume`].
    opts: String,
    /// How long initdb + start took.
    pub start_time: std::time::Duration,
}

/// The newest `/usr/lib/postgresql/*/bin` holding `initdb`.
pub fn pg_bin() -> anyhow::Result<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("initdb").exists().then_some((v, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
        .pop()
        .map(|(_, b)| b)
        .context("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin: run `apt-get install -y postgresql`")
}

/// A throwaway CA, a server certificate it signs for `IP:127.0.0.1`, and an
/// unrelated second CA, with the openssl CLI.
fn make_certificates(dir: &std::path::Path) -> anyhow::Result<()> {
    let openssl = |args: &[&str]| {
        run(Command::new("openssl").current_dir(dir).args(args))
            .context("openssl (apt-get install -y openssl)")
    };
    for ca in ["ca", "other-ca"] {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
            "-subj",
            &format!("/CN=tollgate test {ca}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])?;
    }
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
        "/CN=127.0.0.1",
    ])?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
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
    // PostgreSQL refuses a key others can read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )?;
    Ok(())
}

impl PgServer {
    /// Start a fresh server (retries on a port race).
    pub fn start() -> anyhow::Result<Self> {
        crate::util::retry_start("PostgreSQL", || Self::try_start(false))
    }

    /// Start a fresh server that also accepts TLS, with a certificate for
    /// `IP:127.0.0.1` only, issued by a throwaway CA ([`PgServer::ca_cert`]).
    pub fn start_tls() -> anyhow::Result<Self> {
        crate::util::retry_start("PostgreSQL (TLS)", || Self::try_start(true))
    }

    /// The CA that issued the server certificate (a `start_tls` server).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A second CA that issued nothing this server presents.
    pub fn other_ca_cert(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    fn try_start(tls: bool) -> anyhow::Result<Self> {
        let t0 = Instant::now();
        let bin = pg_bin()?;
        let dir = TempDir::new("pg")?;
        let password = random_password();
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, format!("{password}\n"))?;
        chown(dir.path(), "postgres")?;
        let data = dir.path().join("data");
        run(as_user("postgres", &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "-N",
            ])
            .arg(format!("--pwfile={}", pwfile.display())))?;
        let port = free_port();
        let mut opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            dir.path().display()
        );
        if tls {
            make_certificates(dir.path())?;
            chown(dir.path(), "postgres")?;
            opts.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={0}/server.pem -c ssl_key_file={0}/server.key",
                dir.path().display()
            ));
        }
        run(as_user("postgres", &bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("log"))
            .args(["-w", "-t", "30", "-o", &opts, "start"]))
        .with_context(|| std::fs::read_to_string(dir.path().join("log")).unwrap_or_default())?;
        Ok(PgServer {
            bin,
            dir,
            port,
            password,
            opts,
            start_time: t0.elapsed(),
        })
    }

    /// Stop the server (`pg_ctl stop -m fast`: open sessions are
    /// terminated, as in a database restart); [`PgServer::resume`] starts it
    /// again on the same port and data.
    pub fn stop(&self) -> anyhow::Result<()> {
        run(as_user("postgres", &self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "fast", "-w", "-t", "30", "stop"]))?;
        Ok(())
    }

    /// Start a server [`PgServer::stop`] stopped, with its options.
    pub fn resume(&self) -> anyhow::Result<()> {
        run(as_user("postgres", &self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "-t", "30", "-o", &self.opts, "start"]))
        .with_context(|| {
            std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        })?;
        Ok(())
    }

    /// Port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's password.
    /// The directory holding the server's Unix socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// URL for database `db` as the superuser.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}?sslmode=disable",
            self.password, self.port
        )
    }

    /// Run SQL with psql on `db` (stops at the first error).
    pub fn psql(&self, db: &str, sql: &str) -> anyhow::Result<String> {
        let out = run(Command::new(self.bin.join("psql"))
            .env("PGPASSWORD", &self.password)
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(db)
            .arg("-c")
            .arg(sql))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Create database `name`, load `fixture` into it, return its URL.
    pub fn create_database(&self, name: &str, fixture: &str) -> anyhow::Result<String> {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("database name must be [A-Za-z0-9_]");
        }
        self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        if !fixture.trim().is_empty() {
            self.psql(name, fixture)?;
        }
        Ok(self.url(name))
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = as_user("postgres", &self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}
