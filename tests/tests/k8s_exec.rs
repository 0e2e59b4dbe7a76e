//! `k8s_logs` and `k8s_exec` through the whole gateway and the real
//! kube-apiserver (tests/src/kube.rs), which proxies them to a fake kubelet
//! (tests/src/kubelet.rs) at the node the pods are bound to: tail and since
//! honoured, the byte cap truncates, log and exec text pass the detectors,
//! stdout/stderr/exit code come back (a non-zero exit is a result), a
//! timeout, the byte cap and the caller's cancellation close the exec
//! stream (the kubelet sees it close), a call refused before policy or by
//! policy never reaches the kubelet, and the connection's token appears in
//! no result, error or audit record.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use gateway_core::Principal;
use gateway_core::approval::CallContext;
use gateway_core::outcome::CallResult;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tollgate_tests::kube::KubeServer;
use tollgate_tests::kubelet::{self, FakeKubelet};
use tollgate_tests::served::{Served, kube_connection, principal};

/// A credential in a log line; the detectors must mask it.
const LOG_SECRET: &str = "Hunter2-log-secret-31";
/// The gateway's byte cap on one result in this test.
const MAX_RESULT_BYTES: usize = 64 * 1024;

const POLICY: &str = r#"
@id("connect")
permit (principal, action == Tollgate::Action::"connect", resource);
@id("agents-logs-shop")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"k8s:logs",
        resource in Tollgate::Namespace::"k8s/shop");
@id("agents-exec-shop")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"k8s:exec",
        resource in Tollgate::Namespace::"k8s/shop");
@id("no-rm")
forbid (principal, action == Tollgate::Action::"k8s:exec", resource)
when { context.argv like "rm *" };
@id("auditors")
permit (principal in Tollgate::Group::"auditors", action == Tollgate::Action::"audit:read", resource == Tollgate::Audit::"log");
"#;

async fn cli(args: &[&str]) -> ExitCode {
    let cli = tollgate_server::cli::Cli::parse_from(args);
    tollgate_server::commands::run(cli)
        .await
        .expect("command runs")
}

