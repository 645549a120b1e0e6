//! The collection API's side: accepted events to the stream, answered once JetStream has
//! acknowledged every one of them.

use super::{wire, Link};
use crate::metrics::Metrics;
use async_nats::jetstream::message::PublishMessage;
use kinship_core::NewRecord;

impl Link {
    /// Publishes a request's records to `<subject_prefix>.<source>` and waits for JetStream's
    /// acknowledgement of each (stored in the stream, on disk). Returns how many JetStream
    /// recognised as retries by their message id. On failure nothing is promised: the client
    /// retries, and the ids keep a record published twice from being stored twice.
    pub async fn publish(&self, metrics: &Metrics, source: &str, records: &[NewRecord]) -> Result<u64, String> {
        if !self.is_connected() {
            return Err(self.unreachable("not connected"));
        }
        self.stream_exists.get_or_try_init(|| async { self.stream().await.map(drop) }).await?;
        let subject = format!("{}.{source}", self.config.subject_prefix);
        // All are sent before any acknowledgement is awaited: one round trip, not one each.
        let mut acks = Vec::with_capacity(records.len());
        for record in records {
            let message =
                PublishMessage::build().payload(wire::encode(source, record).into()).message_id(wire::message_id(source, &record.key));
            acks.push(self.jetstream.send_publish(subject.clone(), message).await.map_err(|e| self.unreachable(e))?);
        }
        let mut duplicates = 0;
        for ack in acks {
            duplicates += u64::from(ack.await.map_err(|e| self.unreachable(e))?.duplicate);
        }
        metrics.stream_published(records.len() as u64);
        Ok(duplicates)
    }
}
