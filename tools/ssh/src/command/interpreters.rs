//! Shells and interpreters: programs that run code.
//!
//! A POSIX shell with `-c` (any option cluster holding `c`: `-lc`, `-ec`)
//! runs its first operand as shell text, which is read again
//! ([`Trace::shell_text`]); reading its program from the call's input (`-s`,
//! no operand, `-`, `/dev/stdin`) or interactive (`-i`) is a raw shell call;
//! a script file is recorded in `runs`. Shells whose syntax is not POSIX
//! (fish, csh, PowerShell...) are raw shell calls unless given a script
//! file.
//!
//! An interpreter given code in its arguments (`python3 -c`, `perl -e`,
//! `ruby -e`, `node -e`, `php -r`, `lua -e`, `Rscript -e`) or reading code
//! from its input is a raw shell call (the code can start anything) and
//! sets `shell`. `awk` runs a program given as an argument: one that can
//! start commands (`system(`, a pipe, `getline`, `@load`/`@include`) or
//! that comes from a file (`-f`) is a raw shell call; a plain one is an exec
//! of awk. REPL-like interpreters that take code from their input are raw
//! shell calls whatever their arguments. `sed` is in [`super::sed`].

use super::follow::{Ctx, Handler, Next, Trace, reads_input, versioned};
use super::opts;
use super::sed;

/// The handler of a shell or an interpreter (lower-case basename).
pub(crate) fn handler(name: &str) -> Option<Handler> {
    if is_posix_shell(name) {
        return Some(posix_shell);
    }
    Some(match name {
        "fish" | "csh" | "tcsh" | "nu" | "xonsh" | "elvish" | "rc" | "es" => other_shell,
        "node" | "nodejs" => node,
        "irb" | "pry" | "jshell" | "r" | "julia" | "ghci" | "guile" | "racket" | "sbcl"
        | "clisp" | "csi" | "ocaml" | "scala" | "groovy" | "bun" | "deno" | "osascript"
        | "pwsh" | "powershell" | "dc" | "m4" | "expect" => code_runner,
        "awk" | "gawk" | "mawk" | "nawk" | "original-awk" | "goawk" => awk,
        "sed" | "gsed" => sed::sed,
        "rscript" => rscript,
        _ if versioned(name, "python") || versioned(name, "pypy") => python,
        _ if versioned(name, "perl") => perl,
        _ if versioned(name, "ruby") => ruby,
        _ if versioned(name, "php") => php,
        _ if versioned(name, "lua") || versioned(name, "luajit") => lua,
        _ if versioned(name, "tclsh") || versioned(name, "wish") => tclsh,
        _ => return None,
    })
}

/// Shells whose `-c` text the analysis reads as POSIX shell text.
pub(crate) fn is_posix_shell(name: &str) -> bool {
    matches!(
        name,
        "sh" | "bash"
            | "dash"
            | "ash"
            | "ksh"
            | "ksh93"
            | "mksh"
            | "pdksh"
            | "lksh"
            | "oksh"
            | "zsh"
            | "yash"
            | "posh"
            | "rbash"
    )
}

/// `sh [options] -c TEXT [name [args]]`, `sh [options] SCRIPT [args]`.
fn posix_shell(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const LONG: &[&str] = &[
        "login",
        "norc",
        "noprofile",
        "posix",
        "restricted",
        "verbose",
        "noediting",
        "debugger",
        "dump-strings",
        "dump-po-strings",
        "wordexp",
    ];
    t.shell = true;
    let mut code = false;
    let mut i = 1;
    while let Some(a) = w.get(i) {
        if a == "--" || a == "-" {
            i += 1;
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            if long == "version" || long == "help" {
                return Next::Done;
            }
            if !LONG.contains(&long) {
                // --rcfile, --init-file and the unknown.
                return Next::Raw;
            }
            i += 1;
            continue;
        }
        let Some(cluster) = a.strip_prefix('-').or_else(|| a.strip_prefix('+')) else {
            break;
        };
        if cluster.is_empty() {
            break;
        }
        let mut values = 0;
        for c in cluster.chars() {
            match c {
                'c' => code = true,
                // Commands from the input, or an interactive shell.
                's' | 'i' => return Next::Raw,
                'o' | 'O' => values += 1,
                c if c.is_ascii_alphabetic() => {}
                _ => return Next::Raw,
            }
        }
        i += 1 + values;
    }
    match w.get(i) {
        Some(text) if code => Next::Shell(text.clone()),
        Some(script) if !reads_input(script) => {
            t.record(script);
            Next::Done
        }
        _ => Next::Raw,
    }
}

