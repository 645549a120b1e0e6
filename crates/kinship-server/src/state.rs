use crate::audit::{self, AuditHandle};
use crate::limits::FailureLimiter;
use crate::metrics::Metrics;
use crate::writer::{self, Threads, WriterHandle};
use crate::{ServeOptions, ServerError};
use kinship_core::Config;
use kinship_pipeline::governance::{Keys, SuppressionList};
use kinship_policy::Roles;
use kinship_segments::Audience;
use kinship_store::{Database, StoreError, TokenRow};
use phonenumber::country::Id as Region;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a token found in the store is trusted without looking again. A revocation
/// anywhere reaches this process through the change feed within a poll; this bounds the
/// time for one made behind Kinship's back (a row deleted by hand).
const TOKEN_RECHECK: Duration = Duration::from_secs(5);

/// Secrets looked up by their hash, kept in memory: shared with the resolver thread, which
/// drops them when the change feed says tokens or keys changed.
#[derive(Default)]
pub struct Credentials {
    /// Write-key hash → source, filled on first use.
    write_keys: RwLock<HashMap<String, String>>,
    /// Token hash → (token, when it was read from the store).
    tokens: RwLock<HashMap<String, (TokenRow, Instant)>>,
    /// Raised by every [`Credentials::forget`]: a lookup that read the store before it
    /// must not put what it read into the cache.
    generation: std::sync::atomic::AtomicU64,
}

