//! Whole-data-set checks: determinism, truth against the files, and the messy cases.

use super::*;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kinship-demo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn make(name: &str, customers: usize, seed: u64) -> (PathBuf, DemoSummary) {
    let dir = temp_dir(name);
    let summary = generate(&dir, &DemoOptions { customers, seed }, &mut |_, _, _| {}).unwrap();
    (dir, summary)
}

/// Path -> bytes, for every file in the directory and the directories in it.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            files.extend(contents(&e.path()).into_iter().map(|(inner, bytes)| (format!("{name}/{inner}"), bytes)));
        } else {
            files.insert(name, std::fs::read(e.path()).unwrap());
        }
    }
    files
}

/// (source, path, key field, type) of each file source in kinship.toml (the segment source
/// for native cases and deals receives its events over HTTP).
fn sources() -> Vec<(String, String, String, String)> {
    let doc: toml::Table = KINSHIP_TOML.parse().unwrap();
    doc["sources"]
        .as_table()
        .unwrap()
        .iter()
        .filter(|(_, s)| s["type"].as_str() != Some("segment"))
        .map(|(name, s)| {
            let field = |k: &str| s[k].as_str().unwrap().to_string();
            (name.clone(), field("path"), field("key"), field("type"))
        })
        .collect()
}

/// Records each source's well-formed rows: key -> row as string fields (nested JSON paths
/// flattened with dots), and counts the rows that do not parse.
struct Parsed {
    rows: BTreeMap<String, HashMap<String, HashMap<String, String>>>,
    malformed: BTreeMap<String, usize>,
}

fn parse(dir: &Path) -> Parsed {
    let mut parsed = Parsed { rows: BTreeMap::new(), malformed: BTreeMap::new() };
    for (source, path, key, kind) in sources() {
        let rows = parsed.rows.entry(source.clone()).or_default();
        let bad = parsed.malformed.entry(source).or_default();
        let text = std::fs::read_to_string(dir.join(&path)).unwrap();
        if kind == "csv" {
            let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
            let headers = r.headers().unwrap().clone();
            for rec in r.records() {
                let rec = rec.unwrap();
                if rec.len() != headers.len() {
                    *bad += 1;
                    continue;
                }
                let row: HashMap<String, String> = headers.iter().zip(rec.iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect();
                assert!(rows.insert(row[&key].clone(), row).is_none(), "duplicate key in {path}");
            }
        } else {
            for line in text.lines() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                    *bad += 1;
                    continue;
                };
                let mut row = HashMap::new();
                flatten("", &v, &mut row);
                assert!(rows.insert(row[&key].clone(), row).is_none(), "duplicate key in {path}");
            }
        }
    }
    parsed
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut HashMap<String, String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&p, v, out);
            }
        }
        serde_json::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        serde_json::Value::Null => {}
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// (source, key) -> person.
fn truth(dir: &Path) -> HashMap<(String, String), String> {
    let mut r = csv::Reader::from_path(dir.join("truth.csv")).unwrap();
    assert_eq!(r.headers().unwrap(), vec!["source", "record_key", "person_id"]);
    let mut t = HashMap::new();
    for rec in r.records() {
        let rec = rec.unwrap();
        let old = t.insert((rec[0].to_string(), rec[1].to_string()), rec[2].to_string());
        assert!(old.is_none(), "truth lists {} {} twice", &rec[0], &rec[1]);
    }
    t
}

