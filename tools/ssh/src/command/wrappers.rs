//! Programs that run another command given as their arguments: `env`,
//! `nice`, `nohup`, `timeout`, `stdbuf`, `ionice`, `taskset`, `chrt`,
//! `setsid`, `time`, `xargs`, `find -exec`, `watch`, `flock`, `chroot`,
//! `unshare`, `nsenter`, `busybox`, `script -c` and a few more (shell
//! builtins are in [`super::builtins`], tracers in [`super::tracers`]).
//!
//! Each handler reads its program's options with that program's own rules
//! ([`opts`]) and says where the wrapped command starts; what it cannot
//! place is a raw shell call.

use super::follow::{Ctx, Handler, Next, Trace, harmless_env, is_env_assignment, join_words};
use super::opts::{self, Spec};

/// The handler of a wrapper (lower-case basename).
pub(crate) fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "env" => env,
        "nice" => nice,
        "nohup" => nohup,
        "timeout" => timeout,
        "stdbuf" => stdbuf,
        "ionice" => ionice,
        "taskset" => taskset,
        "chrt" => chrt,
        "setsid" => setsid,
        "time" => time,
        "eatmydata" => eatmydata,
        "xargs" => xargs,
        "find" => find,
        "watch" => watch,
        "flock" => flock,
        "chroot" => chroot,
        "unshare" => unshare,
        "nsenter" => nsenter,
        "busybox" => busybox,
        "script" => script,
        "sshpass" => sshpass,
        "ssh-agent" => ssh_agent,
        "fakeroot" => fakeroot,
        "faketime" => faketime,
        "entr" => entr,
        "unbuffer" => unbuffer,
        "setpriv" => setpriv,
        "runcon" => runcon,
        _ => return None,
    })
}

/// `eatmydata command...`.
fn eatmydata(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    if w.len() > 1 {
        Next::Exec(1)
    } else {
        Next::Raw
    }
}

/// Options by `spec`, then `skip` operands (a duration, a directory...),
/// then the command; `missing` when there is none.
pub(crate) fn exec_after(spec: &Spec, w: &[String], skip: usize, missing: Next) -> Next {
    match opts::parse(spec, w, 1) {
        Ok((_, rest)) if rest + skip < w.len() => Next::Exec(rest + skip),
        Ok(_) => missing,
        Err(_) => Next::Raw,
    }
}

const HELP: &[&str] = &["help", "version"];

/// `env [options] [-] [NAME=VALUE...] [command...]`.
fn env(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const ENV: Spec = Spec {
        short_flags: "iv0",
        short_values: "aCSu",
        short_optional: "",
        long_flags: &[
            "ignore-environment",
            "null",
            "debug",
            "help",
            "version",
            "list-signal-handling",
        ],
        long_values: &["argv0", "chdir", "split-string", "unset"],
        long_optional: &["block-signal", "default-signal", "ignore-signal"],
    };
    let Ok((options, mut rest)) = opts::parse(&ENV, w, 1) else {
        return Next::Raw;
    };
    if options.iter().any(|o| o.is('S', "split-string")) {
        // -S splits a string into words by env's own rules.
        return Next::Raw;
    }
    if w.get(rest).is_some_and(|a| a == "-") {
        rest += 1;
    }
    while rest < w.len() && is_env_assignment(&w[rest]) {
        if !harmless_env(&w[rest]) {
            t.raw();
        }
        rest += 1;
    }
    if rest < w.len() {
        Next::Exec(rest)
    } else {
        Next::Done
    }
}

/// `nice [-N | -n N] [command...]`.
fn nice(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const NICE: Spec = Spec {
        short_values: "n",
        long_flags: HELP,
        long_values: &["adjustment"],
        ..Spec::NONE
    };
    // The historical `-N` / `--N` / `-+N` forms come first.
    let old = |a: &str| {
        let digits = a
            .strip_prefix('-')
            .map(|d| d.trim_start_matches(['-', '+']));
        digits.is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
    };
    let mut start = 1;
    while w.get(start).is_some_and(|a| old(a)) {
        start += 1;
    }
    match opts::parse(&NICE, w, start) {
        Ok((_, rest)) if rest < w.len() => Next::Exec(rest),
        Ok(_) => Next::Done,
        Err(_) => Next::Raw,
    }
}