impl Credentials {
    /// Forgets every cached token and write key.
    pub fn forget(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.tokens.write().expect("not poisoned").clear();
        self.write_keys.write().expect("not poisoned").clear();
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// The threads behind the server, joined on shutdown.
pub struct Background {
    threads: Threads,
    audit: std::thread::JoinHandle<()>,
}

impl Background {
    /// Waits for the writer and resolver, then for the audit writer to commit what it holds.
    pub fn join(self) -> Result<(), ServerError> {
        let resolved = self.threads.join();
        self.audit.join().expect("audit thread does not panic");
        resolved
    }
}

pub struct AppState {
    pub data_dir: PathBuf,
    pub database: String,
    /// Replaced whole when a connection is added, edited or deleted from the web UI.
    config: SharedConfig,
    /// Held from editing kinship.toml to taking its sources, so edits apply in order.
    pub config_edits: std::sync::Mutex<()>,
    /// Sources being pulled now.
    running: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    pub region: Region,
    pub writer: WriterHandle,
    /// In ingest mode `nats`, where the collection API publishes events instead of handing
    /// them to the writer.
    pub ingest_stream: Option<Arc<crate::nats::Link>>,
    pub metrics: Metrics,
    /// Every profile's traits and events with the segments and computed traits over them,
    /// kept current by the resolver thread.
    pub audience: Arc<RwLock<Audience>>,
    pub roles: Roles,
    pub keys: Keys,
    pub suppression: Arc<SuppressionList>,
    pub audit: AuditHandle,
    pub auth_failures: FailureLimiter,
    /// Signed-in web UI sessions, shared with the resolver thread, which ends a user's
    /// sessions when the change feed says their role or password changed.
    pub sessions: Arc<crate::web::Sessions>,
    credentials: Arc<Credentials>,
    /// The data's present (newest record time, ms) and when it was read: judging documents
    /// and SLA clocks as of it needs a scan of the log, so it is read at most once a minute.
    data_now: std::sync::Mutex<Option<(std::time::Instant, Option<i64>)>>,
    /// The case queue as last judged, with the moment it was judged at (`cases_api`).
    pub case_queue: DerivedCache<(i64, Vec<kinship_pipeline::cases::QueuedCase>)>,
    /// Accounts and their members as last read (`accounts_api`).
    pub accounts: DerivedCache<kinship_pipeline::accounts::AccountIndex>,
    /// Every deal as last read (`deals_api`).
    pub deal_book: DerivedCache<kinship_pipeline::deals::DealBook>,
}

/// A view derived from the whole store, kept between requests because deriving it reads
/// much of the store. The change feed says when it may be stale: its head moves with every
/// resolved batch, erasure and rebuild.
pub struct DerivedCache<T> {
    held: std::sync::Mutex<Option<Derived<T>>>,
    /// Moved by `forget`, without waiting for a derivation under way.
    generation: std::sync::atomic::AtomicU64,
}

struct Derived<T> {
    at: std::time::Instant,
    head: u64,
    generation: u64,
    config: Arc<Config>,
    value: Arc<T>,
}

impl<T> Default for DerivedCache<T> {
    fn default() -> Self {
        Self { held: std::sync::Mutex::new(None), generation: std::sync::atomic::AtomicU64::new(0) }
    }
}

impl<T> DerivedCache<T> {
    /// Forgets the kept value: the next read derives it again (after a write this process
    /// made and waited to see resolved). Never blocks.
    pub fn forget(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// The kept value while it may still be shown (same configuration; no erasure or rebuild
    /// since; other changes for `moving` seconds; none for `still` seconds), else
    /// `derive`'s, kept. Held while deriving: requests at once wait for one derivation.
    pub fn get(
        &self,
        store: &dyn kinship_store::Database,
        config: &Arc<Config>,
        moving: u64,
        still: u64,
        derive: impl FnOnce() -> Result<T, kinship_pipeline::PipelineError>,
    ) -> Result<Arc<T>, kinship_pipeline::PipelineError> {
        let head = store.change_head()?;
        let mut held = self.held.lock().expect("not poisoned");
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        if let Some(d) = held
            .as_ref()
            .filter(|d| d.generation == generation && Arc::ptr_eq(&d.config, config) && fresh(store, d.head, head, d.at, moving, still))
        {
            return Ok(d.value.clone());
        }
        let value = Arc::new(derive()?);
        *held = Some(Derived { at: std::time::Instant::now(), head, generation, config: config.clone(), value: value.clone() });
        Ok(value)
    }
}

/// Whether a copy derived at `at` when the change feed stood at `then` may still be shown:
/// never after an erasure or a rebuild; after other changes for `moving` seconds; with no
/// change for `still` seconds.
fn fresh(store: &dyn kinship_store::Database, then: u64, now: u64, at: std::time::Instant, moving: u64, still: u64) -> bool {
    use kinship_store::ChangeKind;
    if then == now {
        return at.elapsed().as_secs() < still;
    }
    const LOOK: usize = 1000;
    match store.changes_after(then, LOOK) {
        Ok(changes) if changes.len() < LOOK && !changes.iter().any(|c| matches!(c.kind, ChangeKind::Erasure | ChangeKind::Rebuild)) => {
            at.elapsed().as_secs() < moving
        }
        _ => false,
    }
}

/// A source being pulled; dropping it lets the next pull start.
pub struct RunClaim {
    running: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    source: String,
}

impl Drop for RunClaim {
    fn drop(&mut self) {
        self.running.lock().expect("not poisoned").remove(&self.source);
    }
}

/// The configuration as this process holds it, shared by the handlers and the resolver.
#[derive(Clone)]
pub struct SharedConfig(Arc<RwLock<Arc<Config>>>);

impl SharedConfig {
    pub fn new(config: Config) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(config))))
    }

    pub fn current(&self) -> Arc<Config> {
        self.0.read().expect("not poisoned").clone()
    }

    pub fn replace(&self, config: Config) {
        *self.0.write().expect("not poisoned") = Arc::new(config);
    }

    /// Takes the sources and identifier limits of kinship.toml as it is now (with the
    /// environment over the file, as at start); the rest of this process's configuration
    /// (its roles, bounds, store) stays as it started.
    pub fn take_sources(&self, data_dir: &std::path::Path) -> Result<(), String> {
        let reloaded = Config::load(data_dir).map_err(|e| e.to_string())?;
        let mut config = (*self.current()).clone();
        config.sources = reloaded.sources;
        config.resolve.limits = reloaded.resolve.limits;
        self.replace(config);
        Ok(())
    }
}

