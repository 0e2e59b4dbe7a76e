//! Analysis of `k8s_restart` and `k8s_delete` on a fixed catalog: kinds,
//! names and namespaces refused before policy, the contract's requests, and
//! a delete's review built from the snapshot `prepare` read.

use std::sync::Arc;

use gateway_core::access::ContextValue;
use gateway_core::connector::Connector;
use gateway_core::review::TextPart;

use super::*;
use crate::config::K8sConfig;
use crate::kinds::Catalog;

fn kind(kind: &str, plural: &str, short: &[&str], group: &str, namespaced: bool) -> KindInfo {
    KindInfo {
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_ascii_lowercase(),
        short_names: short.iter().map(|s| s.to_string()).collect(),
        group: group.into(),
        version: "v1".into(),
        namespaced,
        verbs: ["get", "list", "patch", "delete"]
            .map(String::from)
            .to_vec(),
    }
}

/// A connector (never connected) limited to `namespaces`, whose catalog
/// holds the kinds the tests name.
fn connector(namespaces: Option<&[&str]>) -> K8sConnector {
    let mut cfg = json!({"server": "https://127.0.0.1:1", "token": "t0k3n"});
    if let Some(ns) = namespaces {
        cfg["namespaces"] = json!(ns);
    }
    let c = K8sConnector::new(K8sConfig::parse("c", &cfg).unwrap());
    let mut no_get = kind("Lease", "leases", &[], "coordination.k8s.io", true);
    no_get.verbs = vec!["list".into(), "delete".into()];
    *c.catalog.write().unwrap() = Some(Arc::new(Catalog::new(vec![
        kind("ConfigMap", "configmaps", &["cm"], "", true),
        kind("Secret", "secrets", &[], "", true),
        kind("Namespace", "namespaces", &["ns"], "", false),
        kind(
            "ClusterRole",
            "clusterroles",
            &[],
            "rbac.authorization.k8s.io",
            false,
        ),
        kind("Deployment", "deployments", &["deploy"], "apps", true),
        kind("StatefulSet", "statefulsets", &["sts"], "apps", true),
        kind("DaemonSet", "daemonsets", &["ds"], "apps", true),
        kind("ReplicaSet", "replicasets", &["rs"], "apps", true),
        kind("Rollout", "rollouts", &["ro"], "argoproj.io", true),
        no_get,
    ])));
    c
}

fn with(base: Value, changes: Value) -> Value {
    let mut full = base;
    for (k, v) in changes.as_object().unwrap() {
        full[k] = v.clone();
    }
    full
}

fn err(c: &K8sConnector, tool: &str, args: &Value) -> String {
    c.analyse(tool, args).unwrap_err().to_string()
}

