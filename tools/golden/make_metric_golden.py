#!/usr/bin/env python3
"""Golden cases for fsl's DCASE Task 5 metric, scored by the OFFICIAL script.

Usage: make_metric_golden.py OFFICIAL_REPO [--out tests/data/metric]

OFFICIAL_REPO is c4dm/dcase-few-shot-bioacoustic: a work tree, or a bare git dir (as the `fetch`
tool leaves it, /work/.mirror/c4dm+dcase-few-shot-bioacoustic/repo). Its
evaluation_metrics/{evaluation,metrics}.py are copied to a temp dir and run, never committed.
Needs pandas < 3 (the script reads predictions with dtype=str; pandas 3 makes that a string
dtype that sorts differently from the object arrays of the pinned pandas 1.2), numpy, scipy,
mir_eval.

Each case is hand-built below: <case>/ref/<SUBSET>/<file>.csv, <case>/pred.csv. The script's
evaluate() is run on it and <case>/expected.json gets its per-subset counts (captured from
compute_scores_from_counts), per-subset P/R/F, overall P/R/F and "fmeasure (percentage)", or
{"error": "<exception>"} where the script fails. Also writes argsort.txt: numpy's
argsort(kind="quicksort") of object arrays with many equal keys (what pandas' sort_values does
to the string column), one case per line: "keys... | order...".
"""
import argparse
import glob
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import numpy as np

H_REF = "Audiofilename,Starttime,Endtime,Q\n"
H_PRED = "Audiofilename,Starttime,Endtime\n"
SHOTS = [(0.5, 1.0), (1.5, 2.0), (2.5, 3.0), (3.5, 4.0), (4.5, 5.0)]  # fifth ends at 5.0


def ref_csv(name, events):
    """events: (start, end, Q) with times as given (numbers or text)."""
    return H_REF + "".join(f"{name},{s},{e},{q}\n" for s, e, q in events)


def shots():
    return [(s, e, "POS") for s, e in SHOTS]


def pred_csv(rows):
    return H_PRED + "".join(f"{f},{s},{e}\n" for f, s, e in rows)