thread_local! {
    /// One read connection per blocking thread, reopened if a test serves another database.
    static READER: RefCell<Option<(String, Box<dyn Database>)>> = const { RefCell::new(None) };
}

impl AppState {
    /// The configuration now (a connection added from the web UI changes it).
    pub fn config(&self) -> Arc<Config> {
        self.config.current()
    }

    /// Marks `source` as being pulled until the claim is dropped; `None` if it is already.
    pub fn claim_run(&self, source: &str) -> Option<RunClaim> {
        self.running
            .lock()
            .expect("not poisoned")
            .insert(source.to_string())
            .then(|| RunClaim { running: self.running.clone(), source: source.to_string() })
    }

    /// The moment briefings and clocks are judged at (`briefing::data_now`). The newest
    /// record's time is read again after a minute (it scans the log); a live system is judged
    /// at this instant.
    pub fn data_now(&self, store: &dyn kinship_store::Database) -> Result<i64, kinship_pipeline::PipelineError> {
        let newest = {
            let mut held = self.data_now.lock().expect("not poisoned");
            match *held {
                Some((read, newest)) if read.elapsed() < std::time::Duration::from_secs(60) => newest,
                _ => {
                    let newest = store.newest_record_time()?;
                    *held = Some((std::time::Instant::now(), newest));
                    newest
                }
            }
        };
        Ok(kinship_pipeline::briefing::present(newest, kinship_pipeline::now_ms()))
    }

    /// The configuration as this process and its resolver share it.
    pub fn shared_config(&self) -> &SharedConfig {
        &self.config
    }

    pub fn start(options: ServeOptions, ingest_stream: Option<Arc<crate::nats::Link>>) -> Result<(Arc<Self>, Background), ServerError> {
        let region = kinship_normalize::region(&options.config.resolve.default_region).ok_or_else(|| {
            ServerError::Config(format!("resolve.default_region {:?} is not a region code", options.config.resolve.default_region))
        })?;
        let roles = options.config.roles().map_err(|e| ServerError::Config(format!("roles: {e}")))?;
        let governance = |e: kinship_pipeline::PipelineError| ServerError::Config(e.to_string());
        let keys = Keys::load_or_create(&options.data_dir).map_err(governance)?;
        let store = kinship_store::open(&options.database)?;
        // Before anything is loaded: a change committed meanwhile is applied again, not missed.
        let follower = kinship_pipeline::follow::Follower::start(&*store, &writer::resolver_origin()).map_err(governance)?;
        let suppression = Arc::new(SuppressionList::load(&*store, keys.suppression.clone()).map_err(governance)?);
        drop(store);
        let metrics = Metrics::default();
        let audience = Arc::new(RwLock::new(load_audience(&options.database, &options.config)?));
        let config = SharedConfig::new(options.config.clone());
        let credentials = Arc::new(Credentials::default());
        let sessions = Arc::new(crate::web::Sessions::default());
        let (writer, threads) = writer::start(writer::Shared {
            database: &options.database,
            data_dir: &options.data_dir,
            config: &config,
            metrics: metrics.clone(),
            audience: audience.clone(),
            suppression: suppression.clone(),
            credentials: credentials.clone(),
            sessions: sessions.clone(),
            follower,
        })?;
        let (audit, audit_thread) = audit::start(&options.database, &options.data_dir)?;
        let state = Self {
            data_dir: options.data_dir,
            database: options.database,
            auth_failures: FailureLimiter::new(options.config.server.auth_failures_per_minute),
            sessions,
            config,
            config_edits: std::sync::Mutex::default(),
            data_now: std::sync::Mutex::default(),
            case_queue: Default::default(),
            accounts: Default::default(),
            deal_book: Default::default(),
            running: Arc::default(),
            region,
            writer,
            ingest_stream,
            metrics,
            audience,
            roles,
            keys,
            suppression,
            audit,
            credentials,
        };
        Ok((Arc::new(state), Background { threads, audit: audit_thread }))
    }

