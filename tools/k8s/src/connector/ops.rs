//! `k8s_restart` and `k8s_delete`: their arguments, tool specs, analysis and
//! execution.
//!
//! Restart is kubectl's `rollout restart`: the pod template of a Deployment,
//! StatefulSet or DaemonSet gets the annotation
//! `kubectl.kubernetes.io/restartedAt` = now, so its controller rolls the
//! pods; any other kind is denied at analysis.
//!
//! Delete shows the reviewer the object it will delete. Analysis cannot read
//! the cluster, so [`K8sConnector::read_for_review`] (run from `prepare`,
//! after the names and the connection's namespaces are checked) reads it
//! and keeps a short-lived [`Snapshot`]; analysis puts its uid, labels and
//! creation time in the review and its labels in the policy context, and
//! refuses the call when there is no fresh snapshot (fail closed). Execution
//! reads the object again, refuses unless it is the one reviewed (same uid,
//! same labels; or still absent) and deletes it with a `uid` +
//! `resourceVersion` precondition, so what is deleted is exactly what the
//! result shows. The result is that object, masked like `k8s_get`'s.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use gateway_core::access::ContextValue;
use gateway_core::connector::FieldPath;
use gateway_core::connector::{
    AnalysisError, ExecLimits, ExecuteError, Plan, ToolOutput, ToolSpec,
};
use gateway_core::review::{ReviewItem, ReviewSummary, ReviewText, TextPart};
use kube::api::{
    DeleteParams, DynamicObject, GetParams, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::core::Resource as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::{K8sConnector, Prepared, typed};
use crate::client;
use crate::kinds::KindInfo;
use crate::names;
use crate::origins;
use crate::tools::parse;
use crate::vocabulary::{self, ReadContext};

/// The annotation kubectl's `rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// The kinds `k8s_restart` serves (group `apps`).
const RESTARTABLE: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];
/// How long a snapshot read by `prepare` may serve analysis.
const SNAPSHOT_TTL: Duration = Duration::from_secs(30);
/// Snapshots kept at most (older ones are dropped first).
const MAX_SNAPSHOTS: usize = 1024;

/// `k8s_restart` arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartArgs {
    /// Routed by the gateway.
    #[allow(dead_code, reason = "read by the router")]
    pub connection: String,
    /// Deployment, StatefulSet or DaemonSet (any kubectl spelling).
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
}

/// `k8s_delete` arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteArgs {
    /// Routed by the gateway.
    #[allow(dead_code, reason = "read by the router")]
    pub connection: String,
    /// What to delete (any kubectl spelling).
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Namespace (namespaced kinds).
    pub namespace: Option<String>,
    /// Server-side dry run: nothing is deleted.
    pub dry_run: Option<bool>,
}

/// A restart, analysed.
#[derive(Debug)]
pub struct Restart {
    kind: KindInfo,
    namespace: String,
    name: String,
}

/// A delete, analysed.
#[derive(Debug)]
pub struct Delete {
    kind: KindInfo,
    namespace: Option<String>,
    name: String,
    dry_run: bool,
    /// The object as the review showed it.
    reviewed: Seen,
}

/// What identifies the object a reviewer was shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    uid: String,
    labels: BTreeMap<String, String>,
    created: Option<String>,
}

/// What `prepare` found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// The object, identified.
    Found(Shown),
    /// The API server answered 404.
    Missing,
    /// It could not be read (the reason, credential-free).
    Unreadable(String),
}

#[derive(Debug)]
struct Snapshot {
    read_at: Instant,
    seen: Seen,
}

/// The objects `prepare` read for the reviews of pending deletes, by
/// (group, Kind, namespace, name).
#[derive(Debug, Default)]
pub struct Snapshots(Mutex<HashMap<String, Snapshot>>);

impl Snapshots {
    fn key(kind: &KindInfo, ns: Option<&str>, name: &str) -> String {
        format!("{}/{}/{}/{name}", kind.group, kind.kind, ns.unwrap_or(""))
    }

    fn put(&self, key: String, seen: Seen) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.read_at.elapsed() < SNAPSHOT_TTL);
        if map.len() >= MAX_SNAPSHOTS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.read_at)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            key,
            Snapshot {
                read_at: Instant::now(),
                seen,
            },
        );
    }

    fn fresh(&self, key: &str) -> Option<Seen> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|s| s.read_at.elapsed() < SNAPSHOT_TTL)
            .map(|s| s.seen.clone())
    }
}

