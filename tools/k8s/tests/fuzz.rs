//! Fuzzing of the Kubernetes manifest analyser (`manifest::parse`, `object`,
//! `features`, `review_text`, and `apply::analyse`) on the stable toolchain
//! with proptest: arbitrary text, generated YAML/JSON manifests, and
//! documents 10,000 levels deep, on a thread with a tokio worker's 2 MiB stack.
//!
//! Properties: no panic, no stack overflow; `Ok` or an error with a message;
//! the same manifest analyses the same way twice.
//!
//! Cases per property: `FUZZ_CASES` (default 256). A long run:
//! `FUZZ_CASES=100000 cargo test --release -p tollgate-k8s --test fuzz`.
//! Failures proptest finds are kept in `proptest-regressions/fuzz.txt`.

use gateway_core::test_util::{fuzz_cases, on_worker_stack};
use proptest::prelude::*;
use tollgate_k8s::apply::{ApplyArgs, analyse};
use tollgate_k8s::manifest;

/// Everything the analyser does with a manifest, as text (for determinism).
fn run(text: &str) -> Result<String, String> {
    let args = ApplyArgs {
        connection: "k".into(),
        manifest: text.to_string(),
        namespace: Some("default".into()),
        dry_run: false,
    };
    let mut out = match analyse("k", None, None, args, None) {
        Ok(a) => format!("{:?}", a.plan()),
        Err(e) => e.to_string(),
    };
    let docs = manifest::parse(text).map_err(|e| e.to_string())?;
    for doc in &docs {
        out += &manifest::review_text(&doc.value);
        match manifest::object(doc) {
            Ok(o) => {
                out += &format!("{o:?}");
                if let Ok(f) = manifest::features(&o.group, &o.kind, &doc.value) {
                    out += &manifest::describe(&f);
                }
            }
            Err(e) => out += &e.to_string(),
        }
    }
    Ok(out)
}

fn check(text: &str) {
    let first = run(text);
    assert_eq!(first, run(text), "not deterministic for {text:?}");
    if let Err(e) = first {
        assert!(!e.trim().is_empty(), "empty error for {text:?}");
    }
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "v1",
            "apps/v1",
            "Deployment",
            "Pod",
            "ConfigMap",
            "Secret",
            "ClusterRoleBinding",
            "rbac.authorization.k8s.io/v1",
            "List",
            "web",
            "default",
            "kube-system",
            "true",
            "null",
            "~",
            "1",
            "0x1F",
            "1e3",
            "\"quoted\"",
            "'single'",
            "*",
            "&a",
            "*a",
            "!!str",
            "<<",
            "|",
            ">",
            "-",
            "privileged",
            "hostPath",
            "/",
            "cluster-admin",
        ])
        .prop_map(str::to_string),
        "[a-z0-9.-]{1,12}",
    ]
}

/// A JSON-ish value as flow YAML/JSON text.
fn flow() -> impl Strategy<Value = String> {
    scalar().prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((scalar(), inner), 0..4).prop_map(|kv| format!(
                "{{{}}}",
                kv.into_iter()
                    .map(|(k, v)| format!("\"{k}\": {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ]
    })
}

/// A manifest document in block YAML with a generated spec.
fn document() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            ("v1", "Pod"),
            ("v1", "ConfigMap"),
            ("v1", "Secret"),
            ("apps/v1", "Deployment"),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            ("v1", "List"),
            ("v1", "Namespace"),
        ]),
        "[a-z][a-z0-9-]{0,10}",
        prop::option::of("[a-z][a-z0-9-]{0,10}"),
        flow(),
    )
        .prop_map(|((api, kind), name, ns, spec)| {
            let ns = ns
                .map(|n| format!("  namespace: {n}\n"))
                .unwrap_or_default();
            format!(
                "apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n{ns}spec: {spec}\n"
            )
        })
}

proptest! {
    #![proptest_config(gateway_core::fuzz_config!(fuzz_cases()))]

    #[test]
    fn arbitrary_text(text in "\\PC{0,300}|.{0,300}") {
        check(&text);
    }

    #[test]
    fn yaml_alphabet(text in "[a-z0-9 :\\-\\[\\]{},'\"&*!|>#%@\n]{0,300}") {
        check(&text);
    }

    #[test]
    fn generated_manifests(docs in prop::collection::vec(document(), 1..4)) {
        check(&docs.join("---\n"));
    }

    #[test]
    fn generated_flow(text in flow()) {
        check(&text);
    }
}

/// Manifests 10,000 levels deep (JSON, flow YAML, block YAML lists):
/// refused as too deep (serde_json's recursion limit, serde-saphyr's depth
/// budget), never a stack overflow.
#[test]
fn deep_nesting_10000() {
    let n = 10_000;
    let cases = [
        format!("{}1{}", "[".repeat(n), "]".repeat(n)),
        format!("{}1{}", "{\"a\": ".repeat(n), "}".repeat(n)),
        format!("x: {}1{}", "[".repeat(n), "]".repeat(n)),
        format!("x: {}1{}", "{a: ".repeat(n), "}".repeat(n)),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\ndata: {}1{}",
            "[".repeat(n),
            "]".repeat(n)
        ),
        format!("{}1", "- ".repeat(n)),
    ];
    for text in cases {
        let outcome = on_worker_stack(move || run(&text).map(|_| ()));
        let err = outcome.expect_err("10,000 levels must be refused");
        assert!(
            err.contains("recursion limit") || err.contains("Depth"),
            "the refusal must say the nesting is too deep: {err}"
        );
    }
}
