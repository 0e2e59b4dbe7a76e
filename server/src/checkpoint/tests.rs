//! The checkpoint writer over a real SQLite store: the interval and
//! shutdown checkpoints, refusing to sign a broken chain, the webhook, file
//! names, and the `[audit]` settings.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use gateway_core::audit::checkpoint::Checkpoint;
use gateway_core::test_util::sample_record;

use super::*;
use crate::store::SqliteAuditStore;

/// `openssl genpkey -algorithm ed25519`.
const KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEINNs9D1fcCv3a1uOqC3lEHpaWPKcgY/MYIdukfU6cX1b
-----END PRIVATE KEY-----
";
/// Its public key (`openssl pkey -pubout`).
const PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJiJ+sbcYHN4+TyKSgLM7RJO1xNQvcxXVDz205jF1Z3U=
-----END PUBLIC KEY-----
";

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "tollgate-checkpoint-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("keys")).unwrap();
        std::fs::write(p.join("keys/audit.pem"), KEY).unwrap();
        std::fs::write(p.join("keys/audit.pub.pem"), PUBLIC).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    /// A config in this folder with `audit` as its `[audit]` body.
    fn config(&self, audit: &str) -> Config {
        let text = format!("[server]\ndata_dir = \"data\"\n[audit]\n{audit}\n");
        Config::parse(&self.0.join("tollgate.toml"), &text).unwrap()
    }
    fn checkpoints(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.0.join("checkpoints"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn store(dir: &TempDir, events: usize) -> Arc<SqliteAuditStore> {
    let store = Arc::new(
        SqliteAuditStore::open(&dir.path().join("data"))
            .await
            .unwrap(),
    );
    for i in 0..events {
        store.append(sample_record(i as u64)).await.unwrap();
    }
    store
}

fn read(path: &Path) -> Checkpoint {
    let cp = Checkpoint::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    let key = CheckpointKey::from_pem(KEY).unwrap();
    cp.verify_signature(key.public()).unwrap();
    cp
}

/// Poll until `dir` holds `n` checkpoint files (or fail after 10 s).
async fn until_files(dir: &TempDir, n: usize) -> Vec<PathBuf> {
    let start = Instant::now();
    loop {
        let files = dir.checkpoints();
        if files.len() >= n || start.elapsed() > Duration::from_secs(10) {
            return files;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_interval_writer_signs_moved_heads_and_one_more_at_shutdown() {
    let dir = TempDir::new("interval");
    let config = dir.config(
        "checkpoint_key = \"${file:keys/audit.pem}\"\ncheckpoint_dir = \"checkpoints\"\ncheckpoint_interval = \"100ms\"",
    );
    let store = store(&dir, 2).await;
    let running = start(&config, store.clone())
        .unwrap()
        .expect("checkpoints on");
    let files = until_files(&dir, 1).await;
    assert_eq!(files.len(), 1, "the first interval writes one");
    assert_eq!(read(&files[0]).seq, 2);
    // The head did not move: no new file for several intervals.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(dir.checkpoints().len(), 1, "{:?}", dir.checkpoints());
    store.append(sample_record(9)).await.unwrap();
    let files = until_files(&dir, 2).await;
    assert_eq!(files.len(), 2);
    let second = read(&files[1]);
    assert_eq!(second.seq, 3);
    running.finish().await;
    let files = dir.checkpoints();
    assert_eq!(
        files.len(),
        3,
        "one more at shutdown, head unmoved: {files:?}"
    );
    let last = read(&files[2]);
    assert_eq!((last.seq, &last.hash), (3, &second.hash));
    assert!(last.time > second.time);
    // Written whole: no temp file is left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path().join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("checkpoint-") && n.ends_with(".json")),
        "{names:?}"
    );
}

#[tokio::test]
async fn a_broken_chain_is_never_signed() {
    let dir = TempDir::new("broken");
    let config =
        dir.config("checkpoint_key = \"${file:keys/audit.pem}\"\ncheckpoint_dir = \"checkpoints\"");
    let store = store(&dir, 3).await;
    let (key, outputs) = settings(&config).unwrap().unwrap();
    let writer = Writer::new(key, outputs, store.clone());
    let first = writer.write(false).await.unwrap().unwrap();
    assert_eq!(first.checkpoint.seq, 3);
    // An event after the signed head is edited: the next one is refused.
    store.append(sample_record(4)).await.unwrap();
    sqlx::query("UPDATE audit_events SET tool = 'edited' WHERE seq = 4")
        .execute(store.pool())
        .await
        .unwrap();
    let err = writer.write(true).await.unwrap_err();
    assert!(matches!(err, WriteError::Broken(_)), "{err}");
    assert!(err.to_string().contains("seq 4"), "{err}");
    // A fresh writer verifies the whole chain first: refused too.
    let (key, outputs) = settings(&config).unwrap().unwrap();
    let err = Writer::new(key, outputs, store.clone())
        .write(false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not signing"), "{err}");
    assert_eq!(dir.checkpoints().len(), 1);
}

#[tokio::test]
async fn a_webhook_receives_the_signed_checkpoint() {
    let dir = TempDir::new("webhook");
    let received = Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook/{token}",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = dir.config(&format!(
        "checkpoint_key = \"${{file:keys/audit.pem}}\"\ncheckpoint_webhook = \"http://{addr}/hook/s3cret-token\""
    ));
    let store = store(&dir, 1).await;
    let (key, outputs) = settings(&config).unwrap().unwrap();
    let written = Writer::new(key, outputs, store)
        .write(false)
        .await
        .unwrap()
        .unwrap();
    assert!(written.path.is_none() && written.webhook_error.is_none());
    let body = received.lock().unwrap().pop().expect("posted");
    let cp = Checkpoint::parse(&body.to_string()).unwrap();
    cp.verify_signature(CheckpointKey::from_pem(PUBLIC).unwrap().public())
        .unwrap();
    assert_eq!(cp, written.checkpoint);

    // A webhook that fails: said, without its URL.
    let config = dir.config(
        "checkpoint_key = \"${file:keys/audit.pem}\"\ncheckpoint_webhook = \"http://127.0.0.1:9/hook/s3cret-token\"",
    );
    let store = Arc::new(
        SqliteAuditStore::open(&dir.path().join("data"))
            .await
            .unwrap(),
    );
    let (key, outputs) = settings(&config).unwrap().unwrap();
    let written = Writer::new(key, outputs, store)
        .write(false)
        .await
        .unwrap()
        .unwrap();
    let err = written.webhook_error.expect("unreachable");
    assert!(
        err.contains("unreachable") && !err.contains("s3cret"),
        "{err}"
    );
}

#[test]
fn file_names_sort_by_seq_then_time() {
    let key = match CheckpointKey::from_pem(KEY).unwrap() {
        CheckpointKey::Signing(k) => k,
        CheckpointKey::Public(_) => unreachable!(),
    };
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    let head = |seq| ChainHead {
        seq,
        hash: gateway_core::audit::sha256_hex(&[seq as u8]),
    };
    let mut names = [
        file_name(&key.sign(&head(10), t("2026-01-01T00:00:00Z")).unwrap()),
        file_name(&key.sign(&head(9), t("2026-06-01T00:00:00Z")).unwrap()),
        file_name(&key.sign(&head(10), t("2025-01-01T00:00:00Z")).unwrap()),
    ];
    assert_eq!(
        names[1],
        "checkpoint-00000000000000000009-20260601T000000.000000Z.json"
    );
    let want = [names[1].clone(), names[2].clone(), names[0].clone()];
    names.sort();
    assert_eq!(names, want);
}

#[test]
fn settings_say_what_is_missing_and_never_echo_the_key() {
    let dir = TempDir::new("settings");
    assert!(settings(&dir.config("")).unwrap().is_none());
    let err = settings(&dir.config("checkpoint_key = \"${file:keys/audit.pem}\""))
        .unwrap_err()
        .to_string();
    assert!(err.contains("checkpoints go nowhere"), "{err}");
    // A public key verifies, signs nothing.
    let auditor = dir.config("checkpoint_key = \"${file:keys/audit.pub.pem}\"");
    assert!(settings(&auditor).unwrap().is_none());
    assert!(matches!(
        key(&auditor).unwrap(),
        Some(CheckpointKey::Public(_))
    ));
    let err = settings(&dir.config(
        "checkpoint_key = \"${file:keys/audit.pub.pem}\"\ncheckpoint_dir = \"checkpoints\"",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("public key") && err.contains("cannot sign"),
        "{err}"
    );
    // Not a key: the message names the problem, not the content.
    let err =
        key(&dir.config("checkpoint_key = \"${file:keys/missing.pem}\"\ncheckpoint_dir = \"c\""))
            .unwrap_err()
            .to_string();
    assert!(err.contains("keys/missing.pem"), "{err}");
    let err = key(&dir.config("checkpoint_key = \"not a pem\"\ncheckpoint_dir = \"c\""))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not a PEM block") && !err.contains("not a pem\""),
        "{err}"
    );
}
