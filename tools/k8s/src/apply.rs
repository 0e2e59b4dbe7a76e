//! `k8s_apply`: a manifest's objects analysed into one `k8s:apply` request
//! each (the contract's context: kind, group, namespace, name, labels,
//! dry_run, pod_security, binds_roles, images), then applied with
//! server-side apply (field manager `tollgate`, conflicts not forced).
//!
//! Execution runs in two phases so that a manifest is never silently half
//! applied: first every object is read and applied with `dryRun=All` (any
//! failure there ends the call with nothing applied, and the server's
//! dry-run result is analysed again: a `pod_security` flag or bound role
//! that policy was not asked about fails the call); then, unless `dry_run`,
//! the objects are applied for real in manifest order, and a failure names
//! what was applied and what was not. The result holds, per object, the
//! action (`created`, `configured`, `unchanged`) and the diff between the
//! live object and the server's answer, as JSON-pointer entries whose
//! values carry field origins, so Secret values and the last-applied
//! annotation are masked as `K8S_SECRET` and env credentials as `SECRET`.
//! The approval's review shows the objects and, read by `prepare` with the
//! same dry runs ([`ReviewDiffs`]), the server's diff.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use gateway_core::access::{AccessRequest, ContextValue};
use gateway_core::connector::{
    AnalysisError, ExecLimits, ExecuteError, FieldOrigin, Plan, ToolOutput, ToolSpec,
};
use gateway_core::review::{ReviewItem, ReviewSummary, ReviewText};
use kube::api::{DynamicObject, GetParams, Patch, PatchParams, ValidationDirective};
use kube::core::Resource as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::kinds::{Catalog, KindInfo};
use crate::manifest::{self, Features};
use crate::names;
use crate::origins;
use crate::vocabulary;

/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "tollgate";
/// Objects named in a review title before "and N more".
const TITLE_OBJECTS: usize = 3;

/// `k8s_apply` arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyArgs {
    /// Routed by the gateway.
    #[allow(dead_code, reason = "read by the router")]
    pub connection: String,
    /// YAML (one or more `---` documents) or JSON (object, array, `List`).
    pub manifest: String,
    /// Namespace of namespaced objects whose document sets none.
    pub namespace: Option<String>,
    /// Stop after the server dry run and its diff.
    #[serde(default)]
    pub dry_run: bool,
}

/// One object to apply, resolved and checked.
#[derive(Debug, Clone)]
pub struct ApplyObject {
    /// The resource (version as the manifest wrote it).
    pub kind: KindInfo,
    /// Namespace (None: cluster-scoped).
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
    /// The body sent (the parsed document, its namespace set).
    pub body: Value,
    /// What policy was asked about.
    pub features: Features,
}

impl ApplyObject {
    /// `Kind/namespace/name` or `Kind/name`, as the review names objects.
    pub fn place(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{}", self.kind.kind, self.name),
            None => format!("{}/{}", self.kind.kind, self.name),
        }
    }
}

/// What analysis hands execution.
#[derive(Debug, Clone)]
pub struct ApplyPlan {
    /// In manifest order.
    pub objects: Vec<ApplyObject>,
    /// Stop after the dry run.
    pub dry_run: bool,
}

/// The analysed call: requests, review and the plan.
pub struct Analysed {
    requests: Vec<AccessRequest>,
    review: ReviewSummary,
    plan: ApplyPlan,
}

impl Analysed {
    /// The apply plan.
    pub fn plan(&self) -> &ApplyPlan {
        &self.plan
    }

    /// The gateway's plan, the connector wrapping the apply plan in its
    /// own prepared form.
    pub fn into_plan(
        self,
        wrap: impl FnOnce(ApplyPlan) -> Box<dyn std::any::Any + Send + Sync>,
    ) -> Plan {
        Plan {
            read_only: self.plan.dry_run,
            requests: self.requests,
            review: self.review,
            prepared: wrap(self.plan),
        }
    }
}

/// The spelling under which the catalog knows an object's group and kind
/// (any version of the group).
fn catalog_spec(group: &str, version: &str, kind: &str) -> String {
    if group.is_empty() {
        format!("{version}/{kind}")
    } else {
        format!("{kind}.{group}")
    }
}

/// The kinds a call's manifest names, for discovery to know before
/// analysis (unparseable manifests name none: analysis refuses them).
pub fn kind_specs(args: &Value) -> Vec<String> {
    let Some(text) = args.get("manifest").and_then(Value::as_str) else {
        return vec![];
    };
    let Ok(docs) = manifest::parse(text) else {
        return vec![];
    };
    docs.iter()
        .filter_map(|d| manifest::object(d).ok())
        .map(|o| catalog_spec(&o.group, &o.version, &o.kind))
        .collect()
}

fn outside(ns: &str, connection: &str) -> AnalysisError {
    AnalysisError::InvalidArguments(format!(
        "namespace `{ns}` is outside the namespaces of connection `{connection}`"
    ))
}

