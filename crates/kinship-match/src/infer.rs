//! Guessing a configuration from column names and a sample of values.
//!
//! Each column gets a role (given name, email, date, postcode, ...) from its name, or
//! from its values when the name says nothing. Roles decide the comparison. Blocking rules
//! are single columns and pairs of columns that the sample shows to be selective enough to
//! stay near-linear at scale, chosen so that a duplicate is caught whichever few of its
//! fields survived data entry (see `choose_blocking_rules`).

use kinship_normalize::header_words;
use rustc_hash::FxHashMap;

use crate::blocking::{BlockingRule, KeyExpr, Transform};
use crate::compare::{parse_date, Comparison};
use crate::config::{FieldConfig, MatchConfig, PriorConfig, TrainingConfig, MAX_FIELDS};
use crate::dataset::normalize_value;
use crate::MatchError;

/// A blocking rule is kept when, scaled to the whole file, it pairs each record with at
/// most this many records of different people: that keeps the work near-linear.
const MAX_FALSE_PAIRS_PER_RECORD: f64 = 4.0;
/// Below this many sample rows collision rates say too little to filter rules.
const MIN_ROWS_TO_FILTER: usize = 50;
/// All chosen rules together pair each record with at most this many other people's.
/// Where names are common (a German file where one surname in twenty is Müller) a
/// budget of six left out the names-only rule and, with it, every duplicate whose birth
/// year was mistyped; ten keeps it and stays near-linear.
const MAX_TOTAL_FALSE_PAIRS_PER_RECORD: f64 = 10.0;
/// Work of one more rule (building its blocks), in false pairs per record, so that among
/// nearly free rules the one catching more duplicates wins.
const RULE_OVERHEAD: f64 = 0.5;
/// Chance that a present value is entered without error in a duplicate: a guess, which
/// only ranks rules (rules over error-prone columns need backing by others).
const SURVIVAL: f64 = 0.8;
/// A rule must catch at least this share of duplicates per false pair per record it costs.
const MIN_RECALL_PER_WORK: f64 = 2e-5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Role {
    GivenName,
    Surname,
    FullName,
    Email,
    Phone,
    Date,
    Postcode,
    StreetNumber,
    Address,
    City,
    Region,
    /// A birth date's year in a column of its own.
    Year,
    /// Its month or day, in a file that has a year column.
    DayOrMonth,
    Category,
    Identifier,
    Number,
    Text,
}

impl Role {
    fn comparison(self) -> Comparison {
        let jaro_winkler = |phonetic| Comparison::JaroWinkler { thresholds: vec![0.92, 0.8], phonetic };
        match self {
            Role::GivenName | Role::Surname => jaro_winkler(true),
            Role::FullName | Role::Address | Role::City | Role::Text => jaro_winkler(false),
            Role::Email | Role::Phone | Role::Postcode | Role::Identifier => Comparison::Levenshtein { thresholds: vec![1, 2] },
            Role::StreetNumber => Comparison::Levenshtein { thresholds: vec![1] },
            Role::Date => Comparison::Date { within_days: 31 },
            // a mistyped digit of a year is common; a month or day off by one is another day
            Role::Year => Comparison::Levenshtein { thresholds: vec![1] },
            Role::DayOrMonth => Comparison::Exact,
            Role::Region | Role::Category => Comparison::Exact,
            Role::Number => Comparison::Numeric { thresholds: vec![0.01, 0.1], relative: true },
        }
    }

    /// What one person holds and their relatives do not: a household shares a surname, an
    /// address, often a mailbox and a phone, but not a first name, birth date or id number.
    fn is_personal(self) -> bool {
        matches!(self, Role::GivenName | Role::FullName | Role::Date | Role::Year | Role::DayOrMonth | Role::Identifier)
    }

    /// What the members of a household usually have in common.
    fn is_shared_by_household(self) -> bool {
        matches!(
            self,
            Role::Surname | Role::Email | Role::Phone | Role::Postcode | Role::StreetNumber | Role::Address | Role::City | Role::Region
        )
    }

    /// Common values of names and places say less than rare ones.
    fn term_frequency_adjusted(self) -> bool {
        matches!(self, Role::GivenName | Role::Surname | Role::FullName | Role::City)
    }
}

