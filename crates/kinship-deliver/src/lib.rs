//! Deliveries leave Kinship through sinks: one module per destination kind (`webhook.rs`),
//! each opened from its `[endpoints.NAME]` settings by [`open`], all behind [`Sink`]. Adding a
//! kind is a module and one arm of `open`'s match. What to send, when to retry and what to
//! record is the caller's (the server's delivery worker); a sink only makes one attempt.

mod retry;
mod webhook;

pub use retry::{next_attempt_in, Schedule};
pub use webhook::{sign, WebhookSink};

use kinship_core::act::EndpointConfig;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// One delivery as it goes out.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// Stable across attempts and replays; receivers deduplicate on it.
    pub id: &'a str,
    /// Seconds since the Unix epoch, of this attempt.
    pub timestamp: i64,
    pub body: &'a str,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx.
    Delivered { status: u16 },
    /// Any other status, or no answer: try again, not before `after` when the receiver said so
    /// (`Retry-After`).
    Retry { status: Option<u16>, after: Option<Duration>, response: String },
    /// 410 Gone: the receiver asks never to be sent to again.
    Gone { response: String },
}

pub type Attempt<'a> = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

/// A destination kind.
pub trait Sink: Send + Sync {
    /// Makes one attempt.
    fn send<'a>(&'a self, outgoing: Outgoing<'a>) -> Attempt<'a>;
}

/// Opens the sink `[endpoints.NAME]` describes. `env` reads secrets named in the settings.
pub fn open(name: &str, config: &EndpointConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Box<dyn Sink>, String> {
    match config {
        EndpointConfig::Webhook(settings) => Ok(Box::new(WebhookSink::new(settings, env).map_err(|e| format!("endpoints.{name}: {e}"))?)),
    }
}
