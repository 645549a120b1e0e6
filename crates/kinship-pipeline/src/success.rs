//! Customer success over the audience in memory: NPS with its interval (overall, weighted by
//! revenue, and by month, first-purchase cohort, segment or a property of the answer), the
//! share of detractors among customers who stopped buying, Reichheld's earned growth per
//! period from revenue events, and health scores with the exceptions of the week and a
//! backtest against who actually stopped. The arithmetic is `kinship-measure`'s; this module
//! reads each profile's events (every source, after resolution) as `[measures]` says.

use crate::{PipelineError, Result};
use kinship_core::measure::MeasuresConfig;
use kinship_expr::{EventView, ProfileView, Program, Scalar};
use kinship_measure::classify::{self, Logistic};
use kinship_measure::growth::{self, Came, Growth};
use kinship_measure::health::{Alert, AlertBook, AlertChange, AsOf, Band, HealthProgram, Reason, Scored};
use kinship_measure::nps::{Group, Score, Tally};
use kinship_segments::{Audience, HeldProfile, Kind};
use serde::Serialize;
use std::collections::BTreeMap;

const DAY: i64 = 86_400_000;
/// How many profiles a number lists (the drill-down).
const SAMPLE: usize = 50;

/// A property's value as a number: a number, or text that reads as one.
fn number(value: Scalar<'_>) -> Option<f64> {
    match value {
        Scalar::Number(n) if n.is_finite() => Some(n),
        Scalar::Str(s) => s.trim().parse().ok().filter(|n: &f64| n.is_finite()),
        _ => None,
    }
}

fn text(value: Scalar<'_>) -> Option<String> {
    match value {
        Scalar::Null => None,
        Scalar::Str(s) => Some(s.to_string()),
        other => Some(other.to_json().to_string()),
    }
}

/// The month holding an instant (UTC) as `year × 12 + month − 1`: cheap to compute for
/// every answer, turned into `YYYY-MM` once per group.
fn month_index(ms: i64) -> i64 {
    let (year, month, _) = kinship_expr::civil_from_days(ms.div_euclid(DAY));
    year * 12 + month - 1
}

fn month_label(index: i64) -> String {
    format!("{:04}-{:02}", index.div_euclid(12), index.rem_euclid(12) + 1)
}

/// What an answer is grouped under, labelled once per group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Month(i64),
    /// No purchase yet (cohorts only).
    Never,
    Segment(usize),
    Text(String),
}

/// A duration from the configuration, or an error naming the setting.
fn config_duration(text: &str, setting: &str) -> Result<i64> {
    kinship_expr::parse_duration(text)
        .ok_or_else(|| PipelineError::Config(format!("{setting}: `{text}` is not a duration: write `90 days` or `12 weeks`")))
}

/// A profile's revenue events: (time, amount), oldest first.
fn revenue_of(profile: &HeldProfile<'_>, config: &MeasuresConfig) -> Vec<(i64, f64)> {
    profile
        .events(Some(&config.revenue.event))
        .filter_map(|e| Some((e.timestamp_ms(), number(e.property(&config.revenue.amount))?)))
        .collect()
}

/// The instant these measures are read as of: the newest event any profile holds, or now if
/// that is later than now (a clock ahead). An export loaded today is read as of when it was
/// taken, so "the last 90 days" means the export's last 90 days; a live system's newest
/// event is a moment ago.
pub fn data_now(audience: &Audience) -> i64 {
    let newest = audience.map_profiles(|p| p.events(None).next_back().map(|e| e.timestamp_ms())).into_iter().max();
    newest.map_or_else(crate::now_ms, |t| t.min(crate::now_ms()))
}

/// How NPS answers are grouped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NpsBy {
    /// The month of the answer.
    Month,
    /// The month of the customer's first revenue event.
    Cohort,
    /// Each segment the profile is in now.
    Segment,
    /// A property of the answer (the channel, the survey).
    Property(String),
}

