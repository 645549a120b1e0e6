//! Web UI sessions: a random id in an HttpOnly, SameSite=Strict cookie names a session kept
//! in memory (only the id's hash is held), with its own CSRF token. A restart signs
//! everyone out, which is acceptable for a tool used by staff and avoids storing sessions.

use crate::http::Caller;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "kinship_session";
/// Holds the sign-in form's CSRF value until a session exists (double-submit).
pub const SIGNIN_COOKIE: &str = "kinship_signin";
/// A session ends this long after sign-in.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions held at most; beyond, expired ones are dropped first.
const MAX_SESSIONS: usize = 10_000;

#[derive(Clone)]
pub struct Session {
    /// Who the audit log names: `user:NAME` or `token:NAME`.
    pub actor: String,
    /// The name shown in the header.
    pub name: String,
    pub role: String,
    /// Sent back with every form and script request.
    pub csrf: String,
    /// For a sign-in by API token, the token's stored hash: the session lasts only as long
    /// as the token does (a revoked token ends it at the next page).
    pub token_hash: Option<String>,
    started: Instant,
    /// When it started, by the clock the change feed's times are read on.
    started_ms: i64,
}

impl Session {
    pub fn caller(&self, state: &Arc<AppState>) -> Caller {
        Caller::new(self.actor.clone(), self.role.clone(), state.clone())
    }

    /// Whether a submitted CSRF value is this session's.
    pub fn csrf_matches(&self, submitted: &str) -> bool {
        constant_time_eq(self.csrf.as_bytes(), submitted.as_bytes())
    }
}

#[derive(Default)]
pub struct Sessions {
    by_id_hash: Mutex<HashMap<String, Session>>,
    /// When each reader last opened each profile (ms), for the briefing's "since your last
    /// visit". In memory, as sessions are: a restart forgets it.
    visits: Mutex<HashMap<(String, String), i64>>,
}

/// Most (reader, profile) visits remembered; past it, the memory starts again.
const MAX_VISITS: usize = 200_000;

impl Sessions {
    /// Records that `actor` opens `profile` now; returns the previous visit, if any.
    pub fn visit(&self, actor: &str, profile: &str, now_ms: i64) -> Option<i64> {
        let mut visits = self.visits.lock().expect("not poisoned");
        if visits.len() >= MAX_VISITS {
            visits.clear();
        }
        visits.insert((actor.to_string(), profile.to_string()), now_ms)
    }

    /// Starts a session; returns the cookie value.
    pub fn start(&self, actor: String, name: String, role: String, token_hash: Option<String>) -> String {
        let id = crate::auth::new_secret("ks_");
        let session = Session {
            actor,
            name,
            role,
            csrf: crate::auth::new_secret(""),
            token_hash,
            started: Instant::now(),
            started_ms: kinship_pipeline::now_ms(),
        };
        let mut map = self.by_id_hash.lock().expect("not poisoned");
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.started.elapsed() < LIFETIME);
        }
        map.insert(crate::auth::hash_secret(&id), session);
        id
    }

    pub fn get(&self, id: &str) -> Option<Session> {
        let hash = crate::auth::hash_secret(id);
        let mut map = self.by_id_hash.lock().expect("not poisoned");
        match map.get(&hash) {
            Some(s) if s.started.elapsed() < LIFETIME => Some(s.clone()),
            Some(_) => {
                map.remove(&hash);
                None
            }
            None => None,
        }
    }

    pub fn end(&self, id: &str) {
        self.by_id_hash.lock().expect("not poisoned").remove(&crate::auth::hash_secret(id));
    }

    /// Ends every session of one actor (`user:NAME`) started by `changed_ms`: their role or
    /// password changed then. A session started later read the user as changed when it signed
    /// in; ending it would sign out whoever signs in while the change feed is still catching
    /// up (a user created, then signed in at once). Across nodes the two clocks' skew is the
    /// margin either way.
    pub fn end_actor(&self, actor: &str, changed_ms: i64) {
        self.by_id_hash.lock().expect("not poisoned").retain(|_, s| s.actor != actor || s.started_ms > changed_ms);
    }
}

/// A cookie's value from the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Strict always, Secure when configured.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age_secs: u64) -> String {
    let secure = if state.config().server.secure_cookies { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}")
}

pub fn session_cookie(state: &AppState, id: &str) -> String {
    set_cookie(state, SESSION_COOKIE, id, LIFETIME.as_secs())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The signed-in person of a page request; without a session, the request is sent to sign in.
pub struct SignedIn {
    pub session: Session,
    pub id: String,
}

impl FromRequestParts<Arc<AppState>> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Response> {
        let mut found = cookie(&parts.headers, SESSION_COOKIE).and_then(|id| state.sessions.get(id).map(|s| (id.to_string(), s)));
        if let Some((id, Session { token_hash: Some(hash), .. })) = &found {
            // A revoked token signs its sessions out.
            if !matches!(state.token_by_hash(hash.clone()).await, Ok(Some(_))) {
                state.sessions.end(id);
                found = None;
            }
        }
        match found {
            Some((id, session)) if state.roles.get(&session.role).is_some() => Ok(SignedIn { session, id }),
            _ => {
                let next = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                let target = if next == "/" { "/signin".to_string() } else { format!("/signin?next={}", super::url_encode(next)) };
                Err(Redirect::to(&target).into_response())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Sessions;

    #[test]
    fn a_users_change_ends_the_sessions_started_before_it_not_after() {
        let sessions = Sessions::default();
        let before = sessions.start("user:alice".into(), "alice".into(), "admin".into(), None);
        let changed_ms = kinship_pipeline::now_ms();
        std::thread::sleep(std::time::Duration::from_millis(5));
        // Signed in after the change (which the feed brings later): it read the user as changed.
        let after = sessions.start("user:alice".into(), "alice".into(), "admin".into(), None);
        let other = sessions.start("user:bob".into(), "bob".into(), "admin".into(), None);
        sessions.end_actor("user:alice", changed_ms);
        assert!(sessions.get(&before).is_none(), "started before the change: ended");
        assert!(sessions.get(&after).is_some(), "started after it: kept");
        assert!(sessions.get(&other).is_some(), "another user's: kept");
    }
}