fn email(raw: &str) -> String {
    raw.trim().to_lowercase()
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let (a, sa) = make("det-a", 1500, 7);
    let (b, sb) = make("det-b", 1500, 7);
    let (c, _) = make("det-c", 1500, 8);
    assert_eq!(sa, sb);
    let (ca, cb, cc) = (contents(&a), contents(&b), contents(&c));
    assert_eq!(ca.keys().collect::<Vec<_>>(), cb.keys().collect::<Vec<_>>());
    for (name, bytes) in &ca {
        assert!(bytes == &cb[name], "{name} differs between two runs with one seed");
        // Configuration, the flow and the reference files are fixed; the systems' exports are not.
        if !["kinship.toml", "flows/complaint_to_task.toml", "health/customer.toml", "products.csv", "inventory.csv"]
            .contains(&name.as_str())
        {
            assert!(bytes != &cc[name], "{name} is the same under another seed");
        }
    }
    for d in [a, b, c] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn truth_covers_every_good_record_and_only_those() {
    let (dir, summary) = make("truth", 3000, 1);
    let parsed = parse(&dir);
    let truth = truth(&dir);
    let mut expected = HashSet::new();
    for (source, rows) in &parsed.rows {
        assert!(!rows.is_empty(), "{source} is empty");
        expected.extend(rows.keys().map(|k| (source.clone(), k.clone())));
    }
    let listed: HashSet<_> = truth.keys().cloned().collect();
    assert_eq!(expected.len(), listed.len());
    assert!(expected == listed, "truth and the well-formed records differ");

    // The malformed rows are there, and not in truth (checked above: they do not parse).
    assert_eq!(parsed.malformed["tickets"], 3, "{:?}", parsed.malformed);
    assert_eq!(parsed.malformed["invoices"], 2, "{:?}", parsed.malformed);
    let bad: usize = parsed.malformed.values().sum();
    assert_eq!(bad, 5);

    let persons: HashSet<&String> = truth.values().collect();
    assert_eq!(persons.len(), summary.persons);
    let tests = persons.iter().filter(|p| p.starts_with('T')).count();
    assert!((10..=150).contains(&tests), "{tests} test persons");

    let rows: usize = parsed.rows.values().map(HashMap::len).sum();
    assert_eq!(summary.files.iter().rfind(|(f, _)| f == "truth.csv").unwrap().1, rows);
    let sources = summary.files.iter().filter(|(f, _)| f != "truth.csv" && f != "journeys.csv");
    assert_eq!(sources.map(|(_, n)| n).sum::<usize>(), rows + bad);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn every_configured_source_file_exists() {
    let (dir, summary) = make("files", 200, 3);
    let names: Vec<&str> = summary.files.iter().map(|(f, _)| f.as_str()).collect();
    for (source, path, _, _) in sources() {
        assert!(dir.join(&path).is_file(), "{source}: {path} missing");
        assert!(names.contains(&path.as_str()), "{path} not in the summary");
    }
    assert_eq!(sources().len(), 8);
    assert_eq!(std::fs::read_to_string(dir.join("kinship.toml")).unwrap(), KINSHIP_TOML);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn families_share_an_email_and_people_change_theirs() {
    let (dir, _) = make("cases", 4000, 5);
    let parsed = parse(&dir);
    let truth = truth(&dir);
    let person = |s: &str, k: &String| truth[&(s.to_string(), k.clone())].clone();

    // Family: one email, several CRM people, each with their own phone.
    let mut by_email: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (k, r) in &parsed.rows["crm"] {
        let e = email(&r["email"]);
        let p = person("crm", k);
        if !e.is_empty() && e != "test@test.com" && p.starts_with('P') {
            by_email.entry(e).or_default().insert(p);
        }
    }
    let shared = by_email.values().filter(|ps| ps.len() > 1).count();
    assert!(shared * 2 * 100 >= 4000 * 2, "only {shared} families share an email");
    assert!(by_email.values().all(|ps| ps.len() <= 2));

    // Changed email: the person's shop orders carry two emails, and the CRM the newer.
    let mut order_emails: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    for (k, r) in &parsed.rows["shop"] {
        if r.contains_key("customer.id") {
            let at = r["created_at"].clone();
            order_emails.entry(r["customer.id"].clone()).or_default().insert(at, email(&r["customer.email"]));
        }
        let _ = k;
    }
    let changed: Vec<_> = order_emails.values().filter(|by_time| by_time.values().collect::<BTreeSet<_>>().len() > 1).collect();
    assert!(changed.len() * 100 >= 4000 * 3, "only {} people changed email", changed.len());
    let crm_emails: HashSet<String> = parsed.rows["crm"].values().map(|r| email(&r["email"])).collect();
    for by_time in &changed {
        let oldest = by_time.values().next().unwrap();
        let newest = by_time.values().last().unwrap();
        assert_ne!(oldest, newest);
        assert!(!crm_emails.contains(oldest), "{oldest}: the old email reached the CRM");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Canonical form of an identifier as the resolver would compare it, or None if blocked.
fn identifier(kind: &str, raw: &str) -> Option<String> {
    let v = raw.trim();
    let v = match kind {
        "email" => v.to_lowercase(),
        "handle" => v.trim_start_matches('@').to_lowercase(),
        "phone" => {
            let d: String = v.chars().filter(char::is_ascii_digit).collect();
            match d.strip_prefix("61") {
                Some(rest) if v.starts_with('+') => format!("0{rest}"),
                _ => d,
            }
        }
        _ => v.to_string(),
    };
    let blocked = v.is_empty() || v == "test@test.com" || v == "0000000000";
    (!blocked).then_some(v)
}

struct Components {
    parent: Vec<usize>,
    crm: Vec<BTreeSet<String>>,
    shop: Vec<BTreeSet<String>>,
}

impl Components {
    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }
    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.parent[b] = a;
            let (c, s) = (std::mem::take(&mut self.crm[b]), std::mem::take(&mut self.shop[b]));
            self.crm[a].extend(c);
            self.shop[a].extend(s);
        }
    }
}

/// Pairwise precision and recall of joining on exact identifiers, where a value that would
/// put two CRM ids or two shop customer ids into one profile joins nothing.
#[test]
fn exact_identifiers_alone_are_precise() {
    let (dir, _) = make("exact", 20_000, 11);
    let parsed = parse(&dir);
    let truth = truth(&dir);
    let doc: toml::Table = KINSHIP_TOML.parse().unwrap();
    let mut people = Vec::new();
    let mut ids: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    let mut comps = Components { parent: vec![], crm: vec![], shop: vec![] };
    for (source, rows) in &parsed.rows {
        let map = doc["sources"][source.as_str()]["identifiers"].as_table().unwrap();
        let mut keys: Vec<&String> = rows.keys().collect();
        keys.sort();
        for key in keys {
            let row = &rows[key];
            let i = people.len();
            people.push(truth[&(source.clone(), key.clone())].clone());
            comps.parent.push(i);
            comps.crm.push(BTreeSet::new());
            comps.shop.push(BTreeSet::new());
            for (kind, field) in map {
                let Some(v) = row.get(field.as_str().unwrap()).and_then(|raw| identifier(kind, raw)) else {
                    continue;
                };
                match kind.as_str() {
                    "crm_id" => _ = comps.crm[i].insert(v.clone()),
                    "shop_customer_id" => _ = comps.shop[i].insert(v.clone()),
                    _ => {}
                }
                ids.entry((kind.clone(), v)).or_default().push(i);
            }
        }
    }
    // Unlimited and unique ids first, then the shared kinds in priority order.
    for kind in ["order_id", "shop_customer_id", "email", "phone", "handle"] {
        for ((k, _), members) in ids.range((kind.to_string(), String::new())..) {
            if k != kind {
                break;
            }
            let roots: BTreeSet<usize> = members.iter().map(|&m| comps.find(m)).collect();
            let crm: BTreeSet<&String> = roots.iter().flat_map(|&r| &comps.crm[r]).collect();
            let shop: BTreeSet<&String> = roots.iter().flat_map(|&r| &comps.shop[r]).collect();
            if crm.len() <= 1 && shop.len() <= 1 {
                let first = members[0];
                for &m in &members[1..] {
                    comps.union(first, m);
                }
            }
        }
    }
    let mut cell: HashMap<(usize, &String), u64> = HashMap::new();
    let mut cluster: HashMap<usize, u64> = HashMap::new();
    let mut person: HashMap<&String, u64> = HashMap::new();
    for (i, p) in people.iter().enumerate() {
        let c = comps.find(i);
        *cell.entry((c, p)).or_default() += 1;
        *cluster.entry(c).or_default() += 1;
        *person.entry(p).or_default() += 1;
    }
    let pairs = |n: &u64| n * n.saturating_sub(1) / 2;
    let tp: u64 = cell.values().map(pairs).sum();
    let predicted: u64 = cluster.values().map(pairs).sum();
    let actual: u64 = person.values().map(pairs).sum();
    let (precision, recall) = (tp as f64 / predicted as f64, tp as f64 / actual as f64);
    eprintln!("exact identifiers: precision {precision:.4}, recall {recall:.4}");
    assert!(precision >= 0.995, "precision {precision}");
    assert!(recall >= 0.9, "recall {recall}");
    std::fs::remove_dir_all(dir).unwrap();
}
