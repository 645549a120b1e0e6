//! The briefing: what an agent or seller needs before talking to a customer, read from the
//! profile's records through each source's `document` and `case` mappings. Each order is
//! followed through its invoices, payments and shipments by its number; unpaid invoices,
//! open cases with their SLA clocks, open tasks, the last NPS answer, lifetime value and
//! what changed since a moment the caller names. Every line is derived from records on each
//! call, so it follows a late import, an erasure or a changed mapping with nothing stored.

use crate::Result;
use kinship_core::{Config, StoredRecord};
use kinship_service::cases::{Case, CaseRow};
use kinship_service::documents::{self, field_text, Document, DocumentKind, DocumentStatus};
use kinship_service::sla::{Clock, ClockState, Sla};
use kinship_sources::MappedEvent;
use kinship_store::{Database, TaskFilter};
use serde_json::{json, Map, Value};

/// The moment documents and clocks are judged at. A live system (a record in the last day)
/// is judged now, so clocks cross their targets while nothing arrives; an export loaded
/// later is judged as of its newest record, when it was taken.
pub fn data_now(store: &dyn Database) -> Result<i64> {
    Ok(present(store.newest_record_time()?, crate::now_ms()))
}

/// The present of a store whose newest record is at `newest`, at wall-clock `now` (ms).
pub fn present(newest: Option<i64>, now: i64) -> i64 {
    const LIVE_MS: i64 = 86_400_000;
    match newest {
        Some(newest) if newest < now - LIVE_MS => newest,
        _ => now,
    }
}

