#!/usr/bin/python3
"""Golden data for tests/test_model_torch.cpp: the encoder (docs/REFERENCE.md §4) built in PyTorch with
the baseline ResNet's module names, one small episode through forward, the prototypical loss
(filter-negative variant) and backward.

Weights are not stored (0.7 M parameters would exceed the size budget): both sides compute them
from a counter hash (splitmix64, as fsl::om::mix64), element i of the flat parameter buffer in
state_dict order. Gradients are stored as 64 hashed samples per tensor plus each tensor's sum of
squares.

Run:  /usr/bin/python3 tools/golden/make_model_golden.py            (writes tests/data/model/)
      /usr/bin/python3 tools/golden/make_model_golden.py --verify CKPT.safetensors [--arch v2]
        loads a checkpoint written by fsl (save_checkpoint) into the PyTorch model, strictly.
Needs torch (Debian's python3-torch 1.13) and numpy.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "model")
M64 = (1 << 64) - 1


def mix64(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def hash_uniform(seed, n, start=0):
    """u_i in [-1, 1) for i in start..start+n: 24 bits of mix64(seed ^ mix64(i))."""
    out = np.empty(n, dtype=np.float64)
    for k in range(n):
        h = mix64(seed ^ mix64(start + k))
        out[k] = (h >> 40) / 16777216.0 * 2.0 - 1.0
    return out


def sample_index(t, k, numel):
    return mix64(t * 1000003 + k) % numel


class ChannelAttention(nn.Module):
    def __init__(self, c, reduction=16):
        super().__init__()
        cr = max(1, c // reduction)
        self.fc = nn.Sequential(nn.Conv2d(c, cr, 1, bias=False), nn.ReLU(),
                                nn.Conv2d(cr, c, 1, bias=False))

    def forward(self, x):
        a = self.fc(F.adaptive_avg_pool2d(x, 1)) + self.fc(F.adaptive_max_pool2d(x, 1))
        return x * torch.sigmoid(a)


class Block(nn.Module):
    def __init__(self, cin, c, f):
        super().__init__()
        b = f["with_bias"]
        self.conv1 = nn.Conv2d(cin, c, 3, padding=1, bias=b)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=b)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, c, 3, padding=1, bias=b)
        self.bn3 = nn.BatchNorm2d(c)
        self.ca = ChannelAttention(c) if f["arch"] == "v2" else None
        self.downsample = nn.Sequential(nn.Conv2d(cin, c, 1, bias=False), nn.BatchNorm2d(c))
        self.act = nn.LeakyReLU(0.1) if f["non_linearity"] == "leaky_relu" else nn.ReLU()
        self.drop_rate = f["drop_rate"]

    def forward(self, x):
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.ca is not None:
            out = self.ca(out)
        out = self.act(out + self.downsample(x))
        out = F.max_pool2d(out, 2)
        return F.dropout(out, p=self.drop_rate, training=self.training)


class ResNet(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f
        chans = [1, 64, 128, 64, 64]
        for i in range(4):
            setattr(self, "layer%d" % (i + 1), nn.Sequential(Block(chans[i], chans[i + 1], f)))
        t = f["time_max_pool_dim"]
        self.pool_avg = nn.AdaptiveAvgPool2d((t, f["embedding_dim"] // (t * 64)))

    def forward(self, x):
        b, t, m = x.shape
        x = x.view(b, 1, t, m)
        for i in range(4 if self.f["layer_4"] else 3):
            x = getattr(self, "layer%d" % (i + 1))(x)
        return self.pool_avg(x).view(b, -1)


class Model(nn.Module):  # the Python system's container: model.encoder
    def __init__(self, f):
        super().__init__()
        self.encoder = ResNet(f)


def proto_loss_filter_negative(emb, labels, n_shot):
    """docs/REFERENCE.md §5, written from the definition (not the baseline's code)."""
    classes = sorted(set(labels.tolist()))
    protos, queries, targets = [], [], []
    for j, c in enumerate(classes):
        idx = [i for i, l in enumerate(labels.tolist()) if l == c]
        protos.append(emb[idx[:n_shot]].mean(0))
        if c % 2 == 0:
            queries += idx[n_shot:]
            targets += [j] * (len(idx) - n_shot)
    p = torch.stack(protos)
    q = emb[queries]
    d = ((q[:, None, :] - p[None, :, :]) ** 2).sum(2)
    logp = F.log_softmax(-d, dim=1)
    t = torch.tensor(targets, device=emb.device)
    loss = -logp[torch.arange(len(targets)), t].mean()
    acc = (logp.argmax(1) == t).double().mean()
    return loss, acc


def param_names(model):
    return [n for n, _ in model.named_parameters()]


def hash_weights(model, seed):
    """Element i of the flat parameter buffer (state_dict order): BN weight 1 + 0.1 u, BN bias
    0.1 u, conv weights u * sqrt(6 / fan_in) (uniform with the variance of Kaiming, fan_in)."""
    i = 0
    sd = model.state_dict()
    with torch.no_grad():
        for name, p in model.named_parameters():
            u = hash_uniform(seed, p.numel(), i).reshape(p.shape)
            i += p.numel()
            if ".bn" in name or "downsample.1" in name:
                v = 1.0 + 0.1 * u if name.endswith("weight") else 0.1 * u
            elif name.endswith("bias"):
                v = 0.1 * u
            else:
                fan_in = p[0].numel()
                v = u * np.sqrt(6.0 / fan_in)
            sd[name].copy_(torch.from_numpy(v.astype(np.float32)))


def save_npy(name, a):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(a, dtype=np.float32))


