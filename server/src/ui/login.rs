//! How people log in to the console and who is logged in: the server-side
//! [`Sessions`] and, where `[ui]` names an issuer, the OpenID Connect
//! relying party ([`Oidc`]); without one, the login page takes a pasted
//! bearer token. Built once from the config and shared by the UI handlers
//! through [`crate::state::AppState`].

use std::time::Duration;

use anyhow::anyhow;

use super::oidc::{Oidc, OidcConfig};
use super::sessions::Sessions;
use crate::config::{Config, DEFAULT_SESSION_TTL, parse_duration};

/// The console's login.
#[derive(Debug)]
pub struct Login {
    /// Who is logged in.
    pub sessions: Sessions,
    /// The provider to log in through; `None`: the token form.
    pub oidc: Option<Oidc>,
}

impl Default for Login {
    /// The token form, sessions of [`DEFAULT_SESSION_TTL`].
    fn default() -> Self {
        Login {
            sessions: Sessions::new(DEFAULT_SESSION_TTL),
            oidc: None,
        }
    }
}

impl Login {
    /// From `[ui]` (and `[auth] groups_claim`/`leeway`, which ID tokens
    /// share with bearer tokens); the callback is under `public_url`.
    pub fn from_config(config: &Config) -> anyhow::Result<Login> {
        let ui = &config.ui;
        let sessions = Sessions::new(ui.session_ttl.0);
        let (Some(issuer), Some(client_id)) = (&ui.oidc_issuer, &ui.client_id) else {
            return Ok(Login {
                sessions,
                oidc: None,
            });
        };
        let client_secret = match &ui.client_secret {
            Some(raw) => Some(
                config
                    .secret(raw)
                    .map_err(|e| anyhow!("ui.client_secret: {e}"))?,
            ),
            None => None,
        };
        let leeway = match &config.auth.leeway {
            Some(l) => parse_duration(l.get_ref()).map_err(|e| anyhow!("auth.leeway: {e}"))?,
            None => Duration::from_secs(60),
        };
        let oidc = Oidc::new(OidcConfig {
            issuer: issuer.clone(),
            client_id: client_id.clone(),
            client_secret,
            scopes: ui.scopes.clone(),
            groups_claim: config
                .auth
                .groups_claim
                .clone()
                .unwrap_or_else(|| "groups".into()),
            leeway,
            redirect_uri: format!("{}/ui/login/callback", config.public_url()),
        })
        .map_err(|e| anyhow!("[ui]: {e}"))?;
        Ok(Login {
            sessions,
            oidc: Some(oidc),
        })
    }
}