/// The briefing of profile `id` as of `now_ms`, with what changed after `since_ms`, built
/// only from the records whose events `policy` may see (a marketer, who sees engagement
/// only, gets no orders; a record with no event, a contact row, only roles that see every
/// event). `None`
/// when no such profile exists; callers then show it through the role (`for_role`).
pub fn briefing(
    store: &dyn Database,
    config: &Config,
    id: &str,
    since_ms: Option<i64>,
    now_ms: i64,
    policy: &kinship_policy::Policy,
) -> Result<Option<Value>> {
    let Some(row) = store.profile(id)? else { return Ok(None) };
    let traits: Map<String, Value> = serde_json::from_str(&row.traits).map_err(kinship_store::StoreError::from)?;
    let mappers = crate::mappers(config)?;
    // Each record's event, mapped once. A record with no event (a contact row) shows only
    // to roles that see every event.
    let (records, events): (Vec<StoredRecord>, Vec<Option<(MappedEvent, i64)>>) = store
        .profile_records(id)?
        .into_iter()
        .map(|r| {
            let event = mappers
                .get(r.source.as_str())
                .zip(r.payload.as_object())
                .and_then(|(m, f)| crate::audience::record_event(m, &r.source, f, r.timestamp));
            (r, event)
        })
        .filter(|(_, e)| e.as_ref().map_or_else(|| policy.sees_every_event(), |(e, _)| policy.event_visible(&e.event)))
        .unzip();
    let sla = Sla::compile(&config.service).map_err(|e| crate::PipelineError::Config(format!("[service]: {e}")))?;
    let now = now_ms.div_euclid(1000);

    let (documents, cases) = read_records(config, id, &records, now);
    let unpaid: Vec<Document> = documents
        .iter()
        .filter(|d| d.kind == DocumentKind::Invoice && matches!(d.status, DocumentStatus::Invoiced | DocumentStatus::Overdue))
        .cloned()
        .collect();
    // Every document in one list, newest first: quotes to refunds, each with its normalised
    // status beside the system's own, and its link back.
    let mut listed: Vec<&Document> = documents.iter().collect();
    listed.sort_by_key(|d| std::cmp::Reverse(d.date.or(d.recorded)));
    let all_documents: Vec<Value> = listed.into_iter().take(MAX_DOCUMENTS).map(document_json).collect();
    let (trails, unplaced) = documents::order_trails(documents, now);
    let clocks: Vec<Vec<Clock>> = cases.iter().map(|c| sla.clocks(&c.log, now)).collect();

    let overdue = unpaid.iter().filter(|d| d.status == DocumentStatus::Overdue).count();
    let open_cases: Vec<(&Case, &Vec<Clock>)> = cases.iter().zip(&clocks).filter(|(c, _)| !c.status.is_done()).collect();
    let tasks = store.tasks(&TaskFilter { status: Some("active".into()), profile: Some(id.to_string()), ..Default::default() }, 50)?;
    let (nps, lifetime) = nps_and_value(config, &events);

    let mut summary = Vec::new();
    if let Some(latest) = trails.first() {
        let n = trails.len();
        summary.push(format!("{n} order{}; the latest, {}: {}", if n == 1 { "" } else { "s" }, latest.order.number, latest.summary));
    }
    if !unpaid.is_empty() {
        let total = totals(unpaid.iter().map(|d| (d.currency.as_deref(), d.amount.unwrap_or(0.0))));
        summary.push(format!("{} unpaid invoice{} ({overdue} overdue), {total}", unpaid.len(), plural(unpaid.len())));
    }
    if !open_cases.is_empty() {
        let breached = open_cases.iter().filter(|(_, cl)| cl.iter().any(|c| c.state == ClockState::Breached && c.end.is_none())).count();
        summary.push(format!("{} open case{}, {breached} past an SLA target", open_cases.len(), plural(open_cases.len())));
    }
    if !tasks.is_empty() {
        summary.push(format!("{} open task{}", tasks.len(), plural(tasks.len())));
    }
    if let Some((score, at)) = &nps {
        summary.push(format!("last NPS answer {score} on {}", documents::day(at.div_euclid(1000), now)));
    }
    if lifetime.1 > 0 {
        summary.push(format!("lifetime value {} over {} {}", money(lifetime.0, None), lifetime.1, config.measures.revenue.event));
    }

    let changed = since_ms.map(|since| {
        let mut by_source: std::collections::BTreeMap<&str, u64> = Default::default();
        let mut lines = Vec::new();
        // A record's own time says when it happened; one without says when it arrived.
        let mut new: Vec<&StoredRecord> = records.iter().filter(|r| r.timestamp.unwrap_or(r.ingested_at) > since).collect();
        new.sort_by_key(|r| std::cmp::Reverse(r.timestamp.unwrap_or(r.ingested_at)));
        for r in &new {
            *by_source.entry(r.source.as_str()).or_default() += 1;
        }
        for r in new.iter().take(20) {
            if let Some(fields) = r.payload.as_object() {
                let at = iso(r.timestamp.unwrap_or(r.ingested_at));
                lines.push(json!({ "at": at, "source": r.source, "record_key": r.key, "line": record_line(config, r, fields, now) }));
            }
        }
        let segments: Vec<Value> = store
            .profile_transitions(id)
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.at > since)
            .map(|t| json!({ "segment": t.segment, "entered": t.entered, "at": iso(t.at) }))
            .collect();
        json!({ "since": iso(since), "records": by_source.values().sum::<u64>(), "by_source": by_source, "lines": lines, "segments": segments })
    });

    let account = config.accounts.account_of(&traits.iter().map(|(k, v)| (k.clone(), crate::golden::value(v).clone())).collect());
    Ok(Some(json!({
        "id": row.id,
        "name": traits.get("name").map(crate::golden::value),
        "account": account.map(|k| json!({ "id": k.id(), "kind": k.kind, "value": k.value })),
        "as_of": iso(now_ms),
        "summary": summary,
        "orders": trails.iter().map(|t| json!({
            "number": t.order.number,
            "date": t.order.date.map(|d| iso(d * 1000)),
            "amount": t.order.amount,
            "currency": t.order.currency,
            "status": t.order.status,
            "system_status": t.order.system_status,
            "summary": t.summary,
            "invoiced": !t.invoices.is_empty(),
            "paid_at": t.paid_at().map(|d| iso(d * 1000)),
            "shipped_at": t.shipped_at().map(|d| iso(d * 1000)),
            "delivered_at": t.delivered_at().map(|d| iso(d * 1000)),
            "invoices": t.invoices.iter().map(document_json).collect::<Vec<_>>(),
            "payments": t.payments.iter().map(document_json).collect::<Vec<_>>(),
            "shipments": t.shipments.iter().map(document_json).collect::<Vec<_>>(),
            "refunds": t.refunds.iter().map(document_json).collect::<Vec<_>>(),
            "link": t.order.link,
        })).collect::<Vec<_>>(),
        "other_documents": unplaced.iter().map(document_json).collect::<Vec<_>>(),
        "documents": all_documents,
        "unpaid_invoices": unpaid.iter().map(document_json).collect::<Vec<_>>(),
        "overdue_invoices": overdue,
        "cases": {
            "open": open_cases.iter().map(|(c, cl)| case_json(c, cl)).collect::<Vec<_>>(),
            "solved": cases.len() - open_cases.len(),
        },
        "tasks": tasks.iter().map(|t| json!({ "id": t.id, "title": t.title, "status": t.status, "priority": t.priority, "team": t.team, "assignee": t.assignee, "due_at": t.due_at.map(iso) })).collect::<Vec<_>>(),
        "nps": nps.map(|(score, at)| json!({ "score": score, "at": iso(at) })),
        "lifetime_value": { "amount": lifetime.0, "events": lifetime.1, "event": config.measures.revenue.event },
        "changed": changed,
    })))
}

