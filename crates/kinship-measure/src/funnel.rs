//! Funnels over profiles' unified timelines: how many move from step to step, how long each
//! step takes, who dropped where.
//!
//! The host evaluates each step's filter (the segment language) on each event and hands this
//! module each profile's timeline as [`Moment`]s: a time and which steps and exclusions the
//! event matches, as bits. A profile is one person across every system, so a funnel can go
//! from a web visit to an order in the shop to a shipment to an invoice paid.
//!
//! Semantics, per attempt (an entry at step 1 in the period):
//! - **Ordered**: each next step is the first matching event at or after the previous step's
//!   (other events between are allowed), within `window_ms` of the entry and, if set, the
//!   step's own window from the previous step. Greedy, as PostHog counts.
//! - **Strict**: the very next event of the timeline must match the next step.
//! - **Any order**: the steps may come in any order; step *k* is reached when *k* distinct
//!   steps have happened within the window of the entry (the first event matching any step).
//! - **Exclusions**: an excluded event strictly between the times of its `from` and `to`
//!   steps (or, `to` not reached, after `from` and within the window) drops the attempt.
//! - **Counting**: each profile once, by its first entry in the period; or every entry.

use serde::Serialize;
use std::collections::BTreeMap;

/// One event of a profile's timeline: its time and which steps (bit *i*: step *i*) and
/// exclusions (bit *j*: exclusion *j*) it matches. A strict funnel needs every event, a
/// matching one or not; the others only matching ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    pub at_ms: i64,
    pub steps: u64,
    pub exclusions: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    Ordered,
    Strict,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Counting {
    /// Each profile once, by its first entry in the period.
    FirstEntry,
    /// Every entry in the period is an attempt of its own.
    EveryEntry,
}

/// An exclusion: its event between step `from` and step `to` drops the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Exclusion {
    pub from: usize,
    pub to: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Funnel {
    /// How many steps (at most 64).
    pub steps: usize,
    pub order: Order,
    /// From the entry to the last step.
    pub window_ms: i64,
    /// Per step (index 0 unused): at most this long after the previous step.
    pub step_windows: Vec<Option<i64>>,
    pub exclusions: Vec<Exclusion>,
    pub counting: Counting,
    /// Entries count in [from, to).
    pub period: (i64, i64),
}

/// How far one attempt got: the time it reached each step, in step order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub reached: Vec<i64>,
}

impl Attempt {
    /// Steps reached (1 = entered only).
    pub fn depth(&self) -> usize {
        self.reached.len()
    }
}

impl Funnel {
    /// The attempts of one profile (timeline sorted by time), excluded ones left out; a
    /// profile that never entered has none.
    pub fn attempts(&self, timeline: &[Moment]) -> Vec<Attempt> {
        let mut out = Vec::new();
        for i in (0..timeline.len()).filter(|&i| self.enters(&timeline[i])) {
            out.extend(self.attempt_at(timeline, i));
            if self.counting == Counting::FirstEntry {
                break;
            }
        }
        out
    }

    /// Where the profile stands now, whatever the period and counting: its latest attempt.
    /// An entry while an earlier attempt is still under way (not finished, within the
    /// window) does not start a new one, so viewing a second product does not set a
    /// checkout back to step 1. An excluded attempt leaves the profile nowhere.
    pub fn position(&self, timeline: &[Moment]) -> Option<Attempt> {
        let mut current: Option<Attempt> = None;
        for (i, m) in timeline.iter().enumerate() {
            if m.steps & self.entry_mask() == 0 {
                continue;
            }
            let under_way =
                current.as_ref().is_some_and(|a| a.depth() < self.step_count() && m.at_ms.saturating_sub(a.reached[0]) <= self.window_ms);
            if !under_way {
                current = self.attempt_at(timeline, i);
            }
        }
        current
    }

    fn entry_mask(&self) -> u64 {
        match self.order {
            Order::Any => self.all_steps(),
            _ => 1,
        }
    }

    fn enters(&self, m: &Moment) -> bool {
        m.steps & self.entry_mask() != 0 && m.at_ms >= self.period.0 && m.at_ms < self.period.1
    }