def make_case(tag, f, B_labels, n_shot, T, seed):
    torch.manual_seed(0)
    model = Model(f).double()
    hash_weights(model, seed)
    model.train()
    labels = np.array(B_labels)
    x = torch.from_numpy(hash_uniform(seed + 1, len(labels) * T * f["n_mels"]).reshape(
        len(labels), T, f["n_mels"]))
    emb = model.encoder(x)
    loss, acc = proto_loss_filter_negative(emb, labels, n_shot)
    loss.backward()
    names = param_names(model)
    with open(os.path.join(OUT, tag + "_names.txt"), "w") as fh:
        for n, t in model.state_dict().items():
            fh.write("%s %s\n" % (n, ",".join(str(s) for s in t.shape)))
    params = dict(model.named_parameters())
    samples, sumsq = [], []
    for ti, n in enumerate(names):
        p = params[n]
        g = (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).numpy()
        samples.append([g[sample_index(ti, k, g.size)] for k in range(64)])
        sumsq.append((g.astype(np.float64) ** 2).sum())
    running = [t.numpy().reshape(-1) for n, t in model.state_dict().items() if "running_" in n]
    save_npy(tag + "_x.npy", x.numpy())
    save_npy(tag + "_labels.npy", labels)
    save_npy(tag + "_emb.npy", emb.detach().numpy())
    save_npy(tag + "_loss.npy", np.array([loss.item(), acc.item()]))
    save_npy(tag + "_grad_samples.npy", np.array(samples))
    save_npy(tag + "_grad_sumsq.npy", np.array(sumsq))
    save_npy(tag + "_running.npy", np.concatenate(running))
    model.eval()
    with torch.no_grad():
        save_npy(tag + "_emb_eval.npy", model.encoder(x).numpy())
    print(tag, "loss", loss.item(), "acc", acc.item(), "params", sum(p.numel() for p in params.values()))


def read_safetensors(path):
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
        data = fh.read()
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        b, e = v["data_offsets"]
        dt = {"F32": np.float32, "F64": np.float64, "I64": np.int64}[v["dtype"]]
        out[name] = torch.from_numpy(np.frombuffer(data[b:e], dtype=dt).reshape(v["shape"]).copy())
    return out, header.get("__metadata__", {})


def verify(path, arch):
    f = dict(FEATURES, arch=arch, drop_rate=0.1)
    model = Model(f)
    tensors, meta = read_safetensors(path)
    enc = {k: v for k, v in tensors.items() if k.startswith("encoder.")}
    model.load_state_dict(enc, strict=True)  # every name, shape and dtype must match
    model.eval()
    with torch.no_grad():
        e = model.encoder(torch.zeros(2, 17, f["n_mels"]))
    print("loaded %d tensors strictly from %s (metadata %s); embedding %s" %
          (len(enc), path, sorted(meta), tuple(e.shape)))


FEATURES = dict(arch="v1", non_linearity="leaky_relu", with_bias=False, layer_4=False,
                drop_rate=0.0, embedding_dim=2048, time_max_pool_dim=4, n_mels=128)

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--verify")
    ap.add_argument("--arch", default="v1")
    a = ap.parse_args()
    if a.verify:
        verify(a.verify, a.arch)
        sys.exit(0)
    os.makedirs(OUT, exist_ok=True)
    # 2 positive + 2 negative labels, 5 each, shuffled; n_shot 2; 17 x 32 input: maps 8x16, 4x8,
    # 2x4, then adaptive pooling to (4, 8) upsamples both axes.
    labels = [0, 1, 2, 3] * 5
    labels = labels[3:] + labels[:3]
    small = dict(FEATURES, n_mels=32)
    make_case("v1", dict(small), labels, 2, 17, 1234)
    make_case("v2", dict(small, arch="v2", non_linearity="relu", with_bias=True), labels, 2, 17, 99)
