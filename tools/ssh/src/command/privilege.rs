//! Privilege wrappers: `sudo`, `doas`, `su`, `runuser`, `pkexec`,
//! `systemd-run`, `sg` and `newgrp`. Each sets `sudo` and the target user
//! (`run_as`; root when none is named) and hands on its command; one that
//! starts an interactive or login shell (`sudo -s`, `sudo -i`, `su` without
//! `-c`, `pkexec` without a program) is a raw shell call.

use super::follow::{Ctx, Handler, Next, Trace, harmless_env, is_env_assignment};
use super::opts::{self, Spec};

/// The handler of a privilege wrapper (lower-case basename).
pub(crate) fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "sudo" => sudo,
        "doas" => doas,
        "su" => su,
        "runuser" => runuser,
        "pkexec" => pkexec,
        "systemd-run" => systemd_run,
        "sg" => sg,
        "newgrp" | "sudoedit" => raw,
        _ => return None,
    })
}

fn raw(t: &mut Trace, _: &[String], _: &Ctx) -> Next {
    t.privileged("root");
    t.shell = true;
    Next::Raw
}

const SUDO: Spec = Spec {
    short_flags: "AbBEHiKklnNPSsVve",
    short_values: "aCcDgpRrTtUu",
    short_optional: "h",
    long_flags: &[
        "askpass",
        "background",
        "bell",
        "edit",
        "set-home",
        "help",
        "login",
        "remove-timestamp",
        "reset-timestamp",
        "list",
        "non-interactive",
        "preserve-groups",
        "stdin",
        "shell",
        "version",
        "validate",
    ],
    long_values: &[
        "auth-type",
        "close-from",
        "chdir",
        "group",
        "host",
        "login-class",
        "prompt",
        "chroot",
        "role",
        "type",
        "command-timeout",
        "other-user",
        "user",
    ],
    long_optional: &["preserve-env"],
};

/// `sudo [options] [VAR=value...] [command...]`.
fn sudo(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    t.sudo = true;
    let Ok((options, mut rest)) = opts::parse(&SUDO, w, 1) else {
        t.privileged("root");
        return Next::Raw;
    };
    let mut user = "root";
    let (mut shell, mut edit, mut no_command) = (false, false, false);
    for o in &options {
        if o.is('u', "user") {
            user = o.value.unwrap_or("root");
        } else if o.is('i', "login") || o.is('s', "shell") {
            shell = true;
        } else if o.is('e', "edit") {
            edit = true;
        } else if ['l', 'v', 'k', 'K', 'V', 'h']
            .iter()
            .any(|&c| o.short == Some(c))
            || o.long.is_some_and(|l| {
                [
                    "list",
                    "validate",
                    "reset-timestamp",
                    "remove-timestamp",
                    "version",
                    "help",
                ]
                .contains(&l)
            })
        {
            no_command = true;
        }
    }
    t.privileged(user);
    let mut safe_env = true;
    while rest < w.len() && is_env_assignment(&w[rest]) {
        safe_env &= harmless_env(&w[rest]);
        rest += 1;
    }
    if edit {
        // sudoedit: an editor runs on the files.
        t.shell = true;
        return Next::Raw;
    }
    if shell {
        // The target user's shell runs, as a login shell for -i.
        t.shell = true;
        t.raw();
    }
    if !safe_env {
        t.raw();
    }
    if rest < w.len() {
        Next::Exec(rest)
    } else if shell || no_command {
        Next::Done
    } else {
        Next::Raw
    }
}

/// `doas [-Lns] [-C config] [-u user] command [args]`.
fn doas(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const DOAS: Spec = Spec {
        short_flags: "Lns",
        short_values: "Cu",
        ..Spec::NONE
    };
    t.sudo = true;
    let Ok((options, rest)) = opts::parse(&DOAS, w, 1) else {
        t.privileged("root");
        return Next::Raw;
    };
    let user = options
        .iter()
        .rev()
        .find(|o| o.short == Some('u'))
        .and_then(|o| o.value);
    t.privileged(user.unwrap_or("root"));
    if options
        .iter()
        .any(|o| o.short == Some('C') || o.short == Some('L'))
    {
        return Next::Done;
    }
    if options.iter().any(|o| o.short == Some('s')) {
        t.shell = true;
        return Next::Raw;
    }
    if rest < w.len() {
        Next::Exec(rest)
    } else {
        Next::Raw
    }
}

/// `su` and `runuser` (util-linux; options and operands interleave).
const SU: Spec = Spec {
    short_flags: "flmpPhV",
    short_values: "cgGsuw",
    short_optional: "",
    long_flags: &[
        "fast",
        "login",
        "preserve-environment",
        "pty",
        "help",
        "version",
    ],
    long_values: &[
        "command",
        "session-command",
        "group",
        "supp-group",
        "shell",
        "user",
        "whitelist-environment",
    ],
    long_optional: &[],
};

/// `su [options] [-] [user [argument...]]`: the user's shell runs `-c
/// COMMAND`, or starts interactive.
fn su(t: &mut Trace, w: &[String], ctx: &Ctx) -> Next {
    t.sudo = true;
    t.shell = true;
    let Ok((options, operands)) = opts::parse_permuted(&SU, w, 1) else {
        t.privileged("root");
        return Next::Raw;
    };
    if options.iter().any(|o| o.short == Some('u')) {
        // `-u` is runuser's only.
        t.privileged("root");
        return Next::Raw;
    }
    su_like(t, w, &options, &operands, ctx)
}

