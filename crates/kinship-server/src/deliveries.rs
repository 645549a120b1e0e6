//! The delivery worker: one task per endpoint, so a receiver that is down or slow never holds
//! up another. Each takes the deliveries that are due from the outbox the flows wrote (at
//! most one per profile at a time, the profile's oldest, so a profile's deliveries arrive in
//! order), checks consent when the endpoint has a purpose, makes one attempt each through
//! the endpoint's sink, and records the outcome: delivered, again later (backoff with jitter,
//! `Retry-After` honoured), or dead after the last attempt or a 410, with the last answer
//! kept for replay. Every attempt is audited. A delivery is marked only after its attempt,
//! so a crash resends rather than loses: receivers deduplicate on `webhook-id`.

use crate::state::AppState;
use kinship_core::act::EndpointConfig;
use kinship_deliver::{Answer, Outgoing, Schedule, Sink};
use kinship_pipeline::governance::audit_event;
use kinship_store::{Database, DeliveryAttempt, DeliveryRow, StoreError};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;

/// Who the audit log names for deliveries.
const ACTOR: &str = "deliveries";
/// How long an endpoint's worker waits when nothing is due.
const IDLE: Duration = Duration::from_millis(100);
/// Deliveries taken per round, per delivery allowed in flight: a round's reads, its one
/// transaction of outcomes and its audit entries are shared by this many attempts.
const ROUND_PER_SLOT: usize = 16;

/// One task per configured endpoint. An endpoint whose sink cannot be opened (a secret not
/// set) is reported and skipped: its deliveries stay queued until a restart that can.
pub fn start(state: &Arc<AppState>) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let config = state.config();
    for (name, endpoint) in &config.endpoints {
        let sink = match kinship_deliver::open(name, endpoint, &|var| std::env::var(var).ok()) {
            Ok(sink) => Arc::<dyn Sink>::from(sink),
            Err(e) => {
                eprintln!("warning: deliveries to {name} are held: {e}");
                continue;
            }
        };
        let EndpointConfig::Webhook(settings) = endpoint;
        let worker = Worker {
            state: state.clone(),
            name: name.clone(),
            sink,
            concurrency: settings.concurrency,
            max_attempts: settings.max_attempts,
            purpose: settings.purpose.clone(),
            store: Arc::new(Mutex::new(None)),
        };
        tasks.spawn(worker.run());
    }
    tasks
}

struct Worker {
    state: Arc<AppState>,
    name: String,
    sink: Arc<dyn Sink>,
    concurrency: usize,
    max_attempts: u32,
    purpose: Option<String>,
    /// This endpoint's own connection for recording attempts, opened on first use.
    store: Arc<Mutex<Option<Box<dyn Database>>>>,
}

