//! Tests of the policy vocabulary: a made-up family with nested resources
//! and attributes goes through the engine with no change to the core, and
//! fragments that clash are refused at start.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cedar_policy::{PolicySet, Schema, ValidationMode, Validator};

use super::*;
use crate::access::{ContextValue, Resource};
use crate::test_util::SQL_VOCABULARY;

/// A family unlike SQL: crates on shelves of a warehouse connection, each
/// crate with attributes.
const BOXES: Vocabulary = Vocabulary {
    family: "boxes",
    fragment: r#"
        namespace Tollgate {
          entity Shelf in [Connection];
          entity Crate in [Shelf] = { fragile: Bool, label: String };
          action "box:open" appliesTo { principal: [User], resource: [Crate, Shelf], context: { force: Bool } };
        }
    "#,
    unmask_resources: &["Crate"],
};

fn schema(families: &[Vocabulary]) -> Arc<PolicySchema> {
    Arc::new(PolicySchema::combine(families).unwrap())
}

fn engine(families: &[Vocabulary], text: &str) -> PolicyEngine {
    PolicyEngine::new(
        schema(families),
        &load_sources(vec![("p.cedar".into(), text.into())]),
    )
    .unwrap()
}

fn shelf(connection: &str) -> Resource {
    Resource::new("Shelf", format!("{connection}/a")).within(Resource::connection(connection))
}

fn crate_on(connection: &str, fragile: bool) -> Resource {
    Resource::new("Crate", format!("{connection}/a/7"))
        .within(shelf(connection))
        .with_attribute("fragile", ContextValue::Bool(fragile))
        .with_attribute("label", ContextValue::String("tea".into()))
}

fn open(resource: Resource) -> AccessRequest {
    AccessRequest {
        action: "box:open".into(),
        resource,
        context: BTreeMap::from([("force".to_string(), ContextValue::Bool(false))]),
    }
}

fn ann() -> Principal {
    Principal {
        sub: "ann".into(),
        groups: vec!["movers".into()],
    }
}

