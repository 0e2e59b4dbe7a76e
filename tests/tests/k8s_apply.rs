//! `k8s_apply` on a real kube-apiserver (tests/src/kube.rs), through the
//! whole gateway: server-side apply with a server dry run first, the
//! action and diff per object (created, unchanged, configured), `dry_run`
//! changing nothing, Secret values masked in the diff and the audit
//! record, policy on `pod_security` and `binds_roles` deciding every object
//! of a manifest before anything is applied, the connection's namespaces,
//! a failed dry run applying nothing, a field owned by another manager
//! refused as a conflict, and the approval's review of a manifest.

use std::time::Duration;

use gateway_core::Principal;
use gateway_core::approval::CallContext;
use gateway_core::outcome::{CallOutcome, CallResult};
use serde_json::{Value, json};
use tollgate_tests::kube::KubeServer;
use tollgate_tests::served::{Served, kube_connection, principal};

const PASSWORD: &str = "S3cr3t-Value-42";
/// base64 of PASSWORD.
const B64: &str = "UzNjcjN0LVZhbHVlLTQy";
const NEW_PASSWORD: &str = "N3w-Passw0rd-99";
/// A Secret value under a key no detector knows as a credential.
const PLAIN_VALUE: &str = "internal-host-4711";
/// base64 of PLAIN_VALUE.
const PLAIN_B64: &str = "aW50ZXJuYWwtaG9zdC00NzEx";

const POLICY: &str = r#"
@id("connect")
permit (principal, action == Tollgate::Action::"connect", resource);
@id("admins")
permit (principal in Tollgate::Group::"admins",
        action in [Tollgate::Action::"k8s:apply", Tollgate::Action::"k8s:get", Tollgate::Action::"k8s:list"],
        resource in Tollgate::Connection::"k8s");
@id("no-pod-security")
forbid (principal, action == Tollgate::Action::"k8s:apply", resource)
when { context.pod_security.containsAny(["privileged", "hostPID", "hostIPC", "hostNetwork",
    "hostPath", "capabilities", "runAsRoot", "allowPrivilegeEscalation"]) };
@id("no-cluster-admin")
forbid (principal, action == Tollgate::Action::"k8s:apply", resource)
when { context.binds_roles.contains("cluster-admin") };
@id("agents-apply-reviewed")
@approval("reviewers")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"k8s:apply",
        resource in Tollgate::Namespace::"k8s/shop");
@id("auditors")
permit (principal in Tollgate::Group::"auditors", action == Tollgate::Action::"audit:read", resource == Tollgate::Audit::"log");
"#;

/// GET an object straight from the API server as admin: None on 404.
async fn live(kube: &KubeServer, path: &str) -> Option<Value> {
    let r = kube
        .http()
        .unwrap()
        .get(format!("{}{path}", kube.url()))
        .bearer_auth(kube.admin_token())
        .send()
        .await
        .unwrap();
    if r.status() == 404 {
        return None;
    }
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    Some(r.json().await.unwrap())
}

const APP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {app: web}
data:
  mode: fast
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      automountServiceAccountToken: false
      containers:
      - name: app
        image: nginx:1.25
"#;

fn actions(r: &CallResult) -> Vec<String> {
    r.structured["objects"]
        .as_array()
        .unwrap_or_else(|| panic!("no objects: {}", r.structured))
        .iter()
        .map(|o| o["action"].as_str().unwrap().to_string())
        .collect()
}

