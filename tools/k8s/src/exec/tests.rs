//! Analysis of `k8s_exec` (argv quoting, refusals before policy), the exit
//! code read from the status channel, and the output cap.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::*;
use crate::pod::context_string;

fn plan(v: Value) -> Result<Plan, AnalysisError> {
    let ns: BTreeSet<String> = ["shop".to_string(), "web".to_string()].into();
    let mut full =
        json!({"connection": "c", "namespace": "shop", "pod": "web-1", "argv": ["true"]});
    for (k, x) in v.as_object().unwrap() {
        full[k] = x.clone();
    }
    analyse("c", Some(&ns), crate::tools::parse(&full)?, |p| Box::new(p))
}

#[test]
fn the_argv_is_shell_quoted_into_the_context() {
    for (argv, line) in [
        (json!(["ls", "-la", "/tmp"]), "ls -la /tmp"),
        (json!(["sh", "-c", "exit 3"]), "sh -c 'exit 3'"),
        (
            json!(["echo", "it's", "$HOME", ""]),
            r#"echo 'it'\''s' '$HOME' ''"#,
        ),
        (json!(["printf", "a;b|c"]), "printf 'a;b|c'"),
    ] {
        let p = plan(json!({"argv": argv})).unwrap();
        assert_eq!(p.requests.len(), 1);
        let r = &p.requests[0];
        assert_eq!(r.action, "k8s:exec");
        assert_eq!(
            r.resource.entity_uid(),
            r#"Tollgate::K8sObject::"c/shop/Pod/web-1""#
        );
        assert_eq!(context_string(r, "argv").as_deref(), Some(line), "{argv}");
        assert_eq!(context_string(r, "name").as_deref(), Some("web-1"));
        assert_eq!(context_string(r, "namespace").as_deref(), Some("shop"));
        // The quoted line splits back into the same words.
        assert_eq!(
            shell_words::split(line).unwrap(),
            serde_json::from_value::<Vec<String>>(argv).unwrap()
        );
        assert!(!p.read_only);
        assert!(p.review.title.contains(line), "{}", p.review.title);
    }
}

#[test]
fn bad_calls_are_refused_before_policy() {
    for (v, want) in [
        (json!({"argv": []}), "`argv` is empty"),
        (json!({"argv": [""]}), "the program) is empty"),
        (json!({"argv": ["a\u{0}b"]}), "NUL"),
        (json!({"argv": vec!["x"; MAX_ARGV_WORDS + 1]}), "words"),
        (
            json!({"argv": ["echo", "x".repeat(MAX_ARGV_BYTES)]}),
            "bytes",
        ),
        (json!({"argv": "ls -la"}), "invalid"),
        (json!({"namespace": "other"}), "outside the namespaces"),
        (json!({"namespace": "Shop"}), "not a valid"),
        (json!({"pod": "../etc"}), "`pod` is not a valid"),
        (json!({"pod": "a/b"}), "`pod` is not a valid"),
        (json!({"container": "--privileged"}), "`container` is not"),
        (json!({"container": "a/b"}), "`container` is not"),
        (json!({"timeout_seconds": 0}), "timeout_seconds"),
        (
            json!({"timeout_seconds": MAX_TIMEOUT_SECONDS + 1}),
            "timeout_seconds",
        ),
        (json!({"tty": true}), "unknown field"),
        (json!({"stdin": "x"}), "unknown field"),
    ] {
        let e = plan(v.clone()).unwrap_err().to_string();
        assert!(e.contains(want), "{v}: {e}");
    }
    // Any namespace when the connection lists none.
    let args = json!({"connection": "c", "namespace": "other", "pod": "p", "argv": ["id"]});
    assert!(
        analyse(
            "c",
            None,
            crate::tools::parse(&args).unwrap(),
            |p| Box::new(p)
        )
        .is_ok()
    );
}

fn status(v: Value) -> Status {
    serde_json::from_value(v).unwrap()
}

#[test]
fn the_exit_code_comes_from_the_status_channel() {
    assert_eq!(
        exit_code(&status(json!({"metadata": {}, "status": "Success"}))),
        Ok(0)
    );
    let failed = status(json!({"metadata": {}, "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}));
    assert_eq!(exit_code(&failed), Ok(3));
    let no_cause =
        status(json!({"status": "Failure", "reason": "NonZeroExitCode", "message": "m"}));
    assert!(
        exit_code(&no_cause)
            .unwrap_err()
            .contains("without a readable exit code")
    );
    let internal = status(json!({"status": "Failure", "reason": "InternalError",
        "message": "executable file not found in $PATH"}));
    assert!(exit_code(&internal).unwrap_err().contains("not found"));
}

#[tokio::test]
async fn output_stops_at_the_cap() {
    let out = vec![b'o'; 5000];
    let err = vec![b'e'; 5000];
    let (o, e, t) = read_both(&out[..], &err[..], 20_000).await.unwrap();
    assert_eq!((o.len(), e.len(), t), (5000, 5000, false));
    let (o, e, t) = read_both(&out[..], &err[..], 7000).await.unwrap();
    assert!(t);
    assert_eq!(o.len() + e.len(), 7000);
    assert!(o.iter().all(|&b| b == b'o') && e.iter().all(|&b| b == b'e'));
    let (o, e, t) = read_both(&out[..], &b""[..], 5000).await.unwrap();
    assert_eq!((o.len(), e.len(), t), (5000, 0, false));
}
