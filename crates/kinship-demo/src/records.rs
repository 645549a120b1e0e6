//! Renders a person into source records. Rows are rendered without their record key; the
//! writer sorts a block of rows by time and numbers them, as the source systems would.

use crate::catalog::{CAMPAIGN_THEMES, CARRIERS, PRODUCTS, SOCIAL_SUBJECTS, TEST_NAMES, TICKET_SUBJECTS, WHY_BOUGHT, WHY_EARNED};
use crate::names::{LOCALITIES, STREET_TYPES};
use crate::person::{People, Person, PersonId};
use crate::util::{self, DAY, END, Json, Rng, START, messy_email, moment, money, pick, random_phone, rfc3339, typo, weighted};
use rand::RngExt;

/// A rendered record without its key. For CSV, `body` holds the fields after the key (and
/// after `order_id` for invoices and shipments), each preceded by a comma; for JSON, the
/// object's fields after the key field and its comma, up to and including the closing brace.
pub struct Row {
    pub person: PersonId,
    pub ts: i64,
    pub body: String,
    /// False for the deliberately malformed rows, which truth leaves out.
    pub good: bool,
}

pub struct Order {
    pub row: Row,
    pub invoice: Option<Row>,
    pub shipment: Option<Row>,
}

/// Records of a few thousand people, written together.
#[derive(Default)]
pub struct Block {
    pub crm: Vec<Row>,
    pub orders: Vec<Order>,
    pub tickets: Vec<Row>,
    pub events: Vec<Row>,
    pub nps: Vec<Row>,
    /// Versions of CRM opportunities: one row per stage a deal entered.
    pub deals: Vec<Row>,
    /// Ground truth of the journeys health is judged on: `journey,at` per person.
    pub journeys: Vec<Row>,
}

/// Record generation state shared across people.
pub struct Records {
    pub people: People,
    campaigns: Vec<(i64, String)>,
    invoices_made: u64,
    tickets_made: u64,
    test_persons: u64,
}

/// Invoice numbers (in generation order) written with a field missing.
const MALFORMED_INVOICES: &[u64] = &[5, 400];
/// Ticket numbers after which a line of invalid JSON appears.
const BROKEN_TICKETS_AFTER: &[u64] = &[2, 60, 500];

impl Records {
    pub fn new(people: People) -> Self {
        // A campaign about every two weeks, on a Tuesday or Thursday morning (AEST).
        let mut campaigns = Vec::new();
        let mut t = START + 3 * DAY + 9 * 3600 - 10 * 3600;
        let mut n = 0;
        while t < END {
            let theme = CAMPAIGN_THEMES[n % CAMPAIGN_THEMES.len()];
            campaigns.push((t, format!("{}-{theme}", util::date(t))));
            t += if n % 2 == 0 { 14 * DAY } else { 16 * DAY };
            n += 1;
        }
        Self { people, campaigns, invoices_made: 0, tickets_made: 0, test_persons: 0 }
    }

    pub fn test_persons(&self) -> u64 {
        self.test_persons
    }

    /// All records of one person.
    pub fn person(&mut self, rng: &mut Rng, p: &mut Person, b: &mut Block) {
        let mut bought = Vec::new();
        let orders_before = b.orders.len();
        let first_order = self.orders(rng, p, b, &mut bought);
        self.crm(rng, p, b);
        self.tickets(rng, p, b, first_order, &bought);
        self.email_events(rng, p, b);
        self.nps(rng, p, b, first_order);
        journey(p, b, orders_before, first_order);
        deals(p, b);
    }

