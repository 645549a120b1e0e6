//! `kinship bench segments`: the audience engine on generated profiles and events, beside
//! DuckDB answering the same segment in SQL over the same data.

use anyhow::{Context, Result};
use kinship_segments::{Audience, DefinitionSource, Kind};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

#[derive(clap::Args)]
pub struct BenchSegmentsArgs {
    #[arg(long, default_value_t = 1_000_000)]
    profiles: usize,
    #[arg(long, default_value_t = 20_000_000)]
    events: usize,
    /// How many single-event updates to time.
    #[arg(long, default_value_t = 20_000)]
    updates: usize,
    #[command(flatten)]
    peer: crate::bench::DuckdbPeer,
}

const DAY: i64 = 86_400_000;
/// A fixed "now", so runs are comparable.
const NOW: i64 = 1_795_000_000_000;
const COUNTRIES: [&str; 4] = ["AU", "NZ", "US", "GB"];
const EVENTS: [&str; 4] = ["Order Completed", "Page Viewed", "Ticket Opened", "Email Opened"];
const SEGMENT: &str = r#"traits.country == "AU" and count("Order Completed", last 90 days) >= 2 and exists(traits.email)"#;

/// SplitMix64: deterministic, so every run sees the same data.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// One generated event: (name index, time, property variant).
fn event_of(profile: usize, k: usize) -> (usize, i64, usize) {
    let h = mix((profile as u64) << 20 | k as u64);
    ((h % 4) as usize, NOW - ((h >> 8) % (730 * DAY as u64)) as i64, ((h >> 40) % 16) as usize)
}

fn traits_of(profile: usize) -> Map<String, Value> {
    let h = mix(profile as u64 ^ 0xABCD);
    let mut t = Map::new();
    t.insert("country".into(), json!(COUNTRIES[(h % 4) as usize]));
    if !h.is_multiple_of(10) {
        t.insert("email".into(), json!(format!("p{profile}@example.com")));
    }
    t
}

/// Property maps shared by the generated events (the engine copies what it keeps).
fn property_variants() -> Vec<[Map<String, Value>; 4]> {
    (0..16)
        .map(|v| {
            let order = json!({ "revenue": 10 + v * 25, "currency": "AUD" });
            let ticket = json!({ "status": if v % 3 == 0 { "open" } else { "closed" } });
            let empty = json!({});
            [order, empty.clone(), ticket, empty].map(|x| x.as_object().cloned().unwrap_or_default())
        })
        .collect()
}

pub fn run(args: &BenchSegmentsArgs) -> Result<()> {
    let per_profile = args.events / args.profiles.max(1);
    let variants = property_variants();
    println!("generating {} profiles with {per_profile} events each", args.profiles);
    let started = Instant::now();
    let mut audience = Audience::new();
    for p in 0..args.profiles {
        let events: Vec<(usize, i64, usize)> = (0..per_profile).map(|k| event_of(p, k)).collect();
        audience.upsert_profile(&format!("p{p:07}"), &traits_of(p), events.iter().map(|&(n, ts, v)| (EVENTS[n], ts, &variants[v][n])));
    }
    println!("load           {:.2} s into memory (peak {} MiB)", started.elapsed().as_secs_f64(), crate::bench::peak_rss_mib_text());

    let t = Instant::now();
    let preview = audience.preview(SEGMENT, NOW, 10)?;
    let preview_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    audience.define(DefinitionSource { kind: Kind::Segment, name: "au_repeat".into(), expression: SEGMENT.into() }, NOW)?;
    let define_s = t.elapsed().as_secs_f64();
    let mut recompute = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        audience.recompute(Kind::Segment, "au_repeat", NOW)?;
        recompute.push(t.elapsed().as_secs_f64());
    }
    recompute.sort_by(f64::total_cmp);
    let size = audience.size("au_repeat").unwrap_or(0);
    assert_eq!(size, preview.count, "a preview counts what the segment holds");
    println!("segment        {SEGMENT}");
    println!("members        {size}");
    println!("preview count  {:.1} ms", preview_s * 1e3);
    println!("full recompute {:.1} ms (median of 5; creating it took {:.1} ms)", recompute[2] * 1e3, define_s * 1e3);

    // One new order for a profile: reload it (as the real-time path does after resolving)
    // and re-evaluate only what reads orders.
    let mut latencies = Vec::with_capacity(args.updates);
    let mut moved = 0usize;
    for u in 0..args.updates {
        let p = (mix(u as u64 ^ 0x5151) % args.profiles as u64) as usize;
        let mut events: Vec<(usize, i64, usize)> = (0..per_profile).map(|k| event_of(p, k)).collect();
        events.push((0, NOW - DAY, 1));
        let traits = traits_of(p);
        let id = format!("p{p:07}");
        let t = Instant::now();
        let change = audience.upsert_profile(&id, &traits, events.iter().map(|&(n, ts, v)| (EVENTS[n], ts, &variants[v][n])));
        moved += audience.evaluate_profile(&id, &change, NOW).len();
        latencies.push(t.elapsed().as_secs_f64());
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] * 1e6;
    println!(
        "one event      p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs over {} updates ({moved} entered)",
        pct(0.5),
        pct(0.99),
        pct(1.0),
        args.updates
    );

    if let Some(dir) = args.peer.dir("segments") {
        match peer(&dir, args, per_profile) {
            Ok((load, query, count)) => {
                println!("peer           DuckDB: load {load:.1} s; the same segment in SQL {:.1} ms ({count} members)", query * 1e3);
                println!("ratio          full recompute is {:.1}x the peer's query speed", query / recompute[2]);
                if count != size {
                    println!("warning: DuckDB counted {count}, Kinship {size}");
                }
            }
            Err(e) => println!("peer           skipped: {e:#}"),
        }
    }
    Ok(())
}

