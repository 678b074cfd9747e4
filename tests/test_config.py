"""Config: defaults in dataclasses, TOML and --set only override, mistakes are errors; each product
(the WaveNet, the composer) has its own, and records written with both sections still load."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from wavegen.config import ComposerRunConfig, WaveNetConfig, from_record, load_config
from wavegen.errors import WavegenError

ROOT = Path(__file__).parent.parent
CONFIGS = ROOT / "configs"
RESUME = ROOT / "data" / "resume" / "harpsichord-cpu"


def test_defaults_file_and_overrides(tmp_path):
    assert load_config() == WaveNetConfig()
    assert load_config(kind="composer") == ComposerRunConfig()
    f = tmp_path / "c.toml"
    f.write_text('[model]\ncycles = 3\n[train]\nlr = 1\nmixed_precision = "bf16"\n')
    cfg = load_config(f, ["model.cycles=4", "train.mixed_precision=no", 'data.valid_split="test"'])
    assert cfg.model.cycles == 4 and cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.train.mixed_precision == "no" and cfg.data.valid_split == "test"


@pytest.mark.parametrize("text, override, words", [
    ("[model]\ncycle = 3\n", [], "unknown key 'cycle'"),
    ("[modle]\n", [], "unknown key 'modle'"),
    ("[model]\ncycles = 'three'\n", [], "expected int"),
    ("[model]\ncycles = true\n", [], "expected int"),
    ("[model]\noutput = 'wav'\n", [], "choose one of mulaw, mol"),
    ("[train]\nsteps = 0\n", [], "train.steps must be positive"),
    ("", ["train.stepz=3"], "unknown key 'stepz'"),
    ("", ["train.steps"], "expected section.key=value"),
    ("", ["train.steps=1.5"], "expected int"),
    ("[model\n", [], "not valid TOML"),
])
def test_mistakes_are_errors(tmp_path, text, override, words):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(WavegenError, match=words.replace("(", r"\(")):
        load_config(f, override)


@pytest.mark.parametrize("text, override, kind, words", [
    ("[composer]\nhidden = 64\n", [], "wavenet", "c.toml: [composer] holds composer settings: they go in "
     "`wavegen train-composer`'s config, not `wavegen train`'s"),
    ("", ["composer.kind=lstm"], "wavenet", "--set composer.kind=lstm: [composer] holds composer settings"),
    ("[model]\ncycles = 3\n", [], "composer", "c.toml: [model] holds WaveNet settings: they go in `wavegen train`'s"),
    ("", ["model.cycles=3"], "composer", "--set model.cycles=3: [model] holds WaveNet settings"),
])
def test_the_other_products_settings_are_errors(tmp_path, text, override, kind, words):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(WavegenError, match=words.replace("[", r"\[").replace("]", r"\]")) as e:
        load_config(f, override, kind=kind)
    assert "\n" not in str(e.value)


def test_records_with_both_products_sections_load():
    record = json.loads((RESUME / "checkpoints" / "step-00009000" / "config.json").read_text())["config"]
    assert {"model", "composer"} <= record.keys()  # written before each product had its own config
    cfg = from_record(record, kind="wavenet")
    cpu = load_config(CONFIGS / "cpu.toml")
    assert isinstance(cfg, WaveNetConfig) and (cfg.model, cfg.data) == (cpu.model, cpu.data)
    composer = from_record(record, kind="composer")
    assert isinstance(composer, ComposerRunConfig) and composer.composer.kind == "markov"
    with pytest.raises(WavegenError, match="unknown key 'modle'"):  # only the other product's sections are dropped
        from_record({**record, "modle": {}}, kind="wavenet")


def test_the_shipped_resume_record_resumes_with_cpu_toml_and_its_checkpoint_loads():
    from wavegen.nn import checkpoint
    from wavegen.train.wavenet import WaveNetTask

    saved = json.loads((RESUME / "config.json").read_text())
    ds = SimpleNamespace(sample_rate_hz=16_000, tick_ms=50.0, root="data/build/bach",  # rendered: no velocities
                         select=lambda split: np.arange(3), index=SimpleNamespace(velocity=np.zeros(3, dtype=bool)))
    WaveNetTask(load_config(CONFIGS / "cpu.toml", ["train.steps=11000"]), ds).check_resume(RESUME, saved)
    with pytest.raises(WavegenError, match=r"another model config \(model.cycles 2 -> 3\)"):
        WaveNetTask(load_config(CONFIGS / "cpu.toml", ["model.cycles=3"]), ds).check_resume(RESUME, saved)
    loaded = checkpoint.load(checkpoint.step_dirs(RESUME)[-1])
    assert loaded.meta["step"] == 9000 and loaded.config.model == load_config(CONFIGS / "cpu.toml").model


@pytest.mark.parametrize("name", ["tiny", "cpu", "gpu", "cluster", "maestro-gpu"])
def test_shipped_configs_load_and_state_their_receptive_field(name):
    path = CONFIGS / f"{name}.toml"
    cfg = load_config(path)
    rf = cfg.model.receptive_field()
    assert f"Receptive field: {rf} samples" in path.read_text()


@pytest.mark.parametrize("name", ["composer-markov", "composer-lstm"])
def test_composer_configs_load(name):
    assert load_config(CONFIGS / f"{name}.toml", kind="composer").composer.kind == name.split("-")[1]


def test_cpu_config_is_the_reference_network():
    m = load_config(CONFIGS / "cpu.toml").model
    assert (m.cycles, m.layers_per_cycle, m.kernel_size, m.residual_channels, m.gate_channels,
            m.skip_channels, m.n_classes, m.output) == (2, 10, 2, 64, 64, 128, 256, "mulaw")
    assert m.local_conditioning
