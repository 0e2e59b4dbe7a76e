//! Tools that start programs through some of their options or read
//! commands from their input: `ssh` (the remote command is shell text on the
//! other host), `scp`, `sftp`, `tar` (`--to-command`, `--checkpoint-action`,
//! `-I`, `-F`...), `rsync` (`-e`, `--rsync-path`), `git` (`-c`, `--exec-path`,
//! `--upload-pack`, editors, subcommands not on a known list), `zip -TT`,
//! editors that take commands from their input (`vi`, `ex`, `ed`,
//! `emacs`), pagers given commands (`less +...`, `man -P`), `nc -e`,
//! `socat EXEC:`, `at`, `crontab`, `parallel`, `tmux`, `screen`,
//! `hyperfine`, `capsh`, database clients (`psql \!`, `sqlite3 .shell`),
//! `apt-get -o` (hooks such as `APT::Update::Pre-Invoke`), `systemctl edit`,
//! `make --eval` / `make -f -` and `rpm --eval`. Such an option, or one that cannot be read, is
//! a raw shell call; otherwise the tool is recorded like any program.

use super::follow::{Ctx, Handler, Next, Trace, join_words, reads_input};
use super::opts::{self, Spec, long_abbreviates};
use super::words::is_plain;

/// The handler of such a tool (lower-case basename).
pub(crate) fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "ssh" => ssh,
        "scp" => scp,
        "tar" | "gtar" | "bsdtar" => tar,
        "rsync" => rsync,
        "git" => git,
        "zip" => zip,
        "less" | "more" | "most" => pager,
        "man" => man,
        "nc" | "ncat" | "netcat" => netcat,
        "socat" => socat,
        "crontab" => crontab,
        "sftp" | "vi" | "vim" | "nvim" | "view" | "vimdiff" | "rvim" | "rview" | "gvim" | "ex"
        | "ed" | "red" | "emacs" | "emacsclient" | "at" | "batch" | "parallel" | "sem" | "tmux"
        | "screen" | "hyperfine" | "capsh" | "psql" | "mysql" | "mariadb" | "sqlite3" | "mongo"
        | "mongosh" => commands_from_anywhere,
        "apt" | "apt-get" | "aptitude" | "apt-cache" => apt,
        "systemctl" => systemctl,
        "make" | "gmake" => make,
        "rpm" => rpm,
        _ => return None,
    })
}

/// Tools that run commands given in their input or options, whatever the
/// arguments: a raw shell call.
fn commands_from_anywhere(t: &mut Trace, _: &[String], _: &Ctx) -> Next {
    t.shell = true;
    Next::Raw
}

const SSH: Spec = Spec {
    short_flags: "46AaCfGgKkMNnqsTtVvXxYy",
    short_values: "BbcDEeFIiJLlmOoPpQRSWw",
    ..Spec::NONE
};

/// `ssh [options] destination [command...]`: the words of the command are
/// joined and run by the remote account's shell. `-o` (ProxyCommand,
/// LocalCommand...), `-F` (a config file that can hold them), `-I` (a
/// PKCS#11 library) and `-s` (a subsystem) are raw shell calls, and so is an
/// interactive session (no command).
fn ssh(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    let mut options = Vec::new();
    let mut i = 1;
    let mut destination = false;
    loop {
        let Ok((o, rest)) = opts::parse(&SSH, w, i) else {
            return Next::Raw;
        };
        options.extend(o);
        let terminated = rest > 0 && w.get(rest - 1).is_some_and(|a| a == "--");
        i = rest;
        if !destination && i < w.len() {
            destination = true;
            i += 1;
            // OpenSSH reads options after the destination too.
            if !terminated && w.get(i).is_some_and(|a| opts::is_option(a)) {
                continue;
            }
        }
        break;
    }
    if !destination
        || options
            .iter()
            .any(|o| matches!(o.short, Some('o' | 'F' | 'I' | 's')))
    {
        return Next::Raw;
    }
    if i < w.len() {
        return Next::Shell(join_words(&w[i..]));
    }
    if options
        .iter()
        .any(|o| matches!(o.short, Some('N' | 'W' | 'G' | 'O' | 'Q')))
    {
        Next::Done
    } else {
        t.shell = true;
        Next::Raw
    }
}

