//! SLA clocks computed from a case's event log, after Zendesk's published metric
//! definitions. Nothing is stored: clocks are recomputed from the log each time, so a
//! changed policy, calendar or priority applies to history as well.
//!
//! - **first reply**: from the case's creation (or, for a case an agent opened with a public
//!   comment, from the requester's first public comment) to the first public agent comment.
//! - **next reply**: after the first reply, from the oldest unanswered public end-user
//!   comment to the next public agent comment; one clock per exchange.
//! - **periodic update**: from each public agent comment to the next one.
//! - **pausable update**: the same, counted only while new, open or on hold.
//! - **requester wait**: time new, open or on hold (pending pauses it), until solved.
//! - **agent work**: time new or open (pending and on hold pause it), until solved.
//! - **total resolution**: time from creation to solved, in every status but solved.
//!
//! Solving a case ends its reply and update clocks (Zendesk fulfils them then); a public
//! end-user comment on a pending, on-hold or solved case reopens it, as Zendesk does. The
//! policy is the first whose conditions the case meets, judged on the case as it was when
//! the clock ended (or now, for a running clock), with that moment's priority: Zendesk
//! re-applies policies on every update.

use crate::calendar::Calendar;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    New,
    Open,
    Pending,
    OnHold,
    Solved,
    Closed,
}

impl CaseStatus {
    pub const ALL: [CaseStatus; 6] =
        [CaseStatus::New, CaseStatus::Open, CaseStatus::Pending, CaseStatus::OnHold, CaseStatus::Solved, CaseStatus::Closed];

