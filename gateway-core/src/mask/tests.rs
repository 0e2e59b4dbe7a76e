use serde_json::json;

use super::*;

/// A dotted field path as a connector would name it.
fn path(dotted: &str) -> FieldPath {
    FieldPath::new(dotted.split('.'))
}

fn cfg(toml_like: Value) -> MaskConfig {
    serde_json::from_value(toml_like).expect("config parses")
}

fn key_env() -> String {
    // SAFETY: test-only env mutation of a unique name.
    unsafe { std::env::set_var("TOLLGATE_TEST_MASK_KEY", "k1") };
    unsafe { std::env::set_var("TOLLGATE_TEST_MASK_KEY2", "k2") };
    "${env:TOLLGATE_TEST_MASK_KEY}".to_string()
}

#[test]
fn default_masks_every_builtin_with_redact() {
    let m = Masker::new(&MaskConfig::default()).unwrap();
    let (t, c) = m.mask_text("bob@example.com paid with 4111 1111 1111 1111 from 10.1.2.3");
    assert_eq!(t, "[EMAIL] paid with [CREDIT_CARD] from [IP_ADDRESS]");
    assert_eq!(
        c,
        MaskCounts::from([
            ("EMAIL".into(), 1),
            ("CREDIT_CARD".into(), 1),
            ("IP_ADDRESS".into(), 1)
        ])
    );
    let (t, c) = m.mask_text("nothing here");
    assert_eq!((t.as_str(), c.len()), ("nothing here", 0));
}

#[test]
fn strategies_partial_null_and_types_off() {
    let m = Masker::new(&cfg(json!({
        "types": {
            "CREDIT_CARD": {"strategy": "partial", "keep": 4},
            "EMAIL": {"strategy": "null"},
            "IP_ADDRESS": {"enabled": false}
        }
    })))
    .unwrap();
    let (t, _) = m.mask_text("card 4111-1111-1111-1111 mail bob@example.com ip 10.1.2.3");
    assert_eq!(t, "card ****1111 mail  ip 10.1.2.3");
    let mut v = json!({"email": "bob@example.com", "n": 1});
    m.mask_value("c", &mut v, &[]);
    assert_eq!(v, json!({"email": null, "n": 1}));
}

#[test]
fn hash_is_stable_and_keyed() {
    let key = key_env();
    let m1 = Masker::new(&cfg(json!({"default_strategy": "hash", "hash_key": key}))).unwrap();
    let m2 = Masker::new(&cfg(
        json!({"default_strategy": "hash", "hash_key": "${env:TOLLGATE_TEST_MASK_KEY2}"}),
    ))
    .unwrap();
    let (a, _) = m1.mask_text("bob@example.com");
    let (b, _) = m1.mask_text("x bob@example.com y");
    let (c, _) = m1.mask_text("alice@example.com");
    let (d, _) = m2.mask_text("bob@example.com");
    assert!(
        a.starts_with("EMAIL_") && a.len() == "EMAIL_".len() + 8,
        "{a}"
    );
    assert_eq!(b, format!("x {a} y"));
    assert_ne!(a, c);
    assert_ne!(a, d, "another key gives other tokens");
}

#[test]
fn hash_without_key_is_a_config_error() {
    let e = Masker::new(&cfg(json!({"types": {"EMAIL": {"strategy": "hash"}}}))).unwrap_err();
    assert!(e.to_string().contains("hash_key"), "{e}");
    let e = Masker::new(&cfg(json!({"hash_key": "${env:TOLLGATE_TEST_UNSET_XYZ}"}))).unwrap_err();
    assert!(e.to_string().contains("TOLLGATE_TEST_UNSET_XYZ"), "{e}");
}

#[test]
fn unknown_keys_and_bad_values_are_rejected() {
    for bad in [
        json!({"enabeld": true}),
        json!({"types": {"EMAIL": {"stratgy": "redact"}}}),
        json!({"types": {"EMAIL": {"strategy": "scramble"}}}),
        json!({"columns": [{"column": "*.*.ssn", "typo": 1}]}),
        json!({"custom": [{"name": "X", "regex": "x", "validator": "crc"}]}),
    ] {
        assert!(
            serde_json::from_value::<MaskConfig>(bad.clone()).is_err(),
            "{bad}"
        );
    }
    for (bad, needle) in [
        (json!({"types": {"EMIAL": {}}}), "unknown type `EMIAL`"),
        (
            json!({"custom": [{"name": "emp_id", "regex": "x"}]}),
            "upper case",
        ),
        (
            json!({"custom": [{"name": "EMAIL", "regex": "x"}]}),
            "shadows",
        ),
        (
            json!({"custom": [{"name": "X"}]}),
            "needs `regex` or `words`",
        ),
        (json!({"custom": [{"name": "X", "regex": "("}]}), "regex"),
        (
            json!({"columns": [{"column": "ssn"}]}),
            "schema.table.column",
        ),
        (
            json!({"columns": [{"column": "*.*.[", "type": "SSN"}]}),
            "glob",
        ),
    ] {
        let e = Masker::new(&cfg(bad.clone())).unwrap_err().to_string();
        assert!(e.contains(needle), "{bad}: {e}");
    }
}

