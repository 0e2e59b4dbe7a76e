//! sql_query / sql_schema against a real throwaway MariaDB: value typing,
//! bound params, caps, read-only transaction, all-or-nothing, statement
//! timeout (max_statement_time), outages and credential hygiene.

use std::time::{Duration, Instant};

use gateway_core::connector::ExecuteError;
use serde_json::{Value, json};
use tollgate_tests::{MariaDbServer, call, connector, query};

const FIXTURE: &str = r#"
CREATE TABLE types (id INT PRIMARY KEY, ti TINYINT, bi BIGINT, ub BIGINT UNSIGNED, dec_big DECIMAL(40,10), dec_small DECIMAL(6,2),
  f FLOAT, d DOUBLE, s VARCHAR(50), t TEXT, flag BOOLEAN, dt DATETIME(3), ts TIMESTAMP NULL, day DATE, tm TIME, j JSON, bin VARBINARY(10), nothing TEXT);
INSERT INTO types VALUES (1, -5, 9007199254740993, 18446744073709551615, 123456789012345678901234567890.1234567890, 12.50,
  1.5, 2.25, 'héllo', 'long text', TRUE, '2024-05-01 12:34:56.789', '2024-05-01 10:00:00', '2024-05-01', '13:14:15', '{"a": [1, 2]}', 0x00FF, NULL);
CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL);
INSERT INTO items (name) VALUES ('one'), ('two');
CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(200));
INSERT INTO big SELECT seq, REPEAT('x', 100) FROM seq_1_to_3000;
"#;

