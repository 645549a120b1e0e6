//! `kinship funnel create|list|show|delete` and `kinship experiment show`: saved funnels (a
//! definition like a segment, which segments read as `funnel("name").step`), a funnel over
//! every profile's unified timeline, and an experiment's readout, printed with bars or as
//! JSON. Audited; the drill-down lists are profile ids, which the local operator may see.

use crate::DataDir;
use crate::commands::{Workspace, operator};
use crate::segment_commands::load;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use kinship_measure::definition::FunnelProgram;
use kinship_pipeline::audience;
use kinship_pipeline::measure::{Cohort, ExperimentMetric};
use kinship_segments::{DefinitionSource, Kind};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum FunnelCommand {
    /// Save a funnel (a TOML file: name, steps, window, order, exclusions, breakdown); segments
    /// and flows then read each profile's position as `funnel("name").step`, `.reached`, `.stuck`.
    Create { file: PathBuf },
    /// The saved funnels.
    List,
    /// A saved funnel (by name) or a TOML file over every profile: count, conversion and time
    /// per step, a breakdown and a weekly trend.
    Show {
        /// A saved funnel's name, or a TOML file.
        funnel: String,
        /// Only entries in the last days (all history by default).
        #[arg(long)]
        days: Option<u32>,
        /// Only profiles with this value of the breakdown trait (drill into one row).
        #[arg(long)]
        breakdown: Option<String>,
        /// Only entries in the week starting on this Monday, YYYY-MM-DD (drill into one week).
        #[arg(long)]
        week: Option<String>,
        /// Print the whole result, with the profiles behind each step, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a saved funnel no segment reads.
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum ExperimentCommand {
    /// An experiment's readout from its `Experiment Viewed` events: per variant, frequentist,
    /// sequential and Bayesian, with the sample-ratio check.
    Show {
        name: String,
        /// The metric's event: conversion to it, or with `--sum` the sum of a property.
        #[arg(long, default_value = "Order Completed")]
        event: String,
        #[arg(long)]
        sum: Option<String>,
        /// A condition on the metric's events, in the segment language.
        #[arg(long = "where")]
        condition: Option<String>,
        /// Days after each profile's first exposure that count.
        #[arg(long, default_value_t = 14)]
        days: u32,
        /// Conversion is completing this saved funnel, entered within `--days` of exposure.
        #[arg(long)]
        funnel: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// A bar of `share` (0..1) in `width` characters.
fn bar(share: f64, width: usize) -> String {
    let filled = (share.clamp(0.0, 1.0) * width as f64).round() as usize;
    format!("{}{}", "█".repeat(filled), "·".repeat(width - filled))
}

fn duration(ms: Option<i64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 3_600_000 => format!("{:.0} min", ms as f64 / 60_000.0),
        Some(ms) if ms < 172_800_000 => format!("{:.1} h", ms as f64 / 3_600_000.0),
        Some(ms) => format!("{:.1} d", ms as f64 / 86_400_000.0),
    }
}

pub fn funnel(data: &DataDir, cmd: &FunnelCommand) -> Result<ExitCode> {
    let mut ws = Workspace::open(data)?;
    let (funnel, days, breakdown, week, json) = match cmd {
        FunnelCommand::Create { file } => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let name = FunnelProgram::parse(&text)?.definition.name;
            let mut engine = load(&ws)?;
            let source = DefinitionSource { kind: Kind::Funnel, name: name.clone(), expression: text };
            audience::define(&mut *ws.store, &ws.config, &mut engine, source)?;
            ws.audit(&operator(), "funnel.create", None, json!({ "funnel": name }))?;
            println!("funnel {name} saved; segments read it as funnel(\"{name}\").step (see `kinship funnel show {name}`)");
            return Ok(ExitCode::SUCCESS);
        }
        FunnelCommand::List => {
            println!("{:<24} steps", "funnel");
            for d in ws.store.definitions()?.iter().filter(|d| d.kind == "funnel") {
                let steps =
                    FunnelProgram::parse(&d.expression).map(|p| p.definition.steps.iter().map(|s| s.event.clone()).collect::<Vec<_>>());
                println!("{:<24} {}", d.name, steps.map_or_else(|e| format!("(does not parse: {e})"), |s| s.join(" → ")));
            }
            return Ok(ExitCode::SUCCESS);
        }
        FunnelCommand::Delete { name } => {
            let mut engine = load(&ws)?;
            audience::undefine(&mut *ws.store, &mut engine, Kind::Funnel, name)?;
            ws.audit(&operator(), "funnel.delete", None, json!({ "funnel": name }))?;
            println!("deleted funnel {name}");
            return Ok(ExitCode::SUCCESS);
        }
        FunnelCommand::Show { funnel, days, breakdown, week, json } => (funnel, days, breakdown, week, json),
    };
    let week_ms = match week {
        Some(text) => Some(
            kinship_expr::parse_timestamp(text)
                .filter(|ms| kinship_measure::funnel::week_of(*ms) == *ms)
                .with_context(|| format!("--week {text}: give the Monday a week starts on, as YYYY-MM-DD"))?,
        ),
        None => None,
    };
    let engine = load(&ws)?;
    let path = std::path::Path::new(funnel);
    let program = match engine.saved_funnel(funnel) {
        Some(saved) => saved.clone(),
        None if path.is_file() => FunnelProgram::parse(&std::fs::read_to_string(path).with_context(|| format!("reading {funnel}"))?)?,
        None => bail!("{funnel:?} is neither a saved funnel nor a file (see `kinship funnel list`)"),
    };
    let cohort = Cohort { breakdown: breakdown.clone(), week_ms };
    let report = kinship_pipeline::measure::funnel(&engine, &program, *days, &cohort);
    ws.audit(&operator(), "funnel.show", None, json!({ "funnel": report.name, "days": days }))?;
    if *json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("funnel {} ({} profiles entered)", report.name, report.result.steps.first().map_or(0, |s| s.count));
    for (i, (name, step)) in report.steps.iter().zip(&report.result.steps).enumerate() {
        println!(
            "{}. {:<24} {} {:>8} {:>6.1}%  {}",
            i + 1,
            name,
            bar(step.conversion, 30),
            step.count,
            step.conversion * 100.0,
            if i == 0 {
                String::new()
            } else {
                format!(
                    "{:.1}% of the previous, {} dropped; median {}, p90 {}",
                    step.from_previous * 100.0,
                    step.dropped,
                    duration(step.time_from_previous.median_ms),
                    duration(step.time_from_previous.p90_ms)
                )
            }
        );
    }
    if !report.result.breakdown.is_empty() {
        println!("by {}:", program.definition.breakdown.as_deref().unwrap_or("value"));
        for (value, counts) in &report.result.breakdown {
            let last = counts.last().copied().unwrap_or(0) as f64 / counts[0].max(1) as f64;
            println!("  {value:<20} {counts:?}  {:.1}% converted", last * 100.0);
        }
    }
    println!("(--json lists the profiles behind each step)");
    Ok(ExitCode::SUCCESS)
}

pub fn experiment(data: &DataDir, cmd: &ExperimentCommand) -> Result<ExitCode> {
    let ExperimentCommand::Show { name, event, sum, condition, days, funnel, json } = cmd;
    let mut ws = Workspace::open(data)?;
    let metric =
        ExperimentMetric { event: event.clone(), property: sum.clone(), condition: condition.clone(), days: *days, funnel: funnel.clone() };
    let engine = load(&ws)?;
    let report = kinship_pipeline::measure::experiment(&engine, name, &metric)?;
    ws.audit(&operator(), "experiment.show", None, json!({ "experiment": name, "metric": report.metric }))?;
    if *json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("experiment {name}: {}{}", report.metric, if report.cuped { " (CUPED)" } else { "" });
    for v in &report.variants {
        print!("  {:<16} {:>8} profiles  mean {:.4}", v.variant, v.profiles, v.mean);
        match (&v.frequentist, &v.bayesian, &v.error) {
            (Some(f), Some(b), _) => println!(
                "  lift {:+.2}% [{:+.2}%, {:+.2}%] p {:.4}; chance to win {:.1}%",
                f.lift * 100.0,
                f.ci.0 * 100.0,
                f.ci.1 * 100.0,
                f.p_value,
                b.chance_to_win * 100.0
            ),
            (_, _, Some(error)) => println!("  no readout: {error}"),
            _ => println!("  (control)"),
        }
    }
    if report.sample_ratio_p < 0.001 {
        println!("warning: the split across variants is unlikely by chance (p {:.2e}): check assignment", report.sample_ratio_p);
    }
    if !report.exposed_to_several.is_empty() {
        println!(
            "{} profile(s) saw more than one variant under ids now joined, and are left out: {}",
            report.exposed_to_several.len(),
            report.exposed_to_several.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
