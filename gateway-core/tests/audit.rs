//! The audit hash chain: canonical form (golden), sealing, and the verifier
//! naming the first break for edited, deleted, reordered and re-hashed events.

use std::collections::BTreeMap;

use gateway_core::Principal;
use gateway_core::audit::{
    AuditEvent, AuditRecord, BreakKind, ChainVerifier, GENESIS_HASH, OutcomeRecord, RequestRecord,
    canonical_json, verify,
};
use serde_json::{Value, json};

fn record(n: u64) -> AuditRecord {
    AuditRecord {
        principal: Principal {
            sub: format!("user{n}"),
            groups: vec!["agents".into()],
        },
        tool: "sql_query".into(),
        connection: Some("shop".into()),
        arguments: json!({"sql": format!("select {n}"), "connection": "shop", "max_rows": 10}),
        requests: vec![RequestRecord {
            action: "sql:select".into(),
            resource: "Tollgate::Table::\"shop/public.orders\"".into(),
            decision: "allow".into(),
            policies: vec!["p0".into()],
        }],
        decision: "allow".into(),
        approval: None,
        outcome: OutcomeRecord {
            status: "ok".into(),
            duration_ms: 3,
            rows: Some(n),
            error: None,
        },
        result_preview: json!({"rows": [[1.5, "é", null]]}),
        masked: BTreeMap::from([("EMAIL".to_string(), 2)]),
        recording: None,
        intent: None,
    }
}

fn chain(n: u64) -> Vec<AuditEvent> {
    let mut prev = GENESIS_HASH.to_string();
    (1..=n)
        .map(|seq| {
            let e = AuditEvent::seal(
                record(seq),
                format!("id-{seq}"),
                seq,
                format!("2026-01-01T00:00:{seq:02}.000000Z"),
                prev.clone(),
            );
            prev = e.hash.clone();
            e
        })
        .collect()
}

#[test]
fn canonical_json_sorts_keys_recursively_without_whitespace() {
    let a = json!({"b": 1, "a": {"z": [3, {"y": true, "x": null}], "m": "é\"\n"}});
    assert_eq!(
        canonical_json(&a),
        r#"{"a":{"m":"é\"\n","z":[3,{"x":null,"y":true}]},"b":1}"#
    );
    // Insertion order does not matter (serde_json has preserve_order here).
    let b = json!({"a": {"m": "é\"\n", "z": [3, {"x": null, "y": true}]}, "b": 1});
    assert_eq!(canonical_json(&a), canonical_json(&b));
}

#[test]
fn golden_canonical_event() {
    let e = &chain(1)[0];
    let want = concat!(
        r#"{"approval":null,"arguments":{"connection":"shop","max_rows":10,"sql":"select 1"},"connection":"shop","#,
        r#""decision":"allow","id":"id-1","masked":{"EMAIL":2},"outcome":{"duration_ms":3,"error":null,"rows":1,"status":"ok"},"#,
        r#""prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","#,
        r#""principal":{"groups":["agents"],"sub":"user1"},"requests":[{"action":"sql:select","decision":"allow","#,
        r#""policies":["p0"],"resource":"Tollgate::Table::\"shop/public.orders\""}],"result_preview":{"rows":[[1.5,"é",null]]},"#,
        r#""seq":1,"time":"2026-01-01T00:00:01.000000Z","tool":"sql_query"}"#
    );
    assert_eq!(e.canonical(), want);
    assert_eq!(e.hash, gateway_core::audit::sha256_hex(want.as_bytes()));
    assert_eq!(e.hash.len(), 64);
}

#[test]
fn intact_chain_verifies_and_survives_a_json_round_trip() {
    let events = chain(5);
    let report = verify(&events);
    assert!(report.is_intact(), "{report}");
    assert_eq!((report.checked, report.last_seq), (5, Some(5)));
    assert_eq!(report.last_hash.as_deref(), Some(events[4].hash.as_str()));
    // What export writes and an auditor re-reads still verifies.
    let jsonl: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    let back: Vec<AuditEvent> = jsonl
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(verify(&back).is_intact());
    assert!(verify(&[] as &[AuditEvent]).is_intact());
}

#[test]
fn edited_event_is_named() {
    let mut events = chain(5);
    events[2].record.decision = "deny".into();
    let b = verify(&events).first_break.unwrap();
    assert_eq!(b.seq, 3);
    assert!(matches!(b.kind, BreakKind::HashMismatch { .. }), "{b}");
    assert!(b.to_string().contains("seq 3"));
}

#[test]
fn edited_and_rehashed_event_breaks_the_next_link() {
    let mut events = chain(5);
    events[2].record.outcome.rows = Some(0);
    events[2].hash = events[2].compute_hash();
    let b = verify(&events).first_break.unwrap();
    assert_eq!(b.seq, 4);
    assert!(matches!(b.kind, BreakKind::PrevHashMismatch { .. }), "{b}");
}

