//! Blocking: only records that share a key are compared.
//!
//! A rule is an AND of key expressions (`surname`, `substr(given_name,0,3)`,
//! `metaphone(surname)`, ...); the configuration is an OR of rules. Each rule's key is a
//! 64-bit hash per row, rows are sorted by it, and runs of equal keys are blocks. A pair
//! found by an earlier rule is not produced again by a later one: the later rule checks
//! whether the two rows share an earlier rule's key. Blocks larger than
//! `max_block_size` are skipped (and counted) so the pair count stays near-linear.

use std::fmt;
use std::hash::{Hash, Hasher};

use rayon::prelude::*;
use rphonetic::{DoubleMetaphone, Encoder, Soundex};
use rustc_hash::{FxHashMap, FxHasher};
use serde::{Deserialize, Serialize};

use crate::dataset::{guarded, normalize_value, Dataset};
use crate::MatchError;

/// Key hash of a missing value (rows with a missing key part are in no block).
const NO_KEY: u64 = 0;

/// A transformation applied to a column before it is used as (part of) a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transform {
    Value,
    /// Characters `start..start + len`.
    Substr {
        start: usize,
        len: usize,
    },
    Soundex,
    Metaphone,
}

/// One part of a blocking key: a column and a transform, written like `substr(col,0,3)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyExpr {
    pub column: String,
    pub transform: Transform,
}

impl KeyExpr {
    /// Key text for a normalised value, `None` when it yields nothing to block on.
    pub fn apply(&self, value: &str) -> Option<String> {
        if value.is_empty() {
            return None;
        }
        let key = match self.transform {
            Transform::Value => value.to_string(),
            Transform::Substr { start, len } => value.chars().skip(start).take(len).collect(),
            Transform::Soundex => guarded(|| Soundex::default().encode(&phonetic_letters(value)))?,
            Transform::Metaphone => metaphone(value)?,
        };
        (!key.is_empty()).then_some(key)
    }

    fn hash_value(&self, value: &str) -> u64 {
        self.apply(value).map_or(NO_KEY, |k| hash_str(&k))
    }
}

impl TryFrom<String> for KeyExpr {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl std::str::FromStr for KeyExpr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let Some(open) = text.find('(') else {
            return Ok(KeyExpr { column: text.to_string(), transform: Transform::Value });
        };
        let bad = || format!("bad blocking key `{text}`: expected col, substr(col,start,len), soundex(col) or metaphone(col)");
        let inner = text[open + 1..].strip_suffix(')').ok_or_else(bad)?;
        let args: Vec<&str> = inner.split(',').map(str::trim).collect();
        let function = text[..open].trim();
        let transform = match (function, args.as_slice()) {
            ("substr", [_, start, len]) => {
                Transform::Substr { start: start.parse().map_err(|_| bad())?, len: len.parse().map_err(|_| bad())? }
            }
            ("soundex", [_]) => Transform::Soundex,
            ("metaphone", [_]) => Transform::Metaphone,
            _ => return Err(bad()),
        };
        Ok(KeyExpr { column: args[0].to_string(), transform })
    }
}

impl fmt::Display for KeyExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.transform {
            Transform::Value => write!(f, "{}", self.column),
            Transform::Substr { start, len } => write!(f, "substr({},{start},{len})", self.column),
            Transform::Soundex => write!(f, "soundex({})", self.column),
            Transform::Metaphone => write!(f, "metaphone({})", self.column),
        }
    }
}

impl From<KeyExpr> for String {
    fn from(expr: KeyExpr) -> String {
        expr.to_string()
    }
}

/// Records agree on every expression of the rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BlockingRule(pub Vec<KeyExpr>);

impl BlockingRule {
    /// A rule from expression strings, e.g. `BlockingRule::parse(&["surname", "substr(given_name,0,1)"])`.
    pub fn parse(exprs: &[&str]) -> Result<Self, MatchError> {
        exprs.iter().map(|e| e.parse().map_err(MatchError::Config)).collect::<Result<_, _>>().map(BlockingRule)
    }

    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|e| e.column.as_str())
    }
}

impl fmt::Display for BlockingRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "{}", parts.join(" & "))
    }
}

/// The Double Metaphone code of a value's letters; `None` if the encoder fails on it.
pub(crate) fn metaphone(value: &str) -> Option<String> {
    guarded(|| DoubleMetaphone::default().encode(&phonetic_letters(value)))
}

