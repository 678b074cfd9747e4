"""The best sound measures a model's output format allows: the reference renderings themselves, put through
the round trip a model's output takes (8-bit mu-law; pre-emphasis then mu-law; more mu-law classes), scored
by `wavegen evaluate`'s sound measures (wavegen/evaluate/sound.py) against the unquantized renderings.

    .venv/bin/python scripts/sound_ceiling.py --data data/build/all --corpus bach --json

A network that always drew the mu-law value nearest the true sample would score exactly the mu-law row:
no model of that output can have a lower noise floor (sampling only adds to it). The same clips as
`wavegen evaluate --pieces 5 --seconds 15` (the test split's first pieces of --corpus, and the sketch suite
rendered by the default SoundFont, as the dataset's). Prints each measure as the report sums it up (the
mean over clips; whistles as a share of the time), per format, and with --json one JSON line per format
and clip set.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wavegen.audio import deemphasize, emphasize, from_int16, mu_law_decode, mu_law_encode  # noqa: E402
from wavegen.data import dataset  # noqa: E402
from wavegen.errors import WavegenError  # noqa: E402
from wavegen.evaluate import sound  # noqa: E402
from wavegen.evaluate.report import clip_notes, suite_sketches  # noqa: E402
from wavegen.notes import text as T  # noqa: E402
from wavegen.notes.render import render_notes  # noqa: E402


def mu_law(x: np.ndarray, classes: int) -> np.ndarray:
    return mu_law_decode(mu_law_encode(x, classes), classes)


def emphasized_mu_law(x: np.ndarray, a: float, classes: int = 256) -> np.ndarray:
    return deemphasize(mu_law(emphasize(x, a), classes), a)


FORMATS = {
    "mu-law 256 (every model so far)": lambda x: mu_law(x, 256),
    "pre-emphasis 0.85, mu-law 256": lambda x: emphasized_mu_law(x, 0.85),
    "pre-emphasis 0.95, mu-law 256": lambda x: emphasized_mu_law(x, 0.95),
    "mu-law 1024": lambda x: mu_law(x, 1024),
    "16-bit PCM (the dataset's)": lambda x: x,  # the renderings are stored so: 0 dB by definition
}
MEASURES = ("noise_floor_db", "off_partial_db", "quietest_second_db")


def clips(ds: dataset.Dataset, corpus: str | None, pieces: int, seconds: float, sketches: str | None):
    sr = ds.sample_rate_hz
    n = int(seconds * sr)
    chosen = ds.items_of(ds.select("test", style=corpus, transpose=0))[:pieces]
    if not chosen:
        raise WavegenError(f"{ds.root}: no test pieces{f' of {corpus}' if corpus else ''}")
    held = []
    for it in chosen:
        ref = from_int16(np.asarray(ds.audio(it)[:n]))
        held.append((it.id, ref, clip_notes(ds.text(it).notes(), len(ref) / sr)))
    suite = []
    for path in suite_sketches(sketches) if sketches else []:
        notes = T.read_file(path).notes()
        ref = render_notes(notes, sample_rate_hz=sr).audio
        suite.append((path.stem, ref, clip_notes(notes, len(ref) / sr)))
    return {"chorales" if corpus == "bach" else (corpus or "held out"): held, "suite": suite}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a dataset from `wavegen data build`")
    ap.add_argument("--corpus", default="bach", help="the held-out pieces' corpus (default bach; all: any)")
    ap.add_argument("--pieces", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--sketches", default=str(ROOT / "data" / "sketches"), help="a sketch suite, or none")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        ds = dataset.load(args.data)
        corpus = None if args.corpus == "all" else args.corpus
        sets = clips(ds, corpus, args.pieces, args.seconds, None if args.sketches == "none" else args.sketches)
    except WavegenError as e:
        print(f"sound_ceiling: {e}", file=sys.stderr)
        return 2
    sr = ds.sample_rate_hz
    lines = []
    print(f"{'format':<34} {'clips':<9} " + " ".join(f"{m:>19}" for m in MEASURES) + f" {'whistles %':>11}")
    for name, roundtrip in FORMATS.items():
        for set_name, items in sets.items():
            if not items:
                continue
            rows = [sound.measures(roundtrip(ref), ref, sr, notes) for _, ref, notes in items]
            overall = {m: statistics.mean(r[m] for r in rows) for m in MEASURES}
            overall["whistle_percent"] = 100 * sum(r["whistle_seconds"] for r in rows) / sum(
                len(ref) / sr for _, ref, _ in items)
            print(f"{name:<34} {set_name:<9} " + " ".join(f"{overall[m]:>19.2f}" for m in MEASURES)
                  + f" {overall['whistle_percent']:>11.2f}")
            lines.append({"format": name, "clips": set_name, "overall": overall,
                          "per_clip": {cid: {m: r[m] for m in (*MEASURES, "whistle_seconds")}
                                       for (cid, _, _), r in zip(items, rows, strict=True)}})
    if args.json:
        for line in lines:
            print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