    /// The attempt entered at `timeline[entry]`, unless an exclusion drops it.
    fn attempt_at(&self, timeline: &[Moment], entry: usize) -> Option<Attempt> {
        let attempt = match self.order {
            Order::Ordered => self.ordered(timeline, entry, false),
            Order::Strict => self.ordered(timeline, entry, true),
            Order::Any => self.any_order(timeline, entry),
        };
        attempt.filter(|a| !self.excluded(timeline, entry, a))
    }

    fn all_steps(&self) -> u64 {
        if self.steps >= 64 {
            u64::MAX
        } else {
            (1u64 << self.steps) - 1
        }
    }

    /// Steps beyond 64 have no bit to match on.
    fn step_count(&self) -> usize {
        self.steps.min(64)
    }

    fn ordered(&self, timeline: &[Moment], entry: usize, strict: bool) -> Option<Attempt> {
        let start = timeline[entry].at_ms;
        let mut reached = vec![start];
        let mut last = start;
        for m in &timeline[entry + 1..] {
            if reached.len() >= self.step_count() || m.at_ms.saturating_sub(start) > self.window_ms {
                break;
            }
            let next = reached.len();
            let in_step_window = self.step_windows.get(next).copied().flatten().is_none_or(|w| m.at_ms.saturating_sub(last) <= w);
            if m.steps & (1 << next) != 0 && in_step_window {
                reached.push(m.at_ms);
                last = m.at_ms;
            } else if strict || !in_step_window && m.steps & (1 << next) != 0 {
                // Strict: any other event ends the attempt. Ordered: a next step too late for
                // its window ends it too (a later one would be later still).
                break;
            }
        }
        Some(Attempt { reached })
    }

    fn any_order(&self, timeline: &[Moment], entry: usize) -> Option<Attempt> {
        let start = timeline[entry].at_ms;
        let mut seen = 0u64;
        let mut reached = Vec::new();
        for (k, m) in timeline[entry..].iter().enumerate() {
            // The entry itself counts whatever the window (even a negative one).
            if k > 0 && m.at_ms.saturating_sub(start) > self.window_ms {
                break;
            }
            let new = m.steps & self.all_steps() & !seen;
            if new != 0 {
                seen |= new;
                // Several steps in one event are reached at once.
                for _ in 0..new.count_ones() {
                    reached.push(m.at_ms);
                }
            }
        }
        Some(Attempt { reached })
    }

    fn excluded(&self, timeline: &[Moment], entry: usize, attempt: &Attempt) -> bool {
        self.exclusions.iter().enumerate().any(|(j, e)| {
            let Some(&from) = attempt.reached.get(e.from) else { return false };
            let until =
                attempt.reached.get(e.to).copied().unwrap_or(timeline[entry].at_ms.saturating_add(self.window_ms).saturating_add(1));
            let bit = 1u64.checked_shl(j as u32).unwrap_or(0);
            timeline[entry..].iter().any(|m| m.exclusions & bit != 0 && m.at_ms > from && m.at_ms < until)
        })
    }
}

/// Times between steps: the median, the 90th percentile and a histogram.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Durations {
    pub count: u64,
    pub median_ms: Option<i64>,
    pub p90_ms: Option<i64>,
    /// (bucket's lower edge in ms, how many), over ten equal buckets up to the maximum.
    pub histogram: Vec<(i64, u64)>,
}

impl Durations {
    fn of(mut values: Vec<i64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_unstable();
        // The nearest-rank percentile: a value some attempt really took.
        let rank = |q: f64| values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        let max = *values.last().expect("not empty");
        let width = (max / 10).max(1);
        let mut histogram: Vec<(i64, u64)> = (0..10).map(|b| (b * width, 0)).collect();
        for v in &values {
            histogram[((v / width) as usize).min(9)].1 += 1;
        }
        Self { count: values.len() as u64, median_ms: Some(rank(0.5)), p90_ms: Some(rank(0.9)), histogram }
    }
}