fn role_from_name(header: &str) -> Option<Role> {
    let words = header_words(header);
    let has = |options: &[&str]| words.iter().any(|w| options.contains(&w.as_str()));
    let joined = words.concat();
    let role = if has(&["email", "mail", "e-mail"]) || joined.contains("email") {
        Role::Email
    } else if has(&["phone", "mobile", "tel", "telephone", "cell", "fax"]) || joined.contains("phone") {
        Role::Phone
    } else if has(&["yob"]) || (has(&["dob", "birth", "born"]) && has(&["year", "yr"])) {
        Role::Year
    } else if has(&["dob", "birth", "born"]) && has(&["month", "day", "mon", "dd", "mm"]) {
        Role::DayOrMonth
    } else if has(&["dob", "birth", "birthday", "birthdate", "born", "date"]) {
        Role::Date
    } else if has(&["first", "given", "fname", "forename", "firstname", "givenname"]) {
        Role::GivenName
    } else if has(&["last", "surname", "family", "lname", "lastname", "familyname"]) {
        Role::Surname
    } else if has(&["postcode", "zip", "zipcode", "postal", "plz", "postalcode"]) {
        Role::Postcode
    } else if (has(&["street", "house", "building"]) && has(&["number", "no", "num", "nr"])) || has(&["housenumber", "streetnumber"]) {
        Role::StreetNumber
    } else if has(&["address", "addr", "street", "line"]) {
        Role::Address
    } else if has(&["city", "suburb", "town", "locality", "municipality", "village"]) {
        Role::City
    } else if has(&["state", "province", "region", "county", "country"]) {
        Role::Region
    } else if has(&["gender", "sex", "title", "salutation"]) {
        Role::Category
    } else if has(&["name", "fullname", "customer", "person"]) {
        Role::FullName
    } else if has(&["id", "ssn", "soc", "sec", "passport", "account", "number", "no", "nr", "identifier"]) {
        Role::Identifier
    } else {
        return None;
    };
    Some(role)
}

fn role_from_values(values: &[&str]) -> Role {
    let share = |test: &dyn Fn(&str) -> bool| values.iter().filter(|v| test(v)).count() as f64 / values.len() as f64;
    let digits_only = |v: &str| v.chars().all(|c| c.is_ascii_digit() || " -+()".contains(c));
    if share(&|v| v.contains('@')) > 0.5 {
        Role::Email
    } else if share(&|v| parse_date(v).is_some()) > 0.8 {
        Role::Date
    } else if share(&|v| v.len() == 4 && v.parse::<u16>().is_ok_and(|year| (1800..=2100).contains(&year))) >= 0.95 {
        Role::Year
    } else if share(&|v| digits_only(v) && v.chars().filter(char::is_ascii_digit).count() >= 6) > 0.8 {
        Role::Identifier
    } else if share(&|v| v.parse::<f64>().is_ok()) > 0.8 {
        Role::Number
    } else {
        Role::Text
    }
}

