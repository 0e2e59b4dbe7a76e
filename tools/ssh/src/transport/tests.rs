//! Unit tests of the transport's offline parts: known_hosts lookup, pin
//! checks and their messages, key parsing and redaction. Sessions on a real
//! sshd are tested in tests/tests/ssh_transport.rs.

use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::known_hosts::HostPatterns;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PublicKey};
use sha1::Sha1;

use super::known_hosts::{glob_for_tests as glob, lookup, lookup_name};
use super::*;

/// A deterministic Ed25519 key (test-only).
fn key(seed: u8) -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
}

fn public_line(seed: u8) -> String {
    key(seed).public_key().to_openssh().unwrap()
}

fn public(seed: u8) -> PublicKey {
    key(seed).public_key().clone()
}

fn hashed(name: &str, salt: &[u8]) -> String {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(salt).unwrap();
    mac.update(name.as_bytes());
    let hash: [u8; 20] = mac.finalize().into_bytes().into();
    HostPatterns::HashedName {
        salt: salt.to_vec(),
        hash,
    }
    .to_string()
}

#[test]
fn lookup_names_follow_openssh() {
    assert_eq!(lookup_name("Web-1.example.com", 22), "web-1.example.com");
    assert_eq!(lookup_name("10.0.0.5", 2222), "[10.0.0.5]:2222");
}

#[test]
fn glob_matches_like_openssh() {
    assert!(glob("*.example.com", "a.example.com"));
    assert!(glob("web-?", "web-1"));
    assert!(!glob("web-?", "web-12"));
    assert!(glob("*", "anything"));
    assert!(glob("a*b*c", "axxbyyc"));
    assert!(!glob("a*b*c", "axxbyy"));
    // Brackets are literal: `[host]:port` entries.
    assert!(glob("[10.0.0.5]:2222", "[10.0.0.5]:2222"));
    assert!(!glob("[10.0.0.5]:2222", "1"));
    assert!(glob("[10.0.0.*]:2222", "[10.0.0.5]:2222"));
}

#[test]
fn known_hosts_plain_hashed_ported_and_negated() {
    let text = format!(
        "# comment\n\n\
         web-1,web-2 {k1}\n\
         [web-3]:2222 {k2}\n\
         {h}\t{k3}\n\
         *.prod,!db.prod {k4}\n\
         @cert-authority * {k5}\n\
         garbage line that does not parse\n",
        k1 = public_line(1),
        k2 = public_line(2),
        h = hashed("[10.1.2.3]:2200", b"0123456789abcdefghij"),
        k3 = public_line(3),
        k4 = public_line(4),
        k5 = public_line(5),
    );
    let got = |h: &str, p: u16| lookup(&text, h, p).unwrap().accepted;
    assert_eq!(got("web-2", 22), vec![public(1)]);
    assert_eq!(got("WEB-1", 22), vec![public(1)]);
    assert!(got("web-1", 2222).is_empty(), "port matters");
    assert_eq!(got("web-3", 2222), vec![public(2)]);
    assert!(got("web-3", 22).is_empty());
    assert_eq!(got("10.1.2.3", 2200), vec![public(3)]);
    assert!(got("10.1.2.3", 22).is_empty());
    assert_eq!(got("app.prod", 22), vec![public(4)]);
    assert!(got("db.prod", 22).is_empty(), "negated");
    assert!(got("other", 22).is_empty(), "a CA line is not a host key");
}

#[test]
fn known_hosts_revoked() {
    let text = format!("web {}\n@revoked * {}\n", public_line(1), public_line(2));
    let found = lookup(&text, "web", 22).unwrap();
    assert_eq!(found.accepted, vec![public(1)]);
    assert_eq!(found.revoked, vec![public(2)]);
    // An unreadable @revoked line fails the lookup (fail closed).
    assert_eq!(
        lookup("web x\n@revoked * nonsense\n", "web", 22).unwrap_err(),
        2
    );
}

