"""Runs last: the database password (and the HS256 secret) never appears in a
tool result or error, in the server's log, in /api/audit or in the audit export."""

from __future__ import annotations

import httpx2
import pytest

from conftest import TRANSCRIPT, call, mcp_client

pytestmark = pytest.mark.anyio

PII_EMAIL = "leak.check@example.com"
PII_CARD = "4111 1111 1111 1111"


async def test_no_secret_in_any_output(server, pg, agent_token, auditor_token):
    # Calls most likely to echo a connection URL, whatever ran before.
    async with mcp_client(server.mcp_url, agent_token, "legacy") as c:
        await call(c, "sql_query", {"connection": "down", "sql": "SELECT 1"})
        await call(c, "sql_query", {"connection": "shop", "sql": "SELECT * FROM no_such_table"})
        await call(c, "sql_query", {"connection": "shop", "sql": "SELECT current_setting('server_version')"})
        await call(c, "sql_schema", {"connection": "down"})
        # Secret-looking values in SQL, params and results: the log (at
        # RUST_LOG=debug, see harness) must hold none of them raw.
        await call(c, "sql_query", {"connection": "shop", "sql": f"SELECT id FROM customers WHERE email = '{PII_EMAIL}' OR ssn = '{PII_CARD}'"})
        await call(c, "sql_query", {"connection": "shop", "sql": "SELECT id FROM customers WHERE email = $1 OR ssn = $2", "params": [PII_EMAIL, PII_CARD]})
        await call(c, "sql_query", {"connection": "shop", "sql": "SELECT email, ssn FROM customers WHERE id = 1"})
    assert len(TRANSCRIPT) >= 4
    secret = pg.password
    for i, text in enumerate(TRANSCRIPT):
        assert secret not in text, f"tool result {i} leaks the database password"
    log = server.log()
    assert log, "no server log captured"
    assert secret not in log, "server log leaks the database password"
    assert server.secret not in log, "server log leaks the HS256 secret"
    assert "DEBUG" in log, "the server did not log at debug, so the checks below prove nothing"
    for value in (PII_EMAIL, PII_CARD, "ada.lovelace@example.com", "123-45-6789"):
        assert value not in log, f"server log holds a raw argument or result value: {value}"
    r = httpx2.get(server.base + "/api/audit?limit=1000", headers={"Authorization": f"Bearer {auditor_token}"}, timeout=10)
    assert r.status_code == 200 and r.json()["events"]
    assert secret not in r.text, "/api/audit leaks the database password"
    out = server.cli("audit", "export", "--config", str(server.config), "--format", "jsonl")
    assert out.returncode == 0 and out.stdout.strip()
    assert secret not in out.stdout + out.stderr, "audit export leaks the database password"
