#!/usr/bin/env python3
"""No-training floor on a DCASE-layout validation folder (cross-check only; the project's
numbers come from `fsl_eval ... eval.method=frame_prototype` and `fsl_score`).

Detector, per file (frame prototypes, no learning):
  log-mel (librosa: 22050 Hz, n_fft 1024, hop 256, 128 mels, fmin 50, fmax 11025, power 2,
  log(mel + 1e-8)), frames z-scored over the file; positive prototype = mean frame inside the
  first 5 POS events; negative prototype = mean of the other frames before the 5th event's end;
  for each later frame p = softmax(-d_pos, -d_neg)[0] with squared Euclidean d; p smoothed by a
  moving average over half the shortest shot; frames with p > threshold form events (threshold
  swept 0.00..0.95); events shorter than half the shortest shot are dropped.
Metric (DCASE Task 5 semantics): reference events ending at or before the 5th POS's end are
dropped; an edge where IoU > 0.3; maximum bipartite matching (mir_eval's Hopcroft-Karp) of
predictions to POS (TP), then of the rest to UNK (ignored); FP = predictions - TP - UNK matches,
FN = POS - TP (a file without predictions: every POS row, shots included); P/R/F per source
(top-level folder), overall = harmonic means over sources.

Usage:
    python3 tools/real/floor_check.py /work/data/real [--out floor.tsv]
"""
import argparse
import csv
import sys
from pathlib import Path

import librosa
import mir_eval
import numpy as np

SR, N_FFT, HOP, N_MELS, FMIN, FMAX = 22050, 1024, 256, 128, 50.0, 11025.0
N_SHOTS = 5
THRESHOLDS = np.round(np.arange(0.0, 0.951, 0.05), 2)


def read_reference(csv_path: Path) -> list:
    """-> [(onset, offset, q)] in file order."""
    with open(csv_path, newline="") as f:
        return [(float(r["Starttime"]), float(r["Endtime"]), r["Q"]) for r in csv.DictReader(f)]


def frame_probabilities(wav: Path, shots: list) -> tuple:
    """-> (p for frames after the 5th shot's end (T',), index of the first such frame)."""
    y, _ = librosa.load(wav, sr=SR, mono=True)
    y = y / max(np.max(np.abs(y)), 1e-12)
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS,
                                         fmin=FMIN, fmax=FMAX, power=2.0)
    x = np.log(mel + 1e-8).T                                    # (T, 128)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)
    times = np.arange(len(x)) * HOP / SR                        # centre of each frame
    in_shot = np.zeros(len(x), bool)
    for on, off, _ in shots:
        in_shot |= (times >= on) & (times <= off)
    end5 = shots[-1][1]
    first_query = int(np.searchsorted(times, end5, side="right"))
    before = np.arange(len(x)) < first_query
    pos = x[in_shot].mean(axis=0)
    neg = x[before & ~in_shot].mean(axis=0)
    q = x[first_query:]
    d_pos = ((q - pos) ** 2).sum(axis=1)
    d_neg = ((q - neg) ** 2).sum(axis=1)
    p = 1.0 / (1.0 + np.exp(np.clip(d_pos - d_neg, -60, 60)))  # softmax over the two
    return p, first_query


def detect(p: np.ndarray, first_query: int, min_frames: int, threshold: float) -> list:
    """Runs of p > threshold -> [(onset, offset)] seconds; runs shorter than min_frames dropped."""
    above = np.concatenate([[False], p > threshold, [False]])
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    events = []
    for a, b in zip(edges[::2], edges[1::2]):                   # frames a..b-1
        if b - a >= min_frames:
            events.append(((first_query + a) * HOP / SR, (first_query + b) * HOP / SR))
    return events


def iou(a, b) -> float:
    inter = min(a[1], b[1]) - max(a[0], b[0])
    return inter / (max(a[1], b[1]) - min(a[0], b[0])) if inter > 0 else 0.0


def match_count(refs: list, preds: list) -> set:
    """Maximum matching predictions <-> refs where IoU > 0.3 -> set of matched pred indices."""
    graph = {}
    for j, pred in enumerate(preds):
        hits = [i for i, ref in enumerate(refs) if iou(ref, pred) > 0.3]
        if hits:
            graph[j] = hits
    return set(mir_eval.util._bipartite_match(graph).values())  # right->left: pred indices


