//! `kinship serve`: the web UI at `/`, the Segment-compatible collection API, the REST API
//! under `/api/v1/`, `/healthz` and `/metrics`, in one process over the embedded store.
//!
//! Writes go through one writer thread that commits requests in groups (one fsync for many
//! requests) and answers each only after its commit, so a 200 means the event is on disk.
//! A resolver thread follows the log and resolves new records into profiles within
//! milliseconds. Reads run on blocking threads, each with its own connection. Sources with a
//! `schedule` are pulled on it by background tasks.
//!
//! In ingest mode `nats` the collection API publishes events to a JetStream stream instead,
//! and every node commits them from there through the same writer (`nats`).

mod accounts_api;
mod api;
mod audit;
pub mod auth;
mod cases_api;
mod collect;
mod deals_api;
mod deliveries;
mod flow_runner;
mod flows_api;
mod governance_api;
mod http;
mod limits;
mod listen;
mod measures_api;
mod metrics;
mod native;
mod nats;
mod schedule;
mod search;
mod segments_api;
mod state;
mod success_api;
mod web;
mod writer;

use axum::routing::{get, post};
use axum::Router;
use kinship_core::{Config, IngestMode};
use kinship_sources::segment::MessageType;
use state::AppState;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] kinship_store::StoreError),
    #[error("cannot listen on {addr}: {error}; is another kinship running? choose another address with --bind")]
    Bind { addr: String, error: std::io::Error },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub struct ServeOptions {
    pub data_dir: PathBuf,
    pub database: String,
    pub config: Config,
    pub bind: String,
}

/// Runs the server until `shutdown` completes, then finishes in-flight requests, commits
/// what was accepted, resolves it, and returns. `on_listen` receives the bound address.
pub async fn serve(
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_listen: impl FnOnce(SocketAddr),
) -> Result<(), ServerError> {
    let listener =
        tokio::net::TcpListener::bind(&options.bind).await.map_err(|error| ServerError::Bind { addr: options.bind.clone(), error })?;
    let addr = listener.local_addr()?;
    let ingest_stream = match options.config.ingest.mode {
        IngestMode::Direct => None,
        IngestMode::Nats => Some(nats::Link::connect(&options.config.ingest).await?),
    };
    // Opening the store blocks (and a PostgreSQL client runs its own runtime): not on a worker.
    let stream = ingest_stream.clone();
    let (state, background) =
        tokio::task::spawn_blocking(move || AppState::start(options, stream)).await.expect("start-up does not panic")?;
    let consumer = ingest_stream
        .map(|link| nats::consume::Consumer::start(link, state.writer.clone(), state.suppression.clone(), state.metrics.clone()));
    let app = router(state.clone());
    let mut schedules = schedule::start(&state);
    let mut deliveries = deliveries::start(&state);
    on_listen(addr);
    listen::serve(listener, app, listen::Bounds::from_config(&state.config().server), shutdown).await;
    // In-flight requests are done, scheduled pulls stop (one under way finishes first), and
    // the stream consumer commits and acknowledges what it pulled. Closing the writer's and
    // the audit queue then lets them commit what they hold and stop.
    schedules.shutdown().await;
    // A delivery cut off mid-attempt is still pending in the outbox and is sent again.
    deliveries.shutdown().await;
    if let Some(consumer) = consumer {
        consumer.finish().await;
    }
    drop(state);
    tokio::task::spawn_blocking(move || background.join()).await.map_err(|e| ServerError::Config(e.to_string()))??;
    Ok(())
}

fn router(state: Arc<AppState>) -> Router {
    let server = state.config().server.clone();
    let body_cap = state.config().server.max_batch_bytes.max(state.config().server.max_event_bytes) * 4;
    Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }))
        .route("/metrics", get(metrics::render))
        .route("/v1/identify", collect::single_route(MessageType::Identify))
        .route("/v1/track", collect::single_route(MessageType::Track))
        .route("/v1/page", collect::single_route(MessageType::Page))
        .route("/v1/screen", collect::single_route(MessageType::Screen))
        .route("/v1/group", collect::single_route(MessageType::Group))
        .route("/v1/alias", collect::single_route(MessageType::Alias))
        .route("/v1/batch", post(collect::batch))
        .merge(
            web::routes(state.config().server.max_upload_bytes)
                .layer(axum::extract::DefaultBodyLimit::max(state.config().server.max_api_body_bytes)),
        )
        .merge(
            api::routes()
                .merge(governance_api::routes())
                .layer(axum::extract::DefaultBodyLimit::max(state.config().server.max_api_body_bytes)),
        )
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::bound_query))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track_requests))
        // Sizes are checked in the handlers, with a JSON reason; this cap only stops a body
        // from being read without end. It counts decompressed bytes.
        .layer(axum::extract::DefaultBodyLimit::max(body_cap))
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
        // A body that trickles in is cut off; a read that takes too long answers 503.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(Duration::from_secs(server.body_timeout_secs.max(1))))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::deadline))
        .with_state(state)
}
