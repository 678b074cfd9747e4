"""Training crops: aligned, deterministic by index, spread over the music, shared out by rank."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch

from wavegen.data import dataset
from wavegen.data.crops import CropDataset, StepSampler, validation_batch
from wavegen.errors import WavegenError


def crops(ds_dir, **kw) -> CropDataset:
    args = dict(crop_samples=1600, margin_ticks=2, output="mulaw", seed=0)
    args.update(kw)
    return CropDataset(dataset.load(ds_dir), "train", **args)


def known_piece(ds_dir, tmp_path):
    """A copy of the tiny dataset in which piece2's samples 12000..12003 are 0, full scale, minus full scale
    and 16384. piece2's note j (conftest.tiny_dataset) is MIDI 48 + (10 + 4j) % 24 from j * 0.25 s
    (tick 5j, sample 4000j at 16 kHz) to j * 0.25 + 0.45 s: its run is ticks [5j, 5j + 8), sounding to 5j + 8."""
    copy = tmp_path / "ds"
    shutil.copytree(ds_dir, copy)
    path = copy / "audio" / "piece2.npy"
    pcm = np.load(path).copy()
    pcm[12000:12004] = [0, 32767, -32767, 16384]
    np.save(path, pcm)
    c = crops(copy)
    return c, [it.id for it in c.items].index("piece2")


def test_crop_is_aligned_audio_with_its_conditioning(tiny_dataset, tmp_path):
    c, k = known_piece(tiny_dataset, tmp_path)
    assert c.ds.samples_per_tick == 800
    start = 11899  # the targets are samples 11900 .. 13499: target m is sample 11900 + m
    crop = c.crop_at(k, start)
    # mu-law codes (256 classes) of 0, +1, -1 and 16384 / 32767: 128, 255, 0 and
    # floor((ln(1 + 255 * 0.500015) / ln(256) + 1) / 2 * 255 + 0.5) = floor(239.65) = 239
    assert crop["targets"][100:104].tolist() == [128, 255, 0, 239]
    assert crop["inputs"][101:105].tolist() == [128, 255, 0, 239]  # the inputs are one sample earlier
    # the tick window starts margin_ticks = 2 before the targets' tick (11900 // 800 = 14): at tick 12,
    # and the targets start at 11900 - 12 * 800 = 2300 samples into it
    assert int(crop["offset"]) == 2300
    ticks = crop["ticks"].numpy()
    key = 70 - 21  # note 3: MIDI 48 + (10 + 12) % 24 = 70 (B flat 4), struck at tick 15 = window column 3
    sounding, onset, decay = ticks[key], ticks[88 + key], ticks[176 + key]
    assert sounding[2:5].tolist() == [0, 1, 1] and onset[2:5].tolist() == [0, 1, 0]
    assert decay[3] == 1.0 and decay[4] == pytest.approx(math.exp(-1 / 10))  # a tick since the onset
    # the excitation at sample 12123, 123 samples after that onset (target 223): sin and cos of
    # 2 pi f 123 / 16000 with f = 440 * 2 ** (1 / 12); only notes 2 (MIDI 66, ticks 10-18) and 3 sound
    exc = crop["exc"].numpy()
    f = 440 * 2 ** (1 / 12)
    assert exc[key, 223] == pytest.approx(math.sin(2 * math.pi * f * 123 / 16000), abs=1e-5)
    assert exc[88 + key, 223] == pytest.approx(math.cos(2 * math.pi * f * 123 / 16000), abs=1e-5)
    assert np.flatnonzero(exc[:88, 223]).tolist() == [66 - 21, key]
    assert exc[key, 99] == 0 and exc[88 + key, 99] == 0  # sample 11999: before the onset, silent
    # a crop at the very start: the window's first two ticks lie before the piece (zero), then note 0
    # (MIDI 58) is struck at tick 0
    first = c.crop_at(k, 0)["ticks"].numpy()
    assert not first[:, :2].any() and first[88 + 58 - 21, 2] == 1 and first[88:176, 2].sum() == 1


def test_crops_are_deterministic_by_index_and_spread_out(tiny_dataset):
    a, b = crops(tiny_dataset), crops(tiny_dataset)
    assert all(torch.equal(a[i]["inputs"], b[i]["inputs"]) for i in range(5))
    assert not torch.equal(a[0]["inputs"], a[1]["inputs"])
    places = [a.locate(i) for i in range(300)]
    on_tick = np.mean([(s + 1) % a.ds.samples_per_tick == 0 for _, s in places])
    assert on_tick < 0.05  # crops do not all start at tick boundaries (where notes start)
    silent = np.mean([(a[i]["targets"] - 128).abs().max().item() <= 1 for i in range(60)])
    assert silent < 0.5  # nor in silence
    assert len({k for k, _ in places}) == len(a.items)  # every piece is used


def test_each_rank_reads_its_own_share():
    r0 = list(StepSampler(0, 3, 2, 2, rank=0, world=2))
    r1 = list(StepSampler(0, 3, 2, 2, rank=1, world=2))
    assert len(r0) == len(r1) == 6
    flat0, flat1 = sum(r0, []), sum(r1, []),
    assert not set(flat0) & set(flat1) and sorted(flat0 + flat1) == list(range(24))
    assert list(StepSampler(1, 3, 2, 2, 0, 2)) == r0[2:]  # resuming at step 1 continues the same stream


def test_shuffled_validation_uses_another_pieces_notes(tiny_dataset):
    c = CropDataset(dataset.load(tiny_dataset), "train", crop_samples=1600, margin_ticks=2, output="mulaw")
    true = validation_batch(c, 4)
    shuffled = validation_batch(c, 4, shuffled=True)
    assert torch.equal(true["inputs"], shuffled["inputs"])
    assert not torch.equal(true["ticks"], shuffled["ticks"])


@pytest.mark.parametrize("world", [2, 4])
def test_ranks_share_out_the_global_batch_exactly_and_resume_where_they_stopped(tiny_dataset, world):
    steps, batch, accum = 5, 3, 2
    single = list(StepSampler(0, steps, batch * world, accum, rank=0, world=1))  # one process, global batch
    ranks = [list(StepSampler(0, steps, batch, accum, rank=r, world=world)) for r in range(world)]
    assert all(len(r) == len(single) == steps * accum for r in ranks)
    for m, whole in enumerate(single):  # each micro-batch: the ranks' indices are disjoint, and together
        parts = [set(r[m]) for r in ranks]  # they are the single process's
        assert sum(map(len, parts)) == len(whole) == len(set().union(*parts)) and set().union(*parts) == set(whole)
    for k in range(steps):  # a run resumed at step k takes what the uninterrupted run took from step k on
        for r in range(world):
            assert list(StepSampler(k, steps, batch, accum, rank=r, world=world)) == ranks[r][k * accum :]
    # and through a DataLoader with workers, a rank's crops are those of its indices, in order
    c = crops(tiny_dataset)
    sampler = StepSampler(2, 4, batch, accum, rank=world - 1, world=world)
    loader = torch.utils.data.DataLoader(c, batch_sampler=sampler, num_workers=2)
    for got, want in zip(loader, ranks[world - 1][2 * accum : 4 * accum], strict=True):
        assert torch.equal(got["inputs"], torch.stack([c[i]["inputs"] for i in want]))
        assert got["item"].tolist() == [c.locate(i)[0] for i in want]


@pytest.fixture(scope="module")
def two_styles(tmp_path_factory):
    """Eight 3-second pieces, the first four of style "a", the others "b"."""
    import dataclasses

    from conftest import write_notes_midi

    from wavegen.data import build
    from wavegen.notes.text import Note

    root = tmp_path_factory.mktemp("styles")
    (root / "midi").mkdir()
    for i in range(8):
        write_notes_midi(root / "midi" / f"p{i}.mid", [Note(50 + i + j % 5, j * 0.25, j * 0.25 + 0.45) for j in range(12)])
    sources = [dataclasses.replace(s, style="a" if int(s.piece[-1]) < 4 else "b")
               for s in build.midi_dir_sources(root / "midi")]
    build.build(sources, root / "ds", jobs=1)
    return root / "ds"


def test_style_weights_set_each_styles_share_of_the_crops(two_styles):
    plain = crops(two_styles)
    styles = [plain.ds.index.styles[plain.ds.index.style[plain.ds.select("train")][k]] for k in range(len(plain.items))]
    n_a, n_b = styles.count("a"), styles.count("b")
    assert n_a and n_b and len(set(plain.n_samples.tolist())) == 1  # equal lengths: shares go by count

    def share_of_a(c):
        return np.mean([styles[c.locate(i)[0]] == "a" for i in range(4000)])

    assert share_of_a(plain) == pytest.approx(n_a / (n_a + n_b), abs=0.03)
    assert share_of_a(crops(two_styles, weights={"a": 3.0})) == pytest.approx(3 * n_a / (3 * n_a + n_b), abs=0.03)
    assert share_of_a(crops(two_styles, weights={"b": 0.0})) == 1.0  # weight 0: the style is left out
    with pytest.raises(WavegenError, match="names c, but its train pieces have the styles a, b"):
        crops(two_styles, weights={"c": 2.0})
    with pytest.raises(WavegenError, match="leaves no train piece"):
        crops(two_styles, weights={"a": 0.0, "b": 0.0})


def test_data_weights_are_checked_where_they_are_set():
    from wavegen.config import load_config, parse_weights

    assert parse_weights("") == {}
    assert parse_weights("random=8, essen=2.5") == {"random": 8.0, "essen": 2.5}
    assert load_config(None, ["data.weights=random=4"]).data.weights == "random=4"
    for bad in ("random", "random=-1", "random=x", "random=1,random=2", "=3", "random=inf"):
        with pytest.raises(WavegenError, match=r"--set data.weights=.*expected STYLE=WEIGHT"):
            load_config(None, [f"data.weights={bad}"])


def test_crops_carry_the_excitation_of_the_models_partials(tiny_dataset):
    from wavegen.config import ModelConfig
    from wavegen.data.conditioning import excitation
    from wavegen.nn import heldout

    ds = dataset.load(tiny_dataset)
    one = heldout.crops(ds, "train", ModelConfig(), 1600)
    three = heldout.crops(ds, "train", ModelConfig(excitation_partials=3), 1600)
    k, start = three.locate(5)
    roll = three._piece(k)[0]
    got = three.crop_at(k, start)["exc"].numpy()
    assert np.array_equal(got, excitation(roll, start + 1, 1600, ds.samples_per_tick, ds.sample_rate_hz, n_partials=3))
    assert np.abs(got - one.crop_at(k, start)["exc"].numpy()).max() > 0.1  # overtones, not the fundamental alone
    with pytest.raises(WavegenError, match="excitation_partials must be positive"):
        from wavegen.config import load_config
        load_config(None, ["model.excitation_partials=0"])


def test_the_excitation_keeps_its_phase_far_into_a_long_high_note():
    """C8 (4186 Hz) held 30 s: 20 s in, its phase is 83,720 cycles; sine and cosine must still be those
    of 2 pi f t (float32 holds the phase itself only to about 0.03 rad there, so the cycles are counted
    in float64 and only their fraction goes to float32)."""
    from wavegen.data.conditioning import KEY_HZ, excitation

    roll = np.zeros((600, 88), dtype=bool)  # 50 ms ticks at 16 kHz: 800 samples a tick
    roll[:, 87] = True
    t = 20 * 16_000 + 7
    exc = excitation(roll, t, 3, 800, 16_000)
    for j in range(3):
        phase = 2 * math.pi * KEY_HZ[87] * (t + j) / 16_000
        assert exc[87, j] == pytest.approx(math.sin(phase), abs=2e-6)
        assert exc[88 + 87, j] == pytest.approx(math.cos(phase), abs=2e-6)
    assert np.count_nonzero(exc) == 6


def test_input_noise_moves_the_inputs_by_its_std_and_never_the_targets(tiny_dataset):
    clean, noisy = crops(tiny_dataset), crops(tiny_dataset, input_noise=2.0)
    moved = []
    for index in range(6):
        a, b = clean[index], noisy[index]
        assert torch.equal(a["targets"], b["targets"]) and torch.equal(a["ticks"], b["ticks"])
        assert torch.equal(noisy[index]["inputs"], b["inputs"])  # a pure function of the index: resume is exact
        assert int(b["inputs"].min()) >= 0 and int(b["inputs"].max()) <= 255
        inner = (a["inputs"] > 10) & (a["inputs"] < 245)  # away from the clamp at the ends
        moved.append((b["inputs"] - a["inputs"])[inner].double())
    moved = torch.cat(moved)
    assert abs(float(moved.mean())) < 0.05
    assert 1.9 < float(moved.std()) < 2.1  # N(0, 2) rounded: std sqrt(4 + 1/12) = 2.02


def test_input_noise_is_checked_where_it_is_set():
    from wavegen.config import load_config

    for bad in ("-1", "100"):
        with pytest.raises(WavegenError, match=r"--set data.input_noise=.*must be in \[0, 64\]"):
            load_config(None, ["data.input_noise=" + bad])
    with pytest.raises(WavegenError, match="data.input_noise"):
        load_config(None, ["data.input_noise=2", "model.output=mol"])
    assert load_config(None, ["data.input_noise=1.5"]).data.input_noise == 1.5
