"""Find brief whistles in generated clips: 50 ms windows where most of the energy lies above 3 kHz
while the reference rendering of the same notes has little there.

    .venv/bin/python scripts/find_whistles.py REPORT-pieces/        # the folder `wavegen evaluate` wrote

For each PIECE-generated.wav beside its PIECE-reference.wav, prints the windows in which more than half
of the generated clip's energy is above 3 kHz, the reference's share is under 0.3 and the clip is not
near-silent (RMS > 0.03), and the loudest frequency above 3 kHz in them. A one-off analysis, not part of
the report: the thresholds were set by looking at the shipped model's clips, not calibrated.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

WINDOW_S, SPLIT_HZ = 0.05, 3000.0


def high_share(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per window: the share of energy above SPLIT_HZ, the RMS, and the power spectrum with its frequencies."""
    n = int(WINDOW_S * sr)
    k = len(x) // n
    frames = x[: k * n].reshape(k, n)
    power = np.abs(np.fft.rfft(frames * np.hanning(n), axis=1)) ** 2
    freqs = np.fft.rfftfreq(n, 1 / sr)
    share = power[:, freqs > SPLIT_HZ].sum(1) / (power.sum(1) + 1e-12)
    return share, np.sqrt((frames**2).mean(1)), power, freqs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pieces", help="a REPORT-pieces folder written by `wavegen evaluate`")
    args = ap.parse_args()
    clips = sorted(Path(args.pieces).glob("*-generated.wav"))
    if not clips:
        print(f"find_whistles: {args.pieces}: no *-generated.wav here; give the REPORT-pieces folder of "
              "`wavegen evaluate`", file=sys.stderr)
        return 2
    total_s = whistle_s = 0.0
    print(f"{'piece':<14}{'seconds':>8}{'whistle s':>10}  where (s) and loudest frequency above 3 kHz")
    for gen_path in clips:
        piece = gen_path.name[: -len("-generated.wav")]
        g, sr = sf.read(gen_path)
        r, _ = sf.read(gen_path.with_name(f"{piece}-reference.wav"))
        share_gen, rms, power, freqs = high_share(g, sr)
        share_ref = high_share(r, sr)[0]
        m = min(len(share_gen), len(share_ref))
        bad = np.flatnonzero((share_gen[:m] > 0.5) & (share_ref[:m] < 0.3) & (rms[:m] > 0.03))
        where = ", ".join(f"{i * WINDOW_S:.2f} ({freqs[np.argmax(power[i] * (freqs > SPLIT_HZ))]:.0f} Hz)" for i in bad)
        total_s += m * WINDOW_S
        whistle_s += len(bad) * WINDOW_S
        print(f"{piece:<14}{m * WINDOW_S:>8.1f}{len(bad) * WINDOW_S:>10.2f}  {where}")
    print(f"{'all':<14}{total_s:>8.1f}{whistle_s:>10.2f}  ({100 * whistle_s / total_s:.1f} % of the audio)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