/// `scp`: `-S` (the program to connect with), `-o`, `-F` and `-D` are raw;
/// a remote path with shell syntax is raw too (the legacy protocol hands it
/// to the remote shell). It starts `ssh`.
fn scp(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const SCP: Spec = Spec {
        short_flags: "346ABCOpqRrTv",
        short_values: "cDFiJlSoPX",
        ..Spec::NONE
    };
    let Ok((options, rest)) = opts::parse(&SCP, w, 1) else {
        return Next::Raw;
    };
    if options
        .iter()
        .any(|o| matches!(o.short, Some('S' | 'o' | 'F' | 'D')))
    {
        return Next::Raw;
    }
    for operand in &w[rest..] {
        let remote = operand
            .strip_prefix("scp://")
            .or_else(|| operand.split_once(':').map(|(_, path)| path));
        if let Some(path) = remote {
            t.runs.insert("ssh".to_owned());
            if !path.chars().all(|c| is_plain(c) || c == '=' || c == '~') {
                return Next::Raw;
            }
        }
    }
    Next::Done
}

/// `tar`: options that name a program to run, in any spelling (long
/// abbreviations, short clusters, the old dash-less first word).
fn tar(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const RUNS: &[&str] = &[
        "to-command",
        "checkpoint-action",
        "use-compress-program",
        "rsh-command",
        "rmt-command",
        "info-script",
        "new-volume-script",
    ];
    for (k, a) in w.iter().enumerate().skip(1) {
        if a == "--" {
            break;
        }
        let short = !a.starts_with("--") && (a.starts_with('-') || k == 1);
        // `--checkpoint[=N]` is an option of its own, not an abbreviation.
        let checkpoint = a == "--checkpoint" || a.starts_with("--checkpoint=");
        if (long_abbreviates(a, RUNS) && !checkpoint) || (short && a.contains(['I', 'F'])) {
            return Next::Raw;
        }
    }
    Next::Done
}

/// `rsync`: `-e`/`--rsh` (the remote shell program), `--rsync-path` (run on
/// the remote side), `-M`/`--remote-option`, `--daemon`, `--config`.
fn rsync(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const RUNS: &[&str] = &[
        "rsh",
        "rsync-path",
        "remote-option",
        "daemon",
        "config",
        "early-input",
    ];
    for a in &w[1..] {
        if a == "--" {
            break;
        }
        let short = !a.starts_with("--") && opts::is_option(a);
        if long_abbreviates(a, RUNS) || (short && a.contains(['e', 'M'])) {
            return Next::Raw;
        }
    }
    Next::Done
}

/// `zip -TT CMD` / `--unzip-command` runs CMD to test the archive.
fn zip(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    if w[1..]
        .iter()
        .any(|a| a.starts_with("-TT") || long_abbreviates(a, &["unzip-command"]))
    {
        Next::Raw
    } else {
        Next::Done
    }
}

/// `less +CMD`, `more +CMD`: commands at start-up (`!` runs a shell).
fn pager(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    if w[1..]
        .iter()
        .any(|a| a.starts_with('+') || a.starts_with("-+") || a == "--")
    {
        Next::Raw
    } else {
        Next::Done
    }
}

/// `man -P PAGER`, `--pager`, `-H`/`--html` (a browser) run a program.
fn man(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    let runs = |a: &String| {
        (a.starts_with('-') && !a.starts_with("--") && a.contains(['P', 'H']))
            || long_abbreviates(a, &["pager", "html", "browser", "preprocessor"])
    };
    if w[1..].iter().any(runs) {
        Next::Raw
    } else {
        Next::Done
    }
}