const PEER_SCRIPT: &str = r#"
import duckdb, sys, time
d, now, day = sys.argv[1], int(sys.argv[2]), 86400000
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
t = time.perf_counter()
con.execute(f"CREATE TABLE profiles AS SELECT * FROM read_csv('{d}/profiles.csv', header=true, columns={{'id':'VARCHAR','country':'VARCHAR','email':'VARCHAR'}})")
con.execute(f"CREATE TABLE events AS SELECT * FROM read_csv('{d}/events.csv', header=true, columns={{'profile':'VARCHAR','name':'VARCHAR','ts':'BIGINT','revenue':'DOUBLE','status':'VARCHAR'}})")
load = time.perf_counter() - t
q = f"""WITH o AS (SELECT profile FROM events WHERE name = 'Order Completed' AND ts > {now - 90 * day} AND ts <= {now}
                 GROUP BY profile HAVING count(*) >= 2)
        SELECT count(*) FROM profiles p JOIN o ON o.profile = p.id WHERE p.country = 'AU' AND p.email IS NOT NULL"""
times = []
for _ in range(5):
    t = time.perf_counter(); n = con.execute(q).fetchone()[0]; times.append(time.perf_counter() - t)
times.sort()
print(load, times[2], n)
"#;

/// Writes the same data as CSV, loads it into DuckDB and times the segment's query there
/// (median of 5); returns (load seconds, query seconds, count).
fn peer(dir: &Path, args: &BenchSegmentsArgs, per_profile: usize) -> Result<(f64, f64, usize)> {
    std::fs::create_dir_all(dir)?;
    let mut profiles = std::io::BufWriter::new(std::fs::File::create(dir.join("profiles.csv"))?);
    let mut events = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join("events.csv"))?);
    writeln!(profiles, "id,country,email")?;
    writeln!(events, "profile,name,ts,revenue,status")?;
    let variants = property_variants();
    for p in 0..args.profiles {
        let t = traits_of(p);
        writeln!(profiles, "p{p:07},{},{}", t["country"].as_str().unwrap_or(""), t.get("email").and_then(Value::as_str).unwrap_or(""))?;
        for k in 0..per_profile {
            let (n, ts, v) = event_of(p, k);
            let props = &variants[v][n];
            let revenue = props.get("revenue").map(Value::to_string).unwrap_or_default();
            let status = props.get("status").and_then(Value::as_str).unwrap_or("");
            writeln!(events, "p{p:07},{},{ts},{revenue},{status}", EVENTS[n])?;
        }
    }
    profiles.flush()?;
    events.flush()?;
    let values = args.peer.run(PEER_SCRIPT, &[&dir.to_string_lossy(), &NOW.to_string()])?;
    let mut parts = values.iter();
    let mut next = || parts.next().context("the peer printed load, query and count");
    Ok((next()?.parse()?, next()?.parse()?, next()?.parse()?))
}