/// Guesses a configuration from headers and sample rows; `id_column` names the record
/// key, which is not compared, and `total_rows` is about how many rows the whole file has
/// (blocking rules must stay selective at that size).
pub fn infer_config<H: AsRef<str>, S: AsRef<str>, R: AsRef<[S]>>(
    headers: &[H],
    sample_rows: &[R],
    id_column: &str,
    total_rows: usize,
) -> Result<MatchConfig, MatchError> {
    let mut columns: Vec<(String, Role, Vec<String>)> = Vec::new();
    for (index, header) in headers.iter().enumerate() {
        let name = header.as_ref().trim();
        if name == id_column {
            continue;
        }
        let values: Vec<String> = sample_rows
            .iter()
            .map(|row| {
                let raw = row.as_ref().get(index).map_or("", |v| v.as_ref());
                normalize_value(raw).map(|v| v.into_owned()).unwrap_or_default()
            })
            .collect();
        let present: Vec<&str> = values.iter().map(String::as_str).filter(|v| !v.is_empty()).collect();
        let distinct: std::collections::HashSet<&str> = present.iter().copied().collect();
        let average_length = present.iter().map(|v| v.len()).sum::<usize>() as f64 / present.len().max(1) as f64;
        // empty, constant and free-text columns carry no identity
        if distinct.len() < 2 || average_length > 60.0 {
            continue;
        }
        let role = role_from_name(name).unwrap_or_else(|| role_from_values(&present));
        columns.push((name.to_string(), role, values));
    }
    if columns.is_empty() {
        return Err(MatchError::Config("no column to compare: every column besides the id is empty, constant or free text".into()));
    }
    // beside a year column, the month and day of the same date: two columns of small whole
    // numbers, one within 1..=12 and one reaching past it. Typos put a few values out of
    // range (0, 92), so most rather than all; anything else (a rating, a flat number, a
    // third such column) stays a number.
    if columns.iter().any(|(_, role, _)| *role == Role::Year) {
        let share_within = |values: &[String], last: u8| {
            let present = values.iter().filter(|v| !v.is_empty()).count().max(1);
            values.iter().filter(|v| v.parse::<u8>().is_ok_and(|n| (1..=last).contains(&n))).count() as f64 / present as f64
        };
        let small: Vec<usize> =
            (0..columns.len()).filter(|&c| columns[c].1 == Role::Number && share_within(&columns[c].2, 31) >= 0.95).collect();
        if let [a, b] = small[..] {
            let month_like = |c: usize| share_within(&columns[c].2, 12) >= 0.95;
            if month_like(a) != month_like(b) {
                columns[a].1 = Role::DayOrMonth;
                columns[b].1 = Role::DayOrMonth;
            }
        }
    }
    // the most telling roles first, if there are more columns than a pattern can hold
    columns.sort_by_key(|(_, role, _)| *role as usize);
    columns.truncate(MAX_FIELDS);

    let mut fields: Vec<FieldConfig> = columns
        .iter()
        .map(|(name, role, _)| FieldConfig {
            column: name.clone(),
            comparison: role.comparison(),
            tf_adjust: role.term_frequency_adjusted(),
            swap_with: None,
        })
        .collect();
    // given name and surname, and two address lines, are often entered the wrong way round
    let role_of = |field: &FieldConfig| columns.iter().find(|(n, _, _)| *n == field.column).map(|c| c.1);
    for (a, b) in [(Role::GivenName, Role::Surname), (Role::Address, Role::Address)] {
        let of_role: Vec<usize> = (0..fields.len()).filter(|&i| role_of(&fields[i]) == Some(a) || role_of(&fields[i]) == Some(b)).collect();
        if let [first, second] = of_role.as_slice() {
            fields[*first].swap_with = Some(fields[*second].column.clone());
        }
    }

    let blocking = choose_blocking_rules(&columns, sample_rows.len(), total_rows);
    // EM learns from a rule's pairs what matches look like. Pairs that share only what a
    // household shares (a surname, an address, a mailbox, a phone) are mostly relatives,
    // and EM would learn that matches often differ in first name and birth date; so it
    // trains on rules that include something a person does not share with relatives.
    let personal = |rule: &Vec<String>| rule.iter().any(|c| columns.iter().any(|(n, role, _)| n == c && role.is_personal()));
    let training: Vec<Vec<String>> = blocking.iter().filter(|rule| personal(rule)).cloned().collect();
    let to_rule =
        |columns: Vec<String>| BlockingRule(columns.into_iter().map(|column| KeyExpr { column, transform: Transform::Value }).collect());
    let training_rules =
        if training.is_empty() || training.len() == blocking.len() { Vec::new() } else { training.into_iter().map(to_rule).collect() };
    // relatives share these, so among them agreement on one comes with agreement on all
    let household: Vec<String> =
        fields.iter().filter(|f| role_of(f).is_some_and(Role::is_shared_by_household)).map(|f| f.column.clone()).collect();
    let dependent_fields = (household.len() > 1).then(|| vec![household]);
    let mut config = MatchConfig {
        // With calibrated probabilities the F1-best threshold is near half the best F1
        // (about 0.5); 0.7 leans to precision, since an over-merge shows one customer's
        // data to another, and was best or within 0.001 of best on every file measured.
        threshold: 0.7,
        unique_columns: Vec::new(),
        max_block_size: 1000,
        blocking: blocking.into_iter().map(to_rule).collect(),
        training_rules,
        training: TrainingConfig::default(),
        prior: PriorConfig::default(),
        dependent_fields,
        cluster_linkage_check: true,
        override_limits_at: 0.999_999,
        fields,
    };
    config.validate()?;
    Ok(config)
}

