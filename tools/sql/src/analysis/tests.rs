//! Unit tests for the subtle parts of the walk: CTE scoping, claimed names,
//! WHERE triviality, name folding.

use super::*;

fn reqs(dialect: Dialect, schema: &str, sql: &str) -> Vec<(String, String)> {
    analyse(dialect, "shop", schema, sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .requests
        .into_iter()
        .map(|r| (r.action, r.resource.id))
        .collect()
}

fn pg(sql: &str) -> Vec<(String, String)> {
    reqs(Dialect::Postgres, "public", sql)
}

fn r(action: &str, id: &str) -> (String, String) {
    (action.to_string(), id.to_string())
}

#[test]
fn cte_name_is_not_a_table() {
    assert_eq!(
        pg("WITH x AS (SELECT * FROM orders) SELECT * FROM x"),
        vec![r("sql:select", "shop/public.orders")]
    );
}

#[test]
fn non_recursive_cte_reading_its_own_name_reads_the_real_table() {
    assert_eq!(
        pg("WITH orders AS (SELECT * FROM orders WHERE id > 1) SELECT * FROM orders"),
        vec![r("sql:select", "shop/public.orders")]
    );
    // Forward reference: b is not yet visible inside a.
    assert_eq!(
        pg("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a, b"),
        vec![r("sql:select", "shop/public.b")]
    );
}

#[test]
fn cte_scope_ends_with_its_query() {
    assert_eq!(
        pg("SELECT * FROM (WITH secret AS (SELECT 1) SELECT * FROM secret) s, secret"),
        vec![r("sql:select", "shop/public.secret")]
    );
}

#[test]
fn mysql_cte_names_match_case_sensitively() {
    assert_eq!(
        reqs(
            Dialect::MySql,
            "shop",
            "WITH Orders AS (SELECT 1) SELECT * FROM orders"
        ),
        vec![r("sql:select", "shop/shop.orders")]
    );
}

#[test]
fn data_modifying_cte_is_a_write() {
    let a = analyse(
        Dialect::Postgres,
        "shop",
        "public",
        "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d",
    )
    .unwrap();
    assert_eq!(a.requests[0].action, "sql:delete");
    let s = &a.statements[0];
    assert_eq!(s.kind, "delete");
    assert!(!s.read_only);
    assert!(!s.has_where);
}

#[test]
fn write_target_is_not_also_a_read_but_explicit_read_is() {
    assert_eq!(
        pg("INSERT INTO orders SELECT * FROM orders"),
        vec![
            r("sql:insert", "shop/public.orders"),
            r("sql:select", "shop/public.orders")
        ]
    );
    assert_eq!(
        pg("DELETE FROM orders WHERE id = 1"),
        vec![r("sql:delete", "shop/public.orders")]
    );
}

#[test]
fn mysql_multi_delete_alias_resolves_to_table() {
    assert_eq!(
        reqs(
            Dialect::MySql,
            "shop",
            "DELETE o FROM orders o JOIN customers c ON o.cid = c.id WHERE c.id = 1"
        ),
        vec![
            r("sql:delete", "shop/shop.orders"),
            r("sql:select", "shop/shop.orders"),
            r("sql:select", "shop/shop.customers")
        ]
    );
}

#[test]
fn trivially_true_where_counts_as_none() {
    use classify::filters_rows;
    let cond = |w: &str| {
        let stmts = parse(Dialect::Postgres, &format!("DELETE FROM t WHERE {w}")).unwrap();
        let Statement::Delete(d) = &stmts[0] else {
            panic!()
        };
        filters_rows(d.selection.as_ref())
    };
    for w in [
        "1=1",
        "true",
        "(1=1)",
        "id = 5 OR 1=1",
        "id = id",
        "'a' = 'a'",
        "NOT false",
    ] {
        assert!(!cond(w), "{w} should not count as a filter");
    }
    for w in [
        "id = 5",
        "id IN (SELECT id FROM x)",
        "id > 1 AND 1=1",
        "name IS NULL",
    ] {
        assert!(cond(w), "{w} should count as a filter");
    }
}

#[test]
fn identifier_folding_per_dialect() {
    assert_eq!(
        pg(r#"SELECT * FROM "Orders", ORDERS"#),
        vec![
            r("sql:select", "shop/public.Orders"),
            r("sql:select", "shop/public.orders")
        ]
    );
    assert_eq!(
        reqs(Dialect::MySql, "shop", "SELECT * FROM `Orders`"),
        vec![r("sql:select", "shop/shop.orders")]
    );
    assert_eq!(
        reqs(Dialect::Sqlite, "main", r#"SELECT * FROM "Orders""#),
        vec![r("sql:select", "shop/main.orders")]
    );
    assert_eq!(
        pg("SELECT * FROM pg_shadow"),
        vec![r("sql:select", "shop/pg_catalog.pg_shadow")]
    );
    assert_eq!(
        pg("SELECT * FROM shop.public.orders"),
        vec![r("sql:select", "shop/public.orders")]
    );
}

#[test]
fn table_function_is_a_function_not_a_table() {
    let a = analyse(
        Dialect::Postgres,
        "shop",
        "public",
        "SELECT * FROM pg_catalog.pg_read_file('/etc/passwd')",
    )
    .unwrap();
    assert_eq!(a.requests.len(), 2);
    assert_eq!(a.requests[0].resource, Resource::connection("shop"));
    assert_eq!(a.requests[1].action, "sql:call");
    assert_eq!(
        a.requests[1].resource,
        Resource::new("Function", "shop/pg_catalog.pg_read_file")
            .within(Resource::connection("shop"))
    );
    let f = &a.statements[0].functions;
    assert!(
        f.contains("pg_read_file") && f.contains("pg_catalog.pg_read_file"),
        "{f:?}"
    );
}

#[test]
fn resolution_change_must_be_alone() {
    let e = analyse(
        Dialect::Postgres,
        "shop",
        "public",
        "SET search_path = secret; SELECT * FROM t",
    )
    .unwrap_err();
    assert!(e.to_string().contains("own"), "{e}");
    assert!(
        analyse(
            Dialect::Postgres,
            "shop",
            "public",
            "SET search_path = secret"
        )
        .is_ok()
    );
}

#[test]
fn context_has_exactly_the_contract_keys() {
    let a = analyse(Dialect::Postgres, "shop", "public", "select 1").unwrap();
    let keys: Vec<_> = a.requests[0].context.keys().cloned().collect();
    assert_eq!(
        keys,
        ["columns", "functions", "has_where", "statement", "tables"]
    );
    assert_eq!(a.statements[0].sql, "SELECT 1");
}

#[test]
fn garbage_never_panics() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let alphabet: Vec<char> = "SELECT FROM WHERE ( ) ' \" ` ; -- /* */ $$ , . * = 1 a b DELETE WITH AS UNION \\ \n # ! + é \u{a0}"
        .chars()
        .collect();
    for _ in 0..3000 {
        let len = (seed % 80) as usize;
        let mut s = String::new();
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        for d in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
            let _ = analyse(d, "shop", "public", &s);
        }
    }
}

#[test]
fn huge_and_deep_inputs_are_refused_or_handled() {
    let long = format!("SELECT {}", vec!["1"; 200_000].join("+"));
    assert!(analyse(Dialect::Postgres, "shop", "public", &long).is_err());
    let deep = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(analyse(Dialect::Postgres, "shop", "public", &deep).is_err());
    let chain = format!("SELECT {} FROM t", vec!["a"; 20_000].join("+"));
    let _ = analyse(Dialect::Postgres, "shop", "public", &chain);
    let many = "SELECT 1;".repeat(10_000);
    let _ = analyse(Dialect::Sqlite, "shop", "main", &many);
}

/// Rough cost of one analysis of typical ~200-character SELECTs, and of the
/// column-lineage step within it (lineage, then the result's field origins).
/// `cargo test -p tollgate-sql --release --lib -- --ignored --nocapture bench`
#[test]
#[ignore = "micro-benchmark, run by hand in release mode"]
fn bench_typical_select() {
    let lists = crate::origins::ColumnLists::from_schema(
        &serde_json::json!({"tables": [
            {"schema": "public", "name": "orders", "columns": [{"name": "id"}, {"name": "total"},
                {"name": "customer_id"}, {"name": "created_at"}, {"name": "status"}]},
            {"schema": "public", "name": "customers", "columns": [{"name": "id"}, {"name": "name"},
                {"name": "email"}, {"name": "ssn"}, {"name": "city"}]}
        ]}),
        false,
    );
    for sql in [
        "SELECT o.id, o.total, c.name, c.email FROM orders o JOIN customers c ON c.id = o.customer_id \
         WHERE o.created_at > now() - interval '7 days' AND o.status IN ('paid', 'shipped') ORDER BY o.total DESC LIMIT 50",
        "SELECT replace(c.email, '@', ' at ') AS e, encode(c.email::bytea, 'hex') AS h, \
         substr(c.ssn, 1, 3) || '+' || substr(c.ssn, 5) AS s, count(*) OVER (PARTITION BY c.city) AS n \
         FROM customers c WHERE c.id > 10",
        "WITH recent AS (SELECT * FROM orders WHERE status = 'paid') SELECT c.*, r.total FROM recent r \
         JOIN customers c ON c.id = r.customer_id UNION ALL SELECT c.*, 0 FROM customers c LIMIT 20",
    ] {
        bench_one(sql, &lists);
    }
}

fn bench_one(sql: &str, lists: &crate::origins::ColumnLists) {
    let n = 20_000;
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / n as f64;
    let time = |f: &mut dyn FnMut()| {
        let at = std::time::Instant::now();
        for _ in 0..n {
            f();
        }
        per(at.elapsed())
    };
    let parse_only = time(&mut || {
        std::hint::black_box(parse(Dialect::Postgres, std::hint::black_box(sql)).unwrap());
    });
    let full = time(&mut || {
        std::hint::black_box(
            super::analyse_with(
                Dialect::Postgres,
                "shop",
                "public",
                None,
                lists,
                std::hint::black_box(sql),
            )
            .unwrap(),
        );
    });
    let parsed = parse(Dialect::Postgres, sql).unwrap();
    let missed = std::cell::Cell::new(false);
    let resolver = super::names::Resolver::new(Dialect::Postgres, "public", None, &missed);
    let lineage = time(&mut || {
        std::hint::black_box(super::lineage::lineage(
            std::hint::black_box(&parsed[0]),
            resolver,
            lists,
        ));
    });
    let l = super::lineage::lineage(&parsed[0], resolver, lists);
    let width = l.outputs.len();
    let driver = vec![None; width];
    let origins = time(&mut || {
        std::hint::black_box(crate::origins::result_origins(
            std::hint::black_box(&l),
            width,
            &driver,
            lists,
            &(),
        ));
    });
    println!(
        "{} chars: parse {:.1} µs, full analysis {:.1} µs per call (of which column lineage {:.1} µs); \
         result field origins {:.2} µs per result ({} columns)",
        sql.len(),
        parse_only,
        full,
        lineage,
        origins,
        width
    );
}

#[test]
fn details_name_the_real_operation() {
    let d = |sql: &str| {
        analyse(Dialect::Postgres, "shop", "public", sql)
            .unwrap()
            .statements[0]
            .detail
            .clone()
    };
    assert_eq!(d("EXPLAIN ANALYZE DELETE FROM t"), "explain analyze delete");
    assert_eq!(
        d("WITH x AS (DELETE FROM t RETURNING 1) SELECT * FROM x"),
        "select with nested delete"
    );
    assert_eq!(
        d("COPY t TO PROGRAM 'id'"),
        "copy program (runs a shell command on the server)"
    );
}
