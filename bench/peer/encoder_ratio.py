#!/usr/bin/python3
"""Detection's encoder forward, fsl against PyTorch CPU inference, in alternating rounds.

The same v1 encoder (eval mode, random weights: the cost does not depend on them) on 256 windows
of T frames x M mels, T in the adaptive segment lengths detection meets (8 = the shortest, 17,
24, 29 = the longest below features.test_seglen_len_lim 30), M in 128 (the default) and 64.
Each round times PyTorch (torch.inference_mode, best and median of 5 batches) and then fsl's
bench_ops BM_EncoderInfer (EncoderInference, 5 repetitions), both on --threads threads, and
prints windows per second and fsl's over PyTorch's. Wall time: both use every thread.

  /usr/bin/python3 bench/peer/encoder_ratio.py [--bench build/bench_ops] [--rounds 3] [--threads 2]

Needs torch (Debian's python3-torch: scripts/install-deps.sh --python) and a build with
-DFSL_BUILD_BENCH=ON.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "golden"))
from make_model_golden import FEATURES, Model  # noqa: E402

SHAPES = [(T, M) for M in (128, 64) for T in (8, 17, 24, 29)]
B = 256


def torch_rates(threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    out = {}
    for T, M in SHAPES:
        model = Model(dict(FEATURES, arch="v1", n_mels=M)).eval()
        x = torch.randn(B, T, M)
        times = []
        with torch.inference_mode():
            model.encoder(x)  # warm-up (oneDNN primitives are created on the first call)
            for _ in range(5):
                t0 = time.perf_counter()
                model.encoder(x)
                times.append(time.perf_counter() - t0)
        out[(T, M)] = (B / min(times), B / statistics.median(times))
    return out


def fsl_rates(bench, threads):
    cmd = [bench, "--benchmark_filter=^BM_EncoderInfer/", "--benchmark_repetitions=5",
           "--benchmark_min_time=0.5", "--benchmark_format=json"]
    env = dict(os.environ, FSL_THREADS=str(threads))
    run = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    times = {}
    for b in json.loads(run.stdout)["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        T, M = (int(v) for v in b["run_name"].split("/")[1:3])
        times.setdefault((T, M), []).append(b["real_time"] * scale[b["time_unit"]])
    if set(times) != set(SHAPES):
        sys.exit(f"encoder_ratio.py: {bench} ran {sorted(times)}, expected {SHAPES}")
    return {k: (B / min(v), B / statistics.median(v)) for k, v in times.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default="build/bench_ops", help="bench_ops binary")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if not os.access(a.bench, os.X_OK):
        sys.exit(f"encoder_ratio.py: {a.bench}: no such executable "
                 "(configure with -DFSL_BUILD_BENCH=ON and build bench_ops)")
    print(f"torch {torch.__version__}, {a.threads} threads, {B} windows per batch; windows/s "
          "best (median); ratio = fsl / torch, best against best (median against median)")
    for r in range(1, a.rounds + 1):
        tr = torch_rates(a.threads)
        fr = fsl_rates(a.bench, a.threads)
        for T, M in SHAPES:
            (tb, tm), (fb, fm) = tr[(T, M)], fr[(T, M)]
            print(f"round {r}: {T:2d} frames x {M:3d} mels: torch {tb:7.1f} ({tm:7.1f}), "
                  f"fsl {fb:7.1f} ({fm:7.1f}): {fb / tb:.2f}x ({fm / tm:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
