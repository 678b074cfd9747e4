"""Dataset build: aligned pairs, splits by piece, caching by content, failures skipped."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import write_notes_midi

from wavegen.data import build, dataset
from wavegen.errors import WavegenError
from wavegen.notes import text as T
from wavegen.notes.text import Note


@pytest.fixture
def midi_dir(tmp_path):
    d = tmp_path / "midi"
    (d / "sub").mkdir(parents=True)
    for i in range(4):
        notes = [Note(55 + i + j, j * 0.25, j * 0.25 + 0.4) for j in range(6)]
        write_notes_midi(d / f"piece{i}.mid", notes)
    write_notes_midi(d / "sub" / "top.mid", [Note(108, 0.0, 0.5), Note(100, 0.5, 1.0)])
    (d / "broken.mid").write_bytes(b"MThd\x00\x00")
    (d / "notes.txt").write_text("not midi, ignored")
    return d


def test_build_pairs_splits_and_skips(midi_dir, tmp_path):
    out = tmp_path / "ds"
    res = build.build(build.midi_dir_sources(midi_dir), out, transpositions=(-1, 0, 1), jobs=1)
    ds = dataset.load(out)
    items = ds.items()
    # 4 pieces x 3 transpositions, plus top.mid at -1 and 0 (+1 leaves the keyboard)
    assert len(items) == 14 and res.built == 14 and res.reused == 0
    assert [s["source"].endswith("broken.mid") for s in res.skipped] == [True]
    assert "truncated" in res.skipped[0]["reason"]
    assert any("+1 leaves the 88 keys" in w for w in res.manifest["warnings"])
    by_piece = {}
    for it in items:
        by_piece.setdefault(it.piece, set()).add(it.split)
        audio = ds.audio(it)
        kt = ds.text(it)
        assert isinstance(audio, np.memmap) and audio.dtype == np.int16 and len(audio) == it.n_samples
        assert it.n_samples >= kt.n_ticks * ds.samples_per_tick  # every tick has its samples
        assert kt.meta["style"] == "midi" and np.abs(audio).max() > 1000
    assert all(len(s) == 1 for s in by_piece.values())  # every transposition in its piece's split
    assert {s for ss in by_piece.values() for s in ss} == {"train", "valid", "test"}
    assert "sub__top" in by_piece
    # a transposed item is the same text shifted
    base = ds.text(next(it for it in items if it.id == "piece0"))
    up = ds.text(next(it for it in items if it.id == "piece0_t+1"))
    assert np.array_equal(np.roll(base.roll, 1, axis=1), up.roll)
    assert not list(out.rglob("*.tmp*"))


def test_rebuild_only_does_what_changed(midi_dir, tmp_path):
    out = tmp_path / "ds"
    sources = build.midi_dir_sources(midi_dir)
    build.build(sources, out, jobs=1)
    again = build.build(sources, out, jobs=1)
    assert (again.built, again.reused) == (0, 5)
    first = {it["id"]: it for it in again.manifest["items"]}
    # a new sample rate keeps the texts and renders the audio again
    other_rate = build.build(sources, out, jobs=1, sample_rate_hz=8_000)
    assert other_rate.built == 5
    for it in other_rate.manifest["items"]:
        assert it["text_key"] == first[it["id"]]["text_key"] and it["audio_key"] != first[it["id"]]["audio_key"]
    assert dataset.load(out).sample_rate_hz == 8_000
    # a new tick length changes the texts
    other_tick = build.build(sources, out, jobs=1, sample_rate_hz=8_000, tick_ms=25)
    assert other_tick.built == 5 and "tick_ms=25" in (out / "text" / "piece0.txt").read_text()
    # a changed source file is rebuilt, the others are not
    write_notes_midi(midi_dir / "piece1.mid", [Note(60, 0, 1)])
    changed = build.build(sources, out, jobs=1, sample_rate_hz=8_000, tick_ms=25)
    assert changed.built == 1


def test_parallel_build_equals_serial(midi_dir, tmp_path):
    sources = build.midi_dir_sources(midi_dir)
    build.build(sources, tmp_path / "a", jobs=1)
    build.build(sources, tmp_path / "b", jobs=2)
    for it in dataset.load(tmp_path / "a").items():
        a = np.load(tmp_path / "a" / it.audio_path)
        b = np.load(tmp_path / "b" / it.audio_path)
        assert np.array_equal(a, b)


@pytest.mark.slow
def test_bach_corpus_build_and_info(tmp_path):
    sources = build.corpus_sources("bach")
    assert 400 <= len(sources) <= 420
    assert not any(s.path.endswith(".rntxt") for s in sources)
    assert len({s.piece for s in sources}) == len(sources)  # one encoding per piece
    assert next(s for s in sources if s.piece == "bwv277").path.endswith(".mxl")
    res = build.build(sources[:2], tmp_path / "bach", transpositions=(0, 2), jobs=1)
    assert len(res.manifest["items"]) == 4 and not res.skipped
    summary = dataset.info(dataset.load(tmp_path / "bach"))
    assert summary["pieces"] == 2 and summary["items"] == 4 and summary["hours"] > 0.01
    kt = T.read_file(tmp_path / "bach" / "text" / f"{sources[0].piece}.txt")
    assert kt.meta["style"] == "bach" and kt.n_ticks > 100
    assert json.loads((tmp_path / "bach" / "manifest.json").read_text())["items"][0]["licence"].startswith(
        "composition public domain")


def test_settings_that_cannot_align_and_bad_specs():
    assert dataset.samples_per_tick(16_000, 50) == 800 and dataset.samples_per_tick(44_100, 50) == 2205
    with pytest.raises(WavegenError, match="whole number of samples"):
        dataset.samples_per_tick(22_050, 1)
    assert build.parse_transpose("-3..3") == tuple(range(-3, 4))
    assert build.parse_transpose("2,-2,0") == (-2, 0, 2)
    for bad in ("a..b", "3..-3", "", "100"):
        with pytest.raises(WavegenError, match="--transpose"):
            build.parse_transpose(bad)
    with pytest.raises(WavegenError, match="not a wavegen dataset"):
        dataset.load("/nonexistent")


def test_split_is_deterministic_by_piece():
    names = [f"bwv{i}" for i in range(400)]
    splits = build.assign_splits(names)
    assert splits == build.assign_splits(list(reversed(names)))
    shares = {s: sum(v == s for v in splits.values()) / len(names) for s in dataset.SPLITS}
    assert 0.02 < shares["test"] < 0.09 and 0.02 < shares["valid"] < 0.09