/// The request about one object, with every key of `K8sContext`.
fn request(
    connection: &str,
    o: &ApplyObject,
    labels: &BTreeSet<String>,
    dry_run: bool,
) -> AccessRequest {
    let s = |v: &str| ContextValue::String(v.to_string());
    let context: BTreeMap<String, ContextValue> = [
        ("kind", s(&o.kind.kind)),
        ("group", s(&o.kind.group)),
        ("namespace", s(o.namespace.as_deref().unwrap_or(""))),
        ("name", s(&o.name)),
        ("labels", ContextValue::StringSet(labels.clone())),
        ("dry_run", ContextValue::Bool(dry_run)),
        (
            "pod_security",
            ContextValue::StringSet(o.features.pod_security.clone()),
        ),
        (
            "binds_roles",
            ContextValue::StringSet(o.features.binds_roles.clone()),
        ),
        ("images", ContextValue::StringSet(o.features.images.clone())),
        ("argv", s("")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    AccessRequest {
        action: "k8s:apply".into(),
        resource: vocabulary::object(connection, o.namespace.as_deref(), &o.kind.kind, &o.name),
        context,
    }
}

/// Analyse a `k8s_apply` call on connection `connection` (its allowed
/// `namespaces`, the cluster's `catalog`). Pure: nothing is sent.
pub fn analyse(
    connection: &str,
    catalog: Option<&Catalog>,
    namespaces: Option<&BTreeSet<String>>,
    a: ApplyArgs,
    review_diff: Option<String>,
) -> Result<Analysed, AnalysisError> {
    let allowed = |ns: &str| -> Result<(), AnalysisError> {
        names::namespace(ns).map_err(|e| AnalysisError::InvalidArguments(e.to_string()))?;
        match namespaces {
            Some(set) if !set.contains(ns) => Err(outside(ns, connection)),
            _ => Ok(()),
        }
    };
    if let Some(ns) = &a.namespace {
        allowed(ns)?;
    }
    let docs = manifest::parse(&a.manifest).map_err(|e| match e {
        e @ manifest::ManifestError::Invalid { .. } => {
            AnalysisError::InvalidArguments(e.to_string())
        }
        e => AnalysisError::Unanalysable(e.to_string()),
    })?;
    let catalog = catalog.ok_or_else(|| {
        AnalysisError::Unanalysable(
            "the cluster's API discovery could not be read, so the manifest's kinds cannot be resolved"
                .into(),
        )
    })?;
    let mut objects = Vec::with_capacity(docs.len());
    let mut requests = Vec::with_capacity(docs.len());
    let mut seen = BTreeSet::new();
    for doc in &docs {
        let obj =
            manifest::object(doc).map_err(|e| AnalysisError::InvalidArguments(e.to_string()))?;
        let at = &obj.at;
        let api_version = doc.value["apiVersion"].as_str().unwrap_or_default();
        let info = catalog
            .resolve(&catalog_spec(&obj.group, &obj.version, &obj.kind))
            .ok()
            .filter(|k| k.kind == obj.kind && k.group == obj.group)
            .ok_or_else(|| {
                AnalysisError::Unanalysable(format!(
                    "{at}: unknown kind `{}` in apiVersion `{api_version}`: the cluster's API discovery serves no such resource",
                    obj.kind
                ))
            })?;
        for verb in ["get", "patch"] {
            if !info.serves(verb) {
                return Err(AnalysisError::Unanalysable(format!(
                    "{at}: kind `{}` does not serve `{verb}`, so it cannot be applied",
                    info.kind
                )));
            }
        }
        let mut kind = info.clone();
        kind.version = obj.version.clone();
        let namespace = if kind.namespaced {
            let ns = match (&obj.namespace, &a.namespace) {
                (Some(d), Some(arg)) if d != arg => {
                    return Err(AnalysisError::InvalidArguments(format!(
                        "{at}: metadata.namespace `{d}` conflicts with the `namespace` argument `{arg}`"
                    )));
                }
                (Some(ns), _) | (None, Some(ns)) => ns.clone(),
                (None, None) => {
                    return Err(AnalysisError::InvalidArguments(format!(
                        "{at}: {} `{}` is namespaced: set metadata.namespace or the `namespace` argument",
                        kind.kind, obj.name
                    )));
                }
            };
            allowed(&ns)?;
            Some(ns)
        } else {
            if let Some(ns) = &obj.namespace {
                return Err(AnalysisError::InvalidArguments(format!(
                    "{at}: {} is cluster-scoped: remove metadata.namespace `{ns}`",
                    kind.kind
                )));
            }
            // The Namespace objects a connection may touch are its namespaces.
            if kind.kind == "Namespace" && kind.group.is_empty() {
                allowed(&obj.name)?;
            }
            None
        };
        let features = manifest::features(&kind.group, &kind.kind, &obj.body)
            .map_err(|e| AnalysisError::InvalidArguments(format!("{at}: {e}")))?;
        let mut body = obj.body;
        if let (Some(ns), Some(meta)) = (
            &namespace,
            body.get_mut("metadata").and_then(Value::as_object_mut),
        ) {
            meta.insert("namespace".into(), Value::String(ns.clone()));
        }
        let o = ApplyObject {
            kind,
            namespace,
            name: obj.name,
            body,
            features,
        };
        if !seen.insert((o.kind.group.clone(), o.place())) {
            return Err(AnalysisError::InvalidArguments(format!(
                "{at}: {} appears twice in the manifest",
                o.place()
            )));
        }
        requests.push(request(connection, &o, &obj.labels, a.dry_run));
        objects.push(o);
    }
    let mut review = review(&objects, a.dry_run);
    review.diff = review_diff.map(ReviewText::code);
    Ok(Analysed {
        requests,
        review,
        plan: ApplyPlan {
            objects,
            dry_run: a.dry_run,
        },
    })
}

/// What reviewers see: each object as it will be sent (Secret values and
/// env credentials replaced), with what policy was asked about; the
/// server's diff, when `prepare` could read it, is added by [`analyse`].
fn review(objects: &[ApplyObject], dry_run: bool) -> ReviewSummary {
    let places: Vec<String> = objects.iter().map(ApplyObject::place).collect();
    let mut title = if places.len() == 1 {
        format!("apply {}", places[0])
    } else {
        let mut t = format!(
            "apply {} objects: {}",
            places.len(),
            places[..places.len().min(TITLE_OBJECTS)].join(", ")
        );
        if places.len() > TITLE_OBJECTS {
            t.push_str(&format!(" and {} more", places.len() - TITLE_OBJECTS));
        }
        t
    };
    if dry_run {
        title.push_str(" (server dry run only)");
    }
    let label = if dry_run { "apply (dry run)" } else { "apply" };
    let runs = objects
        .iter()
        .map(|o| ReviewItem {
            label: label.into(),
            resources: vec![o.place()],
            text: ReviewText::code(format!(
                "{}{}",
                manifest::describe(&o.features),
                manifest::review_text(&o.body)
            )),
        })
        .collect();
    ReviewSummary {
        title,
        runs,
        resources: places,
        diff: None,
    }
}

/// The arguments of a `k8s_apply` call as the audit record and reviewers
/// show them: the manifest re-rendered from its parsed objects with Secret
/// values, the last-applied annotation and env credentials replaced by
/// their type (as results show them), whatever analysis then decides; a
/// manifest that cannot be parsed is recorded by its size only (its text may
/// hold Secret values no detector recognises).
pub fn recorded_arguments(args: &Value) -> Option<Value> {
    let text = args.get("manifest")?.as_str()?;
    let shown = match manifest::parse(text) {
        Ok(docs) => docs
            .iter()
            .map(|d| manifest::review_text(&d.value))
            .collect::<Vec<_>>()
            .join("\n---\n"),
        Err(_) => format!("[manifest not parsed: {} bytes, not recorded]", text.len()),
    };
    let mut args = args.clone();
    args["manifest"] = Value::String(shown);
    Some(args)
}

/// The tool's spec.
pub fn spec() -> ToolSpec {
    let object = |v: Value| match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    ToolSpec {
        name: "k8s_apply".into(),
        description: format!(
            "Server-side apply (field manager `{FIELD_MANAGER}`) of a manifest: YAML (one or more `---` documents) or JSON (an object, an array or a List), at most {} objects and {} bytes. A server dry run of every object runs first; nothing is applied if any fails. Returns each object's action and its diff (JSON-pointer entries); Secret values are masked unless policy permits unmask.",
            manifest::MAX_OBJECTS,
            manifest::MAX_MANIFEST_BYTES
        ),
        input_schema: object(json!({
            "type": "object",
            "properties": {
                "connection": {"type": "string", "description": "Connection name (see list_connections)."},
                "manifest": {"type": "string", "description": "YAML or JSON text of the objects to apply."},
                "namespace": {"type": "string", "description": "Namespace of namespaced objects whose metadata sets none (one that sets another is refused)."},
                "dry_run": {"type": "boolean", "description": "Stop after the server dry run: show the diff, change nothing.", "default": false}
            },
            "required": ["connection", "manifest"],
            "additionalProperties": false
        })),
        output_schema: object(json!({
            "type": "object",
            "properties": {
                "objects": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "kind": {"type": "string"},
                        "namespace": {"type": ["string", "null"]},
                        "name": {"type": "string"},
                        "action": {"enum": ["created", "configured", "unchanged"]},
                        "diff": {"type": "array", "items": {
                            "type": "object",
                            "properties": {
                                "path": {"type": "string", "description": "JSON pointer into the object (\"\": the whole object)."},
                                "op": {"enum": ["add", "remove", "replace"]},
                                "before": {},
                                "after": {}
                            },
                            "required": ["path", "op"]
                        }},
                        "diff_omitted": {"type": "boolean", "description": "The diff did not fit the result's byte cap."}
                    },
                    "required": ["kind", "namespace", "name", "action", "diff"]
                }},
                "dry_run": {"type": "boolean"}
            },
            "required": ["objects", "dry_run"]
        })),
        read_only: false,
    }
}

