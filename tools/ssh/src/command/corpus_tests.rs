//! The adversarial corpus (`tests/corpus/ssh_adversarial.toml`): every case
//! goes through [`invocation`] and [`analyse`] and is checked against its
//! expectations; all failures are reported at once.

use serde::Deserialize;

use super::{analyse, invocation};

const CORPUS: &str = include_str!("../../../../tests/corpus/ssh_adversarial.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    argv: Option<Vec<String>>,
    command: Option<String>,
    /// Appends this many bytes of `A` (a new argv word, or to the command).
    append_bytes: Option<usize>,
    expect_action: Option<String>,
    expect_error: Option<String>,
    #[serde(default)]
    runs_includes: Vec<String>,
    #[serde(default)]
    runs_excludes: Vec<String>,
    program: Option<String>,
    sudo: Option<bool>,
    run_as: Option<String>,
    shell: Option<bool>,
    argv_line: Option<String>,
    #[allow(dead_code, reason = "for humans")]
    note: Option<String>,
}

impl Case {
    /// What is wrong with the analysis of this case (empty: nothing).
    fn check(&self) -> Vec<String> {
        let mut argv = self.argv.clone();
        let mut command = self.command.clone();
        if let Some(n) = self.append_bytes {
            let big = "A".repeat(n);
            if let Some(argv) = argv.as_mut() {
                argv.push(big);
            } else if let Some(command) = command.as_mut() {
                command.push_str(&big);
            }
        }
        let result = invocation(argv, command).and_then(|inv| analyse(&inv));
        let mut wrong = Vec::new();
        let facts = match (result, &self.expect_error) {
            (Err(e), Some(expected)) => {
                if !e.to_string().contains(expected.as_str()) {
                    wrong.push(format!("error {e:?} does not say {expected:?}"));
                }
                return wrong;
            }
            (Err(e), None) => return vec![format!("refused: {e}")],
            (Ok(facts), Some(expected)) => {
                return vec![format!(
                    "expected an error saying {expected:?}, got {facts:?}"
                )];
            }
            (Ok(facts), None) => facts,
        };
        if let Some(action) = &self.expect_action
            && facts.action() != action
        {
            wrong.push(format!("action {} (expected {action})", facts.action()));
        }
        for program in &self.runs_includes {
            if !facts.runs.contains(program) {
                wrong.push(format!("runs lacks {program:?}"));
            }
        }
        for program in &self.runs_excludes {
            if facts.runs.contains(program) {
                wrong.push(format!("runs has {program:?}"));
            }
        }
        if self.program.as_ref().is_some_and(|p| *p != facts.program) {
            wrong.push(format!("program {:?}", facts.program));
        }
        if self.sudo.is_some_and(|s| s != facts.sudo) {
            wrong.push(format!("sudo {}", facts.sudo));
        }
        if self.run_as.as_ref().is_some_and(|r| *r != facts.run_as) {
            wrong.push(format!("run_as {:?}", facts.run_as));
        }
        if self
            .argv_line
            .as_ref()
            .is_some_and(|l| *l != facts.argv_line)
        {
            wrong.push(format!("argv_line {:?}", facts.argv_line));
        }
        if self.shell.is_some_and(|s| s != facts.shell) {
            wrong.push(format!("shell {}", facts.shell));
        }
        if !wrong.is_empty() {
            wrong.push(format!("runs = {:?}", facts.runs));
        }
        wrong
    }
}

#[test]
fn adversarial_corpus() {
    let corpus: Corpus = toml::from_str(CORPUS).expect("tests/corpus/ssh_adversarial.toml parses");
    assert!(
        corpus.case.len() >= 80,
        "the corpus has {} cases",
        corpus.case.len()
    );
    let mut names = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for case in &corpus.case {
        assert!(
            names.insert(case.name.as_str()),
            "duplicate case name {:?}",
            case.name
        );
        assert!(
            case.argv.is_some() != case.command.is_some(),
            "{:?}: give exactly one of argv and command",
            case.name
        );
        assert!(
            case.expect_action.is_some() != case.expect_error.is_some(),
            "{:?}: give exactly one of expect_action and expect_error",
            case.name
        );
        let wrong = case.check();
        if !wrong.is_empty() {
            failures.push(format!("{}: {}", case.name, wrong.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        corpus.case.len(),
        failures.join("\n")
    );
}
