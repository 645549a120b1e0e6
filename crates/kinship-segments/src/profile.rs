//! One profile in memory: golden traits by name, and events sorted by time.

use crate::{Catalog, Held, ProfileChange};
use kinship_expr::{EventView, Scalar};
use rustc_hash::FxHashMap;
use serde_json::{Map, Value};
use std::sync::Arc;

/// One event: its interned name, time, properties (names shared across events) and the
/// record it came from.
#[derive(Debug, Clone)]
pub struct Event {
    pub(crate) name: u32,
    pub(crate) timestamp_ms: i64,
    pub(crate) properties: Box<[(Arc<str>, Held)]>,
    record: i64,
}

impl Event {
    /// The id of the record in the log this event came from, as the host gave it; 0 when the
    /// host did not say ([`crate::Audience::upsert_profile`]).
    pub fn record(&self) -> i64 {
        self.record
    }
}

impl EventView for Event {
    fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    fn property(&self, name: &str) -> Scalar<'_> {
        self.properties.iter().find(|(k, _)| &**k == name).map_or(Scalar::Null, |(_, v)| v.scalar())
    }
}

pub struct Profile {
    pub(crate) id: Box<str>,
    /// Sorted by trait id.
    traits: Box<[(u32, Held)]>,
    /// Oldest first.
    pub(crate) events: Vec<Event>,
    /// One value per definition, in the catalog's order.
    pub(crate) values: Vec<Held>,
}

impl Profile {
    pub(crate) fn build<'e>(
        id: &str,
        traits: &Map<String, Value>,
        events: impl IntoIterator<Item = (&'e str, i64, &'e Map<String, Value>, i64)>,
        catalog: &mut Catalog,
    ) -> Profile {
        let mut flat = Vec::with_capacity(traits.len());
        flatten("", traits, &mut |name, v| flat.push((catalog.trait_id(name), Held::from_json(v))));
        flat.sort_by_key(|t| t.0);
        let mut events: Vec<Event> = events
            .into_iter()
            .map(|(name, ts, props, record)| {
                let mut properties = Vec::with_capacity(props.len());
                flatten("", props, &mut |name, v| properties.push((catalog.key(name), Held::from_json(v))));
                Event { name: catalog.event_id(name), timestamp_ms: ts, properties: properties.into(), record }
            })
            .collect();
        events.sort_by_key(|e| e.timestamp_ms);
        Profile { id: id.into(), traits: flat.into(), events, values: Vec::new() }
    }

    pub(crate) fn trait_value(&self, id: u32) -> Scalar<'_> {
        match self.traits.binary_search_by_key(&id, |t| t.0) {
            Ok(i) => self.traits[i].1.scalar(),
            Err(_) => Scalar::Null,
        }
    }

    /// What differs in `newer`: traits whose value changed, appeared or went, and event names
    /// whose events differ in number or time.
    pub(crate) fn difference(&self, newer: &Profile, catalog: &Catalog) -> ProfileChange {
        let mut change = ProfileChange::default();
        let old: FxHashMap<u32, &Held> = self.traits.iter().map(|(k, v)| (*k, v)).collect();
        let new: FxHashMap<u32, &Held> = newer.traits.iter().map(|(k, v)| (*k, v)).collect();
        let changed = new.iter().filter(|(k, v)| old.get(k) != Some(v)).map(|(k, _)| k).chain(old.keys().filter(|k| !new.contains_key(k)));
        for k in changed {
            change.traits.insert(catalog.trait_names[*k as usize].to_string());
        }
        let signature = |events: &[Event]| {
            let mut by_name: FxHashMap<u32, (usize, i64)> = FxHashMap::default();
            for e in events {
                let s = by_name.entry(e.name).or_default();
                s.0 += 1;
                s.1 = s.1.wrapping_add(e.timestamp_ms);
            }
            by_name
        };
        let (before, after) = (signature(&self.events), signature(&newer.events));
        let names: FxHashMap<u32, &str> = catalog.event_names.iter().map(|(n, &i)| (i, &**n)).collect();
        for id in before.keys().chain(after.keys()) {
            if before.get(id) != after.get(id) {
                if let Some(n) = names.get(id) {
                    change.events.insert(n.to_string());
                }
            }
        }
        change
    }
}

/// Visits scalar leaves, nested objects as dotted names (`address.city`).
fn flatten(prefix: &str, fields: &Map<String, Value>, visit: &mut dyn FnMut(&str, &Value)) {
    for (k, v) in fields {
        let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            Value::Object(inner) => flatten(&name, inner, visit),
            _ => visit(&name, v),
        }
    }
}
