"""Self-describing checkpoints.

A checkpoint is a folder::

    model.safetensors   inference weights (the EMA weights when training keeps them)
    config.json         the whole resolved config, text-format version, sample rate, tick length, step,
                        style names, metrics (and, with velocity channels, the default velocity):
                        enough to rebuild the model with nothing else
    state/              training state for an exact resume (raw weights, optimizer, scheduler, counters)

Loading for generation reads only safetensors and JSON: nothing is unpickled. Writes are atomic: the
folder is written aside and renamed into place, so a crash never leaves a broken checkpoint.

Every kind of model (config.json's "kind": "wavenet" when absent, or "lstm-composer") is read by one
loader, `read`, which checks what all of them share: readable JSON, the checkpoint version, the 88-key
text format version, the kind, and weights that load into the model its caller builds. `load` is that
loader for the WaveNet; the LSTM composer calls `read` with a builder of its own.
A run folder holds `checkpoints/step-NNNNNNNN/` (the last few) and `best/` (the best validation loss).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

import torch
from safetensors.torch import load_file, save_file

from wavegen.config import RunConfig, from_record
from wavegen.data.conditioning import DEFAULT_VELOCITY
from wavegen.errors import WavegenError
from wavegen.files import usual_permissions
from wavegen.nn.model import WaveNet
from wavegen.notes.text import FORMAT_VERSION

CHECKPOINT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
STATE = "state"


class Kind(NamedTuple):
    name: str  # for messages: "a WaveNet"
    config: str  # the config kind its record holds (wavegen.config.KINDS)
    use: str  # the command that uses it


WAVENET = "wavenet"
KINDS = {
    WAVENET: Kind("a WaveNet", "wavenet", "`wavegen generate --checkpoint`"),
    "lstm-composer": Kind("an LSTM composer", "composer", "`wavegen compose --model`"),
}

M = TypeVar("M", bound=torch.nn.Module)


@dataclass
class Loaded(Generic[M]):
    model: M
    config: RunConfig
    meta: dict[str, Any]  # everything in config.json
    path: Path

    @property
    def sample_rate_hz(self) -> int:
        return int(self.meta["sample_rate_hz"])

    @property
    def tick_ms(self) -> float:
        return float(self.meta["tick_ms"])

    @property
    def samples_per_tick(self) -> int:
        return int(self.meta["samples_per_tick"])

    @property
    def styles(self) -> list[str]:
        return list(self.meta.get("styles", []))

    @property
    def timbres(self) -> list[str]:
        """The harpsichords (SoundFont timbres, by name) the model learned to play, [] for a model of one."""
        return list(self.meta.get("timbres", []))

    def timbre_played(self, timbre: str | None = None) -> str | None:
        """The name of the harpsichord a take of this model imitates: `timbre` (--timbre), else the model's
        first timbre, else its dataset's SoundFont when that is a named timbre (FluidR3_GM.sf2 -> fluidr3);
        None when it is none of those (the denoiser's whistle limit then takes the most lenient)."""
        if timbre is not None:
            return timbre
        if self.timbres:
            return self.timbres[0]
        from wavegen.notes.render import TIMBRES

        soundfont = str((self.meta.get("dataset") or {}).get("soundfont") or "")
        return next((name for name, where in TIMBRES.items() if soundfont and Path(str(where())).name == soundfont),
                    None)

    @property
    def temperature(self) -> float:
        """The sampling temperature the model was shipped with (1 unless its card says otherwise)."""
        return float(self.meta.get("sampling_temperature", 1.0))

    @property
    def min_p(self) -> float:
        """The min-p cut the model was shipped with (0, none, unless its card says otherwise)."""
        return float(self.meta.get("sampling_min_p", 0.0))

    # what a sketch, a dataset or a composer must share with the model: one home for these checks

    def check_ticks(self, tick_ms: float, what: str, sample_rate_hz: int | None = None) -> None:
        """`what` (a sketch file, a dataset, a composer) must have the model's tick length (and, for a
        dataset, its sample rate): the conditioning is per tick, so another tick length plays wrong notes."""
        if tick_ms != self.tick_ms:
            raise WavegenError(f"{what}: ticks of {tick_ms:g} ms, but {self.path.name} was trained on "
                               f"{self.tick_ms:g} ms ticks; re-encode it with --tick-ms {self.tick_ms:g}")
        if sample_rate_hz is not None and sample_rate_hz != self.sample_rate_hz:
            raise WavegenError(f"{what}: {sample_rate_hz} Hz audio, but {self.path.name} was trained at "
                               f"{self.sample_rate_hz} Hz")

    def style_index(self, style: str | None, header_style: str | None = None,
                    warn: Callable[[str], None] | None = None) -> int | None:
        """The model's id of `style` (an error if it never learned it); without one, the id of the
        sketch header's style when the model knows it; else None (the model's first style), and when the
        header names a style a model with styles does not know, warn(message) says so."""
        if style is not None:
            if style not in self.styles:
                raise WavegenError(f"--style {style}: the model knows the styles: {', '.join(self.styles) or 'none'}")
            return self.styles.index(style)
        if header_style in self.styles:
            return self.styles.index(header_style)
        if header_style and self.styles and warn:
            warn(f"the sketch's style {header_style!r} is not one {self.path.name} knows ({', '.join(self.styles)}): "
                 f"it plays {self.styles[0]!r}; choose one with --style")
        return None

    def timbre_index(self, timbre: str | None) -> int | None:
        """The model's id of `timbre` (an error if it never learned it); None gives None: the model's first
        timbre (or, for a model of one, the only one it has)."""
        if timbre is None:
            return None
        if timbre not in self.timbres:
            if not self.timbres:
                sf = (self.meta.get("dataset") or {}).get("soundfont") or "one SoundFont"
                raise WavegenError(f"--timbre {timbre}: {self.path.name} learned one harpsichord ({sf}), not several; "
                                   "leave --timbre out")
            raise WavegenError(f"--timbre {timbre}: {self.path.name} plays the timbres: {', '.join(self.timbres)}")
        return self.timbres.index(timbre)

    def sampling(self, temperature: float | None = None, min_p: float | None = None) -> dict[str, float]:
        """temperature and min_p: those given, else the model's own (see `check_sampling`)."""
        t = self.temperature if temperature is None else temperature
        p = self.min_p if min_p is None else min_p
        check_sampling(t, p)
        return {"temperature": t, "min_p": p}


def check_sampling(temperature: float, min_p: float) -> None:
    """The one check of how to sample, for every engine alike: a finite temperature of 0 or more (0 =
    greedy) and min_p in [0, 1). A NaN would otherwise play full-scale DC on one engine and crash the other."""
    if not 0.0 <= temperature < float("inf"):
        raise WavegenError(f"--temperature {temperature:g}: must be a finite number, 0 or more (0 = greedy)")
    if not 0.0 <= min_p < 1.0:
        raise WavegenError(f"--min-p {min_p:g}: must be at least 0 and below 1 (0 turns it off)")


def _cpu_contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def save(path: str | os.PathLike, *, weights: dict[str, torch.Tensor], config: RunConfig, meta: dict[str, Any],
         train_state: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint folder atomically (aside, then rename). Returns its path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        save_file(_cpu_contiguous(weights), str(tmp / WEIGHTS))
        record = {
            "checkpoint_version": CHECKPOINT_VERSION,
            "text_format_version": FORMAT_VERSION,
            **meta,
            "config": config.to_dict(),
        }
        (tmp / CONFIG).write_text(json.dumps(record, indent=1) + "\n")
        if train_state is not None:
            train_state = dict(train_state)
            (tmp / STATE).mkdir()
            save_file(_cpu_contiguous(train_state.pop("raw_weights")), str(tmp / STATE / "raw.safetensors"))
            if "ema" in train_state:
                save_file(_cpu_contiguous(train_state.pop("ema")), str(tmp / STATE / "ema.safetensors"))
            torch.save(train_state, tmp / STATE / "trainer.pt")
        # verify before it replaces anything: the weights read back
        load_file(str(tmp / WEIGHTS))
        for q in [tmp, *tmp.rglob("*")]:  # mkdtemp makes 0700
            usual_permissions(q)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _first_line(e: BaseException) -> str:
    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    return lines[0] if lines else type(e).__name__


def load_train_state(path: Path) -> dict[str, Any]:
    """A checkpoint's training state (`state/`), read and checked: any broken or foreign file is a one-line
    WavegenError naming it. trainer.pt is unpickled with torch's weights_only loader, which refuses code."""
    state_dir = path / STATE
    trainer = state_dir / "trainer.pt"
    try:
        state = torch.load(trainer, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused an object: not something wavegen wrote
        raise WavegenError(f"{trainer}: not a wavegen checkpoint, refusing to unpickle it") from None
    except (OSError, RuntimeError, EOFError, ValueError) as e:  # missing or truncated
        raise WavegenError(f"{trainer}: unreadable ({_first_line(e)})") from None
    if not isinstance(state, dict) or not {"step", "optimizer", "scheduler"} <= state.keys():
        raise WavegenError(f"{trainer}: not a wavegen training state")
    for key, name in (("raw_weights", "raw.safetensors"), ("ema", "ema.safetensors")):
        file = state_dir / name
        if key == "ema" and not file.exists():
            continue
        try:
            state[key] = load_file(str(file))
        except Exception as e:  # safetensors' own error type for a truncated file, OSError for a missing one
            raise WavegenError(f"{file}: unreadable ({_first_line(e)})") from None
    return state


def mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str:
    """How `found` weights differ from a model's state dict, in a few words ('' when they fit)."""
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    shape = [k for k in expected if k in found and tuple(expected[k].shape) != tuple(found[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing, e.g. {missing[0]}")
    if extra:
        parts.append(f"{len(extra)} unexpected, e.g. {extra[0]}")
    if shape:
        k = shape[0]
        parts.append(f"{len(shape)} of another shape, e.g. {k}: {list(found[k].shape)} in the file, "
                     f"{list(expected[k].shape)} in the model")
    return "; ".join(parts)


def clean_partial(folder: Path) -> list[str]:
    """Undo what a crash inside `save` left in `folder`: a `.NAME.old` whose NAME is gone goes back
    into place (the crash fell between the two renames); other `.NAME.*.tmp` and `.NAME.old` folders
    are removed. Returns what was done, for a notice."""
    done = []
    if not folder.is_dir():
        return done
    for p in sorted(folder.iterdir()):
        if not (p.is_dir() and p.name.startswith(".")):
            continue
        if p.name.endswith(".old") and not (folder / p.name[1:-4]).exists():
            os.replace(p, folder / p.name[1:-4])
            done.append(f"restored {folder / p.name[1:-4]}")
        elif p.name.endswith((".tmp", ".old")):
            shutil.rmtree(p, ignore_errors=True)
            done.append(f"removed {p}")
    return done


def step_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    ckpts = run_dir / "checkpoints"
    if not ckpts.is_dir():
        return []
    found = [p for p in ckpts.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / CONFIG).is_file()]
    return sorted(found, key=lambda p: p.name)


MODELS_DIR = Path(__file__).parent.parent / "models"  # models shipped with wavegen, loaded by name
DEFAULT_MODEL = "harpsichord-cpu"


def shipped_models() -> list[str]:
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / WEIGHTS).is_file() and (p / CONFIG).is_file())


def resolve(path: str | os.PathLike | None = None) -> Path:
    """A shipped model's name (None: the default model), a checkpoint folder, or a run folder (its best
    checkpoint, else its latest)."""
    if path is None:
        if DEFAULT_MODEL not in shipped_models():
            raise WavegenError(f"no default model ({DEFAULT_MODEL}) is installed; give --checkpoint PATH")
        return MODELS_DIR / DEFAULT_MODEL
    p = Path(path)
    if str(path) in shipped_models() and not p.exists():
        return MODELS_DIR / str(path)
    if (p / WEIGHTS).is_file() and (p / CONFIG).is_file():
        return p
    if (p / "best" / WEIGHTS).is_file():
        return p / "best"
    steps = step_dirs(p)
    if steps:
        return steps[-1]
    if not p.exists():
        names = ", ".join(shipped_models()) or "none installed"
        raise WavegenError(f"{p}: no such checkpoint (shipped models: {names})")
    raise WavegenError(f"{p}: not a checkpoint (no {WEIGHTS} and {CONFIG}) nor a run folder with checkpoints")


def read(path: str | os.PathLike | None, kind: str, build: Callable[[RunConfig, dict[str, Any]], M],
         device: str | torch.device = "cpu") -> Loaded[M]:
    """Check a checkpoint (see `resolve`) of this kind and load its weights into `build(config, meta)`:
    safetensors and JSON only. Any failed check is a one-line WavegenError naming the checkpoint."""
    p = resolve(path)
    try:
        meta = json.loads((p / CONFIG).read_text())
    except (OSError, ValueError) as e:
        raise WavegenError(f"{p / CONFIG}: unreadable ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise WavegenError(f"{p / CONFIG}: not a checkpoint record (no config)")
    if meta.get("checkpoint_version") != CHECKPOINT_VERSION:
        raise WavegenError(f"{p}: checkpoint version {meta.get('checkpoint_version')} is not {CHECKPOINT_VERSION}; "
                           "this wavegen cannot read it")
    if meta.get("text_format_version") != FORMAT_VERSION:
        raise WavegenError(
            f"{p}: made for 88-key text format version {meta.get('text_format_version')}, "
            f"this wavegen reads version {FORMAT_VERSION}"
        )
    found = meta.get("kind", WAVENET)
    if found != kind:
        other = KINDS.get(found)
        what = f"{other.name} checkpoint" if other else f"a {found!r} checkpoint"
        hint = f" (use it with {other.use})" if other else ""
        raise WavegenError(f"{p}: {what}, not {KINDS[kind].name}{hint}")
    config = from_record(meta["config"], str(p / CONFIG), kind=KINDS[kind].config)
    model = build(config, meta)
    try:
        weights = load_file(str(p / WEIGHTS), device=str(device))
    except Exception as e:  # a truncated or missing file: safetensors' own error type
        raise WavegenError(f"{p / WEIGHTS}: cannot load these weights ({_first_line(e)})") from None
    wrong = mismatch(model.state_dict(), weights)
    if wrong:
        raise WavegenError(f"{p / WEIGHTS}: cannot load these weights into the model its config describes ({wrong})")
    model.load_state_dict(weights)
    return Loaded(model.to(device).eval(), config, meta, p)


def load(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> Loaded[WaveNet]:
    """Rebuild the WaveNet from a checkpoint (see `resolve`): safetensors and JSON only."""
    return read(path, WAVENET, lambda config, meta: WaveNet(config.model, int(meta["samples_per_tick"]),
                                                            int(meta.get("default_velocity", DEFAULT_VELOCITY))),
                device)
