// The web console in headless Chromium against a real `tollgate serve`:
// approvals created by agents through the official MCP TypeScript SDK,
// reviewed in the page; audit search, detail, export; stored XSS; access.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Tollgate, XSS, browser, watchedPage, login, newContext } from "./harness.mjs";

let tg, b, tokens;

before(async () => {
  tg = await new Tollgate({ waitSeconds: 40 }).start();
  tokens = {
    agent: tg.token("agent-a", ["agents"]),
    hostile: tg.token(XSS.sub, ["agents"]),
    rita: tg.token("rita", ["reviewers"]),
    rob: tg.token("rob", ["reviewers"]),
    audrey: tg.token("audrey", ["auditors"]),
  };
  b = await browser();
});

after(async () => {
  await b?.close();
  await tg?.stop();
});

const del = (id) => ({ connection: "shop", sql: `DELETE FROM orders WHERE id = ${id}` });

/**
 * Start an agent's call that waits for approval. Returns the call's promise
 * (the tool result) and, once it is there, the id of the approval it created.
 */
async function waitingCall(token, args) {
  const seen = new Set(await pendingIds(tokens.audrey));
  const client = await tg.agent(token);
  const result = client.callTool({ name: "sql_query", arguments: args }, undefined, { timeout: 120000 })
    .finally(() => client.close().catch(() => {}));
  result.catch(() => {});
  const id = () => waitFor(async () => (await pendingIds(tokens.audrey)).find((x) => !seen.has(x)));
  return { result, id };
}

async function pendingIds(token) {
  const r = await tg.api("/api/approvals?state=pending", token);
  assert.equal(r.status, 200);
  return r.body.approvals.map((a) => a.id);
}

