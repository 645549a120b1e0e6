//! NATS JetStream as the ingest stream (`[ingest] mode = "nats"`). The collection API
//! publishes each accepted event to the stream and answers 200 once JetStream holds it
//! ([`Link::publish`]); every node commits events from one shared durable pull consumer, so
//! each goes to one node, and acknowledges them only after the commit ([`consume`]). That is
//! at least once: an event whose node died before acknowledging it is redelivered to another
//! node, and the log's unique (source, key) makes the second commit a no-op.

pub mod consume;
mod publish;
mod wire;

use crate::ServerError;
use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::stream::{RetentionPolicy, StorageType, Stream};
use kinship_core::IngestConfig;
use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a starting node waits for its first connection before serving without one.
const CONNECT_WAIT: Duration = Duration::from_secs(2);

/// Messages delivered to the nodes and not yet acknowledged, at most: room for several
/// nodes' pulls (`consume::PULL_MESSAGES` each) beside what a dead node still holds.
const MAX_ACK_PENDING: i64 = 20_000;

/// The connection to NATS and the names of the stream and consumer.
pub struct Link {
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    config: IngestConfig,
    /// Set once the stream is known to exist, so a publish looks it up once, not each time.
    stream_exists: tokio::sync::OnceCell<()>,
}

impl Link {
    /// Connects, waiting briefly for the first connection. The server starts even while
    /// NATS is unreachable (and answers events with 503); the client keeps reconnecting.
    pub async fn connect(config: &IngestConfig) -> Result<Arc<Link>, ServerError> {
        let client =
            async_nats::ConnectOptions::new().name("kinship").retry_on_initial_connect().connect(config.server_urls()).await.map_err(
                |e| ServerError::Config(format!("ingest.nats_url {:?}: {e}; write it as \"nats://host:port\"", config.nats_url)),
            )?;
        let jetstream = async_nats::jetstream::new(client.clone());
        let link = Link { client, jetstream, config: config.clone(), stream_exists: tokio::sync::OnceCell::new() };
        let deadline = Instant::now() + CONNECT_WAIT;
        while !link.is_connected() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if !link.is_connected() {
            eprintln!("warning: {}; events get 503 until it answers (check ingest.nats_url)", link.unreachable("no connection yet"));
        }
        Ok(Arc::new(link))
    }

    fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// A reason for a 503 or a log line, naming the server.
    fn unreachable(&self, what: impl Display) -> String {
        format!("NATS at {} is unreachable or refused: {what}", self.config.nats_url)
    }

    /// The stream, created when absent with file storage (it survives a NATS restart) and
    /// work-queue retention: a message is deleted once a node has committed it, so the
    /// stream keeps no copy of a person's data that erasure in the log would miss.
    async fn stream(&self) -> Result<Stream, String> {
        let config = async_nats::jetstream::stream::Config {
            name: self.config.stream.clone(),
            subjects: vec![format!("{}.>", self.config.subject_prefix)],
            storage: StorageType::File,
            retention: RetentionPolicy::WorkQueue,
            ..Default::default()
        };
        self.jetstream.get_or_create_stream(config).await.map_err(|e| self.unreachable(format!("stream {}: {e}", self.config.stream)))
    }

    /// The durable pull consumer every node fetches from, created when absent.
    async fn consumer(&self) -> Result<PullConsumer, String> {
        if !self.is_connected() {
            return Err(self.unreachable("not connected"));
        }
        let ack_wait = Duration::from_secs(self.config.ack_wait_secs);
        let config = pull::Config {
            durable_name: Some(self.config.consumer.clone()),
            ack_policy: AckPolicy::Explicit,
            ack_wait,
            // Messages a dead node held count against this until their ack_wait ends; the
            // server's default (1,000) would stop every node for that long.
            max_ack_pending: MAX_ACK_PENDING,
            ..Default::default()
        };
        let consumer = self
            .stream()
            .await?
            .get_or_create_consumer(&self.config.consumer, config)
            .await
            .map_err(|e| self.unreachable(format!("consumer {}: {e}", self.config.consumer)))?;
        // An existing consumer keeps the settings it was created with.
        let held = consumer.cached_info().config.ack_wait;
        if held != ack_wait {
            eprintln!(
                "warning: the JetStream consumer {} keeps ack_wait = {} s, not ingest.ack_wait_secs = {}; delete it (`nats consumer rm {} {}`) to apply the setting",
                self.config.consumer,
                held.as_secs(),
                self.config.ack_wait_secs,
                self.config.stream,
                self.config.consumer
            );
        }
        Ok(consumer)
    }
}
