"""Musical statistics of a tick sequence, generated or real, measured the same way: texture (notes per
tick, rests, range), harmony (the share of triads) and tonality (the best key by the Krumhansl-Kessler
profiles, and how consistently the windows of the sequence keep to it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wavegen.compose.form import is_triad
from wavegen.notes import text as T

# Krumhansl-Kessler key profiles
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def best_key(ticks: Sequence[str]) -> int | None:
    """0..11 major, 12..23 minor, by correlation of the pitch-class histogram with the KK profiles."""
    hist = np.zeros(12)
    for t in ticks:
        for c in t:
            hist[(ord(c) - T.CHAR_OFFSET) % 12] += 1
    if hist.sum() == 0 or np.all(hist == hist[0]):
        return None
    scores = [np.corrcoef(hist, np.roll(p, k))[0, 1] for p in (_MAJOR_PROFILE, _MINOR_PROFILE) for k in range(12)]
    return int(np.argmax(scores))


def musical_stats(ticks: Sequence[str], window: int = 40) -> dict[str, float]:
    """Notes per sounding tick, pitch range, share of sounding ticks forming a triad, and key consistency
    (share of `window`-tick windows whose best key is the whole sequence's)."""
    sounding = [t for t in ticks if t]
    pitches = [ord(c) - T.CHAR_OFFSET for t in sounding for c in t]
    overall = best_key(ticks)
    windows = [ticks[i : i + window] for i in range(0, max(len(ticks) - window + 1, 1), window)]
    keys = [best_key(w) for w in windows]
    keys = [k for k in keys if k is not None]
    return {
        "ticks": len(ticks),
        "rest_share": 1 - len(sounding) / max(len(ticks), 1),
        "notes_per_tick": float(np.mean([len(t) for t in sounding])) if sounding else 0.0,
        "lowest_pitch": min(pitches) if pitches else 0,
        "highest_pitch": max(pitches) if pitches else 0,
        "triad_share": float(np.mean([is_triad(t) for t in sounding])) if sounding else 0.0,
        "key_consistency": float(np.mean([k == overall for k in keys])) if keys and overall is not None else 0.0,
    }
