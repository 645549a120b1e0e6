//! The flow runner: a thread that follows the resolver as the resolver follows the log. When
//! records are resolved it runs every flow on the events among them and records the runs,
//! their tasks and their deliveries in one transaction (the outbox). It reads and decides
//! beside the writer and the resolver, on the other core, and takes the writers' turn only to
//! record. Its position is stored with what it records, so after a crash it starts where the
//! last recorded pass ended, and a run recorded twice is one run (its key is unique).
//! Records the runs write (traits and lists they set) are resolved when the resolver next
//! looks at the log (it looks every 200 ms): the runner does not wake it, since holding the
//! resolver's wake channel would keep it from stopping when the server does.

use crate::metrics::Metrics;
use crate::state::SharedConfig;
use kinship_core::RecordId;
use kinship_pipeline::flows::{References, StoredFlow, TeamLoad};
use kinship_store::Database;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the runner looks again when not woken (flows saved elsewhere, a retry).
const IDLE: Duration = Duration::from_millis(200);
/// How far back each pass reads segment transitions before the newest one it has run: one
/// committed a little after a later one (another process's) is still seen; the runs' keys
/// make reading one again harmless.
const TRANSITION_SLACK_MS: i64 = 2_000;
/// Where the runner stands in segment transitions, in `meta`.
const TRANSITIONS_AT: &str = "flows.transitions_at";

/// What the resolver tells the runner. Dropping it lets the runner finish and stop.
pub struct Signal {
    resolved: Arc<AtomicI64>,
    reload: Arc<AtomicBool>,
    wake: SyncSender<()>,
}

impl Signal {
    /// The log is resolved through `through`.
    pub fn resolved(&self, through: RecordId) {
        self.resolved.fetch_max(through, Ordering::SeqCst);
        let _ = self.wake.try_send(());
    }

    /// A flow was saved (by this process or another): load them again.
    pub fn flows_changed(&self) {
        self.reload.store(true, Ordering::SeqCst);
        let _ = self.wake.try_send(());
    }
}

struct Runner {
    store: Box<dyn Database>,
    config: SharedConfig,
    metrics: Metrics,
    data_dir: PathBuf,
    turn: Option<Arc<Mutex<()>>>,
    /// The newest version of every flow.
    flows: Vec<StoredFlow>,
    references: References,
    team_load: TeamLoad,
    /// The record flows have run through; `None` until flows exist (they act on what comes
    /// after they are saved; a dry run shows what they would have done before).
    through: Option<RecordId>,
    /// The newest segment transition run, for flows triggered by segments.
    transitions_at: Option<i64>,
}

pub fn start(
    database: &str,
    config: SharedConfig,
    metrics: Metrics,
    data_dir: PathBuf,
    turn: Option<Arc<Mutex<()>>>,
) -> Result<(Signal, std::thread::JoinHandle<()>), crate::ServerError> {
    let store = kinship_store::open(database)?;
    let (wake, woken) = mpsc::sync_channel::<()>(1);
    let signal = Signal { resolved: Arc::new(AtomicI64::new(0)), reload: Arc::new(AtomicBool::new(true)), wake };
    let (resolved, reload) = (signal.resolved.clone(), signal.reload.clone());
    let mut runner = Runner {
        store,
        config,
        metrics,
        data_dir,
        turn,
        flows: Vec::new(),
        references: References::default(),
        team_load: TeamLoad::default(),
        through: None,
        transitions_at: None,
    };
    let thread = std::thread::Builder::new().name("kinship-flows".into()).spawn(move || loop {
        let stopping = match woken.recv_timeout(IDLE) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        if reload.swap(false, Ordering::SeqCst) {
            runner.load_flows();
        }
        let pass = runner
            .act(resolved.load(Ordering::SeqCst))
            .and_then(|()| runner.act_on_transitions())
            .and_then(|()| runner.act_on_due_waits())
            .and_then(|()| runner.act_on_schedules());
        if let Err(e) = pass {
            eprintln!("warning: running flows failed, retrying: {e}");
            std::thread::sleep(Duration::from_secs(1));
        }
        if stopping {
            return;
        }
    })?;
    Ok((signal, thread))
}

impl Runner {
    /// Loads the flows; the first time there are some, they start where the last recorded
    /// pass ended, or else at what is resolved now.
    fn load_flows(&mut self) {
        let config = self.config.current();
        match kinship_pipeline::flows::load_flows(&*self.store, &config) {
            Ok((flows, warnings)) => {
                for warning in warnings {
                    eprintln!("warning: {warning}");
                }
                self.flows = flows;
            }
            Err(e) => eprintln!("warning: loading flows failed, retrying at the next change: {e}"),
        }
        if self.flows.is_empty() || self.through.is_some() {
            return;
        }
        let position = || -> Result<RecordId, kinship_pipeline::PipelineError> {
            match kinship_pipeline::flows::flows_through(&*self.store)? {
                0 => Ok(self.store.meta(kinship_pipeline::RESOLVED_THROUGH)?.and_then(|v| v.parse().ok()).unwrap_or(0)),
                stored => Ok(stored),
            }
        };
        match position() {
            Ok(through) => self.through = Some(through),
            Err(e) => eprintln!("warning: reading where flows stand failed, retrying at the next change: {e}"),
        }
    }

