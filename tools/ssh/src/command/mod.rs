//! Command analysis for `ssh_exec`: what a call will run, before it runs.
//! Pure (no I/O) and linear in the size of the call: a call over
//! [`MAX_COMMAND_BYTES`] is refused before any parsing, every reader is one
//! pass without backtracking, nesting is capped, and the texts read again
//! (nested `sh -c`, both quoting dialects) draw on a work budget
//! proportional to the call's size, past which the call is a raw shell call.
//!
//! 1. [`invocation`] takes the call's `argv` or `command` (exactly one). An
//!    argv is checked (not empty, a non-empty program, no NUL byte, at most
//!    [`MAX_COMMAND_BYTES`]) and kept as it is. A command made only of words
//!    and quotes is split as a POSIX shell would (`words`) and becomes that
//!    argv; any other shell syntax makes it a raw shell call
//!    ([`Invocation::Shell`]).
//! 2. [`analyse`] finds the facts policy sees ([`CommandFacts`], the Cedar
//!    context of `ssh:exec` / `ssh:shell`): the program, its arguments, and
//!    every program the call starts, through wrappers (`sudo`, `env`,
//!    `xargs`, `find -exec`, `sh -c`...; `follow` and the handlers in
//!    `privilege`, `wrappers`, `builtins`, `tracers`, `interpreters`, `sed`,
//!    `programs`) and, for shell text, through every simple command at every
//!    nesting level (`script`). Where a wrapper's
//!    target cannot be told (an unknown option, a missing command, an
//!    expansion as the program, code given to an interpreter), the call is a
//!    raw shell call: the analysis errs on the stricter side, never on a
//!    plain exec of a harmless program.
//! 3. [`remote_command`] is the string sent in the SSH exec request: the
//!    argv quoted for the remote POSIX shell ([`quote_line`]: the remote runs
//!    exactly these words; an argument starting with `-` is just an
//!    argument), or the raw shell text.
//!
//! The lexers are hand-rolled: `shell-words` splits `a;b` as one word and so
//! cannot tell plain words from shell syntax, and no crate reads wrappers.
//! Assumes the account's login shell is a POSIX shell (sh, bash, dash,
//! ksh, zsh), as `ssh host 'cmd'` does.

use std::collections::BTreeSet;

use thiserror::Error;

mod builtins;
mod follow;
mod interpreters;
mod opts;
mod privilege;
mod programs;
mod quote;
mod script;
mod sed;
mod tracers;
mod words;
mod wrappers;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod tests;

/// Largest call accepted: the bytes of all argv words (plus one per word),
/// or of the command text. Larger calls are refused before any parsing.
pub const MAX_COMMAND_BYTES: usize = 256 * 1024;

/// What a call runs on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// These words, quoted for the remote shell: exactly they run.
    Argv(Vec<String>),
    /// Shell text run by the remote shell as it is (a raw shell call).
    Shell(String),
}

/// Why a call's command was refused (the messages never quote the command:
/// it may hold secrets).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    /// Both `argv` and `command` were given.
    #[error("give either `argv` (a list of words) or `command` (a string), not both")]
    Both,
    /// Neither `argv` nor `command` was given.
    #[error(
        "give `argv` (the program and its arguments as a list of words) or `command` (a string)"
    )]
    Neither,
    /// `argv` is an empty list.
    #[error("`argv` is empty: give the program and its arguments as a list of words")]
    EmptyArgv,
    /// `command` is empty or blank.
    #[error("`command` is empty")]
    EmptyCommand,
    /// The first word is empty.
    #[error("the program (the first word) is empty")]
    EmptyProgram,
    /// A word or the text holds a NUL byte.
    #[error("`{field}` holds a NUL byte, which no remote command can carry")]
    Nul {
        /// `argv` or `command`.
        field: &'static str,
    },
    /// The call is larger than [`MAX_COMMAND_BYTES`].
    #[error(
        "`{field}` is {bytes} bytes, more than the {limit} bytes a command may have; pass large data as `stdin`"
    )]
    TooLarge {
        /// `argv` or `command`.
        field: &'static str,
        /// Its size.
        bytes: usize,
        /// [`MAX_COMMAND_BYTES`].
        limit: usize,
    },
}

/// The facts policy sees: the Cedar context of `ssh:exec` and `ssh:shell`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandFacts {
    /// Basename of the first word (for shell text: of the first simple
    /// command; the source text when that word is computed at run time).
    pub program: String,
    /// The line that runs: `quote_line(argv)`, or the shell text itself.
    pub argv_line: String,
    /// The first program's arguments.
    pub args: BTreeSet<String>,
    /// Basenames of every program the call starts, through wrappers,
    /// recursively (a word computed at run time appears as its source text,
    /// plus the basename of its literal prefix if any).
    pub runs: BTreeSet<String>,
    /// A privilege wrapper (sudo, doas, su, runuser, pkexec, systemd-run...)
    /// is anywhere in the call.
    pub sudo: bool,
    /// Their target user ("" when none; root when one names none; root when
    /// any of several is root).
    pub run_as: String,
    /// A raw shell call, or a shell (`sh -c`-like) or interpreter code
    /// anywhere in the call.
    pub shell: bool,
    /// The call is a raw shell call (action `ssh:shell`): shell text, or a
    /// wrapper or interpreter whose target cannot be told.
    pub raw_shell: bool,
}

