//! What flows write and read: flow definitions with versions, runs (each with its trace),
//! tasks, and the outbox of deliveries. A run, its task and its deliveries are written in one
//! transaction, keyed by the run: a task exists at most once per (flow version, trigger
//! record, profile), and a delivery is never written without the run that asked for it.

use crate::{RecordId, Result};
use serde::Serialize;

/// One version of a flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowRow {
    pub name: String,
    pub version: i64,
    /// As its author wrote it (TOML or JSON).
    pub definition: String,
    pub created_at: i64,
    pub created_by: String,
}

/// A run to record: at most one task and any number of deliveries go with it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    /// `flow@version/source/key/profile`: unique, so a run, and its task, happen once.
    pub key: String,
    pub flow: String,
    pub version: i64,
    pub profile_id: String,
    pub source: String,
    pub record_key: String,
    pub at: i64,
    /// The trace and facts, JSON.
    pub trace: String,
    pub task: Option<NewTask>,
    pub deliveries: Vec<NewDelivery>,
    /// The run stopped at a wait: kept under the run's key until resumed.
    pub wait: Option<NewWait>,
    /// This run resumes the wait kept under this key, which is deleted with it.
    pub resumes: Option<String>,
    /// What the run changed about the profile, as records of the log (source, record), written
    /// with the run so that a crash loses neither or both.
    pub records: Vec<(String, crate::NewRecord)>,
}

/// A run paused at a wait step, as kept.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWait {
    pub step: i64,
    pub until_event: Option<String>,
    pub resume_at: i64,
    pub fact: String,
    /// The trigger event, JSON.
    pub trigger: String,
    /// The facts gathered before the wait, JSON.
    pub facts: String,
}

/// A kept wait.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitRow {
    pub run_key: String,
    pub flow: String,
    pub version: i64,
    pub profile_id: String,
    pub step: i64,
    pub until_event: Option<String>,
    pub resume_at: i64,
    pub fact: String,
    pub trigger: String,
    pub facts: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub title: String,
    pub body: String,
    /// The gathered facts with their sources, JSON.
    pub context: String,
    pub priority: String,
    pub team: String,
    pub assignee: Option<String>,
    pub skill: Option<String>,
    pub due_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// Stable across retries and replays: receivers deduplicate on it.
    pub webhook_id: String,
    pub endpoint: String,
    pub profile_id: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub key: String,
    pub flow: String,
    pub version: i64,
    pub profile_id: String,
    pub source: String,
    pub record_key: String,
    pub at: i64,
    pub trace: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRow {
    pub id: i64,
    pub run_key: String,
    pub flow: String,
    pub version: i64,
    pub profile_id: String,
    pub source: String,
    pub record_key: String,
    pub title: String,
    pub body: String,
    pub context: serde_json::Value,
    pub priority: String,
    pub status: String,
    pub team: String,
    pub assignee: Option<String>,
    pub skill: Option<String>,
    pub due_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Task statuses, in the order work goes.
pub const TASK_STATUSES: &[&str] = &["open", "in_progress", "waiting", "done", "cancelled"];

/// Which tasks [`ActStore::tasks`] returns; every filter set must hold.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// `None`: every status; `Some("active")`: open, in progress or waiting.
    pub status: Option<String>,
    pub team: Option<String>,
    pub assignee: Option<String>,
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRow {
    pub id: i64,
    pub webhook_id: String,
    pub endpoint: String,
    pub profile_id: String,
    pub body: String,
    /// `pending`, `delivered`, `dead` or `withheld` (no consent when it was due).
    pub status: String,
    pub attempts: i64,
    pub next_at: i64,
    pub last_status: Option<i64>,
    pub last_response: Option<String>,
    pub created_at: i64,
    pub done_at: Option<i64>,
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    pub id: i64,
    /// `delivered`, `pending` (retry at `next_at`), `dead` or `withheld`.
    pub status: &'static str,
    pub next_at: i64,
    pub http_status: Option<i64>,
    /// The answer's first bytes, or the error.
    pub response: Option<String>,
    pub at: i64,
}

/// The `meta` key marking an endpoint that answered 410 Gone: nothing is sent to it until
/// [`ActStore::replay_deliveries`] removes the mark.
pub fn endpoint_gone_key(endpoint: &str) -> String {
    format!("endpoint.{endpoint}.gone")
}

/// A health alert as kept: open until its condition clears (closed), or held back over its
/// owner's daily limit (counted, never shown as open).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRow {
    pub id: i64,
    /// The health definition that raised it.
    pub definition: String,
    pub profile_id: String,
    /// `entered_red` or `dropped`.
    pub reason: String,
    pub owner: String,
    /// `open`, `closed` or `held`.
    pub status: String,
    pub opened_at: i64,
    pub from_score: f64,
    pub score: f64,
    pub snoozed_until: Option<i64>,
    pub snooze_reason: Option<String>,
    pub snoozed_by: Option<String>,
    pub closed_at: Option<i64>,
}

