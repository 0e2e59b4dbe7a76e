"""What runs is exactly what policy saw (issue 8, items 1–6), through the
official MCP SDK against `tollgate serve` on PostgreSQL and `tollgate demo` on
SQLite, asserting on the database's state, not only on the result:

* unqualified names run as the schema policy saw, not the role's "$user" schema;
* functions are default-deny: user functions, advisory locks, large objects and
  whole-schema dumps need a `sql:call` permit; table_to_xml is a read of the
  table it names; planner statistics are sql:admin;
* the SQLite printer-vs-driver attack (`[x]]`) is refused and nothing runs;
* masking never hides a predicate from the reviewer (the PEM literal attack);
* a write whose WHERE matches every row is rolled back over `@max_affected_rows`;
* a masked value does not come back through the database's error text."""

from __future__ import annotations

import os

import pytest

import httpx2

from conftest import call, mcp_client
from test_demo import demo  # noqa: F401  (module fixture: a running `tollgate demo`)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def attack_schema(pg):
    # The app role's own schema shadows public for unqualified names in a plain session.
    pg.psql("CREATE SCHEMA IF NOT EXISTS shop_app AUTHORIZATION shop_app", user="postgres")
    pg.psql(""
            "CREATE TABLE IF NOT EXISTS shop_app.salaries (who text, amount int); "
            "CREATE TABLE IF NOT EXISTS public.salaries (who text, amount int); "
            "TRUNCATE shop_app.salaries, public.salaries; "
            "INSERT INTO shop_app.salaries VALUES ('user-schema-row', 999); "
            "INSERT INTO public.salaries VALUES ('public-row', 1); "
            "CREATE TABLE IF NOT EXISTS public.sound_orders (id int PRIMARY KEY, note text); "
            "INSERT INTO public.sound_orders SELECT g FROM generate_series(1, 5) g ON CONFLICT DO NOTHING; "
            "CREATE OR REPLACE FUNCTION public.wipe_sound() RETURNS int LANGUAGE sql "
            "AS 'DELETE FROM public.sound_orders RETURNING 1'")
    assert pg.psql("SELECT who FROM salaries") == "user-schema-row"
    return pg


def denied(r) -> str:
    assert r.is_error, r
    err = r.structured_content["error"]
    assert err["code"] == "denied", err
    return err["message"]


async def test_unqualified_names_run_as_policy_saw(server, agent_token, mode, attack_schema):
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        # `salaries` resolves as the database resolves it for this role ("$user"
        # first): policy decides on shop_app.salaries, which is forbidden.
        msg = denied(await call(c, "sql_query", {"connection": "shop", "sql": "SELECT who FROM salaries"}))
        assert "shop_app.salaries" in msg, msg
        denied(await call(c, "sql_query", {"connection": "shop", "sql": "SELECT who FROM shop_app.salaries"}))
        r = await call(c, "sql_query", {"connection": "shop", "sql": "SELECT who FROM public.salaries"})
        assert not r.is_error and r.structured_content["rows"] == [["public-row"]], r
        assert r.structured_content["statements"][0]["tables"] == ["public.salaries"]
        # table_to_xml reads the table it names: the forbid applies to it too.
        denied(await call(c, "sql_query", {"connection": "shop",
                                           "sql": "SELECT table_to_xml('shop_app.salaries', true, true, '')"}))
        denied(await call(c, "sql_query", {"connection": "shop",
                                           "sql": "SELECT table_to_xml('salaries', true, true, '')"}))
        r = await call(c, "sql_query", {"connection": "shop",
                                        "sql": "SELECT table_to_xml('public.salaries', true, true, '') AS x"})
        assert not r.is_error and "public-row" in r.structured_content["rows"][0][0], r


async def test_functions_are_default_deny(server, agent_token, mode, attack_schema):
    pg = attack_schema
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        msg = denied(await call(c, "sql_query", {
            "connection": "shop", "sql": "SELECT id FROM sound_orders WHERE id = (SELECT wipe_sound())"}))
        assert "sql:call" in msg and "wipe_sound" in msg, msg
        assert pg.psql("SELECT count(*) FROM public.sound_orders") == "5"
        denied(await call(c, "sql_query", {"connection": "shop", "sql": "SELECT pg_advisory_lock(4242)"}))
        assert pg.psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == "0"
        denied(await call(c, "sql_query", {"connection": "shop", "sql": "SELECT lo_creat(-1)"}))
        assert pg.psql("SELECT count(*) FROM pg_largeobject_metadata", user="postgres") == "0"
        denied(await call(c, "sql_query", {"connection": "shop", "sql": "SELECT schema_to_xml('shop_app', true, true, '')"}))
        denied(await call(c, "sql_query", {"connection": "shop",
                                           "sql": "SELECT histogram_bounds FROM pg_stats WHERE tablename = 'customers'"}))
        # Built-ins that compute from their arguments still just work.
        r = await call(c, "sql_query", {"connection": "shop",
                                        "sql": "SELECT lower(status) AS s, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1"})
        assert not r.is_error and len(r.structured_content["rows"]) == 4, r


