// Preloaded into the conformance suite's Node process (`node --import`): adds
// `Authorization: Bearer $TOLLGATE_CONFORMANCE_TOKEN` to every request the
// suite sends to $TOLLGATE_CONFORMANCE_ORIGIN. The suite (0.1.16) has no
// option for headers or tokens; this keeps the server's auth exactly as in
// production instead of opening an unauthenticated route. Test-only.
import { createRequire } from "node:module";

const token = process.env.TOLLGATE_CONFORMANCE_TOKEN;
const origin = process.env.TOLLGATE_CONFORMANCE_ORIGIN;
if (!token || !origin) throw new Error("conformance-auth: TOLLGATE_CONFORMANCE_TOKEN and _ORIGIN must be set");

const sameOrigin = (url) => {
  try { return new URL(String(url instanceof Request ? url.url : url)).origin === origin; } catch { return false; }
};

const origFetch = globalThis.fetch;
globalThis.fetch = (input, init = {}) => {
  if (!sameOrigin(input)) return origFetch(input, init);
  const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
  if (!headers.has("authorization")) headers.set("authorization", `Bearer ${token}`);
  return origFetch(input, { ...init, headers });
};

// The DNS-rebinding scenario uses undici's request() directly (CommonJS:
// patching module.exports before the suite's ESM import binds it works).
const require = createRequire(process.env.TOLLGATE_CONFORMANCE_PKG + "/package.json");
const undici = require("undici");
const origRequest = undici.request;
undici.request = (url, opts = {}) => {
  if (!sameOrigin(url)) return origRequest(url, opts);
  const headers = { ...(opts.headers ?? {}) };
  if (!Object.keys(headers).some((k) => k.toLowerCase() === "authorization")) headers.authorization = `Bearer ${token}`;
  return origRequest(url, { ...opts, headers });
};
