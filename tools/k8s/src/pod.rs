//! The pod container a `k8s_logs` or `k8s_exec` call addresses: namespace,
//! pod and container names checked before policy (DNS-1123; nothing an
//! agent passes can become a path segment, query or header), the namespace
//! held to the connection's `namespaces`, and the one request the call
//! yields: the action on `K8sObject::"<connection>/<namespace>/Pod/<pod>"`.

use std::collections::BTreeSet;

use gateway_core::access::{AccessRequest, ContextValue};
use gateway_core::connector::AnalysisError;
use gateway_core::review::{ReviewItem, ReviewSummary, ReviewText};

use crate::names;
use crate::vocabulary::{self, ReadContext};

/// A checked pod (and optional container) of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodTarget {
    /// Namespace (within the connection's list).
    pub namespace: String,
    /// Pod name (DNS-1123 subdomain).
    pub pod: String,
    /// Container name (DNS-1123 label); None: the pod's only container.
    pub container: Option<String>,
}

fn invalid(e: impl ToString) -> AnalysisError {
    AnalysisError::InvalidArguments(e.to_string())
}

impl PodTarget {
    /// Check the names of a call on connection `connection`, whose
    /// `namespaces` (None: any) bound what it may touch.
    pub fn check(
        connection: &str,
        namespaces: Option<&BTreeSet<String>>,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
    ) -> Result<Self, AnalysisError> {
        names::namespace(namespace).map_err(invalid)?;
        if let Some(set) = namespaces
            && !set.contains(namespace)
        {
            return Err(invalid(format!(
                "namespace `{namespace}` is outside the namespaces of connection `{connection}`"
            )));
        }
        names::object_name(pod).map_err(|_| {
            invalid(
                "`pod` is not a valid Kubernetes name: at most 253 characters of lower-case letters, digits, '-' and '.'",
            )
        })?;
        if let Some(c) = container {
            // Container names are DNS-1123 labels, like namespaces.
            names::namespace(c).map_err(|_| {
                invalid(
                    "`container` is not a valid container name: at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit",
                )
            })?;
        }
        Ok(PodTarget {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            container: container.map(str::to_string),
        })
    }

    /// `ns/pod` or `ns/pod/container`, for reviews.
    pub fn place(&self) -> String {
        match &self.container {
            Some(c) => format!("Pod/{}/{} container {c}", self.namespace, self.pod),
            None => format!("Pod/{}/{}", self.namespace, self.pod),
        }
    }

    /// The call's one request: `action` on the pod, with the contract's
    /// context (`argv` as given: "" for logs, the quoted line for exec).
    pub fn request(&self, connection: &str, action: &str, argv: &str) -> AccessRequest {
        let ctx = ReadContext {
            kind: "Pod",
            group: "",
            namespace: &self.namespace,
            name: &self.pod,
            labels: BTreeSet::new(),
        };
        let resource = vocabulary::object(connection, Some(&self.namespace), "Pod", &self.pod);
        let mut request = ctx.request(action, resource);
        request
            .context
            .insert("argv".into(), ContextValue::String(argv.to_string()));
        request
    }

    /// What a reviewer sees: `title`, one run labelled `label` showing `code`.
    pub fn review(&self, title: String, label: &str, code: String) -> ReviewSummary {
        let resources = vec![format!("Pod/{}/{}", self.namespace, self.pod)];
        ReviewSummary {
            title,
            runs: vec![ReviewItem {
                label: label.into(),
                resources: resources.clone(),
                text: ReviewText::code(code),
            }],
            resources,
            diff: None,
        }
    }
}

/// Context values of a request by key, for tests.
#[cfg(test)]
pub fn context_string(r: &AccessRequest, key: &str) -> Option<String> {
    match r.context.get(key) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// A JSON schema literal as the map a [`gateway_core::connector::ToolSpec`] holds.
pub fn schema(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}
