//! Per-field comparisons: each turns two values into a comparison level.
//!
//! Level 0 always means "one side is missing" and carries weight 0, level 1 is "else"
//! (nothing similar), and higher levels are increasingly strong agreement up to "exact".
//! Levels are evaluated from the strongest down and the first that holds wins.

use serde::{Deserialize, Serialize};

use crate::dataset::{NULL_ID, UNKNOWN_ID};

/// Level of a pair where at least one value is missing.
pub const NULL_LEVEL: u8 = 0;
/// Level of a pair whose values are present but agree on nothing the comparison looks for.
pub const ELSE_LEVEL: u8 = 1;

/// How one field of two records is compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Comparison {
    /// Equal or not.
    Exact,
    /// Jaro-Winkler similarity bands (descending thresholds, e.g. `[0.92, 0.8]`), and
    /// optionally a level for equal Double Metaphone codes ("Catherine" / "Kathryn").
    JaroWinkler {
        thresholds: Vec<f64>,
        #[serde(default, skip_serializing_if = "is_false")]
        phonetic: bool,
    },
    /// Edit-distance bands (ascending maximum distances, e.g. `[1, 2]`).
    Levenshtein { thresholds: Vec<u32> },
    /// Dates: exact, day and month swapped, one digit off, within `within_days`, same year.
    Date {
        #[serde(default = "default_within_days")]
        within_days: u32,
    },
    /// Numbers within ascending absolute (or, if `relative`, fractional) differences.
    Numeric {
        thresholds: Vec<f64>,
        #[serde(default, skip_serializing_if = "is_false")]
        relative: bool,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_within_days() -> u32 {
    31
}

/// A value as a comparison sees it: its dictionary id (for a cheap exact test), its text,
/// and a precomputed feature (see [`Comparison::feature`]).
#[derive(Debug, Clone, Copy)]
pub struct Value<'a> {
    pub id: u32,
    pub text: &'a str,
    pub feature: u64,
}

impl<'a> Value<'a> {
    /// A value outside any dictionary, e.g. in a unit test or a new record.
    pub fn new(comparison: &Comparison, text: &'a str) -> Self {
        Value { id: if text.is_empty() { NULL_ID } else { UNKNOWN_ID }, text, feature: comparison.feature(text) }
    }

    fn is_null(&self) -> bool {
        self.id == NULL_ID || self.text.is_empty()
    }

    fn same_as(&self, other: &Value) -> bool {
        if self.id != UNKNOWN_ID && other.id != UNKNOWN_ID {
            self.id == other.id
        } else {
            self.text == other.text
        }
    }
}

/// Feature meaning "no parsed number" (a NaN bit pattern `str::parse` never yields).
const NO_NUMBER: u64 = u64::MAX;

impl Comparison {
    /// Labels of the levels, indexed by level.
    pub fn level_labels(&self) -> Vec<String> {
        let mut labels = vec!["null".to_string(), "else".to_string()];
        match self {
            Comparison::Exact => {}
            Comparison::JaroWinkler { thresholds, phonetic } => {
                let mut ascending = thresholds.clone();
                ascending.sort_by(f64::total_cmp);
                for (i, t) in ascending.iter().enumerate() {
                    if *phonetic && i + 1 == ascending.len() {
                        labels.push("phonetic".into());
                    }
                    labels.push(format!("jaro_winkler >= {t}"));
                }
                if *phonetic && ascending.is_empty() {
                    labels.push("phonetic".into());
                }
            }
            Comparison::Levenshtein { thresholds } => {
                let mut descending = thresholds.clone();
                descending.sort_by(|a, b| b.cmp(a));
                labels.extend(descending.iter().map(|t| format!("levenshtein <= {t}")));
            }
            Comparison::Date { within_days } => {
                labels.push("same year".into());
                labels.push(format!("within {within_days} days"));
                labels.push("one digit off".into());
                labels.push("day and month swapped".into());
            }
            Comparison::Numeric { thresholds, relative } => {
                let mut descending = thresholds.clone();
                descending.sort_by(|a, b| b.total_cmp(a));
                for t in descending {
                    labels.push(if *relative { format!("within {}%", t * 100.0) } else { format!("within {t}") });
                }
            }
        }
        labels.push("exact".into());
        labels
    }

    pub fn level_count(&self) -> usize {
        self.level_labels().len()
    }

