"""The target goes away while the server runs: a clear tool error, the server
stays up, and it recovers when the target is back. Own PostgreSQL and server."""

from __future__ import annotations

import httpx2
import pytest

import harness
from conftest import call, mcp_client

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def lonely():
    pg = harness.Postgres()
    s = None
    try:
        pg.start()
        s = harness.Tollgate(pg)
        s.start()
        yield pg, s, s.token("agent-1", ["agents"])
    finally:
        if s:
            s.cleanup()
        pg.cleanup()


async def test_postgres_stopped_and_restarted(lonely):
    pg, s, token = lonely
    q = {"connection": "shop", "sql": "SELECT count(*) AS n FROM orders"}
    async with mcp_client(s.mcp_url, token, "auto") as c:
        r = await call(c, "sql_query", q)
        assert not r.is_error and r.structured_content["rows"] == [[40]]
        pg.stop()
        r = await call(c, "sql_query", q)
        assert r.is_error is True, r.structured_content
        err = r.structured_content["error"]
        assert err["code"] in ("target_unavailable", "target_error"), err
        assert err["message"]
        assert pg.password not in str(r.model_dump())
        assert s.alive()
        assert httpx2.get(s.base + "/healthz", timeout=10).status_code == 200
        r = await call(c, "list_connections", {})
        assert not r.is_error
        pg.restart()
        r = await call(c, "sql_query", q)
        assert not r.is_error, r.structured_content
        assert r.structured_content["rows"] == [[40]]
    assert pg.password not in s.log()