    /// Runs each scheduled flow whose tick has come on every member of its segment, a page at
    /// a time, then marks the tick done. A crash in between runs the tick again; the runs'
    /// keys (which hold the tick) drop the repeats, here and on other nodes.
    fn act_on_schedules(&mut self) -> Result<(), kinship_pipeline::PipelineError> {
        const PAGE: u64 = 5_000;
        let Some(through) = self.through else { return Ok(()) };
        let due = kinship_pipeline::flows::due_schedules(&*self.store, &self.flows, kinship_pipeline::now_ms())?;
        if due.is_empty() {
            return Ok(());
        }
        let config = self.config.current();
        for (i, tick) in due {
            let mut offset = 0;
            loop {
                let references = self.references.current(&config, &self.data_dir)?;
                let stored = &self.flows[i];
                let (planned, read) = kinship_pipeline::flows::plan_scheduled(
                    &*self.store,
                    &config,
                    stored,
                    references,
                    &mut self.team_load,
                    tick,
                    offset,
                    PAGE,
                )?;
                let turn = self.turn.clone();
                let _turn = turn.as_ref().map(|t| t.lock().expect("not poisoned"));
                let tasks = self.store.record_runs(&planned.runs, through)?;
                self.metrics.flows_ran(planned.runs.len(), tasks.len());
                offset += read as u64;
                if (read as u64) < PAGE {
                    kinship_pipeline::flows::schedule_done(&mut *self.store, self.flows[i].flow.name(), tick)?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Resumes the waits whose time has come.
    fn act_on_due_waits(&mut self) -> Result<(), kinship_pipeline::PipelineError> {
        let Some(through) = self.through else { return Ok(()) };
        let config = self.config.current();
        let references = self.references.current(&config, &self.data_dir)?;
        let planned = kinship_pipeline::flows::plan_due_waits(
            &*self.store,
            &config,
            &self.flows,
            references,
            &mut self.team_load,
            kinship_pipeline::now_ms(),
        )?;
        if planned.runs.is_empty() {
            return Ok(());
        }
        let turn = self.turn.clone();
        let _turn = turn.as_ref().map(|t| t.lock().expect("not poisoned"));
        let tasks = self.store.record_runs(&planned.runs, through)?;
        self.metrics.flows_ran(planned.runs.len(), tasks.len());
        Ok(())
    }

    /// Runs the flows triggered by segments on the entries and exits recorded since the last
    /// pass; the first pass starts now.
    fn act_on_transitions(&mut self) -> Result<(), kinship_pipeline::PipelineError> {
        let Some(through) = self.through else { return Ok(()) };
        let segment_triggered = [kinship_pipeline::flows::ENTERED_SEGMENT, kinship_pipeline::flows::EXITED_SEGMENT];
        if !self.flows.iter().any(|f| segment_triggered.contains(&f.flow.trigger_event())) {
            // None to run: a flow on segments saved later starts from then.
            if self.transitions_at.is_some() {
                self.transitions_at = Some(kinship_pipeline::now_ms());
            }
            return Ok(());
        }
        let since = match self.transitions_at {
            Some(at) => at - TRANSITION_SLACK_MS,
            None => {
                let stored = self.store.meta(TRANSITIONS_AT)?.and_then(|v| v.parse().ok());
                let at = stored.unwrap_or_else(kinship_pipeline::now_ms);
                self.transitions_at = Some(at);
                at - TRANSITION_SLACK_MS
            }
        };
        let config = self.config.current();
        let references = self.references.current(&config, &self.data_dir)?;
        let (planned, newest) =
            kinship_pipeline::flows::plan_transition_runs(&*self.store, &config, &self.flows, references, &mut self.team_load, since)?;
        let Some(newest) = newest.filter(|n| Some(*n) > self.transitions_at || !planned.runs.is_empty()) else { return Ok(()) };
        let turn = self.turn.clone();
        let _turn = turn.as_ref().map(|t| t.lock().expect("not poisoned"));
        let tasks = self.store.record_runs(&planned.runs, through)?;
        // After the runs: a crash in between runs them again, and their keys drop the repeats.
        let newest = newest.max(self.transitions_at.unwrap_or(newest));
        self.store.set_meta(TRANSITIONS_AT, &newest.to_string())?;
        self.transitions_at = Some(newest);
        self.metrics.flows_ran(planned.runs.len(), tasks.len());
        Ok(())
    }

    /// Runs the flows on the events resolved since the last pass, and records the runs, their
    /// tasks and deliveries, and the new position in one transaction.
    fn act(&mut self, resolved: RecordId) -> Result<(), kinship_pipeline::PipelineError> {
        let Some(after) = self.through.filter(|after| *after < resolved) else { return Ok(()) };
        if self.flows.is_empty() {
            // Every flow deleted: nothing to record, and a flow saved later starts from here.
            self.through = Some(resolved);
            return Ok(());
        }
        let config = self.config.current();
        let references = self.references.current(&config, &self.data_dir)?;
        let planned =
            kinship_pipeline::flows::plan_runs(&*self.store, &config, &self.flows, references, &mut self.team_load, after, resolved)?;
        let turn = self.turn.clone();
        let _turn = turn.as_ref().map(|t| t.lock().expect("not poisoned"));
        let tasks = self.store.record_runs(&planned.runs, resolved)?;
        self.through = Some(resolved);
        self.metrics.flows_ran(planned.runs.len(), tasks.len());
        Ok(())
    }
}
