//! Following the change feed: what one process changes (a segment defined from the CLI, an
//! erasure, a revoked token, the profiles another node resolved) reaches the copies this
//! process holds in memory at its next poll. Every change is applied by reading the store
//! again, so applying one twice, or one this process made itself, changes nothing.

use crate::fuzzy::FuzzyIndex;
use crate::governance::SuppressionList;
use crate::{audience, PipelineError, Result};
use kinship_core::Config;
use kinship_segments::Audience;
use kinship_store::{Change, ChangeKind, Database, CHANGE_RETENTION_MS};
use serde_json::Value;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Most changes applied in one poll.
const POLL_LIMIT: usize = 1_000;

/// Where a process stands in the change feed.
pub struct Follower {
    version: u64,
    /// When the last poll succeeded.
    polled: Instant,
    /// The origin of this process's resolver: the profile changes it writes were applied as
    /// it resolved them.
    resolver: String,
    /// Set when something held may have missed a change: the next poll reloads everything.
    reload: bool,
}

/// What this process holds in memory that the feed keeps current.
pub struct Copies<'a> {
    pub audience: &'a RwLock<Audience>,
    pub index: &'a mut Option<FuzzyIndex>,
    pub suppression: &'a SuppressionList,
}

/// What a poll found that only the caller can act on, and what it could not apply.
#[derive(Debug, Default)]
pub struct Followed {
    pub applied: usize,
    /// Tokens, users, write keys or switches changed: drop caches of them.
    pub access: bool,
    /// Users whose role or password changed, with when: end their sessions started before.
    pub users: Vec<(String, i64)>,
    /// kinship.toml's sources changed: read them again.
    pub sources: bool,
    /// A flow was saved: load the flows again.
    pub flows: bool,
    /// Changes that could not be applied (a definition this build cannot compile), each
    /// naming the change; the feed moves on past them.
    pub warnings: Vec<String>,
}

impl Follower {
    /// Starts at the feed's head. Call it before loading what the feed keeps current: a
    /// change committed in between is then applied once more, never missed. `resolver` is
    /// the origin of this process's resolver connection, whose profile changes are skipped.
    pub fn start(store: &dyn Database, resolver: &str) -> Result<Self> {
        Ok(Self { version: store.change_head()?, polled: Instant::now(), resolver: resolver.to_string(), reload: false })
    }

    /// Makes the next poll reload everything: the resolver could not apply a batch it
    /// committed to what this process holds.
    pub fn reload_next(&mut self) {
        self.reload = true;
    }

    /// The newest change applied.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Applies the changes committed since the last poll. A process that has not polled
    /// for longer than the feed keeps entries reloads everything instead.
    ///
    /// What was applied before a failure is reported with it (`Followed::warnings`), and
    /// the failed change is tried again at the next poll.
    pub fn poll(&mut self, store: &dyn Database, config: &Config, mut copies: Copies<'_>) -> Result<Followed> {
        let behind = self.polled.elapsed() > Duration::from_millis((CHANGE_RETENTION_MS / 2) as u64);
        if behind || self.reload {
            let head = store.change_head()?;
            reload(store, config, &mut copies)?;
            self.version = head;
            self.polled = Instant::now();
            self.reload = false;
            return Ok(Followed { access: true, sources: true, flows: true, ..Followed::default() });
        }
        let mut followed = Followed::default();
        for change in store.changes_after(self.version, POLL_LIMIT)? {
            match apply(store, config, &mut copies, &change, &self.resolver, &mut followed) {
                Ok(()) => {}
                Err(PipelineError::Store(e)) => {
                    followed.warnings.push(format!("change {} ({}): {e}; trying again", change.version, change.kind.as_str()));
                    return Ok(followed);
                }
                Err(e) => followed.warnings.push(format!("change {} ({}): {e}", change.version, change.kind.as_str())),
            }
            self.version = change.version;
            followed.applied += 1;
        }
        self.polled = Instant::now();
        if copies.index.as_ref().is_some_and(FuzzyIndex::wants_rebuild) {
            match FuzzyIndex::build(store, config) {
                Ok(index) => *copies.index = index,
                Err(e) => followed.warnings.push(format!("building the fuzzy index again: {e}; keeping the one held")),
            }
        }
        Ok(followed)
    }
}

