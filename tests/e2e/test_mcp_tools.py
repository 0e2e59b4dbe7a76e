"""The four tools through the official Python MCP SDK, in both protocol modes."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from conftest import MODES, call, mcp_client

pytestmark = pytest.mark.anyio

TOOLS = {"list_connections", "sql_query", "sql_schema", "approval_wait"}


async def test_initialize_and_tools(server, agent_token, mode):
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        assert c.protocol_version == MODES[mode]
        assert c.server_info is not None and c.server_info.name == "tollgate"
        assert c.server_capabilities.tools is not None
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert set(tools) == TOOLS
        for t in tools.values():
            assert t.output_schema and t.output_schema.get("type") == "object", t.name
            assert t.input_schema.get("type") == "object", t.name
        props = tools["sql_query"].input_schema["properties"]
        assert {"connection", "sql", "params", "max_rows"} <= props.keys()
        assert set(tools["sql_query"].input_schema.get("required", [])) == {"connection", "sql"}
        assert {"connection", "schema", "table"} <= tools["sql_schema"].input_schema["properties"].keys()
        assert "approval_id" in tools["approval_wait"].input_schema["properties"]


async def test_list_connections(server, agent_token, mode):
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        r = await call(c, "list_connections", {})
        assert not r.is_error
        conns = {x["name"]: x for x in r.structured_content["connections"]}
        assert set(conns) == {"shop", "down"}
        assert conns["shop"] == {"name": "shop", "kind": "postgres", "description": "orders and customers"}


async def test_list_connections_only_permitted(server, mode):
    token = server.token("stranger", ["nobody"])
    async with mcp_client(server.mcp_url, token, mode) as c:
        r = await call(c, "list_connections", {})
        assert not r.is_error
        assert r.structured_content["connections"] == []
        r = await call(c, "sql_query", {"connection": "shop", "sql": "SELECT 1"})
        assert r.is_error and r.structured_content["error"]["code"] == "denied"


async def test_select_typed_rows(server, agent_token, mode):
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        r = await call(c, "sql_query", {
            "connection": "shop",
            "sql": "SELECT id, customer_id, amount, status, created_at FROM orders WHERE id <= 1002 ORDER BY id",
        })
        assert not r.is_error, r.structured_content
        sc = r.structured_content
        assert {"columns", "rows", "row_count", "truncated", "statements"} <= sc.keys()
        assert [col["name"] for col in sc["columns"]] == ["id", "customer_id", "amount", "status", "created_at"]
        assert all(isinstance(col["type"], str) and col["type"] for col in sc["columns"])
        assert sc["row_count"] == 2 and sc["truncated"] is False
        assert sc["statements"] == [{"kind": "select", "tables": ["public.orders"],
                                     "sql": "SELECT id, customer_id, amount, status, created_at FROM \"public\".\"orders\" WHERE id <= 1002 ORDER BY id"}]
        (id1, cust1, amount1, status1, at1), _ = sc["rows"]
        assert id1 == 1001 and isinstance(id1, int)
        assert cust1 == 2 and isinstance(cust1, int)
        assert Decimal(str(amount1)) == Decimal("8.37")
        assert status1 == "shipped"
        assert dt.datetime.fromisoformat(at1.replace("Z", "+00:00")) == dt.datetime(2026, 1, 1, 16, tzinfo=dt.timezone.utc)


async def test_select_without_table(server, agent_token, mode):
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        r = await call(c, "sql_query", {"connection": "shop", "sql": "SELECT 1 + 1 AS two, NULL::text AS nothing, true AS yes"})
        assert not r.is_error, r.structured_content
        assert r.structured_content["rows"] == [[2, None, True]]


async def test_params_are_bound(server, agent_token, mode):
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        r = await call(c, "sql_query", {"connection": "shop", "sql": "SELECT name FROM customers WHERE id = $1", "params": [3]})
        assert not r.is_error, r.structured_content
        assert r.structured_content["rows"] == [["Alan Turing"]]
        # A parameter is a value, never SQL.
        r = await call(c, "sql_query", {
            "connection": "shop", "sql": "SELECT count(*) AS n FROM customers WHERE name = $1",
            "params": ["x' OR '1'='1"],
        })
        assert not r.is_error, r.structured_content
        assert r.structured_content["rows"] == [[0]]


def _denied(r) -> dict:
    assert r.is_error is True, r.structured_content
    err = r.structured_content["error"]
    assert err["code"] == "denied", err
    assert err["message"], err
    return err


async def test_delete_denied_table_unchanged(server, pg, agent_token, mode):
    before = pg.psql("SELECT count(*) FROM customers")
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        _denied(await call(c, "sql_query", {"connection": "shop", "sql": "DELETE FROM customers WHERE id = 1"}))
        # No WHERE: the approval permit does not apply either.
        _denied(await call(c, "sql_query", {"connection": "shop", "sql": "DELETE FROM orders"}))
        r = await call(c, "sql_query", {"connection": "shop", "sql": "SELECT count(*) AS n FROM customers"})
        assert r.structured_content["rows"] == [[int(before)]]
    assert pg.psql("SELECT count(*) FROM customers") == before == "5"
    assert pg.psql("SELECT count(*) FROM orders") == "40"


async def test_unparseable_sql_denied(server, agent_token, mode):
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        _denied(await call(c, "sql_query", {"connection": "shop", "sql": "SELEC * FROM WHERE orders"}))


async def test_pg_read_file_denied_by_forbid(server, agent_token, mode):
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        err = _denied(await call(c, "sql_query", {"connection": "shop", "sql": "SELECT * FROM pg_read_file('/etc/passwd')"}))
        assert err["policies"], err
        assert any("dangerous-functions" in p for p in err["policies"]), err
        assert "root:" not in str(err)


async def test_cte_delete_denied(server, pg, agent_token, mode):
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        _denied(await call(c, "sql_query", {
            "connection": "shop", "sql": "WITH gone AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM gone",
        }))
    assert pg.psql("SELECT count(*) FROM orders") == "40"


async def test_stacked_statements_denied(server, pg, agent_token, mode):
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        _denied(await call(c, "sql_query", {"connection": "shop", "sql": "SELECT 1; DROP TABLE orders"}))
    assert pg.psql("SELECT to_regclass('public.orders') IS NOT NULL") == "t"
    assert pg.psql("SELECT count(*) FROM orders") == "40"


async def test_row_cap_and_truncated(server, agent_token, mode):
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        r = await call(c, "sql_query", {"connection": "shop", "sql": "SELECT id FROM orders ORDER BY id", "max_rows": 3})
        assert not r.is_error, r.structured_content
        sc = r.structured_content
        assert sc["rows"] == [[1001], [1002], [1003]]
        assert sc["truncated"] is True and sc["row_count"] == 3
        r = await call(c, "sql_query", {"connection": "shop", "sql": "SELECT id FROM orders ORDER BY id"})
        sc = r.structured_content
        assert len(sc["rows"]) == 40 and sc["row_count"] == 40 and sc["truncated"] is False


async def test_sql_schema(server, agent_token, mode):
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        r = await call(c, "sql_schema", {"connection": "shop"})
        assert not r.is_error, r.structured_content
        tables = {(t["schema"], t["name"]): t for t in r.structured_content["tables"]}
        assert {("public", "customers"), ("public", "orders")} <= tables.keys()
        cols = {col["name"]: col for col in tables[("public", "orders")]["columns"]}
        assert list(cols) == ["id", "customer_id", "amount", "status", "created_at"]
        assert cols["amount"]["type"].startswith("numeric")
        assert cols["id"]["primary_key"] is True and cols["id"]["nullable"] is False
        r = await call(c, "sql_schema", {"connection": "shop", "schema": "public", "table": "customers"})
        assert not r.is_error, r.structured_content
        assert [(t["schema"], t["name"]) for t in r.structured_content["tables"]] == [("public", "customers")]
        assert [col["name"] for col in r.structured_content["tables"][0]["columns"]] == ["id", "name", "email", "phone", "ssn"]


async def test_classified_columns_mask_every_expression_without_rules(server, agent_token, mode):
    """Issue #11, requirement 4: no [masking] rule names a column, yet values
    computed from columns the start-up classification found sensitive come
    back masked whole; columns it did not flag stay raw; sql_schema says so."""
    sql = ("SELECT encode(convert_to(email, 'UTF8'), 'hex'), replace(email, '@', ' at '), "
           "substr(ssn, 1, 3) || '+' || substr(ssn, 5), name FROM customers ORDER BY id")
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        r = await call(c, "sql_query", {"connection": "shop", "sql": sql})
        assert not r.is_error, r.structured_content
        rows = r.structured_content["rows"]
        assert [row[:3] for row in rows] == [["[EMAIL]", "[EMAIL]", "[US_SSN]"]] * 5, rows
        assert rows[0][3] == "Ada Lovelace"
        assert "ada.lovelace" not in json.dumps(r.structured_content)
        by = {(f["field"], f["by"]) for f in r.structured_content["masked_fields"]}
        assert ("public.customers.email", "classification") in by, by
        r = await call(c, "sql_schema", {"connection": "shop", "schema": "public", "table": "customers"})
        cols = {col["name"]: col for col in r.structured_content["tables"][0]["columns"]}
        assert cols["email"].get("classified") == "EMAIL" and cols["ssn"].get("classified") == "US_SSN"
        assert "classified" not in cols["name"]


async def test_sql_schema_lists_only_tables_the_caller_may_select(server, mode):
    token = server.token("olly", ["order-readers"])
    async with mcp_client(server.mcp_url, token, mode) as c:
        r = await call(c, "sql_schema", {"connection": "shop"})
        assert not r.is_error, r.structured_content
        assert [(t["schema"], t["name"]) for t in r.structured_content["tables"]] == [("public", "orders")]
        assert "hidden" not in r.structured_content
        assert "ssn" not in json.dumps(r.structured_content)


async def test_unknown_connection(server, agent_token, mode):
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        r = await call(c, "sql_query", {"connection": "nope", "sql": "SELECT 1"})
        assert r.is_error and r.structured_content["error"]["code"] in ("unknown_connection", "denied")


async def test_target_down_is_a_tool_error(server, agent_token, mode):
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        r = await call(c, "sql_query", {"connection": "down", "sql": "SELECT 1"})
        assert r.is_error is True
        err = r.structured_content["error"]
        assert err["code"] == "target_unavailable", err
        assert err["message"]
        # The server is still up and serves the next call.
        r = await call(c, "sql_query", {"connection": "shop", "sql": "SELECT 1 AS one"})
        assert not r.is_error and r.structured_content["rows"] == [[1]]
    assert server.alive()


async def test_pii_is_masked(server, agent_token, mode):
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        r = await call(c, "sql_query", {"connection": "shop", "sql": "SELECT email, phone, ssn FROM customers WHERE id = 1"})
        assert not r.is_error, r.structured_content
        text = str(r.structured_content["rows"])
        assert "123-45-6789" not in text and "ada.lovelace@example.com" not in text
        assert r.structured_content.get("masked"), r.structured_content


async def test_unmask_policy_shows_raw_values_and_the_store_never_holds_them(server, support_token, mode):
    raw_email, raw_ssn = "ada.lovelace@example.com", "123-45-6789"
    async with mcp_client(server.mcp_url, support_token, mode) as c:
        r = await call(c, "sql_query", {"connection": "shop", "sql": "SELECT email, phone FROM customers WHERE id = 1"})
        assert not r.is_error, r.structured_content
        assert raw_email in str(r.structured_content["rows"]), r.structured_content
        # SSNs are not in the unmask permit: a row holding one stays masked.
        r = await call(c, "sql_query", {"connection": "shop", "sql": "SELECT email, ssn FROM customers WHERE id = 1"})
        assert raw_ssn not in str(r.structured_content["rows"]) and raw_email not in str(r.structured_content["rows"])
    # The audit store (database, WAL and shared memory files) never holds a raw value.
    for f in server.data_dir.glob("tollgate.db*"):
        data = f.read_bytes()
        assert raw_email.encode() not in data and raw_ssn.encode() not in data, f"raw PII in {f}"



async def test_delete_waits_for_approval(server, pg, agent_token, mode):
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        r = await call(c, "sql_query", {"connection": "shop", "sql": "DELETE FROM orders WHERE id = 1040"})
        assert r.is_error is False, r.structured_content
        sc = r.structured_content
        assert sc["status"] == "pending_approval" and sc["approval_id"] and sc["reviewers"], sc
    assert pg.psql("SELECT count(*) FROM orders WHERE id = 1040") == "1"
