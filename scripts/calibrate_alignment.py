"""Calibrate the alignment check of recordings (wavegen/data/recordings.py): the lag it finds and its confidence
on right pairs (a rendering and its own notes, delayed by known amounts) and on wrong pairs (a rendering and
another piece's notes).

    python scripts/calibrate_alignment.py [--pieces 24] [--sample-rate 16000]

The pieces are the `random` corpus's sketches (all 88 keys, any density) cut to their first 20 s, rendered
by the dataset's renderer. Prints per-kind statistics of the lag error and the confidence; the threshold
`BuildSettings.min_align_confidence` must lie between the wrong pairs' highest and the right pairs' lowest.
Never imported by the package.
"""

from __future__ import annotations

import argparse

import numpy as np

from wavegen.data import corpora, recordings
from wavegen.data.build import BuildSettings
from wavegen.notes import text as T
from wavegen.notes.render import render_notes

DELAYS_MS = (0.0, 40.0, -60.0, 23.0, 90.0)


def pieces(n: int, seconds: float) -> list[list[T.Note]]:
    """The notes of random sketches 0..n-1 cut to `seconds`, quantised to 50 ms ticks as a dataset keeps them."""
    out = []
    for i in range(n):
        kt = T.from_notes([x for x in corpora.random_sketch_notes(i) if x.start < seconds], 50.0)
        out.append(kt.notes())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pieces", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--sample-rate", type=int, default=16_000)
    args = ap.parse_args()
    sr = args.sample_rate
    notes = pieces(args.pieces, args.seconds)
    audio = [render_notes(n, sample_rate_hz=sr).audio for n in notes]
    errors, right, wrong, wrong_lags = [], [], [], []
    for i, (n, a) in enumerate(zip(notes, audio, strict=True)):
        for d in DELAYS_MS:
            shifted = recordings.shift_audio(a, -round(d * sr / 1000))  # the sound d ms late
            al = recordings.align(shifted, sr, n)
            errors.append(al.lag_ms - d)
            right.append(al.confidence)
        for step in (1, 2):  # two other pieces' notes
            al = recordings.align(a, sr, notes[(i + step) % len(notes)])
            wrong.append(al.confidence)
            wrong_lags.append(al.lag_ms)
    e, r, w = np.abs(errors), np.array(right), np.array(wrong)
    print(f"{args.pieces} pieces x {len(DELAYS_MS)} delays {DELAYS_MS} ms at {sr} Hz")
    print(f"lag error |found - true| ms: median {np.median(e):.1f}, 95th percentile {np.percentile(e, 95):.1f}, "
          f"max {e.max():.1f}; mean signed {np.mean(errors):+.1f}")
    print(f"confidence, right pairs: min {r.min():.3f}, 5th percentile {np.percentile(r, 5):.3f}, "
          f"median {np.median(r):.3f}")
    print(f"confidence, wrong pairs: max {w.max():.3f}, 95th percentile {np.percentile(w, 95):.3f}, "
          f"median {np.median(w):.3f}; within the lag bound (|lag| <= 100 ms): "
          f"{sum(abs(x) <= 100 for x in wrong_lags)} of {len(w)}")
    s = BuildSettings()
    print(f"at the threshold {s.min_align_confidence:g} and the bound {s.max_lag_ms:g} ms: right pairs refused "
          f"{int(np.sum(r < s.min_align_confidence))} of {len(r)}, wrong pairs accepted "
          f"{sum(c >= s.min_align_confidence and abs(x) <= s.max_lag_ms for c, x in zip(w, wrong_lags, strict=True))}"
          f" of {len(w)}")


if __name__ == "__main__":
    main()
