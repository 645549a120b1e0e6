use crate::{golden, Result};
use kinship_core::Config;
use kinship_resolve::{Constraints, InputRecord, Reason};
use kinship_store::Database;
use kinship_store::Store;
use serde_json::{json, Map, Value};

/// The customer 360 document: golden traits (with the source of each), identifiers with
/// their sources, source records, one timeline of events (segment entries and exits
/// included), newest first, its segments and computed traits, and consent per purpose (from
/// traits and events, see `[consent]`). `None` when no such profile exists. This is
/// everything; callers show it through the reader's role (`kinship_policy::project`).
pub fn profile_document(store: &dyn Database, config: &Config, id: &str) -> Result<Option<Value>> {
    let Some(row) = store.profile(id)? else { return Ok(None) };
    let stored: Map<String, Value> = serde_json::from_str(&row.traits).map_err(kinship_store::StoreError::from)?;
    let records = store.profile_records(id)?;
    let key_of = |record_id: i64| records.iter().find(|r| r.id == record_id).map(|r| r.key.clone());
    let mut traits = Map::new();
    let mut trait_sources = Map::new();
    for (name, held) in stored {
        traits.insert(name.clone(), golden::value(&held).clone());
        trait_sources.insert(name, json!({ "source": golden::source(&held), "record_key": golden::record(&held).and_then(key_of) }));
    }
    let identifiers = store.profile_identifiers(id)?;

    let mappers = crate::mappers(config)?;
    let mut events = Vec::new();
    let mut mapped = Vec::new();
    for r in &records {
        let (Some(mapper), Some(fields)) = (mappers.get(r.source.as_str()), r.payload.as_object()) else { continue };
        if let Some((ev, ts)) = crate::audience::record_event(mapper, &r.source, fields, r.timestamp) {
            // Segment messages say what they are (track, page, screen); pulled rows are tracks.
            let kind =
                fields.get("type").and_then(Value::as_str).filter(|_| !config.sources[&r.source].kind.is_pulled()).unwrap_or("track");
            events.push((
                ts,
                json!({
                    "type": kind,
                    "event": ev.event,
                    "timestamp": iso(ts),
                    "source": r.source,
                    "record_key": r.key,
                    // History, not state: judged as of no particular day, an unpaid invoice
                    // reads "due …", never "overdue".
                    "line": crate::briefing::record_line(config, r, fields, i64::MIN),
                    "properties": ev.properties,
                }),
            ));
            mapped.push((ev, ts));
        }
    }
    // Entering and leaving segments are on the timeline too, for flows to react to.
    for t in store.profile_transitions(id)? {
        let event = if t.entered { "Entered Segment" } else { "Exited Segment" };
        events.push((t.at, json!({ "type": "segment", "event": event, "timestamp": iso(t.at), "line": format!("{event}: {}", t.segment), "properties": { "segment": t.segment } })));
    }
    events.sort_by_key(|e| std::cmp::Reverse(e.0));
    let crate::audience::ProfileValues { segments, computed, health } = crate::audience::profile_values(store, &traits, &mapped, id)?;
    let no_properties = Map::new();
    let consent = kinship_policy::derive_consent(
        &traits,
        events.iter().map(|(ts, e)| (e["event"].as_str().unwrap_or_default(), *ts, e["properties"].as_object().unwrap_or(&no_properties))),
        &config.consent,
    );
    // Built by moving the parts in (`json!` would copy each one again): this runs on every
    // profile read.
    let records_json: Vec<Value> = records
        .into_iter()
        .map(|r| {
            let mut record = Map::new();
            record.insert("source".into(), Value::String(r.source));
            record.insert("key".into(), Value::String(r.key));
            record.insert("timestamp".into(), r.timestamp.map_or(Value::Null, |t| Value::String(iso(t))));
            record.insert("payload".into(), r.payload);
            Value::Object(record)
        })
        .collect();
    let mut doc = Map::new();
    doc.insert("id".into(), Value::String(row.id));
    doc.insert("traits".into(), Value::Object(traits));
    doc.insert("trait_sources".into(), Value::Object(trait_sources));
    doc.insert("identifiers".into(), json!(identifiers));
    doc.insert("records".into(), Value::Array(records_json));
    doc.insert("segments".into(), json!(segments));
    doc.insert("computed".into(), Value::Object(computed));
    doc.insert("health".into(), Value::Object(health));
    doc.insert("events".into(), Value::Array(events.into_iter().map(|(_, e)| e).collect()));
    doc.insert("consent".into(), json!(consent));
    Ok(Some(Value::Object(doc)))
}

/// Why each record is in the profile: every join with the stage that made it and its
/// evidence, the records named by source and key. Joins by shared identifiers are derived
/// again by resolving the profile's own records; decisions and fuzzy matches are stored.
pub fn explain(store: &dyn Store, config: &Config, id: &str) -> Result<Option<Value>> {
    if store.profile(id)?.is_none() {
        return Ok(None);
    }
    let records = store.profile_records(id)?;
    let name = |rid: i64| records.iter().find(|r| r.id == rid).map_or(json!(rid), |r| json!({ "source": r.source, "key": r.key }));
    let inputs: Vec<InputRecord> = records.iter().map(|r| InputRecord { id: r.id, identifiers: r.identifiers.clone() }).collect();
    let exact = kinship_resolve::resolve(&inputs, &config.resolve, &Constraints::default());
    let mut joins: Vec<Value> = exact
        .edges
        .iter()
        .filter_map(|e| match &e.reason {
            Reason::Identifier(shared) => Some(json!({
                "left": name(inputs[e.left].id),
                "right": name(inputs[e.right].id),
                "stage": "exact",
                "evidence": { "kind": shared.kind.as_str(), "value": shared.value },
            })),
            Reason::MustLink => None,
        })
        .collect();
    joins.extend(
        store
            .profile_edges(id)?
            .into_iter()
            .map(|e| json!({ "left": name(e.left), "right": name(e.right), "stage": e.stage, "evidence": e.detail })),
    );
    Ok(Some(json!({ "id": id, "records": records.len(), "joins": joins })))
}

/// RFC 3339 in UTC with milliseconds.
fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}