    fn crm(&mut self, rng: &mut Rng, p: &Person, b: &mut Block) {
        if p.crm_contacts == 0 {
            return;
        }
        let updated = rng.random_range(p.since..END);
        let first = match rng.random_range(0..100) {
            0..93 => p.first.to_string(),
            93..97 => p.nick.unwrap_or(p.first).to_string(),
            97..99 => typo(rng, p.first),
            _ => p.first.to_lowercase(),
        };
        let last = match rng.random_range(0..100) {
            0..97 => p.last.to_string(),
            97..99 => typo(rng, p.last),
            _ => p.last.to_uppercase(),
        };
        let email = if p.crm_has_email { messy_email(rng, &p.email, 0.15, 0.03) } else { String::new() };
        let phone = if p.crm_has_phone { random_phone(rng, p.phone) } else { String::new() };
        let twitter = match &p.handle {
            Some(h) if p.handle_in_crm => handle_text(rng, h),
            _ => String::new(),
        };
        let row = self.crm_row(rng, p, [&first, &last, &email, &phone], &twitter, updated);
        b.crm.push(Row { person: p.id, ts: updated, body: row, good: true });

        if p.crm_contacts == 2 {
            // A duplicate someone keyed in by hand earlier: short name, other formats.
            let first = match p.nick {
                Some(n) if rng.random_bool(0.7) => n.to_string(),
                _ => typo(rng, p.first),
            };
            let email = if rng.random_bool(0.6) { messy_email(rng, &p.email, 0.5, 0.1) } else { String::new() };
            let phone = if email.is_empty() || rng.random_bool(0.7) { random_phone(rng, p.phone) } else { String::new() };
            let t = rng.random_range(p.since..=updated);
            let row = self.crm_row(rng, p, [&first, p.last, &email, &phone], "", t);
            b.crm.push(Row { person: p.id, ts: t, body: row, good: true });
        }
    }

    fn crm_row(&self, rng: &mut Rng, p: &Person, names: [&str; 4], twitter: &str, t: i64) -> String {
        let (city, _, postcode) = LOCALITIES[p.address.locality];
        let street = if rng.random_bool(0.04) { String::new() } else { street(rng, p, 0.4) };
        let (city, postcode) = match rng.random_range(0..100) {
            0..3 => ("", ""),
            3..5 => (city, ""),
            _ => (city, postcode),
        };
        let country = pick(rng, &["AU", "AU", "AU", "Australia", "Australia", ""]);
        let birth = p.birth_day.map(|d| util::date(d * DAY)).unwrap_or_default();
        // Three in four agreed to marketing email; derived from the id, not drawn from the
        // generator, so the rest of the data set stays what each seed always gave.
        let opt_in = match p.id {
            PersonId::Real(i) if i.wrapping_mul(2_654_435_761) % 100 < 75 => "yes",
            _ => "no",
        };
        let mut s = String::with_capacity(160);
        for f in names {
            csv_field(&mut s, f);
        }
        for f in [street.as_str(), city, postcode, country, &birth, twitter, opt_in, &rfc3339(t, false)] {
            csv_field(&mut s, f);
        }
        s
    }

    /// Orders with their invoices and shipments; returns the time of the first order.
    fn orders(&mut self, rng: &mut Rng, p: &mut Person, b: &mut Block, bought: &mut Vec<usize>) -> Option<i64> {
        if p.orders == 0 {
            return None;
        }
        let mut times: Vec<i64> = (0..p.orders).map(|_| moment(rng, p.since, END - DAY)).collect();
        times.sort_unstable();
        for i in 1..times.len() {
            times[i] = times[i].max(times[i - 1] + 3600);
        }
        if p.old_email.is_some() {
            // Between the first and the last order, so the old email is on the first one
            // (linked by the shop customer id) and the new one on the last.
            let (t0, t1) = (times[0], times[times.len() - 1]);
            p.email_changed_at = rng.random_range(t0 + 1..t1);
        }
        for &t in &times {
            let guest = p.may_checkout_as_guest && rng.random_bool(0.012);
            let email = if guest { self.people.unique_typo(rng, p.email_at(t)) } else { p.email_at(t).to_string() };
            let name = format!("{} {}", p.nick_or_first(rng, 0.35), p.last);
            let name = if rng.random_bool(0.03) { typo(rng, &name) } else { name };

            let mut customer = Json::new();
            if let (false, Some(id)) = (guest, p.shop_id) {
                customer.str("id", &format!("S{id}"));
            }
            customer.str("email", &messy_email(rng, &email, 0.05, 0.02));
            if !guest && (p.orders_need_phone || rng.random_bool(0.75)) {
                customer.str("phone", &random_phone(rng, p.phone));
            } else if rng.random_bool(0.3) {
                customer.null("phone");
            }
            customer.str("name", &name);

            let (items, total) = items(rng, bought);
            let body = Json::new()
                .raw("customer", &customer.finish())
                .raw("items", &items)
                .raw("total", &money(total))
                .str("currency", "AUD")
                .str("status", "completed")
                .str("created_at", &rfc3339(t, true))
                .finish();
            let row = Row { person: p.id, ts: t, body: body[1..].to_string(), good: true };

            let invoice = rng.random_bool(0.96).then(|| self.invoice(rng, p, &email, t, total));
            let shipment = rng.random_bool(0.92).then(|| shipment(rng, p, t, guest)).flatten();
            b.orders.push(Order { row, invoice, shipment });
        }
        Some(times[0])
    }

