//! The Kubernetes family's policy vocabulary: its Cedar schema fragment
//! (`schemas/k8s.cedarschema`: `Namespace`, `K8sObject`, `K8sContext`, the
//! `k8s:*` actions), the resources its requests name and their context.

use std::collections::{BTreeMap, BTreeSet};

use gateway_core::access::{AccessRequest, ContextValue, Resource};
use gateway_core::policy::Vocabulary;

/// The family's Cedar schema fragment.
pub const FRAGMENT: &str = include_str!("../../../schemas/k8s.cedarschema");

/// What the family adds to the policy language. `unmask` applies to a
/// namespace and an object as well as to the connection.
pub const VOCABULARY: Vocabulary = Vocabulary {
    family: "kubernetes",
    fragment: FRAGMENT,
    unmask_resources: &["Namespace", "K8sObject"],
};

/// `Tollgate::Namespace::"<connection>/<namespace>"`, `in` its connection.
pub fn namespace(connection: &str, ns: &str) -> Resource {
    Resource::new("Namespace", format!("{connection}/{ns}"))
        .within(Resource::connection(connection))
}

/// `Tollgate::K8sObject::"<connection>/<namespace>/<Kind>/<name>"` `in` its
/// Namespace, or for a cluster-scoped object (`ns` None)
/// `"<connection>//<Kind>/<name>"` `in` the Connection.
pub fn object(connection: &str, ns: Option<&str>, kind: &str, name: &str) -> Resource {
    match ns {
        Some(ns) => Resource::new("K8sObject", format!("{connection}/{ns}/{kind}/{name}"))
            .within(namespace(connection, ns)),
        None => Resource::new("K8sObject", format!("{connection}//{kind}/{name}"))
            .within(Resource::connection(connection)),
    }
}

/// The context of a request that carries no object body (`k8s:get`,
/// `k8s:list`, `k8s:scale`): every key of `K8sContext`, the ones that
/// describe an applied object empty.
#[derive(Debug, Clone, Default)]
pub struct ReadContext<'a> {
    /// Resolved Kind.
    pub kind: &'a str,
    /// API group ("" for core).
    pub group: &'a str,
    /// Namespace ("" for none).
    pub namespace: &'a str,
    /// Object name ("" for a list).
    pub name: &'a str,
    /// `key=value` labels.
    pub labels: BTreeSet<String>,
}

impl ReadContext<'_> {
    /// The request for `action` on `resource` with this context.
    pub fn request(&self, action: &str, resource: Resource) -> AccessRequest {
        let s = |v: &str| ContextValue::String(v.to_string());
        let empty = || ContextValue::StringSet(BTreeSet::new());
        let context: BTreeMap<String, ContextValue> = [
            ("kind", s(self.kind)),
            ("group", s(self.group)),
            ("namespace", s(self.namespace)),
            ("name", s(self.name)),
            ("labels", ContextValue::StringSet(self.labels.clone())),
            ("dry_run", ContextValue::Bool(false)),
            ("pod_security", empty()),
            ("binds_roles", empty()),
            ("images", empty()),
            ("argv", s("")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        AccessRequest {
            action: action.into(),
            resource,
            context,
        }
    }
}
