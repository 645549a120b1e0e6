//! UTC calendar arithmetic in milliseconds since the Unix epoch: date literals, ISO-8601 text values and
//! duration units. Months and years have no fixed length, so durations stop at weeks.

use serde::{Deserialize, Serialize};

pub(crate) const SECOND_MS: i64 = 1_000;
pub(crate) const MINUTE_MS: i64 = 60 * SECOND_MS;
pub(crate) const HOUR_MS: i64 = 60 * MINUTE_MS;
pub(crate) const DAY_MS: i64 = 24 * HOUR_MS;
pub(crate) const WEEK_MS: i64 = 7 * DAY_MS;

/// The unit a duration literal was written in (`90 days`, `12 hours`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DurationUnit {
    Seconds,
    Minutes,
    Hours,
    Days,
    Weeks,
}

impl DurationUnit {
    /// The unit a word names, singular or plural (`day`, `days`).
    pub fn from_word(word: &str) -> Option<Self> {
        match word {
            "second" | "seconds" => Some(Self::Seconds),
            "minute" | "minutes" => Some(Self::Minutes),
            "hour" | "hours" => Some(Self::Hours),
            "day" | "days" => Some(Self::Days),
            "week" | "weeks" => Some(Self::Weeks),
            _ => None,
        }
    }

    pub fn milliseconds(self) -> i64 {
        match self {
            Self::Seconds => SECOND_MS,
            Self::Minutes => MINUTE_MS,
            Self::Hours => HOUR_MS,
            Self::Days => DAY_MS,
            Self::Weeks => WEEK_MS,
        }
    }

    pub(crate) fn word(self, singular: bool) -> &'static str {
        match (self, singular) {
            (Self::Seconds, true) => "second",
            (Self::Seconds, false) => "seconds",
            (Self::Minutes, true) => "minute",
            (Self::Minutes, false) => "minutes",
            (Self::Hours, true) => "hour",
            (Self::Hours, false) => "hours",
            (Self::Days, true) => "day",
            (Self::Days, false) => "days",
            (Self::Weeks, true) => "week",
            (Self::Weeks, false) => "weeks",
        }
    }
}

/// Parses `YYYY-MM-DD`, optionally followed by `T` (or a space) and `HH:MM[:SS[.fraction]]`, optionally
/// followed by `Z` or an offset `±HH:MM`. A value without an offset is UTC. Returns milliseconds since the
/// Unix epoch, or `None` when the text is not such a timestamp.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let mut cursor = Cursor { bytes: text.as_bytes(), position: 0 };
    let year = cursor.digits(4)?;
    cursor.expect(b'-')?;
    let month = cursor.digits(2)?;
    cursor.expect(b'-')?;
    let day = cursor.digits(2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let midnight = days_from_civil(year, month, day) * DAY_MS;
    if cursor.at_end() {
        return Some(midnight);
    }
    if !(cursor.eat(b'T') || cursor.eat(b't') || cursor.eat(b' ')) {
        return None;
    }
    let hour = cursor.digits(2).filter(|hour| *hour < 24)?;
    cursor.expect(b':')?;
    let minute = cursor.digits(2).filter(|minute| *minute < 60)?;
    let second = if cursor.eat(b':') { cursor.digits(2).filter(|second| *second < 60)? } else { 0 };
    let millisecond = if cursor.eat(b'.') { cursor.fraction_as_milliseconds()? } else { 0 };
    let offset = if cursor.at_end() || cursor.eat(b'Z') || cursor.eat(b'z') {
        0
    } else {
        let sign = if cursor.eat(b'+') {
            1
        } else {
            cursor.expect(b'-')?;
            -1
        };
        let offset_hours = cursor.digits(2).filter(|hours| *hours < 24)?;
        cursor.eat(b':');
        let offset_minutes = cursor.digits(2).filter(|minutes| *minutes < 60)?;
        sign * (offset_hours * HOUR_MS + offset_minutes * MINUTE_MS)
    };
    if !cursor.at_end() {
        return None;
    }
    Some(midnight + hour * HOUR_MS + minute * MINUTE_MS + second * SECOND_MS + millisecond - offset)
}

