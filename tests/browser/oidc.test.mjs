// Console login through a real OpenID Connect provider (node-oidc-provider,
// tests/oidc/provider.mjs) in headless Chromium: the full authorization code
// flow with PKCE, a forged state, a replayed callback and a replayed code,
// an expired session, logout ending the session server-side, and the client
// secret, codes and tokens in no page, log line or audit record.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Tollgate, REPO, browser, watchedPage, newContext } from "./harness.mjs";

const SECRET = "ui-client-secret-" + Math.random().toString(36).slice(2);

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => res(port)); });
    s.on("error", rej);
  });
}

/** node-oidc-provider with one client (this secret) and two users. */
class Provider {
  constructor(redirectUris) {
    this.redirectUris = redirectUris;
    this.log = [];
  }

  async start() {
    const script = join(REPO, "tests", "oidc", "provider.mjs");
    const cfg = {
      client_id: "tollgate-ui",
      client_secret: SECRET,
      redirect_uris: this.redirectUris,
      users: { alice: ["reviewers"], audrey: ["auditors"] },
    };
    this.proc = spawn(process.execPath, [script, JSON.stringify(cfg)], { stdio: ["ignore", "pipe", "pipe"] });
    this.proc.stderr.on("data", (d) => this.log.push(d.toString()));
    const first = await new Promise((res, rej) => {
      const rl = createInterface({ input: this.proc.stdout });
      rl.once("line", res);
      this.proc.once("exit", (c) => rej(new Error(
        `the OpenID Connect provider exited (${c}): run \`npm ci\` in tests/oidc\n${this.log.join("")}`)));
    });
    this.issuer = JSON.parse(first).issuer;
    return this;
  }

  /** Every ID and access token the provider issued. */
  issued() {
    return this.log.join("").split("\n").filter((l) => l.startsWith("issued: "))
      .flatMap((l) => l.slice(8).split(" ")).filter((t) => t.length > 20);
  }

  tokenErrors() {
    return this.log.join("").split("\n").filter((l) => l.startsWith("token-endpoint: ") && !l.endsWith(": ok"));
  }

  stop() { this.proc?.kill("SIGTERM"); }
}

const uiSection = (issuer, ttl) => `
[ui]
oidc_issuer = "${issuer}"
client_id = "tollgate-ui"
client_secret = "\${env:TOLLGATE_UI_SECRET}"
session_ttl = "${ttl}"
`;

let idp, tg, short, b;
/** Everything the browser was shown, to search for secrets at the end. */
const shown = [];
/** Authorization codes seen on the way back from the provider. */
const codes = [];

before(async () => {
  const [port, shortPort] = [await freePort(), await freePort()];
  const cb = (p) => `http://127.0.0.1:${p}/ui/login/callback`;
  idp = await new Provider([cb(port), cb(shortPort)]).start();
  const env = { TOLLGATE_UI_SECRET: SECRET };
  tg = await new Tollgate({ port, env, extraConfig: uiSection(idp.issuer, "1h") }).start();
  short = await new Tollgate({ port: shortPort, env, extraConfig: uiSection(idp.issuer, "3s") }).start();
  b = await browser();
});

after(async () => {
  await b?.close();
  await tg?.stop();
  await short?.stop();
  idp?.stop();
});

/** The page as rendered (its URL is the browser's: a callback URL carries
 * the spent code, as every code flow's does). */
async function keep(page) {
  shown.push(await page.content());
}

/** Watch the callbacks a page is sent to; remember their codes. */
function watchCallbacks(page) {
  const seen = [];
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.pathname === "/ui/login/callback") {
      seen.push(u.toString());
      if (u.searchParams.get("code")) codes.push(u.searchParams.get("code"));
    }
  });
  return seen;
}