fn apply(
    store: &dyn Database,
    config: &Config,
    copies: &mut Copies<'_>,
    change: &Change,
    resolver: &str,
    followed: &mut Followed,
) -> Result<()> {
    let names = |field: &str| -> Vec<String> {
        change.detail[field].as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default()
    };
    match change.kind {
        ChangeKind::Definition => {
            let (kind, name) = (change.detail["kind"].as_str().unwrap_or(""), change.detail["name"].as_str().unwrap_or(""));
            let mut held = copies.audience.write().expect("not poisoned");
            audience::apply_definition(store, config, &mut held, kind, name)?;
        }
        ChangeKind::Access => {
            followed.access = true;
            followed.users.extend(change.detail["user"].as_str().map(|user| (user.to_string(), change.at_ms)));
        }
        ChangeKind::Sources => followed.sources = true,
        ChangeKind::Flows => followed.flows = true,
        ChangeKind::Suppressions => {
            copies.suppression.refresh(store)?;
        }
        ChangeKind::Erasure => {
            copies.suppression.refresh(store)?;
            apply_profiles(store, config, copies, &[], &names("profiles"))?;
        }
        // Profiles this process's resolver resolved were applied as it resolved them.
        ChangeKind::Profiles if change.origin == resolver => {}
        ChangeKind::Profiles => {
            // Profiles records were attached to are named by the records' range.
            let range = &change.detail["records"];
            let mut touched = names("touched");
            if let (Some(after), Some(through)) = (range[0].as_i64(), range[1].as_i64()) {
                touched.extend(store.profiles_of_records(after, through)?);
                touched.sort_unstable();
                touched.dedup();
            }
            apply_profiles(store, config, copies, &touched, &names("removed"))?
        }
        ChangeKind::Rebuild => reload(store, config, copies)?,
    }
    Ok(())
}

/// Changed and removed profiles, in the audience (entries and exits were stored by the
/// process that resolved them) and in the fuzzy index.
fn apply_profiles(store: &dyn Database, config: &Config, copies: &mut Copies<'_>, touched: &[String], removed: &[String]) -> Result<()> {
    {
        let mut held = copies.audience.write().expect("not poisoned");
        audience::apply_profiles(store, config, &mut held, touched, removed)?;
    }
    if let Some(index) = copies.index.as_mut() {
        refresh_index(store, index, touched, removed)?;
    }
    Ok(())
}

/// Profiles a resolution changed, as fuzzy-match candidates: each touched one as stored now
/// (unchanged columns add nothing), each removed one no longer.
pub fn refresh_index(store: &dyn Database, index: &mut FuzzyIndex, touched: &[String], removed: &[String]) -> Result<()> {
    for id in removed {
        index.remove(id);
    }
    let rows = store.profiles_by_id(touched)?;
    for row in &rows {
        index.upsert(&row.id, &row.traits)?;
    }
    let found: rustc_hash::FxHashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    for id in touched.iter().filter(|id| !found.contains(id.as_str())) {
        index.remove(id);
    }
    Ok(())
}

/// Every profile was rebuilt (a full resolution): the audience and the index are built
/// again from the store, as at start.
fn reload(store: &dyn Database, config: &Config, copies: &mut Copies<'_>) -> Result<()> {
    {
        let mut held = copies.audience.write().expect("not poisoned");
        if !held.is_unloaded() {
            *held = audience::load_audience(store, config, &|_, _| {})?;
        }
    }
    *copies.index = FuzzyIndex::build(store, config)?;
    Ok(())
}