    /// What is worth computing once per distinct value: a phonetic code hash, a packed
    /// date (`yyyymmdd`), or a number's bits. Zero when the comparison needs nothing.
    pub fn feature(&self, text: &str) -> u64 {
        match self {
            Comparison::JaroWinkler { phonetic: true, .. } => phonetic_hash(text),
            Comparison::Date { .. } => parse_date(text).map_or(0, |d| d.packed()),
            Comparison::Numeric { .. } => parse_number(text).map_or(NO_NUMBER, f64::to_bits),
            _ => 0,
        }
    }

    /// Compares two values and returns their level.
    pub fn level(&self, a: &Value, b: &Value) -> u8 {
        if a.is_null() || b.is_null() {
            return NULL_LEVEL;
        }
        let exact = self.exact_level();
        if a.same_as(b) {
            return exact;
        }
        // the same date or number written differently is still exact
        let same_feature = a.feature == b.feature && a.feature != 0 && a.feature != NO_NUMBER;
        if same_feature && matches!(self, Comparison::Date { .. } | Comparison::Numeric { .. }) {
            return exact;
        }
        match self {
            Comparison::Exact => ELSE_LEVEL,
            Comparison::JaroWinkler { thresholds, phonetic } => {
                // thresholds are validated to be descending; level just below exact first
                let similarity = jaro_winkler(clipped(a.text), clipped(b.text));
                let mut level = exact;
                for (i, t) in thresholds.iter().enumerate() {
                    level -= 1;
                    if similarity >= *t {
                        return level;
                    }
                    if *phonetic && i == 0 {
                        level -= 1;
                        if a.feature != 0 && a.feature == b.feature {
                            return level;
                        }
                    }
                }
                if *phonetic && thresholds.is_empty() && a.feature != 0 && a.feature == b.feature {
                    return exact - 1;
                }
                ELSE_LEVEL
            }
            Comparison::Levenshtein { thresholds } => {
                let max = *thresholds.last().unwrap_or(&0) as usize;
                match levenshtein_within(clipped(a.text), clipped(b.text), max) {
                    None => ELSE_LEVEL,
                    Some(distance) => {
                        let band =
                            thresholds.iter().position(|t| distance <= *t as usize).expect("distance is within the largest threshold");
                        exact - 1 - band as u8
                    }
                }
            }
            Comparison::Date { within_days } => date_level(a, b, *within_days),
            Comparison::Numeric { thresholds, relative } => {
                if a.feature == NO_NUMBER || b.feature == NO_NUMBER {
                    return ELSE_LEVEL;
                }
                let (x, y) = (f64::from_bits(a.feature), f64::from_bits(b.feature));
                let mut difference = (x - y).abs();
                if *relative {
                    difference /= x.abs().max(y.abs()).max(f64::MIN_POSITIVE);
                }
                match thresholds.iter().position(|t| difference <= *t) {
                    Some(band) => exact - 1 - band as u8,
                    None => ELSE_LEVEL,
                }
            }
        }
    }

    /// The level that means exact agreement (always the highest).
    pub fn exact_level(&self) -> u8 {
        let middle = match self {
            Comparison::Exact => 0,
            Comparison::JaroWinkler { thresholds, phonetic } => thresholds.len() + usize::from(*phonetic),
            Comparison::Levenshtein { thresholds } => thresholds.len(),
            Comparison::Date { .. } => 4,
            Comparison::Numeric { thresholds, .. } => thresholds.len(),
        };
        (middle + 2) as u8
    }

    /// Puts thresholds in evaluation order and rejects settings that cannot work.
    pub fn validate(&mut self) -> Result<(), String> {
        match self {
            Comparison::JaroWinkler { thresholds, .. } => {
                thresholds.sort_by(|a, b| b.total_cmp(a));
                if thresholds.iter().any(|t| !(0.0..=1.0).contains(t)) {
                    return Err("jaro_winkler thresholds must be between 0 and 1".into());
                }
            }
            Comparison::Levenshtein { thresholds } => {
                thresholds.sort();
                thresholds.dedup();
                if thresholds.is_empty() || thresholds[0] == 0 {
                    return Err("levenshtein needs thresholds of at least 1".into());
                }
            }
            Comparison::Numeric { thresholds, .. } => {
                thresholds.sort_by(f64::total_cmp);
                if thresholds.is_empty() || thresholds.iter().any(|t| *t < 0.0 || t.is_nan()) {
                    return Err("numeric needs non-negative thresholds".into());
                }
            }
            Comparison::Exact | Comparison::Date { .. } => {}
        }
        if self.level_count() > 15 {
            return Err("a comparison may have at most 15 levels".into());
        }
        Ok(())
    }
}

