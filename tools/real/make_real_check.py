#!/usr/bin/env python3
"""Build a small REAL-recordings check set in the DCASE Task 5 validation layout.

fsl trains on synthetic data only; this set measures whether that transfers to real
annotated animal sounds. Nothing here is committed to fsl: the audio is read at run time
from three public GitHub repositories that ship annotated recordings as test/example data.

Usage (git dirs as produced by the session `fetch` tool, or any bare/normal clone):
    python3 tools/real/make_real_check.py --out /work/data/real \
        --whombat-git   /work/.mirror/mbsantiago+whombat/repo \
        --crowsetta-git /work/.mirror/vocalpy+crowsetta/repo \
        --maad-git      /work/.mirror/scikit-maad+scikit-maad/repo
A repository left out skips its sources. Needs python3 with numpy, scipy, soundfile and the
`git` command. Output:
    OUT/<SOURCE>/<file>.wav + <file>.csv   (header Audiofilename,Starttime,Endtime,Q; POS/UNK rows
                                            sorted by onset; the first 5 POS are the shots)
    OUT/LICENSES.md                        (origin, commit, dataset citation and licence per file)
    OUT/summary.tsv                        (events, duration, sample rate per file)

Sources (see tools/real/README.md):
  BAT  whombat example_data: 10 Costa Rican bat recordings (xeno-canto, CC BY-NC-SA 4.0), every
       echolocation call boxed; one species per file. Written 10x time-expanded (sample rate
       divided by 10, samples untouched) so the calls fall inside a 22.05 kHz front end.
       Calls tagged call_quality=truncated become UNK.
  BFGY crowsetta tests: 10 consecutive song files of Bengalese finch gy6or6 (bfsongrepo,
       CC BY 4.0), concatenated in time order into >= --concat-seconds recordings; target =
       one syllable label (default the most frequent, 'i' = introductory notes).
  BFKO crowsetta tests: Koumura BirdsongRecognition Bird0 (CC BY 4.0), same treatment.
  SPIN scikit-maad data/spinetail.wav (BSD-3): field recording, target SP (14 events).
"""
import argparse
import collections
import io
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import soundfile as sf


@dataclass
class Event:
    onset: float   # seconds
    offset: float  # seconds
    q: str         # "POS" or "UNK"


@dataclass
class Written:
    source: str
    name: str
    seconds: float
    sr: int
    n_pos: int
    n_unk: int
    origin: str    # repo@commit:paths
    citation: str
    licence: str
    note: str


def git_show(git_dir: str, path: str) -> bytes:
    return subprocess.run(["git", "--git-dir", git_dir, "show", f"HEAD:{path}"],
                          check=True, capture_output=True).stdout