def score_file(reference: list, preds: list) -> tuple:
    """-> (TP, FP, FN) for one file, DCASE semantics."""
    pos_rows = [r for r in reference if r[2] == "POS"]
    if not preds:
        return 0, 0, len(pos_rows)
    end5 = pos_rows[N_SHOTS - 1][1]
    kept = [r for r in reference if r[1] > end5]
    pos = [r[:2] for r in kept if r[2] == "POS"]
    unk = [r[:2] for r in kept if r[2] == "UNK"]
    preds = sorted(preds)
    tp_set = match_count(pos, preds)
    rest = [p for j, p in enumerate(preds) if j not in tp_set]
    n_unk = len(match_count(unk, rest)) if unk else 0
    tp = len(tp_set)
    return tp, len(preds) - tp - n_unk, len(pos) - tp


def prf(tp: int, fp: int, fn: int) -> tuple:
    if tp == 0:
        return max(0.0, 1e-5), 1e-5, 1e-5
    p, r = tp / (tp + fp), tp / (tp + fn)
    return max(p, 1e-5), r, 2 * p * r / (p + r)


def harmonic(values: list) -> float:
    return len(values) / sum(1.0 / v for v in values)


def main() -> int:
    ap = argparse.ArgumentParser(description="frame-prototype floor, DCASE metric")
    ap.add_argument("root", type=Path, help="folder of <SOURCE>/<file>.wav + .csv")
    ap.add_argument("--out", type=Path, help="write per-threshold table (tsv)")
    args = ap.parse_args()
    sources = sorted(d for d in args.root.iterdir() if d.is_dir() and list(d.glob("*.csv")))
    if not sources:
        print(f"error: no <SOURCE>/*.csv under {args.root}", file=sys.stderr)
        return 2
    counts = {}  # (source, threshold) -> [tp, fp, fn]
    for src in sources:
        for csv_path in sorted(src.glob("*.csv")):
            reference = read_reference(csv_path)
            shots = [r for r in reference if r[2] == "POS"][:N_SHOTS]
            if len(shots) < N_SHOTS:
                print(f"error: {csv_path}: fewer than {N_SHOTS} POS rows", file=sys.stderr)
                return 2
            p, first_query = frame_probabilities(csv_path.with_suffix(".wav"), shots)
            shortest = min(off - on for on, off, _ in shots) * SR / HOP   # frames
            half = max(1, int(round(shortest / 2)))
            p = np.convolve(p, np.ones(half) / half, mode="same")
            for th in THRESHOLDS:
                tp, fp, fn = score_file(reference, detect(p, first_query, half, th))
                c = counts.setdefault((src.name, th), [0, 0, 0])
                c[0] += tp; c[1] += fp; c[2] += fn
    rows = ["threshold\tsource\tTP\tFP\tFN\tP\tR\tF"]
    best = None
    for th in THRESHOLDS:
        per = []
        for src in sources:
            tp, fp, fn = counts[(src.name, th)]
            per.append(prf(tp, fp, fn))
            rows.append(f"{th:.2f}\t{src.name}\t{tp}\t{fp}\t{fn}\t" +
                        "\t".join(f"{v * 100:.1f}" for v in per[-1]))
        overall = tuple(harmonic([x[k] for x in per]) for k in range(3))
        rows.append(f"{th:.2f}\tOVERALL\t\t\t\t" + "\t".join(f"{v * 100:.1f}" for v in overall))
        if best is None or overall[2] > best[1][2]:
            best = (th, overall)
    if args.out:
        args.out.write_text("\n".join(rows) + "\n")
    th = best[0]
    print(f"best threshold {th:.2f} (chosen on these files: optimistic)")
    print("source\tTP\tFP\tFN\tP\tR\tF\tbest-F-any-threshold(th)")
    for src in sources:
        tp, fp, fn = counts[(src.name, th)]
        p, r, f = prf(tp, fp, fn)
        f_best, th_best = max((prf(*counts[(src.name, t)])[2], t) for t in THRESHOLDS)
        print(f"{src.name}\t{tp}\t{fp}\t{fn}\t{p * 100:.1f}\t{r * 100:.1f}\t{f * 100:.1f}\t"
              f"{f_best * 100:.1f} ({th_best:.2f})")
    print("OVERALL\t\t\t\t" + "\t".join(f"{v * 100:.1f}" for v in best[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