// === execution ===

/// Metadata the server sets on every write: not part of a change.
const NOISE: [&str; 6] = [
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
];

/// The object as diffs compare it: server bookkeeping and `status` (which
/// an apply does not set) dropped.
pub fn clean(mut obj: Value) -> Value {
    if let Some(map) = obj.as_object_mut() {
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in NOISE {
                meta.remove(k);
            }
        }
    }
    obj
}

/// One change of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// JSON pointer into the object ("" for the whole object).
    pub path: String,
    /// `add`, `remove` or `replace`.
    pub op: &'static str,
    /// The value before (remove, replace).
    pub before: Option<Value>,
    /// The value after (add, replace).
    pub after: Option<Value>,
}

impl Change {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("path".into(), json!(self.path));
        m.insert("op".into(), json!(self.op));
        if let Some(b) = &self.before {
            m.insert("before".into(), b.clone());
        }
        if let Some(a) = &self.after {
            m.insert("after".into(), a.clone());
        }
        Value::Object(m)
    }
}

/// The changes from `before` to `after`: maps key by key, arrays index by
/// index (a longer or shorter array adds or removes its tail), anything
/// else replaced whole.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    fn walk(path: &mut String, a: &Value, b: &Value, out: &mut Vec<Change>) {
        let at = path.len();
        let child = |path: &mut String, key: &str| {
            path.truncate(at);
            path.push('/');
            path.push_str(&origins::escape(key));
        };
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for (k, va) in x {
                    if !y.contains_key(k) {
                        child(path, k);
                        out.push(Change {
                            path: path.clone(),
                            op: "remove",
                            before: Some(va.clone()),
                            after: None,
                        });
                    }
                }
                for (k, vb) in y {
                    child(path, k);
                    match x.get(k) {
                        None => out.push(Change {
                            path: path.clone(),
                            op: "add",
                            before: None,
                            after: Some(vb.clone()),
                        }),
                        Some(va) => walk(path, va, vb, out),
                    }
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                for i in 0..x.len().max(y.len()) {
                    child(path, &i.to_string());
                    match (x.get(i), y.get(i)) {
                        (Some(va), Some(vb)) => walk(path, va, vb, out),
                        (Some(va), None) => out.push(Change {
                            path: path.clone(),
                            op: "remove",
                            before: Some(va.clone()),
                            after: None,
                        }),
                        (None, Some(vb)) => out.push(Change {
                            path: path.clone(),
                            op: "add",
                            before: None,
                            after: Some(vb.clone()),
                        }),
                        (None, None) => {}
                    }
                }
            }
            (a, b) if a != b => out.push(Change {
                path: path.clone(),
                op: "replace",
                before: Some(a.clone()),
                after: Some(b.clone()),
            }),
            _ => {}
        }
        path.truncate(at);
    }
    let mut out = Vec::new();
    walk(&mut String::new(), before, after, &mut out);
    out
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// The origins of a diff value found at `target` in the result that is the
/// object's value at `path`, given the origins `of` the whole object
/// (pointers from its root): an origin inside the value moves under
/// `target`; a value inside an origin's field is that field extended by
/// the keys on the way down, and keeps its sensitivity.
fn value_origins(of: &[FieldOrigin], path: &str, target: &str, out: &mut Vec<FieldOrigin>) {
    for o in of {
        let (pointer, field) = if o.pointer == path {
            (target.to_string(), o.field.clone())
        } else if let Some(rest) = o.pointer.strip_prefix(path).filter(|r| r.starts_with('/')) {
            (format!("{target}{rest}"), o.field.clone())
        } else if let Some(rest) = path
            .strip_prefix(o.pointer.as_str())
            .and_then(|r| r.strip_prefix('/'))
        {
            let mut field = o.field.clone();
            field.0.extend(rest.split('/').map(unescape));
            (target.to_string(), field)
        } else {
            continue;
        };
        let mut origin = FieldOrigin::new(pointer, field);
        origin.sensitive = o.sensitive.clone();
        out.push(origin);
    }
}

