//! [`ActStore`] on SQLite.

use super::{SqliteStore, changing};
use crate::act::*;
use crate::{ChangeKind, RecordId, Result};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::json;

const TASK_COLUMNS: &str = "id, run_key, flow, version, profile_id, source, record_key, title, body, context, priority, status, team, \
                            assignee, skill, due_at, created_at, updated_at";
const DELIVERY_COLUMNS: &str =
    "id, webhook_id, endpoint, profile_id, body, status, attempts, next_at, last_status, last_response, created_at, done_at";

fn task_row(r: &Row<'_>) -> rusqlite::Result<TaskRow> {
    let context: String = r.get(9)?;
    Ok(TaskRow {
        id: r.get(0)?,
        run_key: r.get(1)?,
        flow: r.get(2)?,
        version: r.get(3)?,
        profile_id: r.get(4)?,
        source: r.get(5)?,
        record_key: r.get(6)?,
        title: r.get(7)?,
        body: r.get(8)?,
        context: serde_json::from_str(&context).unwrap_or(serde_json::Value::Null),
        priority: r.get(10)?,
        status: r.get(11)?,
        team: r.get(12)?,
        assignee: r.get(13)?,
        skill: r.get(14)?,
        due_at: r.get(15)?,
        created_at: r.get(16)?,
        updated_at: r.get(17)?,
    })
}

fn delivery_row(r: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: r.get(0)?,
        webhook_id: r.get(1)?,
        endpoint: r.get(2)?,
        profile_id: r.get(3)?,
        body: r.get(4)?,
        status: r.get(5)?,
        attempts: r.get(6)?,
        next_at: r.get(7)?,
        last_status: r.get(8)?,
        last_response: r.get(9)?,
        created_at: r.get(10)?,
        done_at: r.get(11)?,
    })
}

/// A record Kinship writes about a profile (a flow's changes, an alert); one already there stays.
const INSERT_RECORD: &str = "INSERT INTO records (source, record_key, payload, identifiers, ts, ingested_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (source, record_key) DO NOTHING";

const ALERT_COLUMNS: &str = "id, definition, profile_id, reason, owner, status, opened_at, from_score, score, snoozed_until, \
                             snooze_reason, snoozed_by, closed_at";

fn alert_row(r: &Row<'_>) -> rusqlite::Result<AlertRow> {
    Ok(AlertRow {
        id: r.get(0)?,
        definition: r.get(1)?,
        profile_id: r.get(2)?,
        reason: r.get(3)?,
        owner: r.get(4)?,
        status: r.get(5)?,
        opened_at: r.get(6)?,
        from_score: r.get(7)?,
        score: r.get(8)?,
        snoozed_until: r.get(9)?,
        snooze_reason: r.get(10)?,
        snoozed_by: r.get(11)?,
        closed_at: r.get(12)?,
    })
}

fn flow_row(r: &Row<'_>) -> rusqlite::Result<FlowRow> {
    Ok(FlowRow { name: r.get(0)?, version: r.get(1)?, definition: r.get(2)?, created_at: r.get(3)?, created_by: r.get(4)? })
}

/// Runs `work` in a savepoint: atomic alone, and part of the caller's transaction if any.
fn atomic<T>(conn: &Connection, work: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    conn.execute_batch("SAVEPOINT act")?;
    match work(conn) {
        Ok(value) => {
            conn.execute_batch("RELEASE act")?;
            Ok(value)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO act; RELEASE act")?;
            Err(e)
        }
    }
}

impl ActStore for SqliteStore {
    fn save_flow(&mut self, name: &str, definition: &str, by: &str, at: i64) -> Result<i64> {
        let version: i64 = self.conn.query_row("SELECT COALESCE(MAX(version), 0) + 1 FROM flows WHERE name = ?1", [name], |r| r.get(0))?;
        changing(&self.conn, &self.origin, ChangeKind::Flows, &json!({ "name": name, "version": version }), |conn| {
            conn.execute(
                "INSERT INTO flows (name, version, definition, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, version, definition, at, by],
            )?;
            Ok(version)
        })
    }

    fn delete_flow(&mut self, name: &str) -> Result<u64> {
        changing(&self.conn, &self.origin, ChangeKind::Flows, &json!({ "name": name, "deleted": true }), |conn| {
            Ok(conn.execute("DELETE FROM flows WHERE name = ?1", [name])? as u64)
        })
    }