fn invalid(e: impl ToString) -> AnalysisError {
    AnalysisError::InvalidArguments(e.to_string())
}

/// `Kind/ns/name` or, cluster-scoped, `Kind/name`.
fn place(kind: &KindInfo, ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(ns) => format!("{}/{ns}/{name}", kind.kind),
        None => format!("{}/{name}", kind.kind),
    }
}

fn identity(obj: &Value) -> Shown {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).map(str::to_string);
    let labels = obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    Shown {
        uid: s("/metadata/uid").unwrap_or_default(),
        labels,
        created: s("/metadata/creationTimestamp"),
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

fn build_error(e: kube::core::request::Error) -> ExecuteError {
    ExecuteError::Other(format!("cannot build the request: {e}"))
}

/// What a reviewer reads about a delete: the object's identity, its label
/// values as fields (so `[[masking.fields]]` rules and the detectors apply).
fn delete_review(kind: &KindInfo, at: &str, dry_run: bool, seen: &Seen) -> ReviewSummary {
    let verb = if dry_run {
        "delete (dry run)"
    } else {
        "delete"
    };
    let mut parts = vec![TextPart::Code(format!("{verb} {at}"))];
    match seen {
        Seen::Found(s) => {
            parts.push(TextPart::Code(format!("\nuid: {}", s.uid)));
            if let Some(c) = &s.created {
                parts.push(TextPart::Code(format!("\ncreated: {c}")));
            }
            parts.push(TextPart::Code("\nlabels:".into()));
            if s.labels.is_empty() {
                parts.push(TextPart::Code(" none".into()));
            }
            for (k, v) in &s.labels {
                parts.push(TextPart::Code(format!("\n  {k}: ")));
                parts.push(TextPart::Field {
                    field: FieldPath::new([kind.kind.as_str(), "metadata", "labels", k.as_str()]),
                    text: v.clone(),
                });
            }
        }
        Seen::Missing | Seen::Unreadable(_) => parts.push(TextPart::Code(
            "\n(no such object when the call was analysed: the call fails unless it exists, and then it is refused)".into(),
        )),
    }
    let title = match seen {
        Seen::Found(s) => format!("{verb} {at} (uid {})", s.uid),
        _ => format!("{verb} {at} (not found)"),
    };
    ReviewSummary {
        title,
        runs: vec![ReviewItem {
            label: "delete".into(),
            resources: vec![at.to_string()],
            text: ReviewText { parts },
        }],
        resources: vec![at.to_string()],
        diff: None,
    }
}

// === impl K8sConnector ===

impl K8sConnector {
    /// The kind and namespace a delete targets, every name checked.
    fn delete_target(&self, a: &DeleteArgs) -> Result<(KindInfo, Option<String>), AnalysisError> {
        names::object_name(&a.name).map_err(invalid)?;
        if let Some(ns) = &a.namespace {
            self.namespace_allowed(ns)?;
        }
        let kind = self.resolve(&a.kind, "delete")?;
        if !kind.serves("get") {
            return Err(AnalysisError::Unanalysable(format!(
                "kind `{}` does not serve `get`: the object to delete cannot be shown",
                kind.kind
            )));
        }
        let namespace = match (&a.namespace, kind.namespaced) {
            (Some(_), false) => {
                return Err(invalid(format!(
                    "kind `{}` is cluster-scoped: leave out `namespace`",
                    kind.kind
                )));
            }
            (None, true) => {
                return Err(invalid(format!(
                    "kind `{}` is namespaced: `namespace` is required",
                    kind.kind
                )));
            }
            (ns, _) => ns.clone(),
        };
        // The Namespace objects a connection may touch are its namespaces.
        if kind.kind == "Namespace" && kind.group.is_empty() {
            self.namespace_allowed(&a.name)?;
        }
        Ok((kind, namespace))
    }

    /// Read the object a `k8s_delete` call names, for its review (from
    /// `prepare`). Only a target that passed every name check is read.
    pub(super) async fn read_for_review(&self, args: &Value) {
        let Ok(a) = parse::<DeleteArgs>(args) else {
            return;
        };
        let Ok((kind, ns)) = self.delete_target(&a) else {
            return;
        };
        let budget = self.cfg.timeout.min(Duration::from_secs(10));
        let seen = match tokio::time::timeout(
            budget,
            self.read(&kind, ns.as_deref(), &a.name, None),
        )
        .await
        {
            Ok(Ok(obj)) => Seen::Found(identity(&obj)),
            Ok(Err(ReadError::Missing)) => Seen::Missing,
            Ok(Err(ReadError::Failed(e))) => Seen::Unreadable(e.to_string()),
            Err(_) => Seen::Unreadable("the API server did not answer in time".into()),
        };
        self.snapshots
            .put(Snapshots::key(&kind, ns.as_deref(), &a.name), seen);
    }

    /// GET one object: as the call's caller when `limits` are given (an
    /// impersonating connection), as the connection itself for the review
    /// read of `prepare` (which knows no caller).
    async fn read(
        &self,
        kind: &KindInfo,
        ns: Option<&str>,
        name: &str,
        limits: Option<&ExecLimits>,
    ) -> Result<Value, ReadError> {
        let client = self.client().await.map_err(ReadError::Failed)?;
        let mut req = kube::core::Request::new(DynamicObject::url_path(&kind.api_resource(), ns))
            .get(name, &GetParams::default())
            .map_err(|e| ReadError::Failed(build_error(e)))?;
        if let Some(limits) = limits {
            self.as_caller(&mut req, limits)
                .map_err(ReadError::Failed)?;
        }
        client.request::<Value>(req).await.map_err(|e| {
            if is_status(&e, 404) {
                ReadError::Missing
            } else {
                ReadError::Failed(match limits {
                    Some(limits) => self.refused(e, limits),
                    None => client::target_error(e, &self.cfg.token),
                })
            }
        })
    }

    pub(super) fn analyse_restart(&self, args: &Value) -> Result<Plan, AnalysisError> {
        let a: RestartArgs = parse(args)?;
        names::object_name(&a.name).map_err(invalid)?;
        self.namespace_allowed(&a.namespace)?;
        let kind = self.resolve(&a.kind, "patch")?;
        if kind.group != "apps" || !RESTARTABLE.contains(&kind.kind.as_str()) || !kind.namespaced {
            return Err(AnalysisError::Unanalysable(format!(
                "kind `{}` cannot be restarted: k8s_restart serves Deployments, StatefulSets and DaemonSets only",
                kind.kind
            )));
        }
        let (ns, name) = (&a.namespace, &a.name);
        let ctx = ReadContext {
            kind: &kind.kind,
            group: &kind.group,
            namespace: ns,
            name,
            labels: BTreeSet::new(),
        };
        let resource = vocabulary::object(&self.info.name, Some(ns), &kind.kind, name);
        let at = place(&kind, Some(ns), name);
        let title = format!("restart {} {ns}/{name}", kind.kind.to_ascii_lowercase());
        let code =
            format!("patch {at}: spec.template.metadata.annotations[\"{RESTARTED_AT}\"] = <now>");
        Ok(Plan {
            requests: vec![ctx.request("k8s:restart", resource)],
            review: ReviewSummary {
                title,
                runs: vec![ReviewItem {
                    label: "restart".into(),
                    resources: vec![at.clone()],
                    text: ReviewText::code(code),
                }],
                resources: vec![at],
                diff: None,
            },
            read_only: false,
            prepared: Box::new(Prepared::Restart(Restart {
                kind,
                namespace: a.namespace,
                name: a.name,
            })),
        })
    }

    pub(super) fn analyse_delete(&self, args: &Value) -> Result<Plan, AnalysisError> {
        let a: DeleteArgs = parse(args)?;
        let (kind, namespace) = self.delete_target(&a)?;
        let ns = namespace.as_deref();
        let at = place(&kind, ns, &a.name);
        let seen = self
            .snapshots
            .fresh(&Snapshots::key(&kind, ns, &a.name))
            .ok_or_else(|| {
                AnalysisError::Unanalysable(format!(
                    "{at} was not read for review just before analysis; call again"
                ))
            })?;
        if let Seen::Unreadable(why) = &seen {
            return Err(AnalysisError::Unanalysable(format!(
                "{at} could not be read to show it for review: {why}"
            )));
        }
        let dry_run = a.dry_run.unwrap_or(false);
        let labels = match &seen {
            Seen::Found(s) => s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            _ => BTreeSet::new(),
        };
        let ctx = ReadContext {
            kind: &kind.kind,
            group: &kind.group,
            namespace: ns.unwrap_or(""),
            name: &a.name,
            labels,
        };
        let mut request = ctx.request(
            "k8s:delete",
            vocabulary::object(&self.info.name, ns, &kind.kind, &a.name),
        );
        request
            .context
            .insert("dry_run".into(), ContextValue::Bool(dry_run));
        Ok(Plan {
            requests: vec![request],
            review: delete_review(&kind, &at, dry_run, &seen),
            read_only: false,
            prepared: Box::new(Prepared::Delete(Delete {
                kind,
                namespace,
                name: a.name,
                dry_run,
                reviewed: seen,
            })),
        })
    }

    /// `rollout restart`: annotate the pod template with the time now.
    pub(super) async fn restart(
        &self,
        r: &Restart,
        limits: &ExecLimits,
    ) -> Result<ToolOutput, ExecuteError> {
        let at = place(&r.kind, Some(&r.namespace), &r.name);
        let current = match self
            .read(&r.kind, Some(&r.namespace), &r.name, Some(limits))
            .await
        {
            Ok(obj) => obj,
            Err(ReadError::Missing) => {
                return Err(ExecuteError::Target(format!(
                    "{at} not found; nothing was restarted"
                )));
            }
            Err(ReadError::Failed(e)) => return Err(e),
        };
        if current.pointer("/spec/paused") == Some(&Value::Bool(true)) {
            return Err(ExecuteError::Target(format!(
                "{at} is paused: resume its rollout first; nothing was restarted"
            )));
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let patch = Patch::Merge(
            json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}),
        );
        let req = kube::core::Request::new(DynamicObject::url_path(
            &r.kind.api_resource(),
            Some(&r.namespace),
        ))
        .patch(&r.name, &PatchParams::default(), &patch)
        .map_err(build_error)?;
        let after: Value = self.send(req, limits).await?;
        Ok(ToolOutput {
            value: json!({
                "kind": r.kind.kind,
                "namespace": r.namespace,
                "name": r.name,
                "restarted_at": now,
                "generation": after.pointer("/metadata/generation").and_then(Value::as_i64),
            }),
            items: Some(1),
            item_list: None,
            truncated: false,
            field_origins: vec![],
            item_guards: vec![],
            recording: None,
        })
    }

    /// Read the object, check it is the one reviewed, delete exactly that
    /// version of it (uid + resourceVersion preconditions).
    pub(super) async fn delete(
        &self,
        d: &Delete,
        limits: &ExecLimits,
    ) -> Result<ToolOutput, ExecuteError> {
        let ns = d.namespace.as_deref();
        let at = place(&d.kind, ns, &d.name);
        let current = match self.read(&d.kind, ns, &d.name, Some(limits)).await {
            Ok(obj) => obj,
            Err(ReadError::Missing) => {
                return Err(ExecuteError::Target(format!(
                    "{at} not found; nothing was deleted"
                )));
            }
            Err(ReadError::Failed(e)) => return Err(e),
        };
        let now = identity(&current);
        match &d.reviewed {
            Seen::Found(shown) if shown.uid != now.uid => {
                return Err(ExecuteError::Other(format!(
                    "{at} is not the object reviewed (uid {} then, {} now): it was replaced; nothing was deleted",
                    shown.uid, now.uid
                )));
            }
            Seen::Found(shown) if shown.labels != now.labels => {
                return Err(ExecuteError::Other(format!(
                    "the labels of {at} changed since the call was decided; nothing was deleted"
                )));
            }
            Seen::Found(_) => {}
            Seen::Missing | Seen::Unreadable(_) => {
                return Err(ExecuteError::Other(format!(
                    "{at} did not exist when the call was reviewed; nothing was deleted"
                )));
            }
        }
        let rv = current
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        if now.uid.is_empty() || rv.is_none() {
            return Err(ExecuteError::Other(format!(
                "{at} has no uid or resourceVersion to delete it by; nothing was deleted"
            )));
        }
        let dp = DeleteParams {
            dry_run: d.dry_run,
            grace_period_seconds: None,
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                resource_version: rv,
                uid: Some(now.uid.clone()),
            }),
        };
        let client = self.client().await?;
        let mut req = kube::core::Request::new(DynamicObject::url_path(&d.kind.api_resource(), ns))
            .delete(&d.name, &dp)
            .map_err(build_error)?;
        self.as_caller(&mut req, limits)?;
        // The answer is the object (finalizers pending) or a Status (a dry
        // run, or gone): either way the result is the object read above.
        client.request::<Value>(req).await.map_err(|e| {
            if is_status(&e, 409) {
                ExecuteError::Target(format!(
                    "{at} changed between the read and the delete; nothing was deleted, call again"
                ))
            } else if is_status(&e, 404) {
                ExecuteError::Target(format!("{at} was deleted meanwhile by someone else"))
            } else {
                self.refused(e, limits)
            }
        })?;
        let ar = d.kind.api_resource();
        let obj = typed(current, &ar.api_version, &ar.kind);
        let mut field_origins = Vec::new();
        origins::of_object("/deleted", &obj, &mut field_origins);
        Ok(ToolOutput {
            value: json!({"deleted": obj, "dry_run": d.dry_run}),
            items: Some(1),
            item_list: None,
            truncated: false,
            field_origins,
            item_guards: vec![],
            recording: None,
        })
    }
}

