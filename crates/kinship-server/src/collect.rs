//! The collection API of the Segment spec: `/v1/identify`, `/track`, `/page`, `/screen`,
//! `/group`, `/alias` and `/batch`. Invalid items of a batch are rejected one by one, with
//! their index and reason; the valid ones are stored.

// The helpers here fail with the HTTP response to send, as axum handlers do.
#![allow(clippy::result_large_err)]

use crate::state::AppState;
use crate::writer::SubmitError;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Json;
use kinship_sources::segment::{accept, MessageType};
use serde_json::{json, Map, Value};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

fn error(status: StatusCode, reason: impl Into<String>) -> Response {
    (status, Json(json!({ "success": false, "error": reason.into() }))).into_response()
}

/// The route of a single-message call (`/v1/identify`, `/v1/track`, ...).
pub fn single_route(kind: MessageType) -> MethodRouter<Arc<AppState>> {
    post(move |state: State<Arc<AppState>>, client: ConnectInfo<SocketAddr>, headers: HeaderMap, body: Bytes| {
        single(state, client, headers, body, kind)
    })
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(error(StatusCode::BAD_REQUEST, "the body must be a JSON object")),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, format!("invalid JSON at line {} column {}: {e}", e.line(), e.column()))),
    }
}

/// The source of a request's write key (Basic user, or `writeKey` in the body), if it is
/// known and switched on. The key is removed from the body: a secret is never logged.
/// Failures count against the client's address (see `limits`).
async fn authorise(state: &Arc<AppState>, client: IpAddr, headers: &HeaderMap, body: &mut Map<String, Value>) -> Result<String, Response> {
    let from_body = match body.remove("writeKey") {
        Some(Value::String(k)) => Some(k),
        _ => None,
    };
    // Only failures are limited: a valid key is never refused for another client's mistakes.
    let refuse = |response: Response| match state.auth_failures.failure(client) {
        Some(retry_after) => crate::limits::too_many_failures(retry_after),
        None => response,
    };
    let Some(key) = crate::auth::basic_user(headers).or(from_body) else {
        return Err(refuse(error(
            StatusCode::UNAUTHORIZED,
            "missing write key: send it as the HTTP Basic user name, or as `writeKey` in the body",
        )));
    };
    let source = state.source_for_write_key(&key).await.map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let Some(source) = source else {
        return Err(refuse(error(
            StatusCode::UNAUTHORIZED,
            "unknown write key; create one with `kinship source add --type segment --name NAME`",
        )));
    };
    // Native cases are written by Kinship alone: a client key must not forge a case or an
    // agent's reply.
    if state.config().service.source.as_deref() == Some(source.as_str()) {
        return Err(error(
            StatusCode::FORBIDDEN,
            format!("source `{source}` holds native cases ([service] source) and takes no collected events; send them to another source"),
        ));
    }
    if !state.source_enabled(&source).await.map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))? {
        return Err(error(StatusCode::FORBIDDEN, format!("source `{source}` is switched off; turn it on to accept events")));
    }
    Ok(source)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The part every collection request shares: size limit, JSON object, write key.
async fn open_request(
    state: &Arc<AppState>,
    client: IpAddr,
    headers: &HeaderMap,
    body: &[u8],
    limit: usize,
    setting: &str,
) -> Result<(Map<String, Value>, String), Response> {
    if body.len() > limit {
        return Err(error(StatusCode::PAYLOAD_TOO_LARGE, format!("the request is {} bytes; the limit is {limit} ({setting})", body.len())));
    }
    let mut msg = parse_object(body)?;
    let source = authorise(state, client, headers, &mut msg).await?;
    Ok((msg, source))
}

async fn single(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
    kind: MessageType,
) -> Response {
    let (msg, source) =
        match open_request(&state, client.ip(), &headers, &body, state.config().server.max_event_bytes, "server.max_event_bytes").await {
            Ok(opened) => opened,
            Err(r) => return r,
        };
    let record = match accept(msg, Some(kind), None, now_ms(), state.region) {
        Ok(r) => r,
        Err(reason) => {
            state.metrics.events_rejected(1);
            return error(StatusCode::BAD_REQUEST, reason);
        }
    };
    commit(&state, source, vec![record], Rejects::new(0)).await
}

