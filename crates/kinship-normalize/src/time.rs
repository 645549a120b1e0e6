use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

const DATE_FORMATS: &[&str] = &["%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y", "%d %b %Y", "%B %d, %Y"];

/// Unix seconds of 0001-01-01 and 9999-12-31.
const MIN_SECS: f64 = -62_135_596_800.0;
const MAX_SECS: f64 = 253_402_300_799.0;

/// Date-times with a written offset: `+0000` (Salesforce, Java), `+00:00`, `+00`.
const OFFSET_FORMATS: &[&str] = &["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f %#z"];
/// Date-times without an offset, read in the field's time zone (UTC unless told).
const LOCAL_FORMATS: &[&str] = &["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"];

/// A calendar date in ISO form (`YYYY-MM-DD`) from the common written forms. Day-first is
/// preferred for slashed dates, as in most of the world; ISO input is unambiguous.
pub fn parse_date(raw: &str) -> Option<String> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    if let Some(ms) = parse_timestamp_ms(s).filter(|_| s.contains(['T', ' ', ':'])) {
        return DateTime::from_timestamp_millis(ms).map(|d| d.date_naive().to_string());
    }
    DATE_FORMATS.iter().find_map(|f| NaiveDate::parse_from_str(s, f).ok()).map(|d| d.to_string())
}

/// Unix milliseconds from RFC 3339, ISO date-times with any common offset (`Z`, `+00:00`,
/// `+0000`), `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DD`, or Unix seconds. Times without an
/// offset are read as UTC.
pub fn parse_timestamp_ms(raw: &str) -> Option<i64> {
    match TimeFormat::Auto.read(raw, None) {
        Ok(Moment::Instant(ms)) => Some(ms),
        Ok(Moment::Date(d)) => Some(d.and_time(NaiveTime::MIN).and_utc().timestamp_millis()),
        Err(_) => None,
    }
}

/// What a date or time field holds once read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// A calendar date with no time of day (a birth date, an invoice date).
    Date(NaiveDate),
    /// An instant, as Unix milliseconds.
    Instant(i64),
}

impl Moment {
    /// `YYYY-MM-DD` for dates, RFC 3339 in UTC with milliseconds for instants.
    pub fn to_text(self) -> String {
        match self {
            Moment::Date(d) => d.to_string(),
            Moment::Instant(ms) => {
                DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()).unwrap_or_default()
            }
        }
    }

    /// Unix milliseconds; a date is its first instant in `zone` (UTC unless given): midnight,
    /// or where the clocks skip midnight, the moment they land on.
    pub fn millis(self, zone: Option<Tz>) -> Result<i64, String> {
        match self {
            Moment::Instant(ms) => Ok(ms),
            Moment::Date(d) => {
                let start = d.and_time(NaiveTime::MIN);
                (0..=24 * 4)
                    .find_map(|quarter| in_zone(start + chrono::Duration::minutes(15 * quarter), zone).ok())
                    .ok_or_else(|| format!("{d} has no start in the zone"))
            }
        }
    }
}

/// How a field writes its dates and times, as declared in a mapping's `format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// ISO 8601 (any common offset, or none: the zone's), `YYYY-MM-DD`, or Unix seconds:
    /// nothing whose order of day and month would be a guess.
    Auto,
    /// RFC 3339 (`2026-02-18T12:00:00Z`, `...+01:00`).
    Rfc3339,
    /// Unix seconds, with or without a fraction.
    Unix,
    /// Unix milliseconds.
    UnixMs,
    /// Salesforce: `2026-02-18T12:00:00.000+0000`, or a date `2026-02-18`.
    Salesforce,
    /// `15/09/2026`, `15.09.2026`, `15-09-26`, optionally followed by a time.
    DayFirst,
    /// `09/15/2026`, `9/15/26 3:45 PM`, optionally followed by a time.
    MonthFirst,
    /// A strftime pattern (`%d %b %Y %H:%M`), with its items parsed once.
    Pattern(String, Vec<chrono::format::Item<'static>>),
}

impl TimeFormat {
    /// The format a name or strftime pattern stands for; `Err` says what is accepted.
    pub fn from_name(name: &str) -> Result<Self, String> {
        Ok(match name.trim() {
            "" | "auto" => TimeFormat::Auto,
            "rfc3339" | "iso8601" => TimeFormat::Rfc3339,
            "unix" => TimeFormat::Unix,
            "unix_ms" => TimeFormat::UnixMs,
            "salesforce" => TimeFormat::Salesforce,
            "day_first" => TimeFormat::DayFirst,
            "month_first" => TimeFormat::MonthFirst,
            pattern if pattern.contains('%') => {
                let items = chrono::format::StrftimeItems::new(pattern)
                    .parse_to_owned()
                    .map_err(|_| format!("{pattern:?} is not a valid strftime pattern"))?;
                TimeFormat::Pattern(pattern.to_string(), items)
            }
            other => {
                return Err(format!(
                    "{other:?} is not a format; use rfc3339, unix, unix_ms, salesforce, day_first, month_first or a strftime pattern such as \"%d/%m/%Y %H:%M\""
                ));
            }
        })
    }

