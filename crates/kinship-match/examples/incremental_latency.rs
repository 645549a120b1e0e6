//! Latency of `IncrementalMatcher::match_one` against a CSV file's records:
//! `cargo run --release -p kinship-match --example incremental_latency -- INPUT.csv ID_COLUMN`.
//! Every 100th record, with its first field's last two characters swapped, is matched
//! against the whole file.

use std::time::Instant;

use kinship_match::{infer_config, train, Dataset, IncrementalMatcher, NoProgress};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, id_column] = args.as_slice() else {
        return Err("usage: incremental_latency INPUT.csv ID_COLUMN".into());
    };
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(input)?;
    let headers: Vec<String> = reader.headers()?.iter().map(str::to_string).collect();
    let rows: Vec<Vec<String>> = reader.records().map(|r| r.map(|r| r.iter().map(str::to_string).collect())).collect::<Result<_, _>>()?;
    let config = infer_config(&headers, &rows[..rows.len().min(5000)], id_column, rows.len())?;
    let columns = config.columns();
    let positions: Vec<usize> = columns.iter().map(|c| headers.iter().position(|h| h == c).unwrap()).collect();
    let records: Vec<Vec<String>> = rows.iter().map(|row| positions.iter().map(|&p| row[p].clone()).collect()).collect();
    let dataset = Dataset::from_rows(&columns, &records);
    let model = train(&dataset, &config, &NoProgress)?;
    let started = Instant::now();
    let matcher = IncrementalMatcher::new(dataset, &config, &model)?;
    eprintln!("indexed {} records in {:.1}s", records.len(), started.elapsed().as_secs_f64());

    let mut latencies = Vec::new();
    let mut found = 0;
    for record in records.iter().step_by(100) {
        let mut probe = record.clone();
        let mut chars: Vec<char> = probe[0].chars().collect();
        let n = chars.len();
        if n >= 2 {
            chars.swap(n - 2, n - 1);
        }
        probe[0] = chars.into_iter().collect();
        let probe: Vec<&str> = probe.iter().map(String::as_str).collect();
        let started = Instant::now();
        let matches = matcher.match_one(&probe);
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
        found += usize::from(!matches.is_empty());
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    eprintln!("{} probes, {} matched: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms", latencies.len(), found, at(0.5), at(0.99), at(1.0));
    Ok(())
}
