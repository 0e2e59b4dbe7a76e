//! Unit tests of the public API: invocation checks, quoting proved against
//! real shells (`/bin/sh`, bash), the plain-words lexer checked against
//! them, the size limit, and analyses that must stay fast and shallow on
//! hostile inputs just under the limit.

use std::process::Command;
use std::time::Instant;

use super::*;

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|w| (*w).to_owned()).collect()
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The words a shell gives `printf '%s\0'` for the arguments `line`.
fn shell_words(shell: &str, line: &str) -> Vec<String> {
    let script = format!("printf '%s\\0' {line}");
    let out = Command::new(shell)
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shell} (apt package dash / bash): {e}"));
    assert!(
        out.status.success(),
        "{shell} failed on {script:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut words: Vec<String> = out
        .stdout
        .split(|b| *b == 0)
        .map(|w| String::from_utf8(w.to_vec()).expect("utf-8"))
        .collect();
    // printf ends every word with a NUL: the last piece is empty.
    assert_eq!(words.pop().as_deref(), Some(""));
    words
}

const SHELLS: &[&str] = &["/bin/sh", "/bin/bash"];

const NASTY: &[&str] = &[
    "'",
    "''",
    "\"",
    "\\",
    "\\'",
    "'\\''",
    "$(id)",
    "`id`",
    "${IFS}",
    "$HOME",
    "*",
    "?",
    "[a]",
    "~",
    "~root",
    "-n",
    "-e",
    "--",
    "-",
    "",
    " ",
    "\t",
    "a b",
    "\n",
    "x\ny",
    "\r",
    "#",
    "#x",
    "!",
    "!!",
    "=",
    "=ls",
    "a=b",
    "{a,b}",
    ";",
    "&&",
    "|",
    ">",
    "<",
    "(",
    ")",
    "%",
    "^",
    "é",
    "日本",
    "\u{1b}[31m",
    "\u{7f}",
    "a'b\"c\\d$e`f",
    "%s",
    "%%",
    "\\n",
    "\\0",
    "--rm",
    "-rf /",
];

#[test]
fn quoted_words_come_back_exactly_from_real_shells() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let alphabet: Vec<char> = "ab -_'\"\\$`*?[]~#!=;&|<>(){}%^\t\n\r\u{1}é日"
        .chars()
        .collect();
    let mut cases: Vec<Vec<String>> = NASTY.iter().map(|w| strings(&["x", w])).collect();
    cases.push(NASTY.iter().map(|w| (*w).to_owned()).collect());
    for _ in 0..60 {
        let argv: Vec<String> = (0..1 + rng.below(5))
            .map(|_| (0..rng.below(12)).map(|_| *rng.pick(&alphabet)).collect())
            .collect();
        cases.push(argv);
    }
    for shell in SHELLS {
        for argv in &cases {
            let line = quote_line(argv);
            assert_eq!(&shell_words(shell, &line), argv, "{shell} on {line:?}");
        }
    }
}

#[test]
fn plain_commands_split_as_real_shells_split_them() {
    let mut rng = Rng(42);
    let alphabet: Vec<char> = "ab-_./,:@+%= '\"\\é\t".chars().collect();
    let mut texts: Vec<String> = [
        "a 'b c' \"d e\"",
        "\\s\\u\\d\\o",
        "'it'\\''s'",
        "\"a\\\"b\\\\c\\$d\\`e\\xf\"",
        "'' \"\" x''",
        "--opt=val a=b -- -",
        "a\"b\"'c'\\d",
        "x '\"' \"'\"",
    ]
    .iter()
    .map(|t| (*t).to_owned())
    .collect();
    while texts.len() < 400 {
        let text: String = (0..rng.below(16)).map(|_| *rng.pick(&alphabet)).collect();
        // Only texts the lexer calls plain are compared (the others are raw
        // shell calls); `=` first-word rules do not apply in argument place.
        if words::split_plain(&format!("x {text}")).is_some() {
            texts.push(text);
        }
    }
    let mut compared = 0;
    for shell in SHELLS {
        for text in &texts {
            let Some(ours) = words::split_plain(&format!("x {text}")) else {
                panic!("{text:?} should be plain");
            };
            let theirs = shell_words(shell, &format!("x {text}"));
            assert_eq!(ours, theirs, "{shell} splits {text:?} differently");
            compared += 1;
        }
    }
    assert!(compared >= 800);
}