    fn invoice(&mut self, rng: &mut Rng, p: &Person, email: &str, t: i64, total: u64) -> Row {
        self.invoices_made += 1;
        let good = !MALFORMED_INVOICES.contains(&self.invoices_made);
        let name = match rng.random_range(0..10) {
            0..6 => format!("{} {}", p.first, p.last),
            6 => format!("{}, {}", p.last.to_uppercase(), p.first),
            7 => format!("{}. {}", &p.first[..1], p.last),
            _ => format!("{} {}", p.nick_or_first(rng, 0.8), p.last),
        };
        let issued = t + rng.random_range(60..7200);
        let paid = match rng.random_range(issued..issued + 14 * DAY) {
            paid if paid < END && rng.random_bool(0.9) => rfc3339(paid, false),
            _ => String::new(),
        };
        let mut s = String::with_capacity(120);
        csv_field(&mut s, &messy_email(rng, email, 0.25, 0.1));
        csv_field(&mut s, &name);
        csv_field(&mut s, &money(total));
        csv_field(&mut s, &rfc3339(issued, false));
        if good {
            csv_field(&mut s, &paid);
        }
        Row { person: p.id, ts: issued, body: s, good }
    }

    fn tickets(&mut self, rng: &mut Rng, p: &Person, b: &mut Block, first_order: Option<i64>, bought: &[usize]) {
        let by_email = p.email_links();
        if !(by_email || p.handle.is_some()) || !rng.random_bool(0.25) {
            return;
        }
        let from = first_order.unwrap_or(p.since);
        for _ in 0..1 + weighted(rng, &[60, 25, 15]) {
            let t = moment(rng, from, END);
            let social = match &p.handle {
                Some(_) => !by_email || rng.random_bool(0.4),
                None => false,
            };
            let templates = if social { SOCIAL_SUBJECTS } else { TICKET_SUBJECTS };
            let subject = loop {
                let s = pick(rng, templates);
                match (s.contains("{product}"), bought.is_empty()) {
                    (false, _) => break s.to_string(),
                    (true, false) => break s.replace("{product}", PRODUCTS[pick(rng, bought)].1),
                    (true, true) => continue,
                }
            };
            let mut j = Json::new();
            if let (true, Some(h)) = (social, &p.handle) {
                j.str("channel", "social").str("handle", &format!("@{}", handle_text(rng, h).trim_start_matches('@')));
            } else {
                let web = rng.random_bool(0.4);
                j.str("channel", if web { "web" } else { "email" });
                j.str("from_email", &messy_email(rng, p.email_at(t), 0.1, 0.05));
                if web {
                    j.str("name", &format!("{} {}", p.nick_or_first(rng, 0.3), p.last));
                }
            }
            let solved = t < END - 10 * DAY && rng.random_bool(0.92);
            j.str("subject", &subject).str("status", if solved { "solved" } else { "open" }).str("created_at", &rfc3339(t, true));
            if solved {
                j.str("solved_at", &rfc3339(solved_at(t), true));
            }
            b.tickets.push(Row { person: p.id, ts: t, body: j.finish()[1..].to_string(), good: true });

            self.tickets_made += 1;
            if let Some(k) = BROKEN_TICKETS_AFTER.iter().position(|&n| n == self.tickets_made) {
                // A help desk export interrupted mid-line, a hand-edited line, a trailing comma.
                let email = p.email_at(t);
                let body = match k {
                    0 => format!("\"channel\":\"email\",\"from_email\":\"{email}\",\"subject\":\"Where is my ord"),
                    1 => format!("\"channel\":\"web\",\"from_email\":'{email}',\"subject\":\"Refund request\",\"status\":\"open\"}}"),
                    _ => format!("\"channel\":\"email\",\"from_email\":\"{email}\",\"subject\":\"Invoice copy\",}}"),
                };
                b.tickets.push(Row { person: p.id, ts: t + 1, body, good: false });
            }
        }
    }