pub async fn batch(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut msg, source) =
        match open_request(&state, client.ip(), &headers, &body, state.config().server.max_batch_bytes, "server.max_batch_bytes").await {
            Ok(opened) => opened,
            Err(r) => return r,
        };
    let Some(Value::Array(items)) = msg.remove("batch") else {
        return error(StatusCode::BAD_REQUEST, "a batch needs `batch`: an array of messages");
    };
    let context = match msg.remove("context") {
        Some(Value::Object(c)) => Some(c),
        None | Some(Value::Null) => None,
        Some(_) => return error(StatusCode::BAD_REQUEST, "`context` must be an object"),
    };
    let received = now_ms();
    let event_limit = state.config().server.max_event_bytes;
    let mut records = Vec::with_capacity(items.len());
    let mut rejected = Rejects::new(state.config().server.max_listed_rejects);
    for (index, item) in items.into_iter().enumerate() {
        let size = serde_json::to_vec(&item).map_or(0, |v| v.len());
        let result = match item {
            _ if size > event_limit => Err(format!("the event is {size} bytes; the limit is {event_limit} (server.max_event_bytes)")),
            Value::Object(m) => accept(m, None, context.as_ref(), received, state.region),
            _ => Err("each batch item must be a JSON object".to_string()),
        };
        match result {
            Ok(r) => records.push(r),
            Err(reason) => rejected.push(index, reason),
        }
    }
    state.metrics.events_rejected(rejected.total as u64);
    if records.is_empty() {
        let reason = if rejected.total == 0 { "the batch is empty" } else { "no message in the batch is valid" };
        let body = json!({ "success": false, "error": reason, "rejected": rejected.listed, "rejected_total": rejected.total });
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    commit(&state, source, records, rejected).await
}

/// A batch's rejected items: the first few listed with index and reason, all counted, so a
/// batch of 100,000 bad items gets an answer of a few hundred bytes, not megabytes.
struct Rejects {
    listed: Vec<Value>,
    total: usize,
    most: usize,
}

impl Rejects {
    fn new(most: usize) -> Rejects {
        Rejects { listed: Vec::new(), total: 0, most }
    }

    fn push(&mut self, index: usize, reason: String) {
        if self.listed.len() < self.most {
            self.listed.push(json!({ "index": index, "error": reason }));
        }
        self.total += 1;
    }
}

/// Drops the records of erased people (counted as `suppressed`), then hands the rest on —
/// to the writer, or in ingest mode `nats` to the stream — and answers once they are
/// durable: committed to the log, or acknowledged by JetStream. `accepted` counts what was
/// stored; retries already stored are `duplicates`, erased people's events `suppressed`.
async fn commit(state: &Arc<AppState>, source: String, mut records: Vec<kinship_core::NewRecord>, rejected: Rejects) -> Response {
    let valid = records.len() as u64;
    let (suppressed_here, generation) = crate::writer::drop_suppressed(&state.suppression, &mut records);
    // (duplicates, suppressed later): retries recognised by the log or by JetStream's
    // duplicate window, and records of people erased after the check above.
    let handed_on = match &state.ingest_stream {
        Some(stream) => {
            stream.publish(&state.metrics, &source, &records).await.map(|duplicates| (duplicates, 0)).map_err(SubmitError::Failed)
        }
        None => {
            let kept = records.len() as u64;
            state.writer.submit(source, records, generation).await.map(|c| (kept - c.suppressed - c.new, c.suppressed))
        }
    };
    match handed_on {
        Ok((duplicates, suppressed_later)) => {
            let suppressed = suppressed_here + suppressed_later;
            let accepted = valid.saturating_sub(duplicates + suppressed);
            Json(json!({
                "success": true,
                "accepted": accepted,
                "duplicates": duplicates,
                "suppressed": suppressed,
                "rejected": rejected.listed,
                "rejected_total": rejected.total,
            }))
            .into_response()
        }
        Err(SubmitError::Overloaded) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "the server is busy; retry after a second");
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
            r
        }
        Err(SubmitError::Failed(reason)) => error(StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}
