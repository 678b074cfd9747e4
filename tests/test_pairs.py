"""Recordings with their notes (issue 16): `--pairs` and `--maestro` folders made here from renderings of
short sketches: lags found and corrected or refused, wrong pairs and truncated files skipped, any rate and
channel count to mono at the dataset's rate, MAESTRO's split kept, the sustain pedal and velocities."""

from __future__ import annotations

import json
import shutil

import mido
import numpy as np
import pytest
import soundfile as sf
from conftest import write_notes_midi

from wavegen.data import build, dataset, recordings
from wavegen.data.crops import CropDataset
from wavegen.errors import WavegenError
from wavegen.notes import text as T
from wavegen.notes.midi import read_midi_bytes
from wavegen.notes.render import render_notes
from wavegen.notes.text import Note

SR = 16_000  # the dataset's rate


def sketch(seed: int, seconds: float = 6.0) -> list[Note]:
    """A melody over a bass, onsets off the tick grid (as a performance is), 100 ms to 0.6 s apart."""
    rng = np.random.default_rng(seed)
    notes, t = [], 0.1
    while t < seconds:
        length = float(rng.uniform(0.1, 0.6))
        notes.append(Note(int(rng.integers(60, 85)), t, t + length * 0.9))
        if rng.random() < 0.4:
            notes.append(Note(int(rng.integers(36, 56)), t, t + length * 1.5))
        t += length
    return notes


def delayed(audio: np.ndarray, sr: int, ms: float) -> np.ndarray:
    """The sound `ms` later than its notes (silence before it), or earlier (its start cut)."""
    n = round(abs(ms) * sr / 1000)
    return np.concatenate([np.zeros(n, np.float32), audio]) if ms >= 0 else audio[n:]


def stereo(audio: np.ndarray) -> np.ndarray:
    return np.stack([audio, 0.5 * audio], axis=1)  # the mean of the channels is 0.75 x