def cases():
    c = {}
    # IoU exactly 0.3 is no match (3/10); 0.31 is; touching spans are no match.
    c["iou_threshold"] = {
        "ref": {"A/f1.csv": ref_csv("f1.wav", shots() + [(10, 20, "POS"), (30, 40, "POS"),
                                                           (50, 51, "POS"), (60, 61, "POS")])},
        "pred": pred_csv([("f1.wav", 10, 13), ("f1.wav", 30, 33.1), ("f1.wav", 51, 52),
                          ("f1.wav", 59.5, 60.5)]),
    }
    # Greedy (first prediction takes its first ref) finds 1 match; maximum matching finds 2.
    # Plus the string-sort quirk: "10.0" sorts before "9.6", so the prediction starting at 10.0
    # takes POS A and the one at 9.6 falls to the UNK (FP 0; numeric order would give FP 1).
    c["maximum_matching"] = {
        "ref": {"A/g1.csv": ref_csv("g1.wav", shots() + [(10, 12, "POS"), (12, 14, "POS")]),
                "A/g2.csv": ref_csv("g2.wav", shots() + [(9.5, 10.5, "POS"), (9.6, 10.0, "UNK")])},
        "pred": pred_csv([("g1.wav", 11, 13), ("g1.wav", 11.2, 12.0),
                          ("g2.wav", 9.6, 10.6), ("g2.wav", "10.0", 10.5)]),
    }
    # UNK matches are neither TP nor FP; a prediction on UNK already taken is FP.
    c["unk_matches"] = {
        "ref": {"A/u1.csv": ref_csv("u1.wav", shots() + [(10, 11, "UNK"), (20, 21, "POS"),
                                                           (30, 32, "UNK"), (40, 41, "POS")])},
        "pred": pred_csv([("u1.wav", 10, 11), ("u1.wav", 30.1, 31.9), ("u1.wav", 30.2, 31.8),
                          ("u1.wav", 20, 21), ("u1.wav", 70, 71)]),
    }
    # Events ending at or before the 5th shot's end (5.0) are dropped (POS and UNK, even one
    # ending exactly at 5.0); predictions on the shots count as FP; an event straddling 5.0 stays.
    c["before_fifth_shot"] = {
        "ref": {"A/s1.csv": ref_csv("s1.wav", shots() + [(4.2, 5.0, "POS"), (0.1, 0.3, "UNK"),
                                                           (4.8, 6.0, "POS"), (8, 9, "POS")])},
        "pred": pred_csv([("s1.wav", 0.5, 1.0), ("s1.wav", 4.5, 5.0), ("s1.wav", 0.1, 0.3),
                          ("s1.wav", 4.8, 6.0), ("s1.wav", 8, 9)]),
    }
    # A file without predictions: FN = all its POS, the 5 shots included.
    c["no_predictions"] = {
        "ref": {"A/n1.csv": ref_csv("n1.wav", shots() + [(10, 11, "POS"), (12, 13, "UNK")]),
                "A/n2.csv": ref_csv("n2.wav", shots() + [(10, 11, "POS"), (20, 21, "POS")])},
        "pred": pred_csv([("n2.wav", 10, 11)]),
    }
    # Three subsets; one with TP 0 (P, R, F floored at 1e-5) dominates the harmonic mean.
    c["several_subsets"] = {
        "ref": {"HB/h1.csv": ref_csv("h1.wav", shots() + [(10, 11, "POS"), (20, 21, "POS"),
                                                            (30, 31, "POS")]),
                "HB/h2.csv": ref_csv("h2.wav", shots() + [(10, 11, "POS")]),
                "ME/m1.csv": ref_csv("m1.wav", shots() + [(10, 11, "POS"), (20, 21, "POS")]),
                "PB/p1.csv": ref_csv("p1.wav", shots() + [(10, 11, "POS")])},
        "pred": pred_csv([("h1.wav", 10, 11), ("h1.wav", 20.1, 21), ("h1.wav", 25, 26),
                          ("h2.wav", 10, 11), ("m1.wav", 10.2, 11.2), ("p1.wav", 50, 51)]),
    }
    # Unsorted reference: the 5th POS's row label is used as a position in the sorted table, so
    # the cut-off is 12.0 (the 6th POS's end), not 10.0, and POS [11, 12] is dropped.
    c["unsorted_reference"] = {
        "ref": {"A/r1.csv": ref_csv("r1.wav", [(20, 21, "POS"), (1, 2, "POS"), (3, 4, "POS"),
                                               (5, 6, "POS"), (7, 8, "POS"), (9, 10, "POS"),
                                               (11, 12, "POS"), (13, 14, "UNK"),
                                               (15, 16, "POS")])},
        "pred": pred_csv([("r1.wav", 11, 12), ("r1.wav", 13, 14), ("r1.wav", 15, 16),
                          ("r1.wav", 20.5, 21)]),
    }
    c["dense_random"] = dense_random_case()
    # Where the official script fails.
    c["error_unknown_file"] = {
        "ref": {"A/e1.csv": ref_csv("e1.wav", shots() + [(10, 11, "POS")])},
        "pred": pred_csv([("e1.wav", 10, 11), ("other.wav", 1, 2)]),
    }
    c["error_subset_without_csv"] = {
        "ref": {"A/e1.csv": ref_csv("e1.wav", shots() + [(10, 11, "POS")]),
                "EMPTY/README.txt": "no csv in this subset\n"},
        "pred": pred_csv([("e1.wav", 10, 11)]),
    }
    c["error_few_shots"] = {
        "ref": {"A/e1.csv": ref_csv("e1.wav", shots()[:4] + [(10, 11, "UNK")])},
        "pred": pred_csv([("e1.wav", 10, 11)]),
    }
    c["error_pred_header"] = {
        "ref": {"A/e1.csv": ref_csv("e1.wav", shots() + [(10, 11, "POS")])},
        "pred": "Audiofilename,Starttime,Endtime,Score\ne1.wav,10,11,0.9\n",
    }
    return c


