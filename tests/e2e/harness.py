"""Throwaway PostgreSQL and a `tollgate serve` subprocess for the end-to-end tests.

Used by conftest.py (pytest fixtures) and by conformance.py (the official
conformance suite). Everything listens on loopback, on free ports, in temp dirs,
and is stopped at the end. Never touches a PostgreSQL on the default port.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
E2E_DIR = Path(__file__).resolve().parent


def tollgate_bin() -> str:
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")
    path = os.environ.get("TOLLGATE_BIN") or os.path.join(target, "debug", "tollgate")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"tollgate binary not found at {path}: run `cargo build -p tollgate` (or set TOLLGATE_BIN)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port() -> int:
    """A loopback port nothing listens on (bound and released)."""
    return free_port()


def pg_bindir() -> str:
    if os.environ.get("PGBIN"):
        return os.environ["PGBIN"]
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): "
            "run `bash tests/install-deps.sh` as root or `apt-get install -y postgresql`"
        )
    return os.path.dirname(found[-1])


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


FIXTURE_SQL = """
CREATE TABLE customers (
  id integer PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL,
  phone text,
  ssn text
);
CREATE TABLE orders (
  id integer PRIMARY KEY,
  customer_id integer NOT NULL REFERENCES customers(id),
  amount numeric(10,2) NOT NULL,
  status text NOT NULL,
  created_at timestamptz NOT NULL
);
INSERT INTO customers VALUES
  (1, 'Ada Lovelace',   'ada.lovelace@example.com',   '+1 415 555 0101', '123-45-6789'),
  (2, 'Grace Hopper',   'grace.hopper@example.com',   '+1 415 555 0102', '234-56-7890'),
  (3, 'Alan Turing',    'alan.turing@example.com',    '+1 415 555 0103', '345-67-8901'),
  (4, 'Edsger Dijkstra','edsger.dijkstra@example.com','+1 415 555 0104', '456-78-9012'),
  (5, 'Barbara Liskov', 'barbara.liskov@example.com', '+1 415 555 0105', '567-89-0123');
INSERT INTO orders
  SELECT 1000 + g, 1 + (g % 5), round((5 + g * 3.37)::numeric, 2),
         (ARRAY['paid','shipped','pending','refunded'])[1 + g % 4],
         timestamptz '2026-01-01 09:00:00+00' + g * interval '7 hours'
  FROM generate_series(1, 40) AS g;
"""


@contextlib.contextmanager
def running_postgres():
    """A started throwaway PostgreSQL with the fixture, removed afterwards."""
    p = Postgres()
    try:
        p.start()
        yield p
    finally:
        p.cleanup()


class Postgres:
    """initdb (scram-sha-256, random password) + pg_ctl on a free port in a temp dir."""

    def __init__(self) -> None:
        self.bindir = pg_bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="tollgate-e2e-pg-"))
        self.port = free_port()
        # Distinctive so a leak is unmistakable in any output.
        self.password = "pgSecret-" + secrets.token_hex(12)
        self.user = "shop_app"
        self.running = False

    @property
    def url(self) -> str:
        return f"postgres://{self.user}:{self.password}@127.0.0.1:{self.port}/shop"

    def _run(self, cmd: list[str], **kw) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)

    def start(self) -> "Postgres":
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o700)
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres")
        self._run(_as_postgres([
            f"{self.bindir}/initdb", "-D", str(self.dir / "data"), "-U", "postgres",
            "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8",
        ]))
        self.restart()
        # The superuser shares the password; the app role owns the fixture tables.
        self.psql(f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'", db="postgres", user="postgres")
        self.psql(f"CREATE DATABASE shop OWNER {self.user}", db="postgres", user="postgres")
        self.psql(FIXTURE_SQL)
        return self

    def pg_ctl(self, *args: str) -> None:
        self._run(_as_postgres([f"{self.bindir}/pg_ctl", "-D", str(self.dir / "data"), *args]))

    def stop(self) -> None:
        if self.running:
            self.pg_ctl("-m", "fast", "-w", "stop")
            self.running = False

    def restart(self) -> None:
        """Start (again) on the same port."""
        self.pg_ctl("start", "-l", str(self.dir / "log"), "-w", "-t", "30", "-o",
                    f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self.running = True

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def psql(self, sql: str, db: str = "shop", user: str | None = None) -> str:
        """Run SQL over TCP with the password; return unaligned, tuples-only output."""
        env = dict(os.environ, PGPASSWORD=self.password)
        out = self._run([
            f"{self.bindir}/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", user or self.user,
            "-d", db, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql,
        ], env=env)
        return out.stdout.strip()


POLICIES = {
    "agents.cedar": """
// Agents: use `shop` (and `down`, a target that is not running) and read every table.
@id("agents-connect")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect",
        resource == Tollgate::Connection::"shop");

@id("agents-connect-down")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect",
        resource == Tollgate::Connection::"down");