#[test]
fn invocation_takes_exactly_one_of_argv_and_command() {
    assert_eq!(invocation(None, None), Err(CommandError::Neither));
    assert_eq!(
        invocation(Some(strings(&["ls"])), Some("ls".into())),
        Err(CommandError::Both)
    );
    assert_eq!(invocation(Some(vec![]), None), Err(CommandError::EmptyArgv));
    assert_eq!(
        invocation(Some(strings(&["", "x"])), None),
        Err(CommandError::EmptyProgram)
    );
    assert_eq!(
        invocation(None, Some("  \t ".into())),
        Err(CommandError::EmptyCommand)
    );
    assert_eq!(
        invocation(None, Some("'' x".into())),
        Err(CommandError::EmptyProgram)
    );
    assert_eq!(
        invocation(Some(strings(&["ls", "a\0b"])), None),
        Err(CommandError::Nul { field: "argv" })
    );
    assert_eq!(
        invocation(None, Some("ls\0".into())),
        Err(CommandError::Nul { field: "command" })
    );
    assert_eq!(
        invocation(None, Some("ls -la".into())),
        Ok(Invocation::Argv(strings(&["ls", "-la"])))
    );
    assert_eq!(
        invocation(None, Some("ls; id".into())),
        Ok(Invocation::Shell("ls; id".into()))
    );
}

#[test]
fn a_megabyte_is_refused_before_any_parsing() {
    let big = "a".repeat(1 << 20);
    let started = Instant::now();
    let word = invocation(Some(vec!["echo".into(), big.clone()]), None);
    let text = invocation(None, Some(format!("echo {big}")));
    let shell = invocation(None, Some(format!("echo $( {big}")));
    let analysed = analyse(&Invocation::Argv(vec!["echo".into(), big.clone()]));
    let elapsed = started.elapsed();
    for result in [
        word.map(|_| ()),
        text.map(|_| ()),
        shell.map(|_| ()),
        analysed.map(|_| ()),
    ] {
        let Err(CommandError::TooLarge { bytes, limit, .. }) = result else {
            panic!("a 1 MiB call must be refused as too large");
        };
        assert!(bytes > limit && limit == MAX_COMMAND_BYTES);
    }
    let message = invocation(None, Some(big)).unwrap_err().to_string();
    assert!(
        message.contains("stdin") && !message.contains("aaaa"),
        "{message}"
    );
    eprintln!("four 1 MiB refusals: {elapsed:?}");
}

/// Inputs just under the limit that would be slow or deep for a quadratic
/// or recursive reader: they must finish (and be raw shell calls).
#[test]
fn hostile_inputs_under_the_limit_are_analysed() {
    let n = MAX_COMMAND_BYTES / 8;
    let cases: Vec<(&str, Invocation)> = vec![
        ("nested $(", Invocation::Shell("$(".repeat(n))),
        ("nested \"$(", Invocation::Shell("\"$(".repeat(n / 2))),
        ("nested ${", Invocation::Shell("${".repeat(n))),
        ("nested (", Invocation::Shell("(".repeat(n * 4))),
        ("backquotes", Invocation::Shell("`\\`".repeat(n))),
        ("many commands", Invocation::Shell("a;".repeat(n * 3))),
        (
            "sudo chain",
            Invocation::Argv(
                "sudo "
                    .repeat(n)
                    .split(' ')
                    .filter(|w| !w.is_empty())
                    .map(String::from)
                    .collect(),
            ),
        ),
        (
            "sh -c chain",
            Invocation::Argv(vec!["sh".into(), "-c".into(), "sh -c ".repeat(n)]),
        ),
        (
            "find -exec chain",
            Invocation::Argv(
                "find -exec "
                    .repeat(n / 2)
                    .split(' ')
                    .filter(|w| !w.is_empty())
                    .map(String::from)
                    .collect(),
            ),
        ),
        ("quoted sh -c nesting", Invocation::Shell(nested_sh(8))),
        (
            "sh -c read twice per level",
            Invocation::Shell(dialect_doubling(30)),
        ),
        (
            "eval chain read in two dialects",
            Invocation::Shell(format!("{}x $'\\' 1'", "eval ".repeat(n / 5))),
        ),
        (
            "env assignments",
            Invocation::Argv(
                std::iter::once("env".to_owned())
                    .chain((0..n / 2).map(|i| format!("LC_{i}=x")))
                    .collect(),
            ),
        ),
    ];
    for (name, inv) in cases {
        let started = Instant::now();
        let facts = analyse(&inv).unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!("{name}: {:?}", started.elapsed());
        assert!(
            facts.raw_shell || name == "env assignments",
            "{name} must be a raw shell call"
        );
        if name == "quoted sh -c nesting" {
            assert!(
                facts.runs.contains("rm"),
                "rm is found 8 shells deep: {:?}",
                facts.runs
            );
        }
    }
}

/// Nested `sh -c` where bash and dash read each level differently, so a
/// reader that followed both readings at every level would do 2^depth work.
fn dialect_doubling(depth: usize) -> String {
    let mut text = "rm x".to_owned();
    for level in 0..depth {
        text = format!("sh -c {} $'\\' {level}'", quote::quote_word(&text, true));
        if text.len() > MAX_COMMAND_BYTES / 2 {
            break;
        }
    }
    text
}

/// `sh -c 'sh -c '\''...'\'''` nested `depth` times, ending in `rm x`.
fn nested_sh(depth: usize) -> String {
    let mut text = "rm x".to_owned();
    for _ in 0..depth {
        text = format!("sh -c {}", quote::quote_word(&text, true));
    }
    text + "; true"
}

