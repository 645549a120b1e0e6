//! Exports written the way their systems write them, mapped by declaration: Salesforce
//! timestamps, day-first survey dates, invoice amounts in cents, `LAST, First` names,
//! yes/no flags and a status vocabulary, with every failure a reject naming the step.

use kinship_core::Config;
use kinship_pipeline::governance::SuppressionCheck;
use kinship_pipeline::{ingest_source, profile_document, resolve_all};

const CONFIG: &str = r#"
[resolve]
default_region = "AU"

[sources.crm]
type = "csv"
path = "Contact.csv"
key = "Id"
timestamp = "CreatedDate"
identifiers = { email = "Email" }
traits = { first_name = "FirstName", unsubscribed = "HasOptedOutOfEmail", created = "CreatedDate" }
fields.HasOptedOutOfEmail = { type = "boolean" }

[sources.invoices]
type = "csv"
path = "invoices.csv"
key = "number"
timestamp = "date"
identifiers = { email = "customer_email" }
traits = { last_name = "last_name", first_name = "first_name" }
event = { name = "Invoice Issued" }
properties = ["amount", "status", "currency"]
fields.amount = { from = "amount_due", minor_units = "currency" }
fields.status = { map = { paid = "paid", open = "unpaid", uncollectible = "written_off" }, default = "other" }
fields.date = { format = "%d %b %Y", timezone = "Australia/Sydney" }
fields.first_name = { from = "customer_name", name_part = "first" }
fields.last_name = { from = "customer_name", name_part = "last", case = "title" }

[sources.survey]
type = "csv"
path = "survey.csv"
timestamp = "submitted"
identifiers = { email = "Email Address" }
event = { name = "Survey Answered" }
properties = ["score", "subscribed"]
fields.submitted = { format = "day_first", timezone = "Europe/London" }
fields.score = { from = "How likely are you to recommend us?", type = "integer" }
fields.subscribed = { from = "Newsletter", map = { yes = true, no = false } }
"#;

const CONTACTS: &str = "Id,FirstName,Email,HasOptedOutOfEmail,CreatedDate
0035g00000AbCdE,María,maria.garcia@example.com,false,2026-02-18T12:00:00.000+0000
0035g00000AbCdF,Ken,ken@example.com,true,2026-02-19T08:30:00.000+0100
";

const INVOICES: &str = "number,customer_email,customer_name,amount_due,currency,status,date
in_1,maria.garcia@example.com,\"GARCÍA, María\",61156,usd,paid,18 Feb 2026
in_2,ken@example.com,Ken Adams,5000,JPY,open,19 Feb 2026
in_3,ken@example.com,Ken Adams,12,usd,draft,20 Feb 2026
in_4,ken@example.com,Ken Adams,lots,usd,paid,21 Feb 2026
";

const SURVEY: &str = "Email Address,How likely are you to recommend us?,Newsletter,submitted
maria.garcia@example.com,9,yes,15/09/2026 14:05
ken@example.com,6,no,16/09/2026
ken@example.com,7,maybe,17/09/2026
ken@example.com,8,no,2026-09-18
";