fn nohup(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const NOHUP: Spec = Spec {
        long_flags: HELP,
        ..Spec::NONE
    };
    exec_after(&NOHUP, w, 0, Next::Raw)
}

/// `timeout [options] DURATION command...`.
fn timeout(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const TIMEOUT: Spec = Spec {
        short_flags: "fpv",
        short_values: "ks",
        short_optional: "",
        long_flags: &[
            "foreground",
            "preserve-status",
            "verbose",
            "help",
            "version",
        ],
        long_values: &["kill-after", "signal"],
        long_optional: &[],
    };
    exec_after(&TIMEOUT, w, 1, Next::Raw)
}

fn stdbuf(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const STDBUF: Spec = Spec {
        short_values: "ioe",
        long_flags: HELP,
        long_values: &["input", "output", "error"],
        ..Spec::NONE
    };
    exec_after(&STDBUF, w, 0, Next::Raw)
}

/// `ionice [options] command...`, or `-p/-P/-u` ids (no command).
fn ionice(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const IONICE: Spec = Spec {
        short_flags: "thV",
        short_values: "cnpPu",
        short_optional: "",
        long_flags: &["ignore", "help", "version"],
        long_values: &["class", "classdata", "pid", "pgid", "uid"],
        long_optional: &[],
    };
    match opts::parse(&IONICE, w, 1) {
        Ok((o, _))
            if o.iter()
                .any(|o| o.is('p', "pid") || o.is('P', "pgid") || o.is('u', "uid")) =>
        {
            Next::Done
        }
        Ok((_, rest)) if rest < w.len() => Next::Exec(rest),
        Ok(_) => Next::Done,
        Err(_) => Next::Raw,
    }
}

/// `taskset [options] MASK command...`, or `-p` (no command).
fn taskset(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const TASKSET: Spec = Spec {
        short_flags: "acphV",
        long_flags: &["all-tasks", "cpu-list", "pid", "help", "version"],
        ..Spec::NONE
    };
    match opts::parse(&TASKSET, w, 1) {
        Ok((o, _)) if o.iter().any(|o| o.is('p', "pid")) => Next::Done,
        Ok((_, rest)) if rest + 1 < w.len() => Next::Exec(rest + 1),
        _ => Next::Raw,
    }
}

/// `chrt [options] [PRIORITY] command...`, or `-p`/`-m` (no command).
fn chrt(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const CHRT: Spec = Spec {
        short_flags: "abdefimoprRvhV",
        short_values: "TPD",
        short_optional: "",
        long_flags: &[
            "all-tasks",
            "batch",
            "deadline",
            "fifo",
            "idle",
            "max",
            "other",
            "pid",
            "rr",
            "reset-on-fork",
            "verbose",
            "help",
            "version",
        ],
        long_values: &["sched-runtime", "sched-period", "sched-deadline"],
        long_optional: &[],
    };
    match opts::parse(&CHRT, w, 1) {
        Ok((o, _)) if o.iter().any(|o| o.is('p', "pid") || o.is('m', "max")) => Next::Done,
        Ok((_, rest)) => {
            let priority = w
                .get(rest)
                .is_some_and(|a| !a.is_empty() && a.chars().all(|c| c.is_ascii_digit()));
            let start = rest + usize::from(priority);
            if start < w.len() {
                Next::Exec(start)
            } else {
                Next::Raw
            }
        }
        Err(_) => Next::Raw,
    }
}

fn setsid(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const SETSID: Spec = Spec {
        short_flags: "cfwhV",
        long_flags: &["ctty", "fork", "wait", "help", "version"],
        ..Spec::NONE
    };
    exec_after(&SETSID, w, 0, Next::Raw)
}

/// GNU `time` and the shell keyword (`time -p`).
fn time(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const TIME: Spec = Spec {
        short_flags: "apqvV",
        short_values: "fo",
        short_optional: "",
        long_flags: &[
            "append",
            "portability",
            "quiet",
            "verbose",
            "help",
            "version",
        ],
        long_values: &["format", "output"],
        long_optional: &[],
    };
    exec_after(&TIME, w, 0, Next::Done)
}