/** The whole login at the provider: from a console page to back in the console. */
async function oidcLogin(page, base, user, next = "/ui/approvals") {
  await page.goto(`${base}${next}`);
  assert.match(new URL(page.url()).pathname, /^\/ui\/login/);
  await keep(page);
  await page.getByRole("link", { name: /Log in with/ }).click();
  // node-oidc-provider's development login form, then its consent form.
  await page.waitForURL((u) => u.origin === new URL(idp.issuer).origin);
  await page.locator('input[name="login"]').fill(user);
  await page.locator('input[name="password"]').fill("any");
  await page.locator('button[type="submit"]').click();
  await page.waitForLoadState();
  if (new URL(page.url()).origin === new URL(idp.issuer).origin) {
    await page.locator('button[type="submit"]').click(); // consent: Continue
  }
  await page.waitForURL((u) => u.origin === base && !u.pathname.startsWith("/ui/login"));
  await keep(page);
}

test("full login through the provider: PKCE code flow, groups from the ID token, a session cookie of a random id", async () => {
  const ctx = await newContext(b);
  const page = await watchedPage(ctx);
  const callbacks = watchCallbacks(page);
  const authorize = [];
  page.on("request", (r) => { if (r.url().startsWith(`${idp.issuer}/auth`)) authorize.push(new URL(r.url())); });
  await oidcLogin(page, tg.base, "alice");
  assert.equal(new URL(page.url()).pathname, "/ui/approvals");
  assert.match(await page.locator(".who").textContent(), /alice/);
  assert.match(await page.locator(".who").textContent(), /reviewers/);
  // The authorization request: code flow, S256 PKCE, state and nonce.
  const q = authorize[0].searchParams;
  assert.equal(q.get("response_type"), "code");
  assert.equal(q.get("code_challenge_method"), "S256");
  assert.match(q.get("code_challenge"), /^[A-Za-z0-9_-]{43}$/);
  assert.ok(q.get("state")?.length >= 43 && q.get("nonce")?.length >= 43);
  assert.equal(callbacks.length, 1);
  const cookies = await ctx.cookies();
  const session = cookies.find((c) => c.name === "tollgate_session");
  assert.ok(session.httpOnly, "HttpOnly");
  assert.equal(session.sameSite, "Lax");
  assert.equal(session.path, "/ui");
  assert.ok(!session.value.includes("."), "the cookie holds a session id, not a token");
  assert.ok(!cookies.some((c) => c.name === "tollgate_login"), "the login binding is spent");
  assert.equal(await page.evaluate(() => document.cookie), "");
  assert.deepEqual(await page.xssGlobals(), []);
  await ctx.close();
});

test("a forged state is refused with a clear page, and counted as a refused login", async () => {
  const ctx = await newContext(b);
  const page = await watchedPage(ctx);
  // A login in progress (the binding cookie is set), then a callback with another state.
  const start = await ctx.request.get(`${tg.base}/ui/login/start?next=/ui`, { maxRedirects: 0 });
  assert.equal(start.status(), 303);
  const resp = await page.goto(`${tg.base}/ui/login/callback?state=forged-state&code=forged-code`);
  assert.equal(resp.status(), 400);
  await page.getByText("unknown or was already used").waitFor();
  await keep(page);
  // And the right state from another browser (no binding cookie).
  const real = new URL(start.headers()["location"]).searchParams.get("state");
  const other = await newContext(b);
  const p2 = await other.newPage();
  const r2 = await p2.goto(`${tg.base}/ui/login/callback?state=${encodeURIComponent(real)}&code=x`);
  assert.equal(r2.status(), 400);
  await p2.getByText("started in another browser").waitFor();
  await keep(p2);
  const reasons = await refusalReasons(tg, ["oidc_state", "oidc_browser"]);
  assert.ok(reasons.includes("oidc_state"), JSON.stringify(reasons));
  assert.ok(reasons.includes("oidc_browser"), JSON.stringify(reasons));
  await other.close();
  await ctx.close();
});

