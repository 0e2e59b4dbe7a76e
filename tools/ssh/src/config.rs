//! The `[[connection]]` table of an SSH connection, validated: a typed
//! section with `deny_unknown_fields` read by [`gateway_core::section`], so a
//! typo never silently weakens a limit. The server's key (`private_key`, a
//! PEM or a `${file:...}`/`${env:...}` reference, or `agent_socket`) and the
//! pinned host key (`host_key` or `known_hosts`: exactly one, no
//! trust-on-first-use) are required. Credentials stay [`Secret`]s and no
//! error ever quotes one.

use std::path::PathBuf;
use std::time::Duration;

use gateway_core::duration::HumanDuration;
use gateway_core::secret::{self, Secret};
use gateway_core::section::{self, PositiveInt};
use serde::Deserialize;
use serde_json::Value;

/// Default time budget of one command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest `timeout` accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Default cap on stdout + stderr of one command.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 1 << 20;
/// Highest `max_output_bytes` accepted.
pub const MAX_OUTPUT_BYTES: usize = 64 << 20;
/// Default number of authenticated sessions kept per host.
pub const DEFAULT_MAX_SESSIONS: usize = 4;
/// Time to connect and authenticate.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the connection proves who it is.
#[derive(Clone)]
pub enum KeySource {
    /// An OpenSSH private key (PEM text), with its passphrase if any.
    Private {
        /// The PEM text.
        pem: Secret,
        /// Its passphrase.
        passphrase: Option<Secret>,
    },
    /// A running ssh-agent's socket.
    Agent(PathBuf),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Private { .. } => f.write_str("Private(<redacted>)"),
            KeySource::Agent(p) => f.debug_tuple("Agent").field(p).finish(),
        }
    }
}

/// How the host's key is pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeySource {
    /// One public key line, `ssh-ed25519 AAAA...`.
    Line(String),
    /// A known_hosts file.
    KnownHosts(PathBuf),
}

/// A validated SSH connection.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// Connection name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Remote user.
    pub user: String,
    /// The server's key.
    pub key: KeySource,
    /// The pinned host key.
    pub host_key: HostKeySource,
    /// Time budget of one command.
    pub timeout: Duration,
    /// Cap on stdout + stderr of one command.
    pub max_output_bytes: usize,
    /// Authenticated sessions kept to the host.
    pub max_sessions: usize,
}

/// The table as written. Not `Debug`: `private_key` may be a literal.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SshSection {
    #[allow(dead_code, reason = "checked by the server")]
    name: Option<String>,
    kind: Option<String>,
    description: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    private_key: Option<String>,
    private_key_passphrase: Option<String>,
    agent_socket: Option<String>,
    host_key: Option<String>,
    known_hosts: Option<String>,
    timeout: Option<HumanDuration>,
    max_output_bytes: Option<PositiveInt>,
    max_sessions: Option<PositiveInt>,
}

/// A private key given as PEM text, a `${file:...}`/`${env:...}` reference
/// that resolves to one, or a path to a key file. A reference's value is
/// never quoted; a path is.
fn private_key(raw: &str) -> Result<Secret, String> {
    let value = secret::resolve(raw).map_err(|e| format!("`private_key`: {e}"))?;
    if value.expose().contains("-----BEGIN ") {
        return Ok(value);
    }
    if raw.contains("${") {
        return Err("`private_key`: the reference does not resolve to a PEM private key".into());
    }
    let text = std::fs::read_to_string(raw).map_err(|e| format!("`private_key` {raw}: {e}"))?;
    if !text.contains("-----BEGIN ") {
        return Err(format!("`private_key` {raw}: not a PEM private key"));
    }
    Ok(Secret::new(text))
}

/// A host name or address an agent could not turn into an option: no
/// whitespace, no leading `-`, no control characters.
fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty()
        || host.starts_with('-')
        || host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '@' || c == '/')
    {
        return Err(format!("`host` `{host}` is not a host name or address"));
    }
    Ok(())
}

/// A POSIX user name.
fn check_user(user: &str) -> Result<(), String> {
    let ok = !user.is_empty()
        && user.len() <= 64
        && !user.starts_with('-')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'));
    if ok {
        Ok(())
    } else {
        Err(format!("`user` `{user}` is not a user name"))
    }
}

