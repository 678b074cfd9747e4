"""Held-out bits per sample of several models on the same fixed crops, per corpus: the validation loss
with the true notes and the shuffled-notes gap (wavegen/nn/heldout.py), as docs/evaluation/experiments.md
compares models.

    .venv/bin/python scripts/heldout_bits.py --data data/build/all --checkpoint harpsichord-cpu \
        --checkpoint runs/treble --corpus bach --corpus all --json

For each --corpus (a style of the dataset, or `all` for every piece of the split) it draws --crops fixed
crops of the split (seed 0; the same crops for every model) and prints a table, and with --json one JSON
line per model and corpus. Each model plays its own first timbre and style 0, as training measures it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wavegen.data import dataset  # noqa: E402
from wavegen.errors import WavegenError  # noqa: E402
from wavegen.nn import checkpoint, heldout  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a dataset from `wavegen data build`")
    ap.add_argument("--checkpoint", action="append", required=True,
                    help="a shipped model's name, a checkpoint or a run folder (repeat it)")
    ap.add_argument("--corpus", action="append", default=None, help="a style of the dataset, or all (repeat it; "
                    "default all)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--crops", type=int, default=32, help="fixed crops per corpus (default 32)")
    ap.add_argument("--json", action="store_true", help="also one JSON line per model and corpus")
    args = ap.parse_args(argv)
    try:
        ds = dataset.load(args.data)
        models = [checkpoint.load(c) for c in args.checkpoint]
        rows = []
        for corpus in args.corpus or ["all"]:
            for name, loaded in zip(args.checkpoint, models, strict=True):
                model = loaded.model.eval()
                crops = heldout.crops(ds, args.split, model.cfg, 8000, styles=loaded.styles,
                                      timbres=loaded.timbres, corpus=None if corpus == "all" else corpus)
                bits = heldout.HeldOut.of(crops, args.crops).measure(model)
                rows.append({"model": name, "corpus": corpus, "crops": args.crops, **bits})
    except WavegenError as e:
        print(f"heldout_bits: {e}", file=sys.stderr)
        return 2
    print(f"{'model':<28} {'corpus':<12} {'valid bits':>10} {'shuffled':>9} {'gap':>7}")
    for r in rows:
        print(f"{r['model']:<28} {r['corpus']:<12} {r['valid_bits']:>10.3f} {r['shuffled_bits']:>9.3f} "
              f"{r['gap_bits']:>7.2f}")
    if args.json:
        for r in rows:
            print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
