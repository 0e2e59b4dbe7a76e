//! Anchored audit chain (issue 14, item 3): `audit checkpoint` and `audit
//! verify --checkpoint` against stores edited as an attacker with the
//! database file would (tail cut and head rewound, chain rewritten), with
//! keys openssl made; and the checkpoint `serve` writes at shutdown.

use std::path::Path;
use std::process::Command;

use super::{SECRET, bin, record_events, run, stdout, tamper, text, tmp, write};

/// `openssl genpkey -algorithm ed25519 -out <dir>/<name>` (and its public
/// key beside it as `<name>.pub`).
fn openssl_key(dir: &Path, name: &str) {
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    let key = dir.join("keys").join(name);
    let o = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&key)
        .output()
        .expect("openssl is needed to make the test keys: apt-get install openssl");
    assert!(o.status.success(), "{}", text(&o));
    let o = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(dir.join("keys").join(format!("{name}.pub")))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

/// A config in `dir` (no connection) whose `[audit]` body is `audit`.
fn audit_config(dir: &Path, file: &str, audit: &str) -> String {
    write(
        dir,
        file,
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"tollgate-data\"\n[auth]\nhs256_secret = \"{SECRET}\"\n[audit]\n{audit}\n"
        ),
    )
}

/// The contract's `[audit]` with key `keys/<key>` and folder `checkpoints`.
fn contract_audit(key: &str) -> String {
    format!(
        "checkpoint_key = \"${{file:keys/{key}}}\"\ncheckpoint_dir = \"checkpoints\"\ncheckpoint_interval = \"1m\""
    )
}

fn calls(dir: &Path, n: usize) {
    let calls: Vec<_> = (0..n)
        .map(|i| {
            (
                "ann",
                "sql_query",
                serde_json::json!({"connection": "shop", "sql": format!("SELECT {i}")}),
                "allow",
                "ok",
                Some(1),
            )
        })
        .collect();
    record_events(dir, &calls);
}

/// `audit checkpoint`: its one stdout line, a file in checkpoints/.
fn checkpoint(cfg: &str) -> String {
    let o = run(&["audit", "checkpoint", "--config", cfg]);
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    let path = out.trim().to_string();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(Path::new(&path).is_file(), "{path}");
    assert!(path.contains("checkpoints/checkpoint-"), "{path}");
    path
}

fn verify(cfg: &str, cp: &str) -> std::process::Output {
    run(&["audit", "verify", "--config", cfg, "--checkpoint", cp])
}

/// Cut the tail after `seq` and rewind the recorded head onto it.
fn truncate_to(dir: &Path, seq: u64) {
    tamper(
        dir,
        &format!("DELETE FROM audit_events WHERE seq > {seq}"),
        None,
    );
    tamper(
        dir,
        &format!(
            "UPDATE audit_head SET seq = {seq}, hash = (SELECT hash FROM audit_events WHERE seq = {seq})"
        ),
        None,
    );
}

