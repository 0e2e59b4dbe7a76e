//! The packaging files stay consistent with the workspace: the Dockerfile
//! copies every member and every file compiled in from outside a crate,
//! builds and runs the binary this crate declares with commands it has, and
//! the systemd unit passes `systemd-analyze verify` with its hardening.
//! (The image itself is built where a Docker daemon runs, not here.)

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The binary name of this crate's `[[bin]]`.
fn bin_name() -> String {
    let manifest: toml::Table = toml::from_str(&read(&root().join("server/Cargo.toml"))).unwrap();
    manifest["bin"].as_array().unwrap()[0]["name"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Dockerfile instructions as (keyword, rest), continuation lines joined.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        let (kw, rest) = current.split_once(' ').unwrap_or((&current, ""));
        out.push((kw.to_uppercase(), rest.trim().to_string()));
        current.clear();
    }
    out
}

/// Files under `dir` with extension `ext`.
fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            files(&p, ext, out);
        } else if p.extension().is_some_and(|e| e == ext) {
            out.push(p);
        }
    }
}

/// Resolve `.`/`..` without touching the file system.
fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn dockerfile_copies_what_the_build_needs_and_runs_this_binary() {
    let root = root();
    let docker = instructions(&read(&root.join("Dockerfile")));
    let froms: Vec<&String> = docker
        .iter()
        .filter(|(k, _)| k == "FROM")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(froms.len(), 2, "multi-stage: {froms:?}");
    assert!(
        froms[0].starts_with("rust:1.95") && froms[0].ends_with(" AS builder"),
        "{froms:?}"
    );
    assert_eq!(froms[1], "debian:bookworm-slim", "{froms:?}");

    // Builder-stage COPY sources exist and are not excluded from the context.
    let ignored = read(&root.join(".dockerignore"));
    let builder_end = docker.iter().rposition(|(k, _)| k == "FROM").unwrap();
    let mut copied: Vec<PathBuf> = vec![];
    for (_, rest) in docker[..builder_end].iter().filter(|(k, _)| k == "COPY") {
        let parts: Vec<&str> = rest.split_whitespace().collect();
        for src in &parts[..parts.len() - 1] {
            let path = root.join(src);
            assert!(
                path.exists(),
                "the Dockerfile copies {src}, which does not exist"
            );
            assert!(
                !ignored.lines().any(|l| l.trim() == *src),
                ".dockerignore excludes {src}, which the Dockerfile copies"
            );
            copied.push(normalise(&path));
        }
    }
    let is_copied = |p: &Path| copied.iter().any(|c| p.starts_with(c));

    // Every workspace member, and every file compiled in from outside its crate.
    let workspace: toml::Table = toml::from_str(&read(&root.join("Cargo.toml"))).unwrap();
    let members = workspace["workspace"]["members"].as_array().unwrap();
    assert!(!members.is_empty());
    for m in members {
        let dir = root.join(m.as_str().unwrap());
        assert!(
            is_copied(&dir),
            "workspace member {m} is not copied by the Dockerfile"
        );
        let mut sources = vec![];
        files(&dir.join("src"), "rs", &mut sources);
        for file in sources {
            let text = read(&file);
            for (i, _) in text.match_indices("include_str!(\"") {
                let rest = &text[i + "include_str!(\"".len()..];
                let rel = &rest[..rest.find('"').unwrap()];
                let target = normalise(&file.parent().unwrap().join(rel));
                assert!(target.exists(), "{}: {rel} does not exist", file.display());
                assert!(
                    is_copied(&target),
                    "{} compiles in {}, which the Dockerfile does not copy",
                    file.display(),
                    target.display()
                );
            }
        }
    }

    // The build makes this crate's binary, and the runtime stage runs it.
    let bin = bin_name();
    let run = docker[..builder_end]
        .iter()
        .find(|(k, r)| k == "RUN" && r.contains("cargo build"))
        .map(|(_, r)| r.clone())
        .expect("a RUN cargo build step");
    assert!(
        run.contains("--locked") && run.contains("-p tollgate"),
        "{run}"
    );
    assert!(run.contains(&format!("target/release/{bin} ")), "{run}");
    let runtime = &docker[builder_end..];
    let entry = runtime
        .iter()
        .find(|(k, _)| k == "ENTRYPOINT")
        .map(|(_, r)| r.clone())
        .unwrap();
    assert_eq!(entry, format!("[\"/usr/local/bin/{bin}\"]"));
    assert!(
        runtime.iter().any(|(k, r)| k == "COPY"
            && r == &format!("--from=builder /usr/local/bin/{bin} /usr/local/bin/{bin}")),
        "{runtime:?}"
    );
    let user = runtime
        .iter()
        .find(|(k, _)| k == "USER")
        .map(|(_, r)| r.as_str());
    assert!(
        user.is_some_and(|u| !u.starts_with("root") && !u.starts_with('0')),
        "runs as {user:?}"
    );
    let cmd = runtime
        .iter()
        .find(|(k, _)| k == "CMD")
        .map(|(_, r)| r.clone())
        .unwrap();
    let cmd: Vec<String> = serde_json::from_str(&cmd).unwrap();
    assert_eq!(cmd, ["serve", "--config", "/etc/tollgate/tollgate.toml"]);
    // The command exists with that flag in this binary.
    let o = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(&cmd)
        .arg("--help")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    let unit = read(&root().join("examples/systemd/tollgate.service"));
    let value = |key: &str| -> Vec<&str> {
        unit.lines()
            .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
            .collect()
    };
    for (key, want) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "tollgate"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("EnvironmentFile", "-/etc/tollgate/tollgate.env"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        (
            "ExecStart",
            "/usr/local/bin/tollgate serve --config /etc/tollgate/tollgate.toml",
        ),
    ] {
        assert_eq!(value(key), [want], "{key}");
    }
    // Every Exec line's command exists in this binary with its flags.
    for key in ["ExecStartPre", "ExecStart"] {
        for line in value(key) {
            let args: Vec<&str> = line.split_whitespace().skip(1).collect();
            let o = Command::new(env!("CARGO_BIN_EXE_tollgate"))
                .args(&args)
                .arg("--help")
                .output()
                .unwrap();
            assert!(o.status.success(), "{key}={line}");
        }
    }

    // systemd's own check, with the binary where this build put it.
    let dir = std::env::temp_dir().join(format!("tollgate-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tollgate.service");
    let unit = unit.replace("/usr/local/bin/tollgate", env!("CARGO_BIN_EXE_tollgate"));
    std::fs::write(&path, &unit).unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("systemd-analyze: {e} (install it: apt-get install systemd)"));
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{out}");
    assert!(!out.contains("tollgate.service"), "{out}");
    // A broken unit fails the same check (the check can fail).
    std::fs::write(
        &path,
        unit.replace("ProtectSystem=strict", "ProtectSystem=sometimes"),
    )
    .unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stderr);
    assert!(
        out.contains("tollgate.service:") && out.to_lowercase().contains("protect system"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