async def test_sqlite_printer_attack_runs_nothing(demo):  # noqa: F811
    base, tokens, _ = demo
    async with mcp_client(base + "/mcp", tokens["agent"], "auto") as c:
        before = (await call(c, "sql_query", {"connection": "demo", "sql": "SELECT count(*) FROM orders"})).structured_content["rows"]
        for sql in ["SELECT 1 AS [x]]; PRAGMA query_only=OFF; DELETE FROM orders; --]",
                    "SELECT 1 AS [x]]; VACUUM INTO 'copy.db'; --]"]:
            r = await call(c, "sql_query", {"connection": "demo", "sql": sql})
            assert r.is_error and "written back unambiguously" in r.structured_content["error"]["message"], r
        after = (await call(c, "sql_query", {"connection": "demo", "sql": "SELECT count(*) FROM orders"})).structured_content["rows"]
        assert before == after == [[200]]
    assert not os.path.exists("copy.db")


async def test_write_over_the_cap_rolls_back(server, agent_token, mode, attack_schema):
    pg = attack_schema
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        # `WHERE id IS NOT NULL` has a WHERE and matches every row.
        r = await call(c, "sql_query", {"connection": "shop",
                                        "sql": "UPDATE sound_orders SET note = 'all' WHERE id IS NOT NULL"})
        assert r.is_error and r.structured_content["error"]["code"] == "too_many_affected_rows", r
        assert "agents-update-sound-orders-capped" in r.structured_content["error"]["message"], r
        assert pg.psql("SELECT count(*) FROM public.sound_orders WHERE note = 'all'") == "0"
        r = await call(c, "sql_query", {"connection": "shop",
                                        "sql": f"UPDATE sound_orders SET note = '{mode}' WHERE id <= 2"})
        assert not r.is_error, r
        assert pg.psql(f"SELECT count(*) FROM public.sound_orders WHERE note = '{mode}'") == "2"


async def test_masked_value_not_in_error_text(server, agent_token, mode):
    async with mcp_client(server.mcp_url, agent_token, mode) as c:
        r = await call(c, "sql_query", {"connection": "shop",
                                        "sql": "SELECT ('k' || '4111111111111111')::int AS n"})
        assert r.is_error, r
        text = r.structured_content["error"]["message"]
        assert "4111111111111111" not in text and "invalid input syntax" in text, text


async def test_reviewer_sees_every_predicate(server, agent_token):
    reviewer = server.token("rita", ["reviewers"])
    sql = "DELETE FROM orders WHERE status = '-----BEGIN PRIVATE KEY-----' OR id > 0"
    before = server.pg.psql("SELECT count(*) FROM orders")
    async with mcp_client(server.mcp_url, agent_token, "auto") as c:
        r = await call(c, "sql_query", {"connection": "shop", "sql": sql})
        assert not r.is_error and r.structured_content["status"] == "pending_approval", r
        approval = r.structured_content["approval_id"]
    headers = {"Authorization": f"Bearer {reviewer}"}
    shown = httpx2.get(f"{server.base}/api/approvals/{approval}", headers=headers, timeout=10)
    assert shown.status_code == 200, shown.text
    body = shown.text
    assert "OR id > 0" in body and "[PRIVATE_KEY]" in body and "BEGIN PRIVATE KEY" not in body, body
    page = httpx2.get(f"{server.base}/ui/approvals/{approval}", headers=headers, timeout=10)
    if page.status_code == 200:
        assert "OR id &gt; 0" in page.text or "OR id > 0" in page.text, page.text[:2000]
    denied = httpx2.post(f"{server.base}/api/approvals/{approval}/deny", headers=headers,
                         json={"reason": "matches every order"}, timeout=10)
    assert denied.status_code == 200, denied.text
    assert server.pg.psql("SELECT count(*) FROM orders") == before
