//! `kinship bench success`: customer success over generated profiles held by the audience
//! engine (1M by default, with invoices, survey answers, orders and tickets): health scores
//! for every profile, one event's score update, NPS and earned growth, beside DuckDB
//! answering NPS and one quarter's earned growth in SQL over the same rows.

use crate::bench_segments::mix;
use anyhow::Result;
use kinship_core::measure::MeasuresConfig;
use kinship_measure::health::HealthProgram;
use kinship_pipeline::success::{self, NpsBy, Period};
use kinship_segments::Audience;
use serde_json::{Map, Value, json};
use std::io::Write;
use std::time::Instant;

#[derive(clap::Args)]
pub struct BenchSuccessArgs {
    #[arg(long, default_value_t = 1_000_000)]
    profiles: usize,
    /// How many single-event score updates to time.
    #[arg(long, default_value_t = 20_000)]
    updates: usize,
    #[command(flatten)]
    peer: crate::bench::DuckdbPeer,
}

const DAY: i64 = 86_400_000;
/// 2026-01-01T00:00:00Z; events fall in the two years before it.
const END: i64 = 1_767_225_600_000;

const HEALTH: &str = r#"
name = "bench"
applies = 'any("Invoice Issued")'
[[measures]]
name = "orders_90d"
value = 'count("Order Completed", last 90 days)'
points = [[0, 20], [1, 70], [3, 100]]
weight = 2
[[measures]]
name = "days_since_invoice"
value = 'days_since(last("Invoice Issued"))'
points = [[0, 100], [90, 60], [365, 0]]
weight = 2
[[measures]]
name = "tickets_30d"
value = 'count("Ticket Opened", last 30 days)'
points = [[0, 100], [2, 30], [4, 0]]
[[measures]]
name = "nps"
value = 'avg("NPS Response", score, last 365 days)'
points = [[0, 0], [6, 30], [10, 100]]
[[contexts]]
name = "new"
when = 'days_since(first("Invoice Issued")) < 60'
weights = { tickets_30d = 0 }
explains_alerts = true
"#;

const USUAL: &str = r#"
[[contexts]]
name = "usual"
usual = { measure = "tickets_30d", over = "180 days", every = "30 days" }
weights = { tickets_30d = 0 }
explains_alerts = true
"#;

/// One profile's events: (name, time, properties), oldest first.
fn events_of(p: usize) -> Vec<(&'static str, i64, Map<String, Value>)> {
    let h = mix(p as u64 ^ 0x5ECC);
    let at = |k: u64| END - 1 - ((mix(h ^ k) % (730 * DAY as u64)) as i64);
    let mut events = Vec::new();
    for k in 0..1 + h % 3 {
        let amount = 20 + (mix(h ^ (k + 100)) % 300) as i64;
        events.push(("Invoice Issued", at(k), json!({ "amount": amount })));
        events.push(("Order Completed", at(k) - 3_600_000, json!({ "total": amount })));
    }
    for k in 0..(h >> 8) % 3 {
        events.push(("Ticket Opened", at(k + 10), Map::new().into()));
    }
    if (h >> 16) % 10 < 3 {
        let score = (mix(h ^ 77) % 11) as i64;
        let why = if (h >> 24).is_multiple_of(4) { "a friend told me" } else { "an advert" };
        events.push(("NPS Response", at(20), json!({ "score": score, "why": why })));
    }
    events.sort_by_key(|e| e.1);
    events.into_iter().map(|(n, t, p)| (n, t, p.as_object().cloned().unwrap_or_default())).collect()
}

fn timed<T>(runs: usize, mut f: impl FnMut() -> T) -> (T, f64) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f());
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    (last.expect("ran"), times[runs / 2])
}

