//! Looking a host up in an OpenSSH known_hosts file: which keys it accepts
//! for `host` (or `[host]:port` when the port is not 22) and which are
//! `@revoked`.
//!
//! Lines are parsed by `ssh-key`; the matching is OpenSSH's: comma-separated
//! patterns with `*`/`?` wildcards and `!` negation (a negated match rules
//! the line out), or one hashed name `|1|salt|HMAC-SHA1(salt, name)`.
//! `@cert-authority` lines are ignored (host certificates are not accepted).
//! A line that cannot be parsed is skipped, as OpenSSH does, except a
//! `@revoked` one: that fails the lookup, since skipping it would trust a
//! key the file meant to refuse. The file is read at each connect, so edits
//! apply to the next session.
//!
//! The pattern matcher is hand-rolled (a dozen lines) because glob crates
//! give `[...]` a meaning, and `[host]:port` must match literally here.

use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use russh::keys::PublicKey;
use russh::keys::ssh_key::known_hosts::{Entry, HostPatterns, Marker};
use sha1::Sha1;

use super::TransportError;

/// The keys a known_hosts file holds for one host.
#[derive(Debug, Default, Clone)]
pub struct HostKeys {
    /// Keys accepted for the host.
    pub accepted: Vec<PublicKey>,
    /// Keys marked `@revoked` for the host.
    pub revoked: Vec<PublicKey>,
}

/// The name a host is filed under: `host`, or `[host]:port` off port 22
/// (lowercase, as OpenSSH writes and compares them).
pub fn lookup_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// Read `path` and look `host`/`port` up in it.
pub fn lookup_file(path: &Path, host: &str, port: u16) -> Result<HostKeys, TransportError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        TransportError::Config(format!(
            "cannot read known_hosts file {}: {e}",
            path.display()
        ))
    })?;
    lookup(&text, host, port).map_err(|line| {
        TransportError::Config(format!(
            "known_hosts file {} line {line}: an unreadable @revoked entry",
            path.display()
        ))
    })
}

/// Look `host`/`port` up in known_hosts text; `Err(line number)` for an
/// unreadable `@revoked` line.
pub fn lookup(text: &str, host: &str, port: u16) -> Result<HostKeys, usize> {
    let name = lookup_name(host, port);
    let mut found = HostKeys::default();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // ssh-key splits fields on single spaces; OpenSSH allows any blanks.
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        let entry: Entry = match line.parse() {
            Ok(e) => e,
            Err(_) if line.starts_with("@revoked") => return Err(n + 1),
            Err(_) => continue,
        };
        if !matches_host(entry.host_patterns(), &name) {
            continue;
        }
        match entry.marker() {
            None => found.accepted.push(entry.public_key().clone()),
            Some(Marker::Revoked) => found.revoked.push(entry.public_key().clone()),
            Some(Marker::CertAuthority) => {}
        }
    }
    Ok(found)
}

/// Whether an entry's host field names `name`.
fn matches_host(patterns: &HostPatterns, name: &str) -> bool {
    match patterns {
        HostPatterns::HashedName { salt, hash } => {
            let Ok(mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(salt) else {
                return false;
            };
            mac.chain_update(name.as_bytes()).verify_slice(hash).is_ok()
        }
        HostPatterns::Patterns(list) => {
            let mut matched = false;
            for p in list {
                let p = p.to_ascii_lowercase();
                match p.strip_prefix('!') {
                    Some(neg) if glob(neg.as_bytes(), name.as_bytes()) => return false,
                    Some(_) => {}
                    None => matched |= glob(p.as_bytes(), name.as_bytes()),
                }
            }
            matched
        }
    }
}

/// OpenSSH's `match_pattern`: `*` any run of bytes, `?` any one byte, the
/// rest literal.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
pub(super) fn glob_for_tests(pattern: &str, text: &str) -> bool {
    glob(pattern.as_bytes(), text.as_bytes())
}
