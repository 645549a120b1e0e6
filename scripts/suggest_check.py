#!/usr/bin/env python3
"""Compares a hand-written mapping with the one `kinship source suggest` proposes, on a
directory of exports with a ground truth (`truth.csv`: source,record_key,person_id).

Usage:
    python3 scripts/suggest_check.py DIR [--kinship target/release/kinship]

DIR holds the exports, `kinship.toml` (the hand mapping) and `truth.csv`. The script copies
the exports twice: once with the hand mapping, once with only the hand mapping's [resolve]
default region, to which each source is added by `kinship source suggest FILE --name NAME
--write --yes` in the hand mapping's order, and ingested before the next is suggested. Both are ingested and resolved; it prints, per
source, rows ingested and rejected, the identifier kinds mapped and the timestamp column,
then the pairwise precision, recall and F1 of each against the truth.
"""
import argparse, csv, itertools, collections, os, shutil, subprocess, sys, tempfile, tomllib


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return r


def score(truth_path, assignments_path):
    def groups(path, keys, col):
        with open(path, newline="") as f:
            return {tuple(row[k] for k in keys): row[col] for row in csv.DictReader(f)}
    truth = groups(truth_path, ["source", "record_key"], "person_id")
    pred = groups(assignments_path, ["source", "record_key"], "profile_id")
    common = set(truth) & set(pred)

    def pairs(assign):
        by = collections.defaultdict(list)
        for k in common:
            by[assign[k]].append(k)
        return {p for members in by.values() for p in itertools.combinations(sorted(members), 2)}
    t, p = pairs(truth), pairs(pred)
    tp = len(t & p)
    precision = tp / len(p) if p else 1.0
    recall = tp / len(t) if t else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return dict(records=len(truth), assigned=len(common), precision=precision, recall=recall, f1=f1)


def ingest(kinship, data):
    r = run([kinship, "ingest", "--data", data])
    out = os.path.join(data, "assignments.csv")
    run([kinship, "assignments", "--data", data, "--out", out])
    return r.stdout + r.stderr, out


def summary(data):
    config = tomllib.load(open(os.path.join(data, "kinship.toml"), "rb"))
    return {name: (sorted(s.get("identifiers", {})), s.get("timestamp"), s.get("key")) for name, s in config.get("sources", {}).items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--kinship", default="target/release/kinship")
    args = ap.parse_args()
    kinship = os.path.abspath(args.kinship)
    hand = tomllib.load(open(os.path.join(args.dir, "kinship.toml"), "rb"))
    files = [f for f in os.listdir(args.dir) if f not in ("kinship.toml", "truth.csv") and os.path.isfile(os.path.join(args.dir, f))]
    work = tempfile.mkdtemp(prefix="suggest-check-")
    results = {}
    for run_name in ("hand", "suggested"):
        data = os.path.join(work, run_name)
        os.makedirs(data)
        for f in files:
            shutil.copy(os.path.join(args.dir, f), data)
        if run_name == "hand":
            shutil.copy(os.path.join(args.dir, "kinship.toml"), data)
        else:
            region = hand.get("resolve", {}).get("default_region", "US")
            open(os.path.join(data, "kinship.toml"), "w").write(f'[resolve]\ndefault_region = "{region}"\n')
            for name, source in hand["sources"].items():
                if "path" not in source:
                    continue
                r = run([kinship, "source", "suggest", os.path.join(data, source["path"]), "--name", name, "--write", "--yes", "--data", data])
                preview = [l for l in r.stderr.splitlines() if l.startswith("Preview")]
                print(f"suggest {name}: {preview[0] if preview else r.stderr.strip()}")
                # Connected one at a time, as a user would: each is read before the next is
                # suggested, so id columns can be checked against stored identifiers.
                run([kinship, "ingest", "--source", name, "--data", data])
        log, assignments = ingest(kinship, data)
        results[run_name] = (score(os.path.join(args.dir, "truth.csv"), assignments), summary(data), log)
    print()
    for run_name, (s, sources, log) in results.items():
        print(f"== {run_name}")
        for line in log.splitlines():
            if not line.startswith("resolved") and not line.startswith("  guards"):
                print("  " + line.rstrip())
        for name, (kinds, ts, key) in sources.items():
            print(f"  {name}: key {key}, timestamp {ts}, identifiers {', '.join(kinds)}")
        print(f"  records {s['records']}, assigned {s['assigned']}: precision {s['precision']:.4f} recall {s['recall']:.4f} F1 {s['f1']:.4f}")
    print(f"\n(work in {work})")


if __name__ == "__main__":
    main()
