"""Policy reload on SIGHUP: a valid policy set replaces the live one without a
restart; an invalid one is refused and the previous policies stay in force.
Own server, since it edits its policies."""

from __future__ import annotations

import json
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


def reload_events(s) -> list[dict]:
    out = s.cli("audit", "export", "--config", str(s.config), "--format", "jsonl")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return [e for e in events if e["tool"] == "policy_reload"]


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_a_changed_policy_file_reloads_without_a_signal(reloadable):
    """No SIGHUP: saving a .cedar file under policy.dir reloads (validated first);
    each reload is a `policy_reload` event naming the set's sha256."""
    s = reloadable
    token = s.token("agent-10", ["agents"])
    agents = s.dir / "policies" / "agents.cedar"
    original = agents.read_text().split("\n@id(\"freeze-orders\")")[0]
    before = len(reload_events(s))
    # Back to the original set (reads allowed), by saving the file.
    agents.write_text(original)
    assert wait_until(lambda: anyio.run(select_is_denied, s, token) is False), s.log()
    # A broken save is refused: the last good set stays, the log says why.
    refused = s.log().count("policy reload refused")
    agents.write_text(original + "\nforbid(principal, action, resource) when { context.no_such_field };\n")
    assert wait_until(lambda: s.log().count("policy reload refused") > refused), s.log()
    assert anyio.run(select_is_denied, s, token) is False
    # A valid new file (no edit of the old one) is picked up too.
    agents.write_text(original)
    (s.dir / "policies" / "freeze.cedar").write_text(
        '@id("freeze-orders-2")\nforbid(principal, action == Tollgate::Action::"sql:select", '
        'resource == Tollgate::Table::"shop/public.orders");\n')
    try:
        assert wait_until(lambda: anyio.run(select_is_denied, s, token) is True), s.log()
    finally:
        (s.dir / "policies" / "freeze.cedar").unlink()
    assert wait_until(lambda: anyio.run(select_is_denied, s, token) is False), s.log()
    events = reload_events(s)[before:]
    assert any(e["decision"] == "deny" for e in events), events
    accepted = [e for e in events if e["decision"] == "allow"]
    assert len(accepted) >= 3, events
    hashes = {e["arguments"].get("sha256") for e in accepted}
    assert None not in hashes and len(hashes) >= 2, accepted