    pub fn name(&self) -> &str {
        match self {
            TimeFormat::Auto => "auto",
            TimeFormat::Rfc3339 => "rfc3339",
            TimeFormat::Unix => "unix",
            TimeFormat::UnixMs => "unix_ms",
            TimeFormat::Salesforce => "salesforce",
            TimeFormat::DayFirst => "day_first",
            TimeFormat::MonthFirst => "month_first",
            TimeFormat::Pattern(p, _) => p,
        }
    }

    /// Reads `raw`; times written without an offset are in `zone` (UTC unless given).
    /// `Err` says why the value does not fit, never a guess.
    pub fn read(&self, raw: &str, zone: Option<Tz>) -> Result<Moment, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("is blank".into());
        }
        let fits = |m: Option<Moment>| m.ok_or_else(|| format!("does not fit the format {}", self.name()));
        match self {
            TimeFormat::Auto => {
                if let Some(m) = read_iso(s, zone)? {
                    return Ok(m);
                }
                // Unix seconds, with or without a fraction; a bounded range keeps ids out.
                match s.parse::<f64>() {
                    Ok(secs) if (0.0..=4_102_444_800.0).contains(&secs) => Ok(Moment::Instant((secs * 1000.0).round() as i64)),
                    _ => Err("is not a date or timestamp (RFC 3339, YYYY-MM-DD, or Unix seconds; declare a `format` for others)".into()),
                }
            }
            TimeFormat::Rfc3339 => fits(DateTime::parse_from_rfc3339(s).ok().map(|d| Moment::Instant(d.timestamp_millis()))),
            // Within years 1 to 9999, which every reader of the result can show.
            TimeFormat::Unix => fits(
                s.parse::<f64>().ok().filter(|v| (MIN_SECS..=MAX_SECS).contains(v)).map(|v| Moment::Instant((v * 1000.0).round() as i64)),
            ),
            TimeFormat::UnixMs => {
                fits(s.parse::<i64>().ok().filter(|v| (MIN_SECS as i64 * 1000..=MAX_SECS as i64 * 1000).contains(v)).map(Moment::Instant))
            }
            TimeFormat::Salesforce => {
                if let Ok(d) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
                    return Ok(Moment::Instant(d.timestamp_millis()));
                }
                fits(NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(Moment::Date))
            }
            TimeFormat::DayFirst => read_numeric(s, true, zone).map_err(|e| format!("does not fit the format day_first ({e})")),
            TimeFormat::MonthFirst => read_numeric(s, false, zone).map_err(|e| format!("does not fit the format month_first ({e})")),
            TimeFormat::Pattern(_, items) => {
                // One parse; what it found decides: an offset, a time, or a date alone.
                let mut parsed = chrono::format::Parsed::new();
                if chrono::format::parse(&mut parsed, s, items.iter()).is_err() {
                    return fits(None);
                }
                if parsed.offset().is_some()
                    && let Ok(d) = parsed.to_datetime()
                {
                    return Ok(Moment::Instant(d.timestamp_millis()));
                }
                if let Ok(t) = parsed.to_naive_datetime_with_offset(0) {
                    return in_zone(t, zone).map(Moment::Instant);
                }
                if parsed.hour_mod_12().is_some() || parsed.minute().is_some() {
                    // `%I` without `%p`: a time of day that cannot be told; never dropped.
                    return Err(format!("gives a time of day the pattern {} cannot place (12-hour %I needs %p)", self.name()));
                }
                fits(parsed.to_naive_date().ok().map(Moment::Date))
            }
        }
    }
}

/// ISO 8601 forms: `None` when `s` is not one, `Err` when it is but names a local time
/// that does not exist in `zone`.
fn read_iso(s: &str, zone: Option<Tz>) -> Result<Option<Moment>, String> {
    // The commonest forms first: a date alone, then RFC 3339.
    if let Some(d) = iso_date(s) {
        return Ok(Some(Moment::Date(d)));
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(Moment::Instant(d.timestamp_millis())));
    }
    if let Some(d) = OFFSET_FORMATS.iter().find_map(|f| DateTime::parse_from_str(s, f).ok()) {
        return Ok(Some(Moment::Instant(d.timestamp_millis())));
    }
    // `2026-02-18 12:00:00 UTC`, as databases print.
    let local = s.strip_suffix(" UTC").or_else(|| s.strip_suffix(" GMT"));
    let (text, zone) = match local {
        Some(text) => (text, None),
        None => (s, zone),
    };
    if let Some(t) = LOCAL_FORMATS.iter().find_map(|f| NaiveDateTime::parse_from_str(text, f).ok()) {
        return in_zone(t, zone).map(|ms| Some(Moment::Instant(ms)));
    }
    Ok(NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(Moment::Date))
}

