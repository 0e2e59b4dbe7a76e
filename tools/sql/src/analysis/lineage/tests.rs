//! Lineage cases: each output column's sources through transformations,
//! scopes and set operations, and the widening rules on doubt.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

use super::{ColumnCatalog, Lineage, Source, lineage};
use crate::analysis::catalog::Lookup;
use crate::analysis::names::Resolver;
use crate::analysis::{Dialect, TableRef, parse};

fn t(schema: &str, table: &str) -> TableRef {
    TableRef {
        schema: schema.into(),
        table: table.into(),
    }
}

fn catalog() -> BTreeMap<TableRef, Vec<String>> {
    let mut c = BTreeMap::new();
    for (table, cols) in [
        ("customers", &["id", "name", "email", "ssn"][..]),
        ("orders", &["id", "customer_id", "amount", "status"][..]),
    ] {
        c.insert(
            t("public", table),
            cols.iter().map(|s| s.to_string()).collect(),
        );
        c.insert(
            t("main", table),
            cols.iter().map(|s| s.to_string()).collect(),
        );
    }
    c
}

fn run_with(dialect: Dialect, sql: &str, cat: &dyn ColumnCatalog) -> Lineage {
    let missed = Cell::new(false);
    let schema = match dialect {
        Dialect::Postgres => "public",
        Dialect::Sqlite => "main",
        Dialect::MySql => "shop",
    };
    let resolver = Resolver {
        dialect,
        default_schema: schema,
        lookup: Lookup {
            catalog: None,
            missed: &missed,
        },
    };
    let parsed = parse(dialect, sql).expect("parses");
    lineage(&parsed[0], resolver, cat)
}

fn run(sql: &str) -> Lineage {
    run_with(Dialect::Postgres, sql, &catalog())
}

/// Column names (`table.column`, or `table.*` for AnyOf) per output.
fn cols(l: &Lineage) -> Vec<BTreeSet<String>> {
    l.outputs.iter().map(|o| names(&o.sources)).collect()
}

