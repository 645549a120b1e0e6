//! Deals: stages with a default probability and a type (open, won, lost), and what sales
//! managers read from them: the weighted forecast by close month, the win rate and the time
//! deals spend in each stage.

use crate::documents::field_text;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageType {
    Open,
    Won,
    Lost,
}

/// `[[service.stages]]`, in pipeline order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub name: String,
    /// Chance a deal here closes won, 0–1 (won stages 1, lost 0).
    pub probability: f64,
    #[serde(rename = "type", default = "open")]
    pub kind: StageType,
}

fn open() -> StageType {
    StageType::Open
}

/// Whether `stage` (a configured name, as deals carry it) is open.
pub fn is_open(stages: &[Stage], stage: &str) -> bool {
    stages.iter().any(|s| s.name == stage && s.kind == StageType::Open)
}

/// Configured stages that make a pipeline: unique names, probabilities from 0 to 1, an open
/// stage to start in and a won one to end in (none configured is the defaults, also fine).
pub fn check_stages(stages: &[Stage]) -> Result<(), String> {
    if stages.is_empty() {
        return Ok(());
    }
    for (i, s) in stages.iter().enumerate() {
        if s.name.trim().is_empty() || s.name.chars().count() > 60 {
            return Err(format!("stage {} needs a name of 1 to 60 characters", i + 1));
        }
        if stages[..i].iter().any(|t| t.name.eq_ignore_ascii_case(&s.name)) {
            return Err(format!("stage \"{}\" is named twice", s.name));
        }
        if !(0.0..=1.0).contains(&s.probability) {
            return Err(format!("stage \"{}\": probability {} is not between 0 and 1", s.name, s.probability));
        }
    }
    for (kind, word) in [(StageType::Open, "open"), (StageType::Won, "won")] {
        if !stages.iter().any(|s| s.kind == kind) {
            return Err(format!("no stage of type \"{word}\": a pipeline needs one to start in and one to win in"));
        }
    }
    Ok(())
}

/// The stages of a demo-sized B2B pipeline, used when none are configured.
pub fn default_stages() -> Vec<Stage> {
    [
        ("qualification", 0.1, StageType::Open),
        ("discovery", 0.2, StageType::Open),
        ("proposal", 0.5, StageType::Open),
        ("negotiation", 0.8, StageType::Open),
        ("won", 1.0, StageType::Won),
        ("lost", 0.0, StageType::Lost),
    ]
    .into_iter()
    .map(|(name, probability, kind)| Stage { name: name.into(), probability, kind })
    .collect()
}

/// A deal as its records tell it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deal {
    pub id: String,
    /// The source its records come from (a CRM, or `[service] source` for native deals).
    #[serde(default)]
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The stage as configured (`[[service.stages]]`), matched without regard to case.
    pub stage: String,
    pub amount: f64,
    pub currency: String,
    /// Expected (or actual) close date, `YYYY-MM-DD`.
    pub close: String,
    /// A probability set on the deal itself, over its stage's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// The seller who owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The account (company) it is with, as the CRM names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The contacts: the host's profiles whose records tell of it, newest first.
    #[serde(default)]
    pub contacts: Vec<String>,
    /// (when, stage) in time order: where the deal has been (Unix seconds).
    #[serde(default)]
    pub history: Vec<(i64, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl Deal {
    /// When it entered its current stage (Unix seconds).
    pub fn in_stage_since(&self) -> Option<i64> {
        self.history.last().map(|(at, _)| *at)
    }
}

/// `[sources.NAME.deal]`: what a CRM's opportunity rows say. Fields are paths into the
/// record. Each row is the deal as it was at the record's time (a cursor-pulled source keeps
/// every version), so its rows in time order are its stage history; a row that leaves a
/// field out leaves it as it was.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealMapping {
    /// The deal's id; default: the record key (without a cursor's `@…`). When set, a row
    /// without it is not a deal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The stage field. A row without one leaves the stage as it was (a native update that
    /// changes only the amount).
    pub stage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The expected close date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close: Option<String>,
    /// A probability on the deal itself: 0–1, or a percentage (`60`, `60%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// When this version was written (`updated_at`, `stage_changed_at`); default: the
    /// record's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// A link back to the deal: `{id}` is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The currency of rows that name none (default `USD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_currency: Option<String>,
}

/// What native deals (created and moved in Kinship, `[service] source`) are written as:
/// Segment track messages of this event, read back through [`DealMapping::native`].
pub const NATIVE_DEAL: &str = "Deal Updated";

