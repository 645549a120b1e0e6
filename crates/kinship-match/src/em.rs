//! Expectation-maximisation of m (and the match share λ) over counted comparison patterns.
//!
//! Pairs are summarised as `(pattern, count)`: a few thousand distinct patterns stand for
//! millions of pairs, so each iteration is cheap. u stays fixed (it comes from random
//! sampling), and fields listed as fixed are left out and keep their m: they are the
//! blocking rule's own columns, on which every pair in the session agrees by construction.

use crate::dependence::combine;
use crate::model::{pattern_level, Pattern};

/// Levels whose m falls below this are lifted to it: a level never seen among matches in
/// one training session should weigh strongly against, not infinitely.
const MIN_M: f64 = 1e-4;
const CONVERGED: f64 = 1e-6;

/// Result of one EM session.
#[derive(Debug, Clone, PartialEq)]
pub struct EmResult {
    /// Share of the session's pairs that match.
    pub lambda: f64,
    /// m per field and level (index 0, null, unused).
    pub m: Vec<Vec<f64>>,
    pub iterations: usize,
}

/// Runs EM from `m_start` and `lambda_start` until the parameters stop moving.
pub fn expectation_maximisation(
    patterns: &[(Pattern, u64)],
    u: &[Vec<f64>],
    m_start: &[Vec<f64>],
    fixed: &[bool],
    units: &[Vec<usize>],
    lambda_start: f64,
    max_iterations: usize,
) -> EmResult {
    let mut m = m_start.to_vec();
    let mut lambda = lambda_start;
    let log_u: Vec<Vec<f64>> = u.iter().map(|f| f.iter().map(|p| p.ln()).collect()).collect();
    let total: f64 = patterns.iter().map(|&(_, c)| c as f64).sum();
    let mut iterations = 0;
    while iterations < max_iterations && total > 0.0 {
        iterations += 1;
        let log_m: Vec<Vec<f64>> = m.iter().map(|f| f.iter().map(|p| p.ln()).collect()).collect();
        let mut expected: Vec<Vec<f64>> = m.iter().map(|f| vec![0.0; f.len()]).collect();
        let mut expected_matches = 0.0;
        for &(pattern, count) in patterns {
            let mut log_odds = lambda.ln() - (1.0 - lambda).ln();
            let field_log_ratio = |field: usize| {
                let level = pattern_level(pattern, field) as usize;
                // fixed fields are the session's blocking columns (and fields dependent on
                // them): every pair agrees on them, so they tell matches nothing here
                if level != 0 && !fixed[field] {
                    log_m[field][level] - log_u[field][level]
                } else {
                    0.0
                }
            };
            for unit in units {
                log_odds += match unit.as_slice() {
                    [field] => field_log_ratio(*field),
                    group => combine(group.iter().map(|&f| field_log_ratio(f))),
                };
            }
            let weight = count as f64 / (1.0 + (-log_odds).exp());
            expected_matches += weight;
            for (field, levels) in expected.iter_mut().enumerate() {
                levels[pattern_level(pattern, field) as usize] += weight;
            }
        }
        let new_lambda = (expected_matches / total).clamp(1e-9, 1.0 - 1e-9);
        let mut change = (new_lambda - lambda).abs();
        lambda = new_lambda;
        for (field, levels) in expected.iter().enumerate() {
            if fixed[field] {
                continue;
            }
            let Some(new_m) = normalised(&levels[1..]) else {
                continue;
            };
            for (level, value) in new_m.into_iter().enumerate() {
                change = change.max((m[field][level + 1] - value).abs());
                m[field][level + 1] = value;
            }
        }
        if change < CONVERGED {
            break;
        }
    }
    EmResult { lambda, m, iterations }
}

/// Shares of the non-null levels, floored at `MIN_M`; `None` when nothing was observed.
fn normalised(levels: &[f64]) -> Option<Vec<f64>> {
    let sum: f64 = levels.iter().sum();
    if sum <= 0.0 {
        return None;
    }
    let floored: Vec<f64> = levels.iter().map(|v| (v / sum).max(MIN_M)).collect();
    let floored_sum: f64 = floored.iter().sum();
    Some(floored.into_iter().map(|v| v / floored_sum).collect())
}

/// Starting m: each level four times as likely among matches as the one below it.
pub fn initial_m(level_count: usize) -> Vec<f64> {
    let mut m = vec![0.0];
    m.extend((1..level_count).map(|l| 4f64.powi(l as i32)));
    let sum: f64 = m.iter().sum();
    m.iter().map(|v| v / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_m_favours_agreement() {
        let m = initial_m(4);
        assert_eq!(m[0], 0.0);
        assert!((m.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(m[3] > m[2] && m[2] > m[1]);
    }

    #[test]
    fn floors_unseen_levels() {
        let m = normalised(&[0.0, 5.0, 5.0]).unwrap();
        assert!(m[0] >= MIN_M * 0.99 && (m.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(normalised(&[0.0, 0.0]).is_none());
    }
}
