//! `kinship bench measure`: the funnel engine over generated timelines (1M profiles, 20M
//! events), and the server's path over the same profiles held by the audience engine,
//! beside DuckDB answering the same funnel in SQL over the same data; one new event's funnel
//! update (engine alone, and through the audience with a segment over the position); and an
//! experiment readout over 1M exposed profiles.

use crate::bench_segments::mix;
use anyhow::Result;
use kinship_measure::experiment::{Adjusted, SampleMean, Settings, Statistic, bayesian, frequentist, sample_ratio_mismatch};
use kinship_measure::funnel::{Counting, Funnel, Moment, Order, ProfileTimeline, measure};
use kinship_pipeline::measure::{Cohort, ExperimentMetric};
use kinship_segments::{Audience, DefinitionSource, Kind};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

#[derive(clap::Args)]
pub struct BenchMeasureArgs {
    #[arg(long, default_value_t = 1_000_000)]
    profiles: usize,
    #[arg(long, default_value_t = 20_000_000)]
    events: usize,
    /// How many single-event funnel updates to time.
    #[arg(long, default_value_t = 20_000)]
    updates: usize,
    #[command(flatten)]
    peer: crate::bench::DuckdbPeer,
}

const DAY: i64 = 86_400_000;
const STEPS: usize = 5;
/// Step names of the generated journey, across systems; index 5 is everything else.
const NAMES: [&str; 6] = ["Page Viewed", "Product Viewed", "Order Completed", "Order Shipped", "Invoice Paid", "Email Opened"];

/// One profile's events, time-ordered and with distinct times: (time, name index). Earlier
/// steps are likelier, so the funnel narrows.
fn timeline_of(profile: usize, n: usize) -> Vec<(i64, usize)> {
    let mut events: Vec<(i64, usize)> = (0..n)
        .map(|k| {
            let h = mix((profile as u64) << 24 | k as u64);
            let name = match h % 100 {
                0..=34 => 0,
                35..=54 => 1,
                55..=66 => 2,
                67..=75 => 3,
                76..=82 => 4,
                _ => 5,
            };
            (((h >> 8) % (90 * DAY as u64)) as i64, name)
        })
        .collect();
    events.sort_unstable();
    events.dedup_by_key(|e| e.0);
    events
}

fn moment(&(at_ms, name): &(i64, usize)) -> Moment {
    Moment { at_ms, steps: if name < STEPS { 1 << name } else { 0 }, exclusions: 0 }
}