/// Most documents one briefing lists (the newest).
const MAX_DOCUMENTS: usize = 200;

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn money(amount: f64, currency: Option<&str>) -> String {
    match currency {
        Some(c) => format!("{c} {amount:.2}"),
        None => format!("{amount:.2}"),
    }
}

/// Amounts summed per currency, never across: `AUD 259.90 + USD 40.00`.
pub(crate) fn totals<'c>(amounts: impl IntoIterator<Item = (Option<&'c str>, f64)>) -> String {
    let mut by_currency: std::collections::BTreeMap<Option<&str>, f64> = std::collections::BTreeMap::new();
    for (currency, amount) in amounts {
        *by_currency.entry(currency).or_default() += amount;
    }
    by_currency.into_iter().map(|(c, a)| money(a, c)).collect::<Vec<_>>().join(" + ")
}

/// RFC 3339 to the second, in UTC.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Documents and cases in the records, through their sources' mappings.
/// `profile` holds the records: it is every case's requester.
pub fn read_records(config: &Config, profile: &str, records: &[StoredRecord], now: i64) -> (Vec<Document>, Vec<Case>) {
    let mut docs = Vec::new();
    let mut case_rows = Vec::new();
    for r in records {
        let (Some(source), Some(fields)) = (config.sources.get(&r.source), r.payload.as_object()) else { continue };
        let time = r.timestamp.map(|t| t.div_euclid(1000));
        if let Some(m) = &source.document {
            docs.extend(m.read(&r.source, &r.key, fields, time, now));
        }
        if let Some(m) = &source.case {
            case_rows.push(CaseRow { mapping: m, owner: profile, source: &r.source, key: &r.key, fields, time: r.timestamp });
        }
    }
    let (cases, _) = kinship_service::cases::cases(case_rows);
    (documents::latest_versions(docs), cases)
}

pub fn document_json(d: &Document) -> Value {
    let at = |t: Option<i64>| t.map(|t| iso(t * 1000));
    json!({
        "kind": d.kind, "number": d.number, "order": d.order, "status": d.status, "system_status": d.system_status,
        "amount": d.amount, "currency": d.currency, "date": at(d.date), "due": at(d.due), "paid": at(d.paid),
        "shipped": at(d.shipped), "delivered": at(d.delivered), "source": d.source, "record_key": d.record_key, "link": d.link,
    })
}

