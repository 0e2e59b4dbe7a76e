// Test harness of the console's browser tests: a temp SQLite shop, a
// `tollgate serve` on a free loopback port with its own config, policies and
// HS256 secret, tokens minted by `tollgate token`, MCP agents through the
// official TypeScript SDK, and headless Debian Chromium through
// playwright-core. Everything lives in a temp dir removed at the end.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, mkdirSync, rmSync, existsSync, accessSync, constants } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(HERE, "../..");

/** Stored-XSS payloads: each would set a global or call alert/console if it ever ran. */
export const XSS = {
  sub: `<img src=x onerror="window.__xss_sub=1;alert('sub')">`,
  connection: `shop<svg onload=window.__xss_conn=1>`,
  table: `<script>window.__xss_table=1</script>`,
  sql: `'</pre><script>window.__xss_sql=1;console.error('xss')</script><img src=x onerror=window.__xss_sql2=1>`,
  reason: `"><script>window.__xss_reason=1</script>`,
};

export function tollgateBin() {
  const target = process.env.CARGO_TARGET_DIR || join(REPO, "target");
  const bin = process.env.TOLLGATE_BIN || join(target, "debug", "tollgate");
  try { accessSync(bin, constants.X_OK); } catch {
    throw new Error(`tollgate binary not found at ${bin}: run \`cargo build -p tollgate\` (or set TOLLGATE_BIN)`);
  }
  return bin;
}

export function chromiumPath() {
  const p = process.env.CHROMIUM || "/usr/bin/chromium";
  if (!existsSync(p)) throw new Error(`Chromium not found at ${p}: apt-get install -y chromium (or set CHROMIUM)`);
  return p;
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => res(port)); });
    s.on("error", rej);
  });
}

const POLICIES = (conn) => `
@id("agents-connect")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource == Tollgate::Connection::"shop");
@id("agents-read")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select", resource in Tollgate::Connection::"shop");
@id("agents-delete-orders-with-approval")
@approval("reviewers")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:delete", resource == Tollgate::Table::"shop/main.orders")
when { context.has_where };
@id("agents-connect-hostile")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource == Tollgate::Connection::${JSON.stringify(conn)});
@id("agents-delete-hostile-with-approval")
@approval("reviewers")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:delete", resource in Tollgate::Connection::${JSON.stringify(conn)})
when { context.has_where };
@id("reviewers-delete-with-approval")
@approval("reviewers")
permit (principal in Tollgate::Group::"reviewers", action == Tollgate::Action::"sql:delete", resource == Tollgate::Table::"shop/main.orders")
when { context.has_where };
@id("reviewers-connect")
permit (principal in Tollgate::Group::"reviewers", action == Tollgate::Action::"connect", resource == Tollgate::Connection::"shop");
@id("auditors-read-audit")
permit (principal in Tollgate::Group::"auditors", action == Tollgate::Action::"audit:read", resource == Tollgate::Audit::"log");
`;

function makeDb(path, xssTable) {
  // python3's sqlite3 (no Node SQLite before node 22).
  const py = `
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount NUMERIC NOT NULL, status TEXT NOT NULL, note TEXT)")
c.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", [(1000 + i, 10 + i, "paid", None) for i in range(1, 60)])
t = sys.argv[2].replace('"', '""')
c.execute(f'CREATE TABLE "{t}" (id INTEGER PRIMARY KEY, v TEXT)')
c.execute(f'INSERT INTO "{t}" VALUES (1, ?)', (sys.argv[2],))
c.commit()
`;
  execFileSync("python3", ["-c", py, path, xssTable]);
}

/**
 * The Rust harness's throwaway etcd + kube-apiserver (`kube-harness`, a bin
 * of the tests crate, tests/src/kube.rs): one JSON line `{url, ca_file,
 * admin_token, restricted_token}`; stopped by closing its stdin.
 */
export async function kubeApi() {
  return harnessBinary("kube-harness", "needs etcd and kube-apiserver: run `bash tests/install-kube.sh` as root");
}

/**
 * The Rust harness's throwaway OpenSSH server (`ssh-harness`, a bin of the
 * tests crate, tests/src/sshd.rs): one JSON line of connection facts on
 * stdout; stopped by closing its stdin.
 */
export async function sshd() {
  return harnessBinary("ssh-harness", "needs openssh-server: apt-get install -y openssh-server");
}

/** Start a harness binary of the tests crate; its first stdout line is JSON. */
async function harnessBinary(name, hint) {
  const target = process.env.CARGO_TARGET_DIR || join(REPO, "target");
  const bin = join(target, "debug", name);
  try { accessSync(bin, constants.X_OK); } catch {
    throw new Error(`${bin} not found: run \`cargo build -p tollgate-tests --bin ${name}\` (${hint})`);
  }
  const proc = spawn(bin, [], { stdio: ["pipe", "pipe", "inherit"] });
  const line = await new Promise((res, rej) => {
    let buf = "";
    proc.stdout.on("data", (d) => { buf += d; const i = buf.indexOf("\n"); if (i >= 0) res(buf.slice(0, i)); });
    proc.on("exit", (code) => rej(new Error(`${name} exited (${code}) before it was ready: ${hint}`)));
  });
  const info = JSON.parse(line);
  info.stop = () => new Promise((r) => { proc.once("exit", r); proc.stdin.end(); setTimeout(() => { proc.kill(); r(); }, 10000); });
  return info;
}

