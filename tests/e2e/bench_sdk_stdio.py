#!/usr/bin/env python3
"""A governed `sql_query` against the ungoverned reference PostgreSQL MCP server,
both over stdio, both driven by the same client: the official MCP Python SDK.

The goal of issue 14 (item 1) is a Tollgate p50 below the reference server's on
the same client and query. This script measures it; it does not assert it.

One throwaway PostgreSQL (harness.Postgres, the `shop` fixture), then:

- `tollgate serve --stdio` with a minimal config (stdio identity `bench` in
  `agents`, the e2e agents' read policy plus the shipped dangerous-functions
  forbid, its own data dir): `sql_query` on `shop`. Every call is analysed,
  decided by Cedar, masked and recorded in the durable hash-chained audit;
- `@modelcontextprotocol/server-postgres` (npm, pinned below; Node), `query`
  with the database URL as its argument: a READ ONLY transaction, no policy,
  no masking, no audit.

Both run `SELECT name FROM customers WHERE id = 1` (the same text: the peer
takes no parameters). After a warm-up on each, BENCH_CALLS sequential calls per
server are timed in BENCH_ROUNDS blocks that alternate the servers (A B, B A,
A B, ...) so that drift of the shared host falls on both; then the same for an
MCP `ping` (the stdio round trip that does no work: the floor). Every answer is
checked. Tollgate's audit must hold one allowed `sql_query` event per call it
served and `tollgate audit verify` must pass.

Exit status: 1 on any failed or wrong call, a missing audit event or a failed
verify; never on the speed figures (they are reported).

Env: TOLLGATE_BIN (the binary; measure a release build: `cargo build --release
-p tollgate`, then TOLLGATE_BIN=target/release/tollgate), BENCH_CALLS (default
2000 per server), BENCH_ROUNDS (default 5), BENCH_WARMUP (default 50),
BENCH_PINGS (default 1000 per server), POSTGRES_MCP (the peer's dist/index.js,
skips the npm install), NODE (default `node`), PGBIN (see harness.py).

Run: target/e2e-venv/bin/python tests/e2e/bench_sdk_stdio.py
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

sys.path.insert(0, str(Path(__file__).parent))
import harness  # noqa: E402

PEER = "@modelcontextprotocol/server-postgres"
PEER_VERSION = "0.6.2"
PEER_FILE = f"{PEER}/dist/index.js"
SQL = "SELECT name FROM customers WHERE id = 1"
# Identical client for both servers: the initialize handshake (the peer, on SDK
# 1.0.1, knows no other); the auto mode would add a failing `server/discover`
# probe to the peer's start only, and measure another protocol on Tollgate.
MODE = "legacy"
# The SDK warns that `ping` is gone from 2026-07-28; under `legacy` it is the floor we want.
warnings.filterwarnings("ignore", message="ping is removed")

POLICY = """
@id("agents-connect")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect",
        resource == Tollgate::Connection::"shop");

@id("agents-read")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select",
        resource in Tollgate::Connection::"shop");
"""

CONFIG = """[server]
data_dir = "data"

[policy]
dir = "policies"
mode = "enforce"

[stdio]
sub = "bench"
groups = ["agents"]

