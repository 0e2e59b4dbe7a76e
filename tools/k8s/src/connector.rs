//! The Kubernetes connector: the one [`Connector`] of the family. It
//! analyses `k8s_list`, `k8s_get`, `k8s_events` and `k8s_scale` itself and
//! routes the other tools to their modules (`ops`: restart and delete;
//! `crate::logs`, `crate::exec`, `crate::apply`) into the contract's requests
//! (names checked before policy, the kind resolved through discovery, the
//! connection's namespaces enforced); it executes them on the API server
//! within the item, byte and time caps, as the caller under `impersonate`.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use gateway_core::access::Resource;
use gateway_core::connector::{
    AnalysisError, ConnectionInfo, Connector, ExecLimits, ExecuteError, ItemGuard, Plan,
    ToolOutput, ToolSpec,
};
use gateway_core::review::{ReviewItem, ReviewSummary, ReviewText};
use kube::api::{DynamicObject, GetParams, ListParams, Patch, PatchParams};
use kube::core::Resource as _;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::client;
use crate::config::K8sConfig;
use crate::impersonation::{self, ImpersonationError};
use crate::kinds::{self, Catalog, KindInfo};
use crate::names;
use crate::origins;
use crate::tools::{self, EventsArgs, GetArgs, ListArgs, ScaleArgs};
use crate::vocabulary::{self, ReadContext};

pub(crate) mod ops;

/// Items asked for per page of a list.
const PAGE: u64 = 500;
/// A miss refreshes discovery at most this often.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// Longest selector accepted.
const MAX_SELECTOR: usize = 1024;

/// One Kubernetes connection.
pub struct K8sConnector {
    info: ConnectionInfo,
    cfg: K8sConfig,
    client: OnceCell<kube::Client>,
    catalog: RwLock<Option<Arc<Catalog>>>,
    refreshed: tokio::sync::Mutex<Option<Instant>>,
    snapshots: ops::Snapshots,
    apply_diffs: crate::apply::ReviewDiffs,
}

/// Where a list looks.
#[derive(Debug, Clone)]
enum Scope {
    /// One namespace.
    Namespace(String),
    /// The connection's namespaces, each guarded.
    Namespaces(Vec<String>),
    /// Every namespace (one cluster-wide list), each item guarded.
    All,
    /// A cluster-scoped kind.
    Cluster,
}

/// What `analyse` hands `execute`.
enum Prepared {
    List {
        kind: KindInfo,
        scope: Scope,
        label_selector: Option<String>,
        field_selector: Option<String>,
        limit: Option<u64>,
    },
    Get {
        kind: KindInfo,
        namespace: Option<String>,
        name: String,
    },
    Events {
        event: KindInfo,
        namespace: String,
        field_selector: Option<String>,
    },
    Scale {
        kind: KindInfo,
        namespace: String,
        name: String,
        replicas: i64,
    },
    Restart(ops::Restart),
    Delete(ops::Delete),
    Logs(crate::logs::Prepared),
    Exec(crate::exec::Prepared),
    Apply(crate::apply::ApplyPlan),
}

/// The kinds `k8s_scale` serves: group `apps`, with a scale subresource.
const SCALABLE: [&str; 3] = ["Deployment", "StatefulSet", "ReplicaSet"];

fn selector(s: Option<String>, what: &str) -> Result<Option<String>, AnalysisError> {
    match s {
        Some(s) if s.len() > MAX_SELECTOR || s.chars().any(char::is_control) => {
            Err(AnalysisError::InvalidArguments(format!(
                "`{what}` is too long or holds control characters"
            )))
        }
        s => Ok(s.filter(|s| !s.trim().is_empty())),
    }
}

/// The `key=value` equality terms of a label selector.
fn selector_labels(s: Option<&str>) -> BTreeSet<String> {
    s.unwrap_or("")
        .split(',')
        .filter_map(|t| {
            let t = t.trim();
            if t.contains("!=") {
                return None;
            }
            let (k, v) = t.split_once("==").or_else(|| t.split_once('='))?;
            Some(format!("{}={}", k.trim(), v.trim()))
        })
        .collect()
}

impl K8sConnector {
    /// A connector for a validated config (connects on first use).
    pub fn new(cfg: K8sConfig) -> Self {
        K8sConnector {
            info: ConnectionInfo {
                name: cfg.name.clone(),
                kind: "kubernetes".into(),
                description: cfg.description.clone(),
            },
            cfg,
            client: OnceCell::new(),
            catalog: RwLock::new(None),
            refreshed: tokio::sync::Mutex::new(None),
            snapshots: ops::Snapshots::default(),
            apply_diffs: crate::apply::ReviewDiffs::default(),
        }
    }

    async fn client(&self) -> Result<&kube::Client, ExecuteError> {
        self.client
            .get_or_try_init(|| async { client::build(&self.cfg) })
            .await
    }