#[test]
fn shell_text_facts() {
    let facts = analyse(&Invocation::Shell(
        "cd /srv && sudo -u app ./deploy.sh --fast | tee log".into(),
    ))
    .unwrap();
    assert_eq!(facts.program, "cd");
    assert_eq!(facts.args, ["/srv".to_owned()].into());
    assert_eq!(
        facts.runs,
        ["cd", "sudo", "deploy.sh", "tee"].map(String::from).into()
    );
    assert!(facts.sudo && facts.shell && facts.raw_shell);
    assert_eq!(facts.run_as, "app");
    assert_eq!(
        facts.argv_line,
        "cd /srv && sudo -u app ./deploy.sh --fast | tee log"
    );
    assert_eq!(facts.action(), "ssh:shell");

    let facts = analyse(&Invocation::Shell("$CMD x; r$(echo m) -rf /".into())).unwrap();
    assert_eq!(facts.program, "$CMD");
    assert!(
        facts.runs.contains("$CMD")
            && facts.runs.contains("r$(echo m)")
            && facts.runs.contains("r")
    );
    assert!(facts.runs.contains("echo"));
}

#[test]
fn argv_facts_and_remote_command() {
    let inv = invocation(
        Some(strings(&["/usr/bin/systemctl", "restart", "nginx's unit"])),
        None,
    )
    .unwrap();
    let facts = analyse(&inv).unwrap();
    assert_eq!(facts.program, "systemctl");
    assert_eq!(
        facts.args,
        ["restart".to_owned(), "nginx's unit".to_owned()].into()
    );
    assert_eq!(facts.runs, ["systemctl".to_owned()].into());
    assert!(!facts.sudo && !facts.shell && !facts.raw_shell);
    assert_eq!(facts.run_as, "");
    assert_eq!(
        facts.argv_line,
        "'/usr/bin/systemctl' restart 'nginx'\\''s unit'"
    );
    assert_eq!(remote_command(&inv), facts.argv_line);
    assert_eq!(facts.action(), "ssh:exec");

    let inv = invocation(None, Some("ls; id".into())).unwrap();
    assert_eq!(remote_command(&inv), "ls; id");
}

#[test]
fn run_as_keeps_root_once_seen() {
    let facts = analyse(&Invocation::Shell("sudo id; sudo -u app id".into())).unwrap();
    assert_eq!(facts.run_as, "root");
    let facts = analyse(&Invocation::Argv(strings(&["sudo", "-u", "#0", "id"]))).unwrap();
    assert_eq!(facts.run_as, "root");
    let facts = analyse(&Invocation::Shell("sudo -u \"$U\" id".into())).unwrap();
    assert_eq!(facts.run_as, "root");
}

/// Random shell text and random wrapper chains: analysis never panics, and
/// a command string is exec only when it is plain words.
#[test]
fn random_calls_never_panic() {
    let mut rng = Rng(7);
    let alphabet: Vec<char> = "ab -_'\"\\$`*?[]~#!=;&|<>(){}%^\t\n\r\u{1}é"
        .chars()
        .collect();
    for _ in 0..3000 {
        let text: String = (0..rng.below(40)).map(|_| *rng.pick(&alphabet)).collect();
        let Ok(inv) = invocation(None, Some(text.clone())) else {
            continue;
        };
        let facts = analyse(&inv).unwrap();
        if matches!(inv, Invocation::Shell(_)) {
            assert!(facts.raw_shell && facts.shell, "{text:?}");
        }
    }
    let vocabulary = [
        "sudo",
        "-u",
        "root",
        "env",
        "X=1",
        "LANG=C",
        "-i",
        "-S",
        "xargs",
        "-I{}",
        "{}",
        "find",
        "-exec",
        ";",
        "+",
        "sh",
        "-c",
        "-lc",
        "bash",
        "rm",
        "-rf",
        "/",
        "timeout",
        "5",
        "nice",
        "-n",
        "su",
        "-",
        "python3",
        "awk",
        "system(1)",
        "sed",
        "e",
        "s/a/b/e",
        "ssh",
        "-o",
        "host",
        "git",
        "--",
        "tar",
        "-I",
        "watch",
        "flock",
        "chroot",
        "busybox",
        "eval",
        "trap",
        "exec",
        "command",
        "-v",
        "strace",
        "-p",
        "doas",
        "runuser",
        "pkexec",
        "'x; y'",
        "$(id)",
        "",
    ];
    for _ in 0..20_000 {
        let mut argv: Vec<String> = (0..1 + rng.below(9))
            .map(|_| (*rng.pick(&vocabulary)).to_owned())
            .collect();
        if argv[0].is_empty() {
            argv[0] = "sudo".into();
        }
        let facts = analyse(&Invocation::Argv(argv.clone())).unwrap();
        assert!(!facts.runs.is_empty(), "{argv:?}");
        assert_eq!(facts.sudo, !facts.run_as.is_empty(), "{argv:?}");
    }
}
