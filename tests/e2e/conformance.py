"""Run the official MCP conformance suite against `tollgate serve` (throwaway
PostgreSQL, real bearer auth) with the baseline of expected failures.

usage: conformance.py NODE CONFORMANCE_PKG_DIR [extra args for `conformance server`]
Exit code: the suite's (non-zero when a scenario fails that is not in the
baseline, or a baseline entry now passes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import harness  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> int:
    node, pkg, *extra = sys.argv[1:]
    pg = harness.Postgres()
    server = None
    try:
        pg.start()
        server = harness.Tollgate(pg)
        server.start()
        env = dict(
            os.environ,
            TOLLGATE_CONFORMANCE_TOKEN=server.token("conformance", ["agents"]),
            TOLLGATE_CONFORMANCE_ORIGIN=server.base,
            TOLLGATE_CONFORMANCE_PKG=pkg,
        )
        cmd = [node, "--import", str(HERE / "conformance-auth.mjs"), f"{pkg}/dist/index.js", "server",
               "--url", server.mcp_url, "--expected-failures", str(HERE / "conformance-baseline.yaml"), *extra]
        print("+", " ".join(cmd), flush=True)
        rc = subprocess.run(cmd, env=env, timeout=600).returncode
        if pg.password in server.log():
            print("conformance: the server log leaks the database password", file=sys.stderr)
            rc = rc or 1
        if not server.alive():
            print(f"conformance: tollgate died during the suite:\n{server.log()[-4000:]}", file=sys.stderr)
            rc = rc or 1
        return rc
    finally:
        if server:
            server.cleanup()
        pg.cleanup()


if __name__ == "__main__":
    sys.exit(main())
