"""The tick features and onsets of a window of ticks equal those of the whole piece there (a crop computes
only its own ticks), checked against a reference written from the spec, key by key and tick by tick."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wavegen.data.conditioning import (
    DECAY_TICKS,
    excitation,
    model_tick_features,
    model_tick_window,
    sounding_and_onsets,
    tick_window,
)


def reference(roll: np.ndarray, velocity: np.ndarray, default: int) -> np.ndarray:
    """(4 * 88, T + 1) by the docstrings' words: a key sounds in its runs and the tick after each; it is
    struck where a run starts; decay exp(-ticks since that strike / DECAY_TICKS) while it sounds; velocity
    the run's (the given-back tick's is its run's), the default where 0, / 127."""
    T = roll.shape[0]
    out = np.zeros((4 * 88, T + 1))
    for k in range(88):
        struck, vel = -1, 0
        for t in range(T + 1):
            now = t < T and roll[t, k]
            before = t > 0 and roll[t - 1, k]
            if now and not before:
                struck = t
            if now:
                vel = int(velocity[t, k])
            elif before:
                vel = int(velocity[t - 1, k])
            if now or before:
                out[k, t] = 1
                out[88 + k, t] = float(now and not before)
                out[176 + k, t] = math.exp(-(t - struck) / DECAY_TICKS)
                out[264 + k, t] = (vel or default) / 127
    return out


def random_roll(rng, T: int) -> tuple[np.ndarray, np.ndarray]:
    roll = np.zeros((T, 88), dtype=bool)
    for k in rng.choice(88, 12, replace=False):
        t = int(rng.integers(0, 5))
        while t < T:
            length = int(rng.integers(1, 60))  # some notes far longer than a window
            roll[t : t + length, k] = True
            t += length + int(rng.integers(0, 4))  # 0: the next run starts at once (a held key re-struck is one run)
    velocity = np.where(roll, rng.integers(0, 128, roll.shape), 0).astype(np.uint8)  # 0 now and then: the default
    return roll, velocity


@pytest.mark.parametrize("seed", [0, 1])
def test_a_window_of_the_features_is_the_whole_pieces_there(seed):
    rng = np.random.default_rng(seed)
    T = 200
    roll, velocity = random_roll(rng, T)
    ref = reference(roll, velocity, 70)
    whole = model_tick_features(roll, velocity, 70, True)
    np.testing.assert_allclose(whole, ref, atol=1e-6)
    for first, n in [(-3, 10), (0, 26), (37, 26), (150, 26), (190, 26), (198, 5), (201, 4), (-30, 4)]:
        got = model_tick_window(roll, velocity, 70, True, first, n)
        np.testing.assert_allclose(got, tick_window(ref.astype(np.float32), first, n), atol=1e-6,
                                   err_msg=f"window from tick {first}, {n} ticks")
        assert model_tick_window(roll, None, 70, False, first, n).shape == (264, n)


def test_a_windows_onsets_and_excitation_are_the_whole_pieces():
    rng = np.random.default_rng(2)
    roll, _ = random_roll(rng, 120)
    sounding, onset, last_onset = sounding_and_onsets(roll)
    for lo, hi in [(0, 121), (1, 30), (55, 81), (100, 121), (121, 121)]:
        s, o, last = sounding_and_onsets(roll, lo, hi)
        assert (s == sounding[lo:hi]).all() and (o == onset[lo:hi]).all() and (last == last_onset[lo:hi]).all()
    spt, sr, start, n = 80, 8000, 55 * 80 + 17, 20 * 80
    lo, hi = start // spt, (start + n - 1) // spt + 1
    s, _, last = sounding_and_onsets(roll, lo, hi)
    np.testing.assert_array_equal(excitation(roll, start, n, spt, sr, (s, last), onsets_from=lo),
                                  excitation(roll, start, n, spt, sr))
    with pytest.raises(ValueError):
        sounding_and_onsets(roll, 10, 122)
