#!/usr/bin/env python3
"""torchaudio MelSpectrogram on the GPU (n_fft 1024, hop 256, 128 mels, Slaney scale and norm,
power 2, centred, fmin 50, fmax 11025), on 600 s of audio at 22050 Hz: the same length as
bench_gpu_frontend. Times host->device copy + transform + log + device->host copy, as
CudaFrontend::compute does, and the transform alone. Prints hours of audio per second.
Exits 0 with a message when torch/torchaudio or a CUDA device is missing.
  python3 bench/peer/frontend_torchaudio.py
"""
import sys
import time

SR, SECONDS = 22050, 600.0


def main():
    try:
        import torch
        import torchaudio
    except ImportError as e:
        print(f"torchaudio peer: skipped ({e})")
        return 0
    if not torch.cuda.is_available():
        print("torchaudio peer: skipped (torch sees no CUDA device)")
        return 0
    dev = torch.device("cuda")
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=SR, n_fft=1024, hop_length=256, f_min=50.0, f_max=11025.0, n_mels=128,
        power=2.0, center=True, pad_mode="constant", norm="slaney", mel_scale="slaney").to(dev)
    g = torch.Generator().manual_seed(7)
    x_host = (0.1 * torch.randn(int(SECONDS * SR), generator=g)).pin_memory()

    def end_to_end():
        x = x_host.to(dev, non_blocking=True)
        y = torch.log(mel(x) + 1e-8).T.contiguous().cpu()  # (frames, n_mels) on the host
        return y

    def transform_only(x):
        y = torch.log(mel(x) + 1e-8)
        torch.cuda.synchronize()
        return y

    def best_of(fn, repeats=10):
        fn()
        torch.cuda.synchronize()
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        return best

    x_dev = x_host.to(dev)
    with torch.no_grad():
        t_e2e = best_of(end_to_end)
        t_dev = best_of(lambda: transform_only(x_dev))
    hours = SECONDS / 3600.0
    name = torch.cuda.get_device_name(0)
    print(f"torchaudio {torchaudio.__version__} torch {torch.__version__} on {name}, "
          f"{SECONDS:.0f} s signal")
    print(f"torchaudio_logmel_end_to_end: {hours / t_e2e:.1f} h audio/s")
    print(f"torchaudio_logmel_on_device: {hours / t_dev:.1f} h audio/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
