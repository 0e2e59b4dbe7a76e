//! Turns Tollgate's principal and access requests into Cedar entities,
//! requests and contexts. The only place that spells Cedar entity uids.

use std::collections::HashSet;
use std::str::FromStr;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request, RestrictedExpression,
    Schema,
};

use crate::access::{AccessRequest, ContextValue, Resource};
use crate::identity::Principal;

fn uid(kind: &str, id: &str) -> Result<EntityUid, String> {
    let ty = EntityTypeName::from_str(&format!("Tollgate::{kind}"))
        .map_err(|e| format!("bad entity type {kind}: {e}"))?;
    Ok(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
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

/// Entities for one request: the user and its groups, the resource and its
/// connection, and the schema's action entities.
pub(super) fn build(
    principal: &Principal,
    request: &AccessRequest,
    actions: &Entities,
) -> Result<Entities, String> {
    let mut list = Vec::with_capacity(principal.groups.len() + 3);
    let mut groups = HashSet::with_capacity(principal.groups.len());
    for g in &principal.groups {
        let g = uid("Group", g)?;
        groups.insert(g.clone());
        list.push(Entity::new_no_attrs(g, HashSet::new()));
    }
    list.push(Entity::new_no_attrs(principal_uid(principal)?, groups));
    let mut parents = HashSet::new();
    if let Some(conn) = &request.resource.connection {
        let c = uid("Connection", conn)?;
        parents.insert(c.clone());
        list.push(Entity::new_no_attrs(c, HashSet::new()));
    }
    list.push(Entity::new_no_attrs(
        resource_uid(&request.resource)?,
        parents,
    ));
    actions
        .clone()
        .add_entities(list, None)
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
