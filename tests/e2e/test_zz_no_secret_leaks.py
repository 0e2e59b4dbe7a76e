"""Runs last: the database password (and the HS256 secret) never appears in a
tool result or error, in the server's log, in /api/audit or in the audit export."""

from __future__ import annotations

import httpx2
import pytest

from conftest import TRANSCRIPT, call, mcp_client

pytestmark = pytest.mark.anyio


async def test_no_secret_in_any_output(server, pg, agent_token, auditor_token):
    # Calls most likely to echo a connection URL, whatever ran before.
    async with mcp_client(server.mcp_url, agent_token, "legacy") as c:
        await call(c, "sql_query", {"connection": "down", "sql": "SELECT 1"})
        await call(c, "sql_query", {"connection": "shop", "sql": "SELECT * FROM no_such_table"})
        await call(c, "sql_query", {"connection": "shop", "sql": "SELECT current_setting('server_version')"})
        await call(c, "sql_schema", {"connection": "down"})
    assert len(TRANSCRIPT) >= 4
    secret = pg.password
    for i, text in enumerate(TRANSCRIPT):
        assert secret not in text, f"tool result {i} leaks the database password"
    log = server.log()
    assert log, "no server log captured"
    assert secret not in log, "server log leaks the database password"
    assert server.secret not in log, "server log leaks the HS256 secret"
    r = httpx2.get(server.base + "/api/audit?limit=1000", headers={"Authorization": f"Bearer {auditor_token}"}, timeout=10)
    assert r.status_code == 200 and r.json()["events"]
    assert secret not in r.text, "/api/audit leaks the database password"
    out = server.cli("audit", "export", "--config", str(server.config), "--format", "jsonl")
    assert out.returncode == 0 and out.stdout.strip()
    assert secret not in out.stdout + out.stderr, "audit export leaks the database password"