    fn email_events(&mut self, rng: &mut Rng, p: &Person, b: &mut Block) {
        if !p.email_links() || !rng.random_bool(0.55) {
            return;
        }
        let start = self.campaigns.partition_point(|(t, _)| *t < p.since);
        // The email platform tests a subject line on each person's first campaign: half get a
        // question, which is opened a little more (same draws, so the rest of the data stays
        // as it was). Exposure is Segment's `Experiment Viewed`.
        let question = matches!(p.id, PersonId::Real(n) if n % 2 == 1);
        let mut exposed = false;
        for (ct, campaign) in &self.campaigns[start..] {
            if !rng.random_bool(0.12) {
                continue;
            }
            let delivered = ct + rng.random_range(0..7200);
            // The email platform stores addresses lower-cased, mostly.
            let email = p.email_at(delivered);
            let email = if rng.random_bool(0.9) { email.to_string() } else { messy_email(rng, email, 1.0, 0.0) };
            let mut event = |kind: &str, t: i64, variant: Option<&str>| {
                if t < END {
                    let mut body = Json::new();
                    body.str("email", &email).str("type", kind).str("campaign", campaign);
                    if let Some(variant) = variant {
                        body.str("experiment", "subject_line").str("variant", variant);
                    }
                    let body = body.str("timestamp", &rfc3339(t, false)).finish();
                    b.events.push(Row { person: p.id, ts: t, body: body[1..].to_string(), good: true });
                }
            };
            event("delivered", delivered, None);
            let in_test = !exposed;
            if in_test {
                event("Experiment Viewed", delivered, Some(if question { "question" } else { "control" }));
                exposed = true;
            }
            if rng.random_bool(if in_test && question { 0.55 } else { 0.45 }) {
                let opened = delivered + rng.random_range(300..3 * DAY);
                event("opened", opened, None);
                if rng.random_bool(0.3) {
                    event("clicked", opened + rng.random_range(10..900), None);
                }
                if rng.random_bool(0.03) {
                    event("unsubscribed", opened + rng.random_range(20..600), None);
                    break;
                }
            }
        }
    }

    fn nps(&mut self, rng: &mut Rng, p: &Person, b: &mut Block, first_order: Option<i64>) {
        let rate = if first_order.is_some() { 0.22 } else { 0.06 };
        if !p.email_links() || !rng.random_bool(rate) {
            return;
        }
        let from = first_order.unwrap_or(p.since) + DAY;
        for _ in 0..if rng.random_bool(0.08) { 2 } else { 1 } {
            let t = moment(rng, from, END);
            let score = match rng.random_range(0..100) {
                0..45 => rng.random_range(9..=10),
                45..75 => rng.random_range(7..=8),
                _ => rng.random_range(0..=6),
            };
            // Promoters came by referral more often than detractors did.
            let earned = match score {
                9.. => 60,
                7..=8 => 40,
                _ => 20,
            };
            let why = match rng.random_range(0..100) {
                x if x < earned => pick(rng, WHY_EARNED),
                x if x < 90 => pick(rng, WHY_BOUGHT),
                _ => "",
            };
            let mut s = String::with_capacity(100);
            csv_field(&mut s, &messy_email(rng, p.email_at(t), 0.1, 0.05));
            csv_field(&mut s, &score.to_string());
            csv_field(&mut s, why);
            csv_field(&mut s, &rfc3339(t, false));
            b.nps.push(Row { person: p.id, ts: t, body: s, good: true });
        }
    }

    /// A test contact someone created in the CRM: its own person in truth.
    pub fn test_contact(&mut self, rng: &mut Rng, b: &mut Block) {
        let id = self.next_test_person();
        let (first, last) = pick(rng, TEST_NAMES);
        let t = rng.random_range(START..END);
        let email = pick(rng, &["test@test.com", "TEST@test.com", "Test@Test.com", ""]);
        let phone = if email.is_empty() || rng.random_bool(0.6) { "0000000000" } else { "" };
        let mut s = String::new();
        for f in [first, last, email, phone, "1 Test St", "Sydney", "2000", "AU", "", "", "", &rfc3339(t, false)] {
            csv_field(&mut s, f);
        }
        b.crm.push(Row { person: id, ts: t, body: s, good: true });
    }

