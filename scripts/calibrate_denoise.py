"""How far to turn down what a model plays between the partials (synth/denoise.py), and what that costs.

Reads the clips of an evaluation made without denoising (`wavegen evaluate --denoise 0 --split valid ...`:
REPORT-pieces/NAME-generated.wav beside NAME-reference.wav) and, per clip, the notes (a piece of the
dataset by its id, or a sketch of the suite by its name). Prints, per clip and in the median:

- **excess**: the median level of the take's cells away from the sounding partials (the cells denoising
  turns down) minus the reference rendering's, in dB: how much hotter the network plays there. The
  default depth (DEFAULT_DEPTH_DB) is this median, rounded, on five validation chorales;
- for each `--depth`: the log-mel distance of the denoised take to the reference (the report's; it sees
  every band, so hiss moves it) against the take's as played, and what denoising does to the reference
  rendering itself (its log-mel distance from itself denoised: the renderer's own quiet sound between the
  partials, lost alike);
- for each `--margin` (dB, the whistle limit's LIMIT_MARGIN_DB), at the default depth: the take's whistles
  (% of the time, the report's measure against the reference) and log-mel distance, denoised with the limit
  at that margin, against the same without the limit; and the reference rendering's log-mel distance
  from itself put through the limit (what the limit costs the renderer's own partials).

    python scripts/calibrate_denoise.py --pieces runs/eval-valid/report-pieces --data data/build/all
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pieces", required=True, help="an evaluation's REPORT-pieces folder (made with --denoise 0)")
    p.add_argument("--data", required=True, help="the dataset the evaluation played (for the pieces' notes)")
    p.add_argument("--sketches", default="data/sketches", help="the suite's folder (for the sketches' notes)")
    p.add_argument("--depth", type=float, action="append", help="depths to try, dB (repeatable; default 6, 10, 20)")
    p.add_argument("--margin", type=float, action="append",
                   help="whistle-limit margins to try, dB (repeatable; default 3, 0, -3)")
    p.add_argument("--json", help="also write the figures here")
    a = p.parse_args(argv)

    import librosa
    import soundfile as sf

    from wavegen.data import dataset
    from wavegen.evaluate.report import clip_notes, log_mel_distance
    from wavegen.evaluate.sound import whistle_seconds
    from wavegen.notes import text as T
    from wavegen.synth import denoise as D

    ds = dataset.load(a.data)
    by_id = {it.id: it for split in ("train", "valid", "test") for it in ds.items_of(ds.select(split, transpose=0))}
    depths = a.depth or [6.0, 10.0, 20.0]
    margins = a.margin if a.margin is not None else [3.0, 0.0, -3.0]
    timbre = "fluidr3"  # the renderings' (the evaluation's dataset)
    rows = []
    for gen_path in sorted(Path(a.pieces).glob("*-generated.wav")):
        name = gen_path.name.removesuffix("-generated.wav")
        gen, sr = sf.read(gen_path, dtype="float32")
        ref, _ = sf.read(gen_path.with_name(f"{name}-reference.wav"), dtype="float32")
        sketch = Path(a.sketches) / f"{name}.txt"
        if sketch.is_file():
            notes = T.read_file(sketch).notes()
        elif name in by_id:
            notes = ds.text(by_id[name]).notes()
        else:
            print(f"{gen_path}: no piece or sketch named {name}; skipped", file=sys.stderr)
            continue
        n = min(len(gen), len(ref))
        gen, ref, notes = gen[:n], ref[:n], clip_notes(notes, n / sr)
        n_fft = int(D.N_FFT_S * sr)
        powers = [np.abs(librosa.stft(x, n_fft=n_fft, hop_length=n_fft // 4)) ** 2 for x in (gen, ref)]
        off = D.cell_gains(np.arange(powers[0].shape[1]), sr, notes, 20.0) < 10 ** (-20 / 20) + 1e-9
        off[: int(25 * n_fft / sr) + 1] = False  # below 25 Hz: no music
        g, r = (float(np.median(10 * np.log10(pw[off] + 1e-20))) for pw in powers)
        row = {"clip": name, "off_share": float(off.mean()), "excess_db": g - r,
               "log_mel": log_mel_distance(gen, ref, sr), "by_depth": {}}
        for d in depths:
            row["by_depth"][str(d)] = {"log_mel": log_mel_distance(D.denoise(gen, sr, notes, d), ref, sr),
                                       "reference_log_mel": log_mel_distance(D.denoise(ref, sr, notes, d), ref, sr)}
        plain = D.denoise(gen, sr, notes, D.DEFAULT_DEPTH_DB, timbre, limit=False)
        row["unlimited"] = {"whistle_percent": 100 * whistle_seconds(plain, ref, sr) / (n / sr),
                            "log_mel": log_mel_distance(plain, ref, sr)}
        row["by_margin"] = {}
        saved = D.LIMIT_MARGIN_DB
        try:
            for m in margins:
                D.LIMIT_MARGIN_DB = m
                lim = D.denoise(gen, sr, notes, D.DEFAULT_DEPTH_DB, timbre)
                own = D.denoise(ref, sr, notes, D.DEFAULT_DEPTH_DB, timbre)
                own_plain = D.denoise(ref, sr, notes, D.DEFAULT_DEPTH_DB, timbre, limit=False)
                row["by_margin"][str(m)] = {"whistle_percent": 100 * whistle_seconds(lim, ref, sr) / (n / sr),
                                            "log_mel": log_mel_distance(lim, ref, sr),
                                            "reference_log_mel": log_mel_distance(own, own_plain, sr)}
        finally:
            D.LIMIT_MARGIN_DB = saved
        rows.append(row)
    if not rows:
        print(f"{a.pieces}: no NAME-generated.wav with its NAME-reference.wav", file=sys.stderr)
        return 2
    head = "| clip | cells turned down | excess dB | log-mel as played | " + " | ".join(
        f"{d:g} dB: take / reference" for d in depths) + " |"
    print(head)
    print("|" + "---|" * (4 + len(depths)))
    for row in rows:
        cells = " | ".join(f"{row['by_depth'][str(d)]['log_mel']:.3f} / {row['by_depth'][str(d)]['reference_log_mel']:.3f}"
                           for d in depths)
        print(f"| {row['clip']} | {row['off_share']:.0%} | {row['excess_db']:+.1f} | {row['log_mel']:.3f} | {cells} |")
    med = {"excess_db": float(np.median([r["excess_db"] for r in rows])),
           "log_mel": float(np.median([r["log_mel"] for r in rows])),
           "by_depth": {str(d): {k: float(np.median([r["by_depth"][str(d)][k] for r in rows]))
                                 for k in ("log_mel", "reference_log_mel")} for d in depths}}
    cells = " | ".join(f"{med['by_depth'][str(d)]['log_mel']:.3f} / {med['by_depth'][str(d)]['reference_log_mel']:.3f}"
                       for d in depths)
    print(f"| **median** | | **{med['excess_db']:+.1f}** | {med['log_mel']:.3f} | {cells} |")
    print()
    print("| whistle limit | whistles (% of time, mean) | take log-mel (median) | reference's own log-mel (median / max) |")
    print("|---|---|---|---|")
    print(f"| none | {np.mean([r['unlimited']['whistle_percent'] for r in rows]):.1f} | "
          f"{np.median([r['unlimited']['log_mel'] for r in rows]):.3f} | 0 |")
    med["by_margin"] = {}
    for m in margins:
        v = [r["by_margin"][str(m)] for r in rows]
        med["by_margin"][str(m)] = {"whistle_percent": float(np.mean([x["whistle_percent"] for x in v])),
                                    "log_mel": float(np.median([x["log_mel"] for x in v])),
                                    "reference_log_mel": float(np.median([x["reference_log_mel"] for x in v]))}
        print(f"| margin {m:+g} dB | {med['by_margin'][str(m)]['whistle_percent']:.1f} | "
              f"{med['by_margin'][str(m)]['log_mel']:.3f} | {med['by_margin'][str(m)]['reference_log_mel']:.3f} / "
              f"{max(x['reference_log_mel'] for x in v):.3f} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"clips": rows, "median": med}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