#[test]
fn restart_serves_deployments_statefulsets_and_daemonsets_only() {
    let c = connector(Some(&["shop"]));
    let base = json!({"connection": "c", "kind": "Deployment", "name": "web", "namespace": "shop"});
    for (spelling, kind) in [
        ("deploy", "Deployment"),
        ("deployments.apps", "Deployment"),
        ("sts", "StatefulSet"),
        ("DaemonSet", "DaemonSet"),
        ("ds", "DaemonSet"),
    ] {
        let plan = c
            .analyse(
                "k8s_restart",
                &with(base.clone(), json!({"kind": spelling})),
            )
            .unwrap();
        assert!(!plan.read_only);
        assert_eq!(plan.requests.len(), 1);
        let r = &plan.requests[0];
        assert_eq!(r.action, "k8s:restart");
        assert_eq!(
            r.resource.entity_uid(),
            format!(r#"Tollgate::K8sObject::"c/shop/{kind}/web""#)
        );
        assert_eq!(r.context["group"], ContextValue::String("apps".into()));
        assert_eq!(r.context["dry_run"], ContextValue::Bool(false));
        assert_eq!(
            plan.review.title,
            format!("restart {} shop/web", kind.to_ascii_lowercase())
        );
    }
    for other in ["ConfigMap", "rs", "Rollout", "ns", "Widget"] {
        let e = err(
            &c,
            "k8s_restart",
            &with(base.clone(), json!({"kind": other})),
        );
        assert!(
            e.contains("cannot be restarted")
                || e.contains("unknown kind")
                || e.contains("cluster-scoped"),
            "{other}: {e}"
        );
        assert!(e.starts_with("cannot analyse"), "{other}: {e}");
    }
}

#[test]
fn names_and_namespaces_are_refused_before_policy() {
    let c = connector(Some(&["shop"]));
    let restart =
        json!({"connection": "c", "kind": "Deployment", "name": "web", "namespace": "shop"});
    let delete =
        json!({"connection": "c", "kind": "ConfigMap", "name": "web", "namespace": "shop"});
    for (tool, base) in [("k8s_restart", &restart), ("k8s_delete", &delete)] {
        for bad in [
            json!({"name": "--server=x"}),
            json!({"name": "../x"}),
            json!({"name": "a/b"}),
            json!({"name": ""}),
            json!({"namespace": "other"}),
            json!({"namespace": "kube-system"}),
            json!({"namespace": "../shop"}),
            json!({"extra": true}),
            json!({"name": 7}),
        ] {
            let e = err(&c, tool, &with(base.clone(), bad.clone()));
            assert!(e.starts_with("invalid arguments"), "{tool} {bad}: {e}");
        }
    }
    let e = err(
        &c,
        "k8s_delete",
        &json!({"connection": "c", "kind": "ConfigMap", "name": "web"}),
    );
    assert!(e.contains("`namespace` is required"), "{e}");
    let e = err(
        &c,
        "k8s_delete",
        &json!({"connection": "c", "kind": "ClusterRole", "name": "x", "namespace": "shop"}),
    );
    assert!(e.contains("cluster-scoped"), "{e}");
    // Namespace objects: only the connection's own.
    for ns in ["kube-system", "other"] {
        let e = err(
            &c,
            "k8s_delete",
            &json!({"connection": "c", "kind": "Namespace", "name": ns}),
        );
        assert!(e.contains("outside the namespaces"), "{ns}: {e}");
    }
    // Without a namespaces list, kube-system is for policy to decide.
    let open = connector(None);
    let plan = open
        .analyse(
            "k8s_restart",
            &with(restart.clone(), json!({"namespace": "kube-system"})),
        )
        .unwrap();
    assert_eq!(
        plan.requests[0].resource.entity_uid(),
        r#"Tollgate::K8sObject::"c/kube-system/Deployment/web""#
    );
}

#[tokio::test]
async fn prepare_reads_nothing_for_a_refused_target() {
    let c = connector(Some(&["shop"]));
    for args in [
        json!({"connection": "c", "kind": "ConfigMap", "name": "../x", "namespace": "shop"}),
        json!({"connection": "c", "kind": "ConfigMap", "name": "x", "namespace": "kube-system"}),
        json!({"connection": "c", "kind": "Namespace", "name": "kube-system"}),
        json!({"connection": "c", "kind": "Lease", "name": "x", "namespace": "shop"}),
        json!({"connection": "c", "kind": "ConfigMap", "name": "x", "namespace": "shop", "x": 1}),
    ] {
        c.read_for_review(&args).await;
        assert!(c.snapshots.0.lock().unwrap().is_empty(), "{args} was read");
    }
}

fn found(uid: &str, labels: &[(&str, &str)]) -> Seen {
    Seen::Found(Shown {
        uid: uid.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        created: Some("2026-12-07T05:00:00Z".into()),
    })
}

#[test]
fn delete_shows_the_object_prepare_read() {
    let c = connector(Some(&["shop"]));
    let args = json!({"connection": "c", "kind": "cm", "name": "web", "namespace": "shop", "dry_run": true});
    // Not read (prepare did not run or failed): fail closed.
    let e = err(&c, "k8s_delete", &args);
    assert!(e.contains("was not read for review"), "{e}");
    let cm = c.resolve("ConfigMap", "get").unwrap();
    let key = Snapshots::key(&cm, Some("shop"), "web");
    c.snapshots.put(
        key.clone(),
        Seen::Unreadable("the API server answered 403: forbidden".into()),
    );
    let e = err(&c, "k8s_delete", &args);
    assert!(e.contains("could not be read") && e.contains("403"), "{e}");

    c.snapshots.put(
        key.clone(),
        found("u-123", &[("app", "web"), ("tier", "cache")]),
    );
    let plan = c.analyse("k8s_delete", &args).unwrap();
    let r = &plan.requests[0];
    assert_eq!(r.action, "k8s:delete");
    assert_eq!(
        r.resource.entity_uid(),
        r#"Tollgate::K8sObject::"c/shop/ConfigMap/web""#
    );
    assert_eq!(r.context["dry_run"], ContextValue::Bool(true));
    assert_eq!(
        r.context["labels"],
        ContextValue::StringSet(["app=web".to_string(), "tier=cache".to_string()].into())
    );
    assert_eq!(
        plan.review.title,
        "delete (dry run) ConfigMap/shop/web (uid u-123)"
    );
    let parts = &plan.review.runs[0].text.parts;
    assert!(parts.contains(&TextPart::Field {
        field: FieldPath::new(["ConfigMap", "metadata", "labels", "tier"]),
        text: "cache".into(),
    }));
    let text = plan.review.runs[0].text.joined();
    assert!(
        text.contains("uid: u-123") && text.contains("app: web"),
        "{text}"
    );
    let Some(Prepared::Delete(d)) = plan.prepared.downcast_ref::<Prepared>() else {
        panic!("not a delete plan");
    };
    assert_eq!(
        d.reviewed,
        found("u-123", &[("app", "web"), ("tier", "cache")])
    );

    // Absent when read: the call may go on (policy first; it then fails as
    // not found), and the review says so.
    c.snapshots.put(key, Seen::Missing);
    let plan = c.analyse("k8s_delete", &args).unwrap();
    assert!(
        plan.review.title.ends_with("(not found)"),
        "{}",
        plan.review.title
    );
    assert_eq!(
        plan.requests[0].context["labels"],
        ContextValue::StringSet(BTreeSet::new())
    );

    // A cluster-scoped object: `c//Kind/name`, in the connection.
    let ns = c.resolve("Namespace", "get").unwrap();
    c.snapshots
        .put(Snapshots::key(&ns, None, "shop"), found("u-ns", &[]));
    let plan = c
        .analyse(
            "k8s_delete",
            &json!({"connection": "c", "kind": "Namespace", "name": "shop"}),
        )
        .unwrap();
    assert_eq!(
        plan.requests[0].resource.entity_uid(),
        r#"Tollgate::K8sObject::"c//Namespace/shop""#
    );
    assert_eq!(
        plan.requests[0].context["dry_run"],
        ContextValue::Bool(false)
    );
    assert!(plan.review.runs[0].text.joined().contains("labels: none"));
}
