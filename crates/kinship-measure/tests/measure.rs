//! Measures checked against a peer and against answers known by construction.
//!
//! Experiments: readouts on sufficient statistics made from simulated profiles (conversion,
//! revenue with most profiles at zero and a long tail, revenue adjusted by the weeks before
//! exposure), relative and absolute, fixed-horizon and sequential, compared with GrowthBook's
//! own engine (`gbstats` from PyPI, run by `tests/gbstats_readouts.py`) to 4 significant digits.

use kinship_measure::experiment::{bayesian, frequentist, sample_ratio_mismatch, Adjusted, Proportion, SampleMean, Settings, Statistic};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A small deterministic generator (xorshift64*), so cases are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal draw (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-300), self.next());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// `n` profiles' revenue: most spend nothing, the rest a log-normal amount, raised by `lift`;
/// each with what they spent in the weeks before exposure.
fn revenue(rng: &mut Rng, n: u64, buy_rate: f64, lift: f64) -> (SampleMean, SampleMean, f64) {
    let (mut post, mut pre, mut products) = (SampleMean { n, ..SampleMean::default() }, SampleMean { n, ..SampleMean::default() }, 0.0);
    for _ in 0..n {
        // A regular buys most weeks, anyone else seldom: spending before predicts spending after.
        let habit = (3.0 + 0.8 * rng.normal()).exp();
        let regular = rng.next() < buy_rate;
        let buys = |rng: &mut Rng, boost: f64| rng.next() < if regular { 0.8 } else { 0.03 } * boost;
        let before = if buys(rng, 1.0) { habit * (0.5 + rng.next()) } else { 0.0 };
        let after = if buys(rng, 1.0 + lift / 2.0) { habit * (0.5 + rng.next()) * (1.0 + lift / 2.0) } else { 0.0 };
        post.sum += after;
        post.sum_squares += after * after;
        pre.sum += before;
        pre.sum_squares += before * before;
        products += after * before;
    }
    (post, pre, products)
}

fn as_json(s: &Statistic) -> Value {
    match s {
        Statistic::Proportion(p) => json!({"kind": "proportion", "n": p.n, "converted": p.converted}),
        Statistic::Mean(m) => json!({"kind": "mean", "n": m.n, "sum": m.sum, "sum_squares": m.sum_squares}),
        Statistic::Adjusted(a) => json!({
            "kind": "adjusted", "n": a.post.n, "post_sum": a.post.sum, "post_sum_squares": a.post.sum_squares,
            "pre_sum": a.pre.sum, "pre_sum_squares": a.pre.sum_squares, "sum_products": a.sum_products,
        }),
    }
}

struct Case {
    control: Statistic,
    variant: Statistic,
    settings: Settings,
}

fn cases() -> Vec<Case> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::new();
    let settings = [
        Settings::default(),
        Settings { relative: false, ..Settings::default() },
        Settings { alpha: 0.1, ..Settings::default() },
        Settings { sequential: Some(5_000.0), ..Settings::default() },
        Settings { sequential: Some(1_000.0), relative: false, alpha: 0.01 },
    ];
    for (i, &(n, rate, lift)) in
        [(60, 0.3, 0.2), (1_000, 0.05, 0.1), (20_000, 0.02, 0.03), (150_000, 0.11, -0.01), (400, 0.5, 0.0)].iter().enumerate()
    {
        let converted = |rng: &mut Rng, p: f64| (0..n).filter(|_| rng.next() < p).count() as u64;
        let a = Proportion { n, converted: converted(&mut rng, rate) };
        let b = Proportion { n: n + i as u64 * 7, converted: converted(&mut rng, rate * (1.0 + lift)) };
        for s in settings {
            out.push(Case { control: Statistic::Proportion(a), variant: Statistic::Proportion(b), settings: s });
        }
        let (post_a, pre_a, products_a) = revenue(&mut rng, n, rate, 0.0);
        let (post_b, pre_b, products_b) = revenue(&mut rng, n + 13, rate, lift);
        for s in settings {
            out.push(Case { control: Statistic::Mean(post_a), variant: Statistic::Mean(post_b), settings: s });
            out.push(Case {
                control: Statistic::Adjusted(Adjusted::new(post_a, pre_a, products_a)),
                variant: Statistic::Adjusted(Adjusted::new(post_b, pre_b, products_b)),
                settings: s,
            });
        }
    }
    out
}

