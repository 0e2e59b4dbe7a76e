//! Checkpoint keys (real openssl output), signing, tampering, and coverage
//! of a store's chain.

use std::sync::Arc;

use chrono::TimeZone;

use super::*;
use crate::audit::verify;
use crate::test_util::{MemoryStore, sample_record};

/// `openssl genpkey -algorithm ed25519` (OpenSSL 3.0), PKCS#8 v1.
const KEY_A: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEINNs9D1fcCv3a1uOqC3lEHpaWPKcgY/MYIdukfU6cX1b
-----END PRIVATE KEY-----
";
/// `openssl pkey -in a.pem -pubout`.
const PUB_A: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJiJ+sbcYHN4+TyKSgLM7RJO1xNQvcxXVDz205jF1Z3U=
-----END PUBLIC KEY-----
";
/// Another `openssl genpkey -algorithm ed25519`.
const KEY_B: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIN0we1knR+L6obf8KbZEz2bLA/k/lHId3iawWYw7ZFqT
-----END PRIVATE KEY-----
";
/// `openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256`.
const KEY_EC: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQghLkXIAmCk4eNAOTQ
WwBDMOX+14WFskdUIpYn15K9VWyhRANCAAQNUI8yItiDtFUESAP/gQ4iXUvdkVjw
VenNV1HREW+mS2RAN+yrx3gwNpRoy/Mbbob/ACc9bAa+dHt/QGOavFgz
-----END PRIVATE KEY-----
";

fn signing(pem: &str) -> SigningKey {
    match CheckpointKey::from_pem(pem).unwrap() {
        CheckpointKey::Signing(k) => k,
        CheckpointKey::Public(_) => panic!("expected a private key"),
    }
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 14, 0, 0).unwrap()
}

fn head(seq: u64) -> ChainHead {
    ChainHead {
        seq,
        hash: sha256_hex(seq.to_string().as_bytes()),
    }
}

#[test]
fn reads_the_key_openssl_writes_and_signs_as_openssl_does() {
    let key = signing(KEY_A);
    // `openssl pkeyutl -sign -inkey a.pem -rawin` over the same bytes:
    // Ed25519 is deterministic, so the same key gives the same signature.
    let openssl =
        "eHML74/IGPrfVPjAJIWLY9RxTXGQlEpzv2gMHEUvE6zpCYHmhxIpWTPLvN4OwEaD04LfJF4gICPjRwaH43nKCQ==";
    let ours = key
        .pair
        .try_sign(b"tollgate audit checkpoint test vector")
        .unwrap();
    assert_eq!(STANDARD.encode(ours.as_ref()), openssl);
    // Its public half, as `openssl pkey -pubout` writes it, is the same key.
    let public = CheckpointKey::from_pem(PUB_A).unwrap();
    assert!(public.signing().is_none());
    assert_eq!(public.public(), key.public());
    assert_eq!(key.public().id().len(), 16);
    assert!(!format!("{key:?}").contains("MC4C"), "{key:?}");
}

#[test]
fn refuses_what_is_not_an_ed25519_pem_without_echoing_it() {
    for (pem, want) in [
        (KEY_EC, "not an Ed25519 PKCS#8 key"),
        ("not a key at all", "not a PEM block"),
        (
            "-----BEGIN CERTIFICATE-----\nMCowBQYDK2VwAyEAJiJ+sbcYHN4+TyKSgLM7RJO1xNQvcxXVDz205jF1Z3U=\n-----END CERTIFICATE-----\n",
            "CERTIFICATE",
        ),
        (
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAJiJ+sbcYHN4+\n-----END PUBLIC KEY-----\n",
            "not an Ed25519 key",
        ),
    ] {
        let err = CheckpointKey::from_pem(pem).unwrap_err().to_string();
        assert!(err.contains(want), "{want}: {err}");
        assert!(err.contains("openssl genpkey -algorithm ed25519"), "{err}");
        for line in pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!err.contains(line), "key material in {err}");
        }
    }
}

#[test]
fn a_signed_checkpoint_verifies_after_a_round_trip_through_its_file() {
    let key = signing(KEY_A);
    let cp = key.sign(&head(42), at()).unwrap();
    assert_eq!(cp.seq, 42);
    assert_eq!(cp.time, "2026-12-07T14:00:00.000000Z");
    let text = serde_json::to_string_pretty(&cp).unwrap();
    let back = Checkpoint::parse(&text).unwrap();
    assert_eq!(back, cp);
    back.verify_signature(key.public()).unwrap();
    // With the public key only (an auditor's config), too.
    let public = CheckpointKey::from_pem(PUB_A).unwrap();
    back.verify_signature(public.public()).unwrap();
}

