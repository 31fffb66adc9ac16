#!/usr/bin/env python3
"""librosa front end throughput, single-threaded, on the same 60 s signal as bench_frontend:
logmel = log(melspectrogram + 1e-8); pcen = librosa.pcen(melspectrogram(x * 2**32)).
Prints seconds of audio per CPU second for each (best of 5). Run with OMP/OPENBLAS/MKL threads = 1:
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 python3 bench/peer/frontend_librosa.py
"""
import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import time  # noqa: E402

import librosa  # noqa: E402
import numpy as np  # noqa: E402

SR, SECONDS = 22050, 60.0
KW = dict(sr=SR, n_fft=1024, hop_length=256, n_mels=128, fmin=50, fmax=11025)


def signal():
    rng = np.random.default_rng(7)
    i = np.arange(int(SECONDS * SR))
    x = 0.5 * np.sin(2 * np.pi * (300 + 0.01 * i) * i / SR) + rng.normal(0, 0.05, i.size)
    return x.astype(np.float32)


def logmel(x):
    return np.log(librosa.feature.melspectrogram(y=x, **KW) + 1e-8).T


def pcen(x):
    return librosa.pcen(librosa.feature.melspectrogram(y=x * np.float32(2**32), **KW),
                        sr=SR, hop_length=256).T


def rate(fn, x, repeats=5):
    fn(x)  # warm-up (filterbank cache, imports)
    best = float("inf")
    for _ in range(repeats):
        # CPU time of this process (one thread), comparable with bench_frontend's one-thread rate
        # on a shared machine.
        t0 = time.process_time()
        fn(x)
        best = min(best, time.process_time() - t0)
    return SECONDS / best


if __name__ == "__main__":
    x = signal()
    print(f"librosa {librosa.__version__}, numpy {np.__version__}, 1 thread, {SECONDS:.0f} s signal")
    for name, fn in (("logmel", logmel), ("pcen", pcen)):
        print(f"{name}: {rate(fn, x):.0f} s audio/s")
