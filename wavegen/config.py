"""Configuration: frozen dataclasses hold every default; TOML files and `--set` only override.

    [model]
    residual_channels = 64

An unknown section or key, or a value of the wrong type, is an error naming the file and the key.

Two products, two configs: `wavegen train` reads a `WaveNetConfig` ([data], [model], [train]) and
`wavegen train-composer` a `ComposerRunConfig` ([data], [composer], [train]); `load_config(...,
kind="wavenet" | "composer")`. A section of the other product, in a file or a `--set`, is an error that
says which command it belongs to, so a composer setting can never make a WaveNet run differ (nor refuse
its resume). Records written before the split hold all four sections; `from_record` drops the other
product's.
The sample rate and tick length are not here: they come from the dataset a model is trained on and
are stored in its checkpoint.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from wavegen.errors import WavegenError


@dataclass(frozen=True)
class DataConfig:
    crop_samples: int = 8000  # samples predicted per training crop (0.5 s at 16 kHz)
    batch_size: int = 4  # crops per step per process (times grad_accum)
    num_workers: int = 0  # DataLoader worker processes
    valid_crops: int = 16  # fixed validation crops, drawn from held-out pieces
    valid_split: str = "valid"
    weights: str = ""  # training crops per style, e.g. "random=8,essen=2": a piece's share is its length times its style's weight (default 1); "" = by length alone
    input_noise: float = 0.0  # mulaw: std, in mu-law levels, of noise added to training crops' inputs (not targets), so the network learns to recover from its own sampling errors; 0 = off


@dataclass(frozen=True)
class ModelConfig:
    output: str = "mulaw"  # "mulaw": 256-way softmax; "mol": discretized mixture of logistics, 16-bit
    n_classes: int = 256  # mu-law levels (output = "mulaw")
    n_mixtures: int = 10  # logistic components (output = "mol")
    kernel_size: int = 2
    layers_per_cycle: int = 10  # dilations 1, 2, 4, ..., 2**(layers_per_cycle - 1)
    cycles: int = 2
    residual_channels: int = 64
    gate_channels: int = 64  # the dilated conv makes 2 x gate_channels (tanh half, sigmoid half)
    skip_channels: int = 128
    head_channels: int = 256  # hidden width of the two-layer output head
    local_conditioning: bool = True  # condition on the 88-key text
    cond_channels: int = 64  # width of the conditioning network over ticks
    cond_lookahead_ticks: int = 2  # how far the conditioning network sees into the future
    excitation: bool = True  # sine and cosine of every sounding key's fundamental, at audio rate
    excitation_partials: int = 1  # the excitation sums each key's first N partials (amplitude 1/p, below 0.45 x the rate); 1 = the fundamental
    n_styles: int = 0  # global conditioning on a style id; 0 = none
    n_timbres: int = 0  # global conditioning on the harpsichord (a dataset's timbres); 0 = none
    pre_emphasis: float = 0.0  # mulaw: predict (x[n] - a x[n-1]) / (1 + a), played back de-emphasized; 0 = off
    velocity: str | bool = "auto"  # velocity/127 per sounding key and tick: true, false, "auto" (if all training pieces have it)

    def dilations(self) -> list[int]:
        return [2**i for i in range(self.layers_per_cycle)] * self.cycles

    def receptive_field(self) -> int:
        """Samples of input each output sees: (kernel_size - 1) * sum(dilations) + 1."""
        return (self.kernel_size - 1) * sum(self.dilations()) + 1

    def uses_velocity(self) -> bool:
        """Velocity channels in the tick features: `velocity` true (training resolves "auto" before it builds
        a model; a record from before velocities says "auto" and has none) and the notes conditioning it."""
        return self.local_conditioning and self.velocity is True


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000
    lr: float = 1e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decay from lr to lr * min_lr_ratio at `steps`
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    grad_accum: int = 1
    mixed_precision: str = "no"  # "no", "bf16", "fp16" (scales the loss; CUDA only), "auto" (bf16 where it is fast)
    ema_decay: float = 0.999  # EMA weights are what generation uses; 0 disables
    seed: int = 0
    log_every: int = 10
    eval_every: int = 500
    ckpt_every: int = 500
    keep_last: int = 2  # checkpoints kept besides the best
    sample_seconds: float = 1.0  # audio generated for a held-out sketch at each evaluation
    max_nonfinite: int = 20  # consecutive non-finite losses before the run stops
    compile: bool = False  # torch.compile the training forward (about a minute to compile; faster after)
    init: str = ""  # a new run starts from these weights: a shipped model's name, a checkpoint or a run folder


@dataclass(frozen=True)
class ComposerConfig:
    """The composer of new sketches (`wavegen train-composer`)."""

    kind: str = "markov"  # "markov": order-k chain over ticks; "lstm": character-level LSTM over the text
    order: int = 3  # markov: ticks of context
    transposed: bool = True  # learn from every transposition in the dataset, not only the originals
    embed: int = 32  # lstm: character embedding
    hidden: int = 256  # lstm: hidden units per layer
    layers: int = 2
    dropout: float = 0.1
    seq_len: int = 256  # lstm: characters per training sequence
    burn_in: int = 32  # lstm: leading characters that warm the state up and are not scored
    style_embed: int = 8  # lstm: style embedding (styles come from the text headers)


@dataclass(frozen=True)
class WaveNetConfig:
    """What `wavegen train` reads: the WaveNet's data, network and training."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    kind: ClassVar[str] = "wavenet"
    command: ClassVar[str] = "wavegen train"
    settings: ClassVar[str] = "WaveNet settings"

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ComposerRunConfig:
    """What `wavegen train-composer` reads: the composer, and for the LSTM its data and training."""

    data: DataConfig = field(default_factory=DataConfig)
    composer: ComposerConfig = field(default_factory=ComposerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    kind: ClassVar[str] = "composer"
    command: ClassVar[str] = "wavegen train-composer"
    settings: ClassVar[str] = "composer settings"

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)


