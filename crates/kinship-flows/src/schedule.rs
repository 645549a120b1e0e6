//! Schedules for flows that start on time rather than on an event: `every 6 hours`, `every
//! day at 09:00`, `every monday at 08:30`. Times are UTC. A schedule is a sequence of ticks;
//! the host runs the flow once per tick on every member of the flow's segment, and a run's
//! key holds the tick, so two nodes running the same tick make one run per person.

use kinship_expr::parse_duration;

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;
const WEEKDAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every `period` milliseconds, counted from the Unix epoch.
    Every { period: i64 },
    /// Every day at this many milliseconds after midnight.
    Daily { at: i64 },
    /// Every week on this day (0 is Monday) at this many milliseconds after midnight.
    Weekly { day: i64, at: i64 },
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let help = "write `every 6 hours`, `every day at 09:00` or `every monday at 08:30` (UTC)";
        let lower = text.trim().to_lowercase();
        let words: Vec<&str> = lower.trim_end_matches(" utc").split_whitespace().collect();
        match words.as_slice() {
            ["every", amount, unit] => {
                let period = parse_duration(&format!("{amount} {unit}")).filter(|p| *p > 0);
                Ok(Schedule::Every {
                    period: period
                        .ok_or_else(|| format!("`{amount} {unit}` is not a period (1 to 10000 minutes, hours, days or weeks): {help}"))?,
                })
            }
            ["every", day, "at", time] => {
                let at = time_of_day(time).ok_or_else(|| format!("`{time}` is not a time of day (HH:MM): {help}"))?;
                if *day == "day" {
                    return Ok(Schedule::Daily { at });
                }
                let day = WEEKDAYS.iter().position(|d| d == day).ok_or_else(|| format!("`{day}` is not `day` or a weekday: {help}"))?;
                Ok(Schedule::Weekly { day: day as i64, at })
            }
            _ => Err(format!("`{}` is not a schedule: {help}", text.trim())),
        }
    }

    /// The newest tick at or before `now` (milliseconds since the epoch).
    pub fn latest(&self, now: i64) -> i64 {
        match *self {
            Schedule::Every { period } => now - now.rem_euclid(period),
            Schedule::Daily { at } => {
                let today = now - now.rem_euclid(DAY) + at;
                if today > now {
                    today - DAY
                } else {
                    today
                }
            }
            Schedule::Weekly { day, at } => {
                let days = now.div_euclid(DAY);
                // 1970-01-01 was a Thursday (3, counting Monday as 0).
                let monday = days - (days + 3).rem_euclid(7);
                let tick = (monday + day) * DAY + at;
                if tick > now {
                    tick - 7 * DAY
                } else {
                    tick
                }
            }
        }
    }
}

fn time_of_day(text: &str) -> Option<i64> {
    let (hours, minutes) = text.split_once(':')?;
    let (hours, minutes): (i64, i64) = (hours.parse().ok()?, minutes.parse().ok()?);
    ((0..24).contains(&hours) && (0..60).contains(&minutes) && text.len() <= 5).then_some((hours * 60 + minutes) * MINUTE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07T10:15:00Z, a Monday.
    const MONDAY: i64 = 1_796_638_500_000;

    #[test]
    fn ticks_are_the_newest_at_or_before_now() {
        let hourly = Schedule::parse("every 6 hours").unwrap();
        assert_eq!(hourly.latest(MONDAY), MONDAY - 4 * 3_600_000 - 15 * MINUTE);
        let daily = Schedule::parse("every day at 09:00 UTC").unwrap();
        assert_eq!(daily.latest(MONDAY), MONDAY - 75 * MINUTE);
        let later = Schedule::parse("every day at 10:16").unwrap();
        assert_eq!(later.latest(MONDAY), MONDAY + MINUTE - DAY, "not yet today: yesterday's");
        assert_eq!(later.latest(MONDAY + MINUTE), MONDAY + MINUTE, "a tick is at or before now");
        let monday = Schedule::parse("every Monday at 08:30").unwrap();
        assert_eq!(monday.latest(MONDAY), MONDAY - 105 * MINUTE);
        let sunday = Schedule::parse("every sunday at 23:00").unwrap();
        assert_eq!(sunday.latest(MONDAY), MONDAY - 10 * 3_600_000 - 15 * MINUTE - 60 * MINUTE);
        let tuesday = Schedule::parse("every tuesday at 00:00").unwrap();
        assert_eq!(tuesday.latest(MONDAY), MONDAY - 10 * 3_600_000 - 15 * MINUTE - 6 * DAY);
    }

    #[test]
    fn errors_say_what_to_write() {
        for bad in ["daily", "every 0 hours", "every day at 25:00", "every fortnight at 09:00", "every 2 months", "every day at 9"] {
            let err = Schedule::parse(bad).unwrap_err();
            assert!(err.contains("every day at 09:00"), "{bad}: {err}");
        }
    }
}