/// A change made to a signed checkpoint.
type Edit = Box<dyn Fn(&mut Checkpoint)>;

#[test]
fn any_edit_breaks_the_signature() {
    let key = signing(KEY_A);
    let cp = key.sign(&head(42), at()).unwrap();
    let edits: Vec<(&str, Edit)> = vec![
        ("seq", Box::new(|c| c.seq = 41)),
        ("hash", Box::new(|c| c.hash = head(41).hash)),
        (
            "time",
            Box::new(|c| c.time = "2027-01-01T00:00:00.000000Z".into()),
        ),
        (
            "signature",
            Box::new(|c| {
                let mut sig = STANDARD.decode(&c.signature).unwrap();
                sig[10] ^= 1;
                c.signature = STANDARD.encode(sig);
            }),
        ),
        (
            "signature",
            Box::new(|c| c.signature = "not base64!".into()),
        ),
    ];
    for (what, edit) in edits {
        let mut forged = cp.clone();
        edit(&mut forged);
        let err = forged.verify_signature(key.public()).unwrap_err();
        assert!(
            matches!(err, CheckpointError::BadSignature { .. }),
            "{what}: {err}"
        );
        assert!(err.to_string().contains("edited"), "{err}");
    }
}

#[test]
fn a_checkpoint_of_another_key_is_refused_even_when_relabelled() {
    let a = signing(KEY_A);
    let b = signing(KEY_B);
    let by_b = b.sign(&head(7), at()).unwrap();
    let err = by_b.verify_signature(a.public()).unwrap_err();
    assert_eq!(
        err,
        CheckpointError::UntrustedKey {
            signed_by: b.public().id(),
            trusted: a.public().id(),
        }
    );
    assert!(
        err.to_string().contains("not by the configured key"),
        "{err}"
    );
    // B's signature under A's name: the names match, the signature does not.
    let mut relabelled = by_b.clone();
    relabelled.key_id = a.public().id();
    relabelled.public_key = a.public().to_base64();
    assert!(matches!(
        relabelled.verify_signature(a.public()),
        Err(CheckpointError::BadSignature { .. })
    ));
    // A's key id with B's key, or the reverse: not the trusted key.
    let mut mixed = by_b;
    mixed.key_id = a.public().id();
    assert!(matches!(
        mixed.verify_signature(a.public()),
        Err(CheckpointError::UntrustedKey { .. })
    ));
}

#[test]
fn parse_refuses_other_shapes() {
    let key = signing(KEY_A);
    let cp = key.sign(&head(3), at()).unwrap();
    let mut v = serde_json::to_value(&cp).unwrap();
    v["extra"] = json!(1);
    assert!(Checkpoint::parse(&v.to_string()).is_err(), "unknown member");
    let mut v = serde_json::to_value(&cp).unwrap();
    v["version"] = json!(2);
    let err = Checkpoint::parse(&v.to_string()).unwrap_err().to_string();
    assert!(err.contains("version 2"), "{err}");
    let mut v = serde_json::to_value(&cp).unwrap();
    v["hash"] = json!("ABC");
    assert!(Checkpoint::parse(&v.to_string()).is_err());
    let mut v = serde_json::to_value(&cp).unwrap();
    v["hash"] = json!(GENESIS_HASH);
    assert!(
        Checkpoint::parse(&v.to_string()).is_err(),
        "seq 3, empty hash"
    );
    assert!(Checkpoint::parse("[]").is_err());
    let empty = key.sign(&ChainHead::genesis(), at()).unwrap();
    Checkpoint::parse(&serde_json::to_string(&empty).unwrap()).unwrap();
}

/// A chain of `n` events whose records are `sample_record(first..)`.
fn chain(n: u64, first: u64) -> Vec<AuditEvent> {
    let mut out: Vec<AuditEvent> = vec![];
    for seq in 1..=n {
        let prev = out
            .last()
            .map_or(GENESIS_HASH.to_string(), |e| e.hash.clone());
        out.push(AuditEvent::seal(
            sample_record(first + seq),
            format!("ev{seq}"),
            seq,
            "2026-12-07T14:00:00.000000Z".into(),
            prev,
        ));
    }
    out
}

fn checkpoint_at(events: &[AuditEvent], seq: u64) -> Checkpoint {
    let e = &events[seq as usize - 1];
    signing(KEY_A)
        .sign(
            &ChainHead {
                seq,
                hash: e.hash.clone(),
            },
            at(),
        )
        .unwrap()
}