/// `YYYY-MM-DD` read by hand: every row of most exports has one, and a strftime parse
/// costs more than the rest of the field's work.
fn iso_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| b[r].iter().try_fold(0u32, |n, c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')));
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)
}

/// A wall-clock time in `zone` as Unix milliseconds. A time that occurs twice (the hour
/// clocks go back) is its first occurrence; one that never occurs is an error.
fn in_zone(t: NaiveDateTime, zone: Option<Tz>) -> Result<i64, String> {
    let Some(zone) = zone else {
        return Ok(Utc.from_utc_datetime(&t).timestamp_millis());
    };
    match zone.from_local_datetime(&t) {
        LocalResult::Single(d) | LocalResult::Ambiguous(d, _) => Ok(d.timestamp_millis()),
        LocalResult::None => Err(format!("{t} does not exist in {zone} (the clocks skip it)")),
    }
}

/// Numeric dates with the day or the month first, `/`, `.` or `-` between, a two- or
/// four-digit year, then optionally a time `H:MM[:SS[.fff]]` with `AM`/`PM`.
fn read_numeric(s: &str, day_first: bool, zone: Option<Tz>) -> Result<Moment, String> {
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t.trim())),
        None => (s, None),
    };
    let parts: Vec<&str> = date.split(['/', '.', '-']).collect();
    let [a, b, y] = parts[..] else {
        return Err("expected three numbers such as 15/09/2026".into());
    };
    let num = |p: &str| p.parse::<u32>().ok().filter(|_| !p.is_empty() && p.len() <= 4 && p.bytes().all(|c| c.is_ascii_digit()));
    let (Some(a), Some(b), Some(year)) = (num(a), num(b), num(y)) else {
        return Err("expected three numbers such as 15/09/2026".into());
    };
    let (day, month) = if day_first { (a, b) } else { (b, a) };
    let year = match y.len() {
        4 => year as i32,
        // POSIX's pivot: 69–99 are the 1900s, 00–68 the 2000s.
        2 if year >= 69 => 1900 + year as i32,
        2 => 2000 + year as i32,
        _ => return Err("the year needs two or four digits".into()),
    };
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or("no such day")?;
    let Some(time) = time.filter(|t| !t.is_empty()) else {
        return Ok(Moment::Date(date));
    };
    let upper = time.to_ascii_uppercase();
    let (clock, meridiem) = match upper.strip_suffix("PM").or_else(|| upper.strip_suffix("AM")) {
        Some(clock) => (clock.trim(), Some(upper.ends_with("PM"))),
        None => (upper.as_str(), None),
    };
    let mut t =
        ["%H:%M:%S%.f", "%H:%M"].iter().find_map(|f| NaiveTime::parse_from_str(clock, f).ok()).ok_or("the time is not H:MM[:SS]")?;
    if let Some(pm) = meridiem {
        use chrono::Timelike;
        let hour = t.hour();
        if !(1..=12).contains(&hour) {
            return Err("an AM/PM hour runs from 1 to 12".into());
        }
        t = t.with_hour(hour % 12 + if pm { 12 } else { 0 }).ok_or("no such hour")?;
    }
    in_zone(date.and_time(t), zone).map(Moment::Instant)
}

