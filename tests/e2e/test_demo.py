"""`tollgate demo`: the printed tokens work with the official SDK, and the
printed copy-paste snippet runs with the SDK that `pip install mcp` gives."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

import harness
from conftest import call, mcp_client


@pytest.fixture(scope="module")
def demo():
    port = harness.free_port()
    d = tempfile.mkdtemp(prefix="tollgate-e2e-demo-")
    log = open(f"{d}/stdout", "w+")
    proc = subprocess.Popen([harness.tollgate_bin(), "demo", "--listen", f"127.0.0.1:{port}", "--data-dir", f"{d}/data"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        text = ""
        while "Press Ctrl-C" not in text:
            assert proc.poll() is None and time.monotonic() < deadline, f"demo did not start:\n{text}"
            time.sleep(0.1)
            log.seek(0)
            text = log.read()
        tokens = dict(re.findall(r"^\s+(agent|reviewer|auditor)\s+\(groups: \w+\)\s+(\S+)$", text, re.M))
        snippet = text.split("(pip install mcp==2.3.0):", 1)[1].split("asyncio.run(main())", 1)[0].rstrip(" ") + "  asyncio.run(main())\n"
        yield f"http://127.0.0.1:{port}", tokens, textwrap.dedent(snippet)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        subprocess.run(["rm", "-rf", d])


@pytest.mark.anyio
async def test_demo_tokens_work(demo):
    base, tokens, _ = demo
    assert set(tokens) == {"agent", "reviewer", "auditor"}
    async with mcp_client(base + "/mcp", tokens["agent"], "auto") as c:
        r = await call(c, "list_connections", {})
        assert [x["name"] for x in r.structured_content["connections"]] == ["demo"]
        r = await call(c, "sql_query", {"connection": "demo", "sql": "SELECT count(*) AS n FROM orders"})
        assert not r.is_error and r.structured_content["rows"] == [[200]]


def test_demo_snippet_runs(demo):
    _, _, snippet = demo
    r = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "'rows'" in r.stdout and "'city'" in r.stdout, r.stdout  # the selected customers
