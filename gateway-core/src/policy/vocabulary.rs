//! The policy vocabulary: the core's Cedar schema fragment plus one fragment
//! per tool family, combined at start into the one schema that policies are
//! validated against and requests are checked with.
//!
//! The core declares `User`, `Group`, `Connection`, `Audit`, `connect` and
//! `audit:read` (`schemas/core.cedarschema`). Each family ships a
//! [`Vocabulary`]: its own fragment (entity types, common types, actions, all
//! in `namespace Tollgate`) and the entity types that `unmask` applies to.
//! Cedar cannot extend one action's `appliesTo` across fragments, so the core
//! declares `unmask` itself over `Connection` and every type the families
//! list. A name declared twice (by two families, or by a family and the core)
//! is an error at start, never a silent override.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{Entities, EntityTypeName, Schema, SchemaFragment};
use serde_json::{Map, Value};

/// The core's fragment: principals, connections, the audit log, `connect`
/// and `audit:read`.
pub const CORE_FRAGMENT: &str = include_str!("../../../schemas/core.cedarschema");

/// The namespace every name of the policy language lives in.
pub const NAMESPACE: &str = "Tollgate";

/// What one tool family adds to the policy language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vocabulary {
    /// Family name, for messages, e.g. `sql`.
    pub family: &'static str,
    /// Cedar schema text declaring the family's entity types, common types
    /// and actions inside `namespace Tollgate { ... }`. It may name the
    /// core's types (`User`, `Connection`, ...) without declaring them.
    pub fragment: &'static str,
    /// Entity types of this fragment that `unmask` applies to, besides
    /// `Connection` (e.g. `Table`): resources a call of the family touches
    /// and on which a caller may be allowed to see values unmasked.
    pub unmask_resources: &'static [&'static str],
}

/// Why the fragments do not combine. Every variant stops the start.
#[derive(Debug, thiserror::Error)]
pub enum VocabularyError {
    /// A fragment is not valid Cedar schema text.
    #[error("the Cedar schema fragment of {origin} does not parse: {message}")]
    Parse {
        /// `the core` or ``family `sql` ``.
        origin: String,
        /// Cedar's message.
        message: String,
    },
    /// A fragment declares names outside `namespace Tollgate`.
    #[error(
        "the Cedar schema fragment of {origin} declares names outside `namespace Tollgate` \
         (in {found}); every name of the policy language lives in namespace Tollgate"
    )]
    Namespace {
        /// Who shipped the fragment.
        origin: String,
        /// The other namespace (`the empty namespace` for none).
        found: String,
    },
    /// Two fragments declare the same name.
    #[error(
        "{what} `{name}` is declared by both {first} and {second}: each name of the policy \
         language must be declared by one fragment only"
    )]
    Duplicate {
        /// `entity type`, `action` or `common type`.
        what: String,
        /// The name.
        name: String,
        /// The fragment that declared it first.
        first: String,
        /// The fragment that declared it again.
        second: String,
    },
    /// A family lists for `unmask` a type its fragment does not declare.
    #[error(
        "family `{family}` lists `{name}` among the resources of \"unmask\", but its Cedar \
         schema fragment declares no entity type `{name}`"
    )]
    UnmaskType {
        /// The family.
        family: String,
        /// The type it listed.
        name: String,
    },
    /// Two families share a name but not a fragment.
    #[error("two tool families are named `{0}` but ship different Cedar schema fragments")]
    FamilyTwice(String),
    /// The fragments parse but do not form a schema (e.g. a type is
    /// referenced and declared nowhere).
    #[error("the Cedar schema fragments do not combine: {0}")]
    Combine(String),
}

/// The combined schema: core + every family + the generated `unmask`.
pub struct PolicySchema {
    schema: Schema,
    /// The combined fragment as Cedar schema text.
    text: String,
    /// Every entity type (and `Action`) by its name inside `Tollgate`.
    types: HashMap<String, EntityTypeName>,
    /// Per entity type, the types its entities may be `in` (transitively).
    ancestors: HashMap<EntityTypeName, HashSet<EntityTypeName>>,
    /// Entity types that declare attributes or tags: their entities are
    /// checked against the schema by Cedar.
    shaped: HashSet<EntityTypeName>,
    /// The schema's action entities, only when the schema groups actions
    /// (an action without parents adds nothing an `==` or `in` could see).
    action_entities: Option<Entities>,
    /// Families in the schema, in the order given.
    families: Vec<&'static str>,
}

