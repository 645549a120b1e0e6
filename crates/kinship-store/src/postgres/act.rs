//! [`ActStore`] on PostgreSQL. Runs are unique by key, so two nodes that run the same
//! trigger make one task: the second insert of a run does nothing, and its task and
//! deliveries are not written.

use super::PostgresStore;
use crate::act::*;
use crate::{ChangeKind, RecordId, Result};
use postgres::Row;
use serde_json::json;

macro_rules! task_columns {
    () => {
        "id, run_key, flow, version, profile_id, source, record_key, title, body, context, priority, status, team, \
         assignee, skill, due_at, created_at, updated_at"
    };
}

macro_rules! alert_columns {
    () => {
        "id, definition, profile_id, reason, owner, status, opened_at, from_score, score, snoozed_until, snooze_reason, snoozed_by, closed_at"
    };
}

macro_rules! wait_columns {
    () => {
        "run_key, flow, version, profile_id, step, until_event, resume_at, fact, trigger, facts, created_at"
    };
}

macro_rules! delivery_columns {
    () => {
        "id, webhook_id, endpoint, profile_id, body, status, attempts, next_at, last_status, last_response, created_at, done_at"
    };
}

fn task_row(r: &Row) -> TaskRow {
    let context: String = r.get(9);
    TaskRow {
        id: r.get(0),
        run_key: r.get(1),
        flow: r.get(2),
        version: r.get(3),
        profile_id: r.get(4),
        source: r.get(5),
        record_key: r.get(6),
        title: r.get(7),
        body: r.get(8),
        context: serde_json::from_str(&context).unwrap_or(serde_json::Value::Null),
        priority: r.get(10),
        status: r.get(11),
        team: r.get(12),
        assignee: r.get(13),
        skill: r.get(14),
        due_at: r.get(15),
        created_at: r.get(16),
        updated_at: r.get(17),
    }
}

fn delivery_row(r: &Row) -> DeliveryRow {
    DeliveryRow {
        id: r.get(0),
        webhook_id: r.get(1),
        endpoint: r.get(2),
        profile_id: r.get(3),
        body: r.get(4),
        status: r.get(5),
        attempts: r.get(6),
        next_at: r.get(7),
        last_status: r.get(8),
        last_response: r.get(9),
        created_at: r.get(10),
        done_at: r.get(11),
    }
}

fn flow_row(r: &Row) -> FlowRow {
    FlowRow { name: r.get(0), version: r.get(1), definition: r.get(2), created_at: r.get(3), created_by: r.get(4) }
}

impl ActStore for PostgresStore {
    fn save_flow(&mut self, name: &str, definition: &str, by: &str, at: i64) -> Result<i64> {
        self.atomic(|s| {
            // Two nodes saving the same flow at once: the primary key refuses the second, which
            // the caller sees as an error rather than a lost version.
            let version: i64 = s.query("SELECT COALESCE(MAX(version), 0) + 1 FROM flows WHERE name = $1", &[&name])?[0].get(0);
            s.changing(ChangeKind::Flows, &json!({ "name": name, "version": version }), |s| {
                s.execute(
                    "INSERT INTO flows (name, version, definition, created_at, created_by) VALUES ($1, $2, $3, $4, $5)",
                    &[&name, &version, &definition, &at, &by],
                )?;
                Ok(version)
            })
        })
    }

    fn delete_flow(&mut self, name: &str) -> Result<u64> {
        self.changing(ChangeKind::Flows, &json!({ "name": name, "deleted": true }), |s| {
            s.execute("DELETE FROM flows WHERE name = $1", &[&name])
        })
    }

    fn flows(&self) -> Result<Vec<FlowRow>> {
        let rows = self.query(
            "SELECT DISTINCT ON (name) name, version, definition, created_at, created_by FROM flows ORDER BY name, version DESC",
            &[],
        )?;
        Ok(rows.iter().map(flow_row).collect())
    }

    fn flow_versions(&self, name: &str) -> Result<Vec<FlowRow>> {
        let rows =
            self.query("SELECT name, version, definition, created_at, created_by FROM flows WHERE name = $1 ORDER BY version", &[&name])?;
        Ok(rows.iter().map(flow_row).collect())
    }

