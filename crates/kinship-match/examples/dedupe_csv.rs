//! Deduplicates a CSV file: `cargo run --release -p kinship-match --example dedupe_csv --
//! INPUT.csv ID_COLUMN OUT.csv [match.toml]`. Without a config one is inferred and printed.

use std::time::Instant;

use kinship_match::{dedupe, infer_config, Dataset, MatchConfig, NoProgress};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, id_column, output, rest @ ..] = args.as_slice() else {
        return Err("usage: dedupe_csv INPUT.csv ID_COLUMN OUT.csv [match.toml]".into());
    };
    let started = Instant::now();
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(input)?;
    let headers: Vec<String> = reader.headers()?.iter().map(str::to_string).collect();
    let rows: Vec<Vec<String>> = reader.records().map(|r| r.map(|r| r.iter().map(str::to_string).collect())).collect::<Result<_, _>>()?;
    let config = match rest.first() {
        Some(path) => MatchConfig::from_toml(&std::fs::read_to_string(path)?)?,
        None => {
            let config = infer_config(&headers, &rows[..rows.len().min(5000)], id_column, rows.len())?;
            eprintln!("# inferred configuration\n{}", config.to_toml());
            config
        }
    };
    let columns = config.columns();
    let positions: Vec<usize> =
        columns.iter().map(|c| headers.iter().position(|h| h == c).ok_or(format!("no column {c}"))).collect::<Result<_, _>>()?;
    let id_position = headers.iter().position(|h| h == id_column).ok_or("no id column")?;
    let dataset = Dataset::from_rows(&columns, rows.iter().map(|row| positions.iter().map(|&p| row[p].as_str()).collect::<Vec<_>>()));
    let loaded = started.elapsed();
    let result = dedupe(&dataset, &config, &NoProgress)?;
    let mut writer = csv::Writer::from_path(output)?;
    writer.write_record([id_column.as_str(), "cluster_id"])?;
    for (row, cluster) in rows.iter().zip(&result.clustering.cluster_of) {
        writer.write_record([row[id_position].as_str(), &cluster.to_string()])?;
    }
    writer.flush()?;
    let model = result.model();
    eprintln!("prior {:.3e}", model.prior);
    for f in &model.fields {
        let w: Vec<String> =
            (1..f.levels.len() as u8).map(|l| format!("{}={:.2}(m={:.3})", f.levels[l as usize], f.weight(l), f.m[l as usize])).collect();
        eprintln!("  {}: {}", f.column, w.join(", "));
    }
    for s in &result.prediction.blocking {
        eprintln!("rule {}: {} blocks, {} skipped, {} pairs", s.rule, s.blocks, s.skipped_blocks, s.pairs);
    }
    eprintln!(
        "rows {} compared {} linked {} clusters {} refused {} | load {:.2}s total {:.2}s",
        rows.len(),
        result.prediction.compared_pairs,
        result.prediction.pairs.len(),
        result.clustering.cluster_count(),
        result.clustering.refused_merges,
        loaded.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