impl std::str::FromStr for NpsBy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "month" => Ok(NpsBy::Month),
            "cohort" => Ok(NpsBy::Cohort),
            "segment" => Ok(NpsBy::Segment),
            other => match other.strip_prefix("property:") {
                Some(p) if !p.is_empty() => Ok(NpsBy::Property(p.to_string())),
                _ => Err(format!("`{other}`: group by month, cohort, segment or property:NAME")),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NpsGroup {
    pub label: String,
    pub answers: u64,
    /// `None` under `min_answers`: shown as insufficient.
    pub score: Option<Score>,
    /// Some of the profiles that answered (the drill-down).
    pub profiles: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NpsReport {
    pub answers: u64,
    pub min_answers: u64,
    pub overall: Option<Score>,
    /// Each answer weighted by its customer's lifetime revenue.
    pub revenue_weighted: Option<Score>,
    pub groups: Vec<NpsGroup>,
    /// Of customers who answered, by whether they have stopped buying (no revenue event in
    /// `churn_after`): how many, and the share whose latest answer was a detractor's.
    pub churned_answered: u64,
    pub detractors_among_churned: Option<f64>,
    pub active_answered: u64,
    pub detractors_among_active: Option<f64>,
    /// Some detractors and promoters by their latest answer (the drill-down).
    pub detractors: Vec<String>,
    pub promoters: Vec<String>,
}

/// One profile's part in NPS.
struct Answers<'a> {
    id: &'a str,
    /// (groups, score)
    answers: Vec<(Vec<Key>, f64)>,
    latest: Option<f64>,
    revenue: f64,
    churned: Option<bool>,
}

/// NPS over every profile's survey answers, grouped `by`.
pub fn nps(audience: &Audience, config: &MeasuresConfig, by: &NpsBy, now_ms: i64) -> Result<NpsReport> {
    let churn_after = config_duration(&config.churn_after, "measures.churn_after")?;
    let segments: Vec<String> = audience.definitions().into_iter().filter(|d| d.kind == Kind::Segment).map(|d| d.name).collect();
    let per_profile = audience.map_profiles(|profile| {
        let mut answers = Vec::new();
        let mut latest = None;
        for e in profile.events(Some(&config.nps.event)) {
            let Some(score) = number(e.property(&config.nps.score)).filter(|s| Group::of(*s).is_some()) else { continue };
            let keys = match by {
                NpsBy::Month => vec![Key::Month(month_index(e.timestamp_ms()))],
                // Filled in below, once the revenue is read.
                NpsBy::Cohort => Vec::new(),
                NpsBy::Segment => (0..segments.len()).filter(|&i| profile.in_segment(&segments[i])).map(Key::Segment).collect(),
                NpsBy::Property(p) => vec![Key::Text(text(e.property(p)).unwrap_or_else(|| "(none)".into()))],
            };
            answers.push((keys, score));
            latest = Some(score);
        }
        if answers.is_empty() {
            return None;
        }
        let revenue = revenue_of(profile, config);
        if *by == NpsBy::Cohort {
            let cohort = revenue.first().map_or(Key::Never, |(t, _)| Key::Month(month_index(*t)));
            answers.iter_mut().for_each(|(keys, _)| keys.push(cohort.clone()));
        }
        let churned = revenue.last().map(|(t, _)| *t < now_ms - churn_after);
        Some(Answers { id: profile.id(), answers, latest, revenue: revenue.iter().map(|r| r.1).sum(), churned })
    });
    let (mut overall, mut weighted) = (Tally::default(), Tally::default());
    let mut groups: BTreeMap<Key, (Tally, Vec<String>)> = BTreeMap::new();
    let (mut churned, mut active) = ((0u64, 0u64), (0u64, 0u64));
    let (mut detractors, mut promoters) = (Vec::new(), Vec::new());
    for p in &per_profile {
        for (keys, score) in &p.answers {
            overall.add(*score, 1.0);
            weighted.add(*score, p.revenue);
            for key in keys {
                let (tally, ids) = groups.entry(key.clone()).or_default();
                tally.add(*score, 1.0);
                if ids.len() < SAMPLE && ids.last().map(String::as_str) != Some(p.id) {
                    ids.push(p.id.to_string());
                }
            }
        }
        let group = p.latest.and_then(Group::of);
        let detractor = u64::from(group == Some(Group::Detractor));
        match p.churned {
            Some(true) => churned = (churned.0 + 1, churned.1 + detractor),
            Some(false) => active = (active.0 + 1, active.1 + detractor),
            None => {}
        }
        match group {
            Some(Group::Detractor) if detractors.len() < SAMPLE => detractors.push(p.id.to_string()),
            Some(Group::Promoter) if promoters.len() < SAMPLE => promoters.push(p.id.to_string()),
            _ => {}
        }
    }
    let share = |(n, d): (u64, u64)| (n > 0).then(|| d as f64 / n as f64);
    Ok(NpsReport {
        answers: overall.answers,
        min_answers: config.min_answers,
        overall: overall.score(config.min_answers),
        revenue_weighted: weighted.score(config.min_answers),
        groups: groups
            .into_iter()
            .map(|(key, (tally, profiles))| NpsGroup {
                label: match key {
                    Key::Month(index) => month_label(index),
                    Key::Never => "no purchase".into(),
                    Key::Segment(i) => segments[i].clone(),
                    Key::Text(text) => text,
                },
                answers: tally.answers,
                score: tally.score(config.min_answers),
                profiles,
            })
            .collect(),
        churned_answered: churned.0,
        detractors_among_churned: share(churned),
        active_answered: active.0,
        detractors_among_active: share(active),
        detractors,
        promoters,
    })
}

/// The length of a growth period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Month,
    Quarter,
    Year,
}