[[connection]]
name = "shop"
kind = "postgres"
url = "${env:SHOP_DATABASE_URL}"
statement_timeout = "5s"
max_rows = 1000
"""


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        sys.exit(f"bench: {name}={raw!r} is not an integer")
    if value < 1:
        sys.exit(f"bench: {name} must be at least 1")
    return value


def npm_peer() -> Path:
    """The peer's entry point: POSTGRES_MCP, or the pinned version installed with
    npm into target/bench-node (as tests/src/bench.rs `npm_peer` does)."""
    if os.environ.get("POSTGRES_MCP"):
        return Path(os.environ["POSTGRES_MCP"])
    prefix = harness.REPO / "target" / "bench-node"
    modules = prefix / "node_modules"
    path = modules / PEER_FILE
    try:
        installed = json.loads((modules / PEER / "package.json").read_text()).get("version") == PEER_VERSION
    except (OSError, ValueError):
        installed = False
    if not installed or not path.is_file():
        npm = shutil.which("npm")
        if npm is None:
            sys.exit(f"bench: npm not found (apt-get install -y nodejs npm) to install {PEER}; "
                     f"or set POSTGRES_MCP to its {PEER_FILE}")
        prefix.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--save-exact", "--prefix", str(prefix),
                               f"{PEER}@{PEER_VERSION}"], stdout=subprocess.DEVNULL)
        if done.returncode != 0 or not path.is_file():
            sys.exit(f"bench: could not install {PEER}@{PEER_VERSION} with npm into {prefix}; "
                     f"set POSTGRES_MCP to its {PEER_FILE}")
    return path


def write_tollgate_config(dir: Path) -> Path:
    (dir / "policies").mkdir(parents=True)
    (dir / "policies" / "bench.cedar").write_text(POLICY)
    # The shipped forbid for dangerous functions, as users deploy it.
    shutil.copy(harness.REPO / "policies" / "dangerous-functions.cedar", dir / "policies")
    config = dir / "tollgate.toml"
    config.write_text(CONFIG)
    return config


def percentile(sorted_ns: list[int], p: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    rank = max(1, min(len(sorted_ns), math.ceil(p / 100 * len(sorted_ns))))
    return sorted_ns[rank - 1] / 1e6


class Server:
    """One MCP server behind an SDK stdio client, its timings and its failures."""

    def __init__(self, label: str, params: StdioServerParameters, errlog, tool: str, args: dict, check) -> None:
        self.label = label
        self.params = params
        self.errlog = errlog
        self.tool = tool
        self.args = args
        self.check = check
        self.client: Client | None = None
        self.calls: list[int] = []
        self.pings: list[int] = []
        self.round_p50: list[float] = []
        self.served = 0
        self.failures: list[str] = []
        self.last_result = None
        # Client-side outputSchema validation of `last_result`, ns (Tollgate only).
        self.validate_ns: list[int] = []

    async def open(self, stack: AsyncExitStack) -> None:
        self.client = await stack.enter_async_context(Client(stdio_client(self.params, errlog=self.errlog), mode=MODE))

    async def call(self) -> int:
        """One call; its wall time in ns, or -1 when it failed (recorded)."""
        t = time.perf_counter_ns()
        try:
            result = await self.client.call_tool(self.tool, self.args)
        except Exception as e:  # a failed call is counted, never fatal mid-run
            self.failures.append(f"{type(e).__name__}: {e}")
            return -1
        elapsed = time.perf_counter_ns() - t
        self.served += 1
        problem = self.check(result)
        if problem:
            self.failures.append(problem)
            return -1
        self.last_result = result
        return elapsed

    async def block(self, n: int) -> None:
        times = [t for t in [await self.call() for _ in range(n)] if t >= 0]
        self.calls += times
        if times:
            self.round_p50.append(percentile(sorted(times), 50))

    async def ping_block(self, n: int) -> None:
        for _ in range(n):
            t = time.perf_counter_ns()
            try:
                await self.client.send_ping()
            except Exception as e:
                self.failures.append(f"ping: {type(e).__name__}: {e}")
                continue
            self.pings.append(time.perf_counter_ns() - t)


def check_tollgate(result) -> str | None:
    sc = result.structured_content
    if result.is_error or not isinstance(sc, dict) or sc.get("rows") != [["Ada Lovelace"]]:
        return f"tollgate sql_query: unexpected result {result.model_dump_json()[:500]}"
    return None


def check_peer(result) -> str | None:
    texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
    try:
        rows = json.loads(texts[0]) if texts else None
    except ValueError:
        rows = None
    if result.is_error or rows != [{"name": "Ada Lovelace"}]:
        return f"reference query: unexpected result {result.model_dump_json()[:500]}"
    return None


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def measure(tollgate: Server, peer: Server, calls: int, rounds: int, warmup: int, pings: int) -> None:
    async with AsyncExitStack() as stack:
        for s in (tollgate, peer):
            await s.open(stack)
            for _ in range(warmup):
                await s.call()
            await s.ping_block(min(warmup, 20))
        tollgate.pings.clear()
        peer.pings.clear()
        order = [tollgate, peer]
        for n in split(calls, rounds):
            for s in order:
                await s.block(n)
            order.reverse()
        order = [tollgate, peer]
        for n in split(pings, rounds):
            for s in order:
                await s.ping_block(n)
            order.reverse()
        # What the SDK client does for Tollgate's answers and not the peer's:
        # validate structuredContent against the tool's outputSchema (in the
        # figures above; shown so that it is not mistaken for server time).
        if tollgate.last_result is not None:
            for _ in range(200):
                t = time.perf_counter_ns()
                await tollgate.client.session.validate_tool_result(tollgate.tool, tollgate.last_result)
                tollgate.validate_ns.append(time.perf_counter_ns() - t)


def audit_counts(bin: str, config: Path, env: dict) -> tuple[int, int, str]:
    """(events, intents) of `sql_query` in the store, and the export's error or ''.

    Events: allowed, outcome ok, each naming its intent (the write-ahead entry
    that is durable before the call can take effect: gateway-core/src/audit/intent.rs)."""
    out = subprocess.run([bin, "audit", "export", "--config", str(config), "--format", "jsonl"],
                         capture_output=True, text=True, env=env, timeout=300)
    if out.returncode != 0:
        return 0, 0, out.stderr.strip()
    entries = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    queries = [e for e in entries if e.get("tool") == "sql_query" and e.get("decision") == "allow"]
    intents = {e.get("id") for e in queries if (e.get("outcome") or {}).get("status") == "intent"}
    events = [e for e in queries if (e.get("outcome") or {}).get("status") == "ok" and e.get("intent") in intents]
    return len(events), len(intents), ""


def line(label: str, ns: list[int]) -> str:
    if not ns:
        return f"  {label:<36} (no successful calls)"
    s = sorted(ns)
    return (f"  {label:<36} {percentile(s, 50):>8.3f} {percentile(s, 90):>8.3f} "
            f"{percentile(s, 99):>8.3f} ms  {len(s):>6}")


def show_logs(work: Path, password: str) -> None:
    """The last lines of both servers' stderr."""
    for name in ("tollgate.log", "peer.log"):
        try:
            # The peer has the database URL in its argv: never print its password.
            text = (work / name).read_text(errors="replace").replace(password, "***").strip()
        except OSError:
            continue
        if text:
            print(f"--- {name} (last lines)\n" + "\n".join(text.splitlines()[-20:]), file=sys.stderr)