/// Does the server's answer ask for a pod_security flag or a bound role
/// that neither policy was asked about nor the live object already had?
fn unasked(obj: &ApplyObject, live: Option<&Value>, answer: &Value) -> Option<String> {
    let of = |v: &Value| manifest::features(&obj.kind.group, &obj.kind.kind, v).unwrap_or_default();
    let now = of(answer);
    let had = live.map(of).unwrap_or_default();
    let flag = now
        .pod_security
        .iter()
        .find(|f| !obj.features.pod_security.contains(*f) && !had.pod_security.contains(*f))
        .map(|f| format!("pod_security `{f}`"));
    let role = now
        .binds_roles
        .iter()
        .find(|r| !obj.features.binds_roles.contains(*r) && !had.binds_roles.contains(*r))
        .map(|r| format!("binds_roles `{r}`"));
    flag.or(role)
}

/// How a kube error becomes the gateway's (the connector's mapping, which
/// scrubs credentials).
pub type ErrorMap<'a> = &'a (dyn Fn(kube::Error) -> ExecuteError + Send + Sync);

/// The same error with `prefix` and `suffix` around its text.
fn reword(e: ExecuteError, prefix: &str, suffix: &str) -> ExecuteError {
    match e {
        ExecuteError::Target(m) => ExecuteError::Target(format!("{prefix}{m}{suffix}")),
        ExecuteError::Unavailable(m) => ExecuteError::Unavailable(format!("{prefix}{m}{suffix}")),
        ExecuteError::Other(m) => ExecuteError::Other(format!("{prefix}{m}{suffix}")),
        other => ExecuteError::Other(format!("{prefix}{other}{suffix}")),
    }
}

fn list(places: &[String]) -> String {
    if places.is_empty() {
        "none".into()
    } else {
        places.join(", ")
    }
}

async fn get_live(
    client: &kube::Client,
    err: ErrorMap<'_>,
    o: &ApplyObject,
) -> Result<Option<Value>, ExecuteError> {
    let ar = o.kind.api_resource();
    let req = kube::core::Request::new(DynamicObject::url_path(&ar, o.namespace.as_deref()))
        .get(&o.name, &GetParams::default())
        .map_err(|e| ExecuteError::Other(format!("cannot build the request: {e}")))?;
    match client.request::<Value>(req).await {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(err(e)),
    }
}

