//! The web UI in a real browser: `tests/e2e/ui.mjs` drives Debian's Chromium (headless,
//! through `playwright-core` from npm) against `kinship serve` on demo data, and writes a
//! screenshot of each page at 1280 px and 390 px into `target/ui-screenshots/`.

use super::kinship_in;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The version the script was written against; installed under the target directory.
const PLAYWRIGHT_CORE: &str = "playwright-core@1.65.1";

fn chromium() -> PathBuf {
    let path = PathBuf::from(std::env::var("KINSHIP_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(
        path.exists(),
        "the web UI test needs Chromium at {}: install it with `sudo apt-get install -y chromium` (Debian), or set KINSHIP_TEST_CHROMIUM",
        path.display()
    );
    path
}

/// `playwright-core` in `target/tmp/ui-e2e/node_modules`, installed with npm on first use.
fn playwright_core() -> PathBuf {
    let prefix = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-e2e");
    let entry = prefix.join("node_modules/playwright-core/index.mjs");
    let installed = || {
        std::fs::read_to_string(prefix.join("node_modules/playwright-core/package.json"))
            .is_ok_and(|p| p.contains("\"version\": \"1.65.1\""))
    };
    if !installed() {
        std::fs::create_dir_all(&prefix).unwrap();
        let npm = Command::new("npm")
            .args(["install", "--prefix"])
            .arg(&prefix)
            .args(["--no-audit", "--no-fund", "--loglevel=error", PLAYWRIGHT_CORE])
            .status();
        assert!(
            npm.is_ok_and(|s| s.success()),
            "the web UI test needs Node.js and npm: `npm install --prefix {} {PLAYWRIGHT_CORE}` failed (install nodejs and npm)",
            prefix.display()
        );
    }
    assert!(installed(), "{PLAYWRIGHT_CORE} was installed but {} is missing", entry.display());
    entry
}

/// A customer with orders and tickets, records from at least three sources, and a name.
struct Person {
    id: String,
    first: String,
    last: String,
    email: String,
}

fn pick_person(data: &Path) -> Person {
    // A customer with orders and tickets in at least four systems, a surname of five
    // letters or more and an email; the one with most records (then the lowest id).
    let store = super::store_of(data);
    let mut sources: std::collections::BTreeMap<String, (std::collections::BTreeSet<String>, usize)> = Default::default();
    store
        .scan_profile_records(&mut |profile, r| {
            let entry = sources.entry(profile.to_string()).or_default();
            entry.0.insert(r.source.to_string());
            entry.1 += 1;
        })
        .unwrap();
    let mut candidates: Vec<(usize, String)> = sources
        .into_iter()
        .filter(|(_, (s, _))| s.contains("shop") && s.contains("tickets") && s.len() >= 4)
        .map(|(id, (_, n))| (n, id))
        .collect();
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let (id, traits) = candidates
        .into_iter()
        .find_map(|(_, id)| {
            let traits = store.profile(&id).unwrap()?.traits;
            let parsed: Value = serde_json::from_str(&traits).unwrap();
            let long_name = parsed["last_name"][0].as_str().is_some_and(|n| n.chars().count() >= 5);
            (long_name && parsed["email"][0].is_string()).then_some((id, traits))
        })
        .expect("the demo has a customer with orders and tickets");
    let traits: Value = serde_json::from_str(&traits).unwrap();
    let value = |name: &str| traits[name][0].as_str().unwrap_or_default().to_string();
    Person { id, first: value("first_name"), last: value("last_name"), email: value("email") }
}

/// Another customer with an email held by exactly one profile, whose answers to an uploaded
/// survey must reach their timeline (the first customer's records are split by the test).
fn other_customer(data: &Path, not: &str) -> (String, String) {
    let store = super::store_of(data);
    let mut found = Vec::new();
    store
        .scan_profiles(&mut |id, traits| {
            let parsed: Value = serde_json::from_str(traits).unwrap_or_default();
            if let Some(email) = parsed["email"][0].as_str().filter(|_| id != not) {
                found.push((id.to_string(), email.to_lowercase()));
            }
        })
        .unwrap();
    found.sort();
    found
        .into_iter()
        .find(|(id, email)| store.find_profiles("email", email).unwrap() == [id.clone()])
        .expect("a customer with an email of their own")
}

/// The name with two letters after the first swapped, as a hurried agent types it.
fn misspell(name: &str) -> String {
    let mut chars: Vec<char> = name.chars().collect();
    assert!(chars.len() >= 4, "a name long enough to misspell: {name:?}");
    chars.swap(1, 2);
    if chars.iter().collect::<String>() == name {
        chars.swap(2, 3);
    }
    chars.into_iter().collect()
}

/// The server, stopped however the test ends (it shares the test's output pipes).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn web_ui_in_headless_chromium() {
    let chromium = chromium();
    let playwright = playwright_core();
    let data = tempfile::tempdir().unwrap();
    let out = kinship_in(data.path())
        .args(["demo", "--no-serve", "--customers", "500", "--seed", "11", "--data"])
        .arg(data.path())
        .output()
        .expect("kinship demo runs");
    assert!(out.status.success(), "kinship demo failed: {}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).unwrap();
    let password = |user: &str| {
        let line = printed
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("user {user} ")))
            .unwrap_or_else(|| panic!("no {user} in {printed}"));
        line.rsplit(' ').next().unwrap().to_string()
    };
    let (admin, marketer) = (password("demo-admin"), password("demo-marketer"));
    assert!(printed.contains("Web UI: http://"), "the demo prints the web UI's address");
    let person = pick_person(data.path());

    let server = KillOnDrop(
        kinship_in(data.path())
            .args(["serve", "--bind", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("kinship serve starts"),
    );
    let mut server = server;
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    let first = lines.next().expect("kinship serve prints where it listens").unwrap();
    let url = format!("http://{}", first.rsplit("http://").next().unwrap().trim());
    std::thread::spawn(move || lines.for_each(drop));

    // A SurveyMonkey-style export for "Add a connection": month-first times, a long question.
    let respondent = other_customer(data.path(), &person.id);
    let upload = data.path().join("upload-source").join("survey_monkey.csv");
    std::fs::create_dir_all(upload.parent().unwrap()).unwrap();
    let mut survey =
        String::from("Respondent ID,Start Date,Email Address,How likely is it that you would recommend us to a friend or colleague?\n");
    for i in 0..40 {
        let email = if i == 7 { respondent.1.clone() } else { format!("respondent{i}@example.com") };
        survey.push_str(&format!("1141{i:06},09/{:02}/2026 02:05:33 PM,{email},{}\n", 13 + i % 15, i % 11));
    }
    std::fs::write(&upload, survey).unwrap();

    let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../ui-screenshots");
    let _ = std::fs::remove_dir_all(&screenshots);
    std::fs::create_dir_all(&screenshots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/ui.mjs");
    let run = Command::new("node")
        .arg(&script)
        .env("E2E_URL", &url)
        .env("E2E_CHROMIUM", &chromium)
        .env("E2E_PLAYWRIGHT", &playwright)
        .env("E2E_SCREENSHOTS", &screenshots)
        .env("E2E_ADMIN_PASSWORD", &admin)
        .env("E2E_MARKETER_PASSWORD", &marketer)
        .env("E2E_PROFILE", &person.id)
        .env("E2E_FLOW", std::fs::read_to_string(data.path().join("flows/complaint_to_task.toml")).expect("the demo writes its flow"))
        .env("E2E_TYPO", format!("{} {}", person.first, misspell(&person.last)))
        .env("E2E_FULL_NAME", format!("{} {}", person.first, person.last))
        .env("E2E_EMAIL", &person.email)
        .env("E2E_UPLOAD", &upload)
        .env("E2E_RESPONDENT", &respondent.0)
        .status();
    drop(server);
    assert!(run.is_ok_and(|s| s.success()), "the browser test {} failed (its steps are printed above)", script.display());
    for page in [
        "signin",
        "dashboard",
        "search",
        "profile",
        "profile-after-split",
        "connections",
        "connection-new",
        "connection-editor",
        "connections-added",
        "segments",
        "segment",
        "audit",
        "marketer-search",
        "marketer-profile",
    ] {
        for width in [1280, 390] {
            let shot = screenshots.join(format!("{page}-{width}.png"));
            assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000), "no screenshot {}", shot.display());
        }
    }
}

#[test]
fn user_create_reads_the_password_from_stdin_and_stores_an_argon2_hash() {
    use std::io::Write;
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("kinship.toml"), "").unwrap();
    let create = |password: &str| {
        let mut child = kinship_in(data.path())
            .args(["user", "create", "--name", "ops", "--role", "support", "--data"])
            .arg(data.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let short = create("short");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 10 characters"));
    let made = create("a long enough password");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let user = super::store_of(data.path()).user("ops").unwrap().expect("the user is stored");
    let (role, hash) = (user.role, user.password_hash);
    assert_eq!(role, "support");
    assert!(hash.starts_with("$argon2id$") && !hash.contains("long enough"), "{hash}");
}