impl Worker {
    async fn run(self) {
        loop {
            match self.round().await {
                Ok(0) => tokio::time::sleep(IDLE).await,
                Ok(_) => {}
                Err(e) => {
                    eprintln!("warning: deliveries to {}: {e}; retrying in 1 s", self.name);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// One round: the due deliveries, attempted at once, their outcomes recorded. Returns
    /// how many were attempted.
    async fn round(&self) -> Result<usize, StoreError> {
        let (name, limit, now) = (self.name.clone(), self.concurrency * ROUND_PER_SLOT, kinship_pipeline::now_ms());
        let due: Vec<DeliveryRow> = self
            .state
            .read(move |s| {
                // Stopped by a 410 until a replay (from any process) clears the mark.
                if s.meta(&kinship_store::endpoint_gone_key(&name))?.is_some() {
                    return Ok(Vec::new());
                }
                s.due_deliveries(&name, now, limit)
            })
            .await?;
        if due.is_empty() {
            return Ok(0);
        }
        // At most `concurrency` in flight; a round holds one delivery per profile, so none
        // overtakes another of its profile.
        let slots = Arc::new(tokio::sync::Semaphore::new(self.concurrency));
        let mut attempts = JoinSet::new();
        for delivery in due.clone() {
            let (state, sink, purpose, name) = (self.state.clone(), self.sink.clone(), self.purpose.clone(), self.name.clone());
            let max_attempts = self.max_attempts;
            let slot = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
            attempts.spawn(async move {
                let _slot = slot;
                attempt(&state, &*sink, &name, purpose, max_attempts, delivery).await
            });
        }
        let mut outcomes = Vec::with_capacity(due.len());
        while let Some(done) = attempts.join_next().await {
            outcomes.push(done.expect("an attempt does not panic")?);
        }
        let gone = outcomes.iter().any(|(a, _)| a.status == "dead" && a.http_status == Some(410));
        let records: Vec<DeliveryAttempt> = outcomes.iter().map(|(a, _)| a.clone()).collect();
        let (state, store, name) = (self.state.clone(), self.store.clone(), self.name.clone());
        tokio::task::spawn_blocking(move || {
            let turn = state.writer.turn();
            let _turn = turn.lock().expect("not poisoned");
            let mut slot = store.lock().expect("not poisoned");
            if slot.is_none() {
                *slot = Some(kinship_store::open(&state.database)?);
            }
            let store = slot.as_mut().expect("opened above");
            store.finish_attempts(&records)?;
            if gone {
                store.set_meta(&kinship_store::endpoint_gone_key(&name), &kinship_pipeline::now_ms().to_string())?;
            }
            Ok::<_, StoreError>(())
        })
        .await
        .expect("does not panic")?;
        if gone {
            eprintln!("warning: {} answered 410 Gone; nothing more is sent to it until a replay", self.name);
        }
        // One entry per attempt, written together (the audit writer commits them as a group).
        let entries = outcomes.iter().map(|(a, profile)| {
            self.state.metrics.delivery_attempt(&self.name, a.status);
            let detail = json!({ "endpoint": self.name, "delivery": a.id, "status": a.status, "http_status": a.http_status });
            self.state.audit.record(audit_event(ACTOR, "delivery.attempt", Some(profile), None, detail))
        });
        futures_util::future::join_all(entries).await;
        Ok(outcomes.len())
    }
}

/// One attempt at one delivery, and what to record of it, with the delivery's profile.
async fn attempt(
    state: &Arc<AppState>,
    sink: &dyn Sink,
    endpoint: &str,
    purpose: Option<String>,
    max_attempts: u32,
    delivery: DeliveryRow,
) -> Result<(DeliveryAttempt, String), StoreError> {
    let now = kinship_pipeline::now_ms();
    let record = |status: &'static str, next_at: i64, http_status: Option<i64>, response: Option<String>| DeliveryAttempt {
        id: delivery.id,
        status,
        next_at,
        http_status,
        response,
        at: now,
    };
    if let Some(purpose) = purpose {
        let (s, profile) = (state.clone(), delivery.profile_id.clone());
        let granted = state
            .read(move |store| {
                kinship_pipeline::audience::consent_granted(store, &s.config(), &profile, &kinship_policy::Purpose::new(purpose))
            })
            .await
            .map_err(|e| StoreError::Schema(format!("checking consent for a delivery to {endpoint}: {e}")))?;
        if !granted {
            return Ok((record("withheld", now, None, Some("no consent for the endpoint's purpose when due".into())), delivery.profile_id));
        }
    }
    let outgoing = Outgoing { id: &delivery.webhook_id, timestamp: now / 1000, body: &delivery.body };
    let made = u32::try_from(delivery.attempts).unwrap_or(u32::MAX).saturating_add(1);
    let outcome = match sink.send(outgoing).await {
        Answer::Delivered { status } => record("delivered", now, Some(i64::from(status)), None),
        Answer::Gone { response } => record("dead", now, Some(410), Some(response)),
        Answer::Retry { status, response, .. } if made >= max_attempts => record("dead", now, status.map(i64::from), Some(response)),
        Answer::Retry { status, after, response } => {
            let wait = kinship_deliver::next_attempt_in(Schedule::default(), made, after, jitter());
            record("pending", now + wait.as_millis() as i64, status.map(i64::from), Some(response))
        }
    };
    Ok((outcome, delivery.profile_id))
}

/// A number in [0, 1) for backoff jitter.
fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}
