//! Training without labels: u from random pairs, the prior from deterministic rules, m by
//! EM over the pairs of each training rule.

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::blocking::{column_index, Blocking, BlockingRule, Transform};
use crate::compare::ELSE_LEVEL;
use crate::config::MatchConfig;
use crate::dataset::Dataset;
use crate::dependence::{merge_groups, units, CoAgreement, DependentGroup};
use crate::em::{expectation_maximisation, initial_m};
use crate::model::{pattern_level, FieldParams, Model, Pattern, PreparedFields};
use crate::{MatchError, Progress};

/// Pairs drawn per parallel task when sampling u.
const SAMPLE_CHUNK: usize = 1 << 16;
/// Where EM starts λ; it converges from here on blocked pairs where matches are common.
const LAMBDA_START: f64 = 0.3;
/// The weakest a field's "nothing alike" level may count against a match, in bits: a field
/// that differs completely in a third of true duplicates is barely worth comparing.
const MAX_DISAGREEMENT_WEIGHT: f64 = -1.5;

/// Estimates m, u and the prior for a dataset.
pub fn train(dataset: &Dataset, config: &MatchConfig, progress: &dyn Progress) -> Result<Model, MatchError> {
    let candidates = Blocking::new(dataset, &config.blocking, config.max_block_size)?;
    train_with_blocking(dataset, config, &candidates, progress)
}

/// [`train`] with the blocks of `config.blocking` already built (`candidates`), so a batch
/// run builds them once. Separate training rules get blocks of their own.
pub fn train_with_blocking(
    dataset: &Dataset,
    config: &MatchConfig,
    candidates: &Blocking,
    progress: &dyn Progress,
) -> Result<Model, MatchError> {
    let own_blocks =
        if config.training_rules.is_empty() { None } else { Some(Blocking::new(dataset, &config.training_rules, config.max_block_size)?) };
    let blocking = own_blocks.as_ref().unwrap_or(candidates);
    let prepared = PreparedFields::new(dataset, config)?;
    let level_counts: Vec<usize> = config.fields.iter().map(|f| f.comparison.level_count()).collect();

    progress.phase("estimating u from random pairs", config.training.u_sample_pairs as u64);
    let (u, co_agreement) = estimate_u(dataset, &prepared, &level_counts, config, progress);
    let columns: Vec<String> = config.fields.iter().map(|f| f.column.clone()).collect();
    let declared: Vec<Vec<usize>> = config
        .dependent_fields
        .iter()
        .flatten()
        .map(|group| group.iter().filter_map(|c| columns.iter().position(|x| x == c)).collect())
        .collect();
    let detected = co_agreement.groups(&columns);
    let mut warnings = Vec::new();
    let declared: Vec<Vec<usize>> = declared
        .into_iter()
        .filter(|group| {
            let (share, pairs) = shared_values_without_person(dataset, &prepared, candidates, group, &detected);
            let seen = share >= MIN_SHARED_WITHOUT_PERSON && pairs >= MIN_JOINT_PAIRS;
            if !seen {
                let names: Vec<&str> = group.iter().map(|&f| columns[f].as_str()).collect();
                warnings.push(format!(
                    "dependent_fields [{}]: few records of different people share several of these \
                     ({:.1}% of the candidate pairs that do), so they are scored as independent fields",
                    names.join(", "),
                    100.0 * share
                ));
            }
            seen
        })
        .collect();
    let dependent = merge_groups(&columns, &declared, detected);
    let units = units(columns.len(), &dependent);

    let rules = config.training_rules();
    progress.phase("estimating m by expectation-maximisation", rules.len() as u64);
    let mut m: Vec<Vec<f64>> = level_counts.iter().map(|&n| initial_m(n)).collect();
    let mut estimates: Vec<Vec<Vec<f64>>> = vec![Vec::new(); m.len()];
    let mut sessions = Vec::new();
    let stats = blocking.stats();
    for (index, rule) in rules.iter().enumerate() {
        let pairs = stats[index].pairs as usize;
        let stride = pairs.div_ceil(config.training.max_em_pairs.max(1)).max(1);
        let patterns = count_patterns(dataset, &prepared, blocking.rule_pairs(index, false, stride));
        // a field the rule blocks on agrees in every pair of the session, and so does any
        // field that carries the same information: neither can tell matches apart here
        let blocked: Vec<bool> = config.fields.iter().map(|f| rule.columns().any(|c| c == f.column)).collect();
        let mut fixed = blocked.clone();
        for unit in units.iter().filter(|unit| unit.iter().any(|&f| blocked[f])) {
            unit.iter().for_each(|&f| fixed[f] = true);
        }
        let result = expectation_maximisation(&patterns, &u, &m, &fixed, &units, LAMBDA_START, config.training.em_iterations);
        for (field, is_fixed) in fixed.iter().enumerate() {
            if !is_fixed {
                m[field] = result.m[field].clone();
                estimates[field].push(result.m[field].clone());
            }
        }
        sessions.push(Session { rule, matches: result.lambda * pairs as f64 });
        progress.advance(1);
    }
    // a field's m is the average over the sessions where it was free to move
    for (field, runs) in estimates.iter().enumerate() {
        if !runs.is_empty() {
            m[field] = (0..m[field].len()).map(|level| runs.iter().map(|r| r[level]).sum::<f64>() / runs.len() as f64).collect();
        }
    }
    for (field, (m, u)) in m.iter_mut().zip(&u).enumerate() {
        check_estimates(&config.fields[field].column, m, u, &mut warnings);
    }

    let prior = match config.prior.probability {
        Some(p) => p,
        None if !config.prior.rules.is_empty() => prior_from_rules(dataset, config)?,
        None => prior_from_sessions(dataset, config, &m, &sessions)?,
    };

    let mut dependent = dependent;
    // what sharing a group says replaces the prior between records that share it, so a
    // prior the configuration states is kept as stated, without it
    if config.prior.probability.is_none() {
        for group in &mut dependent {
            match estimate_shared(dataset, &prepared, candidates, &config.blocking, group, &m, &u) {
                Ok(shared) => (group.u_shared, group.shared_odds) = shared,
                Err(unmeasured) => warnings.push(unmeasured),
            }
        }
    }

    let fields = config
        .fields
        .iter()
        .zip(m.into_iter().zip(u))
        .map(|(field, (m, u))| FieldParams { column: field.column.clone(), levels: field.comparison.level_labels(), m, u })
        .collect();
    Ok(Model { prior, fields, dependent, warnings })
}

