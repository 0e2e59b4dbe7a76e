// Every console page at 1280 px and at phone width (390 px): nothing runs
// off the side of the phone screen, and (SCREENSHOTS=1) the pictures of
// docs/console.md are rewritten from the real pages.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tollgate, REPO, browser, watchedPage, login } from "./harness.mjs";

let tg, b, tokens, approvalId, eventId;
const OUT = process.env.SCREENSHOTS === "1" ? join(REPO, "docs", "console") : mkdtempSync(join(tmpdir(), "tollgate-shots-"));

before(async () => {
  mkdirSync(OUT, { recursive: true });
  tg = await new Tollgate({ waitSeconds: 2 }).start();
  tokens = {
    agent: tg.token("agent-7", ["agents"]),
    rita: tg.token("rita", ["reviewers"]),
    audrey: tg.token("audrey", ["auditors"]),
  };
  const c = await tg.agent(tokens.agent);
  for (const id of [1010, 1011]) {
    await c.callTool({ name: "sql_query", arguments: { connection: "shop", sql: `DELETE FROM orders WHERE id = ${id} AND status = 'paid'` } });
  }
  for (let i = 0; i < 6; i++) {
    await c.callTool({ name: "sql_query", arguments: { connection: "shop", sql: `SELECT id, amount, status FROM orders WHERE amount > ${10 * i}` } });
  }
  await c.close();
  const list = await tg.api("/api/approvals?state=pending", tokens.rita);
  approvalId = list.body.approvals[0].id;
  const events = await tg.api("/api/audit?tool=sql_query&limit=1", tokens.audrey);
  eventId = events.body.events[0].id;
  b = await browser();
});

after(async () => {
  await b?.close();
  await tg?.stop();
});

const pages = () => [
  ["login", null, "/ui/login"],
  ["approvals", "rita", "/ui/approvals"],
  ["approval", "rita", `/ui/approvals/${approvalId}`],
  ["audit", "audrey", "/ui/audit"],
  ["audit-event", "audrey", `/ui/audit/${eventId}`],
];

for (const [width, suffix] of [[1280, "desktop"], [390, "phone"]]) {
  test(`every page at ${width} px`, async () => {
    const ctx = await b.newContext({ viewport: { width, height: width === 390 ? 844 : 900 }, deviceScaleFactor: 1 });
    const page = await watchedPage(ctx);
    for (const [name, who, path] of pages()) {
      await ctx.clearCookies();
      if (who) await login(page, tg.base, tokens[who], path);
      await page.goto(`${tg.base}${path}`);
      await page.waitForLoadState("networkidle").catch(() => {});
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 1, `${name} at ${width} px runs ${overflow} px off the side`);
      await page.screenshot({ path: join(OUT, `${name}-${suffix}.png`), fullPage: true });
    }
    assert.deepEqual(page.fired, []);
    await ctx.close();
  });
}
