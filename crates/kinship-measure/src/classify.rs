//! Judging a score against what happened: the area under the ROC curve, precision of the
//! top alerts, calibration by band, and a logistic-regression baseline fitted on the same
//! measures (what a health score must beat, or match, to be worth its configuration).

use serde::Serialize;

/// The probability that a randomly chosen positive scores above a randomly chosen negative
/// (ties count half): the Mann–Whitney statistic over `(score, positive)`. `None` without
/// both kinds. NaN scores are left out.
pub fn auc(scored: &[(f64, bool)]) -> Option<f64> {
    let mut sorted: Vec<(f64, bool)> = scored.iter().copied().filter(|(s, _)| !s.is_nan()).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = sorted.iter().filter(|(_, p)| *p).count() as f64;
    let negatives = sorted.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    // Sum of the positives' ranks, ties given their average rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        let average_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += average_rank * sorted[i..j].iter().filter(|(_, p)| *p).count() as f64;
        i = j;
    }
    Some((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// How much better scorer `a` ranks than scorer `b` on the same cases, with its 95%
/// interval: (AUC(a) − AUC(b), low, high), the interval from `resamples` paired bootstrap
/// resamples of the cases (each draws the same cases for both scorers), seeded so a run can
/// be repeated. `a[i]` and `b[i]` are one case's two scores and must agree on its outcome.
/// An interval holding 0 says the data cannot tell the two apart: one matches the other.
/// `None` when either AUC is undefined or the slices differ in length.
pub fn auc_difference(a: &[(f64, bool)], b: &[(f64, bool)], resamples: usize, seed: u64) -> Option<(f64, f64, f64)> {
    if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.1 != y.1) {
        return None;
    }
    let difference = auc(a)? - auc(b)?;
    // splitmix64: a small, well-mixed generator, enough to draw indices.
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let n = a.len() as u64;
    let mut differences: Vec<f64> = Vec::with_capacity(resamples);
    let (mut draw_a, mut draw_b) = (Vec::with_capacity(a.len()), Vec::with_capacity(a.len()));
    for _ in 0..resamples {
        draw_a.clear();
        draw_b.clear();
        for _ in 0..n {
            let i = (next() % n) as usize;
            draw_a.push(a[i]);
            draw_b.push(b[i]);
        }
        if let (Some(x), Some(y)) = (auc(&draw_a), auc(&draw_b)) {
            differences.push(x - y);
        }
    }
    if differences.is_empty() {
        return None;
    }
    differences.sort_by(f64::total_cmp);
    let at = |q: f64| differences[((q * differences.len() as f64) as usize).min(differences.len() - 1)];
    Some((difference, at(0.025), at(0.975)))
}

/// Of the `k` highest-scoring, the share that are positive (`None` for an empty list).
pub fn precision_at(scored: &[(f64, bool)], k: usize) -> Option<f64> {
    let mut sorted: Vec<(f64, bool)> = scored.iter().copied().filter(|(s, _)| !s.is_nan()).collect();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let top = &sorted[..k.min(sorted.len())];
    (!top.is_empty()).then(|| top.iter().filter(|(_, p)| *p).count() as f64 / top.len() as f64)
}

/// A logistic regression: standardised features, weights found by Newton's method
/// (iteratively reweighted least squares) with a small ridge so separable data still ends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Logistic {
    pub intercept: f64,
    /// Per feature, on the standardised scale.
    pub weights: Vec<f64>,
    means: Vec<f64>,
    scales: Vec<f64>,
}