/// Non-POSIX shells: only `shell SCRIPT` is followed.
fn other_shell(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    t.shell = true;
    script(t, w.get(1).filter(|a| !a.starts_with('-')))
}

/// Interpreters that take code from their input whatever the arguments.
fn code_runner(t: &mut Trace, _: &[String], _: &Ctx) -> Next {
    t.shell = true;
    Next::Raw
}

/// How an interpreter's short options read.
struct Lang {
    /// Letters that give code (or make it read code): a raw shell call.
    code: &'static str,
    /// Letters with a value, attached or in the next word.
    values: &'static str,
    /// Letters whose value is the rest of the cluster, if any.
    attached: &'static str,
    /// Letters without a value.
    flags: &'static str,
    /// Long options without a value.
    long_flags: &'static [&'static str],
}

/// Options, then the script: code in an option, no script or a script from
/// the input is a raw shell call; a script file is recorded.
fn interpret(t: &mut Trace, w: &[String], lang: &Lang) -> Next {
    let mut i = 1;
    while let Some(a) = w.get(i) {
        if a == "--" {
            i += 1;
            break;
        }
        if !opts::is_option(a) {
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            if long == "version" || long == "help" {
                return Next::Done;
            }
            if !lang.long_flags.contains(&long) {
                t.shell = true;
                return Next::Raw;
            }
            i += 1;
            continue;
        }
        let cluster = &a[1..];
        let mut next = i + 1;
        for (at, c) in cluster.char_indices() {
            if lang.code.contains(c) {
                t.shell = true;
                return Next::Raw;
            }
            if lang.values.contains(c) {
                if cluster[at + c.len_utf8()..].is_empty() {
                    next = i + 2;
                }
                break;
            }
            if lang.attached.contains(c) {
                break;
            }
            if !lang.flags.contains(c) {
                t.shell = true;
                return Next::Raw;
            }
        }
        i = next;
    }
    script(t, w.get(i))
}

/// `python [options] script [args]`; `-c`, `-m`, `-i` and no script are raw.
fn python(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const PYTHON: Lang = Lang {
        code: "cim",
        values: "WX",
        attached: "",
        flags: "bBdEhIOPqRsSuvVx?",
        long_flags: &[],
    };
    interpret(t, w, &PYTHON)
}

/// `perl [switches] script`: a cluster holding `e E M m d` anywhere is
/// raw (stricter than perl, which reads `-pie` as `-p -i` with backup
/// suffix `e`).
fn perl(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    let mut i = 1;
    while let Some(a) = w.get(i) {
        if a == "--" {
            i += 1;
            break;
        }
        if !opts::is_option(a) {
            break;
        }
        if a == "--version" || a == "--help" {
            return Next::Done;
        }
        if a.starts_with("--") || a[1..].contains(['e', 'E', 'M', 'm', 'd']) {
            t.shell = true;
            return Next::Raw;
        }
        i += if a.ends_with('I') { 2 } else { 1 };
    }
    script(t, w.get(i))
}

fn ruby(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const RUBY: Lang = Lang {
        code: "e",
        values: "CIrE",
        attached: "FKTWx0",
        flags: "acdlnpsSvwyh",
        long_flags: &["copyright", "verbose", "yydebug", "jit"],
    };
    interpret(t, w, &RUBY)
}

/// `node script [args]`; any option (`-e`, `-p`, `-r`, `--import`,
/// `--loader`...) or no script is raw.
fn node(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    if matches!(
        w.get(1).map(String::as_str),
        Some("-v" | "--version" | "-h" | "--help")
    ) {
        return Next::Done;
    }
    script(t, w.get(1).filter(|a| !a.starts_with('-')))
}

/// `php [-f] script`; `-r -R -B -E -F` (code), `-a` (interactive), `-c -d
/// -z` (configuration that loads code) are raw.
fn php(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const PHP: Lang = Lang {
        code: "rRBEFacdz",
        values: "",
        attached: "",
        flags: "nqlvhimHswe",
        long_flags: &[],
    };
    // `-f FILE` names the script.
    if let Some(at) = w.iter().position(|a| a == "-f")
        && let Some(script) = w.get(at + 1)
    {
        let mut head = w[..at].to_vec();
        head.push(script.clone());
        return interpret(t, &head, &PHP);
    }
    interpret(t, w, &PHP)
}

