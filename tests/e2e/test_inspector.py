"""The README's MCP Inspector command works as written against `tollgate serve`:
the pinned Inspector (package.json, 2.12.0, which needs Node >= 22.19) lists the
tools and calls `sql_query` over streamable HTTP with a bearer header."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest


def inspector(*args: str) -> subprocess.CompletedProcess:
    node = os.environ.get("E2E_NODE")
    node_dir = os.environ.get("E2E_NODE_DIR")
    if not node or not node_dir:
        pytest.fail("E2E_NODE / E2E_NODE_DIR unset: run through tests/e2e/run.sh (it installs the pinned Inspector)")
    cli = Path(node_dir) / "node_modules" / ".bin" / "mcp-inspector"
    assert cli.exists(), f"{cli} missing: tests/e2e/run.sh installs @modelcontextprotocol/inspector from package.json"
    env = dict(os.environ, PATH=f"{Path(node).parent}:{os.environ['PATH']}")
    return subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=120, env=env)


def test_readme_inspector_command_lists_and_calls_tools(server, agent_token):
    header = f"Authorization: Bearer {agent_token}"
    r = inspector("--cli", server.mcp_url, "--transport", "http", "--header", header, "--method", "tools/list")
    assert r.returncode == 0, r.stderr[-2000:] + r.stdout[-2000:]
    names = [t["name"] for t in json.loads(r.stdout)["tools"]]
    assert {"sql_query", "sql_schema", "list_connections", "approval_wait"} <= set(names), names
    r = inspector("--cli", server.mcp_url, "--transport", "http", "--header", header, "--method", "tools/call",
                  "--tool-name", "sql_query", "--tool-arg", "connection=shop",
                  "--tool-arg", "sql=SELECT count(*) AS n FROM orders")
    assert r.returncode == 0, r.stderr[-2000:] + r.stdout[-2000:]
    rows = json.loads(r.stdout)["structuredContent"]["rows"]
    assert len(rows) == 1 and isinstance(rows[0][0], int) and rows[0][0] > 0, r.stdout[-2000:]
