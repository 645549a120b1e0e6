//! `[ingest]` in kinship.toml: how the collection API hands accepted events to the log.
//! `direct` commits them from the node that received them; `nats` publishes them to a
//! NATS JetStream stream that every `kinship serve` node consumes as one durable consumer.

use crate::config::ConfigError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IngestMode {
    /// The receiving node commits the events before answering.
    #[default]
    Direct,
    /// The receiving node publishes them to JetStream; any node commits them from there.
    Nats,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub mode: IngestMode,
    /// The NATS server (`nats://host:port`), or several of a cluster separated by commas.
    pub nats_url: String,
    /// The JetStream stream events go through; created (file storage) when absent.
    pub stream: String,
    /// Events are published to `<subject_prefix>.<source>`; the stream holds `<subject_prefix>.>`.
    pub subject_prefix: String,
    /// The durable pull consumer all nodes share, so each event goes to one node.
    pub consumer: String,
    /// How long a node may hold an event without acknowledging it before JetStream gives it
    /// to another node (a node that died holding it, for instance).
    pub ack_wait_secs: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            mode: IngestMode::Direct,
            nats_url: "nats://127.0.0.1:4222".into(),
            stream: "KINSHIP_EVENTS".into(),
            subject_prefix: "kinship.events".into(),
            consumer: "kinship".into(),
            ack_wait_secs: 30,
        }
    }
}

impl IngestConfig {
    /// The servers of `nats_url`, one per comma-separated URL.
    pub fn server_urls(&self) -> Vec<&str> {
        self.nats_url.split(',').map(str::trim).collect()
    }

    /// Checks what serde cannot; each error names the key and how to fix it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| Err(ConfigError::Invalid { path: format!("ingest.{key}"), message: message.into() });
        for url in self.server_urls() {
            let Some(address) = url.strip_prefix("nats://").or_else(|| url.strip_prefix("tls://")) else {
                return invalid(
                    "nats_url",
                    "must be a NATS URL such as \"nats://127.0.0.1:4222\" (nats:// or tls://), or several separated by commas",
                );
            };
            if address.is_empty() || address.contains(char::is_whitespace) {
                return invalid("nats_url", "has no server address; write it as \"nats://host:port\"");
            }
        }
        if !is_name(&self.stream) {
            return invalid("stream", "must be a JetStream name: letters, digits, '_' and '-' only, such as \"KINSHIP_EVENTS\"");
        }
        if !is_name(&self.consumer) {
            return invalid("consumer", "must be a JetStream name: letters, digits, '_' and '-' only, such as \"kinship\"");
        }
        if !self.subject_prefix.split('.').all(is_name) {
            return invalid(
                "subject_prefix",
                "must be dot-separated words of letters, digits, '_' and '-' (no wildcards), such as \"kinship.events\"",
            );
        }
        if self.ack_wait_secs == 0 {
            return invalid("ack_wait_secs", "must be at least 1: the seconds a node may hold an event before another gets it");
        }
        Ok(())
    }
}

/// A JetStream stream or consumer name, or one token of a subject.
fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(change: impl FnOnce(&mut IngestConfig)) -> String {
        let mut c = IngestConfig { mode: IngestMode::Nats, ..IngestConfig::default() };
        change(&mut c);
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid_and_direct() {
        let c = IngestConfig::default();
        assert_eq!(c.mode, IngestMode::Direct);
        c.validate().unwrap();
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let e = error(|c| c.nats_url = "localhost:4222".into());
        assert!(e.starts_with("ingest.nats_url:") && e.contains("nats://"), "{e}");
        let e = error(|c| c.nats_url = "nats://".into());
        assert!(e.starts_with("ingest.nats_url:"), "{e}");
        let e = error(|c| c.nats_url = "nats://a:4222,b:4222".into());
        assert!(e.starts_with("ingest.nats_url:"), "each URL of a list is checked: {e}");
        let cluster = IngestConfig { nats_url: "nats://a:4222, nats://b:4222".into(), ..IngestConfig::default() };
        assert!(cluster.validate().is_ok());
        assert_eq!(cluster.server_urls(), ["nats://a:4222", "nats://b:4222"]);
        let e = error(|c| c.stream = "kinship.events".into());
        assert!(e.starts_with("ingest.stream:") && e.contains("KINSHIP_EVENTS"), "{e}");
        let e = error(|c| c.consumer = "a b".into());
        assert!(e.starts_with("ingest.consumer:"), "{e}");
        let e = error(|c| c.subject_prefix = "kinship.>".into());
        assert!(e.starts_with("ingest.subject_prefix:") && e.contains("wildcards"), "{e}");
        let e = error(|c| c.subject_prefix = "kinship..events".into());
        assert!(e.starts_with("ingest.subject_prefix:"), "{e}");
        let e = error(|c| c.ack_wait_secs = 0);
        assert!(e.starts_with("ingest.ack_wait_secs:"), "{e}");
    }
}
