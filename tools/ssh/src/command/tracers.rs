//! Tracers and debuggers that start a program: `strace`, `ltrace` (the
//! command after their options, or `-p PID`), `valgrind` (the program after
//! its `--opt=value` options; `--db-command` is a raw shell call) and `gdb`
//! (commands from `-ex` and from its input: always a raw shell call; the
//! program after `--args` is recorded).

use super::follow::{Ctx, Handler, Next, Trace, harmless_env, is_env_assignment};
use super::opts::{self, Spec};

/// The handler of a tracer (lower-case basename).
pub(crate) fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "strace" => strace,
        "ltrace" => ltrace,
        "gdb" => gdb,
        "valgrind" => valgrind,
        _ => return None,
    })
}

/// `strace [options] command...` or `-p PID`.
fn strace(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const STRACE: Spec = Spec {
        short_flags: "cCdDfFhiknqrtTvVwxyYzZ",
        short_values: "abeEIoOpPsSuUX",
        short_optional: "",
        long_flags: &[
            "summary-only",
            "summary",
            "follow-forks",
            "output-separately",
            "no-abbrev",
            "quiet",
            "verbose",
            "timestamps",
            "relative-timestamps",
            "syscall-times",
            "decode-fds",
            "help",
            "version",
        ],
        long_values: &[
            "trace",
            "signal",
            "status",
            "abbrev",
            "raw",
            "read",
            "write",
            "inject",
            "fault",
            "output",
            "attach",
            "string-limit",
            "user",
            "env",
            "summary-sort-by",
            "columns",
        ],
        long_optional: &[],
    };
    traced(t, w, &STRACE)
}

fn ltrace(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const LTRACE: Spec = Spec {
        short_flags: "bcCfhiLrStTV",
        short_values: "aADeEFlnopsuwx",
        short_optional: "",
        long_flags: &["demangle", "help", "version"],
        long_values: &["align", "config", "indent", "library", "output"],
        long_optional: &[],
    };
    traced(t, w, &LTRACE)
}

fn traced(t: &mut Trace, w: &[String], spec: &Spec) -> Next {
    let Ok((options, rest)) = opts::parse(spec, w, 1) else {
        return Next::Raw;
    };
    for o in &options {
        if o.is('E', "env")
            && !o
                .value
                .is_some_and(|v| !is_env_assignment(v) || harmless_env(v))
        {
            t.raw();
        }
    }
    if rest < w.len() {
        Next::Exec(rest)
    } else if options.iter().any(|o| o.is('p', "attach")) {
        Next::Done
    } else {
        Next::Raw
    }
}

/// `gdb` runs commands from its arguments (`-ex`) and from its input: a raw
/// shell call; the program after `--args` is recorded.
fn gdb(t: &mut Trace, w: &[String], ctx: &Ctx) -> Next {
    if let Some(at) = w.iter().position(|a| a == "--args") {
        t.follow(&w[at + 1..], &ctx.inner());
    }
    Next::Raw
}

/// `valgrind [--opt=value...] program...`; `--db-command` runs a program.
fn valgrind(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    let mut i = 1;
    while let Some(a) = w.get(i) {
        if a == "--" {
            i += 1;
            break;
        }
        if !opts::is_option(a) {
            break;
        }
        if a.contains("db-") || a.contains("vgdb") {
            return Next::Raw;
        }
        i += 1;
    }
    if i < w.len() {
        Next::Exec(i)
    } else {
        Next::Raw
    }
}