#[test]
fn a_grandchild_is_in_its_connection_and_attributes_reach_policies() {
    let e = engine(
        &[SQL_VOCABULARY, BOXES],
        r#"
        permit(principal in Tollgate::Group::"movers", action == Tollgate::Action::"box:open",
               resource in Tollgate::Connection::"depot");
        @id("careful")
        forbid(principal, action, resource is Tollgate::Crate) when { resource.fragile };
        "#,
    );
    let d = e.decide(&ann(), &[open(crate_on("depot", false))]);
    assert_eq!(d.verdict, Verdict::Allow, "{d:?}");
    assert_eq!(d.requests[0].resource, r#"Tollgate::Crate::"depot/a/7""#);
    // The shelf (one level down) is in the connection as well.
    assert!(e.is_permitted(&ann(), &open(shelf("depot"))));
    // Another connection's crate is not in "depot".
    let other = e.decide(&ann(), &[open(crate_on("yard", false))]);
    assert!(matches!(other.verdict, Verdict::Deny { .. }), "{other:?}");
    // The attribute decides: a fragile crate is forbidden by `careful`.
    match e.decide(&ann(), &[open(crate_on("depot", true))]).verdict {
        Verdict::Deny { policies, .. } => assert_eq!(policies, vec!["careful".to_string()]),
        other => panic!("expected the forbid, got {other:?}"),
    }
}

#[test]
fn a_family_type_takes_unmask() {
    let e = engine(
        &[BOXES],
        r#"permit(principal, action == Tollgate::Action::"unmask", resource is Tollgate::Crate)
             when { context.types.contains("EMAIL") && !resource.fragile };"#,
    );
    let unmask = |resource: Resource| AccessRequest {
        action: "unmask".into(),
        resource,
        context: BTreeMap::from([(
            "types".to_string(),
            ContextValue::StringSet(BTreeSet::from(["EMAIL".to_string()])),
        )]),
    };
    assert!(e.is_permitted(&ann(), &unmask(crate_on("depot", false))));
    assert!(!e.is_permitted(&ann(), &unmask(crate_on("depot", true))));
    // A Shelf is not among the family's `unmask` resources: the request does
    // not match the schema, and that denies.
    let d = e.decide(&ann(), &[unmask(shelf("depot"))]);
    assert!(!d.requests[0].allowed);
    assert!(!d.requests[0].errors.is_empty(), "{d:?}");
}

#[test]
fn resources_the_fragment_does_not_declare_are_denied() {
    let e = engine(&[BOXES], "permit(principal, action, resource);");
    assert!(e.is_permitted(&ann(), &open(crate_on("depot", false))));
    let denied = |r: Resource| {
        let d = e.decide(&ann(), &[open(r)]);
        assert!(!d.requests[0].allowed, "{d:?}");
        d.requests[0].errors.join("; ")
    };
    // An attribute the fragment does not declare.
    let extra = crate_on("depot", false).with_attribute("colour", ContextValue::Long(3));
    let m = denied(extra);
    assert!(m.contains("colour"), "{m}");
    // A declared attribute missing.
    let mut missing = crate_on("depot", false);
    missing.attributes.remove("label");
    assert!(denied(missing).contains("label"));
    // A parent of a type the fragment does not allow (a crate in the audit
    // log; Cedar allows any ancestor type of the schema's chain, so a crate
    // directly in its connection would be accepted).
    let flat = Resource::new("Crate", "depot/7")
        .within(Resource::audit_log())
        .with_attribute("fragile", ContextValue::Bool(false))
        .with_attribute("label", ContextValue::String("tea".into()));
    let m = denied(flat);
    assert!(m.contains("Audit"), "{m}");
    // The same for a type without attributes (checked without Cedar's
    // conformance pass, which only runs when attributes are in play).
    let m = denied(Resource::new("Shelf", "depot/a").within(Resource::audit_log()));
    assert!(m.contains("may not be `in`"), "{m}");
    // A crate given no attributes at all, though its type declares some.
    let bare = Resource::new("Crate", "depot/a/8").within(shelf("depot"));
    let m = denied(bare);
    assert!(m.contains("fragile") || m.contains("label"), "{m}");
    // A type no fragment declares (SQL is not in this schema).
    let table = Resource::new("Table", "depot/public.t").within(Resource::connection("depot"));
    assert!(denied(table).contains("not declared"));
}

#[test]
fn one_entity_named_two_ways_in_a_call_is_denied() {
    let e = engine(&[BOXES], "permit(principal, action, resource);");
    let d = e.decide(
        &ann(),
        &[
            open(crate_on("depot", false)),
            open(crate_on("depot", true)),
        ],
    );
    assert!(matches!(d.verdict, Verdict::Deny { .. }), "{d:?}");
    assert!(d.requests[0].errors[0].contains("two different"), "{d:?}");
}

fn combine_err(families: &[Vocabulary]) -> String {
    PolicySchema::combine(families).unwrap_err().to_string()
}

#[test]
fn a_name_declared_twice_stops_the_start() {
    let table_again = Vocabulary {
        family: "tables",
        fragment: "namespace Tollgate { entity Table in [Connection]; }",
        unmask_resources: &[],
    };
    let e = combine_err(&[SQL_VOCABULARY, table_again]);
    assert!(
        e.contains("entity type `Table` is declared by both family `sql` and family `tables`"),
        "{e}"
    );
    let connection_again = Vocabulary {
        family: "dup",
        fragment: "namespace Tollgate { entity Connection; }",
        unmask_resources: &[],
    };
    let e = combine_err(&[connection_again]);
    assert!(
        e.contains("entity type `Connection` is declared by both the core and family `dup`"),
        "{e}"
    );
    let own_unmask = Vocabulary {
        family: "dup",
        fragment: r#"namespace Tollgate { action "unmask" appliesTo { principal: [User], resource: [Connection], context: {} }; }"#,
        unmask_resources: &[],
    };
    let e = combine_err(&[own_unmask]);
    assert!(
        e.contains("action `unmask` is declared by both family `dup` and the core"),
        "{e}"
    );
    let select_again = Vocabulary {
        family: "dup",
        fragment: r#"namespace Tollgate { action "sql:select" appliesTo { principal: [User], resource: [Connection], context: {} }; }"#,
        unmask_resources: &[],
    };
    let e = combine_err(&[SQL_VOCABULARY, select_again]);
    assert!(e.contains("action `sql:select` is declared by both"), "{e}");
}

#[test]
fn fragments_that_do_not_fit_stop_the_start() {
    let outside = Vocabulary {
        family: "loose",
        fragment: "entity Thing;",
        unmask_resources: &[],
    };
    assert!(combine_err(&[outside]).contains("outside `namespace Tollgate`"));
    let not_declared = Vocabulary {
        unmask_resources: &["Table"],
        ..BOXES
    };
    let e = combine_err(&[not_declared]);
    assert!(
        e.contains("family `boxes` lists `Table` among the resources of \"unmask\""),
        "{e}"
    );
    let broken = Vocabulary {
        family: "broken",
        fragment: "namespace Tollgate { entity ; }",
        unmask_resources: &[],
    };
    assert!(combine_err(&[broken]).contains("family `broken` does not parse"));
    let dangling = Vocabulary {
        family: "dangling",
        fragment: "namespace Tollgate { entity Leaf in [Branch]; }",
        unmask_resources: &[],
    };
    assert!(combine_err(&[dangling]).contains("do not combine"));
    let renamed = Vocabulary {
        fragment: "namespace Tollgate { entity Other; }",
        unmask_resources: &[],
        ..BOXES
    };
    assert!(combine_err(&[BOXES, renamed]).contains("two tool families are named `boxes`"));
    // The same family given by several kinds (postgres, mysql, sqlite) counts once.
    let s = schema(&[SQL_VOCABULARY, SQL_VOCABULARY, SQL_VOCABULARY]);
    assert_eq!(s.families(), ["sql"]);
}

/// Every shipped policy file of the SQL family and the core, with its path.
/// Files naming another family's actions (`k8s:`, `ssh:`) are validated
/// against every family's fragment by the server's tests
/// (`policy_schema_prints_cedar_that_validates_the_shipped_policies`);
/// the core knows only the SQL fragment used here as its fixture.
fn shipped_policies() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs = vec![root.join("policies")];
    for example in std::fs::read_dir(root.join("examples")).unwrap() {
        dirs.push(example.unwrap().path().join("policies"));
    }
    let mut out = vec![];
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        for f in std::fs::read_dir(dir).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|x| x == "cedar") {
                let body = std::fs::read_to_string(&p).unwrap();
                if body.contains("Action::\"k8s:") || body.contains("Action::\"ssh:") {
                    continue;
                }
                out.push((p.display().to_string(), body));
            }
        }
    }
    out
}