    /// A test order (with its invoice, sometimes) placed to try the checkout.
    pub fn test_order(&mut self, rng: &mut Rng, b: &mut Block) {
        let id = self.next_test_person();
        let t = moment(rng, START, END - DAY);
        let (first, last) = pick(rng, TEST_NAMES);
        let customer = Json::new()
            .str("id", &format!("S{}", self.people.shop_id()))
            .str("email", "test@test.com")
            .str("phone", "0000000000")
            .str("name", &format!("{first} {last}"))
            .finish();
        let (sku, name, price) = PRODUCTS[rng.random_range(0..PRODUCTS.len())];
        let body = Json::new()
            .raw("customer", &customer)
            .raw(
                "items",
                &format!("[{}]", Json::new().str("sku", sku).str("name", name).raw("qty", "1").raw("price", &money(price.into())).finish()),
            )
            .raw("total", &money(price.into()))
            .str("currency", "AUD")
            .str("status", "completed")
            .str("created_at", &rfc3339(t, true))
            .finish();
        let invoice = rng.random_bool(0.5).then(|| {
            let mut s = String::new();
            for f in ["test@test.com", &format!("{first} {last}"), &money(price.into()), &rfc3339(t + 60, false), ""] {
                csv_field(&mut s, f);
            }
            Row { person: id, ts: t + 60, body: s, good: true }
        });
        b.orders.push(Order { row: Row { person: id, ts: t, body: body[1..].to_string(), good: true }, invoice, shipment: None });
    }

    fn next_test_person(&mut self) -> PersonId {
        self.test_persons += 1;
        PersonId::Test(self.test_persons - 1)
    }
}

/// Sellers who own the demo's deals.
const SELLERS: [&str; 3] = ["Mia Chen", "Tom Reid", "Ava Patel"];
/// The demo CRM's open stages, in order, as `[[service.stages]]` names them.
const DEAL_STAGES: [&str; 4] = ["Prospecting", "Qualification", "Proposal", "Negotiation"];

/// Corporate gifting deals with about a third of the CRM contacts who write from a work
/// address: each a version per stage it entered, as a CRM's opportunity history exports
/// them. Drawn from the person's own random stream, so the rest of the demo is as it was
/// without deals. Stage names come in the CRM's case or in lower case, amounts sometimes
/// with thousands separators, times in Salesforce's form or RFC 3339.
fn deals(p: &Person, b: &mut Block) {
    use rand::SeedableRng;
    let Some(domain) = p.email.split_once('@').map(|(_, d)| d).filter(|d| crate::names::WORK_DOMAINS.contains(d)) else { return };
    let mut rng = Rng::seed_from_u64(0xDEA1_0000 ^ u64::from(p.phone));
    if p.crm_contacts == 0 || !rng.random_bool(0.35) {
        return;
    }
    let company = domain.split('.').next().unwrap_or(domain);
    let company = company[..1].to_uppercase() + &company[1..];
    let id = format!("OPP-{}", p.phone);
    let owner = pick(&mut rng, &SELLERS);
    let amount = rng.random_range(20..400) * 250;
    let start = rng.random_range(p.since.max(END - 420 * DAY)..END - 3 * DAY);
    let expected = start + rng.random_range(45..120) * DAY;
    let mut t = start;
    let mut stage = 0usize;
    let mut versions: Vec<(i64, String)> = vec![(t, DEAL_STAGES[0].to_string())];
    loop {
        t += rng.random_range(2..35) * DAY + rng.random_range(0..8 * 3600);
        if t >= END {
            break;
        }
        let roll = rng.random_range(0..100);
        if roll < 14 {
            versions.push((t, "Closed Lost".into()));
            break;
        }
        if stage + 1 == DEAL_STAGES.len() {
            versions.push((t, if roll < 65 { "Closed Won" } else { "Closed Lost" }.into()));
            break;
        }
        // Some deals skip qualification: the contact came ready to talk about a proposal.
        stage += if stage == 1 && roll > 80 { 2 } else { 1 };
        versions.push((t, DEAL_STAGES[stage].to_string()));
    }
    let closed = versions.last().is_some_and(|(_, s)| s.starts_with("Closed"));
    let close = if closed { versions.last().map_or(expected, |v| v.0) } else { expected };
    for (at, stage) in versions {
        let stage = if rng.random_bool(0.2) { stage.to_lowercase() } else { stage };
        let shown = if rng.random_bool(0.3) { format!("\"{},{:03}.00\"", amount / 1000, amount % 1000) } else { format!("{amount}.00") };
        let changed = if rng.random_bool(0.5) { rfc3339(at, false).replace('Z', ".000+0000") } else { rfc3339(at, true) };
        let body = format!(",{id},{},Corporate gifting ({company}),{stage},{shown},AUD,{},{owner},{changed}", p.email, util::date(close));
        b.deals.push(Row { person: p.id, ts: at, body, good: true });
    }
}