#[test]
fn deleted_event_is_a_gap() {
    let mut events = chain(5);
    events.remove(1);
    let b = verify(&events).first_break.unwrap();
    assert_eq!(
        (b.seq, b.kind.clone()),
        (
            3,
            BreakKind::SeqGap {
                expected: 2,
                found: 3
            }
        )
    );
    // Deleted and renumbered: the link breaks instead.
    let mut events = chain(5);
    events.remove(1);
    for e in events.iter_mut().skip(1) {
        e.seq -= 1;
        e.hash = e.compute_hash();
    }
    let b = verify(&events).first_break.unwrap();
    assert_eq!(b.seq, 2);
    assert!(matches!(b.kind, BreakKind::PrevHashMismatch { .. }));
}

#[test]
fn reordered_events_are_named() {
    let mut events = chain(5);
    events.swap(2, 3);
    let b = verify(&events).first_break.unwrap();
    assert_eq!(
        (b.seq, b.kind),
        (
            4,
            BreakKind::SeqGap {
                expected: 3,
                found: 4
            }
        )
    );
    // Swapped contents but seq kept in place: the content no longer hashes.
    let mut events = chain(5);
    let (s3, s4) = (events[2].seq, events[3].seq);
    events.swap(2, 3);
    events[2].seq = s3;
    events[3].seq = s4;
    let b = verify(&events).first_break.unwrap();
    assert_eq!(b.seq, 3);
    assert!(matches!(b.kind, BreakKind::HashMismatch { .. }));
    // Duplicate.
    let mut events = chain(3);
    events.insert(2, events[1].clone());
    assert!(matches!(
        verify(&events).first_break.unwrap().kind,
        BreakKind::SeqOutOfOrder {
            expected: 3,
            found: 2
        }
    ));
}

#[test]
fn truncated_tail_needs_the_recorded_head() {
    let events = chain(5);
    let head_hash = events[4].hash.clone();
    let mut v = ChainVerifier::new();
    for e in &events[..3] {
        assert!(v.push(e));
    }
    let report = v.clone().finish(None);
    assert!(
        report.is_intact(),
        "without a head, a truncated prefix looks fine"
    );
    let b = v.finish(Some((5, &head_hash))).first_break.unwrap();
    assert_eq!(
        b.kind,
        BreakKind::TruncatedTail {
            recorded_seq: 5,
            last_seq: 3
        }
    );

    let mut v = ChainVerifier::new();
    events.iter().for_each(|e| {
        v.push(e);
    });
    assert!(v.clone().finish(Some((5, &head_hash))).is_intact());
    assert!(matches!(
        v.finish(Some((5, "ff"))).first_break.unwrap().kind,
        BreakKind::HeadMismatch { .. }
    ));
}

#[test]
fn first_event_must_start_at_genesis() {
    let mut events = chain(2);
    events[0].prev_hash = "ab".repeat(32);
    events[0].hash = events[0].compute_hash();
    let b = verify(&events).first_break.unwrap();
    assert_eq!(b.seq, 1);
    assert!(matches!(b.kind, BreakKind::PrevHashMismatch { .. }));
}

/// The event's canonical form is written straight from the struct for speed;
/// it must stay byte-identical to the documented generic form (the event
/// serialised, `hash` removed, keys sorted) for every shape of record.
#[test]
fn canonical_matches_the_generic_form() {
    use gateway_core::audit::ApprovalRecord;
    let generic = |e: &AuditEvent| {
        let mut v = serde_json::to_value(e).unwrap();
        v.as_object_mut().unwrap().shift_remove("hash");
        canonical_json(&v)
    };
    let mut shapes = vec![];
    let base = record(7);
    shapes.push(base.clone());
    let mut r = base.clone();
    r.connection = None;
    r.approval = Some(ApprovalRecord {
        id: "apr_1".into(),
        state: "approved".into(),
        approvers: vec!["rita".into(), "zoë \"z\"".into()],
    });
    r.outcome.rows = None;
    r.outcome.error = Some("duplicate key \u{1}\t\\ (SQLSTATE 23505)".into());
    r.masked = BTreeMap::from([
        ("US_SSN".to_string(), 1),
        ("EMAIL".to_string(), 3),
        ("Ünicode".to_string(), 2),
    ]);
    r.arguments = json!({"z": {"b": [1, 2.5, -3, 1e300], "a": null}, "A": "\u{2028}", "": true});
    r.result_preview = Value::Null;
    r.requests = vec![];
    r.principal.groups = vec![];
    shapes.push(r);
    let mut r = base;
    r.requests.push(RequestRecord {
        action: "connect".into(),
        resource: "Tollgate::Connection::\"shop\"".into(),
        decision: "deny".into(),
        policies: vec![],
    });
    r.masked.clear();
    r.decision = "deny".into();
    shapes.push(r);
    for (i, record) in shapes.into_iter().enumerate() {
        let e = AuditEvent::seal(
            record,
            format!("019a-{i}"),
            u64::MAX - i as u64,
            "2026-11-25T19:00:00.000001Z".into(),
            GENESIS_HASH.into(),
        );
        assert_eq!(e.canonical(), generic(&e), "shape {i}");
    }
}