pub fn run(args: &BenchMeasureArgs) -> Result<()> {
    let per_profile = args.events / args.profiles.max(1);
    println!("generating {} profiles with {per_profile} events each", args.profiles);
    let started = Instant::now();
    // Flat, as a host holds timelines: every moment, and where each profile's start.
    let mut moments = Vec::with_capacity(args.events);
    let mut starts = Vec::with_capacity(args.profiles + 1);
    for p in 0..args.profiles {
        starts.push(moments.len());
        moments.extend(timeline_of(p, per_profile).iter().map(moment));
    }
    starts.push(moments.len());
    println!(
        "load           {:.2} s, {} events (peak {} MiB)",
        started.elapsed().as_secs_f64(),
        moments.len(),
        crate::bench::peak_rss_mib_text()
    );

    let funnel = Funnel {
        steps: STEPS,
        order: Order::Ordered,
        window_ms: 14 * DAY,
        step_windows: vec![None; STEPS],
        exclusions: Vec::new(),
        counting: Counting::FirstEntry,
        period: (0, i64::MAX),
    };
    let profiles = || starts.windows(2).map(|w| ProfileTimeline { moments: &moments[w[0]..w[1]], breakdown: None });
    let mut times = Vec::new();
    let mut result = None;
    for _ in 0..3 {
        let t = Instant::now();
        result = Some(measure(&funnel, profiles(), 10));
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let result = result.expect("ran");
    let counts: Vec<u64> = result.steps.iter().map(|s| s.count).collect();
    println!("funnel         5 steps, ordered, 14-day window, first entries: {counts:?}");
    println!("               {:.0} ms (median of 3; {:.0}–{:.0} ms)", times[1] * 1e3, times[0] * 1e3, times[2] * 1e3);
    for (i, s) in result.steps.iter().enumerate().skip(1) {
        let hours = |ms: Option<i64>| ms.map_or("-".to_string(), |v| format!("{:.1} h", v as f64 / 3.6e6));
        println!(
            "  {:<16} {:>5.1}% of the previous, median {}, p90 {}",
            NAMES[i],
            s.from_previous * 100.0,
            hours(s.time_from_previous.median_ms),
            hours(s.time_from_previous.p90_ms)
        );
    }

    // One new event for a profile: its attempts again (what a host keeps per profile).
    let mut latencies = Vec::with_capacity(args.updates);
    let mut deeper = 0;
    for u in 0..args.updates {
        let p = (mix(u as u64 ^ 0x5151) % args.profiles as u64) as usize;
        let mut own: Vec<Moment> = moments[starts[p]..starts[p + 1]].to_vec();
        let before = funnel.attempts(&own).first().map_or(0, |a| a.depth());
        let t = Instant::now();
        let at = own.last().map_or(0, |m| m.at_ms + 1);
        own.push(Moment { at_ms: at, steps: 1 << (u % STEPS), exclusions: 0 });
        let after = funnel.attempts(&own).first().map_or(0, |a| a.depth());
        latencies.push(t.elapsed().as_secs_f64());
        deeper += usize::from(after > before);
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] * 1e6;
    println!("one event      p50 {:.1} µs, p99 {:.1} µs over {} updates ({deeper} went a step further)", pct(0.5), pct(0.99), args.updates);

    let served = audience_path(args, per_profile, &counts)?;

    experiment(args.profiles);

    if let Some(dir) = args.peer.dir("measure") {
        match peer(&dir, &moments, &starts, &args.peer) {
            Ok((load, query, theirs)) => {
                println!("peer           DuckDB: load {load:.1} s; the same funnel in SQL {:.0} ms (median of 3): {theirs:?}", query * 1e3);
                println!("ratio          the funnel engine is {:.1}x the peer's query speed", query / times[1]);
                println!("ratio          the server's path (audience in memory) is {:.1}x the peer's query speed", query / served);
                if theirs != counts {
                    println!("warning: DuckDB counted {theirs:?}, Kinship {counts:?}");
                }
            }
            Err(e) => println!("peer           skipped: {e:#}"),
        }
    }
    Ok(())
}

/// The path a server takes: the same profiles held by the audience engine, the funnel a saved
/// definition whose steps are judged event by event, the report with its drill-down; and one
/// new event through the real-time path, re-judging a segment over the profile's funnel
/// position. Returns the funnel's median time in seconds.
fn audience_path(args: &BenchMeasureArgs, per_profile: usize, counts: &[u64]) -> Result<f64> {
    let started = Instant::now();
    let mut audience = Audience::new();
    let none = serde_json::Map::new();
    // Every profile is also exposed to an experiment, at its first event: the readout is
    // timed over the same audience.
    let variants: Vec<serde_json::Map<String, serde_json::Value>> = ["control", "treatment"]
        .iter()
        .map(|v| serde_json::json!({ "experiment": "bench", "variant": v }).as_object().cloned().unwrap_or_default())
        .collect();
    for p in 0..args.profiles {
        let events = timeline_of(p, per_profile);
        let exposure = events.first().map(|e| ("Experiment Viewed", e.0, &variants[p % 2]));
        audience.upsert_profile(&format!("p{p}"), &none, events.iter().map(|&(ts, name)| (NAMES[name], ts, &none)).chain(exposure));
    }
    let steps: String = NAMES[..STEPS].iter().map(|n| format!("[[steps]]\nevent = \"{n}\"\n")).collect();
    let definition = format!("name = \"journey\"\nwindow = \"14 days\"\n{steps}");
    let now = 90 * DAY;
    audience.define(DefinitionSource { kind: Kind::Funnel, name: "journey".into(), expression: definition }, now)?;
    println!(
        "audience       loaded and the funnel saved in {:.1} s (peak {} MiB)",
        started.elapsed().as_secs_f64(),
        crate::bench::peak_rss_mib_text()
    );
    let program = audience.saved_funnel("journey").expect("defined").clone();
    let mut times = Vec::new();
    let mut report = None;
    for _ in 0..3 {
        let t = Instant::now();
        report = Some(kinship_pipeline::measure::funnel(&audience, &program, None, &Cohort::default()));
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let served: Vec<u64> = report.expect("ran").result.steps.iter().map(|s| s.count).collect();
    println!(
        "served funnel  {:.0} ms (median of 3; {:.0}–{:.0} ms), with the drill-down: {served:?}",
        times[1] * 1e3,
        times[0] * 1e3,
        times[2] * 1e3
    );
    if served != counts {
        println!("warning: the server's path counted {served:?}, the engine {counts:?}");
    }

    let metric = ExperimentMetric { event: "Order Completed".into(), property: None, condition: None, days: 14, funnel: None };
    let mut readout_times = Vec::new();
    let mut readout = None;
    for _ in 0..3 {
        let t = Instant::now();
        readout = Some(kinship_pipeline::measure::experiment(&audience, "bench", &metric)?);
        readout_times.push(t.elapsed().as_secs_f64());
    }
    readout_times.sort_by(f64::total_cmp);
    let exposed: u64 = readout.expect("ran").variants.iter().map(|v| v.profiles).sum();
    println!(
        "served readout {:.0} ms (median of 3; {:.0}–{:.0} ms): {exposed} exposed profiles, conversion to an order within 14 days, every readout",
        readout_times[1] * 1e3,
        readout_times[0] * 1e3,
        readout_times[2] * 1e3
    );

    audience
        .define(DefinitionSource { kind: Kind::Segment, name: "deep".into(), expression: "funnel(\"journey\").step >= 3".into() }, now)?;
    let mut latencies = Vec::with_capacity(args.updates);
    let mut moved = 0;
    for u in 0..args.updates {
        let p = (mix(u as u64 ^ 0xA0A0) % args.profiles as u64) as usize;
        let mut events = timeline_of(p, per_profile);
        let at = events.last().map_or(0, |e| e.0 + 1);
        events.push((at, u % STEPS));
        let t = Instant::now();
        let change = audience.upsert_profile(&format!("p{p}"), &none, events.iter().map(|&(ts, name)| (NAMES[name], ts, &none)));
        moved += audience.evaluate_profile(&format!("p{p}"), &change, now).len();
        latencies.push(t.elapsed().as_secs_f64());
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] * 1e6;
    println!(
        "served event   p50 {:.1} µs, p99 {:.1} µs: profile replaced, funnel position and segment re-judged ({moved} entered or left)",
        pct(0.5),
        pct(0.99)
    );
    Ok(times[1])
}

/// An experiment over `profiles` exposed profiles: each profile's revenue before and after
/// exposure summed per variant (CUPED), then every readout.
fn experiment(profiles: usize) {
    let t = Instant::now();
    let mut sums = [(SampleMean::default(), SampleMean::default(), 0.0); 2];
    for p in 0..profiles {
        let h = mix(p as u64 ^ 0xE7E7);
        let variant = (h & 1) as usize;
        let before = ((h >> 8) % 20_000) as f64 / 100.0;
        let lift = if variant == 1 { 1.03 } else { 1.0 };
        let after = (before * 0.6 + ((h >> 24) % 10_000) as f64 / 100.0) * lift;
        let (post, pre, products) = &mut sums[variant];
        post.n += 1;
        post.sum += after;
        post.sum_squares += after * after;
        pre.n += 1;
        pre.sum += before;
        pre.sum_squares += before * before;
        *products += after * before;
    }
    let [a, b] = sums.map(|(post, pre, products)| Statistic::Adjusted(Adjusted::new(post, pre, products)));
    let settings = Settings::default();
    let f = frequentist(&a, &b, &settings);
    let s = frequentist(&a, &b, &Settings { sequential: Some(5_000.0), ..settings });
    let bayes = bayesian(&a, &b, &settings);
    let srm = sample_ratio_mismatch(&[a.n(), b.n()], &[0.5, 0.5]);
    let took = t.elapsed().as_secs_f64();
    match (f, s, bayes) {
        (Ok(f), Ok(s), Ok(bayes)) => println!(
            "experiment     {profiles} exposed profiles, CUPED: lift {:+.2}% [{:+.2}%, {:+.2}%], p {:.2e}; sequential [{:+.2}%, {:+.2}%]; \
             chance to win {:.4}; SRM p {srm:.3}; {:.0} ms",
            f.lift * 100.0,
            f.ci.0 * 100.0,
            f.ci.1 * 100.0,
            f.p_value,
            s.ci.0 * 100.0,
            s.ci.1 * 100.0,
            bayes.chance_to_win,
            took * 1e3
        ),
        (f, _, _) => println!("experiment     no readout: {f:?}"),
    }
}

const PEER_SCRIPT: &str = r#"
import duckdb, sys, time
d, w = sys.argv[1], int(sys.argv[2])
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
t = time.perf_counter()
con.execute(f"CREATE TABLE e AS SELECT * FROM read_csv('{d}/events.csv', header=true, columns={{'profile':'INTEGER','ts':'BIGINT','step':'INTEGER'}})")
load = time.perf_counter() - t
q = f"""WITH s1 AS (SELECT profile, min(ts) AS t1 FROM e WHERE step = 1 GROUP BY profile),
s2 AS (SELECT s1.*, min(e.ts) AS t2 FROM s1 JOIN e ON e.profile = s1.profile AND e.step = 2 AND e.ts > s1.t1 AND e.ts <= s1.t1 + {w} GROUP BY ALL),
s3 AS (SELECT s2.*, min(e.ts) AS t3 FROM s2 JOIN e ON e.profile = s2.profile AND e.step = 3 AND e.ts > s2.t2 AND e.ts <= s2.t1 + {w} GROUP BY ALL),
s4 AS (SELECT s3.*, min(e.ts) AS t4 FROM s3 JOIN e ON e.profile = s3.profile AND e.step = 4 AND e.ts > s3.t3 AND e.ts <= s3.t1 + {w} GROUP BY ALL),
s5 AS (SELECT s4.*, min(e.ts) AS t5 FROM s4 JOIN e ON e.profile = s4.profile AND e.step = 5 AND e.ts > s4.t4 AND e.ts <= s4.t1 + {w} GROUP BY ALL)
SELECT (SELECT count(*) FROM s1), (SELECT count(*) FROM s2), (SELECT count(*) FROM s3), (SELECT count(*) FROM s4), (SELECT count(*) FROM s5)"""
times = []
for _ in range(3):
    t = time.perf_counter(); row = con.execute(q).fetchall()[0]; times.append(time.perf_counter() - t)
times.sort()
print(load, times[1], *row)
"#;

/// Writes the timelines as CSV, loads them into DuckDB and times the funnel's SQL there
/// (median of 3); returns (load seconds, query seconds, counts per step).
fn peer(dir: &Path, moments: &[Moment], starts: &[usize], duckdb: &crate::bench::DuckdbPeer) -> Result<(f64, f64, Vec<u64>)> {
    std::fs::create_dir_all(dir)?;
    let mut csv = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join("events.csv"))?);
    writeln!(csv, "profile,ts,step")?;
    for (p, w) in starts.windows(2).enumerate() {
        for m in &moments[w[0]..w[1]] {
            let step = if m.steps == 0 { 0 } else { m.steps.trailing_zeros() + 1 };
            writeln!(csv, "{p},{},{step}", m.at_ms)?;
        }
    }
    csv.flush()?;
    let values = duckdb.run(PEER_SCRIPT, &[&dir.to_string_lossy(), &(14 * DAY).to_string()])?;
    anyhow::ensure!(values.len() == 2 + STEPS, "the peer printed {values:?}");
    Ok((values[0].parse()?, values[1].parse()?, values[2..].iter().map(|v| v.parse()).collect::<Result<_, _>>()?))
}
