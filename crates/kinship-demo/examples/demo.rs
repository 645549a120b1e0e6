//! `cargo run --release -p kinship-demo --example demo -- DIR [CUSTOMERS] [SEED]`
use std::time::Instant;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "demo-data".into());
    let customers = args.next().map_or(20_000, |s| s.parse().expect("CUSTOMERS is a number"));
    let seed = args.next().map_or(42, |s| s.parse().expect("SEED is a number"));
    let start = Instant::now();
    let opts = kinship_demo::DemoOptions { customers, seed };
    let summary = kinship_demo::generate(dir.as_ref(), &opts, &mut |_, _, _| {})?;
    for (file, rows) in &summary.files {
        let bytes = std::fs::metadata(std::path::Path::new(&dir).join(file))?.len();
        println!("{file:20} {rows:>10} rows {bytes:>12} bytes");
    }
    println!("{} persons in {:.2?}", summary.persons, start.elapsed());
    Ok(())
}
