"""Aligned random crops for training: audio with its conditioning, cut at the same sample.

Crop i is a pure function of (seed, i): any worker, process or machine that asks for index i gets the
same crop. So the training position is just the step number, and an exact resume needs no saved
sampler. A crop starts at a uniformly random sample of a piece chosen with probability proportional to
its length (times its style's weight, given `weights`), so crops start neither only at note onsets nor
only in silence.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch

from wavegen.audio import MU_LAW_CLASSES, emphasize, from_int16, mu_law_encode
from wavegen.data.conditioning import (
    DEFAULT_VELOCITY,
    crop_ticks,
    crop_window,
    excitation,
    model_tick_window,
    sounding_and_onsets,
)
from wavegen.data.dataset import Dataset, Items
from wavegen.errors import WavegenError
from wavegen.notes.text import N_KEYS

PIECE_CACHE_BYTES = 64 << 20  # a loader worker's rolls (as bits; 83 h of 50 ms ticks) and velocities, most recent


class CropDataset(torch.utils.data.Dataset):
    """Index -> dict of tensors for one crop of `crop_samples` predicted samples:

    inputs (T,) int64 codes or float32 audio; targets (T,) the next samples; ticks (3*88, n_ticks) and
    offset (): the tick window and where the targets start in it; exc (2*88, T); style (); timbre ();
    item (). A style id is the position of the item's style in `styles` and a timbre id its timbre's in
    `timbres` (0 for one not there); the shuffled-notes crops take the style with the notes and keep the
    timbre of the audio.
    With velocity, ticks is (4*88, n_ticks): the velocity channels after the notes' (the item's velocity
    file, or default_velocity for every note of an item without one).
    """

    def __init__(self, ds: Dataset, split: str, *, crop_samples: int, margin_ticks: int, output: str,
                 n_classes: int = MU_LAW_CLASSES, seed: int = 0, styles: Sequence[str] = (),
                 timbres: Sequence[str] = (),
                 excitation: bool = True, pre_emphasis: float = 0.0, corpus: str | None = None,
                 velocity: bool = False, default_velocity: int = DEFAULT_VELOCITY, timbre: str | None = None,
                 weights: Mapping[str, float] | None = None, excitation_partials: int = 1,
                 input_noise: float = 0.0):
        self.ds, self.crop, self.margin, self.output = ds, crop_samples, margin_ticks, output
        self.input_noise = input_noise
        self.velocity, self.default_velocity = velocity, default_velocity
        self.pre_emphasis = pre_emphasis
        self.n_classes, self.seed, self.use_excitation = n_classes, seed, excitation
        self.excitation_partials = excitation_partials
        numbers = ds.select(split, style=corpus, timbre=timbre, min_samples=crop_samples + 1)
        self.items: Items = ds.items_of(numbers)  # each parsed when a crop first needs it
        if not self.items:
            raise WavegenError(
                f"{ds.root}: no {split} pieces{f' of {corpus}' if corpus else ''} longer than a crop of {crop_samples} samples; "
                "build more data or lower data.crop_samples"
            )
        self.style_ids = {s: i for i, s in enumerate(styles)}
        self.n_samples = ds.index.n_samples[numbers]  # (n_items,) int64, items[k].n_samples
        style_id = np.array([self.style_ids.get(s, 0) for s in ds.index.styles], dtype=np.int64)
        self.style_of = style_id[ds.index.style[numbers]]  # (n_items,) items[k]'s style id
        timbre_ids = {t: i for i, t in enumerate(timbres)}
        timbre_id = np.array([timbre_ids.get(t, 0) for t in ds.index.timbres], dtype=np.int64)
        self.timbre_of = timbre_id[ds.index.timbre[numbers]]  # (n_items,) items[k]'s timbre id
        spans = (self.n_samples - crop_samples - 1).astype(np.float64)
        if weights:
            have = [ds.index.styles[c] for c in np.unique(ds.index.style[numbers])]
            unknown = sorted(set(weights) - set(have))
            if unknown:
                raise WavegenError(f"{ds.root}: data.weights names {', '.join(unknown)}, but its {split} pieces "
                                   f"have the styles {', '.join(have)}")
            per_style = np.array([weights.get(s, 1.0) for s in ds.index.styles], dtype=np.float64)
            spans = spans * per_style[ds.index.style[numbers]]
            if not spans.sum() > 0:
                raise WavegenError(f"{ds.root}: data.weights leaves no {split} piece to crop from")
        self.cum = np.cumsum(spans) / spans.sum()
        self.n_ticks = crop_ticks(crop_samples, ds.samples_per_tick, margin_ticks)

    def __len__(self) -> int:
        return 2**62  # indices are drawn by the sampler; every index is a valid crop

    def _piece(self, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(roll, velocities or None) of item k, cached per process: the rolls as bits, the most recently
        used up to PIECE_CACHE_BYTES (the timbres of one piece share their text, so one entry). A crop
        computes its features from its own ticks (`model_tick_window`), so a piece costs only its
        parse, once per worker while the rolls fit: 22.6 h of 50 ms ticks are 18 MB of bits."""
        cache = self.__dict__.setdefault("_cache", {})
        item = self.items[k]
        key = (item.text_path, item.velocity_path)
        if key in cache:
            cache[key] = cache.pop(key)  # the most recent last
        else:
            roll = self.ds.text(item).roll
            vel = self.ds.velocity(item) if self.velocity else None
            entry = (np.packbits(roll, axis=1), roll.shape[0], vel)
            size = entry[0].nbytes + (vel.nbytes if vel is not None else 0)
            held = self.__dict__.get("_cache_bytes", 0) + size
            while cache and held > PIECE_CACHE_BYTES:
                old_bits, _, old_vel = cache.pop(next(iter(cache)))
                held -= old_bits.nbytes + (old_vel.nbytes if old_vel is not None else 0)
            self._cache_bytes = held
            cache[key] = entry
        bits, n_ticks, vel = cache[key]
        return np.unpackbits(bits, axis=1, count=N_KEYS).astype(bool)[:n_ticks], vel

    def locate(self, index: int) -> tuple[int, int]:
        """(item number, first sample of the crop's inputs) for crop `index`."""
        rng = np.random.default_rng([self.seed, index])
        k = int(np.searchsorted(self.cum, rng.random(), side="right"))
        k = min(k, len(self.items) - 1)
        start = int(rng.integers(0, int(self.n_samples[k]) - self.crop - 1 + 1))
        return k, start

    def crop_at(self, k: int, start: int, cond_from: int | None = None) -> dict[str, torch.Tensor]:
        """The crop of item k at `start`; cond_from: take the conditioning from another item instead
        (same sample positions), for the shuffled-notes gap."""
        T, spt = self.crop, self.ds.samples_per_tick
        source = self.ds.audio(self.items[k])
        pcm = np.asarray(source[start : start + T + 1])
        audio = from_int16(pcm)
        if self.output == "mulaw":
            if self.pre_emphasis:  # what the network hears and predicts (see audio.emphasize)
                before = float(from_int16(np.asarray(source[start - 1 : start]))[0]) if start > 0 else 0.0
                audio = emphasize(audio, self.pre_emphasis, before)
            codes = torch.from_numpy(mu_law_encode(audio, self.n_classes))
            inputs, targets = codes[:-1], codes[1:]
        else:
            # 16-bit grid in [-1, 1]: pcm / 32767.5 after shifting by half a step
            grid = torch.from_numpy((pcm.astype(np.float64) + 0.5) / 32767.5).float()
            inputs, targets = grid[:-1], grid[1:]
        c = k if cond_from is None else cond_from
        roll, vel = self._piece(c)
        first, offset = crop_window(start + 1, spt, self.margin)  # targets are samples start+1 ...
        ticks = model_tick_window(roll, vel, self.default_velocity, self.velocity, first, self.n_ticks)
        if self.use_excitation:  # the onsets of the ticks the targets fall in
            lo = min(max((start + 1) // spt, 0), roll.shape[0] + 1)
            hi = max(min((start + T) // spt + 1, roll.shape[0] + 1), lo)
            sounding, _, last_onset = sounding_and_onsets(roll, lo, hi)
            exc = excitation(roll, start + 1, T, spt, self.ds.sample_rate_hz, (sounding, last_onset),
                             self.excitation_partials, onsets_from=lo)
        else:
            exc = np.zeros((0, T), dtype=np.float32)
        style = int(self.style_of[c])
        return {
            "inputs": inputs, "targets": targets, "ticks": torch.from_numpy(ticks),
            "offset": torch.tensor(offset), "exc": torch.from_numpy(exc),
            "style": torch.tensor(style), "timbre": torch.tensor(int(self.timbre_of[k])), "item": torch.tensor(k),
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        crop = self.crop_at(*self.locate(index))
        if self.input_noise > 0 and self.output == "mulaw":
            crop["inputs"] = noisy_codes(crop["inputs"], self.input_noise, self.n_classes,
                                         np.random.default_rng([self.seed, index, 1]))
        return crop


def noisy_codes(codes: torch.Tensor, std: float, n_classes: int, rng: np.random.Generator) -> torch.Tensor:
    """Mu-law codes each moved by Gaussian noise of `std` levels, rounded, kept within [0, n_classes). In
    training the inputs get it and the targets do not: a network that has heard inputs a few levels off
    the truth (as its own drawn samples are when it plays) learns to steer back toward the clean signal
    rather than follow its errors (LPCNet trains with noise injected into its inputs for this reason)."""
    step = np.rint(rng.standard_normal(codes.shape[0]) * std).astype(np.int64)
    return (codes + torch.from_numpy(step)).clamp_(0, n_classes - 1)


class StepSampler(torch.utils.data.Sampler):
    """Batches of crop indices for steps `first_step`, `first_step + 1`, ...: step s, micro-batch m,
    rank r takes indices ((s * accum + m) * world + r) * batch + j. Each rank reads its own share."""

    def __init__(self, first_step: int, total_steps: int, batch: int, accum: int, rank: int, world: int):
        self.first, self.total = first_step, total_steps
        self.batch, self.accum, self.rank, self.world = batch, accum, rank, world

    def __len__(self) -> int:
        return max(0, self.total - self.first) * self.accum

    def __iter__(self) -> Iterator[list[int]]:
        for s in range(self.first, self.total):
            for m in range(self.accum):
                base = ((s * self.accum + m) * self.world + self.rank) * self.batch
                yield list(range(base, base + self.batch))


def validation_batch(crops: CropDataset, n: int, seed: int = 1234, shuffled: bool = False) -> dict[str, torch.Tensor]:
    """n fixed crops, round-robin over pieces. shuffled: each crop conditioned on the notes of the
    next crop's piece (same positions), for the shuffled-notes gap."""
    rng = np.random.default_rng(seed)
    places = []
    for i in range(n):
        k = i % len(crops.items)
        places.append((k, int(rng.integers(0, int(crops.n_samples[k]) - crops.crop - 1 + 1))))
    out = []
    for i, (k, start) in enumerate(places):
        other = places[(i + 1) % n][0] if shuffled else None
        if shuffled and other == k and len(crops.items) > 1:
            other = (k + 1) % len(crops.items)
        out.append(crops.crop_at(k, start, cond_from=other))
    return torch.utils.data.default_collate(out)