/// When a ticket opened at `t` was solved: half an hour to five days later, derived from
/// the time rather than drawn, so adding it left every other generated value as it was.
fn solved_at(t: i64) -> i64 {
    t + 1800 + ((t as u64).wrapping_mul(2_654_435_761) % (5 * DAY as u64)) as i64
}

/// 1-4 distinct products, returned as a JSON array and the total in cents.
/// What customer health is judged on, drawn from the person's own generator so the rest of
/// the data stays as it was: some repeat customers stop buying, after complaining more and
/// more (churned); customers who first bought in the last 60 days ask questions (new); and a
/// few buy a large order near the end and call about it (upgraded). Each is a line of
/// `journeys.csv`, the ground truth.
fn journey(p: &Person, b: &mut Block, orders_before: usize, first_order: Option<i64>) {
    use rand::SeedableRng;
    let PersonId::Real(n) = p.id else { return };
    let Some(first) = first_order else { return };
    let mut own = Rng::seed_from_u64(n ^ 0x6a6f_7572_6e65_7973);
    let complain = |b: &mut Block, t: i64, subject: &str| {
        if !p.email_links() || t >= END {
            return;
        }
        let mut j = Json::new();
        j.str("channel", "email")
            .str("from_email", p.email_at(t))
            .str("subject", subject)
            .str("status", "solved")
            .str("created_at", &rfc3339(t, true))
            .str("solved_at", &rfc3339(solved_at(t).min(END - 1), true));
        b.tickets.push(Row { person: p.id, ts: t, body: j.finish()[1..].to_string(), good: true });
    };
    let mut times: Vec<i64> = b.orders[orders_before..].iter().map(|o| o.row.ts).collect();
    times.sort_unstable();
    let record = |b: &mut Block, journey: &str, at: i64| {
        b.journeys.push(Row { person: p.id, ts: at, body: format!("{journey},{}", rfc3339(at, false)), good: true });
    };
    if times.len() >= 3 && own.random_bool(0.3) {
        // Stops after an order well before the export, so a backtest 120 days back sees it.
        let last_kept = (1..times.len() - 1).rev().map(|k| times[k]).find(|t| *t < END - 150 * DAY);
        if let Some(stop) = last_kept {
            b.orders.truncate(orders_before + times.iter().filter(|t| **t <= stop).count());
            let subjects = [
                "Still no reply about my refund",
                "Very disappointed with the last order",
                "Charged twice for one order",
                "Cancel my account please",
            ];
            for k in 0..own.random_range(2..=4) {
                let t = stop - own.random_range(1..40) * DAY + own.random_range(0..DAY);
                complain(b, t.max(first), subjects[k % subjects.len()]);
            }
            record(b, "churned", stop);
            return;
        }
    }
    if first > END - 60 * DAY {
        for _ in 0..own.random_range(1..=2) {
            let t = first + own.random_range(DAY..20 * DAY);
            complain(b, t, "How do I care for a merino jumper?");
        }
        record(b, "new", first);
    } else if times.len() >= 2 && own.random_bool(0.08) {
        let t = END - own.random_range(2..10) * DAY;
        let mut customer = Json::new();
        if let Some(id) = p.shop_id {
            customer.str("id", &format!("S{id}"));
        }
        customer.str("email", p.email_at(t)).str("name", &format!("{} {}", p.first, p.last));
        let total = own.random_range(60_000..120_000);
        let body = Json::new()
            .raw("customer", &customer.finish())
            .raw("items", "[]")
            .raw("total", &money(total))
            .str("currency", "AUD")
            .str("status", "completed")
            .str("created_at", &rfc3339(t, true))
            .finish();
        b.orders.push(Order { row: Row { person: p.id, ts: t, body: body[1..].to_string(), good: true }, invoice: None, shipment: None });
        for _ in 0..3 {
            let when = t + own.random_range(3600..2 * DAY);
            complain(b, when, "Setting up the team order: sizes and delivery");
        }
        record(b, "upgraded", t);
    }
}

