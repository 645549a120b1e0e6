//! Cases from a connected help desk's records. A ticket row is the ticket as it was at the
//! record's time (a cursor-pulled source keeps every version), so a ticket's rows in time
//! order are its event log; comment rows, from the same or another source, add its
//! conversation. The SLA clocks are then computed from that log (`sla`).

use crate::documents::field_text;
use crate::sla::{Author, CaseChange, CaseStatus, Comment};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `[sources.NAME.case]`: what a source's rows say about cases. Fields are paths into the
/// record. With `comment_of`, each row is a comment on the case that field names; otherwise
/// each row is a ticket (a version of it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseMapping {
    /// The ticket's number; default: the record key (without a cursor's `@…`). When set, a
    /// row without it is not a ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// When the ticket was opened; default: the record's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// When this version's status was set, if the row says (`updated_at`, `solved_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// Comment rows: the field naming their case; a row without it is a ticket when
    /// `number` is mapped, else skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment_of: Option<String>,
    /// Comment rows: whether the requester can see it (`true`/`public`; default public).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
    /// Comment rows: who wrote it; `agent`, `admin`, `staff` or `internal` is an agent,
    /// anything else the requester's side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Comment rows: where an internal note's text is, when not in `body` (native notes keep
    /// it under a name roles that hide notes do not read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// A link back to the ticket: `{number}` is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// What native cases (created in Kinship, `[service] source`) are written as: Segment track
/// messages of these events, read back through [`CaseMapping::native`].
pub const NATIVE_UPDATED: &str = "Ticket Updated";
pub const NATIVE_COMMENT: &str = "Ticket Comment";

impl CaseMapping {
    /// The mapping of native cases' messages: a `Ticket Updated` carries the case's fields
    /// in its properties, a `Ticket Comment` names the case it answers in `comment_on`.
    pub fn native() -> Self {
        let p = |f: &str| Some(format!("properties.{f}"));
        CaseMapping {
            number: p("case"),
            status: p("status"),
            priority: p("priority"),
            subject: p("subject"),
            assignee: p("assignee"),
            team: p("team"),
            channel: p("channel"),
            comment_of: p("comment_on"),
            public: p("public"),
            author: p("author_role"),
            body: p("body"),
            note: p("internal_note"),
            ..CaseMapping::default()
        }
    }
}

/// One line of a case's conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reply {
    pub at: i64,
    pub by: Author,
    pub public: bool,
    pub body: Option<String>,
}

/// A case as its records tell it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Case {
    pub number: String,
    /// Who asked: the `owner` of the ticket's newest row (the host's resolved profile).
    pub requester: String,
    pub source: String,
    pub subject: Option<String>,
    pub status: CaseStatus,
    /// The system's own status word, as last written.
    pub system_status: Option<String>,
    pub priority: String,
    pub assignee: Option<String>,
    pub team: Option<String>,
    pub channel: Option<String>,
    pub created: i64,
    pub updated: i64,
    pub conversation: Vec<Reply>,
    pub link: Option<String>,
    /// The event log the SLA clocks are computed from.
    #[serde(skip)]
    pub log: Vec<CaseChange>,
}

/// One record handed in: its source's mapping, source, key, fields, time (Unix
/// milliseconds: several updates within a second keep their order) and whose it is (the
/// host's profile id).
pub struct CaseRow<'a> {
    pub mapping: &'a CaseMapping,
    pub owner: &'a str,
    pub source: &'a str,
    pub key: &'a str,
    pub fields: &'a Map<String, Value>,
    pub time: Option<i64>,
}

/// A field's time in Unix milliseconds.
fn time(fields: &Map<String, Value>, path: Option<&String>) -> Option<i64> {
    field_text(fields, path?).and_then(|t| crate::documents::millis(&t))
}

fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

fn is_agent(text: &str) -> bool {
    matches!(text.trim().to_lowercase().as_str(), "agent" | "admin" | "staff" | "internal" | "support")
}

fn is_public(text: &str) -> bool {
    !matches!(text.trim().to_lowercase().as_str(), "false" | "0" | "no" | "private" | "internal")
}