impl std::str::FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "month" => Ok(Period::Month),
            "quarter" => Ok(Period::Quarter),
            "year" => Ok(Period::Year),
            other => Err(format!("`{other}`: a period is month, quarter or year")),
        }
    }
}

impl Period {
    fn months(self) -> i64 {
        match self {
            Period::Month => 1,
            Period::Quarter => 3,
            Period::Year => 12,
        }
    }
}

/// The start (ms) of the period `offset` periods after the one holding `at_ms`.
fn period_start(period: Period, at_ms: i64, offset: i64) -> i64 {
    let index = month_index(at_ms);
    let first = index - index.rem_euclid(period.months()) + offset * period.months();
    kinship_expr::days_from_civil(first.div_euclid(12), first.rem_euclid(12) + 1, 1) * DAY
}

#[derive(Debug, Clone, Serialize)]
pub struct GrowthPeriod {
    pub label: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// The period holding now, not over yet.
    pub partial: bool,
    pub growth: Growth,
    /// Some of the profiles behind the numbers: new customers who came earned and bought,
    /// and last period's customers who bought nothing this period.
    pub earned: Vec<String>,
    pub bought: Vec<String>,
    pub lost: Vec<String>,
}

/// Earned growth for each of the last `count` periods (the last one holding now), from every
/// profile's revenue events.
pub fn growth(audience: &Audience, config: &MeasuresConfig, period: Period, count: usize, now_ms: i64) -> Result<Vec<GrowthPeriod>> {
    let count = count.clamp(1, 120);
    let earned = match &config.earned {
        Some(text) => Some(
            kinship_expr::compile_segment(text, &audience.schema())
                .map_err(|e| PipelineError::Config(format!("measures.earned: {}", e.render(text))))?,
        ),
        None => None,
    };
    // starts[0] opens the period before the first shown; starts[count + 1] closes the last.
    let starts: Vec<i64> = (0..=count as i64 + 1).map(|k| period_start(period, now_ms, k - count as i64)).collect();
    let context = kinship_expr::EvalContext::at(now_ms);
    let per_profile = audience.map_profiles(|profile| {
        let revenue = revenue_of(profile, config);
        let first = revenue.first()?.0;
        let mut per_period = vec![0.0; count + 1];
        for (t, amount) in &revenue {
            let k = starts.partition_point(|s| s <= t);
            if (1..=count + 1).contains(&k) {
                per_period[k - 1] += amount;
            }
        }
        let came = match &earned {
            Some(program) if Program::matches(program, profile, &context) => Came::Earned,
            _ => Came::Bought,
        };
        Some((profile.id(), first, per_period, came))
    });
    let periods = (1..=count)
        .map(|k| {
            let customers: Vec<growth::Customer> = per_profile
                .iter()
                .map(|(_, first, revenue, came)| growth::Customer {
                    previous: revenue[k - 1],
                    current: revenue[k],
                    earlier: *first < starts[k - 1],
                    came: *came,
                })
                .collect();
            let sample = |keep: &dyn Fn(&growth::Customer) -> bool| -> Vec<String> {
                per_profile.iter().zip(&customers).filter(|(_, c)| keep(c)).take(SAMPLE).map(|(p, _)| p.0.to_string()).collect()
            };
            let new = |c: &growth::Customer| c.previous <= 0.0 && c.current > 0.0 && !c.earlier;
            GrowthPeriod {
                label: kinship_expr::format_timestamp(starts[k]).chars().take(if period == Period::Month { 7 } else { 10 }).collect(),
                start_ms: starts[k],
                end_ms: starts[k + 1],
                partial: starts[k + 1] > now_ms,
                earned: sample(&|c| new(c) && c.came == Came::Earned),
                bought: sample(&|c| new(c) && c.came == Came::Bought),
                lost: sample(&|c| c.previous > 0.0 && c.current <= 0.0),
                growth: growth::growth(customers.iter().copied()),
            }
        })
        .collect();
    Ok(periods)
}

