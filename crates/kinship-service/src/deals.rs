//! Deals: stages with a default probability and a type (open, won, lost), and what sales
//! managers read from them: the weighted forecast by close month, the win rate and the time
//! deals spend in each stage.

use serde::{Deserialize, Serialize};
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deal {
    pub id: String,
    pub stage: String,
    pub amount: f64,
    pub currency: String,
    /// Expected (or actual) close date, `YYYY-MM-DD`.
    pub close: String,
    /// A probability set on the deal itself, over its stage's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// (when, stage) in time order: where the deal has been (Unix seconds).
    #[serde(default)]
    pub history: Vec<(i64, String)>,
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
            StageType::Lost => {}
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

/// Mean days spent in each stage a deal has left (from its history), by stage name.
pub fn time_in_stage(deals: &[Deal]) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for d in deals {
        for w in d.history.windows(2) {
            let e = sums.entry(w[0].1.to_lowercase()).or_default();
            e.0 += (w[1].0 - w[0].0) as f64 / 86_400.0;
            e.1 += 1;
        }
    }
    sums.into_iter().map(|(k, (s, n))| (k, s / n as f64)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deal(id: &str, stage: &str, amount: f64, close: &str) -> Deal {
        Deal { id: id.into(), stage: stage.into(), amount, currency: "AUD".into(), close: close.into(), probability: None, history: vec![] }
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
