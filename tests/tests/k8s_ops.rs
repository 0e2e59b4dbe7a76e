//! `k8s_restart` and `k8s_delete` on a real kube-apiserver with
//! kube-controller-manager (tests/src/kube.rs), through the whole gateway:
//! a restart annotates the pod template and the Deployment controller rolls
//! a new ReplicaSet; other kinds, bad names and namespaces outside the
//! connection are refused before policy; a delete reads the object first,
//! shows it in the review (uid, labels; labels reach policy), deletes only
//! that object, returns it masked (Secret values as K8S_SECRET in result and
//! audit), honours `dry_run`, and waits for reviewers when policy says so.

use std::time::Duration;

use gateway_core::Principal;
use gateway_core::approval::CallContext;
use gateway_core::outcome::{CallOutcome, CallResult};
use serde_json::{Value, json};
use tollgate_tests::kube::KubeServer;
use tollgate_tests::served::{Served, kube_connection, principal};

const PASSWORD: &str = "Del3te-Me-Secret-99";

const POLICY: &str = r#"
@id("connect")
permit (principal, action == Tollgate::Action::"connect", resource);
@id("admins-operate-shop")
permit (principal in Tollgate::Group::"admins",
        action in [Tollgate::Action::"k8s:get", Tollgate::Action::"k8s:restart", Tollgate::Action::"k8s:delete"],
        resource in Tollgate::Namespace::"k8s/shop");
@id("admins-delete-web-namespace")
permit (principal in Tollgate::Group::"admins", action == Tollgate::Action::"k8s:delete",
        resource == Tollgate::K8sObject::"k8s//Namespace/web");
@id("protected-stays")
forbid (principal, action == Tollgate::Action::"k8s:delete", resource)
when { context.labels.contains("protected=true") && !context.dry_run };
@id("agents-delete-reviewed")
@approval("reviewers")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"k8s:delete",
        resource in Tollgate::Namespace::"k8s/shop");
@id("auditors")
permit (principal in Tollgate::Group::"auditors", action == Tollgate::Action::"audit:read", resource == Tollgate::Audit::"log");
"#;

async fn seed(kube: &KubeServer) {
    for ns in ["shop", "web", "other"] {
        kube.create(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await
        .unwrap();
    }
    let template = json!({"metadata": {"labels": {"app": "web"}},
        "spec": {"automountServiceAccountToken": false,
            "containers": [{"name": "app", "image": "nginx:1.25"}]}});
    kube.create(
        "/apis/apps/v1/namespaces/shop/deployments",
        &json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": template}}),
    )
    .await
    .unwrap();
    kube.create(
        "/apis/apps/v1/namespaces/shop/daemonsets",
        &json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template}}),
    )
    .await
    .unwrap();
    kube.create(
        "/api/v1/namespaces/shop/secrets",
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
            "stringData": {"password": PASSWORD}}),
    )
    .await
    .unwrap();
    for (ns, name, labels) in [
        ("shop", "doomed", json!({"app": "web"})),
        ("shop", "keep", json!({"app": "web", "tier": "cache"})),
        ("shop", "guarded", json!({"protected": "true"})),
        ("shop", "swap", json!({})),
        ("other", "far", json!({})),
    ] {
        configmap(kube, ns, name, labels).await;
    }
}