/// `xargs [options] [command...]` (default `echo`): the command runs with
/// arguments read at run time, or with `-I R` replaced in its words.
fn xargs(t: &mut Trace, w: &[String], ctx: &Ctx) -> Next {
    const XARGS: Spec = Spec {
        short_flags: "0prtx",
        short_values: "adEILnPs",
        short_optional: "eil",
        long_flags: &[
            "null",
            "interactive",
            "no-run-if-empty",
            "verbose",
            "exit",
            "show-limits",
            "open-tty",
            "help",
            "version",
        ],
        long_values: &[
            "arg-file",
            "delimiter",
            "max-args",
            "max-procs",
            "max-chars",
            "process-slot-var",
        ],
        long_optional: &["eof", "replace", "max-lines"],
    };
    let Ok((options, rest)) = opts::parse(&XARGS, w, 1) else {
        return Next::Raw;
    };
    let mut replace = None;
    for o in &options {
        if o.short == Some('I') || o.short == Some('i') || o.long == Some("replace") {
            replace = Some(o.value.unwrap_or("{}"));
        }
    }
    if rest >= w.len() {
        t.runs.insert("echo".to_owned());
        return Next::Done;
    }
    t.follow(&w[rest..], &ctx.repeated(replace, replace.is_none()));
    Next::Done
}