/// Formats milliseconds since the epoch as `YYYY-MM-DD` when the instant is a UTC midnight, otherwise as
/// `YYYY-MM-DDTHH:MM:SS[.mmm]Z`. [`parse_timestamp`] reads both back.
pub fn format_timestamp(milliseconds: i64) -> String {
    let days = milliseconds.div_euclid(DAY_MS);
    let within_day = milliseconds.rem_euclid(DAY_MS);
    let (year, month, day) = civil_from_days(days);
    let date = format!("{year:04}-{month:02}-{day:02}");
    if within_day == 0 {
        return date;
    }
    let hour = within_day / HOUR_MS;
    let minute = within_day % HOUR_MS / MINUTE_MS;
    let second = within_day % MINUTE_MS / SECOND_MS;
    let millisecond = within_day % SECOND_MS;
    if millisecond == 0 {
        format!("{date}T{hour:02}:{minute:02}:{second:02}Z")
    } else {
        format!("{date}T{hour:02}:{minute:02}:{second:02}.{millisecond:03}Z")
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, count: usize) -> Option<i64> {
        let digits = self.bytes.get(self.position..self.position + count)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.position += count;
        Some(digits.iter().fold(0, |value, digit| value * 10 + i64::from(digit - b'0')))
    }

    /// One or more fraction digits; only the first three matter at millisecond precision.
    fn fraction_as_milliseconds(&mut self) -> Option<i64> {
        let start = self.position;
        while self.bytes.get(self.position).is_some_and(u8::is_ascii_digit) {
            self.position += 1;
        }
        let digits = self.bytes.get(start..self.position)?;
        if digits.is_empty() {
            return None;
        }
        Some((0..3).fold(0, |value, index| value * 10 + digits.get(index).map_or(0, |digit| i64::from(digit - b'0'))))
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.bytes.get(self.position) == Some(&byte);
        if found {
            self.position += 1;
        }
        found
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    fn at_end(&self) -> bool {
        self.position >= self.bytes.len()
    }
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date, month 1–12 (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month 1–12, day).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A duration as configuration writes it, `"30 seconds"`, `"90 minutes"`, `"4 hours"`, `"2 days"`, `"1 week"` in milliseconds (at most
/// 10,000 of the unit): flows' waits and schedules, funnels' windows.
pub fn parse_duration(text: &str) -> Option<i64> {
    let mut parts = text.split_whitespace();
    let amount: i64 = parts.next()?.parse().ok()?;
    let unit = parts.next()?;
    if parts.next().is_some() || !(0..=10_000).contains(&amount) {
        return None;
    }
    let unit_ms = match unit.trim_end_matches('s') {
        "second" => 1_000,
        "minute" => 60_000,
        "hour" => 3_600_000,
        "day" => 86_400_000,
        "week" => 7 * 86_400_000,
        _ => return None,
    };
    Some(amount * unit_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_durations() {
        assert_eq!(parse_duration("4 hours"), Some(4 * 3_600_000));
        assert_eq!(parse_duration("1 second"), Some(1_000));
        assert_eq!(parse_duration("1 day"), Some(86_400_000));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("3 fortnights"), None);
        assert_eq!(parse_duration("-1 day"), None);
        assert_eq!(parse_duration("10001 days"), None);
    }

    #[test]
    fn parses_dates_times_and_offsets() {
        assert_eq!(parse_timestamp("1970-01-01"), Some(0));
        assert_eq!(parse_timestamp("1970-01-02T00:00:01Z"), Some(DAY_MS + SECOND_MS));
        assert_eq!(parse_timestamp("1970-01-01 01:00"), Some(HOUR_MS));
        assert_eq!(parse_timestamp("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_timestamp("1970-01-01T00:00:00.1234-0030"), Some(123 + 30 * MINUTE_MS));
        assert_eq!(parse_timestamp("2026-01-31"), Some(1_769_817_600_000));
        assert_eq!(parse_timestamp("2024-02-29"), Some(1_709_164_800_000));
    }

    #[test]
    fn rejects_impossible_or_malformed_timestamps() {
        for text in ["2025-02-29", "2026-13-01", "2026-1-01", "2026-01-31T24:00", "2026-01-31T", "2026-01-31Zx", "", "2026-01-31T10:00+1"] {
            assert_eq!(parse_timestamp(text), None, "{text}");
        }
    }

    #[test]
    fn formatting_round_trips() {
        for milliseconds in [0, 1, DAY_MS, 1_769_817_600_000, 1_769_817_600_000 + 3 * HOUR_MS + 7, -DAY_MS - 1, 253_402_300_799_000] {
            assert_eq!(parse_timestamp(&format_timestamp(milliseconds)), Some(milliseconds), "{milliseconds}");
        }
        assert_eq!(format_timestamp(1_769_817_600_000), "2026-01-31");
        assert_eq!(format_timestamp(1_769_817_600_000 + HOUR_MS + 5), "2026-01-31T01:00:00.005Z");
    }
}
