//! `k8s_apply` manifests: the text parsed into objects (YAML, one or more
//! `---` documents, or JSON: an object, an array or a `List`), each object
//! checked (apiVersion, kind, metadata.name) and inspected for what policy
//! asks about: the `pod_security` flags of every pod spec in it, the roles a
//! (Cluster)RoleBinding binds, every container image, its labels.
//!
//! Parsing is strict so that what policy decides is exactly what is sent:
//! duplicate keys are refused (YAML and JSON alike), YAML aliases are
//! bounded by the parser's budget, and the objects go to the API server as
//! the JSON values parsed here, never as the original text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::names;
use crate::origins;

/// Largest manifest accepted, in bytes (the API server stores objects of
/// at most ~1.5 MiB; a manifest of several is kept below that).
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;
/// Most objects one manifest may hold (after `List`s are opened): each is
/// one policy request and two or three API calls.
pub const MAX_OBJECTS: usize = 50;

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Over [`MAX_MANIFEST_BYTES`].
    #[error("the manifest is {0} bytes, more than the {MAX_MANIFEST_BYTES} accepted")]
    TooLarge(usize),
    /// Over [`MAX_OBJECTS`].
    #[error("the manifest holds more than {MAX_OBJECTS} objects; apply it in parts")]
    TooMany,
    /// Nothing to apply.
    #[error("the manifest holds no object")]
    Empty,
    /// Not YAML / JSON.
    #[error("the manifest cannot be parsed: {0}")]
    Syntax(String),
    /// A document that is not an object, or lacks a required field.
    #[error("{at}: {what}")]
    Invalid {
        /// `document 3`, `document 1, item 2`.
        at: String,
        /// What is wrong.
        what: String,
    },
}

fn invalid(at: &str, what: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        at: at.to_string(),
        what: what.into(),
    }
}

