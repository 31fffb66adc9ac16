#!/usr/bin/env python3
"""Repeats one DCASE-layout validation file (16-bit PCM WAV + its CSV) until it lasts --seconds:
a long file with the same calls, for detection throughput (bench/detect_e2e.sh). The CSV's
events are repeated with the offsets, so the first copy's first 5 POS stay the shots.

  python3 tools/bench/make_long_file.py --wav IN.wav --seconds 3600 --out DIR/LONG/long.wav

Standard library only (wave, csv)."""
import argparse
import csv
import os
import sys
import wave


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wav", required=True, help="input .wav (its .csv next to it)")
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--out", required=True, help="output .wav (the .csv is written next to it)")
    a = ap.parse_args()
    src_csv = os.path.splitext(a.wav)[0] + ".csv"
    try:
        with wave.open(a.wav, "rb") as w:
            params = w.getparams()
            frames = w.readframes(w.getnframes())
    except (OSError, wave.Error) as e:
        sys.exit(f"make_long_file.py: {a.wav}: {e}")
    if params.sampwidth != 2 or params.nchannels != 1:
        sys.exit(f"make_long_file.py: {a.wav}: expected 16-bit mono PCM")
    sr, n = params.framerate, params.nframes
    copies = max(1, int(-(-a.seconds * sr // n)))  # ceil
    with open(src_csv, newline="") as fh:
        rows = list(csv.reader(fh))
    header, events = rows[0], rows[1:]
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp"
    with wave.open(tmp, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        for _ in range(copies):
            w.writeframes(frames)
    os.replace(tmp, a.out)
    name = os.path.basename(a.out)
    out_csv = os.path.splitext(a.out)[0] + ".csv"
    with open(out_csv + ".tmp", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(header)
        for c in range(copies):
            off = c * n / sr
            for e in events:
                wr.writerow([name, f"{float(e[1]) + off:.3f}", f"{float(e[2]) + off:.3f}"] + e[3:])
    os.replace(out_csv + ".tmp", out_csv)
    print(f"{a.out}: {copies} copies of {n / sr:.1f} s = {copies * n / sr / 3600:.3f} h")


if __name__ == "__main__":
    main()