async fn server_apply(
    client: &kube::Client,
    err: ErrorMap<'_>,
    o: &ApplyObject,
    dry_run: bool,
) -> Result<Value, ExecuteError> {
    let ar = o.kind.api_resource();
    let params = PatchParams {
        dry_run,
        // A field another manager owns is a conflict the caller sees, never
        // taken over silently.
        force: false,
        field_manager: Some(FIELD_MANAGER.into()),
        field_validation: Some(ValidationDirective::Strict),
    };
    let req = kube::core::Request::new(DynamicObject::url_path(&ar, o.namespace.as_deref()))
        .patch(&o.name, &params, &Patch::Apply(&o.body))
        .map_err(|e| ExecuteError::Other(format!("cannot build the request: {e}")))?;
    client.request::<Value>(req).await.map_err(err)
}

/// Execute the plan: dry runs of every object, then (unless `dry_run`) the
/// applies, within `budget` from `started` and the caller's cancellation.
pub async fn execute(
    client: &kube::Client,
    err: ErrorMap<'_>,
    plan: &ApplyPlan,
    limits: &ExecLimits,
    started: Instant,
    budget: Duration,
) -> Result<ToolOutput, ExecuteError> {
    let places: Vec<String> = plan.objects.iter().map(ApplyObject::place).collect();
    // Phase 1: read and dry-run everything; nothing is applied on failure.
    let mut lives = Vec::with_capacity(plan.objects.len());
    let mut answers = Vec::with_capacity(plan.objects.len());
    for (o, place) in plan.objects.iter().zip(&places) {
        let step = async {
            let live = get_live(client, err, o).await?;
            let answer = server_apply(client, err, o, true).await?;
            Ok::<_, ExecuteError>((live, answer))
        };
        let (live, answer) = tokio::select! {
            r = step => r.map_err(|e| reword(e, &format!("{place}: the server dry run failed: "), "; nothing was applied"))?,
            e = limits.stopped(started, Some(budget)) => return Err(e),
        };
        if let Some(what) = unasked(o, live.as_ref(), &answer) {
            return Err(ExecuteError::Other(format!(
                "{place}: the server's dry-run result asks for {what}, which the manifest did not show to policy (a mutating admission webhook, or a field analysis cannot read); nothing was applied"
            )));
        }
        lives.push(live);
        answers.push(answer);
    }
    // Phase 2: the applies, in manifest order.
    if !plan.dry_run {
        for (i, o) in plan.objects.iter().enumerate() {
            let stop = if limits.cancel.is_cancelled() {
                Some("cancelled by the caller")
            } else if started.elapsed() >= budget {
                Some("out of time")
            } else {
                None
            };
            if let Some(why) = stop {
                return Err(ExecuteError::Other(format!(
                    "{why} in the middle of the apply: applied: {}; not applied: {}",
                    list(&places[..i]),
                    list(&places[i..])
                )));
            }
            answers[i] = server_apply(client, err, o, false).await.map_err(|e| {
                reword(
                    e,
                    &format!("{}: the apply failed: ", places[i]),
                    &format!(
                        "; applied before it: {}; not applied: {}",
                        list(&places[..i]),
                        list(&places[i..])
                    ),
                )
            })?;
        }
    }
    Ok(output(plan, lives, answers, limits.max_bytes))
}

/// The result: per object its action and diff, with field origins; diffs
/// that do not fit `max_bytes` are left out (marked `diff_omitted`).
fn output(
    plan: &ApplyPlan,
    lives: Vec<Option<Value>>,
    answers: Vec<Value>,
    max_bytes: usize,
) -> ToolOutput {
    let mut objects = Vec::with_capacity(plan.objects.len());
    let mut field_origins = Vec::new();
    let mut bytes = 64usize;
    let mut truncated = false;
    for (i, ((o, live), answer)) in plan.objects.iter().zip(lives).zip(answers).enumerate() {
        let after = clean(answer);
        let mut after_origins = Vec::new();
        origins::of_object("", &after, &mut after_origins);
        let (action, changes, before_origins) = match live {
            None => (
                "created",
                vec![Change {
                    path: String::new(),
                    op: "add",
                    before: None,
                    after: Some(after.clone()),
                }],
                vec![],
            ),
            Some(live) => {
                let before = clean(live);
                let mut bo = Vec::new();
                origins::of_object("", &before, &mut bo);
                let changes = diff(&before, &after);
                let action = if changes.is_empty() {
                    "unchanged"
                } else {
                    "configured"
                };
                (action, changes, bo)
            }
        };
        let entries: Vec<Value> = changes.iter().map(Change::to_json).collect();
        let size = serde_json::to_vec(&entries).map_or(0, |v| v.len()) + 128;
        let fits = bytes + size <= max_bytes;
        let mut item = json!({
            "kind": o.kind.kind,
            "namespace": o.namespace,
            "name": o.name,
            "action": action,
            "diff": if fits { Value::Array(entries) } else { json!([]) },
        });
        if fits {
            bytes += size;
            for (j, c) in changes.iter().enumerate() {
                let at = format!("/objects/{i}/diff/{j}");
                if c.before.is_some() {
                    value_origins(
                        &before_origins,
                        &c.path,
                        &format!("{at}/before"),
                        &mut field_origins,
                    );
                }
                if c.after.is_some() {
                    value_origins(
                        &after_origins,
                        &c.path,
                        &format!("{at}/after"),
                        &mut field_origins,
                    );
                }
            }
        } else {
            truncated = true;
            item["diff_omitted"] = json!(true);
        }
        objects.push(item);
    }
    let n = objects.len() as u64;
    ToolOutput {
        value: json!({"objects": objects, "dry_run": plan.dry_run}),
        items: Some(n),
        item_list: Some("/objects".into()),
        truncated,
        field_origins,
        item_guards: vec![],
        recording: None,
    }
}

