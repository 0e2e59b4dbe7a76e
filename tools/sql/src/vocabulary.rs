//! The SQL family's policy vocabulary: its Cedar schema fragment
//! (`schemas/sql.cedarschema`: `Table`, `Function`, `SqlContext`, the
//! `sql:*` actions) and the resources its requests name. The server combines
//! the fragment with the core's at start.

use gateway_core::access::Resource;
use gateway_core::policy::Vocabulary;

/// The SQL family's Cedar schema fragment.
pub const FRAGMENT: &str = include_str!("../../../schemas/sql.cedarschema");

/// What the SQL family adds to the policy language. `unmask` applies to a
/// table as well as to the connection.
pub const VOCABULARY: Vocabulary = Vocabulary {
    family: "sql",
    fragment: FRAGMENT,
    unmask_resources: &["Table"],
};

/// A table `schema.table` of a connection: `Tollgate::Table::"<connection>/<schema>.<table>"`,
/// `in` its connection.
pub fn table(connection: &str, schema: &str, table: &str) -> Resource {
    Resource::new("Table", format!("{connection}/{schema}.{table}"))
        .within(Resource::connection(connection))
}

/// A function `schema.name` of a connection (one that is not a vetted
/// side-effect-free built-in): `Tollgate::Function::"<connection>/<schema>.<name>"`,
/// `in` its connection.
pub fn function(connection: &str, schema: &str, name: &str) -> Resource {
    Resource::new("Function", format!("{connection}/{schema}.{name}"))
        .within(Resource::connection(connection))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gateway_core::Principal;
    use gateway_core::policy::{PolicyEngine, PolicySchema, Verdict, load_sources};

    use super::*;
    use crate::analysis::{Dialect, analyse};

    /// The requests the analysis produces (tables, functions, the
    /// connection, their contexts) conform to the family's fragment: each is
    /// decided without error and is `in` its connection.
    #[test]
    fn analysed_requests_conform_to_the_fragment() {
        let schema = Arc::new(PolicySchema::combine(&[VOCABULARY]).unwrap());
        let engine = PolicyEngine::new(
            schema,
            &load_sources(vec![(
                "p.cedar".into(),
                r#"permit(principal, action, resource in Tollgate::Connection::"shop");"#.into(),
            )]),
        )
        .unwrap();
        let ann = Principal {
            sub: "ann".into(),
            groups: vec![],
        };
        for sql in [
            "SELECT 1",
            "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id",
            "DELETE FROM orders WHERE id = 1",
            "SELECT my_func(1) FROM orders",
        ] {
            let analysed = analyse(Dialect::Postgres, "shop", "public", sql).unwrap();
            let d = engine.decide(&ann, &analysed.requests);
            assert_eq!(d.verdict, Verdict::Allow, "{sql}: {d:?}");
            let other = analyse(Dialect::Postgres, "crm", "public", sql).unwrap();
            let d = engine.decide(&ann, &other.requests);
            assert!(matches!(d.verdict, Verdict::Deny { .. }), "{sql}: {d:?}");
            assert!(d.requests.iter().all(|r| r.errors.is_empty()), "{d:?}");
        }
        let f = analyse(Dialect::Postgres, "shop", "public", "SELECT my_func(1)").unwrap();
        assert!(
            f.requests
                .iter()
                .any(|r| r.action == "sql:call"
                    && r.resource == function("shop", "public", "my_func")),
            "{:?}",
            f.requests
        );
    }

    /// `columns` lets policy forbid reading a column anywhere, WHERE included
    /// (a `LIKE 'a%'` oracle that masking cannot cover), and through a `*`
    /// whose columns the analysis cannot name.
    #[test]
    fn policy_can_guard_a_column_wherever_it_is_read() {
        let schema = Arc::new(PolicySchema::combine(&[VOCABULARY]).unwrap());
        let engine = PolicyEngine::new(
            schema,
            &load_sources(vec![(
                "p.cedar".into(),
                r#"permit(principal, action, resource in Tollgate::Connection::"shop");
                @id("no-ssn")
                forbid(principal, action in [Tollgate::Action::"sql:select",
                    Tollgate::Action::"sql:update", Tollgate::Action::"sql:delete"], resource)
                when { context.columns.contains("public.customers.ssn")
                    || context.columns.contains("public.customers.*") };"#
                    .into(),
            )]),
        )
        .unwrap();
        let ann = Principal {
            sub: "ann".into(),
            groups: vec![],
        };
        let decide = |sql: &str| {
            let analysed = analyse(Dialect::Postgres, "shop", "public", sql).unwrap();
            engine.decide(&ann, &analysed.requests).verdict
        };
        for sql in [
            "SELECT name FROM customers WHERE ssn LIKE '1%'",
            "SELECT hex(ssn) FROM customers",
            "SELECT c.name FROM orders o JOIN customers c ON c.ssn = o.note",
            "SELECT * FROM customers",
            "SELECT (SELECT max(ssn) FROM customers) AS x",
        ] {
            assert!(matches!(decide(sql), Verdict::Deny { .. }), "{sql}");
        }
        assert_eq!(
            decide("SELECT name, email FROM customers WHERE id = 1"),
            Verdict::Allow
        );
        // With column lists that predate the ssn column (added outside
        // Tollgate since they were read), `*` still reads `customers.*`.
        let stale = crate::origins::ColumnLists::from_schema(
            &serde_json::json!({"tables": [{"schema": "public", "name": "customers",
                "columns": [{"name": "id"}, {"name": "name"}]}]}),
            false,
        );
        let analysed = crate::analysis::analyse_with(
            Dialect::Postgres,
            "shop",
            "public",
            None,
            &stale,
            "SELECT * FROM customers",
        )
        .unwrap();
        assert!(matches!(
            engine.decide(&ann, &analysed.requests).verdict,
            Verdict::Deny { .. }
        ));
    }
}
