//! Measures over every profile's unified timeline as the audience engine holds it in
//! memory: a funnel, and an experiment's readout from its exposures. The arithmetic is
//! `kinship-measure`'s; this module reads each profile's events (every source, after
//! resolution), sums what the readouts need and picks the profiles behind each number.
//!
//! Because a profile is one person across systems, a funnel may run from a web visit to an
//! order in the shop to a shipment, and a person exposed under two ids that resolution has
//! since joined is seen once: if those ids saw different variants, the person is counted in
//! neither and listed.

use crate::{PipelineError, Result};
use kinship_expr::{EvalContext, EventView, ProfileView, Program, Scalar, Schema};
use kinship_measure::definition::FunnelProgram;
use kinship_measure::experiment::{self, Adjusted, Proportion, SampleMean, Settings, Statistic};
use kinship_measure::funnel;
use kinship_segments::Audience;
use serde::Serialize;
use std::collections::BTreeMap;

/// A funnel's numbers, and for each step some of the profiles that got no further than it
/// and some that dropped just before it (the drill-down).
#[derive(Debug, Clone, Serialize)]
pub struct FunnelReport {
    pub name: String,
    pub steps: Vec<String>,
    pub result: funnel::FunnelResult,
    pub reached: Vec<Vec<String>>,
    pub dropped: Vec<Vec<String>>,
}

/// How many profiles per step a report lists.
const DRILL_DOWN: usize = 100;

/// Narrows a funnel to the attempts behind one number of its breakdown or trend: those of
/// profiles with this breakdown value, entered in the week starting at this Monday.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cohort {
    pub breakdown: Option<String>,
    pub week_ms: Option<i64>,
}

/// The funnel over every profile the audience holds, entries in the last `days` (all
/// history without), perhaps narrowed to a cohort.
pub fn funnel(audience: &Audience, program: &FunnelProgram, days: Option<u32>, cohort: &Cohort) -> FunnelReport {
    let mut spec = program.funnel.clone();
    if let Some(days) = days {
        spec.period = (crate::now_ms() - i64::from(days) * 86_400_000, i64::MAX);
    }
    let steps = spec.steps;
    let mut attempts = audience.funnel_attempts(program, &spec);
    if cohort.breakdown.is_some() {
        attempts.retain(|(_, _, value)| value == &cohort.breakdown);
    }
    if let Some(week) = cohort.week_ms {
        for (_, own, _) in &mut attempts {
            own.retain(|a| funnel::week_of(a.reached[0]) == week);
        }
        attempts.retain(|(_, own, _)| !own.is_empty());
    }
    // The drill-down lists profiles in the order the audience holds them (as loaded, then as
    // they arrived): the same people every time for the same data, without sorting a million.
    let (mut reached, mut dropped) = (vec![Vec::new(); steps], vec![Vec::new(); steps]);
    for (id, own, _) in &attempts {
        if let Some(depth) = own.iter().map(|a| a.depth().min(steps)).max() {
            if reached[depth - 1].len() < DRILL_DOWN {
                reached[depth - 1].push(id.to_string());
            }
            if depth < steps && dropped[depth].len() < DRILL_DOWN {
                dropped[depth].push(id.to_string());
            }
        }
    }
    let result = funnel::tally(&spec, attempts.iter().map(|(_, a, b)| (a, b.as_deref())), 10);
    FunnelReport {
        name: program.definition.name.clone(),
        steps: program.definition.steps.iter().map(|s| s.event.clone()).collect(),
        result,
        reached,
        dropped,
    }
}

/// What an experiment is judged on: an event's conversion (any such event after exposure)
/// or the sum of one of its properties, within `days` of each profile's first exposure.
#[derive(Debug, Clone)]
pub struct ExperimentMetric {
    pub event: String,
    /// Summed (revenue per user); without it, conversion.
    pub property: Option<String>,
    pub condition: Option<String>,
    pub days: u32,
    /// Conversion is completing this saved funnel instead (every step, entered within `days`
    /// of exposure, in the funnel's own order and windows); `event`, `property` and
    /// `condition` are then not read.
    pub funnel: Option<String>,
}

