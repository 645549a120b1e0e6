//! The audit writer: requests hand their entries to a bounded queue and wait; one thread
//! chains them in arrival order, commits them in groups and flushes the log to disk, and
//! only then are the requests answered. A read's 200 therefore never leaves before its
//! audit entry would survive a crash (`kill -9` or power loss). Group commit keeps it
//! cheap: while one group is written, the next gathers, so one flush serves every request
//! that arrived meanwhile. On shutdown the thread commits what is queued.

use crate::ServerError;
use kinship_pipeline::governance::AuditLog;
use kinship_policy::AuditEvent;
use std::path::Path;
use tokio::sync::{mpsc, oneshot};

/// Entries waiting for the writer; when full, requests wait for room (they are never dropped).
const QUEUE: usize = 65_536;
/// Most entries committed in one transaction.
const GROUP: usize = 4_096;

/// What the audit writer receives: an entry with whom to tell once it is durable, or a
/// request to commit what came before.
enum Message {
    Entry(AuditEvent, oneshot::Sender<bool>),
    Flush(oneshot::Sender<bool>),
}

#[derive(Clone)]
pub struct AuditHandle {
    tx: mpsc::Sender<Message>,
}

impl AuditHandle {
    /// Queues an entry and waits until it is committed and flushed to disk. `false` when the
    /// log stayed unwritable and the writer gave up on it (said on stderr): the request must
    /// then not be answered with what it read.
    #[must_use = "an access whose audit entry was not written must not be answered"]
    pub async fn record(&self, event: AuditEvent) -> bool {
        let (done, durable) = oneshot::channel();
        // Closed only after every handle is gone, so this send cannot fail while we hold one.
        self.tx.send(Message::Entry(event, done)).await.is_ok() && durable.await.unwrap_or(false)
    }

    /// Waits until every entry queued before this call is committed: an auditor reading the
    /// log sees every access made before the read.
    pub async fn flush(&self) {
        let (done, committed) = oneshot::channel::<bool>();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = committed.await;
        }
    }
}

/// Seconds (one attempt each) the audit writer keeps a group it could not write.
const APPEND_ATTEMPTS: u32 = 30;

/// Starts the writer. It takes no turn with the record writer and the resolver: on SQLite
/// the log is a file of its own, so its commits never wait for theirs.
pub fn start(database: &str, data_dir: &Path) -> Result<(AuditHandle, std::thread::JoinHandle<()>), ServerError> {
    let mut store = kinship_store::open(database)?;
    let mut log = AuditLog::open(&*store, data_dir).map_err(|e| ServerError::Config(e.to_string()))?;
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
    let thread = std::thread::Builder::new().name("kinship-audit".into()).spawn(move || {
        while let Some(first) = rx.blocking_recv() {
            // No waiting for more: what queued while the last group was written is this
            // group. (Gathering for 2 ms was measured: no more throughput, more latency.)
            let mut group = Vec::new();
            let mut waiting = Vec::new();
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    Message::Entry(event, done) => {
                        group.push(event);
                        waiting.push(done);
                    }
                    Message::Flush(done) => {
                        waiting.push(done);
                        break;
                    }
                }
                if group.len() >= GROUP {
                    break;
                }
                next = rx.try_recv().ok();
            }
            let mut written = true;
            if !group.is_empty() {
                // The database may be briefly away (a restart, a failover): keep the entries
                // and try again for a while before giving up on them.
                // Appended once only: a failed flush is retried on its own, or the entries
                // would be chained again under new numbers.
                let mut appended = false;
                for attempt in 1..=APPEND_ATTEMPTS {
                    let step = if appended { Ok(()) } else { log.append(&mut *store, &group) }
                        .inspect(|()| appended = true)
                        .and_then(|()| store.sync_audit().map_err(Into::into));
                    match step {
                        Ok(()) => break,
                        // The requests waiting on these entries get 503 instead of their data.
                        Err(e) if attempt == APPEND_ATTEMPTS => {
                            eprintln!("error: {} audit entries could not be written: {e}", group.len());
                            written = false;
                        }
                        Err(e) => {
                            eprintln!("warning: audit entries not written yet, retrying in 1 s: {e}");
                            std::thread::sleep(std::time::Duration::from_secs(1));
                        }
                    }
                }
            }
            for done in waiting {
                let _ = done.send(written);
            }
        }
    })?;
    Ok((AuditHandle { tx }, thread))
}
