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
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

/// Who the audit log names for scheduled pulls.
const ACTOR: &str = "scheduler";

/// One task per scheduled source; dropping or shutting down the set stops them.
pub fn start(state: &Arc<AppState>) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for (name, source) in &state.config.sources {
        let Some(every) = source.schedule else { continue };
        let (state, name) = (state.clone(), name.clone());
        tasks.spawn(async move {
            let mut ticks = tokio::time::interval(every.duration());
            // A pull that outlasts its period delays the next one rather than bunching them.
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                pull(&state, &name).await;
            }
        });
    }
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