/// Health over every profile: how many in each band, the distribution, the lowest scores with
/// their reasons, and the exceptions of the last week (alerts a week-old score would not have
/// raised, context applied, the daily limit per owner counted).
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub name: String,
    pub scored: u64,
    pub red: u64,
    pub yellow: u64,
    pub green: u64,
    /// Profiles per ten points (0–9, 10–19, …, 90–100).
    pub distribution: Vec<u64>,
    /// The lowest scores, each with its explanation.
    pub lowest: Vec<(String, Scored)>,
    pub alerts: Vec<AlertChange>,
    /// Low scores or falls a context explained (no alert).
    pub explained: u64,
}

/// Scores every profile now and compares with a week ago for the alerts.
pub fn health(audience: &Audience, program: &HealthProgram, now_ms: i64) -> HealthReport {
    let week_ago = now_ms - 7 * DAY;
    let mut scored = audience.map_profiles(|profile| {
        let current = program.score(profile, now_ms)?;
        let previous = program.score(&AsOf { profile, until_ms: week_ago }, week_ago);
        Some((profile.id(), owner_of(program, profile), previous, current))
    });
    scored.sort_unstable_by(|a, b| a.3.score.total_cmp(&b.3.score).then_with(|| a.0.cmp(b.0)));
    let mut report = HealthReport {
        name: program.definition.name.clone(),
        scored: scored.len() as u64,
        red: 0,
        yellow: 0,
        green: 0,
        distribution: vec![0; 10],
        lowest: Vec::new(),
        alerts: Vec::new(),
        explained: 0,
    };
    let mut book = AlertBook::default();
    for (id, owner, previous, current) in &scored {
        match current.band {
            Band::Red => report.red += 1,
            Band::Yellow => report.yellow += 1,
            Band::Green => report.green += 1,
        }
        report.distribution[((current.score / 10.0) as usize).min(9)] += 1;
        if report.lowest.len() < SAMPLE {
            report.lowest.push((id.to_string(), current.clone()));
        }
        if program.alert_reasons(previous.as_ref(), current).1.is_some() {
            report.explained += 1;
        }
        let owner = owner.as_deref().unwrap_or(UNASSIGNED);
        report.alerts.extend(book.observe(program, id, owner, previous.as_ref(), current, now_ms));
    }
    report
}

/// Whose queue a customer's alerts go to: the trait `alerts.owner` names, or nobody's.
const UNASSIGNED: &str = "unassigned";

/// The owner the trait names, or `None` for [`UNASSIGNED`] (no string made for a profile
/// without one).
fn owner_of<P: ProfileView>(program: &HealthProgram, profile: &P) -> Option<String> {
    let named = program.definition.alerts.owner.as_deref().and_then(|t| text(profile.trait_value(t)));
    named.filter(|o| !o.trim().is_empty())
}

/// What one pass of a saved health definition's alert book did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AlertPass {
    pub scored: usize,
    pub opened: usize,
    pub held_back: usize,
    pub closed: usize,
    /// Open after the pass.
    pub open: usize,
}

/// Until when an alert is snoozed, from a date or time (`2026-12-20`, RFC 3339) or a duration
/// from `now_ms` (`3 days`); it must be later than now.
pub fn snooze_until(text: &str, now_ms: i64) -> std::result::Result<i64, String> {
    kinship_expr::parse_duration(text)
        .map(|d| now_ms.saturating_add(d))
        .or_else(|| kinship_expr::parse_timestamp(text))
        .filter(|until| *until > now_ms)
        .ok_or_else(|| format!("until {text:?}: give a future date (2026-12-20) or a duration (3 days)"))
}

/// Why an alert is snoozed: 1 to 500 characters, trimmed.
pub fn snooze_reason(text: &str) -> std::result::Result<String, String> {
    let reason = text.trim();
    match reason.chars().count() {
        1..=500 => Ok(reason.to_string()),
        _ => Err("say why in the reason (1 to 500 characters)".into()),
    }
}

/// The event an opened alert is, when `[flows] source` is set: what a flow starts on.
pub const HEALTH_ALERT_OPENED: &str = "Health Alert Opened";

/// Most open alerts one pass reads back from the store.
const ALERTS_READ: usize = 1_000_000;