/// Why a GET gave no object.
enum ReadError {
    /// 404.
    Missing,
    /// Anything else, as the gateway's error.
    Failed(ExecuteError),
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn connection() -> Value {
    json!({"type": "string", "description": "Connection name (see list_connections)."})
}

/// The spec of `k8s_restart`.
pub(crate) fn restart_spec() -> ToolSpec {
    ToolSpec {
            name: "k8s_restart".into(),
            description: "Rollout restart of a Deployment, StatefulSet or DaemonSet, like `kubectl rollout restart`: its pod template gets the annotation kubectl.kubernetes.io/restartedAt = now, so its controller replaces the pods.".into(),
            input_schema: object(json!({
                "type": "object",
                "properties": {
                    "connection": connection(),
                    "kind": {"type": "string", "description": "Deployment, StatefulSet or DaemonSet (what kubectl accepts: `deploy`, `deployments.apps`, `sts`, `ds`)."},
                    "name": {"type": "string"},
                    "namespace": {"type": "string"}
                },
                "required": ["connection", "kind", "name", "namespace"],
                "additionalProperties": false
            })),
            output_schema: object(json!({
                "type": "object",
                "properties": {
                    "kind": {"type": "string"},
                    "namespace": {"type": "string"},
                    "name": {"type": "string"},
                    "restarted_at": {"type": "string", "description": "The annotation's value (RFC 3339, UTC)."},
                    "generation": {"type": ["integer", "null"], "description": "metadata.generation after the patch (the controller rolls out this generation)."}
                },
                "required": ["kind", "namespace", "name", "restarted_at", "generation"]
            })),
            read_only: false,
    }
}

/// The spec of `k8s_delete`.
pub(crate) fn delete_spec() -> ToolSpec {
    ToolSpec {
            name: "k8s_delete".into(),
            description: "Delete one Kubernetes object (background cascading, like kubectl). The object is read first and shown in the review; it is deleted only if it is still the object reviewed. `dry_run`: the API server checks the delete without doing it. The result is the object deleted, Secret values masked unless policy permits unmask.".into(),
            input_schema: object(json!({
                "type": "object",
                "properties": {
                    "connection": connection(),
                    "kind": {"type": "string", "description": "What kubectl accepts: `Pod`, `pods`, `po`, `deployments.apps`, `v1/Secret`; resolved through the cluster's API discovery (an unknown kind is denied)."},
                    "name": {"type": "string"},
                    "namespace": {"type": "string", "description": "Required for namespaced kinds."},
                    "dry_run": {"type": "boolean", "default": false, "description": "Server-side dry run: nothing is deleted."}
                },
                "required": ["connection", "kind", "name"],
                "additionalProperties": false
            })),
            output_schema: object(json!({
                "type": "object",
                "properties": {
                    "deleted": {"type": "object", "description": "The object as read just before the delete (managedFields dropped)."},
                    "dry_run": {"type": "boolean"}
                },
                "required": ["deleted"]
            })),
            read_only: false,
    }
}

#[cfg(test)]
mod tests;
