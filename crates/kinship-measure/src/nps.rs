//! Net Promoter Score with its uncertainty.
//!
//! Answers 9–10 are promoters, 7–8 passives, 0–6 detractors; NPS is the promoters' share
//! minus the detractors', in points (−100 to 100). Each answer is a draw from a three-way
//! distribution scoring +1, 0 or −1, so the score's variance per answer is
//! `p + d − (p − d)²` and its standard error `√((p + d − (p − d)²) / n)`; the 95% interval
//! is ±1.96 standard errors. With p = 0.5, d = 0.2 and n = 100 that is 30 ± 15.3 points.
//!
//! Revenue-weighted NPS weighs each answer by its customer's revenue; its interval uses the
//! effective sample size `(Σw)² / Σw²` (Kish), so a few large customers carry the
//! uncertainty of a few answers.

use serde::Serialize;

/// The z value of a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// Which group an answer falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Promoter,
    Passive,
    Detractor,
}

impl Group {
    /// The group of a 0–10 answer; anything else is not an answer.
    pub fn of(score: f64) -> Option<Group> {
        if !(0.0..=10.0).contains(&score) || score.fract() != 0.0 {
            return None;
        }
        Some(match score as u8 {
            9..=10 => Group::Promoter,
            7..=8 => Group::Passive,
            _ => Group::Detractor,
        })
    }
}

/// Answers summed, possibly weighted.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    pub answers: u64,
    pub promoters: f64,
    pub passives: f64,
    pub detractors: f64,
    /// Σw² over the answers, for the effective sample size.
    pub weight_squares: f64,
}

impl Tally {
    /// Counts one answer with weight `weight` (1 for plain NPS, revenue for revenue-weighted).
    /// Answers outside 0–10 and weights that are not positive and finite are not counted.
    pub fn add(&mut self, score: f64, weight: f64) -> bool {
        let Some(group) = Group::of(score) else { return false };
        if !(weight.is_finite() && weight > 0.0) {
            return false;
        }
        self.answers += 1;
        self.weight_squares += weight * weight;
        match group {
            Group::Promoter => self.promoters += weight,
            Group::Passive => self.passives += weight,
            Group::Detractor => self.detractors += weight,
        }
        true
    }

    pub fn merge(&mut self, other: &Tally) {
        self.answers += other.answers;
        self.promoters += other.promoters;
        self.passives += other.passives;
        self.detractors += other.detractors;
        self.weight_squares += other.weight_squares;
    }

    fn total(&self) -> f64 {
        self.promoters + self.passives + self.detractors
    }

    /// The score with its interval, or `None` under `min_answers` (too few to show).
    pub fn score(&self, min_answers: u64) -> Option<Score> {
        let total = self.total();
        if self.answers < min_answers.max(1) || total <= 0.0 {
            return None;
        }
        let (p, d) = (self.promoters / total, self.detractors / total);
        let effective = total * total / self.weight_squares;
        let variance = (p + d - (p - d) * (p - d)).max(0.0);
        let half_width = Z95 * (variance / effective).sqrt() * 100.0;
        let nps = (p - d) * 100.0;
        Some(Score {
            nps,
            margin: half_width,
            low: nps - half_width,
            high: nps + half_width,
            promoters: p,
            passives: self.passives / total,
            detractors: d,
            answers: self.answers,
            effective_answers: effective,
        })
    }
}

/// NPS in points with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Score {
    pub nps: f64,
    /// Half the interval's width: the ± of `nps`.
    pub margin: f64,
    pub low: f64,
    pub high: f64,
    /// Shares of the (weighted) answers.
    pub promoters: f64,
    pub passives: f64,
    pub detractors: f64,
    pub answers: u64,
    /// `answers` for plain NPS; smaller when a few answers carry most of the weight.
    pub effective_answers: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worked_interval() {
        let mut t = Tally::default();
        for (score, n) in [(10.0, 50), (8.0, 30), (3.0, 20)] {
            for _ in 0..n {
                assert!(t.add(score, 1.0));
            }
        }
        let s = t.score(1).unwrap();
        assert!((s.nps - 30.0).abs() < 1e-9);
        assert!((s.margin - 15.3).abs() < 0.05, "{s:?}");
        assert!((s.margin - 15.308).abs() < 0.001, "{s:?}");
        assert_eq!(t.score(101), None, "under the minimum it is not shown");
    }

    #[test]
    fn groups_and_bad_answers() {
        assert_eq!(Group::of(9.0), Some(Group::Promoter));
        assert_eq!(Group::of(7.0), Some(Group::Passive));
        assert_eq!(Group::of(6.0), Some(Group::Detractor));
        assert_eq!(Group::of(0.0), Some(Group::Detractor));
        for bad in [-1.0, 11.0, 8.5, f64::NAN] {
            assert_eq!(Group::of(bad), None);
        }
        let mut t = Tally::default();
        assert!(!t.add(10.0, 0.0) && !t.add(10.0, f64::INFINITY) && t.answers == 0);
    }

    #[test]
    fn revenue_weighting_counts_big_customers_more_and_knows_it_has_fewer_answers() {
        let mut t = Tally::default();
        t.add(10.0, 900.0);
        for _ in 0..9 {
            t.add(2.0, 100.0 / 9.0);
        }
        let s = t.score(1).unwrap();
        assert!((s.nps - 80.0).abs() < 1e-9, "{s:?}");
        assert!(s.effective_answers < 2.0, "{s:?}");
    }
}
