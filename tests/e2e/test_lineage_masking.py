"""Masking follows the data (issue #11, "How it is shown"): the headline query
`SELECT replace(email,'@',' at '), hex(email), substr(ssn,1,3)||'+'||substr(ssn,5)
FROM customers` comes back masked on SQLite, PostgreSQL and MariaDB through MCP
with the official Python SDK, under column rules only, and `masked_fields`
names the rules. Each database is a throwaway one seeded here (PostgreSQL: a
fresh database on the session's server; MariaDB: its own server; SQLite: a
temp file); `tollgate serve` runs with a config of its own."""

from __future__ import annotations

import base64
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest

import harness
from conftest import call, mcp_client

pytestmark = pytest.mark.anyio

CUSTOMERS = [
    (1, "Ada Lovelace", "ada.lovelace@example.com", "123-45-6789", "London"),
    (2, "Grace Hopper", "grace.hopper@navy.example.org", "234-56-7890", "Arlington"),
    (3, "Alan Turing", "alan.turing@example.net", "345-67-8901", "Wilmslow"),
]

SEED = "CREATE TABLE customers (id INTEGER PRIMARY KEY, name {t} NOT NULL, email {t} NOT NULL, ssn {t}, city {t});\n" + "".join(
    f"INSERT INTO customers VALUES ({i}, '{n}', '{e}', '{s}', '{c}');\n" for i, n, e, s, c in CUSTOMERS
)

# The headline query, as each dialect spells it.
HEADLINE = {
    "lite": "SELECT replace(email,'@',' at '), hex(email), substr(ssn,1,3)||'+'||substr(ssn,5) FROM customers ORDER BY id",
    "pg": "SELECT replace(email,'@',' at '), encode(email::bytea,'hex'), substr(ssn,1,3)||'+'||substr(ssn,5) FROM customers ORDER BY id",
    "maria": "SELECT replace(email,'@',' at '), hex(email), concat(substr(ssn,1,3),'+',substr(ssn,5)) FROM customers ORDER BY id",
}
# Where each connection's customers table lives.
SCHEMA = {"lite": "main", "pg": "public", "maria": "shop"}

POLICY = """
@id("lineage-agents-connect")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource);
@id("lineage-agents-read")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select", resource);
"""


class LineageTollgate(harness.Tollgate):
    """`tollgate serve` over the three seeded databases with column rules only."""

    def __init__(self, pg: harness.Postgres, sqlite_path: Path, pg_url: str, maria_url: str) -> None:
        self.sqlite_path = sqlite_path
        super().__init__(pg, extra_env={"LINEAGE_PG_URL": pg_url, "LINEAGE_MARIA_URL": maria_url})

    def write_config(self) -> None:
        (self.dir / "policies").mkdir(exist_ok=True)
        (self.dir / "policies" / "lineage.cedar").write_text(POLICY)
        rules = "".join(
            f'\n[[masking.columns]]\nconnection = "{conn}"\ncolumn = "{schema}.customers.email"\ntype = "EMAIL"\n'
            for conn, schema in SCHEMA.items()
        )
        self.config.write_text(self.config_head() + f"""{rules}
[[masking.columns]]
column = "*.*.ssn"
type = "US_SSN"

[[connection]]
name = "lite"
kind = "sqlite"
path = "{self.sqlite_path}"

[[connection]]
name = "pg"
kind = "postgres"
url = "${{env:LINEAGE_PG_URL}}"

[[connection]]
name = "maria"
kind = "mysql"
url = "${{env:LINEAGE_MARIA_URL}}"
""")


@pytest.fixture(scope="module")
def lineage_server(pg):
    tmp = Path(tempfile.mkdtemp(prefix="tollgate-e2e-lineage-"))
    try:
        sqlite_path = tmp / "lite.db"
        with sqlite3.connect(sqlite_path) as db:
            db.executescript(SEED.format(t="TEXT"))
        # A fresh database on the session's throwaway PostgreSQL.
        pg.psql(f"CREATE DATABASE lineage OWNER {pg.user}", db="postgres", user="postgres")
        pg.psql(SEED.format(t="text"), db="lineage")
        pg_url = f"postgres://{pg.user}:{pg.password}@127.0.0.1:{pg.port}/lineage"
        with harness.running_mariadb() as maria:
            maria.root_sql("CREATE DATABASE shop")
            maria.root_sql(SEED.format(t="VARCHAR(100)"), db="shop")
            server = LineageTollgate(pg, sqlite_path, pg_url, maria.url("shop"))
            try:
                server.start()
                yield server
            finally:
                server.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def leak_forms() -> list[tuple[str, str]]:
    """Every seeded email and SSN and the forms a transformation gives it."""
    out = []
    for _, _, email, ssn, _ in CUSTOMERS:
        for what, v in (("email", email), ("ssn", ssn)):
            out += [
                (what, v),
                (f"{what} hex", v.encode().hex()),
                (f"{what} HEX", v.encode().hex().upper()),
                (f"{what} base64", base64.b64encode(v.encode()).decode().rstrip("=")),
                (f"{what} reversed", v[::-1]),
                (f"{what} pieces", v[:3] + "+" + v[4:]),
            ]
            digits = "".join(ch for ch in v if ch.isdigit())
            if len(digits) >= 6:
                out.append((f"{what} digits", digits))
    return out


@pytest.mark.parametrize("connection", list(HEADLINE))
async def test_headline_query_is_masked_by_lineage(lineage_server, mode, connection):
    token = lineage_server.token("agent-lineage", ["agents"])
    async with mcp_client(lineage_server.mcp_url, token, mode) as c:
        r = await call(c, "sql_query", {"connection": connection, "sql": HEADLINE[connection]})
    sc = r.structured_content
    assert not r.is_error, sc
    text = r.content[0].text
    for what, form in leak_forms():
        assert form not in text, f"{connection}: {what} `{form}` came back: {text}"
    assert len(sc["rows"]) == len(CUSTOMERS), sc
    for row in sc["rows"]:
        assert row == ["[EMAIL]", "[EMAIL]", "[US_SSN]"], f"{connection}: {row}"
    schema = SCHEMA[connection]
    fields = {f["pointer"]: f for f in sc.get("masked_fields", [])}
    expected = {
        "/rows/*/0": (f"{schema}.customers.email", "EMAIL"),
        "/rows/*/1": (f"{schema}.customers.email", "EMAIL"),
        "/rows/*/2": (f"{schema}.customers.ssn", "US_SSN"),
    }
    for pointer, (field, type_name) in expected.items():
        f = fields.get(pointer)
        assert f is not None, f"{connection}: no masked_fields entry for {pointer}: {sc.get('masked_fields')}"
        assert (f["field"], f["type"], f["strategy"], f["derived"], f["by"]) == (
            field, type_name, "redact", True, "rule"), f"{connection}: {f}"


@pytest.mark.parametrize("connection", list(HEADLINE))
async def test_benign_columns_stay_readable(lineage_server, connection):
    token = lineage_server.token("agent-lineage", ["agents"])
    async with mcp_client(lineage_server.mcp_url, token, "auto") as c:
        r = await call(c, "sql_query", {"connection": connection,
                                        "sql": "SELECT upper(name), city FROM customers ORDER BY id"})
    sc = r.structured_content
    assert not r.is_error, sc
    assert sc["rows"] == [[n.upper(), city] for _, n, _, _, city in CUSTOMERS], sc
    assert not sc.get("masked_fields"), sc
