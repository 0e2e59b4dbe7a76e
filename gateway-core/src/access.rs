//! What a call will do, in the vocabulary of policy: actions on resources with
//! a typed context. Connectors produce these from their analysis; the policy
//! stage turns them into Cedar requests. Plain data, no Cedar types here.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A resource a request acts on, named the way the Cedar schema names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Resource {
    /// Entity type inside the `Tollgate` namespace, e.g. `Connection` or `Table`.
    pub kind: String,
    /// Entity id, e.g. `shop` or `shop/public.orders`.
    pub id: String,
    /// The connection this resource is `in` (None for the connection itself
    /// and for global resources such as the audit log).
    pub connection: Option<String>,
}

impl Resource {
    /// The resource for a whole connection.
    pub fn connection(name: &str) -> Self {
        Resource {
            kind: "Connection".into(),
            id: name.into(),
            connection: None,
        }
    }

    /// A table `schema.table` of a connection: id `<connection>/<schema>.<table>`.
    pub fn table(connection: &str, schema: &str, table: &str) -> Self {
        Resource {
            kind: "Table".into(),
            id: format!("{connection}/{schema}.{table}"),
            connection: Some(connection.into()),
        }
    }

    /// The audit log (resource of `audit:read`).
    pub fn audit_log() -> Self {
        Resource {
            kind: "Audit".into(),
            id: "log".into(),
            connection: None,
        }
    }

    /// `Tollgate::Kind::"id"`, as Cedar and the audit record print it.
    pub fn entity_uid(&self) -> String {
        format!("Tollgate::{}::{:?}", self.kind, self.id)
    }
}

/// A value in a request's context.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ContextValue {
    /// A string.
    String(String),
    /// A boolean.
    Bool(bool),
    /// A 64-bit integer.
    Long(i64),
    /// A set of strings.
    StringSet(BTreeSet<String>),
}

/// One authorisation question: may the principal do `action` on `resource`?
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccessRequest {
    /// Action id inside `Tollgate::Action`, e.g. `sql:select`.
    pub action: String,
    /// What it acts on.
    pub resource: Resource,
    /// Context record; must match the Cedar schema for the action.
    pub context: BTreeMap<String, ContextValue>,
}