#[test]
fn toml_section_parses() {
    let text = r#"
        hash_key = "${env:TOLLGATE_TEST_MASK_KEY}"
        [types.EMAIL]
        strategy = "hash"
        [[columns]]
        connection = "shop"
        column = "public.customers.email"
        type = "EMAIL"
        [[custom]]
        name = "EMPLOYEE_ID"
        regex = "EMP-[0-9]{6}"
    "#;
    let c: MaskConfig = toml_parse(text);
    assert_eq!(c.columns[0].type_name, "EMAIL");
    assert_eq!(c.types["EMAIL"].strategy, Some(Strategy::Hash));
}

fn toml_parse(text: &str) -> MaskConfig {
    // gateway-core has no toml dependency; the server deserialises the
    // section from TOML into serde_json::Value first, as here by hand.
    let mut obj = serde_json::Map::new();
    let mut section: Option<(String, bool)> = None;
    let mut cur = serde_json::Map::new();
    let flush = |obj: &mut serde_json::Map<String, Value>,
                 section: &Option<(String, bool)>,
                 cur: serde_json::Map<String, Value>| {
        match section {
            None => obj.extend(cur),
            Some((name, true)) => {
                let arr = obj.entry(name.clone()).or_insert_with(|| json!([]));
                arr.as_array_mut().unwrap().push(Value::Object(cur));
            }
            Some((name, false)) => {
                let (a, b) = name.split_once('.').unwrap();
                let t = obj.entry(a.to_string()).or_insert_with(|| json!({}));
                t.as_object_mut()
                    .unwrap()
                    .insert(b.to_string(), Value::Object(cur));
            }
        }
    };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(n) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            flush(&mut obj, &section, std::mem::take(&mut cur));
            section = Some((n.to_string(), true));
        } else if let Some(n) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            flush(&mut obj, &section, std::mem::take(&mut cur));
            section = Some((n.to_string(), false));
        } else {
            let (k, v) = line.split_once('=').unwrap();
            cur.insert(
                k.trim().to_string(),
                serde_json::from_str(v.trim()).unwrap(),
            );
        }
    }
    flush(&mut obj, &section, cur);
    serde_json::from_value(Value::Object(obj)).unwrap()
}

#[test]
fn json_walk_masks_nested_values_keys_and_credential_keys() {
    let m = Masker::default();
    let mut v = json!({
        "rows": [[1, "bob@example.com", {"contact": {"phone": "+1 415 555 2671"}, "tags": ["10.0.0.1", "ok"]}]],
        "config": {"api_key": "sk_live_abc", "password": "", "Token": 12345, "credentials": {"user": "u", "password": "p"}},
        "alice@example.com": "key is an email",
        "card": 4111111111111111u64
    });
    let c = m.mask_value("shop", &mut v, &[]);
    assert_eq!(
        v,
        json!({
            "rows": [[1, "[EMAIL]", {"contact": {"phone": "[PHONE]"}, "tags": ["[IP_ADDRESS]", "ok"]}]],
            "config": {"api_key": "[SECRET]", "password": "", "Token": "[SECRET]", "credentials": {"user": "u", "password": "[SECRET]"}},
            "[EMAIL]": "key is an email",
            "card": "[CREDIT_CARD]"
        })
    );
    assert_eq!(c["EMAIL"], 2);
    assert_eq!(c["SECRET"], 3);
}

#[test]
fn colliding_masked_keys_do_not_overwrite() {
    let m = Masker::default();
    let mut v = json!({"a@example.com": 1, "b@example.com": 2});
    m.mask_value("c", &mut v, &[]);
    assert_eq!(v, json!({"[EMAIL]": 1, "[EMAIL]#2": 2}));
}