/// The event that says a profile saw a variant (Segment's and GrowthBook's convention), with
/// `experiment` (or `experiment_id`) and `variant` (or `variation_id`).
pub const EXPOSURE: &str = "Experiment Viewed";

#[derive(Debug, Clone, Serialize)]
pub struct VariantReport {
    pub variant: String,
    pub profiles: u64,
    /// Some of them (the drill-down), at most a hundred.
    pub sample: Vec<String>,
    /// The metric's mean per profile (a conversion rate, or the sum per profile).
    pub mean: f64,
    pub frequentist: Option<experiment::Frequentist>,
    pub sequential: Option<experiment::Frequentist>,
    pub bayesian: Option<experiment::Bayesian>,
    /// Why there is no readout, when there is none.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExperimentReport {
    pub experiment: String,
    pub metric: String,
    /// Adjusted by the same metric in the same length of time before exposure (sums only).
    pub cuped: bool,
    pub control: String,
    pub variants: Vec<VariantReport>,
    /// The p-value that profiles split evenly across variants (below 0.001: distrust the test).
    pub sample_ratio_p: f64,
    /// Profiles that saw more than one variant (under ids resolution has since joined):
    /// counted in none.
    pub exposed_to_several: Vec<String>,
}

/// A property's value as text (whole numbers without a fraction, as ids are written).
fn text(value: Scalar<'_>) -> Option<String> {
    match value {
        Scalar::Str(s) => Some(s.to_string()),
        Scalar::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => Some(format!("{}", n as i64)),
        Scalar::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What one profile adds to an experiment.
enum Exposure<'a> {
    /// One variant: the metric after first exposure and in as long before it.
    Seen { id: &'a str, variant: String, after: f64, before: f64 },
    /// More than one variant (under ids resolution has since joined): counted in none.
    Several(&'a str),
}

/// Reads an experiment's exposures and its metric over every profile the audience holds.
/// Control is the variant named `control`, else `0`, else the first by name.
pub fn experiment(audience: &Audience, name: &str, metric: &ExperimentMetric) -> Result<ExperimentReport> {
    let condition = match &metric.condition {
        Some(text) => {
            let expr =
                kinship_expr::parse_about_event(text).map_err(|e| PipelineError::Config(format!("metric.where: {}", e.render(text))))?;
            Some(
                Program::compile_segment(&expr, &Schema::new())
                    .map_err(|e| PipelineError::Config(format!("metric.where: {}", e.render(text))))?,
            )
        }
        None => None,
    };
    let window = i64::from(metric.days) * 86_400_000;
    let funnel = match &metric.funnel {
        Some(name) => Some(audience.saved_funnel(name).ok_or_else(|| PipelineError::Config(format!("no funnel named {name}")))?),
        None => None,
    };
    let outcomes = audience.map_profiles(|profile| {
        let exposures: Vec<(i64, String)> = profile
            .events(Some(EXPOSURE))
            .filter(|e| text(e.property("experiment")).or_else(|| text(e.property("experiment_id"))).as_deref() == Some(name))
            .filter_map(|e| Some((e.timestamp_ms(), text(e.property("variant")).or_else(|| text(e.property("variation_id")))?)))
            .collect();
        let (t0, variant) = exposures.first()?.clone();
        if exposures.iter().any(|(_, v)| *v != variant) {
            return Some(Exposure::Several(profile.id()));
        }
        if let Some(program) = funnel {
            // Completed attempts, by when they were entered: after exposure, and in as long before.
            let steps = program.funnel.steps;
            let completed: Vec<i64> =
                program.funnel.attempts(&program.moments(profile)).iter().filter(|a| a.depth() == steps).map(|a| a.reached[0]).collect();
            let after = completed.iter().any(|&at| at >= t0 && at <= t0.saturating_add(window));
            let before = completed.iter().any(|&at| at < t0 && at >= t0.saturating_sub(window));
            return Some(Exposure::Seen { id: profile.id(), variant, after: f64::from(after), before: f64::from(before) });
        }
        let (mut after, mut before) = (0.0, 0.0);
        for e in profile.events(Some(&metric.event)) {
            let at = e.timestamp_ms();
            if condition.as_ref().is_some_and(|c| !c.evaluate_on(profile, e, &EvalContext::at(at)).is_true()) {
                continue;
            }
            let value = match &metric.property {
                Some(p) => match e.property(p) {
                    Scalar::Number(n) if n.is_finite() => n,
                    Scalar::Str(s) => s.trim().parse().ok().filter(|n: &f64| n.is_finite()).unwrap_or(0.0),
                    _ => 0.0,
                },
                None => 1.0,
            };
            if at >= t0 && at <= t0.saturating_add(window) {
                after += value;
            } else if at < t0 && at >= t0.saturating_sub(window) {
                before += value;
            }
        }
        if metric.property.is_none() {
            (after, before) = (f64::from(after > 0.0), f64::from(before > 0.0));
        }
        Some(Exposure::Seen { id: profile.id(), variant, after, before })
    });
    // Per variant: the metric after exposure, before it (CUPED), and their products.
    let mut sums: BTreeMap<String, (SampleMean, SampleMean, f64)> = BTreeMap::new();
    let mut samples: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut several = Vec::new();
    for outcome in outcomes {
        let (id, variant, after, before) = match outcome {
            Exposure::Several(id) => {
                several.push(id.to_string());
                continue;
            }
            Exposure::Seen { id, variant, after, before } => (id, variant, after, before),
        };
        let sample = samples.entry(variant.clone()).or_default();
        if sample.len() < DRILL_DOWN {
            sample.push(id.to_string());
        }
        let (post, pre, products) = sums.entry(variant).or_default();
        for (stat, v) in [(&mut *post, after), (&mut *pre, before)] {
            stat.n += 1;
            stat.sum += v;
            stat.sum_squares += v * v;
        }
        *products += after * before;
    }
    let control = ["control", "0"].into_iter().find(|c| sums.contains_key(*c)).map(String::from).or_else(|| sums.keys().next().cloned());
    let Some(control) = control else {
        return Err(PipelineError::Config(format!("no profile has an `{EXPOSURE}` event with experiment `{name}`")));
    };
    let cuped = metric.property.is_some() && funnel.is_none();
    let statistic = |(post, pre, products): &(SampleMean, SampleMean, f64)| {
        if cuped {
            Statistic::Adjusted(Adjusted::new(*post, *pre, *products))
        } else {
            Statistic::Proportion(Proportion { n: post.n, converted: post.sum as u64 })
        }
    };
    let base = statistic(&sums[&control]);
    let settings = Settings::default();
    let variants = sums
        .iter()
        .map(|(variant, s)| {
            let stat = statistic(s);
            let compared = variant != &control;
            let frequentist = compared.then(|| experiment::frequentist(&base, &stat, &settings));
            let error = match &frequentist {
                Some(Err(e)) => Some(e.to_string()),
                _ => None,
            };
            VariantReport {
                variant: variant.clone(),
                profiles: s.0.n,
                sample: samples.get(variant).cloned().unwrap_or_default(),
                mean: s.0.mean(),
                frequentist: frequentist.and_then(|f| f.ok()),
                sequential: compared
                    .then(|| experiment::frequentist(&base, &stat, &Settings { sequential: Some(5_000.0), ..settings }).ok())
                    .flatten(),
                bayesian: compared.then(|| experiment::bayesian(&base, &stat, &settings).ok()).flatten(),
                error,
            }
        })
        .collect::<Vec<_>>();
    let counts: Vec<u64> = variants.iter().map(|v| v.profiles).collect();
    let metric_text = match (&metric.funnel, &metric.property) {
        (Some(f), _) => format!("completed funnel {f} entered within {} days of exposure", metric.days),
        (None, Some(p)) => format!("sum of {p} of {} within {} days of exposure", metric.event, metric.days),
        (None, None) => format!("converted to {} within {} days of exposure", metric.event, metric.days),
    };
    Ok(ExperimentReport {
        experiment: name.to_string(),
        metric: metric_text,
        cuped,
        control,
        sample_ratio_p: experiment::sample_ratio_mismatch(&counts, &vec![1.0; counts.len()]),
        variants,
        exposed_to_several: several,
    })
}
