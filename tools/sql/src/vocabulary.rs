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
