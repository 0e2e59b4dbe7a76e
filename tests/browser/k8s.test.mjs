// Kubernetes content in the console: an agent's k8s_apply on a real
// kube-apiserver (the Rust harness's) whose manifest carries stored-XSS
// payloads in an annotation and a ConfigMap value. The reviewer's approval
// page shows the family's review (objects and the server's diff), the
// auditor's event page shows the recorded manifest: the payloads are text,
// no script runs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tollgate, browser, watchedPage, login, newContext, kubeApi } from "./harness.mjs";

const ANNOTATION = `<script>window.__xss_k8s_annotation=1</script><img src=x onerror="window.__xss_k8s_img=1;alert(1)">`;
const VALUE = `'"><svg onload=window.__xss_k8s_value=1>`;

let kube, tg, b, tokens, keyDir;

before(async () => {
  kube = await kubeApi();
  keyDir = mkdtempSync(join(tmpdir(), "tollgate-k8s-token-"));
  const tokenFile = join(keyDir, "k8s.token");
  writeFileSync(tokenFile, kube.admin_token, { mode: 0o600 });
  tg = await new Tollgate({
    extraConfig: `
[[connection]]
name = "k8s"
kind = "kubernetes"
server = "${kube.url}"
ca_file = "${kube.ca_file}"
token = "\${file:${tokenFile}}"
`,
    extraPolicies: `
@id("k8s-agents-connect")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource == Tollgate::Connection::"k8s");
@id("k8s-agents-apply-with-approval")
@approval("reviewers")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"k8s:apply", resource in Tollgate::Connection::"k8s");
`,
  }).start();
  tokens = {
    agent: tg.token("agent-k8s", ["agents"]),
    rob: tg.token("rob", ["reviewers"]),
    audrey: tg.token("audrey", ["auditors"]),
  };
  b = await browser();
});

after(async () => {
  await b?.close();
  await tg?.stop();
  await kube?.stop();
  if (keyDir) rmSync(keyDir, { recursive: true, force: true });
});

async function pendingIds() {
  const r = await tg.api("/api/approvals?state=pending", tokens.audrey);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.approvals.map((a) => a.id);
}

test("a k8s_apply's hostile annotation and value render inert on the approval and audit pages", async () => {
  const manifest = [
    "apiVersion: v1",
    "kind: ConfigMap",
    "metadata:",
    "  name: console-xss",
    "  namespace: default",
    "  annotations:",
    `    note: ${JSON.stringify(ANNOTATION)}`,
    "data:",
    `  greeting: ${JSON.stringify(VALUE)}`,
    "",
  ].join("\n");
  const seen = new Set(await pendingIds());
  const client = await tg.agent(tokens.agent);
  const call = client.callTool({ name: "k8s_apply", arguments: { connection: "k8s", manifest } }, undefined, { timeout: 120000 })
    .finally(() => client.close().catch(() => {}));
  call.catch(() => {});
  let id;
  for (const end = Date.now() + 20000; !id && Date.now() < end;) {
    id = (await pendingIds()).find((x) => !seen.has(x));
    if (!id) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(id, "the apply waits for a reviewer");

  const ctx = await newContext(b);
  const page = await watchedPage(ctx);
  await login(page, tg.base, tokens.rob, `/ui/approvals/${id}`);
  const review = await page.locator("main").textContent();
  assert.ok(review.includes("console-xss"), "the review names the object");
  // The review shows the object as JSON: the payloads as JSON strings, as text.
  for (const payload of [ANNOTATION, VALUE]) {
    assert.ok(review.includes(JSON.stringify(payload)), `${payload} shown as text in the review`);
  }
  await page.getByLabel("Reason").fill("reviewed the annotation");
  await page.getByRole("button", { name: "Approve" }).click();
  await page.getByText("Recorded. The approval is now approved.").waitFor();
  const result = await call;
  assert.ok(!result.isError, JSON.stringify(result.structuredContent));
  assert.equal(result.structuredContent.objects[0].name, "console-xss", JSON.stringify(result.structuredContent));

  // The auditor's search and event pages show the recorded call.
  await ctx.clearCookies();
  await login(page, tg.base, tokens.audrey, "/ui/audit?tool=k8s_apply");
  const first = page.locator("#events tbody tr.row a").first();
  await first.waitFor();
  await first.click();
  await page.locator("#chain-status").waitFor();
  const event = await page.locator("main").textContent();
  assert.ok(event.includes("console-xss"), "the event shows the applied object");
  await page.goto(`${tg.base}/ui/approvals/${id}`);
  await page.waitForTimeout(300);
  assert.deepEqual(await page.xssGlobals(), [], "no payload set a global");
  assert.deepEqual(page.fired, [], "no dialog, console message or page error");
  await ctx.close();
});
