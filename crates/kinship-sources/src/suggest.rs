//! The mapping assistant: from a sample of rows, recognise what each column holds (email,
//! phone, name, id, date and its format, amount and its units, ...) and propose a
//! `[sources.NAME]` block, each line with the reason it was chosen.

use crate::transform::split_name;
use kinship_core::{EventMapping, FieldSpec, FieldType, NamePart, OneOrMany, SourceConfig, SourceType};
use kinship_normalize::{Moment, TimeFormat, header_words};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

/// What a column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    Email,
    Phone,
    Handle,
    FirstName,
    LastName,
    /// A whole name; `true` when written `LAST, First`.
    FullName(bool),
    /// An id; `true` when it names a person (a customer or contact id).
    Id(bool),
    Date(TimeFormat),
    Timestamp(TimeFormat),
    /// An amount of money; `Some(currency column)` when written in minor units (cents).
    Amount(Option<String>),
    Currency,
    Country,
    Region,
    City,
    Postcode,
    Boolean,
    /// Few distinct values (a status), with them.
    Category(Vec<String>),
    Number,
    /// A list of objects (line items), with the keys worth keeping.
    Items(Vec<String>),
    /// A list of values (tags).
    List,
    /// Values of a stored identifier kind (another system's ids).
    Linked(String),
    Text,
    /// Blank in every sampled row.
    Empty,
}

/// One column and why it was read as it was.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
    pub why: String,
    /// Rows in the sample where it is not blank.
    pub present: usize,
    pub distinct: usize,
}

/// A proposed mapping.
#[derive(Debug, Clone)]
pub struct Suggestion {
    pub columns: Vec<Column>,
    pub config: SourceConfig,
    /// The `[sources.NAME]` block, commented.
    pub toml: String,
    /// `[resolve.limits]` the mapping needs: (kind, limit, why).
    pub limits: Vec<(String, u32, String)>,
}

/// What the assistant is told besides the rows.
pub struct SuggestInput<'a> {
    pub name: &'a str,
    pub kind: SourceType,
    pub path: PathBuf,
    /// The region phone numbers and ambiguous dates are read for (`US` reads `02/03` as
    /// February 3rd).
    pub region: &'a str,
    pub rows: &'a [Map<String, Value>],
    /// Identifier kinds other sources already map: a column named for one links to them.
    pub known_kinds: &'a BTreeSet<String>,
    /// Which stored identifier kind holds most of these values, and how many it holds:
    /// an id column whose values are another system's ids (a CRM contact id kept in an
    /// invoice's metadata) links to that system's records.
    pub stored_kind: Option<&'a StoredKind<'a>>,
}

/// Which stored identifier kind holds most of some values: (kind, how many it holds).
pub type StoredKind<'a> = dyn Fn(&[String]) -> Option<(String, usize)> + 'a;

/// Values of an id column looked up among stored identifiers.
const LOOKED_UP_VALUES: usize = 20;

/// Things a person has many of, whose ids other systems quote: an order's id on its
/// invoice and shipment links both to whoever placed the order.
const SHARED_THINGS: &[&str] = &["order", "cart", "checkout", "subscription", "booking", "reservation", "contract", "account"];

pub fn suggest(input: &SuggestInput<'_>) -> Suggestion {
    let mut columns = classify(input.rows, input.region);
    if let Some(lookup) = input.stored_kind {
        for c in columns.iter_mut().filter(|c| matches!(c.kind, ColumnKind::Id(_))) {
            let values: Vec<String> =
                input.rows.iter().filter_map(|r| crate::mapping::lookup(r, &c.name).and_then(text_of)).take(LOOKED_UP_VALUES).collect();
            if let Some((kind, found)) = lookup(&values).filter(|(_, found)| *found * 2 > values.len()) {
                c.why = format!("{found} of {} sampled values are stored {kind} identifiers", values.len());
                c.kind = ColumnKind::Linked(kind);
            }
        }
    }
    let plan = Plan::new(input, &columns);
    let toml = plan.render(input, &columns);
    Suggestion { columns, config: plan.config, toml, limits: plan.limits }
}

// ---------------------------------------------------------------------------------------
// Reading columns

/// The sampled rows as columns: dotted paths to scalars and lists, in first-seen order.
fn column_values(rows: &[Map<String, Value>]) -> Vec<(String, Vec<Value>)> {
    let mut order: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    fn walk(prefix: &str, v: &Value, depth: usize, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(o) if depth < 3 => {
                for (k, v) in o {
                    let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&path, v, depth + 1, out);
                }
            }
            other => out.push((prefix.to_string(), other.clone())),
        }
    }
    for row in rows {
        let mut flat = Vec::new();
        walk("", &Value::Object(row.clone()), 0, &mut flat);
        for (path, v) in flat {
            if !values.contains_key(&path) {
                order.push(path.clone());
            }
            values.entry(path).or_default().push(v);
        }
    }
    order.into_iter().map(|p| (p.clone(), values.remove(&p).unwrap_or_default())).collect()
}

/// `Billing Name` → `billing_name`; long questions keep their first words.
pub fn snake(header: &str) -> String {
    let words = header_words(header);
    let joined = words.iter().take(5).cloned().collect::<Vec<_>>().join("_");
    if joined.is_empty() { "field".into() } else { joined }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() && !is_null_word(s.trim()) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn is_null_word(s: &str) -> bool {
    matches!(s.to_ascii_lowercase().as_str(), "null" | "n/a" | "na" | "none" | "-" | "nil")
}

const ISO_CURRENCIES: &[&str] = &[
    "usd", "eur", "gbp", "aud", "cad", "nzd", "jpy", "chf", "sek", "nok", "dkk", "pln", "czk", "huf", "inr", "cny", "hkd", "sgd", "brl",
    "mxn", "zar", "krw", "try", "ils", "aed", "sar", "kwd", "bhd", "thb", "idr", "myr", "php",
];

fn classify(rows: &[Map<String, Value>], region: &str) -> Vec<Column> {
    let columns = column_values(rows);
    // The column of currency codes, by its values and its name (`currency`, `Currency Code`).
    let currency_column = columns
        .iter()
        .find(|(name, values)| {
            let texts: Vec<String> = values.iter().filter_map(text_of).collect();
            !texts.is_empty()
                && share(&texts, |t| ISO_CURRENCIES.contains(&t.to_ascii_lowercase().as_str())) >= 0.9
                && (header_words(name).iter().any(|w| w == "cur") || name.to_lowercase().contains("currenc"))
        })
        .map(|(name, _)| name.clone());
    columns.into_iter().map(|(name, values)| classify_column(name, &values, region, currency_column.as_deref())).collect()
}

fn share(values: &[String], test: impl Fn(&str) -> bool) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().filter(|v| test(v)).count() as f64 / values.len() as f64
}

