"""Policy reload on SIGHUP: a valid policy set replaces the live one without a
restart; an invalid one is refused and the previous policies stay in force.
Own server, since it edits its policies."""

from __future__ import annotations

import signal
import time

import anyio
import pytest

import harness
from conftest import call, mcp_client

SELECT = {"connection": "shop", "sql": "SELECT id FROM orders WHERE id = 1001"}


@pytest.fixture(scope="module")
def reloadable(pg):
    s = harness.Tollgate(pg)
    try:
        s.start()
        yield s
    finally:
        s.stop()


async def select_is_denied(s, token) -> bool:
    async with mcp_client(s.mcp_url, token, "legacy") as c:
        r = await call(c, "sql_query", SELECT)
        return bool(r.is_error)


def hup_and_wait(s):
    s.proc.send_signal(signal.SIGHUP)
    time.sleep(1.0)


def test_sighup_reloads_valid_policies_and_refuses_invalid_ones(reloadable):
    s = reloadable
    token = s.token("agent-9", ["agents"])
    assert anyio.run(select_is_denied, s, token) is False
    agents = s.dir / "policies" / "agents.cedar"
    original = agents.read_text()
    # An invalid policy file: refused, reads still allowed.
    agents.write_text(original + "\nforbid(principal, action, resource) when { context.no_such_field };\n")
    hup_and_wait(s)
    assert anyio.run(select_is_denied, s, token) is False
    assert "policy reload refused" in s.log_path.read_text()
    # A valid one that forbids reads on orders: applied without a restart.
    agents.write_text(original + '\n@id("freeze-orders")\nforbid(principal, action == Tollgate::Action::"sql:select", '
                      'resource == Tollgate::Table::"shop/public.orders");\n')
    hup_and_wait(s)
    assert anyio.run(select_is_denied, s, token) is True
    assert "policies reloaded" in s.log_path.read_text()
