"""`tollgate serve --stdio` driven by the SDK's stdio client; identity from `[stdio]`."""

from __future__ import annotations

import json

import pytest
from mcp import Client, StdioServerParameters

from conftest import MODES, call

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def stdio_config(server):
    # Own data dir: the HTTP server of the session keeps its store to itself.
    path = server.dir / "stdio.toml"
    path.write_text(server.config.read_text().replace('data_dir = "data"', 'data_dir = "data-stdio"'))
    return path


async def test_stdio(server, stdio_config, mode):
    params = StdioServerParameters(command=server.bin, args=["serve", "--stdio", "--config", str(stdio_config)],
                                   env=server.env, cwd=str(server.dir))
    async with Client(params, mode=mode) as c:
        assert c.protocol_version == MODES[mode]
        assert c.server_info is not None and c.server_info.name == "tollgate"
        names = {t.name for t in (await c.list_tools()).tools}
        assert names == {"list_connections", "sql_query", "sql_schema", "approval_wait"}
        r = await call(c, "list_connections", {})
        assert {x["name"] for x in r.structured_content["connections"]} == {"shop", "down"}
        r = await call(c, "sql_query", {"connection": "shop", "sql": "SELECT name FROM customers WHERE id = $1", "params": [1]})
        assert not r.is_error and r.structured_content["rows"] == [["Ada Lovelace"]]
        r = await call(c, "sql_query", {"connection": "shop", "sql": "DROP TABLE orders"})
        assert r.is_error and r.structured_content["error"]["code"] == "denied"
    out = server.cli("audit", "export", "--config", str(stdio_config), "--format", "jsonl")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert events and events[-1]["principal"] == {"sub": "local-agent", "groups": ["agents"]}
    assert events[-1]["decision"] == "deny"