/// The diff entry of object `i` at `path`.
fn entry(r: &CallResult, i: usize, path: &str) -> Value {
    r.structured["objects"][i]["diff"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == path)
        .cloned()
        .unwrap_or_else(|| panic!("no diff entry {path}: {}", r.structured))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_through_the_whole_gateway() {
    tollgate_server::init_crypto();
    let kube = KubeServer::start().await.expect("kube-apiserver starts");
    for ns in ["shop", "web", "other"] {
        kube.create(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await
        .unwrap();
    }
    let served = Served::start("k8s-apply", POLICY, "", |dir| {
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
    let mut seen: Vec<String> = Vec::new();
    let mut call = async |who: &Principal, args: Value| -> CallResult {
        let r = gateway
            .call(
                who,
                "k8s_apply",
                args,
                &CallContext {
                    wait: Some(Duration::ZERO),
                    ..Default::default()
                },
            )
            .await;
        seen.push(r.structured.to_string());
        r
    };
    let apply =
        |manifest: &str| json!({"connection": "k8s", "manifest": manifest, "namespace": "shop"});
    let cm_path = "/api/v1/namespaces/shop/configmaps/settings";
    let dep_path = "/apis/apps/v1/namespaces/shop/deployments/web";

    // Create: both objects created, really there, owned by `tollgate`.
    let t = std::time::Instant::now();
    let created = call(&admin, apply(APP)).await;
    let create_time = t.elapsed();
    assert!(!created.is_error, "{}", created.structured);
    assert_eq!(
        actions(&created),
        ["created", "created"],
        "{}",
        created.structured
    );
    let whole = entry(&created, 0, "");
    assert_eq!(whole["op"], "add");
    assert_eq!(whole["after"]["data"]["mode"], "fast");
    assert_eq!(created.structured["objects"][1]["namespace"], "shop");
    let cm = live(&kube, cm_path).await.expect("the ConfigMap exists");
    assert_eq!(cm["data"]["mode"], "fast");
    let managers: Vec<&str> = cm["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["tollgate"]);
    assert!(
        live(&kube, dep_path).await.is_some(),
        "the Deployment exists"
    );
    eprintln!("created: {}", created.structured);

    // The same again: unchanged, empty diffs.
    let t = std::time::Instant::now();
    let again = call(&admin, apply(APP)).await;
    eprintln!(
        "2 objects: create {create_time:?} (first call: discovery included), unchanged re-apply {:?}",
        t.elapsed()
    );
    assert!(!again.is_error, "{}", again.structured);
    assert_eq!(
        actions(&again),
        ["unchanged", "unchanged"],
        "{}",
        again.structured
    );
    assert_eq!(again.structured["objects"][0]["diff"], json!([]));

    // A change: configured, the diff names it.
    let changed_text = APP
        .replace("mode: fast", "mode: slow")
        .replace("nginx:1.25", "nginx:1.27");
    let changed = call(&admin, apply(&changed_text)).await;
    assert!(!changed.is_error, "{}", changed.structured);
    assert_eq!(
        actions(&changed),
        ["configured", "configured"],
        "{}",
        changed.structured
    );
    let mode = entry(&changed, 0, "/data/mode");
    assert_eq!(
        (&mode["op"], &mode["before"], &mode["after"]),
        (&json!("replace"), &json!("fast"), &json!("slow"))
    );
    let image = entry(&changed, 1, "/spec/template/spec/containers/0/image");
    assert_eq!(
        (&image["before"], &image["after"]),
        (&json!("nginx:1.25"), &json!("nginx:1.27"))
    );
    assert_eq!(
        changed.structured["objects"][0]["diff"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "noise (resourceVersion, managedFields...) is not a change: {}",
        changed.structured
    );
    assert_eq!(live(&kube, cm_path).await.unwrap()["data"]["mode"], "slow");
    eprintln!("configured: {}", changed.structured);

    // dry_run: the diff, and nothing changes on the server.
    let mut dry = apply(&changed_text.replace("mode: slow", "mode: dry"));
    dry["dry_run"] = json!(true);
    let dried = call(&admin, dry).await;
    assert!(!dried.is_error, "{}", dried.structured);
    assert_eq!(dried.structured["dry_run"], true);
    assert_eq!(actions(&dried), ["configured", "unchanged"]);
    assert_eq!(entry(&dried, 0, "/data/mode")["after"], "dry");
    assert_eq!(live(&kube, cm_path).await.unwrap()["data"]["mode"], "slow");
    let mut dry_new =
        apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: never}\ndata: {a: b}\n");
    dry_new["dry_run"] = json!(true);
    let dried_new = call(&admin, dry_new).await;
    assert_eq!(actions(&dried_new), ["created"], "{}", dried_new.structured);
    assert!(
        live(&kube, "/api/v1/namespaces/shop/configmaps/never")
            .await
            .is_none()
    );

    // A Secret through stringData: no value, plain or base64, in the diff.
    let secret_text = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: db}}\nstringData:\n  password: {PASSWORD}\n  endpoint: {PLAIN_VALUE}\n"
    );
    let sec = call(&admin, apply(&secret_text)).await;
    assert!(!sec.is_error, "{}", sec.structured);
    assert_eq!(actions(&sec), ["created"]);
    let text = sec.structured.to_string();
    assert!(!text.contains(PASSWORD) && !text.contains(B64), "{text}");
    assert!(
        !text.contains(PLAIN_VALUE) && !text.contains(PLAIN_B64),
        "{text}"
    );
    assert_eq!(
        entry(&sec, 0, "")["after"]["data"]["password"],
        "[K8S_SECRET]",
        "{text}"
    );
    assert_eq!(
        entry(&sec, 0, "")["after"]["data"]["endpoint"],
        "[K8S_SECRET]",
        "{text}"
    );
    let stored = live(&kube, "/api/v1/namespaces/shop/secrets/db")
        .await
        .unwrap();
    assert_eq!(
        stored["data"]["password"], B64,
        "the apply really stored it"
    );
    // A new value: the diff shows that it changed, not what to.
    let rotated = call(&admin, apply(&secret_text.replace(PASSWORD, NEW_PASSWORD))).await;
    assert!(!rotated.is_error, "{}", rotated.structured);
    let text = rotated.structured.to_string();
    assert!(
        !text.contains(PASSWORD) && !text.contains(B64) && !text.contains(NEW_PASSWORD),
        "{text}"
    );
    let pw = entry(&rotated, 0, "/data/password");
    assert_eq!(
        (&pw["before"], &pw["after"]),
        (&json!("[K8S_SECRET]"), &json!("[K8S_SECRET]")),
        "{text}"
    );
    eprintln!("secret rotated: {}", rotated.structured);

    // Policy forbids pod_security flags: a privileged DaemonSet is denied
    // and not created.
    let ds = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: node-agent}\nspec:\n  selector: {matchLabels: {app: na}}\n  template:\n    metadata: {labels: {app: na}}\n    spec:\n      containers:\n      - name: a\n        image: busybox:1.36\n        securityContext: {privileged: true}\n";
    let denied = call(&admin, apply(ds)).await;
    assert_eq!(
        denied.structured["error"]["code"], "denied",
        "{}",
        denied.structured
    );
    assert!(
        live(&kube, "/apis/apps/v1/namespaces/shop/daemonsets/node-agent")
            .await
            .is_none()
    );
    eprintln!("privileged DaemonSet: {}", denied.structured["error"]);

    // A cluster-admin binding hidden in the third document: the whole
    // manifest is denied, nothing of it created.
    let hidden = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\ndata: {a: b}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: helper}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: helper-view}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: ServiceAccount, name: helper, namespace: shop}]\n";
    let denied = call(&admin, apply(hidden)).await;
    assert_eq!(
        denied.structured["error"]["code"], "denied",
        "{}",
        denied.structured
    );
    for path in [
        "/api/v1/namespaces/shop/configmaps/first",
        "/api/v1/namespaces/shop/serviceaccounts/helper",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/helper-view",
    ] {
        assert!(live(&kube, path).await.is_none(), "{path} was created");
    }
    // The same manifest binding `view` is applied whole.
    let view = call(
        &admin,
        apply(&hidden.replace("name: cluster-admin", "name: view")),
    )
    .await;
    assert_eq!(
        actions(&view),
        ["created", "created", "created"],
        "{}",
        view.structured
    );
    assert_eq!(view.structured["objects"][2]["namespace"], Value::Null);
    assert!(
        live(
            &kube,
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/helper-view"
        )
        .await
        .is_some()
    );

    // Outside the connection's namespaces, bad names, unknown kinds:
    // refused before policy.
    for (args, code, needle) in [
        (
            json!({"connection": "k8s", "manifest": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: other}\n"}),
            "invalid_arguments",
            "outside",
        ),
        (
            json!({"connection": "k8s", "manifest": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "namespace": "other"}),
            "invalid_arguments",
            "outside",
        ),
        (
            apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '--server=x'}\n"),
            "invalid_arguments",
            "not a valid",
        ),
        (
            apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ../x}\n"),
            "invalid_arguments",
            "not a valid",
        ),
        (
            apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a/b}\n"),
            "invalid_arguments",
            "not a valid",
        ),
        (
            apply("apiVersion: v1\nkind: Widget\nmetadata: {name: w}\n"),
            "",
            "unknown kind `Widget`",
        ),
        (
            apply("apiVersion: v1\nkind: ConfigMap\nmetadata: [\n"),
            "",
            "cannot be parsed",
        ),
    ] {
        let r = call(&admin, args.clone()).await;
        assert!(r.is_error, "{args}: {}", r.structured);
        assert!(!matches!(r.outcome, CallOutcome::Pending(_)));
        if !code.is_empty() {
            assert_eq!(
                r.structured["error"]["code"], code,
                "{args}: {}",
                r.structured
            );
        }
        assert!(
            r.structured.to_string().contains(needle),
            "{args}: {}",
            r.structured
        );
    }
    assert!(
        live(&kube, "/api/v1/namespaces/other/configmaps/x")
            .await
            .is_none()
    );

    // A dry run that fails on the second object: nothing applied.
    let broken = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok-1}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: no-selector}\nspec:\n  template:\n    spec:\n      containers: [{name: a, image: x}]\n";
    let failed = call(&admin, apply(broken)).await;
    assert!(failed.is_error, "{}", failed.structured);
    let msg = failed.structured["error"].to_string();
    assert!(
        msg.contains("Deployment/shop/no-selector") && msg.contains("nothing was applied"),
        "{msg}"
    );
    assert!(
        live(&kube, "/api/v1/namespaces/shop/configmaps/ok-1")
            .await
            .is_none()
    );
    eprintln!("failed dry run: {msg}");

    // An apply that fails after the dry runs passed: the error names what
    // was applied and what was not. A quota allows one more ConfigMap in
    // `web` (its status set by hand: no quota controller runs); dry runs
    // consume no quota, so both pass; the second real create is refused.
    kube.create(
        "/api/v1/namespaces/web/resourcequotas",
        &json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
            "spec": {"hard": {"configmaps": "1"}}}),
    )
    .await
    .unwrap();
    let r = kube
        .http()
        .unwrap()
        .patch(format!(
            "{}/api/v1/namespaces/web/resourcequotas/q/status",
            kube.url()
        ))
        .bearer_auth(kube.admin_token())
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"status": {"hard": {"configmaps": "1"}, "used": {"configmaps": "0"}}}"#)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let two = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: two}\n";
    let partial = call(
        &admin,
        json!({"connection": "k8s", "manifest": two, "namespace": "web"}),
    )
    .await;
    assert!(partial.is_error, "{}", partial.structured);
    let msg = partial.structured["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.starts_with("target error: ConfigMap/web/two: the apply failed: ")
            && msg.contains("exceeded quota")
            && msg.ends_with(
                "; applied before it: ConfigMap/web/one; not applied: ConfigMap/web/two"
            ),
        "{msg}"
    );
    assert!(
        live(&kube, "/api/v1/namespaces/web/configmaps/one")
            .await
            .is_some()
    );
    assert!(
        live(&kube, "/api/v1/namespaces/web/configmaps/two")
            .await
            .is_none()
    );
    eprintln!("partial apply: {msg}");

    // A field another manager owns: a conflict, not taken over.
    kube.create(
        "/api/v1/namespaces/shop/configmaps",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "theirs"}, "data": {"owner": "them"}}),
    )
    .await
    .unwrap();
    let conflict = call(
        &admin,
        apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: theirs}\ndata: {owner: us}\n"),
    )
    .await;
    assert!(conflict.is_error, "{}", conflict.structured);
    assert!(
        conflict
            .structured
            .to_string()
            .to_lowercase()
            .contains("conflict"),
        "{}",
        conflict.structured
    );
    assert_eq!(
        live(&kube, "/api/v1/namespaces/shop/configmaps/theirs")
            .await
            .unwrap()["data"]["owner"],
        "them"
    );
    eprintln!("conflict: {}", conflict.structured["error"]);

    // An agent's apply waits for reviewers; the review shows the object
    // with its Secret value masked; nothing is applied meanwhile.
    let agent_secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: agent-db, labels: {{app: web}}}}\nstringData:\n  password: {PASSWORD}\n  endpoint: {PLAIN_VALUE}\n"
    );
    let paused = call(&agent, apply(&agent_secret)).await;
    let CallOutcome::Pending(pending) = &paused.outcome else {
        panic!("expected a pending approval: {}", paused.structured);
    };
    let stored = gateway
        .approvals()
        .and_then(|g| g.service())
        .expect("approval service")
        .get_for(&pending.approval_id, &agent, false)
        .await
        .expect("the requester sees the approval");
    assert_eq!(stored.review.title, "apply Secret/shop/agent-db");
    let review = serde_json::to_string(&stored.review).unwrap();
    assert!(
        review.contains(r#"\"endpoint\": \"[K8S_SECRET]\""#),
        "{review}"
    );
    assert!(
        !review.contains(PASSWORD) && !review.contains(B64) && !review.contains(PLAIN_VALUE),
        "{review}"
    );
    assert!(
        live(&kube, "/api/v1/namespaces/shop/secrets/agent-db")
            .await
            .is_none()
    );
    assert_eq!(
        stored.review.diff.as_ref().map(|d| d.joined()).as_deref(),
        Some("Secret/shop/agent-db: created (the object above, with the server's defaults)\n"),
        "{review}"
    );
    let mut reviews = vec![review];

    // The review holds the server's diff (read by dry runs before the
    // approval is asked), values masked like results.
    let service = gateway
        .approvals()
        .and_then(|g| g.service())
        .expect("approval service");
    let agent_change = APP
        .replace("mode: fast", "mode: agent-mode")
        .replace("nginx:1.25", "nginx:1.27");
    let paused = call(&agent, apply(&agent_change)).await;
    let CallOutcome::Pending(first) = &paused.outcome else {
        panic!("expected a pending approval: {}", paused.structured);
    };
    let stored = service
        .get_for(&first.approval_id, &agent, false)
        .await
        .unwrap();
    let diff = stored
        .review
        .diff
        .as_ref()
        .map(|d| d.joined())
        .unwrap_or_default();
    assert_eq!(
        diff,
        "ConfigMap/shop/settings: configured\n  ~ /data/mode: \"slow\" -> \"agent-mode\"\nDeployment/shop/web: unchanged\n"
    );
    assert_eq!(live(&kube, cm_path).await.unwrap()["data"]["mode"], "slow");
    // The live object changes: the same call asks for a new approval (the
    // gateway binds an approval to its review).
    let moved = call(
        &admin,
        apply(&changed_text.replace("mode: slow", "mode: moved")),
    )
    .await;
    assert!(!moved.is_error, "{}", moved.structured);
    let again = call(&agent, apply(&agent_change)).await;
    let CallOutcome::Pending(second) = &again.outcome else {
        panic!("expected a pending approval: {}", again.structured);
    };
    assert_ne!(first.approval_id, second.approval_id);
    let stored = service
        .get_for(&second.approval_id, &agent, false)
        .await
        .unwrap();
    let diff = stored
        .review
        .diff
        .as_ref()
        .map(|d| d.joined())
        .unwrap_or_default();
    assert!(
        diff.contains(r#"~ /data/mode: "moved" -> "agent-mode""#),
        "{diff}"
    );
    // A Secret's rotation: the review says that it changes, not to what.
    let paused = call(&agent, apply(&secret_text)).await;
    let CallOutcome::Pending(rot) = &paused.outcome else {
        panic!("expected a pending approval: {}", paused.structured);
    };
    let stored = service
        .get_for(&rot.approval_id, &agent, false)
        .await
        .unwrap();
    let review = serde_json::to_string(&stored.review).unwrap();
    let diff = stored
        .review
        .diff
        .as_ref()
        .map(|d| d.joined())
        .unwrap_or_default();
    assert!(
        diff.starts_with("Secret/shop/db: configured\n  ~ /data/password: "),
        "{diff}"
    );
    for s in [PASSWORD, B64, NEW_PASSWORD, PLAIN_VALUE, PLAIN_B64] {
        assert!(!review.contains(s), "{review}");
    }
    reviews.push(review);
    eprintln!("review diff of a Secret rotation: {diff}");

    // The audit record: the diffs are there, masked; no Secret value and
    // no token anywhere.
    let events: Value = reqwest::Client::new()
        .get(format!("http://{addr}/api/audit?connection=k8s&limit=100"))
        .bearer_auth(&audrey)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let audit = events.to_string();
    assert!(
        audit.contains("/data/mode"),
        "the diff is in the audit record"
    );
    assert!(
        audit.contains(r#"Tollgate::K8sObject::\"k8s//ClusterRoleBinding/helper-view\""#),
        "{audit}"
    );
    // The manifest argument is recorded re-rendered from its objects with
    // Secret values replaced (`Connector::recorded_arguments`): the value
    // under `endpoint:`, which no detector recognises, is not there either.
    assert!(
        audit.contains(r#"\"endpoint\": \"[K8S_SECRET]\""#),
        "the recorded manifest shows the Secret's keys, masked: {audit}"
    );
    for text in seen.iter().chain(&reviews).chain([&audit]) {
        assert!(
            !text.contains(PLAIN_VALUE) && !text.contains(PLAIN_B64),
            "{text}"
        );
    }
    for (what, s) in [
        ("the Secret value", PASSWORD),
        ("its base64", B64),
        ("the new Secret value", NEW_PASSWORD),
        ("the admin token", kube.admin_token()),
    ] {
        assert!(!audit.contains(s), "{what} in the audit record");
        for text in seen.iter().chain(&reviews) {
            assert!(!text.contains(s), "{what} in a result: {text}");
        }
    }
}
