"""Audit: one event per tool call, /api/audit for auditors only, the hash chain
verified by `tollgate audit verify`, and a tampered row detected. Own server and
data dir, so the counts are exact. Classification runs (tool `masking.classify`,
one per connection at start) are events of their own, holding no sampled value."""

from __future__ import annotations

import json
import sqlite3

import anyio
import httpx2
import pytest

import harness
from conftest import call, mcp_client

CLASSIFY = "masking.classify"
# Events of accesses, not tool calls: reads of the audit API, refused logins, policy reloads.
ACCESS = {"audit_read", "auth_refused", "policy_reload"}

CALLS = [
    # (mode, tool, arguments, expected decision)
    ("legacy", "list_connections", {}, "allow"),
    ("legacy", "sql_query", {"connection": "shop", "sql": "SELECT id, status FROM orders WHERE id = $1", "params": [1001]}, "allow"),
    ("legacy", "sql_query", {"connection": "shop", "sql": "DELETE FROM customers WHERE id = 2"}, "deny"),
    ("auto", "sql_query", {"connection": "shop", "sql": "SELECT * FROM pg_read_file('/etc/hostname')"}, "deny"),
    ("auto", "sql_query", {"connection": "down", "sql": "SELECT 1"}, "error"),
    ("auto", "sql_schema", {"connection": "shop", "table": "orders"}, "allow"),
    # Out of its declared schema (max 3600): refused, not a panic, and audited.
    ("legacy", "approval_wait", {"approval_id": "apr_x", "timeout_seconds": 18446744073709551615}, "error"),
]


@pytest.fixture(scope="module")
def audited(pg):
    s = harness.Tollgate(pg)
    try:
        s.start()
        agent = s.token("agent-7", ["agents"])
        auditor = s.token("audra", ["auditors"])

        async def run_calls():
            for mode, tool, args, _ in CALLS:
                async with mcp_client(s.mcp_url, agent, mode) as c:
                    await call(c, tool, args)

        anyio.run(run_calls)
        yield s, agent, auditor
    finally:
        s.cleanup()


def get(s, path, token):
    return httpx2.get(s.base + path, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_one_event_per_call(audited):
    s, agent, auditor = audited
    assert get(s, "/api/audit", agent).status_code == 403
    r = get(s, "/api/audit", auditor)
    assert r.status_code == 200
    every = sorted(r.json()["events"], key=lambda e: e["seq"])
    events = [e for e in every if e["tool"] != CLASSIFY and e["tool"] not in ACCESS]
    # The agent's refused read is itself recorded (before this read answered).
    reads = [e for e in every if e["tool"] == "audit_read"]
    assert any(e["principal"]["sub"] == "agent-7" and e["decision"] == "deny" for e in reads), reads
    assert len(events) == len(CALLS), [(e["tool"], e["decision"]) for e in events]
    for e, (_, tool, args, decision) in zip(events, CALLS):
        assert e["tool"] == tool
        assert e["decision"] == decision, e
        assert e["principal"] == {"sub": "agent-7", "groups": ["agents"]}
        assert e["connection"] == args.get("connection")
        assert e["arguments"] == args
        assert {"id", "seq", "time", "requests", "outcome", "result_preview", "masked", "prev_hash", "hash"} <= e.keys()
    # Listings show one event per call; with ?intents=true the write-ahead
    # intents too, and then the chain is contiguous: each executed call's
    # intent comes before its event, which names it.
    assert all(e["outcome"]["status"] != "intent" for e in every)
    r = get(s, "/api/audit?intents=true&limit=1000", auditor)
    chain = sorted(r.json()["events"], key=lambda e: e["seq"])
    assert [e["seq"] for e in chain] == list(range(chain[0]["seq"], chain[0]["seq"] + len(chain)))
    for prev, cur in zip(chain, chain[1:]):
        assert cur["prev_hash"] == prev["hash"]
    intents = {e["id"]: e for e in chain if e["outcome"]["status"] == "intent"}
    executed = [e for e in events if e.get("intent")]
    assert executed and len(intents) == len(executed), (intents, executed)
    for e in executed:
        intent = intents[e["intent"]]
        assert intent["seq"] < e["seq"] and intent["arguments"] == e["arguments"]
    # The forbid is named in the request decisions of the pg_read_file call.
    forbidden = events[3]
    assert any("dangerous-functions" in p for req in forbidden["requests"] for p in req.get("policies", []))
    assert events[1]["outcome"].get("rows") == 1


def test_filters_and_single_event(audited):
    s, _, auditor = audited
    r = get(s, "/api/audit?decision=deny&tool=sql_query", auditor)
    assert r.status_code == 200
    assert len(r.json()["events"]) == 2
    r = get(s, "/api/audit?tool=sql_schema&principal=agent-7", auditor)
    events = r.json()["events"]
    assert len(events) == 1
    one = get(s, f"/api/audit/{events[0]['id']}", auditor)
    assert one.status_code == 200 and one.json()["id"] == events[0]["id"]
    assert get(s, "/api/audit/00000000-0000-4000-8000-000000000000", auditor).status_code == 404
    assert get(s, "/api/audit?since=yesterday", auditor).status_code == 400


def test_classification_runs_are_recorded_without_values(audited):
    s, _, auditor = audited
    r = get(s, f"/api/audit?tool={CLASSIFY}", auditor)
    assert r.status_code == 200
    runs = {e["connection"]: e for e in r.json()["events"]}
    shop, down = runs["shop"], runs["down"]
    assert shop["principal"] == {"sub": "tollgate", "groups": []}
    assert shop["outcome"]["status"] == "ok"
    classified = {f["field"]: f["type"] for f in shop["result_preview"]["classified"]}
    assert classified.get("public.customers.email") == "EMAIL", classified
    assert classified.get("public.customers.ssn") == "US_SSN", classified
    assert "public.customers.name" not in classified
    text = json.dumps(shop)
    for value in ("ada.lovelace@example.com", "123-45-6789", "+1 415 555 0101"):
        assert value not in text
    # The target that is not running: recorded as failed.
    assert down["outcome"]["status"] == "error" and down["decision"] == "error"


def test_export_jsonl(audited):
    s, _, _ = audited
    r = s.cli("audit", "export", "--config", str(s.config), "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    calls = [e for e in lines if e["outcome"]["status"] != "intent"]
    assert [e["tool"] for e in calls if e["tool"] != CLASSIFY and e["tool"] not in ACCESS] == [c[1] for c in CALLS]
    # The export is the whole chain: every intent an event names is in it.
    ids = {e["id"] for e in lines}
    assert all(e["intent"] in ids for e in calls if e.get("intent"))
    assert any(e["tool"] == "audit_read" for e in lines), "reads of /api/audit are not in the export"
    assert s.pg.password not in r.stdout


def test_verify_then_tamper(audited):
    s, _, _ = audited
    r = s.cli("audit", "verify", "--config", str(s.config))
    assert r.returncode == 0, (r.stdout, r.stderr)
    s.stop()
    db = sqlite3.connect(s.data_dir / "tollgate.db")
    with db:
        cols = {row[1] for row in db.execute("PRAGMA table_info(audit_events)")}
        assert {"seq", "decision", "hash", "prev_hash"} <= cols
        # Rewrite history: the denied DELETE now reads as allowed.
        n = db.execute("UPDATE audit_events SET decision = 'allow' WHERE decision = 'deny' AND tool = 'sql_query' "
                       "AND seq = (SELECT min(seq) FROM audit_events WHERE decision = 'deny')").rowcount
    db.close()
    assert n == 1
    r = s.cli("audit", "verify", "--config", str(s.config))
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
