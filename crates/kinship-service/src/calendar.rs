//! Business-hours calendars: a time zone, opening hours per weekday and holidays. Two
//! questions only: how much open time lies between two instants, and when a given amount of
//! open time, counted from an instant, runs out. Instants are Unix seconds (UTC); hours are
//! local, so a calendar follows its zone's daylight saving.

use chrono::{Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// `[service.calendars.NAME]` as written in kinship.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    /// An IANA zone (`Australia/Sydney`); hours and holidays are local to it.
    pub time_zone: String,
    /// Weekday (`mon` … `sun`) → open hours, `"09:00-17:00"` or several joined by commas
    /// (`"09:00-12:00, 13:00-17:00"`). A day not listed is closed.
    pub hours: BTreeMap<String, String>,
    /// Whole local days closed (`2026-12-25`).
    #[serde(default)]
    pub holidays: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CalendarError {
    #[error("unknown time zone \"{0}\": use an IANA name such as \"Australia/Sydney\" or \"UTC\"")]
    Zone(String),
    #[error("unknown weekday \"{0}\": use mon, tue, wed, thu, fri, sat or sun")]
    Weekday(String),
    #[error("bad opening hours \"{hours}\" for {day}: write \"09:00-17:00\", or several joined by commas, each ending after it starts")]
    Hours { day: String, hours: String },
    #[error("bad holiday \"{0}\": write the date as YYYY-MM-DD")]
    Holiday(String),
    #[error("the calendar is never open: give at least one weekday hours")]
    NeverOpen,
}

/// Open periods of a day, as seconds after local midnight, sorted and not overlapping.
type DayHours = Vec<(u32, u32)>;

/// A compiled calendar. `Calendar::always()` is calendar hours: always open.
#[derive(Debug, Clone)]
pub struct Calendar {
    zone: Tz,
    /// Indexed by `Weekday::num_days_from_monday`.
    week: [DayHours; 7],
    holidays: BTreeSet<NaiveDate>,
    always: bool,
}

/// How far ahead `add` looks for open time before giving up (a calendar whose every open day
/// is a holiday).
const HORIZON_DAYS: i64 = 3 * 366;

impl Calendar {
    pub fn always() -> Self {
        Calendar { zone: Tz::UTC, week: Default::default(), holidays: BTreeSet::new(), always: true }
    }

    pub fn compile(config: &CalendarConfig) -> Result<Self, CalendarError> {
        let zone: Tz = config.time_zone.parse().map_err(|_| CalendarError::Zone(config.time_zone.clone()))?;
        let mut week: [DayHours; 7] = Default::default();
        for (day, hours) in &config.hours {
            let weekday: Weekday = day.parse().map_err(|_| CalendarError::Weekday(day.clone()))?;
            let bad = || CalendarError::Hours { day: day.clone(), hours: hours.clone() };
            let mut periods = DayHours::new();
            for part in hours.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (from, to) = part.split_once('-').ok_or_else(bad)?;
                let (from, to) = (clock(from.trim()).ok_or_else(bad)?, clock(to.trim()).ok_or_else(bad)?);
                if to <= from {
                    return Err(bad());
                }
                periods.push((from, to));
            }
            periods.sort_unstable();
            if periods.windows(2).any(|w| w[1].0 < w[0].1) {
                return Err(bad());
            }
            week[weekday.num_days_from_monday() as usize] = periods;
        }
        if week.iter().all(Vec::is_empty) {
            return Err(CalendarError::NeverOpen);
        }
        let holidays = config
            .holidays
            .iter()
            .map(|h| NaiveDate::parse_from_str(h.trim(), "%Y-%m-%d").map_err(|_| CalendarError::Holiday(h.clone())))
            .collect::<Result<_, _>>()?;
        Ok(Calendar { zone, week, holidays, always: false })
    }

    /// Open seconds in `[from, to)`; 0 when `to <= from`.
    pub fn open_seconds(&self, from: i64, to: i64) -> i64 {
        if to <= from {
            return 0;
        }
        if self.always {
            return to - from;
        }
        let mut total = 0;
        let (first, last) = (self.local_date(from) - Duration::days(1), self.local_date(to));
        let mut day = first;
        while day <= last {
            // A clean week wholly inside the span counts its weekly hours without converting
            // each opening to UTC: clocks running for months stay cheap.
            if let Some((start, end)) = self.clean_week(day) {
                if start >= from && end <= to {
                    total += self.week_total();
                    day += Duration::days(7);
                    continue;
                }
            }
            for (start, end) in self.periods(day) {
                total += (end.min(to) - start.max(from)).max(0);
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        total
    }

    /// The instant at which `seconds` of open time, counted from `from`, have passed; `None`
    /// when that is more than three years of the calendar's days away.
    pub fn add(&self, from: i64, seconds: i64) -> Option<i64> {
        if self.always || seconds <= 0 {
            return from.checked_add(seconds.max(0));
        }
        let mut left = seconds;
        let mut day = self.local_date(from) - Duration::days(1);
        let horizon = day + Duration::days(HORIZON_DAYS);
        while day < horizon {
            if let Some((start, _)) = self.clean_week(day) {
                if start >= from && left > self.week_total() {
                    left -= self.week_total();
                    day += Duration::days(7);
                    continue;
                }
            }
            for (start, end) in self.periods(day) {
                let start = start.max(from);
                if end <= start {
                    continue;
                }
                if end - start >= left {
                    return Some(start + left);
                }
                left -= end - start;
            }
            day = day.succ_opt()?;
        }
        None
    }

    /// Open seconds in a week without holidays or clock changes.
    fn week_total(&self) -> i64 {
        self.week.iter().flatten().map(|(from, to)| i64::from(to - from)).sum()
    }

    /// When `day` is a Monday starting a week with no holiday and no change of the zone's
    /// offset (its local week is exactly seven days of UTC), the week's bounds in UTC.
    fn clean_week(&self, day: NaiveDate) -> Option<(i64, i64)> {
        if day.weekday() != Weekday::Mon {
            return None;
        }
        let next = day + Duration::days(7);
        if self.holidays.range(day..next).next().is_some() {
            return None;
        }
        let (start, end) = (self.instant(day, 0)?, self.instant(next, 0)?);
        (end - start == 7 * 86_400).then_some((start, end))
    }

    fn local_date(&self, at: i64) -> NaiveDate {
        match self.zone.timestamp_opt(at, 0) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.date_naive(),
            LocalResult::None => NaiveDate::MIN,
        }
    }

    /// A day's open periods as UTC instants (none on a holiday).
    fn periods(&self, day: NaiveDate) -> impl Iterator<Item = (i64, i64)> + '_ {
        let hours: &[(u32, u32)] =
            if self.holidays.contains(&day) { &[] } else { &self.week[day.weekday().num_days_from_monday() as usize] };
        hours.iter().filter_map(move |&(from, to)| Some((self.instant(day, from)?, self.instant(day, to)?)))
    }

    /// Local day + seconds after midnight → UTC. A time skipped by daylight saving is moved
    /// on by the gap (02:30 → 03:30); a repeated one is its first occurrence.
    fn instant(&self, day: NaiveDate, seconds: u32) -> Option<i64> {
        let midnight = day.and_time(NaiveTime::MIN);
        let local = midnight.checked_add_signed(Duration::seconds(i64::from(seconds)))?;
        for shift in [0, 3600, 7200] {
            match self.zone.from_local_datetime(&(local + Duration::seconds(shift))) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => return Some(t.timestamp()),
                LocalResult::None => continue,
            }
        }
        None
    }
}