/// Keeps a saved health definition's alerts in the store: every profile's score now against
/// its score a day before (as of then, from its events), through the book of alerts kept
/// open (at most one per profile and reason, closed when the condition clears, held back over
/// an owner's daily limit). Running it again with nothing changed changes nothing. With
/// `[flows] source` set, each opened alert is also an event of that source (`Health Alert
/// Opened`, written with the alert), so a flow can start on it and make it a task.
pub fn keep_alerts(
    store: &mut dyn kinship_store::Database,
    config: &kinship_core::Config,
    audience: &Audience,
    name: &str,
    now_ms: i64,
) -> Result<AlertPass> {
    let (changes, pass) = plan_alerts(&*store, config, audience, name, now_ms)?;
    store.record_alerts(&changes, now_ms)?;
    Ok(pass)
}

/// What [`keep_alerts`] would write, read and decided without writing: a server scores with
/// the audience locked and writes after, in the writers' turn, so ingest does not wait on
/// the scoring. Writing it later is safe: an alert opened since is not opened twice and a
/// closed one is not closed again.
pub fn plan_alerts(
    store: &dyn kinship_store::Database,
    config: &kinship_core::Config,
    audience: &Audience,
    name: &str,
    now_ms: i64,
) -> Result<(kinship_store::AlertChanges, AlertPass)> {
    let program = audience.saved_health(name).ok_or_else(|| PipelineError::Config(format!("no health definition named {name}")))?;
    let day = now_ms.div_euclid(DAY);
    let kept = store.health_alerts(name, Some("open"), ALERTS_READ)?;
    let mut today: BTreeMap<(String, i64), (usize, usize)> = BTreeMap::new();
    // Held back today already: counted once, not again at every pass.
    let mut held_today = std::collections::HashSet::new();
    for row in store.health_alerts_since(name, day * DAY)?.into_iter().filter(|r| r.opened_at.div_euclid(DAY) == day) {
        let counts = today.entry((row.owner, day)).or_default();
        if row.status == "held" {
            counts.1 += 1;
            held_today.insert((row.profile_id, row.reason));
        } else {
            counts.0 += 1;
        }
    }
    let ids: std::collections::HashMap<(String, Reason), (i64, f64)> =
        kept.iter().filter_map(|r| Some(((r.profile_id.clone(), Reason::parse(&r.reason)?), (r.id, r.score)))).collect();
    let open = kept.iter().filter_map(|r| {
        Some(Alert {
            profile: r.profile_id.clone(),
            reason: Reason::parse(&r.reason)?,
            owner: r.owner.clone(),
            opened_ms: r.opened_at,
            from_score: r.from_score,
            score: r.score,
        })
    });
    let mut book = AlertBook::restore(open, today);
    let day_ago = now_ms - DAY;
    let scored = audience.map_profiles(|profile| {
        let current = program.score(profile, now_ms)?;
        let previous = program.score(&AsOf { profile, until_ms: day_ago }, day_ago);
        Some((profile.id(), owner_of(program, profile), previous, current))
    });
    let mut pass = AlertPass { scored: scored.len(), ..AlertPass::default() };
    let mut changes: Vec<AlertChange> = Vec::new();
    let still: std::collections::HashSet<&str> = scored.iter().map(|s| s.0).collect();
    let gone: Vec<String> = book.open.keys().filter(|p| !still.contains(p.as_str())).cloned().collect();
    for profile in gone {
        changes.extend(book.forget(&profile));
    }
    for (id, owner, previous, current) in &scored {
        changes.extend(book.observe(program, id, owner.as_deref().unwrap_or(UNASSIGNED), previous.as_ref(), current, now_ms));
    }
    let mut write = kinship_store::AlertChanges::default();
    let new_alert = |profile: &str, reason: Reason, owner: &str, status, from_score, score| kinship_store::NewAlert {
        definition: name.into(),
        profile_id: profile.into(),
        reason: reason.name().into(),
        owner: owner.into(),
        status,
        opened_at: now_ms,
        from_score,
        score,
        record: None,
    };
    let score_of: std::collections::HashMap<&str, f64> = scored.iter().map(|s| (s.0, s.3.score)).collect();
    for change in changes {
        match change {
            AlertChange::Opened(a) => {
                pass.opened += 1;
                write.opened.push(new_alert(&a.profile, a.reason, &a.owner, "open", a.from_score, a.score));
            }
            AlertChange::HeldBack { profile, reason, owner } => {
                if held_today.contains(&(profile.clone(), reason.name().to_string())) {
                    continue;
                }
                pass.held_back += 1;
                let score = score_of.get(profile.as_str()).copied().unwrap_or(0.0);
                write.opened.push(new_alert(&profile, reason, &owner, "held", score, score));
            }
            AlertChange::Closed { profile, reason } => {
                if let Some((id, _)) = ids.get(&(profile, reason)) {
                    pass.closed += 1;
                    write.closed.push(*id);
                }
            }
        }
    }
    for (profile, alerts) in &book.open {
        for (reason, alert) in alerts {
            if let Some((id, stored)) = ids.get(&(profile.clone(), *reason)) {
                if (stored - alert.score).abs() > 1e-9 {
                    write.scores.push((*id, alert.score));
                }
            }
        }
    }
    pass.open = book.open.values().map(BTreeMap::len).sum();
    if let Some(source) = &config.flows.source {
        for alert in write.opened.iter_mut().filter(|a| a.status == "open") {
            // A profile whose every identifier is shared cannot be named alone: its alert is
            // kept, and no flow hears of it.
            let Some(anchor) = crate::flows::own_identifier(store, config, &alert.profile_id)? else { continue };
            let key = format!("health:{name}:{}:{}@{now_ms}", alert.profile_id, alert.reason);
            let payload = serde_json::json!({
                "type": "track", "messageId": key, "timestamp": kinship_expr::format_timestamp(now_ms), "event": HEALTH_ALERT_OPENED,
                "properties": { "health": name, "reason": alert.reason, "score": alert.score, "from_score": alert.from_score, "owner": alert.owner },
            });
            let record = kinship_core::NewRecord {
                key,
                payload: payload.to_string(),
                identifiers: kinship_core::encode_identifiers(std::slice::from_ref(&anchor)),
                timestamp: Some(now_ms),
            };
            alert.record = Some((source.clone(), record));
        }
    }
    Ok((write, pass))
}