impl DealMapping {
    /// The mapping of native deals' messages: a `Deal Updated` carries what changed.
    pub fn native() -> Self {
        let p = |f: &str| Some(format!("properties.{f}"));
        DealMapping {
            id: p("deal"),
            name: p("name"),
            stage: "properties.stage".into(),
            amount: p("amount"),
            currency: p("currency"),
            close: p("close"),
            probability: p("probability"),
            owner: p("owner"),
            account: p("account"),
            ..DealMapping::default()
        }
    }
}

/// One record handed in: its source's mapping, source, key, fields, time (Unix
/// milliseconds) and whose it is (the host's profile id).
pub struct DealRow<'a> {
    pub mapping: &'a DealMapping,
    pub owner: &'a str,
    pub source: &'a str,
    pub key: &'a str,
    pub fields: &'a Map<String, Value>,
    pub time: Option<i64>,
}

/// Rows that could not become a deal, each with why: nothing is dropped unsaid.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DealProblems {
    /// (source, deal id, stage) for stages no `[[service.stages]]` names.
    pub unknown_stages: Vec<(String, String, String)>,
    /// (source, deal id) for deals without a readable close date.
    pub no_close: Vec<(String, String)>,
    /// Rows with a deal id but no time, in their own field or the record's: a version that
    /// cannot be placed in the history.
    pub no_time: usize,
}

/// A probability as CRMs write it: `0.6`, `60`, `60%`.
fn probability(text: &str) -> Option<f64> {
    let percent = text.trim().ends_with('%');
    let value = crate::documents::amount(text)?;
    let value = if percent || value > 1.0 { value / 100.0 } else { value };
    (0.0..=1.0).contains(&value).then_some(value)
}

/// Every deal the rows tell of, by (source, id), with the stages matched to `stages`. Deals
/// whose current stage no stage names, or with no close date, are left out and named in the
/// problems.
pub fn deals<'a>(rows: impl IntoIterator<Item = DealRow<'a>>, stages: &[Stage]) -> (Vec<Deal>, DealProblems) {
    // A version's fields: `Some(text)` as written, `None` where the row holds the field
    // blank (cleared); a field the row does not hold at all is left as it was.
    type Version = (i64, BTreeMap<&'static str, Option<String>>, String);
    let mut versions: BTreeMap<(String, String), (Vec<Version>, &DealMapping)> = BTreeMap::new();
    let mut problems = DealProblems::default();
    for row in rows {
        let (m, f) = (row.mapping, row.fields);
        let id = match &m.id {
            Some(path) => match field_text(f, path) {
                Some(id) => id,
                None => continue,
            },
            None => row.key.split('@').next().unwrap_or(row.key).to_string(),
        };
        let Some(at) = m.updated.as_ref().and_then(|p| field_text(f, p)).and_then(|t| crate::documents::millis(&t)).or(row.time) else {
            problems.no_time += 1;
            continue;
        };
        let mut fields = BTreeMap::new();
        for (name, path) in [
            ("stage", &Some(m.stage.clone())),
            ("name", &m.name),
            ("amount", &m.amount),
            ("currency", &m.currency),
            ("close", &m.close),
            ("probability", &m.probability),
            ("owner", &m.owner),
            ("account", &m.account),
        ] {
            if let Some(path) = path.as_ref().filter(|p| crate::documents::field_held(f, p)) {
                fields.insert(name, field_text(f, path));
            }
        }
        versions.entry((row.source.to_string(), id)).or_insert_with(|| (Vec::new(), m)).0.push((at, fields, row.owner.to_string()));
    }
    let mut out = Vec::new();
    for ((source, id), (mut rows, mapping)) in versions {
        rows.sort_by_key(|(at, _, _)| *at);
        // What the newest version holding the field says (a blank one clears it)...
        let latest = |name: &str| rows.iter().rev().find_map(|(_, f, _)| f.get(name).cloned()).flatten();
        // ...and for amounts and dates, the newest value that reads: a garbled cell does
        // not zero a deal's amount or lose its close date.
        let readable = |name: &str, read: &dyn Fn(&str) -> Option<f64>| {
            rows.iter().rev().find_map(|(_, f, _)| f.get(name).cloned().flatten().and_then(|v| read(&v)))
        };
        let named = |stage: &str| stages.iter().find(|s| s.name.eq_ignore_ascii_case(stage.trim())).map(|s| s.name.clone());
        let current = latest("stage").unwrap_or_default();
        let Some(stage) = named(&current) else {
            problems.unknown_stages.push((source, id, current));
            continue;
        };
        let Some(close) = readable("close", &|c| crate::documents::millis(c).map(|ms| ms as f64))
            .and_then(|ms| chrono::DateTime::from_timestamp_millis(ms as i64).map(|t| t.date_naive().format("%Y-%m-%d").to_string()))
        else {
            problems.no_close.push((source, id));
            continue;
        };
        let mut history: Vec<(i64, String)> = Vec::new();
        for (at, f, _) in &rows {
            let Some(s) = f.get("stage").cloned().flatten().map(|s| named(&s).unwrap_or_else(|| s.trim().to_lowercase())) else { continue };
            if history.last().is_none_or(|(_, last)| *last != s) {
                history.push((at.div_euclid(1000), s));
            }
        }
        let mut contacts: Vec<String> = Vec::new();
        for (_, _, owner) in rows.iter().rev() {
            if !contacts.contains(owner) {
                contacts.push(owner.clone());
            }
        }
        out.push(Deal {
            link: mapping.link.as_ref().map(|l| l.replace("{id}", &id)),
            name: latest("name"),
            amount: readable("amount", &crate::documents::amount).unwrap_or(0.0),
            currency: latest("currency").or_else(|| mapping.default_currency.clone()).unwrap_or_else(|| "USD".into()).to_uppercase(),
            probability: latest("probability").and_then(|p| probability(&p)),
            owner: latest("owner"),
            account: latest("account"),
            id,
            source,
            stage,
            close,
            contacts,
            history,
        });
    }
    (out, problems)
}

/// One close month of the forecast, in one currency.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ForecastMonth {
    /// Open deals' amounts times their probability, plus won deals' amounts.
    pub weighted: f64,
    /// Open deals' amounts.
    pub pipeline: f64,
    pub won: f64,
    pub open_deals: u64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DealError {
    #[error("deal {deal}: unknown stage \"{stage}\"; the stages are {known}")]
    Stage { deal: String, stage: String, known: String },
    #[error("deal {deal}: bad close date \"{date}\"; write YYYY-MM-DD")]
    Close { deal: String, date: String },
}

fn stage<'a>(stages: &'a [Stage], deal: &Deal) -> Result<&'a Stage, DealError> {
    stages.iter().find(|s| s.name.eq_ignore_ascii_case(&deal.stage)).ok_or_else(|| DealError::Stage {
        deal: deal.id.clone(),
        stage: deal.stage.clone(),
        known: stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
    })
}