fn percent(x: f64) -> String {
    format!("{:.0}%", (x * 100.0).floor())
}

fn is_phone_like(v: &str) -> bool {
    let digits = v.bytes().filter(u8::is_ascii_digit).count();
    let dotted_quad =
        v.split('.').count() == 4 && v.split('.').all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    // `-33.8688123` is a coordinate or an amount, not a number to call.
    let decimal = v.contains('.') && v.trim().parse::<f64>().is_ok();
    !decimal
        && (7..=15).contains(&digits)
        && v.chars().all(|c| c.is_ascii_digit() || " +()-./x".contains(c) || c == 'e' || c == 't')
        && !v.contains("..")
        && !dotted_quad
}

/// `#1001`, `cus_NffrFeUfNV2Hib`, `ORD-000123`: a system's reference, not words.
fn is_reference(v: &str) -> bool {
    let digits = v.bytes().filter(u8::is_ascii_digit).count();
    let numbered = v.strip_prefix('#').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let prefixed = v.split_once(['_', '-']).is_some_and(|(prefix, rest)| {
        (2..=6).contains(&prefix.len())
            && prefix.bytes().all(|b| b.is_ascii_alphabetic())
            && rest.len() >= 6
            && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    is_token(v) && ((numbered && digits > 0) || prefixed)
}

fn is_name_like(v: &str) -> bool {
    let words: Vec<&str> = v.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    (1..=5).contains(&words.len()) && words.iter().all(|w| w.chars().all(|c| c.is_alphabetic() || "'-.".contains(c)))
}

fn is_token(v: &str) -> bool {
    !v.is_empty() && v.len() <= 64 && !v.contains(char::is_whitespace)
}

fn classify_column(name: String, values: &[Value], region: &str, currency: Option<&str>) -> Column {
    let texts: Vec<String> = values.iter().filter_map(text_of).collect();
    let present = texts.len();
    let distinct = texts.iter().collect::<BTreeSet<_>>().len();
    let words = header_words(&name);
    let has = |options: &[&str]| words.iter().any(|w| options.contains(&w.as_str()));
    let column = |kind: ColumnKind, why: String| Column { name: name.clone(), kind, why, present, distinct };

    // Lists first: they have no text.
    let lists: Vec<&Vec<Value>> = values.iter().filter_map(Value::as_array).filter(|a| !a.is_empty()).collect();
    if !lists.is_empty() && present == 0 {
        let objects: Vec<&Map<String, Value>> = lists.iter().flat_map(|a| a.iter()).filter_map(Value::as_object).collect();
        if objects.is_empty() {
            return column(ColumnKind::List, format!("a list of values in {} rows", lists.len()));
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for o in &objects {
            for (k, v) in o.iter() {
                if !v.is_object() && !v.is_array() {
                    *counts.entry(k.as_str()).or_default() += 1;
                }
            }
        }
        const WANTED: &[&str] =
            &["sku", "product_id", "product", "variant_id", "quantity", "qty", "price", "amount", "name", "title", "description"];
        let mut keys: Vec<String> =
            WANTED.iter().filter(|k| counts.get(*k).is_some_and(|c| *c * 2 >= objects.len())).map(|k| k.to_string()).collect();
        keys.truncate(4);
        return column(
            ColumnKind::Items(keys.clone()),
            format!("a list of objects (line items?); keeping {}", if keys.is_empty() { "them whole".into() } else { keys.join(", ") }),
        );
    }
    if present == 0 {
        return column(ColumnKind::Empty, "blank in every sampled row".into());
    }

    let email = share(&texts, |t| kinship_normalize::email(t).is_some());
    if email >= 0.9 && distinct <= 3 && present >= 20 * distinct {
        return column(
            ColumnKind::Category(texts.iter().collect::<BTreeSet<_>>().into_iter().cloned().collect()),
            format!("the same {distinct} address(es) in {present} rows: the business's own, not a customer's"),
        );
    }
    if email >= 0.9 {
        return column(ColumnKind::Email, format!("{} of values are email addresses", percent(email)));
    }
    let handle = share(&texts, |t| t.starts_with('@') && t.len() > 1 && is_token(t));
    if handle >= 0.9 || (has(&["twitter", "handle", "instagram", "tiktok"]) && handle >= 0.5) {
        return column(ColumnKind::Handle, format!("{} of values are @handles", percent(handle)));
    }
    let numeric = share(&texts, |t| t.parse::<f64>().is_ok_and(f64::is_finite));
    let time_named = has(&[
        "date",
        "time",
        "at",
        "created",
        "updated",
        "modified",
        "timestamp",
        "ts",
        "due",
        "submitted",
        "birthday",
        "birthdate",
        "dob",
        "paid",
        "opened",
        "closed",
        "changed",
    ]);

    // Dates and times.
    if numeric >= 0.99 {
        if time_named {
            let range = |lo: f64, hi: f64| share(&texts, |t| t.parse::<f64>().is_ok_and(|v| (lo..hi).contains(&v)));
            if range(9.4e8, 4.2e9) >= 0.99 {
                return column(ColumnKind::Timestamp(TimeFormat::Unix), "Unix seconds (a time-like name, values 2000–2100)".into());
            }
            if range(9.4e11, 4.2e12) >= 0.99 {
                return column(ColumnKind::Timestamp(TimeFormat::UnixMs), "Unix milliseconds (a time-like name, values 2000–2100)".into());
            }
        }
    } else if let Some((format, moments, fit)) = best_time_format(&texts, region) {
        let dates = moments.iter().filter(|m| matches!(m, Moment::Date(_))).count();
        let ambiguous = matches!(format, TimeFormat::DayFirst | TimeFormat::MonthFirst) && !texts.iter().any(|t| day_or_month_above_12(t));
        let mut why = match &format {
            TimeFormat::Auto => format!("{} read as ISO 8601 without a declared format", percent(fit)),
            f => format!("{} fit the format {}", percent(fit), f.name()),
        };
        if ambiguous {
            why.push_str(&format!("; no day above 12 in the sample, so day or month first is a guess for region {region}: check it"));
        }
        return if dates * 2 > moments.len() { column(ColumnKind::Date(format), why) } else { column(ColumnKind::Timestamp(format), why) };
    }

    let phone = share(&texts, is_phone_like);
    let formatted = share(&texts, |t| t.contains([' ', '(', '-', '+', '.']) || t.starts_with('0'));
    if phone >= 0.9 && (has(&["phone", "mobile", "tel", "telephone", "cell", "fax", "whatsapp", "contact"]) || formatted >= 0.5) {
        return column(ColumnKind::Phone, format!("{} of values are phone numbers", percent(phone)));
    }

    let lower: BTreeSet<String> = texts.iter().map(|t| t.to_lowercase()).collect();
    const BOOLEAN_WORDS: &[&str] = &["true", "false", "yes", "no", "y", "n", "t", "f"];
    let boolean_named = has(&[
        "is",
        "has",
        "opted",
        "opt",
        "subscribed",
        "unsubscribed",
        "active",
        "verified",
        "accepts",
        "consent",
        "marketing",
        "flag",
        "enabled",
        "deleted",
    ]);
    if lower.iter().all(|v| BOOLEAN_WORDS.contains(&v.as_str())) || (boolean_named && lower.iter().all(|v| v == "0" || v == "1")) {
        return column(ColumnKind::Boolean, format!("only {}", lower.iter().cloned().collect::<Vec<_>>().join(" / ")));
    }

    if has(&["currency", "cur"]) || (currency == Some(name.as_str())) {
        let codes = share(&texts, |t| t.len() == 3 && t.chars().all(|c| c.is_ascii_alphabetic()));
        if codes >= 0.9 {
            return column(ColumnKind::Currency, "three-letter currency codes".into());
        }
    }
    let id_named =
        has(&["id", "uuid", "guid", "key", "number", "no", "nr", "ref", "reference"]) || name.ends_with("Id") || name.ends_with("ID");
    let person_ref = has(&["customer", "contact", "user", "member", "requester", "client", "person", "lead", "subscriber", "buyer"]);

    // Places by their names, before numbers (postcodes are text) and names (`Billing City`).
    if has(&["country", "cc"]) {
        return column(ColumnKind::Country, "a country by its name".into());
    }
    if has(&["zip", "postcode", "postal", "plz", "zipcode", "postalcode"]) {
        return column(ColumnKind::Postcode, "a postcode by its name".into());
    }
    if has(&["city", "town", "suburb", "locality"]) {
        return column(ColumnKind::City, "a city by its name".into());
    }
    if has(&["state", "province", "region", "county"]) {
        return column(ColumnKind::Region, "a state or region by its name".into());
    }

    if numeric >= 0.95 {
        let money = has(&[
            "amount", "total", "price", "subtotal", "tax", "taxes", "shipping", "paid", "due", "balance", "revenue", "value", "cost",
            "discount", "refund", "refunded", "spent", "fee", "cents",
        ]);
        let integers = texts.iter().all(|t| t.parse::<i64>().is_ok());
        if money {
            let minor = has(&["cents", "minor"]) || (integers && currency.is_some() && words.first().is_some_and(|w| w == "amount"));
            return match (minor, currency) {
                (true, Some(c)) => column(
                    ColumnKind::Amount(Some(c.to_string())),
                    format!("money in whole numbers beside a currency column `{c}`: minor units (cents)"),
                ),
                (true, None) => column(ColumnKind::Amount(Some(String::new())), "money named in cents".into()),
                _ => column(ColumnKind::Amount(None), "money: a number with a money-like name".into()),
            };
        }
        if id_named && integers {
            return column(ColumnKind::Id(person_ref), "whole numbers with an id-like name".into());
        }
        return column(ColumnKind::Number, format!("{} of values are numbers", percent(numeric)));
    }

    let name_like = share(&texts, is_name_like);
    if name_like >= 0.8
        && !has(&["company", "account", "product", "item", "lineitem", "organization", "organisation", "business", "street", "address"])
    {
        if has(&["first", "given", "fname", "forename", "firstname", "givenname"]) {
            return column(ColumnKind::FirstName, format!("a first name by its name; {} look like names", percent(name_like)));
        }
        if has(&["last", "surname", "family", "lname", "lastname", "familyname"]) {
            return column(ColumnKind::LastName, format!("a last name by its name; {} look like names", percent(name_like)));
        }
        if has(&["name", "fullname", "customer", "requester", "contact", "person", "recipient", "addressee", "holder"]) {
            let comma = share(&texts, |t| t.contains(','));
            let two = share(&texts, |t| split_name(t).last.is_some());
            return column(
                ColumnKind::FullName(comma >= 0.5),
                if comma >= 0.5 {
                    format!("full names written `LAST, First` in {}", percent(comma))
                } else {
                    format!("full names; {} have a first and last part", percent(two))
                },
            );
        }
    }
    let tokens = share(&texts, is_token);
    let mixed = share(&texts, |t| t.chars().any(|c| c.is_ascii_digit()) && t.chars().any(|c| c.is_alphabetic()));
    let references = share(&texts, is_reference);
    if tokens >= 0.99 && (id_named || references >= 0.95 || (distinct == present && mixed >= 0.9 && present >= 10)) {
        let why = if id_named {
            "an id by its name".into()
        } else if references >= 0.95 {
            format!("{} of values are references such as {}", percent(references), truncate(&texts[0], 24))
        } else {
            "every value distinct, letters and digits".into()
        };
        return column(ColumnKind::Id(person_ref), why);
    }
    if distinct <= 20 && present >= 2 * distinct && texts.iter().all(|t| t.chars().count() <= 40) {
        let listed: Vec<String> = texts.iter().collect::<BTreeSet<_>>().into_iter().take(20).cloned().collect();
        return column(ColumnKind::Category(listed.clone()), format!("{distinct} distinct values: {}", listed.join(", ")));
    }
    column(ColumnKind::Text, "free text".into())
}

fn day_or_month_above_12(t: &str) -> bool {
    let date = t.split([' ', 'T']).next().unwrap_or("");
    date.split(['/', '.', '-']).take(2).any(|p| p.parse::<u32>().is_ok_and(|n| (13..=31).contains(&n)))
}

/// The format that reads the most values (at least 95%): numeric dates first, in the
/// region's order of day and month (so their order is always declared), then whatever
/// needs no declaration, then named patterns; a later candidate must read strictly more.
fn best_time_format(texts: &[String], region: &str) -> Option<(TimeFormat, Vec<Moment>, f64)> {
    let month_first_region = matches!(region.to_ascii_uppercase().as_str(), "US" | "PH" | "CA" | "FM" | "MH" | "PW");
    let (first, second) =
        if month_first_region { (TimeFormat::MonthFirst, TimeFormat::DayFirst) } else { (TimeFormat::DayFirst, TimeFormat::MonthFirst) };
    // Numeric dates get their order declared even where the built-in reading would guess.
    let candidates = [
        first,
        second,
        TimeFormat::Auto,
        TimeFormat::Salesforce,
        TimeFormat::from_name("%Y-%m-%d %H:%M:%S %z").expect("a valid pattern"),
        TimeFormat::from_name("%a, %d %b %Y %H:%M:%S %z").expect("a valid pattern"),
        TimeFormat::from_name("%d %b %Y").expect("a valid pattern"),
        TimeFormat::from_name("%d %B %Y").expect("a valid pattern"),
        TimeFormat::from_name("%b %d, %Y").expect("a valid pattern"),
        TimeFormat::from_name("%B %d, %Y").expect("a valid pattern"),
        TimeFormat::from_name("%Y/%m/%d %H:%M:%S").expect("a valid pattern"),
        TimeFormat::from_name("%Y/%m/%d").expect("a valid pattern"),
        TimeFormat::from_name("%d %b %Y %H:%M").expect("a valid pattern"),
    ];
    let mut best: Option<(TimeFormat, Vec<Moment>, f64)> = None;
    for format in candidates {
        // Auto reads bare numbers as Unix seconds; numbers were handled before.
        let moments: Vec<Moment> = texts.iter().filter_map(|t| format.read(t, None).ok()).collect();
        let fit = moments.len() as f64 / texts.len() as f64;
        if fit >= 0.95 && best.as_ref().is_none_or(|(_, _, b)| fit > *b + 1e-9) {
            best = Some((format, moments, fit));
        }
    }
    best
}

// ---------------------------------------------------------------------------------------
// Proposing a mapping

/// Which events a file of this name holds, by the words of its name.
fn event_name(stem: &str) -> Option<&'static str> {
    let words = header_words(stem);
    let has = |w: &[&str]| words.iter().any(|x| w.contains(&x.as_str()));
    Some(if has(&["order", "orders", "purchase", "purchases", "sale", "sales"]) {
        "Order Completed"
    } else if has(&["invoice", "invoices", "bill", "bills"]) {
        "Invoice Issued"
    } else if has(&["payment", "payments", "charge", "charges", "transaction", "transactions"]) {
        "Payment Received"
    } else if has(&["ticket", "tickets", "case", "cases", "conversation", "conversations", "request", "requests"]) {
        "Ticket Opened"
    } else if has(&["survey", "surveys", "response", "responses", "nps", "feedback"]) {
        "Survey Answered"
    } else if has(&["shipment", "shipments", "delivery", "deliveries", "fulfillment", "fulfillments"]) {
        "Shipment Updated"
    } else {
        return None;
    })
}

struct Plan {
    config: SourceConfig,
    limits: Vec<(String, u32, String)>,
    /// TOML comments by setting (`identifiers.email`, `fields.total`, `key`).
    why: BTreeMap<String, String>,
}

impl Plan {
    fn new(input: &SuggestInput<'_>, columns: &[Column]) -> Plan {
        let mut why = BTreeMap::new();
        let stem = input.path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| input.name.to_string());
        let rows = input.rows.len();
        let mut config: SourceConfig = serde_json::from_value(serde_json::json!({ "type": input.kind })).expect("a bare source config");
        config.path = input.path.clone();
        let mut used_names: BTreeSet<String> = columns.iter().map(|c| c.name.clone()).collect();
        let field_name = |preferred: &str, column: &str, used: &mut BTreeSet<String>| -> String {
            if preferred == column {
                return column.to_string();
            }
            let mut name = preferred.to_string();
            let mut n = 2;
            while used.contains(&name) {
                name = format!("{preferred}_{n}");
                n += 1;
            }
            used.insert(name.clone());
            name
        };

        // The event, and whether there is one.
        let event_column = columns.iter().find(|c| {
            matches!(c.kind, ColumnKind::Category(_))
                && c.present * 100 >= rows * 99
                && header_words(&c.name).len() <= 2
                && header_words(&c.name).iter().any(|w| ["event", "action", "type"].contains(&w.as_str()))
        });
        let has_money = columns.iter().any(|c| matches!(c.kind, ColumnKind::Amount(_)));
        let named_event = event_name(&stem);
        let is_event = event_column.is_some()
            || named_event.is_some()
            || (has_money && columns.iter().any(|c| matches!(c.kind, ColumnKind::Timestamp(_))));

        // The key: a column present and distinct in every row, an id by preference.
        // Ties go to the id named for the file (`invoice_id` in invoices.csv), then the first.
        let stem_words: Vec<String> = header_words(&stem).iter().map(|w| w.trim_end_matches('s').to_string()).collect();
        let key = columns
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.present * 100 >= rows * 99 && rows > 0 && matches!(c.kind, ColumnKind::Id(_) | ColumnKind::Email | ColumnKind::Number)
            })
            .max_by_key(|(position, c)| {
                let words = header_words(&c.name);
                let exact_id = words == ["id"];
                let own = words.iter().any(|w| stem_words.contains(w));
                let id = matches!(c.kind, ColumnKind::Id(_));
                (id, c.distinct == c.present, exact_id, own, c.distinct * 1000 / c.present.max(1), std::cmp::Reverse(*position))
            })
            .map(|(_, c)| c)
            .filter(|c| c.distinct * 2 >= c.present);
        if let Some(k) = key {
            config.key = Some(k.name.clone());
            let repeats = k.present - k.distinct;
            let missing = rows - k.present;
            why.insert(
                "key".into(),
                if missing > 0 {
                    format!("distinct, and blank in {missing} of {rows} sampled rows, which will be rejected")
                } else if repeats == 0 {
                    format!("present and distinct in all {rows} sampled rows")
                } else {
                    format!("present in every row; {repeats} rows repeat a value (line items of one order?) and are kept once")
                },
            );
        } else {
            why.insert("key".into(), "no column is present and distinct in every row: each row is keyed by a hash of its content".into());
        }

        // The time.
        let times: Vec<&Column> = columns
            .iter()
            .filter(|c| matches!(c.kind, ColumnKind::Timestamp(_) | ColumnKind::Date(_)) && c.present * 10 >= rows * 9)
            .collect();
        let prefer: &[&str] = if is_event {
            &[
                "created",
                "submitted",
                "start",
                "issued",
                "ordered",
                "placed",
                "shipped",
                "sent",
                "opened",
                "date",
                "timestamp",
                "ts",
                "time",
                "at",
            ]
        } else {
            &["modified", "updated", "changed", "created", "optin", "timestamp", "date"]
        };
        let time = prefer
            .iter()
            .find_map(|p| {
                times.iter().find(|c| {
                    header_words(&c.name).iter().any(|w| w == p)
                        && !header_words(&c.name).iter().any(|w| ["birth", "birthday", "dob", "due"].contains(&w.as_str()))
                })
            })
            .or_else(|| times.iter().find(|c| matches!(c.kind, ColumnKind::Timestamp(_))))
            .copied();

        let mut identifiers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut traits: BTreeMap<String, String> = BTreeMap::new();
        let mut properties: Vec<String> = Vec::new();
        let mut limits: Vec<(String, u32, String)> = Vec::new();
        let declare = |config: &mut SourceConfig, why: &mut BTreeMap<String, String>, name: &str, spec: FieldSpec, reason: &str| {
            why.insert(format!("fields.{name}"), reason.to_string());
            config.fields.insert(name.to_string(), spec);
        };
        let from = |c: &Column, name: &str| (name != c.name).then(|| c.name.clone());

        for c in columns {
            // The question every NPS survey asks, by what it asks.
            let words = header_words(&c.name);
            let nps = words.iter().any(|w| w == "recommend") && words.iter().any(|w| w == "likely");
            let snake_name = if nps && matches!(c.kind, ColumnKind::Number) { "nps_score".to_string() } else { snake(&c.name) };
            let is_key = config.key.as_deref() == Some(c.name.as_str());
            match &c.kind {
                ColumnKind::Email => {
                    identifiers.entry("email".into()).or_default().push(c.name.clone());
                    why.insert(format!("identifiers.email.{}", c.name), c.why.clone());
                    if !is_event {
                        traits.entry("email".into()).or_insert(c.name.clone());
                    }
                }
                ColumnKind::Phone => {
                    identifiers.entry("phone".into()).or_default().push(c.name.clone());
                    why.insert(format!("identifiers.phone.{}", c.name), c.why.clone());
                }
                ColumnKind::Handle => {
                    identifiers.entry("handle".into()).or_default().push(c.name.clone());
                    why.insert(format!("identifiers.handle.{}", c.name), c.why.clone());
                }
                ColumnKind::Id(person) => {
                    // A list keyed by an opaque code with one row per address (a mailing
                    // list's EUID) is identified by the address; its code adds nothing and
                    // would keep a person's two addresses apart. A key named as an id (a
                    // CRM's) is kept: other systems quote it.
                    let named_id = header_words(&c.name).iter().any(|w| w == "id");
                    let one_per_email = !named_id
                        && columns.iter().any(|e| e.kind == ColumnKind::Email && e.present * 100 >= rows * 99 && e.distinct == e.present);
                    let names_person = (is_key && !is_event && !one_per_email) || *person;
                    if names_person {
                        // A column already named for its system (`crm_id`) keeps its name.
                        let kind = if is_key && !is_event {
                            if snake_name.ends_with("_id") { snake_name.clone() } else { format!("{}_id", input.name) }
                        } else {
                            format!("{}_{}", input.name, snake_name)
                        };
                        why.insert(
                            format!("identifiers.{kind}.{}", c.name),
                            if is_key {
                                format!("the key of a table of people; {}", c.why)
                            } else {
                                format!("names a person in {stem}; {}", c.why)
                            },
                        );
                        limits.push((
                            kind.clone(),
                            1,
                            format!("one person, one {kind}: two records with different ones stay apart (a family sharing a mailbox)"),
                        ));
                        identifiers.entry(kind).or_default().push(c.name.clone());
                    } else if is_event {
                        let thing = snake_name.strip_suffix("_id").or_else(|| snake_name.strip_suffix("_number")).unwrap_or("");
                        let linked = input.known_kinds.contains(&snake_name) || SHARED_THINGS.contains(&thing);
                        if linked && !snake_name.is_empty() {
                            why.insert(
                                format!("identifiers.{snake_name}.{}", c.name),
                                format!(
                                    "a {} id other systems quote: it links their rows to whoever this row belongs to",
                                    if thing.is_empty() { &snake_name } else { thing }
                                ),
                            );
                            limits.push((snake_name.clone(), 0, format!("a person has many {snake_name}s")));
                            identifiers.entry(snake_name.clone()).or_default().push(c.name.clone());
                        }
                        let name = field_name(&snake_name, &c.name, &mut used_names);
                        if name != c.name {
                            declare(&mut config, &mut why, &name, FieldSpec { from: from(c, &name), ..Default::default() }, &c.why);
                        }
                        properties.push(name);
                    }
                }
                ColumnKind::FirstName | ColumnKind::LastName => {
                    let standard = if c.kind == ColumnKind::FirstName { "first_name" } else { "last_name" };
                    if !traits.contains_key(standard) {
                        traits.insert(standard.into(), c.name.clone());
                        why.insert(format!("traits.{standard}"), c.why.clone());
                    }
                }
                ColumnKind::FullName(comma) => {
                    for (part, trait_name) in [(NamePart::First, "first_name"), (NamePart::Last, "last_name")] {
                        if traits.contains_key(trait_name) {
                            continue;
                        }
                        let name = field_name(trait_name, &c.name, &mut used_names);
                        let spec = FieldSpec { from: Some(c.name.clone()), name_part: Some(part), ..Default::default() };
                        declare(
                            &mut config,
                            &mut why,
                            &name,
                            spec,
                            &format!(
                                "{} of `{}`: {}",
                                trait_name.replace('_', " "),
                                c.name,
                                if *comma { "written `LAST, First`" } else { "written `First Last`" }
                            ),
                        );
                        traits.insert(trait_name.into(), name);
                    }
                }
                ColumnKind::Timestamp(format) | ColumnKind::Date(format) => {
                    let is_time = time.is_some_and(|t| t.name == c.name);
                    let birth =
                        header_words(&c.name).iter().any(|w| ["birth", "birthday", "birthdate", "dob", "born"].contains(&w.as_str()));
                    let name = if birth {
                        field_name("birth_date", &c.name, &mut used_names)
                    } else if is_time {
                        c.name.clone()
                    } else {
                        field_name(&snake_name, &c.name, &mut used_names)
                    };
                    if *format != TimeFormat::Auto || name != c.name {
                        let format = (*format != TimeFormat::Auto).then(|| format.name().to_string());
                        declare(&mut config, &mut why, &name, FieldSpec { from: from(c, &name), format, ..Default::default() }, &c.why);
                    } else {
                        why.insert(format!("time.{}", c.name), c.why.clone());
                    }
                    if is_time {
                        config.timestamp = Some(name);
                    } else if birth {
                        traits.insert("birth_date".into(), name);
                    } else if is_event {
                        properties.push(name);
                    } else {
                        traits.insert(snake_name, name);
                    }
                }
                ColumnKind::Amount(minor) => {
                    let name = field_name(&snake_name, &c.name, &mut used_names);
                    let spec = match minor.as_deref() {
                        Some("") => FieldSpec { from: from(c, &name), divide: Some(100.0), ..Default::default() },
                        Some(currency) => FieldSpec { from: from(c, &name), minor_units: Some(currency.to_string()), ..Default::default() },
                        None => FieldSpec { from: from(c, &name), kind: Some(FieldType::Number), ..Default::default() },
                    };
                    declare(&mut config, &mut why, &name, spec, &c.why);
                    properties.push(name);
                }
                ColumnKind::Boolean => {
                    let name = field_name(&snake_name, &c.name, &mut used_names);
                    declare(
                        &mut config,
                        &mut why,
                        &name,
                        FieldSpec { from: from(c, &name), kind: Some(FieldType::Boolean), ..Default::default() },
                        &c.why,
                    );
                    if is_event {
                        properties.push(name)
                    } else {
                        traits.insert(snake(&c.name), name);
                    }
                }
                ColumnKind::Number | ColumnKind::Currency | ColumnKind::Category(_) | ColumnKind::Text | ColumnKind::List => {
                    let name = field_name(&snake_name, &c.name, &mut used_names);
                    let kind = matches!(c.kind, ColumnKind::Number).then_some(FieldType::Number);
                    if name != c.name || kind.is_some() {
                        declare(&mut config, &mut why, &name, FieldSpec { from: from(c, &name), kind, ..Default::default() }, &c.why);
                    } else if let ColumnKind::Category(_) = c.kind {
                        why.insert(
                            format!("category.{}", c.name),
                            format!("{}; map them to a common vocabulary with `map` if other sources name them differently", c.why),
                        );
                    }
                    if is_event {
                        if event_column.is_none_or(|e| e.name != c.name) {
                            properties.push(name);
                        }
                    } else if !matches!(c.kind, ColumnKind::Text | ColumnKind::List) {
                        traits.insert(snake(&c.name), name);
                    }
                }
                ColumnKind::Items(keys) => {
                    let name = field_name(&snake_name, &c.name, &mut used_names);
                    let pick = match keys.len() {
                        0 => None,
                        1 => Some(OneOrMany::One(keys[0].clone())),
                        _ => Some(OneOrMany::Many(keys.clone())),
                    };
                    if name != c.name || pick.is_some() {
                        declare(&mut config, &mut why, &name, FieldSpec { from: from(c, &name), pick, ..Default::default() }, &c.why);
                    }
                    if is_event {
                        properties.push(name);
                    }
                }
                ColumnKind::Country | ColumnKind::Region | ColumnKind::City | ColumnKind::Postcode => {
                    let standard = match c.kind {
                        ColumnKind::Country => "country",
                        ColumnKind::Region => "state",
                        ColumnKind::City => "city",
                        _ => "postcode",
                    };
                    if !traits.contains_key(standard) {
                        traits.insert(standard.into(), c.name.clone());
                        why.insert(format!("traits.{standard}"), c.why.clone());
                    }
                }
                ColumnKind::Linked(kind) => {
                    why.insert(format!("identifiers.{kind}.{}", c.name), c.why.clone());
                    identifiers.entry(kind.clone()).or_default().push(c.name.clone());
                }
                ColumnKind::Empty => {}
            }
        }

        config.identifiers = identifiers
            .into_iter()
            .map(|(k, v)| (k, if v.len() == 1 { OneOrMany::One(v[0].clone()) } else { OneOrMany::Many(v) }))
            .collect();
        config.traits = traits;
        if is_event {
            match (event_column, named_event) {
                (Some(c), _) => {
                    config.event = Some(EventMapping { name: None, field: Some(c.name.clone()) });
                    why.insert("event".into(), format!("`{}` names each row's event: {}", c.name, c.why));
                }
                (None, name) => {
                    let name = name
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("{} Recorded", crate::transform::title_case(&stem.replace(['_', '-'], " "))));
                    why.insert(
                        "event".into(),
                        format!("rows of `{stem}` with a time{}: one event each", if has_money { " and amounts" } else { "" }),
                    );
                    config.event = Some(EventMapping { name: Some(name), field: None });
                }
            }
            config.properties = Some(properties);
        }
        limits.sort();
        limits.dedup_by(|a, b| a.0 == b.0);
        Plan { config, limits, why }
    }

    fn render(&self, input: &SuggestInput<'_>, columns: &[Column]) -> String {
        let c = &self.config;
        let mut out = String::new();
        let q = |s: &str| toml_string(s);
        let k = |s: &str| toml_key(s);
        let line = |out: &mut String, setting: String, why: Option<&String>| match why {
            Some(why) => {
                let _ = writeln!(out, "# {}", clean(why));
                let _ = writeln!(out, "{setting}");
            }
            None => {
                let _ = writeln!(out, "{setting}");
            }
        };
        let _ = writeln!(
            out,
            "# Suggested by `kinship source suggest` from {} sampled rows of {}.",
            input.rows.len(),
            clean(&input.path.display().to_string())
        );
        for col in columns {
            let _ = writeln!(out, "#   {:<28} {}", clean(&truncate(&col.name, 28)), describe(&col.kind));
        }
        for (kind, limit, why) in &self.limits {
            let _ = writeln!(out, "# [resolve.limits] {} = {limit}: {}", clean(kind), clean(why));
        }
        let _ = writeln!(out, "[sources.{}]", k(input.name));
        let _ = writeln!(
            out,
            "type = {}",
            q(match c.kind {
                SourceType::Csv => "csv",
                SourceType::Jsonl => "jsonl",
                _ => "postgres",
            })
        );
        if !c.path.as_os_str().is_empty() {
            let _ = writeln!(out, "path = {}", q(&c.path.display().to_string()));
        }
        if let Some(key) = &c.key {
            line(&mut out, format!("key = {}", q(key)), self.why.get("key"));
        } else if let Some(why) = self.why.get("key") {
            let _ = writeln!(out, "# {}", clean(why));
        }
        if let Some(t) = &c.timestamp {
            let why = self.why.get(&format!("fields.{t}")).or_else(|| self.why.get(&format!("time.{t}")));
            line(&mut out, format!("timestamp = {}", q(t)), why);
        }
        if let Some(ev) = &c.event {
            let setting = match (&ev.name, &ev.field) {
                (Some(n), _) => format!("event = {{ name = {} }}", q(n)),
                (_, Some(f)) => format!("event = {{ field = {} }}", q(f)),
                _ => String::new(),
            };
            line(&mut out, setting, self.why.get("event"));
        }
        if let Some(p) = &c.properties {
            let _ = writeln!(out, "properties = [{}]", p.iter().map(|s| q(s)).collect::<Vec<_>>().join(", "));
        }
        if !c.identifiers.is_empty() {
            let _ = writeln!(out, "\n[sources.{}.identifiers]", k(input.name));
            for (kind, paths) in &c.identifiers {
                for path in paths.iter() {
                    if let Some(why) = self.why.get(&format!("identifiers.{kind}.{path}")) {
                        let _ = writeln!(out, "# `{}`: {}", clean(path), clean(why));
                    }
                }
                let value = match paths {
                    OneOrMany::One(p) => q(p),
                    OneOrMany::Many(v) => format!("[{}]", v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")),
                };
                let _ = writeln!(out, "{} = {value}", k(kind));
            }
        }
        if !c.traits.is_empty() {
            let _ = writeln!(out, "\n[sources.{}.traits]", k(input.name));
            for (name, path) in &c.traits {
                let why = self.why.get(&format!("traits.{name}"));
                line(&mut out, format!("{} = {}", k(name), q(path)), why);
            }
        }
        if !c.fields.is_empty() {
            let _ = writeln!(out, "\n[sources.{}.fields]", k(input.name));
            for (name, spec) in &c.fields {
                line(&mut out, format!("{} = {}", k(name), inline_spec(spec)), self.why.get(&format!("fields.{name}")));
            }
        }
        for (setting, why) in &self.why {
            if let Some(column) = setting.strip_prefix("category.") {
                let _ = writeln!(out, "# `{}`: {}", clean(column), clean(why));
            }
        }
        out
    }
}