/// The sound of a name, or of the name it is a short form of ("Liz" sounds as "Elizabeth").
fn phonetic_hash(text: &str) -> u64 {
    let text = crate::nicknames::group_of(text).unwrap_or(text);
    let code = crate::blocking::metaphone(text).unwrap_or_default();
    if code.is_empty() {
        0
    } else {
        crate::blocking::hash_str(&code)
    }
}

fn date_level(a: &Value, b: &Value, within_days: u32) -> u8 {
    const SAME_YEAR: u8 = 2;
    const WITHIN_DAYS: u8 = 3;
    const ONE_DIGIT_OFF: u8 = 4;
    const SWAPPED: u8 = 5;
    let (da, db) = (Date::unpack(a.feature), Date::unpack(b.feature));
    if let (Some(x), Some(y)) = (da, db) {
        if x.year == y.year && x.month == y.day && x.day == y.month {
            return SWAPPED;
        }
    }
    let (ta, tb) = (DateDigits::new(a, da), DateDigits::new(b, db));
    if !ta.as_str().is_empty() && levenshtein_within(ta.as_str(), tb.as_str(), 1).is_some() {
        return ONE_DIGIT_OFF;
    }
    match (da, db) {
        (Some(x), Some(y)) if x.days_since_epoch().abs_diff(y.days_since_epoch()) <= within_days as u64 => WITHIN_DAYS,
        (Some(x), Some(y)) if x.year == y.year => SAME_YEAR,
        _ => ELSE_LEVEL,
    }
}

/// The digits of a date (`yyyymmdd` when it parses), on the stack: this runs per pair.
struct DateDigits {
    digits: [u8; 16],
    len: usize,
}

impl DateDigits {
    fn new(value: &Value, parsed: Option<Date>) -> Self {
        let mut out = DateDigits { digits: [0; 16], len: 0 };
        match parsed {
            Some(d) => {
                let mut packed = d.packed();
                out.len = 8;
                for slot in out.digits[..8].iter_mut().rev() {
                    *slot = b'0' + (packed % 10) as u8;
                    packed /= 10;
                }
            }
            None => {
                for digit in value.text.bytes().filter(u8::is_ascii_digit).take(16) {
                    out.digits[out.len] = digit;
                    out.len += 1;
                }
            }
        }
        out
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.digits[..self.len]).expect("ASCII digits")
    }
}

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl Date {
    fn packed(self) -> u64 {
        (self.year as u64) * 10_000 + (self.month as u64) * 100 + self.day as u64
    }

    fn unpack(packed: u64) -> Option<Date> {
        (packed != 0).then_some(Date { year: (packed / 10_000) as i32, month: (packed / 100 % 100) as u32, day: (packed % 100) as u32 })
    }

    /// Days since 1970-01-01 (Howard Hinnant's civil-from-days inverse).
    fn days_since_epoch(self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }
}

/// Parses `yyyymmdd`, `yyyy-mm-dd` (any separator) and day-first `dd/mm/yyyy`.
pub fn parse_date(text: &str) -> Option<Date> {
    let parts: Vec<&str> = text.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).collect();
    let (year, month, day) = match parts.as_slice() {
        [compact] if compact.len() == 8 => (&compact[0..4], &compact[4..6], &compact[6..8]),
        [y, m, d] if y.len() == 4 => (*y, *m, *d),
        [d, m, y] if y.len() == 4 => (*y, *m, *d),
        _ => return None,
    };
    let date = Date { year: year.parse().ok()?, month: month.parse().ok()?, day: day.parse().ok()? };
    let leap = date.year % 4 == 0 && (date.year % 100 != 0 || date.year % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let valid = (1..=12).contains(&date.month) && date.day >= 1 && date.day <= month_days[date.month as usize - 1];
    valid.then_some(date)
}

fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Similarity of two values looks at this many characters at most: names and addresses
/// fit, and a pasted essay cannot make one comparison quadratic in its length.
const MAX_COMPARED_CHARS: usize = 100;