    /// Send one tool request and read its JSON answer: every request of
    /// a tool goes through here (or [`Self::as_caller`] and
    /// [`Self::refused`] for a request read otherwise), so impersonation
    /// and error mapping apply to each one.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        mut req: http::Request<Vec<u8>>,
        limits: &ExecLimits,
    ) -> Result<T, ExecuteError> {
        let client = self.client().await?;
        self.as_caller(&mut req, limits)?;
        client
            .request(req)
            .await
            .map_err(|e| self.refused(e, limits))
    }

    /// With `impersonate = true`, make `req` act as the call's caller
    /// (refused when there is none or it cannot be sent as a header).
    pub(crate) fn as_caller<B>(
        &self,
        req: &mut http::Request<B>,
        limits: &ExecLimits,
    ) -> Result<(), ExecuteError> {
        if !self.cfg.impersonate {
            return Ok(());
        }
        let caller = limits.caller.as_ref().ok_or_else(|| {
            ExecuteError::Other(ImpersonationError::NoCaller(self.info.name.clone()).to_string())
        })?;
        let headers =
            impersonation::headers(caller).map_err(|e| ExecuteError::Other(e.to_string()))?;
        impersonation::apply(req, &headers);
        Ok(())
    }

    /// The gateway's error for a failed tool request; with impersonation,
    /// an RBAC refusal names the user the cluster refused.
    pub(crate) fn refused(&self, e: kube::Error, limits: &ExecLimits) -> ExecuteError {
        match (e, limits.caller.as_ref()) {
            (kube::Error::Api(s), Some(caller)) if self.cfg.impersonate && s.code == 403 => {
                ExecuteError::Target(client::scrub(
                    format!("the cluster refused user {}: {}", caller.sub, s.message),
                    &self.cfg.token,
                ))
            }
            (e, _) => client::target_error(e, &self.cfg.token),
        }
    }

    /// The client for a call whose requests kube-rs builds itself (log
    /// streams, exec): the shared one, or with `impersonate = true` one that
    /// acts as the call's caller (built per call; kube adds the
    /// `Impersonate-*` headers to every request it sends).
    pub(crate) async fn client_for(
        &self,
        limits: &ExecLimits,
    ) -> Result<kube::Client, ExecuteError> {
        if !self.cfg.impersonate {
            return self.client().await.cloned();
        }
        let caller = limits.caller.as_ref().ok_or_else(|| {
            ExecuteError::Other(ImpersonationError::NoCaller(self.info.name.clone()).to_string())
        })?;
        // The same checks as the headers of `send` (refused, never sent).
        impersonation::headers(caller).map_err(|e| ExecuteError::Other(e.to_string()))?;
        client::build_as(&self.cfg, Some(caller))
    }

    fn catalog(&self) -> Option<Arc<Catalog>> {
        self.catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Read discovery again unless that was done less than
    /// [`REFRESH_EVERY`] ago. Failures leave the old catalog. Discovery
    /// runs as the connection's own identity, never impersonated: the kinds
    /// a cluster serves are the same for every caller.
    async fn refresh(&self) {
        let mut last = self.refreshed.lock().await;
        if last.is_some_and(|t| t.elapsed() < REFRESH_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let Ok(client) = self.client().await else {
            return;
        };
        let budget = self.cfg.timeout.min(Duration::from_secs(10));
        match tokio::time::timeout(budget, kinds::discover(client)).await {
            Ok(Ok(c)) => {
                *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(c));
            }
            Ok(Err(e)) => tracing::warn!(
                connection = %self.info.name,
                error = %client::target_error(e, &self.cfg.token),
                "kubernetes discovery failed"
            ),
            Err(_) => {
                tracing::warn!(connection = %self.info.name, "kubernetes discovery timed out")
            }
        }
    }

    fn namespace_allowed(&self, ns: &str) -> Result<(), AnalysisError> {
        names::namespace(ns).map_err(|e| AnalysisError::InvalidArguments(e.to_string()))?;
        match &self.cfg.namespaces {
            Some(set) if !set.contains(ns) => Err(AnalysisError::InvalidArguments(format!(
                "namespace `{ns}` is outside the namespaces of connection `{}`",
                self.info.name
            ))),
            _ => Ok(()),
        }
    }

    fn resolve(&self, spec: &str, verb: &str) -> Result<KindInfo, AnalysisError> {
        let catalog = self.catalog().ok_or_else(|| {
            AnalysisError::Unanalysable(
                "the cluster's API discovery could not be read, so the kind cannot be resolved"
                    .into(),
            )
        })?;
        let kind = catalog
            .resolve(spec)
            .map_err(|e| AnalysisError::Unanalysable(e.to_string()))?;
        if !kind.serves(verb) {
            return Err(AnalysisError::Unanalysable(format!(
                "kind `{}` does not serve `{verb}`",
                kind.kind
            )));
        }
        Ok(kind.clone())
    }

    fn analyse_list(&self, a: ListArgs) -> Result<Plan, AnalysisError> {
        if let Some(ns) = &a.namespace {
            self.namespace_allowed(ns)?;
        }
        if a.limit == Some(0) {
            return Err(AnalysisError::InvalidArguments(
                "`limit` must be at least 1".into(),
            ));
        }
        let label_selector = selector(a.label_selector, "label_selector")?;
        let field_selector = selector(a.field_selector, "field_selector")?;
        let kind = self.resolve(&a.kind, "list")?;
        let conn = &self.info.name;
        let labels = selector_labels(label_selector.as_deref());
        let (scope, requests, title) = match (&a.namespace, kind.namespaced) {
            (Some(_), false) => {
                return Err(AnalysisError::InvalidArguments(format!(
                    "kind `{}` is cluster-scoped: leave out `namespace`",
                    kind.kind
                )));
            }
            (Some(ns), true) => {
                let ctx = ReadContext {
                    kind: &kind.kind,
                    group: &kind.group,
                    namespace: ns,
                    name: "",
                    labels,
                };
                (
                    Scope::Namespace(ns.clone()),
                    vec![ctx.request("k8s:list", vocabulary::namespace(conn, ns))],
                    format!("list {} in namespace {ns}", kind.kind),
                )
            }
            // Across namespaces: each namespace's items are guarded by a
            // request about that namespace (decided after the list).
            (None, true) => (
                match &self.cfg.namespaces {
                    Some(set) => Scope::Namespaces(set.iter().cloned().collect()),
                    None => Scope::All,
                },
                vec![],
                format!("list {} in every permitted namespace", kind.kind),
            ),
            (None, false) => {
                let ctx = ReadContext {
                    kind: &kind.kind,
                    group: &kind.group,
                    namespace: "",
                    name: "",
                    labels,
                };
                (
                    Scope::Cluster,
                    vec![ctx.request("k8s:list", Resource::connection(conn))],
                    format!("list {} (cluster-scoped)", kind.kind),
                )
            }
        };
        // What the review names: the namespace(s) or, cluster-scoped, none.
        let touched: Vec<String> = match &scope {
            Scope::Namespace(ns) => vec![format!("namespace {ns}")],
            Scope::Namespaces(list) => list.iter().map(|ns| format!("namespace {ns}")).collect(),
            Scope::All => vec!["every namespace".into()],
            Scope::Cluster => vec![],
        };
        let mut code = format!("list {}", kind.api_resource().plural);
        for (k, v) in [("labels", &label_selector), ("fields", &field_selector)] {
            if let Some(v) = v {
                code.push_str(&format!(" {k}: {v}"));
            }
        }
        Ok(Plan {
            review: review(&title, "list", code, touched),
            requests,
            read_only: true,
            prepared: Box::new(Prepared::List {
                kind,
                scope,
                label_selector,
                field_selector,
                limit: a.limit,
            }),
        })
    }

    fn analyse_get(&self, a: GetArgs) -> Result<Plan, AnalysisError> {
        names::object_name(&a.name).map_err(|e| AnalysisError::InvalidArguments(e.to_string()))?;
        if let Some(ns) = &a.namespace {
            self.namespace_allowed(ns)?;
        }
        let kind = self.resolve(&a.kind, "get")?;
        let conn = &self.info.name;
        let namespace = match (&a.namespace, kind.namespaced) {
            (Some(_), false) => {
                return Err(AnalysisError::InvalidArguments(format!(
                    "kind `{}` is cluster-scoped: leave out `namespace`",
                    kind.kind
                )));
            }
            (None, true) => {
                return Err(AnalysisError::InvalidArguments(format!(
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
        let ctx = ReadContext {
            kind: &kind.kind,
            group: &kind.group,
            namespace: namespace.as_deref().unwrap_or(""),
            name: &a.name,
            labels: BTreeSet::new(),
        };
        let resource = vocabulary::object(conn, namespace.as_deref(), &kind.kind, &a.name);
        let place = match &namespace {
            Some(ns) => format!("{}/{ns}/{}", kind.kind, a.name),
            None => format!("{}/{}", kind.kind, a.name),
        };
        Ok(Plan {
            requests: vec![ctx.request("k8s:get", resource)],
            review: review(
                &format!("get {place}"),
                "get",
                format!("get {place}"),
                vec![place.clone()],
            ),
            read_only: true,
            prepared: Box::new(Prepared::Get {
                kind,
                namespace,
                name: a.name,
            }),
        })
    }

    fn analyse_events(&self, a: EventsArgs) -> Result<Plan, AnalysisError> {
        self.namespace_allowed(&a.namespace)?;
        if let Some(name) = &a.name {
            names::object_name(name).map_err(|e| AnalysisError::InvalidArguments(e.to_string()))?;
        }
        let about = a
            .kind
            .as_deref()
            .map(|k| self.resolve(k, "get"))
            .transpose()?;
        let event = self.resolve("events", "list")?;
        if !event.group.is_empty() {
            return Err(AnalysisError::Unanalysable(
                "the cluster serves no core v1 Event".into(),
            ));
        }
        let ns = &a.namespace;
        let mut terms = Vec::new();
        if let Some(k) = &about {
            terms.push(format!("involvedObject.kind={}", k.kind));
        }
        if let Some(n) = &a.name {
            terms.push(format!("involvedObject.name={n}"));
        }
        let field_selector = (!terms.is_empty()).then(|| terms.join(","));
        let ctx = ReadContext {
            kind: "Event",
            group: "",
            namespace: ns,
            name: a.name.as_deref().unwrap_or(""),
            labels: BTreeSet::new(),
        };
        let of = match (&about, &a.name) {
            (Some(k), Some(n)) => format!(" of {}/{n}", k.kind),
            (Some(k), None) => format!(" of {} objects", k.kind),
            (None, Some(n)) => format!(" of objects named {n}"),
            (None, None) => String::new(),
        };
        let mut code = "list events".to_string();
        if let Some(fs) = &field_selector {
            code.push_str(&format!(" fields: {fs}"));
        }
        Ok(Plan {
            requests: vec![ctx.request("k8s:list", vocabulary::namespace(&self.info.name, ns))],
            review: review(
                &format!("events{of} in namespace {ns}"),
                "events",
                code,
                vec![format!("namespace {ns}")],
            ),
            read_only: true,
            prepared: Box::new(Prepared::Events {
                event,
                namespace: ns.clone(),
                field_selector,
            }),
        })
    }

    fn analyse_scale(&self, a: ScaleArgs) -> Result<Plan, AnalysisError> {
        if !(0..=tools::MAX_REPLICAS).contains(&a.replicas) {
            return Err(AnalysisError::InvalidArguments(format!(
                "`replicas` must be between 0 and {}",
                tools::MAX_REPLICAS
            )));
        }
        names::object_name(&a.name).map_err(|e| AnalysisError::InvalidArguments(e.to_string()))?;
        self.namespace_allowed(&a.namespace)?;
        let kind = self.resolve(&a.kind, "get")?;
        if kind.group != "apps" || !SCALABLE.contains(&kind.kind.as_str()) || !kind.namespaced {
            return Err(AnalysisError::Unanalysable(format!(
                "kind `{}` has no scale subresource k8s_scale serves (Deployments, StatefulSets and ReplicaSets only)",
                kind.kind
            )));
        }
        let (ns, name, n) = (&a.namespace, &a.name, a.replicas);
        let ctx = ReadContext {
            kind: &kind.kind,
            group: &kind.group,
            namespace: ns,
            name,
            labels: BTreeSet::new(),
        };
        let resource = vocabulary::object(&self.info.name, Some(ns), &kind.kind, name);
        // The current count is read at execution: the review names only
        // the wanted one.
        let title = format!(
            "scale {} {ns}/{name} to {n}",
            kind.kind.to_ascii_lowercase()
        );
        Ok(Plan {
            requests: vec![ctx.request("k8s:scale", resource)],
            review: review(
                &title,
                "scale",
                title.clone(),
                vec![format!("{}/{ns}/{name}", kind.kind)],
            ),
            read_only: false,
            prepared: Box::new(Prepared::Scale {
                kind,
                namespace: ns.clone(),
                name: name.clone(),
                replicas: n,
            }),
        })
    }

    fn guard(&self, kind: &KindInfo, ns: &str, pointer: String) -> ItemGuard {
        let ctx = ReadContext {
            kind: &kind.kind,
            group: &kind.group,
            namespace: ns,
            name: "",
            labels: BTreeSet::new(),
        };
        ItemGuard {
            pointer,
            request: ctx.request("k8s:list", vocabulary::namespace(&self.info.name, ns)),
        }
    }

    async fn list(
        &self,
        kind: &KindInfo,
        scope: &Scope,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
        limit: Option<u64>,
        limits: &ExecLimits,
    ) -> Result<ToolOutput, ExecuteError> {
        let cap = limits
            .items_within(self.cfg.max_items)
            .min(limit.unwrap_or(u64::MAX));
        let byte_cap = limits.max_bytes;
        let ar = kind.api_resource();
        let targets: Vec<Option<&str>> = match scope {
            Scope::Namespace(ns) => vec![Some(ns.as_str())],
            Scope::Namespaces(list) => list.iter().map(|n| Some(n.as_str())).collect(),
            Scope::All | Scope::Cluster => vec![None],
        };
        let only_namespaces = (kind.kind == "Namespace" && kind.group.is_empty())
            .then_some(self.cfg.namespaces.as_ref())
            .flatten();
        let mut items: Vec<Value> = Vec::new();
        // `[` and `]` of the array.
        let mut bytes = 2usize;
        let mut truncated = false;
        'targets: for (t, ns) in targets.iter().enumerate() {
            let url = DynamicObject::url_path(&ar, *ns);
            let mut cont: Option<String> = None;
            loop {
                let remaining = cap.saturating_sub(items.len() as u64);
                let lp = ListParams {
                    label_selector: label_selector.map(str::to_string),
                    field_selector: field_selector.map(str::to_string),
                    limit: Some(u32::try_from(remaining.min(PAGE)).unwrap_or(500)),
                    continue_token: cont.take(),
                    ..Default::default()
                };
                let req = kube::core::Request::new(&url)
                    .list(&lp)
                    .map_err(|e| ExecuteError::Other(format!("cannot build the request: {e}")))?;
                let mut page: Value = self.send(req, limits).await?;
                cont = page
                    .pointer("/metadata/continue")
                    .and_then(Value::as_str)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string);
                let page_items = match page.get_mut("items").map(Value::take) {
                    Some(Value::Array(list)) => list,
                    Some(Value::Null) | None => Vec::new(),
                    Some(_) => {
                        return Err(ExecuteError::Other(
                            "the API server sent a list without items".into(),
                        ));
                    }
                };
                for item in page_items {
                    if items.len() as u64 >= cap {
                        truncated = true;
                        break 'targets;
                    }
                    let item = typed(item, &ar.api_version, &ar.kind);
                    if let Some(set) = only_namespaces {
                        let name = item.pointer("/metadata/name").and_then(Value::as_str);
                        if !name.is_some_and(|n| set.contains(n)) {
                            continue;
                        }
                    }
                    // The item and its separator in the `items` array.
                    let size = serde_json::to_vec(&item).map_or(0, |v| v.len()) + 1;
                    if bytes + size > byte_cap {
                        truncated = true;
                        break 'targets;
                    }
                    bytes += size;
                    items.push(item);
                }
                if items.len() as u64 >= cap {
                    if cont.is_some() || t + 1 < targets.len() {
                        truncated = true;
                    }
                    break 'targets;
                }
                if cont.is_none() {
                    break;
                }
            }
        }
        let mut field_origins = Vec::new();
        let mut item_guards = Vec::new();
        let guarded = matches!(scope, Scope::Namespaces(_) | Scope::All);
        let mut kept = Vec::with_capacity(items.len());
        for item in items {
            if guarded {
                // A namespaced item without a namespace is not shown.
                let Some(ns) = item.pointer("/metadata/namespace").and_then(Value::as_str) else {
                    continue;
                };
                item_guards.push(self.guard(kind, ns, format!("/items/{}", kept.len())));
            }
            origins::of_object(&format!("/items/{}", kept.len()), &item, &mut field_origins);
            kept.push(item);
        }
        let n = kept.len() as u64;
        Ok(ToolOutput {
            value: json!({"items": kept, "truncated": truncated}),
            items: Some(n),
            item_list: Some("/items".into()),
            truncated,
            field_origins,
            item_guards,
            recording: None,
        })
    }

    /// The namespace's events (a capped list), each as the contract's
    /// summary; messages are plain strings, so the detectors see them.
    async fn events(
        &self,
        event: &KindInfo,
        namespace: &str,
        field_selector: Option<&str>,
        limits: &ExecLimits,
    ) -> Result<ToolOutput, ExecuteError> {
        let scope = Scope::Namespace(namespace.to_string());
        let out = self
            .list(event, &scope, None, field_selector, None, limits)
            .await?;
        let str_at = |e: &Value, p: &str| e.pointer(p).and_then(Value::as_str).map(str::to_string);
        let mut items: Vec<Value> = out
            .value
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|e| {
                let last_seen = [
                    "/lastTimestamp",
                    "/eventTime",
                    "/series/lastObservedTime",
                    "/firstTimestamp",
                    "/metadata/creationTimestamp",
                ]
                .iter()
                .find_map(|p| str_at(e, p));
                let count = e
                    .get("count")
                    .and_then(Value::as_u64)
                    .or_else(|| e.pointer("/series/count").and_then(Value::as_u64))
                    .unwrap_or(1);
                json!({
                    "type": str_at(e, "/type"),
                    "reason": str_at(e, "/reason"),
                    "message": str_at(e, "/message"),
                    "object": format!(
                        "{}/{}",
                        str_at(e, "/involvedObject/kind").unwrap_or_default(),
                        str_at(e, "/involvedObject/name").unwrap_or_default()
                    ),
                    "count": count,
                    "last_seen": last_seen,
                })
            })
            .collect();
        // Oldest first, like kubectl (RFC 3339 UTC sorts as text).
        items.sort_by(|a, b| a["last_seen"].as_str().cmp(&b["last_seen"].as_str()));
        Ok(ToolOutput {
            value: json!({"items": items, "truncated": out.truncated}),
            items: out.items,
            item_list: Some("/items".into()),
            truncated: out.truncated,
            field_origins: vec![],
            item_guards: vec![],
            recording: None,
        })
    }

    /// Read the scale subresource, then merge-patch its `spec.replicas`.
    async fn scale(
        &self,
        kind: &KindInfo,
        namespace: &str,
        name: &str,
        replicas: i64,
        limits: &ExecLimits,
    ) -> Result<ToolOutput, ExecuteError> {
        let ar = kind.api_resource();
        let request = kube::core::Request::new(DynamicObject::url_path(&ar, Some(namespace)));
        let build = |e: kube::core::request::Error| {
            ExecuteError::Other(format!("cannot build the request: {e}"))
        };
        let count = |s: &Value| {
            s.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        let current: Value = self
            .send(
                request.get_subresource("scale", name).map_err(build)?,
                limits,
            )
            .await?;
        let patch = Patch::Merge(json!({"spec": {"replicas": replicas}}));
        let after: Value = self
            .send(
                request
                    .patch_subresource("scale", name, &PatchParams::default(), &patch)
                    .map_err(build)?,
                limits,
            )
            .await?;
        Ok(ToolOutput {
            value: json!({"before": count(&current), "after": count(&after)}),
            items: Some(1),
            item_list: None,
            truncated: false,
            field_origins: vec![],
            item_guards: vec![],
            recording: None,
        })
    }

    async fn get(
        &self,
        kind: &KindInfo,
        namespace: Option<&str>,
        name: &str,
        limits: &ExecLimits,
    ) -> Result<ToolOutput, ExecuteError> {
        let ar = kind.api_resource();
        let req = kube::core::Request::new(DynamicObject::url_path(&ar, namespace))
            .get(name, &GetParams::default())
            .map_err(|e| ExecuteError::Other(format!("cannot build the request: {e}")))?;
        let obj: Value = self.send(req, limits).await?;
        let obj = typed(obj, &ar.api_version, &ar.kind);
        let mut field_origins = Vec::new();
        origins::of_object("/object", &obj, &mut field_origins);
        Ok(ToolOutput {
            value: json!({"object": obj}),
            items: Some(1),
            item_list: None,
            truncated: false,
            field_origins,
            item_guards: vec![],
            recording: None,
        })
    }
}

/// The object with `apiVersion` and `kind` first (list items lack them)
/// and `managedFields` dropped.
fn typed(obj: Value, api_version: &str, kind: &str) -> Value {
    let Value::Object(map) = obj else {
        return obj;
    };
    let mut out = Map::with_capacity(map.len() + 2);
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!(kind));
    for (k, v) in map {
        if k != "apiVersion" && k != "kind" {
            out.insert(k, v);
        }
    }
    let mut obj = Value::Object(out);
    origins::strip(&mut obj);
    obj
}

fn review(title: &str, label: &str, code: String, resources: Vec<String>) -> ReviewSummary {
    ReviewSummary {
        title: title.to_string(),
        runs: vec![ReviewItem {
            label: label.into(),
            resources: resources.clone(),
            text: ReviewText::code(code),
        }],
        resources,
        diff: None,
    }
}

/// The `kind` argument of a call, when it has one.
fn kind_arg(args: &Value) -> Option<&str> {
    args.get("kind").and_then(Value::as_str)
}

#[async_trait]
impl Connector for K8sConnector {
    fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    fn tools(&self) -> Vec<ToolSpec> {
        tools::specs()
    }

    /// Refresh discovery when the call's kind is not in the cached catalog
    /// (or there is none yet).
    async fn prepare(&self, tool: &str, args: &Value) {
        if tool == "k8s_apply" {
            let specs = crate::apply::kind_specs(args);
            if !self
                .catalog()
                .is_some_and(|c| specs.iter().all(|s| c.resolve(s).is_ok()))
            {
                self.refresh().await;
            }
            // The server's diff for the review, once names, namespaces and
            // kinds are known to be fine (nothing is changed: dry runs).
            let analysed = tools::parse(args).and_then(|a| {
                crate::apply::analyse(
                    &self.info.name,
                    self.catalog().as_deref(),
                    self.cfg.namespaces.as_ref(),
                    a,
                    None,
                )
            });
            if let (Ok(a), Ok(client)) = (analysed, self.client().await) {
                let map = |e| client::target_error(e, &self.cfg.token);
                let budget = self.cfg.timeout.min(Duration::from_secs(10));
                self.apply_diffs
                    .read(client, &map, a.plan(), args, budget)
                    .await;
            }
            return;
        }
        // Events resolve the Event kind as well as the optional `kind`.
        let specs: Vec<&str> = kind_arg(args)
            .into_iter()
            .chain((tool == "k8s_events").then_some("events"))
            .collect();
        if specs.is_empty() {
            return;
        }
        let known = self
            .catalog()
            .is_some_and(|c| specs.iter().all(|s| c.resolve(s).is_ok()));
        if !known {
            self.refresh().await;
        }
        if tool == "k8s_delete" {
            self.read_for_review(args).await;
        }
    }

    fn analyse(&self, tool: &str, args: &Value) -> Result<Plan, AnalysisError> {
        match tool {
            "k8s_list" => self.analyse_list(tools::parse(args)?),
            "k8s_get" => self.analyse_get(tools::parse(args)?),
            "k8s_events" => self.analyse_events(tools::parse(args)?),
            "k8s_scale" => self.analyse_scale(tools::parse(args)?),
            "k8s_restart" => self.analyse_restart(args),
            "k8s_delete" => self.analyse_delete(args),
            "k8s_logs" => crate::logs::analyse(
                &self.info.name,
                self.cfg.namespaces.as_ref(),
                tools::parse(args)?,
                |p| Box::new(Prepared::Logs(p)),
            ),
            "k8s_exec" => crate::exec::analyse(
                &self.info.name,
                self.cfg.namespaces.as_ref(),
                tools::parse(args)?,
                |p| Box::new(Prepared::Exec(p)),
            ),
            "k8s_apply" => crate::apply::analyse(
                &self.info.name,
                self.catalog().as_deref(),
                self.cfg.namespaces.as_ref(),
                tools::parse(args)?,
                self.apply_diffs.get(args),
            )
            .map(|a| a.into_plan(|p| Box::new(Prepared::Apply(p)))),
            other => Err(AnalysisError::UnknownTool(other.into())),
        }
    }

    fn recorded_arguments(&self, tool: &str, args: &Value) -> Option<Value> {
        (tool == "k8s_apply")
            .then(|| crate::apply::recorded_arguments(args))
            .flatten()
    }

    async fn execute(&self, plan: &Plan, limits: ExecLimits) -> Result<ToolOutput, ExecuteError> {
        let Some(p) = plan.prepared.downcast_ref::<Prepared>() else {
            return Err(ExecuteError::Other("not a kubernetes plan".into()));
        };
        limits.check()?;
        let started = Instant::now();
        let budget = limits.timeout_within(self.cfg.timeout);
        // Apply keeps its own time: a stop between its objects reports
        // what was applied.
        if let Prepared::Apply(a) = p {
            let map = |e| self.refused(e, &limits);
            let client = self.client_for(&limits).await?;
            return crate::apply::execute(&client, &map, a, &limits, started, budget).await;
        }
        let work = async {
            match p {
                Prepared::List {
                    kind,
                    scope,
                    label_selector,
                    field_selector,
                    limit,
                } => {
                    self.list(
                        kind,
                        scope,
                        label_selector.as_deref(),
                        field_selector.as_deref(),
                        *limit,
                        &limits,
                    )
                    .await
                }
                Prepared::Get {
                    kind,
                    namespace,
                    name,
                } => self.get(kind, namespace.as_deref(), name, &limits).await,
                Prepared::Events {
                    event,
                    namespace,
                    field_selector,
                } => {
                    self.events(event, namespace, field_selector.as_deref(), &limits)
                        .await
                }
                Prepared::Scale {
                    kind,
                    namespace,
                    name,
                    replicas,
                } => self.scale(kind, namespace, name, *replicas, &limits).await,
                Prepared::Restart(r) => self.restart(r, &limits).await,
                Prepared::Delete(d) => self.delete(d, &limits).await,
                Prepared::Logs(p) => {
                    let client = self.client_for(&limits).await?;
                    crate::logs::run(&client, &self.cfg.token, p, &limits).await
                }
                Prepared::Exec(p) => {
                    let client = self.client_for(&limits).await?;
                    crate::exec::run(&client, &self.cfg.token, self.cfg.timeout, p, &limits).await
                }
                Prepared::Apply(_) => Err(ExecuteError::Other("apply runs above".into())),
            }
        };
        // Dropping the request closes its connection: the server stops.
        tokio::select! {
            r = work => r,
            e = limits.stopped(started, Some(budget)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use gateway_core::connector::ExecLimits;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::kinds::KindInfo;

    /// A connection to a loopback port that accepts and never answers (the
    /// TLS handshake hangs), with a catalog that knows ConfigMaps.
    async fn hanging() -> (K8sConnector, tokio::net::TcpListener) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cfg = K8sConfig::parse(
            "c",
            &json!({"server": format!("https://127.0.0.1:{port}"), "token": "t0k3n", "timeout": "30s"}),
        )
        .unwrap();
        let c = K8sConnector::new(cfg);
        *c.catalog.write().unwrap() = Some(Arc::new(Catalog::new(vec![
            KindInfo {
                kind: "ConfigMap".into(),
                plural: "configmaps".into(),
                singular: "configmap".into(),
                short_names: vec!["cm".into()],
                group: String::new(),
                version: "v1".into(),
                namespaced: true,
                verbs: vec!["get".into(), "list".into()],
            },
            KindInfo {
                kind: "Event".into(),
                plural: "events".into(),
                singular: "event".into(),
                short_names: vec!["ev".into()],
                group: String::new(),
                version: "v1".into(),
                namespaced: true,
                verbs: vec!["get".into(), "list".into()],
            },
            KindInfo {
                kind: "Deployment".into(),
                plural: "deployments".into(),
                singular: "deployment".into(),
                short_names: vec!["deploy".into()],
                group: "apps".into(),
                version: "v1".into(),
                namespaced: true,
                verbs: vec!["get".into(), "list".into(), "patch".into()],
            },
        ])));
        (c, listener)
    }

    fn limits(timeout: Option<Duration>, cancel: CancellationToken) -> ExecLimits {
        ExecLimits {
            max_items: None,
            max_bytes: 1 << 20,
            max_affected: None,
            timeout,
            cancel,
            caller: None,
            progress: None,
            intent: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_hanging_server_meets_the_timeout_and_the_cancellation() {
        let (c, _listener) = hanging().await;
        let plan = c
            .analyse(
                "k8s_list",
                &json!({"connection": "c", "kind": "cm", "namespace": "a"}),
            )
            .unwrap();
        let started = std::time::Instant::now();
        let e = c
            .execute(
                &plan,
                limits(Some(Duration::from_millis(300)), CancellationToken::new()),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, ExecuteError::Timeout(300)), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let cancel = CancellationToken::new();
        let fire = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            fire.cancel();
        });
        let e = c.execute(&plan, limits(None, cancel)).await.unwrap_err();
        assert!(matches!(e, ExecuteError::Cancelled), "{e}");
    }

    #[tokio::test]
    async fn an_impersonating_connection_refuses_a_caller_it_cannot_send() {
        let (mut c, _listener) = hanging().await;
        c.cfg.impersonate = true;
        let plan = c
            .analyse(
                "k8s_list",
                &json!({"connection": "c", "kind": "cm", "namespace": "a"}),
            )
            .unwrap();
        let run = |caller: Option<gateway_core::Principal>| {
            let mut l = limits(Some(Duration::from_secs(3)), CancellationToken::new());
            l.caller = caller;
            c.execute(&plan, l)
        };
        // Refused at once, before the (hanging) server is asked.
        let e = run(None).await.unwrap_err().to_string();
        assert!(e.contains("has no caller"), "{e}");
        let e = run(Some(gateway_core::Principal {
            sub: "al\rice".into(),
            groups: vec![],
        }))
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot be impersonated"), "{e}");
    }

    #[test]
    fn requests_follow_the_contract() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (c, _l) = rt.block_on(hanging());
        let list = c
            .analyse("k8s_list", &json!({"connection": "c", "kind": "configmaps", "namespace": "shop", "label_selector": "app=web,tier!=db"}))
            .unwrap();
        assert_eq!(list.requests.len(), 1);
        let r = &list.requests[0];
        assert_eq!(r.action, "k8s:list");
        assert_eq!(r.resource.entity_uid(), r#"Tollgate::Namespace::"c/shop""#);
        assert_eq!(
            r.context["labels"],
            gateway_core::access::ContextValue::StringSet(["app=web".to_string()].into())
        );
        let get = c
            .analyse("k8s_get", &json!({"connection": "c", "kind": "ConfigMap", "name": "x.y", "namespace": "shop"}))
            .unwrap();
        assert_eq!(
            get.requests[0].resource.entity_uid(),
            r#"Tollgate::K8sObject::"c/shop/ConfigMap/x.y""#
        );
        // Across namespaces: no request up front, guards per item after.
        let all = c
            .analyse("k8s_list", &json!({"connection": "c", "kind": "cm"}))
            .unwrap();
        assert!(all.requests.is_empty());
        for (args, code) in [
            (
                json!({"connection": "c", "kind": "cm", "name": "a/b", "namespace": "shop"}),
                "invalid",
            ),
            (
                json!({"connection": "c", "kind": "cm", "name": "a"}),
                "invalid",
            ),
            (
                json!({"connection": "c", "kind": "Widget", "name": "a", "namespace": "shop"}),
                "unknown kind",
            ),
            (
                json!({"connection": "c", "kind": "cm", "name": "a", "namespace": "shop", "extra": 1}),
                "invalid",
            ),
        ] {
            let e = c.analyse("k8s_get", &args).unwrap_err().to_string();
            assert!(e.contains(code), "{args}: {e}");
        }
    }

    #[test]
    fn events_and_scale_follow_the_contract() {
        use gateway_core::access::ContextValue;
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (c, _l) = rt.block_on(hanging());
        let ev = c
            .analyse(
                "k8s_events",
                &json!({"connection": "c", "namespace": "shop", "kind": "deploy", "name": "web"}),
            )
            .unwrap();
        assert_eq!(ev.requests.len(), 1);
        let r = &ev.requests[0];
        assert_eq!(r.action, "k8s:list");
        assert_eq!(r.resource.entity_uid(), r#"Tollgate::Namespace::"c/shop""#);
        assert_eq!(r.context["kind"], ContextValue::String("Event".into()));
        let Some(Prepared::Events { field_selector, .. }) = ev.prepared.downcast_ref::<Prepared>()
        else {
            panic!("not an events plan");
        };
        assert_eq!(
            field_selector.as_deref(),
            Some("involvedObject.kind=Deployment,involvedObject.name=web")
        );
        let sc = c
            .analyse("k8s_scale", &json!({"connection": "c", "kind": "deployments.apps", "name": "web", "namespace": "shop", "replicas": 3}))
            .unwrap();
        let r = &sc.requests[0];
        assert_eq!(r.action, "k8s:scale");
        assert_eq!(
            r.resource.entity_uid(),
            r#"Tollgate::K8sObject::"c/shop/Deployment/web""#
        );
        assert_eq!(r.context["group"], ContextValue::String("apps".into()));
        assert!(!sc.read_only);
        assert_eq!(sc.review.title, "scale deployment shop/web to 3");
        for (args, code) in [
            (json!({"replicas": -1}), "between 0 and 10000"),
            (json!({"replicas": 10001}), "between 0 and 10000"),
            (json!({"replicas": 1.5}), "invalid"),
            (json!({"replicas": "2"}), "invalid"),
            (json!({"kind": "ConfigMap"}), "no scale subresource"),
            (json!({"name": "../x"}), "invalid"),
        ] {
            let mut full = json!({"connection": "c", "kind": "Deployment", "name": "web", "namespace": "shop", "replicas": 1});
            for (k, v) in args.as_object().unwrap() {
                full[k] = v.clone();
            }
            let e = c.analyse("k8s_scale", &full).unwrap_err().to_string();
            assert!(e.contains(code), "{full}: {e}");
        }
    }
}