#[test]
fn a_checkpoint_detects_a_cut_tail_that_the_chain_alone_does_not() {
    let d = tmp("cp-truncate");
    openssl_key(&d, "audit.pem");
    let cfg = audit_config(&d, "tollgate.toml", &contract_audit("audit.pem"));
    calls(&d, 5);
    let cp = checkpoint(&cfg);
    let o = verify(&cfg, &cp);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("covered"), "{}", text(&o));

    truncate_to(&d, 3);
    let o = run(&["audit", "verify", "--config", &cfg]);
    assert!(
        o.status.success(),
        "the chain alone cannot see it: {}",
        text(&o)
    );
    let o = verify(&cfg, &cp);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("the store's head is seq 3, the checkpoint covers up to seq 5"),
        "{}",
        text(&o)
    );
    // Checkpoints of the store as it is now still pass: the older, shorter
    // one too, the newer one that covers less.
    let now = checkpoint(&cfg);
    assert!(verify(&cfg, &now).status.success());
    let o = run(&[
        "audit",
        "verify",
        "--config",
        &cfg,
        "--checkpoint",
        &now,
        "--checkpoint",
        &cp,
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "any one not covered fails: {}",
        text(&o)
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_rewritten_chain_another_key_or_an_edited_file_fail() {
    let d = tmp("cp-forge");
    openssl_key(&d, "audit.pem");
    openssl_key(&d, "other.pem");
    let cfg = audit_config(&d, "tollgate.toml", &contract_audit("audit.pem"));
    let other = audit_config(&d, "other.toml", &contract_audit("other.pem"));
    // An auditor's copy of the config: only the public key.
    let auditor = audit_config(
        &d,
        "auditor.toml",
        "checkpoint_key = \"${file:keys/audit.pem.pub}\"",
    );
    calls(&d, 5);
    let cp = checkpoint(&cfg);
    let o = verify(&auditor, &cp);
    assert!(o.status.success(), "the public key verifies: {}", text(&o));
    let o = run(&["audit", "checkpoint", "--config", &auditor]);
    assert_eq!(o.status.code(), Some(1), "nor signs: {}", text(&o));

    // Signed by another key: refused, whatever the store holds.
    let by_other = checkpoint(&other);
    let o = verify(&cfg, &by_other);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("not by the configured key"),
        "{}",
        text(&o)
    );

    // Edited after signing: the seq it names lowered to what a cut store holds.
    let body = std::fs::read_to_string(&cp).unwrap();
    assert!(body.contains("\"seq\": 5"), "{body}");
    let edited = write(&d, "edited.json", &body.replace("\"seq\": 5", "\"seq\": 4"));
    let o = verify(&cfg, &edited);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("edited after it was signed"),
        "{}",
        text(&o)
    );
    let junk = write(&d, "junk.json", "{\"seq\": 5}");
    let o = verify(&cfg, &junk);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("not a valid tollgate audit checkpoint"),
        "{}",
        text(&o)
    );

    // Cut to 3 and grown back to 5 with other calls: a valid chain, not
    // the one signed.
    truncate_to(&d, 3);
    calls(&d, 2);
    let o = run(&["audit", "verify", "--config", &cfg]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("5 events checked"), "{}", text(&o));
    let o = verify(&cfg, &cp);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("the event at seq 5 hashes to"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("rewritten"), "{}", text(&o));

    // Edited before the checkpoint's seq: the chain breaks within it.
    tamper(&d, "UPDATE audit_events SET tool = 'x' WHERE seq = 2", None);
    let o = verify(&cfg, &cp);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("broken within what the checkpoint covers (up to seq 5)"),
        "{}",
        text(&o)
    );
    // And a broken chain is never signed.
    let o = run(&["audit", "checkpoint", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not signing"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn verify_with_a_checkpoint_needs_a_trusted_key() {
    let d = tmp("cp-nokey");
    openssl_key(&d, "audit.pem");
    let cfg = audit_config(&d, "tollgate.toml", &contract_audit("audit.pem"));
    calls(&d, 1);
    let cp = checkpoint(&cfg);
    let bare = audit_config(&d, "bare.toml", "");
    let o = verify(&bare, &cp);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("sets no audit.checkpoint_key"),
        "{}",
        text(&o)
    );
    let key = std::fs::read_to_string(d.join("keys/audit.pem")).unwrap();
    let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    for o in [
        verify(&cfg, &cp),
        run(&["audit", "checkpoint", "--config", &cfg]),
    ] {
        assert!(
            !text(&o).contains(&body),
            "the key never shows: {}",
            text(&o)
        );
    }
    // `check` reads the key: a wrong one is a config error.
    write(
        &d,
        "keys/bad.pem",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    let bad = audit_config(&d, "bad.toml", &contract_audit("bad.pem"));
    write(
        &d,
        "policies/p.cedar",
        "permit(principal, action == Tollgate::Action::\"connect\", resource);\n",
    );
    let o = run(&["check", "--config", &bad]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("not an Ed25519 PKCS#8 key"),
        "{}",
        text(&o)
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn serve_writes_a_checkpoint_at_shutdown() {
    use std::io::{BufRead, BufReader};
    let d = tmp("cp-serve");
    openssl_key(&d, "audit.pem");
    write(
        &d,
        "policies/p.cedar",
        "permit(principal, action == Tollgate::Action::\"connect\", resource);\n",
    );
    // An interval longer than the test: the one file is the shutdown's.
    let cfg = audit_config(
        &d,
        "tollgate.toml",
        "checkpoint_key = \"${file:keys/audit.pem}\"\ncheckpoint_dir = \"checkpoints\"\ncheckpoint_interval = \"1h\"",
    );
    calls(&d, 3);
    let mut child = bin()
        .args(["serve", "--config", &cfg, "--log-format", "text"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("tollgate listening") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let started = rx.recv_timeout(std::time::Duration::from_secs(60));
    if started.is_err() {
        let _ = child.kill();
    }
    let files = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d.join("checkpoints"))
            .map(|r| r.map(|e| e.unwrap().path().display().to_string()).collect())
            .unwrap_or_default()
    };
    assert!(files(&d).is_empty(), "none before the interval or shutdown");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let log = log.join().unwrap();
    started.unwrap_or_else(|_| panic!("serve did not start:\n{log}"));
    assert!(status.success(), "{status}:\n{log}");
    assert!(log.contains("audit checkpoint written"), "{log}");
    let written = files(&d);
    assert_eq!(written.len(), 1, "{written:?}\n{log}");
    let body: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&written[0]).unwrap()).unwrap();
    assert_eq!(body["seq"], 3, "{body}");
    let o = verify(&cfg, &written[0]);
    assert!(o.status.success(), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&d);
}