/// `nc -e PROG`, `-c CMD`, `ncat --exec/--sh-exec/--lua-exec`.
fn netcat(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    let runs = |a: &String| {
        (a.starts_with('-') && !a.starts_with("--") && a.contains(['e', 'c']))
            || long_abbreviates(a, &["exec", "sh-exec", "lua-exec"])
    };
    if w[1..].iter().any(runs) {
        t.shell = true;
        Next::Raw
    } else {
        Next::Done
    }
}

/// `socat ... EXEC:prog` / `SYSTEM:cmd`.
fn socat(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    if w[1..].iter().any(|a| {
        let a = a.to_ascii_lowercase();
        a.contains("exec") || a.contains("system")
    }) {
        t.shell = true;
        Next::Raw
    } else {
        Next::Done
    }
}

/// `crontab -l` lists; anything else installs or edits commands.
fn crontab(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    let mut i = 1;
    let mut list = false;
    while let Some(a) = w.get(i) {
        match a.as_str() {
            "-l" => list = true,
            "-u" => i += 1,
            _ => return Next::Raw,
        }
        i += 1;
    }
    if list { Next::Done } else { Next::Raw }
}

/// `git [global options] SUBCOMMAND [args]`.
fn git(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    const VALUES: &[&str] = &[
        "-C",
        "--git-dir",
        "--work-tree",
        "--namespace",
        "--super-prefix",
        "--list-cmds",
        "--attr-source",
    ];
    const FLAGS: &[&str] = &[
        "-p",
        "--paginate",
        "-P",
        "--no-pager",
        "--bare",
        "--no-replace-objects",
        "--literal-pathspecs",
        "--glob-pathspecs",
        "--noglob-pathspecs",
        "--icase-pathspecs",
        "--no-optional-locks",
        "--no-advice",
        "--no-lazy-fetch",
    ];
    let mut i = 1;
    while let Some(a) = w.get(i) {
        if !a.starts_with('-') {
            break;
        }
        if matches!(
            a.as_str(),
            "--version" | "-v" | "--help" | "-h" | "--html-path" | "--man-path" | "--info-path"
        ) {
            return Next::Done;
        }
        if VALUES.contains(&a.as_str()) {
            i += 2;
        } else if FLAGS.contains(&a.as_str())
            || VALUES.iter().any(|v| {
                v.starts_with("--") && a.strip_prefix(v).is_some_and(|r| r.starts_with('='))
            })
        {
            i += 1;
        } else {
            // -c name=value, --config-env, --exec-path and the unknown.
            return Next::Raw;
        }
    }
    let Some(sub) = w.get(i) else {
        return Next::Done;
    };
    if git_subcommand_runs(sub, &w[i + 1..]) {
        Next::Raw
    } else {
        Next::Done
    }
}