/// `find ... -exec CMD ... ;` (and `-execdir`, `-ok`, `-okdir`, `+`).
fn find(t: &mut Trace, w: &[String], ctx: &Ctx) -> Next {
    let mut i = 1;
    while i < w.len() {
        if !matches!(w[i].as_str(), "-exec" | "-execdir" | "-ok" | "-okdir") {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut end = start;
        let mut plus = false;
        while end < w.len() {
            if w[end] == ";" {
                break;
            }
            if w[end] == "+" && end > start && w[end - 1] == "{}" {
                plus = true;
                break;
            }
            end += 1;
        }
        if end > start {
            t.follow(&w[start..end], &ctx.repeated(Some("{}"), plus));
        }
        i = end + 1;
    }
    Next::Done
}

/// `watch [options] command...`: the words joined are run by `sh -c`
/// (with `-x`, executed as they are).
fn watch(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const WATCH: Spec = Spec {
        short_flags: "bcCegprtwxhv",
        short_values: "nqs",
        short_optional: "d",
        long_flags: &[
            "beep", "color", "no-color", "errexit", "chgexit", "precise", "no-rerun", "no-title",
            "no-wrap", "exec", "help", "version",
        ],
        long_values: &["interval", "equexit", "shotsdir"],
        long_optional: &["differences"],
    };
    match opts::parse(&WATCH, w, 1) {
        Ok((_, rest)) if rest >= w.len() => Next::Raw,
        Ok((o, rest)) if o.iter().any(|o| o.is('x', "exec")) => Next::Exec(rest),
        Ok((_, rest)) => Next::Shell(join_words(&w[rest..])),
        Err(_) => Next::Raw,
    }
}

/// `flock [options] FILE command...`, `flock FILE -c COMMAND` (by `sh -c`),
/// `flock [options] FD`.
fn flock(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const FLOCK: Spec = Spec {
        short_flags: "sxenouFhV",
        short_values: "wEc",
        short_optional: "",
        long_flags: &[
            "shared",
            "exclusive",
            "unlock",
            "nonblock",
            "nb",
            "close",
            "no-fork",
            "verbose",
            "help",
            "version",
        ],
        long_values: &["wait", "timeout", "conflict-exit-code", "command"],
        long_optional: &[],
    };
    let Ok((options, rest)) = opts::parse(&FLOCK, w, 1) else {
        return Next::Raw;
    };
    if let Some(command) = options
        .iter()
        .rev()
        .find(|o| o.is('c', "command"))
        .and_then(|o| o.value)
    {
        return Next::Shell(command.to_owned());
    }
    match w.get(rest + 1).map(String::as_str) {
        Some("-c" | "--command") => w
            .get(rest + 2)
            .map_or(Next::Raw, |c| Next::Shell(c.clone())),
        Some(_) => Next::Exec(rest + 1),
        None => Next::Done,
    }
}

/// `chroot [options] NEWROOT [command...]`; without a command, a shell.
fn chroot(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const CHROOT: Spec = Spec {
        long_flags: &["skip-chdir", "help", "version"],
        long_values: &["groups", "userspec"],
        ..Spec::NONE
    };
    match opts::parse(&CHROOT, w, 1) {
        Ok((_, rest)) if rest + 1 < w.len() => Next::Exec(rest + 1),
        _ => {
            t.shell = true;
            Next::Raw
        }
    }
}

/// `unshare [options] [program...]`; without a program, a shell.
fn unshare(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const UNSHARE: Spec = Spec {
        short_flags: "imnpuUCTfcrhV",
        short_values: "RwSGl",
        short_optional: "",
        long_flags: &[
            "fork",
            "map-root-user",
            "map-current-user",
            "map-auto",
            "keep-caps",
            "help",
            "version",
        ],
        long_values: &[
            "propagation",
            "setgroups",
            "root",
            "wd",
            "setuid",
            "setgid",
            "monotonic",
            "boottime",
            "map-user",
            "map-group",
            "map-users",
            "map-groups",
            "load-interp",
        ],
        long_optional: &[
            "ipc",
            "mount",
            "net",
            "pid",
            "uts",
            "user",
            "cgroup",
            "time",
            "kill-child",
            "mount-proc",
            "mount-binfmt",
        ],
    };
    let next = exec_after(&UNSHARE, w, 0, Next::Raw);
    if next == Next::Raw {
        t.shell = true;
    }
    next
}

/// `nsenter [options] [program...]`; without a program, a shell.
fn nsenter(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const NSENTER: Spec = Spec {
        short_flags: "amuinpUCTeFZchV",
        short_values: "tSGW",
        short_optional: "rw",
        long_flags: &[
            "all",
            "preserve-credentials",
            "no-fork",
            "follow-context",
            "join-cgroup",
            "env",
            "help",
            "version",
        ],
        long_values: &["target", "setuid", "setgid", "wdns"],
        long_optional: &[
            "mount", "uts", "ipc", "net", "pid", "user", "cgroup", "time", "root", "wd",
        ],
    };
    let next = exec_after(&NSENTER, w, 0, Next::Raw);
    if next == Next::Raw {
        t.shell = true;
    }
    next
}

/// `busybox APPLET args...`.
fn busybox(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    match w.get(1) {
        Some(applet) if !applet.starts_with('-') => Next::Exec(1),
        _ => Next::Done,
    }
}

/// `script -c COMMAND` (by the user's shell); without `-c`, an interactive
/// shell.
fn script(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const SCRIPT: Spec = Spec {
        short_flags: "aefqhV",
        short_values: "cEIOBTmo",
        short_optional: "t",
        long_flags: &[
            "append", "return", "flush", "force", "quiet", "help", "version",
        ],
        long_values: &[
            "command",
            "echo",
            "log-in",
            "log-out",
            "log-io",
            "log-timing",
            "logging-format",
            "output-limit",
        ],
        long_optional: &["timing"],
    };
    t.shell = true;
    match opts::parse_permuted(&SCRIPT, w, 1) {
        Ok((o, _)) => match o
            .iter()
            .rev()
            .find(|o| o.is('c', "command"))
            .and_then(|o| o.value)
        {
            Some(command) => Next::Shell(command.to_owned()),
            None => Next::Raw,
        },
        Err(_) => Next::Raw,
    }
}

fn sshpass(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const SSHPASS: Spec = Spec {
        short_flags: "vhV",
        short_values: "fdpP",
        short_optional: "e",
        ..Spec::NONE
    };
    exec_after(&SSHPASS, w, 0, Next::Raw)
}

/// `ssh-agent [options] [command...]` (without one, it prints its setup).
fn ssh_agent(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const AGENT: Spec = Spec {
        short_flags: "cDdks",
        short_values: "aEOPt",
        ..Spec::NONE
    };
    exec_after(&AGENT, w, 0, Next::Done)
}

/// `fakeroot [options] [--] [command...]`; `-l/--lib` and `--faked` name
/// code to load; without a command, a shell.
fn fakeroot(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const FAKEROOT: Spec = Spec {
        short_flags: "uhv",
        short_values: "lsib",
        short_optional: "",
        long_flags: &["unknown-is-real", "help", "version"],
        long_values: &["lib", "faked"],
        long_optional: &[],
    };
    match opts::parse(&FAKEROOT, w, 1) {
        Ok((o, _))
            if o.iter()
                .any(|o| o.is('l', "lib") || o.long == Some("faked")) =>
        {
            Next::Raw
        }
        Ok((_, rest)) if rest < w.len() => Next::Exec(rest),
        _ => {
            t.shell = true;
            Next::Raw
        }
    }
}

/// `faketime [options] TIMESTAMP command...`.
fn faketime(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const FAKETIME: Spec = Spec {
        short_flags: "mh",
        short_values: "fp",
        long_flags: &["exclude-monotonic", "help", "version"],
        ..Spec::NONE
    };
    exec_after(&FAKETIME, w, 1, Next::Raw)
}

/// `entr [options] utility...`; with `-s` the utility is shell text.
fn entr(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const ENTR: Spec = Spec {
        short_flags: "acdnprsz",
        ..Spec::NONE
    };
    match opts::parse(&ENTR, w, 1) {
        Ok((_, rest)) if rest >= w.len() => Next::Raw,
        Ok((o, rest)) if o.iter().any(|o| o.short == Some('s')) => Next::Shell(w[rest].clone()),
        Ok((_, rest)) => Next::Exec(rest),
        Err(_) => Next::Raw,
    }
}

/// `unbuffer [-p] program...` (an expect script).
fn unbuffer(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const UNBUFFER: Spec = Spec {
        short_flags: "p",
        ..Spec::NONE
    };
    exec_after(&UNBUFFER, w, 0, Next::Raw)
}

/// `setpriv [options] program...` (`-d` dumps, no program).
fn setpriv(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const SETPRIV: Spec = Spec {
        short_flags: "dhV",
        short_values: "",
        short_optional: "",
        long_flags: &[
            "dump",
            "clear-groups",
            "keep-groups",
            "init-groups",
            "nnp",
            "no-new-privs",
            "reset-env",
            "help",
            "version",
        ],
        long_values: &[
            "reuid",
            "regid",
            "ruid",
            "euid",
            "rgid",
            "egid",
            "groups",
            "inh-caps",
            "ambient-caps",
            "bounding-set",
            "securebits",
            "pdeathsig",
            "selinux-label",
            "apparmor-profile",
            "landlock-access",
            "landlock-rule",
            "seccomp-filter",
        ],
        long_optional: &[],
    };
    let Ok((options, rest)) = opts::parse(&SETPRIV, w, 1) else {
        return Next::Raw;
    };
    if let Some(user) = options
        .iter()
        .rev()
        .find(|o| matches!(o.long, Some("reuid" | "ruid" | "euid")))
        .and_then(|o| o.value)
    {
        t.privileged(user);
    }
    if options.iter().any(|o| o.is('d', "dump")) {
        Next::Done
    } else if rest < w.len() {
        Next::Exec(rest)
    } else {
        Next::Raw
    }
}

/// `runcon CONTEXT command...` or `runcon [-u U] [-r R] [-t T] [-l L] command...`.
fn runcon(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const RUNCON: Spec = Spec {
        short_flags: "c",
        short_values: "urtl",
        short_optional: "",
        long_flags: &["compute", "help", "version"],
        long_values: &["user", "role", "type", "range"],
        long_optional: &[],
    };
    match opts::parse(&RUNCON, w, 1) {
        Ok((o, rest)) => {
            let skip = usize::from(o.is_empty());
            if rest + skip < w.len() {
                Next::Exec(rest + skip)
            } else {
                Next::Raw
            }
        }
        Err(_) => Next::Raw,
    }
}
