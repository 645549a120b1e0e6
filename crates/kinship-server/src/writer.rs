//! The single writer (group commit) and the resolver that follows the log.

use crate::metrics::Metrics;
use crate::state::{Credentials, SharedConfig};
use crate::ServerError;
use kinship_core::NewRecord;
use kinship_pipeline::follow::{Copies, Follower};
use kinship_pipeline::governance::SuppressionList;
use kinship_pipeline::FuzzyIndex;
use kinship_segments::Audience;
use kinship_store::Database;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most records committed in one transaction.
const GROUP_RECORDS: usize = 20_000;
/// Most records resolved in one resolver transaction: small, so the writer never waits long.
const RESOLVE_BATCH: usize = 1_000;

pub struct Job {
    pub source: String,
    pub records: Vec<NewRecord>,
    /// The suppression list's generation when the records were checked against it.
    pub checked_generation: u64,
    pub reply: oneshot::Sender<Result<Committed, String>>,
}

/// What became of a job's records.
#[derive(Debug, Clone, Copy)]
pub struct Committed {
    /// Records that were new (the rest were retries of logged messages or suppressed).
    pub new: u64,
    /// Records dropped at commit because a person was erased after they were checked.
    pub suppressed: u64,
}

#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Job>,
    turn: Arc<Mutex<()>>,
}

pub enum SubmitError {
    /// The queue is full: the client should retry later.
    Overloaded,
    Failed(String),
}

impl WriterHandle {
    /// Queues records and waits until they are committed; refuses at once when the queue is
    /// full, so an HTTP client is told to retry.
    pub async fn submit(&self, source: String, records: Vec<NewRecord>, checked_generation: u64) -> Result<Committed, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.tx.try_send(Job { source, records, checked_generation, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => SubmitError::Failed("the server is shutting down".into()),
        })?;
        answer.await.map_err(|_| SubmitError::Failed("the writer stopped".into()))?.map_err(SubmitError::Failed)
    }

    /// Like [`Self::submit`], but waits for room in the queue: for the stream consumer, whose
    /// events wait in JetStream rather than in a client.
    pub async fn submit_waiting(&self, source: String, records: Vec<NewRecord>, checked_generation: u64) -> Result<Committed, String> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Job { source, records, checked_generation, reply }).await.map_err(|_| "the server is shutting down".to_string())?;
        answer.await.map_err(|_| "the writer stopped".to_string())?
    }

    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// The lock writers of the database take turns through (see [`start`]).
    pub fn turn(&self) -> Arc<Mutex<()>> {
        self.turn.clone()
    }
}

/// Drops the records of erased people; returns how many it dropped and the suppression
/// list's generation they were checked against (for [`Job::checked_generation`]).
pub fn drop_suppressed(suppression: &SuppressionList, records: &mut Vec<NewRecord>) -> (u64, u64) {
    // The generation is read before the snapshot: if the list grows in between, the writer
    // sees an old generation and checks again.
    let generation = suppression.generation();
    let check = suppression.check();
    let before = records.len();
    records.retain(|r| !check.matches_encoded(&r.identifiers));
    ((before - records.len()) as u64, generation)
}

pub struct Threads {
    writer: std::thread::JoinHandle<()>,
    resolver: std::thread::JoinHandle<Result<(), kinship_pipeline::PipelineError>>,
    flows: std::thread::JoinHandle<()>,
}

impl Threads {
    /// Waits for the threads: the writer ends when every handle is dropped, the resolver
    /// after resolving what the writer committed last, the flow runner after running the
    /// flows on that.
    pub fn join(self) -> Result<(), ServerError> {
        self.writer.join().expect("writer thread does not panic");
        let resolved = self.resolver.join().expect("resolver thread does not panic").map_err(|e| ServerError::Config(e.to_string()));
        self.flows.join().expect("flow runner does not panic");
        resolved
    }
}

/// How often segments that depend on time alone (windows, `days_since`) are re-evaluated.
const TIME_REFRESH: Duration = Duration::from_secs(60);