/// How long a diff read by `prepare` may serve the review.
const REVIEW_DIFF_TTL: Duration = Duration::from_secs(30);
/// Review diffs kept at most (older ones dropped first).
const MAX_REVIEW_DIFFS: usize = 256;

/// The server's diffs read by `prepare` for the review, by call arguments
/// (a hash with this process's random keys), for a short while. The
/// gateway binds an approval to its review, so an approved call whose
/// fresh diff differs (the live objects changed) is refused.
#[derive(Default)]
pub struct ReviewDiffs {
    keys: std::hash::RandomState,
    diffs: std::sync::Mutex<std::collections::HashMap<u64, (Instant, String)>>,
}

impl ReviewDiffs {
    fn key(&self, args: &Value) -> u64 {
        use std::hash::BuildHasher;
        self.keys.hash_one(args.to_string())
    }

    /// The diff read for `args`, if fresh.
    pub fn get(&self, args: &Value) -> Option<String> {
        let map = self.diffs.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&self.key(args))
            .filter(|(at, _)| at.elapsed() < REVIEW_DIFF_TTL)
            .map(|(_, d)| d.clone())
    }

    /// Read the live objects and the server's dry-run answers of `plan`
    /// (nothing is changed) and keep the diff text for `args`. A failure
    /// keeps nothing: the review then has no diff, and execution runs the
    /// dry runs again before anything is applied.
    pub async fn read(
        &self,
        client: &kube::Client,
        err: ErrorMap<'_>,
        plan: &ApplyPlan,
        args: &Value,
        budget: Duration,
    ) {
        let work = async {
            let mut text = String::new();
            for o in &plan.objects {
                let live = get_live(client, err, o).await.ok()?;
                let answer = server_apply(client, err, o, true).await.ok()?;
                text.push_str(&render(o, live, answer));
            }
            Some(text)
        };
        let Ok(Some(text)) = tokio::time::timeout(budget, work).await else {
            return;
        };
        let key = self.key(args);
        let mut map = self.diffs.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (at, _)| at.elapsed() < REVIEW_DIFF_TTL);
        if map.len() >= MAX_REVIEW_DIFFS
            && let Some(oldest) = map.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(key, (Instant::now(), text));
    }
}

/// A diff value as reviewers see it: the values its origins mark
/// sensitive replaced by their type, compact JSON.
fn shown(of: &[FieldOrigin], path: &str, value: &Value) -> String {
    let mut found = Vec::new();
    value_origins(of, path, "", &mut found);
    let mut v = value.clone();
    for o in found {
        if let Some(t) = &o.sensitive
            && let Some(slot) = v.pointer_mut(&o.pointer)
        {
            *slot = Value::String(format!("[{t}]"));
        }
    }
    v.to_string()
}

/// One object's diff as review text: `<place>: <action>` and a line per
/// change (`~ path: before -> after`, `+ path: after`, `- path: before`).
fn render(o: &ApplyObject, live: Option<Value>, answer: Value) -> String {
    let place = o.place();
    let Some(live) = live else {
        return format!("{place}: created (the object above, with the server's defaults)\n");
    };
    let (before, after) = (clean(live), clean(answer));
    let changes = diff(&before, &after);
    if changes.is_empty() {
        return format!("{place}: unchanged\n");
    }
    let (mut bo, mut ao) = (Vec::new(), Vec::new());
    origins::of_object("", &before, &mut bo);
    origins::of_object("", &after, &mut ao);
    let mut text = format!("{place}: configured\n");
    for c in &changes {
        let b = c.before.as_ref().map(|v| shown(&bo, &c.path, v));
        let a = c.after.as_ref().map(|v| shown(&ao, &c.path, v));
        let line = match (b, a) {
            (Some(b), Some(a)) => format!("  ~ {}: {b} -> {a}\n", c.path),
            (None, Some(a)) => format!("  + {}: {a}\n", c.path),
            (Some(b), None) => format!("  - {}: {b}\n", c.path),
            (None, None) => continue,
        };
        text.push_str(&line);
    }
    text
}

#[cfg(test)]
mod tests {
    use gateway_core::connector::FieldPath;

    use super::*;

