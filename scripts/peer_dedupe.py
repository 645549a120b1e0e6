#!/usr/bin/env python3
"""Run a peer deduplicator on a FEBRL-shaped person file and record time, peak memory and
accuracy, for side-by-side comparison with `kinship dedupe`.

Usage:
    python3 scripts/peer_dedupe.py FILE.csv OUT.json [--peer splink|recordlinkage]
        [--tf] [--no-ssn] [--u-max-pairs 1e7] [--thresholds 0.5,0.9,0.95,0.99,0.999]

FILE.csv: rec_id plus any of given_name, surname, street_number, address_1, address_2, suburb,
postcode, state, date_of_birth, soc_sec_id, email, phone (FEBRL's ", " separators are fine).
Ground truth comes from the ids (`rec-N-...`: same N = same person), see score_clusters.py.

Peers:
  splink (default)  Splink 5 with the DuckDB backend, generalised from
                    ../shared/tools/splink_reference.py: compound blocking rules that stay
                    tractable at 1M rows (given+surname, surname+dob, given+dob,
                    postcode+street_number, soc_sec_id, postcode+surname, and email / phone when
                    present; --blocking auto, the default, uses the reference's single-column
                    rules instead on files up to 20k rows, where they are affordable and find more); Jaro-Winkler for names, address and suburb, Levenshtein for
                    postcode, street number, dob, soc_sec_id, email and phone, exact for state;
                    trained like the reference (prior from deterministic rules at recall 0.7,
                    u by random sampling, EM blocked on given+surname and on dob). Predicts at
                    match probability >= 0.01, then clusters (connected components) at each
                    threshold. --tf adds term-frequency adjustments on given_name and surname.
  recordlinkage     The `recordlinkage` package (meant for files up to ~100k rows): candidate
                    pairs from blocks on given+surname, surname+dob, given+dob,
                    postcode+street_number and soc_sec_id (rows with a missing key are left out
                    of that block), the same kinds of comparisons, then two classifiers: ECM
                    (unsupervised Fellegi-Sunter on binarised features) and a plain sum of the
                    similarities with a threshold sweep. Connected components give clusters.

Fair-peer cleaning, done before the peer sees the data (kinship does the same internally):
trim, lower case, `NULL`/`n/a`/empty -> null, accents folded and Greek/Cyrillic transliterated,
date_of_birth from YYYYMMDD / YYYY-MM-DD / DD/MM/YYYY to YYYYMMDD, phone to digits with +61 -> 0.

OUT.json gets: timings (load, train, predict, cluster), peak RSS (ru_maxrss of this process,
plus children) at the end of the pipeline and at the end, pair and cluster precision/recall/F1
and the largest cluster at each threshold, and the best threshold by cluster F1.
"""
import argparse
import json
import logging
import os
import re
import resource
import sys
import time
import unicodedata

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from score_clusters import score  # noqa: E402

FIELDS = ["given_name", "surname", "street_number", "address_1", "address_2", "suburb", "postcode",
          "state", "date_of_birth", "soc_sec_id", "email", "phone"]
SINGLE_BLOCKING_MAX_ROWS = 20000   # --blocking auto: single-column rules up to this size
NULLS = {"", "null", "n/a", "na", "none", "nan", "-"}

# ---------------------------------------------------------------------------------------------
# Cleaning
# ---------------------------------------------------------------------------------------------

