//! Tollgate's Kubernetes family: typed, governed tools on a cluster's API
//! (kube-rs), never a kubectl string. `kind = "kubernetes"` connections
//! (server + CA + token or client certificate, or a kubeconfig context;
//! optional `impersonate`, `namespaces`, `max_items`, `timeout`), the
//! tools `k8s_list`, `k8s_get`, `k8s_events`, `k8s_scale`, `k8s_restart`
//! and `k8s_delete` (`connector::ops`), `k8s_logs` ([`logs`]) and `k8s_exec`
//! ([`exec`], on the pod addressed through [`pod`]), `k8s_apply` ([`manifest`]
//! analysis, [`apply`] dry runs, diffs and applies), kinds resolved through API
//! discovery, names checked before policy, one request per object or
//! namespace (the contract's `Namespace` / `K8sObject` resources), and the
//! field origins that mask Secret values as `K8S_SECRET`.

pub mod apply;
pub mod client;
pub mod config;
pub mod connector;
pub mod exec;
pub mod impersonation;
pub mod kinds;
pub mod kubeconfig;
pub mod logs;
pub mod manifest;
pub mod names;
pub mod origins;
pub mod pod;
pub mod tools;
pub mod vocabulary;

use std::sync::Arc;

use gateway_core::connector::{Connector, ConnectorFactory};
use gateway_core::policy::Vocabulary;
use serde_json::Value;

pub use connector::K8sConnector;

/// The factory of kind `kubernetes`.
pub struct K8sConnectorFactory;

impl ConnectorFactory for K8sConnectorFactory {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    fn build(&self, name: &str, config: &Value) -> Result<Arc<dyn Connector>, String> {
        Ok(Arc::new(K8sConnector::new(config::K8sConfig::parse(
            name, config,
        )?)))
    }

    fn vocabulary(&self) -> Vocabulary {
        vocabulary::VOCABULARY
    }
}
