//! The SSH family's policy vocabulary: its Cedar schema fragment
//! (`schemas/ssh.cedarschema`: `SshContext`, `ssh:exec`, `ssh:shell`) and
//! the one request a call makes, on its Connection.

use std::collections::BTreeMap;

use gateway_core::access::{AccessRequest, ContextValue, Resource};
use gateway_core::policy::Vocabulary;

use crate::command::CommandFacts;

/// The family's Cedar schema fragment.
pub const FRAGMENT: &str = include_str!("../../../schemas/ssh.cedarschema");

/// What the family adds to the policy language (`unmask` stays on the
/// Connection).
pub const VOCABULARY: Vocabulary = Vocabulary {
    family: "ssh",
    fragment: FRAGMENT,
    unmask_resources: &[],
};

/// `ssh:shell` for a raw shell call, `ssh:exec` otherwise.
pub fn action(facts: &CommandFacts) -> &'static str {
    if facts.raw_shell {
        "ssh:shell"
    } else {
        "ssh:exec"
    }
}

/// The request of a call with `facts` on connection `connection`.
pub fn request(connection: &str, facts: &CommandFacts) -> AccessRequest {
    let s = |v: &str| ContextValue::String(v.to_string());
    let context: BTreeMap<String, ContextValue> = [
        ("program", s(&facts.program)),
        ("argv", s(&facts.argv_line)),
        ("args", ContextValue::StringSet(facts.args.clone())),
        ("runs", ContextValue::StringSet(facts.runs.clone())),
        ("sudo", ContextValue::Bool(facts.sudo)),
        ("run_as", s(&facts.run_as)),
        ("shell", ContextValue::Bool(facts.shell)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    AccessRequest {
        action: facts.action().into(),
        resource: Resource::connection(connection),
        context,
    }
}