export class Tollgate {
  /** `port`: listen there (default a free one); `extraConfig`: TOML appended
   * to the config (e.g. a `[ui]` section); `env`: added to the server's
   * environment (secret references); `extraPolicies`: Cedar text of one
   * more policy file. */
  constructor({ waitSeconds = 30, ssh = null, port, extraConfig = "", env = {}, extraPolicies = "" } = {}) {
    this.ssh = ssh;
    this.extraPolicies = extraPolicies;
    this.fixedPort = port;
    this.extraConfig = extraConfig;
    this.env = env;
    this.bin = tollgateBin();
    this.dir = mkdtempSync(join(tmpdir(), "tollgate-browser-"));
    this.waitSeconds = waitSeconds;
    this.log = [];
  }

  async start() {
    this.port = this.fixedPort ?? await freePort();
    this.base = `http://127.0.0.1:${this.port}`;
    mkdirSync(join(this.dir, "policies"));
    writeFileSync(join(this.dir, "policies", "console.cedar"), POLICIES(XSS.connection));
    if (this.extraPolicies) writeFileSync(join(this.dir, "policies", "extra.cedar"), this.extraPolicies);
    writeFileSync(join(this.dir, "secret.key"), "browser-test-secret-" + Math.random().toString(36).slice(2).padEnd(24, "x"));
    makeDb(join(this.dir, "shop.db"), XSS.table);
    makeDb(join(this.dir, "hostile.db"), XSS.table);
    this.config = join(this.dir, "tollgate.toml");
    let sshConn = "";
    if (this.ssh) {
      writeFileSync(join(this.dir, "deploy.key"), this.ssh.client_key_pem, { mode: 0o600 });
      sshConn = `
[[connection]]
name = "web"
kind = "ssh"
host = "127.0.0.1"
port = ${this.ssh.port}
user = "${this.ssh.user}"
private_key = "\${file:${join(this.dir, "deploy.key")}}"
host_key = "${this.ssh.host_key}"
timeout = "20s"
`;
      writeFileSync(join(this.dir, "policies", "ssh.cedar"), `
@id("ssh-connect")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource == Tollgate::Connection::"web");
@id("ssh-agents-printf")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"ssh:exec", resource == Tollgate::Connection::"web")
when { ["printf", "sleep"].containsAll(context.runs) && !context.sudo && !context.shell };
`);
    }
    writeFileSync(this.config, `
[server]
listen = "127.0.0.1:${this.port}"
public_url = "${this.base}"
data_dir = "data"

[auth]
issuer = "tollgate-browser"
audience = "tollgate"
hs256_secret = "\${file:${join(this.dir, "secret.key")}}"

[policy]
dir = "policies"

[approval]
wait_seconds = ${this.waitSeconds}
ttl = "1h"

[[connection]]
name = "shop"
kind = "sqlite"
path = "shop.db"

[[connection]]
name = ${JSON.stringify(XSS.connection)}
kind = "sqlite"
path = "hostile.db"
${sshConn}${this.extraConfig}`);
    return this.launch();
  }

  /** (Re)start the server on the prepared config and wait until it is ready. */
  async launch() {
    this.proc = spawn(this.bin, ["serve", "--config", this.config],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...this.env } });
    const keep = (d) => { this.log.push(d.toString()); if (this.log.length > 400) this.log.shift(); };
    this.proc.stdout.on("data", keep);
    this.proc.stderr.on("data", keep);
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) throw new Error(`tollgate exited (${this.proc.exitCode}):\n${this.log.join("")}`);
      try { const r = await fetch(`${this.base}/readyz`); if (r.ok) return this; } catch {}
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`tollgate did not become ready:\n${this.log.join("")}`);
  }

  token(sub, groups) {
    return execFileSync(this.bin, ["token", "--config", this.config, "--sub", sub, "--groups", groups.join(","), "--ttl", "1h"],
      { encoding: "utf8" }).trim();
  }

  /** An MCP client (official SDK) authenticated as `token`. */
  async agent(token) {
    const client = new Client({ name: "browser-test-agent", version: "1.0.0" });
    const transport = new StreamableHTTPClientTransport(new URL(`${this.base}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    });
    await client.connect(transport);
    return client;
  }

  async api(path, token) {
    const r = await fetch(`${this.base}${path}`, { headers: { Authorization: `Bearer ${token}` } });
    return { status: r.status, body: await r.json().catch(() => null) };
  }

  /** Stop the server, keeping its files. */
  async halt() {
    if (this.proc && this.proc.exitCode === null) {
      this.proc.kill("SIGTERM");
      await new Promise((r) => { this.proc.once("exit", r); setTimeout(r, 5000); });
    }
  }

  async stop() {
    await this.halt();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Headless Debian Chromium (flags of TEST-INFRA.md "Browser"; playwright
 * gives each browser its own temp profile, so no --user-data-dir). */
export async function browser() {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
}

/**
 * A page that records every sign of script running that should not: dialogs,
 * console messages, page errors, CSP violations, and any `__xss*` global.
 */
export async function watchedPage(context) {
  const page = await context.newPage();
  const fired = [];
  page.on("dialog", (d) => { fired.push(`dialog: ${d.message()}`); d.dismiss().catch(() => {}); });
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "log") fired.push(`console.${m.type()}: ${m.text()}`); });
  page.on("pageerror", (e) => fired.push(`pageerror: ${e.message}`));
  page.fired = fired;
  page.xssGlobals = () => page.evaluate(() => Object.keys(window).filter((k) => k.startsWith("__xss")));
  return page;
}

/** Log in through the token form. */
export async function login(page, base, token, next = "/ui/approvals") {
  await page.goto(`${base}/ui/login?next=${encodeURIComponent(next)}`);
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL((u) => !u.pathname.startsWith("/ui/login"));
}

export async function newContext(b, width = 1280, height = 900) {
  return b.newContext({ viewport: { width, height } });
}