/// Wait until the fake has recorded `n` execs and the last one ended.
async fn ended(kubelet: &FakeKubelet, n: usize) -> kubelet::ExecRecord {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let execs = kubelet.execs();
        if execs.len() >= n
            && let Some(e) = execs.get(n - 1).filter(|e| e.ended.is_some())
        {
            return e.clone();
        }
        assert!(Instant::now() < deadline, "exec {n} never ended: {execs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_exec_go_through_the_apiserver_to_the_kubelet() {
    tollgate_server::init_crypto();
    let kube = KubeServer::start().await.expect("kube-apiserver starts");
    eprintln!("kube-apiserver ready in {:?}", kube.start_time);
    let kubelet = FakeKubelet::start(&kube).await.expect("fake kubelet");
    kubelet.register(&kube, "node-1").await.expect("node");
    for ns in ["shop", "other"] {
        kubelet::namespace(&kube, ns).await.unwrap();
        kubelet::pod(&kube, ns, "web", "node-1", &["app"])
            .await
            .unwrap();
    }
    kubelet::pod(&kube, "shop", "multi", "node-1", &["app", "sidecar"])
        .await
        .unwrap();
    for i in 0..5 {
        kubelet.log(
            "shop/web/app",
            Duration::from_secs(3600),
            &format!("old line {i}"),
        );
    }
    for i in 0..3 {
        kubelet.log(
            "shop/web/app",
            Duration::from_secs(5),
            &format!("new line {i}"),
        );
    }
    kubelet.log(
        "shop/web/app",
        Duration::from_secs(1),
        &format!("connecting as app with password={LOG_SECRET} to db"),
    );
    kubelet.log(
        "shop/web/app#previous",
        Duration::from_secs(7200),
        "crashed: out of memory",
    );
    // ~300 KB: past the gateway's 64 KiB cap.
    for i in 0..3000 {
        kubelet.log(
            "shop/multi/sidecar",
            Duration::from_secs(10),
            &format!("{i:06} {}", "x".repeat(93)),
        );
    }

    let served = Served::start(
        "k8s-exec",
        POLICY,
        &format!("max_result_bytes = {MAX_RESULT_BYTES}\n"),
        |dir| {
            format!(
                "[approval]\nwait_seconds = 0\n\n{}",
                kube_connection(
                    &kube,
                    dir,
                    "k8s",
                    "namespaces = [\"shop\"]\ntimeout = \"20s\""
                )
            )
        },
    )
    .await;
    let (addr, gateway) = (served.addr, served.gateway.clone());
    let config_path = served.config_path.clone();
    let audrey = served.token("audrey", &["auditors"]);

    let agent = principal("agent-7", &["agents"]);
    let visitor = principal("vic", &["visitors"]);
    let mut seen: Vec<String> = Vec::new();
    let mut call = async |who: &Principal, tool: &str, args: Value| -> CallResult {
        let r = served.call(who, tool, args).await;
        seen.push(r.structured.to_string());
        r
    };
    let logs = |extra: Value| {
        let mut a = json!({"connection": "k8s", "namespace": "shop", "pod": "web"});
        for (k, v) in extra.as_object().unwrap() {
            a[k] = v.clone();
        }
        a
    };

    // The whole log (one container: none named); the credential in it is
    // masked by the detectors, the rest shown.
    let all = call(&agent, "k8s_logs", logs(json!({}))).await;
    assert!(!all.is_error, "{}", all.structured);
    let text = all.structured["text"].as_str().unwrap();
    assert_eq!(text.lines().count(), 9, "{text}");
    assert!(text.starts_with("old line 0\n"), "{text}");
    assert!(!text.contains(LOG_SECRET), "log secret shown: {text}");
    assert!(text.contains("password=[SECRET]"), "{text}");
    assert_eq!(all.structured["masked"]["SECRET"], 1, "{}", all.structured);
    assert_eq!(all.structured["truncated"], false);

    // tail_lines and since_seconds reach the kubelet and are honoured.
    let t = Instant::now();
    let tail = call(&agent, "k8s_logs", logs(json!({"tail_lines": 2}))).await;
    eprintln!("k8s_logs (tail 2) took {:?}", t.elapsed());
    assert!(!tail.is_error, "{}", tail.structured);
    let text = tail.structured["text"].as_str().unwrap();
    assert_eq!(text.lines().collect::<Vec<_>>()[0], "new line 2", "{text}");
    assert_eq!(text.lines().count(), 2, "{text}");
    let since = call(
        &agent,
        "k8s_logs",
        logs(json!({"since_seconds": 60, "container": "app"})),
    )
    .await;
    assert!(!since.is_error, "{}", since.structured);
    let text = since.structured["text"].as_str().unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.starts_with("new line 0\n") && !text.contains("old line"));
    let requests = kubelet.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("/containerLogs/shop/web/app?") && r.contains("tailLines=2")),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|r| r.contains("sinceSeconds=60")),
        "{requests:?}"
    );

    // `previous`: the last terminated instance's log.
    let prev = call(&agent, "k8s_logs", logs(json!({"previous": true}))).await;
    assert!(!prev.is_error, "{}", prev.structured);
    assert_eq!(prev.structured["text"], "crashed: out of memory\n");

    // The byte cap: 300 KB of log, 64 KiB returned, truncated.
    let big = call(
        &agent,
        "k8s_logs",
        logs(json!({"pod": "multi", "container": "sidecar"})),
    )
    .await;
    assert!(!big.is_error, "{}", big.structured);
    assert_eq!(big.structured["truncated"], true);
    let text = big.structured["text"].as_str().unwrap();
    assert_eq!(text.len(), MAX_RESULT_BYTES, "text of {} bytes", text.len());
    assert!(text.starts_with("000000 xxx"));
    // The cap reached the kubelet too (limitBytes = cap + 1).
    let limit = format!("limitBytes={}", MAX_RESULT_BYTES + 1);
    assert!(
        kubelet.requests().iter().any(|r| r.contains(&limit)),
        "{:?}",
        kubelet.requests()
    );

    // A pod with two containers needs one named: the API server says so.
    let which = call(&agent, "k8s_logs", logs(json!({"pod": "multi"}))).await;
    assert!(which.is_error, "{}", which.structured);
    assert_eq!(which.structured["error"]["code"], "target_error");
    eprintln!("two containers: {}", which.structured["error"]["message"]);

    // Refused before policy, never reaching the kubelet: a namespace
    // outside the connection's list, bad names.
    let before = kubelet.requests().len();
    for (args, want) in [
        (
            logs(json!({"namespace": "other"})),
            "outside the namespaces",
        ),
        (logs(json!({"pod": "../etc"})), "not a valid"),
        (logs(json!({"container": "--all"})), "not a valid"),
    ] {
        let r = call(&agent, "k8s_logs", args.clone()).await;
        assert!(r.is_error, "{args}: {}", r.structured);
        assert_eq!(r.structured["error"]["code"], "invalid_arguments", "{args}");
        assert!(
            r.structured["error"]["message"]
                .as_str()
                .unwrap()
                .contains(want),
            "{args}: {}",
            r.structured
        );
    }
    // Denied by policy (no permit for visitors): nothing reaches it either.
    let denied = call(&visitor, "k8s_logs", logs(json!({}))).await;
    assert_eq!(denied.structured["error"]["code"], "denied");
    assert_eq!(kubelet.requests().len(), before, "the kubelet was reached");

    // Exec: stdout, stderr and the exit code from the status channel.
    let exec = |argv: Value, extra: Value| {
        let mut a = json!({"connection": "k8s", "namespace": "shop", "pod": "web", "argv": argv});
        for (k, v) in extra.as_object().unwrap() {
            a[k] = v.clone();
        }
        a
    };
    let t = Instant::now();
    let echo = call(
        &agent,
        "k8s_exec",
        exec(
            json!(["echo", "hello", "from app"]),
            json!({"container": "app"}),
        ),
    )
    .await;
    eprintln!("k8s_exec (echo) took {:?}", t.elapsed());
    assert!(!echo.is_error, "{}", echo.structured);
    assert_eq!(echo.structured["exit_code"], 0, "{}", echo.structured);
    assert_eq!(echo.structured["stdout"], "hello from app\n");
    assert_eq!(echo.structured["stderr"], "");
    assert_eq!(echo.structured["truncated"], false);
    let first = ended(&kubelet, 1).await;
    assert_eq!(first.argv, ["echo", "hello", "from app"]);
    assert_eq!(first.target, "shop/web/app");
    assert!(!first.closed_early);

    // A non-zero exit is a result, not an error; stderr comes apart.
    let three = call(
        &agent,
        "k8s_exec",
        exec(
            json!(["sh", "-c", "echo out; echo err >&2; exit 3"]),
            json!({}),
        ),
    )
    .await;
    assert!(!three.is_error, "{}", three.structured);
    assert_eq!(three.structured["exit_code"], 3, "{}", three.structured);
    assert_eq!(three.structured["stdout"], "out\n");
    assert_eq!(three.structured["stderr"], "err\n");

    // Exec output passes the detectors.
    let env = call(&agent, "k8s_exec", exec(json!(["env"]), json!({}))).await;
    assert!(!env.is_error, "{}", env.structured);
    let out = env.structured["stdout"].as_str().unwrap();
    let (_, env_secret) = FakeKubelet::ENV[0];
    assert!(!out.contains(env_secret), "env secret shown: {out}");
    assert!(
        out.contains("DB_PASSWORD=[SECRET]") && out.contains("LOG_LEVEL=debug"),
        "{out}"
    );

    // A program that does not exist: the kubelet's message, as an error.
    let missing = call(&agent, "k8s_exec", exec(json!(["nosuchprog"]), json!({}))).await;
    assert!(missing.is_error, "{}", missing.structured);
    assert_eq!(missing.structured["error"]["code"], "target_error");
    assert!(
        missing
            .structured
            .to_string()
            .contains("executable file not found"),
        "{}",
        missing.structured
    );

    // The API server's own refusals come back as target errors.
    for (args, want) in [
        (exec(json!(["id"]), json!({"pod": "ghost"})), "not found"),
        (
            exec(json!(["id"]), json!({"pod": "multi"})),
            "a container name must be specified",
        ),
        (
            exec(json!(["id"]), json!({"container": "nope"})),
            "not valid for pod",
        ),
    ] {
        let r = call(&agent, "k8s_exec", args.clone()).await;
        assert_eq!(
            r.structured["error"]["code"], "target_error",
            "{args}: {}",
            r.structured
        );
        assert!(
            r.structured.to_string().contains(want),
            "{args}: {}",
            r.structured
        );
    }

    // The timeout ends the command: the kubelet saw its stream close
    // about when the budget ran out, long before `sleep 30` would end.
    let n = kubelet.execs().len();
    let started = Instant::now();
    let slow = call(
        &agent,
        "k8s_exec",
        exec(json!(["sleep", "30"]), json!({"timeout_seconds": 1})),
    )
    .await;
    let took = started.elapsed();
    assert!(slow.is_error, "{}", slow.structured);
    assert_eq!(
        slow.structured["error"]["code"], "timeout",
        "{}",
        slow.structured
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let sleep = ended(&kubelet, n + 1).await;
    assert_eq!(sleep.argv, ["sleep", "30"]);
    assert!(sleep.closed_early, "{sleep:?}");
    let ran = sleep.ended.unwrap() - sleep.started;
    assert!(
        ran >= Duration::from_millis(500) && ran < Duration::from_secs(4),
        "the command ran {ran:?}"
    );
    eprintln!("exec timeout: call {took:?}, command ended after {ran:?}");

    // The caller's cancellation ends it the same way.
    let cancel = CancellationToken::new();
    let fire = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        fire.cancel();
    });
    let started = Instant::now();
    let cancelled = gateway
        .call(
            &agent,
            "k8s_exec",
            exec(json!(["sleep", "30"]), json!({})),
            &CallContext {
                wait: Some(Duration::ZERO),
                cancellation: Some(&cancel),
                ..Default::default()
            },
        )
        .await;
    let cancelled_text = cancelled.structured.to_string();
    assert_eq!(
        cancelled.structured["error"]["code"], "cancelled",
        "{}",
        cancelled.structured
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let sleep = ended(&kubelet, n + 2).await;
    assert!(sleep.closed_early, "{sleep:?}");
    assert!(sleep.ended.unwrap() - sleep.started < Duration::from_secs(4));

    // Endless output: cut at the byte cap, the stream closed, no exit code.
    let yes = call(&agent, "k8s_exec", exec(json!(["yes"]), json!({}))).await;
    assert!(!yes.is_error, "{}", yes.structured);
    assert_eq!(yes.structured["truncated"], true);
    assert_eq!(yes.structured["exit_code"], Value::Null);
    assert_eq!(
        yes.structured["stdout"].as_str().unwrap().len(),
        MAX_RESULT_BYTES
    );
    let endless = ended(&kubelet, n + 3).await;
    assert_eq!(endless.argv, ["yes"]);
    assert!(endless.closed_early, "{endless:?}");

    // Refused before policy or by policy: the kubelet never sees it.
    let before = (kubelet.requests().len(), kubelet.execs().len());
    for (who, args, code) in [
        (&agent, exec(json!([]), json!({})), "invalid_arguments"),
        (
            &agent,
            exec(json!(["id"]), json!({"namespace": "other"})),
            "invalid_arguments",
        ),
        (
            &agent,
            exec(json!(["id"]), json!({"pod": "web/../x"})),
            "invalid_arguments",
        ),
        (
            &agent,
            exec(json!(["id"]), json!({"tty": true})),
            "invalid_arguments",
        ),
        (
            &agent,
            exec(json!(["rm", "-rf", "/data"]), json!({})),
            "denied",
        ),
        (&visitor, exec(json!(["id"]), json!({})), "denied"),
    ] {
        let r = call(who, "k8s_exec", args.clone()).await;
        assert!(r.is_error, "{args}: {}", r.structured);
        assert_eq!(
            r.structured["error"]["code"], code,
            "{args}: {}",
            r.structured
        );
    }
    let forbidden = call(
        &agent,
        "k8s_exec",
        exec(json!(["rm", "-rf", "/data"]), json!({})),
    )
    .await;
    assert_eq!(
        forbidden.structured["error"]["policies"],
        json!(["no-rm"]),
        "{}",
        forbidden.structured
    );
    assert_eq!(
        (kubelet.requests().len(), kubelet.execs().len()),
        before,
        "a refused call reached the kubelet"
    );

    // The audit record: the pod's entity, the masked output; no secret,
    // no token anywhere; the chain verifies.
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
        audit.contains("k8s:exec") && audit.contains("k8s:logs"),
        "{audit}"
    );
    assert!(
        audit.contains(r#"Tollgate::K8sObject::\"k8s/shop/Pod/web\""#),
        "{audit}"
    );
    assert!(
        !audit.contains(LOG_SECRET) && !audit.contains(env_secret),
        "a secret in the audit record"
    );
    seen.push(audit);
    seen.push(cancelled_text);
    for text in &seen {
        assert!(
            !text.contains(kube.admin_token()),
            "the admin token leaked: {text}"
        );
        assert!(
            !text.contains(LOG_SECRET) && !text.contains(env_secret),
            "{text}"
        );
    }
    // Nor does the kubelet see it: the API server authenticates it with its
    // own client certificate.
    let heads = kubelet.heads();
    assert!(heads.len() >= 10, "{heads:?}");
    assert!(
        heads.iter().all(|h| !h.contains(kube.admin_token())),
        "the token reached the kubelet"
    );
    let config_arg = config_path.to_str().unwrap();
    assert_eq!(
        cli(&["tollgate", "audit", "verify", "--config", config_arg]).await,
        ExitCode::SUCCESS
    );
}