fn names(s: &BTreeSet<Source>) -> BTreeSet<String> {
    s.iter()
        .map(|s| match s {
            Source::Column(t, c) => format!("{}.{c}", t.table),
            Source::AnyOf(t) => format!("{}.*", t.table),
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn transformations_keep_their_source() {
    let l = run(
        "SELECT replace(email,'@',' at '), encode(email::bytea,'hex'), substr(ssn,1,3)||'+'||substr(ssn,5), name FROM customers",
    );
    assert!(l.exact);
    assert_eq!(
        cols(&l),
        vec![
            set(&["customers.email"]),
            set(&["customers.email"]),
            set(&["customers.ssn"]),
            set(&["customers.name"])
        ]
    );
    assert!(!l.outputs[0].bare && l.outputs[3].bare);
}

#[test]
fn case_coalesce_aggregates_windows_and_json() {
    let l = run(
        "SELECT CASE WHEN id > 1 THEN email ELSE name END, coalesce(ssn, 'x'), string_agg(substr(ssn, 1, 1), ''), \
         lag(email) OVER (PARTITION BY name ORDER BY id), json_build_object('e', email), count(ssn) \
         FROM customers GROUP BY id, email, name, ssn",
    );
    let c = cols(&l);
    assert_eq!(
        c[0],
        set(&["customers.id", "customers.email", "customers.name"])
    );
    assert_eq!(c[1], set(&["customers.ssn"]));
    assert_eq!(c[2], set(&["customers.ssn"]));
    assert!(c[3].contains("customers.email"));
    assert_eq!(c[4], set(&["customers.email"]));
    assert!(l.outputs[5].count_only && !l.outputs[4].count_only);
}

#[test]
fn ctes_subqueries_aliases_and_unions() {
    let l = run("WITH x AS (SELECT ssn AS a, name FROM customers) \
         SELECT y.a, (SELECT max(email) FROM customers c2 WHERE c2.id = o.customer_id) \
         FROM (SELECT a FROM x) AS y, orders o");
    assert_eq!(
        cols(&l),
        vec![set(&["customers.ssn"]), set(&["customers.email"])]
    );
    let u = run("SELECT name FROM customers UNION ALL SELECT ssn FROM customers");
    assert_eq!(cols(&u), vec![set(&["customers.name", "customers.ssn"])]);
    let renamed = run("SELECT q.z FROM (SELECT email FROM customers) AS q(z)");
    assert_eq!(cols(&renamed), vec![set(&["customers.email"])]);
}

#[test]
fn wildcards_expand_from_the_catalog() {
    let l = run("SELECT *, o.* FROM customers c JOIN orders o ON o.customer_id = c.id");
    assert!(l.exact);
    assert_eq!(l.outputs.len(), 12, "* is 4 + 4 columns, o.* 4 more");
    assert_eq!(cols(&l)[3], set(&["customers.ssn"]));
    assert_eq!(cols(&l)[7], set(&["orders.status"]));
    assert_eq!(cols(&l)[11], set(&["orders.status"]));
}

#[test]
fn unknown_columns_widen_and_unknown_width_is_inexact() {
    let l = run_with(Dialect::Postgres, "SELECT *, hex(ssn) FROM people", &());
    assert!(!l.exact, "a * over unknown columns has unknown width");
    let all = names(&l.all_sources());
    assert!(all.contains("people.*") && all.contains("people.ssn"));
    // A bare column of a table with unknown columns still names that column.
    let b = run_with(Dialect::Sqlite, "SELECT ssn FROM people", &());
    assert_eq!(cols(&b), vec![set(&["people.ssn"])]);
    assert!(b.outputs[0].bare);
}

#[test]
fn table_functions_and_unresolvable_names_depend_on_everything() {
    let l = run("SELECT v FROM customers, json_each_text(to_json(customers)) AS j(k, v)");
    assert!(names(&l.all_sources()).contains("customers.*"));
    // Not a column the catalog knows: it could be anything in the statement.
    let u = run("SELECT nosuchthing FROM customers");
    assert_eq!(cols(&u), vec![set(&["customers.*"])]);
    let w = run("SELECT row_to_json(c) FROM customers c");
    assert_eq!(
        cols(&w)[0],
        set(&[
            "customers.id",
            "customers.name",
            "customers.email",
            "customers.ssn"
        ])
    );
    let rel = run("SELECT table_to_xml('customers', true, false, '')");
    assert_eq!(cols(&rel), vec![set(&["customers.*"])]);
}

#[test]
fn predicates_are_reads_not_lineage() {
    let l = run("SELECT name FROM customers WHERE ssn LIKE '1%' ORDER BY email");
    assert_eq!(cols(&l), vec![set(&["customers.name"])]);
    let reads = names(&l.reads);
    for c in ["customers.ssn", "customers.email", "customers.name"] {
        assert!(reads.contains(c), "{c} read: {reads:?}");
    }
    let j = run(
        "SELECT o.id FROM orders o JOIN customers c ON c.email = 'a@b.c' AND c.id = o.customer_id",
    );
    assert!(names(&j.reads).contains("customers.email"));
    let sub = run(
        "SELECT id FROM orders WHERE customer_id IN (SELECT id FROM customers WHERE ssn = '1')",
    );
    assert!(names(&sub.reads).contains("customers.ssn"));
}

#[test]
fn returning_and_writes() {
    let l = run("UPDATE customers SET name = 'x' WHERE email = 'a' RETURNING ssn, upper(name)");
    assert_eq!(
        cols(&l),
        vec![set(&["customers.ssn"]), set(&["customers.name"])]
    );
    assert!(names(&l.reads).contains("customers.email"));
    let d = run(
        "DELETE FROM customers USING orders WHERE orders.customer_id = customers.id RETURNING customers.email",
    );
    assert_eq!(cols(&d), vec![set(&["customers.email"])]);
    let i = run(
        "INSERT INTO orders (customer_id) SELECT id FROM customers WHERE ssn = '1' RETURNING id",
    );
    assert_eq!(cols(&i), vec![set(&["orders.id"])]);
    assert!(names(&i.reads).contains("customers.ssn"));
}

#[test]
fn recursive_ctes_and_unmodelled_statements_widen() {
    let l = run(
        "WITH RECURSIVE r(n, s) AS (SELECT 1, ssn FROM customers UNION ALL SELECT n + 1, s FROM r WHERE n < 3) SELECT s FROM r",
    );
    assert!(names(&l.all_sources()).contains("customers.*"));
    let e = run("EXPLAIN SELECT ssn FROM customers");
    assert!(!e.exact && e.outputs.is_empty());
}

#[test]
fn mysql_and_sqlite_fold_names() {
    let l = run_with(
        Dialect::MySql,
        "SELECT HEX(Email) FROM Customers",
        &BTreeMap::from([(t("shop", "customers"), vec!["email".to_string()])]),
    );
    assert_eq!(cols(&l), vec![set(&["customers.email"])]);
    let s = run_with(
        Dialect::Sqlite,
        "WITH X AS (SELECT ssn AS a FROM customers) SELECT a FROM x",
        &catalog(),
    );
    assert_eq!(cols(&s), vec![set(&["customers.ssn"])]);
}

/// The test catalog plus view definitions, as a connection reads them.
struct WithViews {
    tables: BTreeMap<TableRef, Vec<String>>,
    views: BTreeMap<TableRef, String>,
}

impl ColumnCatalog for WithViews {
    fn columns(&self, table: &TableRef) -> Option<Vec<String>> {
        self.tables.get(table).cloned()
    }
    fn view(&self, table: &TableRef) -> Option<String> {
        self.views.get(table).cloned()
    }
}

fn with_views(schema: &str, views: &[(&str, &[&str], &str)]) -> WithViews {
    let mut c = WithViews {
        tables: catalog(),
        views: BTreeMap::new(),
    };
    for (name, cols, def) in views {
        c.tables.insert(
            t(schema, name),
            cols.iter().map(|s| s.to_string()).collect(),
        );
        c.views.insert(t(schema, name), def.to_string());
    }
    c
}

#[test]
fn views_are_followed_to_their_tables() {
    // PostgreSQL reports the query (fully qualified, as read with
    // search_path = pg_catalog); the view's column names come from the catalog.
    let pg = with_views(
        "public",
        &[
            (
                "contacts",
                &["id", "mail", "tax_id"],
                " SELECT customers.id, customers.email AS mail, customers.ssn AS tax_id FROM public.customers;",
            ),
            (
                "email_hex",
                &["id", "h"],
                "SELECT id, encode(email::bytea, 'hex'::text) AS h FROM public.customers",
            ),
            // A view over a view.
            (
                "hex_again",
                &["h2"],
                "SELECT upper(h) AS h2 FROM public.email_hex",
            ),
        ],
    );
    let l = run_with(
        Dialect::Postgres,
        "SELECT tax_id, lower(mail) FROM contacts",
        &pg,
    );
    assert!(l.exact);
    assert_eq!(
        cols(&l),
        vec![
            set(&["customers.ssn", "contacts.tax_id"]),
            set(&["customers.email", "contacts.mail"])
        ]
    );
    // Through a view the value is not the bare source column: partial does not fit.
    assert!(!l.outputs[0].bare);
    let l = run_with(Dialect::Postgres, "SELECT * FROM email_hex", &pg);
    assert!(l.exact);
    assert_eq!(
        cols(&l),
        vec![
            set(&["customers.id", "email_hex.id"]),
            set(&["customers.email", "email_hex.h"])
        ]
    );
    let l = run_with(Dialect::Postgres, "SELECT h2 FROM hex_again", &pg);
    assert_eq!(
        cols(&l),
        vec![set(&["customers.email", "email_hex.h", "hex_again.h2"])]
    );
    // What the view reads is read (policy's `columns`).
    assert!(l.read_columns().contains("public.customers.email"));
    // A qualified reference and an alias reach the view's columns too.
    let l = run_with(
        Dialect::Postgres,
        "SELECT c.tax_id FROM public.contacts c",
        &pg,
    );
    assert_eq!(cols(&l), vec![set(&["customers.ssn", "contacts.tax_id"])]);
}

#[test]
fn sqlite_and_mysql_view_definitions() {
    // SQLite keeps the CREATE VIEW text, column list included; its `*` is
    // expanded when the view is read.
    let lite = with_views(
        "main",
        &[
            (
                "renamed",
                &["a", "b"],
                "CREATE VIEW renamed(a, b) AS SELECT ssn, name FROM customers",
            ),
            (
                "everything",
                &["id", "name", "email", "ssn"],
                "CREATE VIEW everything AS SELECT * FROM customers",
            ),
        ],
    );
    let l = run_with(Dialect::Sqlite, "SELECT b, a FROM renamed", &lite);
    assert_eq!(
        cols(&l),
        vec![
            set(&["customers.name", "renamed.b"]),
            set(&["customers.ssn", "renamed.a"])
        ]
    );
    let l = run_with(Dialect::Sqlite, "SELECT email FROM everything", &lite);
    assert_eq!(
        cols(&l),
        vec![set(&["customers.email", "everything.email"])]
    );
    // MariaDB reports the query fully qualified and quoted.
    let mut my = with_views(
        "shop",
        &[(
            "contacts",
            &["id", "mail"],
            "select `shop`.`customers`.`id` AS `id`,`shop`.`customers`.`email` AS `mail` from `shop`.`customers`",
        )],
    );
    for (table, cols) in catalog() {
        my.tables.insert(t("shop", &table.table), cols);
    }
    let l = run_with(
        Dialect::MySql,
        "SELECT concat(mail, '!') FROM contacts",
        &my,
    );
    assert_eq!(cols(&l), vec![set(&["customers.email", "contacts.mail"])]);
}

#[test]
fn views_that_cannot_be_followed_are_opaque() {
    let c = with_views(
        "public",
        &[
            ("broken", &["x"], "SELECT FROM WHERE ((("),
            // Defined in terms of itself: followed MAX_VIEW_DEPTH deep, then opaque.
            ("looped", &["x"], "SELECT x FROM public.looped"),
            // A definition wider than the catalog's list: every column may be any output.
            ("drifted", &["a"], "SELECT ssn, name FROM public.customers"),
        ],
    );
    for sql in ["SELECT x FROM broken", "SELECT x FROM looped"] {
        let l = run_with(Dialect::Postgres, sql, &c);
        let all = names(&l.all_sources());
        assert!(
            l.outputs.iter().all(|o| !o.sources.is_empty()),
            "{sql}: {l:?}"
        );
        assert!(all.iter().any(|n| n.ends_with(".*")), "{sql}: {all:?}");
    }
    let l = run_with(Dialect::Postgres, "SELECT a FROM drifted", &c);
    assert_eq!(
        cols(&l),
        vec![set(&["customers.ssn", "customers.name", "drifted.a"])]
    );
}

#[test]
fn joins_that_merge_columns_put_them_first_once() {
    // `USING`: the shared column once, first, from both sides; then the rest
    // of each side, so positions line up with what the database returns.
    let l = run("SELECT * FROM customers JOIN orders USING (id)");
    assert!(l.exact);
    assert_eq!(
        cols(&l),
        vec![
            set(&["customers.id", "orders.id"]),
            set(&["customers.name"]),
            set(&["customers.email"]),
            set(&["customers.ssn"]),
            set(&["orders.customer_id"]),
            set(&["orders.amount"]),
            set(&["orders.status"]),
        ]
    );
    // NATURAL: every shared name.
    let l =
        run("SELECT * FROM orders o NATURAL JOIN (SELECT id, email AS status FROM customers) c");
    assert!(l.exact);
    assert_eq!(
        cols(&l),
        vec![
            set(&["orders.id", "customers.id"]),
            set(&["orders.status", "customers.email"]),
            set(&["orders.customer_id"]),
            set(&["orders.amount"]),
        ]
    );
    // SQLite keeps the left's order and drops the right's shared columns.
    let l = run_with(
        Dialect::Sqlite,
        "SELECT * FROM customers JOIN orders USING (id)",
        &catalog(),
    );
    assert!(l.exact);
    assert_eq!(
        cols(&l),
        vec![
            set(&["customers.id", "orders.id"]),
            set(&["customers.name"]),
            set(&["customers.email"]),
            set(&["customers.ssn"]),
            set(&["orders.customer_id"]),
            set(&["orders.amount"]),
            set(&["orders.status"]),
        ]
    );
    let l = run_with(
        Dialect::Sqlite,
        "SELECT * FROM orders NATURAL JOIN (SELECT email AS status, id FROM customers) c",
        &catalog(),
    );
    assert_eq!(
        cols(&l),
        vec![
            set(&["orders.id", "customers.id"]),
            set(&["orders.customer_id"]),
            set(&["orders.amount"]),
            set(&["orders.status", "customers.email"]),
        ]
    );
    // A qualified star is the relation's own columns, shared ones included.
    let l = run("SELECT o.* FROM customers JOIN orders o USING (id)");
    assert_eq!(l.outputs.len(), 4);
    // A shared column a side lacks, or a side of unknown width: positions unknown.
    let l = run("SELECT * FROM customers JOIN mystery USING (id)");
    assert!(!l.exact);
    let l = run("SELECT * FROM customers JOIN orders USING (nope)");
    assert!(!l.exact);
}

#[test]
fn output_names_fold_like_references() {
    // `AS N` is `n` to PostgreSQL, MySQL and SQLite alike.
    for dialect in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
        let l = run_with(
            dialect,
            "SELECT n, e FROM (SELECT name AS N, Email FROM customers) s",
            &{
                let mut c = catalog();
                for (table, cols) in catalog() {
                    c.insert(t("shop", &table.table), cols);
                }
                c
            },
        );
        assert_eq!(cols(&l)[0], set(&["customers.name"]), "{dialect:?}: {l:?}");
    }
    // A quoted PostgreSQL alias keeps its case: `n` does not name `"N"`.
    let l = run("SELECT \"N\" FROM (SELECT name AS \"N\", ssn FROM customers) s");
    assert_eq!(cols(&l), vec![set(&["customers.name"])]);
}

#[test]
fn statements_not_modelled_still_read_their_queries() {
    let l =
        run("CREATE TEMP TABLE t AS SELECT id, encode(email::bytea, 'hex') AS h FROM customers");
    assert!(!l.exact && l.outputs.is_empty());
    let read = l.read_columns();
    assert!(read.contains("public.customers.email"), "{read:?}");
    let l = run_with(
        Dialect::MySql,
        "SET @x = (SELECT hex(ssn) FROM customers WHERE id = 1)",
        &{
            let mut c = catalog();
            for (table, cols) in catalog() {
                c.insert(t("shop", &table.table), cols);
            }
            c
        },
    );
    assert!(l.read_columns().contains("shop.customers.ssn"), "{l:?}");
}

#[test]
fn carried_sources_reach_every_output() {
    let mut l = run("SELECT h, count(*) FROM t GROUP BY h");
    let earlier: BTreeSet<Source> =
        [Source::Column(t("public", "customers"), "email".into())].into();
    l.carry(&earlier);
    assert!(
        l.outputs[0]
            .sources
            .contains(&earlier.iter().next().unwrap().clone())
    );
    assert!(!l.outputs[0].bare);
    // A count still reveals no value; positions unknown still reach it.
    assert!(l.outputs[1].count_only);
    assert!(l.all_sources().is_superset(&earlier));
}

#[test]
fn a_call_carries_what_side_effects_may_have_kept() {
    let cat = {
        let mut c = catalog();
        for (table, cols) in catalog() {
            c.insert(t("shop", &table.table), cols);
        }
        c
    };
    let analyse = |dialect: Dialect, schema: &str, sql: &str| {
        crate::analysis::analyse_with(dialect, "shop", schema, None, &cat, sql)
            .expect("analyses")
            .statements
    };
    // A temporary table, then a read of it: its values came from customers.
    let st = analyse(
        Dialect::MySql,
        "shop",
        "CREATE TEMPORARY TABLE t AS SELECT hex(email) AS h FROM customers; SELECT h FROM t",
    );
    assert!(names(&st[1].lineage.outputs[0].sources).contains("customers.email"));
    // A session variable set in one statement and read in the next.
    let st = analyse(
        Dialect::MySql,
        "shop",
        "SELECT @x := ssn FROM customers; SELECT @x",
    );
    assert!(names(&st[1].lineage.outputs[0].sources).contains("customers.ssn"));
    // Reads with no side effect leave nothing behind.
    let st = analyse(
        Dialect::Postgres,
        "public",
        "SELECT ssn FROM customers; SELECT name FROM customers",
    );
    assert_eq!(cols(&st[1].lineage), vec![set(&["customers.name"])]);
}

#[test]
fn merged_columns_follow_each_dialects_order() {
    let my = {
        let mut c = catalog();
        for (table, cols) in catalog() {
            c.insert(t("shop", &table.table), cols);
        }
        c
    };
    // MariaDB: a RIGHT JOIN's first table is the right one: shared columns
    // in its order, then its own, then the left's.
    let l = run_with(
        Dialect::MySql,
        "SELECT * FROM customers RIGHT JOIN orders USING (id)",
        &my,
    );
    assert!(l.exact);
    assert_eq!(
        cols(&l),
        vec![
            set(&["customers.id", "orders.id"]),
            set(&["orders.customer_id"]),
            set(&["orders.amount"]),
            set(&["orders.status"]),
            set(&["customers.name"]),
            set(&["customers.email"]),
            set(&["customers.ssn"]),
        ]
    );
    // MariaDB orders shared columns as the first table has them, PostgreSQL
    // as USING lists them.
    let q = "SELECT * FROM (SELECT ssn AS b, name AS a FROM customers) x JOIN (SELECT name AS a, email AS b FROM customers) y USING (a, b)";
    let names_of =
        |l: &Lineage| -> Vec<String> { l.outputs.iter().map(|o| o.name.clone()).collect() };
    assert_eq!(names_of(&run_with(Dialect::MySql, q, &my)), ["b", "a"]);
    assert_eq!(names_of(&run(q)), ["a", "b"]);
    // A parenthesised join that merges columns keeps its shape outside.
    let l = run("SELECT * FROM (customers JOIN orders USING (id))");
    assert!(l.exact);
    assert_eq!(l.outputs.len(), 7);
    assert_eq!(cols(&l)[4], set(&["orders.customer_id"]));
    let l = run(
        "SELECT * FROM (customers JOIN orders USING (id)) JOIN orders o2 ON o2.id = customers.id",
    );
    assert!(l.exact);
    assert_eq!(l.outputs.len(), 11);
}
