//! What runs is exactly what policy saw (issue 8, items 1, 3 and 4), on real
//! servers, asserting on the database's state rather than on results alone:
//!
//! * the driver runs exactly one statement per analysed statement, even when
//!   handed a text that holds more (SQLite's own parser counts them; MySQL
//!   and PostgreSQL prepare exactly one);
//! * read-only SQLite calls run on a read-only open;
//! * every table and function runs under exactly the name policy saw, whatever
//!   the server's search path (`"$user"`), a `pg_*` name or an earlier call's
//!   settings, temporary tables or user variables say;
//! * pooled sessions carry nothing from one call to the next (settings,
//!   advisory locks, LISTEN, temporary tables, user variables).

use std::sync::Arc;

use gateway_core::connector::{Connector, ExecuteError};
use serde_json::{Value, json};
use tollgate_sql::prepared::PreparedStatement;
use tollgate_tests::{MariaDbServer, PgServer, TempDir, connector, query};

async fn actions(c: &dyn Connector, sql: &str) -> Vec<(String, String)> {
    let name = c.info().name.clone();
    let args = json!({"connection": name, "sql": sql});
    c.prepare("sql_query", &args).await;
    c.analyse("sql_query", &args)
        .unwrap_or_else(|e| panic!("analyse {sql}: {e}"))
        .requests
        .into_iter()
        .map(|r| (r.action, r.resource.id))
        .collect()
}

fn refused(c: &dyn Connector, sql: &str) -> String {
    let name = c.info().name.clone();
    match c.analyse("sql_query", &json!({"connection": name, "sql": sql})) {
        Ok(p) => panic!("{sql} was analysed: {:?}", p.requests),
        Err(e) => e.to_string(),
    }
}

/// Execute `sql` as ONE prepared statement, as if an analyser had let it
/// through: the driver's own wall is what is tested.
async fn run_unanalysed(
    c: &dyn Connector,
    sql: &str,
    read_only: bool,
) -> Result<Value, ExecuteError> {
    let plan = tollgate_sql::plan_for_query(
        vec![],
        vec![PreparedStatement {
            kind: "select".into(),
            tables: vec![],
            sql: sql.into(),
            touches_session: false,
            lineage: Default::default(),
        }],
        vec![],
        None,
        read_only,
    );
    c.execute(&plan, tollgate_tests::limits())
        .await
        .map(|o| o.value)
}

async fn scalar(c: &dyn Connector, sql: &str) -> Value {
    let v = query(c, sql, json!([]))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    v["rows"][0][0].clone()
}