/// Candidate pairs compared to measure what sharing a group says (an even sample beyond).
const MAX_SHARED_SAMPLE: usize = 2_000_000;
/// Pairs needed to estimate one field's `u_shared`.
const MIN_SHARED_PAIRS: f64 = 100.0;
/// One person's pairs, and different people's, needed among the shared pairs before their
/// odds are measured (a file of strangers has almost none of the first).
const MIN_SHARED_KIND: f64 = 20.0;
/// The witness (see [`estimate_shared`]) must weigh at least this much against a match
/// when it differs completely (bits).
const WITNESS_WEIGHT: f64 = -4.0;

/// What sharing `group` says (see [`DependentGroup`]): u of every field outside it among
/// different people who share it, and the log-odds (bits) that two records sharing it are
/// one person.
///
/// The witness is the field outside the group whose complete disagreement weighs most
/// against a match (a national id number). Among the pairs that share the group:
/// - those where the witness is present hold as many pairs of one person as agree on it
///   exactly, over the share of one person's pairs that do (m of its exact level): their
///   share gives the odds;
/// - those where it differs show how often another field agrees between different people,
///   once the expected duplicates among them are taken out: that is the field's
///   `u_shared`. Each level keeps the strangers' u when that is higher: sharing a
///   household never makes agreement rarer.
///
/// Empty and `None` without a witness or with too few pairs; an error (a warning for the
/// user) when no blocking rule lies inside the group to find its pairs.
fn estimate_shared(
    dataset: &Dataset,
    prepared: &PreparedFields,
    candidates: &Blocking,
    rules: &[BlockingRule],
    group: &DependentGroup,
    m: &[Vec<f64>],
    u: &[Vec<f64>],
) -> Result<(Vec<Vec<f64>>, Option<f64>), String> {
    let exact: Vec<u8> = (0..m.len()).map(|f| prepared.comparison(f).exact_level()).collect();
    let members: Vec<bool> = (0..m.len()).map(|f| group.fields.contains(&f)).collect();
    let else_weight = |f: usize| (m[f][ELSE_LEVEL as usize] / u[f][ELSE_LEVEL as usize]).log2();
    let Some(witness) = (0..m.len())
        .filter(|&f| !members[f] && else_weight(f) <= WITNESS_WEIGHT)
        .min_by(|&a, &b| else_weight(a).total_cmp(&else_weight(b)))
    else {
        return Ok((Vec::new(), None));
    };
    // the pairs of the rules that block on the group's fields alone, each once: a rule
    // blocking on the witness (or anything else outside the group) would bring more of one
    // person's pairs than sharing the group does
    let group_rules: Vec<usize> = (0..rules.len()).filter(|&r| rules[r].columns().all(|c| group.columns.iter().any(|g| g == c))).collect();
    if group_rules.is_empty() {
        return Err(format!(
            "dependent_fields [{}]: no blocking rule uses only these columns, so the odds that records sharing them are one person \
             were not measured and they are scored as a dependent group only; add such a rule to measure them",
            group.columns.join(", ")
        ));
    }
    // a pair is kept by its hash, so the same pair from two rules is kept or dropped alike
    // and the sample is drawn before anything is held in memory
    let stats = candidates.stats();
    let listed: u64 = group_rules.iter().map(|&r| stats[r].pairs).sum();
    let stride = listed.div_ceil(MAX_SHARED_SAMPLE as u64).max(1);
    let kept = move |&(a, b): &(u32, u32)| splitmix64(&mut ((u64::from(a) << 32) | u64::from(b))).is_multiple_of(stride);
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    for &rule in &group_rules {
        pairs.par_extend(candidates.rule_pairs(rule, false, 1).filter(kept));
    }
    pairs.par_sort_unstable();
    pairs.dedup();
    let sample = pairs.par_iter().copied();
    // pairs sharing the group where the witness is present, and where it differs completely;
    // of the latter, each other field's levels
    let (mut witnessed, mut same, mut different) = (0u64, 0u64, 0u64);
    let mut counts: Vec<Vec<u64>> = m.iter().map(|levels| vec![0; levels.len()]).collect();
    for (pattern, count) in count_patterns(dataset, prepared, sample) {
        let level = |f: usize| pattern_level(pattern, f);
        if level(witness) == 0 || !group.shared(level, |f| exact[f]) {
            continue;
        }
        witnessed += count;
        same += u64::from(level(witness) == exact[witness]) * count;
        if level(witness) == ELSE_LEVEL {
            different += count;
            for f in (0..m.len()).filter(|&f| !members[f] && f != witness && level(f) != 0) {
                counts[f][level(f) as usize] += count;
            }
        }
    }
    if (witnessed as f64) < MIN_SHARED_PAIRS {
        return Ok((Vec::new(), None));
    }
    let (witnessed, same, different) = (witnessed as f64, same as f64, different as f64);
    let m_differs = m[witness][ELSE_LEVEL as usize];
    // one person's pairs: as many as agree exactly on the witness, over the share of one
    // person's pairs that do (different people almost never do)
    let one_person = (same / m[witness][exact[witness] as usize]).min(witnessed);
    let duplicates_among_different = (one_person * m_differs).min(different);
    let u_shared: Vec<Vec<f64>> = counts
        .iter()
        .zip(m.iter().zip(u))
        .enumerate()
        .map(|(f, (counts, (m, stranger)))| {
            let total: f64 = counts.iter().sum::<u64>() as f64;
            // of this field's counted pairs, the expected duplicates, spread as m says
            let duplicates = if different > 0.0 { total * duplicates_among_different / different } else { 0.0 };
            let others: Vec<f64> = counts.iter().zip(m).map(|(&c, m)| (c as f64 - duplicates * m).max(0.0)).collect();
            let others_total: f64 = others.iter().sum();
            if members[f] || f == witness || others_total < MIN_SHARED_PAIRS {
                return Vec::new();
            }
            let mut shared: Vec<f64> = others.iter().zip(stranger).map(|(c, u)| (c / others_total).max(*u)).collect();
            shared[0] = 0.0;
            shared
        })
        .collect();
    let u_shared = if u_shared.iter().all(Vec::is_empty) { Vec::new() } else { u_shared };
    // odds only where both kinds of pair were seen often enough to be counted
    let others = witnessed - one_person;
    let odds = (one_person.min(others) >= MIN_SHARED_KIND).then(|| (one_person / others).log2());
    Ok((u_shared, odds))
}