test("a replayed callback and a replayed code are refused", async () => {
  const ctx = await newContext(b);
  const page = await watchedPage(ctx);
  const callbacks = watchCallbacks(page);
  await oidcLogin(page, tg.base, "alice");
  const used = callbacks[0];
  const usedCode = new URL(used).searchParams.get("code");
  // The same callback again, in the same browser: its state is spent.
  const again = await page.goto(used);
  assert.equal(again.status(), 400);
  await page.getByText("unknown or was already used").waitFor();
  await keep(page);
  // The old code under a fresh, valid state of this browser: the provider
  // refuses the spent code, and so does the console.
  const start = await ctx.request.get(`${tg.base}/ui/login/start?next=/ui`, { maxRedirects: 0 });
  const state = new URL(start.headers()["location"]).searchParams.get("state");
  const before = idp.tokenErrors().length;
  const replay = await page.goto(`${tg.base}/ui/login/callback?state=${encodeURIComponent(state)}&code=${encodeURIComponent(usedCode)}`);
  assert.equal(replay.status(), 400);
  await page.getByText("did not accept the login code").waitFor();
  await keep(page);
  assert.ok(idp.tokenErrors().length > before, "the provider saw the replayed code");
  const reasons = await refusalReasons(tg, ["oidc_exchange"]);
  assert.ok(reasons.includes("oidc_exchange"), JSON.stringify(reasons));
  await ctx.close();
});

test("an expired session sends the browser back to the login page", async () => {
  const ctx = await newContext(b);
  const page = await watchedPage(ctx);
  await oidcLogin(page, short.base, "alice");
  assert.equal(new URL(page.url()).pathname, "/ui/approvals");
  await page.waitForTimeout(3500);
  await page.goto(`${short.base}/ui/approvals`);
  assert.equal(new URL(page.url()).pathname, "/ui/login");
  assert.equal(new URL(page.url()).searchParams.get("next"), "/ui/approvals");
  await keep(page);
  await ctx.close();
});

test("logout ends the session server-side: the old cookie no longer works", async () => {
  const ctx = await newContext(b);
  const page = await watchedPage(ctx);
  await oidcLogin(page, tg.base, "audrey");
  const old = (await ctx.cookies()).find((c) => c.name === "tollgate_session");
  assert.ok(old, "logged in");
  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForURL((u) => u.pathname === "/ui/login");
  await keep(page);
  assert.ok(!(await ctx.cookies()).some((c) => c.name === "tollgate_session"), "the cookie is dropped");
  // The cookie put back by hand (as a thief holding a copy would) is refused.
  const thief = await newContext(b);
  await thief.addCookies([old]);
  const p2 = await thief.newPage();
  await p2.goto(`${tg.base}/ui/approvals`);
  assert.equal(new URL(p2.url()).pathname, "/ui/login");
  await thief.close();
  await ctx.close();
});

test("the client secret, codes and tokens appear in no page, log line or audit record", async () => {
  const tokens = idp.issued();
  assert.ok(tokens.length >= 2, "the provider issued tokens");
  assert.ok(codes.length >= 3, "codes were seen");
  const audit = [tg, short].map((t) => execFileSync(t.bin, ["audit", "export", "--config", t.config, "--format", "jsonl"],
    { encoding: "utf8" })).join("\n");
  const logs = tg.log.join("") + short.log.join("");
  const pages = shown.join("\n");
  assert.ok(audit.length > 0 && logs.length > 0 && pages.length > 0);
  for (const [what, text] of [["a page", pages], ["a log line", logs], ["the audit log", audit]]) {
    for (const secret of [SECRET, ...tokens, ...codes]) {
      assert.ok(!text.includes(secret), `${what} holds a secret or token (${secret.slice(0, 12)}...)`);
    }
  }
});

/** The reasons of the `auth_refused` audit events (written every 10 s),
 * once all of `wanted` are there (or after 25 s). */
async function refusalReasons(t, wanted) {
  const auditor = t.token("audit-reader", ["auditors"]);
  const end = Date.now() + 25000;
  let reasons = [];
  while (Date.now() < end) {
    const r = await t.api("/api/audit?tool=auth_refused&limit=100", auditor);
    reasons = (r.body?.events ?? []).flatMap((e) => (e.arguments?.refusals ?? []).map((x) => x.reason));
    if (wanted.every((w) => reasons.includes(w))) return reasons;
    await new Promise((res) => setTimeout(res, 500));
  }
  return reasons;
}