const PG_FIXTURE: &str = r#"
CREATE TABLE orders (id int PRIMARY KEY, note text);
INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 5) g;
CREATE TABLE salaries (who text, amount int);
INSERT INTO salaries VALUES ('public-row', 1);
CREATE SCHEMA postgres;
CREATE TABLE postgres.salaries (who text, amount int);
INSERT INTO postgres.salaries VALUES ('user-schema-row', 999);
CREATE SCHEMA hr;
CREATE TABLE hr.salaries (who text, amount int);
INSERT INTO hr.salaries VALUES ('hr-row', 5);
CREATE TABLE public.pg_secret (s text);
INSERT INTO public.pg_secret VALUES ('hidden-secret');
CREATE FUNCTION public.lower(i int) RETURNS text LANGUAGE sql AS $$ SELECT 'user-lower' $$;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_names_and_sessions() {
    let server = PgServer::start().expect("start PostgreSQL");
    let url = server
        .create_database("sound", PG_FIXTURE)
        .expect("fixture");
    // The attack is real: a plain session of this role reads the "$user" schema.
    let plain = server.psql("sound", "SELECT who FROM salaries").unwrap();
    assert_eq!(plain.trim(), "user-schema-row");

    // A server default that would make backslashes escape in plain strings.
    server
        .psql(
            "postgres",
            "ALTER DATABASE sound SET standard_conforming_strings = off",
        )
        .unwrap();
    let c = connector("postgres", "shop", json!({"url": url, "pool_size": 1}));
    let c = &*c;
    assert_eq!(
        scalar(c, "SELECT current_setting('standard_conforming_strings')").await,
        json!("on")
    );

    // --- unqualified names resolve the way the database does (its own search
    // path, read from a fresh session), and run under exactly that name
    assert_eq!(
        actions(c, "SELECT who FROM salaries").await,
        vec![("sql:select".into(), "shop/postgres.salaries".into())]
    );
    assert_eq!(
        scalar(c, "SELECT who FROM salaries").await,
        json!("user-schema-row")
    );
    assert_eq!(
        actions(c, "SELECT * FROM pg_secret").await,
        vec![("sql:select".into(), "shop/public.pg_secret".into())]
    );
    assert_eq!(
        scalar(c, "SELECT s FROM pg_secret").await,
        json!("hidden-secret")
    );
    assert_eq!(
        actions(c, "SELECT * FROM pg_class").await,
        vec![("sql:select".into(), "shop/pg_catalog.pg_class".into())]
    );
    // A table created after the catalog was read is found (a miss reads it again).
    server
        .psql(
            "sound",
            "CREATE TABLE public.late (x int); INSERT INTO public.late VALUES (7)",
        )
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        actions(c, "SELECT x FROM late").await,
        vec![("sql:select".into(), "shop/public.late".into())]
    );
    assert_eq!(scalar(c, "SELECT x FROM late").await, json!(7));
    // Without a catalog (policy tests, a database that is down) the static
    // rule applies; the executed text still names what policy saw.
    let offline = tollgate_sql::analysis::analyse(
        tollgate_sql::analysis::Dialect::Postgres,
        "shop",
        "public",
        "SELECT who FROM salaries",
    )
    .unwrap();
    assert_eq!(
        offline.statements[0].sql,
        "SELECT who FROM \"public\".\"salaries\""
    );

    // --- a call that changes the session leaves nothing for the next one
    let pinned = json!("pg_catalog,public,pg_temp");
    assert_eq!(
        scalar(c, "SELECT current_setting('search_path')").await,
        pinned
    );
    assert!(
        actions(
            c,
            "UPDATE pg_settings SET setting = 'hr, public' WHERE name = 'search_path'"
        )
        .await
        .contains(&("sql:admin".into(), "shop/pg_catalog.pg_settings".into()))
    );
    query(
        c,
        "UPDATE pg_settings SET setting = 'hr, public' WHERE name = 'search_path'",
        json!([]),
    )
    .await
    .expect("update pg_settings");
    assert_eq!(
        scalar(c, "SELECT who FROM salaries").await,
        json!("user-schema-row"),
        "another call's settings do not change what a name resolves to"
    );
    assert_eq!(
        scalar(c, "SELECT current_setting('search_path')").await,
        pinned
    );
    query(
        c,
        "SELECT set_config('search_path', 'hr', false)",
        json!([]),
    )
    .await
    .expect("set_config");
    assert_eq!(
        scalar(c, "SELECT who FROM salaries").await,
        json!("user-schema-row")
    );
    assert_eq!(
        scalar(c, "SELECT who FROM hr.salaries").await,
        json!("hr-row")
    );

    // advisory locks, LISTEN, temporary tables
    query(c, "SELECT pg_advisory_lock(42)", json!([]))
        .await
        .expect("lock");
    let held = server
        .psql(
            "sound",
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'",
        )
        .unwrap();
    assert_eq!(held.trim(), "0", "the pooled session still holds the lock");
    query(c, "LISTEN chan", json!([])).await.expect("listen");
    assert_eq!(
        scalar(c, "SELECT count(*) FROM pg_listening_channels()").await,
        json!(0)
    );
    query(
        c,
        "CREATE TEMP TABLE orders AS SELECT 99 AS id, 'temp' AS note",
        json!([]),
    )
    .await
    .expect("temp table");
    assert_eq!(scalar(c, "SELECT count(*) FROM orders").await, json!(5));
    let temps = server
        .psql(
            "sound",
            "SELECT count(*) FROM pg_class WHERE relpersistence = 't' AND relname = 'orders'",
        )
        .unwrap();
    assert_eq!(temps.trim(), "0", "the temporary table outlived its call");

    // --- functions: a vetted name runs the built-in, never a user function
    assert_eq!(
        actions(c, "SELECT lower('A')").await,
        vec![("sql:select".into(), "shop".into())]
    );
    let e = query(c, "SELECT lower(1)", json!([]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("pg_catalog.lower(integer) does not exist"),
        "the user's public.lower(int) must not run as the built-in: {e}"
    );
    assert!(
        actions(c, "SELECT public.lower(1)")
            .await
            .contains(&("sql:call".into(), "shop/public.lower".into()))
    );
    // a built-in that reads the table named by its argument reads that table
    assert_eq!(
        actions(c, "SELECT table_to_xml('hr.salaries', true, true, '')").await,
        vec![("sql:select".into(), "shop/hr.salaries".into())]
    );
    let xml = scalar(c, "SELECT table_to_xml('hr.salaries', true, true, '')").await;
    assert!(xml.as_str().unwrap_or("").contains("hr-row"), "{xml}");
    let xml = scalar(c, "SELECT table_to_xml('salaries', true, true, '')").await;
    assert!(
        xml.as_str().unwrap_or("").contains("user-schema-row"),
        "{xml}"
    );
    assert!(
        actions(c, "SELECT table_to_xml('salaries', true, true, '')")
            .await
            .contains(&("sql:select".into(), "shop/postgres.salaries".into()))
    );

    // --- the driver prepares exactly one statement
    let e = run_unanalysed(c, "SELECT 1; DELETE FROM orders", true)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("multiple commands"), "{e}");
    assert_eq!(scalar(c, "SELECT count(*) FROM orders").await, json!(5));
}

