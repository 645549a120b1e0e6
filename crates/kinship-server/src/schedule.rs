//! Pulls each source that has a `schedule`, while the server runs: through the same path as
//! "run now" (`POST /api/v1/sources/{name}/run`), audited the same way with the actor
//! `scheduler`. The first pull is at start-up. A failed pull is recorded as the source's last
//! run, with its error (shown by `kinship stats`, the sources API and the Connections page),
//! and the next tick tries again; a switched-off source is skipped until it is switched on.

use crate::api;
use crate::http::ApiError;
use crate::state::AppState;
use axum::http::StatusCode;
use kinship_pipeline::governance::audit_event;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::MissedTickBehavior;

/// Who the audit log names for scheduled pulls.
const ACTOR: &str = "scheduler";

/// One task per scheduled source; dropping or shutting down the set stops them. A
/// supervisor follows the configuration, so a connection added, edited or deleted from the
/// web UI is scheduled, rescheduled or stopped within a second.
pub fn start(state: &Arc<AppState>) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let state = state.clone();
    tasks.spawn(async move {
        let mut running: HashMap<String, (std::time::Duration, AbortHandle)> = HashMap::new();
        let mut pulls = JoinSet::new();
        let mut seen: Option<Arc<kinship_core::Config>> = None;
        loop {
            let config = state.config();
            if seen.as_ref().is_none_or(|s| !Arc::ptr_eq(s, &config)) {
                let wanted: HashMap<&String, std::time::Duration> =
                    config.sources.iter().filter_map(|(name, s)| Some((name, s.schedule?.duration()))).collect();
                running.retain(|name, (every, task)| {
                    let keep = wanted.get(name) == Some(every);
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                for (name, every) in wanted {
                    if running.contains_key(name) {
                        continue;
                    }
                    let (state, source) = (state.clone(), name.clone());
                    // Sources scheduled at start-up are pulled at once; one added later
                    // waits a period ("Save and run now" has just pulled it).
                    let first = if seen.is_none() { tokio::time::Instant::now() } else { tokio::time::Instant::now() + every };
                    let task = pulls.spawn(async move {
                        let mut ticks = tokio::time::interval_at(first, every);
                        // A pull that outlasts its period delays the next one rather than bunching them.
                        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
                        loop {
                            ticks.tick().await;
                            pull(&state, &source).await;
                        }
                    });
                    running.insert(name.clone(), (every, task));
                }
                seen = Some(config);
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            while pulls.try_join_next().is_some() {}
        }
    });
    tasks
}

async fn pull(state: &Arc<AppState>, name: &str) {
    match api::pull_source(state, name).await {
        Ok(report) => {
            // Nobody to answer: the writer has said on stderr if the entry could not be written.
            let _written = state.audit.record(audit_event(ACTOR, "source.run", None, Some("schedule"), api::run_detail(&report))).await;
        }
        Err(ApiError(StatusCode::CONFLICT, _)) => {}
        Err(ApiError(_, reason)) => tracing::warn!(source = name, "scheduled pull failed: {reason}"),
    }
}