impl Logistic {
    /// Fits `rows` (features, positive). `None` for no rows or rows of unequal length.
    pub fn fit(rows: &[(Vec<f64>, bool)]) -> Option<Logistic> {
        let width = rows.first()?.0.len();
        if rows.iter().any(|(x, _)| x.len() != width) {
            return None;
        }
        let n = rows.len() as f64;
        // A missing value (NaN) stands at its feature's mean over the known values, in fitting
        // as in `predict`, so "no answer" is not read as a zero.
        let means: Vec<f64> = (0..width)
            .map(|j| {
                let known: Vec<f64> = rows.iter().map(|(x, _)| x[j]).filter(|v| v.is_finite()).collect();
                if known.is_empty() {
                    0.0
                } else {
                    known.iter().sum::<f64>() / known.len() as f64
                }
            })
            .collect();
        let clean = |v: f64, j: usize| if v.is_finite() { v } else { means[j] };
        let scales: Vec<f64> = (0..width)
            .map(|j| {
                let var = rows.iter().map(|(x, _)| (clean(x[j], j) - means[j]).powi(2)).sum::<f64>() / n;
                // Relative: rounding leaves a constant column a variance of about 1e-28,
                // whose root would blow a zero weight up to any size per unit.
                if var > 1e-12 * (1.0 + means[j].powi(2)) {
                    var.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        let standard =
            |x: &[f64]| -> Vec<f64> { std::iter::once(1.0).chain((0..width).map(|j| (clean(x[j], j) - means[j]) / scales[j])).collect() };
        let design: Vec<(Vec<f64>, f64)> = rows.iter().map(|(x, y)| (standard(x), f64::from(u8::from(*y)))).collect();
        let dim = width + 1;
        let mut beta = vec![0.0; dim];
        const RIDGE: f64 = 1e-4;
        for _ in 0..50 {
            // Gradient and Hessian of the penalised log-likelihood.
            let mut gradient = vec![0.0; dim];
            let mut hessian = vec![vec![0.0; dim]; dim];
            for (x, y) in &design {
                let p = sigmoid(dot(&beta, x));
                let w = (p * (1.0 - p)).max(1e-12);
                for a in 0..dim {
                    gradient[a] += (y - p) * x[a];
                    for b in 0..dim {
                        hessian[a][b] += w * x[a] * x[b];
                    }
                }
            }
            for a in 1..dim {
                gradient[a] -= RIDGE * n * beta[a];
                hessian[a][a] += RIDGE * n;
            }
            let step = solve(hessian, gradient)?;
            let size = step.iter().map(|s| s.abs()).fold(0.0, f64::max);
            beta.iter_mut().zip(&step).for_each(|(b, s)| *b += s);
            if size < 1e-9 {
                break;
            }
        }
        Some(Logistic { intercept: beta[0], weights: beta[1..].to_vec(), means, scales })
    }

    /// Each feature's spread (standard deviation) in the rows fitted: a weight divided by it
    /// is the weight per unit of the feature.
    pub fn scales(&self) -> &[f64] {
        &self.scales
    }

    /// The predicted probability of a positive.
    pub fn predict(&self, x: &[f64]) -> f64 {
        let z = self.intercept
            + self
                .weights
                .iter()
                .enumerate()
                .map(|(j, w)| {
                    let v = x.get(j).copied().filter(|v| v.is_finite()).unwrap_or(self.means[j]);
                    w * (v - self.means[j]) / self.scales[j]
                })
                .sum::<f64>();
        sigmoid(z)
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Solves `a · x = b` by Gaussian elimination with partial pivoting; `None` when singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let (above, below) = a.split_at_mut(col + 1);
        let pivot_row = &above[col];
        for (offset, row) in below.iter_mut().enumerate() {
            let factor = row[col] / pivot_row[col];
            row.iter_mut().zip(pivot_row).skip(col).for_each(|(x, p)| *x -= factor * p);
            b[col + 1 + offset] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let rest: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - rest) / a[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_by_hand() {
        // Positives at 0.9 and 0.4, negatives at 0.5 and 0.1: of four pairs three are ordered.
        let scored = [(0.9, true), (0.4, true), (0.5, false), (0.1, false)];
        assert_eq!(auc(&scored), Some(0.75));
        assert_eq!(auc(&[(1.0, true), (1.0, false)]), Some(0.5), "a tie counts half");
        assert_eq!(auc(&[(1.0, true)]), None);
        assert_eq!(precision_at(&scored, 2), Some(0.5));
        assert_eq!(precision_at(&scored, 1), Some(1.0));
    }

    #[test]
    fn logistic_regression_finds_the_signal_and_ignores_noise() {
        // y is likelier as x0 grows; x1 is noise.
        let mut rows = Vec::new();
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for _ in 0..4000 {
            let (x0, x1) = (next() * 10.0, next() * 10.0);
            let p = 1.0 / (1.0 + (-(x0 - 5.0)).exp());
            rows.push((vec![x0, x1], next() < p));
        }
        let model = Logistic::fit(&rows).unwrap();
        // On the standardised scale, x0's weight is about 1 × its spread (10 / √12 ≈ 2.9).
        assert!((model.weights[0] - 2.89).abs() < 0.3, "{model:?}");
        assert!(model.weights[1].abs() < 0.15, "{model:?}");
        assert!((model.predict(&[5.0, 3.0]) - 0.5).abs() < 0.06);
        let scored: Vec<(f64, bool)> = rows.iter().map(|(x, y)| (model.predict(x), *y)).collect();
        assert!(auc(&scored).unwrap() > 0.85);
        // Separable data ends, thanks to the ridge.
        let separable = vec![(vec![0.0], false), (vec![1.0], false), (vec![2.0], true), (vec![3.0], true)];
        let m = Logistic::fit(&separable).unwrap();
        assert!(m.predict(&[3.0]) > 0.9 && m.predict(&[0.0]) < 0.1);
        assert_eq!(Logistic::fit(&[]), None);
    }

    #[test]
    fn a_missing_value_stands_at_its_mean_in_fitting_and_predicting() {
        // x1 (a survey answer, say) is known for a fifth of the rows, around 8; read as 0 when
        // missing, it would look like a strong signal of its own.
        let mut rows = Vec::new();
        for i in 0..2000 {
            let x0 = f64::from(i % 10);
            let x1 = if i % 5 == 0 { 7.0 + f64::from(i % 3) } else { f64::NAN };
            rows.push((vec![x0, x1], (i * 7919) % 10 < i % 10));
        }
        let model = Logistic::fit(&rows).unwrap();
        assert!((model.means[1] - 8.0).abs() < 0.01, "{model:?}");
        assert_eq!(model.predict(&[4.0, f64::NAN]), model.predict(&[4.0, model.means[1]]));
        assert!(model.weights[1].abs() < 0.2, "missingness is not a signal here: {model:?}");
        assert!(model.weights[0] > 1.0, "{model:?}");
    }
}