    /// Runs a read on a blocking thread with that thread's connection.
    pub async fn read<T: Send + 'static, E: From<StoreError> + Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&dyn Database) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let path = self.database.clone();
        tokio::task::spawn_blocking(move || with_reader(&path, f)).await.expect("read task does not panic")
    }

    /// The source a write key belongs to.
    pub async fn source_for_write_key(self: &Arc<Self>, key: &str) -> Result<Option<String>, StoreError> {
        self.cached(&self.credentials.write_keys, key, |s, hash| s.source_for_write_key(hash)).await
    }

    /// The token a bearer secret belongs to.
    pub async fn token(self: &Arc<Self>, secret: &str) -> Result<Option<TokenRow>, StoreError> {
        self.token_by_hash(crate::auth::hash_secret(secret)).await
    }

    /// The token stored under a hash, read again from the store at least every few seconds
    /// so that a revocation from the command line takes effect.
    pub async fn token_by_hash(self: &Arc<Self>, hash: String) -> Result<Option<TokenRow>, StoreError> {
        if let Some((row, read_at)) = self.credentials.tokens.read().expect("not poisoned").get(&hash) {
            if read_at.elapsed() < TOKEN_RECHECK {
                return Ok(Some(row.clone()));
            }
        }
        let key = hash.clone();
        let generation = self.credentials.generation();
        let found = self.read(move |s| s.token(&key)).await?;
        let mut cache = self.credentials.tokens.write().expect("not poisoned");
        match &found {
            Some(row) if self.credentials.generation() == generation => cache.insert(hash, (row.clone(), Instant::now())),
            _ => cache.remove(&hash),
        };
        Ok(found)
    }

    /// Forgets every cached token and write key, after one was revoked or replaced here
    /// (elsewhere, the change feed does this).
    pub fn forget_credentials(&self) {
        self.credentials.forget();
    }

    /// Looks a secret up by its hash, in memory first, then in the store (remembering hits).
    async fn cached<T: Clone + Send + 'static>(
        self: &Arc<Self>,
        cache: &RwLock<HashMap<String, T>>,
        secret: &str,
        lookup: fn(&dyn Database, &str) -> Result<Option<T>, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let hash = crate::auth::hash_secret(secret);
        if let Some(found) = cache.read().expect("not poisoned").get(&hash) {
            return Ok(Some(found.clone()));
        }
        let key = hash.clone();
        let generation = self.credentials.generation();
        let found = self.read(move |s| lookup(s, &key)).await?;
        if let Some(value) = &found {
            let mut cache = cache.write().expect("not poisoned");
            // Not if the cache was dropped meanwhile: what was read may be what was revoked.
            if self.credentials.generation() == generation {
                cache.insert(hash, value.clone());
            }
        }
        Ok(found)
    }

    /// Whether a source is on: a run-time switch wins over `enabled` in kinship.toml.
    pub async fn source_enabled(self: &Arc<Self>, source: &str) -> Result<bool, StoreError> {
        let configured = self.config().sources.get(source).is_some_and(|s| s.enabled);
        let name = source.to_string();
        let switches = self.read(move |s| s.source_switches()).await?;
        Ok(switches.into_iter().find(|(s, _)| *s == name).map_or(configured, |(_, on)| on))
    }
}

/// Loads the audience engine (when anything is defined) and stores whatever entries and
/// exits happened while the server was down (time windows move on; a full resolve may
/// have changed profiles).
fn load_audience(database: &str, config: &Config) -> Result<Audience, ServerError> {
    let mut store = kinship_store::open(database)?;
    kinship_pipeline::audience::audience_for_server(&mut *store, config).map_err(|e| ServerError::Config(e.to_string()))
}

fn with_reader<T, E: From<StoreError>>(database: &str, f: impl FnOnce(&dyn Database) -> Result<T, E>) -> Result<T, E> {
    READER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(d, _)| d != database) {
            *slot = Some((database.to_string(), kinship_store::open(database).map_err(E::from)?));
        }
        let store = &*slot.as_ref().expect("opened above").1;
        store.begin_read()?;
        let read = f(store);
        let ended = store.end_read();
        let value = read?;
        ended?;
        Ok(value)
    })
}