/// An alert to keep: `open`, or `held` (over the owner's limit for the day).
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    pub definition: String,
    pub profile_id: String,
    pub reason: String,
    pub owner: String,
    pub status: &'static str,
    pub opened_at: i64,
    pub from_score: f64,
    pub score: f64,
    /// A record to append to the log (source, record) if, and only if, the alert is new: the
    /// event a flow can start on.
    pub record: Option<(String, crate::NewRecord)>,
}

/// What one pass of the alert book changed, written in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertChanges {
    pub opened: Vec<NewAlert>,
    /// Ids of open alerts whose condition cleared.
    pub closed: Vec<i64>,
    /// Open alerts' current scores.
    pub scores: Vec<(i64, f64)>,
}

pub trait ActStore {
    /// Stores a new version of the flow `name` and returns its number (1 for a new flow).
    fn save_flow(&mut self, name: &str, definition: &str, by: &str, at: i64) -> Result<i64>;
    /// Deletes every version of a flow, so it runs no more; its runs and tasks stay. Returns
    /// how many versions there were.
    fn delete_flow(&mut self, name: &str) -> Result<u64>;
    /// The newest version of every flow.
    fn flows(&self) -> Result<Vec<FlowRow>>;
    /// Every version of one flow, oldest first.
    fn flow_versions(&self, name: &str) -> Result<Vec<FlowRow>>;
    /// Records runs with their tasks, deliveries and waits, skipping runs already recorded,
    /// deletes the waits the runs resume, and moves `flows.through` (never back) to `through`,
    /// all in one transaction. Returns the ids of the tasks created.
    fn record_runs(&mut self, runs: &[NewRun], through: RecordId) -> Result<Vec<i64>>;
    /// A flow's runs, newest first.
    fn flow_runs(&self, flow: &str, limit: usize) -> Result<Vec<RunRow>>;
    fn tasks(&self, filter: &TaskFilter, limit: usize) -> Result<Vec<TaskRow>>;
    fn task(&self, id: i64) -> Result<Option<TaskRow>>;
    /// Sets a task's status and, when given, its assignee. False when there is no such task.
    fn update_task(&mut self, id: i64, status: &str, assignee: Option<&str>, at: i64) -> Result<bool>;
    /// Open, in-progress and waiting tasks per assignee of a team, and the team's tasks ever.
    fn team_load(&self, team: &str) -> Result<(Vec<(String, u64)>, u64)>;
    /// Pending deliveries to `endpoint` due by `now`, oldest first, at most one per profile and
    /// only a profile's oldest pending one, so a profile's deliveries arrive in order.
    fn due_deliveries(&self, endpoint: &str, now: i64, limit: usize) -> Result<Vec<DeliveryRow>>;
    fn finish_attempts(&mut self, attempts: &[DeliveryAttempt]) -> Result<()>;
    /// Deliveries in the given status (all endpoints when `endpoint` is `None`), created at
    /// or after `since`, oldest first.
    fn deliveries(&self, endpoint: Option<&str>, status: &str, since: i64, limit: usize) -> Result<Vec<DeliveryRow>>;
    /// Puts dead deliveries of `endpoint` since `since` (or the one with `id`) back in the
    /// queue, due now, and lifts a 410's stop ([`endpoint_gone_key`]). Returns how many.
    fn replay_deliveries(&mut self, endpoint: &str, since: i64, id: Option<i64>, now: i64) -> Result<u64>;
    /// (endpoint, status, count) for every pair that has deliveries.
    fn delivery_counts(&self) -> Result<Vec<(String, String, u64)>>;
    /// Waits whose time has come by `now`, soonest first.
    fn due_waits(&self, now: i64, limit: usize) -> Result<Vec<WaitRow>>;
    /// The waits of these profiles that an event can end.
    fn waits_of(&self, profiles: &[String]) -> Result<Vec<WaitRow>>;
    /// Entries into and exits from segments at or after `at`, oldest first: what flows
    /// triggered by segments follow.
    fn transitions_since(&self, at: i64, limit: usize) -> Result<Vec<crate::SegmentTransition>>;
    /// A health definition's alerts in `status` (every status when `None`), newest first.
    fn health_alerts(&self, definition: &str, status: Option<&str>, limit: usize) -> Result<Vec<AlertRow>>;
    /// A health definition's alerts opened at or after `since`, any status: a day's count.
    fn health_alerts_since(&self, definition: &str, since: i64) -> Result<Vec<AlertRow>>;
    fn health_alert(&self, id: i64) -> Result<Option<AlertRow>>;
    /// Records a pass of the alert book at `at`: an open alert already kept for the same
    /// (definition, profile, reason), or one held back the same day, is not written twice,
    /// and its record is appended only with a new alert.
    fn record_alerts(&mut self, changes: &AlertChanges, at: i64) -> Result<()>;
    /// Snoozes an open alert until `until`, with why and by whom. False when no such open alert.
    fn snooze_alert(&mut self, id: i64, until: i64, reason: &str, by: &str) -> Result<bool>;
}