/// How often the resolver thread looks at the change feed (and for new records, when the
/// writer has not woken it): what another process changes is applied within this.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// The origin of this process's resolver in the change feed: its profile changes are the
/// ones the process applied as it resolved them.
pub fn resolver_origin() -> String {
    format!("{}/resolver", kinship_store::process_origin())
}

/// What the writer and resolver threads share with the rest of the server.
pub struct Shared<'a> {
    pub database: &'a str,
    pub data_dir: &'a std::path::Path,
    pub config: &'a SharedConfig,
    pub metrics: Metrics,
    pub audience: Arc<RwLock<Audience>>,
    pub suppression: Arc<SuppressionList>,
    pub credentials: Arc<Credentials>,
    pub sessions: Arc<crate::web::Sessions>,
    /// Started before the audience was loaded.
    pub follower: Follower,
}

pub fn start(shared: Shared<'_>) -> Result<(WriterHandle, Threads), ServerError> {
    let Shared { database, data_dir, config, metrics, audience, suppression, credentials, sessions, follower } = shared;
    let (tx, rx) = mpsc::channel(config.current().server.queue_capacity);
    let (wake_tx, wake_rx) = std_mpsc::sync_channel::<()>(1);
    let writer_store = kinship_store::open(database)?;
    let mut resolver_store = kinship_store::open(database)?;
    resolver_store.set_origin(&resolver_origin());
    let resolver_config = config.clone();
    let resolver_metrics = metrics.clone();
    let data_dir = data_dir.to_path_buf();
    // The writers of the database (this writer, the resolver, the audit writer, erasure)
    // take turns through this lock rather than through SQLite's busy handler, which sleeps
    // and polls; a mutex hands over as soon as it is free.
    let write_turn = Arc::new(Mutex::new(()));
    let resolver_turn = (!resolver_store.concurrent_writers()).then(|| write_turn.clone());
    let handle = WriterHandle { tx, turn: write_turn.clone() };
    let (flow_signal, flows) = crate::flow_runner::start(
        database,
        config.clone(),
        resolver_metrics.clone(),
        data_dir.clone(),
        (!resolver_store.concurrent_writers()).then(|| write_turn.clone()),
    )?;
    let erased = suppression.clone();
    let writer = std::thread::Builder::new()
        .name("kinship-writer".into())
        .spawn(move || write_loop(rx, writer_store, wake_tx, metrics, &write_turn, &suppression))?;
    let resolver = std::thread::Builder::new().name("kinship-resolver".into()).spawn(move || {
        // Profiles' golden traits indexed for real-time fuzzy matching; without it, new
        // records are still resolved exactly, so a failure here is reported, not fatal.
        let mut index = match kinship_pipeline::FuzzyIndex::build(&*resolver_store, &resolver_config.current()) {
            Ok(index) => index,
            Err(e) => {
                eprintln!("warning: real-time fuzzy matching is off: {e}");
                None
            }
        };
        let mut resolver = Resolver {
            store: resolver_store,
            config: resolver_config,
            metrics: resolver_metrics,
            turn: resolver_turn,
            audience,
            suppression: erased.clone(),
            credentials,
            sessions,
            data_dir,
            follower,
            flows: flow_signal,
        };
        let mut refreshed = std::time::Instant::now();
        let mut alerts_due = std::time::Instant::now();
        let mut sla_due = std::time::Instant::now();
        // Catch up with anything logged before a restart, then follow the writer and the
        // change feed.
        loop {
            // A failed batch was rolled back, its records stay in the log and are taken again
            // (a lock timeout on a shared store must not stop resolution for good; turns
            // that committed before it in the same call are reported and applied); one that
            // committed but could not be applied in memory makes the follower reload.
            let (more, failed) = match resolver.drain_for(FOLLOW_EVERY, &mut index) {
                Ok(more) => (more, None),
                Err(e) => {
                    eprintln!("warning: resolving new records failed, retrying in 1 s: {e}");
                    std::thread::sleep(Duration::from_secs(1));
                    (true, Some(e))
                }
            };
            resolver.follow(&mut index);
            if refreshed.elapsed() >= TIME_REFRESH {
                if let Err(e) = resolver.refresh_time_relative() {
                    eprintln!("warning: re-evaluating time-based segments failed, retrying in a minute: {e}");
                }
                refreshed = std::time::Instant::now();
            }
            if std::time::Instant::now() >= sla_due {
                if let Err(e) = resolver.keep_sla_events() {
                    eprintln!("warning: looking for breached SLA clocks failed, retrying at the next pass: {e}");
                }
                sla_due = std::time::Instant::now() + resolver.sla_events_every();
            }
            if std::time::Instant::now() >= alerts_due {
                if let Err(e) = resolver.keep_alerts() {
                    eprintln!("warning: keeping health alerts failed, retrying at the next pass: {e}");
                }
                alerts_due = std::time::Instant::now() + resolver.alerts_every();
            }
            if more && failed.is_none() {
                // A backlog: go on resolving without waiting.
                continue;
            }
            match wake_rx.recv_timeout(FOLLOW_EVERY) {
                Ok(()) | Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                // Shutting down while resolution fails: report it (exit status 1).
                Err(std_mpsc::RecvTimeoutError::Disconnected) if failed.is_some() => return Err(failed.expect("checked")),
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    while resolver.drain_for(FOLLOW_EVERY, &mut index)? {}
                    return Ok(());
                }
            }
        }
    })?;
    Ok((handle, Threads { writer, resolver, flows }))
}

