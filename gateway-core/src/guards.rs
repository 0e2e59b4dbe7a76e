//! Item guards: a connector may mark items of a result (a listed table, a
//! namespace's objects) as visible only to callers permitted a request. The
//! pipeline decides every guard of a result in one batch and removes the
//! items the caller may not see, before masking and audit, so neither the
//! caller nor the audit record holds them. The caller is not told how many
//! were left out (a count would confirm that a named item exists); the audit
//! record is (`hidden`, see [`HIDDEN`]). Family-neutral: guards are JSON
//! pointers plus plain [`AccessRequest`]s.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::connector::{ExecuteError, ToolOutput};
use crate::identity::Principal;
use crate::policy::{Mode, PolicyEngine};

/// Key of the count of removed items in the recorded (audit) result.
pub const HIDDEN: &str = "hidden";

/// Remove the guarded items of `output` the caller may not see; returns
/// how many were removed (None: the result had no guards). In shadow mode
/// nothing is removed (shadow mode records, it does not block). A guard
/// whose pointer does not name an item is a connector bug and fails the
/// call rather than show the item.
pub fn hide_unpermitted(
    policy: &PolicyEngine,
    principal: &Principal,
    mode: Mode,
    output: &mut ToolOutput,
) -> Result<Option<u64>, ExecuteError> {
    if output.item_guards.is_empty() {
        return Ok(None);
    }
    let guards = std::mem::take(&mut output.item_guards);
    let requests: Vec<_> = guards.iter().map(|g| g.request.clone()).collect();
    let decision = policy.decide(principal, &requests);
    if decision.requests.len() != guards.len() {
        return Err(ExecuteError::Other(
            "item guards: policy answered a different number of requests".into(),
        ));
    }
    let denied: Vec<&str> = guards
        .iter()
        .zip(&decision.requests)
        .filter(|(_, d)| !d.allowed)
        .map(|(g, _)| g.pointer.as_str())
        .collect();
    let hidden = if mode == Mode::Shadow {
        0
    } else {
        remove_all(&mut output.value, &denied)?
    };
    output.items = output.items.map(|r| r.saturating_sub(hidden));
    Ok(Some(hidden))
}

/// The recorded result with the count of hidden items, when there were guards.
pub fn record_hidden(mut recorded: Value, hidden: Option<u64>) -> Value {
    if let (Some(n), Value::Object(map)) = (hidden, &mut recorded) {
        map.insert(HIDDEN.into(), Value::from(n));
    }
    recorded
}

/// Remove every item at `pointers`: array elements from the highest index
/// down, so that removing one never shifts another that is still to go.
fn remove_all(value: &mut Value, pointers: &[&str]) -> Result<u64, ExecuteError> {
    // parent pointer -> (array indices, object keys)
    let mut by_parent: BTreeMap<&str, (Vec<usize>, Vec<String>)> = BTreeMap::new();
    for p in pointers {
        let (parent, last) = p
            .rsplit_once('/')
            .ok_or_else(|| bad(p, "is not a JSON pointer"))?;
        let last = last.replace("~1", "/").replace("~0", "~");
        let entry = by_parent.entry(parent).or_default();
        match value.pointer(parent) {
            Some(Value::Array(_)) => entry.0.push(
                last.parse()
                    .map_err(|_| bad(p, "does not end in an array index"))?,
            ),
            Some(Value::Object(_)) => entry.1.push(last),
            _ => return Err(bad(p, "names no array or object")),
        }
    }
    let mut removed = 0u64;
    // Deepest parents first: removing inside an item never moves its parent.
    for (parent, (mut indices, keys)) in by_parent.into_iter().rev() {
        indices.sort_unstable();
        indices.dedup();
        match value.pointer_mut(parent) {
            Some(Value::Array(items)) => {
                for i in indices.into_iter().rev() {
                    if i >= items.len() {
                        return Err(bad(parent, "has fewer items than a guard names"));
                    }
                    items.remove(i);
                    removed += 1;
                }
            }
            Some(Value::Object(map)) => {
                for k in keys {
                    if map.remove(&k).is_some() {
                        removed += 1;
                    }
                }
            }
            _ => return Err(bad(parent, "names no array or object")),
        }
    }
    Ok(removed)
}

fn bad(pointer: &str, what: &str) -> ExecuteError {
    ExecuteError::Other(format!(
        "the connector guarded a result item that {what}: `{pointer}` (a bug; nothing is shown)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn removes_from_the_end_so_indices_stay_right() {
        let mut v = json!({"tables": ["a", "b", "c", "d"], "m": {"x": 1, "y/z": 2}});
        let n = remove_all(&mut v, &["/tables/0", "/tables/2", "/m/y~1z"]).unwrap();
        assert_eq!(n, 3);
        assert_eq!(v, json!({"tables": ["b", "d"], "m": {"x": 1}}));
    }

    #[test]
    fn a_pointer_to_nothing_fails_closed() {
        let mut v = json!({"tables": ["a"]});
        assert!(remove_all(&mut v, &["/tables/5"]).is_err());
        assert!(remove_all(&mut v, &["/nope/0"]).is_err());
        assert!(remove_all(&mut v, &["tables"]).is_err());
    }
}