/// How well the score, computed as of a past date, foretold who stopped buying in the
/// following horizon, beside a logistic regression fitted on the same measures.
#[derive(Debug, Clone, Serialize)]
pub struct Backtest {
    pub as_of_ms: i64,
    pub horizon_days: u32,
    /// Customers active at the date (a revenue event within `churn_after` before it).
    pub customers: u64,
    /// Of them, those with no revenue event in the horizon.
    pub churned: u64,
    /// Area under the ROC curve on the held-out half (low score foretelling churn).
    pub health_auc: Option<f64>,
    pub baseline_auc: Option<f64>,
    /// Health's AUC minus the baseline's on the held-out half, with its 95% paired bootstrap
    /// interval (1,000 resamples): an interval holding 0 means the score matches the
    /// baseline; above 0, it beats it.
    pub auc_difference: Option<(f64, f64, f64)>,
    /// Of the lowest-scored tenth of the held-out half, the share that churned.
    pub health_precision_top: Option<f64>,
    pub baseline_precision_top: Option<f64>,
    /// Per band: customers and the share that churned.
    pub calibration: Vec<(Band, u64, Option<f64>)>,
    pub baseline: Option<Logistic>,
    pub measures: Vec<String>,
}

/// Scores every customer as of `as_of_ms` (its events up to then) and compares with who
/// bought nothing in the next `horizon_days`. The baseline is fitted on half the customers
/// (by a hash of the id) and both are judged on the other half.
pub fn backtest(
    audience: &Audience,
    config: &MeasuresConfig,
    program: &HealthProgram,
    as_of_ms: i64,
    horizon_days: u32,
) -> Result<Backtest> {
    let rows = history_rows(audience, config, program, as_of_ms, horizon_days, true)?;
    let train: Vec<(Vec<f64>, bool)> = rows.iter().filter(|r| !r.held_out).map(|r| (r.values.clone(), r.churned)).collect();
    let baseline = Logistic::fit(&train);
    let test: Vec<_> = rows.iter().filter(|r| r.held_out).collect();
    let health: Vec<(f64, bool)> = test.iter().map(|r| (-r.scored.score, r.churned)).collect();
    let modelled: Vec<(f64, bool)> = match &baseline {
        Some(model) => test.iter().map(|r| (model.predict(&r.values), r.churned)).collect(),
        None => Vec::new(),
    };
    let top = (test.len() / 10).max(1);
    let calibration = [Band::Red, Band::Yellow, Band::Green]
        .into_iter()
        .map(|band| {
            let of: Vec<_> = rows.iter().filter(|r| r.scored.band == band).collect();
            let churned = of.iter().filter(|r| r.churned).count();
            (band, of.len() as u64, (!of.is_empty()).then(|| churned as f64 / of.len() as f64))
        })
        .collect();
    Ok(Backtest {
        as_of_ms,
        horizon_days,
        customers: rows.len() as u64,
        churned: rows.iter().filter(|r| r.churned).count() as u64,
        health_auc: classify::auc(&health),
        baseline_auc: classify::auc(&modelled),
        auc_difference: classify::auc_difference(&health, &modelled, 1_000, BOOTSTRAP_SEED),
        health_precision_top: classify::precision_at(&health, top),
        baseline_precision_top: classify::precision_at(&modelled, top),
        calibration,
        baseline,
        measures: program.measure_names().map(String::from).collect(),
    })
}

