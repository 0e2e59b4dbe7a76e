//! Following one command through its wrappers: `sudo -u app env X=1 nice
//! timeout 5 rm x` starts sudo, env, nice, timeout and rm. [`Trace`]
//! collects what policy sees (every program started, privilege wrappers and
//! their target user, shells, and whether the call is a raw shell call);
//! [`Trace::follow`] walks an argv hop by hop, asking the handler of each
//! known program ([`handler`]) where its wrapped command starts, and
//! [`Trace::shell_text`] reads a text a wrapper hands to a shell (`sh -c`,
//! `su -c`, `watch`, `ssh host ...`).
//!
//! An unknown program is taken as a plain program: it is recorded and its
//! arguments are not read. Every uncertainty lands on the stricter side: a
//! handler that cannot place its wrapped command (an unknown option, a
//! missing command, an expansion where the program should be) marks the call
//! a raw shell call, and so does nesting deeper than [`MAX_DEPTH`].

use std::collections::BTreeSet;

use super::script::{self, dynamic_parts};
use super::words;
use super::{builtins, interpreters, privilege, programs, tracers, wrappers};

/// Most wrapper hops and nested shell texts followed; deeper is a raw shell
/// call. Bounds the recursion, and the work: each level reads at most the
/// whole input once.
pub(crate) const MAX_DEPTH: u32 = 32;

/// Work allowed per byte of the call (bytes of words and texts read, over
/// every hop and level), and at least [`MIN_WORK`]: past it the call is a
/// raw shell call and nothing more is read. Keeps the analysis linear even
/// where texts are read more than once (the two quoting dialects of shell
/// text, nested `sh -c`).
const WORK_PER_BYTE: usize = 256;
const MIN_WORK: usize = 1 << 16;

/// What following a call found.
#[derive(Debug)]
pub(crate) struct Trace {
    /// Basenames of every program started.
    pub runs: BTreeSet<String>,
    /// A privilege wrapper ran.
    pub sudo: bool,
    /// The target user of the privilege wrappers ("" when none).
    pub run_as: String,
    /// A shell, or code given to an interpreter, ran.
    pub shell: bool,
    /// The call is a raw shell call.
    pub raw_shell: bool,
    /// Work left (see [`WORK_PER_BYTE`]).
    budget: usize,
}

/// Where a program sits in the call.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ctx {
    depth: u32,
    /// Strings a wrapper replaces at run time (`find -exec ... {}`,
    /// `xargs -I X`): a program name or code holding one is not known.
    placeholders: Vec<String>,
    /// The last program of the chain gets more arguments at run time
    /// (`xargs CMD`, `find -exec CMD {} +`).
    extra_args: bool,
}

impl Ctx {
    /// One level further in.
    pub(crate) fn deeper(&self) -> Ctx {
        Ctx {
            depth: self.depth + 1,
            ..self.clone()
        }
    }

    /// A new command started by the current program (not its tail): no
    /// extra arguments reach it.
    pub(crate) fn inner(&self) -> Ctx {
        Ctx {
            depth: self.depth + 1,
            placeholders: self.placeholders.clone(),
            extra_args: false,
        }
    }

    /// A command a repeating wrapper (`xargs`, `find -exec`) starts.
    pub(crate) fn repeated(&self, placeholder: Option<&str>, extra_args: bool) -> Ctx {
        let mut ctx = self.inner();
        if let Some(p) = placeholder.filter(|p| !ctx.placeholders.iter().any(|q| q == p)) {
            ctx.placeholders.push(p.to_owned());
        }
        ctx.extra_args = extra_args;
        ctx
    }
}

/// What a program does next, as its handler reads its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// Nothing further is started (or the handler followed it itself).
    Done,
    /// It executes `words[index..]` as a command.
    Exec(usize),
    /// It hands this text to a POSIX shell.
    Shell(String),
    /// What it starts cannot be told: a raw shell call.
    Raw,
}

/// A program's handler: reads its arguments (`words[0]` is the program).
pub(crate) type Handler = fn(&mut Trace, &[String], &Ctx) -> Next;

/// The handler of a program (basename, any case), if it is one the analysis
/// knows to start other programs or run code.
pub(crate) fn handler(name: &str) -> Option<Handler> {
    let name = name.to_ascii_lowercase();
    privilege::handler(&name)
        .or_else(|| wrappers::handler(&name))
        .or_else(|| builtins::handler(&name))
        .or_else(|| tracers::handler(&name))
        .or_else(|| interpreters::handler(&name))
        .or_else(|| programs::handler(&name))
}

impl Trace {
    /// A trace for a call of `bytes` bytes.
    pub(crate) fn new(bytes: usize) -> Trace {
        Trace {
            runs: BTreeSet::new(),
            sudo: false,
            run_as: String::new(),
            shell: false,
            raw_shell: false,
            budget: bytes.saturating_mul(WORK_PER_BYTE).max(MIN_WORK),
        }
    }

    /// Takes `work` from the budget; false (and a raw shell call) when it
    /// is spent.
    fn spend(&mut self, work: usize) -> bool {
        match self.budget.checked_sub(work) {
            Some(left) => {
                self.budget = left;
                true
            }
            None => {
                self.budget = 0;
                self.raw();
                false
            }
        }
    }

    /// Marks the call a raw shell call.
    pub(crate) fn raw(&mut self) {
        self.raw_shell = true;
    }

