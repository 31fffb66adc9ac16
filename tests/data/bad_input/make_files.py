#!/usr/bin/env python3
"""Writes the small bad-input fixtures under files/ (committed; rerun to regenerate).

Each file is damaged in one way only; cases.txt says which command reads it and what fsl must print.
"""
import json, os, struct, shutil
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "files")


def put(rel, data):
    p = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def wav(samples, sr=8000, channels=1):
    pcm = (np.asarray(samples) * 32767).astype("<i2").tobytes()
    return (b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, channels, sr, sr * 2 * channels, 2 * channels, 16) +
            b"data" + struct.pack("<I", len(pcm)) + pcm)


def npy_bytes(arr):
    import io
    b = io.BytesIO()
    np.save(b, arr)
    return b.getvalue()


def safetensors(tensors, header=None):
    hdr, data = {}, b""
    for name, (dt, arr) in tensors.items():
        raw = arr.tobytes()
        hdr[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = (header if header is not None else json.dumps(hdr)).encode()
    return struct.pack("<Q", len(h)) + h + data


shutil.rmtree(OUT, ignore_errors=True)
tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(4000) / 8000)
good_wav = wav(tone)

# ---- audio: one directory per case, each the train split of a feature export ----
put("audio_empty/rec.wav", b"")
put("audio_text/rec.wav", "this is not audio\n")
put("audio_truncated/rec.wav", good_wav[:30])
put("audio_no_samples/rec.wav", wav([]))
put("audio_bad_format/rec.wav", good_wav[:20] + struct.pack("<H", 77) + good_wav[22:])
put("audio_zero_rate/rec.wav", good_wav[:24] + struct.pack("<I", 0) + good_wav[28:])
put("audio_flac_garbage/rec.flac", b"fLaC" + b"\x00" * 64)

# ---- NPY features next to a good wav (fsl_features check) ----
feat = np.zeros((1 + 4000 * 22050 // 8000 // 256, 32), dtype="<f4")
for name, data in {
    "npy_truncated": npy_bytes(feat)[: len(npy_bytes(feat)) // 2],
    "npy_bad_magic": b"NOTNUMPY" + npy_bytes(feat)[8:],
    "npy_float64": npy_bytes(feat.astype("<f8")),
    "npy_fortran": npy_bytes(np.asfortranarray(feat)),
    "npy_wrong_mels": npy_bytes(np.zeros((feat.shape[0], 16), dtype="<f4")),
    "npy_empty": b"",
    "npy_big_endian": npy_bytes(feat.astype(">f4")),
}.items():
    put(f"{name}/rec.wav", good_wav)
    put(f"{name}/rec_logmel.npy", data)

# ---- annotation CSVs (validation layout) read by fsl_score --ref ----
hdr = "Audiofilename,Starttime,Endtime,Q\n"
for name, text in {
    "ann_bad_header": "File,Start,End,Q\nrec.wav,1,2,POS\n",
    "ann_non_numeric": hdr + "rec.wav,1.0,abc,POS\n",
    "ann_start_after_end": hdr + "rec.wav,5.0,2.0,POS\n",
    "ann_bad_label": hdr + "rec.wav,1.0,2.0,MAYBE\n",
    "ann_short_row": hdr + "rec.wav,1.0\n",
    "ann_unterminated_quote": hdr + 'rec.wav,"1.0,2.0,POS\n',
    "ann_nan_time": hdr + "rec.wav,nan,2.0,POS\n",
    "ann_empty_file": "",
}.items():
    put(f"{name}/SUB/rec.csv", text)
put("ann_good/SUB/rec.csv", hdr + "rec.wav,1.0,2.0,POS\n")

# ---- prediction CSVs for fsl_score --pred ----
phdr = "Audiofilename,Starttime,Endtime\n"
put("pred_bad_header.csv", "file,onset,offset\nrec.wav,1,2\n")
put("pred_non_numeric.csv", phdr + "rec.wav,one,2\n")
put("pred_start_after_end.csv", phdr + "rec.wav,3,2\n")
put("pred_empty_name.csv", phdr + ",1,2\n")
put("pred_good.csv", phdr + "rec.wav,1.0,2.0\n")

# ---- configs ----
put("cfg_bad_yaml.yaml", "features: [n_mels: 32\n")
put("cfg_unknown_key.yaml", "features:\n  n_melz: 32\n")
put("cfg_wrong_type.yaml", "features:\n  n_mels: many\n")
put("cfg_negative.yaml", "features:\n  n_mels: -4\n")
put("cfg_not_a_map.yaml", "- just\n- a list\n")

# ---- checkpoints (safetensors) ----
w = np.zeros((2, 3), dtype="<f4")
put("ckpt_empty.safetensors", b"")
put("ckpt_header_too_long.safetensors", struct.pack("<Q", 1 << 40) + b"{}")
put("ckpt_bad_json.safetensors", safetensors({}, header="{not json"))
put("ckpt_bad_dtype.safetensors", safetensors({"w": ("BF16", w)}))
put("ckpt_offsets_outside.safetensors",
    safetensors({}, header=json.dumps({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}})))
put("ckpt_other_arch.safetensors", safetensors({"encoder.layer1.0.weight": ("F32", w)}))

# ---- a minimal eval set for fsl_eval --checkpoint: stats in the train dir, one val file ----
put("ckpt_env/train/feature_stats.json", '{\n  "logmel": {"mean": 0, "std": 1, "frames": 10}\n}\n')
put("ckpt_env/val/SUB/rec.wav", good_wav)
put("ckpt_env/val/SUB/rec.csv", hdr + "".join(f"rec.wav,{0.05 * i:.2f},{0.05 * i + 0.02:.2f},POS\n" for i in range(6)))
put("ckpt_env/val/SUB/rec_logmel.npy", npy_bytes(feat))