/// A customer active at a past date (a revenue event within `churn_after` before it), scored
/// on its events up to then.
struct HistoryRow {
    scored: Scored,
    /// The measures' values, what the baseline is fitted on (when asked for).
    values: Vec<f64>,
    /// Bought nothing in the horizon.
    churned: bool,
    /// In the half the baseline is judged on, not fitted on.
    held_out: bool,
}

/// Every customer active at `as_of_ms`; with the measures' raw values when `values`.
fn history_rows(
    audience: &Audience,
    config: &MeasuresConfig,
    program: &HealthProgram,
    as_of_ms: i64,
    horizon_days: u32,
    values: bool,
) -> Result<Vec<HistoryRow>> {
    let churn_after = config_duration(&config.churn_after, "measures.churn_after")?;
    let horizon = i64::from(horizon_days) * DAY;
    Ok(audience.map_profiles(|profile| {
        let revenue = revenue_of(profile, config);
        let active = revenue.iter().any(|(t, _)| *t <= as_of_ms && *t > as_of_ms - churn_after);
        if !active {
            return None;
        }
        let churned = !revenue.iter().any(|(t, _)| *t > as_of_ms && *t <= as_of_ms + horizon);
        let then = AsOf { profile, until_ms: as_of_ms };
        let scored = program.score(&then, as_of_ms)?;
        let held_out = fxhash(profile.id()) % 2 == 1;
        let values = if values { program.values(&then, as_of_ms) } else { Vec::new() };
        Some(HistoryRow { scored, values, churned, held_out })
    }))
}

/// The newest event held, when `as_of_ms` plus the horizon runs past it: who stopped buying
/// in that horizon is not known yet.
pub fn horizon_past_data(audience: &Audience, as_of_ms: i64, horizon_days: u32) -> Option<i64> {
    let newest = data_now(audience);
    (as_of_ms + i64::from(horizon_days) * DAY > newest).then_some(newest)
}