/// Counts how often each comparison pattern occurs among the given pairs.
pub fn count_patterns(
    dataset: &Dataset,
    prepared: &PreparedFields,
    pairs: impl ParallelIterator<Item = (u32, u32)>,
) -> Vec<(Pattern, u64)> {
    let counts = pairs
        .fold(FxHashMap::default, |mut counts: FxHashMap<Pattern, u64>, (a, b)| {
            *counts.entry(prepared.pattern(dataset, a, b)).or_insert(0) += 1;
            counts
        })
        .reduce(FxHashMap::default, |mut a, b| {
            for (pattern, count) in b {
                *a.entry(pattern).or_insert(0) += count;
            }
            a
        });
    let mut counts: Vec<(Pattern, u64)> = counts.into_iter().collect();
    counts.sort_unstable();
    counts
}

/// u per field and level. The exact level comes from value frequencies (the chance that
/// two random non-missing values are equal); the other levels share the rest in
/// proportion to how often they occur among random pairs.
fn estimate_u(
    dataset: &Dataset,
    prepared: &PreparedFields,
    level_counts: &[usize],
    config: &MatchConfig,
    progress: &dyn Progress,
) -> (Vec<Vec<f64>>, CoAgreement) {
    let rows = dataset.len() as u64;
    let samples = config.training.u_sample_pairs;
    let chunks = samples.div_ceil(SAMPLE_CHUNK);
    let fields = level_counts.len();
    let empty = || (level_counts.iter().map(|&n| vec![0u64; n]).collect::<Vec<_>>(), CoAgreement::new(fields));
    let (observed, co_agreement) = (0..chunks)
        .into_par_iter()
        .map(|chunk| {
            let (mut counts, mut co_agreement) = empty();
            if rows < 2 {
                return (counts, co_agreement);
            }
            let mut state = config.training.seed ^ (chunk as u64).wrapping_mul(0xA076_1D64_78BD_642F);
            let (mut present, mut agree) = (vec![false; fields], vec![false; fields]);
            for _ in 0..SAMPLE_CHUNK.min(samples - chunk * SAMPLE_CHUNK) {
                let a = (splitmix64(&mut state) % rows) as u32;
                let b = (splitmix64(&mut state) % rows) as u32;
                if a == b {
                    continue;
                }
                let pattern = prepared.pattern(dataset, a, b);
                for (field, levels) in counts.iter_mut().enumerate() {
                    let level = pattern_level(pattern, field) as usize;
                    levels[level] += 1;
                    present[field] = level != 0;
                    agree[field] = level == levels.len() - 1;
                }
                // a pair agreeing on most fields is likely one person, and one person's
                // records agree on everything together; in a small file with many
                // duplicates they would make every pair of fields look dependent
                let (agreeing, compared) = (agree.iter().filter(|&&a| a).count(), present.iter().filter(|&&p| p).count());
                if 2 * agreeing <= compared {
                    co_agreement.add(&present, &agree);
                }
            }
            progress.advance(SAMPLE_CHUNK as u64);
            (counts, co_agreement)
        })
        .reduce(empty, |(mut a, mut co_a), (b, co_b)| {
            for (fa, fb) in a.iter_mut().zip(b) {
                for (x, y) in fa.iter_mut().zip(fb) {
                    *x += y;
                }
            }
            co_a.merge(&co_b);
            (a, co_a)
        });

    let u = observed
        .into_iter()
        .enumerate()
        .map(|(field, counts)| {
            let exact = counts.len() - 1;
            let column = dataset.column(prepared.column_of(field));
            let present = column.non_null_rows() as f64;
            let same_value_pairs: f64 = (1..column.dictionary_len() as u32)
                .map(|id| {
                    let c = f64::from(column.count(id));
                    c * (c - 1.0)
                })
                .sum();
            let u_exact =
                if present >= 2.0 { (same_value_pairs / (present * (present - 1.0))).max(1.0 / (present * present)) } else { 1e-6 };
            // one pseudo-count per level keeps never-seen levels finite
            let others: Vec<f64> = counts[1..exact].iter().map(|&c| c as f64 + 1.0).collect();
            let others_total: f64 = others.iter().sum();
            let mut u = vec![0.0];
            u.extend(others.iter().map(|c| c / others_total * (1.0 - u_exact)));
            u.push(u_exact);
            u
        })
        .collect();
    (u, co_agreement)
}