/// The ASCII letters of a value, transliterated first when it is not ASCII: phonetic
/// encoders index bytes and assume Latin letters ("GARCÍA" panicked inside one).
fn phonetic_letters(value: &str) -> String {
    let folded = if value.is_ascii() { std::borrow::Cow::Borrowed(value) } else { deunicode::deunicode_with_tofu_cow(value, "") };
    folded.chars().filter(char::is_ascii_alphabetic).collect()
}

/// A non-zero 64-bit hash of a string (zero is reserved for "no key").
pub(crate) fn hash_str(text: &str) -> u64 {
    let mut hasher = FxHasher::default();
    text.hash(&mut hasher);
    hasher.finish().max(1)
}

fn combine(key: u64, part: u64) -> u64 {
    ((key.rotate_left(26) ^ part).wrapping_mul(0x9E37_79B9_7F4A_7C15)).max(1)
}

/// A rule compiled against a dataset: per expression, the key hash of every dictionary value.
#[derive(Debug, Clone)]
struct CompiledRule {
    rule: BlockingRule,
    parts: Vec<(usize, Vec<u64>)>,
}

impl CompiledRule {
    fn new(dataset: &Dataset, rule: &BlockingRule) -> Result<Self, MatchError> {
        let parts = rule
            .0
            .iter()
            .map(|expr| {
                let index = column_index(dataset, &expr.column)?;
                let column = dataset.column(index);
                let hashes = (0..column.dictionary_len() as u32).into_par_iter().map(|id| expr.hash_value(column.value(id))).collect();
                Ok((index, hashes))
            })
            .collect::<Result<_, MatchError>>()?;
        Ok(CompiledRule { rule: rule.clone(), parts })
    }

    fn row_key(&self, dataset: &Dataset, row: usize) -> u64 {
        let mut key = 0;
        for (column, hashes) in &self.parts {
            let part = hashes[dataset.column(*column).id(row) as usize];
            if part == NO_KEY {
                return NO_KEY;
            }
            key = combine(key, part);
        }
        key
    }

    /// Key of a record given as raw values in the dataset's column order.
    fn record_key(&self, record: &[&str]) -> u64 {
        let mut key = 0;
        for (expr, (column, _)) in self.rule.0.iter().zip(&self.parts) {
            let raw = record.get(*column).copied().unwrap_or("");
            let part = normalize_value(raw).map_or(NO_KEY, |v| expr.hash_value(&v));
            if part == NO_KEY {
                return NO_KEY;
            }
            key = combine(key, part);
        }
        key
    }
}

pub(crate) fn column_index(dataset: &Dataset, name: &str) -> Result<usize, MatchError> {
    dataset.column_index(name).ok_or_else(|| MatchError::UnknownColumn {
        column: name.to_string(),
        available: dataset.columns().iter().map(|c| c.name().to_string()).collect(),
    })
}

/// What one rule did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleStats {
    pub rule: String,
    /// Blocks of two or more rows that were compared.
    pub blocks: usize,
    /// Blocks larger than `max_block_size`, not compared.
    pub skipped_blocks: usize,
    /// Rows in the skipped blocks.
    pub skipped_rows: usize,
    /// Pairs in compared blocks, before removing those an earlier rule already produced.
    pub pairs: u64,
}

/// One rule's blocks over a dataset.
#[derive(Debug)]
struct RuleBlocks {
    compiled: CompiledRule,
    /// Key per row; `NO_KEY` when missing or when the row's block was skipped.
    keys: Vec<u64>,
    /// Rows sorted by key; each block is a range of this.
    rows: Vec<u32>,
    /// `(key, start, len)` of every block that is not skipped, singletons included
    /// (a new record may pair with them).
    blocks: Vec<(u64, u32, u32)>,
    /// Keys of the blocks skipped for size, with their sizes.
    skipped: FxHashMap<u64, usize>,
    stats: RuleStats,
}

/// The blocks of every rule over one dataset.
#[derive(Debug)]
pub struct Blocking {
    rules: Vec<RuleBlocks>,
    /// Every rule's key of every row, row by row (`row * rules + rule`), so the test
    /// "did an earlier rule already pair these rows" reads two cache lines, not one per rule.
    row_keys: Vec<u64>,
}

