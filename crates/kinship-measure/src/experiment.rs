//! A/B readouts from sufficient statistics: what each variant's profiles add up to (count,
//! sum, sum of squares; with CUPED, the same metric before exposure and the sum of
//! products). The formulas are GrowthBook's (`gbstats`), so a readout here and there agree
//! on the same numbers; the comparison is a test of this crate.

use serde::Serialize;
use statrs::distribution::{ChiSquared, Continuous, ContinuousCDF, Normal, StudentsT};

/// A metric's sum and sum of squares over a variant's `n` profiles (revenue per user).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SampleMean {
    pub n: u64,
    pub sum: f64,
    pub sum_squares: f64,
}

impl SampleMean {
    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }

    /// The sample variance (n − 1 in the denominator).
    pub fn variance(&self) -> f64 {
        if self.n <= 1 {
            return 0.0;
        }
        let n = self.n as f64;
        (self.sum_squares - self.sum * self.sum / n) / (n - 1.0)
    }

    fn joined(&self, other: &Self) -> Self {
        Self { n: self.n + other.n, sum: self.sum + other.sum, sum_squares: self.sum_squares + other.sum_squares }
    }
}

/// How many of a variant's `n` profiles converted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Proportion {
    pub n: u64,
    pub converted: u64,
}

impl Proportion {
    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.converted as f64 / self.n as f64
        }
    }

    /// p(1 − p), as GrowthBook takes it.
    pub fn variance(&self) -> f64 {
        let p = self.mean();
        p * (1.0 - p)
    }
}

/// A metric per variant: a mean, a proportion, or a mean adjusted by the same metric before
/// exposure (CUPED).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Statistic {
    Mean(SampleMean),
    Proportion(Proportion),
    Adjusted(Adjusted),
}

/// CUPED: the metric after exposure, the same metric before it, and the sum over profiles
/// of their products. `theta` is set from both variants together ([`frequentist`] and
/// [`bayesian`] do it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Adjusted {
    pub post: SampleMean,
    pub pre: SampleMean,
    pub sum_products: f64,
    pub theta: f64,
}

impl Adjusted {
    pub fn new(post: SampleMean, pre: SampleMean, sum_products: f64) -> Self {
        Self { post, pre, sum_products, theta: 0.0 }
    }

    fn covariance(&self) -> f64 {
        if self.post.n <= 1 {
            return 0.0;
        }
        let n = self.post.n as f64;
        (self.sum_products - self.post.sum * self.pre.sum / n) / (n - 1.0)
    }
}

impl Statistic {
    pub fn n(&self) -> u64 {
        match self {
            Statistic::Mean(s) => s.n,
            Statistic::Proportion(p) => p.n,
            Statistic::Adjusted(a) => a.post.n,
        }
    }

    /// The mean compared (adjusted, for CUPED).
    pub fn mean(&self) -> f64 {
        match self {
            Statistic::Mean(s) => s.mean(),
            Statistic::Proportion(p) => p.mean(),
            Statistic::Adjusted(a) => a.post.mean() - a.theta * a.pre.mean(),
        }
    }

    /// The mean as measured, the base of a relative lift.
    pub fn unadjusted_mean(&self) -> f64 {
        match self {
            Statistic::Adjusted(a) => a.post.mean(),
            other => other.mean(),
        }
    }

    pub fn variance(&self) -> f64 {
        match self {
            Statistic::Mean(s) => s.variance(),
            Statistic::Proportion(p) => p.variance(),
            Statistic::Adjusted(a) => {
                if a.post.n <= 1 {
                    return 0.0;
                }
                a.post.variance() + a.theta * a.theta * a.pre.variance() - 2.0 * a.theta * a.covariance()
            }
        }
    }
}

/// Sets CUPED's theta from both variants together (the regression of the metric on its
/// value before exposure); with no variance to regress on, the plain metric is compared.
fn with_theta(control: &Statistic, variant: &Statistic) -> (Statistic, Statistic) {
    let (Statistic::Adjusted(a), Statistic::Adjusted(b)) = (control, variant) else { return (*control, *variant) };
    let (post, pre) = (a.post.joined(&b.post), a.pre.joined(&b.pre));
    let joint = Adjusted::new(post, pre, a.sum_products + b.sum_products);
    let theta = if pre.variance() == 0.0 || post.variance() == 0.0 { 0.0 } else { joint.covariance() / pre.variance() };
    if theta == 0.0 {
        return (Statistic::Mean(a.post), Statistic::Mean(b.post));
    }
    (Statistic::Adjusted(Adjusted { theta, ..*a }), Statistic::Adjusted(Adjusted { theta, ..*b }))
}