    fn record_runs(&mut self, runs: &[NewRun], through: RecordId) -> Result<Vec<i64>> {
        self.atomic(|s| {
            let mut created = Vec::new();
            for run in runs {
                // A resumed wait goes whether or not this run was recorded before.
                if let Some(wait) = &run.resumes {
                    s.execute("DELETE FROM flow_waits WHERE run_key = $1", &[wait])?;
                }
                let inserted = s.execute(
                    "INSERT INTO flow_runs (run_key, flow, version, profile_id, source, record_key, at, trace)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (run_key) DO NOTHING",
                    &[&run.key, &run.flow, &run.version, &run.profile_id, &run.source, &run.record_key, &run.at, &run.trace],
                )?;
                if inserted == 0 {
                    continue;
                }
                append_records(s, &run.records, run.at)?;
                if let Some(w) = &run.wait {
                    s.execute(
                        "INSERT INTO flow_waits (run_key, flow, version, profile_id, step, until_event, resume_at, fact, trigger, facts, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (run_key) DO NOTHING",
                        &[&run.key, &run.flow, &run.version, &run.profile_id, &w.step, &w.until_event, &w.resume_at, &w.fact, &w.trigger, &w.facts, &run.at],
                    )?;
                }
                if let Some(t) = &run.task {
                    let id: i64 = s.query(
                        "INSERT INTO tasks (run_key, flow, version, profile_id, source, record_key, title, body, context, priority,
                                            status, team, assignee, skill, due_at, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'open', $11, $12, $13, $14, $15, $15) RETURNING id",
                        &[
                            &run.key,
                            &run.flow,
                            &run.version,
                            &run.profile_id,
                            &run.source,
                            &run.record_key,
                            &t.title,
                            &t.body,
                            &t.context,
                            &t.priority,
                            &t.team,
                            &t.assignee,
                            &t.skill,
                            &t.due_at,
                            &run.at,
                        ],
                    )?[0]
                        .get(0);
                    created.push(id);
                }
                for d in &run.deliveries {
                    s.execute(
                        "INSERT INTO deliveries (webhook_id, endpoint, profile_id, body, status, next_at, created_at)
                         VALUES ($1, $2, $3, $4, 'pending', $5, $5) ON CONFLICT (webhook_id) DO NOTHING",
                        &[&d.webhook_id, &d.endpoint, &d.profile_id, &d.body, &run.at],
                    )?;
                }
            }
            s.execute(
                "INSERT INTO meta (key, value) VALUES ('flows.through', $1) ON CONFLICT (key)
                 DO UPDATE SET value = GREATEST(meta.value::bigint, excluded.value::bigint)::text",
                &[&through.to_string()],
            )?;
            Ok(created)
        })
    }

    fn flow_runs(&self, flow: &str, limit: usize) -> Result<Vec<RunRow>> {
        let rows = self.query(
            "SELECT run_key, flow, version, profile_id, source, record_key, at, trace FROM flow_runs
             WHERE flow = $1 ORDER BY at DESC, run_key LIMIT $2",
            &[&flow, &(limit as i64)],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                let trace: String = r.get(7);
                RunRow {
                    key: r.get(0),
                    flow: r.get(1),
                    version: r.get(2),
                    profile_id: r.get(3),
                    source: r.get(4),
                    record_key: r.get(5),
                    at: r.get(6),
                    trace: serde_json::from_str(&trace).unwrap_or(serde_json::Value::Null),
                }
            })
            .collect())
    }

    fn tasks(&self, filter: &TaskFilter, limit: usize) -> Result<Vec<TaskRow>> {
        let rows = self.query(
            concat!(
                "SELECT ",
                task_columns!(),
                " FROM tasks
                 WHERE ($1::text IS NULL OR status = $1 OR ($1 = 'active' AND status IN ('open', 'in_progress', 'waiting')))
                   AND ($2::text IS NULL OR team = $2) AND ($3::text IS NULL OR assignee = $3)
                   AND ($4::text IS NULL OR profile_id = $4)
                 ORDER BY id DESC LIMIT $5"
            ),
            &[&filter.status, &filter.team, &filter.assignee, &filter.profile, &(limit as i64)],
        )?;
        Ok(rows.iter().map(task_row).collect())
    }

    fn task(&self, id: i64) -> Result<Option<TaskRow>> {
        Ok(self.query_opt(concat!("SELECT ", task_columns!(), " FROM tasks WHERE id = $1"), &[&id])?.as_ref().map(task_row))
    }

    fn update_task(&mut self, id: i64, status: &str, assignee: Option<&str>, at: i64) -> Result<bool> {
        let changed = self.execute(
            "UPDATE tasks SET status = $2, assignee = COALESCE($3, assignee), updated_at = $4 WHERE id = $1",
            &[&id, &status, &assignee, &at],
        )?;
        Ok(changed == 1)
    }

    fn team_load(&self, team: &str) -> Result<(Vec<(String, u64)>, u64)> {
        let rows = self.query(
            "SELECT assignee, COUNT(*) FROM tasks WHERE team = $1 AND assignee IS NOT NULL
               AND status IN ('open', 'in_progress', 'waiting') GROUP BY assignee",
            &[&team],
        )?;
        let open = rows.iter().map(|r| (r.get(0), r.get::<_, i64>(1) as u64)).collect();
        let total: i64 = self.query("SELECT COUNT(*) FROM tasks WHERE team = $1", &[&team])?[0].get(0);
        Ok((open, total as u64))
    }

    fn due_deliveries(&self, endpoint: &str, now: i64, limit: usize) -> Result<Vec<DeliveryRow>> {
        let rows = self.query(
            concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM deliveries d
                 WHERE endpoint = $1 AND status = 'pending' AND next_at <= $2
                   AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.endpoint = d.endpoint AND e.profile_id = d.profile_id
                                   AND e.status = 'pending' AND e.id < d.id)
                 ORDER BY id LIMIT $3"
            ),
            &[&endpoint, &now, &(limit as i64)],
        )?;
        Ok(rows.iter().map(delivery_row).collect())
    }

    fn finish_attempts(&mut self, attempts: &[DeliveryAttempt]) -> Result<()> {
        // One statement for the round: a statement per delivery cost a round trip each.
        let ids: Vec<i64> = attempts.iter().map(|a| a.id).collect();
        let statuses: Vec<&str> = attempts.iter().map(|a| a.status).collect();
        let next: Vec<i64> = attempts.iter().map(|a| a.next_at).collect();
        let http: Vec<Option<i64>> = attempts.iter().map(|a| a.http_status).collect();
        let responses: Vec<Option<&str>> = attempts.iter().map(|a| a.response.as_deref()).collect();
        let at: Vec<i64> = attempts.iter().map(|a| a.at).collect();
        self.execute(
            "UPDATE deliveries d SET status = u.status, attempts = d.attempts + 1, next_at = u.next_at, last_status = u.http_status,
                    last_response = u.response, done_at = CASE WHEN u.status = 'pending' THEN NULL ELSE u.at END
             FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::bigint[])
                  AS u(id, status, next_at, http_status, response, at)
             WHERE d.id = u.id",
            &[&ids, &statuses, &next, &http, &responses, &at],
        )?;
        Ok(())
    }

    fn deliveries(&self, endpoint: Option<&str>, status: &str, since: i64, limit: usize) -> Result<Vec<DeliveryRow>> {
        let rows = self.query(
            concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM deliveries WHERE ($1::text IS NULL OR endpoint = $1) AND status = $2 AND created_at >= $3 ORDER BY id LIMIT $4"
            ),
            &[&endpoint, &status, &since, &(limit as i64)],
        )?;
        Ok(rows.iter().map(delivery_row).collect())
    }

    fn replay_deliveries(&mut self, endpoint: &str, since: i64, id: Option<i64>, now: i64) -> Result<u64> {
        self.atomic(|s| {
            let changed = s.execute(
                "UPDATE deliveries SET status = 'pending', next_at = $4, done_at = NULL
                 WHERE endpoint = $1 AND status = 'dead' AND created_at >= $2 AND ($3::bigint IS NULL OR id = $3)",
                &[&endpoint, &since, &id, &now],
            )?;
            s.execute("DELETE FROM meta WHERE key = $1", &[&endpoint_gone_key(endpoint)])?;
            Ok(changed)
        })
    }

    fn delivery_counts(&self) -> Result<Vec<(String, String, u64)>> {
        let rows = self.query("SELECT endpoint, status, COUNT(*) FROM deliveries GROUP BY endpoint, status ORDER BY 1, 2", &[])?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) as u64)).collect())
    }

    fn transitions_since(&self, at: i64, limit: usize) -> Result<Vec<crate::SegmentTransition>> {
        let rows = self.query(
            "SELECT segment, profile_id, entered, at FROM segment_transitions WHERE at >= $1 ORDER BY at, id LIMIT $2",
            &[&at, &(limit as i64)],
        )?;
        Ok(rows
            .iter()
            .map(|r| crate::SegmentTransition { segment: r.get(0), profile: r.get(1), entered: r.get(2), at: r.get(3) })
            .collect())
    }

    fn due_waits(&self, now: i64, limit: usize) -> Result<Vec<WaitRow>> {
        let rows = self.query(
            concat!("SELECT ", wait_columns!(), " FROM flow_waits WHERE resume_at <= $1 ORDER BY resume_at LIMIT $2"),
            &[&now, &(limit as i64)],
        )?;
        Ok(rows.iter().map(wait_row).collect())
    }

    fn waits_of(&self, profiles: &[String]) -> Result<Vec<WaitRow>> {
        let rows = self.query(
            concat!("SELECT ", wait_columns!(), " FROM flow_waits WHERE until_event IS NOT NULL AND profile_id = ANY($1)"),
            &[&profiles],
        )?;
        Ok(rows.iter().map(wait_row).collect())
    }
    fn health_alerts(&self, definition: &str, status: Option<&str>, limit: usize) -> Result<Vec<AlertRow>> {
        let rows = self.query(
            concat!(
                "SELECT ",
                alert_columns!(),
                " FROM health_alerts WHERE definition = $1 AND ($2::TEXT IS NULL OR status = $2) ORDER BY opened_at DESC, id DESC LIMIT $3"
            ),
            &[&definition, &status, &(limit as i64)],
        )?;
        Ok(rows.iter().map(alert_row).collect())
    }

    fn health_alerts_since(&self, definition: &str, since: i64) -> Result<Vec<AlertRow>> {
        let rows = self.query(
            concat!("SELECT ", alert_columns!(), " FROM health_alerts WHERE definition = $1 AND opened_at >= $2 ORDER BY id"),
            &[&definition, &since],
        )?;
        Ok(rows.iter().map(alert_row).collect())
    }

    fn health_alert(&self, id: i64) -> Result<Option<AlertRow>> {
        let rows = self.query(concat!("SELECT ", alert_columns!(), " FROM health_alerts WHERE id = $1"), &[&id])?;
        Ok(rows.first().map(alert_row))
    }

    fn record_alerts(&mut self, changes: &AlertChanges, at: i64) -> Result<()> {
        self.atomic(|s| {
            s.execute(
                "UPDATE health_alerts SET status = 'closed', closed_at = $2 WHERE id = ANY($1) AND status = 'open'",
                &[&changes.closed, &at],
            )?;
            let (ids, scores): (Vec<i64>, Vec<f64>) = changes.scores.iter().copied().unzip();
            s.execute(
                "UPDATE health_alerts a SET score = u.score FROM UNNEST($1::BIGINT[], $2::DOUBLE PRECISION[]) AS u(id, score) WHERE a.id = u.id",
                &[&ids, &scores],
            )?;
            for a in &changes.opened {
                let inserted = s.execute(
                    "INSERT INTO health_alerts (definition, profile_id, reason, owner, status, opened_at, from_score, score)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                    &[&a.definition, &a.profile_id, &a.reason, &a.owner, &a.status, &a.opened_at, &a.from_score, &a.score],
                )?;
                if inserted == 1 {
                    append_records(s, a.record.as_slice(), at)?;
                }
            }
            Ok(())
        })
    }

    fn snooze_alert(&mut self, id: i64, until: i64, reason: &str, by: &str) -> Result<bool> {
        let changed = self.execute(
            "UPDATE health_alerts SET snoozed_until = $2, snooze_reason = $3, snoozed_by = $4 WHERE id = $1 AND status = 'open'",
            &[&id, &until, &reason, &by],
        )?;
        Ok(changed == 1)
    }
}