async function waitFor(fn, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("login by token form: a bad token is refused, a good one lands in an HttpOnly cookie", async () => {
  const ctx = await newContext(b);
  const page = await watchedPage(ctx);
  await page.goto(`${tg.base}/ui/approvals`);
  assert.match(new URL(page.url()).pathname, /^\/ui\/login/);
  await page.getByLabel("Token").fill("not-a-token");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByText("That token is not valid here").waitFor();
  await login(page, tg.base, tokens.rita);
  await page.getByText("Signed in as").waitFor();
  assert.equal(await page.locator(".who b").textContent(), "rita");
  const [cookie] = (await ctx.cookies()).filter((c) => c.name === "tollgate_session");
  assert.ok(cookie.httpOnly, "HttpOnly");
  assert.equal(cookie.sameSite, "Lax");
  assert.equal(await page.evaluate(() => document.cookie), "", "no script can read the session");
  const html = await page.content();
  assert.ok(!html.includes(tokens.rita), "the token never appears in a page");
  const csp = (await page.request.get(`${tg.base}/ui/approvals`)).headers()["content-security-policy"];
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.ok(!/unsafe-inline/.test(csp), csp);
  await ctx.close();
});

test("the pending list updates live, and approving with a reason completes the agent's waiting call", async () => {
  const ctx = await newContext(b);
  const page = await watchedPage(ctx);
  await login(page, tg.base, tokens.rita);
  await page.locator("#live-status").getByText("Live").waitFor();
  const before = await page.locator("#approvals tbody tr.row").count();
  const { result: call } = await waitingCall(tokens.agent, del(1001));
  // No reload: the row arrives through the event stream.
  const row = page.locator("#approvals tbody tr.row", { hasText: "agent-a" }).first();
  await row.waitFor({ timeout: 15000 });
  assert.equal(await page.locator("#approvals tbody tr.row").count(), before + 1);
  await row.getByRole("link").click();
  await page.getByRole("heading", { name: "Your decision" }).waitFor();
  assert.ok(await page.getByText("0 of 1").isVisible(), "approvals so far of how many");
  assert.ok(await page.getByText("agents-delete-orders-with-approval").first().isVisible(), "which policy asked");
  assert.match(await page.locator("time[data-countdown]").first().textContent(), /^in \d+m/);
  await page.getByLabel("Reason").fill("customer asked");
  await page.getByRole("button", { name: "Approve" }).click();
  await page.getByText("Recorded. The approval is now approved.").waitFor();
  const result = await call;
  assert.ok(!result.isError, JSON.stringify(result));
  assert.equal(result.structuredContent.row_count, 1, JSON.stringify(result.structuredContent));
  await page.reload();
  await page.getByText("customer asked").first().waitFor();
  assert.deepEqual(page.fired, []);
  await ctx.close();
});

test("the requester cannot approve their own call, and the page says why", async () => {
  const { result: call, id: newId } = await waitingCall(tokens.rita, del(1002));
  const id = await newId();
  const ctx = await newContext(b);
  const page = await watchedPage(ctx);
  await login(page, tg.base, tokens.rita, `/ui/approvals/${id}`);
  await page.getByText("you requested this call; someone else must decide it").waitFor();
  assert.equal(await page.getByRole("button", { name: "Approve" }).count(), 0);
  // Not in the "waiting for me" list either.
  await page.goto(`${tg.base}/ui/approvals`);
  assert.equal(await page.locator(`#approvals a[href="/ui/approvals/${id}"]`).count(), 0);
  // A forged post (with a valid CSRF token of her own session) is refused too.
  await page.goto(`${tg.base}/ui/approvals/${id}`);
  const csrf = await page.locator("form[action='/ui/logout'] input[name=csrf]").getAttribute("value");
  const r = await page.request.post(`${tg.base}/ui/approvals/${id}/decide`, {
    form: { csrf, verdict: "approve", reason: "me" }, headers: { Origin: tg.base },
  });
  assert.equal(r.status(), 403);
  assert.match(await r.text(), /you requested this call/);
  // Rob decides it (deny, so nothing runs).
  const rob = await watchedPage(ctx);
  await ctx.clearCookies();
  await login(rob, tg.base, tokens.rob, `/ui/approvals/${id}`);
  await rob.getByLabel("Reason").fill("not today");
  await rob.getByRole("button", { name: "Deny" }).click();
  await rob.getByText("Recorded. The approval is now denied.").waitFor();
  const result = await call;
  assert.ok(result.isError || result.structuredContent?.status !== "pending_approval");
  await ctx.close();
});

test("a form post without the CSRF token is refused", async () => {
  const ctx = await newContext(b);
  const page = await watchedPage(ctx);
  await login(page, tg.base, tokens.rob);
  const r = await page.request.post(`${tg.base}/ui/logout`, { form: { csrf: "00" }, headers: { Origin: tg.base } });
  assert.equal(r.status(), 403);
  const cross = await page.request.post(`${tg.base}/ui/logout`, { form: {}, headers: { Origin: "https://evil.example" } });
  assert.equal(cross.status(), 403);
  // The live stream needs a session too (it carries no content, but still).
  const anon = await fetch(`${tg.base}/ui/approvals/events`);
  assert.equal(anon.status, 401);
  await ctx.close();
});

test("keyboard only: tab to the reason, type it, tab to Approve, press Enter", async () => {
  const { result: call, id: newId } = await waitingCall(tokens.agent, del(1003));
  const id = await newId();
  const ctx = await newContext(b);
  const page = await watchedPage(ctx);
  await login(page, tg.base, tokens.rob, `/ui/approvals/${id}`);
  let focused = "";
  for (let i = 0; i < 60 && focused !== "reason"; i++) {
    await page.keyboard.press("Tab");
    focused = await page.evaluate(() => document.activeElement?.getAttribute("name") || "");
  }
  assert.equal(focused, "reason", "the reason field is reachable by Tab");
  await page.keyboard.type("checked by keyboard");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Approve");
  await page.keyboard.press("Enter");
  await page.getByText("Recorded. The approval is now approved.").waitFor();
  const result = await call;
  assert.equal(result.structuredContent.row_count, 1, JSON.stringify(result.structuredContent));
  await ctx.close();
});

test("stored XSS in sub, connection, table, SQL text and reasons renders inert", async () => {
  const sql = `DELETE FROM "${XSS.table.replaceAll('"', '""')}" WHERE v = '${XSS.sql.replaceAll("'", "''")}'`;
  const { result: call, id: newId } = await waitingCall(tokens.hostile, { connection: XSS.connection, sql });
  const id = await newId();
  const ctx = await newContext(b);
  const page = await watchedPage(ctx);
  await login(page, tg.base, tokens.rob);
  await page.locator(`#approvals a[href="/ui/approvals/${id}"]`).waitFor();
  assert.ok((await page.locator("#approvals").textContent()).includes(XSS.sub), "the sub is shown as text");
  await page.goto(`${tg.base}/ui/approvals/${id}`);
  const text = await page.locator("main").textContent();
  for (const p of [XSS.sub, XSS.connection, XSS.table]) assert.ok(text.includes(p), `${p} shown as text`);
  await page.getByLabel("Reason").fill(XSS.reason);
  await page.getByRole("button", { name: "Deny" }).click();
  await page.getByText("Recorded. The approval is now denied.").waitFor();
  await call.catch(() => {});
  await page.reload();
  assert.ok((await page.locator("main").textContent()).includes(XSS.reason));
  // The auditor's pages show the same values.
  await ctx.clearCookies();
  await login(page, tg.base, tokens.audrey, "/ui/audit");
  await page.goto(`${tg.base}/ui/audit?principal=${encodeURIComponent(XSS.sub)}`);
  const first = page.locator("#events tbody tr.row a").first();
  await first.waitFor();
  assert.ok((await page.locator("#events").textContent()).includes(XSS.connection));
  await first.click();
  await page.locator("#chain-status").waitFor();
  await page.goto(`${tg.base}/ui/approvals?view=all`);
  await page.waitForTimeout(300);
  assert.deepEqual(await page.xssGlobals(), [], "no payload set a global");
  assert.deepEqual(page.fired, [], "no dialog, console message or page error");
  await ctx.close();
});

test("audit: 403 without audit:read, and the refusal is itself recorded", async () => {
  const ctx = await newContext(b);
  const page = await watchedPage(ctx);
  await login(page, tg.base, tokens.rob);
  const r = await page.goto(`${tg.base}/ui/audit`);
  assert.equal(r.status(), 403);
  await page.getByText("No policy permits you").waitFor();
  for (const p of ["/ui/audit/x", "/ui/audit/export.jsonl", "/ui/audit/x/recording"]) {
    assert.equal((await page.request.get(`${tg.base}${p}`)).status(), 403, p);
  }
  const reads = await tg.api("/api/audit?tool=audit_read&principal=rob&limit=10", tokens.audrey);
  assert.ok(reads.body.events.some((e) => e.decision === "deny" && e.arguments.path === "/ui/audit"), JSON.stringify(reads.body));
  await ctx.close();
});

test("audit: search by text and filters, keyset pages, detail with chain status, JSONL export", async () => {
  // Enough events for two pages: agents' reads.
  const client = await tg.agent(tokens.agent);
  for (let i = 0; i < 55; i++) {
    await client.callTool({ name: "sql_query", arguments: { connection: "shop", sql: `SELECT id FROM orders WHERE id = ${2000 + i}` } });
  }
  await client.close();
  const ctx = await newContext(b);
  const page = await watchedPage(ctx);
  await login(page, tg.base, tokens.audrey, "/ui/audit");
  await page.getByLabel("Text (tool, arguments)").fill("WHERE id = 20");
  await page.getByLabel("Principal").fill("agent-a");
  await page.getByRole("button", { name: "Search" }).click();
  await page.locator("#events tbody tr.row").first().waitFor();
  assert.equal(await page.locator("#events tbody tr.row").count(), 50);
  const firstPage = await page.locator("#events tbody tr.row td:first-child").allTextContents();
  await page.getByRole("link", { name: "Older »" }).click();
  const second = await page.locator("#events tbody tr.row td:first-child").allTextContents();
  assert.equal(second.length, 5, "55 matches: 50 + 5");
  assert.ok(Number(second[0]) < Number(firstPage.at(-1)), "the next page continues below the last seq");
  // Detail.
  await page.locator("#events tbody tr.row a").first().click();
  await page.locator("#chain-status[data-status=verified]").waitFor();
  const facts = await page.locator("table.facts").textContent();
  for (const f of ["Seq", "Principal", "agent-a", "sql_query", "Decision", "Masked values", "Hash"]) assert.ok(facts.includes(f), f);
  await page.getByText("agents-read").first().waitFor();
  // Export of the search: every match, oldest first.
  await page.goto(`${tg.base}/ui/audit?q=${encodeURIComponent("WHERE id = 20")}&principal=agent-a`);
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Export JSONL" }).click()]);
  const path = await download.path();
  const lines = (await import("node:fs")).readFileSync(path, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, 55);
  assert.ok(lines.every((e) => e.principal.sub === "agent-a" && e.arguments.sql.includes("WHERE id = 20")));
  assert.ok(lines[0].seq < lines[54].seq);
  // Every console read is in the chain.
  const reads = await tg.api("/api/audit?tool=audit_read&principal=audrey&limit=100", tokens.audrey);
  const paths = new Set(reads.body.events.map((e) => e.arguments.path));
  for (const p of ["/ui/audit", "/ui/audit/{id}", "/ui/audit/export.jsonl"]) assert.ok(paths.has(p), `${p} recorded`);
  assert.deepEqual(page.fired, []);
  await ctx.close();
});