#[test]
fn column_rules_by_glob_and_connection() {
    let key = key_env();
    let m = Masker::new(&cfg(json!({
        "hash_key": key,
        "columns": [
            {"connection": "shop", "column": "public.customers.email", "type": "EMAIL", "strategy": "hash"},
            {"column": "*.*.ssn", "type": "US_SSN"},
            {"connection": "hr*", "column": "*.employees.*", "type": "EMPLOYEE", "strategy": "null"}
        ]
    })))
    .unwrap();
    let origins = vec![
        FieldOrigin::new("/rows/*/0", path("public.customers.email")),
        FieldOrigin::new("/rows/*/1", path("public.customers.ssn")),
        FieldOrigin::new("/rows/*/2", path("public.customers.note")),
        FieldOrigin::new("/rows/*/3", path("public.users.password")),
    ];
    let mut v = json!({"columns": [], "rows": [["not-an-email", 12, "plain", "pw1"], [null, "x", "bob@example.com", 7]]});
    let c = m.mask_value("shop", &mut v, &origins);
    let tok = v["rows"][0][0].as_str().unwrap().to_string();
    assert!(tok.starts_with("EMAIL_"), "{tok}");
    assert_eq!(v["rows"][0][1], "[US_SSN]");
    assert_eq!(v["rows"][0][2], "plain");
    assert_eq!(
        v["rows"][0][3], "[SECRET]",
        "credential-named columns need no rule"
    );
    assert_eq!(
        v["rows"][1],
        json!([null, "[US_SSN]", "[EMAIL]", "[SECRET]"])
    );
    assert_eq!(c["US_SSN"], 2);
    assert_eq!(c["EMAIL"], 2);
    // Rule for another connection does not apply.
    let mut v = json!({"rows": [["not-an-email"]]});
    m.mask_value("other", &mut v, &origins[..1]);
    assert_eq!(v["rows"][0][0], "not-an-email");
    // Row-at-a-time form gives the same result.
    let plan = m.plan_rows("hr-eu", &[Some(&path("HR.Employees.Salary")), None]);
    let mut row = vec![json!(100000), json!("bob@example.com")];
    let mut counts = MaskCounts::new();
    m.mask_planned_row(&plan, &mut row, &mut counts);
    assert_eq!(row, vec![Value::Null, json!("[EMAIL]")]);
    assert_eq!(counts["EMPLOYEE"], 1);
    let c = m.mask_row(
        "shop",
        &[Some(&path("public.customers.ssn"))],
        &mut [json!("x")],
    );
    assert_eq!(c["US_SSN"], 1);
}

#[test]
fn custom_regex_with_validator_and_word_list() {
    let m = Masker::new(&cfg(json!({
        "custom": [
            {"name": "ACCOUNT", "regex": "ACC[0-9]{8}", "validator": "luhn"},
            {"name": "CODENAME", "words": ["Bluebird", "night jar"], "strategy": "partial", "keep": 2}
        ]
    })))
    .unwrap();
    // 12345674 passes Luhn; 12345678 does not.
    let (t, c) =
        m.mask_text("ACC12345674 ACC12345678 project bluebird and NIGHT JAR, not bluebirds");
    assert_eq!(
        t,
        "[ACCOUNT] ACC12345678 project ****rd and ****AR, not bluebirds"
    );
    assert_eq!(c["CODENAME"], 2);
    let (t, _) = m.mask_text("ACC00000000 ACC79927390");
    assert_eq!(t, "[ACCOUNT] ACC79927390");
}