/// Text for a comment line: a column name or value from the export may hold a line break,
/// which would otherwise end the comment and write live TOML.
fn clean(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn describe(kind: &ColumnKind) -> String {
    match kind {
        ColumnKind::Email => "email".into(),
        ColumnKind::Phone => "phone".into(),
        ColumnKind::Handle => "handle".into(),
        ColumnKind::FirstName => "first name".into(),
        ColumnKind::LastName => "last name".into(),
        ColumnKind::FullName(true) => "full name, LAST, First".into(),
        ColumnKind::FullName(false) => "full name".into(),
        ColumnKind::Id(true) => "id of a person".into(),
        ColumnKind::Id(false) => "id".into(),
        ColumnKind::Date(f) => format!("date ({})", f.name()),
        ColumnKind::Timestamp(f) => format!("timestamp ({})", f.name()),
        ColumnKind::Amount(None) => "amount".into(),
        ColumnKind::Amount(Some(_)) => "amount in minor units".into(),
        ColumnKind::Currency => "currency".into(),
        ColumnKind::Country => "country".into(),
        ColumnKind::Region => "state or region".into(),
        ColumnKind::City => "city".into(),
        ColumnKind::Postcode => "postcode".into(),
        ColumnKind::Boolean => "yes/no".into(),
        ColumnKind::Category(v) => format!("category ({} values)", v.len()),
        ColumnKind::Number => "number".into(),
        ColumnKind::Items(_) => "list of items".into(),
        ColumnKind::List => "list".into(),
        ColumnKind::Linked(kind) => format!("{kind} values"),
        ColumnKind::Text => "free text".into(),
        ColumnKind::Empty => "empty".into(),
    }
}

fn truncate(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn toml_key(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') { s.to_string() } else { toml_string(s) }
}

fn inline_spec(spec: &FieldSpec) -> String {
    let value = serde_json::to_value(spec).expect("a field spec serialises");
    let mut parts = Vec::new();
    if let Value::Object(o) = value {
        for (k, v) in o {
            if v.is_null() {
                continue;
            }
            parts.push(format!("{k} = {}", toml_value(&v)));
        }
    }
    format!("{{ {} }}", parts.join(", "))
}

fn toml_value(v: &Value) -> String {
    match v {
        Value::String(s) => toml_string(s),
        Value::Array(a) => format!("[{}]", a.iter().map(toml_value).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => {
            format!("{{ {} }}", o.iter().map(|(k, v)| format!("{} = {}", toml_key(k), toml_value(v))).collect::<Vec<_>>().join(", "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(csv: &str) -> Vec<Map<String, Value>> {
        let mut reader = ::csv::Reader::from_reader(csv.as_bytes());
        let headers = reader.headers().unwrap().clone();
        reader
            .records()
            .map(|r| headers.iter().zip(r.unwrap().iter()).map(|(h, v)| (h.to_string(), Value::String(v.to_string()))).collect())
            .collect()
    }

    fn suggest_for(name: &str, path: &str, rows: &[Map<String, Value>], region: &str) -> Suggestion {
        let kind = if path.ends_with(".csv") { SourceType::Csv } else { SourceType::Jsonl };
        suggest(&SuggestInput { name, kind, path: path.into(), region, rows, known_kinds: &BTreeSet::new(), stored_kind: None })
    }

    fn kind_of<'s>(s: &'s Suggestion, column: &str) -> &'s ColumnKind {
        &s.columns.iter().find(|c| c.name == column).unwrap_or_else(|| panic!("{column} in {:?}", s.columns)).kind
    }

    /// The proposal parses as the configuration it describes.
    fn parses(s: &Suggestion, name: &str) {
        let doc: toml::Table = toml::from_str(&s.toml).unwrap_or_else(|e| panic!("{e}\n{}", s.toml));
        let parsed: SourceConfig = doc["sources"][name].clone().try_into().unwrap_or_else(|e| panic!("{e}\n{}", s.toml));
        assert_eq!(serde_json::to_value(&parsed).unwrap(), serde_json::to_value(&s.config).unwrap(), "{}", s.toml);
    }

    #[test]
    fn a_salesforce_contact_export() {
        let mut csv = String::from("Id,FirstName,LastName,Email,Phone,MailingCity,HasOptedOutOfEmail,CreatedDate,LastModifiedDate\n");
        for i in 0..40 {
            csv.push_str(&format!(
                "0035g00000AbC{i:03}AAZ,{},García,ana{i}@example.com,(415) 555-{:04},Boston,{},2026-02-{:02}T12:00:00.000+0000,2026-03-01T08:00:00.000+0000\n",
                ["Ana", "José", "Zoë", "Li"][i % 4],
                1000 + i,
                if i % 3 == 0 { "true" } else { "false" },
                1 + i % 28
            ));
        }
        let rows = rows(&csv);
        let s = suggest_for("crm", "Contact.csv", &rows, "US");
        assert_eq!(kind_of(&s, "Email"), &ColumnKind::Email);
        assert_eq!(kind_of(&s, "Phone"), &ColumnKind::Phone);
        assert_eq!(kind_of(&s, "FirstName"), &ColumnKind::FirstName);
        assert_eq!(kind_of(&s, "HasOptedOutOfEmail"), &ColumnKind::Boolean);
        assert_eq!(kind_of(&s, "CreatedDate"), &ColumnKind::Timestamp(TimeFormat::Auto), "+0000 needs no declaration");
        assert_eq!(s.config.key.as_deref(), Some("Id"));
        assert_eq!(s.config.timestamp.as_deref(), Some("LastModifiedDate"), "a table of people is as of its last change");
        assert!(s.config.event.is_none());
        assert_eq!(s.config.identifiers["crm_id"], OneOrMany::One("Id".into()));
        assert_eq!(s.config.traits["first_name"], "FirstName");
        parses(&s, "crm");
    }

    #[test]
    fn a_survey_with_month_first_dates_and_a_long_question() {
        let mut csv = String::from(
            "Respondent ID,Start Date,Email Address,Full Name,\"How likely is it that you would recommend us to a friend?\",Reason\n",
        );
        for i in 0..30 {
            csv.push_str(&format!(
                "11{i:08},09/{:02}/2026 02:05:33 PM,p{i}@example.com,\"NG, {}\",{},\"fine, thanks\"\n",
                1 + i % 28,
                ["Lee", "Mai"][i % 2],
                i % 11
            ));
        }
        let rows = rows(&csv);
        let s = suggest_for("survey", "survey_responses.csv", &rows, "US");
        assert_eq!(kind_of(&s, "Start Date"), &ColumnKind::Timestamp(TimeFormat::MonthFirst));
        assert_eq!(kind_of(&s, "Full Name"), &ColumnKind::FullName(true));
        assert_eq!(s.config.event.as_ref().and_then(|e| e.name.as_deref()), Some("Survey Answered"));
        assert_eq!(s.config.timestamp.as_deref(), Some("Start Date"));
        assert_eq!(s.config.fields["Start Date"].format.as_deref(), Some("month_first"));
        assert_eq!(s.config.fields["last_name"].name_part, Some(NamePart::Last));
        parses(&s, "survey");
        // Mapped, every sampled row passes.
        let resolve = kinship_core::ResolveConfig::default();
        let mapper = crate::Mapper::new(&s.config, &resolve).unwrap();
        for row in &rows {
            mapper.map(row, "{}").unwrap();
        }
    }

    #[test]
    fn stripe_invoices_in_cents_with_nested_lines() {
        let rows: Vec<Map<String, Value>> = (0..25)
            .map(|i| {
                let status = ["paid", "open", "void"][i % 3];
                json!({"id": format!("in_1Q{i:06}abc"), "customer": format!("cus_{i:05}xyz"), "customer_email": format!("c{i}@example.com"),
                       "amount_due": 6156 + i, "currency": "usd", "status": status, "created": 1_771_416_000 + i * 100,
                       "lines": {"data": [{"price": {"product": "prod_1"}, "quantity": 1, "amount": 6156}]}})
                .as_object()
                .unwrap()
                .clone()
            })
            .collect();
        let s = suggest_for("invoices", "invoices.jsonl", &rows, "US");
        assert_eq!(kind_of(&s, "amount_due"), &ColumnKind::Amount(Some("currency".into())));
        assert_eq!(kind_of(&s, "created"), &ColumnKind::Timestamp(TimeFormat::Unix));
        assert_eq!(kind_of(&s, "customer"), &ColumnKind::Id(true));
        assert!(matches!(kind_of(&s, "lines.data"), ColumnKind::Items(keys) if keys.contains(&"quantity".to_string())));
        assert_eq!(s.config.key.as_deref(), Some("id"));
        assert_eq!(s.config.event.as_ref().and_then(|e| e.name.as_deref()), Some("Invoice Issued"));
        assert!(s.config.identifiers.contains_key("invoices_customer"));
        assert_eq!(s.config.fields["amount_due"].minor_units.as_deref(), Some("currency"));
        parses(&s, "invoices");
    }

    #[test]
    fn a_hostile_header_cannot_write_toml() {
        let row: Map<String, Value> = serde_json::from_value(json!({
            "email": "a@example.com",
            "note\n[sources.evil]\ntype = \"csv\"\npath = \"/etc/passwd\"": "x",
            "status": "ok\n[sources.evil2]"
        }))
        .unwrap();
        let rows = vec![row; 30];
        let s = suggest_for("crm", "c.jsonl", &rows, "US");
        let doc: toml::Table = toml::from_str(&s.toml).unwrap_or_else(|e| panic!("{e}\n{}", s.toml));
        assert_eq!(doc["sources"].as_table().unwrap().keys().collect::<Vec<_>>(), ["crm"], "{}", s.toml);
    }

    #[test]
    fn day_first_where_the_data_says_so() {
        let mut csv = String::from("email,submitted\n");
        for i in 0..20 {
            csv.push_str(&format!("x{i}@example.com,{:02}/09/2026\n", 10 + i));
        }
        let s = suggest_for("nps", "nps.csv", &rows(&csv), "US");
        assert_eq!(kind_of(&s, "submitted"), &ColumnKind::Date(TimeFormat::DayFirst), "days above 12 overrule the region");
    }
}

/// What a mapping makes of sampled rows: the first records as they would be stored, and
/// every row that would be rejected, with its line and reason.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Preview {
    pub read: usize,
    pub mapped: usize,
    pub records: Vec<Value>,
    pub rejects: Vec<crate::Reject>,
}

/// Maps `rows` with `config`; `Err` is a setting that does not compile.
pub fn preview(
    config: &SourceConfig,
    resolve: &kinship_core::ResolveConfig,
    rows: &[crate::Row],
    read_rejects: &[crate::Reject],
    shown: usize,
) -> Result<Preview, String> {
    let mapper = crate::Mapper::new(config, resolve)?;
    let mut preview = Preview { read: rows.len() + read_rejects.len(), mapped: 0, records: Vec::new(), rejects: read_rejects.to_vec() };
    for row in rows {
        match mapper.map(&row.fields, &row.payload) {
            Ok(mapped) => {
                preview.mapped += 1;
                if preview.records.len() < shown {
                    let traits: Map<String, Value> = mapper.traits(&row.fields).into_iter().map(|(k, v)| (k.into_owned(), v)).collect();
                    let event = mapper.event(&row.fields);
                    preview.records.push(serde_json::json!({
                        "line": row.line,
                        "key": mapped.key,
                        "time": mapped.timestamp.map(|ms| kinship_normalize::Moment::Instant(ms).to_text()),
                        "identifiers": mapped.identifiers.iter().map(|i| format!("{}:{}", i.kind, i.value)).collect::<Vec<_>>(),
                        "traits": traits,
                        "event": event.as_ref().map(|e| &e.event),
                        "properties": event.map(|e| e.properties),
                    }));
                }
            }
            Err(reason) => preview.rejects.push(crate::Reject { line: row.line, reason, raw: String::new() }),
        }
    }
    preview.rejects.sort_by_key(|r| r.line);
    Ok(preview)
}