impl Blocking {
    pub fn new(dataset: &Dataset, rules: &[BlockingRule], max_block_size: usize) -> Result<Self, MatchError> {
        let rules: Vec<RuleBlocks> = rules.iter().map(|rule| RuleBlocks::new(dataset, rule, max_block_size)).collect::<Result<_, _>>()?;
        let row_keys = (0..dataset.len()).flat_map(|row| rules.iter().map(move |r| r.keys[row])).collect();
        Ok(Blocking { rules, row_keys })
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    pub fn stats(&self) -> Vec<RuleStats> {
        self.rules.iter().map(|r| r.stats.clone()).collect()
    }

    /// Candidate pairs `(a, b)` with `a < b` of one rule, without the pairs an earlier
    /// rule produced (or all of them if `dedupe` is false, as EM training wants).
    /// `sample_stride > 1` keeps every n-th block only.
    pub fn rule_pairs(&self, rule: usize, dedupe: bool, sample_stride: usize) -> impl ParallelIterator<Item = (u32, u32)> + '_ {
        let earlier = if dedupe { rule } else { 0 };
        let width = self.rules.len();
        let row_keys = &self.row_keys;
        let this = &self.rules[rule];
        this.blocks.par_iter().enumerate().filter(move |(i, _)| i % sample_stride.max(1) == 0).flat_map_iter(
            move |(_, &(_, start, len))| {
                let rows = &this.rows[start as usize..(start + len) as usize];
                rows.iter().enumerate().flat_map(move |(i, &a)| {
                    rows[i + 1..].iter().filter_map(move |&b| {
                        let (ka, kb) = (a as usize * width, b as usize * width);
                        let seen = (0..earlier).any(|r| {
                            let key = row_keys[ka + r];
                            key != NO_KEY && key == row_keys[kb + r]
                        });
                        (!seen).then(|| (a.min(b), a.max(b)))
                    })
                })
            },
        )
    }