fn write_loop(
    mut rx: mpsc::Receiver<Job>,
    mut store: Box<dyn Database>,
    wake: std_mpsc::SyncSender<()>,
    metrics: Metrics,
    turn: &Mutex<()>,
    suppression: &SuppressionList,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut group = vec![first];
        let mut records = group[0].records.len();
        while records < GROUP_RECORDS {
            match rx.try_recv() {
                Ok(job) => {
                    records += job.records.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let committed = (|| {
            let held = turn.lock().expect("not poisoned");
            // An erasure takes this turn too: a job checked before it raised the generation
            // is checked again, so nothing of an erased person is committed after erasure.
            let generation = suppression.generation();
            let mut suppressed = vec![0u64; group.len()];
            for (job, dropped) in group.iter_mut().zip(&mut suppressed) {
                if job.checked_generation != generation {
                    let check = suppression.check();
                    let before = job.records.len();
                    job.records.retain(|r| !check.matches_encoded(&r.identifiers));
                    *dropped = (before - job.records.len()) as u64;
                }
            }
            store.begin()?;
            let mut new = Vec::with_capacity(group.len());
            for (job, &dropped) in group.iter().zip(&suppressed) {
                match store.insert_records(&job.source, &job.records, now) {
                    Ok(ids) => new.push(Committed { new: ids.iter().flatten().count() as u64, suppressed: dropped }),
                    Err(e) => {
                        store.rollback()?;
                        return Err(e);
                    }
                }
            }
            store.commit()?;
            drop(held);
            // Durable before the 200: the log is flushed after the turn is handed on, so the
            // resolver works while the disk flushes.
            store.flush_log()?;
            Ok::<_, kinship_store::StoreError>(new)
        })();
        match committed {
            Ok(new) => {
                metrics.events_committed(records as u64, new.iter().map(|c| c.new).sum());
                for (job, n) in group.into_iter().zip(new) {
                    let _ = job.reply.send(Ok(n));
                }
                let _ = wake.try_send(());
            }
            Err(e) => {
                for job in group {
                    let _ = job.reply.send(Err(format!("could not store the events: {e}")));
                }
            }
        }
    }
}

/// The resolver thread's state: it follows the log, resolving new records into profiles,
/// and keeps the audience's segments and computed traits current with them.
struct Resolver {
    store: Box<dyn Database>,
    /// Read again for every batch: a source added from the web UI is mapped at once.
    config: SharedConfig,
    metrics: Metrics,
    /// The writers' turn, taken when the store has one writer at a time (SQLite). On a
    /// store whose writers commit side by side the resolver runs beside the writer.
    turn: Option<Arc<Mutex<()>>>,
    audience: Arc<RwLock<Audience>>,
    /// Read again under each resolution's lock (see `resolve_new_records`).
    suppression: Arc<SuppressionList>,
    /// Dropped when the change feed says tokens or write keys changed.
    credentials: Arc<Credentials>,
    sessions: Arc<crate::web::Sessions>,
    /// Where kinship.toml is read again when another process changed its sources.
    data_dir: std::path::PathBuf,
    follower: Follower,
    /// Tells the flow runner how far the log is resolved, and when flows changed.
    flows: crate::flow_runner::Signal,
}

impl Resolver {
    /// Resolves batches of new records for about `budget`; returns whether records may
    /// be left (the last batch was full), so the caller follows the change feed and
    /// reports the lag between stretches of a long backlog.
    fn drain_for(&mut self, budget: Duration, index: &mut Option<FuzzyIndex>) -> Result<bool, kinship_pipeline::PipelineError> {
        let started = std::time::Instant::now();
        let (mut more, mut through) = (true, 0);
        while more && started.elapsed() < budget {
            let config = self.config.current();
            let (resolved, through_now) = self.resolve_batch(&config, index)?;
            more = resolved.1;
            through = through_now;
            self.flows.resolved(through_now);
            if resolved.0 == 0 {
                break;
            }
        }
        // The last pass says how far the log is resolved, idle or not.
        let (waiting, oldest) = self.store.resolution_backlog(through)?;
        self.metrics.resolution_lag(waiting, oldest);
        Ok(more)
    }

    /// One batch of resolution under the writers' turn, with the audience and the fuzzy index
    /// brought up to date: ((records resolved, whether more may be waiting), resolved through).
    fn resolve_batch(
        &mut self,
        config: &kinship_core::Config,
        index: &mut Option<FuzzyIndex>,
    ) -> Result<((u64, bool), kinship_core::RecordId), kinship_pipeline::PipelineError> {
        let turn = self.turn.clone();
        let _turn = turn.as_ref().map(|t| t.lock().expect("not poisoned"));
        let r = kinship_pipeline::resolve_new_records(&mut *self.store, config, RESOLVE_BATCH, index.as_mut(), Some(&self.suppression))?;
        let n = r.attached + r.created + r.reresolved;
        let more = n + r.erased >= RESOLVE_BATCH as u64;
        if n == 0 {
            return Ok(((0, more), r.through));
        }
        // Only the profiles this batch changed are re-evaluated, and for each only the
        // definitions that read what changed. The batch is committed: if this fails,
        // the feed skips it as already applied, so everything is reloaded instead.
        let applied = (|| {
            let mut audience = self.audience.write().expect("not poisoned");
            let moved = kinship_pipeline::audience::refresh_profiles(&mut *self.store, config, &mut audience, &r.touched, &r.removed)?;
            drop(audience);
            if let Some(index) = index.as_mut() {
                kinship_pipeline::follow::refresh_index(&*self.store, index, &r.touched, &r.removed)?;
            }
            Ok::<_, kinship_pipeline::PipelineError>(moved)
        })();
        self.metrics.resolved(&r);
        let moved = applied.inspect_err(|_| self.follower.reload_next())?;
        self.metrics.segment_transitions(moved.len() as u64);
        Ok(((n, more), r.through))
    }

    /// Applies what other processes changed (the change feed); a failure is reported and
    /// tried again at the next poll.
    fn follow(&mut self, index: &mut Option<FuzzyIndex>) {
        let config = self.config.current();
        let copies = Copies { audience: &self.audience, index, suppression: &self.suppression };
        match self.follower.poll(&*self.store, &config, copies) {
            Ok(followed) => {
                if followed.access {
                    self.credentials.forget();
                }
                for (user, changed_ms) in &followed.users {
                    self.sessions.end_actor(&format!("user:{user}"), *changed_ms);
                }
                if followed.sources {
                    if let Err(e) = self.config.take_sources(&self.data_dir) {
                        eprintln!("warning: another process changed the sources, but kinship.toml does not load: {e}");
                    }
                }
                if followed.flows {
                    self.flows.flows_changed();
                }
                for warning in &followed.warnings {
                    eprintln!("warning: {warning}");
                }
                self.metrics.changes_followed(followed.applied, self.follower.version());
            }
            Err(e) => eprintln!("warning: following the change feed failed, retrying: {e}"),
        }
    }

    /// How often alerts are kept: `[measures] alerts_every`, at least a second.
    fn alerts_every(&self) -> Duration {
        every(&self.config.current().measures.alerts_every, "[measures] alerts_every", "15 minutes")
    }

    /// Keeps every saved health definition's alerts (`success::plan_alerts`, then
    /// `record_alerts`). At 1M profiles scoring takes over a second (two scores per profile),
    /// so it runs every `[measures] alerts_every`, not after every batch, and with the
    /// audience read-locked but without the writers' turn, taken only to write (never both
    /// at once: erasure and split take the turn, then the audience).
    fn keep_alerts(&mut self) -> Result<(), kinship_pipeline::PipelineError> {
        let config = self.config.current();
        let (planned, now) = {
            let audience = self.audience.read().expect("not poisoned");
            if audience.is_unloaded() {
                return Ok(());
            }
            // As of the data's present, as the reports are: a live system's newest event is a
            // moment ago, and an export loaded today is judged as of when it was taken.
            let now = kinship_pipeline::success::data_now(&audience);
            let mut planned = Vec::new();
            for d in audience.definitions().into_iter().filter(|d| d.kind == kinship_segments::Kind::Health) {
                // One definition failing does not keep the others' alerts from being kept.
                match kinship_pipeline::success::plan_alerts(&*self.store, &config, &audience, &d.name, now) {
                    Ok((changes, _)) => planned.push((d.name, changes)),
                    Err(e) => eprintln!("warning: keeping the alerts of health definition {} failed: {e}", d.name),
                }
            }
            (planned, now)
        };
        let _turn = self.turn.as_ref().map(|t| t.lock().expect("not poisoned"));
        for (name, changes) in planned {
            if let Err(e) = self.store.record_alerts(&changes, now) {
                eprintln!("warning: writing the alerts of health definition {name} failed: {e}");
            }
        }
        Ok(())
    }

    /// How often SLA events are looked for: `[service] events_every`, at least a second.
    fn sla_events_every(&self) -> Duration {
        every(self.config.current().service.events_every.as_deref().unwrap_or("1 minute"), "[service] events_every", "1 minute")
    }

    /// Appends an event to `[flows] source` for each SLA clock newly breached or in warning
    /// (`cases::sla_events`), so a flow can make it an escalation task. The queue is judged
    /// without the writers' turn, taken only to append; the log's unique (source, key) keeps
    /// each event once, on any number of nodes.
    fn keep_sla_events(&mut self) -> Result<(), kinship_pipeline::PipelineError> {
        let config = self.config.current();
        let Some(source) = config.flows.source.clone() else { return Ok(()) };
        if config.service.sla.is_empty() || !config.sources.values().any(|s| s.case.is_some()) {
            return Ok(());
        }
        let now = kinship_pipeline::briefing::data_now(&*self.store)?;
        let cases = kinship_pipeline::cases::all_cases(&*self.store, &config, now)?;
        let records = kinship_pipeline::cases::sla_events(&*self.store, &config, &cases, now)?;
        if records.is_empty() {
            return Ok(());
        }
        let _turn = self.turn.as_ref().map(|t| t.lock().expect("not poisoned"));
        self.store.insert_records(&source, &records, kinship_pipeline::now_ms())?;
        Ok(())
    }

    fn refresh_time_relative(&mut self) -> Result<(), kinship_pipeline::PipelineError> {
        let _turn = self.turn.as_ref().map(|t| t.lock().expect("not poisoned"));
        let mut audience = self.audience.write().expect("not poisoned");
        let moved = kinship_pipeline::audience::refresh_time_relative(&mut *self.store, &mut audience)?;
        self.metrics.segment_transitions(moved.len() as u64);
        Ok(())
    }
}

/// A periodic pass's interval from its setting, at least a second; a setting that is not a
/// duration is reported (naming it) and `default` used.
fn every(text: &str, setting: &str, default: &str) -> Duration {
    let ms = kinship_expr::parse_duration(text).unwrap_or_else(|| {
        eprintln!("warning: {setting} = {text:?} is not a duration (write \"{default}\"); using {default}");
        kinship_expr::parse_duration(default).expect("the defaults are durations")
    });
    Duration::from_millis(ms.max(1000) as u64)
}