/// Appends records Kinship writes about a profile (a flow's changes, an alert) to the log, in
/// the caller's transaction; a record already there is left as it is.
fn append_records(s: &PostgresStore, records: &[(String, crate::NewRecord)], at: i64) -> Result<()> {
    if !records.is_empty() {
        // Inserting into the log: shared with other inserters, as in `insert_records`.
        s.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&super::INSERT_FENCE])?;
    }
    for (source, r) in records {
        s.execute(
            "INSERT INTO records (source, record_key, payload, identifiers, ts, ingested_at, part)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (source, record_key) DO NOTHING",
            &[source, &r.key, &r.payload, &r.identifiers, &r.timestamp, &at, &crate::partition_of(&r.identifiers, &r.key)],
        )?;
    }
    Ok(())
}

fn alert_row(r: &Row) -> AlertRow {
    AlertRow {
        id: r.get(0),
        definition: r.get(1),
        profile_id: r.get(2),
        reason: r.get(3),
        owner: r.get(4),
        status: r.get(5),
        opened_at: r.get(6),
        from_score: r.get(7),
        score: r.get(8),
        snoozed_until: r.get(9),
        snooze_reason: r.get(10),
        snoozed_by: r.get(11),
        closed_at: r.get(12),
    }
}

fn wait_row(r: &Row) -> WaitRow {
    WaitRow {
        run_key: r.get(0),
        flow: r.get(1),
        version: r.get(2),
        profile_id: r.get(3),
        step: r.get(4),
        until_event: r.get(5),
        resume_at: r.get(6),
        fact: r.get(7),
        trigger: r.get(8),
        facts: r.get(9),
        created_at: r.get(10),
    }
}