fn items(rng: &mut Rng, bought: &mut Vec<usize>) -> (String, u64) {
    let n = 1 + weighted(rng, &[55, 25, 12, 8]);
    let mut chosen: Vec<usize> = Vec::with_capacity(n);
    while chosen.len() < n {
        let i = rng.random_range(0..PRODUCTS.len());
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    let mut total = 0;
    let mut json = String::from("[");
    for (k, &i) in chosen.iter().enumerate() {
        let (sku, name, price) = PRODUCTS[i];
        let qty = 1 + weighted(rng, &[75, 18, 7]) as u64;
        total += qty * u64::from(price);
        if k > 0 {
            json.push(',');
        }
        json.push_str(
            &Json::new().str("sku", sku).str("name", name).raw("qty", &qty.to_string()).raw("price", &money(price.into())).finish(),
        );
        bought.push(i);
    }
    json.push(']');
    (json, total)
}

/// Most orders ship within days; the shipping system keys people by phone. Guest orders
/// (the mistyped-email ones) were placed without a phone, so none reaches the carrier.
fn shipment(rng: &mut Rng, p: &Person, t: i64, guest: bool) -> Option<Row> {
    let shipped = moment(rng, t + DAY, t + 3 * DAY);
    if shipped >= END {
        return None;
    }
    let delivered = shipped + rng.random_range(DAY..8 * DAY);
    let delivered = if delivered < END { rfc3339(delivered, false) } else { String::new() };
    let recipient = match rng.random_range(0..10) {
        0..5 => format!("{} {}", p.first, p.last),
        5..8 => format!("{} {}", p.nick_or_first(rng, 0.8), p.last),
        8 => format!("{} {}", p.first, p.last).to_uppercase(),
        _ => typo(rng, &format!("{} {}", p.first, p.last)),
    };
    let phone = if !guest && rng.random_bool(0.88) { random_phone(rng, p.phone) } else { String::new() };
    let (city, _, postcode) = LOCALITIES[p.address.locality];
    let city = if rng.random_bool(0.3) { city.to_uppercase() } else { city.to_string() };
    let mut s = String::with_capacity(160);
    let street = street(rng, p, 0.7);
    let carrier = pick(rng, CARRIERS);
    for f in [recipient.as_str(), &phone, &street, &city, postcode, carrier, &rfc3339(shipped, false), &delivered] {
        csv_field(&mut s, f);
    }
    Some(Row { person: p.id, ts: shipped, body: s, good: true })
}

/// "Unit 3/12 George Street", "3/12 George St" or "12 George Street".
fn street(rng: &mut Rng, p: &Person, abbreviate: f64) -> String {
    let a = &p.address;
    let (long, short) = STREET_TYPES[a.street_type];
    let kind = if rng.random_bool(abbreviate) { short } else { long };
    match a.unit {
        Some(u) if rng.random_bool(0.5) => format!("Unit {u}/{} {} {kind}", a.number, a.street),
        Some(u) => format!("{u}/{} {} {kind}", a.number, a.street),
        None => format!("{} {} {kind}", a.number, a.street),
    }
}

/// How a person's handle is typed: with or without '@', in their preferred capitalisation.
fn handle_text(rng: &mut Rng, h: &str) -> String {
    let h = if rng.random_bool(0.4) {
        let mut c = h.chars();
        c.next().map(|f| f.to_ascii_uppercase()).into_iter().chain(c).collect()
    } else {
        h.to_string()
    };
    if rng.random_bool(0.7) { format!("@{h}") } else { h }
}

/// Appends `,field`, quoted when CSV needs it (and when it has surrounding whitespace,
/// so readers that trim unquoted fields keep it).
pub fn csv_field(out: &mut String, f: &str) {
    out.push(',');
    let needs = f.contains([',', '"', '\n', '\r']) || f.starts_with([' ', '\t']) || f.ends_with([' ', '\t']);
    if needs {
        out.push('"');
        out.push_str(&f.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(f);
    }
}
