"""The WaveNet as a training task: `WaveNetTask` for the loop in wavegen.train.loop, and `train_wavenet`.

Items are crops of `data.crop_samples` samples with their conditioning (data/crops.py); the loss is the
output's (mu-law softmax or mixture of logistics) in nats per sample. `model.velocity` is decided here,
from the dataset, before anything is built or recorded ("auto": velocity channels when every training
piece has velocities), and a model with them records its default velocity, the median of the training
data's (`default_velocity`). Each evaluation measures the
held-out validation bits per sample and the shuffled-notes gap (nn/heldout.py), and plays a short
clip of the first validation piece into `samples/`. With `model.n_timbres`, the timbre ids are the
training items' timbres (the SoundFonts the dataset was rendered with, by name), recorded with the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wavegen.audio import write_audio
from wavegen.config import ModelConfig, WaveNetConfig, from_record, parse_weights
from wavegen.data import dataset
from wavegen.data.conditioning import DEFAULT_VELOCITY
from wavegen.data.crops import CropDataset
from wavegen.errors import WavegenError
from wavegen.nn import checkpoint, heldout
from wavegen.nn.heldout import HeldOut
from wavegen.nn.model import WaveNet, finer_mu_law, loss_fn
from wavegen.synth.generate import play
from wavegen.train.loop import RUN_CONFIG, TrainResult, differences, listed, train


class WaveNetTask:
    """Everything the loop needs to know about the WaveNet: model, crops, loss, evaluation, records."""

    rate_unit = "samples"

    def __init__(self, cfg: WaveNetConfig, ds: dataset.Dataset):
        cfg = dataclasses.replace(cfg, model=resolve_velocity(cfg.model, ds))
        self.cfg, self.ds = cfg, ds
        mc = cfg.model
        self.default_velocity = median_velocity(ds) if mc.uses_velocity() else DEFAULT_VELOCITY
        self.styles: list[str] = []
        if mc.n_styles:
            self.styles = ds.styles("train")
            if len(self.styles) > mc.n_styles:
                raise WavegenError(f"{ds.root}: {len(self.styles)} styles ({', '.join(self.styles)}) but "
                                   f"model.n_styles = {mc.n_styles}")
        self.timbres: list[str] = []
        if mc.n_timbres:
            self.timbres = ds.timbres("train")
            if "" in self.timbres:
                raise WavegenError(f"{ds.root}: items without a timbre (recordings, or built before timbres); "
                                   "set model.n_timbres = 0, or rebuild it with `wavegen data build --soundfont ...`")
            if len(self.timbres) > mc.n_timbres:
                raise WavegenError(f"{ds.root}: {len(self.timbres)} timbres ({', '.join(self.timbres)}) but "
                                   f"model.n_timbres = {mc.n_timbres}")
        self.held_out: HeldOut | None = None
        self.sketch_item, self.sketch_timbre = None, 0

    def meta(self) -> dict[str, Any]:
        ds = self.ds
        velocity = {"default_velocity": self.default_velocity} if self.cfg.model.uses_velocity() else {}
        return {"sample_rate_hz": ds.sample_rate_hz, "tick_ms": ds.tick_ms, "samples_per_tick": ds.samples_per_tick,
                "styles": self.styles, **({"timbres": self.timbres} if self.timbres else {}), **velocity,
                "dataset": self.ds.provenance()}

    def check_resume(self, run_dir: Path, saved: dict[str, Any]) -> None:
        if saved.get("kind", checkpoint.WAVENET) != checkpoint.WAVENET:
            raise WavegenError(f"{run_dir}: a {saved['kind']} run, not a WaveNet's; train into a new --out folder")
        old = from_record(saved["config"], str(run_dir / RUN_CONFIG), kind="wavenet")
        old = dataclasses.replace(old, model=resolve_velocity(old.model, self.ds))  # a record from before: "auto"
        changed = differences(old, self.cfg, ("model",))
        if changed:
            raise WavegenError(f"{run_dir}: this run was started with another model config ({listed(changed)}); "
                               "resume it with the same config, or train into a new --out folder")
        ds = self.ds
        if (saved["sample_rate_hz"], saved["tick_ms"]) != (ds.sample_rate_hz, ds.tick_ms):
            raise WavegenError(
                f"{run_dir}: trained at {saved['sample_rate_hz']} Hz and {saved['tick_ms']} ms ticks, but the "
                f"dataset {ds.root} has {ds.sample_rate_hz} Hz and {ds.tick_ms} ms"
            )

    def build_model(self) -> WaveNet:
        return WaveNet(self.cfg.model, self.ds.samples_per_tick, self.default_velocity)

    def describe(self, model: torch.nn.Module) -> str:
        rf = self.cfg.model.receptive_field()
        n_params = sum(p.numel() for p in model.parameters())
        velocity = (f"; velocity channels (a note without one: {self.default_velocity}, the training data's median)"
                    if self.cfg.model.uses_velocity() else "")
        return (f"model: {n_params:,} parameters, receptive field {rf} samples "
                f"({rf / self.ds.sample_rate_hz * 1000:.1f} ms){velocity}")

    def init_from(self, model: torch.nn.Module, source: str) -> str:
        """train.init: the inference (EMA) weights of a WaveNet checkpoint, which must fit this model (same
        channels, layers, output) and have been trained at this dataset's sample rate and tick length. A
        source without timbres may start a run with them: their embeddings start at zero, so the run
        starts playing every timbre as the source played its one, and learns them apart. A mu-law source of
        fewer levels than this run's model.n_classes starts it predicting what the source did (finer_mu_law)."""
        loaded = checkpoint.load(source)
        ds = self.ds
        loaded.check_ticks(ds.tick_ms, f"{ds.root} (train.init = {source})", ds.sample_rate_hz)
        if loaded.styles != self.styles:
            raise WavegenError(f"train.init = {source}: trained on the styles {loaded.styles or 'none (no style ids)'}, "
                               f"this run has {self.styles or 'none (no style ids)'}; set model.n_styles alike")
        weights = loaded.model.state_dict()
        if loaded.timbres and loaded.timbres != self.timbres:
            raise WavegenError(f"train.init = {source}: trained on the timbres {', '.join(loaded.timbres)}, this run "
                               f"has {', '.join(self.timbres) or 'none (model.n_timbres = 0)'}; train on the same ones")
        if not loaded.timbres and self.timbres:
            weights.update({k: torch.zeros_like(v) for k, v in model.state_dict().items()
                            if k.endswith(".timbre.weight") and k not in weights})
        was, now, recut = loaded.config.model, self.cfg.model, ""
        if was.output == now.output == "mulaw" and was.n_classes < now.n_classes:
            weights = finer_mu_law(weights, was.n_classes, now.n_classes)
            recut = f"; its {was.n_classes} mu-law levels re-cut into {now.n_classes}"
        wrong = checkpoint.mismatch(model.state_dict(), weights)
        if wrong:
            raise WavegenError(f"train.init = {source}: its weights do not fit this run's [model] ({wrong}); use "
                               f"the [model] settings in {loaded.path / checkpoint.CONFIG}")
        model.load_state_dict(weights)
        shown = loaded.path if Path(source).exists() else source  # a shipped model by its name, not its path here
        return f"{shown} (step {loaded.meta.get('step', '?')}{recut})"

    def _crops(self, split: str, seed: int, weights: dict[str, float] | None = None,
               input_noise: float = 0.0) -> CropDataset:
        return heldout.crops(self.ds, split, self.cfg.model, self.cfg.data.crop_samples, styles=self.styles,
                             timbres=self.timbres, seed=seed, default_velocity=self.default_velocity,
                             weights=weights, input_noise=input_noise)

    def train_set(self) -> torch.utils.data.Dataset:
        dc = self.cfg.data
        return self._crops("train", self.cfg.train.seed, parse_weights(dc.weights), dc.input_noise)

    def units_per_item(self) -> int:
        return self.cfg.data.crop_samples

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor],
             autocast: Callable[[], AbstractContextManager]) -> torch.Tensor:
        with autocast():
            out = heldout.forward(model, batch, self.cfg.model)
        return loss_fn(self.cfg.model.output, out, batch["targets"])  # float32

    def prepare_validation(self) -> str | None:
        dc = self.cfg.data
        try:
            vcrops = self._crops(dc.valid_split, 0)
        except WavegenError as e:
            return f"no validation: {e}"
        self.held_out = HeldOut.of(vcrops, dc.valid_crops)
        self.sketch_item, self.sketch_timbre = vcrops.items[0], int(vcrops.timbre_of[0])
        return None

    def evaluate(self, weights: dict[str, torch.Tensor], device: torch.device, step: int, run_dir: Path,
                 tb: Any) -> dict[str, float]:
        if self.held_out is None:
            return {}
        tc, sr = self.cfg.train, self.ds.sample_rate_hz
        eval_model = self.build_model()
        eval_model.load_state_dict(weights)
        eval_model.to(device).eval()
        valid = self.held_out.measure(eval_model)
        if tc.sample_seconds > 0:
            sketch = self.ds.text(self.sketch_item)
            audio = play(eval_model, int(tc.sample_seconds * sr), sample_rate_hz=sr, sketch=sketch, seed=tc.seed,
                         style=0, timbre=self.sketch_timbre, velocity=self.ds.velocity(self.sketch_item))[0]
            (run_dir / "samples").mkdir(exist_ok=True)
            write_audio(run_dir / "samples" / f"step-{step:08d}-{self.sketch_item.id}.wav", audio, sr)
            if tb is not None:
                tb.add_audio("sample", torch.from_numpy(audio)[None], step, sample_rate=sr)
        return valid


