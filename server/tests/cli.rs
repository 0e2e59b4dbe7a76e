//! The `tollgate` binary's commands, run as a user would: exit codes,
//! `file:line:col` diagnostics, and secrets never echoed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
fn help_on_every_command() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["demo", "--help"],
        vec!["check", "--help"],
        vec!["token", "--help"],
        vec!["policy", "test", "--help"],
        vec!["audit", "verify", "--help"],
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

#[test]
fn audit_commands_on_a_missing_store_fail_clearly() {
    let d = tmp("audit");
    let cfg = config(&d, "");
    let o = run(&["audit", "verify", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("audit store"), "{}", text(&o));
}