/// The weighted forecast by (close month `YYYY-MM`, currency). Lost deals add nothing.
pub fn forecast(deals: &[Deal], stages: &[Stage]) -> Result<BTreeMap<(String, String), ForecastMonth>, DealError> {
    let mut out: BTreeMap<(String, String), ForecastMonth> = BTreeMap::new();
    for d in deals {
        let s = stage(stages, d)?;
        let month = chrono::NaiveDate::parse_from_str(&d.close, "%Y-%m-%d")
            .map_err(|_| DealError::Close { deal: d.id.clone(), date: d.close.clone() })?
            .format("%Y-%m")
            .to_string();
        if s.kind == StageType::Lost {
            continue;
        }
        let m = out.entry((month, d.currency.clone())).or_default();
        match s.kind {
            StageType::Open => {
                let p = d.probability.unwrap_or(s.probability).clamp(0.0, 1.0);
                m.weighted += d.amount * p;
                m.pipeline += d.amount;
                m.open_deals += 1;
            }
            StageType::Won => {
                m.weighted += d.amount;
                m.won += d.amount;
            }
            StageType::Lost => unreachable!("left out above"),
        }
    }
    Ok(out)
}

/// Won ÷ (won + lost); `None` before any deal closes.
pub fn win_rate(deals: &[Deal], stages: &[Stage]) -> Result<Option<f64>, DealError> {
    let (mut won, mut lost) = (0u64, 0u64);
    for d in deals {
        match stage(stages, d)?.kind {
            StageType::Won => won += 1,
            StageType::Lost => lost += 1,
            StageType::Open => {}
        }
    }
    Ok((won + lost > 0).then(|| won as f64 / (won + lost) as f64))
}

/// Mean days spent in each stage a deal has left (from its history), by stage name as the
/// history writes it (the configured name).
pub fn time_in_stage(deals: &[Deal]) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for d in deals {
        for w in d.history.windows(2) {
            let e = sums.entry(w[0].1.clone()).or_default();
            e.0 += (w[1].0 - w[0].0) as f64 / 86_400.0;
            e.1 += 1;
        }
    }
    sums.into_iter().map(|(k, (s, n))| (k, s / n as f64)).collect()
}