fn su_like(
    t: &mut Trace,
    w: &[String],
    options: &[opts::Opt<'_>],
    operands: &[usize],
    ctx: &Ctx,
) -> Next {
    let mut operands = operands.iter().map(|&i| w[i].as_str()).peekable();
    if operands.peek() == Some(&"-") {
        operands.next();
    }
    t.privileged(operands.next().unwrap_or("root"));
    let mut raw = operands.next().is_some(); // further operands go to the shell
    let mut commands = Vec::new();
    for o in options {
        if o.is('c', "command") || o.long == Some("session-command") {
            commands.extend(o.value);
        } else if o.is('s', "shell") {
            let shell = o.value.unwrap_or("");
            let name = t.record(shell);
            raw |=
                !name.is_some_and(|n| super::interpreters::is_posix_shell(&n.to_ascii_lowercase()));
        }
    }
    if commands.is_empty() {
        return Next::Raw;
    }
    for command in commands {
        t.shell_text(command, &ctx.inner());
    }
    if raw { Next::Raw } else { Next::Done }
}

/// `runuser -u user [--] command...` (no shell), or su-like.
fn runuser(t: &mut Trace, w: &[String], ctx: &Ctx) -> Next {
    t.sudo = true;
    let Ok((options, operands)) = opts::parse_permuted(&SU, w, 1) else {
        t.privileged("root");
        return Next::Raw;
    };
    let Some(user) = options
        .iter()
        .rev()
        .find(|o| o.is('u', "user"))
        .and_then(|o| o.value)
    else {
        t.shell = true;
        return su_like(t, w, &options, &operands, ctx);
    };
    t.privileged(user);
    if options
        .iter()
        .any(|o| o.is('c', "command") || o.long == Some("session-command"))
    {
        t.shell = true;
        return su_like(t, w, &options, &[], ctx);
    }
    match operands.first() {
        // The command must be the whole tail (options after it were read
        // as runuser's).
        Some(&first) if operands.iter().copied().eq(first..w.len()) => Next::Exec(first),
        Some(_) => Next::Raw,
        None => {
            t.shell = true;
            Next::Raw
        }
    }
}

/// `pkexec [--user U] [--keep-cwd] [--disable-internal-agent] program...`;
/// without a program, a root shell.
fn pkexec(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const PKEXEC: Spec = Spec {
        long_flags: &["keep-cwd", "disable-internal-agent", "help", "version"],
        long_values: &["user"],
        ..Spec::NONE
    };
    t.sudo = true;
    let Ok((options, rest)) = opts::parse(&PKEXEC, w, 1) else {
        t.privileged("root");
        return Next::Raw;
    };
    let user = options
        .iter()
        .rev()
        .find(|o| o.long == Some("user"))
        .and_then(|o| o.value);
    t.privileged(user.unwrap_or("root"));
    if options
        .iter()
        .any(|o| matches!(o.long, Some("help" | "version")))
    {
        return Next::Done;
    }
    if rest < w.len() {
        Next::Exec(rest)
    } else {
        t.shell = true;
        Next::Raw
    }
}

/// `systemd-run [options] command...`: a transient unit of the system
/// manager (root unless `--uid` or `--user`). Unit properties can name
/// further programs (`ExecStartPre=`): any `-p` is a raw shell call.
fn systemd_run(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const RUN: Spec = Spec {
        short_flags: "dGhPqrStw",
        short_values: "EHMpu",
        short_optional: "",
        long_flags: &[
            "collect",
            "help",
            "no-ask-password",
            "no-block",
            "pipe",
            "pty",
            "quiet",
            "remain-after-exit",
            "same-dir",
            "scope",
            "send-sighup",
            "shell",
            "system",
            "user",
            "version",
            "wait",
        ],
        long_values: &[
            "description",
            "gid",
            "host",
            "machine",
            "nice",
            "on-active",
            "on-boot",
            "on-calendar",
            "on-startup",
            "on-unit-active",
            "on-unit-inactive",
            "path-property",
            "property",
            "service-type",
            "setenv",
            "slice",
            "socket-property",
            "timer-property",
            "uid",
            "unit",
            "working-directory",
        ],
        long_optional: &[],
    };
    let Ok((options, rest)) = opts::parse(&RUN, w, 1) else {
        t.privileged("root");
        return Next::Raw;
    };
    let user_manager = options.iter().any(|o| o.long == Some("user"));
    if !user_manager {
        let uid = options
            .iter()
            .rev()
            .find(|o| o.long == Some("uid"))
            .and_then(|o| o.value);
        t.privileged(uid.unwrap_or("root"));
    }
    for o in &options {
        let property = o.is('p', "property") || o.long.is_some_and(|l| l.ends_with("-property"));
        let env = o.is('E', "setenv") && !o.value.is_some_and(harmless_env);
        if property || env || o.is('S', "shell") || o.is('H', "host") || o.is('M', "machine") {
            t.shell |= o.is('S', "shell");
            return Next::Raw;
        }
    }
    if rest < w.len() {
        Next::Exec(rest)
    } else {
        Next::Raw
    }
}

/// `sg group [-c] command`: the command is run by `/bin/sh -c`.
fn sg(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    // A group change, not a user change: counted as root, the strict side.
    t.privileged("root");
    let mut i = 1;
    if w.get(i).is_some_and(|a| a == "-") {
        i += 1;
    }
    i += 1; // the group
    if w.get(i).is_some_and(|a| a == "-c") {
        i += 1;
    }
    match w.get(i) {
        Some(command) if i + 1 == w.len() && !command.starts_with('-') => {
            Next::Shell(command.clone())
        }
        _ => {
            t.shell = true;
            Next::Raw
        }
    }
}
