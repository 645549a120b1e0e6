//! The audit writer: requests hand their entries to a bounded queue and go on; one thread
//! chains them in arrival order and commits them in groups, so auditing a read costs a
//! queue push, not a database write. On shutdown the thread commits what is queued.

use crate::ServerError;
use kinship_pipeline::governance::AuditLog;
use kinship_policy::AuditEvent;
use kinship_store::SqliteStore;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Entries waiting for the writer; when full, requests wait for room (they are never dropped).
const QUEUE: usize = 65_536;
/// Most entries committed in one transaction.
const GROUP: usize = 4_096;

#[derive(Clone)]
pub struct AuditHandle {
    tx: mpsc::Sender<AuditEvent>,
}

impl AuditHandle {
    /// Queues an entry; waits only when the queue is full.
    pub async fn record(&self, event: AuditEvent) {
        if let Err(mpsc::error::TrySendError::Full(event)) = self.tx.try_send(event) {
            // Closed only after every handle is gone, so this send cannot fail while we hold one.
            let _ = self.tx.send(event).await;
        }
    }
}

pub fn start(db_path: &Path, data_dir: &Path, turn: Arc<Mutex<()>>) -> Result<(AuditHandle, std::thread::JoinHandle<()>), ServerError> {
    let mut store = SqliteStore::open(db_path)?;
    let mut log = AuditLog::open(&store, data_dir).map_err(|e| ServerError::Config(e.to_string()))?;
    let (tx, mut rx) = mpsc::channel::<AuditEvent>(QUEUE);
    let thread = std::thread::Builder::new().name("kinship-audit".into()).spawn(move || {
        while let Some(first) = rx.blocking_recv() {
            let mut group = vec![first];
            while group.len() < GROUP {
                match rx.try_recv() {
                    Ok(event) => group.push(event),
                    Err(_) => break,
                }
            }
            let _turn = turn.lock().expect("not poisoned");
            if let Err(e) = log.append(&mut store, group) {
                // Nothing to answer: the requests were served. Say so loudly.
                eprintln!("error: audit entries could not be written: {e}");
            }
        }
    })?;
    Ok((AuditHandle { tx }, thread))
}
