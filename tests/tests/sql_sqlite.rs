//! sql_query / sql_schema on a real SQLite file: typing, bound params, caps,
//! query_only wall for read-only plans, all-or-nothing, and a timeout that
//! really interrupts (progress handler).

use std::time::{Duration, Instant};

use gateway_core::connector::ExecuteError;
use serde_json::{Value, json};
use tollgate_tests::{TempDir, call, connector, query};

fn lite(path: &std::path::Path, extra: Value) -> std::sync::Arc<dyn gateway_core::Connector> {
    let mut cfg = json!({"name": "demo", "kind": "sqlite", "path": path.to_str().unwrap(), "statement_timeout": "2s", "create_if_missing": true});
    if let (Some(o), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    connector("sqlite", "demo", cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_end_to_end() {
    let dir = TempDir::new("sqlite").unwrap();
    let path = dir.path().join("demo.db");
    let c = lite(&path, json!({}));
    for sql in [
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, data BLOB, ok BOOLEAN)",
        "INSERT INTO items (name, price, data, ok) VALUES ('one', 1.5, x'00ff', 1), ('two', NULL, NULL, 0)",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) SELECT count(*) FROM n",
        "CREATE TABLE big (id INTEGER PRIMARY KEY, pad TEXT)",
    ] {
        query(&*c, sql, json!([]))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    for i in 0..30 {
        query(
            &*c,
            "INSERT INTO big (id, pad) VALUES (?, ?)",
            json!([i, "x".repeat(100)]),
        )
        .await
        .unwrap();
    }

    // --- typing and origins
    let out = call(&*c, "sql_query", json!({"connection": "demo", "sql": "SELECT id, name, price, data, ok, 1 + 1 AS two FROM \"main\".items ORDER BY id"})).await.unwrap();
    assert_eq!(
        out.value["rows"],
        json!([
            [1, "one", 1.5, "AP8=", true, 2],
            [2, "two", null, null, false, 2]
        ])
    );
    assert_eq!(
        out.value["statements"],
        json!([{"kind": "select", "tables": ["main.items"], "sql": "SELECT id, name, price, data, ok, 1 + 1 AS two FROM \"main\".items ORDER BY id"}])
    );
    let origins: Vec<(&str, &[String])> = out
        .field_origins
        .iter()
        .map(|o| (o.pointer.as_str(), o.field.segments()))
        .collect();
    assert!(
        origins.contains(&(
            "/rows/*/1",
            &["main", "items", "name"].map(String::from)[..]
        )),
        "{origins:?}"
    );
    assert!(!origins.iter().any(|o| o.0 == "/rows/*/5"));

    // --- column types: declared types sqlx does not know, computed columns
    query(
        &*c,
        "CREATE TABLE money (id INTEGER PRIMARY KEY, amount NUMERIC, price decimal(10,2), note VARCHAR(20))",
        json!([]),
    )
    .await
    .unwrap();
    query(
        &*c,
        "INSERT INTO money (amount, price, note) VALUES (10, 2.5, 'a'), (NULL, NULL, NULL)",
        json!([]),
    )
    .await
    .unwrap();
    let v = query(
        &*c,
        "SELECT amount, price, note, count(*) AS n, avg(price) AS a, max(note) AS m, NULL AS z, (SELECT amount FROM money WHERE id = 2) AS e, x'01' AS b FROM money",
        json!([]),
    )
    .await
    .unwrap();
    let types: Vec<&str> = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "NUMERIC",
            "DECIMAL(10,2)",
            "TEXT",
            "INTEGER",
            "REAL",
            "TEXT",
            "NULL",
            // `e`: a scalar subquery keeps its column's declared type.
            "NUMERIC",
            "BLOB"
        ],
        "{v}"
    );
    // The first non-null value decides, not the first row.
    let v = query(
        &*c,
        "SELECT amount + 0 AS x FROM money ORDER BY id DESC",
        json!([]),
    )
    .await
    .unwrap();
    assert_eq!(v["rows"], json!([[null], [10]]));
    assert_eq!(v["columns"], json!([{"name": "x", "type": "INTEGER"}]));

    // --- params bound
    let v = query(
        &*c,
        "SELECT count(*) FROM items WHERE name = ?",
        json!(["one' OR '1'='1"]),
    )
    .await
    .unwrap();
    assert_eq!(v["rows"][0][0], json!(0));

    // --- caps
    let small = lite(&path, json!({"max_rows": 10}));
    let v = query(&*small, "SELECT id FROM big", json!([]))
        .await
        .unwrap();
    assert_eq!(
        (v["row_count"].clone(), v["truncated"].clone()),
        (json!(10), json!(true))
    );
    let out = call(
        &*small,
        "sql_query",
        json!({"connection": "demo", "sql": "SELECT id FROM big", "max_rows": 3}),
    )
    .await
    .unwrap();
    assert_eq!(out.value["row_count"], json!(3));
    let out = call(
        &*small,
        "sql_query",
        json!({"connection": "demo", "sql": "SELECT id FROM big", "max_rows": 500}),
    )
    .await
    .unwrap();
    assert_eq!(out.value["row_count"], json!(10));
    let bytes = lite(&path, json!({"max_bytes": 1000}));
    let v = query(&*bytes, "SELECT pad FROM big", json!([]))
        .await
        .unwrap();
    assert!(v["row_count"].as_u64().unwrap() < 10 && v["truncated"] == json!(true));

    // --- read-only wall: connection-level read_only uses the query_only pool
    let ro = lite(&path, json!({"read_only": true}));
    let e = query(&*ro, "INSERT INTO items (name) VALUES ('x')", json!([]))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("readonly") || e.to_string().contains("read only"),
        "{e}"
    );

    // --- all-or-nothing
    let e = query(
        &*c,
        "INSERT INTO items (name) VALUES ('ghost'); INSERT INTO items (id, name) VALUES (1, 'dup')",
        json!([]),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ExecuteError::Target(_)), "{e}");
    let v = query(
        &*c,
        "SELECT count(*) FROM items WHERE name = 'ghost'",
        json!([]),
    )
    .await
    .unwrap();
    assert_eq!(v["rows"][0][0], json!(0));

    // --- issue #8 item 6: constraint errors name columns, never values.
    query(
        &*c,
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, n INTEGER, card TEXT UNIQUE) STRICT; \
         INSERT INTO customers VALUES (1, 1, '4111111111111111')",
        json!([]),
    )
    .await
    .expect("customers");
    for (sql, shape) in [
        (
            "INSERT INTO customers (id, card) SELECT 2, card FROM customers",
            "UNIQUE constraint failed: customers.card",
        ),
        (
            "INSERT INTO customers (id, n) SELECT 3, 'k' || card FROM customers",
            "customers.n",
        ),
    ] {
        tollgate_tests::assert_error_hides(&*c, sql, shape, &["4111"]).await;
    }

    // --- timeout interrupts a runaway query
    let fast = lite(&path, json!({"statement_timeout": "200ms"}));
    let t0 = Instant::now();
    let e = query(
        &*fast,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
        json!([]),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ExecuteError::Timeout(200)), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(query(&*fast, "SELECT 1", json!([])).await.is_ok());

    // --- the caller's cancellation interrupts a runaway query too (the
    // connection's own 2 s timeout would end it later)
    let runaway = json!({"connection": "demo", "sql": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"});
    let plan = c.analyse("sql_query", &runaway).unwrap();
    let limits = tollgate_tests::limits();
    let cancel = limits.cancel.clone();
    let t0 = Instant::now();
    let (r, ()) = tokio::join!(c.execute(&plan, limits), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
    });
    assert!(matches!(r, Err(ExecuteError::Cancelled)), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert!(query(&*c, "SELECT 1", json!([])).await.is_ok());

    // --- sql_schema
    let out = call(
        &*c,
        "sql_schema",
        json!({"connection": "demo", "table": "items"}),
    )
    .await
    .unwrap();
    assert_eq!(
        out.value["tables"][0]["columns"][0],
        json!({"name": "id", "type": "INTEGER", "nullable": false, "primary_key": true})
    );
    assert_eq!(
        out.value["tables"][0]["columns"].as_array().unwrap().len(),
        5
    );

    // --- missing file without create_if_missing: Unavailable
    let missing = connector(
        "sqlite",
        "demo",
        json!({"path": dir.path().join("nope.db").to_str().unwrap()}),
    );
    let e = query(&*missing, "SELECT 1", json!([])).await.unwrap_err();
    assert!(matches!(e, ExecuteError::Unavailable(_)), "{e:?}");
}

/// `max_affected_rows` on SQLite: over the cap is rolled back with a clear
/// error, within it commits; `total_changes()` also sees trigger writes and
/// RETURNING rows past the row cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_max_affected_rows() {
    let dir = TempDir::new("sqlite-blast").unwrap();
    let path = dir.path().join("blast.db");
    let c = lite(&path, json!({}));
    for sql in [
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
        "INSERT INTO t (id, v) VALUES (1, 'v1'), (2, 'v2'), (3, 'v3'), (4, 'v4'), (5, 'v5')",
    ] {
        query(&*c, sql, json!([])).await.unwrap();
    }
    tollgate_tests::check_blast_radius(&*c).await;
    let count = async || {
        query(&*c, "SELECT count(*) FROM t", json!([]))
            .await
            .unwrap()["rows"][0][0]
            .clone()
    };
    // RETURNING cut by the row cap: counted by total_changes, not the rows shown.
    let small = lite(&path, json!({"max_rows": 1}));
    let e = tollgate_tests::query_capped(&*small, "DELETE FROM t RETURNING id", 2)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ExecuteError::TooManyAffected { affected: 3, .. }),
        "{e:?}"
    );
    assert_eq!(count().await, json!(3));
    let capped = lite(&path, json!({"max_affected_rows": 1}));
    let e = query(&*capped, "DELETE FROM t WHERE id >= 4", json!([]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("more than the 1 allowed by connection `demo`"),
        "{e}"
    );
    assert_eq!(count().await, json!(3));
    query(&*capped, "DELETE FROM t WHERE id = 5", json!([]))
        .await
        .unwrap();
    assert_eq!(count().await, json!(2));
}