@pytest.fixture(scope="module")
def notes():
    return {"a": sketch(1), "b": sketch(2)}


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory, notes):
    d = tmp_path_factory.mktemp("pairs")
    a44 = render_notes(notes["a"], sample_rate_hz=44_100).audio
    a48 = render_notes(notes["a"], sample_rate_hz=48_000).audio
    files = {"on-time.wav": (stereo(a44), 44_100), "late40.flac": (stereo(delayed(a48, 48_000, 40)), 48_000),
             "early60.wav": (delayed(a44, 44_100, -60), 44_100), "late300.wav": (delayed(a44, 44_100, 300), 44_100),
             "wrong.wav": (a44, 44_100), "truncated.wav": (stereo(a44), 44_100)}
    for name, (audio, sr) in files.items():
        sf.write(d / name, audio, sr, subtype="PCM_16")
        notes_of = notes["b"] if name == "wrong.wav" else notes["a"]
        write_notes_midi(d / name.replace(".wav", ".mid").replace(".flac", ".mid"), notes_of)
    data = (d / "truncated.wav").read_bytes()
    (d / "truncated.wav").write_bytes(data[: len(data) // 3])  # a copy that stopped a third of the way
    sf.write(d / "no-midi.wav", a44[:44_100], 44_100)
    write_notes_midi(d / "no-audio.mid", notes["a"])
    return d


@pytest.fixture(scope="module")
def built(pairs_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "pairs"
    res = build.build_dataset(out, pairs=pairs_dir, jobs=1)
    return out, res


def test_lags_are_found_and_corrected_or_refused(built):
    out, res = built
    items = {it.id: it for it in dataset.load(out).items()}
    assert sorted(items) == ["early60", "late40", "on-time"]
    for name, lag in (("on-time", 0), ("late40", 40), ("early60", -60)):
        it = items[name]
        assert abs(it.lag_ms - lag) <= 10, (name, it.lag_ms)
        assert it.align_confidence >= build.BuildSettings.min_align_confidence
        assert it.style == "pairs" and it.licence == "user-supplied" and it.notes_source.endswith(f"{name}.mid")
    reasons = {s["source"].rsplit("/", 1)[-1]: s["reason"] for s in res.skipped}
    assert "beyond the 100 ms" in reasons["late300.wav"] and "+30" in reasons["late300.wav"]
    assert "a wrong pair" in reasons["wrong.wav"]
    assert "truncated" in reasons["truncated.wav"]
    assert "no MIDI file" in reasons["no-midi.wav"] and "no audio file" in reasons["no-audio.mid"]
    assert len(res.skipped) == 5 and not list(out.rglob("*.tmp*"))


def test_corrected_audio_lands_on_the_notes(built, notes):
    """After the correction, every pair's sound is where the on-time rendering's is: the lag measured
    again on the stored audio is within 10 ms of zero, and the stored audio matches the on-time one."""
    out, _ = built
    ds = dataset.load(out)
    items = {it.id: it for it in ds.items()}
    ref = np.asarray(ds.audio(items["on-time"]), np.float32)
    for name in ("late40", "early60"):
        audio = np.asarray(ds.audio(items[name]), np.float32)
        again = recordings.align(audio / 32767, SR, notes["a"])
        assert abs(again.lag_ms) <= 10, (name, again.lag_ms)
        n = min(len(ref), len(audio))
        r = np.corrcoef(ref[:n], audio[:n])[0, 1]  # same sound, same place: a lag of 1 ms would drop this
        assert r > 0.5, (name, r)


def test_any_rate_and_channels_become_mono_at_the_dataset_rate(built, notes):
    out, _ = built
    ds = dataset.load(out)
    items = {it.id: it for it in ds.items()}
    rendered = render_notes(notes["a"], sample_rate_hz=SR)  # the same notes rendered at 16 kHz, mono
    for name, scale in (("on-time", 0.75), ("late40", 0.75), ("early60", 1.0)):  # stereo: mean of (1, 0.5)
        it = items[name]
        audio = np.asarray(ds.audio(it), np.float32) / 32767
        assert ds.sample_rate_hz == SR and audio.ndim == 1
        assert abs(it.seconds - len(rendered.audio) / SR) <= 0.07, (name, it.seconds)  # within the shift
        rms = np.sqrt(np.mean(audio[: len(rendered.audio)] ** 2))
        assert rms == pytest.approx(scale * np.sqrt(np.mean(rendered.audio ** 2)), rel=0.1)
        assert it.n_samples >= it.n_ticks * ds.samples_per_tick  # every tick has its samples


def test_wrong_pair_has_low_confidence(notes):
    """The calibration on the tests' own data: right pairs stand far above the threshold, wrong ones under."""
    a = render_notes(notes["a"], sample_rate_hz=SR).audio
    right = recordings.align(a, SR, notes["a"])
    wrong = recordings.align(a, SR, notes["b"])
    threshold = build.BuildSettings.min_align_confidence
    assert right.confidence > threshold > wrong.confidence, (right, wrong)


def test_rebuild_reuses_every_recording(built, pairs_dir):
    out, first = built
    again = build.build_dataset(out, pairs=pairs_dir, jobs=1)
    assert again.built == 0 and again.reused == 3 and len(again.skipped) == 5
    assert again.manifest["items"] == first.manifest["items"]


def test_pairs_dataset_loads_with_velocities_and_gives_crops(built):
    out, _ = built
    ds = dataset.load(out)
    for it in ds.items():
        vel = ds.velocity(it)
        roll = ds.text(it).roll
        assert vel.dtype == np.uint8 and vel.shape == roll.shape == (it.n_ticks, 88)
        assert np.array_equal(vel > 0, roll) and set(np.unique(vel)) == {0, 90}  # conftest's velocity
    assert ds.manifest["alignment"]["max_lag_ms"] == 100.0
    splits = {it.split for it in ds.items()}
    crops = CropDataset(ds, next(iter(splits)), crop_samples=2000, margin_ticks=2, output="mulaw")
    crop = crops[0]
    assert crop["inputs"].shape == (2000,) and crop["targets"].shape == (2000,)


def test_a_broken_velocity_file_is_named_and_rebuilt(built, pairs_dir, tmp_path):
    out, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    ds = dataset.load(copy)
    it = ds.items()[0]
    np.save(copy / it.velocity_path, np.zeros((it.n_ticks + 1, 88), np.uint8))
    with pytest.raises(WavegenError, match=f"{it.id}.npy: velocities are uint8"):
        ds.velocity(it)
    assert ds.velocity(dataset.Item(**{**vars(it), "velocity_path": ""})) is None
    again = build.build_dataset(copy, pairs=pairs_dir, jobs=1)
    assert (again.built, again.reused) == (1, 2)
    assert dataset.load(copy).velocity(it).shape == (it.n_ticks, 88)


def test_maestro_layout_keeps_its_split(tmp_path, notes):
    root = tmp_path / "maestro"
    (root / "2018").mkdir(parents=True)
    a = render_notes(notes["a"], sample_rate_hz=44_100).audio
    rows = []
    for i, split in enumerate(("train", "validation", "test", "train")):
        stem = f"2018/MIDI-Unprocessed_{i:02d}_R1_2018"
        if i < 3:  # the fourth row's files are missing
            sf.write(root / f"{stem}.wav", stereo(a), 44_100, subtype="PCM_16")
            write_notes_midi(root / f"{stem}.midi", notes["a"])
        rows.append(f'Composer {i},"Title, {i}",{split},2018,{stem}.midi,{stem}.wav,{len(a) / 44_100:.3f}')
    (root / "maestro-v3.0.0.csv").write_text("canonical_composer,canonical_title,split,year,midi_filename,"
                                             "audio_filename,duration\n" + "\n".join(rows) + "\n")
    res = build.build_dataset(tmp_path / "ds", maestro=root, jobs=1)
    items = {it.id: it for it in dataset.load(tmp_path / "ds").items()}
    assert {k: it.split for k, it in items.items()} == {"2018__MIDI-Unprocessed_00_R1_2018": "train",
                                                        "2018__MIDI-Unprocessed_01_R1_2018": "valid",
                                                        "2018__MIDI-Unprocessed_02_R1_2018": "test"}
    assert all(it.style == "maestro" and "CC BY-NC-SA" in it.licence for it in items.values())
    assert [s["reason"] for s in res.skipped] == [
        f"maestro-v3.0.0.csv row 4: no MIDI file {root}/2018/MIDI-Unprocessed_03_R1_2018.midi; skipped"]


def smf(*events: tuple[float, mido.Message]) -> bytes:
    """One track at 120 bpm, 480 ticks a quarter: 1 s = 960 ticks; events at seconds."""
    track, last = mido.MidiTrack(), 0
    for t, msg in sorted(events, key=lambda e: e[0]):
        tick = round(t * 960)
        track.append(msg.copy(time=tick - last))
        last = tick
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    mid.tracks.append(track)
    import io

    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def on(pitch: int, velocity: int) -> mido.Message:
    return mido.Message("note_on", note=pitch, velocity=velocity)


def off(pitch: int) -> mido.Message:
    return mido.Message("note_off", note=pitch)


def pedal(value: int) -> mido.Message:
    return mido.Message("control_change", control=64, value=value)


def test_the_sustain_pedal_holds_notes_and_velocities_are_kept():
    data = smf(
        (0.0, on(60, 80)), (0.2, off(60)),              # released before the pedal: 0.0-0.2
        (0.25, pedal(100)),                             # pedal down at 0.25 ...
        (0.3, on(64, 50)), (0.4, off(64)),              # released under the pedal: held to its lift at 1.0
        (0.5, on(67, 100)), (0.6, off(67)),             # held ... until struck again at 0.8
        (0.8, on(67, 30)), (0.9, off(67)),              # the restrike: held to the lift at 1.0
        (1.0, pedal(10)),                               # ... up at 1.0
        (1.2, on(72, 127)), (1.5, off(72)),             # no pedal: as played
        (1.55, pedal(64)), (1.6, on(48, 1)), (1.7, off(48)),  # 64 counts as down; never lifted: to the end, 1.9
        (1.9, mido.Message("control_change", control=7, value=3)),  # the file's last event (not the pedal)
    )
    read = read_midi_bytes(data, sustain_pedal=True)
    got = [(n.pitch, round(n.start, 3), round(n.end, 3), v) for n, v in zip(read.notes, read.velocities, strict=True)]
    assert got == [(60, 0.0, 0.2, 80), (64, 0.3, 1.0, 50), (67, 0.5, 0.8, 100), (67, 0.8, 1.0, 30),
                   (72, 1.2, 1.5, 127), (48, 1.6, 1.9, 1)]
    assert read.sustained == 4
    plain = read_midi_bytes(data)  # the pedal ignored, as for a rendered corpus
    assert [round(n.end, 3) for n in plain.notes] == [0.2, 0.4, 0.6, 0.9, 1.5, 1.7]

    # the velocity roll at 100 ms ticks: each note's run (one tick shorter than it sounds) holds its velocity
    kt = T.from_notes(read.notes, 100.0)
    vel = T.velocity_roll(kt.roll, read.notes, read.velocities, 100.0)
    k = {p: p - T.LOWEST_PITCH for p in (48, 60, 64, 67, 72)}
    want = np.zeros((kt.n_ticks, 88), np.uint8)
    want[0:1, k[60]] = 80      # 0.0-0.2 s: ticks 0..2, written as [0, 1)
    want[3:9, k[64]] = 50      # 0.3-1.0 s: [3, 9)
    want[5:7, k[67]] = 100     # 0.5-0.8 s: [5, 7), a free tick before the restrike
    want[8:9, k[67]] = 30      # 0.8-1.0 s: [8, 9)
    want[12:14, k[72]] = 127   # 1.2-1.5 s: [12, 14)
    want[16:18, k[48]] = 1     # 1.6-1.9 s: [16, 18)
    assert kt.n_ticks == 18 and np.array_equal(vel, want)


def test_pairing_rules_and_bad_tables(tmp_path):
    (tmp_path / "x.flac").write_bytes(b"")
    (tmp_path / "x.midi").write_bytes(b"")
    (tmp_path / "y.mid").write_bytes(b"")
    sources, skipped = recordings.pair_sources(tmp_path)
    assert [(s.piece, s.audio.endswith("x.flac"), s.path.endswith("x.midi")) for s in sources] == [("x", True, True)]
    assert [s["source"].endswith("y.mid") for s in skipped] == [True]
    with pytest.raises(WavegenError, match="no maestro-vX.Y.Z.csv"):
        recordings.maestro_sources(tmp_path)
    (tmp_path / "maestro-v2.0.0.json").write_text(json.dumps({"split": {"0": "train"}, "midi_filename": {"0": "y.mid"},
                                                               "audio_filename": {"0": "x.flac"}}))
    with pytest.raises(WavegenError, match="no column duration"):
        recordings.maestro_sources(tmp_path)
    with pytest.raises(WavegenError, match="cannot be transposed"):
        build.build_dataset(tmp_path / "ds", pairs=tmp_path, transpose="-1..1")
