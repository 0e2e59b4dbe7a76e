//! What a call will do, in the vocabulary of policy: actions on resources with
//! a typed context. Connectors produce these from their analysis; the policy
//! stage turns them into Cedar requests. Plain data, no Cedar types here.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A resource a request acts on, named the way the Cedar schema names it.
///
/// A resource sits in a chain of parents (e.g. a Kubernetes object → its
/// Namespace → its Connection): the policy stage gives Cedar the whole chain,
/// so `resource in Tollgate::Connection::"c"` holds for every resource below
/// that connection, however deep. Attributes become the entity's Cedar
/// attributes and must be declared for `kind` by the family's schema
/// fragment. Families build their own resources (e.g. the SQL family's
/// tables); the core only builds connections and the audit log.
///
/// In JSON (policy test cases) a resource is `{kind, id, parent?,
/// attributes?}`; `connection: "<name>"` is shorthand for a parent that is
/// that connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "ResourceJson")]
pub struct Resource {
    /// Entity type inside the `Tollgate` namespace, e.g. `Connection` or `Table`.
    pub kind: String,
    /// Entity id, e.g. `shop` or `shop/public.orders`.
    pub id: String,
    /// The resource this one is `in` (None for a connection and for global
    /// resources such as the audit log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<Box<Resource>>,
    /// Cedar attributes of the entity, declared by the family's fragment.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, ContextValue>,
}

/// [`Resource`] as written in JSON, with the `connection` shorthand.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceJson {
    kind: String,
    id: String,
    #[serde(default)]
    connection: Option<String>,
    #[serde(default)]
    parent: Option<Box<Resource>>,
    #[serde(default)]
    attributes: BTreeMap<String, ContextValue>,
}

impl TryFrom<ResourceJson> for Resource {
    type Error = String;

    fn try_from(r: ResourceJson) -> Result<Self, String> {
        let parent = match (r.connection, r.parent) {
            (Some(_), Some(_)) => {
                return Err("a resource takes `connection` or `parent`, not both".into());
            }
            (Some(c), None) => Some(Box::new(Resource::connection(&c))),
            (None, p) => p,
        };
        Ok(Resource {
            kind: r.kind,
            id: r.id,
            parent,
            attributes: r.attributes,
        })
    }
}

impl Resource {
    /// A resource of `kind` with no parent and no attributes.
    pub fn new(kind: &str, id: impl Into<String>) -> Self {
        Resource {
            kind: kind.into(),
            id: id.into(),
            parent: None,
            attributes: BTreeMap::new(),
        }
    }

    /// The resource for a whole connection.
    pub fn connection(name: &str) -> Self {
        Resource::new("Connection", name)
    }

    /// The audit log (resource of `audit:read`).
    pub fn audit_log() -> Self {
        Resource::new("Audit", "log")
    }

    /// This resource, `in` `parent` (which may have parents of its own).
    pub fn within(mut self, parent: Resource) -> Self {
        self.parent = Some(Box::new(parent));
        self
    }

    /// This resource with one more attribute.
    pub fn with_attribute(mut self, name: &str, value: ContextValue) -> Self {
        self.attributes.insert(name.into(), value);
        self
    }

    /// Its parents, nearest first.
    pub fn ancestors(&self) -> impl Iterator<Item = &Resource> {
        std::iter::successors(self.parent.as_deref(), |p| p.parent.as_deref())
    }

    /// `Tollgate::Kind::"id"`, as Cedar and the audit record print it.
    pub fn entity_uid(&self) -> String {
        format!("Tollgate::{}::{:?}", self.kind, self.id)
    }
}

/// A value in a request's context.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Resource {
        Resource::new("Table", "shop/public.orders").within(Resource::connection("shop"))
    }

    #[test]
    fn case_files_keep_the_connection_shorthand() {
        let old: Resource = serde_json::from_str(
            r#"{"kind": "Table", "id": "shop/public.orders", "connection": "shop"}"#,
        )
        .unwrap();
        assert_eq!(old, table());
        let global: Resource =
            serde_json::from_str(r#"{"kind": "Audit", "id": "log", "connection": null}"#).unwrap();
        assert_eq!(global, Resource::audit_log());
        let bare: Resource = serde_json::from_str(r#"{"kind": "Audit", "id": "log"}"#).unwrap();
        assert_eq!(bare, Resource::audit_log());
    }

    #[test]
    fn a_parent_chain_and_attributes_round_trip() {
        let object = Resource::new("K8sObject", "prod/shop/Deployment/web")
            .within(Resource::new("Namespace", "prod/shop").within(Resource::connection("prod")))
            .with_attribute("replicas", ContextValue::Long(3));
        let text = serde_json::to_string(&object).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"K8sObject","id":"prod/shop/Deployment/web","parent":{"kind":"Namespace","id":"prod/shop","parent":{"kind":"Connection","id":"prod"}},"attributes":{"replicas":3}}"#
        );
        assert_eq!(serde_json::from_str::<Resource>(&text).unwrap(), object);
        let chain: Vec<String> = object.ancestors().map(Resource::entity_uid).collect();
        assert_eq!(
            chain,
            [
                r#"Tollgate::Namespace::"prod/shop""#,
                r#"Tollgate::Connection::"prod""#
            ]
        );
        assert_eq!(
            object.entity_uid(),
            r#"Tollgate::K8sObject::"prod/shop/Deployment/web""#
        );
    }

    #[test]
    fn a_resource_with_two_parents_or_a_misspelt_field_is_refused() {
        let both = serde_json::from_str::<Resource>(
            r#"{"kind": "Table", "id": "t", "connection": "shop", "parent": {"kind": "Connection", "id": "shop"}}"#,
        )
        .unwrap_err();
        assert!(both.to_string().contains("not both"), "{both}");
        let typo = serde_json::from_str::<Resource>(
            r#"{"kind": "Table", "id": "t", "conection": "shop"}"#,
        )
        .unwrap_err();
        assert!(typo.to_string().contains("conection"), "{typo}");
    }
}