/// Every case the rows tell of, by (source, number), oldest first. Comments whose case is
/// not among the rows, or is ambiguous, are dropped and counted in the second value.
pub fn cases<'a>(rows: impl IntoIterator<Item = CaseRow<'a>>) -> (Vec<Case>, usize) {
    struct Version {
        at: i64,
        created: i64,
        status: Option<String>,
        priority: Option<String>,
        fields: BTreeMap<String, String>,
        subject: Option<String>,
        owner: String,
    }
    let mut tickets: BTreeMap<(String, String), (Vec<Version>, &CaseMapping)> = BTreeMap::new();
    // Times in milliseconds until the log is built, so updates within a second keep order.
    let mut comments: Vec<(String, i64, Reply)> = Vec::new();
    for row in rows {
        let m = row.mapping;
        let f = row.fields;
        // A row holding `comment_of` is a comment; with `number` mapped too, the other rows of
        // the source are tickets (native cases write both to one source).
        if let Some(number) = m.comment_of.as_ref().and_then(|of| field_text(f, of)) {
            let Some(at) = time(f, m.created.as_ref()).or(row.time) else { continue };
            let by = if m.author.as_ref().and_then(|a| field_text(f, a)).is_some_and(|a| is_agent(&a)) {
                Author::Agent
            } else {
                Author::EndUser
            };
            let public = m.public.as_ref().and_then(|p| field_text(f, p)).is_none_or(|p| is_public(&p));
            let body = m.body.as_ref().and_then(|b| field_text(f, b)).or_else(|| m.note.as_ref().and_then(|n| field_text(f, n)));
            comments.push((number, at, Reply { at: secs(at), by, public, body }));
            continue;
        }
        if m.comment_of.is_some() && m.number.is_none() {
            continue;
        }
        // With `number` mapped, a row without one is no ticket (an identify call on the same
        // Segment source, say).
        let number = match &m.number {
            Some(path) => match field_text(f, path) {
                Some(n) => n,
                None => continue,
            },
            None => row.key.split('@').next().unwrap_or(row.key).to_string(),
        };
        // A row with no time at all says nothing a clock can count from.
        let Some(created) = time(f, m.created.as_ref()).or(row.time) else { continue };
        let at = time(f, m.updated.as_ref()).or(row.time).unwrap_or(created).max(created);
        let mut fields = BTreeMap::new();
        for (name, path) in [("channel", &m.channel), ("team", &m.team), ("assignee", &m.assignee)] {
            if let Some(v) = path.as_ref().and_then(|p| field_text(f, p)) {
                fields.insert(name.to_string(), v);
            }
        }
        let version = Version {
            at,
            created,
            status: m.status.as_ref().and_then(|p| field_text(f, p)),
            priority: m.priority.as_ref().and_then(|p| field_text(f, p)),
            fields,
            subject: m.subject.as_ref().and_then(|p| field_text(f, p)),
            owner: row.owner.to_string(),
        };
        tickets.entry((row.source.to_string(), number)).or_insert_with(|| (Vec::new(), m)).0.push(version);
    }

    // Comments name their ticket by number only: they join a ticket when exactly one help
    // desk holds that number, and are dropped (counted) when two do.
    let mut holders: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, number) in tickets.keys() {
        *holders.entry(number.as_str()).or_default() += 1;
    }
    let mut by_number: BTreeMap<String, Vec<(i64, Reply)>> = BTreeMap::new();
    let mut dropped = 0;
    for (number, at_ms, reply) in comments {
        if holders.get(number.as_str()) == Some(&1) {
            by_number.entry(number).or_default().push((at_ms, reply));
        } else {
            dropped += 1;
        }
    }
    let mut out = Vec::new();
    for ((source, number), (mut versions, mapping)) in tickets {
        versions.sort_by_key(|v| v.at);
        let created = versions.iter().map(|v| v.created).min().unwrap_or(0);
        let mut conversation = by_number.remove(&number).unwrap_or_default();
        conversation.sort_by_key(|(at_ms, _)| *at_ms);
        // The log: the opening (new, with the first version's fields, and the comment it
        // was opened with, which tells an agent's outbound ticket from a requester's), then
        // each version's changes and each later comment, in time order; at one instant the
        // comment comes first, so a reply and a solve in one update answer before solving.
        let mut log: Vec<CaseChange> = Vec::new();
        let first = &versions[0];
        let opening = conversation.first().filter(|(at_ms, _)| *at_ms <= created).map(|(_, r)| Comment { public: r.public, by: r.by });
        log.push(CaseChange {
            at: secs(created),
            status: Some(CaseStatus::New),
            priority: first.priority.clone(),
            fields: first.fields.clone(),
            comment: opening,
        });
        let mut timed: Vec<(i64, CaseChange)> = versions
            .iter()
            .map(|v| {
                let change = CaseChange {
                    at: secs(v.at),
                    status: v.status.as_deref().and_then(CaseStatus::parse),
                    priority: v.priority.clone(),
                    fields: v.fields.clone(),
                    comment: None,
                };
                (v.at, change)
            })
            .collect();
        timed.extend(conversation.iter().skip(usize::from(opening.is_some())).map(|(at_ms, r)| {
            let at_ms = (*at_ms).max(created);
            (at_ms, CaseChange { at: secs(at_ms), comment: Some(Comment { public: r.public, by: r.by }), ..Default::default() })
        }));
        timed.sort_by_key(|(at_ms, c)| (*at_ms, c.comment.is_none()));
        log.extend(timed.into_iter().map(|(_, c)| c));
        let last = versions.last().expect("a ticket has a version");
        let status = crate::sla::replay_status(&log);
        out.push(Case {
            link: mapping.link.as_ref().map(|l| l.replace("{number}", &number)),
            number,
            source,
            requester: last.owner.clone(),
            subject: versions.iter().rev().find_map(|v| v.subject.clone()),
            status,
            system_status: versions.iter().rev().find_map(|v| v.status.clone()),
            priority: versions.iter().rev().find_map(|v| v.priority.clone()).unwrap_or_else(|| "normal".into()).to_lowercase(),
            // A version that leaves a field out leaves it as it was.
            assignee: versions.iter().rev().find_map(|v| v.fields.get("assignee").cloned()),
            team: versions.iter().rev().find_map(|v| v.fields.get("team").cloned()),
            channel: versions.iter().rev().find_map(|v| v.fields.get("channel").cloned()),
            created: secs(created),
            updated: log.last().map_or(secs(created), |c| c.at),
            conversation: conversation.into_iter().map(|(_, r)| r).collect(),
            log,
        });
    }
    out.sort_by_key(|c| c.created);
    (out, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_and_comments_make_the_log() {
        let tickets: CaseMapping = serde_json::from_value(json!({"number": "id", "status": "status", "priority": "priority", "subject": "subject", "channel": "via", "created": "created_at", "updated": "updated_at", "team": "group"})).unwrap();
        let notes: CaseMapping =
            serde_json::from_value(json!({"comment_of": "ticket", "author": "role", "public": "public", "body": "text"})).unwrap();
        let rows = [
            json!({"id": 7, "status": "New", "priority": "High", "subject": "Broken zip", "via": "email", "created_at": "2026-12-07T00:00:00Z", "updated_at": "2026-12-07T00:00:00Z", "group": "support"}),
            json!({"id": 7, "status": "Pending", "priority": "High", "via": "email", "created_at": "2026-12-07T00:00:00Z", "updated_at": "2026-12-07T01:00:00Z", "group": "support"}),
            json!({"ticket": "7", "role": "agent", "public": true, "text": "Sending a new one", "at": "2026-12-07T01:00:00Z"}),
            json!({"ticket": "7", "role": "agent", "public": "false", "text": "note", "at": "2026-12-07T00:30:00Z"}),
            json!({"ticket": "99", "role": "end-user", "text": "lost", "at": "2026-12-07T00:30:00Z"}),
        ];
        let maps: Vec<Map<String, Value>> = rows.iter().map(|r| r.as_object().unwrap().clone()).collect();
        let time = |m: &Map<String, Value>| field_text(m, "at").and_then(|t| kinship_normalize::parse_timestamp_ms(&t));
        let input = maps.iter().enumerate().map(|(i, f)| CaseRow {
            mapping: if i < 2 { &tickets } else { &notes },
            owner: "p1",
            source: if i < 2 { "desk" } else { "desk_comments" },
            key: "k",
            fields: f,
            time: time(f),
        });
        let (cases, dropped) = cases(input);
        assert_eq!(dropped, 1);
        assert_eq!(cases.len(), 1);
        let c = &cases[0];
        assert_eq!((c.number.as_str(), c.status, c.priority.as_str(), c.requester.as_str()), ("7", CaseStatus::Pending, "high", "p1"));
        assert_eq!((c.subject.as_deref(), c.team.as_deref(), c.channel.as_deref()), (Some("Broken zip"), Some("support"), Some("email")));
        assert_eq!(c.conversation.len(), 2);
        assert!(!c.conversation[0].public && c.conversation[1].public);
        assert_eq!(c.log.len(), 5);
    }

    #[test]
    fn an_agent_opened_ticket_starts_with_the_agents_comment() {
        let tickets = CaseMapping { number: Some("id".into()), status: Some("status".into()), ..CaseMapping::default() };
        let notes = CaseMapping { comment_of: Some("ticket".into()), author: Some("role".into()), ..CaseMapping::default() };
        let rows = [
            json!({"id": "8", "status": "open"}),
            json!({"ticket": "8", "role": "agent"}),
            json!({"ticket": "8", "role": "end-user"}),
            // No time anywhere: skipped, not dated 1970.
            json!({"id": "9", "status": "open"}),
        ];
        let maps: Vec<Map<String, Value>> = rows.iter().map(|r| r.as_object().unwrap().clone()).collect();
        let times = [Some(100), Some(100), Some(400), None];
        let input = maps.iter().zip(times).enumerate().map(|(i, (f, time))| CaseRow {
            mapping: if i == 0 || i == 3 { &tickets } else { &notes },
            owner: "p",
            source: "desk",
            key: "k",
            fields: f,
            time,
        });
        let (cases, _) = cases(input);
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].log[0].comment, Some(Comment { public: true, by: Author::Agent }));
        assert_eq!(cases[0].log.iter().filter(|c| c.comment.is_some()).count(), 2, "the opening comment is not counted twice");
    }
}