#[test]
fn covered_by_an_intact_store_that_grew_since() {
    let events = chain(8, 0);
    let cp = checkpoint_at(&events, 5);
    let report = verify(&events);
    cp.covered_by(&report, Some(&events[4])).unwrap();
    // Exactly up to the checkpoint, too.
    let report = verify(&events[..5]);
    cp.covered_by(&report, Some(&events[4])).unwrap();
    // A break after what the checkpoint covers is not its business.
    let mut broken = events.clone();
    broken[6].record.tool = "edited".into();
    cp.covered_by(&verify(&broken), Some(&broken[4])).unwrap();
    // A checkpoint of the empty chain covers nothing.
    let empty = signing(KEY_A).sign(&ChainHead::genesis(), at()).unwrap();
    empty
        .covered_by(&verify(&[] as &[AuditEvent]), None)
        .unwrap();
}

#[test]
fn a_truncated_tail_is_not_covered_though_the_shorter_chain_verifies() {
    let events = chain(8, 0);
    let cp = checkpoint_at(&events, 8);
    let report = verify(&events[..5]);
    assert!(report.is_intact(), "the chain alone cannot see it");
    let err = cp.covered_by(&report, None).unwrap_err();
    assert_eq!(err, Uncovered::Truncated { head: 5, covers: 8 });
    assert!(
        err.to_string()
            .contains("the store's head is seq 5, the checkpoint covers up to seq 8"),
        "{err}"
    );
}

#[test]
fn a_rewritten_chain_is_not_covered_though_it_verifies() {
    // Truncated to 3 and re-grown with other events: a valid chain to 8.
    let events = chain(8, 0);
    let cp = checkpoint_at(&events, 8);
    let mut regrown = events[..3].to_vec();
    for e in chain(8, 100).into_iter().skip(3) {
        let prev = regrown.last().unwrap().hash.clone();
        regrown.push(AuditEvent::seal(e.record, e.id, e.seq, e.time, prev));
    }
    let report = verify(&regrown);
    assert!(report.is_intact());
    let err = cp.covered_by(&report, Some(&regrown[7])).unwrap_err();
    assert!(matches!(err, Uncovered::Differs { seq: 8, .. }), "{err}");
    assert!(err.to_string().contains("rewritten"), "{err}");
}

#[test]
fn a_break_within_the_covered_range_is_reported_as_such() {
    let mut events = chain(8, 0);
    let cp = checkpoint_at(&events, 6);
    events[2].record.tool = "edited".into();
    let err = cp
        .covered_by(&verify(&events), Some(&events[5]))
        .unwrap_err();
    match err {
        Uncovered::Broken { covers: 6, brk } => assert_eq!(brk.seq, 3),
        other => panic!("{other}"),
    }
}

async fn store_with(n: u64) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::default());
    for i in 1..=n {
        store.append(sample_record(i)).await.unwrap();
    }
    store
}

#[tokio::test]
async fn extend_signs_only_heads_that_chain_onto_the_previous_one() {
    let store = store_with(3).await;
    let first = extend(store.as_ref(), &ChainHead::genesis())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.seq, 3);
    // Nothing new: the same head.
    let same = extend(store.as_ref(), &first).await.unwrap().unwrap();
    assert_eq!(same, first);
    for i in 4..=6 {
        store.append(sample_record(i)).await.unwrap();
    }
    let next = extend(store.as_ref(), &first).await.unwrap().unwrap();
    assert_eq!(next.seq, 6);
    assert_eq!(next.hash, store.events.lock().unwrap()[5].hash);

    // An event after the previous head edited: no new head.
    store.events.lock().unwrap()[4].record.tool = "edited".into();
    let err = extend(store.as_ref(), &first).await.unwrap().unwrap_err();
    assert!(
        matches!(&err, ExtendError::Broken { from: 3, brk } if brk.seq == 5),
        "{err}"
    );
    // The previous head itself gone: the tail was cut.
    store.events.lock().unwrap().truncate(2);
    let err = extend(store.as_ref(), &next).await.unwrap().unwrap_err();
    assert_eq!(
        err,
        ExtendError::Uncovered(Uncovered::Truncated { head: 2, covers: 6 })
    );
}

#[tokio::test]
async fn check_store_reads_the_event_at_the_checkpoint() {
    let store = store_with(4).await;
    let head = extend(store.as_ref(), &ChainHead::genesis())
        .await
        .unwrap()
        .unwrap();
    let cp = signing(KEY_A).sign(&head, at()).unwrap();
    let report = store.verify().await.unwrap();
    check_store(store.as_ref(), &cp, &report)
        .await
        .unwrap()
        .unwrap();
    store.events.lock().unwrap().truncate(3);
    let report = store.verify().await.unwrap();
    assert!(report.is_intact());
    let err = check_store(store.as_ref(), &cp, &report)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err, Uncovered::Truncated { head: 3, covers: 4 });
}