#[test]
fn the_printed_schema_parses_back_and_validates_the_shipped_policies() {
    let combined = schema(&[SQL_VOCABULARY]);
    let text = combined.to_cedar();
    // The names of the single schema this replaces, exactly.
    for name in [
        "entity User in [Group]",
        "entity Table in [Connection]",
        "entity Function in [Connection]",
        "type SqlContext",
        r#"action "sql:call""#,
        r#"action "audit:read""#,
        "resource: [Connection, Table]",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    let (reparsed, _) = Schema::from_cedarschema_str(text).unwrap();
    let policies = shipped_policies();
    assert!(policies.len() >= 4, "{policies:?}");
    for (path, body) in policies {
        let set: PolicySet = body.parse().unwrap();
        for s in [&reparsed, combined.schema()] {
            let result = Validator::new(s.clone()).validate(&set, ValidationMode::Strict);
            assert!(
                result.validation_passed(),
                "{path}: {:?}",
                result.validation_errors().collect::<Vec<_>>()
            );
        }
    }
    // And a policy naming what no fragment declares does not validate.
    let err = PolicyEngine::new(
        combined,
        &load_sources(vec![(
            "k.cedar".into(),
            r#"permit(principal, action == Tollgate::Action::"box:open", resource);"#.into(),
        )]),
    )
    .unwrap_err();
    assert!(matches!(err, PolicyError::Invalid(_)), "{err}");
}
