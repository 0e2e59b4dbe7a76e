//! `tollgate_ssh::transport` on a real OpenSSH sshd (tests/src/sshd.rs):
//! exec with exit codes, separate stdout/stderr and stdin; a non-zero exit
//! is an outcome; host-key mismatch (both pin forms), a host missing from
//! known_hosts and a revoked key are refused before any credential is
//! offered; the byte cap truncates; timeout, cancellation and the cap leave
//! no process on the host (pgrep, on this machine); sessions are reused,
//! replaced after an sshd restart, and carry 32 concurrent calls; key
//! material appears in no error.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tollgate_ssh::transport::{
    ClientKey, ExecOutcome, ExecRequest, HostKeyPin, HostSpec, SshPool, Stream, TransportError, pin,
};
use tollgate_tests::sshd::{KEY_PASSPHRASE, SshdServer, pgrep};

const CAP: usize = 1024 * 1024;

fn spec(s: &SshdServer, key: ClientKey, pin: HostKeyPin) -> HostSpec {
    HostSpec {
        host: s.host().to_string(),
        port: s.port(),
        user: s.user().to_string(),
        key,
        pin,
        connect_timeout: Duration::from_secs(10),
    }
}

fn client_key(s: &SshdServer) -> ClientKey {
    ClientKey::from_openssh(&s.client_key_pem(), None).unwrap()
}

fn pinned(s: &SshdServer) -> HostKeyPin {
    HostKeyPin::parse_line(&s.host_key_line()).unwrap()
}

fn pool(s: &SshdServer, max_sessions: usize) -> SshPool {
    SshPool::new(spec(s, client_key(s), pinned(s)), max_sessions)
}

fn req(cmd: &str) -> ExecRequest {
    ExecRequest::new(cmd, CAP, Duration::from_secs(20))
}

async fn exec(p: &SshPool, cmd: &str) -> ExecOutcome {
    p.exec(req(cmd))
        .await
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A marker no other process on the machine has: `sleep 300.<pid><n>`.
fn marker(n: u32) -> String {
    format!("sleep 300.{}{n}", std::process::id())
}

/// Wait until no process matches `pattern`; whether none is left.
async fn gone(pattern: &str, within: Duration) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if pgrep(pattern).is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pgrep(pattern).is_empty()
}

/// Whether a process matching `pattern` shows up within `within`.
async fn appears(pattern: &str, within: Duration) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if !pgrep(pattern).is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Key material of the server's client key: lines of its PEM body.
fn secret_lines(s: &SshdServer) -> Vec<String> {
    let mut lines = Vec::new();
    for pem in [s.client_key_pem(), s.client_key_encrypted_pem()] {
        lines.extend(
            pem.lines()
                .filter(|l| !l.starts_with("-----") && l.len() > 20)
                .map(str::to_string),
        );
    }
    assert!(!lines.is_empty());
    lines
}

