//! Turns Tollgate's principal and access requests into Cedar entities,
//! requests and contexts. The only place that spells Cedar entity uids.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request, RestrictedExpression,
    Schema,
};

use crate::access::{AccessRequest, ContextValue, Resource};
use crate::identity::Principal;

/// `Tollgate::<kind>`, parsed once per kind (a Cedar name parse runs the
/// full grammar; a call builds about ten uids).
fn type_name(kind: &str) -> Result<EntityTypeName, String> {
    static KNOWN: std::sync::OnceLock<HashMap<&'static str, EntityTypeName>> =
        std::sync::OnceLock::new();
    let known = KNOWN.get_or_init(|| {
        [
            "User",
            "Group",
            "Connection",
            "Table",
            "Function",
            "Action",
            "Audit",
        ]
        .into_iter()
        .filter_map(|k| {
            EntityTypeName::from_str(&format!("Tollgate::{k}"))
                .ok()
                .map(|t| (k, t))
        })
        .collect()
    });
    match known.get(kind) {
        Some(t) => Ok(t.clone()),
        None => EntityTypeName::from_str(&format!("Tollgate::{kind}"))
            .map_err(|e| format!("bad entity type {kind}: {e}")),
    }
}

fn uid(kind: &str, id: &str) -> Result<EntityUid, String> {
    Ok(EntityUid::from_type_name_and_id(
        type_name(kind)?,
        EntityId::new(id),
    ))
}

fn action_uid(action: &str) -> Result<EntityUid, String> {
    uid("Action", action)
}

/// Entity uid of the principal.
pub(super) fn principal_uid(principal: &Principal) -> Result<EntityUid, String> {
    uid("User", &principal.sub)
}

fn resource_uid(resource: &Resource) -> Result<EntityUid, String> {
    uid(&resource.kind, &resource.id)
}

/// Entities for all requests of one call, built once: the user and its
/// groups, every resource and its connection, and the schema's action
/// entities when the schema groups actions (`None`: it does not, and an
/// action without parents adds nothing an `==` or `in` could see).
pub(super) fn build(
    principal: &Principal,
    requests: &[AccessRequest],
    actions: Option<&Entities>,
) -> Result<Entities, String> {
    let mut list: std::collections::HashMap<EntityUid, Entity> =
        std::collections::HashMap::with_capacity(principal.groups.len() + 2 * requests.len() + 1);
    let mut groups = HashSet::with_capacity(principal.groups.len());
    for g in &principal.groups {
        let g = uid("Group", g)?;
        groups.insert(g.clone());
        list.insert(g.clone(), Entity::new_no_attrs(g, HashSet::new()));
    }
    let user = principal_uid(principal)?;
    list.insert(user.clone(), Entity::new_no_attrs(user, groups));
    for request in requests {
        let mut parents = HashSet::new();
        if let Some(conn) = &request.resource.connection {
            let c = uid("Connection", conn)?;
            parents.insert(c.clone());
            list.entry(c.clone())
                .or_insert_with(|| Entity::new_no_attrs(c, HashSet::new()));
        }
        let r = resource_uid(&request.resource)?;
        // A resource that is also some other resource's connection keeps no parents either way.
        list.entry(r.clone())
            .or_insert_with(|| Entity::new_no_attrs(r, parents));
    }
    match actions {
        Some(actions) => actions.clone().add_entities(list.into_values(), None),
        None => Entities::from_entities(list.into_values(), None),
    }
    .map_err(|e| format!("entities: {e}"))
}

fn expr(v: &ContextValue) -> RestrictedExpression {
    match v {
        ContextValue::String(s) => RestrictedExpression::new_string(s.clone()),
        ContextValue::Bool(b) => RestrictedExpression::new_bool(*b),
        ContextValue::Long(n) => RestrictedExpression::new_long(*n),
        ContextValue::StringSet(set) => RestrictedExpression::new_set(
            set.iter()
                .map(|s| RestrictedExpression::new_string(s.clone())),
        ),
    }
}

/// A schema-checked Cedar request: a context that does not match the schema
/// for the action is an error, and errors deny.
pub(super) fn request(
    principal: &Principal,
    request: &AccessRequest,
    schema: &Schema,
) -> Result<Request, String> {
    let context = Context::from_pairs(request.context.iter().map(|(k, v)| (k.clone(), expr(v))))
        .map_err(|e| format!("context: {e}"))?;
    Request::new(
        principal_uid(principal)?,
        action_uid(&request.action)?,
        resource_uid(&request.resource)?,
        context,
        Some(schema),
    )
    .map_err(|e| format!("request does not match the schema: {e}"))
}
