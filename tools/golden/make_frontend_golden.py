#!/usr/bin/env python3
"""Golden data for tests/test_frontend.cpp and tests/test_audio.cpp, made with librosa.

Writes under tests/data/frontend/:
  cases.txt                    one line per front-end case:
                               name sr n_fft hop n_mels fmin fmax pad_mode pcen_hop
  <name>_x.npy                 the input signal (float32)
  <name>_logmel.npy            log(melspectrogram + 1e-8), (frames, n_mels) float32
  <name>_pcen.npy              librosa.pcen(melspectrogram(x * 2**32)), (frames, n_mels) float32
  audio_*.wav/.flac/.ogg       encoded signals, and audio_*_load22050.npy = librosa.load(sr=22050)
Run: python3 tools/golden/make_frontend_golden.py   (librosa 0.11, soundfile, numpy)
"""
import os

import librosa
import numpy as np
import soundfile as sf

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "frontend")
rng = np.random.default_rng(1234)


def chirp(sr, seconds, f0, f1):
    t = np.arange(int(sr * seconds)) / sr
    return 0.8 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds)))


def clicks(sr, seconds):
    x = np.zeros(int(sr * seconds))
    x[::2205] = 1.0
    x[1103::2205] = -0.5
    return x


def silence_with_events(sr, seconds):
    x = np.zeros(int(sr * seconds))
    t = np.arange(int(0.08 * sr)) / sr
    burst = np.hanning(t.size) * np.sin(2 * np.pi * 3000 * t)
    for start in (0.2, 0.55, 0.9):
        i = int(start * sr)
        x[i:i + burst.size] += burst
    return x


# name, signal, sr, n_fft, hop, n_mels, fmin, fmax, pad_mode, pcen_hop
CASES = [
    ("chirp", chirp(22050, 1.0, 100, 10000), 22050, 1024, 256, 128, 50, 11025, "constant", 256),
    ("noise_odd", rng.standard_normal(15437) * 0.3, 22050, 1024, 256, 64, 50, 11025, "reflect", 256),
    ("clicks", clicks(22050, 0.8), 22050, 1024, 256, 64, 0, 11025, "constant", 512),
    ("events", silence_with_events(22050, 1.2), 22050, 1024, 256, 128, 50, 11025, "constant", 256),
    ("short_const", rng.standard_normal(700) * 0.5, 22050, 1024, 256, 64, 50, 11025, "constant", 256),
    ("short_reflect", rng.standard_normal(300) * 0.5, 22050, 1024, 256, 64, 50, 11025, "reflect", 256),
    ("sr16k", chirp(16000, 0.8, 200, 7000), 16000, 512, 160, 40, 20, 8000, "reflect", 160),
]


def features(x, sr, n_fft, hop, n_mels, fmin, fmax, pad_mode, pcen_hop):
    kw = dict(sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmin=fmin, fmax=fmax,
              pad_mode=pad_mode)
    mel = librosa.feature.melspectrogram(y=x, **kw)
    logmel = np.log(mel + 1e-8)
    mel32 = librosa.feature.melspectrogram(y=x * np.float32(2**32), **kw)
    pcen = librosa.pcen(mel32, sr=sr, hop_length=pcen_hop)
    return (np.ascontiguousarray(logmel.T, dtype=np.float32),
            np.ascontiguousarray(pcen.T, dtype=np.float32))


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = []
    for name, x, sr, n_fft, hop, n_mels, fmin, fmax, pad, pcen_hop in CASES:
        x = x.astype(np.float32)
        logmel, pcen = features(x, sr, n_fft, hop, n_mels, fmin, fmax, pad, pcen_hop)
        np.save(os.path.join(OUT, f"{name}_x.npy"), x)
        np.save(os.path.join(OUT, f"{name}_logmel.npy"), logmel)
        np.save(os.path.join(OUT, f"{name}_pcen.npy"), pcen)
        lines.append(f"{name} {sr} {n_fft} {hop} {n_mels} {fmin} {fmax} {pad} {pcen_hop}")
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")

    # Decode + mono + soxr_hq resample + peak normalisation, as librosa.load then / max|x|.
    t44 = np.arange(int(0.3 * 44100)) / 44100
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t44), 0.3 * np.sin(2 * np.pi * 3000 * t44)], 1)
    sf.write(os.path.join(OUT, "audio_stereo44100.wav"), stereo.astype(np.float32), 44100,
             subtype="FLOAT")
    t16 = np.arange(int(0.25 * 16000) + 3) / 16000
    mono16 = 0.6 * np.sin(2 * np.pi * 1000 * t16) + 0.05 * rng.standard_normal(t16.size)
    sf.write(os.path.join(OUT, "audio_mono16000.flac"), mono16, 16000, subtype="PCM_16")
    sf.write(os.path.join(OUT, "audio_mono16000.ogg"), mono16, 16000)
    for fname in ("audio_stereo44100.wav", "audio_mono16000.flac", "audio_mono16000.ogg"):
        y, _ = librosa.load(os.path.join(OUT, fname), sr=22050, mono=True, res_type="soxr_hq")
        y = y / np.max(np.abs(y))
        np.save(os.path.join(OUT, fname.rsplit(".", 1)[0] + "_" + fname.rsplit(".", 1)[1]
                             + "_load22050.npy"), y.astype(np.float32))


if __name__ == "__main__":
    main()
