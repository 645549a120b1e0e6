//! A node's consumer task: pulls events from the shared durable consumer, hands them to the
//! same writer as direct mode (group commit, durable before the call returns), and
//! acknowledges each message only after its commit.

use super::{wire, Link};
use crate::metrics::Metrics;
use crate::writer::{self, WriterHandle};
use async_nats::jetstream::{AckKind, Message};
use futures_util::{FutureExt, StreamExt};
use kinship_core::NewRecord;
use kinship_pipeline::governance::SuppressionList;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Most messages one pull request asks for; also the most committed in one group.
const PULL_MESSAGES: usize = 1_000;
/// How long a pull request waits for messages. Shutdown waits for the current request to
/// end, so this bounds how long stopping takes.
const PULL_WAIT: Duration = Duration::from_secs(1);
/// How long to wait before trying NATS again after a failure.
const RETRY: Duration = Duration::from_secs(1);
/// How long shutdown waits for the last acknowledgements to reach NATS.
const FLUSH_WAIT: Duration = Duration::from_secs(5);
/// When JetStream offers a message again after its commit failed.
const REDELIVER_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// The running consumer task.
pub struct Consumer {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Consumer {
    pub fn start(link: Arc<Link>, writer: WriterHandle, suppression: Arc<SuppressionList>, metrics: Metrics) -> Self {
        let (stop, stopping) = watch::channel(false);
        let task = tokio::spawn(Task { link, writer, suppression, metrics, stopping, last_error: None }.run());
        Consumer { stop, task }
    }

    /// Stops pulling, commits and acknowledges what was pulled, and returns when done.
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            eprintln!("error: the stream consumer stopped abnormally: {e}");
        }
    }
}

struct Task {
    link: Arc<Link>,
    writer: WriterHandle,
    suppression: Arc<SuppressionList>,
    metrics: Metrics,
    stopping: watch::Receiver<bool>,
    /// The last failure logged, so a NATS outage is logged once, not every second.
    last_error: Option<String>,
}

impl Task {
    async fn run(mut self) {
        while !self.stopped() {
            let consumer = match self.link.consumer().await {
                Ok(c) => c,
                Err(e) => {
                    self.failed(e).await;
                    continue;
                }
            };
            while !self.stopped() {
                let mut pulled = match consumer.batch().max_messages(PULL_MESSAGES).expires(PULL_WAIT).messages().await {
                    Ok(pulled) => pulled,
                    Err(e) => {
                        self.failed(self.link.unreachable(e)).await;
                        break;
                    }
                };
                if self.last_error.take().is_some() {
                    eprintln!("consuming stream {} from NATS at {} again", self.link.config.stream, self.link.config.nats_url);
                }
                // Messages keep arriving while earlier ones are committed: each group is
                // what has arrived by then, so a trickle is committed at once and a flood
                // in large groups.
                while let Some(first) = pulled.next().await {
                    let mut group = vec![first];
                    while group.len() < PULL_MESSAGES {
                        match pulled.next().now_or_never() {
                            Some(Some(next)) => group.push(next),
                            _ => break,
                        }
                    }
                    let mut messages = Vec::with_capacity(group.len());
                    for pulled in group {
                        match pulled {
                            Ok(message) => messages.push(message),
                            // A status such as a deleted consumer ends the pull request.
                            Err(e) => eprintln!("warning: pulling from stream {}: {e}", self.link.config.stream),
                        }
                    }
                    self.commit(messages).await;
                }
            }
        }
        // Acknowledgements are sent in the background; this waits until NATS has them (a
        // client that is not connected would wait for the connection, maybe for ever).
        let flushed = if self.link.is_connected() {
            tokio::time::timeout(FLUSH_WAIT, self.link.client.flush())
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        } else {
            Err("not connected".to_string())
        };
        if let Err(e) = flushed {
            eprintln!("warning: acknowledgements may not have reached NATS ({e}); their events will be delivered again and recognised");
        }
    }

    fn stopped(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Logs a failure (once while it lasts) and waits before the next try, or until shutdown.
    async fn failed(&mut self, reason: String) {
        if self.last_error.as_ref() != Some(&reason) {
            eprintln!("warning: the stream consumer is waiting: {reason}");
            self.last_error = Some(reason);
        }
        let mut stopping = self.stopping.clone();
        let _ = tokio::time::timeout(RETRY, stopping.wait_for(|stop| *stop)).await;
    }

    /// Commits the records of a group of messages, grouped by source, and acknowledges each
    /// message after its commit. A malformed message is terminated (never redelivered).
    async fn commit(&self, messages: Vec<Message>) {
        let mut by_source: BTreeMap<String, (Vec<NewRecord>, Vec<Message>)> = BTreeMap::new();
        for message in messages {
            if message.info().is_ok_and(|i| i.delivered > 1) {
                self.metrics.stream_redelivered(1);
            }
            match wire::decode(&message.payload) {
                Ok((source, record)) => {
                    let entry = by_source.entry(source).or_default();
                    entry.0.push(record);
                    entry.1.push(message);
                }
                Err(reason) => {
                    let at = message.info().map_or(0, |i| i.stream_sequence);
                    eprintln!(
                        "error: dropping malformed message {at} of stream {} ({}): {reason}",
                        self.link.config.stream, message.subject
                    );
                    self.metrics.events_rejected(1);
                    self.acknowledge(&message, AckKind::Term).await;
                }
            }
        }
        // Submitted together, so the writer commits them as one group.
        let commits = by_source.into_iter().map(|(source, (mut records, messages))| async move {
            let (_, generation) = writer::drop_suppressed(&self.suppression, &mut records);
            (self.writer.submit_waiting(source, records, generation).await, messages)
        });
        for (committed, messages) in futures_util::future::join_all(commits).await {
            match committed {
                Ok(_) => {
                    for message in &messages {
                        self.acknowledge(message, AckKind::Ack).await;
                    }
                    self.metrics.stream_consumed(messages.len() as u64);
                }
                Err(reason) => {
                    eprintln!(
                        "error: {} stream messages could not be committed ({reason}); JetStream will deliver them again",
                        messages.len()
                    );
                    for message in &messages {
                        self.acknowledge(message, AckKind::Nak(Some(REDELIVER_AFTER_FAILURE))).await;
                    }
                }
            }
        }
    }

    async fn acknowledge(&self, message: &Message, kind: AckKind) {
        // A lost acknowledgement only means a redelivery, which the log recognises.
        if let Err(e) = message.ack_with(kind).await {
            eprintln!("warning: acknowledging a stream message: {e}");
        }
    }
}