/// An IANA time zone (`Europe/Berlin`); `Err` names the value.
pub fn time_zone(name: &str) -> Result<Tz, String> {
    name.trim()
        .parse::<Tz>()
        .map_err(|_| format!("{name:?} is not an IANA time zone; use a name such as \"Europe/Berlin\" or \"America/New_York\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        for raw in ["1984-03-07", "19840307", "07/03/1984", "7.3.1984", "07 Mar 1984", "March 7, 1984", "1984-03-07T10:00:00Z"] {
            assert_eq!(parse_date(raw).as_deref(), Some("1984-03-07"), "{raw}");
        }
        assert_eq!(parse_date("1984-02-30"), None);
        assert_eq!(parse_date("soon"), None);
    }

    #[test]
    fn timestamps() {
        let t = 1_700_000_000_000;
        assert_eq!(parse_timestamp_ms("2023-11-14T22:13:20Z"), Some(t));
        assert_eq!(parse_timestamp_ms("2023-11-14T23:13:20+01:00"), Some(t));
        assert_eq!(parse_timestamp_ms("2023-11-14 22:13:20"), Some(t));
        assert_eq!(parse_timestamp_ms("1700000000"), Some(t));
        assert_eq!(parse_timestamp_ms("2023-11-14"), Some(1_699_920_000_000));
        assert_eq!(parse_timestamp_ms("yesterday"), None);
        assert_eq!(parse_timestamp_ms("99999999999"), None, "out of range");
    }

    #[test]
    fn common_offsets_are_read_without_being_declared() {
        let t = 1_771_416_000_000; // 2026-02-18T12:00:00Z
        for raw in [
            "2026-02-18T12:00:00.000+0000",
            "2026-02-18T13:00:00.000+0100",
            "2026-02-18T12:00:00+00:00",
            "2026-02-18T07:00:00-05",
            "2026-02-18 12:00:00+0000",
            "2026-02-18 12:00:00 UTC",
            "2026-02-18T12:00",
        ] {
            assert_eq!(parse_timestamp_ms(raw), Some(t), "{raw}");
        }
    }

    #[test]
    fn declared_formats() {
        let read = |f: &str, raw: &str| TimeFormat::from_name(f).unwrap().read(raw, None);
        let date = |y, m, d| Ok(Moment::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap()));
        assert_eq!(read("salesforce", "2026-02-18T12:00:00.000+0000"), Ok(Moment::Instant(1_771_416_000_000)));
        assert_eq!(read("salesforce", "2026-02-18"), date(2026, 2, 18));
        assert!(read("salesforce", "18/02/2026").is_err());
        assert_eq!(read("day_first", "15/09/2026"), date(2026, 9, 15));
        assert_eq!(read("day_first", "15.09.26"), date(2026, 9, 15));
        assert_eq!(read("month_first", "9/15/2026"), date(2026, 9, 15));
        assert_eq!(read("month_first", "02/03/1971"), date(1971, 2, 3));
        assert_eq!(read("day_first", "02/03/1971"), date(1971, 3, 2));
        assert!(read("month_first", "15/09/2026").is_err(), "no month 15");
        assert_eq!(read("month_first", "2/18/2026 1:30 PM"), Ok(Moment::Instant(1_771_421_400_000)));
        assert_eq!(read("month_first", "2/18/2026 12:05 AM"), Ok(Moment::Instant(1_771_373_100_000)));
        assert_eq!(read("unix", "1700000000.5"), Ok(Moment::Instant(1_700_000_000_500)));
        assert_eq!(read("unix_ms", "1700000000500"), Ok(Moment::Instant(1_700_000_000_500)));
        assert!(read("unix_ms", "17e11").is_err());
        assert!(read("unix", "1e13").is_err(), "beyond year 9999");
        assert!(read("%d/%m/%Y %I:%M", "18/02/2026 01:30").is_err(), "a 12-hour time without AM/PM is not dropped");
        assert!(read("auto", "03/04/2026").is_err(), "day or month first is never guessed");
        assert_eq!(read("rfc3339", "2023-11-14T22:13:20Z"), Ok(Moment::Instant(1_700_000_000_000)));
        assert!(read("rfc3339", "2023-11-14 22:13:20").is_err());
        assert_eq!(read("%d %b %Y", "07 Mar 1984"), date(1984, 3, 7));
        assert_eq!(read("%d/%m/%Y %H:%M", "18/02/2026 12:00"), Ok(Moment::Instant(1_771_416_000_000)));
        assert!(TimeFormat::from_name("dd/mm/yyyy").is_err());
        assert!(TimeFormat::from_name("%Q").is_err());
    }

    #[test]
    fn local_times_are_read_in_the_declared_zone() {
        let berlin = time_zone("Europe/Berlin").unwrap();
        let read = |f: &str, raw: &str| TimeFormat::from_name(f).unwrap().read(raw, Some(berlin));
        // Winter: UTC+1.
        assert_eq!(read("day_first", "18/02/2026 13:00"), Ok(Moment::Instant(1_771_416_000_000)));
        assert_eq!(read("auto", "2026-02-18 13:00:00"), Ok(Moment::Instant(1_771_416_000_000)));
        // An offset written in the value wins over the zone.
        assert_eq!(read("auto", "2026-02-18T12:00:00Z"), Ok(Moment::Instant(1_771_416_000_000)));
        // 02:30 on the last Sunday of March does not exist in Berlin.
        let gap = read("auto", "2026-03-29 02:30:00").unwrap_err();
        assert!(gap.contains("does not exist"), "{gap}");
        assert_eq!(Moment::Date(NaiveDate::from_ymd_opt(2026, 2, 18).unwrap()).millis(Some(berlin)), Ok(1_771_369_200_000));
        assert!(time_zone("Mars/Olympus").is_err());
        // Santiago skipped midnight on 2022-09-11: the day starts at 01:00 local time.
        let santiago = time_zone("America/Santiago").unwrap();
        assert_eq!(Moment::Date(NaiveDate::from_ymd_opt(2022, 9, 11).unwrap()).millis(Some(santiago)), Ok(1_662_868_800_000));
    }
}
