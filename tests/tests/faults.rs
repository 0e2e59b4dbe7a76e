//! Load and faults (issue 14 items 4 and 5), CI-sized: the real `tollgate
//! serve` (this test binary re-executed) on a throwaway PostgreSQL, under
//! concurrent MCP clients making a mix of governed calls (reads, masked
//! reads, denials, inserts, approved inserts; see `tollgate_tests::load`),
//! each call matched to its audit entries by a unique marker.
//!
//! - under load: no errors, no timeouts, exactly one event per call, the
//!   chain verifies;
//! - the target restarted mid-load: `target_unavailable` tool errors during
//!   the outage, then calls succeed again with the same server process;
//! - `kill -9` mid-load: after a restart on the same data dir, every call
//!   whose answer reached its client has its event, every committed insert
//!   has its intent and an event naming it (its outcome or `unknown`), and
//!   `audit verify` passes, counting the unknown outcomes;
//! - the audit store's file system full (a small tmpfs, needs root): calls
//!   fail closed with `audit_unavailable`, no insert commits without its
//!   intent in the chain, and calls succeed again once space returns,
//!   without a restart.
//!
//! The tests take turns (one lock): each runs a server, PostgreSQL and 16
//! clients, and the machine has two cores.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_tests::load::{
    AuditIndex, CallRecord, Fixture, Kind, LoadSpec, Outcome, Progress, Summary, answered_ok,
    progress_line, run_load, unrecorded_inserts,
};
use tollgate_tests::util::TempDir;

/// The allocator the `tollgate` binary uses (the child server is this binary).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CLIENTS: usize = 16;

/// One test at a time: each loads the machine on its own.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Not a test: the child server. Runs the CLI with `TOLLGATE_CHILD_ARGS`.
#[test]
fn child_server() {
    tollgate_tests::run_child_server_if_asked();
}

const CHILD: &[&str] = &["child_server", "--exact", "--nocapture", "--test-threads=1"];

fn fixture(label: &str, data_dir: Option<&Path>) -> Fixture {
    tollgate_server::init_crypto();
    Fixture::new(label, CHILD, data_dir, 8).expect("PostgreSQL and the config")
}