async fn configmap(kube: &KubeServer, ns: &str, name: &str, labels: Value) -> Value {
    kube.create(
        &format!("/api/v1/namespaces/{ns}/configmaps"),
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .await
    .unwrap()
}

/// GET a path as admin: the status and the body.
async fn get(kube: &KubeServer, path: &str) -> (u16, Value) {
    let r = kube
        .http()
        .unwrap()
        .get(format!("{}{path}", kube.url()))
        .bearer_auth(kube.admin_token())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn delete_directly(kube: &KubeServer, path: &str) {
    let r = kube
        .http()
        .unwrap()
        .delete(format!("{}{path}", kube.url()))
        .bearer_auth(kube.admin_token())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// The ReplicaSets of Deployment shop/web, waiting up to 60 s for `n`.
async fn replica_sets(kube: &KubeServer, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, list) = get(
            kube,
            "/apis/apps/v1/namespaces/shop/replicasets?labelSelector=app%3Dweb",
        )
        .await;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if items.len() == n || std::time::Instant::now() > deadline {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn code(r: &CallResult) -> &str {
    r.structured["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_and_delete_through_the_whole_gateway() {
    tollgate_server::init_crypto();
    let kube = KubeServer::start_with_controllers()
        .await
        .expect("kube-apiserver and kube-controller-manager start");
    eprintln!(
        "kube-apiserver + controller-manager ready in {:?}",
        kube.start_time
    );
    seed(&kube).await;

    let served = Served::start("k8s-ops", POLICY, "", |dir| {
        format!(
            "[approval]\nwait_seconds = 0\n\n{}",
            kube_connection(
                &kube,
                dir,
                "k8s",
                "namespaces = [\"shop\", \"web\"]\ntimeout = \"20s\""
            )
        )
    })
    .await;
    let (addr, gateway) = (served.addr, served.gateway.clone());
    let audrey = served.token("audrey", &["auditors"]);

    let admin = principal("ada", &["admins"]);
    let agent = principal("agent-7", &["agents"]);
    let rita = principal("rita", &["reviewers"]);
    let mut seen: Vec<String> = Vec::new();
    let mut call = async |who: &Principal, tool: &str, args: Value| -> CallResult {
        let r = served.call(who, tool, args).await;
        seen.push(r.structured.to_string());
        r
    };

    // --- restart: the pod template is annotated, a new ReplicaSet rolls.
    let before = replica_sets(&kube, 1).await;
    assert_eq!(
        before.len(),
        1,
        "the Deployment controller made no ReplicaSet"
    );
    let restarted = call(
        &admin,
        "k8s_restart",
        json!({"connection": "k8s", "kind": "deployments.apps", "name": "web", "namespace": "shop"}),
    )
    .await;
    assert!(!restarted.is_error, "{}", restarted.structured);
    let out = &restarted.structured;
    assert_eq!(
        (&out["kind"], &out["namespace"], &out["name"]),
        (&json!("Deployment"), &json!("shop"), &json!("web"))
    );
    let at = out["restarted_at"].as_str().unwrap().to_string();
    assert!(
        at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "not RFC 3339 UTC: {at}"
    );
    assert_eq!(out["generation"], json!(2), "{out}");
    let (_, dep) = get(&kube, "/apis/apps/v1/namespaces/shop/deployments/web").await;
    assert_eq!(
        dep["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        json!(at)
    );
    let after = replica_sets(&kube, 2).await;
    assert_eq!(
        after.len(),
        2,
        "no new ReplicaSet after the restart: {after:?}"
    );
    eprintln!("restart: {out}");
    // A DaemonSet through its short name.
    let ds = call(
        &admin,
        "k8s_restart",
        json!({"connection": "k8s", "kind": "ds", "name": "agent", "namespace": "shop"}),
    )
    .await;
    assert!(!ds.is_error, "{}", ds.structured);
    let (_, ds_obj) = get(&kube, "/apis/apps/v1/namespaces/shop/daemonsets/agent").await;
    assert_eq!(
        ds_obj["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        ds.structured["restarted_at"]
    );
    // Missing, or paused (as kubectl refuses it): nothing is patched.
    kube.create(
        "/apis/apps/v1/namespaces/shop/deployments",
        &json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "held"},
            "spec": {"paused": true, "replicas": 0, "selector": {"matchLabels": {"app": "held"}},
                "template": {"metadata": {"labels": {"app": "held"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}}}}),
    )
    .await
    .unwrap();
    for (name, says) in [
        ("nope", "Deployment/shop/nope not found"),
        ("held", "is paused"),
    ] {
        let r = call(
            &admin,
            "k8s_restart",
            json!({"connection": "k8s", "kind": "Deployment", "name": name, "namespace": "shop"}),
        )
        .await;
        assert!(
            r.is_error && r.structured.to_string().contains(says),
            "{name}: {}",
            r.structured
        );
    }
    let (_, held) = get(&kube, "/apis/apps/v1/namespaces/shop/deployments/held").await;
    assert_eq!(held["metadata"]["generation"], json!(1), "{held}");
    // Other kinds are denied at analysis, with the reason.
    let cm = call(
        &admin,
        "k8s_restart",
        json!({"connection": "k8s", "kind": "ConfigMap", "name": "keep", "namespace": "shop"}),
    )
    .await;
    assert!(cm.is_error, "{}", cm.structured);
    assert!(
        cm.structured.to_string().contains("cannot be restarted"),
        "{}",
        cm.structured
    );
    // Refused before policy: names, namespaces outside the connection.
    for (name, ns) in [
        ("--server=x", "shop"),
        ("../x", "shop"),
        ("a/b", "shop"),
        ("web", "other"),
        ("web", "kube-system"),
    ] {
        let r = call(
            &agent,
            "k8s_restart",
            json!({"connection": "k8s", "kind": "Deployment", "name": name, "namespace": ns}),
        )
        .await;
        assert_eq!(
            code(&r),
            "invalid_arguments",
            "{name} {ns}: {}",
            r.structured
        );
    }

    // --- delete, dry run: the object stays, the result is the object.
    let dry = call(
        &admin,
        "k8s_delete",
        json!({"connection": "k8s", "kind": "cm", "name": "doomed", "namespace": "shop", "dry_run": true}),
    )
    .await;
    assert!(!dry.is_error, "{}", dry.structured);
    assert_eq!(dry.structured["deleted"]["kind"], "ConfigMap");
    assert_eq!(dry.structured["deleted"]["metadata"]["name"], "doomed");
    assert_eq!(dry.structured["dry_run"], true);
    assert!(!dry.structured.to_string().contains("managedFields"));
    assert_eq!(
        get(&kube, "/api/v1/namespaces/shop/configmaps/doomed")
            .await
            .0,
        200
    );
    // For real: gone.
    let started = std::time::Instant::now();
    let gone = call(
        &admin,
        "k8s_delete",
        json!({"connection": "k8s", "kind": "ConfigMap", "name": "doomed", "namespace": "shop"}),
    )
    .await;
    assert!(!gone.is_error, "{}", gone.structured);
    eprintln!(
        "k8s_delete through the gateway (read for review, read, delete): {:?}",
        started.elapsed()
    );
    assert_eq!(gone.structured["deleted"]["metadata"]["name"], "doomed");
    assert_eq!(gone.structured["dry_run"], false);
    assert_eq!(
        get(&kube, "/api/v1/namespaces/shop/configmaps/doomed")
            .await
            .0,
        404
    );
    // Again: not found, said clearly.
    let again = call(
        &admin,
        "k8s_delete",
        json!({"connection": "k8s", "kind": "ConfigMap", "name": "doomed", "namespace": "shop"}),
    )
    .await;
    assert!(again.is_error, "{}", again.structured);
    assert!(
        again
            .structured
            .to_string()
            .contains("ConfigMap/shop/doomed not found"),
        "{}",
        again.structured
    );

    // --- a Secret: deleted, its values masked in the result.
    let b64 = "RGVsM3RlLU1lLVNlY3JldC05OQ=="; // base64 of PASSWORD
    let sec = call(
        &admin,
        "k8s_delete",
        json!({"connection": "k8s", "kind": "v1/Secret", "name": "db", "namespace": "shop"}),
    )
    .await;
    assert!(!sec.is_error, "{}", sec.structured);
    assert_eq!(
        sec.structured["deleted"]["data"]["password"],
        "[K8S_SECRET]"
    );
    let text = sec.structured.to_string();
    assert!(!text.contains(PASSWORD) && !text.contains(b64), "{text}");
    assert_eq!(
        get(&kube, "/api/v1/namespaces/shop/secrets/db").await.0,
        404
    );

    // --- labels read for the review reach policy: a protected object
    // stays (a dry run is permitted).
    let guarded = call(
        &admin,
        "k8s_delete",
        json!({"connection": "k8s", "kind": "ConfigMap", "name": "guarded", "namespace": "shop"}),
    )
    .await;
    assert_eq!(code(&guarded), "denied", "{}", guarded.structured);
    assert_eq!(
        get(&kube, "/api/v1/namespaces/shop/configmaps/guarded")
            .await
            .0,
        200
    );

    // --- an agent's delete waits for reviewers, who see the object.
    let keep_uid = get(&kube, "/api/v1/namespaces/shop/configmaps/keep")
        .await
        .1["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let keep =
        json!({"connection": "k8s", "kind": "configmaps", "name": "keep", "namespace": "shop"});
    let paused = call(&agent, "k8s_delete", keep.clone()).await;
    let CallOutcome::Pending(pending) = &paused.outcome else {
        panic!("expected a pending approval: {}", paused.structured);
    };
    let gate = gateway
        .approvals()
        .and_then(|g| g.service())
        .expect("approval service");
    let stored = gate
        .get_for(&pending.approval_id, &agent, false)
        .await
        .expect("the requester sees the approval");
    assert_eq!(
        stored.review.title,
        format!("delete ConfigMap/shop/keep (uid {keep_uid})")
    );
    let shown = stored.review.runs[0].text.joined();
    assert!(
        shown.contains(&format!("uid: {keep_uid}"))
            && shown.contains("app: web")
            && shown.contains("tier: cache"),
        "{shown}"
    );
    assert_eq!(
        get(&kube, "/api/v1/namespaces/shop/configmaps/keep")
            .await
            .0,
        200
    );
    gate.approve(&pending.approval_id, &rita, None)
        .await
        .unwrap();
    assert_eq!(
        get(&kube, "/api/v1/namespaces/shop/configmaps/keep")
            .await
            .0,
        200,
        "nothing runs before the agent resumes"
    );
    let done = call(
        &agent,
        "approval_wait",
        json!({"approval_id": pending.approval_id}),
    )
    .await;
    assert!(!done.is_error, "{}", done.structured);
    assert_eq!(
        done.structured["deleted"]["metadata"]["uid"],
        json!(keep_uid)
    );
    assert_eq!(
        get(&kube, "/api/v1/namespaces/shop/configmaps/keep")
            .await
            .0,
        404
    );

    // --- the object reviewed is the object deleted: replaced while the
    // call waits for its reviewer, it is not deleted.
    let swap =
        json!({"connection": "k8s", "kind": "ConfigMap", "name": "swap", "namespace": "shop"});
    let first = call(&agent, "k8s_delete", swap.clone()).await;
    let CallOutcome::Pending(p) = &first.outcome else {
        panic!("expected a pending approval: {}", first.structured);
    };
    let waiting = {
        let (gateway, agent, swap) = (gateway.clone(), agent.clone(), swap.clone());
        tokio::spawn(async move {
            let ctx = CallContext {
                wait: Some(Duration::from_secs(30)),
                ..Default::default()
            };
            gateway.call(&agent, "k8s_delete", swap, &ctx).await
        })
    };
    // Time for the waiting call to read the object and start waiting (a
    // few ms); had it read the replacement, the delete would go through.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    delete_directly(&kube, "/api/v1/namespaces/shop/configmaps/swap").await;
    let replacement = configmap(&kube, "shop", "swap", json!({})).await;
    gate.approve(&p.approval_id, &rita, None).await.unwrap();
    let refused = waiting.await.unwrap();
    assert!(refused.is_error, "{}", refused.structured);
    assert!(
        refused
            .structured
            .to_string()
            .contains("not the object reviewed"),
        "{}",
        refused.structured
    );
    let (status, still) = get(&kube, "/api/v1/namespaces/shop/configmaps/swap").await;
    assert_eq!(status, 200);
    assert_eq!(still["metadata"]["uid"], replacement["metadata"]["uid"]);

    // --- outside the connection's namespaces: refused before policy.
    for args in [
        json!({"connection": "k8s", "kind": "ConfigMap", "name": "far", "namespace": "other"}),
        json!({"connection": "k8s", "kind": "ConfigMap", "name": "x", "namespace": "kube-system"}),
        json!({"connection": "k8s", "kind": "Namespace", "name": "other"}),
        json!({"connection": "k8s", "kind": "ns", "name": "kube-system"}),
        json!({"connection": "k8s", "kind": "ConfigMap", "name": "../far", "namespace": "shop"}),
    ] {
        let r = call(&agent, "k8s_delete", args.clone()).await;
        assert_eq!(code(&r), "invalid_arguments", "{args}: {}", r.structured);
        assert!(!matches!(r.outcome, CallOutcome::Pending(_)));
    }
    assert_eq!(
        get(&kube, "/api/v1/namespaces/other/configmaps/far")
            .await
            .0,
        200
    );
    // A Namespace object of the connection's own: dry run only here.
    let ns = call(
        &admin,
        "k8s_delete",
        json!({"connection": "k8s", "kind": "Namespace", "name": "web", "dry_run": true}),
    )
    .await;
    assert!(!ns.is_error, "{}", ns.structured);
    assert_eq!(ns.structured["deleted"]["kind"], "Namespace");
    let (_, web) = get(&kube, "/api/v1/namespaces/web").await;
    assert_eq!(web["status"]["phase"], "Active");

    // --- the audit record: masked; the token nowhere; the chain verifies.
    let events: Value = reqwest::Client::new()
        .get(format!("http://{addr}/api/audit?connection=k8s&limit=200"))
        .bearer_auth(&audrey)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let audit = events.to_string();
    assert!(
        audit.contains(r#"Tollgate::K8sObject::\"k8s/shop/Secret/db\""#),
        "{audit}"
    );
    assert!(audit.contains("[K8S_SECRET]"), "{audit}");
    assert!(
        !audit.contains(PASSWORD) && !audit.contains(b64),
        "secret in the audit record"
    );
    seen.push(audit);
    for text in &seen {
        assert!(
            !text.contains(kube.admin_token()),
            "the token leaked: {text}"
        );
    }
}