RunConfig = WaveNetConfig | ComposerRunConfig
KINDS: dict[str, type[RunConfig]] = {c.kind: c for c in (WaveNetConfig, ComposerRunConfig)}

CHOICES = {
    ("model", "output"): ("mulaw", "mol"),
    ("composer", "kind"): ("markov", "lstm"),
    ("train", "mixed_precision"): ("no", "bf16", "fp16", "auto"),
}
POSITIVE = [
    ("data", "crop_samples"), ("data", "batch_size"), ("model", "kernel_size"),
    ("model", "layers_per_cycle"), ("model", "cycles"), ("model", "residual_channels"),
    ("model", "gate_channels"), ("model", "skip_channels"), ("model", "head_channels"),
    ("model", "n_classes"), ("model", "n_mixtures"), ("model", "cond_channels"), ("model", "excitation_partials"),
    ("train", "steps"), ("train", "lr"), ("train", "grad_accum"), ("train", "log_every"),
    ("train", "eval_every"), ("train", "ckpt_every"), ("train", "keep_last"), ("train", "max_nonfinite"),
    ("composer", "order"), ("composer", "embed"), ("composer", "hidden"), ("composer", "layers"),
    ("composer", "seq_len"), ("composer", "style_embed"),
]


def _sections(cls: type[RunConfig]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _product_of(section: str, cls: type[RunConfig]) -> type[RunConfig] | None:
    """The other product whose section this is, if `cls` has no such section (else None)."""
    if section in _sections(cls):
        return None
    return next((c for c in KINDS.values() if section in _sections(c)), None)


def _check_type(value: Any, kind: Any, where: str) -> Any:
    if isinstance(kind, types.UnionType):  # e.g. str | bool: the first type that takes the value
        for k in typing.get_args(kind):
            try:
                return _check_type(value, k, where)
            except WavegenError:
                pass
        names = " or ".join(k.__name__ for k in typing.get_args(kind))
        raise WavegenError(f"{where}: expected {names}, got {type(value).__name__} {value!r}")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, float) and not math.isfinite(value):
        raise WavegenError(f"{where}: expected a finite number, got {value!r}")
    if kind in (int, float, str, bool):
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return value
        raise WavegenError(f"{where}: expected {kind.__name__}, got {type(value).__name__} {value!r}")
    raise TypeError(f"unsupported config type {kind}")