/// What a readout compares and how.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Settings {
    /// 1 − the interval's coverage: 0.05 gives 95% intervals.
    pub alpha: f64,
    /// The lift relative to control (`(b − a) / a`), else absolute (`b − a`).
    pub relative: bool,
    /// Sequential testing (always-valid intervals, safe to look at daily) with this tuning
    /// parameter (GrowthBook's default is 5,000: the sample size the test is tightest at).
    pub sequential: Option<f64>,
}

impl Default for Settings {
    fn default() -> Self {
        Self { alpha: 0.05, relative: true, sequential: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize)]
pub enum ReadoutError {
    #[error("the control's mean is 0, so a relative lift has no base")]
    ZeroBaseline,
    #[error("a variant's metric has no variance (too few profiles, or all alike)")]
    NoVariance,
    #[error("a variant has no profiles")]
    Empty,
}

/// A frequentist readout: Welch's t-test on the lift (delta method for a relative one).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Frequentist {
    pub lift: f64,
    pub stddev: f64,
    pub ci: (f64, f64),
    pub p_value: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub dof: f64,
}

/// A Bayesian readout with a flat prior on the lift.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bayesian {
    pub lift: f64,
    pub stddev: f64,
    pub ci: (f64, f64),
    pub chance_to_win: f64,
    /// Expected loss of choosing control, and of choosing the variant.
    pub risk: (f64, f64),
}

/// The lift's estimate and variance, once the inputs can bear a readout.
fn lift(control: &Statistic, variant: &Statistic, relative: bool) -> Result<(f64, f64), ReadoutError> {
    if control.n() == 0 || variant.n() == 0 {
        return Err(ReadoutError::Empty);
    }
    let (mean_a, mean_b, base) = (control.mean(), variant.mean(), control.unadjusted_mean());
    if relative && (mean_a == 0.0 || base == 0.0) {
        return Err(ReadoutError::ZeroBaseline);
    }
    let (var_a, var_b) = (control.variance(), variant.variance());
    if var_a <= 0.0 || var_b <= 0.0 {
        return Err(ReadoutError::NoVariance);
    }
    let (n_a, n_b) = (control.n() as f64, variant.n() as f64);
    let (estimate, variance) = if relative {
        let mean_b_unadjusted = variant.unadjusted_mean();
        ((mean_b - mean_a) / base, var_b / (base * base * n_b) + var_a * mean_b_unadjusted.powi(2) / (base.powi(4) * n_a))
    } else {
        (mean_b - mean_a, var_b / n_b + var_a / n_a)
    };
    if !(estimate.is_finite() && variance.is_finite() && variance > 0.0) {
        return Err(ReadoutError::NoVariance);
    }
    Ok((estimate, variance))
}

/// Compares `variant` with `control`: two-sided, fixed-horizon or (with `sequential`)
/// always valid.
pub fn frequentist(control: &Statistic, variant: &Statistic, settings: &Settings) -> Result<Frequentist, ReadoutError> {
    let (control, variant) = with_theta(control, variant);
    let (estimate, variance) = lift(&control, &variant, settings.relative)?;
    let stddev = variance.sqrt();
    let (n_a, n_b) = (control.n() as f64, variant.n() as f64);
    let (var_a, var_b) = (control.variance(), variant.variance());
    let dof = (var_b / n_b + var_a / n_a).powi(2) / (var_b.powi(2) / (n_b * n_b * (n_b - 1.0)) + var_a.powi(2) / (n_a * n_a * (n_a - 1.0)));
    let (ci, p_value) = match settings.sequential {
        None => {
            let t = StudentsT::new(0.0, 1.0, dof).map_err(|_| ReadoutError::NoVariance)?;
            let width = quantile(&t, 1.0 - settings.alpha / 2.0) * stddev;
            ((estimate - width, estimate + width), 2.0 * t.sf((estimate / stddev).abs()))
        }
        Some(tuning) => {
            // Waudby-Smith et al. 2023 (arXiv 2103.06476v7), eqs. 9, 155 and 161, as GrowthBook uses them.
            let n = n_a + n_b;
            let alpha = settings.alpha;
            let rho = ((-2.0 * alpha.ln() + (-2.0 * alpha.ln() + 1.0).ln()) / tuning).sqrt();
            let s2 = variance * n;
            let nr2 = n * rho * rho + 1.0;
            let width = s2.sqrt() * ((2.0 * nr2) * ((nr2.sqrt()) / alpha).ln() / (n * rho).powi(2)).sqrt();
            let st2 = estimate * estimate * n / variance;
            let e_value = (rho * rho * st2 / (2.0 * nr2)).exp() / nr2.sqrt();
            ((estimate - width, estimate + width), (1.0 / e_value).min(1.0))
        }
    };
    Ok(Frequentist { lift: estimate, stddev, ci, p_value, dof })
}

