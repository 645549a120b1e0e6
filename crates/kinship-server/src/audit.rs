//! The audit writer: requests hand their entries to a bounded queue and go on; one thread
//! chains them in arrival order and commits them in groups, so auditing a read costs a
//! queue push, not a database write. On shutdown the thread commits what is queued.

use crate::ServerError;
use kinship_pipeline::governance::AuditLog;
use kinship_policy::AuditEvent;
use std::path::Path;
use tokio::sync::{mpsc, oneshot};

/// Entries waiting for the writer; when full, requests wait for room (they are never dropped).
const QUEUE: usize = 65_536;
/// Most entries committed in one transaction.
const GROUP: usize = 4_096;
/// How long the writer gathers entries before committing them together.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// What the audit writer receives: an entry, or a request to commit what came before.
enum Message {
    Entry(AuditEvent),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct AuditHandle {
    tx: mpsc::Sender<Message>,
}

impl AuditHandle {
    /// Queues an entry; waits only when the queue is full.
    pub async fn record(&self, event: AuditEvent) {
        if let Err(mpsc::error::TrySendError::Full(message)) = self.tx.try_send(Message::Entry(event)) {
            // Closed only after every handle is gone, so this send cannot fail while we hold one.
            let _ = self.tx.send(message).await;
        }
    }

    /// Waits until every entry queued before this call is committed: an auditor reading the
    /// log sees every access made before the read.
    pub async fn flush(&self) {
        let (done, committed) = oneshot::channel();
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
            // Entries are written after the answer, so waiting a few milliseconds for more
            // costs no request anything, and one commit (and anchor update) then covers many.
            let mut group = Vec::new();
            let mut waiting = Vec::new();
            let mut next = Some(first);
            let gather_until = std::time::Instant::now() + GATHER;
            loop {
                match next.take() {
                    Some(Message::Entry(event)) => group.push(event),
                    Some(Message::Flush(done)) => {
                        waiting.push(done);
                        break;
                    }
                    None => {}
                }
                if group.len() >= GROUP {
                    break;
                }
                match rx.try_recv() {
                    Ok(message) => next = Some(message),
                    Err(mpsc::error::TryRecvError::Empty) if std::time::Instant::now() < gather_until => {
                        std::thread::sleep(std::time::Duration::from_millis(1))
                    }
                    Err(_) => break,
                }
            }
            if !group.is_empty() {
                // The database may be briefly away (a restart, a failover): keep the entries
                // and try again for a while before giving up on them.
                for attempt in 1..=APPEND_ATTEMPTS {
                    match log.append(&mut *store, &group) {
                        Ok(()) => break,
                        // Nothing to answer: the requests were served. Say so loudly.
                        Err(e) if attempt == APPEND_ATTEMPTS => {
                            eprintln!("error: {} audit entries could not be written: {e}", group.len())
                        }
                        Err(e) => {
                            eprintln!("warning: audit entries not written yet, retrying in 1 s: {e}");
                            std::thread::sleep(std::time::Duration::from_secs(1));
                        }
                    }
                }
            }
            for done in waiting {
                let _ = done.send(());
            }
        }
    })?;
    Ok((AuditHandle { tx }, thread))
}
