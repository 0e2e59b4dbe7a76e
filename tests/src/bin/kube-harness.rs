//! The test harness's throwaway kube-apiserver (tests/src/kube.rs) for tests
//! that are not Rust (tests/e2e/test_k8s.py): starts etcd and kube-apiserver,
//! prints one JSON line `{url, ca_file, admin_token, restricted_token}` on
//! stdout, and stops them when stdin closes.

use std::io::Read;

use serde_json::json;
use tollgate_tests::kube::KubeServer;

fn main() -> anyhow::Result<()> {
    tollgate_server::init_crypto();
    let rt = tokio::runtime::Runtime::new()?;
    let kube = rt.block_on(KubeServer::start())?;
    println!(
        "{}",
        json!({
            "url": kube.url(),
            "ca_file": kube.ca_file(),
            "admin_token": kube.admin_token(),
            "restricted_token": kube.restricted_token(),
        })
    );
    // Until the parent closes our stdin (or dies).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(kube);
    Ok(())
}