    /// Records a privilege wrapper and its target user. "root" stays once
    /// seen (the strictest reading of several targets); `#0`, `0`, an empty
    /// name and an expansion count as root.
    pub(crate) fn privileged(&mut self, user: &str) {
        self.sudo = true;
        let user = if user.is_empty()
            || user == "0"
            || user == "#0"
            || user.starts_with(script::DYNAMIC)
        {
            "root"
        } else {
            user
        };
        if self.run_as != "root" {
            self.run_as = user.to_owned();
        }
    }

    /// Records the program a word names; returns its basename when the word
    /// is a fixed name (not an expansion).
    pub(crate) fn record(&mut self, word: &str) -> Option<String> {
        if let Some((prefix, source)) = dynamic_parts(word) {
            self.raw();
            self.runs.insert(source.to_owned());
            let stem = basename(prefix);
            if !stem.is_empty() {
                self.runs.insert(stem.to_owned());
            }
            return None;
        }
        let name = basename(word);
        if name.is_empty() {
            return None;
        }
        self.runs.insert(name.to_owned());
        Some(name.to_owned())
    }

    /// Follows the command `words` (`words[0]` is the program).
    pub(crate) fn follow(&mut self, words: &[String], ctx: &Ctx) {
        let Some(first) = words.first() else {
            return;
        };
        if ctx.placeholders.iter().any(|p| first.contains(p.as_str())) {
            self.raw();
        }
        let Some(name) = self.record(first) else {
            return;
        };
        let work = words.iter().map(|w| w.len() + 1).sum();
        if ctx.depth >= MAX_DEPTH || !self.spend(work) {
            self.raw();
            return;
        }
        let Some(handler) = handler(&name) else {
            return;
        };
        let next = handler(self, words, ctx);
        let consumed = match &next {
            Next::Exec(start) => &words[1..(*start).clamp(1, words.len())],
            Next::Done | Next::Raw | Next::Shell(_) => &words[1..],
        };
        if consumed
            .iter()
            .any(|w| ctx.placeholders.iter().any(|p| w.contains(p.as_str())))
        {
            // A wrapper reads words only known at run time.
            self.raw();
        }
        match next {
            Next::Done => {
                if ctx.extra_args {
                    // Arguments added at run time reach a program that can
                    // start others or run code.
                    self.raw();
                }
            }
            Next::Raw => self.raw(),
            Next::Exec(start) if (1..words.len()).contains(&start) => {
                self.follow(&words[start..], &ctx.deeper());
            }
            Next::Exec(_) => self.raw(),
            Next::Shell(text) => self.shell_text(&text, &ctx.inner()),
        }
    }

    /// Reads a text a wrapper hands to a POSIX shell.
    pub(crate) fn shell_text(&mut self, text: &str, ctx: &Ctx) {
        self.shell = true;
        if let Some((_, source)) = dynamic_parts(text) {
            // The text itself is computed at run time.
            self.raw();
            self.runs.insert(source.to_owned());
            return;
        }
        // Read up to three times: as plain words, then in two dialects.
        if ctx.depth >= MAX_DEPTH
            || !self.spend(text.len().saturating_mul(3) + 1)
            || ctx.placeholders.iter().any(|p| text.contains(p.as_str()))
        {
            self.raw();
            return;
        }
        match words::split_plain(text) {
            Some(words) => self.follow(&words, ctx),
            None => {
                self.raw();
                for command in script::commands(text) {
                    self.follow(&command.words, ctx);
                }
            }
        }
    }
}

/// The last path component of a program word (`/usr/bin/sudo` → `sudo`;
/// `sudo/` → `sudo`; `/` stays `/`).
pub(crate) fn basename(word: &str) -> &str {
    let trimmed = word.trim_end_matches('/');
    if trimmed.is_empty() {
        return word;
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// Words joined by spaces into shell text (`eval`, `watch`, `ssh host
/// ...`); a word computed at run time is put back as its source text, so
/// that reading the text again finds the same expansion.
pub(crate) fn join_words(words: &[String]) -> String {
    let mut text = String::new();
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(dynamic_parts(word).map_or(word.as_str(), |(_, source)| source));
    }
    text
}

/// Whether a word is an environment assignment as `env` and `sudo` read
/// them (`NAME=VALUE`).
pub(crate) fn is_env_assignment(word: &str) -> bool {
    word.contains('=')
}

/// Whether an environment assignment only sets a variable that cannot make
/// a program load or run other code (an allow-list: locale, time zone,
/// terminal size, colour and a few more). Any other (`LD_PRELOAD`, `PATH`,
/// `BASH_ENV`, `PYTHONPATH`, `GIT_SSH_COMMAND`, `PAGER`...) makes the call a
/// raw shell call.
pub(crate) fn harmless_env(word: &str) -> bool {
    const NAMES: &[&str] = &[
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "COLUMNS",
        "LINES",
        "NO_COLOR",
        "DEBIAN_FRONTEND",
    ];
    let Some((name, _)) = word.split_once('=') else {
        return false;
    };
    NAMES.contains(&name)
        || name.strip_prefix("LC_").is_some_and(|rest| {
            !rest.is_empty() && rest.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        })
}

/// Whether a program name is `base` with an optional version suffix
/// (`python3`, `python3.12`, `perl5.36`).
pub(crate) fn versioned(name: &str, base: &str) -> bool {
    name.strip_prefix(base)
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// Whether a script operand makes a shell or interpreter read its program
/// from the call's input (`-`, `/dev/stdin`, a descriptor).
pub(crate) fn reads_input(operand: &str) -> bool {
    operand == "-"
        || operand == "/dev/stdin"
        || operand.starts_with("/dev/fd/")
        || operand.starts_with("/proc/")
}