impl SshConfig {
    /// Validate the `[[connection]]` table of connection `name`.
    pub fn parse(name: &str, config: &Value) -> Result<Self, String> {
        let ctx = |m: String| format!("connection `{name}` (ssh): {m}");
        if !config.is_object() {
            return Err(ctx("config must be a table".into()));
        }
        let s: SshSection = section::deserialize(config).map_err(|e| ctx(e.to_string()))?;
        if let Some(k) = &s.kind
            && k != "ssh"
        {
            return Err(ctx(format!("`kind` is `{k}`, expected `ssh`")));
        }
        let host = s.host.ok_or_else(|| ctx("`host` is required".into()))?;
        check_host(&host).map_err(ctx)?;
        let user = s.user.ok_or_else(|| ctx("`user` is required".into()))?;
        check_user(&user).map_err(ctx)?;
        let port = s.port.unwrap_or(22);
        if port == 0 {
            return Err(ctx("`port` must be 1-65535".into()));
        }
        let key = match (s.private_key, s.agent_socket) {
            (Some(_), Some(_)) => {
                return Err(ctx(
                    "set one of `private_key` or `agent_socket`, not both".into()
                ));
            }
            (None, None) => {
                return Err(ctx(
                    "no credentials: set `private_key` (the server's key) or `agent_socket`".into(),
                ));
            }
            (Some(raw), None) => KeySource::Private {
                pem: private_key(&raw).map_err(ctx)?,
                passphrase: s
                    .private_key_passphrase
                    .map(|p| secret::resolve(&p))
                    .transpose()
                    .map_err(|e| ctx(format!("`private_key_passphrase`: {e}")))?,
            },
            (None, Some(sock)) => {
                if s.private_key_passphrase.is_some() {
                    return Err(ctx(
                        "`private_key_passphrase` goes with `private_key`, not `agent_socket`"
                            .into(),
                    ));
                }
                let sock =
                    secret::resolve(&sock).map_err(|e| ctx(format!("`agent_socket`: {e}")))?;
                KeySource::Agent(PathBuf::from(sock.expose()))
            }
        };
        let host_key = match (s.host_key, s.known_hosts) {
            (Some(_), Some(_)) => {
                return Err(ctx(
                    "set one of `host_key` or `known_hosts`, not both".into()
                ));
            }
            (None, None) => {
                return Err(ctx(
                    "the host key must be pinned: set `host_key = \"ssh-ed25519 AAAA...\"` or `known_hosts = \"PATH\"` (there is no trust on first use)".into(),
                ));
            }
            (Some(line), None) => HostKeySource::Line(line.trim().to_string()),
            (None, Some(path)) => HostKeySource::KnownHosts(PathBuf::from(path)),
        };
        let timeout = match s.timeout {
            None => DEFAULT_TIMEOUT,
            Some(HumanDuration(d)) if d.is_zero() || d > MAX_TIMEOUT => {
                return Err(ctx("`timeout` must be above zero and at most 1h".into()));
            }
            Some(HumanDuration(d)) => d,
        };
        let max_output_bytes = match s.max_output_bytes {
            None => DEFAULT_MAX_OUTPUT_BYTES,
            Some(PositiveInt(n)) => usize::try_from(n)
                .ok()
                .filter(|n| *n <= MAX_OUTPUT_BYTES)
                .ok_or_else(|| {
                    ctx(format!(
                        "`max_output_bytes` must be at most {MAX_OUTPUT_BYTES}"
                    ))
                })?,
        };
        let max_sessions = match s.max_sessions {
            None => DEFAULT_MAX_SESSIONS,
            Some(PositiveInt(n)) if n <= 64 => n as usize,
            Some(_) => return Err(ctx("`max_sessions` must be at most 64".into())),
        };
        Ok(SshConfig {
            name: name.to_string(),
            description: s.description.unwrap_or_default(),
            host,
            port,
            user,
            key,
            host_key,
            timeout,
            max_output_bytes,
            max_sessions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";

    fn base() -> Value {
        json!({
            "name": "web-1", "kind": "ssh", "host": "10.0.0.5", "user": "deploy",
            "private_key": KEY, "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA",
        })
    }

    #[test]
    fn a_full_table_parses_with_defaults() {
        let c = SshConfig::parse("web-1", &base()).unwrap();
        assert_eq!(c.port, 22);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.max_output_bytes, DEFAULT_MAX_OUTPUT_BYTES);
        assert!(matches!(c.key, KeySource::Private { .. }));
        assert!(!format!("{c:?}").contains("b3BlbnNzaC1rZXkt"), "{c:?}");
    }

    #[test]
    fn errors_name_the_key_and_never_echo_the_private_key() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({"host_key": null}), "must be pinned"),
            (json!({"private_key": null}), "no credentials"),
            (json!({"agent_socket": "/tmp/a"}), "not both"),
            (json!({"known_hosts": "/x"}), "not both"),
            (json!({"host": "-oProxyCommand=x"}), "`host`"),
            (json!({"user": "a b"}), "`user`"),
            (json!({"timeout": "2h"}), "`timeout`"),
            (
                json!({"max_output_bytes": 1_000_000_000u64}),
                "max_output_bytes",
            ),
            (json!({"kind": "postgres"}), "expected `ssh`"),
            (json!({"hostkey": "x"}), "hostkey"),
            (json!({"private_key": "not a key at all"}), "private_key"),
        ];
        for (patch, want) in cases {
            let mut t = base();
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() {
                    t.as_object_mut().unwrap().remove(k);
                } else {
                    t[k] = v.clone();
                }
            }
            let err = SshConfig::parse("web-1", &t).unwrap_err();
            assert!(err.contains(want), "{patch}: {err}");
            assert!(!err.contains("b3BlbnNzaC1rZXkt"), "{err}");
        }
    }
}