pub fn run(args: &BenchSuccessArgs) -> Result<()> {
    println!("generating {} profiles with invoices, orders, tickets and survey answers", args.profiles);
    let started = Instant::now();
    let mut audience = Audience::new();
    let none = Map::new();
    let mut invoices = 0usize;
    for p in 0..args.profiles {
        let events = events_of(p);
        invoices += events.iter().filter(|e| e.0 == "Invoice Issued").count();
        audience.upsert_profile(&format!("p{p}"), &none, events.iter().map(|(n, t, props)| (*n, *t, props)));
    }
    println!(
        "load           {:.1} s, {invoices} invoices (peak {} MiB)",
        started.elapsed().as_secs_f64(),
        crate::bench::peak_rss_mib_text()
    );
    let config = MeasuresConfig { earned: Some(r#"any("NPS Response", why contains "friend")"#.into()), ..MeasuresConfig::default() };
    let program = HealthProgram::parse(HEALTH, &audience.schema())?;
    let now = END;

    let (scored, health_s) = timed(3, || audience.map_profiles(|p| program.score(p, now)).len());
    println!("health scores  {scored} profiles scored in {:.0} ms (median of 3)", health_s * 1e3);
    let (report, report_s) = timed(3, || success::health(&audience, &program, now));
    println!(
        "health report  {:.0} ms (median of 3): scores now and a week ago, bands, alerts ({} red, {} alert changes)",
        report_s * 1e3,
        report.red,
        report.alerts.len()
    );

    // The same with a usual-level context (each profile's tickets as of six past months).
    let usual = HealthProgram::parse(&format!("{HEALTH}{USUAL}"), &audience.schema())?;
    let (_, usual_s) = timed(3, || audience.map_profiles(|p| usual.score(p, now)).len());
    println!("usual level    {:.0} ms (median of 3): scores with a context reading six past months of a measure", usual_s * 1e3);
    let (history, history_s) = timed(3, || audience.map_one("p7", |p| program.history(p, now, 7 * DAY, 13)));
    println!(
        "history        {:.2} ms (median of 3): one profile's score as of each of 13 weeks ({} points)",
        history_s * 1e3,
        history.map_or(0, |h| h.len())
    );

    let mut latencies = Vec::with_capacity(args.updates);
    for u in 0..args.updates {
        let p = (mix(u as u64 ^ 0xBEEF) % args.profiles as u64) as usize;
        let id = format!("p{p}");
        let mut events = events_of(p);
        events.push(("Ticket Opened", END - 1, Map::new()));
        let t = Instant::now();
        audience.upsert_profile(&id, &none, events.iter().map(|(n, t, props)| (*n, *t, props)));
        let score = audience.map_one(&id, |view| program.score(view, now));
        latencies.push(t.elapsed().as_secs_f64());
        std::hint::black_box(score);
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] * 1e6;
    println!(
        "one event      p50 {:.1} µs, p99 {:.1} µs: profile replaced and its score recomputed ({} updates)",
        pct(0.5),
        pct(0.99),
        args.updates
    );

    let (nps, nps_s) = timed(3, || success::nps(&audience, &config, &NpsBy::Month, now));
    let nps = nps?;
    let ours_nps = nps.overall.map_or(f64::NAN, |s| s.nps);
    println!(
        "NPS            {:.0} ms (median of 3): {ours_nps:+.3} ± {:.3} from {} answers",
        nps_s * 1e3,
        nps.overall.map_or(f64::NAN, |s| s.margin),
        nps.answers
    );
    let (growth, growth_s) = timed(3, || success::growth(&audience, &config, Period::Quarter, 4, now));
    let growth = growth?;
    let last = growth.iter().rev().find(|p| !p.partial).expect("a complete quarter");
    let g = &last.growth;
    println!(
        "earned growth  {:.0} ms (median of 3), four quarters; {}: NRR {:.4}, earned new {:.2}, earned growth {:.4}",
        growth_s * 1e3,
        last.label,
        g.net_revenue_retention.unwrap_or(f64::NAN),
        g.earned_new_revenue,
        g.earned_growth_rate.unwrap_or(f64::NAN)
    );

    if let Some(dir) = args.peer.dir("success") {
        match peer(&dir, args.profiles, last.start_ms, last.end_ms, &args.peer) {
            Ok(values) => {
                let [load, nps_q, nps_v, growth_q, nrr, earned] = values[..] else { anyhow::bail!("the peer printed {values:?}") };
                println!(
                    "peer           DuckDB: load {load:.1} s; NPS in SQL {:.0} ms ({nps_v:+.3}); the quarter's growth in SQL {:.0} ms (NRR {nrr:.4}, earned new {earned:.2})",
                    nps_q * 1e3,
                    growth_q * 1e3
                );
                println!(
                    "ratio          NPS {:.2}x, earned growth (four quarters against the peer's one) {:.2}x the peer's query speed",
                    nps_q / nps_s,
                    growth_q / growth_s
                );
                if (nps_v - ours_nps).abs() > 1e-6
                    || (nrr - g.net_revenue_retention.unwrap_or(f64::NAN)).abs() > 1e-9
                    || (earned - g.earned_new_revenue).abs() > 1e-6
                {
                    println!("warning: DuckDB and Kinship disagree");
                }
            }
            Err(e) => println!("peer           skipped: {e:#}"),
        }
    }
    Ok(())
}

const PEER_SCRIPT: &str = r#"
import duckdb, sys, time
d, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
t = time.perf_counter()
con.execute(f"CREATE TABLE inv AS SELECT * FROM read_csv('{d}/invoices.csv', header=true, columns={{'profile':'INTEGER','ts':'BIGINT','amount':'DOUBLE'}})")
con.execute(f"CREATE TABLE nps AS SELECT * FROM read_csv('{d}/nps.csv', header=true, columns={{'profile':'INTEGER','ts':'BIGINT','score':'INTEGER','why':'VARCHAR'}})")
load = time.perf_counter() - t
def median(q):
    times, out = [], None
    for _ in range(3):
        t = time.perf_counter(); out = con.execute(q).fetchone(); times.append(time.perf_counter() - t)
    return sorted(times)[1], out
nps_t, (nps,) = median("SELECT (count(*) FILTER (WHERE score >= 9) - count(*) FILTER (WHERE score <= 6)) * 100.0 / count(*) FROM nps")
length = end - start
g_t, (nrr, earned) = median(f"""
WITH prev AS (SELECT profile, sum(amount) a FROM inv WHERE ts >= {start - length} AND ts < {start} GROUP BY profile),
cur AS (SELECT profile, sum(amount) a FROM inv WHERE ts >= {start} AND ts < {end} GROUP BY profile),
first AS (SELECT profile, min(ts) f FROM inv GROUP BY profile),
earned AS (SELECT DISTINCT profile FROM nps WHERE why LIKE '%friend%')
SELECT (SELECT sum(cur.a) FROM cur JOIN prev USING (profile)) / (SELECT sum(a) FROM prev),
       (SELECT coalesce(sum(cur.a), 0) FROM cur JOIN first USING (profile) JOIN earned USING (profile)
         WHERE cur.profile NOT IN (SELECT profile FROM prev) AND first.f >= {start})""")
print(load, nps_t, nps, g_t, nrr, earned)
"#;

fn peer(dir: &std::path::Path, profiles: usize, start: i64, end: i64, duckdb: &crate::bench::DuckdbPeer) -> Result<Vec<f64>> {
    std::fs::create_dir_all(dir)?;
    let mut invoices = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join("invoices.csv"))?);
    let mut answers = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join("nps.csv"))?);
    writeln!(invoices, "profile,ts,amount")?;
    writeln!(answers, "profile,ts,score,why")?;
    for p in 0..profiles {
        for (name, t, props) in events_of(p) {
            match name {
                "Invoice Issued" => writeln!(invoices, "{p},{t},{}", props["amount"])?,
                "NPS Response" => writeln!(answers, "{p},{t},{},{}", props["score"], props["why"].as_str().unwrap_or(""))?,
                _ => {}
            }
        }
    }
    invoices.flush()?;
    answers.flush()?;
    let values = duckdb.run(PEER_SCRIPT, &[&dir.to_string_lossy(), &start.to_string(), &end.to_string()])?;
    values.iter().map(|v| v.parse::<f64>().map_err(anyhow::Error::from)).collect()
}