pub fn case_json(c: &Case, clocks: &[Clock]) -> Value {
    let next_due = kinship_service::sla::next_due(clocks);
    json!({
        "number": c.number, "source": c.source, "requester": c.requester, "subject": c.subject, "status": c.status.as_str(), "system_status": c.system_status,
        "priority": c.priority, "assignee": c.assignee, "team": c.team, "channel": c.channel,
        "created": iso(c.created * 1000), "updated": iso(c.updated * 1000), "link": c.link,
        "next_due": next_due.map(|d| iso(d * 1000)),
        "sla": clocks.iter().map(|k| json!({
            "metric": k.metric.as_str(), "policy": k.policy, "state": k.state, "target_minutes": k.target_minutes,
            "counted_minutes": k.counted_seconds / 60, "due": k.due.map(|d| iso(d * 1000)),
            "breached_at": k.breached_at.map(|d| iso(d * 1000)), "ended": k.end.map(|d| iso(d * 1000)),
        })).collect::<Vec<_>>(),
        "conversation": c.conversation.iter().map(|r| json!({ "at": iso(r.at * 1000), "by": r.by, "public": r.public, "body": r.body })).collect::<Vec<_>>(),
    })
}

/// The last survey answer (score, ms) and the revenue total and count, as `[measures]` names
/// them; read from the records' payloads by their sources' event mappings.
fn nps_and_value(config: &Config, events: &[Option<(MappedEvent, i64)>]) -> (Option<(f64, i64)>, (f64, u64)) {
    let (mut nps, mut total, mut count) = (None::<(f64, i64)>, 0.0, 0u64);
    for (ev, ts) in events.iter().flatten() {
        let number = |name: &str| ev.properties.get(name).and_then(|v| v.as_f64().or_else(|| v.as_str()?.trim().parse().ok()));
        if ev.event == config.measures.nps.event {
            if let Some(score) = number(&config.measures.nps.score) {
                if nps.is_none_or(|(_, at)| *ts > at) {
                    nps = Some((score, *ts));
                }
            }
        }
        if ev.event == config.measures.revenue.event {
            if let Some(amount) = number(&config.measures.revenue.amount) {
                total += amount;
                count += 1;
            }
        }
    }
    (nps, (total, count))
}

/// A record as one readable line: what its document or case mapping says it is, or its
/// event and a few short properties.
pub fn record_line(config: &Config, r: &StoredRecord, fields: &Map<String, Value>, now: i64) -> String {
    let source = config.sources.get(&r.source);
    let time = r.timestamp.map(|t| t.div_euclid(1000));
    if let Some(m) = source.and_then(|s| s.document.as_ref()) {
        if let Some(d) = m.read(&r.source, &r.key, fields, time, now) {
            return document_line(&d, time.unwrap_or(0));
        }
    }
    // A row the case mapping does not recognise (no number where one is mapped) reads as an
    // event, as `cases::cases` leaves it out.
    if let Some(m) = source.and_then(|s| s.case.as_ref()) {
        if let Some(of) = &m.comment_of {
            if let Some(number) = field_text(fields, of) {
                return format!("Comment on case {number}");
            }
        } else if let Some(number) = m.number.as_ref().map_or_else(|| Some(r.key.clone()), |p| field_text(fields, p)) {
            let subject = m.subject.as_ref().and_then(|p| field_text(fields, p)).map(|s| format!(": {s}")).unwrap_or_default();
            let status = m.status.as_ref().and_then(|p| field_text(fields, p)).map(|s| format!(" ({s})")).unwrap_or_default();
            return format!("Case {number}{subject}{status}");
        }
    }
    let name = source
        .and_then(|s| s.event.as_ref())
        .and_then(|e| e.name.clone().or_else(|| e.field.as_ref().and_then(|f| field_text(fields, f))))
        .or_else(|| field_text(fields, "event"))
        .or_else(|| field_text(fields, "type"))
        .unwrap_or_else(|| format!("{} record", r.source));
    let shown: Vec<String> = fields
        .iter()
        // Ids and contact details are in the record's details; the line says what happened.
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            !(k.ends_with("id") || matches!(k.as_str(), "type" | "event" | "timestamp" | "receivedat" | "sentat" | "email" | "phone"))
        })
        .filter_map(|(k, v)| match v {
            Value::String(s) if !s.is_empty() && s.chars().count() <= 40 && !s.contains('@') => Some(format!("{k} {s}")),
            Value::Number(n) => Some(format!("{k} {n}")),
            _ => None,
        })
        .take(3)
        .collect();
    if shown.is_empty() {
        name
    } else {
        format!("{name}: {}", shown.join(", "))
    }
}