    #[test]
    fn recorded_arguments_hide_secret_values_and_unparsed_manifests() {
        let args = json!({"connection": "c", "manifest":
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  endpoint: tcp://db.internal:5432/zq9x\n"});
        let shown = recorded_arguments(&args).unwrap();
        let text = shown["manifest"].as_str().unwrap();
        assert!(text.contains("\"endpoint\": \"[K8S_SECRET]\""), "{text}");
        assert!(!text.contains("zq9x"), "{text}");
        let broken = json!({"manifest": "kind: Secret\nstringData: {endpoint: zq9x\n  - ["});
        let shown = recorded_arguments(&broken).unwrap();
        assert_eq!(
            shown["manifest"],
            "[manifest not parsed: 46 bytes, not recorded]"
        );
        assert!(recorded_arguments(&json!({"manifest": 3})).is_none());
    }
    use crate::kinds::KindInfo;

    fn info(kind: &str, plural: &str, group: &str, namespaced: bool) -> KindInfo {
        KindInfo {
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            short_names: vec![],
            group: group.into(),
            version: "v1".into(),
            namespaced,
            verbs: ["get", "list", "patch", "create"]
                .map(String::from)
                .to_vec(),
        }
    }

    fn catalog() -> Catalog {
        Catalog::new(vec![
            info("ConfigMap", "configmaps", "", true),
            info("Secret", "secrets", "", true),
            info("Namespace", "namespaces", "", false),
            info("Deployment", "deployments", "apps", true),
            info("DaemonSet", "daemonsets", "apps", true),
            info(
                "ClusterRoleBinding",
                "clusterrolebindings",
                "rbac.authorization.k8s.io",
                false,
            ),
            info("Job", "jobs", "batch", true),
        ])
    }

    fn run(manifest: &str, namespace: Option<&str>) -> Result<Analysed, AnalysisError> {
        let ns: BTreeSet<String> = ["shop", "web"].map(String::from).into();
        analyse(
            "c",
            Some(&catalog()),
            Some(&ns),
            ApplyArgs {
                connection: "c".into(),
                manifest: manifest.into(),
                namespace: namespace.map(str::to_string),
                dry_run: false,
            },
            None,
        )
    }

    const THREE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop, labels: {app: web}}\nspec:\n  template:\n    spec:\n      hostNetwork: true\n      containers: [{name: a, image: 'nginx:1.25'}]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: innocent}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: ServiceAccount, name: default, namespace: shop}]\n";

    #[test]
    fn one_request_per_object_with_the_contract_context() {
        let a = run(THREE, Some("shop")).unwrap();
        let ids: Vec<String> = a.requests.iter().map(|r| r.resource.entity_uid()).collect();
        assert_eq!(
            ids,
            vec![
                r#"Tollgate::K8sObject::"c/shop/ConfigMap/a""#,
                r#"Tollgate::K8sObject::"c/shop/Deployment/web""#,
                r#"Tollgate::K8sObject::"c//ClusterRoleBinding/innocent""#,
            ]
        );
        assert!(a.requests.iter().all(|r| r.action == "k8s:apply"));
        let set =
            |items: &[&str]| ContextValue::StringSet(items.iter().map(|s| s.to_string()).collect());
        let dep = &a.requests[1].context;
        assert_eq!(dep["pod_security"], set(&["hostNetwork"]));
        assert_eq!(dep["images"], set(&["nginx:1.25"]));
        assert_eq!(dep["labels"], set(&["app=web"]));
        assert_eq!(dep["group"], ContextValue::String("apps".into()));
        assert_eq!(dep["dry_run"], ContextValue::Bool(false));
        assert_eq!(dep.len(), 10);
        let crb = &a.requests[2].context;
        assert_eq!(crb["binds_roles"], set(&["cluster-admin"]));
        assert_eq!(crb["namespace"], ContextValue::String(String::new()));
        // The body sent carries the namespace the request names.
        assert_eq!(a.plan.objects[0].body["metadata"]["namespace"], "shop");
        assert!(
            a.review
                .title
                .starts_with("apply 3 objects: ConfigMap/shop/a"),
            "{}",
            a.review.title
        );
        let dep_review = a.review.runs[1].text.joined();
        assert!(
            dep_review.contains("# pod_security: hostNetwork"),
            "{dep_review}"
        );
    }

    #[test]
    fn refusals_before_policy() {
        let cm = |meta: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {meta}\n");
        for (manifest, ns, needle) in [
            (cm("{name: a}"), None, "is namespaced"),
            (cm("{name: a, namespace: other}"), None, "outside the namespaces"),
            (cm("{name: a}"), Some("other"), "outside the namespaces"),
            (cm("{name: a, namespace: web}"), Some("shop"), "conflicts"),
            (cm("{name: '--server=x', namespace: shop}"), None, "not a valid Kubernetes name"),
            (cm("{name: ../x, namespace: shop}"), None, "not a valid Kubernetes name"),
            (cm("{name: a/b, namespace: shop}"), None, "not a valid Kubernetes name"),
            ("apiVersion: v1\nkind: Widget\nmetadata: {name: a}\n".into(), Some("shop"), "unknown kind `Widget`"),
            ("apiVersion: v2\nkind: ConfigMap\nmetadata: {name: a}\n".into(), Some("shop"), "unknown kind"),
            ("apiVersion: apps/v1\nkind: deployments\nmetadata: {name: a}\n".into(), Some("shop"), "unknown kind `deployments`"),
            ("apiVersion: example.com/v1\nkind: Deployment\nmetadata: {name: a}\n".into(), Some("shop"), "unknown kind"),
            ("apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n".into(), None, "outside the namespaces"),
            ("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, namespace: shop}\n".into(), None, "cluster-scoped"),
            (format!("{}---\n{}", cm("{name: a}"), cm("{name: a}")), Some("shop"), "appears twice"),
            ("apiVersion: v1\nkind: [\n".into(), None, "cannot be parsed"),
            ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: x}\n".into(), None, "roleRef.name"),
        ] {
            let e = run(&manifest, ns).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(needle), "{manifest} {ns:?}: {e}");
        }
        // Without discovery nothing can be placed.
        let e = analyse(
            "c",
            None,
            None,
            ApplyArgs {
                connection: "c".into(),
                manifest: cm("{name: a}"),
                namespace: Some("shop".into()),
                dry_run: false,
            },
            None,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("discovery"), "{e}");
    }

    #[test]
    fn diffs_name_each_change() {
        let before = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "v", "gone": "g"}, "list": [1, 2]});
        let after = json!({"metadata": {"name": "a", "labels": {"x": "2"}}, "data": {"k": "v", "new/key": "n"}, "list": [1]});
        let d: Vec<(String, &str)> = diff(&before, &after)
            .into_iter()
            .map(|c| (c.path, c.op))
            .collect();
        assert_eq!(
            d,
            vec![
                ("/metadata/labels/x".to_string(), "replace"),
                ("/data/gone".to_string(), "remove"),
                ("/data/new~1key".to_string(), "add"),
                ("/list/1".to_string(), "remove"),
            ]
        );
        assert!(diff(&before, &before).is_empty());
        let noisy = json!({"metadata": {"name": "a", "uid": "u", "resourceVersion": "1", "managedFields": []}, "status": {}});
        assert_eq!(clean(noisy), json!({"metadata": {"name": "a"}}));
    }

    #[test]
    fn diff_values_carry_the_object_origins() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"password": "b2xk", "user": "dQ=="}});
        let mut of = Vec::new();
        origins::of_object("", &secret, &mut of);
        let sensitive = |out: &[FieldOrigin]| -> Vec<(String, Option<String>)> {
            out.iter()
                .filter(|o| o.sensitive.is_some())
                .map(|o| (o.pointer.clone(), o.sensitive.clone()))
                .collect()
        };
        // A whole object added.
        let mut out = Vec::new();
        value_origins(&of, "", "/objects/0/diff/0/after", &mut out);
        assert_eq!(
            sensitive(&out),
            vec![
                (
                    "/objects/0/diff/0/after/data/password".into(),
                    Some("K8S_SECRET".into())
                ),
                (
                    "/objects/0/diff/0/after/data/user".into(),
                    Some("K8S_SECRET".into())
                ),
            ]
        );
        // One value replaced: the value is the sensitive field itself.
        let mut out = Vec::new();
        value_origins(&of, "/data/password", "/t", &mut out);
        assert_eq!(
            sensitive(&out),
            vec![("/t".into(), Some("K8S_SECRET".into()))]
        );
        // A map that holds sensitive values.
        let mut out = Vec::new();
        value_origins(&of, "/data", "/t", &mut out);
        assert_eq!(sensitive(&out).len(), 2);
        assert!(
            out.iter()
                .any(|o| o.pointer == "/t" && o.field == FieldPath::new(["Secret", "data"]))
        );
        // A value below a plain field: the field extended by the keys.
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a/b": "x"}});
        let mut of = Vec::new();
        origins::of_object("", &cm, &mut of);
        let mut out = Vec::new();
        value_origins(&of, "/data/a~1b", "/t", &mut out);
        assert_eq!(
            out,
            vec![FieldOrigin::new(
                "/t",
                FieldPath::new(["ConfigMap", "data", "a/b"])
            )]
        );
        // The last-applied annotation in an added annotation map, and an
        // env credential in an added env list, of any kind.
        let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d",
            "annotations": {origins::LAST_APPLIED: "{}", "note": "n"}},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x",
                "env": [{"name": "MODE", "value": "m"}, {"name": "API_TOKEN", "value": "t"}]}]}}}});
        let mut of = Vec::new();
        origins::of_object("", &dep, &mut of);
        let mut out = Vec::new();
        value_origins(&of, "/metadata/annotations", "/a", &mut out);
        value_origins(&of, "/spec/template/spec/containers/0/env", "/e", &mut out);
        value_origins(
            &of,
            "/spec/template/spec/containers/0/env/1/value",
            "/v",
            &mut out,
        );
        assert_eq!(
            sensitive(&out),
            vec![
                (
                    "/a/kubectl.kubernetes.io~1last-applied-configuration".into(),
                    Some("K8S_SECRET".into())
                ),
                ("/e/1/value".into(), Some("SECRET".into())),
                ("/v".into(), Some("SECRET".into())),
            ]
        );
    }

    #[test]
    fn a_dry_run_answer_asking_more_than_policy_saw_is_caught() {
        let a = run("apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d, namespace: shop}\nspec: {}\n", None).unwrap();
        let o = &a.plan.objects[0];
        let answer = json!({"spec": {"template": {"spec": {"hostPID": true}}}});
        assert_eq!(
            unasked(o, None, &answer).as_deref(),
            Some("pod_security `hostPID`")
        );
        // Already on the live object: not something this apply asks for.
        assert_eq!(unasked(o, Some(&answer), &answer), None);
        assert_eq!(unasked(o, None, &json!({"spec": {}})), None);
    }
}
