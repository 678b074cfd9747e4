"""The 88-key text format, version 1.

One printable ASCII character per piano key, a space after every time tick::

    {tick_ms=50 ticks=6}
    Yaeh Yaeh Yaeh  Q Q

- Key k = 0..87 is MIDI pitch p = 21 + k, written as chr(p + 12): '!' is A0 (MIDI 21), 'x' is C8 (108).
- A tick is the characters of the keys sounding during it, in strictly rising pitch order, then one
  space. A run of spaces is a rest. A tick is `tick_ms` long (50 ms by default).
- A key's note is a maximal run of ticks in which it sounds. The encoder ends every note one tick early
  (at least one tick long) so that a key struck twice in a row stays two notes; the decoder gives that
  tick back: the run of ticks [s, e) is the note from s*tick to (e+1)*tick.
- Newlines (LF or CRLF) are layout only, between ticks; the writer breaks the line every 50 ticks.
- An optional first line `{key=value ...}` is the header. The writer always writes `tick_ms` and
  `ticks`; the reader checks `ticks` when present (an editor that strips trailing spaces deletes rests).
- Limits, shared with MIDI (notes/limits.py): a tick of 1..1000 ms, at most 2 hours of ticks, 200,000
  notes and 32 MiB; the reader counts them while it parses, before it builds the roll.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from wavegen.errors import WavegenError
from wavegen.files import check_input, write_text_atomic
from wavegen.notes import limits
from wavegen.notes.voices import one_voice

FORMAT_VERSION = 1
N_KEYS = 88
LOWEST_PITCH = 21  # A0
HIGHEST_PITCH = LOWEST_PITCH + N_KEYS - 1  # C8 = MIDI 108
CHAR_OFFSET = 12  # a key's character is chr(pitch + CHAR_OFFSET)
FIRST_CHAR = chr(LOWEST_PITCH + CHAR_OFFSET)  # '!'
LAST_CHAR = chr(HIGHEST_PITCH + CHAR_OFFSET)  # 'x'
KEY_CHARS = "".join(chr(p + CHAR_OFFSET) for p in range(LOWEST_PITCH, HIGHEST_PITCH + 1))
DEFAULT_TICK_MS = 50
TICKS_PER_LINE = 50  # the writer breaks the line every 50 ticks (2.5 s at 50 ms)
RESERVED_HEADER_KEYS = ("tick_ms", "ticks")

_FIRST_ORD = ord(FIRST_CHAR)
_LAST_ORD = ord(LAST_CHAR)


class TextFormatError(WavegenError):
    """The text breaks format version 1; the message names the source, line and column."""

    def __init__(self, source: str, line: int, column: int, message: str):
        self.source, self.line, self.column = source, line, column
        super().__init__(f"{source}:{line}:{column}: {message}")


class Note(NamedTuple):
    """One key held from `start` to `end` seconds (end > start)."""

    pitch: int  # MIDI pitch, 21..108
    start: float  # seconds
    end: float  # seconds


@dataclass(frozen=True, eq=False)
class KeyText:
    """A parsed 88-key text: the state roll and its header.

    roll: (n_ticks, 88) bool; roll[t, k] is True while key k (MIDI 21 + k) sounds during tick t.
    """

    roll: np.ndarray
    tick_ms: float = DEFAULT_TICK_MS
    meta: Mapping[str, str] = field(default_factory=dict)  # other header fields, kept verbatim

    def __post_init__(self) -> None:
        if self.roll.ndim != 2 or self.roll.shape[1] != N_KEYS:
            raise ValueError(f"roll must be (n_ticks, {N_KEYS}), got {self.roll.shape}")
        if not (math.isfinite(self.tick_ms) and self.tick_ms > 0):
            raise ValueError(f"tick_ms must be a positive number, got {self.tick_ms}")
        object.__setattr__(self, "roll", np.ascontiguousarray(self.roll, dtype=bool))

    @property
    def n_ticks(self) -> int:
        return int(self.roll.shape[0])

    @property
    def tick_s(self) -> float:
        return self.tick_ms / 1000.0

    @property
    def duration_s(self) -> float:
        """Seconds until the last decoded note ends (the text plus the tick the decoder gives back)."""
        notes = self.notes()
        return max((n.end for n in notes), default=self.n_ticks * self.tick_s)

    def notes(self) -> list[Note]:
        return roll_to_notes(self.roll, self.tick_ms)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyText):
            return NotImplemented
        return (
            self.tick_ms == other.tick_ms
            and dict(self.meta) == dict(other.meta)
            and np.array_equal(self.roll, other.roll)
        )


# ---------------------------------------------------------------------------------------------
# parse


def _describe(c: str) -> str:
    names = {"\t": "a tab", "\r": "a carriage return", "\ufeff": "a byte-order mark", "\x00": "a NUL"}
    if c in names:
        return names[c]
    if c.isprintable():
        return f"the character {c!r}"
    return f"the character U+{ord(c):04X}"


def _parse_header(line: str, source: str) -> dict[str, str]:
    """line: the first line, '{' ... '}' without its newline."""
    if not line.endswith("}") or line.count("}") != 1:
        col = line.find("}") + 1 if "}" in line else len(line) + 1
        what = "text after the closing '}'" if "}" in line else "the header is not closed by '}'"
        raise TextFormatError(source, 1, col, f"{what}: the header is one line '{{key=value ...}}'")
    header: dict[str, str] = {}
    col = 2
    for item in line[1:-1].split(" "):
        if item:
            key, eq, value = item.partition("=")
            if not eq or not key or not value or "{" in item:
                raise TextFormatError(
                    source, 1, col, f"header item {item!r} is not key=value (no spaces inside)"
                )
            if key in header:
                raise TextFormatError(source, 1, col, f"header key {key!r} is given twice")
            header[key] = value
        col += len(item) + 1
    return header


def _header_tick_ms(header: Mapping[str, str], source: str) -> float:
    raw = header.get("tick_ms", str(DEFAULT_TICK_MS))
    try:
        tick_ms = float(raw)
    except ValueError:
        tick_ms = float("nan")
    if not (math.isfinite(tick_ms) and tick_ms > 0):
        raise TextFormatError(source, 1, 1, f"header tick_ms={raw} is not a positive number")
    problem = limits.tick_ms_problem(tick_ms)
    if problem:
        raise TextFormatError(source, 1, 1, f"header tick_ms={raw} {problem}")
    return tick_ms


def _fast_roll(text: str, pos: int, most_ticks: int) -> np.ndarray | None:
    """The roll of text[pos:], read with numpy (about 20x faster than `parse`'s character loop), if it is well
    formed within the limits; None for anything else, for which the loop names the line and column."""
    try:
        b = np.frombuffer(text[pos:].encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        return None
    cr = b == 13
    if cr.any():
        if int((cr[:-1] & (b[1:] == 10)).sum()) != int(cr.sum()):  # a CR only as part of CRLF
            return None
        b = b[~cr]
    newline = b == 10
    ends = np.flatnonzero(newline) - 1
    if len(ends):
        before = b[np.maximum(ends, 0)]
        if not ((ends < 0) | (before == 32) | (before == 10)).all():  # a line ends inside a tick
            return None
        b = b[~newline]
    if len(b) and b[-1] != 32:  # the text ends inside a tick
        return None
    space = b == 32
    codes = b[~space]
    if not ((codes >= _FIRST_ORD) & (codes <= _LAST_ORD)).all():
        return None
    n_ticks = int(space.sum())
    if n_ticks > most_ticks:
        return None
    tick = (np.cumsum(space) - space)[~space]  # the spaces before a key: its tick
    key = codes.astype(np.int64) - _FIRST_ORD
    if len(key) > 1 and ((tick[1:] == tick[:-1]) & (key[1:] <= key[:-1])).any():  # keys rise within a tick
        return None
    roll = np.zeros((n_ticks, N_KEYS), dtype=bool)
    roll[tick, key] = True
    struck = roll.copy()
    struck[1:] &= ~roll[:-1]
    if int(struck.sum()) > limits.MAX_NOTES:
        return None
    return roll


def parse(text: str, source: str = "<text>") -> KeyText:
    """Parse 88-key text (format version 1). Raises TextFormatError naming line and column.

    The limits (notes/limits.py) are checked as the text is read: its length first, then the ticks and
    the notes (onsets) counted tick by tick, so that an oversized text fails before the roll is built.
    """
    if len(text) > limits.MAX_FILE_BYTES:
        raise TextFormatError(
            source, 1, 1,
            f"{len(text)} characters is more than the {limits.MAX_FILE_BYTES // 2**20} MiB wavegen reads",
        )
    if text.startswith("\ufeff"):
        raise TextFormatError(
            source, 1, 1, "starts with a byte-order mark (BOM); save it as plain UTF-8 without BOM"
        )
    header: dict[str, str] = {}
    pos, line_no = 0, 1
    if text.startswith("{"):
        nl = text.find("\n")
        first = text if nl < 0 else text[:nl]
        if first.endswith("\r"):
            first = first[:-1]
        header = _parse_header(first, source)
        pos, line_no = (len(text), 1) if nl < 0 else (nl + 1, 2)
    tick_ms = _header_tick_ms(header, source)
    most_ticks = limits.max_ticks(tick_ms)

    roll = _fast_roll(text, pos, most_ticks)
    if roll is None:  # something is off, or the text is at a limit: read it character by character to say what
        rows: list[list[int]] = []
        current: list[int] = []
        previous: set[int] = set()
        n_notes = 0
        line_start = pos
        n = len(text)
        i = pos
        while i < n:
            c = text[i]
            o = ord(c)
            if c == " ":
                rows.append(current)
                n_notes += sum(k not in previous for k in current)
                previous, current = set(current), []
                if len(rows) > most_ticks or n_notes > limits.MAX_NOTES:
                    what = (
                        f"more than {most_ticks} ticks of {format_number(tick_ms)} ms "
                        f"({limits.MAX_SECONDS / 3600:g} h)" if len(rows) > most_ticks
                        else f"more than {limits.MAX_NOTES} notes"
                    )
                    raise TextFormatError(source, line_no, i - line_start + 1, f"{what}, the most wavegen reads")
            elif _FIRST_ORD <= o <= _LAST_ORD:
                k = o - _FIRST_ORD
                if current and k <= current[-1]:
                    col = i - line_start + 1
                    prev = KEY_CHARS[current[-1]]
                    why = "repeated" if k == current[-1] else f"out of order (after {prev!r})"
                    raise TextFormatError(
                        source, line_no, col, f"key {c!r} is {why} within a tick: keys rise in pitch"
                    )
                current.append(k)
            elif c == "\n" or (c == "\r" and i + 1 < n and text[i + 1] == "\n"):
                if current:
                    raise TextFormatError(
                        source, line_no, i - line_start + 1,
                        "a line ends inside a tick: every tick ends with one space "
                        "(did an editor strip trailing spaces?)",
                    )
                if c == "\r":
                    i += 1
                line_no += 1
                line_start = i + 1
            else:
                what = _describe(c)
                hint = " (ticks are separated by single spaces only)" if c in "\t\r" else ""
                if c in "{}":
                    hint = " (the header must be the first line)"
                raise TextFormatError(
                    source, line_no, i - line_start + 1, f"{what} is not a key or a space{hint}"
                )
            i += 1
        if current:
            raise TextFormatError(
                source, line_no, n - line_start + 1,
                "the text ends inside a tick: the last tick needs its final space",
            )

        roll = np.zeros((len(rows), N_KEYS), dtype=bool)
        for t, keys in enumerate(rows):
            if keys:
                roll[t, keys] = True

    if "ticks" in header:
        raw = header["ticks"]
        if not raw.isdigit():
            raise TextFormatError(source, 1, 1, f"header ticks={raw} is not a whole number")
        if int(raw) != roll.shape[0]:
            raise TextFormatError(
                source, 1, 1,
                f"the header says ticks={raw} but the text holds {roll.shape[0]} ticks; "
                "an editor that strips trailing spaces deletes rests (a line of rests is all "
                "spaces): restore them, or correct the header",
            )
    meta = {k: v for k, v in header.items() if k not in RESERVED_HEADER_KEYS}
    return KeyText(roll=roll, tick_ms=tick_ms, meta=meta)


# ---------------------------------------------------------------------------------------------
# write


def format_number(x: float) -> str:
    """50.0 -> '50', 12.5 -> '12.5' (shortest exact repr)."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def write(kt: KeyText) -> str:
    """Canonical text: header line, then ticks with a newline after every 50 ticks and at the end."""
    for k, v in kt.meta.items():
        bad = set(k + v) & set(" {}=\n\r\t")
        if not k or not v or bad or k in RESERVED_HEADER_KEYS:
            raise ValueError(f"header field {k!r}={v!r} cannot be written (no spaces, braces or '=')")
    fields = {"tick_ms": format_number(kt.tick_ms), "ticks": str(kt.n_ticks), **kt.meta}
    out = ["{" + " ".join(f"{k}={v}" for k, v in fields.items()) + "}\n"]
    chars = np.array(list(KEY_CHARS))
    for t in range(kt.n_ticks):
        out.append("".join(chars[kt.roll[t]]) + " ")
        if (t + 1) % TICKS_PER_LINE == 0 or t + 1 == kt.n_ticks:
            out.append("\n")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# notes <-> roll


def roll_to_notes(roll: np.ndarray, tick_ms: float) -> list[Note]:
    """Decode a state roll: each run of ticks [s, e) of a key is the note s*tick .. (e+1)*tick.

    Returns notes sorted by start time, then pitch.
    """
    tick_s = tick_ms / 1000.0
    notes = [Note(LOWEST_PITCH + k, float(s * tick_s), float((e + 1) * tick_s)) for k, s, e in roll_runs(roll)]
    notes.sort(key=lambda n: (n.start, n.pitch))
    return notes


def roll_runs(roll: np.ndarray) -> list[tuple[int, int, int]]:
    """The runs of a state roll: (key index, first tick, one past the last tick), key by key."""
    padded = np.zeros((roll.shape[0] + 2, N_KEYS), dtype=np.int8)
    padded[1:-1] = roll
    edges = np.diff(padded, axis=0).T  # (88, T + 1): +1 where a run starts, -1 one past its end
    k_on, t_on = np.nonzero(edges == 1)
    _, t_off = np.nonzero(edges == -1)  # row-major: runs of each key pair up in order
    return [(int(k), int(s), int(e)) for k, s, e in zip(k_on, t_on, t_off, strict=True)]


def velocity_roll(roll: np.ndarray, notes: list[Note], velocities: list[int], tick_ms: float) -> np.ndarray:
    """(n_ticks, 88) uint8: at each tick and key where `roll` (the notes' 88-key text) sounds, the velocity of
    the note sounding there, 0 elsewhere; so velocity > 0 exactly where the text has the key.

    A run of the roll starts at the tick its note's onset rounds to (note_runs); it takes the loudest
    velocity of the key's notes whose onsets round to that tick (notes merged into one run keep the first
    onset's tick)."""
    tick_s = tick_ms / 1000.0
    at: dict[tuple[int, int], int] = {}  # (key, onset tick) -> loudest velocity
    for n, v in zip(notes, velocities, strict=True):
        key = (n.pitch - LOWEST_PITCH, max(0, math.floor(n.start / tick_s + 0.5)))
        at[key] = max(at.get(key, 0), int(v))
    out = np.zeros(roll.shape, dtype=np.uint8)
    for k, s, e in roll_runs(roll):
        out[s:e, k] = np.clip(at.get((k, s), 0), 1, 127)  # a run the notes do not start: never, but never 0
    return out


def note_runs(notes: Iterable[Note], tick_ms: float) -> dict[int, list[tuple[int, int]]]:
    """Encode notes as runs of ticks per key index (0..87), following the format's rules.

    A note from a to b seconds is rounded to ticks A, B (B at least A + 1) and becomes the run
    [A, max(A + 1, B - 1)): one tick shorter, so that a key struck twice stays two notes. Each key is
    then one voice (notes/voices.py, with a gap of one tick): when a key is struck again before its
    previous run has ended with a free tick, the previous run is cut to end one tick before the new onset;
    if that would leave it empty (onsets less than two ticks apart) the two notes merge. Pitches outside
    21..108 raise ValueError (the MIDI reader drops or folds them first).
    """
    tick_s = tick_ms / 1000.0
    by_key: dict[int, list[tuple[int, int]]] = {}
    for n in notes:
        if not LOWEST_PITCH <= n.pitch <= HIGHEST_PITCH:
            raise ValueError(f"pitch {n.pitch} is outside the 88 keys ({LOWEST_PITCH}..{HIGHEST_PITCH})")
        a = max(0, math.floor(n.start / tick_s + 0.5))
        b = max(a + 1, math.floor(n.end / tick_s + 0.5))
        by_key.setdefault(n.pitch - LOWEST_PITCH, []).append((a, max(a + 1, b - 1)))
    return {k: one_voice(spans, gap=1) for k, spans in by_key.items()}


def notes_to_roll(notes: Iterable[Note], tick_ms: float, n_ticks: int | None = None) -> np.ndarray:
    """Encode notes as a (n_ticks, 88) bool state roll (see `note_runs` for the rules).

    n_ticks defaults to the end of the last run; a longer n_ticks pads with rests, a shorter one cuts.
    The tick and the length are checked against the limits (notes/limits.py) before the roll is built.
    """
    limits.check_tick_ms(tick_ms)
    runs = note_runs(notes, tick_ms)
    end = max((e for spans in runs.values() for _, e in spans), default=0)
    n_ticks = end if n_ticks is None else n_ticks
    if n_ticks > limits.max_ticks(tick_ms):
        raise WavegenError(
            f"{n_ticks} ticks of {format_number(tick_ms)} ms is longer than the {limits.MAX_SECONDS:.0f} s "
            "wavegen handles; split it into shorter pieces"
        )
    roll = np.zeros((n_ticks, N_KEYS), dtype=bool)
    for k, spans in runs.items():
        for s, e in spans:
            roll[s:e, k] = True
    return roll


def from_notes(
    notes: Iterable[Note],
    tick_ms: float = DEFAULT_TICK_MS,
    meta: Mapping[str, str] | None = None,
    n_ticks: int | None = None,
) -> KeyText:
    """Encode notes as a KeyText; n_ticks defaults to the end of the last note's run."""
    return KeyText(roll=notes_to_roll(notes, tick_ms, n_ticks), tick_ms=tick_ms, meta=dict(meta or {}))


# ---------------------------------------------------------------------------------------------
# files


def read_file(path: str | os.PathLike) -> KeyText:
    """Read an 88-key text file; every problem is a WavegenError naming the file."""
    p = check_input(path)
    size = p.stat().st_size
    if size > limits.MAX_FILE_BYTES:
        raise WavegenError(
            f"{p}: {size / 2**20:.0f} MiB is larger than the {limits.MAX_FILE_BYTES // 2**20} MiB wavegen reads"
        )
    data = p.read_bytes()
    if not data:
        raise WavegenError(f"{p}: the file is empty; an 88-key text holds at least one tick")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise TextFormatError(str(p), line, col, "a byte that is not text (not UTF-8)") from None
    return parse(text, source=str(p))


def write_file(path: str | os.PathLike, kt: KeyText) -> None:
    write_text_atomic(Path(path), write(kt))
