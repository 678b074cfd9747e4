"""Held-out measures of a WaveNet on fixed crops: validation loss and the shuffled-notes gap.

One home for what training (every `eval_every` steps) and `wavegen evaluate` both measure:

- the validation loss in bits per sample on `n` fixed crops of held-out pieces;
- the same crops conditioned on the notes of another piece: the shuffled-notes gap is that loss minus
  the true one. A model that ignores its notes has a gap near 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from wavegen.config import ModelConfig
from wavegen.data.conditioning import DEFAULT_VELOCITY
from wavegen.data.crops import CropDataset, validation_batch
from wavegen.data.dataset import Dataset
from wavegen.nn.model import WaveNet, loss_fn

LN2 = math.log(2.0)
Batch = dict[str, torch.Tensor]


def crops(ds: Dataset, split: str, model: ModelConfig, crop_samples: int, *, styles: Sequence[str] = (),
          timbres: Sequence[str] = (), seed: int = 0, corpus: str | None = None,
          default_velocity: int = DEFAULT_VELOCITY, timbre: str | None = None,
          weights: Mapping[str, float] | None = None, input_noise: float = 0.0) -> CropDataset:
    """The crops of `split` (only its pieces of `corpus`, and its items of `timbre`, given them) in the shape
    a model of config `model` trains on (with velocity channels when `model.velocity` is true:
    default_velocity for a piece without); style and timbre ids by their place in `styles`, `timbres`;
    weights: a share per style, input_noise: levels of noise on the inputs (see CropDataset; training crops
    only, so held-out crops stay comparable)."""
    return CropDataset(ds, split, crop_samples=crop_samples, margin_ticks=model.cond_lookahead_ticks,
                       output=model.output, n_classes=model.n_classes, seed=seed, styles=styles, timbres=timbres,
                       excitation=model.excitation and model.local_conditioning, pre_emphasis=model.pre_emphasis,
                       corpus=corpus, velocity=model.uses_velocity(),
                       default_velocity=default_velocity, timbre=timbre, weights=weights,
                       excitation_partials=model.excitation_partials, input_noise=input_noise)


def to_device(batch: Batch, device: torch.device | str) -> Batch:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def forward(model: torch.nn.Module, batch: Batch, cfg: ModelConfig) -> torch.Tensor:
    """The model's output on a batch of crops (see CropDataset for the keys), with the style and timbre
    ids where the model config `cfg` has them."""
    return model(batch["inputs"], batch["ticks"], batch["offset"],
                 batch["exc"] if batch["exc"].shape[1] else None,
                 batch["style"] if cfg.n_styles else None, batch["timbre"] if cfg.n_timbres else None)


@torch.no_grad()
def validation_loss(model: WaveNet, batch: Batch, chunk: int = 4) -> float:
    """Mean loss in bits per sample over a fixed batch of crops (fp32, in chunks to bound memory)."""
    total, n = 0.0, batch["inputs"].shape[0]
    device = next(model.parameters()).device
    for i in range(0, n, chunk):
        part = to_device({k: v[i : i + chunk] for k, v in batch.items()}, device)
        out = forward(model, part, model.cfg)
        total += loss_fn(model.cfg.output, out, part["targets"]).item() * part["inputs"].shape[0]
    return total / n / LN2


@dataclass
class HeldOut:
    """n fixed crops of held-out pieces, with their true notes and with another piece's notes."""

    true: Batch
    shuffled: Batch

    @classmethod
    def of(cls, source: CropDataset, n: int) -> HeldOut:
        return cls(validation_batch(source, n), validation_batch(source, n, shuffled=True))

    def measure(self, model: WaveNet) -> dict[str, float]:
        """valid_bits, shuffled_bits and gap_bits (shuffled minus true), in bits per sample."""
        was_training = model.training
        model.eval()
        true_bits = validation_loss(model, self.true)
        shuffled_bits = validation_loss(model, self.shuffled)
        model.train(was_training)
        return {"valid_bits": true_bits, "shuffled_bits": shuffled_bits, "gap_bits": shuffled_bits - true_bits}
