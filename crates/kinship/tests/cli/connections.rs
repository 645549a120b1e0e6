//! `kinship source suggest`: a mapping proposed from the exports as their systems write
//! them, written to kinship.toml, and read with no edit.

use super::{kinship_in, run, store_of};

const CONTACTS: &str = "Id,FirstName,LastName,Email,Phone,HasOptedOutOfEmail,CreatedDate,LastModifiedDate
0035g00000AbC001AAZ,María,García,maria@example.com,(415) 555-0101,false,2026-02-01T12:00:00.000+0000,2026-03-01T08:00:00.000+0000
0035g00000AbC002AAZ,Ken,Adams,ken@example.com,(415) 555-0102,true,2026-02-02T12:00:00.000+0000,2026-03-02T08:00:00.000+0000
0035g00000AbC003AAZ,Zoë,Ng,zoe@example.com,415.555.0103,false,2026-02-03T12:00:00.000+0000,2026-03-03T08:00:00.000+0000
0035g00000AbC004AAZ,Li,Smith,li@example.com,+1 415 555 0104,false,2026-02-04T12:00:00.000+0000,2026-03-04T08:00:00.000+0000
";

fn invoice(i: usize, email: &str, contact: Option<&str>) -> String {
    let metadata = contact.map_or("{}".to_string(), |c| format!("{{\"salesforce_contact_id\":\"{c}\"}}"));
    format!(
        "{{\"id\":\"in_1Q{i:08}Ab\",\"customer\":\"cus_Nf{:06}Xy\",\"customer_email\":\"{email}\",\"amount_due\":{},\"currency\":\"usd\",\"status\":\"paid\",\"created\":{},\"metadata\":{metadata}}}\n",
        i % 4,
        6156 + i,
        1_771_416_000 + i * 3600
    )
}

#[test]
fn suggested_mappings_ingest_exports_with_no_edit_and_link_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("kinship.toml"), "[resolve]\ndefault_region = \"US\"\n").unwrap();
    std::fs::write(d.join("Contact.csv"), CONTACTS).unwrap();
    // Ken pays with a work address the CRM does not know; the invoice's metadata names his contact.
    let mut invoices = String::new();
    for i in 0..12 {
        let (email, contact) = match i % 4 {
            0 => ("maria@example.com", None),
            1 => ("ken.adams@work.example", Some("0035g00000AbC002AAZ")),
            2 => ("zoe@example.com", Some("0035g00000AbC003AAZ")),
            _ => ("li@example.com", Some("0035g00000AbC004AAZ")),
        };
        invoices.push_str(&invoice(i, email, contact));
    }
    std::fs::write(d.join("invoices.jsonl"), invoices).unwrap();

    // Without --yes and without a terminal, nothing is written.
    let (ok, _, err) = run(d, &["source", "suggest", d.join("Contact.csv").to_str().unwrap(), "--name", "crm", "--write"]);
    assert!(!ok && err.contains("--yes"), "{err}");
    assert!(!std::fs::read_to_string(d.join("kinship.toml")).unwrap().contains("[sources.crm]"));

    let (ok, proposal, err) = run(d, &["source", "suggest", d.join("Contact.csv").to_str().unwrap(), "--name", "crm", "--write", "--yes"]);
    assert!(ok, "{err}");
    assert!(proposal.contains("key = \"Id\"") && proposal.contains("crm_id = \"Id\""), "{proposal}");
    assert!(err.contains("Preview: 4 of 4 sampled rows map; 0 would be rejected"), "{err}");
    let (ok, out, err) = run(d, &["ingest", "--source", "crm"]);
    assert!(ok, "{out}{err}");

    let (ok, proposal, err) = run(d, &["source", "suggest", d.join("invoices.jsonl").to_str().unwrap(), "--write", "--yes"]);
    assert!(ok, "{err}");
    assert!(proposal.contains("minor_units = \"currency\""), "amounts in cents: {proposal}");
    assert!(proposal.contains("crm_id = \"metadata.salesforce_contact_id\""), "linked by the stored CRM ids: {proposal}");
    let config = std::fs::read_to_string(d.join("kinship.toml")).unwrap();
    assert!(config.contains("[sources.invoices]") && config.contains("crm_id = 1"), "{config}");
    let (ok, out, err) = run(d, &["ingest"]);
    assert!(ok, "{out}{err}");
    assert!(!d.join("rejects").join("invoices.jsonl").exists(), "no row rejected");

    let store = store_of(d);
    let ken = store.find_profiles("crm_id", "0035g00000AbC002AAZ").unwrap();
    assert_eq!(ken.len(), 1);
    assert_eq!(
        store.find_profiles("email", "ken.adams@work.example").unwrap(),
        ken,
        "the invoice joined Ken's contact through its metadata"
    );
    let out = kinship_in(d).args(["profile", "show", "--email", "ken.adams@work.example", "--json", "--data"]).arg(d).output().unwrap();
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let amounts: Vec<f64> = doc["events"].as_array().unwrap().iter().filter_map(|e| e["properties"]["amount_due"].as_f64()).collect();
    assert!(amounts.contains(&61.57), "6157 cents read as 61.57: {amounts:?}");
}
