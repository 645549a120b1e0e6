//! Accepting connections with bounds, so one client cannot take the server down: at most
//! `server.max_connections` open at once (at the cap an idle one is closed to make room,
//! else the newcomer gets 503), headers within `header_timeout_secs`, an idle keep-alive
//! connection closed after `idle_timeout_secs`. Body and request deadlines are layers on
//! the router (`lib.rs`). `axum::serve` has none of these bounds, hence this loop.

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use kinship_core::config::ServerConfig;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// The answer to a connection beyond the cap when none can be closed to make room.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 81\r\n\r\n{\"error\":\"too many open connections (server.max_connections); retry in a second\"}";

/// The bounds `serve` enforces, from `[server]`.
#[derive(Clone, Copy)]
pub struct Bounds {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Bounds {
    pub fn from_config(server: &ServerConfig) -> Bounds {
        Bounds {
            max_connections: server.max_connections.max(1),
            header_timeout: Duration::from_secs(server.header_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(server.idle_timeout_secs.max(1)),
        }
    }
}

/// What one connection is doing, shared by its socket, its service and the watchdog.
struct Activity {
    opened: Instant,
    /// Milliseconds after `opened` at which the connection began waiting for a request.
    waiting_since: AtomicU64,
    /// Whether a byte arrived since then: a request is being sent.
    heard: AtomicBool,
    /// Milliseconds after `opened` at which that request's first byte arrived.
    first_byte: AtomicU64,
    in_flight: AtomicUsize,
    close: tokio::sync::Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            waiting_since: AtomicU64::new(0),
            heard: AtomicBool::new(false),
            first_byte: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            close: tokio::sync::Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// Whether the connection has waited too long for its next request: the header timeout
    /// once some of it arrived (a slow sender), the idle timeout while nothing did.
    fn expired(&self, bounds: &Bounds) -> bool {
        if !self.idle() {
            return false;
        }
        let since = |at: &AtomicU64| Duration::from_millis(self.now().saturating_sub(at.load(Ordering::Acquire)));
        if self.heard.load(Ordering::Acquire) {
            since(&self.first_byte) >= bounds.header_timeout
        } else {
            since(&self.waiting_since) >= bounds.idle_timeout
        }
    }
}

/// Marks a request in flight until its response is ready (or the request is dropped).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.waiting_since.store(activity.now(), Ordering::Release);
        activity.heard.store(false, Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A socket that tells its connection's [`Activity`] when bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before && !this.activity.heard.load(Ordering::Acquire) {
            this.activity.first_byte.store(this.activity.now(), Ordering::Release);
            this.activity.heard.store(true, Ordering::Release);
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The open connections, so that at the cap an idle one can be asked to close.
#[derive(Default)]
struct Open {
    next: AtomicU64,
    connections: Mutex<HashMap<u64, Arc<Activity>>>,
}

impl Open {
    fn len(&self) -> usize {
        self.connections.lock().expect("not poisoned").len()
    }

    /// Asks the connection without a request in flight that has waited longest (one that
    /// has sent nothing first) to close, and forgets it at once so the next eviction picks
    /// another; whether there was one.
    fn evict_idle(&self) -> bool {
        let mut connections = self.connections.lock().expect("not poisoned");
        let victim = connections
            .iter()
            .filter(|(_, a)| a.idle())
            .min_by_key(|(_, a)| {
                (a.heard.load(Ordering::Acquire), a.opened + Duration::from_millis(a.waiting_since.load(Ordering::Acquire)))
            })
            .map(|(&id, _)| id);
        match victim.and_then(|id| connections.remove(&id)) {
            Some(activity) => {
                activity.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting and waits for
/// the connections' requests in flight to finish.
pub async fn serve(listener: TcpListener, app: axum::Router, bounds: Bounds, shutdown: impl Future<Output = ()> + Send + 'static) {
    let open = Arc::new(Open::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors (a limit below the cap): free one held by an idle
                // connection, and wait a little rather than spin.
                Err(e) => {
                    tracing::warn!("accepting a connection failed: {e}");
                    open.evict_idle();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        if open.len() >= bounds.max_connections && !open.evict_idle() {
            tokio::spawn(refuse(stream));
            continue;
        }
        let activity = Arc::new(Activity::new());
        let id = open.next.fetch_add(1, Ordering::Relaxed);
        open.connections.lock().expect("not poisoned").insert(id, activity.clone());
        let service_activity = activity.clone();
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            let in_flight = InFlight::start(&service_activity);
            request.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move {
                let response = app.oneshot(request.map(axum::body::Body::new)).await;
                drop(in_flight);
                response
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        // hyper's own header timeout runs from when it starts waiting for a request, idle
        // keep-alive time included: the watchdog below draws that line instead.
        builder.timer(TokioTimer::new()).header_read_timeout(None).max_buf_size(64 * 1024);
        let io = TokioIo::new(Watched { stream, activity: activity.clone() });
        let connection = graceful.watch(builder.serve_connection(io, service));
        let open = open.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = connection => {}
                () = watchdog(&activity, bounds) => {}
                () = activity.close.notified() => {}
            }
            open.connections.lock().expect("not poisoned").remove(&id);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Returns once the connection has waited too long for a request's headers.
async fn watchdog(activity: &Activity, bounds: Bounds) {
    let tick = (bounds.header_timeout.min(bounds.idle_timeout) / 8).clamp(Duration::from_millis(20), Duration::from_secs(1));
    loop {
        tokio::time::sleep(tick).await;
        if activity.expired(&bounds) {
            return;
        }
    }
}

/// Answers 503 to a connection beyond the cap, without reading its request.
async fn refuse(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(BUSY)).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_answer_has_the_length_it_says() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
        serde_json::from_str::<serde_json::Value>(body).unwrap();
    }
}
