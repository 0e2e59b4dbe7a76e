"""Fixtures: one throwaway PostgreSQL and one `tollgate serve` for the session,
tokens minted by `tollgate token`, and MCP clients of the official Python SDK in
both protocol modes ("legacy": initialize + sessions, 2025-11-25; "auto":
server/discover, stateless 2026-07-28)."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).parent))
import harness  # noqa: E402

# Every tool result and error seen by any test, checked for secrets at the end.
TRANSCRIPT: list[str] = []

MODES = {"legacy": "2025-11-25", "auto": "2026-07-28"}


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def pg():
    with harness.running_postgres() as p:
        yield p


@pytest.fixture(scope="session")
def server(pg):
    s = harness.Tollgate(pg)
    try:
        s.start()
        yield s
    finally:
        s.cleanup()


@pytest.fixture(scope="session")
def agent_token(server):
    return server.token("agent-1", ["agents"])


@pytest.fixture(scope="session")
def support_token(server):
    return server.token("sam", ["support"])


@pytest.fixture(scope="session")
def auditor_token(server):
    return server.token("audra", ["auditors"])


@pytest.fixture(params=list(MODES))
def mode(request):
    return request.param


@contextlib.asynccontextmanager
async def mcp_client(url: str, token: str, mode: str):
    """The SDK's high-level Client over its streamable HTTP transport, bearer in every request."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            yield client


def record(result) -> None:
    TRANSCRIPT.append(result.model_dump_json())


async def call(client: Client, tool: str, args: dict):
    """Call a tool, record the result, check the contract's shape of every result."""
    result = await client.call_tool(tool, args)
    record(result)
    sc = result.structured_content
    assert isinstance(sc, dict), f"{tool}: no structuredContent: {result}"
    texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
    assert texts, f"{tool}: no text content"
    assert json.loads(texts[0]) == sc, f"{tool}: text content is not the same JSON as structuredContent"
    if result.is_error:
        err = sc.get("error")
        assert isinstance(err, dict) and {"code", "message", "policies"} <= err.keys(), sc
    return result
