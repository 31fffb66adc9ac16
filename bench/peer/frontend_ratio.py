#!/usr/bin/env python3
"""fsl's CPU front end against librosa, one thread each, in alternating rounds on the same minute.

Each round times librosa (frontend_librosa.py's functions: best of 5 by process time) and then
fsl's bench_frontend (OneThread logmel and pcen, 10 repetitions: best and median CPU time), and
prints fsl's throughput over librosa's. On a shared machine the rates of both drift by 10-30%
from minute to minute; the ratio of two runs a few seconds apart drifts less.

  python3 bench/peer/frontend_ratio.py [--bench build/bench_frontend] [--rounds 3]

Needs librosa (scripts/install-deps.sh --python) and a build with -DFSL_BUILD_BENCH=ON.
"""
import argparse
import json
import os
import subprocess
import sys

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import frontend_librosa as peer  # noqa: E402

SECONDS = peer.SECONDS


def fsl_times(bench, feature_arg):
    """Best and median CPU seconds per 60 s file over 10 repetitions of one OneThread case."""
    cmd = [bench, f"--benchmark_filter=^BM_FrontendOneThread/{feature_arg}/0$",
           "--benchmark_repetitions=10", "--benchmark_format=json"]
    run = subprocess.run(cmd, capture_output=True, text=True, check=True)
    runs = [b for b in json.loads(run.stdout)["benchmarks"] if b.get("run_type") == "iteration"]
    if not runs:
        sys.exit(f"frontend_ratio.py: {bench} ran no BM_FrontendOneThread/{feature_arg}/0")
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    times = sorted(b["cpu_time"] * scale[b["time_unit"]] for b in runs)
    mid = len(times) // 2
    median = times[mid] if len(times) % 2 else 0.5 * (times[mid - 1] + times[mid])
    return times[0], median


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default="build/bench_frontend", help="bench_frontend binary")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not os.access(args.bench, os.X_OK):
        sys.exit(f"frontend_ratio.py: {args.bench}: no such executable "
                 "(configure with -DFSL_BUILD_BENCH=ON and build bench_frontend)")
    x = peer.signal()
    print(f"{SECONDS:.0f} s signal; ratio = fsl s audio per CPU s / librosa's, one thread each; "
          "fsl best of 10 (median of 10), librosa best of 5")
    for r in range(1, args.rounds + 1):
        cells = []
        for name, fn, arg in (("logmel", peer.logmel, 0), ("pcen", peer.pcen, 1)):
            librosa_rate = peer.rate(fn, x)
            best, median = fsl_times(args.bench, arg)
            cells.append(f"{name}: librosa {librosa_rate:.0f} s/s, fsl {SECONDS / best:.0f} s/s "
                         f"= {SECONDS / best / librosa_rate:.1f}x "
                         f"({SECONDS / median / librosa_rate:.1f}x)")
        print(f"round {r}: " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
