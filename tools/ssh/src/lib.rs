//! Tollgate's SSH family: `ssh_exec` on hosts, argv-first so that what policy
//! saw is exactly what runs. `kind = "ssh"` connections ([`config`]: host,
//! user, the server's key, a pinned host key, timeout, output cap); the
//! tool's arguments and schemas ([`tool`]); [`command`] turns a call's `argv`
//! or `command` into the words that will run (or a raw shell call) and
//! follows wrappers (`sudo`, `env`, `xargs`, `sh -c`...) to every program the
//! call starts; [`vocabulary`] makes the contract's `ssh:exec` / `ssh:shell`
//! request of it; [`transport`] holds authenticated russh sessions to the
//! pinned host and runs one command line with caps, a deadline and
//! cancellation that ends the remote process; [`output`] builds the result
//! and its line-cut recording; [`connector`] ties them together.

pub mod command;
pub mod config;
pub mod connector;
pub mod output;
pub mod tool;
pub mod transport;
pub mod vocabulary;

use std::sync::Arc;

use gateway_core::connector::{Connector, ConnectorFactory};
use gateway_core::policy::Vocabulary;
use serde_json::Value;

pub use connector::SshConnector;

/// The factory of kind `ssh`.
pub struct SshConnectorFactory;

impl ConnectorFactory for SshConnectorFactory {
    fn kind(&self) -> &'static str {
        "ssh"
    }

    fn build(&self, name: &str, config: &Value) -> Result<Arc<dyn Connector>, String> {
        Ok(Arc::new(SshConnector::new(config::SshConfig::parse(
            name, config,
        )?)?))
    }

    fn vocabulary(&self) -> Vocabulary {
        vocabulary::VOCABULARY
    }
}