    /// Every candidate pair once, over all rules.
    pub fn pairs(&self) -> impl ParallelIterator<Item = (u32, u32)> + '_ {
        (0..self.rules.len()).into_par_iter().flat_map(move |rule| self.rule_pairs(rule, true, 1))
    }

    /// Rows sharing a block with a new record (given in the dataset's column order), each once.
    pub fn candidates(&self, record: &[&str], index: &BlockIndex) -> Vec<u32> {
        let mut out = Vec::new();
        for (rule, lookup) in self.rules.iter().zip(&index.by_rule) {
            let key = rule.compiled.record_key(record);
            if let Some(&block) = lookup.get(&key) {
                let (_, start, len) = rule.blocks[block as usize];
                out.extend_from_slice(&rule.rows[start as usize..(start + len) as usize]);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Every rule's key of a new record (given in the dataset's column order); `None` for a
    /// rule the record has no key under (a value it needs is missing).
    pub fn record_keys(&self, record: &[&str]) -> Vec<Option<u64>> {
        self.rules.iter().map(|rule| Some(rule.compiled.record_key(record)).filter(|&k| k != NO_KEY)).collect()
    }

    /// How many rows of the indexed dataset have `key` under `rule`, skipped blocks included.
    pub fn block_len(&self, rule: usize, key: u64, index: &BlockIndex) -> usize {
        let rules = &self.rules[rule];
        match index.by_rule[rule].get(&key) {
            Some(&block) => rules.blocks[block as usize].2 as usize,
            None => rules.skipped.get(&key).copied().unwrap_or(0),
        }
    }

    /// A key → block lookup per rule, for [`Blocking::candidates`].
    pub fn index(&self) -> BlockIndex {
        BlockIndex {
            by_rule: self
                .rules
                .iter()
                .map(|rule| rule.blocks.iter().enumerate().map(|(i, &(key, _, _))| (key, i as u32)).collect())
                .collect(),
        }
    }
}

/// Hash lookups from a blocking key to its block, one map per rule.
#[derive(Debug)]
pub struct BlockIndex {
    by_rule: Vec<FxHashMap<u64, u32>>,
}

impl RuleBlocks {
    fn new(dataset: &Dataset, rule: &BlockingRule, max_block_size: usize) -> Result<Self, MatchError> {
        let compiled = CompiledRule::new(dataset, rule)?;
        let mut keys: Vec<u64> = (0..dataset.len()).into_par_iter().map(|row| compiled.row_key(dataset, row)).collect();
        let mut entries: Vec<(u64, u32)> = keys.iter().enumerate().filter(|(_, &k)| k != NO_KEY).map(|(row, &k)| (k, row as u32)).collect();
        entries.par_sort_unstable();

        let mut stats = RuleStats { rule: rule.to_string(), ..RuleStats::default() };
        let mut rows = Vec::new();
        let mut blocks = Vec::new();
        let mut skipped = FxHashMap::default();
        for run in entries.chunk_by(|x, y| x.0 == y.0) {
            if run.len() > max_block_size {
                skipped.insert(run[0].0, run.len());
                stats.skipped_blocks += 1;
                stats.skipped_rows += run.len();
                // a skipped block produced no pairs, so later rules must not treat its
                // rows as already compared
                for &(_, row) in run {
                    keys[row as usize] = NO_KEY;
                }
            } else {
                blocks.push((run[0].0, rows.len() as u32, run.len() as u32));
                rows.extend(run.iter().map(|&(_, row)| row));
                if run.len() >= 2 {
                    stats.blocks += 1;
                    stats.pairs += (run.len() * (run.len() - 1) / 2) as u64;
                }
            }
        }
        Ok(RuleBlocks { compiled, keys, rows, blocks, skipped, stats })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn people() -> Dataset {
        Dataset::from_rows(
            &["given", "surname", "postcode"],
            [
                ["anna", "smith", "1000"],
                ["anne", "smith", "1000"],
                ["anna", "smyth", "1000"],
                ["bob", "jones", "2000"],
                ["bobby", "jones", ""],
                ["carl", "smith", "3000"],
            ],
        )
    }

    #[test]
    fn parses_and_prints_key_expressions() {
        for text in ["surname", "substr(given,0,3)", "soundex(surname)", "metaphone(surname)"] {
            let expr: KeyExpr = text.parse().unwrap();
            assert_eq!(expr.to_string(), text);
        }
        assert!("substr(given,0)".parse::<KeyExpr>().is_err());
        assert!("reverse(given)".parse::<KeyExpr>().is_err());
        let expr: KeyExpr = "substr(given,1,2)".parse().unwrap();
        assert_eq!(expr.apply("anna").as_deref(), Some("nn"));
        let soundex: KeyExpr = "soundex(s)".parse().unwrap();
        assert_eq!(soundex.apply("robert"), soundex.apply("rupert"));
    }

    #[test]
    fn or_of_rules_produces_each_pair_once() {
        let ds = people();
        let rules = [
            BlockingRule::parse(&["surname"]).unwrap(),
            BlockingRule::parse(&["postcode"]).unwrap(),
            BlockingRule::parse(&["substr(given,0,3)"]).unwrap(),
        ];
        let blocking = Blocking::new(&ds, &rules, 100).unwrap();
        let mut pairs: Vec<_> = blocking.pairs().collect();
        pairs.sort();
        let mut unique = pairs.clone();
        unique.dedup();
        assert_eq!(pairs, unique, "no pair twice");
        // surname smith: 0-1, 0-5, 1-5; jones: 3-4; postcode 1000 adds 0-2, 1-2; given "ann": 0-1 (dup), "bob": 3-4 (dup)
        assert_eq!(pairs, [(0, 1), (0, 2), (0, 5), (1, 2), (1, 5), (3, 4)]);
    }

    #[test]
    fn oversized_blocks_are_skipped_and_reported() {
        let ds = people();
        let rules = [BlockingRule::parse(&["surname"]).unwrap(), BlockingRule::parse(&["given"]).unwrap()];
        let blocking = Blocking::new(&ds, &rules, 2).unwrap();
        let stats = blocking.stats();
        assert_eq!(stats[0].skipped_blocks, 1, "three smiths exceed the limit");
        assert_eq!(stats[0].skipped_rows, 3);
        let pairs: Vec<_> = blocking.pairs().collect();
        // jones (3,4) from rule 0, and anna (0,2) from rule 1, which the skipped smith block did not produce
        assert_eq!(pairs.len(), 2);
        assert!(pairs.contains(&(0, 2)));
    }

    #[test]
    fn candidates_for_a_new_record_come_from_every_rule() {
        let ds = people();
        let rules = [BlockingRule::parse(&["surname"]).unwrap(), BlockingRule::parse(&["postcode"]).unwrap()];
        let blocking = Blocking::new(&ds, &rules, 100).unwrap();
        let index = blocking.index();
        assert_eq!(blocking.candidates(&["x", "JONES", "1000"], &index), [0, 1, 2, 3, 4]);
        assert!(blocking.candidates(&["x", "nobody", ""], &index).is_empty());
    }

    #[test]
    fn unknown_column_is_an_error() {
        let err = Blocking::new(&people(), &[BlockingRule::parse(&["email"]).unwrap()], 10).unwrap_err();
        assert!(err.to_string().contains("email"));
    }
}
