#!/usr/bin/python3
"""Peer of bench_ops BM_TrainStep: one training step (forward, filter-negative prototypical loss,
backward, Adam) of the same encoder on 200 x 17 x 128 in PyTorch on the CPU, 2 threads.
Run: /usr/bin/python3 bench/peer/train_step_torch.py [--arch v1|v2] [--threads 2] [--steps 3]
     [--device cpu|cuda] [--tf32] (cuda: peer of bench_gpu_train BM_GpuTrainStep; TF32 off unless --tf32)"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools", "golden"))
from make_model_golden import FEATURES, Model, proto_loss_filter_negative  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--arch", default="v1")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=3)
ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
ap.add_argument("--tf32", action="store_true")
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.backends.cudnn.allow_tf32 = a.tf32
torch.backends.cuda.matmul.allow_tf32 = a.tf32
torch.backends.cudnn.benchmark = True  # algorithms searched once per shape, as CudaContext does
torch.manual_seed(0)
model = Model(dict(FEATURES, arch=a.arch, drop_rate=0.1)).train().to(a.device)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x = torch.randn(200, 17, 128, device=a.device)
labels = torch.tensor([(i % 100) // 10 * 2 + (i >= 100) for i in range(200)], device=a.device)
sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
times = []
for s in range(a.steps + 1):
    t0 = time.perf_counter()
    emb = model.encoder(x)
    loss, acc = proto_loss_filter_negative(emb, labels, 5)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sync()
    if s:  # the first step warms up
        times.append(time.perf_counter() - t0)
print("torch %s %s arch %s threads %d: train step %.4f s (min of %d; mean %.3f s)" %
      (torch.__version__, a.device + (" tf32" if a.tf32 else ""), a.arch, a.threads, min(times), len(times), sum(times) / len(times)))