#[test]
fn pin_line_parses_and_rejects() {
    let HostKeyPin::Key(k) =
        HostKeyPin::parse_line(&format!("  {} host-a  ", public_line(7))).unwrap()
    else {
        panic!("a key pin")
    };
    assert_eq!(k.key_data(), public(7).key_data());
    for bad in [
        "",
        "ssh-ed25519",
        "ssh-ed25519 AAAA",
        "web-1 ssh-ed25519 AAAA",
    ] {
        let e = HostKeyPin::parse_line(bad).unwrap_err();
        assert!(matches!(e, TransportError::Config(_)), "{bad}: {e}");
    }
}

#[test]
fn pin_check_names_both_fingerprints() {
    let pin = HostKeyPin::Key(public(1));
    let expected = pin.resolve("web", 22, "web:22").unwrap();
    expected.verify(&public(1)).unwrap();
    let e = expected.verify(&public(2)).unwrap_err();
    let fp1 = pin::fingerprint(&public(1));
    let fp2 = pin::fingerprint(&public(2));
    assert!(fp1.starts_with("SHA256:"), "{fp1}");
    assert_eq!(
        e,
        TransportError::HostKeyMismatch {
            host: "web:22".into(),
            expected_fingerprint: fp1.clone(),
            presented_fingerprint: fp2.clone(),
        }
    );
    let text = e.to_string();
    assert!(text.contains(&fp1) && text.contains(&fp2), "{text}");
}

#[test]
fn known_hosts_pin_unknown_mismatch_revoked() {
    let dir = std::env::temp_dir().join(format!("tollgate-ssh-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("known_hosts");
    std::fs::write(
        &path,
        format!("web {}\n@revoked * {}\n", public_line(1), public_line(3)),
    )
    .unwrap();
    let pin = HostKeyPin::KnownHosts(path.clone());
    let web = pin.resolve("web", 22, "web:22").unwrap();
    web.verify(&public(1)).unwrap();
    assert!(matches!(
        web.verify(&public(2)),
        Err(TransportError::HostKeyMismatch { .. })
    ));
    assert!(matches!(
        web.verify(&public(3)),
        Err(TransportError::HostKeyRevoked { .. })
    ));
    let other = pin.resolve("other", 22, "other:22").unwrap();
    let e = other.verify(&public(1)).unwrap_err();
    assert!(matches!(e, TransportError::UnknownHost { .. }), "{e}");
    assert!(e.to_string().contains("no trust on first use"), "{e}");
    // A missing file is a configuration error, not an empty trust list.
    let missing = HostKeyPin::KnownHosts(dir.join("absent"));
    assert!(matches!(
        missing.resolve("web", 22, "web:22"),
        Err(TransportError::Config(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn negotiation_is_narrowed_to_the_pinned_type() {
    let pin = HostKeyPin::Key(public(1));
    let algos = pin
        .resolve("web", 22, "web:22")
        .unwrap()
        .host_key_algorithms();
    assert_eq!(algos, vec![russh::keys::Algorithm::Ed25519]);
}

#[test]
fn client_key_parses_and_redacts() {
    let pem = key(9).to_openssh(LineEnding::LF).unwrap();
    let k = ClientKey::from_openssh(&pem, None).unwrap();
    let debug = format!("{k:?}");
    let secret_body: String = pem.lines().nth(1).unwrap().to_string();
    assert!(!debug.contains(&secret_body), "{debug}");
    assert!(
        debug.contains("redacted") && debug.contains("SHA256:"),
        "{debug}"
    );
    assert_eq!(k.fingerprint(), Some(pin::fingerprint(&public(9))));

    // A mangled key: the error quotes none of it.
    let mangled = pem.replace('A', "*");
    let e = ClientKey::from_openssh(&mangled, None).unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(matches!(e, TransportError::Config(_)));
    for line in mangled.lines().skip(1).take(3) {
        assert!(!text.contains(line), "{text}");
    }
    assert!(ClientKey::from_openssh("not a key", Some("pw")).is_err());
}

#[test]
fn host_labels() {
    let spec = HostSpec {
        host: "::1".into(),
        port: 2222,
        user: "u".into(),
        key: ClientKey::Agent("/tmp/agent.sock".into()),
        pin: HostKeyPin::Key(public(1)),
        connect_timeout: std::time::Duration::from_secs(1),
    };
    assert_eq!(spec.label(), "[::1]:2222");
    assert!(format!("{spec:?}").contains("Agent(/tmp/agent.sock)"));
}
