//! Small helpers: dates without a date crate, phone formats, the mess people and systems
//! make of names and emails, and a minimal JSON line builder (fast enough for millions of
//! rows, and its field order is fixed, which keeps output byte-stable).

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

pub type Rng = ChaCha8Rng;

pub const DAY: i64 = 86_400;
/// 2022-01-01T00:00:00Z: the business opens.
pub const START: i64 = 1_640_995_200;
/// 2025-06-30T00:00:00Z: the day the data was exported. Nothing happens after it.
pub const END: i64 = 1_751_241_600;

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's civil_from_days.
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DD` of a Unix time.
pub fn date(ts: i64) -> String {
    let (y, m, d) = civil(ts.div_euclid(DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

/// RFC 3339 in UTC (`Z`), or in Australian Eastern Standard Time (`+10:00`) as a local
/// system would write it. Both denote the same instant.
pub fn rfc3339(ts: i64, aest: bool) -> String {
    let local = if aest { ts + 10 * 3600 } else { ts };
    let (y, m, d) = civil(local.div_euclid(DAY));
    let s = local.rem_euclid(DAY);
    let zone = if aest { "+10:00" } else { "Z" };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{zone}", s / 3600, s / 60 % 60, s % 60)
}

/// A time of day people are awake at (07:00-23:00 AEST), on the day of `ts`.
pub fn waking_time(rng: &mut Rng, ts: i64) -> i64 {
    let day_start = (ts + 10 * 3600).div_euclid(DAY) * DAY - 10 * 3600;
    day_start + rng.random_range(7 * 3600..23 * 3600)
}

/// A waking moment in `lo..hi`.
pub fn moment(rng: &mut Rng, lo: i64, hi: i64) -> i64 {
    let t = rng.random_range(lo..hi);
    waking_time(rng, t).clamp(lo, hi - 1)
}

/// Amount in cents as a decimal with two places.
pub fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Australian mobile prefixes `4AB` that libphonenumber accepts with six further digits
/// (its 2025 metadata); a number outside them would not normalise and so never join.
const MOBILE_PREFIXES: &[u32] = &[
    400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 419, 420, 421, 422, 423, 424, 425, 426,
    427, 428, 429, 430, 431, 432, 433, 434, 435, 436, 437, 438, 439, 460, 461, 462, 463, 464, 465, 466, 467, 468, 469, 440, 444, 447, 448,
    449, 450, 451, 452, 454, 455, 456, 457, 458, 459, 480, 481, 482, 484, 485, 486, 487, 488, 489, 470, 472, 473, 474, 475, 476, 477, 478,
    490, 491, 492, 493, 494, 497, 498, 499,
];
pub const MOBILE_SPACE: u64 = MOBILE_PREFIXES.len() as u64 * 1_000_000;
/// Odd, and divisible by neither 5 nor 89: coprime to `MOBILE_SPACE` (2^6 * 5^6 * 89), so
/// `i -> i * STRIDE + offset` is a permutation and no two people share a number.
const STRIDE: u64 = 61_803_397;

/// The nine-digit national number (without the trunk 0) of person `index`.
pub fn mobile(index: u64, offset: u64) -> u32 {
    let n = (index.wrapping_mul(STRIDE) + offset) % MOBILE_SPACE;
    MOBILE_PREFIXES[(n / 1_000_000) as usize] * 1_000_000 + (n % 1_000_000) as u32
}

/// A mobile number in one of the formats Australians and their systems write.
pub fn format_phone(nsn: u32, style: u8) -> String {
    let d = format!("{nsn:09}");
    match style % 5 {
        0 => format!("0{} {} {}", &d[..3], &d[3..6], &d[6..]),
        1 => format!("+61 {} {} {}", &d[..3], &d[3..6], &d[6..]),
        2 => format!("(0{}) {} {}", &d[..1], &d[1..5], &d[5..]),
        3 => format!("0{d}"),
        _ => format!("+61{d}"),
    }
}

pub fn random_phone(rng: &mut Rng, nsn: u32) -> String {
    format_phone(nsn, rng.random_range(0..5))
}

/// A keyboard slip: two letters swapped, one dropped or one doubled (never the first).
pub fn typo(rng: &mut Rng, s: &str) -> String {
    let mut c: Vec<char> = s.chars().collect();
    if c.len() < 4 {
        return s.to_string();
    }
    let i = rng.random_range(1..c.len() - 1);
    match rng.random_range(0..3) {
        0 => c.swap(i, i + 1),
        1 => {
            c.remove(i);
        }
        _ => c.insert(i, c[i]),
    }
    c.into_iter().collect()
}

/// How a person's email reaches a system: mostly as stored, sometimes capitalised the way
/// autocorrect does it, sometimes with stray whitespace from copy-paste.
pub fn messy_email(rng: &mut Rng, email: &str, case_rate: f64, space_rate: f64) -> String {
    let mut e = if rng.random_bool(case_rate) {
        match rng.random_range(0..3) {
            0 => email.to_uppercase(),
            1 => capitalise_words(email),
            _ => {
                let mut s = String::with_capacity(email.len());
                let mut chars = email.chars();
                s.extend(chars.next().map(|c| c.to_ascii_uppercase()));
                s.extend(chars);
                s
            }
        }
    } else {
        email.to_string()
    };
    if rng.random_bool(space_rate) {
        e = match rng.random_range(0..3) {
            0 => format!(" {e}"),
            1 => format!("{e} "),
            _ => format!("  {e}\t"),
        };
    }
    e
}

/// "robert.smith@gmail.com" -> "Robert.Smith@Gmail.com".
fn capitalise_words(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        out.push(if start { c.to_ascii_uppercase() } else { c });
        start = !c.is_ascii_alphanumeric();
    }
    out
}

/// Letters and digits only, lower case: the part of a name that can go into an email.
pub fn slug(s: &str) -> String {
    s.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// 64-bit FNV-1a: stable across platforms and Rust versions, used for uniqueness sets.
pub fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Index into weights, chosen proportionally.
pub fn weighted(rng: &mut Rng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut x = rng.random_range(0..total);
    for (i, &w) in weights.iter().enumerate() {
        if x < w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

pub fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// Writes one JSON object on one line, fields in call order.
pub struct Json {
    buf: String,
    first: bool,
}

impl Json {
    pub fn new() -> Self {
        Self { buf: String::with_capacity(256), first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.buf.push(',');
        }
        self.first = false;
        self.buf.push('"');
        self.buf.push_str(k);
        self.buf.push_str("\":");
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        escape_into(&mut self.buf, v);
        self
    }

    pub fn null(&mut self, k: &str) -> &mut Self {
        self.key(k);
        self.buf.push_str("null");
        self
    }

    /// A number or nested value already rendered as JSON.
    pub fn raw(&mut self, k: &str, json: &str) -> &mut Self {
        self.key(k);
        self.buf.push_str(json);
        self
    }

    pub fn finish(&mut self) -> String {
        let mut out = std::mem::take(&mut self.buf);
        out.insert(0, '{');
        out.push('}');
        out
    }
}

fn escape_into(buf: &mut String, s: &str) {
    buf.push('"');
    for c in s.chars() {
        match c {
            '"' => buf.push_str("\\\""),
            '\\' => buf.push_str("\\\\"),
            '\n' => buf.push_str("\\n"),
            '\t' => buf.push_str("\\t"),
            '\r' => buf.push_str("\\r"),
            c if (c as u32) < 0x20 => buf.push_str(&format!("\\u{:04x}", c as u32)),
            c => buf.push(c),
        }
    }
    buf.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(START, false), "2022-01-01T00:00:00Z");
        assert_eq!(rfc3339(END, false), "2025-06-30T00:00:00Z");
        assert_eq!(rfc3339(END - 1, true), "2025-06-30T09:59:59+10:00");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(-86_400), "1969-12-31");
    }

    #[test]
    fn phone_numbers_are_distinct_and_formatted() {
        fn gcd(a: u64, b: u64) -> u64 {
            if b == 0 { a } else { gcd(b, a % b) }
        }
        assert_eq!(gcd(STRIDE, MOBILE_SPACE), 1);
        assert_eq!(MOBILE_PREFIXES.len(), 89);
        let mut seen = std::collections::HashSet::new();
        for i in 0..100_000 {
            assert!(seen.insert(mobile(i, 12_345)));
        }
        let n = 412_345_678;
        let all: Vec<String> = (0..5).map(|s| format_phone(n, s)).collect();
        assert_eq!(all, ["0412 345 678", "+61 412 345 678", "(04) 1234 5678", "0412345678", "+61412345678"]);
    }

    #[test]
    fn json_escapes() {
        let line = Json::new().str("a", "O'Brien \"Bob\"\\").raw("n", "1.50").null("x").finish();
        assert_eq!(line, r#"{"a":"O'Brien \"Bob\"\\","n":1.50,"x":null}"#);
    }

    #[test]
    fn typos_change_the_word() {
        let mut rng = Rng::seed_from_u64(1);
        for _ in 0..100 {
            let t = typo(&mut rng, "Katherine");
            assert_ne!(t, "Katherine");
            assert!(t.starts_with('K'));
        }
    }
}