def dense_random_case():
    """Dense, overlapping predictions and events: several maximum matchings, and which one is
    found changes the UNK matches (so FP) in most files. Times written with
    different precisions so that the text sort differs from the numeric one; > 16 predictions
    per file with repeated start texts (numpy's quicksort is not stable)."""
    rng = random.Random(20240605)
    ref, preds = {}, []
    for subset, n_files in (("DA", 3), ("DB", 2)):
        for k in range(n_files):
            name = f"{subset.lower()}{k}"
            events = shots()
            t = 6.0
            while t < 60:
                d = rng.choice([0.3, 0.5, 0.8])
                events.append((round(t, 2), round(t + d, 2), "POS" if rng.random() < 0.6 else "UNK"))
                t += rng.choice([0.1, 0.2, 0.3, 0.5])
            rng.shuffle(events) if k == 1 else None  # one unsorted file per subset
            ref[f"{subset}/{name}.csv"] = ref_csv(name + ".wav", events)
            for _ in range(rng.randint(50, 60)):
                s = rng.uniform(3, 62)
                d = rng.choice([0.3, 0.5, 0.8, 1.0])
                fmt = rng.choice(["{:.1f}", "{:.2f}", "{:.3f}", "{:g}"])
                preds.append((name + ".wav", fmt.format(s), "{:.3f}".format(float(fmt.format(s)) + d)))
            for _ in range(4):  # repeated start texts
                s = preds[-rng.randint(1, 10)][1]
                preds.append((name + ".wav", s, "{:.3f}".format(float(s) + rng.choice([0.4, 0.9]))))
    rng.shuffle(preds)
    return {"ref": ref, "pred": pred_csv(preds)}


def load_official(repo):
    tmp = tempfile.mkdtemp(prefix="dcase_eval_")
    for f in ("evaluation.py", "metrics.py"):
        src = os.path.join(repo, "evaluation_metrics", f)
        if os.path.exists(src):
            shutil.copy(src, tmp)
        else:  # bare git dir
            text = subprocess.check_output(
                ["git", f"--git-dir={repo}", "show", f"HEAD:evaluation_metrics/{f}"])
            open(os.path.join(tmp, f), "wb").write(text)
    sys.path.insert(0, tmp)
    import evaluation  # noqa: E402  (the official script)
    return evaluation


def run_official(evaluation, case_dir):
    counts = []
    original = evaluation.compute_scores_from_counts

    def spy(c):
        if "total_n_pos_events_this_set" in c:
            counts.append({"tp": int(c["TP"]), "fp": int(c["FP"]), "fn": int(c["FN"])})
        return original(c)

    evaluation.compute_scores_from_counts = spy
    out = tempfile.mkdtemp(prefix="dcase_report_")
    try:
        evaluation.evaluate(os.path.join(case_dir, "pred.csv"), os.path.join(case_dir, "ref"),
                            "golden", "VAL", out)
    except BaseException as e:  # the script's crashes and exit(1) are the expected result here
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        evaluation.compute_scores_from_counts = original
    report = json.load(open(glob.glob(os.path.join(out, "*.json"))[0]))
    shutil.rmtree(out)
    subsets = []
    for (name, sc), cnt in zip(report["scores_per_subset"].items(), counts):
        subsets.append({"name": name, **cnt, "precision": sc["precision"],
                        "recall": sc["recall"], "fmeasure": sc["f-measure"]})
    subsets.sort(key=lambda s: s["name"])
    o = report["overall_scores"]
    return {"error": None, "subsets": subsets,
            "overall": {"precision": o["precision"], "recall": o["recall"],
                        "fmeasure_percent": o["fmeasure (percentage)"]}}


def argsort_cases(path):
    rng = random.Random(7)
    lines = []
    for n in [1, 2, 5, 16, 17, 18, 40, 100, 257, 1000]:
        for distinct in (2, 5, n):
            keys = [rng.randrange(max(1, distinct)) for _ in range(n)]
            order = np.array(keys, dtype=object).argsort(kind="quicksort")
            lines.append(" ".join(map(str, keys)) + " | " + " ".join(map(str, order)))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("repo")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                   "tests", "data", "metric"))
    args = ap.parse_args()
    import pandas
    if int(pandas.__version__.split(".")[0]) >= 3:
        sys.exit("pandas >= 3 reads dtype=str as a string dtype; use pandas < 3")
    evaluation = load_official(os.path.abspath(args.repo))
    for name, case in cases().items():
        d = os.path.join(args.out, name)
        shutil.rmtree(d, ignore_errors=True)
        for rel, text in case["ref"].items():
            os.makedirs(os.path.dirname(os.path.join(d, "ref", rel)), exist_ok=True)
            open(os.path.join(d, "ref", rel), "w").write(text)
        open(os.path.join(d, "pred.csv"), "w").write(case["pred"])
        expected = run_official(evaluation, d)
        with open(os.path.join(d, "expected.json"), "w") as f:
            json.dump(expected, f, indent=1)
            f.write("\n")
        print(name, json.dumps(expected)[:300])
    argsort_cases(os.path.join(args.out, "argsort.txt"))


if __name__ == "__main__":
    main()
