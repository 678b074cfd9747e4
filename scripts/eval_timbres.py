#!/usr/bin/env python
"""Does a model trained on several harpsichords play the one it is asked for?

For each clip (the sketch suite's sketches, cut to --seconds, and --pieces held-out pieces of --data) and
each timbre the model knows, the model plays the clip asked for that timbre; the same notes are rendered
with every timbre's SoundFont; and the take's `timbre_distance` (wavegen/evaluate/timbre.py) to each
rendering says which harpsichord it sounds like. Two timbres whose renderings of a clip lie within
SAME_DB of each other are one instrument at two levels (fluidr3 and musescore: the same samples 6.9 dB
apart, docs/evaluation/timbre.md): among those the take's level decides, the rendering whose RMS level
is nearest the take's. Printed: the confusion matrix (asked -> nearest, by timbre and level), the share
played as asked (by that rule, and by the spectral distance alone: instrument right), each timbre's
median margin (distance to the nearest other instrument's rendering minus the distance to its own;
positive: nearer its own), the take's level against its timbre's rendering's, and for scale the
renderings' distances to each other. JSON with every distance beside it.

    .venv/bin/python scripts/eval_timbres.py --checkpoint runs/timbres --data data/build/timbres3 \
        --json docs/evaluation/harpsichord-cpu/timbres.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wavegen.data import dataset  # noqa: E402
from wavegen.evaluate.report import suite_sketches  # noqa: E402
from wavegen.evaluate.timbre import nearest_timbre, timbre_distance  # noqa: E402
from wavegen.nn import checkpoint  # noqa: E402
from wavegen.notes import text as T  # noqa: E402
from wavegen.notes.render import render_notes, resolve_timbre  # noqa: E402
from wavegen.synth.generate import play  # noqa: E402

SAME_DB = 1.0  # renderings this close are one instrument (fluidr3/musescore 0.05 dB; two harpsichords >= 2.95)


def level_db(x: np.ndarray) -> float:
    """RMS level in dBFS (-100 for silence)."""
    return float(10 * np.log10(max(np.mean(np.square(x, dtype=np.float64)), 1e-10)))


def clips(args, sr: int) -> list[tuple[str, T.KeyText]]:
    """(name, sketch) of each clip: the suite's sketches and the held-out pieces, each cut to --seconds."""
    out = []
    ticks = int(args.seconds * 1000 / T.DEFAULT_TICK_MS)
    if args.sketches.lower() != "none":
        for path in suite_sketches(args.sketches):
            kt = T.read_file(path)
            out.append((path.stem, T.KeyText(roll=kt.roll[:ticks], tick_ms=kt.tick_ms)))
    if args.data and args.pieces:
        ds = dataset.load(args.data)
        first = ds.timbres()[0] if ds.manifest.get("timbres") else None
        for it in ds.items_of(ds.select(args.split, transpose=0, timbre=first, style=args.corpus))[: args.pieces]:
            kt = ds.text(it)
            out.append((it.piece, T.KeyText(roll=kt.roll[:ticks], tick_ms=kt.tick_ms)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--checkpoint", required=True, help="a model trained on several timbres (a run or checkpoint)")
    ap.add_argument("--sketches", default="data/sketches", help="the suite (default data/sketches; none: no sketches)")
    ap.add_argument("--data", help="a dataset whose held-out pieces to play too")
    ap.add_argument("--split", default="test")
    ap.add_argument("--corpus", default="bach", help="those pieces' corpus (default bach)")
    ap.add_argument("--pieces", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=6.0, help="each clip cut to this (default 6)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write every distance here")
    args = ap.parse_args()

    loaded = checkpoint.load(args.checkpoint)
    timbres = loaded.timbres
    if len(timbres) < 2:
        ap.error(f"{args.checkpoint}: a model of {len(timbres) or 'one'} timbre; train one with model.n_timbres")
    sr = loaded.sample_rate_hz
    fonts = {t: resolve_timbre(t)[1] for t in timbres}
    sampling = loaded.sampling()
    rows = []
    t0 = time.perf_counter()
    for name, kt in clips(args, sr):
        notes = kt.notes()
        refs = {t: render_notes(notes, sample_rate_hz=sr, soundfont=fonts[t], min_seconds=kt.n_ticks * kt.tick_s).audio
                for t in timbres}
        n = min(len(r) for r in refs.values())
        refs = {t: r[:n] for t, r in refs.items()}
        apart = {(a, b): timbre_distance(refs[a], refs[b], sr) for a in timbres for b in timbres}  # once per clip
        between = {f"{a}-{b}": apart[a, b] for i, a in enumerate(timbres) for b in timbres[i + 1 :]}
        levels = {t: level_db(r) for t, r in refs.items()}
        for asked in timbres:
            take = play(loaded.model, n, sample_rate_hz=sr, sketch=kt, seed=args.seed,
                        timbre=timbres.index(asked), **sampling)[0]
            spectral, d = nearest_timbre(take, refs, sr)
            same = {t for t in timbres if apart[t, asked] < SAME_DB}
            instrument = [t for t in timbres if apart[t, spectral] < SAME_DB]
            nearest = min(instrument, key=lambda t: abs(level_db(take) - levels[t]))
            others = [v for t, v in d.items() if t not in same]
            margin = min(others) - d[asked] if others else float("nan")
            rows.append({"clip": name, "asked": asked, "nearest": nearest, "instrument_right": spectral in same,
                         "distances": d, "margin": margin, "take_level_db": level_db(take),
                         "reference_levels_db": levels, "between_references": between})
            print(f"{name:<28} asked {asked:<18} nearest {nearest:<18} margin {margin:+6.2f}  level "
                  f"{level_db(take) - levels[asked]:+5.1f} dB  " + "  ".join(f"{t} {v:5.2f}" for t, v in d.items()),
                  flush=True)
    confusion = {a: {t: sum(1 for r in rows if r["asked"] == a and r["nearest"] == t) for t in timbres} for a in timbres}
    right = sum(confusion[t][t] for t in timbres)
    instrument_right = sum(r["instrument_right"] for r in rows)
    print(f"\nconfusion (rows: asked, columns: nearest rendering), {len(rows) // len(timbres)} clips each:")
    print(f"{'':<12}" + "".join(f"{t:>12}" for t in timbres))
    for a in timbres:
        print(f"{a:<12}" + "".join(f"{confusion[a][t]:>12}" for t in timbres))
    margins = {t: float(np.median([r["margin"] for r in rows if r["asked"] == t])) for t in timbres}
    level_off = {t: float(np.median([r["take_level_db"] - r["reference_levels_db"][t] for r in rows if r["asked"] == t]))
                 for t in timbres}
    between = {k: float(np.median([r["between_references"][k] for r in rows])) for k in rows[0]["between_references"]}
    print(f"played as asked: {right}/{len(rows)} ({right / len(rows):.0%}); the instrument right by the spectral "
          f"distance alone: {instrument_right}/{len(rows)}; median margin per timbre (dB): "
          + ", ".join(f"{t} {m:+.2f}" for t, m in margins.items()))
    print("the take's level against its timbre's rendering, median (dB): "
          + ", ".join(f"{t} {v:+.1f}" for t, v in level_off.items()))
    print("the renderings' median distance to each other (dB): " + ", ".join(f"{k} {v:.2f}" for k, v in between.items()))
    summary = {"checkpoint": str(loaded.path), "step": loaded.meta.get("step"), "timbres": timbres, "seed": args.seed,
               "seconds": args.seconds, **sampling, "confusion": confusion, "as_asked": right / len(rows),
               "instrument_right": instrument_right / len(rows), "take_level_vs_reference_db": level_off,
               "median_margin_db": margins, "references_median_db": between, "clips": rows,
               "wall_seconds": time.perf_counter() - t0}
    print(json.dumps({k: v for k, v in summary.items() if k != "clips"}))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
