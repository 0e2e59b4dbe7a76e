//! sql_query / sql_schema against a real throwaway PostgreSQL: value typing,
//! bound params, caps, read-only wall, all-or-nothing, timeouts, outages and
//! credential hygiene. One server per binary; sections run in order.

use std::time::{Duration, Instant};

use gateway_core::connector::{ExecLimits, ExecuteError};
use serde_json::{Value, json};
use tollgate_tests::{PgServer, call, connector, query};

const FIXTURE: &str = r#"
CREATE TABLE types (id int PRIMARY KEY, i2 smallint, i8 bigint, n numeric(40,10), small_n numeric(6,2), f float8, r real,
  s text, b bool, ts timestamp, tz timestamptz, d date, tm time, u uuid, j jsonb, bin bytea, arr int[], tags text[],
  iv interval, ip inet, nothing text);
INSERT INTO types VALUES (1, 7, 9007199254740993, 123456789012345678901234567890.1234567890, 12.50, 1.5, 'NaN',
  'héllo', true, '2024-05-01 12:34:56.789', '2024-05-01 12:00:00+02', '2024-05-01', '13:14:15', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{"a": [1, 2]}', '\x00ff', '{1,NULL,3}', '{x,y}', '1 year 2 mons 3 days 04:05:06', '10.0.0.1/8', NULL);
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);
INSERT INTO items (name) VALUES ('one'), ('two');
CREATE TABLE big AS SELECT g AS id, repeat('x', 100) AS pad FROM generate_series(1, 5000) g;
CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql VOLATILE AS $$ INSERT INTO items (name) VALUES ('sneaky') RETURNING id $$;
"#;

/// The server process of the session a one-connection pool hands out.
async fn backend_pid(c: &dyn gateway_core::Connector) -> i64 {
    let v = query(c, "SELECT pg_backend_pid()", json!([]))
        .await
        .unwrap();
    v["rows"][0][0].as_i64().unwrap()
}