#[test]
fn custom_regexes_stop_at_line_breaks_and_quotes_they_do_not_name() {
    let m = Masker::new(&cfg(json!({
        "custom": [
            {"name": "NOTE", "regex": "memo:.*"},
            {"name": "QUOTED", "regex": "\"emp\": \"[0-9]+\""}
        ]
    })))
    .unwrap();
    let (t, _) = m.mask_text("DELETE FROM t WHERE n = 'memo: x' OR id > 0\nmemo: y");
    assert_eq!(t, "DELETE FROM t WHERE n = '[NOTE]' OR id > 0\n[NOTE]");
    let (t, _) = m.mask_text(r#"{"emp": "12345", "ok": 1}"#);
    assert_eq!(t, r#"{[QUOTED], "ok": 1}"#);
}

#[test]
fn disabled_masks_nothing() {
    let m = Masker::new(&cfg(
        json!({"enabled": false, "columns": [{"column": "*.*.*"}]}),
    ))
    .unwrap();
    let mut v = json!({"a": "bob@example.com", "password": "x"});
    assert!(m.mask_value("c", &mut v, &[]).is_empty());
    assert_eq!(v["password"], "x");
}

#[test]
fn whole_secret_value_and_text_paths_agree() {
    let m = Masker::default();
    let (t, c) = m.mask_text("connect failed: postgres://app:pw0rd@10.0.0.5/db");
    assert_eq!(t, "connect failed: postgres://app:[SECRET]@[IP_ADDRESS]/db");
    assert_eq!(c.values().sum::<u64>(), 2);
}

#[test]
fn ssn_named_columns_need_no_rule_even_for_values_the_validator_rejects() {
    let m = Masker::new(&MaskConfig::default()).unwrap();
    let origins = vec![FieldOrigin::new("/rows/*/0", path("public.customers.SSN"))];
    let mut v = json!({"rows": [["123-45-6789"], [null]]});
    let c = m.mask_value("shop", &mut v, &origins);
    assert_eq!(v["rows"], json!([["[US_SSN]"], [null]]));
    assert_eq!(c["US_SSN"], 1);
    // The same value in free text is not an SSN (123-45-6789 was never issued).
    assert_eq!(m.mask_text("ref 123-45-6789").0, "ref 123-45-6789");
    // With US_SSN off, the name rule is off too.
    let off = Masker::new(&cfg(json!({"types": {"US_SSN": {"enabled": false}}}))).unwrap();
    let mut v = json!({"rows": [["123-45-6789"]]});
    off.mask_value("shop", &mut v, &origins);
    assert_eq!(v["rows"][0][0], "123-45-6789");
}

#[test]
fn field_rules_mask_nested_fields_of_any_family_by_path() {
    let m = Masker::new(&cfg(json!({
        "fields": [
            {"field": "Secret.data.*", "kinds": ["kubernetes"], "type": "K8S_SECRET"},
            {"field": "*.metadata.annotations.\"kubectl.kubernetes.io/last-applied-configuration\"", "type": "K8S_SECRET"},
            {"field": "stdout", "kinds": ["ssh"], "connections": ["web-*"], "type": "OUTPUT", "strategy": "null"}
        ]
    })))
    .unwrap();
    let k8s = crate::connector::ConnectionInfo {
        name: "prod".into(),
        kind: "kubernetes".into(),
        description: String::new(),
    };
    let origins = vec![FieldOrigin::new("/items/*", FieldPath::new(["Secret"]))];
    let mut v = json!({"items": [{
        "data": {"user": "admin", "pw": "s3cret"},
        "metadata": {"name": "db", "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{\"data\": {}}",
            "team": "shop"
        }}
    }]});
    let c = m.mask_value(&k8s, &mut v, &origins);
    assert_eq!(
        v["items"][0]["data"],
        json!({"user": "[K8S_SECRET]", "pw": "[K8S_SECRET]"})
    );
    let annotations = &v["items"][0]["metadata"]["annotations"];
    assert_eq!(
        annotations["kubectl.kubernetes.io/last-applied-configuration"],
        "[K8S_SECRET]"
    );
    assert_eq!(
        annotations["team"], "shop",
        "other annotations only scanned"
    );
    assert_eq!(v["items"][0]["metadata"]["name"], "db");
    assert_eq!(c["K8S_SECRET"], 3);
    // A rule scoped to a kind does not apply where the kind is another or unknown.
    let mut v = json!({"items": [{"data": {"user": "admin"}}]});
    m.mask_value("prod", &mut v, &origins);
    assert_eq!(v["items"][0]["data"]["user"], "admin");
    // A whole-field rule: SSH's `stdout`, on matching connections only.
    let ssh = |name: &str| crate::connector::ConnectionInfo {
        name: name.into(),
        kind: "ssh".into(),
        description: String::new(),
    };
    let origins = vec![FieldOrigin::new("/stdout", FieldPath::new(["stdout"]))];
    let mut v = json!({"stdout": "hello", "stderr": "warn"});
    let c = m.mask_value(&ssh("web-1"), &mut v, &origins);
    assert_eq!(v, json!({"stdout": null, "stderr": "warn"}));
    assert_eq!(c["OUTPUT"], 1);
    let mut v = json!({"stdout": "hello"});
    m.mask_value(&ssh("db-1"), &mut v, &origins);
    assert_eq!(v["stdout"], "hello");
}

#[test]
fn field_rule_patterns_are_checked_when_the_config_loads() {
    for (field, expect) in [
        ("Secret..data", "empty segment"),
        ("Secret.data.", "empty segment"),
        ("*.\"unclosed", "unclosed quote"),
        ("a.[b", "bad glob"),
    ] {
        let e = Masker::new(&cfg(json!({"fields": [{"field": field}]}))).unwrap_err();
        assert!(e.to_string().contains(expect), "{field}: {e}");
        assert!(e.to_string().contains("fields[0]"), "{field}: {e}");
    }
    let e = Masker::new(&cfg(json!({"fields": [{"field": "x", "type": "lower"}]}))).unwrap_err();
    assert!(e.to_string().contains("upper case"), "{e}");
    // The column spelling still demands exactly schema.table.column.
    let e = Masker::new(&cfg(json!({"columns": [{"column": "a.b"}]}))).unwrap_err();
    assert!(e.to_string().contains("schema.table.column"), "{e}");
}

#[test]
fn derived_values_are_masked_whole_and_partial_becomes_redact() {
    let m = Masker::new(&cfg(json!({
        "columns": [
            {"column": "main.customers.card", "type": "CREDIT_CARD", "strategy": "partial", "keep": 4},
            {"column": "main.customers.email", "type": "EMAIL"}
        ]
    })))
    .unwrap();
    let origins = vec![
        // hex(email): computed from a ruled column.
        FieldOrigin::derived_from("/rows/*/0", path("main.customers.email")),
        // card itself: partial keeps its tail.
        FieldOrigin::new("/rows/*/1", path("main.customers.card")),
        // reverse(card): partial would keep the head of the card; redacted.
        FieldOrigin::derived_from("/rows/*/2", path("main.customers.card")),
        // Some column of customers nobody can name: every rule on it meets it.
        FieldOrigin::derived_from("/rows/*/3", FieldPath::new(["main", "customers"])),
        // A JSON object built from an SSN-named column: masked whole, not walked.
        FieldOrigin::derived_from("/rows/*/4", path("main.people.ssn")),
        // Derived from a column no rule names: only the detectors run.
        FieldOrigin::derived_from("/rows/*/5", path("main.customers.name")),
        // Derived from something unknown (an opaque view): every rule meets it.
        FieldOrigin::derived_from("/rows/*/6", FieldPath::new(std::iter::empty::<&str>())),
    ];
    let mut v = json!({"rows": [[
        "626f62406578616d706c652e636f6d",
        "4111111111111111",
        "1111111111111114",
        "anything",
        {"s": "078-05-1120x"},
        "Bob",
        "opaque"
    ]]});
    let c = m.mask_value("demo", &mut v, &origins);
    assert_eq!(
        v["rows"][0],
        json!([
            "[EMAIL]",
            "****1111",
            "[CREDIT_CARD]",
            "[CREDIT_CARD]",
            "[US_SSN]",
            "Bob",
            "[CREDIT_CARD]"
        ])
    );
    assert_eq!(c["CREDIT_CARD"], 4);
    let fields = m.field_masks("demo", &origins);
    let at = |p: &str| fields.iter().find(|f| f.pointer == p).cloned();
    let hex = at("/rows/*/0").expect("hex(email) is reported");
    assert_eq!(
        (
            hex.field.as_str(),
            hex.type_name.as_str(),
            hex.derived,
            hex.by
        ),
        ("main.customers.email", "EMAIL", true, MaskedBy::Rule)
    );
    assert_eq!(at("/rows/*/2").unwrap().strategy, Strategy::Redact);
    assert_eq!(at("/rows/*/1").unwrap().strategy, Strategy::Partial);
    assert_eq!(at("/rows/*/4").unwrap().by, MaskedBy::Name);
    assert!(at("/rows/*/5").is_none(), "{fields:?}");
}

#[test]
fn classified_fields_mask_like_rules_and_rules_win() {
    let m = Masker::new(&cfg(json!({
        "columns": [{"column": "main.customers.email", "type": "CONTACT", "strategy": "null"}]
    })))
    .unwrap();
    let origins = vec![
        FieldOrigin::new("/rows/*/0", path("main.customers.email")).sensitive_as("EMAIL"),
        FieldOrigin::derived_from("/rows/*/1", path("main.customers.notes")).sensitive_as("EMAIL"),
        FieldOrigin::new("/rows/*/2", path("main.customers.phone")).sensitive_as("NOT_A_DETECTOR"),
    ];
    let mut v = json!({"rows": [["a@b.example", "6140622e6578616d706c65", "+1 555"]]});
    let c = m.mask_value("demo", &mut v, &origins);
    assert_eq!(v["rows"][0], json!([null, "[EMAIL]", "[NOT_A_DETECTOR]"]));
    assert_eq!((c["CONTACT"], c["EMAIL"]), (1, 1));
    let fields = m.field_masks("demo", &origins);
    assert_eq!(fields[0].by, MaskedBy::Rule);
    assert_eq!(fields[1].by, MaskedBy::Classification);
    // Off means off: a disabled masker classifies nothing either.
    let off = Masker::new(&cfg(json!({"enabled": false}))).unwrap();
    assert!(off.field_masks("demo", &origins).is_empty());
}