def resolve_velocity(mc: ModelConfig, ds: dataset.Dataset) -> ModelConfig:
    """`mc` with `velocity` true or false for training on `ds`: "auto" is true when every training piece has
    velocities (recordings), else false; true where no training piece has any is an error."""
    train = ds.select("train")
    have = int(ds.index.velocity[train].sum())
    if mc.velocity == "auto":
        return dataclasses.replace(mc, velocity=bool(len(train)) and have == len(train))
    if mc.velocity is True and mc.local_conditioning and not have:
        raise WavegenError(f"{ds.root}: model.velocity = true, but no training piece has velocities (only recordings "
                           "built with --pairs or --maestro do); set model.velocity = \"auto\" or false")
    return mc


MEDIAN_ITEMS = 64  # training pieces the default velocity is measured on, spread evenly (start-up stays flat)


def median_velocity(ds: dataset.Dataset) -> int:
    """The median velocity of the sounding keys and ticks of (up to MEDIAN_ITEMS of) the training pieces
    with velocities: what a note without one (88-key text) gets. DEFAULT_VELOCITY when there are none."""
    numbers = ds.select("train")
    numbers = numbers[ds.index.velocity[numbers]]
    items = ds.items_of(numbers[:: max(1, -(-len(numbers) // MEDIAN_ITEMS))])
    counts = np.zeros(128, dtype=np.int64)
    for it in items:
        counts += np.bincount(np.asarray(ds.velocity(it)).ravel(), minlength=128)[:128]
    counts[0] = 0  # silence
    if not counts.sum():
        return DEFAULT_VELOCITY
    return int(np.searchsorted(np.cumsum(counts), (counts.sum() + 1) // 2))


def train_wavenet(cfg: WaveNetConfig, data_dir: str | Path, run_dir: str | Path, **kwargs: Any) -> TrainResult:
    """Train (or resume) the WaveNet on the dataset in `data_dir` into `run_dir` (`wavegen train`).
    kwargs: those of `train` (stop_after, show_progress, log)."""
    data_dir = Path(data_dir)
    if not (data_dir / "manifest.json").is_file():
        raise WavegenError(
            f"{data_dir}: no dataset here; build one with `wavegen data build --corpus bach --out {data_dir}`"
        )
    return train(WaveNetTask(cfg, dataset.load(data_dir)), run_dir, **kwargs)