fn rejects(report: &kinship_pipeline::IngestReport) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(report.reject_file.as_ref().expect("a reject file")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn exports_are_read_as_their_systems_write_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("kinship.toml"), CONFIG).unwrap();
    std::fs::write(dir.join("Contact.csv"), CONTACTS).unwrap();
    std::fs::write(dir.join("invoices.csv"), INVOICES).unwrap();
    std::fs::write(dir.join("survey.csv"), SURVEY).unwrap();
    let config = Config::load(dir).unwrap();
    let mut store = kinship_store::open(&kinship_testkit::database_for(dir)).unwrap();
    let ingest = |store: &mut dyn kinship_store::Database, name: &str| {
        ingest_source(store, &config, name, dir, &SuppressionCheck::nothing(), &|_, _| {}).unwrap()
    };

    let crm = ingest(&mut *store, "crm");
    assert_eq!((crm.inserted, crm.rejected), (2, 0), "Salesforce's +0000 offsets are read without a declared format");

    let invoices = ingest(&mut *store, "invoices");
    assert_eq!((invoices.inserted, invoices.rejected), (3, 1));
    let bad = &rejects(&invoices)[0];
    assert_eq!(bad["line"], 5);
    let reason = bad["reason"].as_str().unwrap();
    assert!(reason.contains("field `amount`") && reason.contains("step `minor_units`") && reason.contains("lots"), "{reason}");

    let survey = ingest(&mut *store, "survey");
    assert_eq!((survey.inserted, survey.rejected), (2, 2));
    let bad = rejects(&survey);
    let reason =
        |line: u64| bad.iter().find(|r| r["line"] == line).unwrap_or_else(|| panic!("line {line}: {bad:?}"))["reason"].as_str().unwrap();
    assert!(reason(4).contains("field `subscribed`") && reason(4).contains("step `map`") && reason(4).contains("maybe"), "{}", reason(4));
    assert!(reason(5).contains("step `format`") && reason(5).contains("day_first") && reason(5).contains("2026-09-18"), "{}", reason(5));

    resolve_all(&mut *store, &config, &|_, _| {}).unwrap();
    let maria = store.find_profiles("email", "maria.garcia@example.com").unwrap().pop().unwrap();
    let doc = profile_document(&*store, &config, &maria).unwrap().unwrap();
    assert_eq!(doc["traits"]["last_name"], "García", "split from `LAST, First` and title-cased");
    assert_eq!(doc["traits"]["unsubscribed"], false);
    assert_eq!(doc["traits"]["created"], "2026-02-18T12:00:00.000+0000", "a trait without a declared field keeps the source's text");
    let events = doc["events"].as_array().unwrap();
    let event = |name: &str| events.iter().find(|e| e["event"] == name).unwrap_or_else(|| panic!("{name} in {events:?}"));
    assert_eq!(event("Invoice Issued")["properties"], serde_json::json!({"amount": 611.56, "status": "paid", "currency": "usd"}));
    // 18 Feb 2026 is midnight in Sydney (UTC+11), the day before in UTC.
    assert!(event("Invoice Issued")["timestamp"].as_str().unwrap().starts_with("2026-02-17T13:00:00"), "{}", event("Invoice Issued"));
    // 15/09/2026 14:05 in London is British Summer Time (UTC+1).
    assert!(event("Survey Answered")["timestamp"].as_str().unwrap().starts_with("2026-09-15T13:05:00"), "{}", event("Survey Answered"));
    assert_eq!(event("Survey Answered")["properties"], serde_json::json!({"score": 9, "subscribed": true}));

    let ken = store.find_profiles("email", "ken@example.com").unwrap().pop().unwrap();
    let doc = profile_document(&*store, &config, &ken).unwrap().unwrap();
    assert_eq!(doc["traits"]["unsubscribed"], true);
    assert_eq!(doc["traits"]["first_name"], "Ken");
    let statuses: Vec<(&str, serde_json::Value)> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "Invoice Issued")
        .map(|e| (e["properties"]["status"].as_str().unwrap(), e["properties"]["amount"].clone()))
        .collect();
    assert_eq!(statuses, [("other", serde_json::json!(0.12)), ("unpaid", serde_json::json!(5000))], "draft is not listed: the default");
}

#[test]
fn a_bad_field_declaration_names_the_source_and_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("kinship.toml"), CONFIG.replace("Europe/London", "Europe/Londn")).unwrap();
    std::fs::write(dir.join("survey.csv"), SURVEY).unwrap();
    let config = Config::load(dir).unwrap();
    let mut store = kinship_store::open(&kinship_testkit::database_for(dir)).unwrap();
    let err = ingest_source(&mut *store, &config, "survey", dir, &SuppressionCheck::nothing(), &|_, _| {}).unwrap_err().to_string();
    assert!(err.contains("sources.survey.fields.submitted.timezone") && err.contains("Europe/Londn"), "{err}");
}

/// Every configuration example in the README loads, and each source's mapping compiles.
#[test]
fn the_readme_configuration_examples_load() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let blocks: Vec<&str> =
        readme.split("```toml").skip(1).filter_map(|b| b.split("```").next()).filter(|b| b.contains("[sources.")).collect();
    assert!(blocks.len() >= 2, "the README shows sources");
    for block in blocks {
        let config: Config = toml::from_str(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
        config.validate().unwrap_or_else(|e| panic!("{e}\n{block}"));
        for (name, source) in &config.sources {
            kinship_sources::Mapper::new(source, &config.resolve).unwrap_or_else(|e| panic!("sources.{name}: {e}"));
        }
    }
}