def _apply(base: Any, overrides: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(type(base))
    fields = [f.name for f in dataclasses.fields(base)]
    changes = {}
    for key, value in overrides.items():
        if key not in fields:
            other = _product_of(key, type(base)) if type(base) in KINDS.values() else None
            if other is not None:
                raise WavegenError(f"{where}: [{key}] holds {other.settings}: they go in `{other.command}`'s "
                                   f"config, not `{base.command}`'s")
            raise WavegenError(f"{where}: unknown key {key!r} (known: {', '.join(fields)})")
        kind = hints[key]
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                raise WavegenError(f"{where}: [{key}] must be a table")
            changes[key] = _apply(getattr(base, key), value, f"{where} [{key}]")
        else:
            changes[key] = _check_type(value, kind, f"{where} {key}")
    return dataclasses.replace(base, **changes)


def _validate(cfg: RunConfig, where: str, origin: dict[str, str] | None = None) -> RunConfig:
    """Check the values' ranges. origin: where each 'section.key' was last set (a file, or `--set ...`),
    so that an error blames what set the value; a key not in it is blamed on `where`."""
    sections = _sections(type(cfg))

    def at(*keys: str) -> str:
        return next((origin[k] for k in keys if origin and k in origin), where)

    for (section, key), allowed in CHOICES.items():
        if section in sections and (value := getattr(getattr(cfg, section), key)) not in allowed:
            raise WavegenError(f"{at(f'{section}.{key}')}: {section}.{key} = {value!r}; "
                               f"choose one of {', '.join(allowed)}")
    for section, key in POSITIVE:
        if section in sections and not getattr(getattr(cfg, section), key) > 0:
            raise WavegenError(f"{at(f'{section}.{key}')}: {section}.{key} must be positive")
    if isinstance(cfg, ComposerRunConfig):
        c = cfg.composer
        if not 0 <= c.burn_in < c.seq_len or not 0 <= c.dropout < 1:
            raise WavegenError(f"{at('composer.burn_in', 'composer.seq_len', 'composer.dropout')}: "
                               "composer.burn_in must be below seq_len, composer.dropout in [0, 1)")
    if hasattr(cfg, "model") and not (0 <= cfg.model.pre_emphasis < 1 and (cfg.model.output == "mulaw"
                                                                           or cfg.model.pre_emphasis == 0)):
        raise WavegenError(f"{at('model.pre_emphasis', 'model.output')}: model.pre_emphasis must be in [0, 1), "
                           "and 0 unless model.output = \"mulaw\"")
    if hasattr(cfg, "model") and cfg.model.velocity not in ("auto", True, False):
        raise WavegenError(f"{at('model.velocity')}: model.velocity = {cfg.model.velocity!r}; choose true, false "
                           "or \"auto\" (on when every training piece has velocities)")
    if hasattr(cfg.data, "weights"):
        try:
            parse_weights(cfg.data.weights)
        except WavegenError as e:
            raise WavegenError(f"{at('data.weights')}: {e}") from None
    if hasattr(cfg, "model") and not (0 <= cfg.data.input_noise <= 64 and (cfg.model.output == "mulaw"
                                                                            or cfg.data.input_noise == 0)):
        raise WavegenError(f"{at('data.input_noise', 'model.output')}: data.input_noise must be in [0, 64] mu-law "
                           "levels, and 0 unless model.output = \"mulaw\"")
    if not 0 <= cfg.train.ema_decay < 1:
        raise WavegenError(f"{at('train.ema_decay')}: train.ema_decay must be in [0, 1)")
    return cfg


def parse_weights(text: str) -> dict[str, float]:
    """data.weights "random=8,essen=2" -> {"random": 8.0, "essen": 2.0}; "" -> {}. Weights are finite and
    >= 0 (0 leaves a style out of training)."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, raw = part.partition("=")
        try:
            w = float(raw)
        except ValueError:
            w = math.nan
        if not eq or not name.strip() or not math.isfinite(w) or w < 0 or name.strip() in weights:
            raise WavegenError(f"data.weights = {text!r}: expected STYLE=WEIGHT,..., each style once, each weight "
                               "a number >= 0, e.g. \"random=8,essen=2\"")
        weights[name.strip()] = w
    return weights


def _keys(table: dict[str, Any]) -> list[str]:
    """'section.key' of every value in a TOML table of sections."""
    return [f"{section}.{key}" for section, values in table.items() if isinstance(values, dict) for key in values]


def parse_override(text: str) -> tuple[list[str], Any]:
    """'model.cycles=3' -> (['model', 'cycles'], 3). Values are TOML: 3, 1e-3, true, "bf16" (or bf16)."""
    key, eq, raw = text.partition("=")
    if not eq or not key.strip():
        raise WavegenError(f"--set {text}: expected section.key=value, e.g. --set train.steps=100")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word is a string
    return key.strip().split("."), value


def _product(kind: str) -> type[RunConfig]:
    if kind not in KINDS:
        raise ValueError(f"no config kind {kind!r} (known: {', '.join(KINDS)})")
    return KINDS[kind]


def load_config(path: str | os.PathLike | None = None, overrides: typing.Sequence[str] = (), *,
                kind: str = "wavenet") -> RunConfig:
    """Defaults, then the TOML file, then each `--set section.key=value` in order.
    kind: "wavenet" (`wavegen train`, a WaveNetConfig) or "composer" (`wavegen train-composer`, a
    ComposerRunConfig); a section of the other product is an error."""
    cfg: RunConfig = _product(kind)()
    where = "defaults"
    origin: dict[str, str] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise WavegenError(f"{p}: no such config file")
        try:
            table = tomllib.loads(p.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise WavegenError(f"{p}: not valid TOML ({e})") from None
        where = str(p)
        cfg = _apply(cfg, table, where)
        origin.update(dict.fromkeys(_keys(table), where))
    for item in overrides:
        keys, value = parse_override(item)
        nested: Any = value
        for k in reversed(keys):
            nested = {k: nested}
        cfg = _apply(cfg, nested, f"--set {item}")
        origin[".".join(keys)] = f"--set {item}"
    return _validate(cfg, where, origin)


def config_text(cfg: RunConfig) -> str:
    """Every section and key of `cfg` as TOML that `load_config` reads back (`--show-config`): each key
    with what it means (from the comments beside the defaults above) and, where `cfg` differs from the
    defaults, the default."""
    default = type(cfg)()
    lines = [f"# every {cfg.settings[:-1]} of `{cfg.command}`: a TOML file (--config FILE) or --set "
             "section.key=value changes any"]
    for part in dataclasses.fields(cfg):
        section, base, notes = getattr(cfg, part.name), getattr(default, part.name), _comments(part.type)
        lines += ["", f"[{part.name}]"]
        for f in dataclasses.fields(section):
            value, was = getattr(section, f.name), getattr(base, f.name)
            note = notes.get(f.name, "")
            if value != was:
                note = f"default {_toml(was)}" + (f"; {note}" if note else "")
            lines.append(f"{f.name} = {_toml(value)}" + (f"  # {note}" if note else ""))
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    return repr(value)  # int, or a finite float: 0.001, 1e-05


def _comments(cls: type | str) -> dict[str, str]:
    """key -> the comment beside its default in this module's source ({} where the source is not there)."""
    cls = globals()[cls] if isinstance(cls, str) else cls  # dataclass fields hold their type as text here
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    return {m[1]: m[2].strip() for m in re.finditer(r"^\s+(\w+): [^=\n]+=[^#\n]*#(.*)$", source, re.M)}


def from_record(table: dict[str, Any], where: str = "config.json", *, kind: str = "wavenet") -> RunConfig:
    """The config a run or checkpoint recorded. Records written before the two products had their own
    configs hold every section: the other product's sections are dropped (they never described this
    model); anything else unknown is still an error."""
    cls = _product(kind)
    own = {k: v for k, v in table.items() if _product_of(k, cls) is None}
    return _validate(_apply(cls(), own, where), where)
