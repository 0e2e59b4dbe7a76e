//! The `tollgate` binary's commands, run as a user would: exit codes,
//! `file:line:col` diagnostics, and secrets never echoed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// Anchored audit chain: checkpoints (a folder, so cargo does not build it as a test of its own).
#[path = "cli/checkpoint.rs"]
mod checkpoint;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tollgate-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("policies")).unwrap();
    d
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write(dir: &Path, file: &str, body: &str) -> String {
    let p = dir.join(file);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

const SECRET: &str = "hs-secret-that-must-never-be-printed-42";

fn config(dir: &Path, extra: &str) -> String {
    write(
        dir,
        "tollgate.toml",
        &format!(
            "[auth]\nhs256_secret = \"{SECRET}\"\nissuer = \"t\"\naudience = \"tollgate\"\n[[connection]]\nname = \"shop\"\nkind = \"postgres\"\nurl = \"postgres://u:dbpassword-never-printed@127.0.0.1:1/shop\"\n{extra}"
        ),
    )
}

#[test]
fn version_names_package_commit_and_build_date() {
    for args in [vec!["--version"], vec!["demo", "--version"]] {
        let o = run(&args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        let line = out.trim();
        let want = format!(" {} (commit ", env!("CARGO_PKG_VERSION"));
        assert!(line.starts_with("tollgate"), "{line}");
        assert!(line.contains(&want), "{line}");
        let (_, rest) = line.split_once(", built ").expect(line);
        let date = rest.trim_end_matches(')');
        assert!(
            date.len() == 10 && date.chars().filter(|c| *c == '-').count() == 2,
            "{line}"
        );
        assert!(date.starts_with("20"), "{line}");
    }
}

#[test]
fn top_level_help_speaks_to_users() {
    let o = run(&["--help"]);
    assert!(o.status.success());
    let out = text(&o);
    for want in [
        "AI agents",
        "approval",
        "audit",
        "tollgate demo",
        "tollgate serve --config",
    ] {
        assert!(out.contains(want), "{want} missing from:\n{out}");
    }
    assert!(!out.to_lowercase().contains("crate"), "{out}");
}

#[test]
fn help_on_every_command() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["demo", "--help"],
        vec!["check", "--help"],
        vec!["token", "--help"],
        vec!["policy", "test", "--help"],
        vec!["policy", "schema", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["audit", "replay", "--help"],
        vec!["audit", "checkpoint", "--help"],
        vec!["approvals", "approve", "--help"],
    ] {
        let o = run(&args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("Usage"), "{args:?}");
    }
}

#[test]
fn check_reports_file_line_col_and_exits_1() {
    let d = tmp("check");
    let cfg = config(&d, "max_rowz = 3\n");
    write(
        &d,
        "policies/p.cedar",
        "permit(principal, action, resource);\nforbid(principal, action, resource) when { context.nope };\n",
    );
    let o = run(&["check", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("p.cedar:2:"), "{out}");
    assert!(out.contains("tollgate.toml:"), "{out}");
    assert!(out.contains("max_rowz"), "{out}");
    assert!(
        !out.contains("dbpassword-never-printed") && !out.contains(SECRET),
        "{out}"
    );
}

#[test]
fn check_passes_on_valid_config_and_unknown_top_level_key_fails() {
    let d = tmp("ok");
    let cfg = config(&d, "");
    write(
        &d,
        "policies/p.cedar",
        "permit(principal, action == Tollgate::Action::\"connect\", resource);\n",
    );
    let o = run(&["check", "--config", &cfg]);
    assert!(o.status.success(), "{}", text(&o));
    let bad = write(&d, "bad.toml", "[sever]\nlisten = \"x\"\n");
    let o = run(&["check", "--config", &bad]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("bad.toml:1:2: unknown field `sever`"),
        "{}",
        text(&o)
    );
}

#[test]
fn token_prints_only_a_token() {
    let d = tmp("token");
    let cfg = config(&d, "");
    let o = run(&[
        "token", "--config", &cfg, "--sub", "ann", "--groups", "a,b", "--ttl", "5m",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    assert_eq!(out.trim().split('.').count(), 3, "{out}");
    assert_eq!(out.lines().count(), 1);
    assert!(!text(&o).contains(SECRET));
}

#[test]
fn policy_test_fails_on_a_wrong_expectation() {
    let d = tmp("ptest");
    let cfg = config(&d, "");
    write(
        &d,
        "policies/p.cedar",
        "permit(principal in Tollgate::Group::\"a\", action in [Tollgate::Action::\"connect\", Tollgate::Action::\"sql:select\"], resource);\n",
    );
    std::fs::create_dir_all(d.join("policies/tests")).unwrap();
    let good = r#"{"name": "read", "principal": {"sub": "x", "groups": ["a"]}, "tool": "sql_query", "arguments": {"connection": "shop", "sql": "SELECT * FROM t"}, "expect": "allow"}"#;
    write(&d, "policies/tests/t.jsonl", &format!("{good}\n"));
    let o = run(&["policy", "test", "--config", &cfg]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("1 passed, 0 failed"));
    let wrong = good.replace("SELECT * FROM t", "DELETE FROM t WHERE id = 1");
    write(&d, "policies/tests/t.jsonl", &format!("{good}\n{wrong}\n"));
    let o = run(&["policy", "test", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("1 passed, 1 failed"), "{}", text(&o));
}

/// Every shipped policy file (policies/ and each example's), with its path.
fn shipped_policies() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs = vec![root.join("policies")];
    for example in std::fs::read_dir(root.join("examples")).unwrap() {
        dirs.push(example.unwrap().path().join("policies"));
    }
    let mut out = vec![];
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        for f in std::fs::read_dir(dir).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|x| x == "cedar") {
                let body = std::fs::read_to_string(&p).unwrap();
                out.push((p, body));
            }
        }
    }
    out
}

#[test]
fn policy_schema_prints_cedar_that_validates_the_shipped_policies() {
    let o = run(&["policy", "schema"]);
    assert!(o.status.success(), "{}", text(&o));
    let printed = String::from_utf8(o.stdout.clone()).unwrap();
    for name in [
        "namespace Tollgate",
        "entity Table in [Connection]",
        r#"action "sql:select""#,
        r#"action "unmask""#,
        r#"action "audit:read""#,
    ] {
        assert!(printed.contains(name), "{name} missing:\n{printed}");
    }
    let (schema, _) = cedar_policy::Schema::from_cedarschema_str(&printed).unwrap();
    let shipped = shipped_policies();
    assert!(shipped.len() >= 4, "{shipped:?}");
    for (path, body) in &shipped {
        let set: cedar_policy::PolicySet = body.parse().unwrap();
        let result = cedar_policy::Validator::new(schema.clone())
            .validate(&set, cedar_policy::ValidationMode::Strict);
        assert!(
            result.validation_passed(),
            "{}: {:?}",
            path.display(),
            result.validation_errors().collect::<Vec<_>>()
        );
    }
    // Shipped as the cedar CLI reads it, a policy naming what no fragment
    // declares fails validation.
    let set: cedar_policy::PolicySet =
        r#"permit(principal, action == Tollgate::Action::"sql:truncate", resource);"#
            .parse()
            .unwrap();
    let result = cedar_policy::Validator::new(schema.clone())
        .validate(&set, cedar_policy::ValidationMode::Strict);
    assert!(!result.validation_passed());

    // With a config: the same schema, once the config loads.
    let d = tmp("schema");
    let cfg = config(&d, "");
    let o = run(&["policy", "schema", "--config", &cfg]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8(o.stdout.clone()).unwrap(), printed);
    let bad = write(&d, "bad.toml", "[sever]\nlisten = \"x\"\n");
    let o = run(&["policy", "schema", "--config", &bad]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(o.stdout.is_empty(), "{}", text(&o));
    assert!(
        text(&o).contains("bad.toml:1:2: unknown field `sever`"),
        "{}",
        text(&o)
    );
}

/// A raw case names its resource's parent chain (`parent`) or only its
/// connection (`connection`); both reach the same policy.
#[test]
fn policy_test_raw_cases_take_a_parent_chain() {
    let d = tmp("parent");
    let cfg = config(&d, "");
    write(
        &d,
        "policies/p.cedar",
        "permit(principal, action == Tollgate::Action::\"sql:select\", resource in Tollgate::Connection::\"shop\");\n",
    );
    std::fs::create_dir_all(d.join("policies/tests")).unwrap();
    let ctx = r#""context": {"statement": "SELECT 1 FROM t", "has_where": false, "tables": ["public.t"], "functions": [], "columns": []}"#;
    let case = |name: &str, resource: &str, expect: &str| {
        format!(
            r#"{{"name": "{name}", "principal": {{"sub": "x", "groups": []}}, "action": "sql:select", "resource": {resource}, {ctx}, "expect": "{expect}"}}"#
        )
    };
    let cases = [
        case(
            "parent",
            r#"{"kind": "Table", "id": "shop/public.t", "parent": {"kind": "Connection", "id": "shop"}}"#,
            "allow",
        ),
        case(
            "shorthand",
            r#"{"kind": "Table", "id": "shop/public.t", "connection": "shop"}"#,
            "allow",
        ),
        case(
            "other connection",
            r#"{"kind": "Table", "id": "crm/public.t", "parent": {"kind": "Connection", "id": "crm"}}"#,
            "deny",
        ),
    ];
    write(&d, "policies/tests/t.jsonl", &(cases.join("\n") + "\n"));
    let o = run(&["policy", "test", "--config", &cfg]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("3 passed, 0 failed"), "{}", text(&o));
}

#[test]
fn policy_test_case_errors_give_one_position_and_a_clean_path() {
    let d = tmp("ptest-errors");
    let cfg = config(&d, "");
    write(
        &d,
        "policies/p.cedar",
        "permit(principal, action, resource);\n",
    );
    std::fs::create_dir_all(d.join("policies/tests")).unwrap();
    let good = r#"{"name": "read", "principal": {"sub": "x", "groups": ["a"]}, "tool": "sql_query", "arguments": {"connection": "shop", "sql": "SELECT 1"}, "expect": "allow"}"#;
    let bad = r#"{"name": "typo", "principal": {"sub": "x", "groups": []}, "expekt": "allow"}"#;
    write(&d, "policies/tests/t.jsonl", &format!("{good}\n{bad}\n"));
    // A path with `.` and `..` in it, as a user may type it.
    let messy = d.join("policies/./tests/../tests/t.jsonl");
    let o = run(&["policy", "test", "--config", &cfg, messy.to_str().unwrap()]);
    let out = text(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    let clean = d.join("policies/tests/t.jsonl").display().to_string();
    let line = out
        .lines()
        .find(|l| l.contains("expekt"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains(&format!("{clean}:2:")), "{line}");
    assert!(!line.contains(" at line "), "position given twice: {line}");
    assert!(!line.contains("/./") && !line.contains("/../"), "{line}");
    // A missing case folder is named, not a bare OS error.
    let o = run(&[
        "policy",
        "test",
        "--config",
        &cfg,
        d.join("nope/../missing").to_str().unwrap(),
    ]);
    let out = text(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains(&format!("{}: no such file", d.join("missing").display())),
        "{out}"
    );
}

/// `tollgate demo` ships policy test cases: `policy test` on its data dir
/// passes with real cases (allow, deny, approval with the 10-row cap).
#[test]
fn demo_policy_tests_pass() {
    use std::io::{BufRead, BufReader};
    let d = tmp("demo-ptest");
    let data = d.join("data");
    let mut child = bin()
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("Press Ctrl-C") {
                let _ = tx.send(());
            }
        }
    });
    let started = rx.recv_timeout(std::time::Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    started.expect("demo did not start");
    let cfg = data.join("tollgate.toml");
    let o = run(&["policy", "test", "--config", cfg.to_str().unwrap()]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let summary = out.lines().find(|l| l.ends_with(" failed")).unwrap();
    let passed: u32 = summary.split(' ').next().unwrap().parse().unwrap();
    assert!(passed >= 10 && summary.ends_with(" 0 failed"), "{out}");
    for want in ["(allow)", "(deny)", "(approval)"] {
        assert!(out.contains(want), "{want}: {out}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn audit_commands_on_a_missing_store_fail_clearly() {
    let d = tmp("audit");
    let cfg = config(&d, "");
    let o = run(&["audit", "verify", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("audit store"), "{}", text(&o));
}

/// A name that forges a line and carries terminal escapes and bidi controls.
const FORGED: &str =
    "eve\n     9  2026-01-01T00:00:00Z  evt_fake  allow    admin\x1b[2J\u{9b}31m\u{202e}";

/// No raw control or bidi character on a terminal: every output line is
/// plain, and the forged newline did not make a line of its own.
fn assert_terminal_safe(out: &str, lines: usize) {
    assert!(
        !out.chars()
            .any(|c| c != '\n' && (c.is_control() || c == '\u{202e}')),
        "raw control characters printed: {out:?}"
    );
    assert_eq!(out.lines().count(), lines, "{out}");
}

#[test]
fn audit_list_and_show_escape_stored_control_characters() {
    use gateway_core::Principal;
    use gateway_core::mask::Masker;
    use gateway_core::record::Trace;
    let d = tmp("audit-escape");
    let cfg = config(&d, "");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(async {
        let store = tollgate_server::store::open_store(&d.join("tollgate-data"))
            .await
            .unwrap();
        let who = Principal {
            sub: FORGED.into(),
            groups: vec![],
        };
        let trace = Trace::start(
            &who,
            "sql_query",
            &serde_json::json!({"sql": FORGED}),
            &Masker::default(),
        );
        let record = trace.finish("deny", "denied", None, None, serde_json::Value::Null);
        store.append(record).await.unwrap().id
    });
    let o = run(&["audit", "list", "--config", &cfg]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_terminal_safe(&out, 2);
    assert!(out.contains("eve\\u{a}"), "escaped, still readable: {out}");
    let o = run(&["audit", "show", &id, "--config", &cfg]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_terminal_safe(&out, out.lines().count());
    let back: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(back["principal"]["sub"], FORGED, "same value once parsed");
    let o = run(&["audit", "export", "--config", &cfg]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_terminal_safe(&out, 1);
}

#[test]
fn approvals_list_and_show_escape_what_the_server_sends() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let approval = serde_json::json!({"id": "apr_1\u{1b}[31m", "state": "pending",
        "requester": {"sub": FORGED}, "connection": "shop", "summary_text": FORGED});
    let list = serde_json::json!({"approvals": [approval.clone()]});
    let app = axum::Router::new()
        .route(
            "/api/approvals",
            axum::routing::get(move || async move { axum::Json(list) }),
        )
        .route(
            "/api/approvals/{id}",
            axum::routing::get(move || async move { axum::Json(approval) }),
        );
    rt.spawn(async move { axum::serve(listener, app).await });
    let o = run(&["approvals", "list", "--server", &base, "--token", "t"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_terminal_safe(&String::from_utf8_lossy(&o.stdout), 1);
    let o = run(&[
        "approvals",
        "show",
        "apr_1",
        "--server",
        &base,
        "--token",
        "t",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_terminal_safe(&out, out.lines().count());
    let back: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(back["requester"]["sub"], FORGED);
}

/// One recorded call: `(principal, tool, arguments, decision, outcome, rows)`.
type Call<'a> = (
    &'a str,
    &'a str,
    serde_json::Value,
    &'a str,
    &'a str,
    Option<u64>,
);

/// Record calls in a fresh store under `dir`, oldest first.
fn record_events(dir: &Path, calls: &[Call<'_>]) {
    use gateway_core::Principal;
    use gateway_core::mask::Masker;
    use gateway_core::record::Trace;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = tollgate_server::store::open_store(&dir.join("tollgate-data"))
            .await
            .unwrap();
        for (sub, tool, args, decision, status, rows) in calls {
            let who = Principal {
                sub: (*sub).into(),
                groups: vec![],
            };
            let trace = Trace::start(&who, tool, args, &Masker::default());
            let record = trace.finish(decision, status, *rows, None, serde_json::Value::Null);
            store.append(record).await.unwrap();
        }
    });
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn audit_list_has_a_header_outcome_rows_and_a_one_line_statement() {
    let d = tmp("audit-list");
    let cfg = config(&d, "");
    let long = format!(
        "SELECT id,\n       name\nFROM customers WHERE note = '{}'",
        "x".repeat(200)
    );
    record_events(
        &d,
        &[
            (
                "ann",
                "sql_query",
                serde_json::json!({"connection": "shop", "sql": long}),
                "allow",
                "ok",
                Some(3),
            ),
            (
                "bob",
                "sql_query",
                serde_json::json!({"connection": "shop", "sql": "DELETE FROM t"}),
                "deny",
                "denied",
                None,
            ),
            (
                "cat",
                "list_connections",
                serde_json::json!({}),
                "error",
                "error",
                None,
            ),
        ],
    );
    let o = run(&["audit", "list", "--config", &cfg]);
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "header + 3 events: {out}");
    for col in [
        "SEQ",
        "TIME",
        "PRINCIPAL",
        "TOOL",
        "CONNECTION",
        "DECISION",
        "OUTCOME",
        "ROWS",
        "SUMMARY",
    ] {
        assert!(lines[0].contains(col), "header lacks {col}: {out}");
    }
    // Newest first: cat, bob, ann.
    let ann = lines[3];
    for want in [
        "ann",
        "sql_query",
        "shop",
        "allow",
        "ok",
        " 3 ",
        "SELECT id, name FROM customers WHERE",
    ] {
        assert!(ann.contains(want), "{want:?} missing in {ann:?}");
    }
    assert!(
        ann.ends_with('…') && ann.chars().count() < 200,
        "statement cut: {ann}"
    );
    assert!(
        lines[2].contains("deny")
            && lines[2].contains("denied")
            && lines[2].contains("DELETE FROM t"),
        "{out}"
    );
    assert!(
        lines[1].contains("list_connections") && lines[1].contains("error"),
        "{out}"
    );
    assert!(ann.trim_start().starts_with('1'), "seq first: {ann}");
}

#[test]
fn audit_show_takes_the_seq_that_list_prints() {
    let d = tmp("audit-seq");
    let cfg = config(&d, "");
    record_events(
        &d,
        &[
            (
                "ann",
                "sql_query",
                serde_json::json!({"sql": "SELECT 1"}),
                "allow",
                "ok",
                Some(1),
            ),
            (
                "bob",
                "sql_query",
                serde_json::json!({"sql": "SELECT 2"}),
                "allow",
                "ok",
                Some(1),
            ),
        ],
    );
    let list = stdout(&run(&["audit", "list", "--config", &cfg]));
    let seq = list
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let o = run(&["audit", "show", &seq, "--config", &cfg]);
    assert!(o.status.success(), "{}", text(&o));
    let event: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(event["seq"].to_string(), seq);
    assert_eq!(event["principal"]["sub"], "bob", "the newest line is bob's");
    let id = event["id"].as_str().unwrap().to_string();
    let by_id: serde_json::Value =
        serde_json::from_str(&stdout(&run(&["audit", "show", &id, "--config", &cfg]))).unwrap();
    assert_eq!(by_id, event, "seq and id find the same event");
    let o = run(&["audit", "show", "999", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no audit event 999"), "{}", text(&o));
}

#[test]
fn audit_list_decision_accepts_result_words_and_refuses_unknown_ones() {
    let d = tmp("audit-decision");
    let cfg = config(&d, "");
    record_events(
        &d,
        &[
            (
                "ann",
                "sql_query",
                serde_json::json!({"sql": "SELECT 1"}),
                "allow",
                "ok",
                Some(1),
            ),
            (
                "bob",
                "sql_query",
                serde_json::json!({"sql": "DROP TABLE t"}),
                "deny",
                "denied",
                None,
            ),
        ],
    );
    for word in ["deny", "denied", "DENIED"] {
        let o = run(&["audit", "list", "--config", &cfg, "--decision", word]);
        assert!(o.status.success(), "{word}: {}", text(&o));
        let out = stdout(&o);
        assert_eq!(out.lines().count(), 2, "{word}: header + bob: {out}");
        assert!(out.contains("bob") && !out.contains("ann"), "{word}: {out}");
    }
    let out = stdout(&run(&[
        "audit",
        "list",
        "--config",
        &cfg,
        "--decision",
        "allowed",
    ]));
    assert!(out.contains("ann") && !out.contains("bob"), "{out}");
    let out = stdout(&run(&[
        "audit",
        "list",
        "--config",
        &cfg,
        "--decision",
        "pending",
    ]));
    assert_eq!(out.trim(), "no audit events match");
    let o = run(&["audit", "list", "--config", &cfg, "--decision", "refused"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for valid in ["allow", "deny", "pending", "error"] {
        assert!(err.contains(valid), "lists {valid}: {err}");
    }
}

#[test]
fn audit_list_into_a_closed_pipe_ends_quietly() {
    let d = tmp("audit-pipe");
    let cfg = config(&d, "");
    let calls: Vec<_> = (0..20)
        .map(|i| {
            (
                "ann",
                "sql_query",
                serde_json::json!({"sql": format!("SELECT {i}")}),
                "allow",
                "ok",
                Some(1),
            )
        })
        .collect();
    record_events(&d, &calls);
    let mut child = bin()
        .args(["audit", "list", "--config", &cfg])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the command writes (it opens the store first).
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "exit {:?}: {err}", o.status.code());
    assert!(!err.to_lowercase().contains("broken pipe"), "{err}");
}

/// A stub REST server: `GET /api/approvals` answers an empty list, approve
/// answers an approval fully approved by bob, deny a denied one.
fn stub_reviewer_server(rt: &tokio::runtime::Runtime) -> String {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let approval = |state: &str| {
        serde_json::json!({"id": "apr_7", "state": state, "requester": {"sub": "ann"},
            "connection": "shop", "approvers": ["bob"],
            "required": [{"group": "dba", "count": 1, "policies": ["p"]}]})
    };
    let (approved, denied) = (approval("approved"), approval("denied"));
    let app = axum::Router::new()
        .route(
            "/api/approvals",
            axum::routing::get(|| async { axum::Json(serde_json::json!({"approvals": []})) }),
        )
        .route(
            "/api/approvals/{id}/approve",
            axum::routing::post(move || async move { axum::Json(approved) }),
        )
        .route(
            "/api/approvals/{id}/deny",
            axum::routing::post(move || async move { axum::Json(denied) }),
        )
        .route(
            "/api/approvals/{id}",
            axum::routing::get(|| async {
                let body = serde_json::json!({"error": "Not Found", "message": "no approval apr_gone\u{1b}[2J"});
                (axum::http::StatusCode::NOT_FOUND, axum::Json(body))
            }),
        );
    rt.spawn(async move { axum::serve(listener, app).await });
    base
}

#[test]
fn approvals_approve_says_what_happened_and_json_on_request() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = stub_reviewer_server(&rt);
    let o = run(&[
        "approvals",
        "approve",
        "apr_7",
        "--server",
        &base,
        "--token",
        "t",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        stdout(&o).trim(),
        "approved apr_7 (1 of 1 approvals; the call runs when the agent's waiting call or approval_wait picks it up)"
    );
    let o = run(&[
        "approvals",
        "approve",
        "apr_7",
        "--server",
        &base,
        "--token",
        "t",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["state"], "approved");
    let o = run(&[
        "approvals",
        "deny",
        "apr_7",
        "--server",
        &base,
        "--token",
        "t",
        "--reason",
        "no",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).starts_with("denied apr_7"), "{}", text(&o));
    // A refusal is the server's message on stderr (escaped), exit 1.
    let o = run(&[
        "approvals",
        "show",
        "apr_gone",
        "--server",
        &base,
        "--token",
        "t",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(stdout(&o), "");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("404") && err.contains("no approval apr_gone\\u{1b}[2J"),
        "{err}"
    );
}

#[test]
fn approvals_list_says_when_nothing_is_pending() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = stub_reviewer_server(&rt);
    let o = run(&["approvals", "list", "--server", &base, "--token", "t"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o).trim(), "no pending approvals");
    let o = run(&[
        "approvals",
        "list",
        "--server",
        &base,
        "--token",
        "t",
        "--state",
        "all",
    ]);
    assert_eq!(stdout(&o).trim(), "no approvals");
}

#[test]
fn approvals_server_defaults_to_the_config_and_is_required_otherwise() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = stub_reviewer_server(&rt);
    let d = tmp("approvals-config");
    let cfg = config(&d, &format!("[server]\npublic_url = \"{base}\"\n"));
    let o = bin()
        .args(["approvals", "list", "--config", &cfg, "--token", "t"])
        .env_remove("TOLLGATE_SERVER")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o).trim(), "no pending approvals");
    // No public_url: the listen address (its unspecified IP reached on loopback).
    let port = base.rsplit(':').next().unwrap();
    let cfg = config(&d, &format!("[server]\nlisten = \"0.0.0.0:{port}\"\n"));
    let o = bin()
        .args(["approvals", "list", "--config", &cfg, "--token", "t"])
        .env_remove("TOLLGATE_SERVER")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o).trim(), "no pending approvals");
    let o = bin()
        .args(["approvals", "list", "--token", "t"])
        .env_remove("TOLLGATE_SERVER")
        .env_remove("TOLLGATE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--server") && err.contains("--config"),
        "{err}"
    );
}

/// Edit the embedded database under `dir` as someone with shell access would.
fn tamper(dir: &Path, sql: &str, body: Option<&[u8]>) {
    use sqlx::ConnectOptions;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.join("tollgate-data").join("tollgate.db"))
            .connect()
            .await
            .unwrap();
        let query = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
        let query = match body {
            Some(b) => query.bind(b.to_vec()),
            None => query,
        };
        query.execute(&mut conn).await.unwrap();
    });
}

#[test]
fn audit_replay_writes_the_recording_only_when_it_is_intact() {
    use gateway_core::Principal;
    use gateway_core::connector::FieldPath;
    use gateway_core::mask::Masker;
    use gateway_core::record::Trace;
    use gateway_core::recording::{RecordedOutput, Recording, RenderedRecording};
    let d = tmp("audit-replay");
    let cfg = config(&d, "");
    let output = |ms: u64, text: &str| RecordedOutput {
        at: std::time::Duration::from_millis(ms),
        field: FieldPath::new(["stdout"]),
        text: text.into(),
    };
    // A C1 control in the output: piped, the file comes out byte for byte.
    let recording = RenderedRecording::new(&Recording {
        width: 100,
        height: 30,
        timestamp: 1_765_000_000,
        command: "systemctl status web".into(),
        title: "ssh web-1".into(),
        events: vec![
            output(5, "web.service: active\n"),
            output(40, "\u{9b}31mred\u{9b}0m [EMAIL]\n"),
        ],
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (with, without) = rt.block_on(async {
        let store = tollgate_server::store::open_store(&d.join("tollgate-data"))
            .await
            .unwrap();
        let who = Principal {
            sub: "ann".into(),
            groups: vec![],
        };
        let args = serde_json::json!({"connection": "web-1", "command": "systemctl status web"});
        let trace = Trace::start(&who, "sql_query", &args, &Masker::default());
        let plain = trace.finish("allow", "ok", Some(1), None, serde_json::Value::Null);
        let without = store.append(plain).await.unwrap();
        store.put_recording(&recording).await.unwrap();
        let trace = Trace::start(&who, "ssh_exec", &args, &Masker::default());
        let mut record = trace.finish("allow", "ok", None, None, serde_json::Value::Null);
        record.recording = Some(recording.reference.clone());
        (store.append(record).await.unwrap(), without)
    });
    drop(rt);

    for key in [with.id.clone(), with.seq.to_string()] {
        let o = run(&["audit", "replay", &key, "--config", &cfg]);
        assert!(o.status.success(), "{key}: {}", text(&o));
        assert_eq!(o.stdout, recording.body, "{key}: the stored file, exactly");
    }
    let header: serde_json::Value = serde_json::from_str(
        stdout(&run(&["audit", "replay", &with.id, "--config", &cfg]))
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["version"], 2);

    let o = run(&[
        "audit",
        "replay",
        &without.seq.to_string(),
        "--config",
        &cfg,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(o.stdout.is_empty());
    assert!(text(&o).contains("has no recording"), "{}", text(&o));
    let o = run(&["audit", "replay", "999", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no audit event 999"), "{}", text(&o));

    // Edited in the database: refused, nothing written, verify fails.
    let forged = String::from_utf8(recording.body.clone())
        .unwrap()
        .replace("[EMAIL]", "bob@x.io")
        .into_bytes();
    tamper(&d, "UPDATE recordings SET body = ?", Some(&forged));
    let o = run(&["audit", "replay", &with.id, "--config", &cfg]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(o.stdout.is_empty(), "nothing of a tampered file is written");
    let err = text(&o);
    assert!(
        err.contains(&format!(
            "its recording {} was modified",
            recording.reference.sha256
        )) && err.contains("audit verify"),
        "{err}"
    );
    let o = run(&["audit", "verify", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("seq {} (id {})", with.seq, with.id))
            && text(&o).contains("recording"),
        "{}",
        text(&o)
    );

    tamper(&d, "DELETE FROM recordings", None);
    let o = run(&["audit", "replay", &with.id, "--config", &cfg]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(o.stdout.is_empty());
    assert!(
        text(&o).contains("is missing from the store"),
        "{}",
        text(&o)
    );
    let _ = std::fs::remove_dir_all(&d);
}
