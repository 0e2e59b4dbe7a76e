#!/usr/bin/env python3
"""Fill a Tollgate SQLite store with N synthetic audit events (default 1M) to
measure the console's audit search on a big store. The rows copy a real
event's shape with varied seq/id/time/principal/tool/arguments; their hashes
are NOT valid (`tollgate audit verify` fails on them): this measures reads,
not the chain. The head row is set to the newest row so the server keeps
appending (its `audit_read` events).

usage: console_audit_1m.py DATA_DIR/tollgate.db [N]
"""
import json, sqlite3, sys, uuid, datetime

db, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
c = sqlite3.connect(db)
c.execute("PRAGMA journal_mode=WAL")
c.execute("PRAGMA synchronous=OFF")
start = c.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_events").fetchone()[0]
t0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
tools = ["sql_query", "sql_query", "sql_query", "sql_schema", "ssh_exec", "k8s_get"]
subs = [f"agent-{i}" for i in range(20)]
decisions = ["allow"] * 8 + ["deny", "pending"]
rows = []
for i in range(1, n + 1):
    seq = start + i
    tool = tools[i % len(tools)]
    args = {"connection": "shop", "sql": f"SELECT * FROM orders WHERE id = {i}"} if tool.startswith("sql") \
        else {"connection": "web", "command": f"uptime # {i}"}
    if i == n // 2:
        args["sql"] = "SELECT needle_rare_marker FROM t"
    t = (t0 + datetime.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    h = uuid.uuid4().hex * 2
    rows.append((seq, str(uuid.uuid4()), t, subs[i % 20], json.dumps(["agents"]), tool, args["connection"],
                 json.dumps(args), "[]", decisions[i % 10], None,
                 json.dumps({"status": "ok", "duration_ms": 3, "rows": 1, "error": None}), "null", "{}", h, h))
    if len(rows) == 50_000:
        c.executemany("INSERT INTO audit_events (seq, id, time, principal_sub, principal_groups, tool, connection, "
                      "arguments, requests, decision, approval, outcome, result_preview, masked, prev_hash, hash) "
                      "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        rows = []
if rows:
    c.executemany("INSERT INTO audit_events (seq, id, time, principal_sub, principal_groups, tool, connection, "
                  "arguments, requests, decision, approval, outcome, result_preview, masked, prev_hash, hash) "
                  "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
last = c.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
c.execute("INSERT OR REPLACE INTO audit_head (id, seq, hash) VALUES (1, ?, ?)", last)
c.commit()
print(f"{n} events added, seq {start + 1}..{last[0]}")