def git_head(git_dir: str) -> str:
    return subprocess.run(["git", "--git-dir", git_dir, "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def git_ls(git_dir: str, folder: str) -> list:
    out = subprocess.run(["git", "--git-dir", git_dir, "ls-tree", "-r", "--name-only", "HEAD",
                          folder], check=True, capture_output=True, text=True).stdout
    return [p for p in out.splitlines() if p]


def write_pair(out: Path, source: str, name: str, audio: np.ndarray, sr: int,
               events: list) -> tuple:
    """Writes OUT/source/name.wav (int16 mono) and .csv; returns (seconds, n_pos, n_unk)."""
    folder = out / source
    folder.mkdir(parents=True, exist_ok=True)
    seconds = len(audio) / sr
    rows = sorted((e for e in events if e.offset > e.onset and e.onset < seconds),
                  key=lambda e: (e.onset, e.offset))
    sf.write(folder / f"{name}.wav", audio, sr, subtype="PCM_16")
    lines = ["Audiofilename,Starttime,Endtime,Q"]
    for e in rows:
        lines.append(f"{name}.wav,{e.onset:.6f},{min(e.offset, seconds):.6f},{e.q}")
    tmp = folder / f".{name}.csv.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(folder / f"{name}.csv")
    n_pos = sum(e.q == "POS" for e in rows)
    return seconds, n_pos, len(rows) - n_pos


def enough(name: str, seconds: float, n_pos: int, args) -> bool:
    ok = n_pos >= args.min_events and seconds >= args.min_seconds
    if not ok:
        print(f"  skip {name}: {n_pos} POS, {seconds:.1f} s", file=sys.stderr)
    return ok


# ---------------------------------------------------------------- BAT (whombat)
def make_bat(git_dir: str, out: Path, args) -> list:
    import json
    commit = git_head(git_dir)
    project = json.loads(git_show(git_dir, "example_data/example_annotation_project.json"))["data"]
    tags = {t["id"]: t for t in project["tags"]}
    events_of = {s["uuid"]: s for s in project["sound_events"]}
    per_recording = collections.defaultdict(list)  # recording uuid -> [Event]
    for ann in project["sound_event_annotations"]:
        ev = events_of[ann["sound_event"]]
        t0, _, t1, _ = ev["geometry"]["coordinates"]  # BoundingBox: t0, f0, t1, f1
        truncated = any(tags[t]["key"] == "call_quality" for t in ann.get("tags") or [])
        per_recording[ev["recording"]].append(Event(t0, t1, "UNK" if truncated else "POS"))
    done = []
    te = args.bat_time_expansion
    for rec in project["recordings"]:
        path = "example_data/audio/" + rec["path"].split("/")[-1]
        audio, sr = sf.read(io.BytesIO(git_show(git_dir, path)), dtype="int16", always_2d=True)
        audio = audio[:, 0]
        species = next(tags[t]["value"] for t in rec["tags"] if tags[t]["key"] == "species")
        name = Path(path).stem
        events = [Event(e.onset * te, e.offset * te, e.q) for e in per_recording[rec["uuid"]]]
        new_sr = int(round(sr / te))
        seconds = len(audio) / new_sr
        if not enough(name, seconds, sum(e.q == "POS" for e in events), args):
            continue
        seconds, n_pos, n_unk = write_pair(out, "BAT", name, audio, new_sr, events)
        done.append(Written("BAT", name, seconds, new_sr, n_pos, n_unk,
                            f"github.com/mbsantiago/whombat@{commit}:{path} + "
                            "example_data/example_annotation_project.json",
                            f"{species} echolocation calls, xeno-canto recording "
                            f"{name.split('-')[0]} (uploaders Daniel J Buckley, Gloriana "
                            "Chaverri), annotated by S. Martinez Balvanera for whombat",
                            "CC BY-NC-SA 4.0 (example_data/audio/LICENSE, README.md); "
                            "non-commercial, share-alike, attribution required",
                            f"time-expanded x{te}: original {sr} Hz, times x{te}; channel 0"))
    return done


# ---------------------------------------------------------------- song syllables (crowsetta)
def group_in_time_order(items: list, min_seconds: float) -> list:
    """items: [(name, audio, sr, [(onset, offset, label)])] -> consecutive groups >= min_seconds."""
    groups, current, length = [], [], 0.0
    for item in items:
        current.append(item)
        length += len(item[1]) / item[2]
        if length >= min_seconds:
            groups.append(current)
            current, length = [], 0.0
    if current and groups and length < min_seconds / 2:
        groups[-1].extend(current)  # a short tail joins the last group
    elif current:
        groups.append(current)
    return groups


def write_song_groups(out: Path, source: str, stem: str, items: list, label: str, args,
                      origin: str, citation: str, licence: str) -> list:
    if label == "auto":
        counts = collections.Counter(l for it in items for _, _, l in it[3])
        label = counts.most_common(1)[0][0]
    done = []
    for k, group in enumerate(group_in_time_order(items, args.concat_seconds), start=1):
        sr = group[0][2]
        chunks, events, t = [], [], 0.0
        for _, audio, item_sr, notes in group:
            assert item_sr == sr, "mixed sample rates in one group"
            events += [Event(t + a, t + b, "POS") for a, b, l in notes if l == label]
            chunks.append(audio)
            t += len(audio) / sr
        name = f"{stem}_part{k:02d}"
        if not enough(name, t, len(events), args):
            continue
        seconds, n_pos, n_unk = write_pair(out, source, name, np.concatenate(chunks), sr, events)
        members = ",".join(g[0] for g in group)
        done.append(Written(source, name, seconds, sr, n_pos, n_unk, f"{origin} [{members}]",
                            citation, licence,
                            f"target syllable label '{label}'; {len(group)} consecutive song "
                            "files concatenated in time order (hard joins)"))
    return done


def make_gy6or6(git_dir: str, out: Path, args) -> list:
    folder = "tests/data_for_tests/cbins/gy6or6/032312"
    items = []
    for path in sorted(p for p in git_ls(git_dir, folder) if p.endswith(".cbin")):
        rec = git_show(git_dir, path[:-len(".cbin")] + ".rec").decode("latin-1")
        fields = {k.strip(): v.strip() for k, v in
                  (l.split("=", 1) for l in rec.splitlines() if "=" in l)}
        channels, sr = int(fields["Chans"]), int(float(fields["ADFREQ"]))
        # .cbin: big-endian int16, channels interleaved; channel 0 is the song microphone
        audio = np.frombuffer(git_show(git_dir, path), dtype=">i2").reshape(-1, channels)[:, 0]
        mat = scipy.io.loadmat(io.BytesIO(git_show(git_dir, path + ".not.mat")), squeeze_me=True)
        assert int(mat["Fs"]) == sr, path
        notes = [(on / 1000.0, off / 1000.0, l) for on, off, l in
                 zip(np.atleast_1d(mat["onsets"]), np.atleast_1d(mat["offsets"]), str(mat["labels"]))]
        items.append((Path(path).name, audio.astype(np.int16), sr, notes))
    return write_song_groups(
        out, "BFGY", "gy6or6_032312", items, args.gy6or6_label, args,
        f"github.com/vocalpy/crowsetta@{git_head(git_dir)}:{folder}",
        "Nicholson, Queen & Sober (2017) Bengalese Finch song repository, figshare, "
        "doi:10.6084/m9.figshare.4805749 (bird gy6or6, day 032312)",
        "CC BY 4.0 per the figshare dataset page (the crowsetta repo itself is BSD-3 and ships "
        "no separate data licence file)")


def make_koumura(git_dir: str, out: Path, args) -> list:
    folder = "tests/data_for_tests/birdsongrec/Bird0"
    root = ET.fromstring(git_show(git_dir, f"{folder}/Annotation.xml"))
    notes_of = collections.defaultdict(list)  # wav name -> [(onset s, offset s, label)]
    seq_samples = []
    for seq in root.iter("Sequence"):
        wav, pos = seq.findtext("WaveFileName"), int(seq.findtext("Position"))
        for note in seq.iter("Note"):
            start = pos + int(note.findtext("Position"))
            seq_samples.append((wav, start, start + int(note.findtext("Length")),
                                note.findtext("Label")))
    wav_names = sorted({w for w, *_ in seq_samples}, key=lambda w: int(Path(w).stem))
    wav_names = wav_names[:args.koumura_files]
    items = []
    for wav in wav_names:
        audio, sr = sf.read(io.BytesIO(git_show(git_dir, f"{folder}/Wave/{wav}")), dtype="int16",
                            always_2d=True)
        notes = [(a / sr, b / sr, l) for w, a, b, l in seq_samples if w == wav]
        items.append((wav, audio[:, 0], sr, notes))
    return write_song_groups(
        out, "BFKO", "koumura_bird0", items, args.koumura_label, args,
        f"github.com/vocalpy/crowsetta@{git_head(git_dir)}:{folder}",
        "Koumura, T. (2016) BirdsongRecognition, figshare, doi:10.6084/m9.figshare.3470165 "
        "(Bengalese finch Bird0)",
        "CC BY 4.0 per the figshare dataset page (crowsetta repo: BSD-3, no data licence file)")


# ---------------------------------------------------------------- spinetail (scikit-maad)
def make_spinetail(git_dir: str, out: Path, args) -> list:
    audio, sr = sf.read(io.BytesIO(git_show(git_dir, "data/spinetail.wav")), dtype="int16",
                        always_2d=True)
    events = []
    for line in git_show(git_dir, "data/spinetail.txt").decode().splitlines():
        parts = line.split("\t")
        # Audacity label track: "onset offset label"; lines starting "\" hold the frequency box
        if len(parts) == 3 and not parts[0].startswith("\\") and parts[2].strip() == "SP":
            events.append(Event(float(parts[0]), float(parts[1]), "POS"))
    if not enough("spinetail", len(audio) / sr, len(events), args):
        return []
    seconds, n_pos, n_unk = write_pair(out, "SPIN", "spinetail", audio[:, 0], sr, events)
    return [Written("SPIN", "spinetail", seconds, sr, n_pos, n_unk,
                    f"github.com/scikit-maad/scikit-maad@{git_head(git_dir)}:"
                    "data/spinetail.wav + data/spinetail.txt",
                    "scikit-maad example field recording (Neotropical forest), Audacity labels "
                    "SP / CRER; target SP",
                    "BSD-3-Clause (LICENSE of scikit-maad, (C) 2018-2024 scikit-maad Developers)",
                    "labels other than SP (CRER) are not targets")]


def write_reports(out: Path, done: list, argv: list) -> None:
    lines = ["# Real-recordings check set: origins and licences", "",
             "Made by `" + " ".join(argv) + "`. Audio is not part of fsl and must not be "
             "committed there. Licences below are those of the original data; keep the "
             "attributions when sharing.", "",
             "| source/file | seconds | sr | POS | UNK | origin | data | licence | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for w in done:
        lines.append(f"| {w.source}/{w.name}.wav | {w.seconds:.1f} | {w.sr} | {w.n_pos} | "
                     f"{w.n_unk} | {w.origin} | {w.citation} | {w.licence} | {w.note} |")
    (out / "LICENSES.md").write_text("\n".join(lines) + "\n")
    tsv = ["source\tfile\tseconds\tsr\tpos\tunk"]
    tsv += [f"{w.source}\t{w.name}.wav\t{w.seconds:.2f}\t{w.sr}\t{w.n_pos}\t{w.n_unk}" for w in done]
    (out / "summary.tsv").write_text("\n".join(tsv) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--whombat-git", help="git dir of github.com/mbsantiago/whombat")
    ap.add_argument("--crowsetta-git", help="git dir of github.com/vocalpy/crowsetta")
    ap.add_argument("--maad-git", help="git dir of github.com/scikit-maad/scikit-maad")
    ap.add_argument("--min-events", type=int, default=10, help="POS events a file needs")
    ap.add_argument("--min-seconds", type=float, default=10.0, help="shortest file kept")
    ap.add_argument("--concat-seconds", type=float, default=30.0,
                    help="song files are joined until a recording is at least this long")
    ap.add_argument("--bat-time-expansion", type=int, default=10)
    ap.add_argument("--gy6or6-label", default="auto", help="syllable label ('auto' = most frequent)")
    ap.add_argument("--koumura-label", default="auto", help="syllable label ('auto' = most frequent)")
    ap.add_argument("--koumura-files", type=int, default=40, help="first N Bird0 wav files")
    args = ap.parse_args()
    if not (args.whombat_git or args.crowsetta_git or args.maad_git):
        ap.error("give at least one of --whombat-git, --crowsetta-git, --maad-git")
    args.out.mkdir(parents=True, exist_ok=True)
    done = []
    if args.whombat_git:
        done += make_bat(args.whombat_git, args.out, args)
    if args.crowsetta_git:
        done += make_gy6or6(args.crowsetta_git, args.out, args)
        done += make_koumura(args.crowsetta_git, args.out, args)
    if args.maad_git:
        done += make_spinetail(args.maad_git, args.out, args)
    write_reports(args.out, done, sys.argv)
    for w in done:
        print(f"{w.source}/{w.name}.wav\t{w.seconds:.1f} s\t{w.sr} Hz\t{w.n_pos} POS\t{w.n_unk} UNK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