/// The steps of the stage funnel: the open stages in pipeline order, then the (first) won
/// stage, which every won stage reaches.
pub fn funnel_steps(stages: &[Stage]) -> Vec<String> {
    let mut steps: Vec<String> = stages.iter().filter(|s| s.kind == StageType::Open).map(|s| s.name.clone()).collect();
    steps.push(stages.iter().find(|s| s.kind == StageType::Won).map_or_else(|| "won".into(), |s| s.name.clone()));
    steps
}

/// How far deals got through the pipeline, measured by the funnel engine: each deal is a
/// timeline that reaches a step when it enters that stage or a later one (a deal that skips
/// discovery has passed it), and leaves at the stage it was lost from. The steps are
/// [`funnel_steps`]; moving back does not undo a step reached.
pub fn stage_funnel(deals: &[Deal], stages: &[Stage]) -> kinship_measure::funnel::FunnelResult {
    use kinship_measure::funnel::{measure, Counting, Funnel, Moment, Order, ProfileTimeline};
    let steps = funnel_steps(stages);
    let step_of = |stage: &str| match stages.iter().find(|s| s.name.eq_ignore_ascii_case(stage))?.kind {
        StageType::Won => Some(steps.len() - 1),
        StageType::Lost => None,
        StageType::Open => steps.iter().position(|s| s.eq_ignore_ascii_case(stage)),
    };
    let timelines: Vec<Vec<Moment>> = deals
        .iter()
        .map(|d| {
            let mut moments = Vec::new();
            let mut next = 0;
            for (at, stage) in &d.history {
                let Some(k) = step_of(stage) else { continue };
                // Every step up to this one is reached now, in order, at this instant.
                while next <= k && next < 64 {
                    moments.push(Moment { at_ms: at.saturating_mul(1000), steps: 1 << next, exclusions: 0 });
                    next += 1;
                }
            }
            moments
        })
        .collect();
    let funnel = Funnel {
        steps: steps.len(),
        order: Order::Ordered,
        window_ms: i64::MAX,
        step_windows: vec![None; steps.len()],
        exclusions: Vec::new(),
        counting: Counting::FirstEntry,
        period: (i64::MIN, i64::MAX),
    };
    measure(&funnel, timelines.iter().map(|m| ProfileTimeline { moments: m, breakdown: None }), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deal(id: &str, stage: &str, amount: f64, close: &str) -> Deal {
        Deal {
            id: id.into(),
            source: "crm".into(),
            name: None,
            stage: stage.into(),
            amount,
            currency: "AUD".into(),
            close: close.into(),
            probability: None,
            owner: None,
            account: None,
            contacts: vec![],
            history: vec![],
            link: None,
        }
    }

    #[test]
    fn forecast_weighs_open_deals_and_counts_won_ones_whole() {
        let stages = default_stages();
        let mut deals = vec![
            deal("a", "proposal", 10_000.0, "2026-12-15"),
            deal("b", "Negotiation", 5_000.0, "2026-12-31"),
            deal("c", "won", 2_000.0, "2026-12-01"),
            deal("d", "lost", 9_000.0, "2026-12-20"),
            deal("e", "qualification", 1_000.0, "2027-01-10"),
        ];
        deals[1].probability = Some(0.9);
        let f = forecast(&deals, &stages).unwrap();
        let dec = &f[&("2026-12".to_string(), "AUD".to_string())];
        assert_eq!(dec.weighted, 10_000.0 * 0.5 + 5_000.0 * 0.9 + 2_000.0);
        assert_eq!(dec.pipeline, 15_000.0);
        assert_eq!(dec.open_deals, 2);
        assert_eq!(f[&("2027-01".to_string(), "AUD".to_string())].weighted, 100.0);
        assert_eq!(win_rate(&deals, &stages).unwrap(), Some(0.5));
        deals.push(deal("x", "closing", 1.0, "2026-12-01"));
        assert!(matches!(forecast(&deals, &stages), Err(DealError::Stage { .. })));
    }

    #[test]
    fn time_in_stage_averages_left_stages() {
        let mut d = deal("a", "won", 1.0, "2026-12-01");
        d.history = vec![(0, "qualification".into()), (2 * 86_400, "proposal".into()), (6 * 86_400, "won".into())];
        let mut e = deal("b", "proposal", 1.0, "2026-12-01");
        e.history = vec![(0, "qualification".into()), (4 * 86_400, "proposal".into())];
        let t = time_in_stage(&[d, e]);
        assert_eq!(t["qualification"], 3.0);
        assert_eq!(t["proposal"], 4.0);
        assert!(!t.contains_key("won"));
    }
}