    fn flows(&self) -> Result<Vec<FlowRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, version, definition, created_at, created_by FROM flows f
             WHERE version = (SELECT MAX(version) FROM flows g WHERE g.name = f.name) ORDER BY name",
        )?;
        Ok(stmt.query_map([], flow_row)?.collect::<rusqlite::Result<_>>()?)
    }

    fn flow_versions(&self, name: &str) -> Result<Vec<FlowRow>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, version, definition, created_at, created_by FROM flows WHERE name = ?1 ORDER BY version")?;
        Ok(stmt.query_map([name], flow_row)?.collect::<rusqlite::Result<_>>()?)
    }

    fn record_runs(&mut self, runs: &[NewRun], through: RecordId) -> Result<Vec<i64>> {
        atomic(&self.conn, |conn| {
            let mut created = Vec::new();
            let mut run_stmt = conn.prepare_cached(
                "INSERT INTO flow_runs (run_key, flow, version, profile_id, source, record_key, at, trace)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (run_key) DO NOTHING",
            )?;
            let mut task_stmt = conn.prepare_cached(
                "INSERT INTO tasks (run_key, flow, version, profile_id, source, record_key, title, body, context, priority, status,
                                    team, assignee, skill, due_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'open', ?11, ?12, ?13, ?14, ?15, ?15)",
            )?;
            let mut wait_stmt = conn.prepare_cached(
                "INSERT INTO flow_waits (run_key, flow, version, profile_id, step, until_event, resume_at, fact, trigger, facts, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (run_key) DO NOTHING",
            )?;
            let mut resumed_stmt = conn.prepare_cached("DELETE FROM flow_waits WHERE run_key = ?1")?;
            let mut record_stmt = conn.prepare_cached(INSERT_RECORD)?;
            let mut delivery_stmt = conn.prepare_cached(
                "INSERT INTO deliveries (webhook_id, endpoint, profile_id, body, status, next_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5) ON CONFLICT (webhook_id) DO NOTHING",
            )?;
            for run in runs {
                // A resumed wait goes whether or not this run was recorded before.
                if let Some(wait) = &run.resumes {
                    resumed_stmt.execute([wait])?;
                }
                let inserted = run_stmt.execute(params![
                    run.key,
                    run.flow,
                    run.version,
                    run.profile_id,
                    run.source,
                    run.record_key,
                    run.at,
                    run.trace
                ])?;
                if inserted == 0 {
                    continue;
                }
                for (source, r) in &run.records {
                    record_stmt.execute(params![source, r.key, r.payload, r.identifiers, r.timestamp, run.at])?;
                }
                if let Some(w) = &run.wait {
                    wait_stmt.execute(params![
                        run.key,
                        run.flow,
                        run.version,
                        run.profile_id,
                        w.step,
                        w.until_event,
                        w.resume_at,
                        w.fact,
                        w.trigger,
                        w.facts,
                        run.at
                    ])?;
                }
                if let Some(t) = &run.task {
                    task_stmt.execute(params![
                        run.key,
                        run.flow,
                        run.version,
                        run.profile_id,
                        run.source,
                        run.record_key,
                        t.title,
                        t.body,
                        t.context,
                        t.priority,
                        t.team,
                        t.assignee,
                        t.skill,
                        t.due_at,
                        run.at
                    ])?;
                    created.push(conn.last_insert_rowid());
                }
                for d in &run.deliveries {
                    delivery_stmt.execute(params![d.webhook_id, d.endpoint, d.profile_id, d.body, run.at])?;
                }
            }
            conn.prepare_cached(
                "INSERT INTO meta (key, value) VALUES ('flows.through', ?1) ON CONFLICT (key)
                 DO UPDATE SET value = CAST(MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)",
            )?
            .execute([through.to_string()])?;
            Ok(created)
        })
    }

    fn flow_runs(&self, flow: &str, limit: usize) -> Result<Vec<RunRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT run_key, flow, version, profile_id, source, record_key, at, trace FROM flow_runs
             WHERE flow = ?1 ORDER BY at DESC, run_key LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![flow, limit as i64], |r| {
            let trace: String = r.get(7)?;
            Ok(RunRow {
                key: r.get(0)?,
                flow: r.get(1)?,
                version: r.get(2)?,
                profile_id: r.get(3)?,
                source: r.get(4)?,
                record_key: r.get(5)?,
                at: r.get(6)?,
                trace: serde_json::from_str(&trace).unwrap_or(serde_json::Value::Null),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn tasks(&self, filter: &TaskFilter, limit: usize) -> Result<Vec<TaskRow>> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks
             WHERE (?1 IS NULL OR status = ?1 OR (?1 = 'active' AND status IN ('open', 'in_progress', 'waiting')))
               AND (?2 IS NULL OR team = ?2) AND (?3 IS NULL OR assignee = ?3) AND (?4 IS NULL OR profile_id = ?4)
             ORDER BY id DESC LIMIT ?5"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![filter.status, filter.team, filter.assignee, filter.profile, limit as i64], task_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn task(&self, id: i64) -> Result<Option<TaskRow>> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1");
        Ok(self.conn.prepare_cached(&sql)?.query_row([id], task_row).optional()?)
    }

    fn update_task(&mut self, id: i64, status: &str, assignee: Option<&str>, at: i64) -> Result<bool> {
        let changed = self
            .conn
            .prepare_cached("UPDATE tasks SET status = ?2, assignee = COALESCE(?3, assignee), updated_at = ?4 WHERE id = ?1")?
            .execute(params![id, status, assignee, at])?;
        Ok(changed == 1)
    }

    fn team_load(&self, team: &str) -> Result<(Vec<(String, u64)>, u64)> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT assignee, COUNT(*) FROM tasks WHERE team = ?1 AND assignee IS NOT NULL
               AND status IN ('open', 'in_progress', 'waiting') GROUP BY assignee",
        )?;
        let open = stmt.query_map([team], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?.collect::<rusqlite::Result<_>>()?;
        let total: i64 = self.conn.prepare_cached("SELECT COUNT(*) FROM tasks WHERE team = ?1")?.query_row([team], |r| r.get(0))?;
        Ok((open, total as u64))
    }

    fn due_deliveries(&self, endpoint: &str, now: i64, limit: usize) -> Result<Vec<DeliveryRow>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d
             WHERE endpoint = ?1 AND status = 'pending' AND next_at <= ?2
               AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.endpoint = d.endpoint AND e.profile_id = d.profile_id
                               AND e.status = 'pending' AND e.id < d.id)
             ORDER BY id LIMIT ?3"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        Ok(stmt.query_map(params![endpoint, now, limit as i64], delivery_row)?.collect::<rusqlite::Result<_>>()?)
    }

    fn finish_attempts(&mut self, attempts: &[DeliveryAttempt]) -> Result<()> {
        atomic(&self.conn, |conn| {
            let mut stmt = conn.prepare_cached(
                "UPDATE deliveries SET status = ?2, attempts = attempts + 1, next_at = ?3, last_status = ?4, last_response = ?5,
                        done_at = CASE WHEN ?2 = 'pending' THEN NULL ELSE ?6 END
                 WHERE id = ?1",
            )?;
            for a in attempts {
                stmt.execute(params![a.id, a.status, a.next_at, a.http_status, a.response, a.at])?;
            }
            Ok(())
        })
    }

    fn deliveries(&self, endpoint: Option<&str>, status: &str, since: i64, limit: usize) -> Result<Vec<DeliveryRow>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE (?1 IS NULL OR endpoint = ?1) AND status = ?2 AND created_at >= ?3
             ORDER BY id LIMIT ?4"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        Ok(stmt.query_map(params![endpoint, status, since, limit as i64], delivery_row)?.collect::<rusqlite::Result<_>>()?)
    }

    fn replay_deliveries(&mut self, endpoint: &str, since: i64, id: Option<i64>, now: i64) -> Result<u64> {
        atomic(&self.conn, |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE deliveries SET status = 'pending', next_at = ?4, done_at = NULL
                     WHERE endpoint = ?1 AND status = 'dead' AND created_at >= ?2 AND (?3 IS NULL OR id = ?3)",
                )?
                .execute(params![endpoint, since, id, now])?;
            conn.execute("DELETE FROM meta WHERE key = ?1", [endpoint_gone_key(endpoint)])?;
            Ok(changed as u64)
        })
    }

    fn delivery_counts(&self) -> Result<Vec<(String, String, u64)>> {
        let mut stmt =
            self.conn.prepare_cached("SELECT endpoint, status, COUNT(*) FROM deliveries GROUP BY endpoint, status ORDER BY 1, 2")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn transitions_since(&self, at: i64, limit: usize) -> Result<Vec<crate::SegmentTransition>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT segment, profile_id, entered, at FROM segment_transitions WHERE at >= ?1 ORDER BY at, rowid LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![at, limit as i64], |r| {
            Ok(crate::SegmentTransition { segment: r.get(0)?, profile: r.get(1)?, entered: r.get(2)?, at: r.get(3)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn due_waits(&self, now: i64, limit: usize) -> Result<Vec<WaitRow>> {
        let sql = format!("SELECT {WAIT_COLUMNS} FROM flow_waits WHERE resume_at <= ?1 ORDER BY resume_at LIMIT ?2");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        Ok(stmt.query_map(params![now, limit as i64], wait_row)?.collect::<rusqlite::Result<_>>()?)
    }

    fn waits_of(&self, profiles: &[String]) -> Result<Vec<WaitRow>> {
        let sql = format!(
            "SELECT {WAIT_COLUMNS} FROM flow_waits WHERE until_event IS NOT NULL AND profile_id IN (SELECT value FROM json_each(?1))"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        Ok(stmt.query_map([serde_json::to_string(profiles)?], wait_row)?.collect::<rusqlite::Result<_>>()?)
    }
    fn health_alerts(&self, definition: &str, status: Option<&str>, limit: usize) -> Result<Vec<AlertRow>> {
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM health_alerts WHERE definition = ?1 AND (?2 IS NULL OR status = ?2)
             ORDER BY opened_at DESC, id DESC LIMIT ?3"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![definition, status, limit as i64], alert_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn health_alerts_since(&self, definition: &str, since: i64) -> Result<Vec<AlertRow>> {
        let sql = format!("SELECT {ALERT_COLUMNS} FROM health_alerts WHERE definition = ?1 AND opened_at >= ?2 ORDER BY id");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![definition, since], alert_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn health_alert(&self, id: i64) -> Result<Option<AlertRow>> {
        let sql = format!("SELECT {ALERT_COLUMNS} FROM health_alerts WHERE id = ?1");
        Ok(self.conn.prepare_cached(&sql)?.query_row([id], alert_row).optional()?)
    }

    fn record_alerts(&mut self, changes: &AlertChanges, at: i64) -> Result<()> {
        atomic(&self.conn, |conn| {
            let mut close =
                conn.prepare_cached("UPDATE health_alerts SET status = 'closed', closed_at = ?2 WHERE id = ?1 AND status = 'open'")?;
            for id in &changes.closed {
                close.execute(params![id, at])?;
            }
            let mut score = conn.prepare_cached("UPDATE health_alerts SET score = ?2 WHERE id = ?1")?;
            for (id, value) in &changes.scores {
                score.execute(params![id, value])?;
            }
            let mut open = conn.prepare_cached(
                "INSERT INTO health_alerts (definition, profile_id, reason, owner, status, opened_at, from_score, score)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
            )?;
            let mut record = conn.prepare_cached(INSERT_RECORD)?;
            for a in &changes.opened {
                let inserted =
                    open.execute(params![a.definition, a.profile_id, a.reason, a.owner, a.status, a.opened_at, a.from_score, a.score])?;
                if let (1, Some((source, r))) = (inserted, &a.record) {
                    record.execute(params![source, r.key, r.payload, r.identifiers, r.timestamp, at])?;
                }
            }
            Ok(())
        })
    }

    fn snooze_alert(&mut self, id: i64, until: i64, reason: &str, by: &str) -> Result<bool> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE health_alerts SET snoozed_until = ?2, snooze_reason = ?3, snoozed_by = ?4 WHERE id = ?1 AND status = 'open'",
            )?
            .execute(params![id, until, reason, by])?;
        Ok(changed == 1)
    }
}

const WAIT_COLUMNS: &str = "run_key, flow, version, profile_id, step, until_event, resume_at, fact, trigger, facts, created_at";

fn wait_row(r: &Row<'_>) -> rusqlite::Result<WaitRow> {
    Ok(WaitRow {
        run_key: r.get(0)?,
        flow: r.get(1)?,
        version: r.get(2)?,
        profile_id: r.get(3)?,
        step: r.get(4)?,
        until_event: r.get(5)?,
        resume_at: r.get(6)?,
        fact: r.get(7)?,
        trigger: r.get(8)?,
        facts: r.get(9)?,
        created_at: r.get(10)?,
    })
}
