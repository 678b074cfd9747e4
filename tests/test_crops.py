"""Training crops: aligned, deterministic by index, spread over the music, shared out by rank."""

from __future__ import annotations

import numpy as np
import torch

from wavegen.audio import mu_law_encode
from wavegen.data import dataset
from wavegen.data.conditioning import excitation, tick_features
from wavegen.data.crops import CropDataset, StepSampler, validation_batch


def crops(ds_dir, **kw) -> CropDataset:
    args = dict(crop_samples=1600, margin_ticks=2, output="mulaw", seed=0)
    args.update(kw)
    return CropDataset(dataset.load(ds_dir), "train", **args)


def test_crop_is_aligned_audio_with_its_conditioning(tiny_dataset):
    c = crops(tiny_dataset)
    k, start = c.locate(7)
    crop = c[7]
    ds = c.ds
    pcm = np.asarray(ds.audio(c.items[k])[start : start + 1601])
    codes = mu_law_encode(pcm / 32767.0)
    assert torch.equal(crop["inputs"], torch.from_numpy(codes[:-1]))
    assert torch.equal(crop["targets"], torch.from_numpy(codes[1:]))
    roll = ds.text(c.items[k]).roll
    # the tick window: the target sample start + 1 sits at `offset` within it
    spt = ds.samples_per_tick
    first = (start + 1 - int(crop["offset"])) // spt
    assert (start + 1 - int(crop["offset"])) % spt == 0
    feats = tick_features(roll)
    for j in range(crop["ticks"].shape[1]):
        t = first + j
        want = feats[:, t] if 0 <= t < feats.shape[1] else np.zeros(feats.shape[0])
        assert np.array_equal(crop["ticks"][:, j].numpy(), want)
    assert np.array_equal(crop["exc"].numpy(), excitation(roll, start + 1, 1600, spt, 16_000))


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