@id("agents-read")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select",
        resource in Tollgate::Connection::"shop");

@id("agents-read-down")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select",
        resource in Tollgate::Connection::"down");
""",
    "approvals.cedar": """
// Agents may delete single orders once a reviewer approves the exact statement.
@id("agents-delete-orders-with-approval")
@approval("reviewers")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:delete",
        resource == Tollgate::Table::"shop/public.orders")
when { context.has_where };
""",
    "privileged.cedar": """
// Support leads may read `shop` and see e-mail and phone values unmasked
// (never SSNs); the audit record stays masked whatever they see.
@id("support-connect")
permit (principal in Tollgate::Group::"support", action == Tollgate::Action::"connect",
        resource == Tollgate::Connection::"shop");

@id("support-read")
permit (principal in Tollgate::Group::"support", action == Tollgate::Action::"sql:select",
        resource in Tollgate::Connection::"shop");

@id("support-unmask-contact")
permit (principal in Tollgate::Group::"support", action == Tollgate::Action::"unmask",
        resource in Tollgate::Connection::"shop")
when { ["EMAIL", "PHONE"].containsAll(context.types) };
""",
    "soundness.cedar": """
// Nobody reads the per-user schema's salaries (test_soundness: name resolution).
@id("forbid-user-schema-salaries")
forbid (principal, action, resource == Tollgate::Table::"shop/shop_app.salaries");

// Agents may update sound_orders, at most 2 rows per call (test_soundness: blast radius).
@id("agents-update-sound-orders-capped")
@max_affected_rows("2")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:update",
        resource == Tollgate::Table::"shop/public.sound_orders");
""",
    "order-readers.cedar": """
// Order readers may select `orders` only: sql_schema hides every other table.
@id("order-readers-connect")
permit (principal in Tollgate::Group::"order-readers", action == Tollgate::Action::"connect",
        resource == Tollgate::Connection::"shop");

@id("order-readers-read-orders")
permit (principal in Tollgate::Group::"order-readers", action == Tollgate::Action::"sql:select",
        resource == Tollgate::Table::"shop/public.orders");
""",
    "auditors.cedar": """
@id("auditors-read-audit")
permit (principal in Tollgate::Group::"auditors", action == Tollgate::Action::"audit:read",
        resource == Tollgate::Audit::"log");
""",
}


class Tollgate:
    """A config + policies in a temp dir, and `tollgate serve` on a free port."""

    def __init__(self, pg: Postgres, extra_env: dict[str, str] | None = None) -> None:
        self.bin = tollgate_bin()
        self.pg = pg
        self.dir = Path(tempfile.mkdtemp(prefix="tollgate-e2e-"))
        self.port = free_port()
        self.down_port = closed_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.mcp_url = f"{self.base}/mcp"
        self.secret = "e2e-" + secrets.token_hex(16)
        self.config = self.dir / "tollgate.toml"
        self.data_dir = self.dir / "data"
        self.log_path = self.dir / "server.log"
        self.proc: subprocess.Popen | None = None
        self._log = None
        # `down` points at a closed port but carries the real password, so an
        # error message that echoed the URL would show up in the leak checks.
        self.down_url = f"postgres://{pg.user}:{pg.password}@127.0.0.1:{self.down_port}/shop"
        self.env = dict(os.environ, SHOP_DATABASE_URL=pg.url, DOWN_DATABASE_URL=self.down_url,
                        # Everything at debug: the leak checks then prove that no
                        # dependency logs raw call content (server/src/logging.rs).
                        RUST_LOG="debug", NO_COLOR="1", **(extra_env or {}))
        self.write_config()

    def config_head(self) -> str:
        """`[server]`, `[auth]` and `[policy]` of every e2e config: this server's
        port and HS256 secret, policies from `policies/`, enforced."""
        return f"""
[server]
listen = "127.0.0.1:{self.port}"
public_url = "{self.base}"
data_dir = "data"

[auth]
issuer = "tollgate-e2e"
audience = "tollgate"
hs256_secret = "{self.secret}"

[policy]
dir = "policies"
mode = "enforce"
"""

    def write_config(self) -> None:
        (self.dir / "policies").mkdir(exist_ok=True)
        for name, text in POLICIES.items():
            (self.dir / "policies" / name).write_text(text)
        # The shipped forbid for dangerous functions, as users deploy it.
        shutil.copy(REPO / "policies" / "dangerous-functions.cedar", self.dir / "policies")
        self.config.write_text(self.config_head() + f"""
[approval]
wait_seconds = 2
ttl = "1h"

[stdio]
sub = "local-agent"
groups = ["agents"]

[[connection]]
name = "shop"
kind = "postgres"
url = "${{env:SHOP_DATABASE_URL}}"
description = "orders and customers"
statement_timeout = "5s"
max_rows = 1000

