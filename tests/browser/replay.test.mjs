// SSH recordings replayed in the page: a real sshd (the Rust harness's),
// an agent's ssh_exec through the MCP SDK, the auditor's player. Recorded
// output is attacker-controlled: the payload must show as text, never run.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Tollgate, REPO, browser, watchedPage, login, newContext, sshd } from "./harness.mjs";

let ssh, tg, b, tokens;
const PAYLOAD = `<script>window.__xss_ssh=1</script><img src=x onerror="window.__xss_ssh2=1;alert(2)">`;

before(async () => {
  ssh = await sshd();
  tg = await new Tollgate({ ssh }).start();
  tokens = { agent: tg.token("agent-ssh", ["agents"]), audrey: tg.token("audrey", ["auditors"]) };
  b = await browser();
});

after(async () => {
  await b?.close();
  await tg?.stop();
  await ssh?.stop();
});

test("an SSH recording replays in the page, its hostile output inert", async () => {
  const c = await tg.agent(tokens.agent);
  const r = await c.callTool({ name: "ssh_exec", arguments: { connection: "web", argv: ["printf", `first line\\n\\033[31mred\\033[0m ${PAYLOAD}\\nlast line\\n`] } });
  await c.close();
  assert.ok(!r.isError, JSON.stringify(r.structuredContent));
  const events = await tg.api("/api/audit?tool=ssh_exec&limit=1", tokens.audrey);
  const ev = events.body.events[0];
  assert.ok(ev.recording, "the event has a recording");
  const ctx = await newContext(b);
  const page = await watchedPage(ctx);
  await login(page, tg.base, tokens.audrey, `/ui/audit/${ev.id}`);
  await page.locator("#chain-status[data-status=verified]").waitFor();
  await page.locator("#player[data-state=ready]").waitFor();
  await page.getByRole("button", { name: "Play" }).click();
  await page.locator("#player[data-state=ended]").waitFor({ timeout: 20000 });
  const screen = await page.locator("#player .term").textContent();
  assert.ok(screen.includes("first line"), screen);
  assert.ok(screen.includes(`red ${PAYLOAD}`), `escape codes stripped, payload as text: ${screen}`);
  assert.ok(screen.includes("last line"), screen);
  assert.equal(await page.locator("#player .term *").count(), 0, "the player adds no element");
  if (process.env.SCREENSHOTS === "1") {
    await page.screenshot({ path: join(REPO, "docs", "console", "audit-replay-desktop.png"), fullPage: true });
  }
  // Seeking back to the start empties the screen.
  await page.locator("#player input[type=range]").fill("0");
  assert.ok(!(await page.locator("#player .term").textContent()).includes("last line"));
  assert.deepEqual(await page.xssGlobals(), []);
  assert.deepEqual(page.fired, []);
  // The player's fetch is an audit read too.
  const reads = await tg.api("/api/audit?tool=audit_read&principal=audrey&limit=20", tokens.audrey);
  assert.ok(reads.body.events.some((e) => e.arguments.path === "/ui/audit/{id}/recording" && e.arguments.id === ev.id));
  await ctx.close();
});