/// `"09:30"` → seconds after midnight; `"24:00"` is the end of the day.
fn clock(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 3600 + m * 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sydney() -> Calendar {
        let hours = ["mon", "tue", "wed", "thu", "fri"].iter().map(|d| (d.to_string(), "09:00-17:00".to_string())).collect();
        Calendar::compile(&CalendarConfig {
            time_zone: "Australia/Sydney".into(),
            hours,
            holidays: vec!["2026-12-25".into(), "2026-12-28".into()],
        })
        .unwrap()
    }

    /// Local Sydney time (AEDT, +11 in December) as Unix seconds.
    fn at(text: &str) -> i64 {
        let local = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
        chrono_tz::Australia::Sydney.from_local_datetime(&local).unwrap().timestamp()
    }

    #[test]
    fn open_time_skips_nights_weekends_and_holidays() {
        let c = sydney();
        // Thursday 24 Dec 16:00 → Tuesday 29 Dec 10:00: 1 h Thursday, Friday 25th and Monday
        // 28th are holidays, the weekend is closed, 1 h Tuesday.
        assert_eq!(c.open_seconds(at("2026-12-24 16:00"), at("2026-12-29 10:00")), 2 * 3600);
        assert_eq!(c.add(at("2026-12-24 16:00"), 2 * 3600), Some(at("2026-12-29 10:00")));
        // Starting in closed time, the clock starts at opening.
        assert_eq!(c.add(at("2026-12-05 08:00"), 30 * 60), Some(at("2026-12-07 09:30")));
        // An hour counted exactly to closing ends at closing, not at the next opening.
        assert_eq!(c.add(at("2026-12-07 16:00"), 3600), Some(at("2026-12-07 17:00")));
        assert_eq!(c.open_seconds(at("2026-12-07 17:00"), at("2026-12-08 09:00")), 0);
    }

    #[test]
    fn daylight_saving_is_local() {
        let c = sydney();
        // Sydney moves to +11 on Sunday 4 Oct 2026: Friday 9-17 and Monday 9-17 are each 8 h.
        assert_eq!(c.open_seconds(at("2026-10-02 09:00"), at("2026-10-05 17:00")), 16 * 3600);
    }

    #[test]
    fn bad_calendars_name_the_fix() {
        let mut config = CalendarConfig { time_zone: "Mars/Olympus".into(), hours: BTreeMap::new(), holidays: vec![] };
        assert_eq!(Calendar::compile(&config).unwrap_err(), CalendarError::Zone("Mars/Olympus".into()));
        config.time_zone = "UTC".into();
        assert_eq!(Calendar::compile(&config).unwrap_err(), CalendarError::NeverOpen);
        config.hours.insert("mon".into(), "17:00-09:00".into());
        assert!(matches!(Calendar::compile(&config).unwrap_err(), CalendarError::Hours { .. }));
        config.hours.insert("mon".into(), "09:00-24:00".into());
        config.holidays.push("25/12/2026".into());
        assert_eq!(Calendar::compile(&config).unwrap_err(), CalendarError::Holiday("25/12/2026".into()));
    }

    /// Day by day, every opening converted: what week skipping must equal.
    fn day_by_day(c: &Calendar, from: i64, to: i64) -> i64 {
        let mut total = 0;
        let mut day = c.local_date(from) - Duration::days(1);
        while day <= c.local_date(to) {
            total += c.periods(day).map(|(s, e)| (e.min(to) - s.max(from)).max(0)).sum::<i64>();
            day = day.succ_opt().unwrap();
        }
        total
    }

    proptest::proptest! {
        /// Counting forward and measuring back agree, for any start and amount, over spans of
        /// up to two years (weeks skipped whole, holidays and clock changes day by day).
        #[test]
        fn add_and_open_seconds_agree(from in 1_700_000_000i64..1_900_000_000, secs in 0i64..8_000_000) {
            let c = sydney();
            let end = c.add(from, secs).unwrap();
            proptest::prop_assert_eq!(c.open_seconds(from, end), secs);
        }

        #[test]
        fn skipping_weeks_counts_what_days_count(from in 1_700_000_000i64..1_900_000_000, span in 0i64..70_000_000) {
            let c = sydney();
            proptest::prop_assert_eq!(c.open_seconds(from, from + span), day_by_day(&c, from, from + span));
        }
    }
}
