//! Unit tests of the token plumbing (header peeking, groups paths); the
//! signature/claims behaviour is tested end to end in `tests/identity.rs`.

use serde_json::{Map, Value, json};

use super::claims::{groups, peek_header, printable, set_groups};
use super::strip_bearer;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn groups_from_array_string_path_and_namespaced_claim() {
    let c = obj(json!({
        "groups": ["a", "b", "a", 3],
        "scope": "x  y z",
        "realm_access": {"roles": ["r1", "r2"]},
        "https://example.com/groups": ["ns"],
    }));
    assert_eq!(groups(&c, "groups"), ["a", "b"]);
    assert_eq!(groups(&c, "scope"), ["x", "y", "z"]);
    assert_eq!(groups(&c, "realm_access.roles"), ["r1", "r2"]);
    assert_eq!(groups(&c, "https://example.com/groups"), ["ns"]);
    assert!(groups(&c, "missing.path").is_empty());
    assert!(groups(&obj(json!({"groups": {"a": 1}})), "groups").is_empty());
}

#[test]
fn set_groups_is_the_inverse_of_groups() {
    let mut c = Map::new();
    let g = vec!["ops".to_string(), "dba".to_string()];
    set_groups(&mut c, "realm_access.roles", &g);
    assert_eq!(
        Value::Object(c.clone()),
        json!({"realm_access": {"roles": ["ops", "dba"]}})
    );
    assert_eq!(groups(&c, "realm_access.roles"), g);
}

#[test]
fn header_peek_and_printable() {
    assert!(peek_header("a.b").is_err());
    assert!(peek_header("a.b.c.d").is_err());
    // {"alg":"none"}
    let h = peek_header("eyJhbGciOiJub25lIn0.e30.").unwrap();
    assert_eq!(h.alg, "none");
    assert_eq!(h.kid, None);
    assert_eq!(printable("<script>none</script>"), "scriptnonescript");
    assert_eq!(strip_bearer("  Bearer abc "), "abc");
    assert_eq!(strip_bearer("bearer abc"), "abc");
    assert_eq!(strip_bearer("abc"), "abc");
    assert_eq!(strip_bearer("Bearer"), "");
    assert_eq!(strip_bearer("Bearerabc"), "Bearerabc");
}