fn assert_no_secret(s: &SshdServer, what: &str) {
    for line in secret_lines(s) {
        assert!(!what.contains(&line), "key material in: {what}");
    }
    assert!(!what.contains(KEY_PASSPHRASE), "passphrase in: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_exit_codes_streams_and_stdin() {
    let s = SshdServer::start().unwrap();
    let p = pool(&s, 2);

    let t0 = Instant::now();
    let out = exec(&p, "echo out-line; echo err-line >&2; exit 3").await;
    let cold = t0.elapsed();
    assert_eq!(out.exit_code, Some(3), "a non-zero exit is an outcome");
    assert_eq!(out.exit_signal, None);
    assert_eq!(text(&out.stdout), "out-line\n");
    assert_eq!(text(&out.stderr), "err-line\n");
    assert!(!out.truncated);
    let streams: Vec<Stream> = out.chunks.iter().map(|c| c.stream).collect();
    assert!(streams.contains(&Stream::Stdout) && streams.contains(&Stream::Stderr));
    let kept: usize = out.chunks.iter().map(|c| c.data.len()).sum();
    assert_eq!(kept, out.stdout.len() + out.stderr.len());

    let out = exec(&p, "id -un; printf '%s|' \"$0\" 'two words'").await;
    assert_eq!(out.exit_code, Some(0));
    assert!(
        text(&out.stdout).starts_with(&format!("{}\n", s.user())),
        "{out:?}"
    );
    assert!(text(&out.stdout).ends_with("|two words|"), "{out:?}");

    // Stdin is written, then EOF: `cat` ends.
    let mut r = req("cat; echo done >&2");
    r.stdin = Some(b"line one\nline two\n".to_vec());
    let out = p.exec(r).await.unwrap();
    assert_eq!(text(&out.stdout), "line one\nline two\n");
    assert_eq!(text(&out.stderr), "done\n");
    // No stdin: EOF at once.
    let out = exec(&p, "cat; echo eof").await;
    assert_eq!(text(&out.stdout), "eof\n");
    // Larger than the channel window, both ways.
    let big: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let mut r = req("sha256sum | cut -c1-64; wc -c >&2");
    r.stdin = Some(big.clone());
    let out = p.exec(r).await.unwrap();
    assert_eq!(out.exit_code, Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim().len(), 64);
    let mut r = ExecRequest::new("cat", 8 * 1024 * 1024, Duration::from_secs(30));
    r.stdin = Some(big.clone());
    let out = p.exec(r).await.unwrap();
    assert_eq!(out.stdout.len(), big.len());
    assert!(out.stdout == big, "round trip of 3 MiB");

    // Progress: on_chunk sees each kept chunk.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let mut r = req("for i in 1 2 3; do echo tick $i; sleep 0.1; done");
    r.on_chunk = Some(Box::new(move |c| {
        sink.lock().unwrap().push((c.at, c.data.clone()))
    }));
    let out = p.exec(r).await.unwrap();
    {
        let seen = seen.lock().unwrap();
        assert!(seen.len() >= 3, "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(seen.concat_data(), out.stdout);
    }

    // Warm round trips on the pooled session.
    let mut warm = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        exec(&p, "true").await;
        warm.push(t.elapsed());
    }
    warm.sort();
    eprintln!(
        "timing: cold connect+exec {:?}, warm exec median {:?} (min {:?}, max {:?}); sshd start {:?}",
        cold,
        warm[warm.len() / 2],
        warm[0],
        warm[warm.len() - 1],
        s.start_time
    );
    assert_eq!(p.stats().connects, 1, "{:?}", p.stats());
}

trait ConcatData {
    fn concat_data(&self) -> Vec<u8>;
}
impl ConcatData for Vec<(Duration, Vec<u8>)> {
    fn concat_data(&self) -> Vec<u8> {
        self.iter().flat_map(|(_, d)| d.clone()).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_key_mismatch_is_refused_before_any_credential() {
    let s = SshdServer::start().unwrap();
    let right = HostKeyPin::parse_line(&s.host_key_line()).unwrap();
    let wrong_line = s.other_host_key_line();
    let wrong = HostKeyPin::parse_line(&wrong_line).unwrap();
    let fp = |line: &str| match HostKeyPin::parse_line(line).unwrap() {
        HostKeyPin::Key(k) => pin::fingerprint(&k),
        HostKeyPin::KnownHosts(_) => unreachable!(),
    };
    let (fp_server, fp_other) = (fp(&s.host_key_line()), fp(&wrong_line));

    // A pinned line.
    let p = SshPool::new(spec(&s, client_key(&s), wrong), 1);
    let e = p.exec(req("touch /tmp/should-not-run")).await.unwrap_err();
    assert_eq!(
        e,
        TransportError::HostKeyMismatch {
            host: format!("127.0.0.1:{}", s.port()),
            expected_fingerprint: fp_other.clone(),
            presented_fingerprint: fp_server.clone(),
        }
    );
    let msg = e.to_string();
    assert!(msg.contains(&fp_other) && msg.contains(&fp_server), "{msg}");
    assert!(matches!(
        p.check().await,
        Err(TransportError::HostKeyMismatch { .. })
    ));

    // A known_hosts file naming another key for this host.
    let kh = s
        .write(
            "known_hosts_wrong",
            &format!("[127.0.0.1]:{} {wrong_line}\n", s.port()),
        )
        .unwrap();
    let p = SshPool::new(spec(&s, client_key(&s), HostKeyPin::KnownHosts(kh)), 1);
    match p.check().await.unwrap_err() {
        TransportError::HostKeyMismatch {
            expected_fingerprint,
            presented_fingerprint,
            ..
        } => {
            assert_eq!(expected_fingerprint, fp_other);
            assert_eq!(presented_fingerprint, fp_server);
        }
        other => panic!("{other}"),
    }

    // A revoked key, even with an accepting line.
    let kh = s
        .write(
            "known_hosts_revoked",
            &format!(
                "[127.0.0.1]:{port} {line}\n@revoked * {line}\n",
                port = s.port(),
                line = s.host_key_line()
            ),
        )
        .unwrap();
    let p = SshPool::new(spec(&s, client_key(&s), HostKeyPin::KnownHosts(kh)), 1);
    assert!(matches!(
        p.check().await,
        Err(TransportError::HostKeyRevoked { .. })
    ));

    // The server never saw a login attempt: the key was never offered.
    let log = s.log();
    assert!(!log.contains("publickey"), "{log}");
    assert_eq!(s.accepted_logins(), 0);

    // The right pin still works.
    SshPool::new(spec(&s, client_key(&s), right), 1)
        .check()
        .await
        .unwrap();
    assert_eq!(s.accepted_logins(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_hosts_plain_and_hashed_accept_and_unknown_host_is_refused() {
    let s = SshdServer::start().unwrap();
    for kh in [s.known_hosts(), s.known_hosts_hashed()] {
        let p = SshPool::new(
            spec(&s, client_key(&s), HostKeyPin::KnownHosts(kh.clone())),
            1,
        );
        let out = p.exec(req("echo ok")).await.unwrap();
        assert_eq!(text(&out.stdout), "ok\n", "{}", kh.display());
    }
    let hashed = std::fs::read_to_string(s.known_hosts_hashed()).unwrap();
    assert!(
        hashed.contains("|1|") && !hashed.contains("127.0.0.1"),
        "{hashed}"
    );

    // Entries for this host on port 22 and for another port: not this host.
    let kh = s
        .write(
            "known_hosts_other",
            &format!(
                "127.0.0.1 {line}\n[127.0.0.1]:{other} {line}\n",
                line = s.host_key_line(),
                other = s.port().wrapping_add(1)
            ),
        )
        .unwrap();
    let p = SshPool::new(
        spec(&s, client_key(&s), HostKeyPin::KnownHosts(kh.clone())),
        1,
    );
    let e = p.exec(req("true")).await.unwrap_err();
    let TransportError::UnknownHost {
        host, known_hosts, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(host, &format!("127.0.0.1:{}", s.port()));
    assert_eq!(known_hosts, &kh.display().to_string());
    assert!(e.to_string().contains("no trust on first use"), "{e}");
    // Nothing was learnt: the file is unchanged and a retry is refused.
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap().lines().count(),
        2,
        "known_hosts untouched"
    );
    assert!(matches!(
        p.check().await,
        Err(TransportError::UnknownHost { .. })
    ));
    assert_eq!(
        s.accepted_logins(),
        2,
        "only the two accepted pins logged in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failures_and_key_material_never_leak() {
    let s = SshdServer::start().unwrap();
    // The encrypted copy of the client key, with its passphrase.
    let key = ClientKey::from_openssh(&s.client_key_encrypted_pem(), Some(KEY_PASSPHRASE)).unwrap();
    let debug = format!("{key:?}");
    assert_no_secret(&s, &debug);
    let p = SshPool::new(spec(&s, key, pinned(&s)), 1);
    assert_eq!(text(&exec(&p, "echo hi").await.stdout), "hi\n");

    // Wrong or missing passphrase: a config error quoting nothing.
    for pass in [None, Some("wrong passphrase")] {
        let e = ClientKey::from_openssh(&s.client_key_encrypted_pem(), pass).unwrap_err();
        assert!(matches!(e, TransportError::Config(_)), "{e}");
        assert_no_secret(&s, &format!("{e} {e:?}"));
    }

    // A key the server does not know (the spare host key as a client key).
    let stranger = std::fs::read_to_string(s.path("other_host_ed25519")).unwrap();
    let p = SshPool::new(
        spec(
            &s,
            ClientKey::from_openssh(&stranger, None).unwrap(),
            pinned(&s),
        ),
        1,
    );
    let e = p.exec(req("true")).await.unwrap_err();
    assert!(matches!(e, TransportError::Auth(_)), "{e}");
    let msg = format!("{e} {e:?} {p:?}");
    assert!(msg.contains(s.user()) && msg.contains("SHA256:"), "{msg}");
    assert_no_secret(&s, &msg);
    for line in stranger
        .lines()
        .filter(|l| l.len() > 20 && !l.starts_with("-----"))
    {
        assert!(!msg.contains(line), "{msg}");
    }

    // An agent socket that is not there.
    let p = SshPool::new(
        spec(&s, ClientKey::Agent(s.path("no-agent.sock")), pinned(&s)),
        1,
    );
    assert!(matches!(p.check().await, Err(TransportError::Auth(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_authentication() {
    let s = SshdServer::start().unwrap();
    let sock = s.path("agent.sock");
    let mut agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ssh-agent (apt-get install -y openssh-client)");
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let key_file = s.write("agent_key", &s.client_key_pem()).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let added = std::process::Command::new("ssh-add")
        .arg(&key_file)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    let p = SshPool::new(spec(&s, ClientKey::Agent(sock), pinned(&s)), 1);
    let out = exec(&p, "echo via-agent").await;
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(text(&out.stdout), "via-agent\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_cap_truncates_and_ends_the_command() {
    let s = SshdServer::start().unwrap();
    let p = pool(&s, 1);
    let out = p
        .exec(ExecRequest::new(
            "seq 1 100000",
            1000,
            Duration::from_secs(20),
        ))
        .await
        .unwrap();
    assert!(out.truncated);
    assert_eq!(out.stdout.len(), 1000);
    assert!(text(&out.stdout).starts_with("1\n2\n3\n"));
    let kept: usize = out.chunks.iter().map(|c| c.data.len()).sum();
    assert_eq!(kept, 1000, "chunks stay within the cap");

    // stdout + stderr together.
    let out = p
        .exec(ExecRequest::new(
            "printf 0123456789; printf abcdefghij >&2; sleep 0.2; printf XYZ",
            15,
            Duration::from_secs(20),
        ))
        .await
        .unwrap();
    assert!(out.truncated);
    assert_eq!(out.stdout.len() + out.stderr.len(), 15, "{out:?}");
    assert_eq!(text(&out.stdout), "0123456789");
    assert_eq!(text(&out.stderr), "abcde");

    // Exactly at the cap is not truncated.
    let out = p
        .exec(ExecRequest::new("printf 12345", 5, Duration::from_secs(20)))
        .await
        .unwrap();
    assert!(!out.truncated);
    assert_eq!(out.exit_code, Some(0));

    // An endless writer is ended at the cap, and nothing is left.
    let m = format!("yes tollgate-cap-{}", std::process::id());
    let t = Instant::now();
    let out = p
        .exec(ExecRequest::new(&m, 64 * 1024, Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(out.truncated);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(gone(&m, Duration::from_secs(5)).await, "{m} left running");
    eprintln!(
        "cap: endless writer ended with exit_signal {:?}, exit_code {:?}, in {:?}",
        out.exit_signal,
        out.exit_code,
        t.elapsed()
    );
    // The session is still good.
    assert_eq!(text(&exec(&p, "echo after").await.stdout), "after\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_ends_the_remote_command() {
    let s = SshdServer::start().unwrap();
    let p = pool(&s, 1);
    let m = marker(1);
    let watch = tokio::spawn({
        let m = m.clone();
        async move { appears(&m, Duration::from_secs(5)).await }
    });
    let t = Instant::now();
    let e = p
        .exec(ExecRequest::new(&m, CAP, Duration::from_millis(1500)))
        .await
        .unwrap_err();
    let took = t.elapsed();
    assert_eq!(e, TransportError::Timeout { ms: 1500 });
    assert!(
        watch.await.unwrap(),
        "{m} never ran: the test proves nothing"
    );
    assert!(gone(&m, Duration::from_secs(3)).await, "{m} left running");
    eprintln!("timeout: call returned after {took:?} (deadline 1.5 s)");
    // TERM was enough: no KILL grace was spent.
    assert!(took < Duration::from_millis(1500 + 900), "{took:?}");

    // A command with a child in the background and a TERM trap: TERM
    // reaches the whole process group, the trap runs.
    let flag = format!("/tmp/tollgate-sigterm-{}", std::process::id());
    let m2 = marker(2);
    let cmd = format!("trap 'echo term > {flag}; exit 0' TERM; {m2} & {m2}1 & wait");
    let e = p
        .exec(ExecRequest::new(&cmd, CAP, Duration::from_millis(1500)))
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Timeout { .. }));
    assert!(gone(&m2, Duration::from_secs(3)).await, "{m2} left running");
    let got = std::fs::read_to_string(&flag).unwrap_or_default();
    let _ = std::fs::remove_file(&flag);
    assert_eq!(got, "term\n", "the signal request delivered TERM");

    // A command that ignores TERM gets KILL.
    let m3 = marker(3);
    let t = Instant::now();
    let e = p
        .exec(ExecRequest::new(
            format!("trap '' TERM; {m3} & wait"),
            CAP,
            Duration::from_millis(1000),
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Timeout { .. }));
    let took = t.elapsed();
    eprintln!("timeout, TERM ignored: call returned after {took:?} (deadline 1 s)");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(2900),
        "KILL came after the TERM grace: {took:?}"
    );
    assert!(
        gone(&m3, Duration::from_secs(3)).await,
        "{m3} survived KILL"
    );
    assert_eq!(text(&exec(&p, "echo after").await.stdout), "after\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_the_remote_command() {
    let s = SshdServer::start().unwrap();
    let p = pool(&s, 1);
    let m = marker(4);
    let cancel = CancellationToken::new();
    let mut r = ExecRequest::new(&m, CAP, Duration::from_secs(60));
    r.cancel = cancel.clone();
    let call = tokio::spawn({
        let p = p.clone();
        async move { p.exec(r).await }
    });
    assert!(appears(&m, Duration::from_secs(5)).await, "{m} never ran");
    let t = Instant::now();
    cancel.cancel();
    let e = call.await.unwrap().unwrap_err();
    assert_eq!(e, TransportError::Cancelled);
    eprintln!("cancel: call returned {:?} after the cancel", t.elapsed());
    assert!(gone(&m, Duration::from_secs(3)).await, "{m} left running");

    // Cancelled before it starts: nothing runs.
    let cancel = CancellationToken::new();
    cancel.cancel();
    let mut r = req(&marker(5));
    r.cancel = cancel;
    assert_eq!(p.exec(r).await.unwrap_err(), TransportError::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_reused_and_replaced_after_an_sshd_restart() {
    let mut s = SshdServer::start().unwrap();
    let p = pool(&s, 2);
    for i in 0..5 {
        let out = exec(&p, &format!("echo {i}")).await;
        assert_eq!(text(&out.stdout), format!("{i}\n"));
    }
    assert_eq!(p.stats().connects, 1);
    assert_eq!(s.accepted_logins(), 1, "one SSH login for five calls");

    s.restart().unwrap();
    let t = Instant::now();
    let out = exec(&p, "echo after-restart").await;
    eprintln!("reconnect after restart: {:?}", t.elapsed());
    assert_eq!(text(&out.stdout), "after-restart\n");
    assert_eq!(p.stats().connects, 2, "{:?}", p.stats());
    assert_eq!(s.accepted_logins(), 2);

    // A server that is gone: the call fails as unreachable, no hang.
    let port = s.port();
    drop(s);
    let e = p.exec(req("true")).await.unwrap_err();
    assert!(
        matches!(e, TransportError::Unreachable(ref m) if m.contains(&port.to_string())),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_calls_on_one_pool() {
    let s = SshdServer::start().unwrap();
    let p = pool(&s, 8);
    let t = Instant::now();
    let calls: Vec<_> = (0..32)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move {
                p.exec(req(&format!("sleep 0.3; echo call-{i}; echo e{i} >&2")))
                    .await
            })
        })
        .collect();
    for (i, c) in calls.into_iter().enumerate() {
        let out = c.await.unwrap().unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert_eq!(text(&out.stdout), format!("call-{i}\n"));
        assert_eq!(text(&out.stderr), format!("e{i}\n"));
        assert_eq!(out.exit_code, Some(0));
    }
    let stats = p.stats();
    eprintln!("32 concurrent: {:?}, {stats:?}", t.elapsed());
    // OpenSSH allows 10 channels per connection: 32 need at least 4.
    assert!((4..=8).contains(&stats.connects), "{stats:?}");
    assert_eq!(s.accepted_logins() as u64, stats.connects);
    assert_eq!(stats.channels, 0, "every slot released");
    assert!(!s.log().contains("open failed"), "no channel was refused");

    // With a pool of one session, 32 calls queue on its 10 channels.
    let p = pool(&s, 1);
    let calls: Vec<_> = (0..32)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move { p.exec(req(&format!("echo {i}"))).await })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert_eq!(p.stats().connects, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_max_sessions_is_learnt_from_refusals() {
    // The pool assumes OpenSSH's default of 10 channels per connection;
    // this server allows 3 and refuses the rest, so sessions are added.
    let s = SshdServer::start_with("MaxSessions 3").unwrap();
    let p = pool(&s, 6);
    let calls: Vec<_> = (0..15)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move { p.exec(req(&format!("sleep 0.5; echo {i}"))).await })
        })
        .collect();
    for (i, c) in calls.into_iter().enumerate() {
        let out = c.await.unwrap().unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert_eq!(text(&out.stdout), format!("{i}\n"));
    }
    let stats = p.stats();
    assert!((5..=6).contains(&stats.connects), "{stats:?}");
    assert_eq!(stats.channels, 0);

    // A server that allows no session channel at all: an error, no loop.
    let s = SshdServer::start_with("MaxSessions 0").unwrap();
    let e = pool(&s, 2).exec(req("true")).await.unwrap_err();
    assert!(
        matches!(e, TransportError::Channel(ref m) if m.contains("refused a session channel")),
        "{e}"
    );
}