fn clipped(text: &str) -> &str {
    match text.char_indices().nth(MAX_COMPARED_CHARS) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// Jaro-Winkler similarity (prefix scale 0.1, boost above 0.7), with an allocation-free
/// path for short ASCII strings; agrees with `strsim::jaro_winkler`.
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() > 64 || b.len() > 64 || !a.is_ascii() || !b.is_ascii() {
        let (a, b) = (std::str::from_utf8(a), std::str::from_utf8(b));
        return strsim::jaro_winkler(a.unwrap_or_default(), b.unwrap_or_default());
    }
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let range = (a.len().max(b.len()) / 2).saturating_sub(1);
    let (mut a_matched, mut b_matched) = (0u64, 0u64);
    let mut matches = 0usize;
    for (i, &ca) in a.iter().enumerate() {
        let lo = i.saturating_sub(range);
        let hi = (i + range + 1).min(b.len());
        for (j, &cb) in b.iter().enumerate().take(hi).skip(lo) {
            if b_matched & (1 << j) == 0 && cb == ca {
                a_matched |= 1 << i;
                b_matched |= 1 << j;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let mut transpositions = 0usize;
    let mut j = 0usize;
    for (i, &ca) in a.iter().enumerate() {
        if a_matched & (1 << i) != 0 {
            while b_matched & (1 << j) == 0 {
                j += 1;
            }
            if ca != b[j] {
                transpositions += 1;
            }
            j += 1;
        }
    }
    let m = matches as f64;
    let jaro = (m / a.len() as f64 + m / b.len() as f64 + (m - (transpositions / 2) as f64) / m) / 3.0;
    if jaro <= 0.7 {
        return jaro;
    }
    let prefix = a.iter().zip(b).take(4).take_while(|(x, y)| x == y).count();
    jaro + 0.1 * prefix as f64 * (1.0 - jaro)
}

/// Levenshtein distance if it is at most `max`, else `None`; cheap rejection on length.
pub fn levenshtein_within(a: &str, b: &str, max: usize) -> Option<usize> {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len().abs_diff(b.len()) > max {
        // even multi-byte characters cannot make the char distance smaller than this
        // once both are ASCII; for non-ASCII fall through to the exact computation
        if a.is_ascii() && b.is_ascii() {
            return None;
        }
    }
    let distance = if a.is_ascii() && b.is_ascii() && b.len() < 64 {
        let mut row = [0usize; 64];
        for (j, cell) in row.iter_mut().enumerate().take(b.len() + 1) {
            *cell = j;
        }
        for (i, &ca) in a.iter().enumerate() {
            let mut diagonal = row[0];
            row[0] = i + 1;
            let mut row_min = row[0];
            for j in 0..b.len() {
                let above = row[j + 1];
                row[j + 1] = (diagonal + usize::from(ca != b[j])).min(above + 1).min(row[j] + 1);
                diagonal = above;
                row_min = row_min.min(row[j + 1]);
            }
            if row_min > max {
                return None;
            }
        }
        row[b.len()]
    } else {
        let (a, b) = (std::str::from_utf8(a), std::str::from_utf8(b));
        strsim::levenshtein(a.unwrap_or_default(), b.unwrap_or_default())
    };
    (distance <= max).then_some(distance)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(comparison: &Comparison, a: &str, b: &str) -> String {
        let mut comparison = comparison.clone();
        comparison.validate().unwrap();
        let (va, vb) = (Value::new(&comparison, a), Value::new(&comparison, b));
        comparison.level_labels()[comparison.level(&va, &vb) as usize].clone()
    }

    #[test]
    fn exact_distinguishes_equal_different_and_missing() {
        let c = Comparison::Exact;
        assert_eq!(level(&c, "anna", "anna"), "exact");
        assert_eq!(level(&c, "anna", "anne"), "else");
        assert_eq!(level(&c, "anna", ""), "null");
        assert_eq!(level(&c, "", ""), "null");
    }

    #[test]
    fn jaro_winkler_bands_and_phonetic_level() {
        let c = Comparison::JaroWinkler { thresholds: vec![0.8, 0.92], phonetic: true };
        assert_eq!(c.level_labels(), ["null", "else", "jaro_winkler >= 0.8", "phonetic", "jaro_winkler >= 0.92", "exact"]);
        assert_eq!(level(&c, "jonathan", "jonathon"), "jaro_winkler >= 0.92");
        assert_eq!(level(&c, "jones", "johnson"), "jaro_winkler >= 0.8");
        // same sound, similarity under the top band: the phonetic level ranks above 0.8
        assert_eq!(level(&c, "smith", "smyth"), "phonetic");
        assert_eq!(level(&c, "catherine", "kathryn"), "phonetic");
        assert_eq!(level(&c, "liz", "elizabeth"), "phonetic", "a short form");
        assert_eq!(level(&c, "bill", "william"), "phonetic");
        assert_eq!(level(&c, "olivia", "moockiel"), "else");
        assert_eq!(level(&c, "smith", "brown"), "else");
        assert_eq!(level(&c, "smith", "smith"), "exact");
    }

    #[test]
    fn fast_jaro_winkler_agrees_with_strsim() {
        let words = [
            "martha",
            "marhta",
            "dwayne",
            "duane",
            "dixon",
            "dicksonx",
            "a",
            "ab",
            "",
            "abcdefghij",
            "jihgfedcba",
            "crate",
            "trace",
            "williams",
            "wiliams",
            "o'brien",
            "obrien",
        ];
        for a in words {
            for b in words {
                let (fast, reference) = (jaro_winkler(a, b), strsim::jaro_winkler(a, b));
                assert!((fast - reference).abs() < 1e-12, "{a} {b}: {fast} vs {reference}");
            }
        }
    }

    #[test]
    fn levenshtein_bands() {
        let c = Comparison::Levenshtein { thresholds: vec![2, 1] };
        assert_eq!(level(&c, "4011", "4011"), "exact");
        assert_eq!(level(&c, "4011", "4012"), "levenshtein <= 1");
        assert_eq!(level(&c, "4011", "4110"), "levenshtein <= 2");
        assert_eq!(level(&c, "4011", "9999"), "else");
        assert_eq!(levenshtein_within("kitten", "sitting", 3), Some(3));
        assert_eq!(levenshtein_within("kitten", "sitting", 2), None);
        assert_eq!(levenshtein_within("züge", "zuge", 1), Some(1));
    }

    #[test]
    fn date_levels() {
        let c = Comparison::Date { within_days: 31 };
        assert_eq!(level(&c, "19600210", "1960-02-10"), "exact");
        assert_eq!(level(&c, "19600210", "10/02/1960"), "exact");
        assert_eq!(level(&c, "19600210", "19601002"), "day and month swapped");
        assert_eq!(level(&c, "19600210", "19600216"), "one digit off");
        // an impossible date (month 13) still counts as a one-digit typo
        assert_eq!(level(&c, "19601210", "19601310"), "one digit off");
        assert_eq!(level(&c, "19600131", "19600225"), "within 31 days");
        assert_eq!(level(&c, "19600131", "19601125"), "same year");
        assert_eq!(level(&c, "19600131", "19781125"), "else");
        assert_eq!(level(&c, "", "19781125"), "null");
        assert_eq!(parse_date("29/02/2001"), None);
        assert_eq!(parse_date("29/02/2000"), Some(Date { year: 2000, month: 2, day: 29 }));
    }

    #[test]
    fn numeric_absolute_and_relative_bands() {
        let absolute = Comparison::Numeric { thresholds: vec![1.0, 5.0], relative: false };
        assert_eq!(level(&absolute, "10", "10.0"), "exact");
        assert_eq!(level(&absolute, "10", "10.5"), "within 1");
        assert_eq!(level(&absolute, "10", "10"), "exact");
        assert_eq!(level(&absolute, "10", "14"), "within 5");
        assert_eq!(level(&absolute, "10", "20"), "else");
        assert_eq!(level(&absolute, "10", "ten"), "else");
        let relative = Comparison::Numeric { thresholds: vec![0.1], relative: true };
        assert_eq!(level(&relative, "1000", "950"), "within 10%");
        assert_eq!(level(&relative, "1000", "800"), "else");
    }

    #[test]
    fn validation_rejects_unusable_settings() {
        let mut c = Comparison::Levenshtein { thresholds: vec![0] };
        assert!(c.validate().is_err());
        let mut c = Comparison::JaroWinkler { thresholds: vec![1.5], phonetic: false };
        assert!(c.validate().is_err());
    }
}
