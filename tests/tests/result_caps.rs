//! The byte cap applies before a value is decoded: SQLite refuses to build
//! a string longer than the call's cap (a clear error), PostgreSQL refuses a
//! message over its wire limit as it arrives (before the driver buffers it)
//! and stops at a row whose raw bytes cannot fit, MariaDB stops at such a row
//! (its packet is received whole), and this process's peak RSS stays near
//! what each engine holds.
//!
//! The tests that read peak RSS run one at a time ([`SERIAL`]): the high-water
//! mark is the whole process's.

use gateway_core::connector::ConnectorFactory;
use serde_json::{Value, json};
use tollgate_tests::{MariaDbServer, PgServer, TempDir, connector, query};

const CAP: usize = 1 << 20;

/// One memory-measuring test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_to_build_a_value_over_the_byte_cap() {
    let _one = SERIAL.lock().await;
    let dir = TempDir::new("result-caps").unwrap();
    let path = dir.path().join("caps.db");
    // An empty file is an empty database (read-only calls do not create it).
    std::fs::write(&path, b"").unwrap();
    let c = connector(
        "sqlite",
        "demo",
        json!({"name": "demo", "kind": "sqlite", "path": path.to_str().unwrap(),
               "create_if_missing": true, "max_bytes": CAP}),
    );
    let before = peak_rss_kb();
    // SQLite's printf() stops at the length limit and, dropping its own
    // error, returns NULL: nothing near 500 MB is built.
    let v = query(&*c, "SELECT printf('%.*c', 500000000, 'x')", json!([]))
        .await
        .unwrap();
    assert_eq!(v["rows"], json!([[null]]));
    // Everything else over the limit fails, with the cap named.
    for sql in [
        "SELECT zeroblob(500000000)",
        "SELECT printf('%.*c', 700000, 'x') || printf('%.*c', 700000, 'x')",
    ] {
        let e = query(&*c, sql, json!([])).await.unwrap_err().to_string();
        assert!(e.contains("string or blob too big"), "{sql}: {e}");
        assert!(e.contains("byte cap"), "{sql}: {e}");
    }
    let grown_mb = peak_rss_kb().saturating_sub(before) / 1024;
    assert!(grown_mb < 100, "peak RSS grew by {grown_mb} MB");
    // Under the cap it is returned; the limit is the call's, not sticky.
    let v = query(&*c, "SELECT length(printf('%.*c', 1000, 'x'))", json!([]))
        .await
        .unwrap();
    assert_eq!(v["rows"], json!([[1000]]));
    // A stored value over the cap is refused when read, not loaded.
    let wide = connector(
        "sqlite",
        "demo",
        json!({"name": "demo", "kind": "sqlite", "path": path.to_str().unwrap()}),
    );
    for sql in [
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)",
        "INSERT INTO docs VALUES (1, 'short'), (2, printf('%.*c', 3000000, 'y'))",
    ] {
        query(&*wide, sql, json!([])).await.unwrap();
    }
    let e = query(&*c, "SELECT body FROM docs ORDER BY id", json!([]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("string or blob too big"), "{e}");
    assert!(e.contains("raise the cap"), "{e}");
    let e = query(&*c, "SELECT substr(body, 1, 10) FROM docs", json!([]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("string or blob too big"), "{e}");
    // Nor can a call under this cap store a value that long.
    let long = "x".repeat(2_000_000);
    let e = query(&*c, "INSERT INTO docs VALUES (3, ?)", json!([long]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("too big"), "{e}");
    // Its other columns read as before.
    let v = query(&*c, "SELECT id FROM docs ORDER BY id", json!([]))
        .await
        .unwrap();
    assert_eq!(v["rows"], json!([[1], [2]]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_a_row_over_the_wire_limit_as_it_arrives() {
    let _one = SERIAL.lock().await;
    let pg = PgServer::start().unwrap();
    let url = pg
        .create_database("caps", "CREATE TABLE big (v text);")
        .unwrap();
    let c = connector(
        "postgres",
        "shop",
        json!({"name": "shop", "kind": "postgres", "url": url, "max_bytes": CAP}),
    );
    query(&*c, "SELECT 1", json!([])).await.unwrap();
    let before = peak_rss_kb();
    // Both read paths: one round trip (one read-only statement) and the
    // portal (several statements), for a row over the cap but under the
    // wire limit (1 MiB + 64 KiB: received, not decoded) and rows far
    // over it (refused as they arrive).
    for size in [1_060_000, 100_000_000] {
        for sql in [
            format!("SELECT repeat('x', {size}) AS v"),
            format!("SELECT 1 AS a; SELECT repeat('x', {size}) AS v"),
        ] {
            let v = query(&*c, &sql, json!([])).await.unwrap();
            assert_eq!(v["truncated"], Value::Bool(true), "{sql}");
            assert_eq!(v["rows"], json!([]), "{sql}");
        }
    }
    let grown_mb = peak_rss_kb().saturating_sub(before) / 1024;
    // Before the guard the 100 MB DataRow was received whole (measured:
    // 129 MB growth); now at most the wire limit of it is ever held.
    assert!(grown_mb < 40, "peak RSS grew by {grown_mb} MB");

    // Rows before the cut are kept; the cut is flagged.
    let v = query(
        &*c,
        "SELECT n, CASE WHEN n = 3 THEN repeat('x', 50000000) ELSE 'small' END AS v \
         FROM generate_series(1, 5) n",
        json!([]),
    )
    .await
    .unwrap();
    assert_eq!(v["truncated"], Value::Bool(true), "{v}");
    assert_eq!(v["rows"], json!([[1, "small"], [2, "small"]]), "{v}");

    // A statement that is not the call's last, or a write: the call fails
    // and nothing is committed.
    let e = query(
        &*c,
        "SELECT repeat('x', 50000000) AS v; SELECT 1 AS a",
        json!([]),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("statement 1 of the call"), "{e}");
    let e = query(
        &*c,
        "INSERT INTO big SELECT repeat('y', 50000000) RETURNING v",
        json!([]),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("nothing was committed"), "{e}");
    let v = query(&*c, "SELECT count(*) AS n FROM big", json!([]))
        .await
        .unwrap();
    assert_eq!(v["rows"], json!([[0]]), "the insert was rolled back");

    // Built as `tollgate serve` builds it, the connection's cap (and so the
    // wire limit) comes down to the gateway's `max_result_bytes`: a 1 MB
    // RETURNING value fits the connection's 1 MiB but not a 64 KiB gateway.
    let factory = tollgate_sql::SqlConnectorFactory::postgres();
    let table = json!({"name": "shop", "kind": "postgres", "url": url, "max_bytes": CAP});
    let limits = gateway_core::connector::GatewayLimits {
        max_result_bytes: 64 * 1024,
    };
    let served = factory.build_within("shop", &table, &limits).unwrap();
    let insert = "INSERT INTO big SELECT repeat('z', 1000000) RETURNING v";
    let e = query(&*served, insert, json!([]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("over the 131072 bytes"), "{e}");
    let v = query(&*c, insert, json!([])).await.unwrap();
    assert_eq!(v["rows"][0][0].as_str().map(str::len), Some(1_000_000));
    let v = query(&*c, "SELECT count(*) AS n FROM big", json!([]))
        .await
        .unwrap();
    assert_eq!(
        v["rows"],
        json!([[1]]),
        "only the insert under the limit committed"
    );
    query(&*c, "DELETE FROM big", json!([])).await.unwrap();

    // The pool opens new sessions and answers as before.
    let v = query(&*c, "SELECT repeat('x', 1000) AS v", json!([]))
        .await
        .unwrap();
    assert_eq!(v["truncated"], Value::Bool(false));
    assert_eq!(v["rows"][0][0].as_str().map(str::len), Some(1000));

    // Over a Unix domain socket too (the guard wraps whichever socket).
    let socket_url = format!(
        "postgres://postgres:{}@/caps?host={}&port={}&sslmode=disable",
        pg.password(),
        pg.socket_dir().display(),
        pg.port()
    );
    let unix = connector(
        "postgres",
        "shop",
        json!({"name": "shop", "kind": "postgres", "url": socket_url, "max_bytes": CAP}),
    );
    let v = query(
        &*unix,
        "SELECT inet_client_addr() IS NULL AS local, repeat('x', 10) AS v",
        json!([]),
    )
    .await
    .unwrap();
    assert_eq!(v["rows"], json!([[true, "xxxxxxxxxx"]]), "over the socket");
    let v = query(&*unix, "SELECT repeat('x', 100000000) AS v", json!([]))
        .await
        .unwrap();
    assert_eq!(v["truncated"], Value::Bool(true));
    assert_eq!(v["rows"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_stops_at_a_raw_row_over_the_byte_cap() {
    let _one = SERIAL.lock().await;
    let my = MariaDbServer::start().unwrap();
    let url = my.create_database("caps", "").unwrap();
    let c = connector(
        "mysql",
        "shop",
        json!({"name": "shop", "kind": "mysql", "url": url, "max_bytes": CAP}),
    );
    // No per-session bound exists: the server's packet size is global.
    assert!(
        my.root_sql("SET SESSION max_allowed_packet = 1048576")
            .is_err()
    );
    let v = query(&*c, "SELECT REPEAT('x', 10000000) AS v", json!([]))
        .await
        .unwrap();
    assert_eq!(v["truncated"], Value::Bool(true));
    assert_eq!(v["rows"], json!([]));
}
