//! A gateway served over HTTP on a free loopback port, for integration tests
//! that drive it in-process ([`Served::call`]) and over its API (`/api/audit`):
//! a temp dir holding `policies/test.cedar` and a `tollgate.toml` made of a
//! `[server]`/`[auth]`/`[policy]` head and the sections a test gives
//! (`[approval]`, `[[connection]]`...), `check` asserted clean, the gateway
//! built and its router spawned.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gateway_core::approval::CallContext;
use gateway_core::identity::Authenticator;
use gateway_core::outcome::CallResult;
use gateway_core::{Gateway, Principal};
use serde_json::Value;
use tollgate_server::config::Config;
use tollgate_server::state::AppState;

use crate::kube::KubeServer;
use crate::util::TempDir;

/// The served gateway of one test.
pub struct Served {
    /// The config dir (policies, config, data).
    pub dir: TempDir,
    /// Where the HTTP API listens.
    pub addr: SocketAddr,
    /// The config file.
    pub config_path: PathBuf,
    /// The gateway itself, for in-process calls.
    pub gateway: Arc<Gateway>,
    /// The authenticator (HS256: tests mint tokens with it).
    pub auth: Arc<Authenticator>,
}

impl Served {
    /// Write `policy` and the config (`server_extra`: more `[server]` lines;
    /// `sections(dir)`: everything after `[policy]`), check it, start it.
    pub async fn start(
        label: &str,
        policy: &str,
        server_extra: &str,
        sections: impl FnOnce(&Path) -> String,
    ) -> Self {
        let dir = TempDir::new(label).unwrap();
        std::fs::create_dir_all(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("policies/test.cedar"), policy).unwrap();
        let secret = dir.path().join("secret.key");
        std::fs::write(&secret, format!("{label}-test-secret-0123456789abcdef")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let port = addr.port();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
             data_dir = \"data\"\n{server_extra}\n[auth]\nhs256_secret = \"${{file:{}}}\"\n\n\
             [policy]\ndir = \"policies\"\n\n{}",
            secret.display(),
            sections(dir.path())
        );
        let config_path = dir.path().join("tollgate.toml");
        std::fs::write(&config_path, text).unwrap();
        let config = Config::load(&config_path).expect("config loads");
        assert_eq!(tollgate_server::app::check(&config), Vec::<String>::new());
        let gateway = tollgate_server::app::gateway(&config)
            .await
            .expect("gateway");
        let auth = Arc::new(
            tollgate_server::app::authenticator(&config)
                .unwrap()
                .expect("an [auth] section"),
        );
        let state = AppState {
            gateway: gateway.clone(),
            auth: auth.clone(),
            public_url: format!("http://{addr}"),
            issuer: None,
            login: Arc::new(
                tollgate_server::ui::login::Login::from_config(&config).expect("[ui] loads"),
            ),
        };
        let app = tollgate_server::http::router(
            state,
            vec!["127.0.0.1".into(), addr.to_string()],
            Default::default(),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Served {
            dir,
            addr,
            config_path,
            gateway,
            auth,
        }
    }

    /// A bearer token for `sub` in `groups`, valid 10 minutes.
    pub fn token(&self, sub: &str, groups: &[&str]) -> String {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        self.auth
            .mint_hs256(sub, &groups, Duration::from_secs(600))
            .unwrap()
    }

    /// Call `tool` as `who` without waiting for approvals.
    pub async fn call(&self, who: &Principal, tool: &str, args: Value) -> CallResult {
        self.gateway
            .call(
                who,
                tool,
                args,
                &CallContext {
                    wait: Some(Duration::ZERO),
                    ..Default::default()
                },
            )
            .await
    }
}

/// A principal.
pub fn principal(sub: &str, groups: &[&str]) -> Principal {
    Principal {
        sub: sub.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

/// The `[[connection]]` table of a Kubernetes connection `name` to `kube` as
/// its admin (the token in a file under `dir`), plus `extra` lines.
pub fn kube_connection(kube: &KubeServer, dir: &Path, name: &str, extra: &str) -> String {
    let token = dir.join("admin.token");
    std::fs::write(&token, kube.admin_token()).unwrap();
    format!(
        "[[connection]]\nname = \"{name}\"\nkind = \"kubernetes\"\nserver = \"{}\"\nca_file = \"{}\"\n\
         token = \"${{file:{}}}\"\n{extra}\n",
        kube.url(),
        kube.ca_file().display(),
        token.display()
    )
}