impl CommandFacts {
    /// The Cedar action: `ssh:shell` for a raw shell call, else `ssh:exec`.
    pub fn action(&self) -> &'static str {
        if self.raw_shell {
            "ssh:shell"
        } else {
            "ssh:exec"
        }
    }
}

/// The call's invocation from its `argv` or `command` (exactly one).
pub fn invocation(
    argv: Option<Vec<String>>,
    command: Option<String>,
) -> Result<Invocation, CommandError> {
    match (argv, command) {
        (Some(_), Some(_)) => Err(CommandError::Both),
        (None, None) => Err(CommandError::Neither),
        (Some(argv), None) => {
            check_argv(&argv, "argv")?;
            Ok(Invocation::Argv(argv))
        }
        (None, Some(text)) => {
            check_text(&text)?;
            match words::split_plain(&text) {
                Some(words) if words.is_empty() => Err(CommandError::EmptyCommand),
                Some(words) => {
                    check_argv(&words, "command")?;
                    Ok(Invocation::Argv(words))
                }
                None => Ok(Invocation::Shell(text)),
            }
        }
    }
}

/// The facts of an invocation.
pub fn analyse(inv: &Invocation) -> Result<CommandFacts, CommandError> {
    let bytes = match inv {
        Invocation::Argv(argv) => {
            check_argv(argv, "argv")?;
            argv.iter().map(|w| w.len() + 1).sum()
        }
        Invocation::Shell(text) => {
            check_text(text)?;
            text.len()
        }
    };
    let mut trace = follow::Trace::new(bytes);
    let ctx = follow::Ctx::default();
    let (program, args, argv_line) = match inv {
        Invocation::Argv(argv) => {
            trace.follow(argv, &ctx);
            let program = follow::basename(&argv[0]).to_owned();
            (
                program,
                argv[1..].iter().cloned().collect(),
                quote_line(argv),
            )
        }
        Invocation::Shell(text) => {
            trace.raw();
            trace.shell = true;
            let commands = script::commands(text);
            for command in &commands {
                trace.follow(&command.words, &ctx);
            }
            let (program, args) = match commands.first() {
                Some(first) => (
                    shown(&first.words[0], true),
                    first.words[1..].iter().map(|w| shown(w, false)).collect(),
                ),
                None => (String::new(), BTreeSet::new()),
            };
            (program, args, text.clone())
        }
    };
    Ok(CommandFacts {
        program,
        argv_line,
        args,
        runs: trace.runs,
        sudo: trace.sudo,
        run_as: trace.run_as,
        shell: trace.shell,
        raw_shell: trace.raw_shell,
    })
}

/// Each word quoted for a POSIX remote shell, so that it runs exactly these
/// words: single quotes, `'\''` for a `'`; a later word of plain characters
/// only is left bare; the first word is always quoted.
pub fn quote_line(argv: &[String]) -> String {
    quote::quote_words(argv)
}

/// The command string of the SSH exec request.
pub fn remote_command(inv: &Invocation) -> String {
    match inv {
        Invocation::Argv(argv) => quote_line(argv),
        Invocation::Shell(text) => text.clone(),
    }
}

/// A scanned word as policy sees it: its value, or its source text when it
/// is computed at run time; a program as its basename.
fn shown(word: &str, program: bool) -> String {
    match script::dynamic_parts(word) {
        Some((_, source)) => source.to_owned(),
        None if program => follow::basename(word).to_owned(),
        None => word.to_owned(),
    }
}

fn check_argv(argv: &[String], field: &'static str) -> Result<(), CommandError> {
    let Some(first) = argv.first() else {
        return Err(CommandError::EmptyArgv);
    };
    let bytes = argv
        .iter()
        .fold(0usize, |n, w| n.saturating_add(w.len()).saturating_add(1));
    if bytes > MAX_COMMAND_BYTES {
        return Err(CommandError::TooLarge {
            field,
            bytes,
            limit: MAX_COMMAND_BYTES,
        });
    }
    if argv.iter().any(|w| w.contains('\0')) {
        return Err(CommandError::Nul { field });
    }
    if first.is_empty() {
        return Err(CommandError::EmptyProgram);
    }
    Ok(())
}

fn check_text(text: &str) -> Result<(), CommandError> {
    if text.len() > MAX_COMMAND_BYTES {
        return Err(CommandError::TooLarge {
            field: "command",
            bytes: text.len(),
            limit: MAX_COMMAND_BYTES,
        });
    }
    if text.contains('\0') {
        return Err(CommandError::Nul { field: "command" });
    }
    if text.trim().is_empty() {
        return Err(CommandError::EmptyCommand);
    }
    Ok(())
}
