"""Does a model whistle on a held note? Each key held alone for a second, the harmonic share of its take.

    .venv/bin/python scripts/held_notes.py --checkpoint harpsichord-cpu --checkpoint runs/rebal

For every --step-th key from A0 to C8 (default every third), one key held for 20 ticks (1 s at 50 ms),
played by each checkpoint with its own sampling, seeds 0 .. --seeds - 1, as `wavegen generate` writes it
(denoised by the notes, `--denoise`, with the whistle limit unless `--no-limit`); the share of the take's
energy from 0.1 to 1 s within 50 cents of the key's first eight harmonics
(`wavegen.evaluate.sound.harmonic_share`). The SoundFont's rendering of the same key is measured beside it:
the ceiling. A whistle -- a loud tone off the harmonics, or far above them --
takes its energy away: tests/test_shipped.py asks 0.6 of the shipped model on A3 and E flat 4, where a
fine-tune of it played 0.40 (a tone at 20.15 times the fundamental, docs/evaluation/experiments.md
section 5). Prints a table (the worst seed per key), the keys under --threshold, then JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", help="a model (repeatable; default the shipped one)")
    ap.add_argument("--step", type=int, default=3, help="every STEP-th key from A0 (default 3)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--denoise", type=float, default=None, help="dB (default: generate's)")
    ap.add_argument("--no-limit", dest="limit", action="store_false",
                    help="denoise without the whistle limit (synth/denoise.py), to see the network's own whistles")
    ap.add_argument("--threshold", type=float, default=0.6, help="report keys under this share (default 0.6)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)

    from wavegen.evaluate.sound import harmonic_share
    from wavegen.nn import checkpoint
    from wavegen.notes import text as T
    from wavegen.notes.plot import pitch_name
    from wavegen.notes.render import render_notes
    from wavegen.synth.denoise import DEFAULT_DEPTH_DB, denoise
    from wavegen.synth.generate import play

    depth = DEFAULT_DEPTH_DB if args.denoise is None else args.denoise
    pitches = list(range(21, 109, args.step))
    held = {p: T.parse((chr(p + T.CHAR_OFFSET) + " ") * 20) for p in pitches}  # the key alone, 20 ticks
    results: dict = {"pitches": pitches, "seeds": args.seeds, "denoise_db": depth, "whistle_limit": args.limit,
                     "models": {}}
    sr = None
    for name in args.checkpoint or [None]:
        loaded = checkpoint.load(name)
        sr = loaded.sample_rate_hz
        label = name or loaded.path.name
        rows = {}
        for pitch, kt in held.items():
            n = int(1.2 * sr)
            takes = [play(loaded.model, n, sample_rate_hz=sr, sketch=kt, seed=s, **loaded.sampling())[0]
                     for s in range(args.seeds)]
            rows[pitch] = [harmonic_share(denoise(a, sr, kt.notes(), depth, loaded.timbre_played(), args.limit), sr, pitch)
                           for a in takes]
            print(f"{label}: key {pitch} " + " ".join(f"{v:.2f}" for v in rows[pitch]), file=sys.stderr)
        results["models"][label] = rows
    reference = {}
    for pitch, kt in held.items():
        audio = render_notes(kt.notes(), sample_rate_hz=sr).audio
        reference[pitch] = harmonic_share(audio, sr, pitch)
    results["reference"] = reference

    labels = list(results["models"])
    print("| key | rendering | " + " | ".join(f"{m} (worst of {args.seeds} seeds)" for m in labels) + " |")
    print("|---|---|" + "---|" * len(labels))
    for pitch in pitches:
        cells = " | ".join(f"{min(results['models'][m][pitch]):.2f}" for m in labels)
        print(f"| {pitch_name(pitch)} ({pitch}) | {reference[pitch]:.2f} | {cells} |")
    for m in labels:
        worst = [(p, min(v)) for p, v in results["models"][m].items() if min(v) < args.threshold]
        mean = float(np.mean([np.mean(v) for v in results["models"][m].values()]))
        print(f"{m}: mean share {mean:.2f}; keys under {args.threshold:g} (worst seed): "
              + (", ".join(f"{p} ({v:.2f})" for p, v in worst) or "none"))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(json.dumps({m: {"mean": float(np.mean([np.mean(v) for v in r.values()])),
                          "under_threshold": [p for p, v in r.items() if min(v) < args.threshold]}
                      for m, r in results["models"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
