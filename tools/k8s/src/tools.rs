//! The tools this family serves: the arguments and schemas of `k8s_list`,
//! `k8s_get`, `k8s_events` and `k8s_scale` here, and [`specs`] listing all nine
//! (the others' specs live beside their analysis). Arguments are parsed
//! strictly (unknown keys and wrong types refused, so nothing an agent passes
//! is silently ignored).

use gateway_core::connector::{AnalysisError, ToolSpec};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// `k8s_list` arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// Routed by the gateway.
    #[allow(dead_code, reason = "read by the router")]
    pub connection: String,
    /// What to list.
    pub kind: String,
    /// One namespace (None: every namespace the connection may touch).
    pub namespace: Option<String>,
    /// Label selector, passed as a query parameter.
    pub label_selector: Option<String>,
    /// Field selector, passed as a query parameter.
    pub field_selector: Option<String>,
    /// At most this many items (the connection's cap still applies).
    pub limit: Option<u64>,
}

/// `k8s_get` arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetArgs {
    /// Routed by the gateway.
    #[allow(dead_code, reason = "read by the router")]
    pub connection: String,
    /// What to get.
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Namespace (namespaced kinds).
    pub namespace: Option<String>,
}

/// `k8s_events` arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsArgs {
    /// Routed by the gateway.
    #[allow(dead_code, reason = "read by the router")]
    pub connection: String,
    /// The namespace whose events are listed.
    pub namespace: String,
    /// Only events about objects of this kind (resolved through discovery).
    pub kind: Option<String>,
    /// Only events about objects of this name.
    pub name: Option<String>,
}

/// `k8s_scale` arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleArgs {
    /// Routed by the gateway.
    #[allow(dead_code, reason = "read by the router")]
    pub connection: String,
    /// Deployment, StatefulSet or ReplicaSet (any kubectl spelling).
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// The wanted replica count (checked to be within 0..=10000).
    pub replicas: i64,
}

/// Highest replica count `k8s_scale` accepts.
pub const MAX_REPLICAS: i64 = 10_000;

/// Parse a tool's arguments.
pub fn parse<T: for<'de> Deserialize<'de>>(args: &Value) -> Result<T, AnalysisError> {
    serde_json::from_value(args.clone()).map_err(|e| AnalysisError::InvalidArguments(e.to_string()))
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

const KIND_DOC: &str = "What kubectl accepts: `Pod`, `pods`, `po`, `deployments.apps`, `v1/Secret`; resolved through the cluster's API discovery (an unknown kind is denied).";

/// The tools of a Kubernetes connection.
pub fn specs() -> Vec<ToolSpec> {
    let conn = json!({"type": "string", "description": "Connection name (see list_connections)."});
    let kind = json!({"type": "string", "description": KIND_DOC});
    vec![
        ToolSpec {
            name: "k8s_list".into(),
            description: "List Kubernetes objects of one kind, in one namespace or across every namespace the connection and policy allow. Secret values are masked unless policy permits unmask; managedFields are dropped.".into(),
            input_schema: object(json!({
                "type": "object",
                "properties": {
                    "connection": conn,
                    "kind": kind,
                    "namespace": {"type": "string", "description": "One namespace; leave out for all namespaces the connection may touch."},
                    "label_selector": {"type": "string", "description": "e.g. `app=web,tier!=db`."},
                    "field_selector": {"type": "string", "description": "e.g. `status.phase=Running`."},
                    "limit": {"type": "integer", "minimum": 1, "description": "At most this many items (the connection's max_items caps it)."}
                },
                "required": ["connection", "kind"],
                "additionalProperties": false
            })),
            output_schema: object(json!({
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": {"type": "object"}},
                    "truncated": {"type": "boolean"}
                },
                "required": ["items", "truncated"]
            })),
            read_only: true,
        },
        ToolSpec {
            name: "k8s_get".into(),
            description: "Get one Kubernetes object. Secret values are masked unless policy permits unmask; managedFields are dropped.".into(),
            input_schema: object(json!({
                "type": "object",
                "properties": {
                    "connection": conn,
                    "kind": kind,
                    "name": {"type": "string"},
                    "namespace": {"type": "string", "description": "Required for namespaced kinds."}
                },
                "required": ["connection", "kind", "name"],
                "additionalProperties": false
            })),
            output_schema: object(json!({
                "type": "object",
                "properties": {"object": {"type": "object"}},
                "required": ["object"]
            })),
            read_only: true,
        },
        ToolSpec {
            name: "k8s_events".into(),
            description: "List the events of one namespace, optionally only those about one kind and/or name of object. Messages pass the detectors.".into(),
            input_schema: object(json!({
                "type": "object",
                "properties": {
                    "connection": conn,
                    "namespace": {"type": "string"},
                    "kind": {"type": "string", "description": "Only events about objects of this kind (what kubectl accepts)."},
                    "name": {"type": "string", "description": "Only events about objects of this name."}
                },
                "required": ["connection", "namespace"],
                "additionalProperties": false
            })),
            output_schema: object(json!({
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": {
                        "type": "object",
                        "properties": {
                            "type": {"type": ["string", "null"]},
                            "reason": {"type": ["string", "null"]},
                            "message": {"type": ["string", "null"]},
                            "object": {"type": "string", "description": "`Kind/name` of the object the event is about."},
                            "count": {"type": "integer"},
                            "last_seen": {"type": ["string", "null"]}
                        },
                        "required": ["type", "reason", "message", "object", "count", "last_seen"]
                    }},
                    "truncated": {"type": "boolean"}
                },
                "required": ["items"]
            })),
            read_only: true,
        },
        ToolSpec {
            name: "k8s_scale".into(),
            description: "Set the replica count of a Deployment, StatefulSet or ReplicaSet through its scale subresource.".into(),
            input_schema: object(json!({
                "type": "object",
                "properties": {
                    "connection": conn,
                    "kind": {"type": "string", "description": "Deployment, StatefulSet or ReplicaSet (what kubectl accepts)."},
                    "name": {"type": "string"},
                    "namespace": {"type": "string"},
                    "replicas": {"type": "integer", "minimum": 0, "maximum": MAX_REPLICAS}
                },
                "required": ["connection", "kind", "name", "namespace", "replicas"],
                "additionalProperties": false
            })),
            output_schema: object(json!({
                "type": "object",
                "properties": {
                    "before": {"type": "integer"},
                    "after": {"type": "integer"}
                },
                "required": ["before", "after"]
            })),
            read_only: false,
        },
        crate::connector::ops::restart_spec(),
        crate::connector::ops::delete_spec(),
        crate::logs::spec(),
        crate::exec::spec(),
        crate::apply::spec(),
    ]
}