/// A JSON value deserialized strictly: duplicate keys refused, keys that
/// are not strings (YAML `1:`, `true:`) written as strings like the API
/// server's YAML reader does, binary and out-of-range numbers refused.
struct Strict(Value);

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML or JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Strict, E> {
        i64::try_from(v)
            .map(|v| Strict(Value::Number(v.into())))
            .map_err(|_| E::custom("a number is out of the 64-bit range"))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Strict, E> {
        u64::try_from(v)
            .map(|v| Strict(Value::Number(v.into())))
            .map_err(|_| E::custom("a number is out of the 64-bit range"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Strict, E> {
        Number::from_f64(v)
            .map(|n| Strict(Value::Number(n)))
            .ok_or_else(|| E::custom("a number is not finite"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_string())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Strict, E> {
        Err(E::custom(
            "binary values are not accepted: write the base64 text as a string",
        ))
    }

    fn visit_none<E: de::Error>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Strict, D::Error> {
        Strict::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Strict(Value::Array(out)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut out = Map::new();
        while let Some(Key(k)) = map.next_key()? {
            let Strict(v) = map.next_value()?;
            if out.contains_key(&k) {
                return Err(de::Error::custom(format!("duplicate key `{k}`")));
            }
            out.insert(k, v);
        }
        Ok(Strict(Value::Object(out)))
    }
}

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

/// A mapping key as a string.
struct Key(String);

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number or boolean key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Key, E> {
        Ok(Key(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KeyVisitor)
    }
}

/// One object of the manifest, in manifest order, with where it was.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    /// `document 3` or `document 1, item 2` (1-based).
    pub at: String,
    /// The object as parsed.
    pub value: Value,
}

fn parse_yaml(text: &str) -> Result<Vec<Value>, ManifestError> {
    let mut options = serde_saphyr::Options::default();
    // An error must never quote the manifest (it may hold Secret values).
    options.with_snippet = false;
    serde_saphyr::from_multiple_with_options::<Strict>(text, options)
        .map(|docs| docs.into_iter().map(|Strict(v)| v).collect())
        .map_err(|e| ManifestError::Syntax(format!("not valid YAML: {e}")))
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str::<Strict>(text)
        .map(|Strict(v)| v)
        .map_err(|e| e.to_string())
}

/// Parse a manifest into its objects, `List`s and arrays opened (one
/// level), empty documents skipped.
pub fn parse(text: &str) -> Result<Vec<Doc>, ManifestError> {
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge(text.len()));
    }
    let trimmed = text.trim_start();
    let docs = if trimmed.starts_with(['{', '[']) {
        // JSON, or YAML in flow style.
        match parse_json(trimmed) {
            Ok(v) => vec![v],
            Err(json) => parse_yaml(text)
                .map_err(|_| ManifestError::Syntax(format!("not valid JSON ({json}) nor YAML")))?,
        }
    } else {
        parse_yaml(text)?
    };
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        let at = format!("document {}", i + 1);
        match list_items(&at, &doc)? {
            Some(items) => {
                for (j, item) in items.into_iter().enumerate() {
                    let at = format!("{at}, item {}", j + 1);
                    if list_items(&at, &item)?.is_some() {
                        return Err(invalid(&at, "a list inside a list is not accepted"));
                    }
                    out.push(Doc { at, value: item });
                }
            }
            None => out.push(Doc { at, value: doc }),
        }
        if out.len() > MAX_OBJECTS {
            return Err(ManifestError::TooMany);
        }
    }
    out.retain(|d| !d.value.is_null());
    if out.is_empty() {
        return Err(ManifestError::Empty);
    }
    Ok(out)
}

/// The items of a JSON array or of a `List` kind (`v1/List`,
/// `DeploymentList`...), None for anything else.
fn list_items(at: &str, v: &Value) -> Result<Option<Vec<Value>>, ManifestError> {
    match v {
        Value::Array(items) => Ok(Some(items.clone())),
        Value::Object(map)
            if map
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List")) =>
        {
            match map.get("items") {
                Some(Value::Array(items)) => Ok(Some(items.clone())),
                Some(Value::Null) | None => Ok(Some(vec![])),
                Some(_) => Err(invalid(at, "`items` of a List must be an array")),
            }
        }
        _ => Ok(None),
    }
}

/// An object of the manifest, its required fields checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Where it was in the manifest.
    pub at: String,
    /// API group ("" for core).
    pub group: String,
    /// API version (`v1`).
    pub version: String,
    /// `Deployment`.
    pub kind: String,
    /// `metadata.name` (a valid DNS-1123 subdomain).
    pub name: String,
    /// `metadata.namespace`, when the document sets one.
    pub namespace: Option<String>,
    /// `metadata.labels` as `key=value`.
    pub labels: BTreeSet<String>,
    /// The object as parsed.
    pub body: Value,
}

fn valid_group(g: &str) -> bool {
    g.len() <= 253
        && g.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

fn valid_version(v: &str) -> bool {
    !v.is_empty() && v.len() <= 63 && v.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn valid_kind(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k.as_bytes()[0].is_ascii_alphabetic()
        && k.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Check a document's required fields and name.
pub fn object(doc: &Doc) -> Result<Object, ManifestError> {
    let at = doc.at.as_str();
    let map = doc
        .value
        .as_object()
        .ok_or_else(|| invalid(at, "a document must be an object"))?;
    let str_field = |k: &str| -> Result<&str, ManifestError> {
        match map.get(k) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(_) => Err(invalid(at, format!("`{k}` must be a non-empty string"))),
            None => Err(invalid(at, format!("`{k}` is missing"))),
        }
    };
    let api_version = str_field("apiVersion")?;
    let kind = str_field("kind")?;
    let (group, version) = match api_version.split_once('/') {
        None => ("", api_version),
        Some((g, v)) => (g, v),
    };
    if !valid_version(version) || (!group.is_empty() && !valid_group(group)) {
        return Err(invalid(
            at,
            format!("`apiVersion` `{api_version}` is not `version` or `group/version`"),
        ));
    }
    if !valid_kind(kind) {
        return Err(invalid(at, "`kind` must be letters and digits"));
    }
    let meta = match map.get("metadata") {
        Some(Value::Object(m)) => m,
        Some(_) => return Err(invalid(at, "`metadata` must be an object")),
        None => return Err(invalid(at, "`metadata` is missing")),
    };
    let name = match meta.get("name") {
        Some(Value::String(n)) => n,
        Some(_) => return Err(invalid(at, "`metadata.name` must be a string")),
        None => {
            return Err(invalid(
                at,
                "`metadata.name` is missing (generateName is not accepted: apply needs a name)",
            ));
        }
    };
    names::object_name(name).map_err(|e| invalid(at, format!("metadata.name: {e}")))?;
    let namespace = match meta.get("namespace") {
        None | Some(Value::Null) => None,
        Some(Value::String(ns)) => {
            names::namespace(ns).map_err(|e| invalid(at, format!("metadata.namespace: {e}")))?;
            Some(ns.clone())
        }
        Some(_) => return Err(invalid(at, "`metadata.namespace` must be a string")),
    };
    let mut labels = BTreeSet::new();
    match meta.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(l)) => {
            for (k, v) in l {
                let v = v
                    .as_str()
                    .ok_or_else(|| invalid(at, format!("label `{k}` must be a string")))?;
                labels.insert(format!("{k}={v}"));
            }
        }
        Some(_) => return Err(invalid(at, "`metadata.labels` must be an object")),
    }
    Ok(Object {
        at: doc.at.clone(),
        group: group.to_string(),
        version: version.to_string(),
        kind: kind.to_string(),
        name: name.clone(),
        namespace,
        labels,
        body: doc.value.clone(),
    })
}

/// What an object asks for, as policy sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    /// `privileged`, `hostPID`, `hostIPC`, `hostNetwork`, `hostPath`,
    /// `capabilities`, `runAsRoot`, `allowPrivilegeEscalation`.
    pub pod_security: BTreeSet<String>,
    /// roleRef names of a (Cluster)RoleBinding.
    pub binds_roles: BTreeSet<String>,
    /// Every container image.
    pub images: BTreeSet<String>,
}

