//! Shell builtins and reserved words that run commands or code, as the
//! remote shell reads them even when quoted (`'eval' ...` is still eval):
//! `command`, `exec`, `builtin`, `coproc`, zsh's `noglob`/`nocorrect`/`-`,
//! reserved words that prefix a command (`if`, `!`, `{`...) when shell text
//! is read as plain words, `eval` (its words joined are shell text), `trap`
//! (its action is shell text), `alias` (its values are shell text, run where
//! the name is used later in the same text), `.`/`source`/`fc` (raw shell calls), and the
//! bash builtins that evaluate array subscripts with command substitution
//! in the names they take (`declare 'a[$(id)]'`, `test -v 'a[$(id)]'`,
//! `printf -v 'a[$(id)]'`) and `enable -f` (loads a shared object).

use super::follow::{Ctx, Handler, Next, Trace, join_words};
use super::opts::{self, Spec};
use super::wrappers::exec_after;

/// The handler of a builtin or reserved word (lower-case name).
pub(crate) fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "command" => command,
        "exec" => exec,
        "builtin" | "coproc" | "noglob" | "nocorrect" | "-" | "if" | "then" | "else" | "elif"
        | "while" | "until" | "do" | "!" | "{" => rest,
        "eval" => eval,
        "alias" => alias,
        "trap" => trap,
        "." | "source" | "fc" => source,
        "let" | "declare" | "typeset" | "local" | "export" | "readonly" | "read" | "unset"
        | "test" | "[" | "mapfile" | "readarray" | "wait" | "getopts" => subscripts,
        "printf" => printf,
        "enable" => enable,
        _ => return None,
    })
}

/// Keywords and wrappers without options: the rest is the command.
fn rest(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    if w.len() > 1 {
        Next::Exec(1)
    } else {
        Next::Done
    }
}

/// `command [-p] cmd...` runs it; `command -v/-V` only describes it.
fn command(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const COMMAND: Spec = Spec {
        short_flags: "pvV",
        ..Spec::NONE
    };
    match opts::parse(&COMMAND, w, 1) {
        Ok((o, _))
            if o.iter()
                .any(|o| o.short == Some('v') || o.short == Some('V')) =>
        {
            Next::Done
        }
        Ok((_, rest)) if rest < w.len() => Next::Exec(rest),
        Ok(_) => Next::Done,
        Err(_) => Next::Raw,
    }
}

fn exec(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const EXEC: Spec = Spec {
        short_flags: "cl",
        short_values: "a",
        ..Spec::NONE
    };
    exec_after(&EXEC, w, 0, Next::Done)
}

/// `eval WORDS...`: the words joined are shell text.
fn eval(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    if w.len() > 1 {
        Next::Shell(join_words(&w[1..]))
    } else {
        Next::Done
    }
}

/// `trap ACTION SIGNAL...`: the action is shell text, run on the signal or
/// at exit.
fn trap(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    if w.get(1)
        .is_some_and(|a| matches!(a.as_str(), "-l" | "-p" | "-P"))
    {
        return Next::Done;
    }
    let mut i = 1;
    if w.get(i).is_some_and(|a| a == "--") {
        i += 1;
    }
    match w.get(i) {
        Some(action) if w.len() > i + 1 && action != "-" && !action.is_empty() => {
            Next::Shell(action.clone())
        }
        _ => Next::Done,
    }
}

/// `.`/`source FILE` runs a file's text in the shell; `fc` re-runs
/// history through an editor.
fn source(t: &mut Trace, _: &[String], _: &Ctx) -> Next {
    t.shell = true;
    Next::Raw
}

/// bash evaluates array subscripts in the names these builtins take, with
/// command substitution: `declare 'a[$(id)]'`, `test -v 'a[$(id)]'`.
fn subscripts(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    if w[1..].iter().any(|a| a.contains('[')) {
        Next::Raw
    } else {
        Next::Done
    }
}

/// `printf -v NAME`: NAME is a subscript too.
fn printf(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    match (w.get(1).map(String::as_str), w.get(2)) {
        (Some("-v"), Some(name)) if name.contains('[') => Next::Raw,
        (Some(v), _) if v.starts_with("-v") && v.contains('[') => Next::Raw,
        _ => Next::Done,
    }
}

/// `enable -f LIB NAME` loads a shared object into the shell.
fn enable(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    if w[1..].iter().any(|a| a.starts_with('-') && a.contains('f')) {
        Next::Raw
    } else {
        Next::Done
    }
}

/// `alias NAME=VALUE...`: each value is shell text that runs wherever the
/// name is used later (non-interactive zsh, or bash after `shopt -s
/// expand_aliases`).
fn alias(t: &mut Trace, w: &[String], ctx: &Ctx) -> Next {
    for value in w[1..]
        .iter()
        .filter_map(|a| a.split_once('=').map(|(_, v)| v))
    {
        t.shell_text(value, &ctx.inner());
    }
    Next::Done
}
