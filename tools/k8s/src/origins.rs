//! What masking needs to know about an object in a result: `managedFields`
//! dropped, and the field origins the family defines. A Secret's `data` and
//! `stringData` values and the last-applied-configuration annotation (of any
//! kind: it may quote a Secret) are `K8S_SECRET`; an env entry whose name
//! ends in a credential word has its `value` marked `SECRET`; every top-level
//! field is named `<Kind>.<field>` so configured `[[masking.fields]]` rules
//! (`ConfigMap.data.password`) reach below it. Everything else passes the
//! detectors.

use gateway_core::connector::{FieldOrigin, FieldPath};
use serde_json::Value;

/// The type Secret values are masked as.
pub const K8S_SECRET: &str = "K8S_SECRET";
/// The last-applied-configuration annotation.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Credential words an env var name ends in.
const CREDENTIAL_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "SECRET",
    "TOKEN",
    "API_KEY",
    "APIKEY",
    "KEY",
    "CREDENTIAL",
    "CREDENTIALS",
    "PRIVATE_KEY",
    "AUTH",
    "PWD",
];

/// Does an env var named `name` hold a credential (its name ends in a
/// credential word, case-insensitively, `-`/`.` read as `_`)?
pub fn credential_name(name: &str) -> bool {
    let n: String = name
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    CREDENTIAL_WORDS.iter().any(|w| {
        n.strip_suffix(w)
            .is_some_and(|rest| rest.is_empty() || rest.ends_with('_'))
    })
}

/// Escape a key for a JSON pointer.
pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Remove what results never carry (`metadata.managedFields`).
pub fn strip(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
}

/// The field origins of the object `obj` found at JSON pointer `at`.
pub fn of_object(at: &str, obj: &Value, out: &mut Vec<FieldOrigin>) {
    let Some(map) = obj.as_object() else {
        return;
    };
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or("Object");
    let core = map.get("apiVersion").and_then(Value::as_str) == Some("v1");
    if kind == "Secret" && core {
        for field in ["data", "stringData"] {
            if let Some(values) = map.get(field).and_then(Value::as_object) {
                for key in values.keys() {
                    out.push(
                        FieldOrigin::new(
                            format!("{at}/{field}/{}", escape(key)),
                            FieldPath::new([kind, field, key.as_str()]),
                        )
                        .sensitive_as(K8S_SECRET),
                    );
                }
            }
        }
    }
    if obj
        .pointer(&format!("/metadata/annotations/{}", escape(LAST_APPLIED)))
        .is_some()
    {
        out.push(
            FieldOrigin::new(
                format!("{at}/metadata/annotations/{}", escape(LAST_APPLIED)),
                FieldPath::new([kind, "metadata", "annotations", LAST_APPLIED]),
            )
            .sensitive_as(K8S_SECRET),
        );
    }
    env_origins(kind, at, obj, out);
    for key in map.keys() {
        if key != "apiVersion" && key != "kind" {
            out.push(FieldOrigin::new(
                format!("{at}/{}", escape(key)),
                FieldPath::new([kind, key.as_str()]),
            ));
        }
    }
}

/// Every `env` list anywhere in the object (pod specs, templates, CRDs).
fn env_origins(kind: &str, at: &str, v: &Value, out: &mut Vec<FieldOrigin>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let here = format!("{at}/{}", escape(k));
                if k == "env"
                    && let Some(list) = child.as_array()
                {
                    for (i, e) in list.iter().enumerate() {
                        if let Some(name) = e.get("name").and_then(Value::as_str)
                            && e.get("value").is_some_and(Value::is_string)
                            && credential_name(name)
                        {
                            out.push(
                                FieldOrigin::new(
                                    format!("{here}/{i}/value"),
                                    FieldPath::new([kind, "env", name]),
                                )
                                .sensitive_as("SECRET"),
                            );
                        }
                    }
                }
                env_origins(kind, &here, child, out);
            }
        }
        Value::Array(list) => {
            for (i, child) in list.iter().enumerate() {
                env_origins(kind, &format!("{at}/{i}"), child, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn credential_names() {
        for yes in [
            "DB_PASSWORD",
            "password",
            "API_KEY",
            "STRIPE_SECRET",
            "GH_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "ssh-key",
        ] {
            assert!(credential_name(yes), "{yes}");
        }
        for no in ["LOG_LEVEL", "MONKEY", "TOKENIZER_PATH", "KEYBOARD", "HOST"] {
            assert!(!credential_name(no), "{no}");
        }
    }

    #[test]
    fn secret_values_annotation_and_env() {
        let obj = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "annotations": {LAST_APPLIED: "{}"}},
            "data": {"password": "cGFzcw==", "tls/crt": "eA=="},
            "spec": {"containers": [{"env": [{"name": "DB_PASSWORD", "value": "x"}, {"name": "MODE", "value": "y"}]}]}
        });
        let mut out = vec![];
        of_object("/items/0", &obj, &mut out);
        let sensitive: Vec<(&str, &str)> = out
            .iter()
            .filter_map(|o| o.sensitive.as_deref().map(|t| (o.pointer.as_str(), t)))
            .collect();
        assert_eq!(
            sensitive,
            vec![
                ("/items/0/data/password", K8S_SECRET),
                ("/items/0/data/tls~1crt", K8S_SECRET),
                (
                    "/items/0/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
                    K8S_SECRET
                ),
                ("/items/0/spec/containers/0/env/0/value", "SECRET"),
            ]
        );
        let mut stripped = json!({"metadata": {"name": "a", "managedFields": [{}]}});
        strip(&mut stripped);
        assert_eq!(stripped, json!({"metadata": {"name": "a"}}));
    }
}
