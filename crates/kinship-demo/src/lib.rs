//! A deterministic, realistically messy customer data set spread over eight business
//! systems (CRM contacts and its opportunities, shop, invoicing, shipping, help desk, email
//! marketing, NPS survey), with
//! the `kinship.toml` that connects them and `truth.csv`, which says which person each
//! record belongs to, so identity resolution can be measured, and `journeys.csv`: which
//! customers stopped buying after complaining more (churned), which are new and ask
//! questions, and which placed a large order near the end and called about it (upgraded),
//! so customer health can be judged against what happened.
//!
//! The mess is the kind real systems make: email case and whitespace, phone formats,
//! nicknames and typos, address abbreviations, missing fields, families sharing one email,
//! people who changed email, test accounts, duplicate CRM contacts, guest checkouts with a
//! mistyped email, and a few malformed lines. Records of one person normally share at least
//! one exact identifier with the person's other records; the exceptions are deliberate
//! (social handles seen nowhere else, guest orders with a mistyped email, duplicate CRM
//! contacts) and are what fuzzy matching is for.
//!
//! Generation streams: people are made one at a time from a single seeded ChaCha8 stream
//! and written in blocks, so memory stays small and the same options give the same bytes.

mod catalog;
mod names;
mod person;
mod records;
mod util;
mod write;

use person::{Household, People};
use rand::{RngExt, SeedableRng};
use records::{Block, Records};
use std::path::Path;

#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Real customers (test accounts come on top).
    pub customers: usize,
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self { customers: 20_000, seed: 42 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoSummary {
    /// Every data file written (sources, then truth.csv) with its data rows, malformed ones
    /// included, header excluded.
    pub files: Vec<(String, usize)>,
    /// Distinct people in truth.csv: the customers plus one per test record.
    pub persons: usize,
}

/// The configuration that connects the generated files.
pub const KINSHIP_TOML: &str = include_str!("kinship.toml");

/// A ready flow, written as `flows/complaint_to_task.toml`: a complaint becomes a support task
/// with its context gathered.
pub const COMPLAINT_FLOW: &str = include_str!("complaint_to_task.toml");

/// A customer health definition, written as `health/customer.toml`.
pub const CUSTOMER_HEALTH: &str = include_str!("customer_health.toml");

/// People per written block: large enough to interleave records, small enough for memory.
const BLOCK: usize = 2048;

/// Writes the source files, `kinship.toml` and `truth.csv` into `dir` (created if missing).
/// `progress` is called with ("people", done, total) after each block.
pub fn generate(dir: &Path, opts: &DemoOptions, progress: &mut dyn FnMut(&str, u64, u64)) -> std::io::Result<DemoSummary> {
    if opts.customers as u64 >= util::MOBILE_SPACE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("at most {} customers (one mobile number each)", util::MOBILE_SPACE - 1),
        ));
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("kinship.toml"), KINSHIP_TOML)?;
    std::fs::write(dir.join("products.csv"), catalog::products_csv())?;
    std::fs::write(dir.join("inventory.csv"), catalog::inventory_csv())?;
    std::fs::create_dir_all(dir.join("flows"))?;
    std::fs::write(dir.join("flows").join("complaint_to_task.toml"), COMPLAINT_FLOW)?;
    std::fs::create_dir_all(dir.join("health"))?;
    std::fs::write(dir.join("health").join("customer.toml"), CUSTOMER_HEALTH)?;

    let mut rng = util::Rng::seed_from_u64(opts.seed);
    let n = opts.customers;
    let mut rec = Records::new(People::new(&mut rng, n));
    let mut out = write::Writer::create(dir)?;
    // A few dozen test records whatever the size: people try the checkout, not per customer.
    let test_rate = (40.0 / n.max(1) as f64).min(0.05);

    let mut block = Block::default();
    let mut head = None;
    progress("people", 0, n as u64);
    for i in 0..n {
        let mut p = rec.people.person(&mut rng, i as u64, head.as_ref(), i + 1 < n);
        rec.person(&mut rng, &mut p, &mut block);
        head = (p.household == Household::Head).then_some(p);
        if rng.random_bool(test_rate) {
            rec.test_contact(&mut rng, &mut block);
        }
        if rng.random_bool(test_rate) {
            rec.test_order(&mut rng, &mut block);
        }
        if (i + 1) % BLOCK == 0 || i + 1 == n {
            out.block(&mut block)?;
            progress("people", i as u64 + 1, n as u64);
        }
    }
    let files = out.finish()?;
    Ok(DemoSummary { files, persons: n + rec.test_persons() as usize })
}

#[cfg(test)]
mod tests;