/// A declared group is kept when, of the candidate pairs that share three or more of its
/// parts, at least this share are different people...
const MIN_SHARED_WITHOUT_PERSON: f64 = 0.25;
/// ...and at least this many pairs.
const MIN_JOINT_PAIRS: u64 = 20;
/// Candidate pairs looked at for that, at most.
const MAX_CHECKED_PAIRS: u64 = 500_000;

/// Whether a declared group (what a household shares) is borne out by the data: of the
/// sampled candidate pairs that agree on three or more of its parts (a detected group such
/// as town, postcode and state counts as one part), the share whose every field outside it
/// differs completely: the same surname, address and mailbox, yet a different first name
/// and birth date. In a file of relatives that is common; in a file without them such
/// pairs are the rare duplicate with both mistyped. Strangers who merely share a surname
/// and a town share two parts and do not count.
fn shared_values_without_person(
    dataset: &Dataset,
    prepared: &PreparedFields,
    candidates: &Blocking,
    group: &[usize],
    detected: &[DependentGroup],
) -> (f64, u64) {
    let fields = prepared.len();
    let parts = units(fields, detected);
    let exact: Vec<u8> = (0..fields).map(|f| prepared.comparison(f).exact_level()).collect();
    let stats = candidates.stats();
    let total: u64 = stats.iter().map(|s| s.pairs).sum();
    let stride = total.div_ceil(MAX_CHECKED_PAIRS).max(1) as usize;
    let (shown, sharing) = (0..candidates.rule_count())
        .into_par_iter()
        .flat_map(|rule| candidates.rule_pairs(rule, true, stride))
        .map(|(a, b)| {
            let pattern = prepared.pattern(dataset, a, b);
            let level = |f: usize| pattern_level(pattern, f);
            let outside: Vec<usize> = (0..fields).filter(|f| !group.contains(f) && level(*f) != 0).collect();
            let person_differs = !outside.is_empty() && outside.iter().all(|&f| level(f) == ELSE_LEVEL);
            let shared_parts = parts.iter().filter(|part| part.iter().any(|f| group.contains(f) && level(*f) == exact[*f])).count();
            let sharing = !outside.is_empty() && shared_parts >= 3;
            (u64::from(sharing && person_differs), u64::from(sharing))
        })
        .reduce(|| (0, 0), |x, y| (x.0 + y.0, x.1 + y.1));
    (shown as f64 / sharing.max(1) as f64, shown)
}