/// A list of problems, empty or shown in full.
fn assert_none(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n{}",
        problems.len(),
        problems
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Every call of `records` with an answer (a result or a tool error) has
/// exactly one event; one that returned a result has status `ok`.
fn answered_calls_recorded(audit: &AuditIndex, records: &[CallRecord]) -> Vec<String> {
    let mut problems = vec![];
    for r in records {
        if matches!(r.outcome, Outcome::Transport(_) | Outcome::Timeout) {
            continue;
        }
        let statuses = audit.statuses(r.marker);
        let ok = match r.outcome {
            Outcome::Ok => statuses == ["ok"],
            _ => statuses.len() == 1,
        };
        if !ok {
            problems.push(format!(
                "call {} ({}) answered {:?} has events {statuses:?}",
                r.marker,
                r.kind.label(),
                r.outcome
            ));
        }
    }
    problems
}

/// The calls that failed after recovery: started once the first call
/// started after `since` has succeeded.
fn failures_after_recovery(records: &[CallRecord], since: Instant) -> Vec<String> {
    let Some(first) = records
        .iter()
        .filter(|r| r.started > since && r.kind.executes() && r.outcome == Outcome::Ok)
        .map(|r| r.ended)
        .min()
    else {
        return vec![format!(
            "no call started after the fault ended succeeded ({} calls started after it)",
            records.iter().filter(|r| r.started > since).count()
        )];
    };
    records
        .iter()
        .filter(|r| r.started > first && !r.outcome.is_expected(r.kind))
        .map(|r| format!("after recovery: {r:?}"))
        .collect()
}

/// A clean run of `calls` per client on a server that must be healthy.
async fn clean_run(fx: &Fixture, calls: usize, first_marker: i64) -> Vec<CallRecord> {
    let spec = LoadSpec::new(CLIENTS, calls, first_marker);
    let t0 = Instant::now();
    let records = run_load(fx, &spec, Arc::new(Progress::default()))
        .await
        .expect("load");
    let summary = Summary::of(&records, t0.elapsed());
    assert_eq!(
        (summary.errors, summary.timeouts),
        (0, 0),
        "{summary}\nserver log:\n{}",
        fx.log_tail()
    );
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_every_call_is_recorded_once_and_the_chain_verifies() {
    let _turn = TURN.lock().await;
    let fx = fixture("load", None);
    let server = fx.start_server().await.expect("server");
    let spec = LoadSpec::new(CLIENTS, 50, 1);
    let t0 = Instant::now();
    let records = run_load(&fx, &spec, Arc::new(Progress::default()))
        .await
        .expect("load");
    let summary = Summary::of(&records, t0.elapsed());
    eprintln!("{summary}");
    assert_eq!(records.len(), CLIENTS * 50);
    assert_eq!(
        (summary.errors, summary.timeouts),
        (0, 0),
        "{summary}\nserver log:\n{}",
        fx.log_tail()
    );
    let audit = fx.export().expect("export");
    assert_none("one event per call", &audit.exact_problems(&records));
    assert_eq!(audit.events, records.len() as u64);
    // Each approval's life is recorded beside its call.
    let approvals = records.iter().filter(|r| r.kind == Kind::Approval).count() as u64;
    for status in ["created", "executed"] {
        let n = audit.others.get(&("approval".into(), status.into()));
        assert_eq!(n, Some(&approvals), "approval {status}: {:?}", audit.others);
    }
    let executed = records.iter().filter(|r| r.kind.executes()).count() as u64;
    assert_eq!(audit.intents, executed, "one intent per executed call");
    assert_none("inserts", &unrecorded_inserts(&fx, &audit, true));
    let inserted = records
        .iter()
        .filter(|r| matches!(r.kind, Kind::Insert | Kind::Approval))
        .count();
    assert_eq!(
        fx.markers("marks").unwrap().len() + fx.markers("refunds").unwrap().len(),
        inserted
    );
    let verified = fx.verify().unwrap();
    assert!(verified.ok, "{}", verified.line);
    assert!(
        !verified.line.contains("without an outcome") && verified.unknown == 0,
        "{}",
        verified.line
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_restart_mid_load_gives_clean_tool_errors_then_calls_succeed_again() {
    let _turn = TURN.lock().await;
    let fx = Arc::new(fixture("pgrestart", None));
    let mut server = fx.start_server().await.expect("server");
    let pid = server.pid();
    let progress = Arc::new(Progress::default());
    let spec = LoadSpec::new(CLIENTS, 60, 1);
    let load = {
        let (fx, spec, progress) = (fx.clone(), spec.clone(), progress.clone());
        tokio::spawn(async move { run_load(&fx, &spec, progress).await })
    };
    let limit = Duration::from_secs(30);
    assert!(
        progress.until_done(150, limit).await,
        "{}",
        progress_line(&progress)
    );
    let stopping = Instant::now();
    fx.pg.stop().expect("stop PostgreSQL");
    let stopped = Instant::now();
    // The outage lasts until every client has met it a few times.
    let seen = progress
        .until(limit, |p| {
            p.target_unavailable
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 3 * CLIENTS as u64
        })
        .await;
    let resuming = Instant::now();
    fx.pg.resume().expect("start PostgreSQL again");
    assert!(
        seen,
        "no target_unavailable errors while PostgreSQL was down: {}",
        progress_line(&progress)
    );
    let records = load.await.unwrap().expect("load");
    let summary = Summary::of(&records, stopping.elapsed());
    eprintln!("{summary}");

    let mut problems = vec![];
    for r in &records {
        let unavailable = r.outcome.is_code("target_unavailable");
        if r.started > stopped && r.ended < resuming {
            // During the outage every call that reaches the target fails cleanly.
            if r.kind.executes() && !unavailable
                || !r.kind.executes() && !r.outcome.is_expected(r.kind)
            {
                problems.push(format!("during the outage: {r:?}"));
            }
        } else if r.outcome.is_expected(r.kind) {
        } else if !(unavailable && r.ended > stopping) {
            problems.push(format!("{r:?}"));
        }
        if let Outcome::ToolError { message, .. } = &r.outcome
            && unavailable
            && (message.contains(fx.pg.password()) || message.is_empty())
        {
            problems.push(format!("unclean message: {message}"));
        }
    }
    problems.extend(failures_after_recovery(&records, resuming));
    if let Some(r) = records
        .iter()
        .find(|r| r.outcome.is_code("target_unavailable"))
    {
        eprintln!("e.g. {:?}", r.outcome);
    }
    assert_none("outcomes around the outage", &problems);
    // Same process, and it serves again.
    assert!(server.is_running() && server.pid() == pid);
    let after = clean_run(&fx, 20, spec.next_marker()).await;
    let audit = fx.export().expect("export");
    let all: Vec<CallRecord> = records.into_iter().chain(after).collect();
    assert_none("one event per call", &audit.exact_problems(&all));
    assert_none("inserts", &unrecorded_inserts(&fx, &audit, true));
    let verified = fx.verify().unwrap();
    assert!(verified.ok, "{}", verified.line);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_mid_load_every_answered_call_and_every_committed_insert_is_in_the_chain() {
    let _turn = TURN.lock().await;
    let fx = Arc::new(fixture("kill9", None));
    let server = fx.start_server().await.expect("server");
    let progress = Arc::new(Progress::default());
    let mut spec = LoadSpec::new(CLIENTS, 200, 1);
    spec.stop_after_transport_errors = Some(2);
    let load = {
        let (fx, spec, progress) = (fx.clone(), spec.clone(), progress.clone());
        tokio::spawn(async move { run_load(&fx, &spec, progress).await })
    };
    assert!(
        progress.until_done(400, Duration::from_secs(40)).await,
        "{}",
        progress_line(&progress)
    );
    server.kill9();
    let records = load.await.unwrap().expect("load");
    let cut = records
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Transport(_)))
        .count();
    eprintln!(
        "{} calls answered before the kill, {cut} cut off",
        records.len() - cut
    );
    let other: Vec<String> = records
        .iter()
        .filter(|r| !r.outcome.is_expected(r.kind) && !matches!(r.outcome, Outcome::Transport(_)))
        .map(|r| format!("{r:?}"))
        .collect();
    assert_none("answers before the kill", &other);

    // A restart on the same data dir closes the killed server's open intents.
    let server = fx.start_server().await.expect("restart");
    let audit = fx.export().expect("export");
    assert_none(
        "answered calls in the chain",
        &answered_calls_recorded(&audit, &records),
    );
    assert!(answered_ok(&records).count() > 0);
    assert_none("inserts", &unrecorded_inserts(&fx, &audit, true));
    let verified = fx.verify().unwrap();
    eprintln!("{}", verified.line);
    assert!(verified.ok, "{}", verified.line);
    assert_eq!(verified.unknown, audit.unknown, "{}", verified.line);
    assert!(
        !verified.line.contains("without an outcome"),
        "{}",
        verified.line
    );
    // The restarted server serves.
    clean_run(&fx, 10, spec.next_marker()).await;
    drop(server);
}

/// A tmpfs of `size` mounted on a fresh dir, unmounted on drop.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = TempDir::new("tmpfs").unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Tmpfs { dir },
            Ok(o) => panic!(
                "this test needs to mount a small tmpfs for the audit store (run as root, or in a \
                 container allowed to mount): `mount -t tmpfs` failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!("this test needs `mount` (util-linux) to mount a small tmpfs: {e}"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Write `path` until the file system is full; the bytes written.
fn fill(path: &PathBuf) -> u64 {
    let mut f = std::fs::File::create(path).expect("filler");
    let mut written = 0;
    for chunk in [64 * 1024, 4096, 512, 1] {
        let block = vec![0x5au8; chunk];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filler: {e}"),
            }
        }
    }
    let _ = f.sync_all();
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_audit_disk_fails_calls_closed_and_the_server_recovers_when_space_returns() {
    let _turn = TURN.lock().await;
    let tmpfs = Tmpfs::mount("32m");
    let data = tmpfs.path().join("data");
    let fx = Arc::new(fixture("diskfull", Some(&data)));
    let mut server = fx.start_server().await.expect("server");
    let pid = server.pid();
    let progress = Arc::new(Progress::default());
    let spec = LoadSpec::new(CLIENTS, 120, 1);
    let load = {
        let (fx, spec, progress) = (fx.clone(), spec.clone(), progress.clone());
        tokio::spawn(async move { run_load(&fx, &spec, progress).await })
    };
    let limit = Duration::from_secs(30);
    assert!(
        progress.until_done(150, limit).await,
        "{}",
        progress_line(&progress)
    );
    let filler = tmpfs.path().join("filler");
    let filled = fill(&filler);
    let full = Instant::now();
    let failing = progress
        .until(limit, |p| {
            p.audit_unavailable
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 2 * CLIENTS as u64
        })
        .await;
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    assert!(
        failing,
        "the audit disk is full ({filled} bytes of filler) but calls do not fail with \
         audit_unavailable: {}\nserver log:\n{}",
        progress_line(&progress),
        fx.log_tail()
    );
    let records = load.await.unwrap().expect("load");
    let summary = Summary::of(&records, full.elapsed());
    eprintln!("{summary}");

    // Only one kind of failure, and only while the disk was full (or on the
    // first call after, which finds the store marked unhealthy).
    let problems: Vec<String> = records
        .iter()
        .filter(|r| !r.outcome.is_expected(r.kind))
        .filter(|r| !(r.outcome.is_code("audit_unavailable") && r.ended > full))
        .map(|r| format!("{r:?}"))
        .collect();
    assert_none("outcomes while the disk was full", &problems);
    // The error says why, and whether anything ran.
    let unclear: Vec<String> = records
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::ToolError { code, message }
                if code == "audit_unavailable"
                    && !(message.contains("disk is full")
                        && (message.contains("nothing was executed")
                            || message.contains("its result is withheld"))) =>
            {
                Some(message.clone())
            }
            _ => None,
        })
        .collect();
    assert_none("audit_unavailable messages", &unclear);
    assert_none(
        "calls after space returned",
        &failures_after_recovery(&records, freed),
    );

    // Nothing took effect unrecorded; what was answered is recorded.
    let audit = fx.export().expect("export");
    assert_none("inserts", &unrecorded_inserts(&fx, &audit, false));
    // Answers that say they are not recorded (a denial while the store was
    // full says so beside the denial) are not looked for.
    let answered: Vec<CallRecord> = records
        .iter()
        .filter(|r| match &r.outcome {
            Outcome::ToolError { code, message } => {
                code != "audit_unavailable"
                    && !message.contains("the audit store could not record this")
            }
            _ => true,
        })
        .cloned()
        .collect();
    assert_none(
        "answered calls in the chain",
        &answered_calls_recorded(&audit, &answered),
    );
    // Same process, serving again.
    assert!(server.is_running() && server.pid() == pid);
    clean_run(&fx, 20, spec.next_marker()).await;
    let verified = fx.verify().unwrap();
    eprintln!("{}", verified.line);
    assert!(verified.ok, "{}", verified.line);
    // Calls that ran but whose event could not be written left their intent
    // open; the next start closes each as `unknown`.
    server.kill9();
    let server = fx.start_server().await.expect("restart");
    let after = fx.verify().unwrap();
    eprintln!("after a restart: {}", after.line);
    assert!(after.ok, "{}", after.line);
    assert_eq!(
        (after.open, after.unknown),
        (0, verified.unknown + verified.open),
        "{}",
        after.line
    );
    drop(server);
}