/// Weights for a definition's measures learnt from what happened after past dates.
#[derive(Debug, Clone, Serialize)]
pub struct LearntWeights {
    /// The dates learnt from, 30 days apart, the last first.
    pub dates_ms: Vec<i64>,
    pub horizon_days: u32,
    /// Customers active on each date, added up (one customer counts once per date).
    pub customers: u64,
    pub churned: u64,
    pub measures: Vec<LearntWeight>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LearntWeight {
    pub name: String,
    /// The definition's weight.
    pub weight: f64,
    /// The weight learnt: how much a point of this measure's score lowered the odds of
    /// stopping beside the other measures kept, scaled so the weights add up to about what
    /// the definition's do (to 0.01).
    pub learnt: f64,
    /// Beside the others, a higher score here went with more stopping, so the measure was
    /// left out and the rest fitted again: it adds nothing the others do not say (or its
    /// points run the wrong way for this data). Its learnt weight is 0.
    pub dropped: bool,
}

/// Learns the definition's weights from history: a logistic regression of "bought nothing in
/// the horizon" on each measure's 0–100 score (a missing score at the measure's mean) over
/// every customer active at each of `dates` dates 30 days apart, ending at `as_of_ms` (one
/// date alone is a few noisy labels; a year of them gives weights that hold from one month
/// to the next). A weighted mean cannot weigh a measure below zero, so a measure whose
/// coefficient says so is left out and the rest fitted again, until none does. Where every
/// measure has a value and no context changes the weights, ranking by the weighted mean with
/// these weights is the regression's ranking; the score keeps its explanation (each
/// measure's points and contribution). Judge the result with [`backtest`] on a date at least
/// the horizon after `as_of_ms`: on the dates it learnt from, it flatters.
pub fn learn_weights(
    audience: &Audience,
    config: &MeasuresConfig,
    program: &HealthProgram,
    as_of_ms: i64,
    horizon_days: u32,
    dates: u32,
) -> Result<LearntWeights> {
    let date = |t: i64| kinship_expr::format_timestamp(t)[..10].to_string();
    if let Some(newest) = horizon_past_data(audience, as_of_ms, horizon_days) {
        return Err(PipelineError::Config(format!(
            "{} plus {horizon_days} days runs past the newest event held ({}): who stopped is not known yet; give an earlier date",
            date(as_of_ms),
            date(newest)
        )));
    }
    let dates_ms: Vec<i64> = (0..i64::from(dates.max(1))).map(|k| as_of_ms - k * 30 * DAY).collect();
    let mut data: Vec<(Vec<f64>, bool)> = Vec::new();
    for at in &dates_ms {
        let rows = history_rows(audience, config, program, *at, horizon_days, false)?;
        data.extend(rows.iter().map(|r| (r.scored.measures.iter().map(|m| m.score.unwrap_or(f64::NAN)).collect(), r.churned)));
    }
    let churned = data.iter().filter(|r| r.1).count();
    if data.is_empty() {
        return Err(PipelineError::Config(format!(
            "no customer was active in the {} dates to {}: nothing to learn from (give a date within the data)",
            dates_ms.len(),
            date(as_of_ms)
        )));
    }
    if churned == 0 || churned == data.len() {
        let all = if churned == 0 { "kept buying" } else { "stopped" };
        return Err(PipelineError::Config(format!(
            "all {} customers active on those dates {all}: nothing tells them apart; give another date or horizon",
            data.len()
        )));
    }
    // Per point of score, for the measures kept: positive means a higher score, less stopping.
    let width = program.definition.measures.len();
    let mut kept: Vec<usize> = (0..width).collect();
    let mut per_point = vec![0.0; width];
    while !kept.is_empty() {
        let rows: Vec<(Vec<f64>, bool)> = data.iter().map(|(x, y)| (kept.iter().map(|&j| x[j]).collect(), *y)).collect();
        let model = Logistic::fit(&rows)
            .ok_or_else(|| PipelineError::Config("the regression found no answer: two measures may say exactly the same thing".into()))?;
        let fitted: Vec<f64> = model.weights.iter().zip(model.scales()).map(|(w, s)| -w / s).collect();
        let worst = (0..kept.len()).filter(|&k| fitted[k] < 0.0).min_by(|&a, &b| fitted[a].total_cmp(&fitted[b]));
        match worst {
            Some(k) => {
                kept.remove(k);
            }
            None => {
                for (k, &j) in kept.iter().enumerate() {
                    per_point[j] = fitted[k];
                }
                break;
            }
        }
    }
    let positive: f64 = per_point.iter().filter(|w| **w > 0.0).sum();
    if positive <= 0.0 {
        return Err(PipelineError::Config(
            "no measure's score went with fewer customers stopping: nothing to weigh (check the measures and their points)".into(),
        ));
    }
    let total: f64 = program.definition.measures.iter().map(|m| m.weight).sum();
    let measures = program
        .measure_names()
        .zip(program.definition.measures.iter().map(|m| m.weight))
        .enumerate()
        .map(|(j, (name, weight))| LearntWeight {
            name: name.to_string(),
            weight,
            learnt: if per_point[j] > 0.0 { (per_point[j] * total / positive * 100.0).round() / 100.0 } else { 0.0 },
            dropped: !kept.contains(&j),
        })
        .collect();
    Ok(LearntWeights { dates_ms, horizon_days, customers: data.len() as u64, churned: churned as u64, measures })
}

/// The bootstrap's seed: the same data gives the same interval on every run.
const BOOTSTRAP_SEED: u64 = 0x4B49_4E53_4849_5021;

/// A stable hash of an id, to split customers the same way on every run.
fn fxhash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_periods_agree_with_the_calendar() {
        // Every 37 hours over 60 years either side of 1970, leap days included.
        let mut at = -60 * 365 * DAY;
        while at < 60 * 365 * DAY {
            let text = kinship_expr::format_timestamp(at);
            assert_eq!(month_label(month_index(at)), text[..7], "{text}");
            at += 37 * 3_600_000;
        }
        let may = kinship_expr::parse_timestamp("2024-05-17T10:00:00Z").unwrap();
        let start = |p, k| kinship_expr::format_timestamp(period_start(p, may, k))[..10].to_string();
        assert_eq!((start(Period::Month, 0), start(Period::Month, -5)), ("2024-05-01".into(), "2023-12-01".into()));
        assert_eq!((start(Period::Quarter, 0), start(Period::Quarter, 1)), ("2024-04-01".into(), "2024-07-01".into()));
        assert_eq!(start(Period::Year, -1), "2023-01-01");
    }
}