/// Among true matches a field's values should agree more often than among random pairs,
/// and disagree less often. EM can land elsewhere (a training rule whose pairs are mostly
/// neighbours or relatives); such a field would then reward disagreement, or barely
/// penalise it. The estimate is moved to the nearest plausible one, with a warning.
fn check_estimates(column: &str, m: &mut [f64], u: &[f64], warnings: &mut Vec<String>) {
    const ELSE_L: usize = ELSE_LEVEL as usize;
    let exact = m.len() - 1;
    if exact < 2 {
        return;
    }
    let weight = |m: f64, u: f64| (m / u).log2();
    if m[exact] <= u[exact] {
        warnings.push(format!(
            "{column}: training found exact agreement no more common among matches (m = {:.3}) than among random pairs (u = {:.3}); \
             its m was reset to the starting estimate, and the field's evidence is doubtful",
            m[exact], u[exact]
        ));
        let start = initial_m(m.len());
        m.copy_from_slice(&start);
    }
    // "else" (nothing alike) among matches at most as common as any agreement level above it
    let else_weight = weight(m[ELSE_L], u[ELSE_L]);
    if else_weight > MAX_DISAGREEMENT_WEIGHT {
        let capped = u[ELSE_L] * MAX_DISAGREEMENT_WEIGHT.exp2();
        warnings.push(format!(
            "{column}: training put disagreement at {else_weight:+.2} (m = {:.3}), weaker evidence against than any real field gives; \
             capped at {MAX_DISAGREEMENT_WEIGHT:+.1} (m = {capped:.3})",
            m[ELSE_L]
        ));
        let excess = m[ELSE_L] - capped;
        m[ELSE_L] = capped;
        m[exact] += excess;
    }
}

