#!/usr/bin/env python3
"""RLdata10000 (a public benchmark of 10,000 German person records with 1,000 duplicate
pairs, shipped with the R package RecordLinkage) as a CSV for `kinship dedupe`, and Splink 5
on it for comparison.

Usage:
    python3 scripts/peer_rldata.py csv RLdata10000.rda OUT.csv      # needs pyreadr, pandas
    python3 scripts/peer_rldata.py splink RL.csv OUT.json           # needs splink

`csv` writes rec_id (`rec-{identity}-r{row}`, so score_clusters.py reads the truth from it),
fname_c1, fname_c2, lname_c1, lname_c2, by, bm, bd. The .rda is data/RLdata10000.rda in
github.com/cran/RecordLinkage.

`splink` runs Splink 5 (DuckDB) configured for this file by hand, as a user who knows it
would: Jaro-Winkler with term-frequency adjustments on the first name and surname, the
year by edit distance, month and day exact; blocking on first name + surname, surname +
year, first name + year and year + day; prior from exact agreement on all five at recall
0.7, u by random sampling, EM blocked on the names and on the date. It reports cluster
precision, recall and F1 at a sweep of thresholds and the best of them.
"""
import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from score_clusters import score  # noqa: E402

THRESHOLDS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]


def to_csv(rda, out):
    import pyreadr

    data = pyreadr.read_r(rda)
    frame = data["RLdata10000"]
    identity = data["identity.RLdata10000"].iloc[:, 0].astype(int)
    frame.insert(0, "rec_id", [f"rec-{person}-r{row}" for row, person in enumerate(identity)])
    for column in ["by", "bm", "bd"]:
        frame[column] = frame[column].astype("Int64")
    frame.to_csv(out, index=False)


def run_splink(path, out):
    import pandas as pd
    import splink
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    # `by` is an SQL keyword that Splink's settings check cannot read
    frame = pd.read_csv(path, dtype=str).rename(columns={"by": "year", "bm": "month", "bd": "day"})
    truth = list(frame["rec_id"])
    names = [cl.JaroWinklerAtThresholds(c, [0.9, 0.7]).configure(term_frequency_adjustments=True) for c in ["fname_c1", "lname_c1"]]
    settings = SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="rec_id",
        comparisons=names + [cl.LevenshteinAtThresholds("year", [1]), cl.ExactMatch("month"), cl.ExactMatch("day")],
        blocking_rules_to_generate_predictions=[
            block_on("fname_c1", "lname_c1"), block_on("lname_c1", "year"), block_on("fname_c1", "year"), block_on("year", "day"),
        ],
    )
    started = time.perf_counter()
    linker = Linker(DuckDBAPI().register(frame, dataset_display_name="rldata"), settings, log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match([block_on("fname_c1", "lname_c1", "year", "month", "day")], recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=42)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("fname_c1", "lname_c1"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("year", "month", "day"))
    predictions = linker.inference.predict(threshold_match_probability=0.0005)
    trained_and_predicted = time.perf_counter() - started
    results = {}
    for threshold in THRESHOLDS:
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, threshold_match_probability=threshold)
        found = clusters.as_pandas_dataframe()[["rec_id", "cluster_id"]]
        results[threshold] = score(truth, dict(zip(found["rec_id"], found["cluster_id"])))
    best = max(results, key=lambda t: results[t]["f1"])
    report = {
        "peer": "splink", "splink": splink.__version__, "file": path, "train_and_predict_s": round(trained_and_predicted, 2),
        "best_threshold": best, "best": results[best],
        "clusters_P_R_F1": {t: [r["precision"], r["recall"], r["f1"]] for t, r in results.items()},
    }
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps({k: report[k] for k in ["best_threshold", "train_and_predict_s"]} | {"best_f1": results[best]["f1"]}))


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("csv", "splink"):
        sys.exit(__doc__)
    (to_csv if sys.argv[1] == "csv" else run_splink)(sys.argv[2], sys.argv[3])