def main() -> int:
    calls = env_int("BENCH_CALLS", 2000)
    rounds = min(env_int("BENCH_ROUNDS", 5), calls)
    warmup = env_int("BENCH_WARMUP", 50)
    pings = env_int("BENCH_PINGS", 1000)
    try:
        bin = harness.tollgate_bin()
        pg = harness.Postgres()
    except RuntimeError as e:
        sys.exit(f"bench: {e}")
    node = os.environ.get("NODE") or shutil.which("node")
    if not node:
        sys.exit("bench: node not found (apt-get install -y nodejs) or set NODE")
    peer_js = npm_peer()
    node_version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()

    work = Path(tempfile.mkdtemp(prefix="tollgate-sdk-bench-"))
    rc = 0
    try:
        pg.start()
        pg_version = pg.psql("SHOW server_version")
        config = write_tollgate_config(work / "tollgate")
        tg_env = {"SHOP_DATABASE_URL": pg.url, "RUST_LOG": "warn", "NO_COLOR": "1"}
        with open(work / "tollgate.log", "w") as tg_log, open(work / "peer.log", "w") as peer_log:
            tollgate = Server(
                "tollgate sql_query",
                StdioServerParameters(command=bin, args=["serve", "--stdio", "--config", str(config)],
                                      env=tg_env, cwd=str(config.parent)),
                tg_log, "sql_query", {"connection": "shop", "sql": SQL}, check_tollgate)
            peer = Server(
                f"reference query ({PEER_VERSION})",
                StdioServerParameters(command=node, args=[str(peer_js), pg.url], cwd=str(work)),
                peer_log, "query", {"sql": SQL}, check_peer)

            print(f"sdk stdio benchmark: `{SQL}` on PostgreSQL {pg_version} (loopback), "
                  f"official MCP Python SDK {importlib.metadata.version('mcp')} stdio client, mode {MODE}")
            print(f"  {calls} calls per server in {rounds} alternating rounds after {warmup} warm-up calls; "
                  f"{pings} pings per server")
            print(f"  tollgate: {bin}")
            print(f"  reference: {PEER}@{PEER_VERSION} on node {node_version}")
            if "/debug/" in bin:
                print("  NOTE: a debug build; measure with `cargo build --release -p tollgate` and "
                      "TOLLGATE_BIN=target/release/tollgate")
            start = time.monotonic()
            try:
                anyio.run(measure, tollgate, peer, calls, rounds, warmup, pings, backend="asyncio")
            except Exception as e:  # a server that would not start or died: say which, show its log
                while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
                    e = e.exceptions[0]
                print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
                show_logs(work, pg.password)
                return 1
            elapsed = time.monotonic() - start

        print(f"\n  {'path':<36} {'p50':>8} {'p90':>8} {'p99':>8}     calls")
        print(line(tollgate.label, tollgate.calls))
        print(line(peer.label, peer.calls))
        print(line("tollgate ping (floor)", tollgate.pings))
        print(line("reference ping (floor)", peer.pings))
        for s in (tollgate, peer):
            print(f"  p50 per round, {s.label:<26} " + " ".join(f"{x:.3f}" for x in s.round_p50) + " ms")
        if tollgate.calls and peer.calls:
            t50 = percentile(sorted(tollgate.calls), 50)
            p50 = percentile(sorted(peer.calls), 50)
            print(f"\n  p50 ratio tollgate / reference: {t50 / p50:.2f}x   "
                  f"(goal of issue 14: below 1.00x; reported, not asserted)")
        if tollgate.pings and peer.pings:
            tp, pp = percentile(sorted(tollgate.pings), 50), percentile(sorted(peer.pings), 50)
            if tollgate.calls and peer.calls:
                print(f"  p50 above its own ping: tollgate {t50 - tp:.3f} ms, reference {p50 - pp:.3f} ms")
        if tollgate.validate_ns:
            print(f"  client-side outputSchema validation of one sql_query result (inside tollgate's figures): "
                  f"p50 {percentile(sorted(tollgate.validate_ns), 50) * 1e3:.1f} µs")
        print(f"  wall time of the measurement: {elapsed:.1f}s")

        for s in (tollgate, peer):
            if s.failures:
                rc = 1
                print(f"\nFAILED: {len(s.failures)} failed calls on {s.label}; first: {s.failures[0]}", file=sys.stderr)

        # Every call Tollgate served is recorded, and the chain verifies.
        cli_env = dict(os.environ, SHOP_DATABASE_URL=pg.url, RUST_LOG="warn", NO_COLOR="1")
        events, intents, err = audit_counts(bin, config, cli_env)
        if err:
            rc = 1
            print(f"FAILED: tollgate audit export: {err}", file=sys.stderr)
        else:
            complete = events == intents == tollgate.served
            print(f"\n  audit: {events} sql_query events (allowed, ok, each naming its write-ahead intent; "
                  f"{intents} intents) for the {tollgate.served} calls tollgate served (warm-up included): "
                  f"{'every call recorded' if complete else 'MISMATCH'}")
            if not complete:
                rc = 1
        verify = subprocess.run([bin, "audit", "verify", "--config", str(config)],
                                capture_output=True, text=True, env=cli_env, timeout=300)
        summary = (verify.stdout.strip() or verify.stderr.strip()).splitlines()
        print(f"  tollgate audit verify: exit {verify.returncode}" + (f": {summary[-1]}" if summary else ""))
        if verify.returncode != 0:
            rc = 1
            print(f"FAILED: tollgate audit verify exited {verify.returncode}:\n{verify.stderr}", file=sys.stderr)
        if rc:
            show_logs(work, pg.password)
    finally:
        pg.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
