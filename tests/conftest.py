"""Shared helpers: small MIDI files made in the test, raw SMF bytes for the broken ones."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import mido
import pytest

from wavegen import machine
from wavegen.notes.text import Note

# the kernel choice of the fast path (wavegen/synth/kernels.py) is cached per test session, not in ~/.cache
os.environ.setdefault("WAVEGEN_CACHE_DIR", __import__("tempfile").mkdtemp(prefix="wavegen-test-cache-"))


def write_notes_midi(path: Path, notes: list[Note], *, tpq: int = 480, tempo: int = 500_000,
                     channel: int = 0) -> Path:
    """A type-1 MIDI file with one track holding `notes` (seconds) at a constant tempo."""
    ticks_per_s = tpq * 1e6 / tempo
    events = []
    for n in notes:
        events.append((round(n.start * ticks_per_s), 1, mido.Message("note_on", note=n.pitch, velocity=90, channel=channel)))
        events.append((round(n.end * ticks_per_s), 0, mido.Message("note_off", note=n.pitch, velocity=0, channel=channel)))
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=tempo, time=0)])
    last = 0
    for t, _, m in events:
        track.append(m.copy(time=t - last))
        last = t
    mid = mido.MidiFile(type=1, ticks_per_beat=tpq)
    mid.tracks.append(track)
    mid.save(path)
    return path


def vlq(n: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def smf(tracks: list[bytes], *, fmt: int = 1, division: int = 480, ntrks: int | None = None) -> bytes:
    """Raw Standard MIDI File bytes from raw track bodies (events without the MTrk header)."""
    head = b"MThd" + struct.pack(">IHHH", 6, fmt, len(tracks) if ntrks is None else ntrks, division)
    return head + b"".join(b"MTrk" + struct.pack(">I", len(t)) + t for t in tracks)


END_OF_TRACK = b"\x00\xff\x2f\x00"


def note_track(pitch: int = 60, on: int = 0, length: int = 480, channel: int = 0) -> bytes:
    return (vlq(on) + bytes([0x90 | channel, pitch, 90]) + vlq(length) + bytes([0x80 | channel, pitch, 0])
            + END_OF_TRACK)


@pytest.fixture
def chord_midi(tmp_path: Path) -> Path:
    """A 2-second C major arpeggio then chord."""
    notes = [Note(60, 0.0, 0.5), Note(64, 0.5, 1.0), Note(67, 1.0, 1.5),
             Note(60, 1.5, 2.0), Note(64, 1.5, 2.0), Note(67, 1.5, 2.0)]
    return write_notes_midi(tmp_path / "chord.mid", notes)


# Hypothesis: reproducible examples in CI, no example database littering the clone.
from hypothesis import settings as _hsettings  # noqa: E402

_hsettings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    _hsettings.load_profile("ci")


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked `gpu` skip where CUDA is not available."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="gpu: needs CUDA")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Five 3-second pieces of broken chords, built once: train, valid and test splits."""
    from wavegen.data import build
    root = tmp_path_factory.mktemp("tinyds")
    src = root / "midi"
    src.mkdir()
    for i in range(5):
        notes = [Note(48 + (i * 5 + j * 4) % 24, j * 0.25, j * 0.25 + 0.45) for j in range(12)]
        write_notes_midi(src / f"piece{i}.mid", notes)
    build.build(build.midi_dir_sources(src), root / "ds", jobs=1)
    return root / "ds"


class FakeLoad(machine.OtherLoad):
    """machine.OtherLoad as if other programs kept `cores` cores busy (quiet unless a test says)."""

    cores: float | None = 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None
