//! Turns Tollgate's principal and access requests into Cedar entities,
//! requests and contexts. The only place that spells Cedar entity uids.

use std::collections::{HashMap, HashSet};

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request, RestrictedExpression,
};

use super::PolicySchema;
use crate::access::{AccessRequest, ContextValue, Resource};
use crate::identity::Principal;

/// `Tollgate::<kind>`, when the combined schema declares it (the names are
/// parsed once, when the schema is combined; a call builds about ten uids).
fn type_name<'s>(schema: &'s PolicySchema, kind: &str) -> Result<&'s EntityTypeName, String> {
    schema.entity_type(kind).ok_or_else(|| {
        format!("entity type `{kind}` is not declared by the policy schema (core or any family)")
    })
}

fn uid(schema: &PolicySchema, kind: &str, id: &str) -> Result<EntityUid, String> {
    Ok(EntityUid::from_type_name_and_id(
        type_name(schema, kind)?.clone(),
        EntityId::new(id),
    ))
}

fn action_uid(schema: &PolicySchema, action: &str) -> Result<EntityUid, String> {
    uid(schema, "Action", action)
}

/// Entity uid of the principal.
pub(super) fn principal_uid(
    schema: &PolicySchema,
    principal: &Principal,
) -> Result<EntityUid, String> {
    uid(schema, "User", &principal.sub)
}

fn resource_uid(schema: &PolicySchema, resource: &Resource) -> Result<EntityUid, String> {
    uid(schema, &resource.kind, &resource.id)
}

/// The entities of one call under construction: the principal's, and each
/// resource with the parent chain and attributes it was first given.
struct Builder<'a> {
    schema: &'a PolicySchema,
    list: HashMap<EntityUid, Entity>,
    /// Resources added, by uid: a uid given again must come with the same
    /// parents and attributes (a family that names one entity two ways
    /// denies the call rather than letting one of them silently win).
    resources: HashMap<EntityUid, &'a Resource>,
    /// Some entity has (or its type declares) attributes: Cedar checks the
    /// entities against the schema. Otherwise the builder's own checks
    /// (declared type, allowed parent types) are all that check would do,
    /// and the call is spared it (it clones each type's description).
    check_with_schema: bool,
}

impl<'a> Builder<'a> {
    /// Add `resource` and its parent chain; returns its uid.
    fn add(&mut self, resource: &'a Resource) -> Result<EntityUid, String> {
        let r = resource_uid(self.schema, resource)?;
        if let Some(seen) = self.resources.get(&r) {
            return if seen.parent == resource.parent && seen.attributes == resource.attributes {
                Ok(r)
            } else {
                Err(format!(
                    "entities: {} is given two different parent chains or attribute sets",
                    resource.entity_uid()
                ))
            };
        }
        let mut parents = HashSet::new();
        if let Some(p) = &resource.parent {
            let parent = self.add(p)?;
            if !self.schema.may_be_in(r.type_name(), parent.type_name()) {
                return Err(format!(
                    "entities: {} may not be `in` {}: the policy schema does not declare {} in {}",
                    resource.entity_uid(),
                    p.entity_uid(),
                    resource.kind,
                    p.kind
                ));
            }
            parents.insert(parent);
        }
        if !resource.attributes.is_empty() || self.schema.is_shaped(r.type_name()) {
            self.check_with_schema = true;
        }
        if self.resources.insert(r.clone(), resource).is_some() {
            return Err(format!(
                "entities: {} is its own ancestor",
                resource.entity_uid()
            ));
        }
        // A resource that is also the principal or one of its groups keeps
        // the principal's entity.
        if !self.list.contains_key(&r) {
            let entity = if resource.attributes.is_empty() {
                Entity::new_no_attrs(r.clone(), parents)
            } else {
                let attrs = resource
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), expr(v)))
                    .collect();
                Entity::new(r.clone(), attrs, parents)
                    .map_err(|e| format!("entities: {}: {e}", resource.entity_uid()))?
            };
            self.list.insert(r.clone(), entity);
        }
        Ok(r)
    }
}

/// Entities for all requests of one call, built once: the user and its
/// groups, every resource with its whole parent chain (so `in` holds
/// transitively) and its attributes, and the schema's action entities when it
/// groups actions. The entities are checked against the schema: a type, a
/// parent type or an attribute the fragments do not declare is an error, and
/// errors deny.
pub(super) fn build(
    principal: &Principal,
    requests: &[AccessRequest],
    schema: &PolicySchema,
) -> Result<Entities, String> {
    let mut list: HashMap<EntityUid, Entity> =
        HashMap::with_capacity(principal.groups.len() + 2 * requests.len() + 1);
    let mut groups = HashSet::with_capacity(principal.groups.len());
    for g in &principal.groups {
        let g = uid(schema, "Group", g)?;
        groups.insert(g.clone());
        list.insert(g.clone(), Entity::new_no_attrs(g, HashSet::new()));
    }
    let user = principal_uid(schema, principal)?;
    list.insert(user.clone(), Entity::new_no_attrs(user.clone(), groups));
    let mut builder = Builder {
        schema,
        list,
        resources: HashMap::with_capacity(2 * requests.len()),
        // The principal's entities carry no attributes: a core schema that
        // declared some for them would need Cedar's check to say so.
        check_with_schema: schema.is_shaped(user.type_name()),
    };
    for request in requests {
        builder.add(&request.resource)?;
    }
    let entities = builder.list.into_values();
    if builder.check_with_schema {
        // Adds the schema's action entities as well.
        Entities::from_entities(entities, Some(schema.schema()))
    } else {
        match schema.action_entities() {
            Some(actions) => actions.clone().add_entities(entities, None),
            None => Entities::from_entities(entities, None),
        }
    }
    .map_err(|e| format!("entities: {}", with_causes(&e)))
}

/// An error and its causes, `: `-joined (Cedar puts what does not conform,
/// e.g. the undeclared attribute, in the cause).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
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
    schema: &PolicySchema,
) -> Result<Request, String> {
    let context = Context::from_pairs(request.context.iter().map(|(k, v)| (k.clone(), expr(v))))
        .map_err(|e| format!("context: {e}"))?;
    Request::new(
        principal_uid(schema, principal)?,
        action_uid(schema, &request.action)?,
        resource_uid(schema, &request.resource)?,
        context,
        Some(schema.schema()),
    )
    .map_err(|e| format!("request does not match the schema: {e}"))
}