fn my(url: &str, extra: Value) -> std::sync::Arc<dyn gateway_core::Connector> {
    let mut cfg = json!({"name": "shop", "kind": "mysql", "url": url, "statement_timeout": "2s", "max_rows": 1000});
    if let (Some(o), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    connector("mysql", "shop", cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_end_to_end() {
    let server = MariaDbServer::start().expect("start MariaDB (apt-get install -y mariadb-server)");
    eprintln!("MariaDB started in {:?}", server.start_time);
    // The server runs in UTC for deterministic TIMESTAMP output.
    server.root_sql("SET GLOBAL time_zone = '+00:00'").unwrap();
    let url = server.create_database("shop", FIXTURE).expect("fixture");
    let c = my(&url, json!({}));

    // --- value typing
    let v = query(&*c, "SELECT * FROM types", json!([]))
        .await
        .expect("select");
    let row = v["rows"][0].as_array().unwrap().clone();
    assert_eq!(
        Value::Array(row),
        json!([
            1,
            -5,
            9007199254740993i64,
            18446744073709551615u64,
            "123456789012345678901234567890.1234567890",
            12.5,
            1.5,
            2.25,
            "héllo",
            "long text",
            true,
            "2024-05-01T12:34:56.789",
            "2024-05-01T10:00:00Z",
            "2024-05-01",
            "13:14:15",
            // MariaDB's JSON is LONGTEXT: it arrives as its text
            "{\"a\": [1, 2]}",
            "AP8=",
            null
        ])
    );
    assert_eq!(
        v["statements"],
        json!([{"kind": "select", "tables": ["shop.types"], "sql": "SELECT * FROM types"}])
    );
    let types: Vec<&str> = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types[0], "INT");

    // --- field origins from the column definitions
    let plan = c
        .analyse(
            "sql_query",
            &json!({"connection": "shop", "sql": "SELECT t.s AS alias, 1 AS one FROM types t"}),
        )
        .unwrap();
    let out = c.execute(&plan, tollgate_tests::limits()).await.unwrap();
    assert_eq!(out.field_origins.len(), 1, "{:?}", out.field_origins);
    assert_eq!(
        (
            out.field_origins[0].pointer.as_str(),
            &out.field_origins[0].field
        ),
        (
            "/rows/*/0",
            &gateway_core::connector::FieldPath::new(["shop", "types", "s"])
        )
    );

    // --- params bound
    let v = query(
        &*c,
        "SELECT count(*) FROM items WHERE name = ?",
        json!(["one' OR '1'='1"]),
    )
    .await
    .unwrap();
    assert_eq!(v["rows"][0][0], json!(0));
    let v = query(
        &*c,
        "SELECT ? AS a, ? + 1 AS b, ? AS c",
        json!(["x'); DROP TABLE items; --", 41, null]),
    )
    .await
    .unwrap();
    assert_eq!(v["rows"][0][0], json!("x'); DROP TABLE items; --"));
    assert_eq!(v["rows"][0][2], Value::Null);
    let e = query(&*c, "SELECT ?, ?", json!([1])).await.unwrap_err();
    assert!(e.to_string().contains("placeholder"), "{e}");

    // --- caps
    let v = query(&*c, "SELECT id FROM big ORDER BY id", json!([]))
        .await
        .unwrap();
    assert_eq!(
        (v["row_count"].clone(), v["truncated"].clone()),
        (json!(1000), json!(true))
    );
    let out = call(
        &*c,
        "sql_query",
        json!({"connection": "shop", "sql": "SELECT id FROM big", "max_rows": 7}),
    )
    .await
    .unwrap();
    assert_eq!(out.value["row_count"], json!(7));
    let out = call(
        &*c,
        "sql_query",
        json!({"connection": "shop", "sql": "SELECT id FROM big", "max_rows": 5000}),
    )
    .await
    .unwrap();
    assert_eq!(out.value["row_count"], json!(1000));
    let small = my(&url, json!({"max_bytes": 2000}));
    let v = query(&*small, "SELECT pad FROM big", json!([]))
        .await
        .unwrap();
    assert!(v["row_count"].as_u64().unwrap() < 30 && v["truncated"] == json!(true));
    assert!(
        query(&*small, "SELECT 1", json!([])).await.is_ok(),
        "connection reusable after a cut stream"
    );

    // --- read-only transaction refuses a write (connection-level read_only here)
    let ro = my(&url, json!({"read_only": true}));
    let e = query(&*ro, "INSERT INTO items (name) VALUES ('x')", json!([]))
        .await
        .unwrap_err();
    assert!(e.to_string().to_lowercase().contains("read only"), "{e}");

    // --- writes and all-or-nothing
    let v = query(
        &*c,
        "INSERT INTO items (name) VALUES ('three'), ('four')",
        json!([]),
    )
    .await
    .unwrap();
    assert_eq!(v["row_count"], json!(2));
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
    assert_eq!(v["rows"][0][0], json!(0), "first statement rolled back");

    // --- statement timeout (MariaDB max_statement_time)
    let fast = my(&url, json!({"statement_timeout": "300ms"}));
    let t0 = Instant::now();
    let e = query(&*fast, "SELECT SLEEP(5) FROM big LIMIT 1", json!([])).await;
    let elapsed = t0.elapsed();
    // MariaDB's SLEEP() returns 1 when interrupted instead of failing; either is a stop.
    match e {
        Err(ExecuteError::Timeout(_)) => {}
        Ok(v) => assert_eq!(v["rows"][0][0], json!(1), "{v}"),
        Err(other) => panic!("{other:?}"),
    }
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    let t0 = Instant::now();
    let e = query(
        &*fast,
        "SELECT count(*) FROM big a, big b, big c",
        json!([]),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ExecuteError::Timeout(300)), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());

    // --- sql_schema
    let out = call(
        &*c,
        "sql_schema",
        json!({"connection": "shop", "table": "items"}),
    )
    .await
    .unwrap();
    assert_eq!(
        out.value,
        json!({"tables": [{"schema": "shop", "name": "items", "kind": "table", "columns": [
            {"name": "id", "type": "int(11)", "nullable": false, "primary_key": true},
            {"name": "name", "type": "varchar(50)", "nullable": false, "primary_key": false}]}]})
    );

    // --- issue #8 item 6: data values quoted by errors never leave the
    // connector; identifiers in errors stay visible.
    query(
        &*c,
        "CREATE TABLE customers (id INT PRIMARY KEY, card_number VARCHAR(20) UNIQUE); \
         INSERT INTO customers VALUES (1, '4111111111111111')",
        json!([]),
    )
    .await
    .expect("customers");
    for (sql, shape) in [
        (
            "INSERT INTO items (id, name) SELECT CONCAT('k', card_number), 'x' FROM customers",
            "Incorrect integer value: '[value hidden]' for column",
        ),
        (
            "INSERT INTO customers SELECT 2, card_number FROM customers",
            "Duplicate entry '[value hidden]' for key",
        ),
    ] {
        tollgate_tests::assert_error_hides(&*c, sql, shape, &["4111"]).await;
    }
    let e = query(&*c, "SELECT nope FROM items", json!([]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Unknown column 'nope'"), "{e}");

    // --- wrong password
    let bad_url = url.replace(server.password(), "Wr0ngPassw0rdXYZ");
    let bad = my(&bad_url, json!({}));
    let e = query(&*bad, "SELECT 1", json!([])).await.unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(matches!(e, ExecuteError::Unavailable(_)), "{text}");
    assert!(
        !text.contains("Wr0ngPassw0rdXYZ") && !text.contains(&bad_url),
        "{text}"
    );
    session_state_does_not_outlive_the_call(&url).await;
}

// Regression: session state set by one call (user variables, SET, USE) must
// not reach the next call on the same pooled connection.
async fn session_state_does_not_outlive_the_call(url: &str) {
    let c = my(url, json!({"pool_size": 1}));
    query(&*c, "SET @leak = 42", json!([])).await.expect("set");
    let v = query(&*c, "SELECT @leak AS v", json!([]))
        .await
        .expect("read variable");
    assert_eq!(v["rows"][0][0], Value::Null, "{v}");
}

#[tokio::test]
async fn mysql_down_is_unavailable_quickly() {
    let port = tollgate_tests::free_port();
    let c = my(
        &format!("mysql://u:SuperSecret99@127.0.0.1:{port}/db"),
        json!({}),
    );
    let t0 = Instant::now();
    let e = query(&*c, "SELECT 1", json!([])).await.unwrap_err();
    assert!(matches!(e, ExecuteError::Unavailable(_)), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
    assert!(!e.to_string().contains("SuperSecret99"), "{e}");
}

/// `max_affected_rows` on MariaDB: over the cap is rolled back with a clear
/// error (rows matched count, not only rows changed), within it commits, and
/// the connection's cap and policy's combine (the smaller wins).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_max_affected_rows() {
    let server = MariaDbServer::start().expect("start MariaDB (apt-get install -y mariadb-server)");
    let url = server
        .create_database(
            "shop",
            "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20));
             INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_5;",
        )
        .expect("fixture");
    let c = my(&url, json!({}));
    tollgate_tests::check_blast_radius(&*c).await;
    let count = async || {
        query(&*c, "SELECT count(*) FROM t", json!([]))
            .await
            .unwrap()["rows"][0][0]
            .clone()
    };
    // DDL commits implicitly on MariaDB: a capped call that mixes it with
    // writes is refused before anything runs.
    let e = tollgate_tests::query_capped(
        &*c,
        "DELETE FROM t WHERE id = 3; CREATE TABLE z (id INT)",
        5,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("ddl statement") && e.contains("nothing was changed"),
        "{e}"
    );
    assert_eq!(count().await, json!(3));
    let z = query(
        &*c,
        "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_NAME = 'z'",
        json!([]),
    )
    .await
    .unwrap();
    assert_eq!(z["rows"][0][0], json!(0), "the DDL did not run");
    let capped = my(&url, json!({"max_affected_rows": 1}));
    let e = query(&*capped, "DELETE FROM t WHERE id >= 4", json!([]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("more than the 1 allowed by connection `shop`"),
        "{e}"
    );
    assert_eq!(count().await, json!(3));
    query(&*capped, "DELETE FROM t WHERE id = 5", json!([]))
        .await
        .unwrap();
    assert_eq!(count().await, json!(2));

    // sql_schema guards each listed table with the `sql:select` a query on it asks.
    let out = call(&*c, "sql_schema", json!({"connection": "shop"}))
        .await
        .unwrap();
    let guarded: Vec<_> = out
        .item_guards
        .iter()
        .map(|g| (g.pointer.as_str(), g.request.resource.entity_uid()))
        .collect();
    assert_eq!(
        guarded,
        [("/tables/0", "Tollgate::Table::\"shop/shop.t\"".to_string())]
    );
}
