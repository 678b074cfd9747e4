"""Write the hand-made sketch suite, data/sketches/*.txt: short 88-key texts, each named for what it tests
(see data/sketches/README.md). The files are committed; this script makes them again, exactly.

    .venv/bin/python scripts/make_sketches.py            # (re)write data/sketches/*.txt
    .venv/bin/python scripts/make_sketches.py --check    # exit 1 if a committed file differs

A sketch is written in ticks of the shipped model (50 ms). Each note is given by the ticks it *sounds*
(the text writes it one tick shorter, see docs/text-format.md), so a key struck again right after it
ends leaves the one free tick the format needs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wavegen.notes import text as T

TICK_MS = 50.0  # wavegen/models/harpsichord-cpu/config.json: tick_ms
OUT = Path(__file__).resolve().parent.parent / "data" / "sketches"
_STEPS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def pitch(name: str) -> int:
    """'C4' -> 60, 'F#2' -> 42, 'Bb0' -> 22, 'A0' -> 21."""
    letter, rest = name[0].upper(), name[1:]
    shift = 0
    while rest and rest[0] in "#b":
        shift += 1 if rest[0] == "#" else -1
        rest = rest[1:]
    return 12 * (int(rest) + 1) + _STEPS[letter] + shift


class Sketch:
    """Notes on a grid of ticks: `add(keys, at, ticks)` sounds `keys` from tick `at` for `ticks` ticks."""

    def __init__(self) -> None:
        self.notes: list[T.Note] = []
        self.end = 0

    def add(self, keys: str | list[str] | list[int], at: int, ticks: int) -> int:
        """Returns the tick where the notes end."""
        for k in [keys] if isinstance(keys, str | int) else keys:
            p = pitch(k) if isinstance(k, str) else k
            self.notes.append(T.Note(p, at * TICK_MS / 1000, (at + ticks) * TICK_MS / 1000))
        self.end = max(self.end, at + ticks)
        return at + ticks

    def line(self, keys: list, at: int, ticks: int) -> int:
        """One key (or chord) after another, each sounding `ticks` ticks; returns the tick after the last."""
        for k in keys:
            at = self.add(k, at, ticks)
        return at

    def text(self, title: str, tail: int = 4) -> str:
        """The 88-key text, `tail` ticks of rest after the last note."""
        kt = T.from_notes(self.notes, TICK_MS, meta={"title": title}, n_ticks=self.end + tail)
        return T.write(kt)


def scale(start: str, octaves: int = 1, steps: tuple[int, ...] = (2, 2, 1, 2, 2, 2, 1)) -> list[int]:
    """A scale up from `start` over `octaves`, and back down."""
    up = [pitch(start)]
    for _ in range(octaves):
        for s in steps:
            up.append(up[-1] + s)
    return up + up[-2::-1]


def arpeggio(start: str, octaves: int = 2, chord: tuple[int, ...] = (0, 4, 7)) -> list[int]:
    """A broken chord up from `start` over `octaves` (with the top note), and back down."""
    root = pitch(start)
    up = [root + 12 * o + c for o in range(octaves) for c in chord] + [root + 12 * octaves]
    return up + up[-2::-1]


def _scale_sketch(start: str, octaves: int, ticks: int) -> Sketch:
    s = Sketch()
    s.line(scale(start, octaves), 0, ticks)
    return s


def _arpeggio_sketch(start: str, chord: tuple[int, ...], ticks: int) -> Sketch:
    s = Sketch()
    s.line(arpeggio(start, 2, chord), 0, ticks)
    return s


def folk_melody_quick() -> Sketch:
    """A jig in D major, 6/8, every eighth note 150 ms (3 ticks): quick repeated and stepping notes."""
    s = Sketch()
    bars = [
        "D5 A4 A4 D5 A4 A4", "D5 E5 F#5 E5 D5 B4", "A4 F#4 A4 D5 F#5 A5", "G5 E5 C#5 E5 D5 D5",
        "F#5 G5 A5 A5 F#5 D5", "G5 F#5 E5 E5 C#5 A4", "B4 C#5 D5 E5 C#5 A4", "D5 F#4 A4 D5 D5 D5",
    ]
    at = 0
    for bar in bars:
        at = s.line(bar.split(), at, 3)
    return s


def repeated_notes() -> Sketch:
    """A4 struck 8 times at 300 ms, 8 at 200 ms, 8 at 150 ms, 12 at 100 ms: the re-strike."""
    s = Sketch()
    at = 0
    for ticks, times in ((6, 8), (4, 8), (3, 8), (2, 12)):
        at = s.line(["A4"] * times, at, ticks) + 2
    return s


def held_chord_moving_bass() -> Sketch:
    """E4 G4 C5 held 6.4 s while the bass walks C3 up to C4 and back in 400 ms steps."""
    s = Sketch()
    s.add(["E4", "G4", "C5"], 0, 128)
    s.line("C3 D3 E3 F3 G3 A3 B3 C4 B3 A3 G3 F3 E3 D3 C3 G2".split(), 0, 8)
    return s


def single_notes(low: str, high: str) -> Sketch:
    """Every key from `low` to `high`, one at a time, each sounding 150 ms (3 ticks)."""
    s = Sketch()
    s.line(list(range(pitch(low), pitch(high) + 1)), 0, 3)
    return s


def one_to_eight_notes() -> Sketch:
    """Chords of 1, 2, ... 8 keys at once, each held 500 ms, over four octaves."""
    voicing = ["C4", "G3", "E4", "C3", "G4", "C5", "E5", "C2"]
    s = Sketch()
    at = 0
    for k in range(1, 9):
        at = s.add(voicing[:k], at, 10)
    return s


def two_voices_fast_upper() -> Sketch:
    """A bass of half notes (800 ms) under an upper line of 100 ms notes (2 ticks) in the fifth octave."""
    s = Sketch()
    s.line("C3 G2 A2 E2 F2 G2 C3 C2".split(), 0, 16)
    runs = [
        "C5 D5 E5 F5 G5 F5 E5 D5", "B4 C5 D5 E5 D5 C5 B4 G4", "C5 E5 A5 E5 C5 E5 A5 G5", "G#4 B4 E5 B4 G#4 B4 E5 D5",
        "A4 C5 F5 C5 A4 C5 F5 E5", "D5 G5 B5 G5 F5 D5 B4 G4", "E5 G5 C6 G5 E5 C5 G4 E4", "C5 G4 E4 G4 C5 C5 C5 C5",
    ]
    at = 0
    for run in runs:
        at = s.line(run.split(), at, 2)
    return s


def rests_between_phrases() -> Sketch:
    """Three phrases of a second each, split by silences of 1 s and 2 s: notes must stop, silence stay."""
    s = Sketch()
    at = s.line("G4 A4 B4 C5 D5".split(), 0, 4)
    at = s.line(["C4", "E4", "G4", ["C4", "E4", "G4"]], at + 20, 5)
    s.line(["D3", "F3", "A3", ["D3", "F3", "A3", "D4"]], at + 40, 5)
    return s


def long_notes() -> Sketch:
    """Very long notes: C3 for 4 s, E4 G4 together for 3 s, A5 for 3 s; the harpsichord decays alone."""
    s = Sketch()
    at = s.add("C3", 0, 80)
    at = s.add(["E4", "G4"], at, 60)
    s.add("A5", at, 60)
    return s


SKETCHES = {
    "scale-c2": lambda: _scale_sketch("C2", 1, 4),
    "scale-c4-two-octaves": lambda: _scale_sketch("C4", 2, 3),
    "scale-c6": lambda: _scale_sketch("C6", 1, 4),
    "arpeggio-c-major-c2": lambda: _arpeggio_sketch("C2", (0, 4, 7), 4),
    "arpeggio-a-minor-a3": lambda: _arpeggio_sketch("A3", (0, 3, 7), 4),
    "arpeggio-g-major-g5": lambda: _arpeggio_sketch("G5", (0, 4, 7), 4),
    "folk-melody-quick": folk_melody_quick,
    "repeated-notes-a4": repeated_notes,
    "held-chord-moving-bass": held_chord_moving_bass,
    "single-notes-a0-b2": lambda: single_notes("A0", "B2"),
    "single-notes-c3-b5": lambda: single_notes("C3", "B5"),
    "single-notes-c6-c8": lambda: single_notes("C6", "C8"),
    "one-to-eight-notes": one_to_eight_notes,
    "two-voices-fast-upper": two_voices_fast_upper,
    "rests-between-phrases": rests_between_phrases,
    "long-notes": long_notes,
}


def texts() -> dict[str, str]:
    """File name -> the text it holds."""
    return {f"{name}.txt": make().text(name) for name, make in SKETCHES.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    wanted = texts()
    if args.check:
        stale = [n for n, t in wanted.items() if not (args.out / n).is_file() or (args.out / n).read_text() != t]
        extra = sorted(p.name for p in args.out.glob("*.txt") if p.name not in wanted)
        for n in stale + extra:
            print(f"{args.out / n}: {'not made by this script' if n in extra else 'differs; rerun the script'}")
        return 1 if stale or extra else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in wanted.items():
        (args.out / name).write_text(text)
        kt = T.parse(text, name)
        print(f"{args.out / name}: {kt.duration_s:.2f} s, {len(kt.notes())} notes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
