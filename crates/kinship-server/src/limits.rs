//! Bounds on what a client may send: failed authentications per address, and the size of
//! query strings. (Body sizes are bounded per route family in `lib.rs`; connections and
//! timeouts in `listen.rs`.)

use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most; beyond, expired windows are dropped first.
const MAX_TRACKED: usize = 100_000;

/// Counts failed token and write-key checks per client address in one-minute windows. It
/// only ever slows down failures: a request that authenticates is served whatever others
/// behind the same address (a proxy, a NAT) got wrong. Tokens and write keys hold 192
/// random bits, so there is nothing to gain by guessing faster.
pub struct FailureLimiter {
    per_window: u32,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailureLimiter {
    pub fn new(per_window: u32) -> FailureLimiter {
        FailureLimiter { per_window, windows: Mutex::new(HashMap::new()) }
    }

    /// Seconds until `ip` may try again, if it has used up its failures.
    pub fn blocked(&self, ip: IpAddr) -> Option<u64> {
        let windows = self.windows.lock().expect("not poisoned");
        let (start, failures) = windows.get(&ip)?;
        let left = WINDOW.checked_sub(start.elapsed())?;
        (*failures >= self.per_window).then(|| left.as_secs().max(1))
    }

    /// Counts a failure; returns the seconds to wait when the address had already used up
    /// its failures.
    pub fn failure(&self, ip: IpAddr) -> Option<u64> {
        let blocked = self.blocked(ip);
        self.failed(ip);
        blocked
    }

    pub fn failed(&self, ip: IpAddr) {
        let mut windows = self.windows.lock().expect("not poisoned");
        if windows.len() >= MAX_TRACKED {
            windows.retain(|_, (start, _)| start.elapsed() < WINDOW);
        }
        let window = windows.entry(ip).or_insert((Instant::now(), 0));
        if window.0.elapsed() >= WINDOW {
            *window = (Instant::now(), 0);
        }
        window.1 += 1;
    }
}

/// The 429 for an address that failed authentication too often.
pub fn too_many_failures(retry_after: u64) -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({ "error": format!("too many failed authentications from this address; retry in {retry_after} s") })),
    )
        .into_response();
    response.headers_mut().insert(axum::http::header::RETRY_AFTER, retry_after.into());
    response
}

/// Refuses query strings longer than `server.max_query_bytes` before any handler parses them.
pub async fn bound_query(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let limit = state.config().server.max_query_bytes;
    let length = req.uri().query().map_or(0, str::len);
    if length > limit {
        return (
            StatusCode::URI_TOO_LONG,
            Json(json!({ "error": format!("the query string is {length} bytes; the limit is {limit} (server.max_query_bytes)") })),
        )
            .into_response();
    }
    next.run(req).await
}

/// Answers 503 to a read or a collection request that takes longer than
/// `server.request_deadline_secs`. Changes made through the REST API and the web UI (an
/// erasure, a definition, a source run) are left to finish: cutting one off would drop its
/// audit entry while its work went on.
pub async fn deadline(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let changes = !matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD) && !req.uri().path().starts_with("/v1/");
    if changes {
        return next.run(req).await;
    }
    let limit = Duration::from_secs(state.config().server.request_deadline_secs.max(1));
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": format!("the request took longer than {} s (server.request_deadline_secs)", limit.as_secs()) })),
        )
            .into_response(),
    }
}