[[connection]]
name = "down"
kind = "postgres"
url = "${{env:DOWN_DATABASE_URL}}"
description = "a target that is not running"
statement_timeout = "5s"
""")

    def start(self, timeout: float = 30) -> "Tollgate":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.bin, "serve", "--config", str(self.config)],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tollgate serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"tollgate not ready after {timeout}s:\n{self.log()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log:
            self._log.close()
            self._log = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run([self.bin, *args], capture_output=True, text=True, env=self.env, check=check, timeout=60)

    def token(self, sub: str, groups: list[str], ttl: str | None = None) -> str:
        args = ["token", "--config", str(self.config), "--sub", sub, "--groups", ",".join(groups)]
        if ttl:
            args += ["--ttl", ttl]
        out = self.cli(*args, check=True).stdout
        token = out.strip()
        assert token.count(".") == 2 and "\n" not in token, f"`tollgate token` printed more than a token: {out!r}"
        return token


def mariadb_binary(name: str) -> str:
    for d in ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"):
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    raise RuntimeError(f"MariaDB binary `{name}` not found: run `apt-get install -y mariadb-server` "
                       "(or `bash tests/install-deps.sh` as root)")


@contextlib.contextmanager
def running_mariadb():
    """A started throwaway MariaDB, removed afterwards (as tests/src/mariadb.rs does)."""
    m = MariaDb()
    try:
        m.start()
        yield m
    finally:
        m.cleanup()


class MariaDb:
    """mariadb-install-db + mariadbd on a free loopback port and a private socket
    in a temp dir; root over the socket only, a password user for TCP."""

    def __init__(self) -> None:
        self.install = mariadb_binary("mariadb-install-db")
        self.server = mariadb_binary("mariadbd")
        self.admin = mariadb_binary("mariadb-admin")
        self.client = mariadb_binary("mariadb")
        self.dir = Path(tempfile.mkdtemp(prefix="tollgate-e2e-maria-"))
        self.port = free_port()
        self.sock = self.dir / "mysqld.sock"
        self.user = "shop_app"
        self.password = "mariaSecret-" + secrets.token_hex(12)
        self.proc: subprocess.Popen | None = None

    def url(self, db: str) -> str:
        return f"mysql://{self.user}:{self.password}@127.0.0.1:{self.port}/{db}?ssl-mode=disabled"

    def start(self) -> "MariaDb":
        if os.geteuid() == 0:
            shutil.chown(self.dir, "mysql", "mysql")
        data = self.dir / "data"
        subprocess.run([self.install, "--no-defaults", "--user=mysql", "--auth-root-authentication-method=socket",
                        "--skip-test-db", f"--datadir={data}"], check=True, capture_output=True, text=True)
        self.proc = subprocess.Popen(
            [self.server, "--no-defaults", "--user=mysql", "--bind-address=127.0.0.1", "--skip-name-resolve",
             "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=0", "--skip-log-bin",
             f"--datadir={data}", f"--port={self.port}", f"--socket={self.sock}",
             f"--pid-file={self.dir / 'mysqld.pid'}", f"--log-error={self.dir / 'error.log'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            ok = subprocess.run([self.admin, "--no-defaults", f"--socket={self.sock}", "-uroot", "ping"],
                                capture_output=True).returncode == 0
            if ok:
                break
            if self.proc.poll() is not None:
                log = (self.dir / "error.log").read_text(errors="replace") if (self.dir / "error.log").exists() else ""
                raise RuntimeError(f"mariadbd exited with {self.proc.returncode}:\n{log}")
            if time.monotonic() > deadline:
                raise RuntimeError("mariadbd did not answer within 30 s")
            time.sleep(0.1)
        self.root_sql(f"CREATE USER '{self.user}'@'%' IDENTIFIED BY '{self.password}'; "
                      f"GRANT ALL ON *.* TO '{self.user}'@'%';")
        return self

    def root_sql(self, sql: str, db: str | None = None) -> str:
        """Run SQL as root over the private socket; tab-separated output."""
        cmd = [self.client, "--no-defaults", f"--socket={self.sock}", "-uroot", "-N", "-B"]
        if db:
            cmd.append(db)
        out = subprocess.run([*cmd, "-e", sql], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def cleanup(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                subprocess.run([self.admin, "--no-defaults", f"--socket={self.sock}", "-uroot", "shutdown"],
                               capture_output=True, timeout=30)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class HarnessBinary:
    """A throwaway server of the Rust test harness (a bin of the tests crate:
    `kube-harness`, `ssh-harness`): started, its one JSON line of connection
    facts read from stdout (`self.info`), stopped by closing its stdin."""

    def __init__(self, name: str, missing_hint: str) -> None:
        target = os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")
        binary = os.path.join(target, "debug", name)
        if not os.access(binary, os.X_OK):
            raise RuntimeError(f"{binary} not found: run `cargo build -p tollgate-tests --bins`")
        self.proc = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{name} exited before its server was ready ({missing_hint})")
        self.info = json.loads(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