/// Whether a git subcommand with these arguments can start a program the
/// call names or an editor (which reads commands from the input).
fn git_subcommand_runs(sub: &str, args: &[String]) -> bool {
    let any = |f: &dyn Fn(&str) -> bool| args.iter().any(|a| f(a));
    let flag = |short: &[char], long: &[&str]| {
        any(&|a: &str| {
            long_abbreviates(a, long)
                || (a.starts_with('-') && !a.starts_with("--") && a[1..].contains(short))
        })
    };
    let remote = |extra: &[&str]| {
        let mut long = vec!["upload-pack", "receive-pack", "exec"];
        long.extend_from_slice(extra);
        any(&|a: &str| long_abbreviates(a, &long))
    };
    match sub {
        "status" | "log" | "diff" | "show" | "blame" | "annotate" | "shortlog" | "describe"
        | "rev-parse" | "rev-list" | "ls-files" | "ls-tree" | "cat-file" | "branch" | "rm"
        | "mv" | "init" | "gc" | "fsck" | "reflog" | "show-ref" | "for-each-ref"
        | "symbolic-ref" | "update-ref" | "merge-base" | "name-rev" | "count-objects"
        | "version" | "format-patch" | "apply" | "check-ignore" | "check-attr" | "diff-tree"
        | "diff-index" | "diff-files" | "hash-object" | "bundle" | "cherry" | "range-diff"
        | "verify-commit" | "verify-tag" | "whatchanged" | "worktree" | "sparse-checkout"
        | "remote" | "show-branch" | "write-tree" | "update-index" => false,
        "checkout" | "switch" | "restore" | "reset" | "stash" => flag(&['p'], &["patch"]),
        "add" => flag(&['p', 'i', 'e'], &["patch", "interactive", "edit"]),
        "clean" => flag(&['i'], &["interactive"]),
        "am" => flag(&['i'], &["interactive"]),
        "fetch" | "pull" | "push" | "archive" => remote(&["remote"]),
        "clone" => remote(&["config", "template"]) || flag(&['u', 'c'], &[]),
        "ls-remote" => remote(&[]) || flag(&['u'], &[]),
        "grep" => flag(&['O'], &["open-files-in-pager"]),
        "config" => flag(&['e'], &["edit"]),
        "merge" => flag(&['e', 's'], &["edit", "strategy"]),
        "cherry-pick" | "revert" => flag(&['e'], &["edit", "strategy"]),
        "rebase" => flag(
            &['i', 'x', 'e', 's'],
            &["interactive", "exec", "edit-todo", "strategy"],
        ),
        "commit" => {
            let message = flag(
                &['m', 'F', 'C'],
                &["message", "file", "reuse-message", "no-edit", "fixup"],
            );
            !message
                || flag(
                    &['e', 'p', 'c'],
                    &["edit", "patch", "interactive", "reedit-message"],
                )
        }
        "tag" => {
            let annotated = flag(&['a', 's', 'u'], &["annotate", "sign", "local-user"]);
            let message = flag(&['m', 'F'], &["message", "file"]);
            flag(&['e'], &["edit"]) || (annotated && !message)
        }
        "notes" => {
            let read_only = args.first().is_some_and(|a| {
                matches!(a.as_str(), "list" | "show" | "prune" | "get-ref" | "remove")
            });
            !read_only && !flag(&['m', 'F', 'C'], &["message", "file", "reuse-message"])
        }
        "help" => flag(&['w', 'i'], &["web", "info"]),
        // Subcommands that run programs (submodule foreach, bisect run,
        // difftool, mergetool, filter-branch...), aliases and the unknown.
        _ => true,
    }
}

/// `apt-get -o NAME=VALUE` / `-c FILE` set configuration that names
/// commands to run (`APT::Update::Pre-Invoke`, `DPkg::Pre-Invoke`).
fn apt(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    let runs = |a: &String| {
        (a.starts_with('-') && !a.starts_with("--") && a.contains(['o', 'c']))
            || long_abbreviates(a, &["option", "config-file"])
    };
    if w[1..].iter().any(runs) {
        Next::Raw
    } else {
        Next::Done
    }
}

/// `systemctl edit` opens an editor (which reads commands from the input).
fn systemctl(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    if w[1..].iter().any(|a| a == "edit") {
        Next::Raw
    } else {
        Next::Done
    }
}

/// `make --eval TEXT` and a makefile read from the input (`-f -`) run
/// recipes the call gives; a makefile on the host is like a script.
fn make(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    let mut words = w[1..].iter().peekable();
    while let Some(a) = words.next() {
        let from_input = match a.as_str() {
            "-f" | "--file" | "--makefile" => words.peek().is_some_and(|f| reads_input(f)),
            _ => a
                .strip_prefix("--file=")
                .or_else(|| a.strip_prefix("--makefile="))
                .or_else(|| a.strip_prefix("-f"))
                .is_some_and(|f| !f.is_empty() && reads_input(f)),
        };
        if from_input || a == "-E" || long_abbreviates(a, &["eval"]) {
            return Next::Raw;
        }
    }
    Next::Done
}

/// `rpm --eval` / `-E` runs macros (`%(shell command)`), `--pipe` a command.
fn rpm(_: &mut Trace, w: &[String], _: &Ctx) -> Next {
    let runs = |a: &String| a.starts_with("-E") || long_abbreviates(a, &["eval", "pipe"]);
    if w[1..].iter().any(runs) {
        Next::Raw
    } else {
        Next::Done
    }
}
