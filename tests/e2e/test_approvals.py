"""Approvals through the official Python SDK on real PostgreSQL: a DELETE that
policy sends to `reviewers` pauses; approved while the call blocks, the result
arrives in that call; undecided, the call returns the pending object and
`approval_wait` picks the result up later; a denial's reason reaches the agent;
the requester can never approve their own call; a pending approval survives
kill -9 of the server. Own server (it is killed) and database, `wait_seconds = 4`."""

from __future__ import annotations

import subprocess

import anyio
import httpx2
import pytest

import harness
from conftest import call, mcp_client

WAIT = 4


@pytest.fixture(scope="module")
def pg():
    """Its own database: these tests delete orders that other modules count."""
    with harness.running_postgres() as p:
        yield p


@pytest.fixture(scope="module")
def gate(pg):
    s = harness.Tollgate(pg)
    s.config.write_text(s.config.read_text().replace("wait_seconds = 2", f"wait_seconds = {WAIT}"))
    try:
        s.start()
        yield s
    finally:
        s.cleanup()


def rest(s, method: str, path: str, token: str, body: dict | None = None) -> httpx2.Response:
    return httpx2.request(method, f"{s.base}/api/approvals{path}", json=body,
                          headers={"Authorization": f"Bearer {token}"}, timeout=10)


def delete(order_id: int) -> dict:
    return {"connection": "shop", "sql": f"DELETE FROM orders WHERE id = {order_id}"}


def exists(pg, order_id: int) -> bool:
    return pg.psql(f"SELECT count(*) FROM orders WHERE id = {order_id}") == "1"


async def pending_id(s, reviewer: str) -> str:
    for _ in range(100):
        r = rest(s, "GET", "?state=pending", reviewer)
        assert r.status_code == 200, r.text
        if r.json()["approvals"]:
            return r.json()["approvals"][0]["id"]
        await anyio.sleep(0.05)
    raise AssertionError("no pending approval appeared")


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_approved_while_the_call_blocks_returns_the_result(gate, pg, mode):
    order = 1030 if mode == "legacy" else 1031
    agent, reviewer = gate.token("agent-a", ["agents"]), gate.token("rita", ["reviewers"])

    async def main():
        result = {}

        async def agent_call():
            async with mcp_client(gate.mcp_url, agent, mode) as c:
                result["r"] = await call(c, "sql_query", delete(order))

        async with anyio.create_task_group() as tg:
            tg.start_soon(agent_call)
            approval = await pending_id(gate, reviewer)
            r = rest(gate, "POST", f"/{approval}/approve", reviewer, {"reason": "customer asked"})
            assert r.status_code == 200, r.text
        return result["r"]

    r = anyio.run(main)
    assert not r.is_error, r.structured_content
    assert r.structured_content["row_count"] == 1, r.structured_content
    assert not exists(pg, order)


def test_undecided_call_returns_pending_then_approval_wait_gets_the_result(gate, pg):
    agent, reviewer = gate.token("agent-b", ["agents"]), gate.token("rita", ["reviewers"])

    async def main():
        async with mcp_client(gate.mcp_url, agent, "legacy") as c:
            first = await call(c, "sql_query", delete(1032))
            again = await call(c, "sql_query", delete(1032))
            return first.structured_content, again.structured_content

    pending, again = anyio.run(main)
    assert pending["status"] == "pending_approval" and pending["reviewers"] == ["reviewers"], pending
    assert again["approval_id"] == pending["approval_id"], "the same call while pending is the same approval"
    assert pending["review_url"].endswith(f"/ui/approvals/{pending['approval_id']}")
    assert exists(pg, 1032)
    # The reviewer approves with the CLI while the agent is away.
    out = gate.cli("approvals", "approve", pending["approval_id"], "--server", gate.base, "--token", reviewer,
                   "--reason", "ok")
    assert out.returncode == 0, out.stdout + out.stderr

    async def pick_up():
        async with mcp_client(gate.mcp_url, agent, "auto") as c:
            return await call(c, "approval_wait", {"approval_id": pending["approval_id"], "timeout_seconds": 5})

    r = anyio.run(pick_up)
    assert not r.is_error and r.structured_content["row_count"] == 1, r.structured_content
    assert not exists(pg, 1032)


def test_denial_reason_reaches_the_agent_and_nothing_runs(gate, pg):
    agent, reviewer = gate.token("agent-c", ["agents"]), gate.token("rita", ["reviewers"])

    async def ask():
        async with mcp_client(gate.mcp_url, agent, "auto") as c:
            return (await call(c, "sql_query", delete(1033))).structured_content

    pending = anyio.run(ask)
    approval = pending["approval_id"]
    assert rest(gate, "POST", f"/{approval}/deny", reviewer, {}).status_code == 400, "a reason is required to deny"
    assert rest(gate, "POST", f"/{approval}/deny", reviewer, {"reason": "order is disputed"}).status_code == 200

    async def pick_up():
        async with mcp_client(gate.mcp_url, agent, "legacy") as c:
            return await call(c, "approval_wait", {"approval_id": approval})

    r = anyio.run(pick_up)
    assert r.is_error and r.structured_content["error"]["code"] == "approval_denied", r.structured_content
    assert "order is disputed" in r.structured_content["error"]["message"]
    assert exists(pg, 1033)


def test_requester_cannot_approve_their_own_call(gate, pg):
    both = gate.token("dual", ["agents", "reviewers"])

    async def ask():
        async with mcp_client(gate.mcp_url, both, "legacy") as c:
            return (await call(c, "sql_query", delete(1034))).structured_content

    pending = anyio.run(ask)
    r = rest(gate, "POST", f"/{pending['approval_id']}/approve", both, {"reason": "mine"})
    assert r.status_code == 403, r.text
    assert exists(pg, 1034)


def test_pending_approval_survives_kill_9(gate, pg):
    agent, reviewer = gate.token("agent-d", ["agents"]), gate.token("rita", ["reviewers"])

    async def ask():
        async with mcp_client(gate.mcp_url, agent, "legacy") as c:
            return (await call(c, "sql_query", delete(1035))).structured_content

    pending = anyio.run(ask)
    gate.proc.kill()  # SIGKILL: no shutdown path runs
    gate.proc.wait()
    gate.stop()
    gate.start()
    assert rest(gate, "POST", f"/{pending['approval_id']}/approve", reviewer, {"reason": "after restart"}).status_code == 200

    async def pick_up():
        async with mcp_client(gate.mcp_url, agent, "auto") as c:
            return await call(c, "approval_wait", {"approval_id": pending["approval_id"]})

    r = anyio.run(pick_up)
    assert not r.is_error and r.structured_content["row_count"] == 1, r.structured_content
    assert not exists(pg, 1035)
    verify = subprocess.run([gate.bin, "audit", "verify", "--config", str(gate.config)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