/// One step's numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepResult {
    /// Attempts (profiles, counting first entries) that reached this step.
    pub count: u64,
    /// Of those that entered the funnel.
    pub conversion: f64,
    /// Of those that reached the previous step.
    pub from_previous: f64,
    /// Reached the previous step but not this one.
    pub dropped: u64,
    /// From the previous step to this one (empty for step 1).
    pub time_from_previous: Durations,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelResult {
    pub steps: Vec<StepResult>,
    /// Per value of the breakdown (the top `breakdown_top` by entries, then `(other)`): count per step.
    pub breakdown: Vec<(String, Vec<u64>)>,
    /// Per week of entry (Monday 00:00 UTC, in ms): count per step.
    pub weekly: Vec<(i64, Vec<u64>)>,
}

/// One profile's timeline and its breakdown value (a trait), as the host reads them.
pub struct ProfileTimeline<'a> {
    pub moments: &'a [Moment],
    pub breakdown: Option<&'a str>,
}

/// The funnel over every profile. `breakdown_top` values are kept, the rest summed as `(other)`.
pub fn measure<'a>(funnel: &Funnel, profiles: impl IntoIterator<Item = ProfileTimeline<'a>>, breakdown_top: usize) -> FunnelResult {
    tally(funnel, profiles.into_iter().map(|p| (funnel.attempts(p.moments), p.breakdown)), breakdown_top)
}

/// The funnel's numbers from each profile's attempts ([`Funnel::attempts`]) and breakdown
/// value: for a host that also reads the attempts (who stopped where), so they are found once.
pub fn tally<'a, A: AsRef<[Attempt]>>(
    funnel: &Funnel,
    profiles: impl IntoIterator<Item = (A, Option<&'a str>)>,
    breakdown_top: usize,
) -> FunnelResult {
    let mut counts = vec![0u64; funnel.steps];
    let mut gaps: Vec<Vec<i64>> = vec![Vec::new(); funnel.steps];
    let mut by_value: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut weekly: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    for (attempts, breakdown) in profiles {
        for attempt in attempts.as_ref() {
            let depth = attempt.depth().min(funnel.steps);
            if depth == 0 {
                continue;
            }
            let week = week_of(attempt.reached[0]);
            let per_week = weekly.entry(week).or_insert_with(|| vec![0; funnel.steps]);
            let per_value = breakdown.map(|v| by_value.entry(v.to_string()).or_insert_with(|| vec![0; funnel.steps]));
            for step in 0..depth {
                counts[step] += 1;
                per_week[step] += 1;
                if step > 0 {
                    gaps[step].push(attempt.reached[step].saturating_sub(attempt.reached[step - 1]));
                }
            }
            if let Some(per_value) = per_value {
                per_value.iter_mut().take(depth).for_each(|c| *c += 1);
            }
        }
    }
    let entered = counts.first().copied().unwrap_or(0);
    let steps = (0..funnel.steps)
        .map(|i| {
            let previous = if i == 0 { entered } else { counts[i - 1] };
            StepResult {
                count: counts[i],
                conversion: ratio(counts[i], entered),
                from_previous: ratio(counts[i], previous),
                dropped: previous - counts[i],
                time_from_previous: Durations::of(std::mem::take(&mut gaps[i])),
            }
        })
        .collect();
    let mut values: Vec<(String, Vec<u64>)> = by_value.into_iter().collect();
    values.sort_by(|a, b| b.1.first().cmp(&a.1.first()).then_with(|| a.0.cmp(&b.0)));
    if values.len() > breakdown_top {
        let rest = values.split_off(breakdown_top);
        let mut other = vec![0; funnel.steps];
        for (_, c) in rest {
            other.iter_mut().zip(c).for_each(|(o, c)| *o += c);
        }
        values.push(("(other)".into(), other));
    }
    FunnelResult { steps, breakdown: values, weekly: weekly.into_iter().collect() }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Monday 00:00 UTC of the week holding `at_ms`.
pub fn week_of(at_ms: i64) -> i64 {
    const DAY: i64 = 86_400_000;
    let day = at_ms.div_euclid(DAY);
    // 1970-01-01 was a Thursday: three days after a Monday.
    (day - (day + 3).rem_euclid(7)) * DAY
}
