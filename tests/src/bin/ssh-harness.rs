//! The test harness's throwaway OpenSSH sshd (tests/src/sshd.rs) for tests
//! that are not Rust (tests/e2e/test_ssh.py): starts it, prints one JSON line
//! `{host, port, user, client_key_pem, host_key, other_host_key}` on stdout,
//! and stops it when stdin closes.

use std::io::Read;

use serde_json::json;
use tollgate_tests::sshd::SshdServer;

fn main() -> anyhow::Result<()> {
    let sshd = SshdServer::start()?;
    println!(
        "{}",
        json!({
            "host": "127.0.0.1",
            "port": sshd.port(),
            "user": sshd.user(),
            "client_key_pem": sshd.client_key_pem(),
            "host_key": sshd.host_key_line(),
            "other_host_key": sshd.other_host_key_line(),
        })
    );
    // Until the parent closes our stdin (or dies).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(sshd);
    Ok(())
}