    /// A help desk's own word for a status: `On-hold`, `on hold`, `hold`, `resolved`, ….
    pub fn parse(text: &str) -> Option<Self> {
        let folded: String = text.trim().to_lowercase().chars().filter(|c| c.is_alphanumeric()).collect();
        Some(match folded.as_str() {
            "new" => CaseStatus::New,
            "open" | "reopened" | "inprogress" => CaseStatus::Open,
            "pending" | "waitingoncustomer" | "awaitingcustomer" => CaseStatus::Pending,
            "onhold" | "hold" | "waitingonthirdparty" => CaseStatus::OnHold,
            "solved" | "resolved" => CaseStatus::Solved,
            "closed" => CaseStatus::Closed,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::New => "new",
            CaseStatus::Open => "open",
            CaseStatus::Pending => "pending",
            CaseStatus::OnHold => "on_hold",
            CaseStatus::Solved => "solved",
            CaseStatus::Closed => "closed",
        }
    }

    pub fn is_done(self) -> bool {
        matches!(self, CaseStatus::Solved | CaseStatus::Closed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Author {
    EndUser,
    Agent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub public: bool,
    pub by: Author,
}

/// One entry of a case's event log: what changed at `at` (Unix seconds). The first entry is
/// the creation; a status not given at creation is `new`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaseChange {
    pub at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CaseStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    /// Other fields a policy's conditions may read (`channel`, `team`, `type`), set from now on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<Comment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    FirstReply,
    NextReply,
    PeriodicUpdate,
    PausableUpdate,
    RequesterWait,
    AgentWork,
    TotalResolution,
}

impl Metric {
    pub const ALL: [Metric; 7] = [
        Metric::FirstReply,
        Metric::NextReply,
        Metric::PeriodicUpdate,
        Metric::PausableUpdate,
        Metric::RequesterWait,
        Metric::AgentWork,
        Metric::TotalResolution,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::FirstReply => "first_reply",
            Metric::NextReply => "next_reply",
            Metric::PeriodicUpdate => "periodic_update",
            Metric::PausableUpdate => "pausable_update",
            Metric::RequesterWait => "requester_wait",
            Metric::AgentWork => "agent_work",
            Metric::TotalResolution => "total_resolution",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Metric::ALL.into_iter().find(|m| m.as_str() == text)
    }

    /// Whether the clock counts while the case is in `status`.
    fn counts_in(self, status: CaseStatus) -> bool {
        use CaseStatus::*;
        match self {
            Metric::FirstReply | Metric::NextReply | Metric::PeriodicUpdate => !status.is_done(),
            Metric::PausableUpdate | Metric::RequesterWait => matches!(status, New | Open | OnHold),
            Metric::AgentWork => matches!(status, New | Open),
            Metric::TotalResolution => !status.is_done(),
        }
    }
}

/// `[[service.sla]]`: one policy, in order; the first whose conditions hold applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicyConfig {
    pub name: String,
    /// Field → value or values, all of which must hold (`priority`, `status`, `channel` or
    /// any field the case mapping sets); compared without regard to case. Empty: every case.
    #[serde(default)]
    pub when: BTreeMap<String, OneOrMany>,
    /// A calendar of `[service.calendars]`: targets count its open hours. Absent: every hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    /// A running clock this close to its target is in warning (`"1 hour"`); default 1 hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_before: Option<String>,
    /// Priority (`low`, `normal`, `high`, `urgent`) → metric → target (`"4 hours"`).
    pub targets: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn holds(&self, value: &str) -> bool {
        match self {
            OneOrMany::One(v) => v.eq_ignore_ascii_case(value),
            OneOrMany::Many(vs) => vs.iter().any(|v| v.eq_ignore_ascii_case(value)),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SlaError {
    #[error("SLA policy \"{policy}\": unknown calendar \"{calendar}\"; define it as [service.calendars.{calendar}]")]
    Calendar { policy: String, calendar: String },
    #[error("SLA policy \"{policy}\": unknown metric \"{metric}\"; use first_reply, next_reply, periodic_update, pausable_update, requester_wait, agent_work or total_resolution")]
    Metric { policy: String, metric: String },
    #[error(
        "SLA policy \"{policy}\": bad duration \"{text}\"; write a whole number and a unit, as \"30 minutes\", \"4 hours\" or \"2 days\""
    )]
    Duration { policy: String, text: String },
    #[error("calendar \"{name}\": {error}")]
    BadCalendar { name: String, error: crate::calendar::CalendarError },
}

#[derive(Debug, Clone)]
struct Policy {
    name: String,
    when: BTreeMap<String, OneOrMany>,
    calendar: Calendar,
    warn_before: i64,
    /// Lower-cased priority → metric → target seconds.
    targets: BTreeMap<String, BTreeMap<Metric, i64>>,
}

/// The compiled policies, in order.
#[derive(Debug, Clone, Default)]
pub struct Sla {
    policies: Vec<Policy>,
}

fn seconds(policy: &str, text: &str) -> Result<i64, SlaError> {
    kinship_expr::parse_duration(text)
        .filter(|ms| *ms > 0)
        .map(|ms| ms / 1000)
        .ok_or_else(|| SlaError::Duration { policy: policy.into(), text: text.into() })
}

impl Sla {
    pub fn compile(config: &crate::ServiceConfig) -> Result<Self, SlaError> {
        let mut calendars = BTreeMap::new();
        for (name, c) in &config.calendars {
            let calendar = Calendar::compile(c).map_err(|error| SlaError::BadCalendar { name: name.clone(), error })?;
            calendars.insert(name.as_str(), calendar);
        }
        let mut policies = Vec::new();
        for p in &config.sla {
            let calendar = match &p.calendar {
                None => Calendar::always(),
                Some(name) => calendars
                    .get(name.as_str())
                    .cloned()
                    .ok_or_else(|| SlaError::Calendar { policy: p.name.clone(), calendar: name.clone() })?,
            };
            let mut targets = BTreeMap::new();
            for (priority, metrics) in &p.targets {
                let mut by_metric = BTreeMap::new();
                for (metric, target) in metrics {
                    let m = Metric::parse(metric).ok_or_else(|| SlaError::Metric { policy: p.name.clone(), metric: metric.clone() })?;
                    by_metric.insert(m, seconds(&p.name, target)?);
                }
                targets.insert(priority.to_lowercase(), by_metric);
            }
            let warn_before = p.warn_before.as_deref().map(|w| seconds(&p.name, w)).transpose()?.unwrap_or(3600);
            policies.push(Policy { name: p.name.clone(), when: p.when.clone(), calendar, warn_before, targets });
        }
        Ok(Sla { policies })
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Every clock of a case as of `now`: one per metric with a target, and one per exchange
    /// for next reply and the updates. `changes` in time order (ties in the given order).
    pub fn clocks(&self, changes: &[CaseChange], now: i64) -> Vec<Clock> {
        let states = replay(changes);
        let mut clocks = Vec::new();
        for (metric, start, end) in spans(changes, &states) {
            let judged_at = end.unwrap_or(now).max(start);
            let state = state_at(&states, judged_at);
            let Some(policy) = self.policies.iter().find(|p| p.when.iter().all(|(f, v)| state.field(f).is_some_and(|x| v.holds(x)))) else {
                continue;
            };
            let priority = state.priority.as_deref().unwrap_or("normal").to_lowercase();
            let Some(&target) = policy.targets.get(&priority).and_then(|t| t.get(&metric)) else { continue };
            clocks.push(measure(policy, metric, &states, start, end, now, target, &priority));
        }
        clocks
    }
}

/// The case's state from an instant on.
#[derive(Debug, Clone)]
struct State {
    from: i64,
    status: CaseStatus,
    priority: Option<String>,
    fields: BTreeMap<String, String>,
}

impl State {
    fn field(&self, name: &str) -> Option<&str> {
        match name {
            "status" => Some(self.status.as_str()),
            "priority" => Some(self.priority.as_deref().unwrap_or("normal")),
            _ => self.fields.get(name).map(String::as_str),
        }
    }
}

fn replay(changes: &[CaseChange]) -> Vec<State> {
    let mut states: Vec<State> = Vec::with_capacity(changes.len());
    let mut current = State { from: changes.first().map_or(0, |c| c.at), status: CaseStatus::New, priority: None, fields: BTreeMap::new() };
    for c in changes {
        current.from = c.at;
        if let Some(s) = c.status {
            current.status = s;
        } else if matches!(c.comment, Some(Comment { public: true, by: Author::EndUser }))
            && matches!(current.status, CaseStatus::Pending | CaseStatus::OnHold | CaseStatus::Solved)
        {
            current.status = CaseStatus::Open;
        }
        if let Some(p) = &c.priority {
            current.priority = Some(p.clone());
        }
        for (k, v) in &c.fields {
            current.fields.insert(k.clone(), v.clone());
        }
        match states.last_mut() {
            Some(last) if last.from == c.at => *last = current.clone(),
            _ => states.push(current.clone()),
        }
    }
    states
}

/// The status a log leaves a case in.
pub fn replay_status(changes: &[CaseChange]) -> CaseStatus {
    replay(changes).last().map_or(CaseStatus::New, |s| s.status)
}

fn state_at(states: &[State], at: i64) -> &State {
    let i = states.partition_point(|s| s.from <= at);
    &states[i.saturating_sub(1)]
}

/// Each clock's metric, start and end (`None`: still running).
fn spans(changes: &[CaseChange], states: &[State]) -> Vec<(Metric, i64, Option<i64>)> {
    let mut out = Vec::new();
    let Some(created) = changes.first() else { return out };
    // The status after each change, to know when the case was solved.
    let status_after = |i: usize| state_at(states, changes[i].at).status;
    let public = |c: &CaseChange, by: Author| matches!(c.comment, Some(Comment { public: true, by: b }) if b == by);

    // First reply.
    let agent_opened = public(created, Author::Agent);
    let first_start = if agent_opened { changes.iter().find(|c| public(c, Author::EndUser)).map(|c| c.at) } else { Some(created.at) };
    let mut first_reply_at = None;
    if let Some(start) = first_start {
        let mut end = None;
        // An agent's opening comment is not a reply.
        for (i, c) in changes.iter().enumerate().filter(|(i, c)| c.at >= start && !(agent_opened && *i == 0)) {
            if public(c, Author::Agent) {
                end = Some(c.at);
                first_reply_at = Some(c.at);
                break;
            }
            if status_after(i).is_done() {
                // Solving fulfils the first reply; a reopening comment then waits for the next.
                end = Some(c.at);
                first_reply_at = Some(c.at);
                break;
            }
        }
        out.push((Metric::FirstReply, start, end));
    }

    // Next reply: exchanges after the first reply.
    if let Some(first) = first_reply_at {
        let mut waiting: Option<i64> = None;
        for (i, c) in changes.iter().enumerate().filter(|(_, c)| c.at > first) {
            if public(c, Author::EndUser) && waiting.is_none() {
                waiting = Some(c.at);
            } else if public(c, Author::Agent) || status_after(i).is_done() {
                if let Some(s) = waiting.take() {
                    out.push((Metric::NextReply, s, Some(c.at)));
                }
            }
        }
        if let Some(s) = waiting {
            out.push((Metric::NextReply, s, None));
        }
    }

    // Updates: from each public agent comment to the next, or to solving.
    for metric in [Metric::PeriodicUpdate, Metric::PausableUpdate] {
        let mut since: Option<i64> = None;
        for (i, c) in changes.iter().enumerate() {
            let solved = status_after(i).is_done();
            if public(c, Author::Agent) {
                if let Some(s) = since.take() {
                    out.push((metric, s, Some(c.at)));
                }
                if !solved {
                    since = Some(c.at);
                }
            } else if solved {
                if let Some(s) = since.take() {
                    out.push((metric, s, Some(c.at)));
                }
            }
        }
        if let Some(s) = since {
            out.push((metric, s, None));
        }
    }

    // Resolution clocks: one each, from creation; ended while the case is solved or closed.
    // Solved (or closed) since the start of the last run of done states: a later close or a
    // private note does not move the moment it was solved.
    let solved_since = states.iter().rposition(|s| !s.status.is_done()).map_or(0, |i| i + 1);
    let end = states.get(solved_since).map(|s| s.from);
    for metric in [Metric::RequesterWait, Metric::AgentWork, Metric::TotalResolution] {
        out.push((metric, created.at, end));
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockState {
    /// Ended within its target.
    Achieved,
    /// Ended after its target, or still running past it.
    Breached,
    /// Running, due within the policy's `warn_before`.
    Warning,
    Active,
    /// Running, but the case's status pauses it.
    Paused,
}

impl ClockState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockState::Achieved => "achieved",
            ClockState::Breached => "breached",
            ClockState::Warning => "warning",
            ClockState::Active => "active",
            ClockState::Paused => "paused",
        }
    }
}

/// One SLA clock of a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clock {
    pub metric: Metric,
    pub policy: String,
    pub priority: String,
    pub start: i64,
    /// When it ended; `None` while running.
    pub end: Option<i64>,
    pub target_minutes: i64,
    /// Time counted so far (business time under a calendar, minus paused time), in seconds.
    pub counted_seconds: i64,
    /// When a running, counting clock reaches its target (in the past when breached).
    pub due: Option<i64>,
    /// When the target was passed, if it was.
    pub breached_at: Option<i64>,
    pub state: ClockState,
}

#[allow(clippy::too_many_arguments)]
fn measure(
    policy: &Policy,
    metric: Metric,
    states: &[State],
    start: i64,
    end: Option<i64>,
    now: i64,
    target: i64,
    priority: &str,
) -> Clock {
    let until = end.unwrap_or(now).max(start);
    let mut counted = 0;
    let mut breached_at = None;
    let first = states.partition_point(|s| s.from <= start).saturating_sub(1);
    for (i, s) in states.iter().enumerate().skip(first) {
        let from = s.from.max(start);
        let to = states.get(i + 1).map_or(until, |n| n.from.min(until));
        if from >= until {
            break;
        }
        if to <= from || !metric.counts_in(s.status) {
            continue;
        }
        let open = policy.calendar.open_seconds(from, to);
        if breached_at.is_none() && counted + open > target {
            breached_at = policy.calendar.add(from, target - counted);
        }
        counted += open;
    }
    let running = end.is_none();
    let counting = running && metric.counts_in(state_at(states, until).status);
    let due = if !counting {
        None
    } else if counted >= target {
        breached_at.or(Some(now))
    } else {
        policy.calendar.add(now.max(start), target - counted)
    };
    let state = if counted > target {
        ClockState::Breached
    } else if !running {
        ClockState::Achieved
    } else if !counting {
        ClockState::Paused
    } else if due.is_some_and(|d| d - now <= policy.warn_before) {
        ClockState::Warning
    } else {
        ClockState::Active
    };
    Clock {
        metric,
        policy: policy.name.clone(),
        priority: priority.to_string(),
        start,
        end,
        target_minutes: target / 60,
        counted_seconds: counted,
        due,
        breached_at: if counted > target { breached_at } else { None },
        state,
    }
}

/// The next moment a case needs attention: its earliest due running clock.
pub fn next_due(clocks: &[Clock]) -> Option<i64> {
    clocks.iter().filter_map(|c| c.due).min()
}

/// Share of ended clocks that met their target, per team and metric: (achieved, ended).
pub fn attainment<'a>(cases: impl IntoIterator<Item = (&'a str, &'a [Clock])>) -> BTreeMap<(String, Metric), (u64, u64)> {
    let mut out: BTreeMap<(String, Metric), (u64, u64)> = BTreeMap::new();
    for (team, clocks) in cases {
        for c in clocks.iter().filter(|c| c.end.is_some()) {
            let e = out.entry((team.to_string(), c.metric)).or_default();
            e.0 += u64::from(c.state == ClockState::Achieved);
            e.1 += 1;
        }
    }
    out
}
