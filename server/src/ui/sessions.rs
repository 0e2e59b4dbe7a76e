//! The console's server-side sessions: after a login (OpenID Connect or a
//! pasted token) the browser's cookie holds only a random session id; this
//! table maps it to the principal and the session's end. Logout removes the
//! entry, so an old cookie stops working at once; an expired or unknown id
//! is no session.
//!
//! Bounded: at most `cap` sessions; when full, expired ones are swept, then
//! the one closest to its end is dropped. The table keys on the SHA-256 of
//! the id, so neither a lookup's timing nor a memory dump gives a usable
//! cookie. Sessions live in this process: a restart logs everyone out, and
//! replicas behind a load balancer need sticky sessions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gateway_core::Principal;
use sha2::{Digest, Sha256};

/// Default cap on live sessions.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;

/// What a session id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A live session of this principal.
    Valid(Principal),
    /// The session has ended (it is removed now).
    Expired,
    /// No such session (never was, logged out, or dropped).
    Unknown,
}

struct Session {
    principal: Principal,
    ends: Instant,
}

/// The session table.
pub struct Sessions {
    ttl: Duration,
    cap: usize,
    map: Mutex<HashMap<[u8; 32], Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("ttl", &self.ttl)
            .field("cap", &self.cap)
            .field("live", &self.len())
            .finish()
    }
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

// === impl Sessions ===

impl Sessions {
    /// A table whose sessions last `ttl`, at most [`DEFAULT_MAX_SESSIONS`].
    pub fn new(ttl: Duration) -> Self {
        Self::with_cap(ttl, DEFAULT_MAX_SESSIONS)
    }

    /// A table holding at most `cap` sessions (at least one).
    pub fn with_cap(ttl: Duration, cap: usize) -> Self {
        Sessions {
            ttl,
            cap: cap.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Live entries (expired ones not swept yet included).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there is no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Open a session for `principal`, ending after the table's ttl or
    /// after `at_most` if that is sooner (a pasted token's remaining life);
    /// the new session id.
    pub fn create(&self, principal: Principal, at_most: Option<Duration>) -> String {
        let id = super::oidc::random_token();
        let life = at_most.map_or(self.ttl, |m| m.min(self.ttl));
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= self.cap {
            map.retain(|_, s| s.ends > now);
        }
        if map.len() >= self.cap
            && let Some(soonest) = map.iter().min_by_key(|(_, s)| s.ends).map(|(k, _)| *k)
        {
            map.remove(&soonest);
        }
        map.insert(
            key(&id),
            Session {
                principal,
                ends: now + life,
            },
        );
        id
    }

    /// The session `id` names.
    pub fn get(&self, id: &str) -> Lookup {
        let k = key(id);
        let mut map = self.lock();
        match map.get(&k) {
            None => Lookup::Unknown,
            Some(s) if s.ends <= Instant::now() => {
                map.remove(&k);
                Lookup::Expired
            }
            Some(s) => Lookup::Valid(s.principal.clone()),
        }
    }

    /// End the session `id` (logout); whether there was one.
    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(&key(id)).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(sub: &str) -> Principal {
        Principal {
            sub: sub.into(),
            groups: vec!["reviewers".into()],
        }
    }

    #[test]
    fn a_session_is_found_until_it_ends_or_is_removed() {
        let s = Sessions::new(Duration::from_secs(60));
        let id = s.create(who("alice"), None);
        assert_eq!(s.get(&id), Lookup::Valid(who("alice")));
        assert_eq!(s.get("forged"), Lookup::Unknown);
        assert!(s.remove(&id));
        assert_eq!(s.get(&id), Lookup::Unknown);
        assert!(!s.remove(&id));
    }

    #[test]
    fn sessions_expire_at_the_ttl_or_sooner() {
        let s = Sessions::new(Duration::from_millis(30));
        let id = s.create(who("alice"), None);
        let short = Sessions::new(Duration::from_secs(60));
        let capped = short.create(who("bob"), Some(Duration::from_millis(30)));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(s.get(&id), Lookup::Expired);
        assert_eq!(s.get(&id), Lookup::Unknown, "removed when found expired");
        assert_eq!(short.get(&capped), Lookup::Expired);
    }

    #[test]
    fn the_table_is_bounded_and_drops_the_soonest_ending() {
        let s = Sessions::with_cap(Duration::from_secs(60), 3);
        let first = s.create(who("a"), Some(Duration::from_secs(1)));
        let others: Vec<String> = (0..3)
            .map(|i| s.create(who(&format!("u{i}")), None))
            .collect();
        assert_eq!(s.len(), 3);
        assert_eq!(s.get(&first), Lookup::Unknown);
        for id in &others {
            assert!(matches!(s.get(id), Lookup::Valid(_)));
        }
        // A full table of expired sessions is swept, not evicted one by one.
        let e = Sessions::with_cap(Duration::from_millis(10), 2);
        e.create(who("x"), None);
        e.create(who("y"), None);
        std::thread::sleep(Duration::from_millis(20));
        let z = e.create(who("z"), None);
        assert_eq!(e.len(), 1);
        assert_eq!(e.get(&z), Lookup::Valid(who("z")));
    }
}
