//! Fuzzing of the shell command analyser (`command::invocation`, `analyse`,
//! `remote_command`) on the stable toolchain with proptest: arbitrary text,
//! generated shell (wrappers, quoting, substitutions, operators) and 10,000
//! levels of nesting, on a thread with a tokio worker's 2 MiB stack.
//!
//! Properties: no panic, no stack overflow; `Ok` or an error with a message;
//! the same input analyses the same way twice.
//!
//! Cases per property: `FUZZ_CASES` (default 256). A long run:
//! `FUZZ_CASES=100000 cargo test --release -p tollgate-ssh --test fuzz`.
//! Failures proptest finds are kept in `proptest-regressions/fuzz.txt`.

use gateway_core::test_util::{fuzz_cases, on_worker_stack};
use proptest::prelude::*;
use tollgate_ssh::command::{analyse, invocation, remote_command};

/// Analyse a command text or an argv; check determinism.
fn check(command: Option<String>, argv: Option<Vec<String>>) {
    let run = |command: Option<String>, argv: Option<Vec<String>>| -> Result<String, String> {
        let inv = invocation(argv, command).map_err(|e| e.to_string())?;
        let line = remote_command(&inv);
        let facts = analyse(&inv).map_err(|e| e.to_string())?;
        Ok(format!("{line}\n{facts:?}"))
    };
    let first = run(command.clone(), argv.clone());
    let second = run(command.clone(), argv);
    assert_eq!(first, second, "not deterministic for {command:?}");
    if let Err(e) = &first {
        assert!(!e.trim().is_empty(), "empty error for {command:?}");
    }
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "ls",
            "-la",
            "/var/log",
            "cat",
            "sudo",
            "-u",
            "root",
            "env",
            "A=1",
            "xargs",
            "find",
            ".",
            "-exec",
            "rm",
            "{}",
            ";",
            "\\;",
            "sh",
            "-c",
            "bash",
            "python3",
            "-e",
            "sed",
            "s/a/b/e",
            "awk",
            "perl",
            "nohup",
            "timeout",
            "5",
            "nice",
            "strace",
            "tee",
            "--",
            "kubectl",
            "systemctl",
            "restart",
            "nginx",
            "journalctl",
            "-f",
            "tail",
            "grep",
            "$HOME",
            "${x}",
            "~",
            "*",
            "?",
            "[a]",
            "!",
            "#",
            "\\",
            "\"",
            "'",
            "`",
        ])
        .prop_map(str::to_string),
        "[a-zA-Z0-9_./=-]{1,10}",
        "'[^']{0,8}'",
        "\"[^\"\\\\]{0,8}\"",
    ]
}

fn shell() -> impl Strategy<Value = String> {
    let simple = prop::collection::vec(word(), 1..5).prop_map(|w| w.join(" "));
    simple.prop_recursive(4, 32, 3, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(vec![";", "&&", "||", "|", "&", "\n"]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            inner.clone().prop_map(|a| format!("$({a})")),
            inner.clone().prop_map(|a| format!("`{a}`")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("{{ {a}; }}")),
            inner
                .clone()
                .prop_map(|a| format!("sh -c '{}'", a.replace('\'', "'\\''"))),
            inner
                .clone()
                .prop_map(|a| format!("sudo -u root bash -c \"{}\"", a.replace('"', "\\\""))),
            inner
                .clone()
                .prop_map(|a| format!("echo x > /tmp/f; {a} 2>&1 < /dev/null")),
            inner.clone().prop_map(|a| format!("if true; then {a}; fi")),
            inner
                .clone()
                .prop_map(|a| format!("for i in 1 2; do {a}; done")),
            inner.prop_map(|a| format!("cat <<EOF\n{a}\nEOF")),
        ]
    })
}

proptest! {
    #![proptest_config(gateway_core::fuzz_config!(fuzz_cases()))]

    #[test]
    fn arbitrary_text(text in "\\PC{0,200}|.{0,200}") {
        check(Some(text), None);
    }

    #[test]
    fn shell_alphabet(text in "[a-z0-9 |&;<>()$`'\"\\\\{}\\[\\]*?!#=~\n-]{0,200}") {
        check(Some(text), None);
    }

    #[test]
    fn generated_shell(text in shell()) {
        check(Some(text), None);
    }

    #[test]
    fn arbitrary_argv(argv in prop::collection::vec(prop_oneof![word(), "\\PC{0,20}", shell()], 0..8)) {
        check(None, Some(argv));
    }
}

/// 10,000 levels of every nesting shell has: refused (or analysed), never
/// a crash.
#[test]
fn deep_nesting_10000() {
    let n = 10_000;
    let cases = [
        format!("{}ls{}", "$(".repeat(n), ")".repeat(n)),
        format!("{}ls{}", "(".repeat(n), ")".repeat(n)),
        format!("{}ls{}", "{ ".repeat(n), "; }".repeat(n)),
        format!("{}ls", "sudo ".repeat(n)),
        format!("{}ls", "env A=1 ".repeat(n)),
        format!("{}ls", "sh -c ".repeat(n)),
        format!("{}ls{}", "sh -c '".repeat(50), "'".repeat(50)),
        format!("{}ls{}", "if true; then ".repeat(n), "; fi".repeat(n)),
        format!("ls{}", " | cat".repeat(n)),
        format!("ls{}", " && ls".repeat(n)),
        format!("{}ls{}", "\"$(".repeat(n), ")\"".repeat(n)),
        format!("{}ls", "`".repeat(n)),
        format!("echo {}x{}", "${a:-".repeat(n), "}".repeat(n)),
        format!("echo {}1{}", "$((".repeat(n), "))".repeat(n)),
    ];
    for text in cases {
        on_worker_stack(move || check(Some(text), None));
    }
    let argv: Vec<String> = std::iter::repeat_n("sudo".to_string(), n)
        .chain(["ls".to_string()])
        .collect();
    on_worker_stack(move || check(None, Some(argv)));
}