/// What one EM session found: the matches among its rule's pairs.
struct Session<'a> {
    rule: &'a BlockingRule,
    matches: f64,
}

fn all_pairs(dataset: &Dataset) -> f64 {
    let rows = dataset.len() as f64;
    (rows * (rows - 1.0) / 2.0).max(1.0)
}

fn clamp_prior(p: f64) -> f64 {
    p.clamp(1e-12, 0.5)
}

/// Prior from deterministic rules: the pairs they find, scaled up by their assumed recall,
/// over all pairs.
fn prior_from_rules(dataset: &Dataset, config: &MatchConfig) -> Result<f64, MatchError> {
    let blocking = Blocking::new(dataset, &config.prior.rules, config.max_block_size.saturating_mul(10))?;
    let found = blocking.pairs().count().max(1) as f64;
    Ok(clamp_prior(found / config.prior.recall / all_pairs(dataset)))
}

/// Prior from the EM sessions. A session on rule "surname & dob" found `matches` among its
/// pairs; a true match lands in those pairs when both records have both values and they
/// agree exactly, which the trained m says happens with probability
/// Π (present share² × m_exact). Matches found divided by that is the number of matches in
/// the whole dataset; the median over sessions resists a session with a poor estimate.
/// Sessions with transformed keys or columns that are not fields are not used.
fn prior_from_sessions(dataset: &Dataset, config: &MatchConfig, m: &[Vec<f64>], sessions: &[Session]) -> Result<f64, MatchError> {
    let mut totals: Vec<f64> = Vec::new();
    'sessions: for session in sessions {
        let mut recall = 1.0;
        for expr in &session.rule.0 {
            let field = config.fields.iter().position(|f| f.column == expr.column);
            let (Some(field), Transform::Value) = (field, &expr.transform) else {
                continue 'sessions;
            };
            let column = dataset.column(column_index(dataset, &expr.column)?);
            let present = column.non_null_rows() as f64 / dataset.len().max(1) as f64;
            recall *= present * present * m[field].last().copied().unwrap_or(1.0);
        }
        if recall > 0.0 && session.matches > 0.0 {
            totals.push(session.matches / recall);
        }
    }
    if totals.is_empty() {
        return Err(MatchError::Config(
            "cannot estimate the prior: no training rule uses plain field columns; set prior.rules or prior.probability".into(),
        ));
    }
    totals.sort_by(f64::total_cmp);
    let median = totals[totals.len() / 2];
    Ok(clamp_prior(median / all_pairs(dataset)))
}

pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
