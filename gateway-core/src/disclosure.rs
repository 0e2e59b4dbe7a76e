//! Decides what the caller sees after masking: the masked result, or the raw
//! one when policy permits `unmask` for every type that was found, on the
//! connection and on every resource the call touched. The audit record is
//! always the masked form, whatever the caller may see.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::access::{AccessRequest, ContextValue, Resource};
use crate::connector::{ConnectionInfo, ToolOutput};
use crate::identity::Principal;
use crate::mask::{FieldMasking, MaskCounts, Masker};
use crate::policy::PolicyEngine;

/// A result after the mask stage.
pub struct Disclosed {
    /// What the caller gets.
    pub caller: Value,
    /// What the audit record gets (always masked).
    pub recorded: Value,
    /// Masked values per type.
    pub counts: MaskCounts,
    /// True when the caller got raw values.
    pub unmasked: bool,
    /// Fields masked whole and why (the caller's `masked_fields`; empty
    /// when the caller got raw values).
    pub fields: Vec<FieldMasking>,
}

/// May `principal` see values of the `found` types raw: policy permits
/// `unmask` for all of them on the connection and on every resource given,
/// and for each field masked whole, `unmask` of its type on the connection
/// with the field named in `context.fields`.
pub fn may_unmask(
    policy: &PolicyEngine,
    principal: &Principal,
    connection: &str,
    resources: &[Resource],
    found: &MaskCounts,
    fields: &[FieldMasking],
) -> bool {
    let types: BTreeSet<String> = found.keys().cloned().collect();
    let mut targets: Vec<&Resource> = resources.iter().collect();
    let conn = Resource::connection(connection);
    if !targets.contains(&&conn) {
        targets.push(&conn);
    }
    let per_resource = targets.iter().all(|r| {
        let req = AccessRequest {
            action: "unmask".into(),
            resource: (*r).clone(),
            context: [("types".to_string(), ContextValue::StringSet(types.clone()))].into(),
        };
        policy.is_permitted(principal, &req)
    });
    per_resource
        && fields.iter().all(|f| {
            let req = AccessRequest {
                action: "unmask".into(),
                resource: conn.clone(),
                context: [
                    (
                        "types".to_string(),
                        ContextValue::StringSet([f.type_name.clone()].into()),
                    ),
                    (
                        "fields".to_string(),
                        ContextValue::StringSet([f.field.clone()].into()),
                    ),
                ]
                .into(),
            };
            policy.is_permitted(principal, &req)
        })
}

/// Mask `output` and decide whether `principal` may see it raw.
pub fn disclose(
    masker: &Masker,
    policy: &PolicyEngine,
    principal: &Principal,
    connection: &ConnectionInfo,
    resources: &[Resource],
    output: ToolOutput,
) -> Disclosed {
    let raw = output.value;
    let mut masked = raw.clone();
    let counts = masker.mask_value(connection, &mut masked, &output.field_origins);
    let fields = masker.field_masks(connection, &output.field_origins);
    let connection = connection.name.as_str();
    if counts.is_empty() {
        // Nothing was replaced; the caller still learns which fields are
        // masked whole (a column of NULLs today is masked tomorrow).
        return Disclosed {
            caller: raw,
            recorded: masked,
            counts,
            unmasked: false,
            fields,
        };
    }
    if may_unmask(policy, principal, connection, resources, &counts, &fields) {
        Disclosed {
            caller: raw,
            recorded: masked,
            counts,
            unmasked: true,
            fields: Vec::new(),
        }
    } else {
        Disclosed {
            caller: masked.clone(),
            recorded: masked,
            counts,
            unmasked: false,
            fields,
        }
    }
}

/// Add `masked` counts, `masked_fields` (when some field is masked whole:
/// which, as what, and by which rule) and `truncated` (when a cap cut the
/// result) to the caller's result. MCP's `structuredContent` is an object, so a result that
/// is not one (a connector returning a bare list or text) is wrapped as
/// `{value, masked, truncated?}`: its counts and cut are never lost.
pub(crate) fn with_masked_counts(
    value: Value,
    counts: &MaskCounts,
    fields: &[FieldMasking],
    truncated: bool,
) -> Value {
    let mut map = match value {
        Value::Object(map) => map,
        other => {
            let mut map = serde_json::Map::new();
            map.insert("value".into(), other);
            map
        }
    };
    map.insert("masked".into(), json!(counts));
    if !fields.is_empty() {
        map.insert("masked_fields".into(), json!(fields));
    }
    if truncated {
        map.insert("truncated".into(), Value::Bool(true));
    }
    Value::Object(map)
}