/// `year_of`: dates in the record's own year are written without it.
fn document_line(d: &Document, year_of: i64) -> String {
    let kind = match d.kind {
        DocumentKind::Quote => "Quote",
        DocumentKind::Order => "Order",
        DocumentKind::Invoice => "Invoice",
        DocumentKind::Payment => "Payment",
        DocumentKind::Shipment => "Shipment",
        DocumentKind::Refund => "Refund",
    };
    let mut line = format!("{kind} {}", d.number);
    if let Some(o) = d.order.as_ref().filter(|o| **o != d.number) {
        line.push_str(&format!(" for order {o}"));
    }
    if let Some(a) = d.amount {
        line.push_str(&format!(": {}", money(a, d.currency.as_deref())));
    }
    let when = |t: Option<i64>| t.map(|t| format!(" {}", documents::day(t, year_of))).unwrap_or_default();
    let state = match d.status {
        DocumentStatus::Paid => format!("paid{}", when(d.paid)),
        DocumentStatus::Overdue => format!("overdue since{}", when(d.due)),
        DocumentStatus::Delivered => format!("shipped{}, delivered{}", when(d.shipped), when(d.delivered)),
        DocumentStatus::Shipped => format!("shipped{}", when(d.shipped)),
        DocumentStatus::Invoiced if d.due.is_some() => format!("unpaid, due{}", when(d.due)),
        s => s.as_str().to_string(),
    };
    format!("{line}, {state}")
}

/// Cases' free text as `policy` may read it, in place: subjects and comments only for roles
/// that see identities, internal notes' bodies only for roles that read a property named
/// `internal_note` in clear (sales' rules hide `*internal*` and `*note*`).
pub fn cases_for_role(cases: &mut Value, policy: &kinship_policy::Policy) {
    let identities = policy.sees_identities();
    let notes = identities && policy.property_access("internal_note") == kinship_policy::Access::Allow;
    for case in cases.as_array_mut().into_iter().flatten() {
        if !identities {
            case["subject"] = Value::Null;
        }
        for reply in case["conversation"].as_array_mut().into_iter().flatten() {
            if !identities || (reply["public"] == false && !notes) {
                reply["body"] = Value::Null;
            }
        }
    }
}

/// The briefing as `policy` may read it: the name as the role's projection shows it (absent
/// when hidden), free text (case subjects, conversation, record lines) only for roles that
/// see identities, as it may name anyone; then contact details the role may not read are
/// masked wherever they remain.
pub fn for_role(mut brief: Value, identifiers: &[Value], policy: &kinship_policy::Policy, key: &kinship_policy::PseudonymKey) -> Value {
    let shown = kinship_policy::project(&json!({ "id": brief["id"], "traits": { "name": brief["name"] } }), policy, key);
    brief["name"] = shown.value["traits"].get("name").cloned().unwrap_or(Value::Null);
    cases_for_role(&mut brief["cases"]["open"], policy);
    if let Some(deals) = brief.get_mut("deals") {
        crate::deals::for_role(deals, policy);
    }
    if !policy.sees_identities() {
        // `get_mut`, not indexing: indexing a null `changed` would make it an object.
        if let Some(lines) = brief.get_mut("changed").and_then(|c| c.get_mut("lines")).and_then(Value::as_array_mut) {
            lines.iter_mut().for_each(|l| l["line"] = Value::Null);
        }
        if let Some(tasks) = brief["tasks"].as_array_mut() {
            tasks.iter_mut().for_each(|t| t["title"] = Value::Null);
        }
    }
    kinship_policy::scrub(&mut brief, identifiers, policy, key);
    brief
}