#[tokio::test]
async fn sqlite_one_statement_and_read_only_open() {
    let dir = TempDir::new("tollgate-sound").expect("temp dir");
    let path = dir.path().join("shop.db");
    let c: Arc<dyn Connector> = connector(
        "sqlite",
        "demo",
        json!({"path": path, "create_if_missing": true, "pool_size": 1}),
    );
    let c = &*c;
    query(
        c,
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT)",
        json!([]),
    )
    .await
    .expect("create");
    query(
        c,
        "INSERT INTO orders (note) VALUES ('a'), ('b'), ('c'), ('d'), ('e')",
        json!([]),
    )
    .await
    .expect("insert");
    let count = async || scalar(c, "SELECT count(*) FROM orders").await;

    // The printer-vs-driver attack is refused at analysis...
    for sql in [
        "SELECT 1 AS [x]]; PRAGMA query_only=OFF; DELETE FROM orders; --]",
        "SELECT 1 AS [x]]; VACUUM INTO 'copy.db'; --]",
    ] {
        let why = refused(c, sql);
        assert!(why.contains("written back unambiguously"), "{why}");
    }
    // ...and, were a text with several statements ever handed to the driver,
    // SQLite's own parser counts them and nothing runs.
    let e = run_unanalysed(c, "SELECT 1 AS x; DELETE FROM orders; --", false)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("reads 2 statements"), "{e}");
    assert_eq!(count().await, json!(5));
    assert!(!dir.path().join("copy.db").exists());

    // Read-only calls run on a read-only open: no PRAGMA makes them write.
    let e = run_unanalysed(c, "PRAGMA query_only = OFF", true).await;
    let _ = e; // allowed or not, the open stays read-only:
    let e = run_unanalysed(c, "DELETE FROM orders", true)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("readonly") || e.contains("read-only"), "{e}");
    assert_eq!(count().await, json!(5));

    // A temporary table never shadows the table policy saw.
    query(c, "CREATE TEMP TABLE orders (id INTEGER)", json!([]))
        .await
        .expect("temp table");
    assert_eq!(count().await, json!(5));
    query(c, "DELETE FROM orders WHERE id = 1", json!([]))
        .await
        .expect("delete one");
    assert_eq!(count().await, json!(4), "the delete hit main.orders");
}

#[tokio::test]
async fn mariadb_one_statement_and_no_session_carry_over() {
    let server = MariaDbServer::start().expect("start MariaDB");
    let url = server
        .create_database(
            "sound",
            "CREATE TABLE orders (id INT PRIMARY KEY, note TEXT); \
             INSERT INTO orders VALUES (1,'a'),(2,'b'),(3,'c'),(4,'d'),(5,'e');",
        )
        .expect("fixture");
    // Server defaults that change how quotes and backslashes tokenize.
    server
        .root_sql("SET GLOBAL sql_mode = 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES'")
        .unwrap();
    let c = connector("mysql", "shop", json!({"url": url, "pool_size": 1}));
    let c = &*c;
    let mode = scalar(c, "SELECT @@SESSION.sql_mode").await;
    let mode = mode.as_str().unwrap_or_default();
    assert!(
        mode.contains("STRICT_TRANS_TABLES")
            && !mode.contains("ANSI_QUOTES")
            && !mode.contains("NO_BACKSLASH_ESCAPES"),
        "{mode}"
    );

    // A string ending in an escaped backslash: sqlparser writes it back
    // unescaped, so the round-trip proof refuses it.
    let why = refused(c, r"SELECT 'a\\', 'b; DELETE FROM orders; -- '");
    assert!(why.contains("written back unambiguously"), "{why}");
    // The binary protocol prepares exactly one statement.
    let e = run_unanalysed(c, "SELECT 1; DELETE FROM orders", false)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("syntax"), "{e}");
    assert_eq!(scalar(c, "SELECT count(*) FROM orders").await, json!(5));

    // User variables do not outlive their call.
    query(
        c,
        "SELECT @leak := (SELECT note FROM orders WHERE id = 1)",
        json!([]),
    )
    .await
    .expect("assign");
    assert_eq!(scalar(c, "SELECT @leak").await, Value::Null);
    // Nor do temporary tables (which would shadow the real one).
    query(
        c,
        "CREATE TEMPORARY TABLE orders (id INT, note TEXT)",
        json!([]),
    )
    .await
    .expect("temp");
    assert_eq!(scalar(c, "SELECT count(*) FROM orders").await, json!(5));
}
