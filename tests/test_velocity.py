"""Velocities reach the conditioning: the features, the crops, training, the default for 88-key text, and
MIDI velocities in generation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import mido
import numpy as np
import pytest
import torch

from wavegen.config import ModelConfig, load_config
from wavegen.data import dataset
from wavegen.data.conditioning import DEFAULT_VELOCITY, N_TICK_FEATURES, velocity_features
from wavegen.data.crops import CropDataset, validation_batch
from wavegen.errors import WavegenError
from wavegen.nn import checkpoint, heldout
from wavegen.nn.model import WaveNet, loss_fn
from wavegen.notes import text as T
from wavegen.synth import takes
from wavegen.synth.fast import FastWaveNet
from wavegen.synth.sketchcond import sketch_conditioning
from wavegen.train.wavenet import median_velocity, resolve_velocity, train_wavenet

SR, SPT = 800, 40  # 50 ms ticks
TINY = Path(__file__).parent.parent / "configs" / "tiny.toml"


def write_dataset(root: Path, pieces: list[tuple[np.ndarray, np.ndarray | None]], splits: list[str] | None = None) -> Path:
    """A dataset folder by hand, as `wavegen data build` lays it out: per piece its roll as 88-key text,
    noise as its audio and, given one, its velocity roll."""
    for sub in ("text", "audio", "velocity"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    items = []
    rng = np.random.default_rng(0)
    for i, (roll, velocity) in enumerate(pieces):
        kt = T.KeyText(roll=roll, tick_ms=50.0)
        T.write_file(root / f"text/p{i}.txt", kt)
        n = len(roll) * SPT
        np.save(root / f"audio/p{i}.npy", (rng.standard_normal(n) * 3000).astype(np.int16))
        if velocity is not None:
            np.save(root / f"velocity/p{i}.npy", velocity.astype(np.uint8))
        items.append({"id": f"p{i}", "piece": f"p{i}", "transpose": 0, "split": (splits or ["train"] * 99)[i],
                      "source": "by hand", "licence": "none", "style": "midi", "n_ticks": len(roll), "n_samples": n,
                      "seconds": n / SR, "clipped": 0, "peak": 0.1, "lowest_pitch": 21, "highest_pitch": 108,
                      "keys": "", "velocity_path": f"velocity/p{i}.npy" if velocity is not None else ""})
    manifest = {"dataset_version": dataset.DATASET_VERSION, "text_format_version": T.FORMAT_VERSION,
                "sample_rate_hz": SR, "tick_ms": 50.0, "samples_per_tick": SPT, "transpositions": [0],
                "soundfont": "", "items": items, "skipped": []}
    (root / dataset.MANIFEST).write_text(json.dumps(manifest))
    return root


def runs(n_ticks: int, notes: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """(roll, velocity) with each (key, first tick, end tick, velocity) as a run of the roll."""
    roll = np.zeros((n_ticks, 88), dtype=bool)
    vel = np.zeros((n_ticks, 88), dtype=np.uint8)
    for k, s, e, v in notes:
        roll[s:e, k], vel[s:e, k] = True, v
    return roll, vel


# key 40: 100 over ticks 2..5, then 127 over 7..8; key 43: 30 over ticks 4..11
NOTES = [(40, 2, 6, 100), (40, 7, 9, 127), (43, 4, 12, 30)]


def test_velocity_features_by_hand():
    roll, vel = runs(14, NOTES)
    f = velocity_features(roll, vel, 64) * 127
    assert f.shape == (88, 15)
    # the tick each run gives back (6 and 9 for key 40, 12 for key 43) sounds at the run's velocity
    assert f[40].round().tolist() == [0, 0, 100, 100, 100, 100, 100, 127, 127, 127, 0, 0, 0, 0, 0]
    assert f[43].round().tolist() == [0, 0, 0, 0, 30, 30, 30, 30, 30, 30, 30, 30, 30, 0, 0]
    assert np.count_nonzero(np.delete(f, [40, 43], axis=0)) == 0
    # no velocities (88-key text): every sounding tick at the default; a sounding key at 0 too
    plain = velocity_features(roll, None, 64) * 127
    assert plain[40].round().tolist() == [0, 0, 64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0]
    vel[7:9, 40] = 0
    assert (velocity_features(roll, vel, 90) * 127)[40].round().tolist()[6:11] == [100, 90, 90, 90, 0]


def test_crops_carry_the_velocity_files_values_at_their_ticks(tmp_path):
    roll, vel = runs(60, [(40, 2, 6, 100), (40, 7, 9, 127), (43, 4, 12, 30), (50, 20, 50, 77)])
    ds = dataset.load(write_dataset(tmp_path / "ds", [(roll, vel), (roll, None)]))
    crops = CropDataset(ds, "train", crop_samples=400, margin_ticks=2, output="mulaw", velocity=True,
                        default_velocity=55)
    assert crops.items[0].velocity_path and not crops.items[1].velocity_path
    start = 5 * SPT + 13  # targets from sample 5 * 40 + 14 on: the window starts at tick 5 - 2
    crop = crops.crop_at(0, start)
    ticks = crop["ticks"].numpy()
    assert ticks.shape == (N_TICK_FEATURES + 88, crops.n_ticks) and crops.n_ticks == 16  # 10 ticks + 2 + 2 x 2
    v = np.rint(ticks[N_TICK_FEATURES:] * 127)  # window tick j is tick 3 + j
    assert v[40].tolist() == [100, 100, 100, 100, 127, 127, 127] + [0] * 9  # ticks 3..6 (6 given back), 7..9
    assert v[43].tolist() == [0] + [30] * 9 + [0] * 6  # ticks 4..12
    assert np.count_nonzero(np.delete(v, [40, 43], axis=0)) == 0
    assert np.rint(crops.crop_at(0, 20 * SPT)["ticks"].numpy()[N_TICK_FEATURES + 50] * 127).tolist() == \
        [0, 0] + [77] * 14  # ticks 18, 19 silent, then key 50 from tick 20
    # the notes' own features are those of a model without velocities; an item without a file: the default
    plain = CropDataset(ds, "train", crop_samples=400, margin_ticks=2, output="mulaw")
    assert np.array_equal(plain.crop_at(0, start)["ticks"].numpy(), ticks[:N_TICK_FEATURES])
    other = np.rint(crops.crop_at(1, start)["ticks"].numpy()[N_TICK_FEATURES:] * 127)
    assert set(np.unique(other[[40, 43]])) == {0, 55}


def test_auto_turns_velocity_on_when_every_training_piece_has_them(tmp_path):
    roll, vel = runs(30, NOTES)
    every = dataset.load(write_dataset(tmp_path / "a", [(roll, vel), (roll, vel), (roll, None)],
                                       ["train", "train", "valid"]))
    some = dataset.load(write_dataset(tmp_path / "b", [(roll, vel), (roll, None)]))
    none = dataset.load(write_dataset(tmp_path / "c", [(roll, None)]))
    auto = ModelConfig()
    assert resolve_velocity(auto, every).velocity is True
    assert resolve_velocity(auto, some).velocity is False and resolve_velocity(auto, none).velocity is False
    assert resolve_velocity(dataclasses.replace(auto, velocity=True), some).velocity is True  # the rest: default
    assert resolve_velocity(dataclasses.replace(auto, velocity=False), every).velocity is False
    with pytest.raises(WavegenError, match=r"/c: model.velocity = true, but no training piece has velocities"):
        resolve_velocity(dataclasses.replace(auto, velocity=True), none)
    assert load_config(TINY, ["model.velocity=true"]).model.velocity is True
    with pytest.raises(WavegenError, match=r"model.velocity = 'yes'; choose true, false or \"auto\""):
        load_config(TINY, ["model.velocity=yes"])
    with pytest.raises(WavegenError, match="expected str or bool, got int 1"):
        load_config(TINY, ["model.velocity=1"])


def test_the_default_velocity_is_the_training_datas_median(tmp_path):
    # sounding key-ticks: 4 at 100, 2 at 127 (key 40), 8 at 30 (key 43) in one piece, 3 at 90 in the other:
    # 17 values, the 9th smallest is 90; the validation piece (all at 5) does not count
    roll, vel = runs(30, NOTES)
    roll2, vel2 = runs(10, [(60, 0, 3, 90)])
    roll3, vel3 = runs(40, [(60, 0, 40, 5)])
    ds = dataset.load(write_dataset(tmp_path / "ds", [(roll, vel), (roll2, vel2), (roll3, vel3)],
                                    ["train", "train", "valid"]))
    assert median_velocity(ds) == 90
    assert median_velocity(dataset.load(write_dataset(tmp_path / "none", [(roll, None)]))) == DEFAULT_VELOCITY


def velocity_dataset(root: Path) -> Path:
    rng = np.random.default_rng(1)
    pieces = []
    for i in range(3):
        roll = np.zeros((40, 88), dtype=bool)
        for j in range(8):
            roll[j * 5 : j * 5 + 4, 30 + (i * 7 + j * 3) % 20] = True
        pieces.append((roll, np.where(roll, rng.integers(20, 120, roll.shape), 0).astype(np.uint8)))
    return write_dataset(root, pieces, ["train", "train", "valid"])


def test_a_velocity_model_trains_and_its_checkpoint_says_so(tmp_path):
    data = velocity_dataset(tmp_path / "ds")
    cfg = load_config(TINY, ["train.steps=4", "train.eval_every=4", "train.ckpt_every=4", "train.sample_seconds=0.05",
                             "data.crop_samples=200", "data.valid_crops=2", "train.lr=1e-2"])
    assert cfg.model.velocity == "auto"
    res = train_wavenet(cfg, data, tmp_path / "run", show_progress=False, log=lambda m: None)
    assert res.step == 4
    loaded = checkpoint.load(tmp_path / "run")
    assert loaded.config.model.velocity is True and loaded.model.uses_velocity
    assert loaded.meta["default_velocity"] == loaded.model.default_velocity == median_velocity(dataset.load(data))
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["config"]["model"]["velocity"] is True
    # the loss reaches the velocity inputs of the conditioning network: they get gradients from its crops
    model = loaded.model.train()
    batch = validation_batch(heldout.crops(dataset.load(data), "train", loaded.config.model, 200,
                                           default_velocity=model.default_velocity), 2)
    assert batch["ticks"].shape[1] == N_TICK_FEATURES + 88
    loss_fn(loaded.config.model.output, heldout.forward(model, batch, loaded.config.model), batch["targets"]).backward()
    assert model.cond_net[0].weight.grad[:, N_TICK_FEATURES:].abs().amax() > 0
    # the same command resumes it ("auto" decides the same)
    cfg6 = load_config(TINY, ["train.steps=6", "train.eval_every=4", "train.ckpt_every=4", "train.sample_seconds=0",
                              "data.crop_samples=200", "data.valid_crops=2", "train.lr=1e-2"])
    assert train_wavenet(cfg6, data, tmp_path / "run", show_progress=False, log=lambda m: None).step == 6


def velocity_model(default_velocity: int = 64, velocity: bool = True) -> WaveNet:
    cfg = ModelConfig(residual_channels=16, gate_channels=16, skip_channels=24, head_channels=32, layers_per_cycle=4,
                      cycles=2, cond_channels=8, n_classes=64, velocity=velocity)
    torch.manual_seed(1)
    model = WaveNet(cfg, SPT, default_velocity).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    return model


SKETCH = T.parse("HLO HLO  H H H  JMQ JM Q ")


def logits(model: WaveNet, velocity: np.ndarray | None) -> np.ndarray:
    n = 6 * SPT
    teacher = np.random.default_rng(0).integers(0, 64, (1, n))
    return FastWaveNet(model, "numba").run(n, sample_rate_hz=SR, sketch=SKETCH, teacher=teacher, return_logits=True,
                                           velocity=velocity)


def test_velocities_move_a_velocity_model_and_not_another():
    soft = np.where(SKETCH.roll, 20, 0).astype(np.uint8)
    hard = np.where(SKETCH.roll, 120, 0).astype(np.uint8)
    on = velocity_model()
    assert np.abs(logits(on, soft) - logits(on, hard)).max() > 1e-2
    off = velocity_model(velocity=False)
    assert np.array_equal(logits(off, soft), logits(off, hard)) and np.array_equal(logits(off, soft), logits(off, None))


def test_88_key_text_plays_at_the_default_velocity():
    model = velocity_model(default_velocity=90)
    at = lambda v: np.where(SKETCH.roll, v, 0).astype(np.uint8)  # noqa: E731
    none, _ = sketch_conditioning(model, SKETCH)
    assert np.array_equal(none, sketch_conditioning(model, SKETCH, at(90))[0])
    assert np.abs(none - sketch_conditioning(model, SKETCH, at(64))[0]).max() > 1e-3


def test_the_checkpoint_carries_the_default_velocity_and_old_ones_load_as_before(tmp_path):
    cfg = load_config(TINY, ["model.velocity=true"])
    meta = {"sample_rate_hz": SR, "tick_ms": 50.0, "samples_per_tick": SPT, "step": 0, "styles": [],
            "default_velocity": 77}
    checkpoint.save(tmp_path / "v", weights=WaveNet(cfg.model, SPT).state_dict(), config=cfg, meta=meta)
    loaded = checkpoint.load(tmp_path / "v")
    assert loaded.model.uses_velocity and loaded.model.default_velocity == 77
    # a record from before velocities has no key: the network it always was
    plain = load_config(TINY)
    old = checkpoint.save(tmp_path / "old", weights=WaveNet(plain.model, SPT).state_dict(), config=plain,
                          meta={k: v for k, v in meta.items() if k != "default_velocity"})
    record = json.loads((old / checkpoint.CONFIG).read_text())
    del record["config"]["model"]["velocity"]
    (old / checkpoint.CONFIG).write_text(json.dumps(record))
    before = checkpoint.load(old)
    assert not before.model.uses_velocity and before.model.cond_net[0].in_channels == N_TICK_FEATURES
    shipped = checkpoint.load()  # trained without velocities
    assert not shipped.model.uses_velocity and shipped.model.cond_net[0].in_channels == N_TICK_FEATURES


def write_midi(path: Path, notes: list[tuple[int, float, float, int]], pedal: tuple[float, float] | None = None) -> Path:
    """A MIDI file of (pitch, start s, end s, velocity) at 120 bpm, 480 ticks a quarter (960 a second),
    with the sustain pedal down from pedal[0] to pedal[1] s."""
    events = []
    for pitch, start, end, v in notes:
        events += [(round(start * 960), 1, mido.Message("note_on", note=pitch, velocity=v)),
                   (round(end * 960), 0, mido.Message("note_off", note=pitch, velocity=0))]
    if pedal:
        events += [(round(pedal[0] * 960), 0, mido.Message("control_change", control=64, value=127)),
                   (round(pedal[1] * 960), 0, mido.Message("control_change", control=64, value=0))]
    track, last = mido.MidiTrack(), 0
    for t, _, m in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(m.copy(time=t - last))
        last = t
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    mid.tracks.append(track)
    mid.save(path)
    return path


def make_checkpoint(path: Path, velocity: bool = True) -> Path:
    cfg = load_config(TINY, [f"model.velocity={str(velocity).lower()}"])
    torch.manual_seed(0)
    model = WaveNet(cfg.model, SPT)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    meta = {"sample_rate_hz": SR, "tick_ms": 50.0, "samples_per_tick": SPT, "step": 0, "styles": [],
            "default_velocity": 70}
    return checkpoint.save(path, weights=model.state_dict(), config=cfg, meta=meta)


@pytest.fixture
def velocity_checkpoint(tmp_path) -> Path:
    return make_checkpoint(tmp_path / "ck")


def test_generate_passes_a_midi_sketchs_velocities_and_text_gets_none(tmp_path, velocity_checkpoint, monkeypatch):
    seen = []
    real = takes.play
    monkeypatch.setattr(takes, "play", lambda *a, **kw: (seen.append(kw.get("velocity")), real(*a, **kw))[1])
    mid = write_midi(tmp_path / "a.mid", [(60, 0.0, 0.3, 30), (64, 0.1, 0.4, 110)])
    takes.generate_takes(tmp_path / "a.wav", model=str(velocity_checkpoint), sketch=str(mid))
    vel = seen[-1]
    assert vel.shape == (7, 88) and vel.dtype == np.uint8  # the text's ticks: runs 0..4 and 2..6 (one tick short)
    assert vel[:, 60 - 21].tolist() == [30] * 5 + [0, 0] and vel[:, 64 - 21].tolist() == [0, 0] + [110] * 5
    assert np.count_nonzero(np.delete(vel, [39, 43], axis=1)) == 0
    text = tmp_path / "a.txt"
    T.write_file(text, T.from_notes([T.Note(60, 0.0, 0.3)]))
    takes.generate_takes(tmp_path / "b.wav", model=str(velocity_checkpoint), sketch=str(text))
    assert seen[-1] is None  # the model's default velocity


def test_midi_velocities_change_what_generate_plays(tmp_path, velocity_checkpoint):
    # the same notes and seed, softer: another take; a model without velocities plays both alike
    import soundfile as sf

    soft = write_midi(tmp_path / "soft.mid", [(60, 0.0, 0.3, 20), (64, 0.1, 0.4, 20)])
    loud = write_midi(tmp_path / "loud.mid", [(60, 0.0, 0.3, 120), (64, 0.1, 0.4, 120)])
    out = {}
    for name, mid in (("soft", soft), ("loud", loud)):
        takes.generate_takes(tmp_path / f"{name}.wav", model=str(velocity_checkpoint), sketch=str(mid), seed=1)
        out[name] = sf.read(tmp_path / f"{name}.wav")[0]
    assert out["soft"].shape == out["loud"].shape and not np.array_equal(out["soft"], out["loud"])


def test_a_velocity_model_reads_a_midi_sketch_with_its_sustain_pedal(tmp_path, velocity_checkpoint, monkeypatch):
    # as its recordings were read: a note released under the pedal sounds until the pedal lifts; a model
    # without velocities reads the file as before
    seen = []
    monkeypatch.setattr(takes, "play", lambda *a, **kw: (seen.append(kw), np.zeros((1, a[1]), np.float32))[1])
    mid = write_midi(tmp_path / "p.mid", [(60, 0.0, 0.1, 80)], pedal=(0.0, 0.5))
    takes.generate_takes(tmp_path / "p.wav", model=str(velocity_checkpoint), sketch=str(mid))
    held = seen[-1]["sketch"].roll[:, 60 - 21]
    assert held.tolist() == [True] * 9 and seen[-1]["velocity"][:, 60 - 21].tolist() == [80] * 9
    plain = make_checkpoint(tmp_path / "plain", velocity=False)
    takes.generate_takes(tmp_path / "q.wav", model=str(plain), sketch=str(mid))
    assert seen[-1]["sketch"].roll[:, 60 - 21].tolist() == [True]
