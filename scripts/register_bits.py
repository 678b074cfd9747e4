"""How much the notes are worth to a model, register by register: bits per sample of the rendering of
each sketch, teacher-forced (every sample given the true previous ones, from silence, as generation runs),
with the sketch's notes and with none, and the difference, the notes' worth in bits per sample.

    .venv/bin/python scripts/register_bits.py --checkpoint harpsichord-cpu --checkpoint runs/treble

Where a model has learned to play a register, its notes tell it much (several bits per sample while they
sound); where it has not, the rendering is as unpredictable with the notes as without. The sketches
(default: the suite's single notes in three registers and two scales, data/sketches/) are rendered with
the default SoundFont, as `wavegen evaluate` renders the suite, 16-bit, then mu-law coded. Counted only
while a note sounds (from each onset to its end), so that silence between notes does not dilute it.
Prints a table, and with --json one JSON line per model and sketch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))  # also when imported (the tests)

from eval_kernel_weights import bits_per_sample, rendered  # noqa: E402

from wavegen.audio import mu_law_encode  # noqa: E402
from wavegen.errors import WavegenError  # noqa: E402
from wavegen.nn import checkpoint  # noqa: E402
from wavegen.notes import text as T  # noqa: E402
from wavegen.synth.fast import FastWaveNet  # noqa: E402

SKETCHES = ("single-notes-a0-b2", "single-notes-c3-b5", "single-notes-c6-c8", "scale-c4-two-octaves", "scale-c6")


def measure(loaded, kt: T.KeyText) -> dict[str, float]:
    sr = loaded.sample_rate_hz
    notes = kt.notes()
    audio = rendered(kt, sr)  # as the dataset build renders: 16-bit PCM, back to float
    codes = mu_law_encode(audio, loaded.model.cfg.n_classes)[None].astype(np.int64)
    n = codes.shape[1]
    sounding = np.zeros(n, dtype=bool)
    for nt in notes:
        sounding[int(nt.start * sr) : int(nt.end * sr)] = True
    silent = T.KeyText(np.zeros_like(kt.roll), tick_ms=kt.tick_ms)  # the same length, no key down
    player = FastWaveNet(loaded.model, "c")  # the float kernel: the PyTorch step's numbers to 1e-4
    with_notes = bits_per_sample(player.run(n, sample_rate_hz=sr, sketch=kt, teacher=codes, return_logits=True),
                                 codes)[0]
    without = bits_per_sample(player.run(n, sample_rate_hz=sr, sketch=silent, teacher=codes, return_logits=True),
                              codes)[0]
    a, b = float(with_notes[sounding].mean()), float(without[sounding].mean())
    return {"with_notes": a, "without_notes": b, "notes_worth": b - a, "seconds_sounding": float(sounding.sum() / sr)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", action="append", required=True,
                    help="a shipped model's name, a checkpoint or a run folder (repeat it)")
    ap.add_argument("--sketch", action="append", default=None,
                    help=f"an 88-key text file (repeat it; default the suite's {', '.join(SKETCHES)})")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    paths = [Path(p) for p in args.sketch] if args.sketch else [ROOT / "data" / "sketches" / f"{s}.txt"
                                                                  for s in SKETCHES]
    try:
        texts = [(p.stem, T.read_file(p)) for p in paths]
        models = [(c, checkpoint.load(c)) for c in args.checkpoint]
        for name, loaded in models:
            for path, (_, kt) in zip(paths, texts, strict=True):
                loaded.check_ticks(kt.tick_ms, str(path))
            if loaded.model.cfg.output != "mulaw":
                raise WavegenError(f"{name}: teacher-forced bits here are for mu-law models")
        rows = [{"model": name, "sketch": stem, **measure(loaded, kt)} for name, loaded in models for stem, kt in texts]
    except WavegenError as e:
        print(f"register_bits: {e}", file=sys.stderr)
        return 2
    print(f"{'model':<26} {'sketch':<22} {'with notes':>10} {'without':>8} {'worth':>7}   (bits/sample while notes sound)")
    for r in rows:
        print(f"{r['model']:<26} {r['sketch']:<22} {r['with_notes']:>10.3f} {r['without_notes']:>8.3f} "
              f"{r['notes_worth']:>7.3f}")
    if args.json:
        for r in rows:
            print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
