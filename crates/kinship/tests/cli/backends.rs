//! The two backends side by side, whatever the suite's backend: the same demo gives the
//! same profiles on SQLite and on a real PostgreSQL server started by the tests.

use super::kinship;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Runs `kinship demo` into `dir` over `database` and returns its record groupings: the set
/// of (source, key) sets, one per profile.
fn demo_groupings(dir: &Path, database: Option<&str>) -> BTreeSet<BTreeSet<(String, String)>> {
    let mut demo = kinship();
    demo.args(["demo", "--no-serve", "--customers", "1500", "--seed", "5", "--data"]).arg(dir);
    if let Some(url) = database {
        demo.env("KINSHIP_DATABASE_URL", url);
    }
    let out = demo.output().expect("kinship demo runs");
    assert!(out.status.success(), "kinship demo failed: {}", String::from_utf8_lossy(&out.stderr));
    let csv = dir.join("assignments.csv");
    let mut export = kinship();
    export.args(["assignments", "--out"]).arg(&csv).arg("--data").arg(dir);
    if let Some(url) = database {
        export.env("KINSHIP_DATABASE_URL", url);
    }
    let out = export.output().expect("kinship assignments runs");
    assert!(out.status.success(), "kinship assignments failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut profiles: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for line in std::fs::read_to_string(&csv).unwrap().lines().skip(1) {
        let mut fields = line.splitn(3, ',');
        let (source, key, profile) = (fields.next().unwrap(), fields.next().unwrap(), fields.next().unwrap());
        profiles.entry(profile.to_string()).or_default().insert((source.to_string(), key.to_string()));
    }
    profiles.into_values().collect()
}

#[test]
fn the_same_demo_gives_the_same_profiles_on_sqlite_and_postgres() {
    let (on_sqlite, on_postgres) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sqlite = demo_groupings(on_sqlite.path(), None);
    let postgres = demo_groupings(on_postgres.path(), Some(&kinship_testkit::fresh_database()));
    assert!(!on_postgres.path().join("kinship.sqlite").exists(), "the PostgreSQL run wrote no SQLite file");
    assert!(sqlite.len() > 1000, "{} profiles", sqlite.len());
    assert!(sqlite.iter().any(|p| p.len() > 3), "profiles join several records");
    let only_sqlite = sqlite.difference(&postgres).count();
    let only_postgres = postgres.difference(&sqlite).count();
    assert_eq!((only_sqlite, only_postgres), (0, 0), "profiles differ between the backends");
}