impl std::fmt::Debug for PolicySchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySchema")
            .field("families", &self.families)
            .finish_non_exhaustive()
    }
}

/// One parsed fragment and who shipped it.
struct Part {
    origin: String,
    fragment: SchemaFragment,
    /// The fragment's `Tollgate` namespace in Cedar's JSON schema form.
    json: Map<String, Value>,
}

fn parse(origin: String, text: &str) -> Result<Part, VocabularyError> {
    let fragment = SchemaFragment::from_cedarschema_str(text)
        .map(|(f, _warnings)| f)
        .map_err(|e| VocabularyError::Parse {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
    let json = fragment
        .clone()
        .to_json_value()
        .map_err(|e| VocabularyError::Parse {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
    let Value::Object(mut namespaces) = json else {
        return Err(VocabularyError::Parse {
            origin,
            message: "not a schema object".into(),
        });
    };
    if let Some(other) = namespaces.keys().find(|k| *k != NAMESPACE) {
        let found = if other.is_empty() {
            "the empty namespace".to_string()
        } else {
            format!("namespace {other}")
        };
        return Err(VocabularyError::Namespace { origin, found });
    }
    let json = match namespaces.remove(NAMESPACE) {
        Some(Value::Object(ns)) => ns,
        _ => Map::new(),
    };
    Ok(Part {
        origin,
        fragment,
        json,
    })
}

/// What a section of Cedar's JSON namespace holds, for messages.
fn section_name(key: &str) -> &str {
    match key {
        "entityTypes" => "entity type",
        "actions" => "action",
        "commonTypes" => "common type",
        "annotations" => "namespace annotation",
        other => other,
    }
}

/// The names each part declares, merged into one namespace; a name declared
/// by two parts is an error.
fn merge(parts: &[Part]) -> Result<Map<String, Value>, VocabularyError> {
    let mut merged: Map<String, Value> = Map::new();
    let mut owner: HashMap<(String, String), &str> = HashMap::new();
    for part in parts {
        for (section, members) in &part.json {
            let Value::Object(members) = members else {
                continue;
            };
            let into = merged
                .entry(section.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(into) = into else { continue };
            for (name, decl) in members {
                if section == "annotations" {
                    // Documentation on the namespace: the first fragment's wins.
                    into.entry(name.clone()).or_insert_with(|| decl.clone());
                    continue;
                }
                if let Some(first) = owner.insert((section.clone(), name.clone()), &part.origin) {
                    return Err(VocabularyError::Duplicate {
                        what: section_name(section).into(),
                        name: name.clone(),
                        first: first.into(),
                        second: part.origin.clone(),
                    });
                }
                into.insert(name.clone(), decl.clone());
            }
        }
    }
    Ok(merged)
}

/// Names of the entity types of a merged namespace that declare attributes
/// (a record shape with any attribute, or a shape named by a common type)
/// or tags.
fn shaped_types(merged: &Map<String, Value>) -> impl Iterator<Item = &str> {
    merged
        .get("entityTypes")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, decl)| {
            let shape = decl.get("shape");
            let has_attributes = match shape {
                None | Some(Value::Null) => false,
                Some(shape) => shape
                    .get("attributes")
                    .and_then(Value::as_object)
                    .is_none_or(|a| !a.is_empty()),
            };
            has_attributes || decl.get("tags").is_some_and(|t| !t.is_null())
        })
        .map(|(name, _)| name.as_str())
}

/// The `unmask` declaration over `Connection` and `resources`.
fn unmask_fragment(resources: &[&str]) -> String {
    let mut types = vec!["Connection"];
    types.extend(resources.iter().copied());
    format!(
        "namespace {NAMESPACE} {{\n  action \"unmask\" appliesTo {{ principal: [User], \
         resource: [{}], context: {{ types: Set<String>, fields?: Set<String> }} }};\n}}\n",
        types.join(", ")
    )
}

impl PolicySchema {
    /// Combine the core's fragment with `families` (a family given twice
    /// with the same fragment counts once).
    pub fn combine(families: &[Vocabulary]) -> Result<Self, VocabularyError> {
        let mut distinct: Vec<&Vocabulary> = vec![];
        for v in families {
            match distinct.iter().find(|d| d.family == v.family) {
                Some(d) if d.fragment == v.fragment && d.unmask_resources == v.unmask_resources => {
                }
                Some(_) => return Err(VocabularyError::FamilyTwice(v.family.into())),
                None => distinct.push(v),
            }
        }
        let mut parts = vec![parse("the core".into(), CORE_FRAGMENT)?];
        let mut unmask: Vec<&str> = vec![];
        for v in &distinct {
            let part = parse(format!("family `{}`", v.family), v.fragment)?;
            let declared = part.json.get("entityTypes").and_then(Value::as_object);
            for name in v.unmask_resources {
                if !declared.is_some_and(|d| d.contains_key(*name)) {
                    return Err(VocabularyError::UnmaskType {
                        family: v.family.into(),
                        name: (*name).into(),
                    });
                }
                if !unmask.contains(name) {
                    unmask.push(name);
                }
            }
            parts.push(part);
        }
        parts.push(parse("the core".into(), &unmask_fragment(&unmask))?);
        let merged = merge(&parts)?;
        let shaped: Vec<String> = shaped_types(&merged).map(String::from).collect();
        let schema = Schema::from_schema_fragments(parts.iter().map(|p| p.fragment.clone()))
            .map_err(|e| VocabularyError::Combine(e.to_string()))?;
        let text = SchemaFragment::from_json_value(Value::Object(
            [(NAMESPACE.to_string(), Value::Object(merged))]
                .into_iter()
                .collect(),
        ))
        .map_err(|e| VocabularyError::Combine(e.to_string()))?
        .to_cedarschema()
        .map_err(|e| VocabularyError::Combine(e.to_string()))?;
        let mut types: HashMap<String, EntityTypeName> = schema
            .entity_types()
            .map(|t| (t.basename().to_string(), t.clone()))
            .collect();
        let action = EntityTypeName::from_str(&format!("{NAMESPACE}::Action"))
            .map_err(|e| VocabularyError::Combine(e.to_string()))?;
        types.insert("Action".into(), action);
        let ancestors = schema
            .entity_types()
            .map(|t| {
                let up = schema
                    .ancestors(t)
                    .map(|a| a.cloned().collect())
                    .unwrap_or_default();
                (t.clone(), up)
            })
            .collect();
        let shaped = shaped
            .iter()
            .filter_map(|name| types.get(name).cloned())
            .collect();
        let action_entities = if schema.action_groups().next().is_some() {
            Some(
                schema
                    .action_entities()
                    .map_err(|e| VocabularyError::Combine(e.to_string()))?,
            )
        } else {
            None
        };
        Ok(PolicySchema {
            schema,
            text,
            types,
            ancestors,
            shaped,
            action_entities,
            families: distinct.iter().map(|v| v.family).collect(),
        })
    }

    /// The combined schema as Cedar schema text (for the cedar CLI and
    /// editors; `tollgate policy schema` prints it).
    pub fn to_cedar(&self) -> &str {
        &self.text
    }

    /// Families in this schema, in the order given.
    pub fn families(&self) -> &[&'static str] {
        &self.families
    }

    /// The Cedar schema.
    pub(crate) fn schema(&self) -> &Schema {
        &self.schema
    }

    /// `Tollgate::<kind>` when the schema declares it (`Action` included).
    pub(crate) fn entity_type(&self, kind: &str) -> Option<&EntityTypeName> {
        self.types.get(kind)
    }

    /// May an entity of type `child` be `in` one of type `parent`?
    pub(crate) fn may_be_in(&self, child: &EntityTypeName, parent: &EntityTypeName) -> bool {
        self.ancestors
            .get(child)
            .is_some_and(|up| up.contains(parent))
    }

    /// Does `ty` declare attributes or tags (its entities need Cedar's
    /// conformance check)?
    pub(crate) fn is_shaped(&self, ty: &EntityTypeName) -> bool {
        self.shaped.contains(ty)
    }

    /// The action entities, when the schema groups actions.
    pub(crate) fn action_entities(&self) -> Option<&Entities> {
        self.action_entities.as_ref()
    }
}