/// The `p` quantile of `t`: statrs' search polished by Newton's steps on its (accurate)
/// CDF. The search alone is off by a few parts in 10⁵ at hundreds of thousands of degrees
/// of freedom, enough to move an interval's end in the fourth digit.
fn quantile(t: &StudentsT, p: f64) -> f64 {
    let mut x = t.inverse_cdf(p);
    for _ in 0..4 {
        let density = t.pdf(x);
        if density.is_nan() || density <= 0.0 {
            break;
        }
        let step = (t.cdf(x) - p) / density;
        x -= step;
        if step.abs() <= 1e-15 * x.abs().max(1.0) {
            break;
        }
    }
    x
}

/// The chance the variant beats control, the expected loss of each choice, and a credible
/// interval, under a flat prior on the lift.
pub fn bayesian(control: &Statistic, variant: &Statistic, settings: &Settings) -> Result<Bayesian, ReadoutError> {
    let (control, variant) = with_theta(control, variant);
    let (mean, variance) = lift(&control, &variant, settings.relative)?;
    let stddev = variance.sqrt();
    let posterior = Normal::new(mean, stddev).map_err(|_| ReadoutError::NoVariance)?;
    let ci = (posterior.inverse_cdf(settings.alpha / 2.0), posterior.inverse_cdf(1.0 - settings.alpha / 2.0));
    let chance_to_win = posterior.sf(0.0);
    // The truncated normal's means, multiplied out by the chances they are conditioned on.
    let unit = Normal::new(0.0, 1.0).expect("a standard normal");
    let at_zero = -mean / stddev;
    let (below, density) = (unit.cdf(at_zero), unit.pdf(at_zero));
    let risk_control = mean * (1.0 - below) + stddev * density;
    let risk_variant = stddev * density - mean * below;
    Ok(Bayesian { lift: mean, stddev, ci, chance_to_win, risk: (risk_control, risk_variant) })
}

/// The chi-square test's p-value that profiles split across variants as their weights say:
/// a small one (GrowthBook warns below 0.001) means assignment or tracking is broken.
pub fn sample_ratio_mismatch(profiles: &[u64], weights: &[f64]) -> f64 {
    let total: u64 = profiles.iter().sum();
    let total_weight: f64 = weights.iter().sum();
    if total == 0 || profiles.len() < 2 || profiles.len() != weights.len() || total_weight <= 0.0 {
        return 1.0;
    }
    let statistic: f64 = profiles
        .iter()
        .zip(weights)
        .filter(|(_, w)| **w > 0.0)
        .map(|(&observed, w)| {
            let expected = w / total_weight * total as f64;
            (observed as f64 - expected).powi(2) / expected
        })
        .sum();
    ChiSquared::new((profiles.len() - 1) as f64).map_or(1.0, |chi2| chi2.sf(statistic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_baseline_or_no_variance_is_an_error_not_a_number() {
        let zero = Statistic::Proportion(Proportion { n: 100, converted: 0 });
        let some = Statistic::Proportion(Proportion { n: 100, converted: 10 });
        assert_eq!(frequentist(&zero, &some, &Settings::default()), Err(ReadoutError::ZeroBaseline));
        let alike = Statistic::Mean(SampleMean { n: 10, sum: 10.0, sum_squares: 10.0 });
        assert_eq!(bayesian(&some, &alike, &Settings::default()), Err(ReadoutError::NoVariance));
        let empty = Statistic::Mean(SampleMean::default());
        assert_eq!(frequentist(&some, &empty, &Settings::default()), Err(ReadoutError::Empty));
    }

    #[test]
    fn an_even_split_has_no_mismatch_and_a_skewed_one_does() {
        assert!((sample_ratio_mismatch(&[5000, 5000], &[0.5, 0.5]) - 1.0).abs() < 1e-12);
        assert!(sample_ratio_mismatch(&[5000, 5300], &[0.5, 0.5]) < 0.01);
        assert_eq!(sample_ratio_mismatch(&[0, 0], &[0.5, 0.5]), 1.0);
    }
}