fn lua(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const LUA: Lang = Lang {
        code: "elijb",
        values: "",
        attached: "O",
        flags: "vEW",
        long_flags: &[],
    };
    interpret(t, w, &LUA)
}

fn tclsh(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    let start = if w.get(1).is_some_and(|a| a == "-encoding") {
        3
    } else {
        1
    };
    script(t, w.get(start).filter(|a| !a.starts_with('-')))
}

fn rscript(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const RSCRIPT: Lang = Lang {
        code: "e",
        values: "",
        attached: "",
        flags: "",
        long_flags: &[
            "verbose",
            "vanilla",
            "no-environ",
            "no-site-file",
            "no-init-file",
            "restore",
            "no-restore",
            "save",
            "no-save",
            "quiet",
            "silent",
            "no-echo",
        ],
    };
    interpret(t, w, &RSCRIPT)
}

/// `awk [options] 'program' [files]` (and gawk, mawk, nawk).
fn awk(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const LONG_VALUES: &[&str] = &["field-separator", "assign"];
    const LONG_FLAGS: &[&str] = &[
        "characters-as-bytes",
        "traditional",
        "copyright",
        "gen-pot",
        "lint",
        "bignum",
        "use-lc-numeric",
        "non-decimal-data",
        "optimize",
        "posix",
        "re-interval",
        "no-optimize",
        "sandbox",
        "lint-old",
        "version",
        "help",
    ];
    let mut programs: Vec<&str> = Vec::new();
    let mut i = 1;
    while let Some(a) = w.get(i) {
        if a == "--" {
            i += 1;
            break;
        }
        if !opts::is_option(a) {
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, value) = long
                .split_once('=')
                .map_or((long, None), |(n, v)| (n, Some(v)));
            if name == "source" {
                match value.or_else(|| w.get(i + 1).map(String::as_str)) {
                    Some(p) => programs.push(p),
                    None => return Next::Raw,
                }
                i += if value.is_some() { 1 } else { 2 };
            } else if LONG_VALUES.contains(&name) {
                i += if value.is_some() { 1 } else { 2 };
            } else if LONG_FLAGS.contains(&name) {
                i += 1;
            } else {
                // --file, --exec, --include, --load, --debug... and the unknown.
                return Next::Raw;
            }
            continue;
        }
        let cluster = &a[1..];
        let mut next = i + 1;
        for (at, c) in cluster.char_indices() {
            let rest = &cluster[at + c.len_utf8()..];
            match c {
                'F' | 'v' | 'e' => {
                    let value = if rest.is_empty() {
                        next = i + 2;
                        w.get(i + 1).map(String::as_str)
                    } else {
                        Some(rest)
                    };
                    if c == 'e' {
                        match value {
                            Some(p) => programs.push(p),
                            None => return Next::Raw,
                        }
                    }
                    break;
                }
                // Optional attached values: the rest of the cluster.
                'd' | 'o' | 'p' | 'L' => break,
                'b' | 'c' | 'C' | 'g' | 'h' | 'M' | 'N' | 'n' | 'O' | 'P' | 'r' | 's' | 'S'
                | 't' | 'V' => {}
                // -f progfile, -E file, -i include, -l library, -W (mawk), -D debugger.
                _ => return Next::Raw,
            }
        }
        i = next;
    }
    if programs.is_empty() {
        match w.get(i) {
            Some(program) => programs.push(program),
            None => return Next::Raw,
        }
    }
    let runs_commands = |p: &&str| {
        p.starts_with(super::script::DYNAMIC)
            || p.contains("system")
            || p.contains('|')
            || p.contains("getline")
            || p.contains('@')
    };
    if programs.iter().any(runs_commands) {
        t.shell = true;
        return Next::Raw;
    }
    Next::Done
}

/// The interpreter runs `word` as a script file: recorded in `runs`. No
/// script, or one read from standard input (`-`, `/dev/stdin`...), is code
/// the analysis cannot see: raw.
fn script(t: &mut Trace, word: Option<&String>) -> Next {
    match word {
        Some(script) if !reads_input(script) => {
            t.record(script);
            Next::Done
        }
        _ => {
            t.shell = true;
            Next::Raw
        }
    }
}
