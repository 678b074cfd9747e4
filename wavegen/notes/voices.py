"""A harpsichord has one string per key, so each key is one voice. The rule, in one place for the three
that apply it: the MIDI reader (a key struck again in one track and channel), the text encoder (a key's
notes on the tick grid, tick-quantised first) and the renderer (the same key in two voices, in unison).

Taken in order of onset, a note struck while the key still sounds cuts the earlier note short: it ends
`gap` before the new onset (the text encoder keeps one free tick between them, so that the two stay two
notes when decoded; in seconds nothing needs to lie between). A note that starts before the earlier one's
end plus `gap` counts as struck while it sounds. If the cut leaves the earlier note nothing (the two start
together, or closer than `gap`), they are one note, to the later of their ends.

What the later note's end is differs: its own (MIDI, text: a restrike is a new note of its own length),
or with `hold` the later of both ends (the renderer: the string sounds while either voice holds the key).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

Time = TypeVar("Time", int, float)  # whole ticks or seconds


def one_voice(spans: Iterable[tuple[Time, Time]], *, gap: Time = 0, hold: bool = False) -> list[tuple[Time, Time]]:
    """One key's (start, end) spans, in any order, as one voice: sorted, and no two sounding together (see
    the module docstring)."""
    out: list[list[Time]] = []
    for start, end in sorted(spans):
        if out and start < out[-1][1] + gap:  # struck while the earlier note still sounds
            prev = out[-1]
            if start - gap > prev[0]:
                later_end = max(prev[1], end) if hold else end
                prev[1] = start - gap
                out.append([start, later_end])
            else:
                prev[1] = max(prev[1], end)
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]