fn pg(url: &str, extra: Value) -> std::sync::Arc<dyn gateway_core::Connector> {
    let mut cfg = json!({"name": "shop", "kind": "postgres", "url": url, "statement_timeout": "2s", "max_rows": 1000});
    if let (Some(o), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    connector("postgres", "shop", cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_end_to_end() {
    let server = PgServer::start().expect("start PostgreSQL");
    eprintln!("PostgreSQL started in {:?}", server.start_time);
    let url = server.create_database("shop", FIXTURE).expect("fixture");
    let c = pg(&url, json!({}));

    // --- value typing
    let v = query(&*c, "SELECT * FROM types", json!([]))
        .await
        .expect("select types");
    let row = &v["rows"][0];
    let col = |name: &str| -> &Value {
        let i = v["columns"]
            .as_array()
            .unwrap()
            .iter()
            .position(|c| c["name"] == name)
            .unwrap();
        &row[i]
    };
    assert_eq!(col("id"), &json!(1));
    assert_eq!(col("i2"), &json!(7));
    assert_eq!(col("i8"), &json!(9007199254740993i64));
    assert_eq!(
        col("n"),
        &json!("123456789012345678901234567890.1234567890")
    );
    assert_eq!(col("small_n"), &json!(12.5));
    assert_eq!(col("f"), &json!(1.5));
    assert_eq!(col("r"), &json!("NaN"));
    assert_eq!(col("s"), &json!("héllo"));
    assert_eq!(col("b"), &json!(true));
    assert_eq!(col("ts"), &json!("2024-05-01T12:34:56.789"));
    assert_eq!(col("tz"), &json!("2024-05-01T10:00:00Z"));
    assert_eq!(col("d"), &json!("2024-05-01"));
    assert_eq!(col("tm"), &json!("13:14:15"));
    assert_eq!(col("u"), &json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    assert_eq!(col("j"), &json!({"a": [1, 2]}));
    assert_eq!(col("bin"), &json!("AP8="));
    assert_eq!(col("arr"), &json!([1, null, 3]));
    assert_eq!(col("tags"), &json!(["x", "y"]));
    assert_eq!(col("iv"), &json!("1 year 2 mons 3 days 04:05:06"));
    assert_eq!(col("ip"), &json!("10.0.0.1/8"));
    assert_eq!(col("nothing"), &Value::Null);
    let types: Vec<&str> = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(&types[..4], &["int4", "int2", "int8", "numeric"]);
    assert!(
        types.contains(&"int4[]") && types.contains(&"timestamptz"),
        "{types:?}"
    );
    assert_eq!(
        v["statements"],
        json!([{"kind": "select", "tables": ["public.types"], "sql": "SELECT * FROM \"public\".\"types\""}])
    );

    // --- field origins (column masking): from RowDescription + cached catalog lookup
    let plan = c
        .analyse(
            "sql_query",
            &json!({"connection": "shop", "sql": "SELECT t.s AS alias, 1 AS one FROM types t"}),
        )
        .unwrap();
    let out = c.execute(&plan, tollgate_tests::limits()).await.unwrap();
    assert_eq!(out.field_origins.len(), 1, "{:?}", out.field_origins);
    assert_eq!(out.field_origins[0].pointer, "/rows/*/0");
    assert_eq!(
        out.field_origins[0].field,
        gateway_core::connector::FieldPath::new(["public", "types", "s"])
    );

    // --- params are bound (typed), an injection string stays data
    let v = query(&*c, "SELECT $1::int8 + 1 AS n, $2::text AS s, $3::numeric AS d, $4::timestamptz AS t, $5::jsonb AS j, $6::bytea AS b, $7::uuid AS u, $8::bool AS ok, $9::date AS day, $10::int4[] AS a",
        json!([41, "x'); DROP TABLE items; --", "1.10", "2024-01-02T03:04:05+01:00", {"k": "v"}, "AQID", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", true, "2024-02-29", [1, 2]])).await.expect("params");
    assert_eq!(
        v["rows"][0],
        json!([42, "x'); DROP TABLE items; --", 1.1, "2024-01-02T02:04:05Z", {"k": "v"}, "AQID", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", true, "2024-02-29", [1, 2]])
    );
    let v = query(
        &*c,
        "SELECT count(*) FROM items WHERE name = $1",
        json!(["one' OR '1'='1"]),
    )
    .await
    .unwrap();
    assert_eq!(v["rows"][0][0], json!(0));
    let e = query(&*c, "SELECT $1::int4", json!(["not a number"]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("$1"), "{e}");
    let e = query(&*c, "SELECT $1::int4, $2::int4", json!([1]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("placeholder"), "{e}");

    // --- row cap, per-call lowering only, byte cap
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
        json!({"connection": "shop", "sql": "SELECT id FROM big ORDER BY id", "max_rows": 10}),
    )
    .await
    .unwrap();
    assert_eq!(out.value["row_count"], json!(10));
    assert!(out.truncated && out.value["truncated"] == json!(true));
    let out = call(
        &*c,
        "sql_query",
        json!({"connection": "shop", "sql": "SELECT id FROM big ORDER BY id", "max_rows": 100000}),
    )
    .await
    .unwrap();
    assert_eq!(
        out.value["row_count"],
        json!(1000),
        "max_rows may only lower the cap"
    );
    let v = query(&*c, "SELECT id FROM big WHERE id <= 5", json!([]))
        .await
        .unwrap();
    assert_eq!(
        (v["row_count"].clone(), v["truncated"].clone()),
        (json!(5), json!(false))
    );
    let small = pg(&url, json!({"max_bytes": 2000}));
    let v = query(&*small, "SELECT pad FROM big", json!([]))
        .await
        .unwrap();
    let n = v["row_count"].as_u64().unwrap();
    assert!(n > 0 && n < 30 && v["truncated"] == json!(true), "{n}");
    let plan = c
        .analyse(
            "sql_query",
            &json!({"connection": "shop", "sql": "SELECT id FROM big"}),
        )
        .unwrap();
    let out = c
        .execute(
            &plan,
            ExecLimits {
                max_items: Some(3),
                max_bytes: 1 << 20,
                max_affected: None,
                timeout: None,
                cancel: Default::default(),
                caller: None,
                progress: None,
                intent: Default::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(out.items, Some(3));

    // --- a read far over the cap: the first rows come back capped and the
    // server stops producing the rest (the connection that carried it is
    // closed, not left streaming 25M rows), and the pool serves the next call.
    let huge = "SELECT a.id FROM big a CROSS JOIN big b";
    let v = query(&*c, huge, json!([])).await.unwrap();
    assert_eq!(
        (v["row_count"].clone(), v["truncated"].clone()),
        (json!(1000), json!(true))
    );
    let (watch, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut still_running = i64::MAX;
    // Streaming all 25M rows takes seconds; a stopped query is gone at once.
    for _ in 0..10 {
        still_running = watch
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%CROSS JOIN big b%' \
                 AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if still_running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        still_running, 0,
        "the capped query is still running on the server"
    );
    let v = query(&*c, "SELECT count(*) FROM big", json!([]))
        .await
        .unwrap();
    assert_eq!(v["rows"], json!([[5000]]));
    // Just over the cap: the session is kept (the few extra rows are read and dropped).
    let v = query(&*c, "SELECT id FROM big WHERE id <= 1003", json!([]))
        .await
        .unwrap();
    assert_eq!(
        (v["row_count"].clone(), v["truncated"].clone()),
        (json!(1000), json!(true))
    );

    // --- prepared statements per pooled session stay bounded however many
    // distinct SQL texts arrive (here and in the server's session)
    let one = pg(&url, json!({"pool_size": 1}));
    let max = tollgate_sql::pg::MAX_PREPARED_PER_SESSION;
    for i in 0..max + 40 {
        query(&*one, &format!("SELECT {i} AS n"), json!([]))
            .await
            .unwrap();
    }
    let v = query(
        &*one,
        "SELECT count(*) FROM pg_prepared_statements",
        json!([]),
    )
    .await
    .unwrap();
    let held = v["rows"][0][0].as_i64().unwrap() as usize;
    assert!(held > 0 && held <= max + 2, "{held} statements held");

    // --- the one-round-trip read path keeps or drops its session on purpose
    // (one pooled session, so the backend pid tells which happened)
    let before = backend_pid(&*one).await;
    // An error after some rows: rolled back, nothing left open, session kept.
    let e = query(
        &*one,
        "SELECT 10 / (id - 500) FROM big ORDER BY id",
        json!([]),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("division by zero"), "{e}");
    let v = query(
        &*one,
        "SELECT pg_backend_pid(), current_setting('transaction_read_only')",
        json!([]),
    )
    .await
    .unwrap();
    assert_eq!(
        v["rows"][0][0].as_i64(),
        Some(before),
        "session kept after an error"
    );
    assert_eq!(v["rows"][0][1], json!("on"), "reads run READ ONLY");
    // Just over the cap: kept. Far over: closed (the next call has a new session).
    let capped = pg(&url, json!({"pool_size": 1, "max_rows": 10}));
    let first = backend_pid(&*capped).await;
    query(&*capped, "SELECT id FROM big WHERE id <= 12", json!([]))
        .await
        .unwrap();
    let again = backend_pid(&*capped).await;
    assert_eq!(first, again, "a few rows over the cap keep the session");
    let v = query(&*capped, "SELECT id FROM big", json!([]))
        .await
        .unwrap();
    assert_eq!(v["truncated"], json!(true));
    let after = backend_pid(&*capped).await;
    assert_ne!(after, again, "a result far over the cap closes its session");

    // --- read-only wall: a read-only plan whose function writes is refused by PostgreSQL
    let plan = c
        .analyse(
            "sql_query",
            &json!({"connection": "shop", "sql": "SELECT sneaky()"}),
        )
        .unwrap();
    assert!(plan.read_only, "analysis sees a plain SELECT");
    let e = c
        .execute(&plan, tollgate_tests::limits())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("read-only transaction"), "{e}");
    let v = query(
        &*c,
        "SELECT count(*) FROM items WHERE name = 'sneaky'",
        json!([]),
    )
    .await
    .unwrap();
    assert_eq!(v["rows"][0][0], json!(0));
    // connection-level read_only = true: writes refused even when policy would allow
    let ro = pg(&url, json!({"read_only": true}));
    let e = query(&*ro, "INSERT INTO items (name) VALUES ('x')", json!([]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");

    // --- writes, affected rows, RETURNING, all-or-nothing
    let v = query(
        &*c,
        "INSERT INTO items (name) VALUES ('three'), ('four')",
        json!([]),
    )
    .await
    .unwrap();
    assert_eq!(
        (v["row_count"].clone(), v["columns"].clone()),
        (json!(2), json!([]))
    );
    let v = query(
        &*c,
        "UPDATE items SET name = upper(name) WHERE name = $1 RETURNING id, name",
        json!(["three"]),
    )
    .await
    .unwrap();
    assert_eq!(v["rows"][0][1], json!("THREE"));
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
    let v = query(
        &*c,
        "INSERT INTO items (name) VALUES ('five'); SELECT name FROM items WHERE name = 'five'",
        json!([]),
    )
    .await
    .unwrap();
    assert_eq!(v["rows"], json!([["five"]]));
    assert_eq!(v["statements"].as_array().unwrap().len(), 2);

    // --- statement timeout: cancelled by the server, fast
    let fast = pg(&url, json!({"statement_timeout": "200ms"}));
    let t0 = Instant::now();
    let e = query(&*fast, "SELECT pg_sleep(5)", json!([]))
        .await
        .unwrap_err();
    assert!(matches!(e, ExecuteError::Timeout(200)), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(
        query(&*fast, "SELECT 1", json!([])).await.is_ok(),
        "pool still healthy after a timeout"
    );

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
        json!({"tables": [{"schema": "public", "name": "items", "kind": "table", "columns": [
            {"name": "id", "type": "integer", "nullable": false, "primary_key": true},
            {"name": "name", "type": "text", "nullable": false, "primary_key": false}]}]})
    );
    let out = call(&*c, "sql_schema", json!({"connection": "shop"}))
        .await
        .unwrap();
    let names: Vec<&str> = out.value["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["big", "items", "types"]);

    // --- issue #8 item 6: data values quoted by errors never leave the
    // connector; identifiers in errors stay visible.
    query(
        &*c,
        "CREATE TABLE customers (id int PRIMARY KEY, email text UNIQUE, card_number text); \
         INSERT INTO customers VALUES (1, 'bob@example.com', '4111111111111111')",
        json!([]),
    )
    .await
    .expect("customers");
    for (sql, shape) in [
        (
            "SELECT ('k'||card_number)::int FROM customers",
            "invalid input syntax for type integer: \"[value hidden]\"",
        ),
        (
            "SELECT ('\"'||card_number)::int FROM customers",
            "invalid input syntax for type integer: \"[value hidden]\"",
        ),
        (
            "SELECT card_number::int FROM customers",
            "value \"[value hidden]\" is out of range for type integer",
        ),
        (
            "INSERT INTO customers SELECT 2, email, NULL FROM customers",
            "violates unique constraint \"customers_email_key\"",
        ),
    ] {
        tollgate_tests::assert_error_hides(&*c, sql, shape, &["4111", "bob@"]).await;
    }
    let e = query(&*c, "SELECT id FROM nope", json!([]))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("relation \"public.nope\" does not exist"),
        "{e}"
    );

    // --- wrong password: clear error, no secret in it
    let bad_url = url.replace(server.password(), "Wr0ngPassw0rdXYZ");
    let bad = pg(&bad_url, json!({}));
    let e = query(&*bad, "SELECT 1", json!([])).await.unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(matches!(e, ExecuteError::Unavailable(_)), "{text}");
    assert!(text.contains("authentication failed"), "{text}");
    assert!(
        !text.contains("Wr0ngPassw0rdXYZ")
            && !text.contains(&bad_url)
            && !text.contains(server.password()),
        "{text}"
    );

    // --- TLS: the test server has no TLS; sslmode=require must fail cleanly
    let tls = pg(
        &url.replace("sslmode=disable", "sslmode=require"),
        json!({}),
    );
    let e = query(&*tls, "SELECT 1", json!([])).await.unwrap_err();
    assert!(matches!(e, ExecuteError::Unavailable(_)), "{e:?}");
    let prefer = pg(&url.replace("sslmode=disable", "sslmode=prefer"), json!({}));
    assert!(query(&*prefer, "SELECT 1", json!([])).await.is_ok());
    session_settings_do_not_outlive_the_call(&url).await;
}

// Regression: a committed SET must not leak into the next call on the same
// pooled session (analysis note: search_path changes name resolution).
async fn session_settings_do_not_outlive_the_call(url: &str) {
    let c = pg(url, json!({"pool_size": 1}));
    query(&*c, "SET search_path = pg_catalog", json!([]))
        .await
        .expect("set");
    let v = query(&*c, "SELECT current_setting('search_path') AS p", json!([]))
        .await
        .expect("read setting");
    // Tollgate pins the path at session start (no "$user" schema); RESET ALL
    // after the SET brings it back.
    assert_eq!(v["rows"][0][0], json!("pg_catalog,public,pg_temp"), "{v}");
}

#[tokio::test]
async fn postgres_down_is_unavailable_quickly() {
    let port = tollgate_tests::free_port();
    let url = format!("postgres://u:SuperSecret99@127.0.0.1:{port}/db");
    let c = pg(&url, json!({}));
    let t0 = Instant::now();
    let e = query(&*c, "SELECT 1", json!([])).await.unwrap_err();
    assert!(matches!(e, ExecuteError::Unavailable(_)), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
    assert!(!e.to_string().contains("SuperSecret99"), "{e}");
}

/// TLS to PostgreSQL with rustls: `verify-full` against the CA that issued
/// the server certificate works and the session is encrypted; a certificate
/// from another CA, or a host name the certificate does not carry, is refused
/// with a clear error that holds no secret; `require` encrypts without
/// checking; `disable` does not encrypt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tls_modes() {
    let server = PgServer::start_tls().expect("start PostgreSQL with TLS");
    server
        .create_database("shop", "CREATE TABLE t (id int);")
        .expect("database");
    let base = format!(
        "postgres://postgres:{}@127.0.0.1:{}/shop",
        server.password(),
        server.port()
    );
    let ssl_in_use = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let ca = server.ca_cert().display().to_string();
    let c = pg(
        &format!("{base}?sslmode=verify-full&sslrootcert={ca}"),
        json!({}),
    );
    let v = query(&*c, ssl_in_use, json!([])).await.unwrap();
    assert_eq!(v["rows"], json!([[true]]), "verify-full with the right CA");

    let other = server.other_ca_cert().display().to_string();
    let c = pg(
        &format!("{base}?sslmode=verify-full&sslrootcert={other}"),
        json!({}),
    );
    let e = query(&*c, "SELECT 1", json!([])).await.unwrap_err();
    assert!(matches!(e, ExecuteError::Unavailable(_)), "{e:?}");
    let text = e.to_string();
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    assert!(!text.contains(server.password()), "{text}");

    let by_name = base.replace("127.0.0.1", "localhost");
    let c = pg(
        &format!("{by_name}?sslmode=verify-full&sslrootcert={ca}"),
        json!({}),
    );
    let e = query(&*c, "SELECT 1", json!([])).await.unwrap_err();
    assert!(
        e.to_string().to_lowercase().contains("certificate"),
        "a name the certificate does not carry: {e}"
    );

    let c = pg(&format!("{base}?sslmode=require"), json!({}));
    let v = query(&*c, ssl_in_use, json!([])).await.unwrap();
    assert_eq!(v["rows"], json!([[true]]), "require encrypts");
    // The wire guard reads the TLS stream's plaintext: a row over the
    // session's limit (64 KiB + 64 KiB) is cut as it arrives, and the
    // pool carries on with encrypted sessions.
    let small = pg(
        &format!("{base}?sslmode=verify-full&sslrootcert={ca}"),
        json!({"max_bytes": 65536}),
    );
    let v = query(
        &*small,
        "SELECT 1 AS a, repeat('x', 10000000) AS v",
        json!([]),
    )
    .await
    .unwrap();
    assert_eq!(v["truncated"], json!(true), "{v}");
    assert_eq!(v["rows"], json!([]), "{v}");
    let v = query(&*small, ssl_in_use, json!([])).await.unwrap();
    assert_eq!(v["rows"], json!([[true]]), "a new encrypted session");
    let c = pg(&format!("{base}?sslmode=disable"), json!({}));
    let v = query(&*c, ssl_in_use, json!([])).await.unwrap();
    assert_eq!(v["rows"], json!([[false]]), "disable does not");
}

/// `max_affected_rows`: writes over the cap (policy's or the connection's,
/// the smaller wins) are rolled back with a clear error; the database's own
/// per-transaction count catches writes a statement's tag does not show
/// (a data-modifying CTE whose outer SELECT returns one row).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_max_affected_rows() {
    let server = PgServer::start().expect("start PostgreSQL");
    let fixture = "CREATE TABLE t (id int PRIMARY KEY, v text);
        INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 5) g;";
    let url = server.create_database("shop", fixture).expect("fixture");
    let c = pg(&url, json!({}));
    tollgate_tests::check_blast_radius(&*c).await;
    // 3 rows left (3, 4, 5). A CTE that deletes them all returns one row.
    let count = async || {
        query(&*c, "SELECT count(*) FROM t", json!([]))
            .await
            .unwrap()["rows"][0][0]
            .clone()
    };
    for sql in [
        "WITH d AS (DELETE FROM t RETURNING id) SELECT count(*) FROM d",
        "WITH d AS (DELETE FROM t RETURNING id) SELECT 1",
    ] {
        let e = tollgate_tests::query_capped(&*c, sql, 1).await.unwrap_err();
        assert!(
            matches!(e, ExecuteError::TooManyAffected { affected: 3, .. }),
            "{sql}: {e:?}"
        );
        assert_eq!(count().await, json!(3), "{sql}");
    }
    // The connection's own cap, and the stricter of the two wins.
    let capped = pg(&url, json!({"max_affected_rows": 1}));
    let e = query(&*capped, "DELETE FROM t WHERE id >= 4", json!([]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("more than the 1 allowed by connection `shop`"),
        "{e}"
    );
    let e = tollgate_tests::query_capped(&*capped, "DELETE FROM t WHERE id >= 4", 5)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("allowed by connection `shop`"), "{e}");
    let loose = pg(&url, json!({"max_affected_rows": 10}));
    let e = tollgate_tests::query_capped(&*loose, "DELETE FROM t WHERE id >= 4", 1)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("allowed by policy `capped`"), "{e}");
    assert_eq!(count().await, json!(3));
    // The session is clean after a refusal: the next call works.
    query(&*capped, "DELETE FROM t WHERE id = 5", json!([]))
        .await
        .unwrap();
    assert_eq!(count().await, json!(2));

    // sql_schema guards each listed table with the `sql:select` a query on
    // it asks (the gateway hides the tables policy does not permit).
    let out = call(&*c, "sql_schema", json!({"connection": "shop"}))
        .await
        .unwrap();
    let guarded: Vec<_> = out
        .item_guards
        .iter()
        .map(|g| {
            let r = &g.request;
            (
                g.pointer.as_str(),
                r.action.as_str(),
                r.resource.entity_uid(),
            )
        })
        .collect();
    assert_eq!(
        guarded,
        [(
            "/tables/0",
            "sql:select",
            "Tollgate::Table::\"shop/public.t\"".to_string()
        )]
    );
}

/// Backends of `db` still running a statement that contains `marker`.
fn running(server: &PgServer, marker: &str) -> u64 {
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
         AND query LIKE '%{marker}%' AND pid <> pg_backend_pid()"
    );
    server
        .psql("postgres", &sql)
        .expect("psql")
        .trim()
        .parse()
        .expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cancelled_or_timed_out_calls_stop_the_statement_on_the_server() {
    let server = PgServer::start().expect("start PostgreSQL");
    let url = server
        .create_database("shop", "CREATE TABLE t (id int);")
        .expect("fixture");
    let c = pg(&url, json!({"statement_timeout": "60s"}));
    let plan = c
        .analyse(
            "sql_query",
            &json!({"connection": "shop", "sql": "SELECT pg_sleep(30) AS slept"}),
        )
        .unwrap();

    // The caller goes away after ~1 s: the call returns at once, cancelled,
    // and the backend no longer runs the sleep.
    let limits = tollgate_tests::limits();
    let cancel = limits.cancel.clone();
    let started = Instant::now();
    let (r, ()) = tokio::join!(c.execute(&plan, limits), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let all = server
            .psql("postgres", "SELECT state, query FROM pg_stat_activity")
            .unwrap();
        assert_eq!(
            running(&server, "pg_sleep%(30)"),
            1,
            "the sleep runs: {all}"
        );
        cancel.cancel();
    });
    let took = started.elapsed();
    assert!(matches!(r, Err(ExecuteError::Cancelled)), "{r:?}");
    assert!(took < Duration::from_secs(4), "returned after {took:?}");
    assert_eq!(
        running(&server, "pg_sleep%(30)"),
        0,
        "the server stopped the sleep"
    );

    // The session it ran on is clean for the next call.
    let v = query(&*c, "SELECT 1 AS one", json!([]))
        .await
        .expect("next call");
    assert_eq!(v["rows"], json!([[1]]));

    // A time budget shorter than the connection's statement timeout: the
    // call ends as a timeout and the server stops the statement too.
    let limits = ExecLimits {
        timeout: Some(Duration::from_secs(1)),
        ..tollgate_tests::limits()
    };
    let started = Instant::now();
    let r = c.execute(&plan, limits).await;
    let took = started.elapsed();
    assert!(matches!(r, Err(ExecuteError::Timeout(1000))), "{r:?}");
    assert!(took < Duration::from_secs(4), "returned after {took:?}");
    assert_eq!(
        running(&server, "pg_sleep%(30)"),
        0,
        "the server stopped the sleep"
    );

    // Cancelled before it starts: nothing runs.
    let limits = tollgate_tests::limits();
    limits.cancel.cancel();
    let r = c.execute(&plan, limits).await;
    assert!(matches!(r, Err(ExecuteError::Cancelled)), "{r:?}");
    assert_eq!(running(&server, "pg_sleep%(30)"), 0);
}

/// Sessions are opened by Tollgate's own connector (it puts the wire guard
/// in front of the driver), which does not probe for a writable server: a
/// URL asking for one is refused when the connection is built, not ignored.
#[test]
fn postgres_target_session_attrs_is_refused_not_ignored() {
    use gateway_core::connector::ConnectorFactory;
    let factory = tollgate_sql::SqlConnectorFactory::postgres();
    let url = "postgres://u:SuperSecret99@db1,db2/shop?target_session_attrs=read-write";
    let e = match factory.build(
        "shop",
        &json!({"name": "shop", "kind": "postgres", "url": url}),
    ) {
        Ok(_) => panic!("built a connection that would ignore target_session_attrs"),
        Err(e) => e,
    };
    assert!(e.contains("target_session_attrs is not supported"), "{e}");
    assert!(!e.contains("SuperSecret99"), "{e}");
    let plain = url.replace("?target_session_attrs=read-write", "");
    assert!(
        factory
            .build(
                "shop",
                &json!({"name": "shop", "kind": "postgres", "url": plain})
            )
            .is_ok()
    );
}
