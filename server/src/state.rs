//! The state every HTTP handler shares: the gateway, the bearer verifier,
//! the public URL and the console's login. A leaf module: it imports no
//! other module of the server but the login's leaf types,
//! so the routers ([`crate::http`]), the REST API and the approval pages can
//! all depend on it without depending on each other.

use std::sync::Arc;

use gateway_core::approval::ApprovalService;
use gateway_core::identity::Authenticator;
use gateway_core::{Gateway, Principal};

use crate::ui::login::Login;

/// Shared state of the HTTP surface.
#[derive(Clone)]
pub struct AppState {
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// Bearer verification.
    pub auth: Arc<Authenticator>,
    /// Public base URL, no trailing slash.
    pub public_url: String,
    /// Issuer to advertise in RFC 9728 metadata.
    pub issuer: Option<String>,
    /// The console's login: sessions and the OpenID Connect provider, if any.
    pub login: Arc<Login>,
}

impl AppState {
    /// The reviewers' side of the running gateway's approval gate, if it has one.
    pub fn approval_service(&self) -> Option<&ApprovalService> {
        self.gateway.approvals().and_then(|g| g.service())
    }

    /// May `who` see every approval and audit event (`audit:read`)?
    pub fn sees_all(&self, who: &Principal) -> bool {
        self.gateway.may_read_audit(who)
    }

    /// Record `who`'s read of the audit log (`audit_read`: `what` names
    /// the path and the filter or id) before anything is answered, refused
    /// reads included (`deny`). `Ok(allowed)`: whether `audit:read` lets
    /// them see it; `Err`: the record could not be written, and the read
    /// must fail closed.
    pub async fn record_audit_read(
        &self,
        who: &Principal,
        what: serde_json::Value,
    ) -> Result<bool, gateway_core::audit::StoreError> {
        use gateway_core::access_log::{AUDIT_READ, access_record};
        let allowed = self.sees_all(who);
        let record = access_record(
            who,
            AUDIT_READ,
            what,
            if allowed { "allow" } else { "deny" },
            if allowed { "ok" } else { "forbidden" },
        );
        self.gateway.audit().append(record).await?;
        Ok(allowed)
    }
}
