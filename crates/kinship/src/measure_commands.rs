//! `kinship funnel show` and `kinship experiment show`: a funnel over every profile's unified
//! timeline, and an experiment's readout, printed with bars or as JSON. Audited; the drill-down
//! lists are profile ids, which the local operator may see.

use crate::DataDir;
use crate::commands::{Workspace, operator};
use anyhow::{Context, Result};
use clap::Subcommand;
use kinship_pipeline::measure::{CompiledFunnel, ExperimentMetric};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum FunnelCommand {
    /// A funnel (a TOML file: steps, window, order, exclusions, breakdown) over every profile:
    /// count, conversion and time per step.
    Show {
        file: PathBuf,
        /// Only entries in the last days (all history by default).
        #[arg(long)]
        days: Option<u32>,
        /// Print the whole result, with the profiles behind each step, as JSON.
        #[arg(long)]
        json: bool,
    },
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
    let FunnelCommand::Show { file, days, json } = cmd;
    let mut ws = Workspace::open(data)?;
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let compiled = CompiledFunnel::parse(&text)?;
    let report = kinship_pipeline::measure::funnel(&*ws.store, &ws.config, &compiled, *days)?;
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
        println!("by {}:", compiled.definition.breakdown.as_deref().unwrap_or("value"));
        for (value, counts) in &report.result.breakdown {
            let last = counts.last().copied().unwrap_or(0) as f64 / counts[0].max(1) as f64;
            println!("  {value:<20} {counts:?}  {:.1}% converted", last * 100.0);
        }
    }
    println!("(--json lists the profiles behind each step)");
    Ok(ExitCode::SUCCESS)
}

pub fn experiment(data: &DataDir, cmd: &ExperimentCommand) -> Result<ExitCode> {
    let ExperimentCommand::Show { name, event, sum, condition, days, json } = cmd;
    let mut ws = Workspace::open(data)?;
    let metric = ExperimentMetric { event: event.clone(), property: sum.clone(), condition: condition.clone(), days: *days };
    let report = kinship_pipeline::measure::experiment(&*ws.store, &ws.config, name, &metric)?;
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
