#!/usr/bin/env python3
"""Score a deduplication (clusters, and optionally linked pairs) against FEBRL-style ground truth.

Usage:
    python3 scripts/score_clusters.py TRUTH.csv CLUSTERS.csv [--id-column rec_id]
        [--cluster-column cluster_id] [--pairs PAIRS.csv]

TRUTH.csv is the input file that was deduplicated (any CSV with the id column; FEBRL's ", "
separators are fine). The true entity of a record is the number N in its id `rec-N-org` /
`rec-N-dup-K`: two records are a true pair when they share N.
CLUSTERS.csv has the id column and a cluster column (what `kinship dedupe --out` writes);
records of the truth that it lacks count as singletons.
PAIRS.csv (optional) has columns left_id,right_id: the linked pairs (e.g. `kinship dedupe --pairs`);
their pairwise precision/recall/F1 is reported too (pairs counted once whatever their order).

Prints one JSON line: records, true_pairs, predicted_pairs (pairs implied by the clusters),
cluster precision/recall/F1 over those pairs, largest cluster, largest true cluster, clusters
with more than 10 records, and pair_* metrics with --pairs.

Cost is linear: no pair is enumerated. Predicted pairs = sum over clusters of C(size, 2);
true pairs = sum over entities of C(size, 2); true positives = sum over (cluster, entity)
intersections of C(size, 2).
"""
import argparse
import csv
import json
import re
import sys
from collections import Counter

ENTITY = re.compile(r"rec-(\d+)-")


def c2(n):
    return n * (n - 1) // 2


def prf(tp, predicted, true):
    p = tp / predicted if predicted else 0.0
    r = tp / true if true else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return round(p, 6), round(r, 6), round(f, 6)


def read_columns(path, wanted):
    """Yield tuples of the wanted columns of a CSV (header names and values are stripped)."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, skipinitialspace=True)
        header = [h.strip() for h in next(reader)]
        try:
            idx = [header.index(w) for w in wanted]
        except ValueError:
            sys.exit(f"{path}: needs columns {wanted}, has {header}")
        for row in reader:
            if row:
                yield tuple(row[i].strip() for i in idx)


def entity_of(rec_id):
    m = ENTITY.match(rec_id)
    if not m:
        sys.exit(f"id {rec_id!r} is not of the form rec-N-...")
    return int(m.group(1))


def score(truth_ids, cluster_of, linked_pairs=None):
    """truth_ids: iterable of record ids; cluster_of: dict id -> cluster label;
    linked_pairs: optional iterable of (left_id, right_id). Returns a dict of metrics."""
    entity = {}
    for rid in truth_ids:
        entity[rid] = entity_of(rid)
    ent_sizes = Counter(entity.values())
    true_pairs = sum(c2(n) for n in ent_sizes.values())

    cl_sizes = Counter()
    inter = Counter()
    missing = 0
    for rid, e in entity.items():
        c = cluster_of.get(rid)
        if c is None:                      # not in the clustering: its own singleton
            missing += 1
            continue
        cl_sizes[c] += 1
        inter[(c, e)] += 1
    extra = sum(1 for rid in cluster_of if rid not in entity)
    predicted = sum(c2(n) for n in cl_sizes.values())
    tp = sum(c2(n) for n in inter.values())
    p, r, f = prf(tp, predicted, true_pairs)
    out = {
        "records": len(entity), "true_pairs": true_pairs, "predicted_pairs": predicted,
        "true_positive_pairs": tp, "precision": p, "recall": r, "f1": f,
        "clusters": len(cl_sizes) + missing, "largest_cluster": max(cl_sizes.values(), default=1) if entity else 0,
        "largest_true_cluster": max(ent_sizes.values(), default=0),
        "clusters_over_10": sum(1 for n in cl_sizes.values() if n > 10),
        "ids_missing_from_clusters": missing, "cluster_ids_not_in_truth": extra,
    }
    if linked_pairs is not None:
        seen = set()
        ptp = 0
        for a, b in linked_pairs:
            if a == b:
                continue
            key = (a, b) if a < b else (b, a)
            if key in seen:
                continue
            seen.add(key)
            ea, eb = entity.get(a), entity.get(b)
            if ea is not None and ea == eb:
                ptp += 1
        pp, pr, pf = prf(ptp, len(seen), true_pairs)
        out.update(pair_predicted=len(seen), pair_true_positives=ptp, pair_precision=pp, pair_recall=pr, pair_f1=pf)
    return out


def main():
    ap = argparse.ArgumentParser(description="Score clusters against rec-N-... ground truth")
    ap.add_argument("truth")
    ap.add_argument("clusters")
    ap.add_argument("--id-column", default="rec_id")
    ap.add_argument("--cluster-column", default="cluster_id")
    ap.add_argument("--pairs", help="CSV with left_id,right_id columns of linked pairs")
    args = ap.parse_args()
    truth_ids = [row[0] for row in read_columns(args.truth, [args.id_column])]
    cluster_of = dict(read_columns(args.clusters, [args.id_column, args.cluster_column]))
    pairs = read_columns(args.pairs, ["left_id", "right_id"]) if args.pairs else None
    print(json.dumps(score(truth_ids, cluster_of, pairs)))


if __name__ == "__main__":
    main()
