//! `kinship dedupe`: fuzzy deduplication of a CSV file, and `kinship bench dedupe`, which
//! generates messy person records to measure it on.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kinship_match::{Dataset, MatchConfig, Progress as _, dedupe, infer_config};

/// Rows read before the configuration is inferred from them.
const INFERENCE_SAMPLE_ROWS: usize = 5000;

#[derive(clap::Args, Debug, Clone)]
pub struct DedupeArgs {
    /// CSV file with a header row.
    pub input: PathBuf,
    /// Column that identifies each row (written back beside its cluster).
    #[arg(long)]
    pub id_column: String,
    /// Matching configuration (TOML); inferred from the data and printed when absent.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where to write `ID,cluster_id` for every input row.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write every linked pair with its probability and per-field weights.
    #[arg(long)]
    pub pairs: Option<PathBuf>,
    /// Match probability at which pairs link (overrides the configuration).
    #[arg(long)]
    pub threshold: Option<f64>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct BenchDedupeArgs {
    /// Number of records to generate.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: usize,
    /// CSV file to write (FEBRL's columns; `rec-N-org` / `rec-N-dup-K` ids).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Then time `kinship dedupe` on it (clusters go to OUT with `.clusters.csv` appended).
    #[arg(long)]
    pub run: bool,
}

pub fn run_dedupe(args: &DedupeArgs) -> Result<()> {
    let started = Instant::now();
    let progress = PhaseProgress::new();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(&args.input)
        .with_context(|| format!("cannot open {}", args.input.display()))?;
    let headers: Vec<String> = reader
        .headers()
        .with_context(|| format!("cannot read the header row of {}", args.input.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    let Some(id_position) = headers.iter().position(|h| *h == args.id_column) else {
        bail!("{} has no column `{}`; available columns: {}", args.input.display(), args.id_column, headers.join(", "));
    };

    progress.phase("reading", 0);
    let mut records = reader.records();
    let mut sample: Vec<csv::StringRecord> = Vec::new();
    for record in records.by_ref().take(INFERENCE_SAMPLE_ROWS) {
        sample.push(record.with_context(|| format!("bad CSV in {}", args.input.display()))?);
    }

    // the file's size over the sample's bytes per row: blocking must suit the whole file
    let sample_bytes = records.reader().position().byte().max(1);
    let file_bytes = std::fs::metadata(&args.input).map_or(sample_bytes, |m| m.len());
    let estimated_rows = (file_bytes as f64 / sample_bytes as f64 * sample.len() as f64) as usize;

    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            MatchConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => {
            let rows: Vec<Vec<&str>> = sample.iter().map(|r| r.iter().collect()).collect();
            let config = infer_config(&headers, &rows, &args.id_column, estimated_rows)
                .with_context(|| format!("cannot infer a configuration for {}", args.input.display()))?;
            eprintln!(
                "# Inferred match configuration: save it to a file, edit it, and pass it with --config.\n# Set unique_columns to columns a person never has two values of (e.g. a user id).\n{}",
                config.to_toml()
            );
            config
        }
    };
    if let Some(threshold) = args.threshold {
        config.threshold = threshold;
        config.validate()?;
    }

    let columns = config.columns();
    let positions: Vec<usize> = columns
        .iter()
        .map(|column| {
            headers.iter().position(|h| h == column).with_context(|| {
                format!(
                    "the configuration uses column `{column}`, which {} does not have; available columns: {}",
                    args.input.display(),
                    headers.join(", ")
                )
            })
        })
        .collect::<Result<_>>()?;
    let mut dataset = Dataset::new(&columns);
    let mut ids: Vec<String> = Vec::new();
    let mut add = |record: &csv::StringRecord| {
        ids.push(record.get(id_position).unwrap_or("").to_string());
        dataset.push_row(positions.iter().map(|&p| record.get(p).unwrap_or("")));
    };
    sample.iter().for_each(&mut add);
    drop(sample);
    for record in records {
        add(&record.with_context(|| format!("bad CSV in {}", args.input.display()))?);
    }
    let read_time = started.elapsed();

    let result = dedupe(&dataset, &config, &progress)?;
    progress.phase("writing", 0);
    write_clusters(&args.out, &args.id_column, &ids, &result.clustering.cluster_of)?;
    if let Some(path) = &args.pairs {
        write_pairs(path, &dataset, &ids, &result)?;
    }
    progress.finish();

    let prediction = &result.prediction;
    print_training_findings(result.model());
    print_cluster_report(&result, &ids);
    for rule in prediction.blocking.iter().filter(|r| r.skipped_blocks > 0) {
        eprintln!(
            "warning: blocking rule `{}` skipped {} blocks ({} rows) larger than max_block_size = {}; make the rule stricter or raise the limit",
            rule.rule, rule.skipped_blocks, rule.skipped_rows, config.max_block_size
        );
    }
    eprintln!(
        "{} records, {} candidate pairs compared, {} pairs linked, {} clusters, {} merges refused by unique columns, {} by the cluster linkage check; read {:.1}s, total {:.1}s",
        ids.len(),
        prediction.compared_pairs,
        prediction.pairs.len(),
        result.clustering.cluster_count(),
        result.clustering.refused_merges,
        result.clustering.refused_by_linkage,
        read_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What training found about the data: fields that say the same thing, and estimates it
/// had to correct.
fn print_training_findings(model: &kinship_match::Model) {
    for group in &model.dependent {
        // a lift of 0 means declared (and borne out by relatives in the data), not measured
        let why = if group.lift > 0.0 {
            format!("agree together {:.0}x as often among random pairs as if independent", group.lift)
        } else {
            "declared in dependent_fields, and the data shows relatives sharing them".to_string()
        };
        eprintln!("dependent fields: {} {why}; each pair counts their strongest agreement and disagreement once", group.columns.join(", "));
    }
    for warning in &model.warnings {
        eprintln!("warning: {warning}");
    }
}

/// Cluster sizes, the largest clusters and the weakest link holding each together; a
/// cluster far larger than the rest is a warning.
fn print_cluster_report(result: &kinship_match::Dedupe, ids: &[String]) {
    let report = result.clustering.report(5);
    let bands: Vec<String> = report.histogram.iter().filter(|(_, n)| *n > 0).map(|(band, n)| format!("{band}: {n}")).collect();
    eprintln!("cluster sizes (records: clusters): {}", bands.join(", "));
    for large in &report.largest {
        let link = large.weakest_link.map_or(String::new(), |l| {
            format!("; weakest link {} ~ {} at weight {:.1}", ids[l.left as usize], ids[l.right as usize], l.weight)
        });
        if large.suspect {
            eprintln!(
                "warning: cluster {} has {} records, more than {} (five times the 99th percentile of cluster sizes){link}: check it with --pairs, raise the threshold or add fields",
                large.cluster, large.size, report.supportable
            );
        } else {
            eprintln!("largest cluster {}: {} records{link}", large.cluster, large.size);
        }
    }
}

fn write_clusters(path: &Path, id_column: &str, ids: &[String], cluster_of: &[u32]) -> Result<()> {
    let mut out = csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    out.write_record([id_column, "cluster_id"])?;
    for (id, cluster) in ids.iter().zip(cluster_of) {
        out.write_record([id.as_str(), &cluster.to_string()])?;
    }
    out.flush()?;
    Ok(())
}

fn write_pairs(path: &Path, dataset: &Dataset, ids: &[String], result: &kinship_match::Dedupe) -> Result<()> {
    let mut out = csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut header = vec!["left_id".to_string(), "right_id".into(), "probability".into(), "match_weight".into()];
    for field in &result.model().fields {
        header.push(format!("{}_level", field.column));
        header.push(format!("{}_weight", field.column));
    }
    out.write_record(&header)?;
    let mut pairs = result.prediction.pairs.clone();
    pairs.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    for pair in pairs {
        let explanation = result.scorer.explain(dataset, pair.left, pair.right);
        let mut row = vec![
            ids[pair.left as usize].clone(),
            ids[pair.right as usize].clone(),
            format!("{:.6}", explanation.probability),
            format!("{:.3}", explanation.match_weight),
        ];
        for field in &explanation.fields {
            row.push(field.label.clone());
            row.push(format!("{:.3}", field.weight));
        }
        out.write_record(&row)?;
    }
    out.flush()?;
    Ok(())
}

/// One progress bar per engine phase on a terminal; one line per phase otherwise.
struct PhaseProgress {
    terminal: bool,
    current: RwLock<Option<(ProgressBar, String, Instant)>>,
}

impl PhaseProgress {
    fn new() -> Self {
        PhaseProgress { terminal: std::io::stderr().is_terminal(), current: RwLock::new(None) }
    }

    fn finish(&self) {
        if let Some((bar, name, started)) = self.current.write().expect("not poisoned").take() {
            bar.finish_and_clear();
            if !self.terminal {
                eprintln!("{name}: done in {:.1}s", started.elapsed().as_secs_f64());
            }
        }
    }
}

impl kinship_match::Progress for PhaseProgress {
    fn phase(&self, name: &str, total: u64) {
        self.finish();
        let bar = if self.terminal {
            let template =
                if total > 0 { "{prefix:>44} [{bar:30}] {human_pos}/{human_len} eta {eta}" } else { "{prefix:>44} {spinner} {elapsed}" };
            let bar =
                ProgressBar::new(total).with_style(ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
            bar.set_prefix(name.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        } else {
            eprintln!("{name}...");
            ProgressBar::hidden()
        };
        *self.current.write().expect("not poisoned") = Some((bar, name.to_string(), Instant::now()));
    }

    fn advance(&self, done: u64) {
        if let Some((bar, _, _)) = &*self.current.read().expect("not poisoned") {
            bar.inc(done);
        }
    }
}

pub fn run_bench_dedupe(args: &BenchDedupeArgs) -> Result<()> {
    let started = Instant::now();
    let count = generate_people(&args.out, args.records, args.seed)?;
    eprintln!("wrote {count} records to {} in {:.1}s", args.out.display(), started.elapsed().as_secs_f64());
    if args.run {
        let mut clusters = args.out.clone().into_os_string();
        clusters.push(".clusters.csv");
        let started = Instant::now();
        run_dedupe(&DedupeArgs {
            input: args.out.clone(),
            id_column: "rec_id".into(),
            config: None,
            out: clusters.into(),
            pairs: None,
            threshold: None,
        })?;
        eprintln!("dedupe of {count} records took {:.1}s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Deterministic random numbers (SplitMix64), so a seed always gives the same file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Values drawn with Zipf-like frequencies: a few very common, a long tail of rare ones.
struct Vocabulary {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Vocabulary {
    fn new(words: Vec<String>, exponent: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=words.len())
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(exponent);
                total
            })
            .collect();
        Vocabulary { words, cumulative }
    }

    fn draw(&self, rng: &mut Rng) -> &str {
        let target = rng.unit() * self.cumulative.last().copied().unwrap_or(0.0);
        let index = self.cumulative.partition_point(|&c| c < target).min(self.words.len() - 1);
        &self.words[index]
    }
}

const GIVEN_NAMES: &[&str] = &[
    "james",
    "jack",
    "oliver",
    "william",
    "thomas",
    "joshua",
    "lachlan",
    "samuel",
    "benjamin",
    "daniel",
    "matthew",
    "ryan",
    "liam",
    "noah",
    "ethan",
    "riley",
    "lucas",
    "jacob",
    "harrison",
    "charlie",
    "emily",
    "chloe",
    "olivia",
    "sophie",
    "jessica",
    "ella",
    "mia",
    "isabella",
    "grace",
    "hannah",
    "ruby",
    "lily",
    "sarah",
    "emma",
    "charlotte",
    "georgia",
    "zoe",
    "amelia",
    "lauren",
    "madison",
    "kate",
    "alexandra",
    "michael",
    "robert",
    "elizabeth",
    "katherine",
    "jonathan",
    "christopher",
    "nicholas",
    "stephanie",
];
const NICKNAMES: &[(&str, &str)] = &[
    ("william", "bill"),
    ("robert", "bob"),
    ("elizabeth", "liz"),
    ("katherine", "kate"),
    ("james", "jim"),
    ("michael", "mike"),
    ("jonathan", "jon"),
    ("christopher", "chris"),
    ("nicholas", "nick"),
    ("thomas", "tom"),
    ("samuel", "sam"),
    ("benjamin", "ben"),
    ("daniel", "dan"),
    ("matthew", "matt"),
    ("alexandra", "alex"),
    ("stephanie", "steph"),
    ("jessica", "jess"),
    ("joshua", "josh"),
];
const SYLLABLES: &[&str] = &[
    "an", "ber", "bra", "car", "dal", "den", "el", "fer", "gar", "hal", "har", "ing", "ja", "kel", "kin", "la", "ler", "lin", "ma", "mar",
    "mc", "mon", "ne", "nor", "o", "pe", "quin", "ra", "ri", "ron", "sa", "son", "ston", "ta", "ter", "ton", "va", "wal", "well", "win",
    "ya", "zel", "ford", "ley", "by", "ham",
];
const STREET_TYPES: &[(&str, &str)] = &[
    ("street", "st"),
    ("road", "rd"),
    ("avenue", "ave"),
    ("crescent", "cres"),
    ("place", "pl"),
    ("circuit", "cct"),
    ("drive", "dr"),
    ("court", "ct"),
    ("close", "cl"),
    ("parade", "pde"),
];
const PLACES: &[&str] = &["house", "cottage", "village", "park", "gardens", "court", "lodge", "manor", "centre"];
const STATES: &[&str] = &["nsw", "vic", "qld", "wa", "sa", "tas", "act", "nt"];

fn made_up_word(rng: &mut Rng, syllables: usize) -> String {
    (0..syllables).map(|_| rng.pick(SYLLABLES)).collect()
}

/// One person as first recorded.
#[derive(Clone)]
struct Person {
    given_name: String,
    surname: String,
    street_number: String,
    address_1: String,
    address_2: String,
    suburb: String,
    postcode: String,
    state: String,
    date_of_birth: String,
    soc_sec_id: String,
}

impl Person {
    fn fields_mut(&mut self) -> [&mut String; 10] {
        [
            &mut self.given_name,
            &mut self.surname,
            &mut self.street_number,
            &mut self.address_1,
            &mut self.address_2,
            &mut self.suburb,
            &mut self.postcode,
            &mut self.state,
            &mut self.date_of_birth,
            &mut self.soc_sec_id,
        ]
    }
}

/// Writes `records` FEBRL-shaped person records: originals and 0 to 4 messy duplicates each
/// (typos, missing values, swapped names, nicknames, abbreviated street types, day and month
/// swapped, moved digits). Returns the number written.
pub fn generate_people(path: &Path, records: usize, seed: u64) -> Result<usize> {
    let mut rng = Rng(seed);
    let mut given: Vec<String> = GIVEN_NAMES.iter().map(|s| s.to_string()).collect();
    given.extend((0..3000).map(|_| {
        let n = 2 + rng.below(2);
        made_up_word(&mut rng, n)
    }));
    let given = Vocabulary::new(dedup(given), 0.9);
    let surnames = Vocabulary::new(
        dedup(
            (0..40_000)
                .map(|_| {
                    let n = 2 + rng.below(2);
                    made_up_word(&mut rng, n)
                })
                .collect(),
        ),
        0.8,
    );
    let streets = Vocabulary::new(
        dedup(
            (0..8000)
                .map(|_| {
                    let n = 2 + rng.below(2);
                    made_up_word(&mut rng, n)
                })
                .collect(),
        ),
        0.6,
    );
    // each suburb has one postcode, whose first digit decides the state
    let suburb_names = dedup(
        (0..3000)
            .map(|_| {
                let n = 2 + rng.below(2);
                made_up_word(&mut rng, n)
            })
            .collect(),
    );
    let postcode_of: HashMap<String, String> =
        suburb_names.iter().map(|s| (s.clone(), format!("{}{:03}", 2 + rng.below(7), rng.below(1000)))).collect();
    let suburbs = Vocabulary::new(suburb_names, 0.5);

    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(out, "rec_id,given_name,surname,street_number,address_1,address_2,suburb,postcode,state,date_of_birth,soc_sec_id")?;
    let mut written = 0;
    let mut entity = 0;
    while written < records {
        let suburb = suburbs.draw(&mut rng).to_string();
        let postcode = postcode_of[&suburb].clone();
        let state = STATES[(postcode.as_bytes()[0] - b'2') as usize % STATES.len()].to_string();
        let (street_type, _) = STREET_TYPES[rng.below(STREET_TYPES.len())];
        let mut person = Person {
            given_name: given.draw(&mut rng).to_string(),
            surname: surnames.draw(&mut rng).to_string(),
            street_number: {
                let highest = if rng.chance(0.8) { 60 } else { 400 };
                (1 + rng.below(highest)).to_string()
            },
            address_1: format!("{} {street_type}", streets.draw(&mut rng)),
            address_2: if rng.chance(0.4) { format!("{} {}", made_up_word(&mut rng, 2), rng.pick(PLACES)) } else { String::new() },
            suburb,
            postcode,
            state,
            date_of_birth: format!("{}{:02}{:02}", 1920 + rng.below(86), 1 + rng.below(12), 1 + rng.below(28)),
            // unique per person: an odd multiplier permutes 0..9_000_000
            soc_sec_id: format!("{:07}", 1_000_000 + (entity as u64 * 7_368_787 + seed) % 9_000_000),
        };
        // a few originals already lack a value
        for field in person.fields_mut() {
            if rng.chance(0.02) {
                field.clear();
            }
        }
        write_person(&mut out, &format!("rec-{entity}-org"), &person)?;
        written += 1;
        let duplicates = match rng.below(100) {
            0..=49 => 0,
            50..=74 => 1,
            75..=89 => 2,
            90..=96 => 3,
            _ => 4,
        };
        for k in 0..duplicates {
            if written == records {
                break;
            }
            let mut copy = person.clone();
            for _ in 0..1 + rng.below(3) {
                mess_up(&mut copy, &mut rng);
            }
            write_person(&mut out, &format!("rec-{entity}-dup-{k}"), &copy)?;
            written += 1;
        }
        entity += 1;
    }
    out.flush()?;
    Ok(written)
}

fn dedup(mut words: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    words.retain(|w| seen.insert(w.clone()));
    words
}

/// One data-entry error of the kinds seen in real person files.
fn mess_up(person: &mut Person, rng: &mut Rng) {
    match rng.below(10) {
        0..=3 => {
            let fields = person.fields_mut();
            let index = rng.below(fields.len());
            typo(fields.into_iter().nth(index).expect("in range"), rng);
        }
        4 => {
            let fields = person.fields_mut();
            let index = rng.below(fields.len());
            fields.into_iter().nth(index).expect("in range").clear();
        }
        5 => std::mem::swap(&mut person.given_name, &mut person.surname),
        6 => {
            if let Some((_, nickname)) = NICKNAMES.iter().find(|(full, _)| *full == person.given_name) {
                person.given_name = nickname.to_string();
            } else {
                typo(&mut person.given_name, rng);
            }
        }
        7 => {
            for (full, short) in STREET_TYPES {
                if let Some(stem) = person.address_1.strip_suffix(full) {
                    person.address_1 = format!("{stem}{short}");
                    break;
                }
            }
        }
        8 => {
            let d = &person.date_of_birth;
            if d.len() == 8 && d[6..8].parse::<u32>().is_ok_and(|day| day <= 12) {
                person.date_of_birth = format!("{}{}{}", &d[0..4], &d[6..8], &d[4..6]);
            } else {
                typo(&mut person.date_of_birth, rng);
            }
        }
        _ => std::mem::swap(&mut person.address_1, &mut person.address_2),
    }
}

/// Inserts, deletes, replaces or transposes one character (digits stay digits).
fn typo(value: &mut String, rng: &mut Rng) {
    let mut chars: Vec<char> = value.chars().collect();
    if chars.is_empty() {
        return;
    }
    let at = rng.below(chars.len());
    let digits = chars.iter().all(char::is_ascii_digit);
    let random_char = |rng: &mut Rng| {
        if digits { (b'0' + rng.below(10) as u8) as char } else { (b'a' + rng.below(26) as u8) as char }
    };
    match rng.below(4) {
        0 => chars.insert(at, random_char(rng)),
        1 if chars.len() > 2 => {
            chars.remove(at);
        }
        2 if at + 1 < chars.len() => chars.swap(at, at + 1),
        _ => chars[at] = random_char(rng),
    }
    *value = chars.into_iter().collect();
}

fn write_person(out: &mut impl Write, id: &str, p: &Person) -> Result<()> {
    writeln!(
        out,
        "{id},{},{},{},{},{},{},{},{},{},{}",
        p.given_name, p.surname, p.street_number, p.address_1, p.address_2, p.suburb, p.postcode, p.state, p.date_of_birth, p.soc_sec_id
    )?;
    Ok(())
}
