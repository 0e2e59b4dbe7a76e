//! `ssh_exec` through the whole gateway on a real OpenSSH sshd
//! (tests/src/sshd.rs): what policy permits runs and leaves its mark on the
//! host, what it refuses (a chained command, a hidden sudo, a raw shell)
//! leaves none; a non-zero exit is a result; stdin reaches the command;
//! stdout is masked and so is the recording kept beside the audit store,
//! whose SHA-256 the event names and `audit verify` checks; a timeout ends
//! the remote process (checked on the host); a host presenting another key
//! is refused; the server's private key appears in no result, error or
//! audit record.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use gateway_core::outcome::CallResult;
use serde_json::{Value, json};
use tollgate_tests::served::{Served, principal};
use tollgate_tests::sshd::SshdServer;

const POLICY: &str = r#"
@id("connect")
permit (principal, action == Tollgate::Action::"connect", resource);
@id("agents-plain-programs")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"ssh:exec", resource)
when { ["touch", "true", "false", "cat", "printf", "sleep", "uname", "id", "ls"].containsAll(context.runs)
       && !context.sudo && !context.shell };
@id("no-raw-shell")
forbid (principal, action == Tollgate::Action::"ssh:shell", resource);
@id("auditors")
permit (principal in Tollgate::Group::"auditors", action == Tollgate::Action::"audit:read", resource == Tollgate::Audit::"log");
"#;

/// The `[[connection]]` table of an SSH connection `name` to `sshd`, its
/// private key in a file under `dir`, pinned to `host_key`.
fn ssh_connection(sshd: &SshdServer, dir: &Path, name: &str, host_key: &str) -> String {
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&key, sshd.client_key_pem()).unwrap();
    format!(
        "[[connection]]\nname = \"{name}\"\nkind = \"ssh\"\nhost = \"127.0.0.1\"\nport = {}\n\
         user = \"{}\"\nprivate_key = \"${{file:{}}}\"\nhost_key = \"{host_key}\"\ntimeout = \"20s\"\n\
         max_output_bytes = 65536\n",
        sshd.port(),
        sshd.user(),
        key.display()
    )
}

async fn cli(args: &[&str]) -> ExitCode {
    let cli = tollgate_server::cli::Cli::parse_from(args);
    tollgate_server::commands::run(cli)
        .await
        .expect("command runs")
}

fn ok(r: &CallResult) -> &Value {
    assert!(!r.is_error, "{}", r.structured);
    &r.structured
}