/// The pod-security flags, in the contract's spelling.
pub const POD_SECURITY_FLAGS: [&str; 8] = [
    "privileged",
    "hostPID",
    "hostIPC",
    "hostNetwork",
    "hostPath",
    "capabilities",
    "runAsRoot",
    "allowPrivilegeEscalation",
];

const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

fn is_true(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn is_false(v: &Value) -> bool {
    match v {
        Value::Bool(b) => !*b,
        Value::String(s) => s.trim().eq_ignore_ascii_case("false"),
        _ => false,
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.trim().parse::<f64>().ok() == Some(0.0),
        _ => false,
    }
}

/// The flags a `securityContext` (of a pod or a container) asks for.
fn security_context(sc: &Map<String, Value>, out: &mut BTreeSet<String>) {
    let mut flag = |f: &str| {
        out.insert(f.to_string());
    };
    if sc.get("privileged").is_some_and(is_true) {
        flag("privileged");
    }
    // A Windows host process container is a privileged one.
    if sc
        .get("windowsOptions")
        .and_then(|w| w.get("hostProcess"))
        .is_some_and(is_true)
    {
        flag("privileged");
    }
    if sc.get("allowPrivilegeEscalation").is_some_and(is_true) {
        flag("allowPrivilegeEscalation");
    }
    if sc.get("runAsUser").is_some_and(is_zero) || sc.get("runAsNonRoot").is_some_and(is_false) {
        flag("runAsRoot");
    }
    let added = sc
        .get("capabilities")
        .and_then(|c| c.get("add"))
        .is_some_and(|a| match a {
            Value::Array(list) => !list.is_empty(),
            Value::Null => false,
            _ => true,
        });
    if added {
        flag("capabilities");
    }
}

/// Walk the whole object: every pod spec and container, wherever it sits
/// (pod templates of the workload kinds, CronJob job templates, CRDs that
/// embed pod specs, partial objects a server-side apply merges). The keys
/// read are specific to pod specs, so nothing is missed for want of a path.
fn walk(v: &Value, f: &mut Features) {
    match v {
        Value::Object(map) => {
            for key in ["hostNetwork", "hostPID", "hostIPC"] {
                if map.get(key).is_some_and(is_true) {
                    f.pod_security.insert(key.to_string());
                }
            }
            if let Some(Value::Object(sc)) = map.get("securityContext") {
                security_context(sc, &mut f.pod_security);
            }
            if let Some(Value::Array(volumes)) = map.get("volumes")
                && volumes
                    .iter()
                    .any(|vol| vol.get("hostPath").is_some_and(|h| !h.is_null()))
            {
                f.pod_security.insert("hostPath".into());
            }
            for list in CONTAINER_LISTS {
                if let Some(Value::Array(cs)) = map.get(list) {
                    for c in cs {
                        if let Some(Value::String(image)) = c.get("image") {
                            f.images.insert(image.clone());
                        }
                    }
                }
            }
            for child in map.values() {
                walk(child, f);
            }
        }
        Value::Array(list) => {
            for child in list {
                walk(child, f);
            }
        }
        _ => {}
    }
}

/// Is `(group, kind)` a RoleBinding or ClusterRoleBinding?
pub fn is_binding(group: &str, kind: &str) -> bool {
    group == "rbac.authorization.k8s.io" && matches!(kind, "RoleBinding" | "ClusterRoleBinding")
}

/// What `body` (of `group`/`kind`) asks for. A binding without a
/// `roleRef.name` string is refused (its role could not be named to policy).
pub fn features(group: &str, kind: &str, body: &Value) -> Result<Features, String> {
    let mut f = Features::default();
    walk(body, &mut f);
    if is_binding(group, kind) {
        match body.pointer("/roleRef/name") {
            Some(Value::String(role)) => {
                f.binds_roles.insert(role.clone());
            }
            _ => return Err(format!("a {kind} needs `roleRef.name` (a string)")),
        }
    }
    Ok(f)
}

/// The object as reviewers see it: pretty JSON with Secret values, the
/// last-applied annotation and env credentials replaced by their type, as
/// results mask them.
pub fn review_text(body: &Value) -> String {
    let mut shown = body.clone();
    let mut found = Vec::new();
    origins::of_object("", body, &mut found);
    for o in found {
        if let Some(t) = &o.sensitive
            && let Some(v) = shown.pointer_mut(&o.pointer)
        {
            *v = Value::String(format!("[{t}]"));
        }
    }
    serde_json::to_string_pretty(&shown).unwrap_or_default()
}

/// A summary of an object's features for the review, one line each.
pub fn describe(f: &Features) -> String {
    let mut lines: BTreeMap<&str, String> = BTreeMap::new();
    let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
    if !f.images.is_empty() {
        lines.insert("images", join(&f.images));
    }
    if !f.pod_security.is_empty() {
        lines.insert("pod_security", join(&f.pod_security));
    }
    if !f.binds_roles.is_empty() {
        lines.insert("binds_roles", join(&f.binds_roles));
    }
    lines
        .into_iter()
        .map(|(k, v)| format!("# {k}: {v}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// `spec` (a pod spec) placed where each workload kind keeps its pod
    /// template.
    fn in_every_workload(spec: Value) -> Vec<(&'static str, &'static str, Value)> {
        let tpl = json!({"metadata": {"labels": {"a": "b"}}, "spec": spec});
        vec![
            ("", "Pod", json!({"spec": spec})),
            ("apps", "Deployment", json!({"spec": {"template": tpl}})),
            ("apps", "StatefulSet", json!({"spec": {"template": tpl}})),
            ("apps", "DaemonSet", json!({"spec": {"template": tpl}})),
            ("apps", "ReplicaSet", json!({"spec": {"template": tpl}})),
            ("batch", "Job", json!({"spec": {"template": tpl}})),
            (
                "batch",
                "CronJob",
                json!({"spec": {"jobTemplate": {"spec": {"template": tpl}}}}),
            ),
            (
                "",
                "ReplicationController",
                json!({"spec": {"template": tpl}}),
            ),
            ("", "PodTemplate", json!({"template": tpl})),
        ]
    }

    #[test]
    fn every_flag_in_every_workload_kind() {
        let c = |extra: Value| {
            let mut c = json!({"name": "app", "image": "nginx:1.25"});
            for (k, v) in extra.as_object().unwrap() {
                c[k] = v.clone();
            }
            c
        };
        let cases: Vec<(&str, Value)> = vec![
            (
                "privileged",
                json!({"containers": [c(json!({"securityContext": {"privileged": true}}))]}),
            ),
            (
                "privileged",
                json!({"containers": [c(json!({"securityContext": {"windowsOptions": {"hostProcess": true}}}))]}),
            ),
            (
                "hostPID",
                json!({"hostPID": true, "containers": [c(json!({}))]}),
            ),
            (
                "hostIPC",
                json!({"hostIPC": true, "containers": [c(json!({}))]}),
            ),
            (
                "hostNetwork",
                json!({"hostNetwork": true, "containers": [c(json!({}))]}),
            ),
            (
                "hostPath",
                json!({"volumes": [{"name": "v", "emptyDir": {}}, {"name": "h", "hostPath": {"path": "/"}}], "containers": [c(json!({}))]}),
            ),
            (
                "capabilities",
                json!({"containers": [c(json!({"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}))]}),
            ),
            (
                "runAsRoot",
                json!({"securityContext": {"runAsUser": 0}, "containers": [c(json!({}))]}),
            ),
            (
                "runAsRoot",
                json!({"securityContext": {"runAsNonRoot": false}, "containers": [c(json!({}))]}),
            ),
            (
                "runAsRoot",
                json!({"containers": [c(json!({}))], "initContainers": [c(json!({"securityContext": {"runAsUser": 0}}))]}),
            ),
            (
                "runAsRoot",
                json!({"containers": [c(json!({}))], "ephemeralContainers": [c(json!({"securityContext": {"runAsNonRoot": false}}))]}),
            ),
            (
                "allowPrivilegeEscalation",
                json!({"containers": [c(json!({"securityContext": {"allowPrivilegeEscalation": true}}))]}),
            ),
            // Partial objects (server-side apply merges them): no containers.
            ("hostNetwork", json!({"hostNetwork": true})),
        ];
        for (flag, spec) in cases {
            for (group, kind, body) in in_every_workload(spec.clone()) {
                let f = features(group, kind, &body).unwrap();
                assert_eq!(f.pod_security, set(&[flag]), "{kind}: {spec}");
            }
        }
        // Nothing asked: no flag, and the quiet settings are not flags.
        let quiet = json!({
            "securityContext": {"runAsUser": 1000, "runAsNonRoot": true},
            "hostNetwork": false,
            "volumes": [{"name": "c", "configMap": {"name": "x"}}],
            "containers": [c(json!({"securityContext": {"privileged": false,
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": []}}}))],
            "initContainers": [{"name": "init", "image": "busybox:1.36"}]
        });
        for (group, kind, body) in in_every_workload(quiet) {
            let f = features(group, kind, &body).unwrap();
            assert!(f.pod_security.is_empty(), "{kind}: {:?}", f.pod_security);
            assert_eq!(f.images, set(&["busybox:1.36", "nginx:1.25"]), "{kind}");
        }
        // No securityContext at all is not runAsRoot.
        let none = json!({"spec": {"containers": [{"name": "a", "image": "x"}]}});
        assert!(features("", "Pod", &none).unwrap().pod_security.is_empty());
    }

    #[test]
    fn yaml_scalars_read_as_the_api_server_reads_them() {
        // YAML 1.1 booleans (what kubectl's YAML reader resolves): the value
        // is sent as the JSON boolean analysed here.
        let docs = parse("spec:\n  hostNetwork: yes\n  containers:\n  - name: a\n    image: x\n    securityContext: {privileged: on, runAsUser: 0x0}\n").unwrap();
        let f = features("", "Pod", &docs[0].value).unwrap();
        assert_eq!(
            f.pod_security,
            set(&["hostNetwork", "privileged", "runAsRoot"])
        );
        assert_eq!(docs[0].value["spec"]["hostNetwork"], json!(true));
        // A quoted "true" is a string the server refuses; still flagged.
        let docs = parse("spec: {hostPID: \"true\"}\n").unwrap();
        assert_eq!(
            features("", "Pod", &docs[0].value).unwrap().pod_security,
            set(&["hostPID"])
        );
    }

    #[test]
    fn bindings_name_their_role() {
        let crb = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}});
        let f = features("rbac.authorization.k8s.io", "ClusterRoleBinding", &crb).unwrap();
        assert_eq!(f.binds_roles, set(&["cluster-admin"]));
        let e = features("rbac.authorization.k8s.io", "RoleBinding", &json!({})).unwrap_err();
        assert!(e.contains("roleRef.name"), "{e}");
        // A roleRef in another kind binds nothing.
        let f = features("example.com", "Widget", &crb).unwrap();
        assert!(f.binds_roles.is_empty());
    }

    const MULTI: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
  labels: {app: web}
data:
  mode: fast
---
# a comment-only document in between is skipped
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers: [{name: app, image: "nginx:1.25"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: innocent
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: cluster-admin
subjects:
- kind: ServiceAccount
  name: default
  namespace: shop
"#;

    #[test]
    fn multi_document_yaml_hides_nothing() {
        let docs = parse(MULTI).unwrap();
        assert_eq!(docs.len(), 3);
        let objs: Vec<Object> = docs.iter().map(|d| object(d).unwrap()).collect();
        assert_eq!(objs[0].labels, set(&["app=web"]));
        assert_eq!(objs[0].namespace.as_deref(), Some("shop"));
        assert_eq!(
            (objs[1].group.as_str(), objs[1].version.as_str()),
            ("apps", "v1")
        );
        let third = &objs[2];
        assert_eq!(third.at, "document 3", "empty documents are not counted");
        let f = features(&third.group, &third.kind, &third.body).unwrap();
        assert_eq!(f.binds_roles, set(&["cluster-admin"]));
    }

    #[test]
    fn json_objects_arrays_and_lists() {
        let one = parse(r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}"#)
            .unwrap();
        assert_eq!(one.len(), 1);
        let list = parse(
            r#"{"apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}]}"#,
        )
        .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].at, "document 1, item 2");
        let arr = parse(r#"[{"kind": "x"}, {"kind": "y"}]"#).unwrap();
        assert_eq!(arr.len(), 2);
        // YAML flow style starting like JSON.
        let flow = parse("{apiVersion: v1, kind: ConfigMap, metadata: {name: a}}").unwrap();
        assert_eq!(flow[0].value["kind"], "ConfigMap");
        let nested = parse(r#"[[{"kind": "x"}]]"#).unwrap_err();
        assert!(
            nested.to_string().contains("list inside a list"),
            "{nested}"
        );
    }

    #[test]
    fn malformed_and_hostile_input() {
        for (text, needle) in [
            ("apiVersion: v1\nkind: [unclosed\n", "not valid YAML"),
            ("a: 1\na: 2\n", "duplicate"),
            (r#"{"a": 1, "a": 2}"#, "duplicate"),
            ("", "no object"),
            ("---\n---\n", "no object"),
            ("key: \"unterminated\n", "not valid YAML"),
            (r#"{"a": "#, "nor YAML"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
        // An alias bomb is stopped by the parser's budget, quickly.
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let started = std::time::Instant::now();
        assert!(parse(&bomb).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let big = "a: ".to_string() + &"x".repeat(MAX_MANIFEST_BYTES);
        assert_eq!(parse(&big), Err(ManifestError::TooLarge(big.len())));
        let many: String = (0..=MAX_OBJECTS)
            .map(|i| format!("---\nkind: K\nmetadata: {{name: n{i}}}\n"))
            .collect();
        assert_eq!(parse(&many), Err(ManifestError::TooMany));
        // A parse error quotes none of the manifest's values.
        let e = parse("password: S3cr3t-Value-42\n  bad: [\n")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("S3cr3t"), "{e}");
    }

    #[test]
    fn required_fields_and_names() {
        let check = |yaml: &str| object(&parse(yaml).unwrap()[0]).map(|_| ());
        assert_eq!(
            check("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n"),
            Ok(())
        );
        for (yaml, needle) in [
            (
                "kind: ConfigMap\nmetadata: {name: a}\n",
                "`apiVersion` is missing",
            ),
            ("apiVersion: v1\nmetadata: {name: a}\n", "`kind` is missing"),
            ("apiVersion: v1\nkind: ConfigMap\n", "`metadata` is missing"),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: a-}\n",
                "`metadata.name` is missing",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 7}\n",
                "must be a string",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '--server=x'}\n",
                "not a valid Kubernetes name",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ../x}\n",
                "not a valid Kubernetes name",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a/b}\n",
                "not a valid Kubernetes name",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: ../kube-system}\n",
                "metadata.namespace",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: 'a/b'}\n",
                "metadata.namespace",
            ),
            (
                "apiVersion: a/b/v1\nkind: ConfigMap\nmetadata: {name: a}\n",
                "apiVersion",
            ),
            (
                "apiVersion: v1\nkind: Config-Map\nmetadata: {name: a}\n",
                "kind",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {tier: 1}}\n",
                "label `tier`",
            ),
            ("- 1\n", "must be an object"),
        ] {
            let e = check(yaml).unwrap_err().to_string();
            assert!(e.contains(needle), "{yaml}: {e}");
            assert!(e.starts_with("document 1"), "{e}");
        }
    }

    #[test]
    fn review_text_masks_secret_values() {
        let docs = parse(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{\"stringData\":{\"password\":\"hunter2\"}}'\nstringData:\n  password: hunter2\ndata:\n  token: aHVudGVyMg==\n",
        )
        .unwrap();
        let text = review_text(&docs[0].value);
        assert!(
            !text.contains("hunter2") && !text.contains("aHVudGVyMg=="),
            "{text}"
        );
        assert!(text.contains("[K8S_SECRET]"), "{text}");
        let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x",
                "env": [{"name": "DB_PASSWORD", "value": "pw-1"}, {"name": "MODE", "value": "m"}]}]}}}});
        let text = review_text(&dep);
        assert!(
            !text.contains("pw-1") && text.contains("[SECRET]") && text.contains("\"m\""),
            "{text}"
        );
    }
}