SPECIAL = {"ø": "o", "æ": "ae", "ß": "ss", "ł": "l", "đ": "d", "ı": "i", "œ": "oe", "þ": "th"}
GREEK = dict(zip("αβγδεζηθικλμνξοπρσςτυφχψω", ["a", "v", "g", "d", "e", "z", "i", "th", "i", "k", "l", "m", "n", "x", "o", "p", "r", "s", "s", "t", "y", "f", "ch", "ps", "o"]))
CYRILLIC = dict(zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюя", ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n", "o", "p", "r", "s", "t", "u", "f", "kh", "ts", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya"]))


def fold(s):
    """ASCII-fold: drop accents, transliterate Greek and Cyrillic (a small deunicode)."""
    if s.isascii():
        return s
    out = []
    prev = ""
    for ch in unicodedata.normalize("NFKD", s):
        if unicodedata.combining(ch):
            continue
        if ch == "υ" and prev == "ο":            # ου -> ou
            t = "u"
        else:
            t = SPECIAL.get(ch) or GREEK.get(ch) or CYRILLIC.get(ch)
            if t is None:
                t = ch if ch.isascii() else ""
        out.append(t)
        prev = ch
    return "".join(out)


def clean_text(series):
    s = series.astype(str).str.strip().str.lower()
    s = s.map(fold)
    return s.where(~s.isin(NULLS), None)


def clean_dob(v):
    if v is None:
        return None
    if "/" in v:                                   # DD/MM/YYYY
        parts = v.split("/")
        if len(parts) == 3:
            d, m, y = parts
            return y + m.zfill(2) + d.zfill(2)
    if "-" in v:                                   # YYYY-MM-DD
        parts = v.split("-")
        if len(parts) == 3:
            y, m, d = parts
            return y + m.zfill(2) + d.zfill(2)
    digits = re.sub(r"\D", "", v)
    return digits or None


def clean_phone(v):
    if v is None:
        return None
    d = re.sub(r"\D", "", v)
    if d.startswith("61") and len(d) == 11:
        d = "0" + d[2:]
    return d or None


def load(path, no_ssn=False):
    df = pd.read_csv(path, skipinitialspace=True, dtype=str, keep_default_na=False)
    df.columns = [c.strip() for c in df.columns]
    cols = [c for c in FIELDS if c in df.columns and not (no_ssn and c == "soc_sec_id")]
    df = df[["rec_id"] + cols].copy()
    df["rec_id"] = df["rec_id"].str.strip()
    for c in cols:
        df[c] = clean_text(df[c])
    if "date_of_birth" in cols:
        df["date_of_birth"] = df["date_of_birth"].map(clean_dob)
    if "phone" in cols:
        df["phone"] = df["phone"].map(clean_phone)
    if "email" in cols:
        df["email"] = df["email"].str.replace(" ", "", regex=False)
    return df, cols


def peak_rss_mb():
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(self_kb / 1024, 1), round(child_kb / 1024, 1)


def entities(ids):
    return pd.Series(ids).str.extract(r"rec-(\d+)-", expand=False).astype(np.int64).to_numpy()


def prf(tp, npred, ntrue):
    p = tp / npred if npred else 0.0
    r = tp / ntrue if ntrue else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return dict(precision=round(p, 4), recall=round(r, 4), f1=round(f, 4), tp=int(tp), fp=int(npred - tp), fn=int(ntrue - tp))


def pair_metrics(tp, prob, thresholds, n_true):
    """Pairwise P/R/F1 of the scored candidate pairs (tp: is each a true pair) at each
    threshold, and at the cut with the best F1."""
    out = {str(t): prf(tp[prob >= t].sum(), int((prob >= t).sum()), n_true) for t in thresholds}
    order = np.argsort(-prob, kind="stable")
    sp, stp = prob[order], tp[order]
    ctp = np.cumsum(stp)
    k = np.arange(1, len(sp) + 1)
    if len(sp):
        P, R = ctp / k, ctp / n_true
        F = np.where(P + R > 0, 2 * P * R / np.maximum(P + R, 1e-12), 0)
        last = np.r_[sp[1:] != sp[:-1], True]
        i = int(np.argmax(np.where(last, F, -1)))
        out["best"] = dict(threshold=float(sp[i]), **prf(ctp[i], int(k[i]), n_true))
    return out


def fp_kinds(df, left, right, prob, threshold):
    """What the false-positive pairs at a threshold look like: same household (surname and
    address agree), namesakes (given name and surname agree), or other."""
    m = prob >= threshold
    l = pd.Series(np.asarray(left, dtype=object)[m]).astype(str)
    r = pd.Series(np.asarray(right, dtype=object)[m]).astype(str)
    fp = (entities(l) != entities(r))
    d = df.set_index("rec_id")
    L, R = d.reindex(l[fp]).reset_index(drop=True), d.reindex(r[fp]).reset_index(drop=True)

    def same(c):
        if c not in d.columns:
            return pd.Series(False, index=L.index)
        return (L[c] == R[c]).fillna(False)

    household = same("surname") & same("address_1") & same("street_number")
    namesake = same("given_name") & same("surname") & ~household
    contact = (same("email") | same("phone")) & ~household & ~namesake
    n = int(fp.sum())
    kinds = {"false_positive_pairs": n, "same_surname_and_address": int(household.sum()),
             "same_given_and_surname": int(namesake.sum()), "shared_email_or_phone_only": int(contact.sum())}
    kinds["other"] = n - kinds["same_surname_and_address"] - kinds["same_given_and_surname"] - kinds["shared_email_or_phone_only"]
    return kinds


FP_SQL = """
select count(*) as false_positive_pairs,
       count(*) filter (where {household}) as same_surname_and_address,
       count(*) filter (where {namesake} and not ({household})) as same_given_and_surname,
       count(*) filter (where ({contact}) and not ({household}) and not ({namesake})) as shared_email_or_phone_only
from p where match_probability >= {threshold}
  and regexp_extract(rec_id_l, 'rec-(\\d+)-', 1) <> regexp_extract(rec_id_r, 'rec-(\\d+)-', 1)
"""


def fp_kinds_sql(rel, has, threshold):
    """fp_kinds computed inside DuckDB on Splink's prediction table (it keeps the compared columns)."""
    def same(c):
        return f"coalesce({c}_l = {c}_r, false)" if c in has else "false"
    household = " and ".join(same(c) for c in ("surname", "address_1", "street_number"))
    namesake = same("given_name") + " and " + same("surname")
    contact = same("email") + " or " + same("phone")
    row = rel.query("p", FP_SQL.format(household=household, namesake=namesake, contact=contact, threshold=threshold)).fetchall()[0]
    kinds = dict(zip(["false_positive_pairs", "same_surname_and_address", "same_given_and_surname", "shared_email_or_phone_only"], map(int, row)))
    kinds["other"] = kinds["false_positive_pairs"] - sum(v for k, v in kinds.items() if k != "false_positive_pairs")
    return kinds


def components(n, left_idx, right_idx):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    g = coo_matrix((np.ones(len(left_idx), dtype=np.int8), (left_idx, right_idx)), shape=(n, n))
    return connected_components(g, directed=False)[1]


# ---------------------------------------------------------------------------------------------
# Splink
# ---------------------------------------------------------------------------------------------

def run_splink(df, cols, args, res, timings, truth_ids):
    import duckdb
    import splink
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    res.update(peer="splink", splink=splink.__version__, duckdb=duckdb.__version__, term_frequency_adjustments=args.tf)
    has = set(cols)

    def jw(c, tf=False):
        comp = cl.JaroWinklerAtThresholds(c, [0.9, 0.7])
        return comp.configure(term_frequency_adjustments=True) if tf else comp

    comparisons = []
    for c in ["given_name", "surname"]:
        if c in has:
            comparisons.append(jw(c, args.tf))
    if "street_number" in has:
        comparisons.append(cl.LevenshteinAtThresholds("street_number", [1]))
    for c in ["address_1", "address_2", "suburb"]:
        if c in has:
            comparisons.append(jw(c))
    if "postcode" in has:
        comparisons.append(cl.LevenshteinAtThresholds("postcode", [1, 2]))
    if "state" in has:
        comparisons.append(cl.ExactMatch("state"))
    for c in ["date_of_birth", "soc_sec_id"]:
        if c in has:
            comparisons.append(cl.LevenshteinAtThresholds(c, [1, 2]))
    if "email" in has:
        comparisons.append(cl.LevenshteinAtThresholds("email", [1, 3]))
    if "phone" in has:
        comparisons.append(cl.LevenshteinAtThresholds("phone", [1, 2]))

    blocking = args.blocking
    if blocking == "auto":
        blocking = "single" if len(df) <= SINGLE_BLOCKING_MAX_ROWS else "compound"
    if blocking == "single":     # the reference's rules for FEBRL-sized files: one column each
        candidates = [("given_name",), ("surname",), ("postcode",), ("date_of_birth",), ("soc_sec_id",), ("email",), ("phone",)]
    else:                        # compound rules that stay tractable at 1M rows
        candidates = [("given_name", "surname"), ("surname", "date_of_birth"), ("given_name", "date_of_birth"),
                      ("postcode", "street_number"), ("soc_sec_id",), ("postcode", "surname"), ("email",), ("phone",)]
    rules = [r for r in candidates if all(c in has for c in r)]
    res["blocking"] = blocking
    res["blocking_rules"] = [" & ".join(r) for r in rules]
    settings = SettingsCreator(
        link_type="dedupe_only", unique_id_column_name="rec_id", comparisons=comparisons,
        blocking_rules_to_generate_predictions=[block_on(*r) for r in rules],
    )

    T = time.perf_counter()
    db_api = DuckDBAPI()
    linker = Linker(db_api.register(df, dataset_display_name="people"), settings, log_level=logging.WARNING)

    t = time.perf_counter()
    det = [r for r in [("given_name", "surname", "date_of_birth"), ("soc_sec_id", "date_of_birth")] if all(c in has for c in r)]
    linker.training.estimate_probability_two_random_records_match([block_on(*r) for r in det], recall=0.7)
    timings["train_prior_s"] = time.perf_counter() - t
    t1 = time.perf_counter()
    linker.training.estimate_u_using_random_sampling(max_pairs=args.u_max_pairs, seed=42)
    timings["train_u_s"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("given_name", "surname"))
    timings["train_em1_s"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    timings["train_em2_s"] = time.perf_counter() - t1
    timings["train_s"] = time.perf_counter() - t

    t = time.perf_counter()
    pred = linker.inference.predict(threshold_match_probability=0.01)
    timings["predict_s"] = time.perf_counter() - t

    cluster_scores = {}
    eval_s = 0.0
    for th in args.thresholds:
        t = time.perf_counter()
        c = linker.clustering.cluster_pairwise_predictions_at_threshold(pred, threshold_match_probability=th)
        timings[f"cluster_{th}_s"] = time.perf_counter() - t
        t = time.perf_counter()          # scoring is not part of the pipeline: kept out of the timings
        cdf = c.as_duckdbpyrelation().select("rec_id, cluster_id").fetchnumpy()
        cluster_scores[th] = score(truth_ids, dict(zip(cdf["rec_id"], cdf["cluster_id"])))
        del cdf
        c.drop_table_from_database_and_remove_from_cache()
        eval_s += time.perf_counter() - t
    timings["pipeline_s"] = time.perf_counter() - T - eval_s - sum(v for k, v in timings.items() if k.startswith("cluster_") and k != "cluster_0.9_s")
    res["peak_rss_mb_after_pipeline"], _ = peak_rss_mb()

    rel = pred.as_duckdbpyrelation()
    arr = rel.query("p", "select match_probability, regexp_extract(rec_id_l, 'rec-(\\d+)-', 1) = "
                         "regexp_extract(rec_id_r, 'rec-(\\d+)-', 1) as tp from p").fetchnumpy()
    res["false_positive_kinds_at_0.9"] = fp_kinds_sql(rel, has, 0.9)
    try:
        res["model"] = {"probability_two_random_records_match": linker._settings_obj._probability_two_random_records_match}
    except AttributeError:
        pass
    return np.asarray(arr["match_probability"], dtype=float), np.asarray(arr["tp"], dtype=bool), cluster_scores


# ---------------------------------------------------------------------------------------------
# recordlinkage
# ---------------------------------------------------------------------------------------------

def run_recordlinkage(df, cols, args, res, timings, truth_ids):
    import recordlinkage as rl

    res.update(peer="recordlinkage", recordlinkage=rl.__version__)
    has = set(cols)
    d = df.set_index("rec_id")
    T = time.perf_counter()
    blocks = [r for r in [("given_name", "surname"), ("surname", "date_of_birth"), ("given_name", "date_of_birth"),
                          ("postcode", "street_number"), ("soc_sec_id",), ("email",), ("phone",)] if all(c in has for c in r)]
    res["blocking_rules"] = [" & ".join(r) for r in blocks]
    index = None
    for keys in blocks:                 # pandas joins null keys to each other: block only rows with the keys
        sub = d.dropna(subset=list(keys))
        idx = rl.Index()
        idx.block(list(keys))
        mi = idx.index(sub)
        index = mi if index is None else index.union(mi)
    timings["index_s"] = time.perf_counter() - T
    res["candidate_pairs"] = int(len(index))

    t = time.perf_counter()
    cmp = rl.Compare(n_jobs=1)
    features = []
    for c in ["given_name", "surname", "address_1", "address_2", "suburb"]:
        if c in has:
            cmp.string(c, c, method="jarowinkler", missing_value=0, label=c)
            features.append(c)
    for c in ["street_number", "postcode", "date_of_birth", "soc_sec_id", "email", "phone"]:
        if c in has:
            cmp.string(c, c, method="levenshtein", missing_value=0, label=c)
            features.append(c)
    if "state" in has:
        cmp.exact("state", "state", missing_value=0, label="state")
        features.append("state")
    X = cmp.compute(index, d)
    timings["compare_s"] = time.perf_counter() - t

    t = time.perf_counter()
    ecm = rl.ECMClassifier(binarize=0.85)
    ecm.fit(X)
    prob = np.asarray(ecm.prob(X), dtype=float)
    timings["classify_s"] = time.perf_counter() - t
    left = X.index.get_level_values(0).to_numpy()
    right = X.index.get_level_values(1).to_numpy()
    ids = d.index.to_numpy()
    pos = pd.Series(np.arange(len(ids)), index=ids)
    li, ri = pos[left].to_numpy(), pos[right].to_numpy()

    def cluster(mask):
        labels = components(len(ids), li[mask], ri[mask])
        return dict(zip(ids, labels))

    cluster_scores = {}
    eval_s = 0.0
    for th in args.thresholds:
        t = time.perf_counter()
        cmap = cluster(prob >= th)
        timings[f"cluster_{th}_s"] = time.perf_counter() - t
        t = time.perf_counter()
        cluster_scores[th] = score(truth_ids, cmap)
        eval_s += time.perf_counter() - t
    timings["pipeline_s"] = time.perf_counter() - T - eval_s - sum(v for k, v in timings.items() if k.startswith("cluster_") and k != "cluster_0.9_s")
    res["peak_rss_mb_after_pipeline"], _ = peak_rss_mb()
    tp = entities(left) == entities(right)
    res["false_positive_kinds_at_0.9"] = fp_kinds(df, left, right, prob, 0.9)

    # second classifier: sum of similarities (each in [0, 1]) at a sweep of cut-offs
    total = X.sum(axis=1).to_numpy()
    sweep = {}
    for frac in np.arange(0.4, 1.0, 0.04):
        cut = round(float(frac) * len(features), 2)
        sc = score(truth_ids, cluster(total >= cut))
        sweep[str(cut)] = {k: sc[k] for k in ("precision", "recall", "f1", "largest_cluster", "clusters_over_10")}
    best = max(sweep.items(), key=lambda kv: kv[1]["f1"])
    res["weighted_sum"] = {"features": features, "max_score": len(features), "clusters_by_cut": sweep,
                           "best_cut": float(best[0]), "best": best[1]}
    return prob, tp, cluster_scores


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description="Run a peer deduplicator (Splink or recordlinkage) and score it")
    ap.add_argument("file")
    ap.add_argument("out_json")
    ap.add_argument("--peer", choices=["splink", "recordlinkage"], default="splink")
    ap.add_argument("--tf", action="store_true", help="Splink: term-frequency adjustments on given_name and surname")
    ap.add_argument("--blocking", choices=["auto", "single", "compound"], default="auto",
                    help="Splink prediction blocking: single-column rules (as the reference on FEBRL), "
                         "compound rules (tractable at 1M), or auto: single up to 20k rows")
    ap.add_argument("--no-ssn", action="store_true", help="drop soc_sec_id")
    ap.add_argument("--u-max-pairs", type=float, default=1e7)
    ap.add_argument("--thresholds", default="0.5,0.9,0.95,0.99,0.999")
    args = ap.parse_args()
    args.thresholds = [float(x) for x in args.thresholds.split(",")]

    res = {"input": os.path.abspath(args.file), "thresholds": args.thresholds, "no_ssn": args.no_ssn}
    timings = {}
    t = time.perf_counter()
    df, cols = load(args.file, args.no_ssn)
    timings["load_s"] = time.perf_counter() - t
    res["columns"] = cols
    res["n_records"] = int(len(df))

    truth_ids = list(df.rec_id)
    ent = entities(df.rec_id)
    res["n_true_pairs"] = int(sum(n * (n - 1) // 2 for n in np.unique(ent, return_counts=True)[1]))
    del ent

    runner = run_splink if args.peer == "splink" else run_recordlinkage
    t = time.perf_counter()
    prob, tp, cluster_scores = runner(df, cols, args, res, timings, truth_ids)
    timings["total_peer_s"] = time.perf_counter() - t + timings["load_s"]   # includes scoring

    # ---------------- evaluation (not in pipeline_s) ----------------
    res["n_pairs_scored"] = int(len(prob))
    res["true_pairs_among_scored"] = int(tp.sum())
    res["pairs"] = pair_metrics(tp, prob, args.thresholds, res["n_true_pairs"])
    res["clusters"] = {str(th): sc for th, sc in cluster_scores.items()}
    best = max(res["clusters"].items(), key=lambda kv: kv[1]["f1"])
    res["best_threshold"] = float(best[0])
    res["best"] = best[1]
    res["timings"] = {k: round(v, 2) for k, v in timings.items()}
    res["peak_rss_mb_self"], res["peak_rss_mb_children"] = peak_rss_mb()
    res["peak_rss_mb"] = round(res["peak_rss_mb_self"] + res["peak_rss_mb_children"], 1)
    with open(args.out_json, "w") as fh:
        json.dump(res, fh, indent=1)
    short = {th: (c["precision"], c["recall"], c["f1"], c["largest_cluster"]) for th, c in res["clusters"].items()}
    print(json.dumps({"peer": res["peer"], "file": args.file, "records": res["n_records"], "pipeline_s": res["timings"]["pipeline_s"],
                      "peak_rss_mb": res["peak_rss_mb"], "best_threshold": res["best_threshold"], "clusters_P_R_F1_max": short}))


if __name__ == "__main__":
    main()