/// Chooses blocking rules: every column alone and every pair of columns is a candidate,
/// those too unselective for the file's size are dropped, and the rest are taken greedily
/// by how many more duplicates they would catch per unit of work.
///
/// A duplicate is caught when some rule's columns all survived data entry unchanged. With
/// each column surviving independently (with its present share times `SURVIVAL`), the
/// share of duplicates a set of rules misses is the probability mass of the sets of
/// surviving columns that contain no rule; each greedy step removes the most mass per
/// false pair it adds. Hand-picked role pairs miss duplicates whose surviving columns are
/// an unusual pair (house number and street when the name, birth date and postcode all
/// have typos), which is what many-error records in real files look like.
fn choose_blocking_rules(columns: &[(String, Role, Vec<String>)], sample_len: usize, total_rows: usize) -> Vec<Vec<String>> {
    let rows = total_rows.max(sample_len).max(1) as f64;
    let mut candidates: Vec<Vec<usize>> = (0..columns.len()).map(|c| vec![c]).collect();
    for a in 0..columns.len() {
        candidates.extend((a + 1..columns.len()).map(|b| vec![a, b]));
    }
    let names = |rule: &[usize]| -> Vec<String> { rule.iter().map(|&c| columns[c].0.clone()).collect() };
    // false pairs per record each rule would add at full size
    let mut costs: Vec<(Vec<usize>, f64)> = candidates
        .into_iter()
        .map(|rule| {
            let cost = different_people_collision_rate(columns, &names(&rule)) * rows;
            (rule, cost)
        })
        .collect();
    if sample_len >= MIN_ROWS_TO_FILTER {
        costs.retain(|(_, cost)| *cost <= MAX_FALSE_PAIRS_PER_RECORD);
    } else {
        // too few rows to measure selectivity: no single column but those that name a person
        costs.retain(|(rule, _)| rule.len() == 2 || matches!(columns[rule[0]].1, Role::Email | Role::Phone | Role::Identifier));
    }
    if costs.is_empty() {
        // nothing selective enough: fall back to the most selective single columns
        let mut singles: Vec<(f64, usize)> =
            (0..columns.len()).map(|c| (different_people_collision_rate(columns, &names(&[c])), c)).collect();
        singles.sort_by(|a, b| a.0.total_cmp(&b.0));
        return singles.into_iter().take(2).map(|(_, c)| names(&[c])).collect();
    }

    // the columns some candidate uses, as bits of a survival set
    let mut used: Vec<usize> = costs.iter().flat_map(|(rule, _)| rule.iter().copied()).collect();
    used.sort_unstable();
    used.dedup();
    let bit = |column: usize| 1usize << used.iter().position(|&u| u == column).expect("used column");
    let survival: Vec<f64> = used
        .iter()
        .map(|&c| {
            let values = &columns[c].2;
            SURVIVAL * values.iter().filter(|v| !v.is_empty()).count() as f64 / values.len().max(1) as f64
        })
        .collect();
    // probability of each set of surviving columns that no chosen rule covers yet
    let mut uncovered: Vec<f64> = (0..1usize << used.len())
        .map(|set| survival.iter().enumerate().map(|(i, s)| if set >> i & 1 == 1 { *s } else { 1.0 - s }).product())
        .collect();
    let mut chosen: Vec<usize> = Vec::new();
    let mut spent = 0.0;
    let mut remaining: Vec<(usize, f64)> = costs.iter().map(|(rule, cost)| (rule.iter().map(|&c| bit(c)).sum(), *cost)).collect();
    loop {
        let gain = |mask: usize| -> f64 { uncovered.iter().enumerate().filter(|(set, _)| set & mask == mask).map(|(_, p)| p).sum() };
        let best = remaining
            .iter()
            .enumerate()
            .filter(|(_, (_, cost))| spent + cost <= MAX_TOTAL_FALSE_PAIRS_PER_RECORD)
            .map(|(i, &(mask, cost))| (i, gain(mask) / (cost + RULE_OVERHEAD)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((index, value)) = best else { break };
        if value < MIN_RECALL_PER_WORK {
            break;
        }
        let (mask, cost) = remaining.swap_remove(index);
        for (set, p) in uncovered.iter_mut().enumerate() {
            if set & mask == mask {
                *p = 0.0;
            }
        }
        spent += cost;
        chosen.push(mask);
    }
    // a rule whose columns include a chosen rule's only finds pairs that one already has
    let redundant = |mask: usize| chosen.iter().any(|&other| other != mask && other & mask == other);
    chosen
        .iter()
        .filter(|&&mask| !redundant(mask))
        .map(|&mask| used.iter().enumerate().filter(|(i, _)| mask >> i & 1 == 1).map(|(_, &c)| columns[c].0.clone()).collect())
        .collect()
}

/// Share of sample pairs that share the rule's key although they look like different
/// people (they agree on less than a third of the other columns). Duplicates are left out because any
/// useful rule puts them together, and a file with many duplicates would otherwise make
/// every rule look unselective.
fn different_people_collision_rate(columns: &[(String, Role, Vec<String>)], rule: &[String]) -> f64 {
    let in_rule: Vec<bool> = columns.iter().map(|(n, _, _)| rule.contains(n)).collect();
    let rows = columns.first().map_or(0, |c| c.2.len());
    let mut blocks: FxHashMap<Vec<&str>, Vec<usize>> = FxHashMap::default();
    for row in 0..rows {
        let key: Vec<&str> =
            columns.iter().zip(&in_rule).filter(|(_, &used)| used).map(|((_, _, values), _)| values[row].as_str()).collect();
        if key.iter().all(|v| !v.is_empty()) {
            blocks.entry(key).or_default().push(row);
        }
    }
    let looks_different = |a: usize, b: usize| {
        let (mut agree, mut compared) = (0, 0);
        for ((_, _, values), _) in columns.iter().zip(&in_rule).filter(|(_, &used)| !used) {
            if !values[a].is_empty() && !values[b].is_empty() {
                compared += 1;
                agree += usize::from(values[a] == values[b]);
            }
        }
        3 * agree < compared
    };
    let mut different = 0u64;
    for block in blocks.values() {
        for (i, &a) in block.iter().enumerate() {
            different += block[i + 1..].iter().filter(|&&b| looks_different(a, b)).count() as u64;
        }
    }
    let n = rows as f64;
    different as f64 / (n * (n - 1.0) / 2.0).max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_header_words() {
        assert_eq!(header_words("firstName"), ["first", "name"]);
        assert_eq!(header_words("date_of_birth"), ["date", "of", "birth"]);
        assert_eq!(header_words("Address Line 1"), ["address", "line"]);
        assert_eq!(header_words("customer.email"), ["customer", "email"]);
    }

    #[test]
    fn roles_from_names_and_values() {
        assert_eq!(role_from_name("given_name"), Some(Role::GivenName));
        assert_eq!(role_from_name("LastName"), Some(Role::Surname));
        assert_eq!(role_from_name("customer_name"), Some(Role::FullName));
        assert_eq!(role_from_name("E-Mail"), Some(Role::Email));
        assert_eq!(role_from_name("zip"), Some(Role::Postcode));
        assert_eq!(role_from_name("street_number"), Some(Role::StreetNumber));
        assert_eq!(role_from_name("address_1"), Some(Role::Address));
        assert_eq!(role_from_name("soc_sec_id"), Some(Role::Identifier));
        assert_eq!(role_from_name("favourite_colour"), None);
        assert_eq!(role_from_values(&["a@b.com", "c@d.org"]), Role::Email);
        assert_eq!(role_from_values(&["1990-01-02", "2001-12-31"]), Role::Date);
        assert_eq!(role_from_values(&["12.5", "3"]), Role::Number);
        assert_eq!(role_from_values(&["1967", "2003"]), Role::Year);
        assert_eq!(role_from_name("birth_year"), Some(Role::Year));
        assert_eq!(role_from_name("dob_month"), Some(Role::DayOrMonth));
        assert_eq!(role_from_name("birthday"), Some(Role::Date));
        assert_eq!(role_from_values(&["red", "blue"]), Role::Text);
    }
}