/// A Python with gbstats: `KINSHIP_TEST_PYTHON` (or `python3`) makes a virtual environment
/// under the target directory once and installs gbstats from PyPI into it.
fn python_with_gbstats() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gbstats-venv");
    let python = venv.join("bin").join("python");
    let ready = || Command::new(&python).args(["-c", "import gbstats"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if ready() {
        return python;
    }
    let base = std::env::var("KINSHIP_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let made = Command::new(&base).args(["-m", "venv"]).arg(&venv).status();
    assert!(made.is_ok_and(|s| s.success()), "`{base} -m venv` failed: install python3-venv, or set KINSHIP_TEST_PYTHON");
    let pip = Command::new(&python).args(["-m", "pip", "install", "--disable-pip-version-check", "--quiet", "gbstats==0.8.0"]).status();
    assert!(pip.is_ok_and(|s| s.success()) && ready(), "installing gbstats from PyPI failed");
    python
}

fn close(ours: f64, theirs: f64) -> bool {
    (ours - theirs).abs() <= 1e-4 * ours.abs().max(theirs.abs()) + 1e-12 || (ours.is_infinite() && ours == theirs)
}

#[test]
fn readouts_agree_with_growthbooks_engine_to_four_significant_digits() {
    let cases = cases();
    let mut input: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({
                "control": as_json(&c.control), "variant": as_json(&c.variant), "relative": c.settings.relative,
                "alpha": c.settings.alpha, "sequential": c.settings.sequential,
            })
        })
        .collect();
    let splits: [(&[u64], &[f64]); 4] = [
        (&[5_000, 5_300], &[0.5, 0.5]),
        (&[10_000, 10_050], &[0.5, 0.5]),
        (&[3_000, 3_100, 2_700], &[1.0, 1.0, 1.0]),
        (&[9_000, 1_050], &[0.9, 0.1]),
    ];
    input.extend(splits.iter().map(|(p, w)| json!({"srm": {"profiles": p, "weights": w}})));
    let mut child = Command::new(python_with_gbstats())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gbstats_readouts.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "gbstats failed");
    let theirs: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let (mut compared, mut adjusted, mut sequential) = (0, 0, 0);
    for (i, case) in cases.iter().enumerate() {
        let (f, b) = (&theirs[i]["frequentist"], &theirs[i]["bayesian"]);
        let ours_f = frequentist(&case.control, &case.variant, &case.settings);
        let ours_b = bayesian(&case.control, &case.variant, &case.settings);
        match (&ours_f, f["error"].as_str()) {
            (Ok(ours), None) => {
                let pairs = [
                    ("lift", ours.lift, &f["lift"]),
                    ("ci low", ours.ci.0, &f["ci"][0]),
                    ("ci high", ours.ci.1, &f["ci"][1]),
                    ("p", ours.p_value, &f["p_value"]),
                ];
                for (what, ours, theirs) in pairs {
                    let theirs = theirs.as_f64().unwrap();
                    assert!(
                        close(ours, theirs),
                        "case {i} frequentist {what}: ours {ours}, gbstats {theirs}; ours {ours_f:?}, gbstats {f}"
                    );
                    compared += 1;
                }
            }
            (Err(_), Some(_)) => {}
            (ours, theirs) => panic!("case {i}: ours {ours:?}, gbstats's error {theirs:?}"),
        }
        match (&ours_b, b["error"].as_str()) {
            (Ok(ours), None) => {
                let pairs = [
                    ("lift", ours.lift, &b["lift"]),
                    ("ci low", ours.ci.0, &b["ci"][0]),
                    ("ci high", ours.ci.1, &b["ci"][1]),
                    ("chance to win", ours.chance_to_win, &b["chance_to_win"]),
                    ("risk of control", ours.risk.0, &b["risk"][0]),
                    ("risk of the variant", ours.risk.1, &b["risk"][1]),
                ];
                for (what, ours, theirs) in pairs {
                    let theirs = theirs.as_f64().unwrap();
                    assert!(close(ours, theirs), "case {i} bayesian {what}: ours {ours}, gbstats {theirs}");
                    compared += 1;
                }
            }
            (Err(_), Some(_)) => {}
            (ours, theirs) => panic!("case {i}: ours {ours:?}, gbstats's error {theirs:?}"),
        }
        if ours_f.is_ok() {
            adjusted += matches!(case.control, Statistic::Adjusted(_)) as usize;
            sequential += case.settings.sequential.is_some() as usize;
        }
    }
    for (j, (profiles, weights)) in splits.iter().enumerate() {
        let theirs = theirs[cases.len() + j]["srm"].as_f64().unwrap();
        let ours = sample_ratio_mismatch(profiles, weights);
        assert!(close(ours, theirs), "split {profiles:?}: ours {ours}, gbstats {theirs}");
    }
    assert!(compared > 600 && adjusted >= 20 && sequential >= 20, "{compared} numbers, {adjusted} CUPED, {sequential} sequential");
    eprintln!("{compared} numbers of {} readouts agree with gbstats ({adjusted} CUPED, {sequential} sequential)", cases.len());
}

/// CUPED narrows the interval when the metric before exposure predicts the one after, and
/// leaves the estimate's centre where the plain comparison would roughly put it.
#[test]
fn cuped_narrows_the_interval_when_the_past_predicts_the_future() {
    let mut rng = Rng(7);
    let (post_a, pre_a, products_a) = revenue(&mut rng, 20_000, 0.3, 0.0);
    let (post_b, pre_b, products_b) = revenue(&mut rng, 20_000, 0.3, 0.1);
    let settings = Settings::default();
    let plain = frequentist(&Statistic::Mean(post_a), &Statistic::Mean(post_b), &settings).unwrap();
    let adjusted = frequentist(
        &Statistic::Adjusted(Adjusted::new(post_a, pre_a, products_a)),
        &Statistic::Adjusted(Adjusted::new(post_b, pre_b, products_b)),
        &settings,
    )
    .unwrap();
    assert!(adjusted.stddev < plain.stddev * 0.9, "CUPED {} vs plain {}", adjusted.stddev, plain.stddev);
    assert!((adjusted.lift - plain.lift).abs() < 2.0 * plain.stddev);
    // Sequential intervals are wider than fixed-horizon ones at the same data: the price of peeking.
    let sequential =
        frequentist(&Statistic::Mean(post_a), &Statistic::Mean(post_b), &Settings { sequential: Some(5_000.0), ..settings }).unwrap();
    assert!(sequential.ci.1 - sequential.ci.0 > plain.ci.1 - plain.ci.0);
}