/// No process whose command line holds `marker` is left on the host.
async fn no_process_left(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = std::process::Command::new("pgrep")
            .args(["-f", marker])
            .output()
            .expect("pgrep runs");
        if out.stdout.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "a remote process holding {marker} outlived its call: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_exec_through_the_gateway_on_a_real_sshd() {
    tollgate_server::init_crypto();
    let sshd = SshdServer::start().expect("sshd starts");
    // Marks the remote user can write and the test can read.
    let marks = tollgate_tests::TempDir::new("ssh-marks").unwrap();
    std::fs::set_permissions(
        marks.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let mark = |n: &str| marks.path().join(n);
    let s = Served::start("ssh", POLICY, "", |dir| {
        ssh_connection(&sshd, dir, "web", &sshd.host_key_line())
            + &ssh_connection(&sshd, dir, "impostor", &sshd.other_host_key_line())
    })
    .await;
    let agent = principal("agent-1", &["agents"]);

    // Permitted: it runs, and the mark is on the host.
    let made = mark("made");
    let r = s
        .call(
            &agent,
            "ssh_exec",
            json!({"connection": "web", "argv": ["touch", made.to_str().unwrap()]}),
        )
        .await;
    let v = ok(&r);
    assert_eq!(v["exit_code"], 0, "{v}");
    assert!(v["duration_ms"].is_u64(), "{v}");
    assert!(
        made.exists(),
        "the permitted command did not run on the host"
    );

    // A plain-words command line is that argv.
    let r = s
        .call(&agent, "ssh_exec", json!({"connection": "web", "command": format!("touch '{}'", mark("quoted").display())}))
        .await;
    ok(&r);
    assert!(mark("quoted").exists());

    // Refused: chaining, substitution, a hidden sudo, a shell wrapper. None
    // leaves a mark.
    let refused = [
        json!({"command": format!("true; touch {}", mark("chained").display())}),
        json!({"command": format!("true && touch {}", mark("chained").display())}),
        json!({"command": format!("touch {}\ntrue", mark("chained").display())}),
        json!({"command": format!("touch $(echo {})", mark("chained").display())}),
        json!({"argv": ["sh", "-c", format!("touch {}", mark("chained").display())]}),
        json!({"argv": ["env", "X=1", "sudo", "touch", mark("chained").to_str().unwrap()]}),
        json!({"argv": ["timeout", "5", "touch", mark("chained").to_str().unwrap()]}),
    ];
    for mut args in refused {
        args["connection"] = json!("web");
        let r = s.call(&agent, "ssh_exec", args.clone()).await;
        assert!(r.is_error, "{args} was not refused: {}", r.structured);
    }
    assert!(
        !mark("chained").exists(),
        "a refused command ran on the host"
    );

    // A word holding shell syntax, as argv, is one quoted argument.
    let odd = mark("a;b $(x) `y` 'q'");
    let r = s
        .call(
            &agent,
            "ssh_exec",
            json!({"connection": "web", "argv": ["touch", odd.to_str().unwrap()]}),
        )
        .await;
    ok(&r);
    assert!(odd.exists(), "the quoted word did not arrive whole");

    // A non-zero exit is a result; stdin reaches the command.
    let r = s
        .call(
            &agent,
            "ssh_exec",
            json!({"connection": "web", "argv": ["false"]}),
        )
        .await;
    assert_eq!(ok(&r)["exit_code"], 1);
    let r = s
        .call(
            &agent,
            "ssh_exec",
            json!({"connection": "web", "argv": ["cat"], "stdin": "from stdin\n"}),
        )
        .await;
    assert_eq!(ok(&r)["stdout"], "from stdin\n");

    // Output is masked, and so is the recording; the event names it.
    let card = "4111 1111 1111 1111";
    let r = s
        .call(
            &agent,
            "ssh_exec",
            json!({"connection": "web", "argv": ["printf", format!("line one\\ncard {card}\\n")]}),
        )
        .await;
    let v = ok(&r);
    let stdout = v["stdout"].as_str().unwrap();
    assert!(stdout.starts_with("line one\ncard "), "{v}");
    assert!(!stdout.contains(card), "{v}");
    let events = s.gateway.audit().list(&Default::default()).await.unwrap();
    let ev = events
        .iter()
        .find(|e| e.record.arguments.to_string().contains("card"))
        .expect("the printf call is recorded");
    let rec = ev
        .record
        .recording
        .clone()
        .expect("an SSH call has a recording");
    let body = s
        .gateway
        .audit()
        .recording(&rec.sha256)
        .await
        .unwrap()
        .expect("the recording is stored");
    assert_eq!(body.len() as u64, rec.bytes);
    let text = String::from_utf8(body).unwrap();
    assert!(text.starts_with("{\"version\":2"), "{text}");
    assert!(text.contains("line one"), "{text}");
    assert!(
        !text.contains(card),
        "the recording holds the raw card: {text}"
    );

    // A timeout ends the remote process.
    let marker = "300.4242";
    let started = Instant::now();
    let r = s
        .call(
            &agent,
            "ssh_exec",
            json!({"connection": "web", "argv": ["sleep", marker], "timeout_seconds": 1}),
        )
        .await;
    assert!(r.is_error, "{}", r.structured);
    assert!(
        r.structured.to_string().contains("timed out"),
        "{}",
        r.structured
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    no_process_left(marker).await;

    // A host presenting another key than the pinned one is refused.
    let r = s
        .call(&agent, "ssh_exec", json!({"connection": "impostor", "argv": ["touch", mark("impostor").to_str().unwrap()]}))
        .await;
    assert!(r.is_error);
    let msg = r.structured.to_string();
    assert!(msg.contains("host key"), "{msg}");
    assert!(!mark("impostor").exists());

    // The server's private key appears nowhere.
    let key = sshd.client_key_pem();
    let key_body: String = key.lines().nth(1).unwrap().to_string();
    let all =
        serde_json::to_string(&s.gateway.audit().list(&Default::default()).await.unwrap()).unwrap();
    assert!(
        !all.contains(&key_body),
        "the private key reached the audit store"
    );

    // The chain (with its recordings) verifies; `audit replay` prints one.
    let cfg = s.config_path.to_str().unwrap();
    assert_eq!(
        cli(&["tollgate", "audit", "verify", "--config", cfg]).await,
        ExitCode::SUCCESS
    );
    assert_eq!(
        cli(&["tollgate", "audit", "replay", &ev.id, "--config", cfg]).await,
        ExitCode::SUCCESS
    );
}
